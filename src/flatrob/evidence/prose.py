"""Sentences that state findings, generated from the checks (their values and verdicts), never typed by hand.

A chapter's fixed text explains; where it would state a direction (the sharpness falls, the model flips later),
the sentence comes from here, so that it cannot contradict the numbers beside it. :data:`TEXT_CLAIMS` lists the
phrases a chapter's fixed text may use only while its committed check supports them, and :data:`DIRECTIONS` the
quantities whose direction (rises, falls, later, fewer) the fixed text may state only as the committed checks
measured it; :func:`contradictions` finds what they do not support (a test runs it on every chapter).
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from flatrob.evidence.records import LedgerEntry, LedgerFile, mapping, number
from flatrob.evidence.verdicts import NOT_REACHED, Check
from flatrob.util.provenance import interval_text, short_value

__all__ = [
    "DIRECTIONS",
    "TEXT_CLAIMS",
    "Direction",
    "TextClaim",
    "basin",
    "confidence",
    "contradictions",
    "direction_contradictions",
    "fixed_text",
    "scaling",
    "valley",
]


def _f(x: float | None) -> str:
    return "n/a" if x is None or not math.isfinite(x) else f"{x:.3g}"


def _value(c: Check | None, key: str) -> float | None:
    if c is None or key not in c.values:
        return None
    v = c.values[key]
    return number(v["value"]) if isinstance(v, Mapping) and v.get("value") is not None else None


def _find(found: Iterable[Check], part: str, **setting: Any) -> Check | None:
    for c in found:
        if (
            c.part == part
            and c.setting.get("source", "live") == "live"
            and all(c.setting.get(k) == v for k, v in setting.items())
        ):
            return c
    return None


def _radius(eps: float) -> str:
    return "8/255 (the paper's)" if math.isclose(eps, 8 / 255, rel_tol=1e-6) else short_value(eps)


def valley(found: Sequence[Check], radii: Sequence[float]) -> str:
    """What the uncanny-valley checks found, radius by radius, in words."""
    out = []
    for eps in radii:
        rise, collapse = (_find(found, p, eps=eps, training="clean") for p in ("rise", "collapse"))
        adv_collapse = _find(found, "collapse", eps=eps, training="adversarial")
        shift = _find(found, "shift", eps=eps)
        if rise is None or collapse is None:
            continue
        v = collapse.values
        text = (
            f"**At radius {_radius(eps)}**, {v['n_flipped']} of {v['n_start_correct']} inputs that start correct flip "
            f"under the clean model"
        )
        if adv_collapse is not None:
            text += (
                f" and {adv_collapse.values['n_flipped']} of {adv_collapse.values['n_start_correct']} under the "
                "adversarially trained one"
            )
        if rise.verdict == "not testable here":
            out.append(text + ": too few to judge the valley.")
            continue
        if rise.verdict == NOT_REACHED:
            out.append(
                text + ": fewer than a quarter of the clean model's inputs flip, so its attack does not reach the "
                "regime of the valley and nothing at this radius counts for or against it."
            )
            continue
        drop = _value(collapse, "final_over_peak")
        text += (
            f". For the clean model the median sharpness rises {_f(_value(rise, 'median peak/start'))}-fold "
            f"({rise.verdict}) and "
        )
        if collapse.verdict == "reproduced":
            text += f"collapses after the flip to {_f(drop)} of its peak"
        elif collapse.verdict == NOT_REACHED:
            text += (
                f"ends at {_f(drop)} of its peak, but the attacks end near the decision boundary, not confidently "
                "wrong: the collapse the paper describes is not reached in this regime"
            )
        else:
            text += f"ends at {_f(drop)} of its peak, which is {'a partial' if collapse.verdict == 'partly' else 'no'} "
            text += "collapse"
        text += f" ({collapse.verdict})."
        if shift is not None and shift.verdict != "not testable here":
            d = _value(shift, "flip_later")
            direction = "later" if d is not None and d > 0 else "earlier" if d is not None and d < 0 else "no later"
            text += (
                f" Adversarial training makes the inputs flip {direction}, by {_f(abs(d) if d is not None else None)}"
                f" steps in restricted mean (claim 7's shift: {shift.verdict})."
            )
        out.append(text)
    return "\n\n".join(out)


def basin(found: Sequence[Check]) -> str:
    """What the basin checks found, in words."""
    out = []
    for c in found:
        if c.part == "basin" and c.setting.get("source", "live") == "live":
            r = _value(c, "ratio of restricted mean times to the loss rise")
            never, v = mapping(c.values["never_rose"]), c.values
            how = "longer" if r is not None and r > 1 else "shorter"
            out.append(
                f'With the {c.setting.get("definition")} reading of "the loss rises", the adversarially trained '
                f"model's walks stay low {_f(r)} times {how} in restricted mean ({c.verdict}; the paper: about "
                f"20); {never['clean']} clean and {never['adversarial']} adversarially "
                f"trained walks never rise within the walk, and the largest ratio this walk can show is "
                f"{_f(number(v['largest_measurable_ratio']))}."
            )
        if c.part == "trace" and c.setting.get("source", "live") == "live":
            r = _value(c, "ratio of median Tr H")
            out.append(
                f"At the clean points the median of $\\operatorname{{Tr}} H$ is {_f(r)} times the clean model's "
                f"({c.verdict}; the paper: 1.0 vs 0.6, a factor of about 1.7)."
            )
    return " ".join(out)


def scaling(
    found: Sequence[Check], confidence_rising: float, confidence_all: float, n_rising: int, n_points: int
) -> str:
    """What the last-layer-scaling checks found about the sharpness against s, in words."""
    med = _find(found, "median", variant="bias scaled")
    mono = _find(found, "monotone", variant="bias scaled")
    if med is None or mono is None:
        return ""
    falls = {
        "reproduced": "falls at every step of the grid",
        "partly": "falls at some steps of the grid, and not clearly at others",
        "not reproduced": "does not fall at every step: it rises somewhere on the grid",
    }
    text = f"With the bias scaled, the median sharpness {falls.get(med.verdict, med.verdict)} ({med.verdict}). "
    text += (
        f"Point by point, {n_rising} of {n_points} points see their sharpness rise somewhere on the grid "
        f"({mono.verdict}); their median confidence at $s = 1$ is {_f(confidence_rising)}, against "
        f"{_f(confidence_all)} over all points: "
    )
    text += (
        "the rising points are the less confident ones, where $s^2$ beats the exponential for a while."
        if confidence_rising < confidence_all
        else "they are not the less confident ones."
    )
    return text


def robust_by_scale(pooled: pd.DataFrame, paper: float) -> str:
    """Row A's own number in words: the robust accuracy of the unscaled model (s = 1) under the weakest attack of
    the table, pooled over seeds as counts with its interval, beside the paper's, and how it moves across the scales
    under each scale's own attack.

    Args:
        pooled: :func:`flatrob.evidence.estimates.pooled_shares` of the runs' ``robust.csv`` by radius and
            ``scale s``, with the columns ``robust accuracy (own attack)`` and its ``lo``/``hi``.
        paper: the paper's robust accuracy of its unscaled model under its weak attack (row A).

    Returns:
        One paragraph; empty without s = 1 in the table.
    """
    own = "robust accuracy (own attack)"
    weak = pooled[pooled["radius"] == pooled["radius"].min()].sort_values("scale s")
    at1 = weak[weak["scale s"] == 1.0]
    if at1.empty:
        return ""
    r = at1.iloc[0]
    first, last = weak.iloc[0], weak.iloc[-1]
    return (
        f"Under the weak attack (PGD-$\\ell_2$, radius {_f(float(r['radius']))}) the unscaled model keeps "
        f"{interval_text(r[own], r[own + ' lo'], r[own + ' hi'], _f)} of its inputs ({int(r['seeds'])} seeds, their "
        f"counts pooled); the paper's ResNet-18 on CIFAR-10 keeps {_f(paper)}. Each scale attacked by its own PGD, "
        f"the robust accuracy goes from {_f(first[own])} at $s = {_f(float(first['scale s']))}$ to {_f(last[own])} "
        f"at $s = {_f(float(last['scale s']))}$" + _moves(weak, own, r) + "."
    )


def _moves(weak: pd.DataFrame, own: str, at1: pd.Series) -> str:
    """Whether any scale's interval of robust accuracy (own attack) lies apart from the unscaled model's."""
    apart = weak[(weak[own + " lo"] > at1[own + " hi"]) | (weak[own + " hi"] < at1[own + " lo"])]
    if apart.empty:
        return ": every scale's interval overlaps the unscaled model's"
    return (
        f"; at $s$ = {', '.join(_f(float(v)) for v in apart['scale s'])} its interval lies apart from the unscaled "
        "model's. Scaling (with the bias) leaves the decision regions as they are, so what moves is what the attack's "
        "gradient can do (the gradient-masking chapter)"
    )


def confidence(points_wrong: float, confidently_wrong: int, n: int, radius: float) -> str:
    """What the attack's end points are, in words."""
    kind = (
        "mostly confidently wrong"
        if confidently_wrong > n / 2
        else "mostly wrong, but seldom confidently"
        if points_wrong > 0.5
        else "mostly still right"
    )
    return (
        f"At radius {_radius(radius)} the attack's end points are {kind}: {100 * points_wrong:.0f}% are wrong, "
        f"{confidently_wrong} of {n} wrong with confidence above 0.99."
    )


# ---------------------------------------------------------------------------
# fixed text that states a direction


@dataclass(frozen=True)
class TextClaim:
    """A phrase (``pattern``, a regular expression) that a chapter's fixed text may state only while the committed
    check it depends on supports it: ``allowed(entries)`` over the chapter's committed ledger entries."""

    chapter: str
    pattern: str
    allowed: Callable[[Sequence[LedgerEntry]], bool]
    why: str


def _verdict_of(entries: Sequence[LedgerEntry], part: str, ok: set[str], **setting: Any) -> bool:
    hits = [
        e
        for e in entries
        if e.get("part") == part
        and all(
            isinstance(here := e["setting"].get(k), float)
            and isinstance(v, float)
            and math.isclose(here, v, rel_tol=1e-6)
            or e["setting"].get(k) == v
            for k, v in setting.items()
        )
    ]
    return bool(hits) and all(e["verdict"] in ok for e in hits)


#: The directions the five passages found contradicting their own numbers stated (issue of 2026-12-02), each
#: allowed only where the check agrees.
TEXT_CLAIMS: tuple[TextClaim, ...] = (
    TextClaim(
        "confidence-flatness",
        r"mostly confidently wrong",
        lambda es: any(
            e.get("part") == "attack"
            and number(e["values"].get("n_confidently_wrong", 0)) * 2 > number(e["setting"].get("inputs", math.inf))
            for e in es
        ),
        "the attack's end points are mostly confidently wrong",
    ),
    TextClaim(
        "basin",
        r"times as far",
        lambda es: _verdict_of(es, "basin", {"reproduced"}),
        "the adversarially trained model walks (much) farther",
    ),
    TextClaim(
        "basin",
        r"(the label|label) flips later",
        lambda es: _verdict_of(es, "shift", {"reproduced"}, eps=8 / 255),
        "the valley shifts to later flips",
    ),
    TextClaim(
        "last-layer-scaling",
        r"median (relative )?sharpness falls over the grid",
        lambda es: _verdict_of(es, "median", {"reproduced"}, variant="bias scaled"),
        "the median sharpness falls at every step",
    ),
    TextClaim(
        "uncanny-valley",
        r"judged by the same rule as within one run",
        lambda es: False,
        "over seeds the verdict is a majority of the seeds' verdicts, not the within-run rule",
    ),
)


@dataclass(frozen=True)
class Direction:
    """A quantity whose direction a chapter's fixed text may state (it rises, falls, grows, shrinks, comes later,
    earlier, more, fewer): ``subject`` (a regular expression naming it in a sentence), the committed checks that
    measure it (``part``; their decisive measure) and the value at which it neither rises nor falls (``neutral``:
    a ratio's 1, a difference's 0). The direction the text states must be the direction the ledger measured."""

    chapter: str
    subject: str
    part: str
    neutral: float


#: The quantities whose direction the chapters' fixed text could state, with the checks that measure them.
DIRECTIONS: tuple[Direction, ...] = (
    Direction("basin", r"\b(basin|walks? stay(s)? low|loss rises)\b", "basin", 1.0),
    Direction("basin", r"\b(label )?flips?\b", "shift", 0.0),
    Direction("uncanny-valley", r"\bflip(s|ping)? (later|earlier)\b|\bflip step\b", "shift", 0.0),
    Direction("last-layer-scaling", r"\bmedian (relative )?sharpness\b", "median", 1.0),
    Direction("last-layer-scaling", r"\bloss increases?\b", "loss-growth", 0.0),
    Direction("gradient-masking", r"\b(loss increases?|weak attack)\b", "loss-growth", 0.0),
    Direction("gradient-masking", r"\bPGD robust accuracy\b", "masking", 0.0),
)
#: Words that say a quantity goes up (or comes later, or there is more of it), and down.
UP = r"\b(rises?|rising|rose|grows?|growing|grew|increases?|increasing|more|larger|longer|later|higher|climbs?)\b"
DOWN = (
    r"\b(falls?|falling|fell|shrinks?|shrinking|decreases?|decreasing|less|fewer|smaller|shorter|earlier|lower|"
    r"drops?|did less)\b"
)
#: How many words after the subject a direction word may stand to be said of it.
WINDOW = 4
#: A sentence that reports someone else's claim or asks a question states no finding of ours.
HEDGED = r"\b(paper|papers|claims?|reports?|reported|whether|if|would|could|should|expects?|asks?|reviewer)\b|\?"


def _measured(entries: Sequence[LedgerEntry], d: Direction) -> str | None:
    """The direction the committed checks of ``d`` measured: "up", "down", or None (no measure, or mixed)."""
    values = [
        float(m["value"])
        for e in entries
        if e.get("part") == d.part and (m := e.get("measure")) and m.get("value") is not None
    ]
    if not values:
        return None
    if all(v > d.neutral for v in values):
        return "up"
    if all(v < d.neutral for v in values):
        return "down"
    return None


def direction_contradictions(path: Path, entries: Sequence[LedgerEntry]) -> list[str]:
    """The sentences of a chapter's fixed text that state a direction of a quantity of :data:`DIRECTIONS` opposite
    to the one its committed checks measured (sentences that report the paper's claim, or ask, are left alone)."""
    text = fixed_text(path.read_text())
    sentences = re.split(r"(?<=[.!?])\s+|\n\s*\n", text)
    found = []
    for d in (d for d in DIRECTIONS if d.chapter == path.stem):
        measured = _measured(entries, d)
        if measured is None:
            continue
        for sentence in sentences:
            one = " ".join(sentence.split())
            if not re.search(d.subject, one, flags=re.I) or re.search(HEDGED, one, flags=re.I):
                continue
            # what the sentence says of the subject: the few words after it (its own words, "loss increase", say
            # nothing; "as s grows" further on is about s)
            after = " ".join(" ".join(one[m.end() :].split()[:WINDOW]) for m in re.finditer(d.subject, one, flags=re.I))
            up, down = re.search(UP, after, flags=re.I), re.search(DOWN, after, flags=re.I)
            says = "up" if up and not down else "down" if down and not up else None
            if says and says != measured:
                found.append(
                    f"{path.name}: says {one[:90]!r} ({says}), while its committed checks measured {d.part} "
                    f"going {measured}"
                )
    return found


def fixed_text(markdown: str) -> str:
    """A MyST notebook's text outside its code cells (the front matter and every code cell removed)."""
    text = re.sub(r"\A---\n.*?\n---\n", "", markdown, flags=re.S)
    return re.sub(r"```\{code-cell\}.*?\n```", "", text, flags=re.S)


def _entries_of(committed: Mapping[str, LedgerFile], chapter: str) -> list[LedgerEntry]:
    doc = committed.get(chapter)
    return doc["entries"] if doc else []


def contradictions(book: Path, committed: Mapping[str, LedgerFile]) -> list[str]:
    """The phrases of :data:`TEXT_CLAIMS` that a chapter's fixed text states although its committed checks do not
    support them (``committed``: :func:`flatrob.evidence.ledger.load` of data/claims). Every over-seeds section is
    held to the uncanny-valley rule on the same-rule phrase."""
    found = []
    for path in sorted(book.rglob("*.md")):
        text = fixed_text(path.read_text())
        for claim in TEXT_CLAIMS:
            if claim.chapter != path.stem and not (claim.chapter == "uncanny-valley" and "same rule" in claim.pattern):
                continue
            entries = _entries_of(committed, claim.chapter)
            if re.search(claim.pattern, text, flags=re.I) and not claim.allowed(entries):
                found.append(
                    f"{path.name}: says {claim.pattern!r} ({claim.why}), which its committed checks do not support"
                )
        found += direction_contradictions(path, _entries_of(committed, path.stem))
    return found


def path_intervals(along: pd.DataFrame) -> pd.DataFrame:
    """``along`` (:func:`flatrob.detection.detector_along_path` or :func:`~flatrob.detection.pool_along_path`) with
    the 95% Wilson interval of each stump's held-out count (columns ``<stump> lo`` and ``<stump> hi``)."""
    from flatrob.evidence.estimates import share_of

    out = along.copy()
    for stump in ("sharpness", "confidence"):
        found = [share_of(int(c), int(n)) for c, n in zip(out[f"{stump} correct"], out["points"], strict=True)]
        out[f"{stump} lo"] = [e.lo for e in found]
        out[f"{stump} hi"] = [e.hi for e in found]
    return out


def pooled_path(results: Sequence[Mapping[str, object]]) -> pd.DataFrame:
    """The detector along the path over the seeds of committed sweeps (``ChapterContext.sweep_results("path.json")``:
    each run's :func:`flatrob.detection.detector_along_path` table as records): the seeds' counts added
    (:func:`flatrob.detection.pool_along_path`), with Wilson intervals (:func:`path_intervals`)."""
    from flatrob.detection import pool_along_path

    return path_intervals(pool_along_path([pd.DataFrame(r["data"]) for r in results if r["data"]]))


def _accuracy(row: pd.Series, stump: str) -> str:
    return interval_text(row[f"{stump} accuracy"], row[f"{stump} lo"], row[f"{stump} hi"], _f)


def _detector_model(model: str, part: pd.DataFrame, paper_step: int) -> str:
    """One model's paragraph of :func:`detector_path`."""
    from flatrob.evidence.checks.rules import DETECTOR_REFUTED, DETECTOR_REPRODUCED

    rows = part.set_index("position")
    near_rows = [rows.loc[p] for p in ("first flip", "sharpness peak") if p in rows.index]
    if not near_rows or str(paper_step) not in rows.index:
        return f"For the {model} model too few inputs are fooled to score the stump along the path."
    end = rows.loc[str(paper_step)]
    near = any(r["sharpness lo"] >= DETECTOR_REPRODUCED for r in near_rows)
    valley = end["sharpness hi"] < DETECTOR_REFUTED
    reading = (
        "the stump separates near the decision boundary and fails where the paper's attack ends, in the valley; "
        "this would explain the paper's 0.92-0.93 if its adversarial points lay nearer the boundary than the end "
        "of the attack (where they lay is not in what we could read of the paper)"
        if near and valley
        else "the stump separates near the boundary and still at the paper's endpoint"
        if near
        else "the stump fails at the paper's endpoint and does not reach "
        f"{DETECTOR_REPRODUCED:g} near the boundary either"
        if valley
        else "where the attack ends does not explain the difference from the paper"
    )
    where = "; ".join(
        f"{_accuracy(r, 'sharpness')} at the {r.name.replace('first flip', 'first wrong iterate')} "
        f"({int(r['pairs'])} pairs, median step {_f(r['median step'])}; the confidence stump "
        f"{_accuracy(r, 'confidence')})"
        for r in near_rows
    )
    same = all(r["confidence hi"] >= r["sharpness lo"] and r["confidence lo"] <= r["sharpness hi"] for r in near_rows)
    reading += (
        "; the confidence stump does as well (overlapping intervals) wherever the sharpness stump separates, as "
        "the tie between sharpness and confidence in this chapter leads one to expect"
        if same and near
        else ""
    )
    return (
        f"For the {model} model the sharpness stump's held-out accuracy is {where}, and {_accuracy(end, 'sharpness')} "
        f"at the paper's endpoint, step {paper_step} ({int(end['pairs'])} pairs; the confidence stump "
        f"{_accuracy(end, 'confidence')}). By the detector's thresholds ({DETECTOR_REPRODUCED:g} and "
        f"{DETECTOR_REFUTED:g}), {reading}."
    )


def detector_path(along: pd.DataFrame, paper_step: int) -> str:
    """Row F along the path in words, per model: the sharpness stump's held-out accuracy near the decision boundary
    (at the first wrong iterate and at the sharpness peak) and at the paper's endpoint (step ``paper_step``), each with
    its interval, beside the confidence stump's, and which reading the numbers support by the detector's own
    thresholds: it separates near the boundary (either near-boundary interval at or above
    :data:`~flatrob.evidence.checks.rules.DETECTOR_REPRODUCED`) and fails in the valley (the endpoint's interval below
    :data:`~flatrob.evidence.checks.rules.DETECTOR_REFUTED`).

    Args:
        along: :func:`flatrob.detection.detector_along_path` with a ``model`` column and Wilson columns
            ``<stump> lo``, ``<stump> hi`` (:func:`path_intervals`).
        paper_step: the last step of the paper's attack.

    Returns:
        One paragraph per model.
    """
    if not len(along):
        return "No input was fooled on the path, so no pair can be scored along it."
    return "\n\n".join(
        _detector_model(str(model), part, paper_step) for model, part in along.groupby("model", sort=False)
    )
