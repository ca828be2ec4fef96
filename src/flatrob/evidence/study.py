"""The valley-conditions study as effect sizes and a mechanism (beyond the paper).

The study's verdicts say on which side of the collapse threshold a setting falls; a threshold hides a graded
effect. Here the outcome is the depth of the collapse itself, the median per-input final/peak of the relative
sharpness of each run (one seed of one setting), on the log scale:

* :func:`effect_sizes`: for every pair of settings that differ in one axis only (:data:`flatrob.valley.AXES`),
  the factor by which the axis changes the collapse depth, the geometric mean over the seeds of the ratio of the
  two settings' depths (the seeds paired: each seed attacks its own draw of inputs in both settings), with a 95%
  t-interval over the seeds;
* :func:`mechanism`: across every run of every setting, the straight line of log10 final/peak against log10 of one
  minus the final confidence (what the model shows at the end of the attack's path), its slope with an interval,
  and how well it predicts settings it was not fitted on (leave one setting out), against predicting the mean.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import TypedDict

import numpy as np
import pandas as pd

from flatrob.evidence.estimates import t_interval
from flatrob.util.provenance import interval_text
from flatrob.util.provenance import three_digits as fmt
from flatrob.valley import one_axis_pairs

__all__ = [
    "CARRIED",
    "PREDICTS",
    "MechanismFit",
    "effect_sizes",
    "effects_sentence",
    "mechanism",
    "mechanism_sentence",
    "through_confidence",
    "through_sentence",
]

#: An axis acts "through the final confidence" when the change in final confidence carries between these shares of
#: its effect on the log collapse depth (:func:`through_sentence`; fixed before the study was fitted).
CARRIED = (0.5, 1.5)

#: The final confidence "predicts" the collapse depth when its held-out error is at most this share of the error of
#: predicting each held-out setting by the mean of the others (fixed before the study was fitted).
PREDICTS = 0.5


def effect_sizes(points: pd.DataFrame) -> pd.DataFrame:
    """Each axis's effect on the collapse depth, with its interval over seeds.

    Args:
        points: one row per run at one budget: ``setting`` (a label), ``architecture``, ``seed``, ``final/peak``
            (the run's median per-input final/peak) and the columns of :data:`~flatrob.valley.AXES` the setting
            has (NaN for networks outside the residual family, which pair on ``epochs`` only, with themselves).

    Returns:
        One row per pair of settings that differ in one axis (:func:`flatrob.valley.one_axis_pairs`): ``axis``,
        ``from`` and ``to`` (from without to with, from less to more), ``seeds`` (paired), ``factor`` (geometric
        mean of to/from over the seeds), ``lo`` and ``hi`` (its 95% t-interval, on the log scale; NaN for fewer than
        two seeds) and ``decided`` (the interval excludes 1: the axis changes the depth, in the direction of the
        factor).
    """
    rows = []
    for axis, lo, hi in one_axis_pairs(points.drop_duplicates("setting").to_dict(orient="records")):
        da = points[points.setting == lo["setting"]].set_index("seed")["final/peak"]
        db = points[points.setting == hi["setting"]].set_index("seed")["final/peak"]
        seeds = sorted(set(da.index) & set(db.index))
        logs = [math.log(db[s] / da[s]) for s in seeds if da[s] > 0 and db[s] > 0]
        low, high = t_interval(logs)
        rows.append(
            {
                "axis": axis,
                "from": lo["setting"],
                "to": hi["setting"],
                "seeds": len(logs),
                "factor": math.exp(float(np.mean(logs))) if logs else math.nan,
                "lo": math.exp(low) if math.isfinite(low) else math.nan,
                "hi": math.exp(high) if math.isfinite(high) else math.nan,
                "decided": bool(math.isfinite(low) and (high < 0 or low > 0)),
            }
        )
    return pd.DataFrame(rows)


#: Each axis of :data:`flatrob.valley.AXES` as the subject of a sentence, what it changes from and to.
AXIS_WORDS = {
    "epochs": "Training longer",
    "batch norm": "Adding batch norm",
    "residual": "Adding residual connections",
    "depth": "Going deeper",
    "widen": "Going wider",
}


def _factor(r: Mapping[str, object]) -> str:
    return f"x{interval_text(r['factor'], r['lo'], r['hi'])} ({r['from']} -> {r['to']})"


def _axis_clause(axis: str, part: pd.DataFrame) -> str:
    """One axis's sentence of :func:`effects_sentence`."""
    name = AXIS_WORDS.get(str(axis), str(axis))
    decided = part[part.decided].sort_values("factor").to_dict("records")
    rest = part[~part.decided].sort_values("factor").to_dict("records")
    n = len(part)
    if not decided:
        spread = (f"x{fmt(rest[0]['factor'])}" + (f" to x{fmt(rest[-1]['factor'])}" if len(rest) > 1 else "")
                  if rest else "")  # fmt: skip
        return f"{name} changes it in none of its {n} pairs (every interval includes 1: {spread})"
    below = all(r["factor"] < 1 for r in decided)
    above = all(r["factor"] > 1 for r in decided)
    verb = "deepens it" if below else "makes it shallower" if above else "changes it"
    said = _factor(decided[0]) if len(decided) == 1 else f"from {_factor(decided[0])} to {_factor(decided[-1])}"
    tail = f"; in the other {len(rest)} the interval includes 1" if rest else ""
    return f"{name} {verb} in {len(decided)} of {n} pairs, {said}{tail}"


def effects_sentence(effects: pd.DataFrame) -> str:
    """The effect sizes as a finding in words, one sentence per axis (most decided pairs first): in how many of
    its pairs the axis changes the collapse depth and which way, the smallest and the largest decided factor with
    their intervals, and how many pairs leave it undecided (the axes that decide in the largest share of their pairs,
    and of those the ones with the most pairs, first).

    Args:
        effects: :func:`effect_sizes`.

    Returns:
        Markdown; empty for no pairs.
    """
    if effects.empty:
        return ""
    groups = sorted(effects.groupby("axis", sort=False), key=lambda g: (-float(g[1].decided.mean()), -len(g[1])))
    return (
        "What changes the depth of the collapse (each factor: the geometric mean over the seeds of the change in "
        "final/peak at the paper's budget, with its 95% t-interval; below 1, a deeper collapse). "
        + " ".join(_axis_clause(str(axis), part) + "." for axis, part in groups)
    )


#: :func:`mechanism`'s fit (empty for fewer than three settings): the line of log10 final/peak against log10
#: (1 - final confidence), its slope's interval, the fit's R^2, the held-out and the null error (decades), the runs
#: and settings it was fitted on, and the held-out prediction per setting (a DataFrame).
MechanismFit = TypedDict(
    "MechanismFit",
    {
        "slope": float,
        "intercept": float,
        "slope lo": float,
        "slope hi": float,
        "r2": float,
        "held-out rmse": float,
        "null rmse": float,
        "runs": int,
        "settings": int,
        "predictions": pd.DataFrame,
    },
    total=False,
)


def mechanism(points: pd.DataFrame) -> MechanismFit:
    """How well what the model shows at the end of the path predicts the collapse depth.

    Args:
        points: one row per run: ``setting``, ``final/peak`` and ``final confidence`` (the run's medians).

    Returns:
        ``slope`` and ``intercept`` of log10 final/peak against log10 (1 - final confidence) (least squares over
        every run), ``slope lo``/``slope hi`` (its 95% t-interval), ``r2`` (in the fit), ``held-out rmse``
        (decades: each setting predicted by the line fitted without it), ``null rmse`` (the same, predicting the
        mean of the other settings), ``runs``, ``settings`` and ``predictions`` (per setting: observed and held-out
        predicted mean log10 final/peak); empty for fewer than three settings.
    """
    ok = points[(points["final/peak"] > 0) & (points["final confidence"] < 1)]
    x = np.log10(1 - ok["final confidence"].to_numpy(dtype=float))
    y = np.log10(ok["final/peak"].to_numpy(dtype=float))
    groups = ok["setting"].to_numpy()
    names = list(dict.fromkeys(groups))
    if len(names) < 3 or len(x) < 4:
        return {}
    slope, intercept = np.polyfit(x, y, 1)
    fitted = slope * x + intercept
    resid = y - fitted
    se = math.sqrt(float(resid @ resid) / (len(x) - 2) / float(((x - x.mean()) ** 2).sum()))
    from scipy.stats import t

    half = float(t.ppf(0.975, len(x) - 2)) * se
    errors, null, predictions = [], [], []
    for name in names:
        out = groups == name
        b, a = np.polyfit(x[~out], y[~out], 1)
        guess = b * x[out] + a
        errors += list(y[out] - guess)
        null += list(y[out] - y[~out].mean())
        predictions.append({"setting": name, "observed": float(y[out].mean()), "predicted": float(guess.mean())})
    return {
        "slope": float(slope),
        "intercept": float(intercept),
        "slope lo": float(slope - half),
        "slope hi": float(slope + half),
        "r2": float(1 - (resid @ resid) / ((y - y.mean()) @ (y - y.mean()))),
        "held-out rmse": float(np.sqrt(np.mean(np.square(errors)))),
        "null rmse": float(np.sqrt(np.mean(np.square(null)))),
        "runs": int(len(x)),
        "settings": len(names),
        "predictions": pd.DataFrame(predictions),
    }


def mechanism_sentence(fit: MechanismFit) -> str:
    """:func:`mechanism` in words: the fitted slope with its interval, and the held-out error against the null."""
    if not fit:
        return ""
    better = fit["held-out rmse"] <= PREDICTS * fit["null rmse"]
    return (
        f"Over {fit['runs']} runs of {fit['settings']} settings, log10 final/peak = {fit['slope']:.2f} "
        f"[{fit['slope lo']:.2f}, {fit['slope hi']:.2f}] x log10(1 - final confidence) + {fit['intercept']:.2f} "
        f"(R² {fit['r2']:.2f}). Predicting each setting from the line fitted without it misses by "
        f"{fit['held-out rmse']:.2f} decades (root mean square over its runs), against {fit['null rmse']:.2f} "
        "for the mean of the other settings: "
        + (
            "how confident the model ends the attack predicts how deep the collapse is, in settings the fit did "
            "not see."
            if better
            else f"the final confidence does not predict the collapse depth (that needs at most {PREDICTS:g} of the "
            "mean's error)."
        )
    )


def through_confidence(effects: pd.DataFrame, points: pd.DataFrame, fit: MechanismFit) -> pd.DataFrame:
    """How much of each axis's effect the change in final confidence carries: the factor the fitted line
    (:func:`mechanism`) predicts from a pair's change in log10 (1 - final confidence) alone, beside the observed one.

    Args:
        effects: :func:`effect_sizes`.
        points: the runs :func:`effect_sizes` and :func:`mechanism` were given (``setting``, ``seed``,
            ``final/peak``, ``final confidence``).
        fit: :func:`mechanism` of ``points``.

    Returns:
        One row per pair of ``effects``: ``axis``, ``from``, ``to``, ``observed`` (the factor) and ``through
        confidence`` (10 ** (slope x the mean over the paired seeds of the change in log10 (1 - final confidence)));
        empty without a fit.
    """
    if not fit or effects.empty:
        return pd.DataFrame(columns=["axis", "from", "to", "observed", "through confidence"])
    x = points.assign(x=np.log10((1 - points["final confidence"].astype(float)).clip(lower=1e-300)))
    rows = []
    for r in effects.to_dict("records"):
        a = x[x.setting == r["from"]].set_index("seed")["x"]
        b = x[x.setting == r["to"]].set_index("seed")["x"]
        seeds = sorted(set(a.index) & set(b.index))
        dx = float(np.mean([b[s] - a[s] for s in seeds])) if seeds else math.nan
        rows.append({"axis": r["axis"], "from": r["from"], "to": r["to"], "observed": r["factor"],
                     "through confidence": 10 ** (fit["slope"] * dx)})  # fmt: skip
    return pd.DataFrame(rows)


def through_sentence(table: pd.DataFrame) -> str:
    """:func:`through_confidence` in words: per axis, the median share of the observed change in log final/peak
    that the change in final confidence accounts for (1 where the axis acts entirely through how confident the model
    ends the attack, 0 where not at all), over the axis's pairs whose observed factor differs from 1 by at least 10%.
    """
    parts: list[str] = []
    through: list[str] = []
    other: list[str] = []
    for axis, part in table.groupby("axis", sort=False):
        moved = part[(part.observed - 1).abs() >= 0.1]
        if moved.empty:
            continue
        shares = np.log(moved["through confidence"].astype(float)) / np.log(moved["observed"].astype(float))
        name, share = AXIS_WORDS.get(str(axis), str(axis)).lower(), float(np.median(shares))
        parts.append(f"{name}: {share:.0%} ({len(moved)} pair{'s' if len(moved) > 1 else ''})")
        (through if CARRIED[0] <= share <= CARRIED[1] else other).append(name)
    if not parts:
        return ""
    verdict = (
        " Every axis acts on the collapse through how confident the model ends the attack."
        if not other
        else f" Through the final confidence: {', '.join(through) or 'none'}; not, or not only: {', '.join(other)}."
    )
    return ("The share of each axis's effect on the collapse depth (log scale) that its change in final confidence "
            "carries through the fitted line, the median over the axis's pairs that move the depth by 10% or more: "
            + "; ".join(parts) + "." + verdict)  # fmt: skip
