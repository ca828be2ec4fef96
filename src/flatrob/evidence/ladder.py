"""Where the valley forms: the clean and the adversarially trained model along a ladder of attack budgets (claim 7,
"adversarial training shifts the valley to later steps and larger perturbations, and the valley persists").

Each run of the uncanny-valley chapter saves every input's valley per radius and model (``ladder.csv``,
:func:`flatrob.valley.per_input`). :func:`ladder_table` pools the runs of a sweep (its seeds): per model and radius,
the share of the inputs that flip within the path (the seeds' counts added, Wilson interval), whether the attack
reaches the valley's regime there (:data:`~flatrob.evidence.checks.rules.REACHES`, the rule every valley check
uses), the step by which half of the inputs have flipped, and how deep the flipped inputs' sharpness collapses
(the seeds' medians of final/peak, pooled on the log scale with a t-interval over seeds, as every ratio is pooled).
:func:`ladder_finding` says in words, by the rules of the checks, whether the adversarially trained valley is only
later or also shallower. Nothing here is a threshold of its own.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from flatrob.evidence.checks.rules import COLLAPSES, FORMS_LATER, LATER, REACHES
from flatrob.evidence.claims import LADDER_VARIANT
from flatrob.evidence.estimates import Estimate, Pooled, bootstrap, median, pooled_mean, pooled_share, rowwise
from flatrob.evidence.records import Setting, SweepResult, Values, number
from flatrob.evidence.verdicts import NOT_REACHED, Check
from flatrob.util.provenance import interval_text, short_value
from flatrob.util.provenance import three_digits as fmt

__all__ = ["ladder_check", "ladder_finding", "ladder_runs", "ladder_table"]


@rowwise(lambda m: np.quantile(m, 0.5, axis=1, method="inverted_cdf"))
def _half_flip_step(time_to_flip: np.ndarray) -> float:
    """The first step by which at least half of the inputs have flipped (``time_to_flip`` is ``steps + 1`` for an
    input that never flips, so a result beyond the path means fewer than half flip within it)."""
    return float(np.quantile(time_to_flip, 0.5, method="inverted_cdf")) if len(time_to_flip) else math.nan


def ladder_runs(results: Sequence[SweepResult]) -> list[SweepResult]:
    """The runs of the ladder sweep among a chapter's committed ``ladder.csv`` results (``ChapterContext.
    sweep_results("ladder.csv")``): of the sweeps on a network of the paper's kind, the one with the most radii
    (the uncanny-valley sweep at the paper's attack saves a ladder of its own three radii); [] if none."""
    from flatrob.zoo import PAPER_KIND

    by_sweep: dict[str, list[SweepResult]] = {}
    for r in results:
        if r["setting"].get("architecture") in PAPER_KIND and r.get("data") is not None and len(r["data"]):
            by_sweep.setdefault(r["sweep"], []).append(r)
    return max(by_sweep.values(), key=lambda runs: runs[0]["data"]["radius"].nunique(), default=[])


def ladder_table(results: Sequence[SweepResult]) -> pd.DataFrame:
    """The valley along the budget ladder, pooled over the runs (seeds) of one sweep.

    Args:
        results: runs of one sweep, each ``{"seed": ..., "data": ladder table}`` (the uncanny-valley chapter's
            ``ladder.csv``, :func:`flatrob.valley.per_input`; as ``ChapterContext.sweep_results`` returns them).

    Returns:
        One row per model and radius (ascending): ``steps``, ``seeds``, ``inputs`` (that start correct, all seeds),
        ``flipped`` (within the path), ``flip share`` with ``flip lo``/``flip hi`` (Wilson interval of the pooled
        counts), ``reaches`` (the flip share is not refuted as a majority: :data:`REACHES`), ``half-flip step``
        (pooled inputs; inf: fewer than half flip within the path) with ``step lo``/``step hi`` (bootstrap over
        inputs), ``peak/start`` (median over the flipped inputs of all seeds) and ``final/peak`` with ``collapse
        lo``/``collapse hi`` (the seeds' medians pooled on the log scale, 95% t-interval over seeds; with a single
        seed, the median over its flipped inputs and a bootstrap interval over them: ``interval over`` says which)
        and ``collapses`` (:data:`COLLAPSES` on that interval).
    """
    frames = [r["data"].assign(seed=r["seed"]) for r in results if r.get("data") is not None and len(r["data"])]
    if not frames:
        return pd.DataFrame()
    table = pd.concat(frames, ignore_index=True)
    rows = [_ladder_row(str(model), float(radius), part)
            for (model, radius), part in table.groupby(["model", "radius"], sort=True)]  # fmt: skip
    return pd.DataFrame(rows)


def _ladder_row(model: str, radius: float, part: pd.DataFrame) -> dict[str, str | float | bool | None]:
    """One model and radius of :func:`ladder_table`, from the per-input rows of every seed (``part``)."""
    steps = int(part["steps"].max())
    by_seed = list(part.groupby("seed"))
    flip = pooled_share([int(p["flipped"].sum()) for _, p in by_seed], [len(p) for _, p in by_seed])
    ttf = part["time_to_flip"].to_numpy(dtype=float)
    step = bootstrap(_half_flip_step, ttf)

    def beyond(t: float, steps: int = steps) -> float:  # past the path: fewer than half flip within it
        return math.inf if t > steps else t

    medians = [float(np.median(p.loc[p.flipped.astype(bool), "final_over_peak"]))
               for _, p in by_seed if p["flipped"].astype(bool).any()]  # fmt: skip
    flipped = part[part["flipped"].astype(bool)]
    if len(medians) > 1:  # over seeds, as every ratio is pooled
        collapse, over = pooled_mean(medians, ratio=True), "seeds"
    else:  # one seed: the median over its inputs, with a bootstrap interval over them
        e = bootstrap(median, flipped["final_over_peak"].to_numpy())
        collapse, over = Pooled(e.value, e.lo, e.hi, False), "inputs of one seed"
    return {
        "model": model,
        "radius": float(radius),
        "steps": steps,
        "seeds": len(by_seed),
        "inputs": len(part),
        "flipped": int(part["flipped"].astype(bool).sum()),
        "flip count": flip.count,
        "flip share": flip.value,
        "flip lo": flip.lo,
        "flip hi": flip.hi,
        "reaches": REACHES.judge(flip) != "not reproduced",
        "half-flip step": beyond(step.value),
        "step lo": beyond(step.lo),
        "step hi": beyond(step.hi),
        "peak/start": median(flipped["peak_over_start"].to_numpy()) if len(flipped) else math.nan,
        "final/peak": collapse.mean,
        "collapse lo": collapse.low,
        "collapse hi": collapse.high,
        "interval over": over,
        "collapses": COLLAPSES.judge({"value": collapse.mean, "lo": collapse.low, "hi": collapse.high}),
    }


def _step(row: Mapping[str, object]) -> str:
    if not math.isfinite(number(row["half-flip step"])):
        return f"fewer than half flip within {row['steps']} steps"
    return f"half have flipped by step {row['half-flip step']:.0f}"


def ladder_finding(table: pd.DataFrame, clean: str = "clean", adversarial: str = "adversarial") -> str:
    """Claim 7 along the ladder in words: from which radius each model's attack reaches the valley's regime, where
    half of the inputs have flipped there, and whether the adversarially trained valley collapses once reached
    (only later) or at no radius of the ladder (shallower, within these paths), each with its interval.

    Args:
        table: :func:`ladder_table`.
        clean, adversarial: the two models' names in it.

    Returns:
        Markdown, one paragraph; empty when the table lacks either model.
    """
    if table.empty or not {clean, adversarial} <= set(table["model"]):
        return ""
    reach: dict[str, pd.Series] = {}
    for model in (clean, adversarial):
        rows = table[(table.model == model) & table.reaches].sort_values("radius")
        if len(rows):
            reach[model] = rows.iloc[0]
    smallest = short_value(float(table.radius.min()))
    seeds = int(table["seeds"].max())
    parts = [] if seeds > 1 else ["From one seed so far (intervals over its inputs, not over seeds):"]
    if clean in reach:
        c = reach[clean]
        parts.append(f"The clean model's attack reaches the valley's regime at {short_value(c.radius)} "
                     f"({c.flipped} of {c.inputs} inputs flip within {c.steps} steps; {_step(c)}), and its sharpness "
                     f"collapses to {_depth(c)} of its peak there.")  # fmt: skip
    if adversarial not in reach:
        return " ".join(parts + ["The adversarially trained model's attack reaches it at no radius of the ladder: "
                                 "within these paths its valley does not form."])  # fmt: skip
    a = reach[adversarial]
    later = clean in reach and a.radius > reach[clean].radius
    parts.append(f"The adversarially trained model's attack reaches it {'only ' if later else ''}at "
                 f"{short_value(a.radius)} ({a.flipped} of {a.inputs}; {_step(a)})"
                 + (f", not at {smallest}" if a.radius > table.radius.min() else "") + ".")  # fmt: skip
    reached = table[(table.model == adversarial) & table.reaches].sort_values("radius")
    deep = reached[reached.collapses == "reproduced"]
    if len(deep):
        d = deep.iloc[0]
        parts.append(f"Once reached, its valley is there: at {short_value(d.radius)} the sharpness collapses to "
                     f"{_depth(d)} of its peak, below the claim's 1/{1 / COLLAPSES.threshold:g}. So adversarial "
                     "training moves the valley to larger budgets; within these paths it does not make it "
                     "shallower.")  # fmt: skip
        return " ".join(parts)
    parts.append(_shallower(table, reached, clean))
    return " ".join(parts)


def _shallower(table: pd.DataFrame, reached: pd.DataFrame, clean: str) -> str:
    """The sentence of :func:`ladder_finding` where the adversarially trained valley collapses at no radius: how deep
    it collapses against the clean model at the same radii, and whether that collapse is refuted or undecided."""
    side = table[table.model == clean].set_index("radius")
    pairs = "; ".join(
        f"{short_value(r.radius)}: {_depth(r)} against {_depth(side.loc[r.radius])}"
        for _, r in reached.iterrows()
        if r.radius in side.index
    )
    if (reached.collapses == "not reproduced").all():
        verdict = (f"at every radius where it is reached its collapse is refuted (final/peak above "
                   f"{COLLAPSES.refutation:g}): within these paths the adversarially trained valley is shallower, "
                   "not only later")  # fmt: skip
    else:
        verdict = (f"by the claim's rule (a collapse below 1/{1 / COLLAPSES.threshold:g} of the peak, refuted above "
                   f"{COLLAPSES.refutation:g}) its collapse is decided at no radius of the ladder: within these "
                   f"{int(reached.steps.max())}-step paths its valley is later and shallower than the clean "
                   "model's; whether it deepens with longer paths, the ladder cannot say")  # fmt: skip
    return (f"Where it is reached, its sharpness collapses less deeply than the clean model's at the same "
            f"radius (final/peak, adversarially trained against clean: {pairs}), and {verdict}.")  # fmt: skip


def _depth(row: pd.Series) -> str:
    return interval_text(row["final/peak"], row["collapse lo"], row["collapse hi"])


def ladder_check(table: pd.DataFrame, runs: Sequence[SweepResult], clean: str = "clean",
                 adversarial: str = "adversarial") -> Check | None:  # fmt: skip
    """Claim 7, where the valley forms (:data:`~flatrob.evidence.checks.rules.FORMS_LATER`): at the smallest radius
    of the ladder where the clean model's attack reaches the valley's regime, does the adversarially trained model's
    attack leave most of its inputs unflipped within the path (the valley forms at a larger budget), or, where most
    of them flip too, do they flip later (the step by which half have flipped)?

    Args:
        table: :func:`ladder_table` of the sweep's runs.
        runs: those runs (:func:`ladder_runs`), for the setting and the provenance of the check.
        clean, adversarial: the two models' names in the table.

    Returns:
        The check (setting source "sweep <name>", its seeds, the sweep's provenance), or None without a table of
        both models. Its decisive measure is the adversarially trained model's flip share at the clean model's
        forming radius (the seeds' counts pooled, Wilson interval); where that share is a majority, the difference
        of the half-flip steps decides (:data:`~flatrob.evidence.checks.rules.LATER`, on an interval that joins the
        two bootstrap intervals).
    """
    from flatrob.evidence.seeds import sweep_provenance

    if table.empty or not {clean, adversarial} <= set(table["model"]) or not runs:
        return None
    steps = int(table["steps"].max())
    setting = _ladder_setting(table, runs, f"{clean} vs {adversarial}")
    stmt = "Adversarial training shifts the valley to larger budgets and later steps: where it forms."
    paper = "the valley shifts (to later steps and larger perturbations) but persists (row E)"
    provenance = sweep_provenance(runs[0]["sweep"], runs[0]["setting"], [r["run"] for r in runs])

    def check(verdict: str, evidence: str, **more: Any) -> Check:
        return Check(claim=7, part="forms", statement=stmt, verdict=verdict, evidence=evidence, paper=paper,
                     setting=setting, provenance=provenance, **more)  # fmt: skip

    cl = table[table.model == clean].set_index("radius")
    at = table[table.model == adversarial].set_index("radius")
    formed = cl[cl.reaches]
    where = _where(at, adversarial) + " " + _where(cl, clean)
    if formed.empty:
        return check(NOT_REACHED, f"the clean model's attack reaches the valley's regime at no radius of the ladder, "
                     f"so there is no valley to shift; {where}")  # fmt: skip
    r = float(formed.index.min())
    c, a = cl.loc[r], at.loc[r]
    share = Estimate(float(a["flip share"]), float(a["flip lo"]), float(a["flip hi"]), int(a["inputs"]),
                     int(a["flip count"]))  # fmt: skip
    verdict, fragile = FORMS_LATER.judge(share), FORMS_LATER.fragile(share)
    text = _forms_text(r, c, a, share, steps)
    values: Values = {"radius": r, "at_share": share.as_dict(), "clean_flipped": int(c.flipped),
                              "clean_inputs": int(c.inputs), "steps": steps}  # fmt: skip
    if verdict == "not reproduced":  # most adversarially trained inputs flip there too: do they flip later?
        late = _later(c, a)
        verdict, fragile = LATER.judge(late), LATER.fragile(late)
        text += (
            f"; most flip there, so the steps decide: half have flipped {late} steps later than under the "
            f"clean model ({LATER.describe()} steps)"
        )
        values["half_flip_later"] = late.as_dict()
    measure = share.measure(f"adversarially trained flip share at {short_value(r)}", FORMS_LATER)
    return check(verdict, f"{text}. {where}", values=values, fragile=fragile, measure=measure)


def _forms_text(r: float, c: pd.Series, a: pd.Series, share: Estimate, steps: int) -> str:
    """The evidence of :func:`ladder_check` at the clean model's forming radius ``r`` (rows ``c`` and ``a`` of
    :func:`ladder_table`): how many inputs flip under each model, and the rule on the adversarially trained share."""
    return (
        f"at {short_value(r)}, where the clean model's valley forms ({int(c.flipped)} of {int(c.inputs)} inputs flip "
        f"within {steps} steps; {_step(c)}), the adversarially trained model's attack flips {share} of its "
        f"{int(a.inputs)} inputs ({int(a.flipped)}; {_step(a)}) (at most {fmt(FORMS_LATER.threshold)}: "
        f"its valley has not formed at this budget, reproduced; above {fmt(FORMS_LATER.refutation)}: the steps "
        "decide; between: partly)"
    )


def _later(c: pd.Series, a: pd.Series) -> Estimate:
    """How many steps later half of the adversarially trained model's inputs have flipped than the clean model's,
    at one radius of :func:`ladder_table` (rows ``c`` and ``a``), with an interval that joins the two bootstrap
    intervals (the lower end of one against the upper end of the other)."""
    return Estimate(a["half-flip step"] - c["half-flip step"], a["step lo"] - c["step hi"],
                    a["step hi"] - c["step lo"], int(a.inputs))  # fmt: skip


def _ladder_setting(table: pd.DataFrame, runs: Sequence[SweepResult], training: str) -> Setting:
    """The ladder check's setting: the runs' data, network and training length, the two models, the ladder (its
    radii and steps), the sweep and its seeds."""
    params = {k: v for k, v in runs[0]["setting"].items() if k not in ("radii", "seed")}
    radii = sorted(float(r) for r in table["radius"].unique())
    return {
        "data": params.get("dataset", "fashion-mnist"),
        "architecture": params.get("architecture"),
        "epochs": params.get("epochs"),
        "training": training,
        "variant": LADDER_VARIANT,
        "ladder": f"{', '.join(short_value(r) for r in radii)}; {int(table['steps'].max())} steps",
        "source": f"sweep {runs[0]['sweep']}",
        "seeds": sorted({r["seed"] for r in runs}),
    }


def _where(side: pd.DataFrame, model: str) -> str:
    """Where a model's valley forms along the ladder, in words: its first radius that reaches the regime, the
    half-flip step and the depth of the collapse there."""
    reached = side[side.reaches]
    if reached.empty:
        return f"The {model} model's attack reaches the regime at no radius of the ladder (its valley does not form)."
    r = float(reached.index.min())
    row = reached.loc[r]
    model = "adversarially trained" if model == "adversarial" else model
    return (f"The {model} model's valley forms at {short_value(r)} ({_step(row)}; final/peak {_depth(row)}, over "
            f"{row['interval over']}).")  # fmt: skip
