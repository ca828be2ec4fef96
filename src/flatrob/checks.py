"""The paper's claims as executable checks: each function takes a chapter's evidence and returns a verdict.

A verdict is computed, never written by hand, and never inside a chapter. Every
ratio, share or median a verdict uses is an :class:`Estimate` with a 95%
bootstrap interval over the inputs (:func:`bootstrap`), and a verdict needs the
whole interval on one side of its threshold:

* **reproduced**: the interval lies on the claim's side;
* **not reproduced**: it lies on the other side;
* **partly**: it contains the threshold (inconclusive at this sample size), or,
  for a claim of several parts, the parts disagree;
* **holds by construction**: an identity the code cannot help satisfying (shown,
  never counted as evidence; :func:`combine`);
* **not testable here**: the data cannot make the check (nothing flipped,
  nothing started correct); the evidence says why.

A check whose data contradict the claim says so; it does not raise, so a re-run
with other parameters still builds and reports what it found. Every threshold is
a constant below, fixed before the data were seen, with its reason; every check
carries the paper's number (``paper``) beside ours.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
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
    "Estimate",
    "NOT_TESTABLE",
    "VERDICTS",
    "bootstrap",
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
    "check_scaling_median",
    "check_valley_shape",
    "checks_table",
    "combine",
    "judge",
    "rule_above",
    "rule_below",
    "tag_value",
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

#: Bootstrap resamples for every interval (seeded: a run's intervals are reproducible); 2000 resamples put the
#: Monte Carlo error of a 95% percentile interval's ends well below the sampling error of a few hundred inputs.
N_BOOT, BOOT_SEED = 2000, 0
#: Claims 1, 2: closed form vs autograd in float64. Both sum at most k m (about 10^4) products of numbers of
#: order one, so rounding costs at most about 10^4 * 1.1e-16 ~ 1e-12 relative; a wrong formula differs at O(1).
FLOAT64_AGREEMENT = 1e-12
#: Claim 4: the Householder construction is exact up to rounding of an m x m product in float64.
CONSTRUCTION_TOLERANCE = 1e-10
#: Claim 6 "sharpness rises": the per-sample peak exceeds the start by this factor (median); a factor of 2 is
#: well outside the float32 noise of the recorded statistic and far below the orders of magnitude the paper shows.
RISE_FACTOR = 2.0
#: Claims 6, 10 "collapses" / "flat": below the peak (or the boundary) by at least this factor (median): one order of
#: magnitude, the least that "collapse towards 0" can mean on a log axis.
COLLAPSE_FACTOR = 10.0
#: Claim 6 "the peak is near the flip": |peak step - flip step| at most this fraction of the path (median), and at
#: least 2 steps (one step of PGD moves the prediction and the sharpness by a discrete amount).
PEAK_TOLERANCE = 0.1
#: Claim 6: "confidently wrong" at the end of the path: more than half wrong, with median confidence above this.
FINAL_CONFIDENCE = 0.9
#: Claim 12 "the feature norm stays constant": per-sample max/min of ||phi|| along the path at most this ratio
#: (median): a 10% change of ||phi|| is a 21% change of ||phi||^2, as much as a factor of Tr H may move and be "constant".
NORM_CONSTANT_RATIO = 1.1
#: Claim 12: the probability factor "dominates" when it spans this many times the decades of ||phi||^2.
DOMINANCE = 3.0
#: Claim 7 (row B): "widens the basin" needs the median ratio of iterates above 1 (interval); "reproduced" needs at
#: least this factor: the paper reports about 20, and 2 is the least that "widens" can mean beyond noise.
BASIN_FACTOR = 2.0
#: Claim 8: the share of points whose sharpness falls monotonically in s below which the claim is not reproduced.
MAJORITY = 0.5
#: Claim 8 (row A): the quantile of the loss increases whose fall with s is the tail criterion.
TAIL_QUANTILE = 0.9
#: Claim 9: PGD robust accuracy "rises with s" if it gains at least this much (absolute) from the smallest to the
#: largest s: a quarter of all inputs, far beyond the sampling error of a few hundred inputs (about 3 points).
MASKING_GAIN = 0.25
#: Claim 9: a transfer attack "still succeeds" if its robust accuracy never exceeds its value at the smallest s
#: by more than this (two standard errors of an accuracy on 300 inputs are about 0.05).
ATTACK_SLACK = 0.05
#: Claim 10: "confidently wrong" means wrong with top-class probability above this.
CONFIDENT = 0.99
#: Claims 10, 7: at least this many points are needed for a median (and its interval) to mean anything.
MIN_POINTS = 10
#: Claim 11: the paper reports 0.92-0.93; we call a held-out accuracy reproduced from 0.90 (interval) and partly from
#: 0.75 (well above chance, 0.5).
DETECTOR_REPRODUCED, DETECTOR_PARTLY = 0.90, 0.75


# ---------------------------------------------------------------------------
# estimates, their intervals and the rules that turn them into verdicts


#: Rules with more than two levels, or strict ones, named once (see :func:`judge`).
#: "later" (claim 7's shift): strictly above 0 steps.
LATER = [("reproduced", "lo", ">", 0.0), ("not reproduced", "hi", "<=", 0.0), ("partly", None, None, None)]
#: "larger" (claim 7's Tr H): a ratio strictly above 1.
LARGER = [("reproduced", "lo", ">", 1.0), ("not reproduced", "hi", "<", 1.0), ("partly", None, None, None)]
#: "widens the basin" (claim 7): reproduced from BASIN_FACTOR, partly when the ratio is above 1 but not that far.
WIDENS = [("reproduced", "lo", ">=", BASIN_FACTOR), ("partly", "lo", ">", 1.0), ("not reproduced", None, None, None)]
#: "falls monotonically" at every point (claim 8): all points, or below MAJORITY, or in between.
MONOTONE = [("reproduced", "value", "==", 1.0), ("not reproduced", "hi", "<", MAJORITY), ("partly", None, None, None)]
#: "the median falls" (claim 8): the least clear step's ratio below 1.
FALLS = [("reproduced", "hi", "<", 1.0), ("not reproduced", "lo", ">", 1.0), ("partly", None, None, None)]
#: "a stump separates" (claim 11): reproduced from DETECTOR_REPRODUCED, partly from DETECTOR_PARTLY.
DETECTS = [("reproduced", "lo", ">=", DETECTOR_REPRODUCED), ("partly", "lo", ">=", DETECTOR_PARTLY),
           ("not reproduced", None, None, None)]


@dataclass(frozen=True)
class Estimate:
    """A statistic of per-input values with its 95% bootstrap interval over the inputs."""

    value: float
    lo: float
    hi: float
    n: int

    def __str__(self) -> str:
        return f"{_fmt(self.value)} [{_fmt(self.lo)}, {_fmt(self.hi)}]"

    def as_dict(self) -> dict[str, Any]:
        return {"value": self.value, "ci95": [self.lo, self.hi], "n": self.n}

    def above(self, threshold: float) -> str:
        """The verdict on "the statistic exceeds (or reaches) ``threshold``"."""
        return judge(self, rule_above(threshold))

    def below(self, threshold: float) -> str:
        """The verdict on "the statistic stays at or below ``threshold``"."""
        return judge(self, rule_below(threshold))

    def measure(self, name: str, rule: list[tuple]) -> dict[str, Any]:
        """This estimate as the decisive measure of a check, with the rule that turns it into the verdict."""
        return {"name": name, "value": self.value, "ci95": [self.lo, self.hi], "n": self.n, "rule": [list(r) for r in rule]}


#: A verdict rule: (verdict, bound, op, threshold) tried in order, the first that holds wins; a rule whose
#: bound is None always holds. The bound is the estimate's "value", or its interval's "lo" or "hi".
Rule = list[tuple]
_OPS = {">=": lambda a, b: a >= b, ">": lambda a, b: a > b, "<=": lambda a, b: a <= b, "<": lambda a, b: a < b,
        "==": lambda a, b: a == b}


def rule_above(threshold: float) -> Rule:
    """"Above (or at) the threshold": reproduced when the interval lies there, not when it lies below, else partly."""
    return [("reproduced", "lo", ">=", threshold), ("not reproduced", "hi", "<", threshold), ("partly", None, None, None)]


def rule_below(threshold: float) -> Rule:
    """"At or below the threshold": reproduced when the interval lies there, not when it lies above, else partly."""
    return [("reproduced", "hi", "<=", threshold), ("not reproduced", "lo", ">", threshold), ("partly", None, None, None)]


def judge(estimate: "Estimate | dict[str, float]", rule: Rule) -> str:
    """The verdict of ``rule`` on an estimate (an :class:`Estimate` or {"value", "lo", "hi"}).

    One function for the verdict within a run and over the seeds of a sweep, so both read the same rule.
    """
    e = estimate if isinstance(estimate, dict) else {"value": estimate.value, "lo": estimate.lo, "hi": estimate.hi}
    for verdict, bound, op, threshold in rule:
        if bound is None or _OPS[op](e[bound], threshold):
            return verdict
    raise ValueError(f"the rule {rule} decides nothing for {e}")


def bootstrap(stat: Callable[..., float], *samples: np.ndarray, paired: bool = True, n_boot: int = N_BOOT,
              seed: int = BOOT_SEED) -> Estimate:
    """``stat(*samples)`` and its 95% percentile-bootstrap interval over the inputs.

    ``paired``: the samples are measurements of the same inputs (same length), resampled
    with the same indices; otherwise each is resampled on its own. Seeded, so the
    interval of a run is reproducible. NaN when a sample is empty.
    """
    arrays = [np.asarray(s, dtype=np.float64) for s in samples]
    if any(len(a) == 0 for a in arrays):
        return Estimate(math.nan, math.nan, math.nan, 0)
    if paired and len({len(a) for a in arrays}) != 1:
        raise ValueError(f"paired samples must have equal lengths; got {[len(a) for a in arrays]}")
    rng = np.random.default_rng(seed)
    value = float(stat(*arrays))
    if len(arrays) == 1 and stat in _VECTORISED:  # the common case, all resamples at once
        idx = rng.integers(0, len(arrays[0]), (n_boot, len(arrays[0])))
        lo, hi = np.nanquantile(_VECTORISED[stat](arrays[0][idx]), [0.025, 0.975])
        return Estimate(value, float(lo), float(hi), len(arrays[0]))
    boots = np.empty(n_boot)
    for b in range(n_boot):
        if paired:
            idx = rng.integers(0, len(arrays[0]), len(arrays[0]))
            boots[b] = stat(*(a[idx] for a in arrays))
        else:
            boots[b] = stat(*(a[rng.integers(0, len(a), len(a))] for a in arrays))
    lo, hi = np.nanquantile(boots, [0.025, 0.975])
    return Estimate(value, float(lo), float(hi), len(arrays[0]))


def _median(a: np.ndarray) -> float:
    return float(np.median(a))


def _share(a: np.ndarray) -> float:
    return float(np.mean(a))


#: Statistics of one sample that :func:`bootstrap` evaluates on all resamples at once (rows of a matrix).
_VECTORISED = {_median: lambda m: np.median(m, axis=1), _share: lambda m: np.mean(m, axis=1)}


def combine(verdicts: list[str]) -> str:
    """One verdict from several checks (or parts) of one claim.

    Only evidence counts: all reproduced -> reproduced, all not reproduced -> not
    reproduced, anything mixed -> partly. Checks that hold by construction are
    shown but never counted; a claim with nothing else is "holds by construction",
    one with no tested check at all "not testable here".
    """
    tested = [v for v in verdicts if v in EVIDENCE_VERDICTS]
    if not tested:
        return BY_CONSTRUCTION if BY_CONSTRUCTION in verdicts else NOT_TESTABLE
    if all(v == "reproduced" for v in tested):
        return "reproduced"
    if all(v == "not reproduced" for v in tested):
        return "not reproduced"
    return "partly"


@dataclass
class Check:
    """One claim checked on data.

    ``claim`` is the number of the claim in :data:`flatrob.ledger.CLAIMS`, ``id``
    names the check (claim, part, setting), ``verdict`` is one of :data:`VERDICTS`,
    ``evidence`` says in words what was measured (with its interval) against which
    threshold, ``paper`` is the paper's number or shape for the same check, and
    ``values`` holds the numbers. ``measure``, where one estimate decides the
    verdict, names it with its threshold and side ({"name", "value", "ci95",
    "threshold", "side"}): a sweep judges the same measure over training seeds.
    """

    id: str
    claim: int
    statement: str
    verdict: str
    evidence: str
    paper: str = ""
    values: dict[str, Any] = field(default_factory=dict)
    measure: dict[str, Any] | None = None

    def __post_init__(self) -> None:
        if self.verdict not in VERDICTS:
            raise ValueError(f"verdict must be one of {VERDICTS}; got {self.verdict!r}")

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def checks_table(checks: list[Check]) -> pd.DataFrame:
    """The checks as a table: id, verdict, the paper's number, ours (evidence), statement."""
    return pd.DataFrame([{"id": c.id, "verdict": c.verdict, "paper": c.paper, "ours": c.evidence,
                          "statement": c.statement} for c in checks])


def tag_value(check_id: str, key: str) -> str | None:
    """The value of ``key=value`` in a check's id (for example the radius, ``eps=0.03137``), or None."""
    m = re.search(rf"{re.escape(key)}=([^\s\]-][^\s\]]*?)(?:-seeds|$|\s)", check_id)
    return m.group(1) if m else None


def _fmt(x: float) -> str:
    return f"{x:.3g}"


def _yes(ok: bool) -> str:
    return "reproduced" if ok else "not reproduced"


def _rule_of_three(count: int, n: int) -> str:
    """A count of violations with the 95% upper bound on their rate (3/n when none was seen)."""
    if n == 0:
        return "0 of 0"
    if count == 0:
        return f"0 of {n} (rate below {3 / n:.2g} at 95%)"
    return f"{count} of {n}"


# ---------------------------------------------------------------------------
# theory (claims 1-5 and the not-global part of 10)


def check_closed_form(hessian_error: float, kappa_error: float, setting: str) -> list[Check]:
    """Claims 1 and 2: the closed forms equal autograd in float64 (largest relative differences given)."""
    return [
        Check("1", 1, "The closed-form Hessian equals the autograd Hessian, for every label.",
              _yes(hessian_error < FLOAT64_AGREEMENT),
              f"max relative difference {hessian_error:.1e} (true vs shifted labels included; threshold "
              f"{FLOAT64_AGREEMENT:g}); {setting}", r"\(H = (\operatorname{diag} p - p p^\top) \otimes \phi\phi^\top\)",
              {"max_relative_error": hessian_error}),
        Check("2", 2, "The layer-wise, neuron-wise and eigenvalue forms equal the definition on the autograd Hessian.",
              _yes(kappa_error < FLOAT64_AGREEMENT),
              f"layer, neuron and eigen forms vs autograd: max relative difference {kappa_error:.1e} (threshold "
              f"{FLOAT64_AGREEMENT:g}); {setting}", r"\(\kappa = \|W\|_F^2 (1 - \|p\|^2) \|\phi\|^2\)",
              {"max_relative_error": kappa_error}),
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
        "3", 3, r"A loss change above \(\log k\) forces a label flip; the converse fails.", _yes(holds and converse_fails),
        f"label kept above log k: {_rule_of_three(random_violations, n_random)} random logit vectors, "
        f"{_rule_of_three(kept_above, n_attacked)} PGD points; counterexamples: loss change {change_with_flip:.4f} "
        f"with a flip, {change_without_flip:.4f} without", "stated; converse: two reviewers' counterexamples",
        {"random_violations": random_violations, "kept_above": kept_above,
         "change_with_flip": change_with_flip, "change_without_flip": change_without_flip})


def check_bridging(construction_error: float, violations_proven: int, n_pairs: int, lipschitz: dict[str, float],
                   r: float) -> Check:
    """Claim 4: the bridging lemma. With an explicit Householder reflection and the proven Lipschitz constant it holds
    by construction: the check shows it holds (and would flag a bug), but it is not evidence."""
    ok = construction_error < CONSTRUCTION_TOLERANCE and violations_proven == 0
    return Check(
        "4", 4, r"Bridging lemma: \(\Delta \le L\delta / r\), with \(A\) orthogonal.", BY_CONSTRUCTION if ok else "not reproduced",
        f"construction exact to {construction_error:.1e}; Delta <= L delta / r with the proven L = "
        f"{lipschitz['upper']:.3g}: {violations_proven} violations in {n_pairs} pairs (local L = "
        f"{lipschitz['local']:.3g}, r = {r:.3g}); a Householder reflection and a product of operator norms make it "
        "hold whatever the network", r"\(\Delta \le L\delta / r\)", {"L": lipschitz, "r": r, "violations": violations_proven})


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
        "5", 5, r"The local bound holds for small \(\delta\).", verdict,
        f"our version (with a first-order term and c = D_W^3 L^3 / 24): violations in "
        f"{_rule_of_three(random_violations, n_random)} random instances and "
        f"{_rule_of_three(violations['ours, L proven'], n_network)} attacked points (proven L); the digest's form "
        f"(no first-order term, c = k m L^6 / (24 r^3)): {_rule_of_three(violations['digest, L proven'], n_network)} "
        f"with the proven L, {violations['digest, L local']} of {n_network} with the local (unproven) L",
        r"\(\frac{\delta^2 L^2 \kappa}{2 r^2} + \frac{\delta^3 k m L^6}{24 r^3}\)",
        {"violations": violations, "random_violations": random_violations, "n_network": n_network})


def check_not_global(wrong_end: np.ndarray, confidence_end: np.ndarray, end_over_peak: np.ndarray, setting: str) -> Check:
    """Claim 10 on a known manifold: the plain model's attacks end confidently wrong, where kappa has collapsed from
    its peak on the way. Per attacked point (n,): wrong at the end (0/1), confidence at the end, kappa at the end / its
    peak along the path. "Confidently wrong" uses :data:`FINAL_CONFIDENCE`, as the collapse of claim 6 does."""
    stmt = "Off the data manifold the attack ends where the model is confidently wrong, and flat."
    if len(wrong_end) < MIN_POINTS:
        return Check("10-manifold", 10, stmt, NOT_TESTABLE, f"only {len(wrong_end)} attacked points", "shape")
    confidently_wrong = (np.asarray(wrong_end) > 0) & (np.asarray(confidence_end) > FINAL_CONFIDENCE)
    share = bootstrap(_share, confidently_wrong.astype(float))
    collapse = bootstrap(_median, end_over_peak)
    verdict = combine([share.above(MAJORITY + 1e-12), collapse.below(1 / COLLAPSE_FACTOR)])
    return Check(
        "10-manifold", 10, stmt, verdict,
        f"{setting}: share ending wrong with confidence above {FINAL_CONFIDENCE:g}: {share} (needs above {MAJORITY:g}); "
        f"median kappa at the end / its peak on the way {collapse} (collapse: at most {1 / COLLAPSE_FACTOR:g})", "shape",
        {"confidently_wrong": share.as_dict(), "end_over_peak": collapse.as_dict()})


# ---------------------------------------------------------------------------
# experiments (claims 6-12)


def check_valley_shape(samples: dict[str, Any], model: str, tag: str = "") -> list[Check]:
    """Claim 6: relative sharpness rises from the clean point, peaks near the label flip, then collapses.

    ``samples`` is :func:`flatrob.attacks.valley_samples` of the model's PGD trajectories (per flipped input);
    ``tag`` names the setting in the checks' ids (for example the radius).
    """
    sfx = f"-{model}" + (f"-{tag}" if tag else "")
    parts = (("rise", "Along PGD, relative sharpness rises from the clean point."),
             ("peak", "The sharpness peak lies near the label flip."),
             ("collapse", "After the flip, sharpness collapses in a confidently wrong region."))
    paper = {"rise": "rises from the clean point", "peak": "peaks near the flip",
             "collapse": "collapses towards 0 where the model is confidently wrong"}
    if samples["n_flipped"] < MIN_POINTS:
        why = (f"{samples['n_flipped']} inputs flipped (need {MIN_POINTS}); {samples['n_start_correct']} of "
               f"{samples['n_samples']} started correct, {samples['steps']} steps")
        return [Check(f"6-{part}{sfx}", 6, stmt, NOT_TESTABLE, why, paper[part]) for part, stmt in parts]
    tol = max(2.0, PEAK_TOLERANCE * samples["steps"])
    rise = bootstrap(_median, samples["peak_over_start"])
    near = bootstrap(_median, samples["abs_peak_minus_flip"])
    drop = bootstrap(_median, samples["final_over_peak"])
    wrong = bootstrap(_share, samples["final_wrong"])
    conf = bootstrap(_median, samples["final_confidence"])
    collapse = drop.below(1 / COLLAPSE_FACTOR)  # the claim's centre: without a collapse there is no valley
    if collapse != "not reproduced":
        collapse = combine([collapse, wrong.above(0.5 + 1e-12), conf.above(FINAL_CONFIDENCE + 1e-12)])
    n = f"{samples['n_flipped']} flipped inputs"
    return [
        Check(f"6-rise{sfx}", 6, parts[0][1], rise.above(RISE_FACTOR),
              f"median per-input peak/start {rise} (threshold {RISE_FACTOR:g}); {n}", paper["rise"],
              {"peak_over_start": rise.as_dict()}, rise.measure("median peak/start", rule_above(RISE_FACTOR))),
        Check(f"6-peak{sfx}", 6, parts[1][1], near.below(tol),
              f"median |peak step - flip step| {near} steps (tolerance {_fmt(tol)} of {samples['steps']}); {n}",
              paper["peak"], {"abs_peak_minus_flip": near.as_dict(), "tolerance": tol},
              near.measure("median |peak - flip| steps", rule_below(tol))),
        Check(f"6-collapse{sfx}", 6, parts[2][1], collapse,
              f"median final/peak {drop} (at most {1 / COLLAPSE_FACTOR:g}); share wrong at the end {wrong}; median "
              f"final confidence {conf} (above {FINAL_CONFIDENCE:g}); {n}", paper["collapse"],
              {"final_over_peak": drop.as_dict(), "final_wrong": wrong.as_dict(), "final_confidence": conf.as_dict()},
              drop.measure("median final/peak", rule_below(1 / COLLAPSE_FACTOR))),
    ]


def _median_difference(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.median(b) - np.median(a))


def check_adversarial_training_shift(clean: dict[str, Any], adv: dict[str, Any], tag: str = "") -> Check:
    """Claim 7: adversarial training shifts the valley: a later flip and a later peak along the same attack.

    ``clean``, ``adv``: :func:`flatrob.attacks.valley_samples` of the two models on the same inputs. The flip is
    compared on the inputs both models classify correctly at the start, by their time to flip (an input that never
    flips counts as flipping after the last step, so the model that resists more is never penalised for it): the
    median difference, adversarially trained minus clean, with a paired bootstrap. The peak, defined only where
    an input flips, is compared by the medians over each model's flipped inputs (unpaired bootstrap).
    """
    stmt = "Adversarial training shifts the valley (later flip and later peak)."
    cid = "7-shift" + (f"-{tag}" if tag else "")
    if min(clean["n_flipped"], adv["n_flipped"]) < MIN_POINTS:
        return Check(cid, 7, stmt, NOT_TESTABLE, f"flipped inputs: {clean['n_flipped']} (clean), "
                     f"{adv['n_flipped']} (adversarially trained); need {MIN_POINTS} each", "the valley shifts")
    both = clean["start_correct"] & adv["start_correct"]
    flip = bootstrap(_median_difference, clean["time_to_flip"][both], adv["time_to_flip"][both])
    peak = bootstrap(_median_difference, clean["peak_step"], adv["peak_step"], paired=False)
    verdict = combine([judge(flip, LATER), judge(peak, LATER)])
    return Check(
        cid, 7, stmt, verdict,
        f"median time to flip later by {flip} steps on the {int(both.sum())} inputs both start correct on (never "
        f"flipped: after the last step); median peak step of the flipped inputs later by {peak} (adversarially "
        "trained minus clean; both must be above 0)", "the valley shifts but persists",
        {"flip_later": flip.as_dict(), "peak_later": peak.as_dict()}, flip.measure("flip later by (steps)", LATER))


def check_feature_norm(samples: dict[str, Any], model: str, tag: str = "") -> Check:
    """Claim 12 (a reviewer's alternative): ||phi|| stays constant along the path, so the curve is 1 - ||p||^2."""
    stmt = (r"The feature norm \(\|\phi\|\) stays constant along PGD paths (so the sharpness curve is just "
            r"\(1 - \|p\|^2\)).")
    cid = f"12-{model}" + (f"-{tag}" if tag else "")
    if samples["n_flipped"] < MIN_POINTS:
        return Check(cid, 12, stmt, NOT_TESTABLE, f"{samples['n_flipped']} inputs flipped (need {MIN_POINTS})",
                     "open question")
    ratio = bootstrap(_median, samples["feature_norm_max_over_min"])
    phi = float(np.median(samples["decades_phi_sq"]))
    prob = float(np.median(samples["decades_one_minus_p2"]))
    dominates = prob > DOMINANCE * phi
    return Check(
        cid, 12, stmt, ratio.below(NORM_CONSTANT_RATIO),
        f"median per-input max/min of ||phi|| {ratio} (constant if at most {NORM_CONSTANT_RATIO:g}); ||phi||^2 spans "
        f"{_fmt(phi)} decades, 1 - ||p||^2 spans {_fmt(prob)}: the probability factor "
        f"{'dominates' if dominates else 'does not dominate'} the curve", "open question (a reviewer's alternative)",
        {"max_over_min": ratio.as_dict(), "decades_phi_sq": phi, "decades_one_minus_p2": prob},
        ratio.measure("median max/min of ||phi||", rule_below(NORM_CONSTANT_RATIO)))


def check_scaling(kappa: Tensor, scales: list[float], variant: str) -> Check:
    """Claim 8: relative sharpness falls monotonically with the last-layer scale s.

    ``kappa`` (S, n): the sharpness of n points at the S scales, ``scales`` ascending. Monotonicity is a property of
    each point: reproduced when it never increases at any point; not reproduced when the share of monotone points
    is below :data:`MAJORITY` (interval); partly otherwise.
    """
    if list(scales) != sorted(scales):
        raise ValueError(f"scales must be ascending; got {scales}")
    k = kappa.double()
    monotone = (k.diff(dim=0) <= 0).all(0).double().numpy()
    share = bootstrap(_share, monotone)
    med = k.median(1).values
    verdict = judge(share, MONOTONE)
    return Check(
        f"8-{variant}", 8, rf"Relative sharpness falls monotonically with the last-layer scale \(s\) ({variant}).", verdict,
        f"share of {k.shape[1]} points where kappa never increases in s: {share}; median from "
        f"{_fmt(float(med[0]))} (s = {scales[0]:g}) to {_fmt(float(med[-1]))} (s = {scales[-1]:g})",
        "falls with s", {"monotone_share": share.as_dict(), "median": med.tolist(), "scales": list(scales)},
        share.measure("share of monotone points", MONOTONE),
    )


def check_scaling_median(kappa: Tensor, scales: list[float], variant: str) -> Check:
    """Claim 8 as the paper shows it: the median relative sharpness falls from each scale to the next.

    ``kappa`` (S, n), ``scales`` ascending. For every consecutive pair of scales, the ratio of the medians (paired
    bootstrap over the points): reproduced when every interval lies below 1, not reproduced when one lies above 1,
    partly otherwise.
    """
    if list(scales) != sorted(scales):
        raise ValueError(f"scales must be ascending; got {scales}")
    k = kappa.double().numpy()
    steps = [bootstrap(_median_ratio, k[i], k[i + 1]) for i in range(len(scales) - 1)]
    worst = max(steps, key=lambda e: e.hi)  # every step falls iff the least clear one does
    parts = [judge(e, FALLS) for e in steps]
    verdict = judge(worst, FALLS) if "not reproduced" not in parts else "not reproduced"
    return Check(
        f"8-median-{variant}", 8, rf"The median relative sharpness falls with the last-layer scale \(s\) ({variant}).", verdict,
        f"ratio of the medians from each scale to the next, all below 1 in {parts.count('reproduced')} of {len(steps)} "
        f"steps; the least clear step: {worst} ({len(k[0])} points)", "falls with s",
        {"ratios": [e.as_dict() for e in steps], "scales": list(scales)},
        worst.measure("largest ratio of medians, next scale / this one", FALLS))


def _quantile(q: float) -> Callable[[np.ndarray], float]:
    return lambda a: float(np.quantile(a, q))


def check_loss_growth(increase: Tensor, movable: Tensor, scales: list[float], variant: str) -> Check:
    """Row A: under a weak attack the loss increases concentrate near 0 as s grows, also where the attack can move.

    ``increase`` (S, n): loss after minus loss before the attack, per scale (ascending) and point; ``movable``
    (S, n): the points whose input gradient is not exactly 0 at that scale (elsewhere PGD cannot move: its
    "small increase" is masking, not flatness; they are left out). Two criteria, each with its interval: the
    median increase at the largest s lies below the one at the smallest s, and so does the
    :data:`TAIL_QUANTILE` quantile (the tail concentrates too).
    """
    stmt = rf"Loss increases under a weak attack concentrate near 0 as \(s\) grows ({variant})."
    cid = f"8-loss-growth-{variant}"
    paper = "concentrate near 0 as s grows; 90.33% accuracy under the attack at s = 1"
    inc, mov = increase.double().numpy(), movable.numpy().astype(bool)
    first, last = inc[0][mov[0]], inc[-1][mov[-1]]
    excluded = f"{int((~mov[-1]).sum())} of {inc.shape[1]} points have a zero input gradient at s = {scales[-1]:g}"
    if min(len(first), len(last)) < MIN_POINTS:
        return Check(cid, 8, stmt, NOT_TESTABLE, f"{excluded}: too few left to compare", paper)
    m0, m1 = bootstrap(_median, first), bootstrap(_median, last)
    q = _quantile(TAIL_QUANTILE)
    t0, t1 = bootstrap(q, first), bootstrap(q, last)
    parts = [_yes(m1.hi < m0.lo) if (m1.hi < m0.lo or m1.lo > m0.hi) else "partly",
             _yes(t1.hi < t0.lo) if (t1.hi < t0.lo or t1.lo > t0.hi) else "partly"]
    return Check(
        cid, 8, stmt, combine(parts),
        f"points the attack can move (non-zero input gradient): median increase {m0} at s = {scales[0]:g} -> {m1} at "
        f"s = {scales[-1]:g}; {TAIL_QUANTILE:g} quantile {t0} -> {t1}; {excluded} (left out)", paper,
        {"median_first": m0.as_dict(), "median_last": m1.as_dict(), "tail_first": t0.as_dict(),
         "tail_last": t1.as_dict(), "movable_last": int(mov[-1].sum()), "scales": list(scales)})


def check_gradient_masking(scales: list[float], correct: dict[str, np.ndarray], tag: str = "") -> list[Check]:
    """Claim 9 (rows C, D): PGD robust accuracy rises with s, yet transfer and gradient-free attacks still succeed.

    ``correct`` maps each measure to a (S, n) 0/1 array (per scale, ascending, and input): "clean", "pgd" (PGD made
    at that s), "transfer" (PGD examples made at the smallest s; bias scaled), "transfer, bias kept" (the same
    examples against the model whose bias was kept, which can change its predictions) and "square" (the Square
    attack at that s). Scaling the last layer with its bias multiplies every logit by s: same arg-max, same
    decision regions, so the transfer and Square columns are constant by construction; they are shown as such.
    The evidence is PGD's gain, and the bias-kept transfer. "square" may be absent (then no Square check) or hold
    only the smallest and the largest scale (its two rows).
    """
    sfx = f"-{tag}" if tag else ""
    acc = {k: v.mean(1) for k, v in correct.items()}
    gain = bootstrap(lambda a, b: float(b.mean() - a.mean()), correct["pgd"][0], correct["pgd"][-1])
    kept = correct["transfer, bias kept"]
    rise_kept = bootstrap(lambda *rows: float(max(r.mean() for r in rows) - rows[0].mean()), *kept)
    pct = lambda v: "/".join(f"{100 * a:.0f}" for a in v)  # noqa: E731
    grid = "/".join(f"{a:g}" for a in scales)
    same = {k: bool(np.all(correct[k] == correct[k][0])) for k in ("transfer", "square") if k in correct}
    found = [
        Check(f"9-masking{sfx}", 9, r"PGD robust accuracy rises with the last-layer scale \(s\).", gain.above(MASKING_GAIN),
              f"s = {grid}: PGD robust accuracy {pct(acc['pgd'])}% (clean {pct(acc['clean'])}%); gain from the "
              f"smallest to the largest s {gain} (needs {MASKING_GAIN:g})",
              "0% at s = 1 to 93% at s = 100 (the predecessor's ResNet-18: 93.88% clean, 0.01% under PGD)",
              {"gain": gain.as_dict(), "pgd": acc["pgd"].tolist(), "clean": acc["clean"].tolist(), "scales": list(scales)},
              gain.measure("PGD robust accuracy gain", rule_above(MASKING_GAIN))),
        Check(f"9-transfer-bias-kept{sfx}", 9, r"Examples made at \(s = 1\) still fool the scaled models (bias kept).",
              rise_kept.below(ATTACK_SLACK),
              f"s = {grid}: robust accuracy under transfer {pct(acc['transfer, bias kept'])}%; its largest rise over "
              f"s = {scales[0]:g} {rise_kept} (at most {ATTACK_SLACK:g})", "100% transfer",
              {"rise": rise_kept.as_dict(), "accuracy": acc["transfer, bias kept"].tolist()},
              rise_kept.measure("largest rise of transfer robust accuracy", rule_below(ATTACK_SLACK))),
        Check(f"9-transfer-bias-scaled{sfx}", 9, r"Examples made at \(s = 1\) still fool the scaled models (bias scaled).",
              BY_CONSTRUCTION if same["transfer"] else "not reproduced",
              f"robust accuracy under transfer {pct(acc['transfer'])}% at every s: the scaled model has the same "
              "decision regions, so the same examples fool it", "100% transfer",
              {"accuracy": acc["transfer"].tolist()}),
    ]
    if "square" in correct:
        found.append(Check(
            f"9-square{sfx}", 9, "A gradient-free attack (Square) still succeeds at every scale.",
            BY_CONSTRUCTION if same["square"] else "not reproduced",
            f"robust accuracy under Square {pct(acc['square'])}% at s = {scales[0]:g} and {scales[-1]:g} (clean "
            f"{100 * acc['clean'][0]:.0f}%): its objective, the logit "
            "margin, only scales with s, so it makes the same queries and finds the same examples at every s",
            "gradient-free attacks still succeed", {"accuracy": acc["square"].tolist()}))
    return found


def _median_ratio(a: np.ndarray, b: np.ndarray) -> float:
    ma = float(np.median(a))
    return float(np.median(b)) / ma if ma > 0 else math.inf


def check_basin(steps_clean: Tensor, steps_adv: Tensor, definition: str) -> Check:
    """Claim 7 (row B): adversarial training widens the low-loss basin along a PGD-l2 walk.

    ``steps_*`` (n,): iterates before the loss rises (:meth:`Trajectory.loss_rise_step`) of the two models on the
    same inputs. The ratio of the medians (paired bootstrap): reproduced from :data:`BASIN_FACTOR`, partly when it is
    above 1 but not that far, not reproduced when its interval reaches 1 or below.
    """
    ratio = bootstrap(_median_ratio, steps_clean.double().numpy(), steps_adv.double().numpy())
    verdict = judge(ratio, WIDENS)
    c, a = float(steps_clean.double().median()), float(steps_adv.double().median())
    return Check(
        f"7-basin-{definition}", 7, f"Adversarial training widens the low-loss basin ({definition}).", verdict,
        f"median iterates before the loss rises ({definition}): {_fmt(c)} (clean) vs {_fmt(a)} (adversarially "
        f"trained), ratio {ratio} (reproduced from {BASIN_FACTOR:g}, partly above 1)", "about 20x more iterations",
        {"clean_median": c, "adversarial_median": a, "ratio": ratio.as_dict()},
        ratio.measure("ratio of median iterates", WIDENS),
    )


def check_clean_trace(trace_clean: Tensor, trace_adv: Tensor) -> Check:
    """Row B's second figure: Tr H at clean test points is larger for the adversarially trained model (0.6 vs 1.0).

    Compared by the ratio of the medians (paired bootstrap; the mean is shown, but a few uncertain points dominate it).
    """
    a, b = trace_clean.double().numpy(), trace_adv.double().numpy()
    ratio = bootstrap(_median_ratio, a, b)
    return Check(
        "7-trace", 7, r"At clean points \(\operatorname{Tr} H\) is larger after adversarial training.", judge(ratio, LARGER),
        f"median Tr H at clean test points {_fmt(float(np.median(a)))} (clean) vs {_fmt(float(np.median(b)))} "
        f"(adversarially trained), ratio {ratio} (above 1: larger); means {_fmt(float(a.mean()))} vs "
        f"{_fmt(float(b.mean()))}", r"\(\operatorname{Tr} H\) about 0.6 (clean) vs 1.0 (AT)",
        {"median_ratio": ratio.as_dict(), "mean_clean": float(a.mean()), "mean_adversarial": float(b.mean())},
        ratio.measure("ratio of median Tr H", LARGER),
    )


def check_confidently_wrong_flat(kappa: dict[str, Tensor], confidence: dict[str, Tensor],
                                 wrong: dict[str, Tensor], tag: str = "") -> Check:
    """Claim 10: confidently wrong points are flat, far flatter than points near the decision boundary.

    Dicts keyed by "clean", "boundary", "adversarial", each (n,) over the same inputs. Reproduced when the median
    sharpness of the adversarial points that are confidently wrong (confidence > :data:`CONFIDENT`) is at most
    1 / :data:`COLLAPSE_FACTOR` of the median at the boundary points (interval over the inputs).
    """
    stmt = "Confidently wrong points are flat."
    cid = "10-attack" + (f"-{tag}" if tag else "")
    sel = (wrong["adversarial"] & (confidence["adversarial"] > CONFIDENT)).numpy()
    if int(sel.sum()) < MIN_POINTS:
        return Check(cid, 10, stmt, NOT_TESTABLE,
                     f"only {int(sel.sum())} adversarial points are confidently wrong (need {MIN_POINTS})", "shape")
    k_adv, k_b = kappa["adversarial"].double().numpy(), kappa["boundary"].double().numpy()

    def ratio(mask: np.ndarray, adv: np.ndarray, boundary: np.ndarray) -> float:
        return float(np.median(adv[mask > 0])) / float(np.median(boundary)) if mask.any() else math.nan

    est = bootstrap(ratio, sel.astype(float), k_adv, k_b)
    return Check(
        cid, 10, stmt, est.below(1 / COLLAPSE_FACTOR),
        f"{int(sel.sum())} of {len(sel)} adversarial points are confidently wrong (> {CONFIDENT:g}); their median kappa / "
        f"the median at the boundary {est} (at most {1 / COLLAPSE_FACTOR:g}); medians {_fmt(float(np.median(k_adv[sel])))} "
        f"vs {_fmt(float(np.median(k_b)))}, clean points {_fmt(float(kappa['clean'].double().median()))}",
        "confidently wrong points are flat", {"ratio": est.as_dict(), "n_confidently_wrong": int(sel.sum())},
        est.measure("median kappa, confidently wrong / boundary", rule_below(1 / COLLAPSE_FACTOR)),
    )


def check_confidence_band(outside: int, n_points: int) -> Check:
    """Claim 10's band: eps (1 - eps) <= 1 - ||p||^2 <= 2 eps (cor-confident-flat) at every point.

    An identity of probability vectors: it holds by construction (a point outside means a bug, not a finding).
    """
    return Check(
        "10-band", 10, "Every point lies on the band of cor-confident-flat.",
        BY_CONSTRUCTION if outside == 0 else "not reproduced",
        f"{outside} of {n_points} points outside the band; it holds for every probability vector, so it is shown, "
        "not counted", "confident means flat", {"outside": outside, "n_points": n_points})


def check_detector(held_out_sharpness: np.ndarray, held_out_confidence: np.ndarray, name: str) -> Check:
    """Claim 11 (row F): a one-threshold stump on sharpness separates clean from adversarial inputs.

    Held-out correctness (0/1 per input, from k-fold cross-validation) of the sharpness stump and, as the baseline
    it must be compared with, of a stump on confidence alone. Reproduced when the held-out accuracy's interval lies
    at or above :data:`DETECTOR_REPRODUCED`, partly when above :data:`DETECTOR_PARTLY`.
    """
    stmt = f"A sharpness stump separates clean from adversarial inputs ({name})."
    if len(held_out_sharpness) == 0:
        return Check(f"11-{name}", 11, stmt, NOT_TESTABLE, "too few correctly classified inputs to cross-validate",
                     "accuracy 0.92-0.93")
    acc = bootstrap(_share, held_out_sharpness)
    base = bootstrap(_share, held_out_confidence)
    verdict = judge(acc, DETECTS)
    return Check(
        f"11-{name}", 11, stmt, verdict,
        f"held-out accuracy {acc} over {len(held_out_sharpness)} inputs (reproduced from {DETECTOR_REPRODUCED:g}, "
        f"partly from {DETECTOR_PARTLY:g}); a stump on confidence alone: {base}", "accuracy 0.92-0.93",
        {"accuracy": acc.as_dict(), "confidence_baseline": base.as_dict()},
        acc.measure("held-out accuracy", DETECTS),
    )
