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

__all__ = [
    "PATH_POSITIONS",
    "Stump",
    "adversarial_pairs",
    "cross_validate_stump",
    "detector_along_path",
    "fit_stump",
    "held_out_correct",
    "log_score",
    "path_steps_of",
    "pool_along_path",
]


@dataclass(frozen=True)
class Stump:
    """``predict(score) = direction * (score - threshold) > 0`` (1: adversarial)."""

    threshold: float
    direction: int

    def predict(self, scores: np.ndarray) -> np.ndarray:
        return (self.direction * (np.asarray(scores) - self.threshold) > 0).astype(int)


def log_score(values: Tensor, floor: float = 1e-300) -> np.ndarray:
    """log10 of a non-negative statistic (sharpness, 1 - confidence) in float64, floored so that 0 stays finite.

    Args:
        values: a non-negative statistic per input, shape (n,).
        floor: the smallest value kept before the logarithm.

    Returns:
        log10 of the values in float64, shape (n,).
    """
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


def _cross_validate(
    scores: np.ndarray, labels: np.ndarray, folds: int, seed: int, groups: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """(held-out correctness (n,), fold of each input (n,)) of stumps under stratified k-fold cross-validation;
    with ``groups`` (n,), the points of one group (a clean input and its adversarial version) share a fold."""
    from sklearn.model_selection import StratifiedGroupKFold, StratifiedKFold

    if folds < 2:
        raise ValueError(f"folds must be >= 2; got {folds}")
    scores, labels = np.asarray(scores, dtype=float), np.asarray(labels, dtype=int)
    if min(int((labels == 0).sum()), int((labels == 1).sum())) < folds:
        return np.array([]), np.array([], dtype=int)
    correct, fold_of = np.zeros(len(labels)), np.zeros(len(labels), dtype=int)
    splitter = (
        StratifiedKFold(folds, shuffle=True, random_state=seed).split(scores.reshape(-1, 1), labels)
        if groups is None
        else StratifiedGroupKFold(folds, shuffle=True, random_state=seed).split(
            scores.reshape(-1, 1), labels, np.asarray(groups)
        )
    )
    for f, (train, test) in enumerate(splitter):
        stump = fit_stump(scores[train], labels[train])
        correct[test] = stump.predict(scores[test]) == labels[test]
        fold_of[test] = f
    return correct, fold_of


def held_out_correct(
    scores: np.ndarray, labels: np.ndarray, folds: int = 5, seed: int = 0, groups: np.ndarray | None = None
) -> np.ndarray:
    """Whether the stump fitted on the other folds classifies each input correctly (stratified k-fold).

    Its mean is the pooled held-out accuracy; bootstrapping it over inputs gives an interval.

    Args:
        scores: one score per input, shape (n,).
        labels: 0 (clean) or 1 (adversarial), shape (n,).
        folds: the number of folds.
        seed: seeds the folds.
        groups: the pair each point belongs to, shape (n,): a clean input and its adversarial version are held out
            together, so the stump is never scored on a point whose twin it was fitted on (None: folds split rows).

    Returns:
        1 where the held-out stump is right, else 0, shape (n,); empty when a class has fewer than ``folds``
        inputs.
    """
    return _cross_validate(scores, labels, folds, seed, groups)[0]


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
        The scores, one row per point with the columns input, label, pair (the number of the input's pair),
        "log10 kappa" and "log10 (1 - confidence)"; and the counts (inputs correct at the start, the attack's
        success among them, and the number of pairs).
    """
    correct = traj.pred[0] == traj.labels
    fooled = correct & (traj.pred[-1] != traj.labels)  # a real adversarial example and its clean original
    others = traj.uncertainty()
    rows = [
        pd.DataFrame(
            {
                "input": ["clean", "adversarial"][label],
                "label": label,
                "pair": np.arange(int(fooled.sum())),
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


#: Where along an attack's path the adversarial point of each pair is taken (row F along the path): at the input's
#: first wrong iterate, at its sharpness peak, and after a fixed number of steps (those the path has).
PATH_POSITIONS: tuple[str | int, ...] = ("first flip", "sharpness peak", 1, 2, 5, 10, 20)


def path_steps_of(traj: Trajectory, position: str | int) -> Tensor:
    """The iterate of each input's path at ``position`` (``PATH_POSITIONS``), shape (n,): the first wrong
    iterate, the iterate of largest relative sharpness (first of ties), or the fixed step ``position``; -1 where the
    input has no such iterate (it never flips; the path is shorter).

    Args:
        traj: an attack's :class:`~flatrob.attacks.Trajectory`.
        position: one of ``PATH_POSITIONS``: "first wrong", "peak", or a step number.

    Returns:
        The iterate per input, shape (n,); -1 where the input has none.
    """
    n = traj.labels.shape[0]
    if position == "first flip":
        return traj.flip_step()
    if position == "sharpness peak":
        return traj.stats["kappa_layer"].double().argmax(0)
    if isinstance(position, int) and 0 < position <= traj.steps:
        return torch.full((n,), position, dtype=torch.long)
    if isinstance(position, int):
        return torch.full((n,), -1, dtype=torch.long)
    raise ValueError(f"a position is 'first flip', 'sharpness peak' or a step above 0; got {position!r}")


def detector_along_path(
    traj: Trajectory, positions: tuple[str | int, ...] = PATH_POSITIONS, folds: int = 5, seed: int = 0
) -> pd.DataFrame:
    """Row F along the attack's path: the held-out accuracy of the sharpness stump and of the confidence stump when
    the adversarial point of each pair is taken at ``positions`` (:func:`path_steps_of`).

    At each position the pairs are the inputs that start correct and are wrong at that iterate (an input not yet
    fooled is no adversarial example), each paired with its clean original; the folds keep a pair together
    (:func:`held_out_correct` with ``groups``). Accuracies are counts of correct held-out predictions over the
    ``2 x pairs`` points (their intervals: ``flatrob.evidence.verdicts.share_of``).

    Args:
        traj: one model's instrumented attack (:func:`flatrob.attacks.pgd` with ``track=True``; the path may be
            longer than the paper's attack: its first steps are the paper's attack without a random start).
        positions: where to take the adversarial point.
        folds: cross-validation folds.
        seed: seeds the folds.

    Returns:
        One row per position with its position, median step, pairs, points (2 x pairs), and per stump (sharpness,
        confidence) the held-out accuracy and the count of correct held-out predictions; the median log10 sharpness
        of the clean and of the adversarial points. Positions with fewer pairs than ``folds`` are left out.
    """
    kappa = traj.stats["kappa_layer"].double()
    others = traj.uncertainty()
    correct0 = traj.pred[0] == traj.labels
    idx = torch.arange(traj.labels.shape[0])
    rows = []
    for position in positions:
        step = path_steps_of(traj, position)
        ok = correct0 & (step > 0)
        wrong = torch.zeros_like(ok)
        wrong[ok] = traj.pred[step[ok], idx[ok]] != traj.labels[ok]
        chosen = idx[wrong]
        n = int(chosen.numel())
        if n < folds:
            continue
        at = step[chosen]
        sharp = np.r_[log_score(kappa[0, chosen]), log_score(kappa[at, chosen])]
        conf = np.r_[log_score(others[0, chosen]), log_score(others[at, chosen])]
        labels = np.r_[np.zeros(n, int), np.ones(n, int)]
        groups = np.r_[np.arange(n), np.arange(n)]
        row: dict[str, object] = {
            "position": str(position),
            "median step": float(at.double().median()),
            "pairs": n,
            "points": 2 * n,
        }
        for name, score in (("sharpness", sharp), ("confidence", conf)):
            held = held_out_correct(score, labels, folds=folds, seed=seed, groups=groups)
            row |= {f"{name} accuracy": float(held.mean()), f"{name} correct": int(held.sum())}
        row |= {
            "log10 kappa, clean": float(np.median(sharp[:n])),
            "log10 kappa, adversarial": float(np.median(sharp[n:])),
        }
        rows.append(row)
    columns = ["position", "median step", "pairs", "points", "sharpness accuracy", "sharpness correct"]
    columns += ["confidence accuracy", "confidence correct", "log10 kappa, clean", "log10 kappa, adversarial"]
    return pd.DataFrame(rows, columns=columns)


def pool_along_path(tables: list[pd.DataFrame]) -> pd.DataFrame:
    """Row F along the path over seeds: per model and position, the seeds' pairs, points and correct held-out
    predictions added up (shares pool as counts), the median step and the log10 sharpness as the median of the seeds'
    medians, and ``seeds``, how many seeds had pairs there.

    Args:
        tables: :func:`detector_along_path` of each seed, with a ``model`` column.

    Returns:
        One row per model and position, in the order they first appear, as :func:`detector_along_path` gives it.
    """
    both = pd.concat([t.assign(seed=i) for i, t in enumerate(tables)], ignore_index=True)
    if not len(both):
        return both.drop(columns="seed")
    counts = ["pairs", "points", "sharpness correct", "confidence correct"]
    medians = ["median step", "log10 kappa, clean", "log10 kappa, adversarial"]
    out = both.groupby(["model", "position"], sort=False).agg(
        **{c: (c, "sum") for c in counts}, **{c: (c, "median") for c in medians}, seeds=("seed", "nunique")
    )
    out = out.reset_index()
    for stump in ("sharpness", "confidence"):
        out[f"{stump} accuracy"] = out[f"{stump} correct"] / out["points"]
    return out
