"""The uncanny valley, per input: what a trajectory says about the inputs that start correct and flip (the rise, the
peak, the collapse, the flip and the censored times of those that never flip), and per step (quartiles of every
statistic). The checks of claims 6, 7 and 12 take these."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import Tensor

from flatrob.attacks import STAT_NAMES, Trajectory

__all__ = ["VALLEY_KEYS", "curves", "valley_samples", "valley_summary"]


def curves(traj: Trajectory, **labels: Any) -> pd.DataFrame:
    """Per-step quartiles of every statistic over the samples classified correctly at the start.

    One row per (step, statistic) with columns q25, median, q75, mean and the ``labels``.
    Also ``flipped``: the fraction of those samples misclassified at that step (NaN when none started correct).
    """
    sel = traj.pred[0] == traj.labels
    rows = []
    for name in STAT_NAMES:
        v = traj.stats[name][:, sel].double()
        q = (
            torch.quantile(v, torch.tensor([0.25, 0.5, 0.75], dtype=v.dtype), dim=1)
            if v.shape[1]
            else torch.full((3, v.shape[0]), float("nan"))
        )
        for t in range(v.shape[0]):
            rows.append(
                {
                    "step": t,
                    "stat": name,
                    "q25": float(q[0, t]),
                    "median": float(q[1, t]),
                    "q75": float(q[2, t]),
                    "mean": float(v[t].mean()) if v.shape[1] else float("nan"),
                }
            )
    frame = pd.DataFrame(rows)
    flipped = (traj.pred[:, sel] != traj.labels[sel]).double().mean(1).numpy()
    frame["flipped"] = flipped[frame["step"].to_numpy()]
    for k, v in labels.items():
        frame[k] = v
    return frame


#: The per-input shape statistics of :func:`valley_samples` (over the inputs that start correct and flip).
VALLEY_KEYS = (
    "start",
    "peak",
    "final",
    "peak_over_start",
    "final_over_peak",
    "flip_step",
    "peak_step",
    "peak_minus_flip",
    "abs_peak_minus_flip",
    "final_confidence",
    "final_wrong",
    "feature_norm_max_over_min",
    "decades_phi_sq",
    "decades_one_minus_p2",
)


def valley_samples(traj: Trajectory, stat: str = "kappa_layer") -> dict[str, Any]:
    """Per-input shape statistics of one statistic along the paths of the inputs that start correct and flip.

    Counts (``steps``, ``n_samples``, ``n_start_correct``, ``n_flipped``) and, for every key of
    :data:`VALLEY_KEYS`, a float64 array (n_flipped,): the start, peak and final values, the peak/start
    and final/peak ratios, the flip and peak steps and their offset, the final confidence, whether the
    final prediction is wrong (0/1), the max/min ratio of ||phi||, and how many decades the factors
    ||phi||^2 and 1 - ||p||^2 of Tr H each span. The checks of claims 6, 7 and 12 take these.

    Also, for every input (n,): ``start_correct`` and ``flipped`` (bool: starts correct and flips),
    ``time_to_flip``, the first wrong iterate, ``steps + 1`` when the input never flips (censored) and NaN
    when it starts wrong, and ``peak_step_all``, the peak step where the input flips and NaN elsewhere.
    """
    flip = traj.flip_step()
    start_correct = traj.pred[0] == traj.labels
    sel = start_correct & (flip > 0)
    out: dict[str, Any] = {
        "steps": traj.steps,
        "n_samples": int(len(traj.labels)),
        "n_start_correct": int(start_correct.sum()),
        "n_flipped": int(sel.sum()),
    }
    time_to_flip = torch.where(flip > 0, flip, torch.full_like(flip, traj.steps + 1)).double()
    out["start_correct"] = start_correct.numpy()
    out["flipped"] = sel.numpy()
    out["time_to_flip"] = torch.where(start_correct, time_to_flip, torch.full_like(time_to_flip, math.nan)).numpy()
    out["peak_step_all"] = np.full(len(traj.labels), math.nan)
    if not sel.any():  # nothing flipped: every statistic is an empty array
        return out | {k: np.zeros(0) for k in VALLEY_KEYS}
    v = traj.stats[stat][:, sel].double()
    peak_step = v.argmax(0)
    out["peak_step_all"][sel.numpy()] = peak_step.double().numpy()
    phi = traj.stats["feature_norm"][:, sel].double()
    one_minus_p2 = (traj.stats["trace"][:, sel].double() / phi**2).clamp_min(1e-300)

    def decades(a: Tensor) -> Tensor:
        return a.log10().amax(0) - a.log10().amin(0)

    start, peak, final = v[0], v.amax(0), v[-1]
    cols = {
        "start": start,
        "peak": peak,
        "final": final,
        "peak_over_start": peak / start,
        "final_over_peak": final / peak,
        "flip_step": flip[sel].double(),
        "peak_step": peak_step.double(),
        "peak_minus_flip": (peak_step - flip[sel]).double(),
        "abs_peak_minus_flip": (peak_step - flip[sel]).abs().double(),
        "final_confidence": traj.stats["confidence"][-1, sel].double(),
        "final_wrong": (traj.pred[-1, sel] != traj.labels[sel]).double(),
        "feature_norm_max_over_min": phi.amax(0) / phi.amin(0),
        "decades_phi_sq": decades(phi**2),
        "decades_one_minus_p2": decades(one_minus_p2),
    }
    out |= {k: cols[k].numpy() for k in VALLEY_KEYS}
    return out


def valley_summary(traj: Trajectory, stat: str = "kappa_layer") -> dict[str, float]:
    """The counts of :func:`valley_samples` and the median of each per-input statistic (NaN when nothing flipped);
    ``flipped_fraction`` is the share of the inputs that start correct and flip."""
    samples = valley_samples(traj, stat)
    out: dict[str, float] = {k: samples[k] for k in ("steps", "n_samples", "n_start_correct", "n_flipped")}
    out["flipped_fraction"] = (
        samples["n_flipped"] / samples["n_start_correct"] if samples["n_start_correct"] else math.nan
    )
    out |= {k: float(np.median(samples[k])) if len(samples[k]) else math.nan for k in VALLEY_KEYS}
    return out
