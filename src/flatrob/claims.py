"""The paper's claims as executable checks: each computes its evidence from trajectories and returns a verdict.

A verdict is computed, never written by hand. A check whose data contradict the
claim says "not reproduced"; it does not raise, so a re-run with other
parameters still builds and reports what it found. Thresholds are constants
below, each with its reason.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import pandas as pd
import torch
from torch import Tensor

from flatrob.attacks import STAT_NAMES, Trajectory

__all__ = [
    "Check",
    "RISE_FACTOR",
    "COLLAPSE_FACTOR",
    "NORM_CONSTANT_RATIO",
    "check_adversarial_training_shift",
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


def checks_table(checks: list[Check]) -> pd.DataFrame:
    """The checks as a table (id, verdict, statement, evidence)."""
    return pd.DataFrame([{k: c.as_dict()[k] for k in ("id", "verdict", "statement", "evidence")} for c in checks])

