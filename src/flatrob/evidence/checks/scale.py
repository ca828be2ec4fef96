"""Checks of the last-layer scale: sharpness and loss growth against s (claim 8, row A) and gradient masking (9, rows
C and D)."""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import torch
from torch import Tensor

from flatrob.evidence.checks.rules import (
    FALLS,
    FALLS_LOG10,
    MASKS,
    MONOTONE,
    STILL_FOOLS,
    TAIL_QUANTILE,
    ascending,
    mean_difference,
    median_ratio,
    too_few,
)
from flatrob.evidence.estimates import rowwise
from flatrob.evidence.verdicts import BY_CONSTRUCTION, Check, Setting, bootstrap, judged, share
from flatrob.util.provenance import three_digits as fmt

# ---------------------------------------------------------------------------
# the last-layer scale (claims 8, 9; rows A, C, D)


def check_scaling(kappa: Tensor, scales: list[float], setting: Setting) -> Check:
    """Claim 8: relative sharpness falls monotonically with the last-layer scale s, point by point.

    ``kappa`` (S, n): the sharpness of n points at the S scales, ``scales`` ascending. The share of points whose
    sharpness never rises in s (Wilson interval), by :data:`MONOTONE`.
    """
    ascending(scales)
    k = kappa.double()
    monotone = share((k.diff(dim=0) <= 0).all(0).numpy())
    med = k.median(1).values
    return judged(
        8,
        "monotone",
        rf"Relative sharpness falls monotonically with the last-layer scale \(s\) "
        rf"({setting.get('variant', '')}).",
        monotone,
        MONOTONE,
        name="share of monotone points",
        setting=setting,
        paper="falls with s",
        evidence=f"share of {k.shape[1]} points where kappa never increases in s: {monotone} ({MONOTONE.describe()}); "
        f"median from {fmt(float(med[0]))} (s = {scales[0]:g}) to {fmt(float(med[-1]))} "
        f"(s = {scales[-1]:g})",
        values={"median": med.tolist(), "scales": list(scales)},
    )


def check_scaling_median(kappa: Tensor, scales: list[float], setting: Setting) -> Check:
    """Claim 8 as the paper shows it: the median relative sharpness falls from each scale to the next.

    ``kappa`` (S, n), ``scales`` ascending. For every consecutive pair of scales, the ratio of the medians (paired
    bootstrap over the points): reproduced when every interval lies below 1, not reproduced when one lies above 1,
    partly otherwise.
    """
    ascending(scales)
    k = kappa.double().numpy()
    steps = [bootstrap(median_ratio, k[i], k[i + 1]) for i in range(len(scales) - 1)]
    worst = max(steps, key=lambda e: e.hi)  # every step falls iff the least clear one does
    parts = [FALLS.judge(e) for e in steps]
    rising = [
        f"s = {scales[i]:g} to {scales[i + 1]:g}: {e}" for i, e in enumerate(steps) if parts[i] == "not reproduced"
    ]
    verdict = "not reproduced" if rising else FALLS.judge(worst)
    return Check(
        claim=8,
        part="median",
        statement=rf"The median relative sharpness falls with the last-layer scale \(s\) "
        rf"({setting.get('variant', '')}).",
        verdict=verdict,
        paper="falls with s",
        setting=setting,
        fragile=FALLS.fragile(worst),
        evidence=f"ratio of the medians from each scale to the next, below 1 in {parts.count('reproduced')} of "
        f"{len(steps)} steps; the least clear step: {worst} ({len(k[0])} points)"
        + (f"; it rises from {'; '.join(rising)}" if rising else ""),
        values={"ratios": [e.as_dict() for e in steps], "scales": list(scales), "rising_steps": len(rising)},
        measure=worst.measure("largest ratio of medians, next scale / this one", FALLS),
    )


def log10_quantile_change(q: float) -> Callable[[np.ndarray, np.ndarray], float]:
    """The statistic "log10 of the ratio of the ``q`` quantiles" of two samples of natural-log loss increases
    (claim 8's loss growth, in log space): ``(Q_q(b) - Q_q(a)) / ln 10``, NaN where either
    quantile is infinite (no rise at that quantile). Registered with its row-wise form for :func:`bootstrap`.

    Args:
        q: the quantile, in (0, 1).

    Returns:
        ``stat(a, b) -> float`` for two samples of the same inputs, shape (n,) each.
    """

    def rows(a: np.ndarray, b: np.ndarray) -> np.ndarray:
        qa, qb = np.quantile(a, q, axis=1, method="inverted_cdf"), np.quantile(b, q, axis=1, method="inverted_cdf")
        with np.errstate(invalid="ignore"):
            out = (qb - qa) / math.log(10)
        out[~(np.isfinite(qa) & np.isfinite(qb))] = math.nan
        return np.asarray(out)

    @rowwise(rows)
    def stat(a: np.ndarray, b: np.ndarray) -> float:
        qa, qb = np.quantile(a, q, method="inverted_cdf"), np.quantile(b, q, method="inverted_cdf")
        return float(qb - qa) / math.log(10) if math.isfinite(qa) and math.isfinite(qb) else math.nan

    return stat


def check_paired_loss_growth(log_increase: Tensor, paired: Tensor, scales: list[float], setting: Setting) -> Check:
    """Row A: under a weak attack the loss increases concentrate near 0 as s grows, on the same inputs at every s.

    ``log_increase`` (S, n): the natural logarithm of each input's loss increase (loss after minus loss before the
    attack) at each scale, ascending, computed from the logarithms of the losses
    (:func:`flatrob.models.scaled_log_losses`, :func:`flatrob.models.log_loss_increase`), so that it cannot
    underflow; -inf where the loss did not rise. ``paired`` (n,): the inputs compared, the same at every scale (the
    chapter: those correct at every scale, and for the attack made at each scale those it can move at every scale:
    a non-zero input gradient; elsewhere PGD cannot move and its "small increase" is masking, not flatness).

    One measure decides, for a run and over seeds alike: the log10 of the ratio of the :data:`TAIL_QUANTILE`
    quantiles of the increases, largest s over smallest s, on the paired inputs (paired bootstrap), by
    :data:`FALLS_LOG10` (a fall by hundreds of decades stays a number). The median's log10 change is shown beside
    it. Where the quantile is not a positive number at either end (more than a tenth of the inputs' losses do not
    rise at all), the measure is not finite and the check is not testable.
    """
    ascending(scales)
    stmt = rf"Loss increases under a weak attack concentrate near 0 as \(s\) grows ({setting.get('variant', '')})."
    paper = "concentrate near 0 as s grows; 90.33% accuracy under the attack at s = 1"
    keep = np.asarray(paired, dtype=bool)
    li = log_increase.double().numpy()[:, keep]
    first, last = li[0], li[-1]
    few = too_few(
        len(first),
        f"{len(first)} of {log_increase.shape[1]} inputs are compared at every scale: too few",
        claim=8,
        part="loss-growth",
        statement=stmt,
        paper=paper,
        setting=setting,
    )
    if few is not None:
        return few

    tail = bootstrap(log10_quantile_change(TAIL_QUANTILE), first, last)
    med = bootstrap(log10_quantile_change(0.5), first, last)
    rose = [int(np.isfinite(row).sum()) for row in (first, last)]

    def q(a: np.ndarray, p: float) -> str:
        v = float(np.quantile(a, p, method="inverted_cdf"))
        return f"10^{v / math.log(10):.3g}" if math.isfinite(v) else "0 (no rise)"

    return judged(
        8,
        "loss-growth",
        stmt,
        tail,
        FALLS_LOG10,
        name=f"log10 change of the {TAIL_QUANTILE:g} quantile of the loss increases, smallest to largest s",
        setting=setting,
        paper=paper,
        evidence=f"{len(first)} inputs compared at every scale (paired), increases from the logarithms of the losses "
        f"(no underflow): {TAIL_QUANTILE:g} quantile {q(first, TAIL_QUANTILE)} at s = {scales[0]:g} -> "
        f"{q(last, TAIL_QUANTILE)} at s = {scales[-1]:g}, a change of {tail} decades ({FALLS_LOG10.describe()}), the "
        f"one measure that decides; median {q(first, 0.5)} -> {q(last, 0.5)}, a change of {med} decades, shown only; "
        f"the loss rose for {rose[0]} and {rose[1]} of them",
        values={"median_log10_change": med.as_dict(), "paired": len(first), "scales": list(scales)},
    )


def recorded_log_increase(increase: Tensor, keep: Tensor) -> tuple[Tensor, Tensor]:
    """The two measurements of claim 8's loss growth as :func:`check_paired_loss_growth` takes them, from either
    kind of recorded call: a run of today's code passes them as they are (log increases, ``keep`` (n,)); a run
    recorded before the logarithms passed the float64 increases (a loss that underflowed counts as no rise: -inf)
    and the inputs movable at each scale, ``keep`` (S, n), of which those movable at every scale are compared.

    Args:
        increase: shape (S, n), log increases or recorded float64 increases.
        keep: shape (n,) or (S, n), as above.

    Returns:
        (log increases (S, n), the paired inputs (n,)).
    """
    keep = torch.as_tensor(keep).bool()
    if keep.ndim == 1:
        return torch.as_tensor(increase).double(), keep
    inc = torch.as_tensor(increase).double()
    return torch.where(inc > 0, inc.clamp_min(1e-320).log(), torch.full_like(inc, -math.inf)), keep.all(0)


def check_loss_growth(increase: Tensor, movable: Tensor, scales: list[float], setting: Setting) -> Check:
    """Claim 8's loss growth from a run recorded before the logarithms (flatrob 0.3.0 and older), judged by today's
    rule (:func:`check_paired_loss_growth`).

    ``increase`` (S, n): the loss increases as they were recorded, in float64 (a loss that underflowed counts as no
    rise: its logarithm is -inf); ``movable`` (S, n): the inputs the attack could move at each scale. The inputs
    compared are those movable at every scale, the same at each. New runs call :func:`check_paired_loss_growth`.
    """
    check = check_paired_loss_growth(*recorded_log_increase(increase, movable), scales, setting)
    check.evidence += "; recorded before the logarithms: increases below float64's range count as no rise"
    return check


def check_gradient_masking(scales: list[float], correct: dict[str, np.ndarray], setting: Setting) -> list[Check]:
    """Claim 9 (rows C, D): PGD robust accuracy rises with s, yet transfer and gradient-free attacks still succeed.

    ``correct`` maps each measure to a (S, n) 0/1 array (per scale, ascending, and input): "clean", "pgd" (PGD made
    at that s), "transfer" (PGD examples made at the smallest s; bias scaled), "transfer, bias kept" (the same
    examples against the model whose bias was kept, which can change its predictions) and "square" (the Square
    attack at that s). Scaling the last layer with its bias multiplies every logit by s: same arg-max, same
    decision regions, so the transfer and Square columns are constant by construction; they are shown as such.
    The evidence is PGD's gain, and the bias-kept transfer. "square" may be absent (then no Square check) or hold
    only the smallest and the largest scale (its two rows).
    """
    acc = {k: v.mean(1) for k, v in correct.items()}
    gain = bootstrap(mean_difference, correct["pgd"][0], correct["pgd"][-1])
    kept = correct["transfer, bias kept"]
    # the inputs that some scaled model classifies correctly although the examples fool the model at the smallest s:
    # a share with a Wilson interval (never of zero width, also when the examples fool every model)
    rescued = share(np.asarray(kept).max(0) > np.asarray(kept)[0])

    grid = "/".join(f"{a:g}" for a in scales)
    found = [
        judged(
            9,
            "masking",
            r"PGD robust accuracy rises with the last-layer scale \(s\).",
            gain,
            MASKS,
            name="PGD robust accuracy gain",
            setting=setting,
            paper="0% at s = 1 to 93% at s = 100 (the predecessor's ResNet-18: 93.88% clean, 0.01% under PGD)",
            evidence=f"s = {grid}: PGD robust accuracy {_pct(acc['pgd'])}% (clean {_pct(acc['clean'])}%); gain from "
            f"the smallest to the largest s {gain} ({MASKS.describe()})",
            values={"pgd": acc["pgd"].tolist(), "clean": acc["clean"].tolist(), "scales": list(scales)},
        ),
        judged(
            9,
            "transfer-bias-kept",
            r"Examples made at \(s = 1\) still fool the scaled models (bias kept).",
            rescued,
            STILL_FOOLS,
            name="share of inputs a scaled model gets right that the examples fool at the smallest s",
            setting=setting,
            paper="100% transfer",
            evidence=f"s = {grid}: robust accuracy under transfer {_pct(acc['transfer, bias kept'])}%; the share of "
            f"inputs that some scaled model classifies correctly although the examples fool the model at "
            f"s = {scales[0]:g}: {rescued} ({STILL_FOOLS.describe()})",
            values={"accuracy": acc["transfer, bias kept"].tolist()},
        ),
    ]
    return found + _constant_under_scaling(scales, correct, acc, setting)


def _pct(v: np.ndarray) -> str:
    return "/".join(f"{100 * a:.0f}" for a in v)


def _constant_under_scaling(
    scales: list[float], correct: dict[str, np.ndarray], acc: dict[str, np.ndarray], setting: Setting
) -> list[Check]:
    """Claim 9's columns that are constant by construction (scaling the last layer with its bias keeps every
    arg-max): the transfer with the bias scaled, and Square where it was run; shown as such, not as evidence."""
    same = {k: bool(np.all(correct[k] == correct[k][0])) for k in ("transfer", "square") if k in correct}
    found = [
        Check(
            claim=9,
            part="transfer-bias-scaled",
            statement=r"Examples made at \(s = 1\) still fool the scaled models (bias scaled).",
            verdict=BY_CONSTRUCTION if same["transfer"] else "not reproduced",
            setting=setting,
            evidence=f"robust accuracy under transfer {_pct(acc['transfer'])}% at every s: the scaled model has the "
            "same decision regions, so the same examples fool it",
            paper="100% transfer",
            values={"accuracy": acc["transfer"].tolist()},
        ),
    ]
    if "square" in correct:
        found.append(
            Check(
                claim=9,
                part="square",
                statement="A gradient-free attack (Square) still succeeds at every scale.",
                verdict=BY_CONSTRUCTION if same["square"] else "not reproduced",
                setting=setting,
                evidence=f"robust accuracy under Square {_pct(acc['square'])}% at s = {scales[0]:g} and {scales[-1]:g} "
                f"(clean {100 * acc['clean'][0]:.0f}%): its objective, the logit margin, only scales with s, so "
                "it makes the same queries and finds the same examples at every s",
                paper="gradient-free attacks still succeed",
                values={"accuracy": acc["square"].tolist()},
            )
        )
    return found
