"""Checks of the uncanny valley and the basin: its shape (claim 6), the shift and the basin under adversarial training
(7) and the feature norm along the path (12)."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import numpy as np
from torch import Tensor

from flatrob.evidence.checks.rules import (
    BASIN_FACTOR,
    COLLAPSES,
    CONFIDENT_AT_END,
    DOMINANCE,
    LARGER,
    LATER,
    MIN_POINTS,
    MOSTLY,
    NORM_MOVES,
    PEAK_FRACTION,
    REACHES,
    RISE_FACTOR,
    RISES,
    WIDENS,
    any_fragile,
    as_array,
    mean_difference,
    mean_ratio,
    median_ratio,
    too_few,
)
from flatrob.evidence.records import Values
from flatrob.evidence.verdicts import (
    CANNOT_DECIDE,
    NOT_REACHED,
    NOT_TESTABLE,
    Check,
    Estimate,
    Setting,
    bootstrap,
    combine,
    judged,
    median,
    share,
    share_of,
)
from flatrob.util.provenance import three_digits as fmt

if TYPE_CHECKING:
    from flatrob.valley import ValleySamples

# ---------------------------------------------------------------------------
# the uncanny valley (claims 6, 7, 12)


def reaches_regime(samples: ValleySamples) -> tuple[Estimate, str]:
    """Whether a model's attack reaches the regime of the valley (:data:`REACHES`): the share of the inputs that start
    correct and flip, with its Wilson interval, and "" when the regime is reached (or the share cannot say), else the
    reason in words, for the evidence of every part of the row.

    Args:
        samples: :func:`flatrob.valley.valley_samples` of one model (``n_flipped``, ``n_start_correct``, ``steps``).

    Returns:
        (flip share, reason): the reason is empty when the row is judged.
    """
    flips = share_of(int(samples["n_flipped"]), int(samples["n_start_correct"]))
    if REACHES.judge(flips) != "not reproduced":
        return flips, ""
    return flips, (
        f"the attack does not reach the regime of the valley: {samples['n_flipped']} of {samples['n_start_correct']} "
        f"inputs that start correct flip within {samples['steps']} steps, a share of {flips} (the regime needs "
        f"{REACHES.describe()}); the few that flip start nearest the boundary, so no rise, peak or collapse is "
        "formed on typical inputs and nothing here counts for or against the claim"
    )


#: Claim 6's three parts: what each states, and the paper's shape for it.
_SHAPE_PARTS = {
    "rise": "Along PGD, relative sharpness rises from the clean point.",
    "peak": "The sharpness peak lies near the label flip.",
    "collapse": "After the flip, sharpness collapses in a confidently wrong region.",
}
_SHAPE_PAPER = {
    "rise": "rises from the clean point",
    "peak": "peaks near the flip",
    "collapse": "collapses towards 0 where the model is confidently wrong",
}


def check_valley_shape(samples: ValleySamples, setting: Setting) -> list[Check]:
    """Claim 6: relative sharpness rises from the clean point, peaks near the label flip, then collapses.

    ``samples`` is :func:`flatrob.valley.valley_samples` of one model's PGD trajectories. Over the inputs that
    start correct and flip (when the attack reaches the regime, :func:`reaches_regime`; else every part reads "not
    reached in this regime"): the median peak/start (rise); among those that rise by :data:`RISE_FACTOR`, the share
    whose peak lies within a tolerance tied to their flip step (:data:`PEAK_FRACTION`); the median final/peak,
    the share wrong at the end and the median final confidence (collapse, in a confidently wrong region).
    """
    counts: Values = {k: samples[k] for k in ("n_samples", "n_start_correct", "n_flipped", "steps")}
    n = (
        f"{samples['n_flipped']} of {samples['n_start_correct']} inputs that start correct flip within "
        f"{samples['steps']} steps"
    )
    flips, outside = reaches_regime(samples)
    if outside:
        return _shape_not_reached(samples, setting, counts, outside, flips)
    few = [
        too_few(
            samples["n_flipped"], n, claim=6, part=p, statement=s, paper=_SHAPE_PAPER[p], setting=setting, values=counts
        )  # fmt: skip
        for p, s in _SHAPE_PARTS.items()
    ]
    if all(c is not None for c in few):
        return [c for c in few if c is not None]
    rise = bootstrap(median, samples["peak_over_start"])
    found = [
        judged(
            6,
            "rise",
            _SHAPE_PARTS["rise"],
            rise,
            RISES,
            name="median peak/start",
            setting=setting,
            evidence=f"median per-input peak/start {rise} ({RISES.describe()}); {n}",
            paper=_SHAPE_PAPER["rise"],
            values=counts,
        )
    ]
    return found + [_shape_peak(samples, setting, counts), _shape_collapse(samples, setting, counts, n)]


def _shape_not_reached(
    samples: ValleySamples, setting: Setting, counts: Values, outside: str, flips: Estimate
) -> list[Check]:
    """Every part of claim 6 for a row whose attack does not reach the regime: the measured numbers stay in the
    evidence, the verdict says the row is outside it."""
    measured = (
        f"; measured on the {samples['n_flipped']} that flip: median peak/start "
        f"{bootstrap(median, samples['peak_over_start'])}, median final/peak "
        f"{bootstrap(median, samples['final_over_peak'])}"
        if samples["n_flipped"] >= MIN_POINTS
        else ""
    )
    return [
        Check(
            claim=6,
            part=p,
            statement=s,
            verdict=NOT_REACHED,
            evidence=outside + measured,
            paper=_SHAPE_PAPER[p],
            setting=setting,
            values=counts | {"flip_share": flips.as_dict()},
        )
        for p, s in _SHAPE_PARTS.items()
    ]


def _shape_peak(samples: ValleySamples, setting: Setting, counts: Values) -> Check:
    """Claim 6's peak: among the flipped inputs that rise by :data:`RISE_FACTOR`, the share whose peak lies within
    max(1, :data:`PEAK_FRACTION` x flip step) steps of the flip."""
    rose = samples["peak_over_start"] >= RISE_FACTOR
    unrisen = too_few(
        int(rose.sum()),
        f"{int(rose.sum())} flipped inputs rise by {RISE_FACTOR:g}, and a peak is judged only where there is a rise",
        claim=6,
        part="peak",
        statement=_SHAPE_PARTS["peak"],
        paper=_SHAPE_PAPER["peak"],
        setting=setting,
        values=counts,
    )
    if unrisen is not None:
        return unrisen
    flip = samples["flip_step"][rose]
    tolerance = np.maximum(1.0, PEAK_FRACTION * flip)
    near = share(np.abs(samples["peak_step"][rose] - flip) <= tolerance)
    return judged(
        6,
        "peak",
        _SHAPE_PARTS["peak"],
        near,
        MOSTLY,
        name="share of rising inputs peaking near the flip",
        setting=setting,
        paper=_SHAPE_PAPER["peak"],
        values=counts | {"n_rose": int(rose.sum())},
        evidence=f"of the {int(rose.sum())} flipped inputs that rise by {RISE_FACTOR:g}, the share whose peak "
        f"lies within max(1, {PEAK_FRACTION:g} x flip step) steps of the flip: {near} ({MOSTLY.describe()}); "
        f"median flip step {fmt(float(np.median(flip)))}",
    )


def _shape_collapse(samples: ValleySamples, setting: Setting, counts: Values, n: str) -> Check:
    """Claim 6's collapse: the median final/peak, in a confidently wrong region (most inputs wrong at the end, with
    a high median final confidence); where the attacks end near the boundary, not reached in this regime."""
    drop = bootstrap(median, samples["final_over_peak"])
    wrong = share(samples["final_wrong"] > 0)
    conf = bootstrap(median, samples["final_confidence"])
    regime = [MOSTLY.judge(wrong), CONFIDENT_AT_END.judge(conf)]
    if "not reproduced" in regime:
        # the attacks end near the boundary, not in a confidently wrong region: the paper's regime is not reached
        collapse, where = (
            NOT_REACHED,
            (
                "the attacks end near the decision boundary, not confidently wrong (the paper's regime needs most "
                f"inputs wrong at the end, {MOSTLY.describe()}, with a median final confidence "
                f"{CONFIDENT_AT_END.describe()}), so the collapse is not reached in this regime; "
            ),
        )
    else:
        collapse, where = combine([COLLAPSES.judge(drop), *regime]), ""
    return Check(
        claim=6,
        part="collapse",
        statement=_SHAPE_PARTS["collapse"],
        verdict=collapse,
        paper=_SHAPE_PAPER["collapse"],
        setting=setting,
        fragile=any_fragile((drop, COLLAPSES), (wrong, MOSTLY), (conf, CONFIDENT_AT_END)),
        evidence=f"{where}median final/peak {drop} ({COLLAPSES.describe()}); share wrong at the end {wrong}; "
        f"median final confidence {conf} ({CONFIDENT_AT_END.describe()}); {n}",
        values=counts
        | {"final_over_peak": drop.as_dict(), "final_wrong": wrong.as_dict(), "final_confidence": conf.as_dict()},
        measure=drop.measure("median final/peak", COLLAPSES),
    )


def check_adversarial_training_shift(clean: ValleySamples, adv: ValleySamples, setting: Setting) -> Check:
    """Claim 7: adversarial training shifts the valley: a later flip and a later peak along the same attack.

    ``clean``, ``adv``: :func:`flatrob.valley.valley_samples` of the two models on the same inputs. The flip is
    compared, paired, on the inputs both models classify correctly at the start, by the restricted mean time to
    flip (an input that never flips counts as flipping after the last step: the area under the survival curve up
    to the cap), adversarially trained minus clean; the shares that flip later or earlier and the censored counts
    are reported. The peak is compared, paired, on the inputs that flip under both models.
    """
    stmt = "Adversarial training shifts the valley (later flip and later peak)."
    both = clean["start_correct"] & adv["start_correct"]
    cap = clean["steps"] + 1
    paper = "the valley shifts but persists"
    few = too_few(
        int(both.sum()),
        f"{int(both.sum())} inputs start correct under both models",
        claim=7,
        part="shift",
        statement=stmt,
        paper=paper,
        setting=setting,
    )
    if few is not None:
        return few
    tc, ta = clean["time_to_flip"][both], adv["time_to_flip"][both]
    flip = bootstrap(mean_difference, tc, ta)
    later, earlier = share(ta > tc), share(ta < tc)
    never = {"clean": int((tc >= cap).sum()), "adversarial": int((ta >= cap).sum())}
    peak, peak_verdict, peak_text = _peak_shift(clean, adv, both & clean["flipped"] & adv["flipped"])
    return Check(
        claim=7,
        part="shift",
        statement=stmt,
        verdict=combine([LATER.judge(flip), peak_verdict]),
        paper=paper,
        setting=setting,
        fragile=LATER.fragile(flip) or (peak_verdict != NOT_TESTABLE and LATER.fragile(peak)),
        evidence=f"restricted mean time to flip (cap {cap}) later by {flip} steps on the {int(both.sum())} inputs both "
        f"models start correct on; never flipped: {never['clean']} (clean), {never['adversarial']} "
        f"(adversarially trained); the adversarially trained model flips later on {later}, earlier on "
        f"{earlier} of them; {peak_text} (adversarially trained minus clean; {LATER.describe()} steps)",
        values={
            "flip_later": flip.as_dict(),
            "peak_later": peak.as_dict(),
            "share_later": later.as_dict(),
            "share_earlier": earlier.as_dict(),
            "never_flipped": never,
            "n_paired": int(both.sum()),
            "cap": cap,
            "limits": {
                "cap": cap,
                "never flipped (clean)": never["clean"],
                "never flipped (AT)": never["adversarial"],
                "inputs": int(both.sum()),
            },
        },
        measure=flip.measure("restricted mean time to flip, later by (steps)", LATER),
    )


def _peak_shift(clean: ValleySamples, adv: ValleySamples, both_flip: np.ndarray) -> tuple[Estimate, str, str]:
    """The peak part of :func:`check_adversarial_training_shift`: the mean peak step, adversarially trained minus
    clean, paired on the inputs that flip under both models (``both_flip``): (estimate, verdict by
    :data:`LATER`, evidence); not testable with fewer than :data:`MIN_POINTS` of them."""
    n = int(both_flip.sum())
    if n < MIN_POINTS:
        return (Estimate(math.nan, math.nan, math.nan, n), NOT_TESTABLE,
                f"the peak is not compared: {n} inputs flip under both (need {MIN_POINTS})")  # fmt: skip
    peak = bootstrap(mean_difference, clean["peak_step_all"][both_flip], adv["peak_step_all"][both_flip])
    return peak, LATER.judge(peak), f"mean peak step later by {peak} on the {n} inputs that flip under both"


def _norm_evidence(ratio: Estimate, phi: float, prob: float) -> str:
    """The evidence of :func:`check_feature_norm`: the median max/min of ||phi|| against its rule, and how many
    decades ||phi||^2 (``phi``) and 1 - ||p||^2 (``prob``) span, with what it means when the probability factor
    dominates (:data:`DOMINANCE`)."""
    dominates = prob > DOMINANCE * phi
    return (
        f"median per-input max/min of ||phi|| {ratio} ({NORM_MOVES.describe()}); ||phi||^2 spans {fmt(phi)} decades, "
        f"1 - ||p||^2 spans {fmt(prob)}: the probability factor {'dominates' if dominates else 'does not dominate'} "
        "the curve"
        + (
            f" (spans more than {DOMINANCE:g} times the decades of ||phi||^2): the curve's shape is mostly "
            "1 - ||p||^2, the reviewer's reading, so the claim holds only in part"
            if dominates
            else ""
        )
    )


def check_feature_norm(samples: ValleySamples, setting: Setting) -> Check:
    """Claim 12, the paper's reading against a reviewer's alternative: the feature norm ||phi|| moves along the
    path, so the sharpness curve is more than the confidence curve 1 - ||p||^2 (the alternative: ||phi|| constant).

    Not reached in this regime when the attack flips too few inputs (:func:`reaches_regime`). Reproduced when the
    median per-input max/min of ||phi|| lies above :data:`NORM_CONSTANT_RATIO`; the evidence
    also says whether the probability factor dominates the curve's range (:data:`DOMINANCE`).
    """
    stmt = (
        r"The feature norm \(\|\phi\|\) moves along PGD paths, so the sharpness curve is more than "
        r"\(1 - \|p\|^2\) (against a reviewer's alternative)."
    )
    paper = "open question (a reviewer's alternative: ||phi|| constant)"
    flips, outside = reaches_regime(samples)
    if outside:
        return Check(
            claim=12,
            part="",
            statement=stmt,
            verdict=NOT_REACHED,
            paper=paper,
            setting=setting,
            evidence=outside,
            values={"flip_share": flips.as_dict()},
        )
    few = too_few(
        samples["n_flipped"],
        f"{samples['n_flipped']} inputs flipped",
        claim=12,
        part="",
        statement=stmt,
        paper=paper,
        setting=setting,
    )
    if few is not None:
        return few
    ratio = bootstrap(median, samples["feature_norm_max_over_min"])
    phi = float(np.median(samples["decades_phi_sq"]))
    prob = float(np.median(samples["decades_one_minus_p2"]))
    dominates = prob > DOMINANCE * phi
    check = judged(
        12,
        "",
        stmt,
        ratio,
        NORM_MOVES,
        name="median max/min of ||phi||",
        setting=setting,
        paper=paper,
        evidence=_norm_evidence(ratio, phi, prob),
        values={"decades_phi_sq": phi, "decades_one_minus_p2": prob, "probability_dominates": dominates},
    )
    if dominates and check.verdict == "reproduced":  # its own dominance test contradicts the paper's reading
        check.verdict = "partly"
    return check


# ---------------------------------------------------------------------------
# the basin (claim 7, row B)


def check_basin(steps_clean: Tensor, steps_adv: Tensor, walk_steps: int, setting: Setting) -> Check:
    """Claim 7 (row B): adversarial training widens the low-loss basin along a PGD-l2 walk.

    ``steps_*`` (n,): iterates before the loss rises (:meth:`Trajectory.loss_rise_step`, ``walk_steps + 1`` when it
    never does) of the two models on the same inputs. Censored at the cap, the times are compared by their
    restricted means (ratio, adversarially trained over clean, paired bootstrap), with the censored counts and the
    largest ratio the walk can show at all (cap / the clean restricted mean).
    """
    a, b = as_array(steps_clean), as_array(steps_adv)
    cap = walk_steps + 1
    ratio = bootstrap(mean_ratio, a, b)
    never = {"clean": int((a >= cap).sum()), "adversarial": int((b >= cap).sum())}
    reachable = cap / float(a.mean()) if a.mean() > 0 else math.inf
    later = share(b > a)
    capped = (
        f"; this walk cannot show a factor of {BASIN_FACTOR:g}: the largest ratio it can measure is {fmt(reachable)}"
        if reachable < BASIN_FACTOR
        else ""
    )
    name = setting.get("definition", "")
    check = judged(
        7,
        "basin",
        f"Adversarial training widens the low-loss basin ({name}).",
        ratio,
        WIDENS,
        name="ratio of restricted mean times to the loss rise",
        setting=setting,
        paper="about 20x more iterations",
        evidence=f"restricted mean iterates before the loss rises (cap {cap}): {fmt(float(a.mean()))} (clean) vs "
        f"{fmt(float(b.mean()))} (adversarially trained), ratio {ratio} ({WIDENS.describe()}); never rose: "
        f"{never['clean']} (clean), {never['adversarial']} (adversarially trained) of {len(a)}; the "
        f"adversarially trained model rises later on {later} of the inputs{capped}",
        values={
            "clean_mean": float(a.mean()),
            "adversarial_mean": float(b.mean()),
            "never_rose": never,
            "largest_measurable_ratio": reachable,
            "share_later": later.as_dict(),
            "cap": cap,
            "limits": {
                "cap": cap,
                "never rose (clean)": never["clean"],
                "never rose (AT)": never["adversarial"],
                "largest measurable ratio": reachable,
                "inputs": len(a),
            },
        },
    )
    if reachable < BASIN_FACTOR and check.verdict != "not reproduced":  # it could never show the claim
        check.verdict = CANNOT_DECIDE
    return check


def check_clean_trace(trace_clean: Tensor, trace_adv: Tensor, setting: Setting) -> Check:
    """Row B's second figure: Tr H at clean test points is larger for the adversarially trained model (0.6 vs 1.0).

    Compared by the ratio of the medians (paired bootstrap; the mean is shown, but a few uncertain points dominate it).
    """
    a, b = as_array(trace_clean), as_array(trace_adv)
    ratio = bootstrap(median_ratio, a, b)
    return judged(
        7,
        "trace",
        r"At clean points \(\operatorname{Tr} H\) is larger after adversarial training.",
        ratio,
        LARGER,
        name="ratio of median Tr H",
        setting=setting,
        paper=r"\(\operatorname{Tr} H\) about 0.6 (clean) vs 1.0 (AT)",
        evidence=f"median Tr H at clean test points {fmt(float(np.median(a)))} (clean) vs {fmt(float(np.median(b)))} "
        f"(adversarially trained), ratio {ratio} ({LARGER.describe()}); means {fmt(float(a.mean()))} vs "
        f"{fmt(float(b.mean()))}",
        values={"mean_clean": float(a.mean()), "mean_adversarial": float(b.mean())},
    )
