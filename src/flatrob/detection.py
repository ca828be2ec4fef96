"""One-threshold detectors (decision stumps) of adversarial inputs, scored by k-fold cross-validation (row F).

A stump predicts "adversarial" when ``direction * (score - threshold) > 0``.
It is fitted by trying every midpoint between consecutive distinct scores of
the training fold in both directions and keeping the most accurate; ties go
to the first found. Accuracy is then measured on the held-out fold, so the
reported figure is never the training accuracy.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch
from torch import Tensor

from flatrob.attacks import Trajectory

__all__ = ["Stump", "cross_validate_stump", "fit_stump", "held_out_correct", "log_score"]


@dataclass(frozen=True)
class Stump:
    """``predict(score) = direction * (score - threshold) > 0`` (1: adversarial)."""

    threshold: float
    direction: int

    def predict(self, scores: np.ndarray) -> np.ndarray:
        return (self.direction * (np.asarray(scores) - self.threshold) > 0).astype(int)


def log_score(values: Tensor, floor: float = 1e-300) -> np.ndarray:
    """log10 of a non-negative statistic (sharpness, 1 - confidence) in float64, floored so that 0 stays finite."""
    return torch.as_tensor(values).double().clamp_min(floor).log10().numpy()


def fit_stump(scores: np.ndarray, labels: np.ndarray) -> Stump:
    """The most accurate one-threshold classifier on a score, in O(n log n) (row F's detector).

    Args:
        scores: one score per input, shape (n,).
        labels: 0 (clean) or 1 (adversarial), shape (n,).

    Returns:
        The :class:`Stump`, its threshold and direction.
    """
    scores, labels = np.asarray(scores, dtype=float), np.asarray(labels, dtype=int)
    if scores.shape != labels.shape or scores.ndim != 1 or len(scores) == 0:
        raise ValueError(f"scores and labels must be equal-length 1-D arrays; got {scores.shape}, {labels.shape}")
    if not set(np.unique(labels)) <= {0, 1}:
        raise ValueError("labels must be 0 (clean) or 1 (adversarial)")
    order = np.argsort(scores, kind="stable")
    s, lab = scores[order], labels[order]
    # threshold between s[i-1] and s[i]: everything from i on is called "above"
    distinct = np.r_[True, s[1:] > s[:-1]]
    cut = np.flatnonzero(distinct)  # candidate split positions (0 = all above)
    ones_above = lab.sum() - np.r_[0, np.cumsum(lab)][cut]
    zeros_below = cut - np.r_[0, np.cumsum(lab)][cut]
    n = len(lab)
    acc_up = (ones_above + zeros_below) / n  # direction +1: above -> adversarial
    acc_down = 1 - acc_up  # direction -1
    thresholds = np.r_[-np.inf, (s[cut[1:] - 1] + s[cut[1:]]) / 2]
    i_up, i_down = int(acc_up.argmax()), int(acc_down.argmax())
    if acc_up[i_up] >= acc_down[i_down]:
        return Stump(float(thresholds[i_up]), 1)
    return Stump(float(thresholds[i_down]), -1)


def _cross_validate(scores: np.ndarray, labels: np.ndarray, folds: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(held-out correctness (n,), fold of each input (n,)) of stumps under stratified k-fold cross-validation."""
    from sklearn.model_selection import StratifiedKFold

    if folds < 2:
        raise ValueError(f"folds must be >= 2; got {folds}")
    scores, labels = np.asarray(scores, dtype=float), np.asarray(labels, dtype=int)
    if min(int((labels == 0).sum()), int((labels == 1).sum())) < folds:
        return np.array([]), np.array([], dtype=int)
    correct, fold_of = np.zeros(len(labels)), np.zeros(len(labels), dtype=int)
    for f, (train, test) in enumerate(
        StratifiedKFold(folds, shuffle=True, random_state=seed).split(scores.reshape(-1, 1), labels)
    ):
        stump = fit_stump(scores[train], labels[train])
        correct[test] = stump.predict(scores[test]) == labels[test]
        fold_of[test] = f
    return correct, fold_of


def held_out_correct(scores: np.ndarray, labels: np.ndarray, folds: int = 5, seed: int = 0) -> np.ndarray:
    """Whether the stump fitted on the other folds classifies each input correctly (stratified k-fold).

    Its mean is the pooled held-out accuracy; bootstrapping it over inputs gives an interval.

    Args:
        scores: one score per input, shape (n,).
        labels: 0 (clean) or 1 (adversarial), shape (n,).
        folds: the number of folds.
        seed: seeds the folds.

    Returns:
        1 where the held-out stump is right, else 0, shape (n,); empty when a class has fewer than ``folds``
        inputs.
    """
    return _cross_validate(scores, labels, folds, seed)[0]


def cross_validate_stump(scores: np.ndarray, labels: np.ndarray, folds: int = 5, seed: int = 0) -> np.ndarray:
    """The held-out accuracy of :func:`fit_stump` in each fold of a stratified k-fold cross-validation.

    Args:
        scores: one score per input, shape (n,).
        labels: 0 (clean) or 1 (adversarial), shape (n,).
        folds: the number of folds.
        seed: seeds the folds.

    Returns:
        The accuracies, shape (folds,); empty when a class has fewer than ``folds`` inputs.
    """
    correct, fold_of = _cross_validate(scores, labels, folds, seed)
    return np.array([correct[fold_of == f].mean() for f in range(folds)]) if len(correct) else np.array([])


def adversarial_pairs(traj: Trajectory) -> tuple[pd.DataFrame, dict[str, float]]:
    """The detector's data from one attack: each input that starts correct and ends fooled, as a pair of a clean
    point (label 0) and its adversarial version (label 1), scored by the log of the relative sharpness and of
    ``1 - max_s p_s`` (the sum of the other probabilities, exact where 1 - max would round to 0).

    Args:
        traj: the instrumented attack's record (:func:`flatrob.attacks.pgd` with ``track=True``).

    Returns:
        The scores, one row per point (columns input, label, "log10 kappa", "log10 (1 - confidence)"), and the
        counts: inputs correct at the start, the attack's success among them, and the number of pairs.
    """
    correct = traj.pred[0] == traj.labels
    fooled = correct & (traj.pred[-1] != traj.labels)  # a real adversarial example and its clean original
    others = traj.uncertainty()
    rows = [
        pd.DataFrame(
            {
                "input": ["clean", "adversarial"][label],
                "label": label,
                "log10 kappa": log_score(traj.stats["kappa_layer"][end, fooled]),
                "log10 (1 - confidence)": log_score(others[end, fooled]),
            }
        )
        for end, label in ((0, 0), (-1, 1))
    ]
    counts = {
        "correct at the start": int(correct.sum()),
        "attack success": float(fooled.sum() / max(int(correct.sum()), 1)),
        "pairs": int(fooled.sum()),
    }
    return pd.concat(rows, ignore_index=True), counts
