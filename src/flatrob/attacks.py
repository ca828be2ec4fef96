"""Projected gradient descent, instrumented, and control paths.

:func:`pgd` is the attack of Madry et al. in the form torchattacks implements
it (cross-entropy averaged over the batch, signed steps for l_inf, normalised
steps for l_2, projection onto the eps-ball and onto [0, 1]). With
``track=True`` it records, at every iterate ``x_0 .. x_T``, per sample:
the loss, the probabilities, the prediction, the feature norm ``||phi||``,
``Tr H`` (:eq:`eq-trace`) and the relative sharpness (:eq:`eq-kappa-layer`,
:eq:`eq-kappa-neuron`), all from the forward pass the attack makes anyway (plus
one forward pass, without backward, at the final iterate).

:func:`interpolation_path` walks from each input straight to noise and
records the same statistics: the control the uncanny valley is compared with.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from typing import Any, Literal, overload

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from torch import Tensor

from flatrob import flatness
from flatrob.models import FeatureClassifier, last_linear, on_model
from flatrob.util.progress import progress_bar

__all__ = [
    "AttackConfig",
    "STAT_NAMES",
    "Trajectory",
    "input_gradient_norms",
    "interpolation_path",
    "pgd",
    "record_statistics",
    "square",
]

Norm = Literal["linf", "l2"]


@dataclass(frozen=True)
class AttackConfig:
    """PGD settings. ``eps`` and ``step_size`` are in input units ([0, 1] pixels)."""

    norm: Norm = "linf"
    eps: float = 8 / 255
    steps: int = 10
    step_size: float = 2 / 255
    random_start: bool = False
    seed: int = 0

    def __post_init__(self) -> None:
        if self.norm not in ("linf", "l2"):
            raise ValueError(f"norm must be 'linf' or 'l2'; got {self.norm!r}")
        if not self.eps >= 0:
            raise ValueError(f"eps must be >= 0; got {self.eps}")
        if not self.step_size > 0:
            raise ValueError(f"step_size must be > 0; got {self.step_size}")
        if self.steps < 0:
            raise ValueError(f"steps must be >= 0; got {self.steps}")

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def madry(cls, norm: Norm, eps: float, steps: int, seed: int = 0, travel: float = 2.5) -> AttackConfig:
        """PGD whose steps add up to ``travel`` radii: step size ``travel * eps / steps``. Madry et al.'s 2.5 radii
        reach any point of the ball's surface from its centre; the paper's 10 steps of 2/255 at 8/255 are this."""
        return cls(norm, eps, steps, travel * eps / steps, seed=seed)

    def with_steps(self, steps: int) -> AttackConfig:
        """The same attack stopped after ``steps`` iterates (PGD without random start is deterministic, so its
        iterate j is the end of the j-step attack)."""
        return replace(self, steps=steps)

    def at_radius(self, eps: float) -> AttackConfig:
        """The same attack at radius ``eps``: the same number of steps, the step size scaled with the radius (so
        that the attack can still reach the boundary of the larger ball)."""
        return replace(self, eps=eps, step_size=self.step_size * eps / self.eps)

    def setting(self) -> dict[str, Any]:
        """The attack as the fields of a check's setting (:data:`flatrob.evidence.verdicts.Setting`)."""
        return {"norm": self.norm, "eps": self.eps, "steps": self.steps, "step_size": self.step_size}


STAT_NAMES = ("loss", "feature_norm", "trace", "kappa_layer", "kappa_neuron", "confidence", "p_label")


@dataclass
class Trajectory:
    """Per-iterate statistics of a batch: every tensor has shape (T + 1, n) except ``probs`` (T + 1, n, k).

    ``x_final`` (n, ...) is the last iterate, ``labels`` (n,) the labels attacked.
    """

    labels: Tensor
    probs: Tensor
    pred: Tensor
    stats: dict[str, Tensor]
    x_final: Tensor

    @property
    def steps(self) -> int:
        return self.pred.shape[0] - 1

    def flip_step(self) -> Tensor:
        """(n,) first iterate whose prediction differs from the label; -1 if none (or wrong at the start: 0)."""
        wrong = self.pred != self.labels.unsqueeze(0)
        first = torch.where(wrong.any(0), wrong.float().argmax(0), torch.full_like(self.labels, -1))
        return first

    def uncertainty(self) -> Tensor:
        """(T + 1, n) ``1 - max_s p_s`` in float64, as the sum of the other probabilities.

        Exact where ``1 - p_max`` would round to 0 in float32 (confident points:
        the quantity of :prf:ref:`cor-confident-flat`).
        """
        return self.probs.double().sort(-1).values[..., :-1].sum(-1)

    def loss_rise_step(self, threshold: float, relative: bool = False) -> Tensor:
        """(n,) first iterate at which the loss has risen above its start; ``steps + 1`` if it never does.

        "Risen" means ``loss_t - loss_0 > threshold`` or, with ``relative=True``,
        ``loss_t > threshold * loss_0``. The count of iterates before the rise is
        the width of the low-loss basin along the path (row B of the paper).
        """
        if not threshold > 0:
            raise ValueError(f"threshold must be > 0; got {threshold}")
        loss = self.stats["loss"].double()
        rose = loss > threshold * loss[0] if relative else loss - loss[0] > threshold
        never = torch.full_like(self.labels, self.steps + 1)
        return torch.where(rose.any(0), rose.float().argmax(0), never)

    def to_frame(self, **extra: object) -> pd.DataFrame:
        """Long table: one row per (sample, step) with every statistic; ``extra`` columns are constant."""
        import pandas as pd

        t, n = self.pred.shape
        cols: dict[str, np.ndarray] = {
            "sample": np.tile(np.arange(n), t),
            "step": np.repeat(np.arange(t), n),
            "pred": self.pred.reshape(-1).numpy(),
            "label": np.tile(self.labels.numpy(), t),
        }
        for name, v in self.stats.items():
            cols[name] = v.reshape(-1).numpy()
        frame = pd.DataFrame(cols)
        frame["correct"] = frame["pred"] == frame["label"]
        flips = self.flip_step().numpy()
        frame["flip_step"] = np.tile(flips, t)
        for key, value in extra.items():
            frame[key] = value
        return frame


def record_statistics(
    model: FeatureClassifier, logits: Tensor, phi_sq: Tensor, y: Tensor
) -> tuple[Tensor, dict[str, Tensor]]:
    """Statistics of forward passes, from the logits and squared feature norms the passes computed anyway; nothing
    is differentiated, nothing re-evaluated (:func:`flatrob.flatness.last_layer_statistics`: :eq:`eq-trace`,
    :eq:`eq-kappa-layer`, :eq:`eq-kappa-neuron`).

    Args:
        model: the classifier whose last layer ``W`` (k, m) the statistics are of.
        logits: shape (..., n, k).
        phi_sq: the squared feature norms ``||phi||^2``, shape (..., n).
        y: the labels, shape (n,).

    Returns:
        The probabilities (..., n, k) and a dict of tensors (..., n), one per name of ``STAT_NAMES``.
    """
    W = last_linear(model).weight.detach()
    f = flatness.last_layer_statistics(W, logits, phi_sq)
    p = f["p"]
    idx = y.expand(p.shape[:-1]).unsqueeze(-1)
    stats = {
        "loss": -f["log_p"].gather(-1, idx).squeeze(-1),
        "feature_norm": phi_sq.sqrt(),
        "trace": f["trace"],
        "kappa_layer": f["kappa_layer"],
        "kappa_neuron": f["kappa_neuron"],
        "confidence": p.amax(-1),
        "p_label": p.gather(-1, idx).squeeze(-1),
    }
    return p, stats


class _Recorder:
    """Keeps the logits and ``||phi||^2`` of every iterate; evaluates all statistics at once at the end.

    Per iterate this costs one detach and one squared norm, so tracking adds
    almost nothing to the attack's own forward and backward passes.
    """

    def __init__(self, model: FeatureClassifier, y: Tensor) -> None:
        self.model, self.y = model, y
        self.logits: list[Tensor] = []
        self.phi_sq: list[Tensor] = []

    def add(self, logits: Tensor, phi: Tensor) -> None:
        self.logits.append(logits.detach())
        self.phi_sq.append(flatness.squared_norms(phi.detach()))

    def trajectory(self, x_final: Tensor) -> Trajectory:
        with torch.no_grad():
            probs, stats = record_statistics(self.model, torch.stack(self.logits), torch.stack(self.phi_sq), self.y)
        probs = probs.cpu()
        return Trajectory(
            labels=self.y.cpu(),
            probs=probs,
            pred=probs.argmax(-1),
            stats={k: v.cpu() for k, v in stats.items()},
            x_final=x_final.detach().cpu(),
        )


def _flat_norm(t: Tensor) -> Tensor:
    out: Tensor = t.reshape(t.shape[0], -1).norm(p=2, dim=1).reshape(-1, *([1] * (t.dim() - 1)))
    return out


def _random_start(x: Tensor, cfg: AttackConfig, gen: torch.Generator) -> Tensor:
    if cfg.norm == "linf":
        noise = (torch.rand(x.shape, generator=gen) * 2 - 1).to(x) * cfg.eps
    else:
        d = torch.randn(x.shape, generator=gen).to(x)
        r = torch.rand((x.shape[0],) + (1,) * (x.dim() - 1), generator=gen).to(x)
        noise = d / _flat_norm(d) * r * cfg.eps
    return (x + noise).clamp(0, 1)


@overload
def pgd(
    model: FeatureClassifier,
    x: Tensor,
    y: Tensor,
    config: AttackConfig = ...,
    *,
    track: Literal[False] = ...,
    progress: bool | None = ...,
) -> Tensor: ...


@overload
def pgd(
    model: FeatureClassifier,
    x: Tensor,
    y: Tensor,
    config: AttackConfig = ...,
    *,
    track: Literal[True],
    progress: bool | None = ...,
) -> Trajectory: ...


def pgd(
    model: FeatureClassifier,
    x: Tensor,
    y: Tensor,
    config: AttackConfig = AttackConfig(),
    *,
    track: bool = False,
    progress: bool | None = False,
) -> Tensor | Trajectory:
    """Untargeted PGD on the cross-entropy, optionally recording the valley's statistics at every iterate.

    With ``track=True`` each iterate's loss, probabilities, prediction, feature norm, ``Tr H`` (:eq:`eq-trace`)
    and relative sharpness (:eq:`eq-kappa-layer`, :eq:`eq-kappa-neuron`) come from the forward pass the attack
    makes anyway. The model is put in eval mode.

    Args:
        model: the classifier (its features and last layer are read).
        x: inputs in [0, 1], shape (n, ...), on any device.
        y: labels, shape (n,).
        config: the attack (norm, radius, steps, step size, random start, seed).
        track: return the trajectory instead of the adversarial inputs.
        progress: a bar over the steps (None: the run's default).

    Returns:
        The adversarial inputs, shape (n, ...), on the model's device; or, with ``track=True``, a
        :class:`Trajectory` on the CPU whose iterate 0 is the starting point and iterate T the returned input.
    """
    model.eval()
    x, y = on_model(model, x.detach(), y)
    x_adv = x.clone()
    if config.random_start:
        x_adv = _random_start(x, config, torch.Generator().manual_seed(config.seed))
    rec = _Recorder(model, y)
    for _ in progress_bar(range(config.steps), progress=progress, desc=f"PGD-{config.norm}", leave=False):
        x_adv.requires_grad_(True)
        if track:
            logits, phi = model.forward_with_features(x_adv)
            rec.add(logits, phi)
        else:
            logits = model(x_adv)
        loss = F.cross_entropy(logits, y)
        (grad,) = torch.autograd.grad(loss, x_adv)
        with torch.no_grad():
            if config.norm == "linf":
                x_adv = x_adv.detach() + config.step_size * grad.sign()
                delta = (x_adv - x).clamp(-config.eps, config.eps)
            else:
                x_adv = x_adv.detach() + config.step_size * grad / (_flat_norm(grad) + 1e-10)
                delta = x_adv - x
                delta = delta * torch.minimum(config.eps / _flat_norm(delta), torch.ones(()).to(delta))
            x_adv = (x + delta).clamp(0, 1)
    x_adv = x_adv.detach()
    if not track:
        return x_adv
    with torch.no_grad():
        rec.add(*model.forward_with_features(x_adv))
    return rec.trajectory(x_adv)


@torch.no_grad()
def interpolation_path(
    model: FeatureClassifier,
    x: Tensor,
    y: Tensor,
    target: Literal["gaussian", "uniform"] = "gaussian",
    steps: int = 20,
    seed: int = 0,
) -> Trajectory:
    """Control path: x_t = (1 - t/T) x + (t/T) u for t = 0..T, u noise of x's shape; no attack steers it.

    Args:
        model: the classifier.
        x: inputs (n, ...) in [0, 1], on any device; y: labels (n,).
        target: ``gaussian``, u ~ N(0.5, 0.25^2) clipped to [0, 1], or ``uniform``, u ~ U[0, 1].
        steps: T, the number of steps from x to u.
        seed: seeds the noise.

    Returns:
        The :class:`Trajectory` (T + 1 points per input, the statistics of :func:`record_statistics` at each), on
        the CPU.
    """
    if target not in ("gaussian", "uniform"):
        raise ValueError(f"target must be 'gaussian' or 'uniform'; got {target!r}")
    if steps < 1:
        raise ValueError(f"steps must be >= 1; got {steps}")
    model.eval()
    x, y = on_model(model, x, y)
    gen = torch.Generator().manual_seed(seed)
    if target == "uniform":
        u = torch.rand(x.shape, generator=gen)
    else:
        u = (0.5 + 0.25 * torch.randn(x.shape, generator=gen)).clamp(0, 1)
    u = u.to(x)
    rec = _Recorder(model, y)
    for t in range(steps + 1):
        a = t / steps
        rec.add(*model.forward_with_features((1 - a) * x + a * u))
    return rec.trajectory(u)


def input_gradient_norms(model: FeatureClassifier, x: Tensor, y: Tensor, batch_size: int = 1024) -> Tensor:
    """The l_inf norm of the gradient of each sample's cross-entropy with respect to its input, in the model's dtype.

    An entry that is exactly 0 means a signed-gradient attack (PGD-l_inf) cannot move that input at all: the softmax
    has saturated and the gradient underflowed (:ref:`gradient-masking`).

    Args:
        model: the classifier.
        x: inputs (n, ...) on any device; y: labels (n,).
        batch_size: inputs per backward pass.

    Returns:
        Shape (n,), on the CPU.
    """
    model.eval()
    x, y = on_model(model, x, y)
    out = []
    for i in range(0, len(x), batch_size):
        xb = x[i : i + batch_size].detach().clone().requires_grad_(True)
        loss = F.cross_entropy(model(xb), y[i : i + batch_size], reduction="sum")
        (g,) = torch.autograd.grad(loss, xb)
        out.append(g.reshape(len(xb), -1).abs().amax(1).detach().cpu())
    return torch.cat(out)


def square(
    model: FeatureClassifier,
    x: Tensor,
    y: Tensor,
    eps: float,
    n_queries: int = 1000,
    norm: Norm = "linf",
    seed: int = 0,
) -> Tensor:
    """The Square attack of Andriushchenko et al. (gradient-free, random search), as torchattacks 3.5.1 implements it.

    Its objective is the logit margin ``z_y - max_{j != y} z_j``, which only scales with the last layer, so it sees
    through the saturation that stops PGD (:ref:`gradient-masking`).

    Args:
        model: the classifier.
        x: inputs (n, c, h, w) in [0, 1], on any device; y: labels (n,).
        eps: the radius.
        n_queries: model queries per input.
        norm: ``linf`` or ``l2``.
        seed: seeds the random search.

    Returns:
        The adversarial inputs, shape (n, c, h, w), on the model's device.
    """
    import torchattacks

    if x.dim() != 4:
        raise ValueError(f"the Square attack needs image batches (n, c, h, w); got shape {tuple(x.shape)}")
    if not eps > 0 or n_queries < 1:
        raise ValueError(f"eps must be > 0 and n_queries >= 1; got {eps}, {n_queries}")
    model.eval()
    x, y = on_model(model, x, y)
    attack = torchattacks.Square(
        model,
        norm="Linf" if norm == "linf" else "L2",
        eps=eps,
        n_queries=n_queries,
        n_restarts=1,
        loss="margin",
        seed=seed,
    )
    devices = [x.device.index or 0] if x.device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices):  # torchattacks re-seeds the global generator
        out: Tensor = attack(x, y).detach()
    return out
