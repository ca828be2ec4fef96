"""Lipschitz constants of the feature map phi, the L of the bridging lemma (:prf:ref:`lem-bridging`) and of the
local bound (:prf:ref:`thm-local-bound`): local (power iteration on the Jacobian at each input), empirical (the
largest ratio over pairs of inputs) and a global upper bound (the product of the layer norms of a sequential ReLU
body). Re-exported by :mod:`flatrob.bounds`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor, nn
from torch.func import jvp, vjp

from flatrob.models import on_model

__all__ = ["lipschitz_local", "lipschitz_pairs", "lipschitz_upper"]


def lipschitz_local(
    features: nn.Module | Callable[[Tensor], Tensor], x: Tensor, iters: int = 30, seed: int = 0
) -> Tensor:
    """Spectral norm of the Jacobian of phi at each input, by power iteration: a lower bound of the Lipschitz
    constant near x (:prf:ref:`lem-bridging`'s L).

    Per-sample Jacobians, batched: phi acts on each sample independently (eval mode), so one jvp and one vjp of the
    batch apply J_i and J_i^T to every sample's own vector.

    Args:
        features: phi, a module or a bound method such as ``model.features``.
        x: inputs, shape (n, ...), on any device (moved to the model's).
        iters: power iterations.
        seed: seeds the starting vectors.

    Returns:
        The norms, shape (n,), on the CPU.
    """
    (x,) = on_model(features, x)
    fn: Any = features
    gen = torch.Generator().manual_seed(seed)
    v = torch.randn(x.shape, generator=gen, dtype=x.dtype).to(x.device)
    v = v / v.flatten(1).norm(dim=1).view(-1, *[1] * (x.dim() - 1))
    sigma = torch.zeros(x.shape[0], dtype=x.dtype, device=x.device)
    for _ in range(iters):
        jv = jvp(fn, (x,), (v,))[1]
        pull = vjp(fn, x)[1]
        (jtjv,) = pull(jv)
        sigma = jv.flatten(1).norm(dim=1)
        norm = jtjv.flatten(1).norm(dim=1).clamp_min(1e-30)
        v = jtjv / norm.view(-1, *[1] * (x.dim() - 1))
    out: Tensor = sigma.detach().cpu()
    return out


@torch.no_grad()
def lipschitz_pairs(features: nn.Module | Callable[[Tensor], Tensor], x: Tensor, x2: Tensor) -> Tensor:
    """Ratios ||phi(x) - phi(x2)|| / ||x - x2|| for paired inputs: empirical lower bounds of L
    (:prf:ref:`lem-bridging`).

    Args:
        features: phi, a module or a bound method such as ``model.features``.
        x: inputs, shape (n, ...), on any device.
        x2: their partners, shape (n, ...), each different from its x.

    Returns:
        The ratios, shape (n,), on the CPU.
    """
    x, x2 = on_model(features, x, x2)
    fn: Any = features
    num = (fn(x) - fn(x2)).flatten(1).norm(dim=1)
    den = (x - x2).flatten(1).norm(dim=1)
    if (den == 0).any():
        raise ValueError("lipschitz_pairs needs x != x2 for every pair")
    out: Tensor = (num / den).cpu()
    return out


def _operator_norm(layer: nn.Module, shape: tuple[int, ...], iters: int, gen: torch.Generator) -> float:
    """Spectral norm of the linear part of a Conv2d / Conv1d / Linear acting on inputs of ``shape``."""
    weight: Any = layer.weight
    w: Tensor = weight.detach().double().cpu()
    if isinstance(layer, nn.Linear):
        return float(torch.linalg.matrix_norm(w, ord=2))
    conv: Any = nn.functional.conv2d if isinstance(layer, nn.Conv2d) else nn.functional.conv1d
    kw: dict[str, Any] = {
        "stride": layer.stride,
        "padding": layer.padding,
        "dilation": layer.dilation,
        "groups": layer.groups,
    }
    v = torch.randn((1, *shape), generator=gen, dtype=torch.float64)
    sigma = 0.0
    for _ in range(iters):
        v = (v / v.norm()).requires_grad_(True)
        out = conv(v, w, None, **kw)
        (back,) = torch.autograd.grad(out, v, out)  # J^T J v
        sigma = float(out.detach().norm())
        v = back.detach()
    return sigma


def lipschitz_upper(body: nn.Sequential, input_shape: tuple[int, ...], iters: int = 100, seed: int = 0) -> float:
    """A global Lipschitz constant (l2) of a sequential ReLU body: the product of its layers' norms.

    Linear / Conv1d / Conv2d contribute their operator norm (power iteration on the convolution as a linear map of
    inputs of the right shape), ReLU, Flatten and non-overlapping max-pooling contribute 1 (each is 1-Lipschitz in
    l2). Other modules raise ``TypeError``: the bound would be unproven.

    Args:
        body: the feature map, an ``nn.Sequential``.
        input_shape: one input's shape, without the batch axis.
        iters: power iterations per layer.
        seed: seeds the starting vectors.

    Returns:
        The upper bound of L, a float.
    """
    gen = torch.Generator().manual_seed(seed)
    shape = tuple(input_shape)
    total = 1.0
    for layer in body:
        if isinstance(layer, (nn.Linear, nn.Conv1d, nn.Conv2d)):
            total *= _operator_norm(layer, shape, iters, gen)
        elif isinstance(layer, (nn.MaxPool1d, nn.MaxPool2d)):
            k, s = layer.kernel_size, layer.stride
            if k != s or layer.padding not in (0, (0, 0)) or layer.dilation not in (1, (1, 1)):
                raise TypeError(f"only non-overlapping max-pooling is 1-Lipschitz in l2; got {layer}")
        elif not isinstance(layer, (nn.ReLU, nn.Flatten, nn.Identity)):
            raise TypeError(f"no proven Lipschitz constant for {type(layer).__name__}")
        with torch.no_grad():
            param = next(iter(body.parameters()))
            shape = tuple(layer(torch.zeros((1, *shape), dtype=param.dtype, device=param.device)).shape[1:])
    return total
