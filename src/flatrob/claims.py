"""The paper's claims as executable checks: each computes its evidence from trajectories and returns a verdict.

A verdict is computed, never written by hand. A check whose data contradict the
claim says "not reproduced"; it does not raise, so a re-run with other
parameters still builds and reports what it found. Thresholds are constants
below, each with its reason.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import Tensor

from flatrob.attacks import STAT_NAMES, Trajectory

__all__ = [
    "CLAIMS",
    "Check",
    "LEDGER_ENV",
    "VERDICTS",
    "build_ledger",
    "combine",
    "ledger_entry",
    "ledger_table",
    "ROWS",
    "rows_table",
    "record",
    "RISE_FACTOR",
    "COLLAPSE_FACTOR",
    "NORM_CONSTANT_RATIO",
    "check_adversarial_training_shift",
    "check_basin",
    "check_clean_trace",
    "check_confidently_wrong_flat",
    "check_detector",
    "check_gradient_masking",
    "check_loss_growth",
    "check_scaling",
    "check_feature_norm",
    "check_valley_shape",
    "checks_table",
    "curves",
    "valley_summary",
]

#: "sharpness rises": the per-sample peak exceeds the starting value by this factor (median over samples).
RISE_FACTOR = 2.0
#: "collapses after the flip": the final value is below the peak by this factor (median over samples).
COLLAPSE_FACTOR = 10.0
#: "the peak is near the flip": |peak step - flip step| at most this fraction of the path (median), and at least 2 steps.
PEAK_TOLERANCE = 0.1
#: "the feature norm stays constant": per-sample max/min of ||phi|| along the path at most this ratio (median).
NORM_CONSTANT_RATIO = 1.1


#: Row B: "widens the basin" needs the adversarially trained model to walk at least this many times as far (median).
BASIN_FACTOR = 2.0
#: Claim 9: PGD robust accuracy "rises with s" if it gains at least this much (absolute) from the smallest to the largest s.
MASKING_GAIN = 0.25
#: Claim 9: a transfer / gradient-free attack "still succeeds" if its robust accuracy never exceeds the baseline by more than this.
ATTACK_SLACK = 0.05
#: Claim 10: "confidently wrong" means wrong with top-class probability above this.
CONFIDENT = 0.99
#: Claim 11: the paper reports 0.92-0.93; we call >= 0.90 reproduced and >= 0.75 (well above chance, 0.5) partly.
DETECTOR_REPRODUCED, DETECTOR_PARTLY = 0.90, 0.75


@dataclass
class Check:
    """One claim checked on data: ``verdict`` is reproduced / partly / not reproduced / not testable here."""

    id: str
    statement: str
    verdict: str
    evidence: str
    values: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def curves(traj: Trajectory, **labels: Any) -> pd.DataFrame:
    """Per-step quartiles of every statistic over the samples classified correctly at the start.

    One row per (step, statistic) with columns q25, median, q75, mean and the ``labels``.
    Also ``flipped``: the fraction of those samples misclassified at that step.
    """
    sel = traj.pred[0] == traj.labels
    rows = []
    for name in STAT_NAMES:
        v = traj.stats[name][:, sel].double()
        q = torch.quantile(v, torch.tensor([0.25, 0.5, 0.75], dtype=v.dtype), dim=1) if v.shape[1] else torch.full((3, v.shape[0]), float("nan"))
        for t in range(v.shape[0]):
            rows.append({"step": t, "stat": name, "q25": float(q[0, t]), "median": float(q[1, t]),
                         "q75": float(q[2, t]), "mean": float(v[t].mean()) if v.shape[1] else float("nan")})
    frame = pd.DataFrame(rows)
    flipped = (traj.pred[:, sel] != traj.labels[sel]).double().mean(1).numpy()
    frame["flipped"] = flipped[frame["step"].to_numpy()]
    for k, v in labels.items():
        frame[k] = v
    return frame


def _median(t: Tensor) -> float:
    return float(t.double().median()) if t.numel() else float("nan")


def valley_summary(traj: Trajectory, stat: str = "kappa_layer") -> dict[str, float]:
    """Per-sample shape statistics of one statistic along the paths of samples that start correct and flip.

    Medians over those samples of: the start, peak and final values, the
    peak/start and final/peak ratios, the flip and peak steps and their offset,
    the final confidence, the max/min ratio of ||phi||, and how many decades of
    change the factors ||phi||^2 and 1 - ||p||^2 of Tr H each span.
    """
    flip = traj.flip_step()
    sel = (traj.pred[0] == traj.labels) & (flip > 0)
    v = traj.stats[stat][:, sel].double()
    n_start_correct = int((traj.pred[0] == traj.labels).sum())
    out: dict[str, float] = {
        "steps": traj.steps,
        "n_start_correct": n_start_correct,
        "n_flipped": int(sel.sum()),
        "flipped_fraction": float(sel.sum()) / max(n_start_correct, 1),
    }
    if not sel.any():
        return out
    start, peak, final = v[0], v.max(0).values, v[-1]
    peak_step = v.argmax(0)
    phi_sq = traj.stats["feature_norm"][:, sel].double() ** 2
    one_minus_p2 = traj.stats["trace"][:, sel].double() / phi_sq
    decades = lambda a: (a.log10().max(0).values - a.log10().min(0).values)  # noqa: E731
    norm = traj.stats["feature_norm"][:, sel].double()
    out |= {
        "start": _median(start),
        "peak": _median(peak),
        "final": _median(final),
        "peak_over_start": _median(peak / start),
        "final_over_peak": _median(final / peak),
        "flip_step": _median(flip[sel]),
        "peak_step": _median(peak_step),
        "peak_minus_flip": _median((peak_step - flip[sel]).double()),
        "abs_peak_minus_flip": _median((peak_step - flip[sel]).abs().double()),
        "final_confidence": _median(traj.stats["confidence"][-1, sel]),
        "final_wrong": float((traj.pred[-1, sel] != traj.labels[sel]).double().mean()),
        "feature_norm_max_over_min": _median(norm.max(0).values / norm.min(0).values),
        "decades_phi_sq": _median(decades(phi_sq)),
        "decades_one_minus_p2": _median(decades(one_minus_p2.clamp_min(1e-300))),
    }
    return out


def _fmt(x: float) -> str:
    return f"{x:.3g}"


def check_valley_shape(s: dict[str, float], model: str) -> list[Check]:
    """Claim 6: relative sharpness rises from the clean point, peaks near the label flip, then collapses."""
    if s.get("n_flipped", 0) == 0:
        return [Check(f"6-{part}-{model}", stmt, "not testable here", "no sample flipped", s)
                for part, stmt in (("rise", "sharpness rises"), ("peak", "peak near flip"), ("collapse", "collapse"))]
    tol = max(2.0, PEAK_TOLERANCE * s["steps"])
    rise = s["peak_over_start"] >= RISE_FACTOR
    near = s["abs_peak_minus_flip"] <= tol
    collapse = s["final_over_peak"] <= 1 / COLLAPSE_FACTOR
    yes = lambda ok: "reproduced" if ok else "not reproduced"  # noqa: E731
    return [
        Check(f"6-rise-{model}", "Along PGD, relative sharpness rises from the clean point.", yes(rise),
              f"median per-sample peak/start = {_fmt(s['peak_over_start'])} (threshold {RISE_FACTOR:g}); "
              f"start {_fmt(s['start'])}, peak {_fmt(s['peak'])}", s),
        Check(f"6-peak-{model}", "The sharpness peak lies near the label flip.", yes(near),
              f"median |peak step - flip step| = {_fmt(s['abs_peak_minus_flip'])} steps (tolerance {_fmt(tol)} of "
              f"{s['steps']}); median flip at step {_fmt(s['flip_step'])}, peak at {_fmt(s['peak_step'])}", s),
        Check(f"6-collapse-{model}", "After the flip, sharpness collapses in a confidently wrong region.",
              yes(collapse and s["final_wrong"] > 0.5 and s["final_confidence"] > 0.9),
              f"median final/peak = {_fmt(s['final_over_peak'])} (threshold {1 / COLLAPSE_FACTOR:g}); "
              f"final: {100 * s['final_wrong']:.0f}% wrong with median confidence {s['final_confidence']:.4f}", s),
    ]


def check_adversarial_training_shift(clean: dict[str, float], adv: dict[str, float]) -> Check:
    """Claim 7: adversarial training shifts the valley (a later flip and a later peak along the same attack)."""
    if not clean.get("n_flipped") or not adv.get("n_flipped"):
        return Check("7-shift", "Adversarial training shifts the valley.", "not testable here",
                     "one of the models has no flipped sample", {"clean": clean, "adversarial": adv})
    later_flip = adv["flip_step"] > clean["flip_step"]
    later_peak = adv["peak_step"] > clean["peak_step"]
    verdict = "reproduced" if later_flip and later_peak else ("partly" if later_flip or later_peak else "not reproduced")
    still = all(k["peak_over_start"] >= RISE_FACTOR and k["final_over_peak"] <= 1 / COLLAPSE_FACTOR for k in (clean, adv))
    return Check(
        "7-shift",
        "Adversarial training shifts the valley (later flip and peak) but keeps it.",
        verdict if still or verdict == "not reproduced" else "partly",
        f"median flip step {_fmt(clean['flip_step'])} (clean) vs {_fmt(adv['flip_step'])} (adversarially trained); "
        f"median peak step {_fmt(clean['peak_step'])} vs {_fmt(adv['peak_step'])}; "
        f"valley present in both: {still}",
        {"clean": clean, "adversarial": adv},
    )


def check_feature_norm(s: dict[str, float], model: str) -> Check:
    """Claim 12 (a reviewer's alternative): ||phi|| stays constant along the path, so the curve is 1 - ||p||^2."""
    if not s.get("n_flipped"):
        return Check(f"12-{model}", "||phi|| is constant along PGD paths.", "not testable here", "no sample flipped", s)
    constant = s["feature_norm_max_over_min"] <= NORM_CONSTANT_RATIO
    return Check(
        f"12-{model}",
        "The feature norm ||phi|| stays constant along PGD paths (so the sharpness curve is just 1 - ||p||^2).",
        "reproduced" if constant else "not reproduced",
        f"median per-sample max/min of ||phi|| = {_fmt(s['feature_norm_max_over_min'])} (constant if <= "
        f"{NORM_CONSTANT_RATIO:g}); ||phi||^2 spans {_fmt(s['decades_phi_sq'])} decades, 1 - ||p||^2 spans "
        f"{_fmt(s['decades_one_minus_p2'])}: the probability factor "
        f"{'dominates' if s['decades_one_minus_p2'] > 3 * s['decades_phi_sq'] else 'does not dominate'} the curve",
        s,
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
        f"8-{variant}", f"Relative sharpness falls monotonically with the last-layer scale s ({variant}).", verdict,
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
        f"8-loss-growth-{variant}", f"Loss increases under a weak attack concentrate near 0 as s grows ({variant}).",
        verdict,
        f"median increase {_fmt(float(med[0]))} (s = {scales[0]:g}) -> {_fmt(float(med[-1]))} (s = {scales[-1]:g}), "
        f"never rising: {falls}; share below {small:g}: {100 * float(near0[0]):.0f}% -> {100 * float(near0[-1]):.0f}%, "
        f"never falling: {concentrates}; 90th percentile {_fmt(float(inc[0].quantile(0.9)))} -> {_fmt(float(inc[-1].quantile(0.9)))}",
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
        "9", "PGD robust accuracy rises with s, but transfer and gradient-free attacks still succeed.", verdict,
        f"s = {'/'.join(f'{a:g}' for a in scales)}: PGD {pct(pgd)}%, transfer from s = {scales[0]:g} {pct(transfer)}%, "
        f"Square {pct(square)}%, clean {pct(clean)}%; PGD rises by {100 * gain:.0f} points (needs {100 * MASKING_GAIN:.0f}); "
        f"transfer holds: {transfer_ok}; Square holds: {square_ok}",
        {"scales": list(scales), "clean": clean, "pgd": pgd, "transfer": transfer, "square": square},
    )


def check_basin(steps_clean: Tensor, steps_adv: Tensor, definition: str) -> Check:
    """Claim 7 (row B): adversarial training widens the low-loss basin along a PGD-l2 walk.

    ``steps_*`` (n,): iterates before the loss rises (:meth:`Trajectory.loss_rise_step`) of the two
    models on the same inputs. Reproduced when the median ratio is at least ``BASIN_FACTOR``.
    """
    c, a = float(steps_clean.double().median()), float(steps_adv.double().median())
    ratio = a / c if c > 0 else float("inf")
    verdict = "reproduced" if ratio >= BASIN_FACTOR else ("partly" if ratio > 1 else "not reproduced")
    return Check(
        f"7-basin-{definition}", f"Adversarial training widens the low-loss basin ({definition}).", verdict,
        f"median iterates before the loss rises ({definition}): {_fmt(c)} (clean) vs {_fmt(a)} (adversarially "
        f"trained), ratio {_fmt(ratio)} (paper: about 20; reproduced from {BASIN_FACTOR:g})",
        {"clean_median": c, "adversarial_median": a, "ratio": ratio},
    )


def check_clean_trace(trace_clean: Tensor, trace_adv: Tensor) -> Check:
    """Row B's second figure: Tr H at clean test points is larger for the adversarially trained model (0.6 vs 1.0)."""
    mc, ma = float(trace_clean.double().mean()), float(trace_adv.double().mean())
    dc, da = float(trace_clean.double().median()), float(trace_adv.double().median())
    return Check(
        "7-trace", "At clean points Tr H is larger after adversarial training (paper: about 0.6 vs 1.0).",
        "reproduced" if ma > mc else "not reproduced",
        f"mean Tr H at clean test points {_fmt(mc)} (clean) vs {_fmt(ma)} (adversarially trained); "
        f"medians {_fmt(dc)} vs {_fmt(da)}",
        {"mean_clean": mc, "mean_adversarial": ma, "median_clean": dc, "median_adversarial": da},
    )


def check_confidently_wrong_flat(kappa: dict[str, Tensor], confidence: dict[str, Tensor], wrong: dict[str, Tensor]) -> Check:
    """Claim 10: confidently wrong points are flat, far flatter than points near the decision boundary.

    Dicts keyed by "clean", "boundary", "adversarial", each (n,). Reproduced when the median sharpness of
    the adversarial points that are confidently wrong (confidence > ``CONFIDENT``) is at most
    1 / ``COLLAPSE_FACTOR`` of the median at the boundary points.
    """
    sel = wrong["adversarial"] & (confidence["adversarial"] > CONFIDENT)
    k_b = float(kappa["boundary"].double().median())
    if int(sel.sum()) < 10:
        return Check("10-digits", "Confidently wrong points are flat.", "not testable here",
                     f"only {int(sel.sum())} adversarial points are confidently wrong (need 10)", {})
    k_w, k_c = float(kappa["adversarial"][sel].double().median()), float(kappa["clean"].double().median())
    ratio = k_w / k_b
    return Check(
        "10-digits", "Confidently wrong points are flat.", "reproduced" if ratio <= 1 / COLLAPSE_FACTOR else "not reproduced",
        f"{int(sel.sum())} of {len(sel)} adversarial points are confidently wrong (> {CONFIDENT:g}); their median kappa "
        f"{_fmt(k_w)} is {_fmt(ratio)} x the median at the boundary ({_fmt(k_b)}); clean points {_fmt(k_c)}",
        {"n_confidently_wrong": int(sel.sum()), "median_wrong": k_w, "median_boundary": k_b, "median_clean": k_c},
    )


def check_detector(acc_sharpness: np.ndarray, acc_confidence: np.ndarray, name: str) -> Check:
    """Claim 11 (row F): a one-threshold stump on sharpness separates clean from adversarial inputs.

    Held-out accuracies of the k folds, for the sharpness stump and, as the baseline it must be
    compared with, a stump on confidence alone.
    """
    m, c = float(acc_sharpness.mean()), float(acc_confidence.mean())
    verdict = "reproduced" if m >= DETECTOR_REPRODUCED else ("partly" if m >= DETECTOR_PARTLY else "not reproduced")
    return Check(
        f"11-{name}", f"A sharpness stump separates clean from adversarial inputs ({name}).", verdict,
        f"{len(acc_sharpness)}-fold accuracy {m:.3f} +- {float(acc_sharpness.std()):.3f} (paper 0.92-0.93; reproduced "
        f"from {DETECTOR_REPRODUCED:g}, partly from {DETECTOR_PARTLY:g}); a stump on confidence alone: {c:.3f}",
        {"sharpness": acc_sharpness.tolist(), "confidence": acc_confidence.tolist()},
    )


def checks_table(checks: list[Check]) -> pd.DataFrame:
    """The checks as a table (id, verdict, statement, evidence)."""
    return pd.DataFrame([{k: c.as_dict()[k] for k in ("id", "verdict", "statement", "evidence")} for c in checks])



# ---------------------------------------------------------------------------
# The claims ledger (data/claims.json)

#: The twelve claims of the paper the book checks (paper digest, section 6), with the paper's value or shape.
CLAIMS: dict[int, tuple[str, str]] = {
    1: ("The closed-form last-layer Hessian equals the autograd Hessian and is label independent.", "identity"),
    2: ("Layer-wise and neuron-wise relative sharpness have the closed forms of the paper.", "identities"),
    3: ("A loss change above log k forces a label flip; the converse fails.", "proof + two counterexamples"),
    4: ("Bridging lemma: Delta <= L delta / r for the relative feature change.", "inequality"),
    5: ("The local bound l(xi) - l(x) <= delta^2 L^2 kappa / (2 r^2) + c delta^3 holds for small delta.", "c = k m L^6 / (24 r^3)"),
    6: ("Uncanny valley: along PGD, sharpness rises, peaks near the flip, then collapses.", "rise, peak, collapse (row E)"),
    7: ("Adversarial training shifts the valley and widens the low-loss basin.", "about 20x more PGD-l2 steps before the loss rises; Tr H at clean points 0.6 (clean) vs 1.0 (AT) (row B)"),
    8: ("Relative sharpness falls monotonically with the last-layer scale s.", "falls with s (row A)"),
    9: ("Gradient masking: PGD robust accuracy rises with s while transfer / gradient-free attacks still succeed.", "0% at s = 1 to 93% at s = 100; 100% transfer (rows C, D)"),
    10: ("Confidently wrong points are flat.", "shape"),
    11: ("A one-threshold stump on sharpness separates clean from adversarial inputs.", "accuracy 0.92-0.93 (row F)"),
    12: ("Whether ||phi|| stays constant along a trajectory (a reviewer's alternative explanation).", "open question"),
}

#: The paper's experiments (digest section 5): row -> (question, the claim its checks feed, the chapter that re-runs it).
ROWS: dict[str, tuple[str, int, str]] = {
    "A": ("flatness (by last-layer scaling) reduces local loss growth", 8, "last-layer-scaling"),
    "B": ("adversarial training widens the low-loss basin", 7, "basin"),
    "C": ("flatness by scaling masks gradients", 9, "gradient-masking"),
    "D": ("... but examples made at s = 1 still transfer", 9, "gradient-masking"),
    "E": ("the uncanny valley along PGD trajectories", 6, "uncanny-valley"),
    "F": ("sharpness as a detector of adversarial inputs", 11, "detector"),
}


def rows_table(ledger: list[dict[str, Any]]) -> pd.DataFrame:
    """One line per experiment row of the paper: its chapter's checks of the row's claim, combined."""
    out = []
    for row, (question, claim, chapter) in ROWS.items():
        entry = next(e for e in ledger if e["id"] == claim)
        found = [c for c in entry["checks"] if c["chapter"] == chapter]
        out.append({"row": row, "question": question, "claim": claim, "chapter": chapter,
                    "checks": len(found), "verdict": combine([c["verdict"] for c in found]) if found else "not tested yet"})
    return pd.DataFrame(out)


VERDICTS = ("reproduced", "partly", "not reproduced", "not testable here", "not tested yet")

#: Set FLATROB_LEDGER=1 (``make book`` does) to let the chapters write their ledger entries under data/claims/.
LEDGER_ENV = "FLATROB_LEDGER"


def combine(verdicts: list[str]) -> str:
    """One verdict from several checks of the same claim: all reproduced -> reproduced, none -> not reproduced, else partly."""
    tested = [v for v in verdicts if v in ("reproduced", "partly", "not reproduced")]
    if not tested:
        return "not testable here"
    if all(v == "reproduced" for v in tested):
        return "reproduced"
    if all(v == "not reproduced" for v in tested):
        return "not reproduced"
    return "partly"


def ledger_entry(claim: int, verdict: str, ours: str, setting: str, chapter: str, provenance: dict[str, Any],
                 values: dict[str, Any] | None = None) -> dict[str, Any]:
    """One row of the ledger. ``verdict`` must come from a computation (a :class:`Check` or :func:`combine`)."""
    if claim not in CLAIMS:
        raise ValueError(f"claim must be one of {sorted(CLAIMS)}; got {claim}")
    if verdict not in VERDICTS:
        raise ValueError(f"verdict must be one of {VERDICTS}; got {verdict!r}")
    statement, paper = CLAIMS[claim]
    return {"id": claim, "statement": statement, "paper": paper, "setting": setting, "ours": ours,
            "verdict": verdict, "chapter": chapter, "values": values or {}, "provenance": provenance}


def _ledger_dir(root: Path | None) -> Path:
    from flatrob.runs import repo_root

    return (root or repo_root()) / "data" / "claims"


def record(chapter: str, entries: list[dict[str, Any]], *, root: Path | None = None, force: bool = False) -> Path | None:
    """Write a chapter's ledger entries to data/claims/<chapter>.json (atomically) when FLATROB_LEDGER=1 or ``force``.

    Test runs with small parameters leave the ledger alone. Returns the path written, or None.
    """
    import json
    import os

    from flatrob.runs import _atomic_write_text

    if not force and os.environ.get(LEDGER_ENV) != "1":
        return None
    path = _ledger_dir(root) / f"{chapter}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    _atomic_write_text(path, json.dumps(entries, indent=2, default=str) + "\n")
    return path


def build_ledger(root: Path | None = None, *, write: bool = True) -> list[dict[str, Any]]:
    """Merge data/claims/*.json into one entry per claim (data/claims.json); claims without entries say so.

    Several entries for one claim (from several chapters) are kept as a list
    ``checks`` and combined by :func:`combine`.
    """
    import json

    from flatrob.runs import _atomic_write_text

    by_claim: dict[int, list[dict[str, Any]]] = {c: [] for c in CLAIMS}
    folder = _ledger_dir(root)
    for f in sorted(folder.glob("*.json")) if folder.exists() else []:
        for e in json.loads(f.read_text()):
            by_claim[int(e["id"])].append(e)
    ledger = []
    for c, (statement, paper) in CLAIMS.items():
        found = by_claim[c]
        ledger.append({
            "id": c, "statement": statement, "paper": paper,
            "verdict": combine([e["verdict"] for e in found]) if found else "not tested yet",
            "checks": found,
        })
    if write:
        _atomic_write_text(folder.parent / "claims.json", json.dumps(ledger, indent=2, default=str) + "\n")
    return ledger


def ledger_table(ledger: list[dict[str, Any]]) -> pd.DataFrame:
    """The ledger as a table: one row per check (claims without checks get one row)."""
    rows = []
    for e in ledger:
        for chk in e["checks"] or [None]:
            prov = (chk or {}).get("provenance", {})
            rows.append({
                "claim": e["id"], "statement": e["statement"], "paper": e["paper"], "verdict (claim)": e["verdict"],
                "our setting": (chk or {}).get("setting", ""), "ours": (chk or {}).get("ours", ""),
                "verdict (check)": (chk or {}).get("verdict", ""), "chapter": (chk or {}).get("chapter", ""),
                "device": prov.get("device", ""), "commit": str(prov.get("commit", ""))[:10],
            })
    return pd.DataFrame(rows)
