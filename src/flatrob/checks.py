"""The paper's claims as executable checks: each function takes a chapter's evidence and returns a verdict.

A verdict is computed, never written by hand, and never inside a chapter. A
check whose data contradict the claim says "not reproduced"; it does not
raise, so a re-run with other parameters still builds and reports what it
found. A check that cannot be made on the data at hand (nothing flipped,
nothing started correct) says "not testable here" and why. What holds by
construction (an identity the code cannot help satisfying) says so: it is
shown, and not counted as evidence (:func:`flatrob.ledger.combine`).

Every threshold is a constant below, fixed before the data were seen, with its reason.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import Tensor

__all__ = [
    "BY_CONSTRUCTION",
    "Check",
    "EVIDENCE_VERDICTS",
    "NOT_TESTABLE",
    "VERDICTS",
    "check_adversarial_training_shift",
    "check_basin",
    "check_bridging",
    "check_clean_trace",
    "check_closed_form",
    "check_confidence_band",
    "check_confidently_wrong_flat",
    "check_detector",
    "check_feature_norm",
    "check_flip_threshold",
    "check_gradient_masking",
    "check_local_bound",
    "check_loss_growth",
    "check_not_global",
    "check_scaling",
    "check_valley_shape",
    "checks_table",
]

#: The verdicts that are evidence for or against a claim.
EVIDENCE_VERDICTS = ("reproduced", "partly", "not reproduced")
#: A check that holds whatever the data: shown, never counted.
BY_CONSTRUCTION = "holds by construction"
#: A check the data at hand cannot make (the reason is in its evidence).
NOT_TESTABLE = "not testable here"
VERDICTS = (*EVIDENCE_VERDICTS, BY_CONSTRUCTION, NOT_TESTABLE)

# ---------------------------------------------------------------------------
# thresholds, each with its reason

#: Claims 1, 2: closed form vs autograd in float64. Both sum at most k m (about 10^4) products of numbers of
#: order one, so rounding costs at most about 10^4 * 1.1e-16 ~ 1e-12 relative; a wrong formula differs at O(1).
FLOAT64_AGREEMENT = 1e-12
#: Claim 4: the Householder construction is exact up to rounding of an m x m product in float64.
CONSTRUCTION_TOLERANCE = 1e-10
#: Claim 6 "sharpness rises": the per-sample peak exceeds the start by this factor (median); a factor of 2 is
#: well outside the float32 noise of the recorded statistic and far below the orders of magnitude the paper shows.
RISE_FACTOR = 2.0
#: Claim 6 "collapses after the flip": the final value lies below the peak by at least this factor (median):
#: one order of magnitude, the least that "collapse towards 0" can mean on a log axis.
COLLAPSE_FACTOR = 10.0
#: Claim 6 "the peak is near the flip": |peak step - flip step| at most this fraction of the path (median), and at
#: least 2 steps (one step of PGD moves the prediction and the sharpness by a discrete amount).
PEAK_TOLERANCE = 0.1
#: Claim 6: "confidently wrong" at the end of the path means most (> half) wrong with median confidence above this.
FINAL_CONFIDENCE = 0.9
#: Claim 12 "the feature norm stays constant": per-sample max/min of ||phi|| along the path at most this ratio
#: (median): a 10% change of ||phi|| is a 21% change of ||phi||^2, as much as a factor in Tr H may move and be "constant".
NORM_CONSTANT_RATIO = 1.1
#: Claim 12: the probability factor "dominates" when it spans this many times the decades of ||phi||^2.
DOMINANCE = 3.0
#: Claim 7 (row B): "widens the basin" needs the adversarially trained model to walk at least this many times as far
#: (median); the paper reports about 20, and a factor 2 is the least that "widens" can mean beyond noise.
BASIN_FACTOR = 2.0
#: Claim 9: PGD robust accuracy "rises with s" if it gains at least this much (absolute) from the smallest to the
#: largest s: a quarter of all inputs, far beyond the sampling error of a few hundred inputs (about 3 points).
MASKING_GAIN = 0.25
#: Claim 9: a transfer / gradient-free attack "still succeeds" if its robust accuracy never exceeds its own value at
#: the smallest s by more than this (two standard errors of an accuracy on 300 inputs are about 0.05).
ATTACK_SLACK = 0.05
#: Claim 10: "confidently wrong" means wrong with top-class probability above this.
CONFIDENT = 0.99
#: Claim 10: at least this many confidently wrong points are needed for a median to mean anything.
MIN_POINTS = 10
#: Claim 10 (not-global): the plain model's attacks must end confidently wrong in more than this share of cases.
MAJORITY = 0.5
#: Claim 11: the paper reports 0.92-0.93; we call >= 0.90 reproduced and >= 0.75 (well above chance, 0.5) partly.
DETECTOR_REPRODUCED, DETECTOR_PARTLY = 0.90, 0.75


@dataclass
class Check:
    """One claim checked on data.

    ``claim`` is the number of the claim in :data:`flatrob.ledger.CLAIMS`, ``id``
    names the check (claim, part, setting), ``verdict`` is one of :data:`VERDICTS`,
    ``evidence`` says in words what was measured against which threshold, and
    ``values`` holds the numbers.
    """

    id: str
    claim: int
    statement: str
    verdict: str
    evidence: str
    values: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.verdict not in VERDICTS:
            raise ValueError(f"verdict must be one of {VERDICTS}; got {self.verdict!r}")

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def checks_table(checks: list[Check]) -> pd.DataFrame:
    """The checks as a table (id, verdict, statement, evidence)."""
    return pd.DataFrame([{k: c.as_dict()[k] for k in ("id", "verdict", "statement", "evidence")} for c in checks])


def _fmt(x: float) -> str:
    return f"{x:.3g}"


def _yes(ok: bool) -> str:
    return "reproduced" if ok else "not reproduced"


# ---------------------------------------------------------------------------
# theory (claims 1-5 and the not-global part of 10)


def check_closed_form(hessian_error: float, kappa_error: float, setting: str) -> list[Check]:
    """Claims 1 and 2: the closed forms equal autograd in float64 (largest relative differences given)."""
    return [
        Check("1", 1, "The closed-form Hessian equals the autograd Hessian, for every label.",
              _yes(hessian_error < FLOAT64_AGREEMENT),
              f"max relative difference {hessian_error:.1e} (true vs shifted labels included; threshold "
              f"{FLOAT64_AGREEMENT:g}); {setting}", {"max_relative_error": hessian_error}),
        Check("2", 2, "The layer-wise, neuron-wise and eigenvalue forms equal the definition on the autograd Hessian.",
              _yes(kappa_error < FLOAT64_AGREEMENT),
              f"layer, neuron and eigen forms vs autograd: max relative difference {kappa_error:.1e} (threshold "
              f"{FLOAT64_AGREEMENT:g}); {setting}", {"max_relative_error": kappa_error}),
    ]


def check_flip_threshold(random_violations: int, n_random: int, kept_above: int, n_attacked: int,
                         change_with_flip: float, change_without_flip: float) -> Check:
    """Claim 3: a loss change above log k forces a flip, and both directions of the converse fail.

    ``random_violations``: random logit vectors with loss above log k whose label survived;
    ``kept_above``: attacked points whose loss rose by more than log k and kept their label;
    the two counterexamples' loss changes (one with a flip, one without).
    """
    holds = random_violations == 0 and kept_above == 0
    converse_fails = change_with_flip < 0 < change_without_flip
    return Check(
        "3", 3, "A loss change above log k forces a label flip; the converse fails.", _yes(holds and converse_fails),
        f"{n_random} random logit vectors and {n_attacked} PGD points: {random_violations + kept_above} kept their "
        f"label above log k; counterexamples: loss change {change_with_flip:.4f} with a flip, "
        f"{change_without_flip:.4f} without",
        {"random_violations": random_violations, "kept_above": kept_above,
         "change_with_flip": change_with_flip, "change_without_flip": change_without_flip})


def check_bridging(construction_error: float, violations_proven: int, n_pairs: int, lipschitz: dict[str, float],
                   r: float) -> Check:
    """Claim 4: the bridging lemma. With an explicit Householder reflection and the proven Lipschitz constant it holds
    by construction: the check shows it holds (and would flag a bug), but it is not evidence."""
    ok = construction_error < CONSTRUCTION_TOLERANCE and violations_proven == 0
    return Check(
        "4", 4, "Bridging lemma: Delta <= L delta / r, with A orthogonal.", BY_CONSTRUCTION if ok else "not reproduced",
        f"construction exact to {construction_error:.1e}; Delta <= L delta / r with the proven L = "
        f"{lipschitz['upper']:.3g}: {violations_proven} violations in {n_pairs} pairs (local L = "
        f"{lipschitz['local']:.3g}, r = {r:.3g}); a Householder reflection and a product of operator norms make it "
        "hold whatever the network", {"L": lipschitz, "r": r, "violations": violations_proven})


def check_local_bound(violations: dict[str, int], n_network: int, random_violations: int, n_random: int) -> Check:
    """Claim 5: the local bound. ``violations`` maps each form of the bound evaluated on the network
    ("ours, eps observed", "ours, L proven", "digest, L proven", "digest, L local", ...) to its count of violations
    among ``n_network`` attacked points; ``random_violations`` counts our bound's violations on random instances.

    Reproduced when our proven bound holds everywhere and so does the digest's form with the proven L (the paper's
    statement with the constant it assumes); partly when only ours holds; not reproduced when ours fails.
    """
    ours = random_violations == 0 and violations["ours, eps observed"] == 0 and violations["ours, L proven"] == 0
    digest = violations["digest, L proven"] == 0
    verdict = "reproduced" if ours and digest else ("partly" if ours else "not reproduced")
    return Check(
        "5", 5, "The local bound holds for small delta.", verdict,
        f"our version (with a first-order term and c = D_W^3 L^3 / 24): {random_violations} violations in {n_random} "
        f"random instances, {violations['ours, L proven']} of {n_network} on the network (proven L); the digest's form: "
        f"{violations['digest, L proven']} of {n_network} with the proven L, {violations['digest, L local']} with the "
        "local (unproven) L", {"violations": violations, "random_violations": random_violations, "n_network": n_network})


def check_not_global(confidently_wrong: float, end_over_start: float, peak_over_start: float, setting: str) -> Check:
    """Claim 10 on a known manifold: the plain model's attacks end confidently wrong where kappa has collapsed
    from its peak (end below the peak by :data:`COLLAPSE_FACTOR`)."""
    ok = confidently_wrong > MAJORITY and end_over_start < peak_over_start / COLLAPSE_FACTOR
    return Check(
        "10-manifold", 10, "Confidently wrong points off the data manifold are flat.", _yes(ok),
        f"{setting}: {100 * confidently_wrong:.0f}% end confidently wrong (needs > {100 * MAJORITY:.0f}%); median "
        f"kappa at the end {_fmt(end_over_start)} x the clean value, the peak on the way {_fmt(peak_over_start)} x "
        f"(collapse needs a factor {COLLAPSE_FACTOR:g})",
        {"confidently_wrong": confidently_wrong, "end_over_start": end_over_start, "peak_over_start": peak_over_start})


# ---------------------------------------------------------------------------
# experiments (claims 6-12)


def check_valley_shape(s: dict[str, float], model: str) -> list[Check]:
    """Claim 6: relative sharpness rises from the clean point, peaks near the label flip, then collapses.

    ``s`` is :func:`flatrob.attacks.valley_summary` of the model's PGD trajectories.
    """
    parts = (("rise", "Along PGD, relative sharpness rises from the clean point."),
             ("peak", "The sharpness peak lies near the label flip."),
             ("collapse", "After the flip, sharpness collapses in a confidently wrong region."))
    if not s.get("n_flipped"):
        why = (f"no input flipped ({s.get('n_start_correct', 0)} of {s.get('n_samples', '?')} started correct, "
               f"{s.get('steps', '?')} steps)")
        return [Check(f"6-{part}-{model}", 6, stmt, NOT_TESTABLE, why, s) for part, stmt in parts]
    tol = max(2.0, PEAK_TOLERANCE * s["steps"])
    rise = s["peak_over_start"] >= RISE_FACTOR
    near = s["abs_peak_minus_flip"] <= tol
    collapse = s["final_over_peak"] <= 1 / COLLAPSE_FACTOR and s["final_wrong"] > 0.5 and s["final_confidence"] > FINAL_CONFIDENCE
    return [
        Check(f"6-rise-{model}", 6, parts[0][1], _yes(rise),
              f"median per-sample peak/start = {_fmt(s['peak_over_start'])} (threshold {RISE_FACTOR:g}); "
              f"start {_fmt(s['start'])}, peak {_fmt(s['peak'])}", s),
        Check(f"6-peak-{model}", 6, parts[1][1], _yes(near),
              f"median |peak step - flip step| = {_fmt(s['abs_peak_minus_flip'])} steps (tolerance {_fmt(tol)} of "
              f"{s['steps']}); median flip at step {_fmt(s['flip_step'])}, peak at {_fmt(s['peak_step'])}", s),
        Check(f"6-collapse-{model}", 6, parts[2][1], _yes(collapse),
              f"median final/peak = {_fmt(s['final_over_peak'])} (threshold {1 / COLLAPSE_FACTOR:g}); "
              f"final: {100 * s['final_wrong']:.0f}% wrong with median confidence {s['final_confidence']:.4f}", s),
    ]


def check_adversarial_training_shift(clean: dict[str, float], adv: dict[str, float]) -> Check:
    """Claim 7: adversarial training shifts the valley (a later flip and a later peak along the same attack)."""
    stmt = "Adversarial training shifts the valley (later flip and peak) but keeps it."
    if not clean.get("n_flipped") or not adv.get("n_flipped"):
        return Check("7-shift", 7, stmt, NOT_TESTABLE, "one of the models has no flipped input",
                     {"clean": clean, "adversarial": adv})
    later_flip = adv["flip_step"] > clean["flip_step"]
    later_peak = adv["peak_step"] > clean["peak_step"]
    verdict = "reproduced" if later_flip and later_peak else ("partly" if later_flip or later_peak else "not reproduced")
    still = all(k["peak_over_start"] >= RISE_FACTOR and k["final_over_peak"] <= 1 / COLLAPSE_FACTOR for k in (clean, adv))
    return Check(
        "7-shift", 7, stmt, verdict if still or verdict == "not reproduced" else "partly",
        f"median flip step {_fmt(clean['flip_step'])} (clean) vs {_fmt(adv['flip_step'])} (adversarially trained); "
        f"median peak step {_fmt(clean['peak_step'])} vs {_fmt(adv['peak_step'])}; valley present in both: {still}",
        {"clean": clean, "adversarial": adv},
    )


def check_feature_norm(s: dict[str, float], model: str) -> Check:
    """Claim 12 (a reviewer's alternative): ||phi|| stays constant along the path, so the curve is 1 - ||p||^2."""
    stmt = "The feature norm ||phi|| stays constant along PGD paths (so the sharpness curve is just 1 - ||p||^2)."
    if not s.get("n_flipped"):
        return Check(f"12-{model}", 12, stmt, NOT_TESTABLE, "no input flipped", s)
    constant = s["feature_norm_max_over_min"] <= NORM_CONSTANT_RATIO
    dominates = s["decades_one_minus_p2"] > DOMINANCE * s["decades_phi_sq"]
    return Check(
        f"12-{model}", 12, stmt, _yes(constant),
        f"median per-sample max/min of ||phi|| = {_fmt(s['feature_norm_max_over_min'])} (constant if <= "
        f"{NORM_CONSTANT_RATIO:g}); ||phi||^2 spans {_fmt(s['decades_phi_sq'])} decades, 1 - ||p||^2 spans "
        f"{_fmt(s['decades_one_minus_p2'])}: the probability factor {'dominates' if dominates else 'does not dominate'} "
        "the curve", s,
    )


def _monotone_share(values: Tensor) -> float:
    """Fraction of columns of (S, n) values that never increase along the first axis."""
    return float((values.diff(dim=0) <= 0).all(0).double().mean())


def check_scaling(kappa: Tensor, scales: list[float], variant: str) -> Check:
    """Claim 8: relative sharpness falls monotonically with the last-layer scale s.

    ``kappa`` (S, n): the sharpness of n points at the S scales, ``scales`` ascending.
    Reproduced when it never increases at any point, partly when it falls at most points.
    """
    if list(scales) != sorted(scales):
        raise ValueError(f"scales must be ascending; got {scales}")
    share = _monotone_share(kappa.double())
    med = kappa.double().median(1).values
    verdict = "reproduced" if share == 1.0 else ("partly" if share > 0.5 else "not reproduced")
    return Check(
        f"8-{variant}", 8, f"Relative sharpness falls monotonically with the last-layer scale s ({variant}).", verdict,
        f"kappa_layer never increases in s at {100 * share:.1f}% of {kappa.shape[1]} points; median from "
        f"{_fmt(float(med[0]))} (s = {scales[0]:g}) to {_fmt(float(med[-1]))} (s = {scales[-1]:g}), "
        f"median monotone: {bool((med.diff() <= 0).all())}",
        {"monotone_share": share, "median": med.tolist(), "scales": list(scales)},
    )


def check_loss_growth(increase: Tensor, scales: list[float], variant: str, small: float = 1e-3) -> Check:
    """Row A: under a weak attack the loss increases concentrate near 0 as s grows.

    ``increase`` (S, n): loss after minus loss before the attack, per point and scale (ascending).
    Reproduced when the median increase never rises with s and the share of increases below
    ``small`` never falls; partly when one of the two holds.
    """
    inc = increase.double()
    med = inc.median(1).values
    near0 = (inc.abs() < small).double().mean(1)
    falls, concentrates = bool((med.diff() <= 0).all()), bool((near0.diff() >= 0).all())
    verdict = "reproduced" if falls and concentrates else ("partly" if falls or concentrates else "not reproduced")
    return Check(
        f"8-loss-growth-{variant}", 8, f"Loss increases under a weak attack concentrate near 0 as s grows ({variant}).",
        verdict,
        f"median increase {_fmt(float(med[0]))} (s = {scales[0]:g}) -> {_fmt(float(med[-1]))} (s = {scales[-1]:g}), "
        f"never rising: {falls}; share below {small:g}: {100 * float(near0[0]):.0f}% -> {100 * float(near0[-1]):.0f}%, "
        f"never falling: {concentrates}; 90th percentile {_fmt(float(inc[0].quantile(0.9)))} -> "
        f"{_fmt(float(inc[-1].quantile(0.9)))}",
        {"median": med.tolist(), "share_small": near0.tolist(), "scales": list(scales)},
    )


def check_gradient_masking(scales: list[float], clean: list[float], pgd: list[float], transfer: list[float],
                           square: list[float]) -> Check:
    """Claim 9: PGD robust accuracy rises with s (masking) while transfer and gradient-free attacks still succeed.

    Accuracies (one per scale, ascending): clean, under PGD made at that s, under PGD examples made
    at the smallest s (transfer), and under the Square attack at that s.
    """
    gain = pgd[-1] - pgd[0]
    rises = gain >= MASKING_GAIN
    transfer_ok = max(transfer) <= pgd[0] + ATTACK_SLACK
    square_ok = max(square) <= square[0] + ATTACK_SLACK and square[-1] <= clean[-1] - MASKING_GAIN
    verdict = ("reproduced" if rises and transfer_ok and square_ok
               else "partly" if rises and (transfer_ok or square_ok) else "not reproduced")
    pct = lambda v: "/".join(f"{100 * a:.0f}" for a in v)  # noqa: E731
    return Check(
        "9", 9, "PGD robust accuracy rises with s, but transfer and gradient-free attacks still succeed.", verdict,
        f"s = {'/'.join(f'{a:g}' for a in scales)}: PGD {pct(pgd)}%, transfer from s = {scales[0]:g} {pct(transfer)}%, "
        f"Square {pct(square)}%, clean {pct(clean)}%; PGD rises by {100 * gain:.0f} points (needs "
        f"{100 * MASKING_GAIN:.0f}); transfer holds: {transfer_ok}; Square holds: {square_ok}",
        {"scales": list(scales), "clean": clean, "pgd": pgd, "transfer": transfer, "square": square},
    )


def check_basin(steps_clean: Tensor, steps_adv: Tensor, definition: str) -> Check:
    """Claim 7 (row B): adversarial training widens the low-loss basin along a PGD-l2 walk.

    ``steps_*`` (n,): iterates before the loss rises (:meth:`Trajectory.loss_rise_step`) of the two
    models on the same inputs. Reproduced when the median ratio is at least ``BASIN_FACTOR``.
    """
    c, a = float(steps_clean.double().median()), float(steps_adv.double().median())
    ratio = a / c if c > 0 else math.inf
    verdict = "reproduced" if ratio >= BASIN_FACTOR else ("partly" if ratio > 1 else "not reproduced")
    return Check(
        f"7-basin-{definition}", 7, f"Adversarial training widens the low-loss basin ({definition}).", verdict,
        f"median iterates before the loss rises ({definition}): {_fmt(c)} (clean) vs {_fmt(a)} (adversarially "
        f"trained), ratio {_fmt(ratio)} (paper: about 20; reproduced from {BASIN_FACTOR:g})",
        {"clean_median": c, "adversarial_median": a, "ratio": ratio},
    )


def check_clean_trace(trace_clean: Tensor, trace_adv: Tensor) -> Check:
    """Row B's second figure: Tr H at clean test points is larger for the adversarially trained model (0.6 vs 1.0)."""
    mc, ma = float(trace_clean.double().mean()), float(trace_adv.double().mean())
    dc, da = float(trace_clean.double().median()), float(trace_adv.double().median())
    return Check(
        "7-trace", 7, "At clean points Tr H is larger after adversarial training (paper: about 0.6 vs 1.0).",
        _yes(ma > mc),
        f"mean Tr H at clean test points {_fmt(mc)} (clean) vs {_fmt(ma)} (adversarially trained); "
        f"medians {_fmt(dc)} vs {_fmt(da)}",
        {"mean_clean": mc, "mean_adversarial": ma, "median_clean": dc, "median_adversarial": da},
    )


def check_confidently_wrong_flat(kappa: dict[str, Tensor], confidence: dict[str, Tensor],
                                 wrong: dict[str, Tensor]) -> Check:
    """Claim 10: confidently wrong points are flat, far flatter than points near the decision boundary.

    Dicts keyed by "clean", "boundary", "adversarial", each (n,). Reproduced when the median sharpness of
    the adversarial points that are confidently wrong (confidence > ``CONFIDENT``) is at most
    1 / ``COLLAPSE_FACTOR`` of the median at the boundary points.
    """
    stmt = "Confidently wrong points are flat."
    sel = wrong["adversarial"] & (confidence["adversarial"] > CONFIDENT)
    if int(sel.sum()) < MIN_POINTS:
        return Check("10-attack", 10, stmt, NOT_TESTABLE,
                     f"only {int(sel.sum())} adversarial points are confidently wrong (need {MIN_POINTS})", {})
    k_b = float(kappa["boundary"].double().median())
    k_w, k_c = float(kappa["adversarial"][sel].double().median()), float(kappa["clean"].double().median())
    ratio = k_w / k_b if k_b > 0 else math.inf
    return Check(
        "10-attack", 10, stmt, _yes(ratio <= 1 / COLLAPSE_FACTOR),
        f"{int(sel.sum())} of {len(sel)} adversarial points are confidently wrong (> {CONFIDENT:g}); their median kappa "
        f"{_fmt(k_w)} is {_fmt(ratio)} x the median at the boundary ({_fmt(k_b)}); clean points {_fmt(k_c)}",
        {"n_confidently_wrong": int(sel.sum()), "median_wrong": k_w, "median_boundary": k_b, "median_clean": k_c},
    )


def check_confidence_band(outside: int, n_points: int) -> Check:
    """Claim 10's band: eps (1 - eps) <= 1 - ||p||^2 <= 2 eps (cor-confident-flat) at every point.

    An identity of probability vectors: it holds by construction (a point outside means a bug, not a finding).
    """
    return Check(
        "10-band", 10, "Every point lies on the band of cor-confident-flat.",
        BY_CONSTRUCTION if outside == 0 else "not reproduced",
        f"{outside} of {n_points} points outside the band; it holds for every probability vector, so it is shown, "
        "not counted", {"outside": outside, "n_points": n_points})


def check_detector(acc_sharpness: np.ndarray, acc_confidence: np.ndarray, name: str) -> Check:
    """Claim 11 (row F): a one-threshold stump on sharpness separates clean from adversarial inputs.

    Held-out accuracies of the k folds, for the sharpness stump and, as the baseline it must be
    compared with, a stump on confidence alone.
    """
    stmt = f"A sharpness stump separates clean from adversarial inputs ({name})."
    if len(acc_sharpness) == 0:
        return Check(f"11-{name}", 11, stmt, NOT_TESTABLE, "too few correctly classified inputs to cross-validate", {})
    m, c = float(np.mean(acc_sharpness)), float(np.mean(acc_confidence))
    verdict = "reproduced" if m >= DETECTOR_REPRODUCED else ("partly" if m >= DETECTOR_PARTLY else "not reproduced")
    return Check(
        f"11-{name}", 11, stmt, verdict,
        f"{len(acc_sharpness)}-fold accuracy {m:.3f} +- {float(np.std(acc_sharpness)):.3f} (paper 0.92-0.93; reproduced "
        f"from {DETECTOR_REPRODUCED:g}, partly from {DETECTOR_PARTLY:g}); a stump on confidence alone: {c:.3f}",
        {"sharpness": list(map(float, acc_sharpness)), "confidence": list(map(float, acc_confidence))},
    )
