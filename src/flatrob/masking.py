"""Rows C and D of the paper: a model whose last layer is scaled by s, attacked with PGD, by transfer and by
Square, at every s (gradient masking)."""

from __future__ import annotations

import copy

import numpy as np
import torch
from torch import Tensor, nn

from flatrob.attacks import AttackConfig, input_gradient_norms, pgd, square
from flatrob.models import FeatureClassifier, on_model, scale_last_layer
from flatrob.util.progress import progress_bar

__all__ = ["scale_attacks"]


@torch.no_grad()
def _correct(model: nn.Module, x: Tensor, y: Tensor, batch_size: int = 1024) -> np.ndarray:
    """(n,) 1.0 where the model classifies x correctly, else 0.0 (float64, on the CPU)."""
    model.eval()
    pred = torch.cat(
        [model(*on_model(model, x[i : i + batch_size])).argmax(-1).cpu() for i in range(0, len(x), batch_size)]
    )
    return (pred == y.cpu()).double().numpy()


def scale_attacks(
    model: FeatureClassifier,
    x: Tensor,
    y: Tensor,
    scales: list[float],
    config: AttackConfig,
    *,
    square_queries: int = 0,
    float64: bool = False,
    progress: bool | None = None,
) -> tuple[list[dict[str, float]], dict[str, np.ndarray]]:
    """Rows C and D of the paper: the model with its last layer scaled by each s, attacked three ways.

    At every s (ascending; :func:`flatrob.models.scale_last_layer`, bias scaled so the predictions never change),
    per input whether it is classified correctly clean, under PGD made against the scaled model itself, under the
    PGD examples made at the smallest s (transfer; and against the model scaled with its bias kept), and, with
    ``square_queries``, under the Square attack at the smallest and the largest s (its two ends: the margin it
    optimises only scales, so it cannot tell the scales apart). With ``float64``, PGD once more on the model and
    inputs in float64. Also the share of inputs whose float32 input gradient is exactly 0.

    Returns (one row per s: the accuracies and shares, ``per_input``: measure -> (S, n) 0/1 array; "square" holds
    its two rows), as ``flatrob.evidence.checks.check_gradient_masking`` takes them.

    Args:
        model: a :class:`~flatrob.models.FeatureClassifier`.
        x: inputs, shape (n, ...).
        y: labels, shape (n,).
        scales: the scales s (ascending).
        config: the PGD attack.
        square_queries: queries of the gradient-free Square attack (0: not run).
        float64: attack in float64 (where float32 masks the gradient by rounding).
        progress: show a progress bar.

    Returns:
        The rows, one dict per s with the robust accuracies (clean, PGD, transfer, Square), and per
        attack a boolean array of shape (S, n), correct per scale and input.
    """
    x_transfer = pgd(model, x, y, config) if scales[0] == 1.0 else pgd(scale_last_layer(model, scales[0]), x, y, config)
    table: dict[str, list[np.ndarray]] = {k: [] for k in ("clean", "pgd", "transfer", "transfer, bias kept")}
    if square_queries:
        table["square"] = []
    rows = []
    for s in progress_bar(scales, progress=progress, desc=f"scales, eps {config.eps:.3g}"):
        scaled, kept = scale_last_layer(model, s, scale_bias=True), scale_last_layer(model, s, scale_bias=False)
        table["clean"].append(_correct(scaled, x, y))
        table["pgd"].append(_correct(scaled, pgd(scaled, x, y, config), y))
        table["transfer"].append(_correct(scaled, x_transfer, y))
        table["transfer, bias kept"].append(_correct(kept, x_transfer, y))
        row = {"s": s, **{k: float(v[-1].mean()) for k, v in table.items() if k != "square"}}
        if square_queries and s in (scales[0], scales[-1]):
            table["square"].append(
                _correct(scaled, square(scaled, x, y, config.eps, square_queries, seed=config.seed), y)
            )
            row["square"] = float(table["square"][-1].mean())
        if float64:
            wide = copy.deepcopy(scaled).double()
            row["pgd, float64"] = float(_correct(wide, pgd(wide, x.double(), y, config), y).mean())
        row["zero input gradient"] = float((input_gradient_norms(scaled, x, y) == 0).double().mean())
        rows.append(row)
    return rows, {k: np.stack(v) for k, v in table.items()}
