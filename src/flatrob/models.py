"""Classifiers with a common interface: ``features(x) -> phi`` and a findable last layer.

Every model is a :class:`FeatureClassifier`: ``forward(x) = classifier(features(x))``
where ``classifier`` is an ``nn.Linear`` with weight ``W`` of shape (k, m).
"""

from __future__ import annotations

import copy
import math
from typing import Any

import torch
from torch import Tensor, nn

__all__ = [
    "DigitsCNN",
    "FeatureClassifier",
    "MLP",
    "MNIST1DCNN",
    "SmallCNN",
    "last_layer_inputs",
    "last_linear",
    "model_device",
    "on_model",
    "rescale_feature_layer",
    "scale_last_layer",
    "log_loss_increase",
    "scaled_log_losses",
    "scaled_losses",
]


class FeatureClassifier(nn.Module):
    """Base class. Subclasses set ``self.body`` (x -> phi, ending in a ReLU) and ``self.classifier``."""

    body: nn.Module
    classifier: nn.Linear

    def features(self, x: Tensor) -> Tensor:
        """Penultimate features phi(x): (n, *input_shape) -> (n, m)."""
        phi: Tensor = self.body(x)
        return phi

    def forward(self, x: Tensor) -> Tensor:
        """Logits: (n, *input_shape) -> (n, k)."""
        logits: Tensor = self.classifier(self.features(x))
        return logits

    def forward_with_features(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """One pass returning (logits (n, k), phi (n, m))."""
        phi = self.features(x)
        return self.classifier(phi), phi


class DigitsCNN(FeatureClassifier):
    """A small CNN for 8x8 single-channel images (scikit-learn digits).

    conv3x3(1->c) ReLU conv3x3(c->2c) ReLU maxpool2 -> flatten -> Linear(8c -> m) ReLU -> Linear(m -> k).
    """

    def __init__(self, n_classes: int = 10, channels: int = 16, width: int = 64) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(1, channels, 3, padding=1),
            nn.ReLU(),
            nn.Conv2d(channels, 2 * channels, 3, padding=1),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Flatten(),
            nn.Linear(2 * channels * 16, width),
            nn.ReLU(),
        )
        self.classifier = nn.Linear(width, n_classes)


class SmallCNN(FeatureClassifier):
    """A small CNN for 28x28 grey images (Fashion-MNIST, MNIST) that trains in seconds per epoch on two CPU cores.

    conv3x3(1->c) ReLU maxpool2 conv3x3(c->2c) ReLU maxpool2 -> flatten -> Linear(2c*7*7 -> m) ReLU -> Linear(m -> k).
    A sequential ReLU body, so ``flatrob.bounds.lipschitz_upper`` gives it a proven Lipschitz constant.
    """

    def __init__(self, n_classes: int = 10, channels: int = 16, width: int = 128, size: int = 28) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(1, channels, 3, padding=1),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Conv2d(channels, 2 * channels, 3, padding=1),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Flatten(),
            nn.Linear(2 * channels * (size // 4) ** 2, width),
            nn.ReLU(),
        )
        self.classifier = nn.Linear(width, n_classes)


def model_device(model: nn.Module | object) -> torch.device:
    """The device of a model's parameters; also for a bound method such as ``model.features``.

    Args:
        model: a module, or a bound method of one (``model.features``).

    Returns:
        The device of its first parameter (the CPU for a model without parameters).
    """
    module: Any = getattr(model, "__self__", model)
    try:
        device: torch.device = next(module.parameters()).device
        return device
    except (AttributeError, StopIteration):
        return torch.device("cpu")


def on_model(model: nn.Module | object, *tensors: Tensor) -> tuple[Tensor, ...]:
    """``tensors`` moved to the model's device: the one place where library functions put inputs where the model is.

    Tensors already there are returned as they are (no copy).

    Args:
        model: a module, or a bound method of one.
        tensors: any tensors.

    Returns:
        The tensors on the model's device, in order; those already there unchanged (no copy).
    """
    device = model_device(model)
    return tuple(t.to(device) for t in tensors)


def last_linear(model: nn.Module) -> nn.Linear:
    """The last layer ``W`` (an ``nn.Linear``) of a model.

    A :class:`FeatureClassifier`'s ``classifier``; for any other model (a torchvision ResNet, VGG or DenseNet, say)
    the last ``nn.Linear`` it registers, which for those is the layer that makes the logits (``fc``,
    ``classifier[-1]``, ``classifier``).

    Args:
        model: the classifier.

    Returns:
        Its last ``nn.Linear``.

    Raises:
        TypeError: the model has no ``nn.Linear`` layer.
    """
    layer = getattr(model, "classifier", None)
    if isinstance(layer, nn.Linear):
        return layer
    linears = [m for m in model.modules() if isinstance(m, nn.Linear)]
    if not linears:
        raise TypeError(f"{type(model).__name__} has no nn.Linear layer: no last layer to measure")
    return linears[-1]


@torch.no_grad()
def rescale_feature_layer(model: FeatureClassifier, lam: float) -> FeatureClassifier:
    """The layer-rescaling symmetry of ReLU nets (chapter relative-flatness).

    Returns a copy in which the last ``nn.Linear`` of the body (weight and bias)
    is multiplied by ``lam > 0`` and the classifier weight divided by ``lam``.
    Since ReLU is positively homogeneous, phi -> lam phi and W phi is unchanged:
    the copy computes the same function.

    Args:
        model: a :class:`FeatureClassifier` whose body ends in an ``nn.Linear`` (then a ReLU).
        lam: the factor, > 0.

    Returns:
        A rescaled copy that computes the same function, phi -> lam phi, W -> W / lam (the rescaling symmetry of
        :eq:`eq-kappa-layer`).
    """
    if lam <= 0:
        raise ValueError(f"lam must be positive; got {lam}")
    out = copy.deepcopy(model)
    body = out.body
    if not (
        isinstance(body, nn.Sequential)
        and len(body) >= 2
        and isinstance(body[-1], nn.ReLU)
        and isinstance(body[-2], nn.Linear)
    ):
        raise TypeError("rescale_feature_layer needs a body that ends in nn.Linear followed by nn.ReLU")
    body[-2].weight.mul_(lam)
    if body[-2].bias is not None:
        body[-2].bias.mul_(lam)
    last_linear(out).weight.div_(lam)
    return out


@torch.no_grad()
def last_layer_inputs(
    model: nn.Module, x: Tensor, dtype: torch.dtype | None = None, batch_size: int = 1024
) -> tuple[Tensor, Tensor | None, Tensor]:
    """The last layer and its inputs: what the closed forms of ``flatrob.flatness`` take.

    For a :class:`FeatureClassifier`, ``phi = model.features(x)``. For any other model whose logits come from an
    ``nn.Linear`` (:func:`last_linear`: a torchvision ResNet, for example) the features are that layer's input,
    caught by a forward hook while the model runs, so no surgery is needed::

        W, b, phi = last_layer_inputs(torchvision.models.resnet18(), x)
        kappa = flatrob.relative_sharpness(W, phi, b)

    Args:
        model: the classifier (put in eval mode).
        x: inputs, shape (n, ...), on any device.
        dtype: cast all three results to it (for example ``torch.float64``, to compare with autograd).
        batch_size: inputs per forward pass.

    Returns:
        ``(W, b, phi)`` on the CPU, the weight of shape (k, m), the bias of shape (k,) or None, and the features
        of shape (n, m).
    """
    model.eval()
    layer = last_linear(model)
    if isinstance(model, FeatureClassifier):

        def features(xb: Tensor) -> Tensor:
            return model.features(xb)
    else:
        caught: list[Tensor] = []
        hook = layer.register_forward_pre_hook(lambda _m, args: caught.append(args[0].detach().flatten(1)))

        def features(xb: Tensor) -> Tensor:
            caught.clear()
            model(xb)
            if len(caught) != 1:
                raise RuntimeError(f"the last nn.Linear of {type(model).__name__} ran {len(caught)} times in one pass")
            return caught[0]

    try:
        phi = torch.cat([features(*on_model(model, x[i : i + batch_size])).cpu() for i in range(0, len(x), batch_size)])
    finally:
        if not isinstance(model, FeatureClassifier):
            hook.remove()
    w = layer.weight.detach().cpu()
    b = None if layer.bias is None else layer.bias.detach().cpu()
    if dtype is not None:
        w, phi = w.to(dtype), phi.to(dtype)
        b = None if b is None else b.to(dtype)
    return w, b, phi


# ---------------------------------------------------------------------------
# small nets for CPU-scale data (the residual family and the paper's networks are in flatrob.zoo)


class MNIST1DCNN(FeatureClassifier):
    """A 1-D CNN for MNIST-1D inputs (n, 1, L).

    BN conv5(1->c) BN ReLU conv3(c->2c) BN ReLU maxpool2 conv3(2c->2c) BN ReLU maxpool2 -> Linear(2c L/4 -> m) ReLU
    -> Linear(m -> k). The input batch norm matters: mapped to [0, 1] by their range, MNIST-1D's signals have a
    standard deviation of about 0.1, and without it SGD stalls near 30-47% accuracy; with it the default recipe
    reaches about 98% on the test split (published CNN results: above 90%).
    """

    def __init__(self, n_classes: int = 10, length: int = 40, channels: int = 32, width: int = 128) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.BatchNorm1d(1),
            nn.Conv1d(1, channels, 5, padding=2),
            nn.BatchNorm1d(channels),
            nn.ReLU(),
            nn.Conv1d(channels, 2 * channels, 3, padding=1),
            nn.BatchNorm1d(2 * channels),
            nn.ReLU(),
            nn.MaxPool1d(2),
            nn.Conv1d(2 * channels, 2 * channels, 3, padding=1),
            nn.BatchNorm1d(2 * channels),
            nn.ReLU(),
            nn.MaxPool1d(2),
            nn.Flatten(),
            nn.Linear(2 * channels * (length // 4), width),
            nn.ReLU(),
        )
        self.classifier = nn.Linear(width, n_classes)


class MLP(FeatureClassifier):
    """Flatten -> (Linear ReLU) x len(hidden) -> Linear(hidden[-1] -> k). Features: the last hidden layer."""

    def __init__(self, input_dim: int, n_classes: int = 10, hidden: tuple[int, ...] = (256, 256)) -> None:
        super().__init__()
        layers: list[nn.Module] = [nn.Flatten()]
        d = input_dim
        for h in hidden:
            layers += [nn.Linear(d, h), nn.ReLU()]
            d = h
        self.body = nn.Sequential(*layers)
        self.classifier = nn.Linear(d, n_classes)


class _Wrapped(FeatureClassifier):
    """A torchvision-style network split into body and classifier."""

    def __init__(self, body: nn.Module, classifier: nn.Linear) -> None:
        super().__init__()
        self.body = body
        self.classifier = classifier


@torch.no_grad()
def scaled_losses(model: nn.Module, x: Tensor, y: Tensor, scales: list[float], scale_bias: bool = True) -> Tensor:
    """Per-sample cross-entropy of the model with its last layer scaled by each s (``W -> sW``, and ``b -> sb`` when
    ``scale_bias``), in float64 from the features: x (n, ...), y (n,) -> (S, n), on the CPU. Resolves losses of
    confident points long after float32 would round them to 0.

    Args:
        model: a :class:`FeatureClassifier`.
        x: inputs, shape (n, ...).
        y: labels, shape (n,).
        scales: the scales s, shape (S,).
        scale_bias: scale the bias with W.

    Returns:
        Per-input cross-entropy in float64, shape (S, n), on the CPU.
    """
    labels = y.cpu()
    return torch.stack(
        [nn.functional.cross_entropy(z, labels, reduction="none") for z in _scaled_logits(model, x, scales, scale_bias)]
    )


def _scaled_logits(model: nn.Module, x: Tensor, scales: list[float], scale_bias: bool) -> list[Tensor]:
    """The logits of the scaled last layer at each s, in float64 from the features: [(n, k)] on the CPU."""
    w, b, phi = last_layer_inputs(model, x, dtype=torch.float64)
    return [nn.functional.linear(phi, s * w, None if b is None else (s * b if scale_bias else b)) for s in scales]


def scaled_log_losses(model: nn.Module, x: Tensor, y: Tensor, scales: list[float], scale_bias: bool = True) -> Tensor:
    """The logarithm of each sample's cross-entropy under the scaled last layer, exact where the loss itself
    underflows.

    With logits z = s (W phi + b) (bias scaled) and a = logsumexp_{j != y}(z_j - z_y), the loss is
    softplus(a) = log(1 + e^a), so log loss = log softplus(a); for a < -700 (e^a underflows even in float64)
    log loss = a + O(e^a). A confident point at s = 50 has a loss near e^{-1000}: float64 rounds it to 0, its
    logarithm is still about -1000 (:ref:`last-layer-scaling`).

    Args:
        model: a :class:`FeatureClassifier`.
        x: inputs, shape (n, ...); y: labels, shape (n,).
        scales: the last-layer scales s.
        scale_bias: scale the bias too (``b -> sb``) or keep it.

    Returns:
        The natural log of the loss, float64, shape (S, n), on the CPU.
    """
    labels = y.cpu()
    out = []
    for z in _scaled_logits(model, x, scales, scale_bias):
        margin = z - z.gather(1, labels[:, None])
        margin = margin.scatter(1, labels[:, None], -math.inf)  # the label's own term leaves the sum
        a = torch.logsumexp(margin, 1)
        out.append(torch.where(a < -700, a, torch.log(nn.functional.softplus(a.clamp_min(-700)))))
    return torch.stack(out)


def log_loss_increase(log_after: Tensor, log_before: Tensor) -> Tensor:
    """The logarithm of a loss increase from the logarithms of the two losses (:func:`scaled_log_losses`), without
    forming either loss: log(e^u - e^v) = u + log(-expm1(v - u)) for u > v; -inf where the loss did not rise.

    Args:
        log_after, log_before: natural logs of the losses after and before, the same shape.

    Returns:
        The natural log of ``loss_after - loss_before`` (float64, the same shape), -inf where it is not positive.
    """
    u, v = log_after.double(), log_before.double()
    rose = u > v
    out = torch.full_like(u, -math.inf)
    out[rose] = u[rose] + torch.log(-torch.expm1(v[rose] - u[rose]))
    return out


@torch.no_grad()
def scale_last_layer(model: FeatureClassifier, s: float, scale_bias: bool = True) -> FeatureClassifier:
    """A copy with the last layer scaled, W -> s W (and b -> s b when ``scale_bias``).

    With the bias scaled too, the logits are multiplied by s and the arg-max is
    unchanged for s > 0; with the bias kept, it can change.

    Args:
        model: a :class:`FeatureClassifier`.
        s: the scale of the last layer's weight.
        scale_bias: scale its bias by s as well.

    Returns:
        A copy with W -> s W (and b -> s b); the model itself is unchanged.
    """
    if not s > 0:
        raise ValueError(f"s must be positive; got {s}")
    out = copy.deepcopy(model)
    layer = last_linear(out)
    layer.weight.mul_(s)
    if scale_bias and layer.bias is not None:
        layer.bias.mul_(s)
    return out
