"""Checks of confidence and detection: confidently wrong points are flat (claim 10) and the sharpness stump (11)."""

from __future__ import annotations

import math

import numpy as np
from torch import Tensor

from flatrob.evidence.checks.rules import (
    BEATS_CONFIDENCE,
    COLLAPSES,
    CONFIDENT,
    DETECTS,
    as_array,
    mean_difference,
    too_few,
)
from flatrob.evidence.verdicts import BY_CONSTRUCTION, Check, Setting, bootstrap, judged, share
from flatrob.util.provenance import three_digits as fmt

# ---------------------------------------------------------------------------
# confidence and detection (claims 10, 11)


def check_confidently_wrong_flat(
    kappa: dict[str, Tensor],
    confidence: dict[str, Tensor],
    wrong: dict[str, Tensor],
    feature_sq: dict[str, Tensor],
    setting: Setting,
) -> Check:
    """Claim 10: confidently wrong points are flat, far flatter than points near the decision boundary.

    Dicts keyed by "clean", "boundary", "adversarial", each (n,) over the same inputs (``feature_sq``: ||phi||^2).
    The median sharpness of the adversarial points that are confidently wrong (confidence > :data:`CONFIDENT`)
    over the median at the boundary points, at most 1 / :data:`COLLAPSE_FACTOR`.

    This is close to true by construction: confidence above 0.99 forces 1 - ||p||^2 <= 0.02
    (:prf:ref:`cor-confident-flat`), while at the boundary, where the two most probable classes tie,
    1 - ||p||^2 >= 1/2; the probability factors
    alone give a ratio of at most 0.04. Only the feature norm, ||W||_F^2 ||phi||^2 being larger at the
    adversarial points by more than 2.5 times, could make it fail. So it is shown as holding by construction
    (with the feature-norm ratio that it did not need), and by its rule (partly, not reproduced) where it fails.
    """
    stmt = "Confidently wrong points are flat."
    sel = (wrong["adversarial"] & (confidence["adversarial"] > CONFIDENT)).numpy()
    few = too_few(
        int(sel.sum()),
        f"only {int(sel.sum())} of {len(sel)} adversarial points are confidently wrong (> {CONFIDENT:g})",
        claim=10,
        part="attack",
        statement=stmt,
        paper="shape",
        setting=setting,
        values={"n_confidently_wrong": int(sel.sum())},
    )
    if few is not None:
        return few
    k_adv, k_b = as_array(kappa["adversarial"]), as_array(kappa["boundary"])

    def ratio(mask: np.ndarray, adv: np.ndarray, boundary: np.ndarray) -> float:
        return float(np.median(adv[mask > 0])) / float(np.median(boundary)) if mask.any() else math.nan

    est = bootstrap(ratio, sel.astype(float), k_adv, k_b)
    phi_ratio = float(np.median(as_array(feature_sq["adversarial"])[sel]) / np.median(as_array(feature_sq["boundary"])))
    judged_here = COLLAPSES.judge(est)
    return Check(
        claim=10,
        part="attack",
        statement=stmt,
        verdict=BY_CONSTRUCTION if judged_here == "reproduced" else judged_here,
        paper="confidently wrong points are flat",
        setting=setting,
        evidence=f"{int(sel.sum())} of {len(sel)} adversarial points are confidently wrong (> {CONFIDENT:g}); their "
        f"median kappa / the median at the boundary {est} ({COLLAPSES.describe()}); close to true by "
        "construction: the probability factors alone give at most 0.04, and the feature norm would have to "
        f"grow 2.5-fold to undo it (median ||phi||^2 ratio {fmt(phi_ratio)})",
        values={"ratio": est.as_dict(), "n_confidently_wrong": int(sel.sum()), "feature_sq_ratio": phi_ratio},
        measure=est.measure("median kappa, confidently wrong / boundary", COLLAPSES),
    )


def check_confidence_band(outside: int, n_points: int, setting: Setting) -> Check:
    """Claim 10's band: eps (1 - eps) <= 1 - ||p||^2 <= 2 eps (:prf:ref:`cor-confident-flat`) at every point.

    An identity of probability vectors: it holds by construction (a point outside means a bug, not a finding).
    """
    return Check(
        claim=10,
        part="band",
        statement="Every point lies on the band of the corollary (confident means flat).",
        verdict=BY_CONSTRUCTION if outside == 0 else "not reproduced",
        paper="confident means flat",
        setting=setting,
        evidence=f"{outside} of {n_points} points outside the band; it holds for every probability vector, so it is "
        "shown, not counted",
        values={"outside": outside, "n_points": n_points},
    )


def check_detector(held_out_sharpness: np.ndarray, held_out_confidence: np.ndarray, setting: Setting) -> list[Check]:
    """Claim 11 (row F): a one-threshold stump on sharpness separates clean from adversarial inputs.

    Held-out correctness (0/1 per input, from k-fold cross-validation, the same inputs for both) of the sharpness
    stump and of a stump on confidence alone. Two checks: the accuracy (part ""), reproduced when its interval
    reaches :data:`DETECTOR_REPRODUCED`, not reproduced below :data:`DETECTOR_REFUTED`, judged and flagged fragile on
    the accuracy alone; and whether the sharpness stump beats the confidence stump (part "beats-confidence", the
    paired difference, by :data:`BEATS_CONFIDENCE`), its own check, so that a tie with confidence neither flags nor
    moves the accuracy's verdict (the claim combines the two, :func:`flatrob.evidence.verdicts.combine`).

    Args:
        held_out_sharpness: 1 where the sharpness stump classifies an input correctly on its held-out fold, shape (n,).
        held_out_confidence: the same for the confidence stump, shape (n,).
        setting: what made the data (:data:`flatrob.evidence.verdicts.Setting`).

    Returns:
        [accuracy check, beats-confidence check], or one "not testable here" check for fewer than
        :data:`MIN_POINTS` inputs.
    """
    stmt = "A sharpness stump separates clean from adversarial inputs."
    paper = "accuracy 0.92-0.93"
    n = len(held_out_sharpness)
    few = too_few(n, f"{n} held-out inputs", claim=11, part="", statement=stmt, paper=paper, setting=setting)
    if few is not None:
        return [few]
    acc = share(np.asarray(held_out_sharpness) > 0)
    base = share(np.asarray(held_out_confidence) > 0)
    gain = bootstrap(mean_difference, np.asarray(held_out_confidence, float), np.asarray(held_out_sharpness, float))
    accuracy = judged(
        11,
        "",
        stmt,
        acc,
        DETECTS,
        name="held-out accuracy",
        setting=setting,
        paper=paper,
        evidence=f"held-out accuracy {acc.count} of {acc.n}, {acc} ({DETECTS.describe()}); a stump on confidence "
        f"alone: {base}",
        values={"confidence_baseline": base.as_dict()},
    )
    beats = judged(
        11,
        "beats-confidence",
        "The sharpness stump separates better than a stump on confidence alone.",
        gain,
        BEATS_CONFIDENCE,
        name="held-out accuracy, sharpness minus confidence",
        setting=setting,
        paper="not reported (a confidence baseline is ours)",
        evidence=f"held-out accuracy of the sharpness stump {acc} against the confidence stump {base} on the same "
        f"{acc.n} inputs: difference {gain} ({BEATS_CONFIDENCE.describe()})",
        values={"accuracy": acc.as_dict(), "confidence_baseline": base.as_dict()},
    )
    return [accuracy, beats]
