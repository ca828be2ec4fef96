"""Verdicts over seeds: a sweep's finished runs, each judged again by this code from the measurements it recorded
(:mod:`flatrob.evidence.checks.replay`), merged per combination of the parameters other than the seed
(:func:`summarize`, written by :func:`aggregate` to ``summary.json``), each check judged over the seeds
(:func:`over_seeds`: a majority that the pooled interval confirms, :func:`flatrob.evidence.verdicts.over_seeds_verdict`)
and returned as checks for the chapters and the ledger (:func:`sweep_checks`), with the sweep's provenance.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, TypedDict, cast

import numpy as np

from flatrob.evidence.admission import committed
from flatrob.evidence.checks.replay import CALLS_FILE
from flatrob.evidence.records import (
    JSON,
    SUMMARY_FORMAT,
    CheckRecord,
    Combination,
    CommittedSweep,
    Measure,
    SeedsCheck,
    Setting,
    SweepPlan,
    SweepRun,
    SweepSummary,
    integer,
    mapping,
)
from flatrob.evidence.verdicts import (
    BY_CONSTRUCTION,
    EVIDENCE_VERDICTS,
    Check,
    Rule,
    is_ratio,
    over_seeds_verdict,
    pooled_mean,
    pooled_share,
)
from flatrob.util.io import atomic_write_text
from flatrob.util.paths import GRID, PROVENANCE, SUMMARY, SUMMARY_CSV, is_partial, sweep_job_dir, sweeps_root
from flatrob.util.provenance import Provenance, three_digits

__all__ = [
    "SUMMARY_FORMAT",
    "aggregate",
    "committed_sweeps",
    "over_seeds",
    "summarize",
    "sweep_checks",
    "sweep_provenance",
]


def over_seeds(checks_by_seed: Mapping[Any, Sequence[CheckRecord]]) -> list[SeedsCheck]:
    """One verdict per check over several seeds' runs of the same setting.

    ``checks_by_seed``: seed -> that run's checks (as dicts, :meth:`Check.as_dict`). For a check with a
    ``measure``, its values over the seeds that could test give a mean and a 95% t-interval (a ratio: the geometric
    mean, the interval on the log scale, :func:`flatrob.evidence.verdicts.pooled_mean`; each seed attacks its
    own inputs, so the interval covers inputs and training); an interval of zero width (identical values) is
    unresolved. A share (a measure with a ``count``: flip rate, transfer success, detector accuracy) pools the
    seeds' counts instead, with the Wilson interval of the sum (:func:`flatrob.evidence.verdicts.pooled_share`), so
    three seeds of 0 of 1,000 decide as 0 of 3,000. The verdict is
    :func:`flatrob.evidence.verdicts.over_seeds_verdict`: a majority of the seeds that could test, at least half of
    all seeds, and the pooled interval on the same side, else "partly" (fragile).
    Each seed's limits (``values["limits"]``: caps, censored counts, the largest value a measure can show) travel
    with the entry.
    """
    ids: dict[str, None] = {}
    for found in checks_by_seed.values():
        ids.update({c["id"]: None for c in found})
    out = []
    for cid in ids:
        present = {s: c for s, found in checks_by_seed.items() for c in found if c["id"] == cid}
        first = next(iter(present.values()))
        verdicts = {str(s): c["verdict"] for s, c in present.items()}
        setting = {k: v for k, v in first.get("setting", {}).items() if k != "seed"}
        entry: dict[str, object] = {
            "id": cid,
            "claim": first["claim"],
            "part": first.get("part", ""),
            "statement": first["statement"],
            "paper": first.get("paper", ""),
            "setting": setting,
            "seeds": sorted(present),
            "verdicts": verdicts,
        }
        limits = {str(s): c.get("values", {}).get("limits") for s, c in present.items()}
        if any(limits.values()):
            entry["limits"] = {s: v for s, v in limits.items() if v}
        fields, pooled, rule = _pooled(present.values())
        entry |= fields
        verdict, fragile = over_seeds_verdict(list(verdicts.values()), pooled, rule)
        fragile = fragile or any(c.get("fragile") for c in present.values())
        out.append(cast(SeedsCheck, entry | {"verdict": verdict, "fragile": bool(fragile)}))
    return out


class _PooledFields(TypedDict, total=False):
    """What pooling the seeds adds to a :class:`SeedsCheck`."""

    measure: Measure
    resolved: bool
    min: float
    max: float


def _pooled(present: Iterable[CheckRecord]) -> tuple[_PooledFields, Measure | None, Rule | None]:
    """The seeds' decisive measures pooled (:func:`over_seeds`): the entry's fields ("measure", "resolved", "min",
    "max"), the pooled estimate and the rule; ({}, None, None) where fewer than two seeds measured a finite value.
    A check that holds by construction keeps its measured number too."""
    measured: list[Measure] = [
        m
        for c in present
        if (m := c.get("measure"))
        and c["verdict"] in (*EVIDENCE_VERDICTS, BY_CONSTRUCTION)
        and m.get("value") is not None
        and np.isfinite(m["value"])
    ]
    if len(measured) < 2:
        return {}, None, None
    values = [float(m["value"]) for m in measured]
    first = measured[0]
    # the keys in the order summary.json has always had them: name, value, ci95, n, count, pooled, seeds, rule
    measure: Measure
    counts = [m.get("count") for m in measured]
    if all(c is not None for c in counts):  # a share: the seeds' counts pooled as counts
        counted = pooled_share([int(c or 0) for c in counts], [int(m["n"]) for m in measured])
        mean, lo, hi = counted.value, counted.lo, counted.hi
        measure = {"name": first["name"], "value": mean, "ci95": [lo, hi], "n": counted.n}  # type: ignore[typeddict-item]
        if counted.count is not None:
            measure["count"] = counted.count
        measure["pooled"], measure["seeds"] = "counts", len(values)
    else:
        mean, lo, hi, geometric = pooled_mean(values, is_ratio(first["name"]))
        measure = {"name": first["name"], "value": mean, "ci95": [lo, hi], "n": len(values)}  # type: ignore[typeddict-item]
        if geometric:
            measure["pooled"] = "geometric"
    measure["rule"] = first["rule"]
    fields: _PooledFields = {
        "measure": measure,
        "resolved": hi - lo > 1e-9 * max(1.0, abs(mean)),  # identical values: an interval of no width
        "min": float(min(values)),
        "max": float(max(values)),
    }
    return fields, measure, Rule.from_dict(first["rule"])


def _checks_of(run: Path) -> list[CheckRecord]:
    """A finished run's checks, judged again by this code from its recorded measurements
    (:func:`flatrob.evidence.checks.replay.replay`)."""
    from flatrob.evidence.checks.replay import replay

    return [c.as_dict() for c in replay(run)]


class _Group(TypedDict):
    """The finished runs of one combination: its setting, each seed's checks, and the runs."""

    setting: Setting
    checks_by_seed: dict[int, list[CheckRecord]]
    runs: list[SweepRun]


def _runs_of(sweep: Path, spec: SweepPlan) -> dict[str, _Group]:
    """The finished runs of a sweep, grouped by their parameters other than ``seed``."""
    groups: dict[str, _Group] = {}
    for job in spec["jobs"]:
        run = sweep_job_dir(sweep, spec["chapter"], job["id"])
        if not (run / CALLS_FILE).exists():  # unfinished, or made by code that recorded no measurements: re-run it
            continue
        setting = {k: v for k, v in job["params"].items() if k != "seed"}
        g = groups.setdefault(
            json.dumps(setting, sort_keys=True), {"setting": setting, "checks_by_seed": {}, "runs": []}
        )
        seed = integer(job["params"].get("seed", 0))
        g["checks_by_seed"][seed] = _checks_of(run)
        prov = json.loads((run / PROVENANCE).read_text())
        g["runs"].append(
            {
                "job": job["id"],
                "seed": seed,
                "commit": prov.get("commit"),
                "device": prov.get("device"),
                "machine": prov.get("machine", {}).get("cpu"),
                "duration_s": prov.get("duration_s"),
            }
        )
    return groups


def summarize(sweep: Path) -> SweepSummary:
    """A sweep's finished runs merged, with provenance: runs grouped by their parameters other than ``seed`` (one
    group per combination), each group's checks judged over its seeds by :func:`over_seeds`, every run's checks
    judged again by this code from its recorded measurements."""
    spec = cast(SweepPlan, json.loads((sweep / GRID).read_text()))
    groups = _runs_of(sweep, spec)
    return SweepSummary(
        format=SUMMARY_FORMAT,
        chapter=spec["chapter"],
        name=spec["name"],
        grid=spec["grid"],
        jobs=len(spec["jobs"]),
        finished=sum(len(g["runs"]) for g in groups.values()),
        combinations=[
            Combination(setting=g["setting"], runs=g["runs"], checks=over_seeds(g["checks_by_seed"]))
            for g in groups.values()
        ],
        grid_provenance=spec.get("provenance", {}),
    )


def aggregate(sweep: Path) -> SweepSummary:
    """Merge a sweep's finished runs (:func:`summarize`) into ``summary.json`` and ``summary.csv``; written only
    when the content changes."""
    import pandas as pd

    summary = summarize(sweep)
    text = json.dumps(summary, indent=2, default=str) + "\n"
    target = sweep / SUMMARY
    if not target.exists() or target.read_text() != text:
        atomic_write_text(target, text)
        rows = [
            {
                **c["setting"],
                "check": chk["id"],
                "verdict": chk["verdict"],
                "fragile": chk["fragile"],
                "measure": m["name"] if (m := chk.get("measure")) else None,
                "mean": m["value"] if m else None,
                "per-seed verdicts": ", ".join(f"{s}: {v}" for s, v in chk["verdicts"].items()),
            }
            for c in summary["combinations"]
            for chk in c["checks"]
        ]
        atomic_write_text(sweep / SUMMARY_CSV, pd.DataFrame(rows).to_csv(index=False))
    return summary


def committed_sweeps(
    chapter: str, root: Path | None = None, match: str = "", judged: bool = True
) -> list[CommittedSweep]:
    """The summaries of the sweeps of a chapter that count as evidence: their ``summary.json``
    :func:`flatrob.util.provenance.committed` (in the last commit, or promoted). [{"dir", "summary"}]. Summaries of
    another :data:`SUMMARY_FORMAT` (made by older code: re-aggregate or re-run them) are left out; with ``match``,
    only the sweeps whose name contains it. Each kept sweep's runs are judged again by this code (which takes
    time); with ``judged`` False, the committed summary is taken as it is, for what does not depend on the rules
    (which runs a combination holds: a test keeps the committed summaries equal to what the code derives)."""
    base = sweeps_root(root)
    found = sorted(p for p in base.glob(f"*/{SUMMARY}") if not is_partial(p.parent)) if base.is_dir() else []
    found = [p for p in found if match in p.parent.name]
    out: list[CommittedSweep] = []
    for path in committed(found, root):
        summary = json.loads(path.read_text())
        if summary.get("chapter") == chapter and summary.get("format") == SUMMARY_FORMAT:
            fresh = judged and (path.parent / GRID).is_file()  # its plan is there: its runs judged again
            out.append({"dir": path.parent, "summary": _summarized(str(path.parent.resolve())) if fresh else summary})
    return out


@functools.lru_cache(maxsize=64)
def _summarized(sweep: str) -> SweepSummary:
    """:func:`summarize` once per sweep and process (a build re-judges each committed sweep once)."""
    return summarize(Path(sweep))


def sweep_checks(chapter: str, root: Path | None = None, kind: str = "sweep") -> list[Check]:
    """The over-seeds verdicts of a chapter's committed sweeps, as checks for its page and its ledger entries.

    Each check's setting is the runs' setting with ``source`` "<kind> <name>" ("sweep", or "study" for a study
    beyond the paper's settings) and ``seeds``; its evidence gives the
    measure's mean and interval over the seeds and every seed's verdict. Combinations with a single seed are left
    out (no interval over seeds).
    """
    out = []
    for sweep in committed_sweeps(chapter, root):
        name = sweep["summary"]["name"]
        grid = sweep["summary"].get("grid", {})
        varied = [k for k, v in grid.items() if k != "seed" and len(v) > 1]  # in the checks' names (check_id)
        for combo in sweep["summary"]["combinations"]:
            if len(combo["runs"]) < 2:
                continue
            for c in combo["checks"]:
                m = c.get("measure")
                evidence = _seeds_evidence(c)
                evidence += "".join(f"; seed {s}: {_limits(v)}" for s, v in c.get("limits", {}).items())
                setting = {
                    **c["setting"],
                    **{k: v for k, v in combo["setting"].items() if k not in c["setting"]},
                    "source": f"{kind} {name}",
                    "seeds": c["seeds"],
                    **({"varied": varied} if varied else {}),
                }
                out.append(
                    Check(
                        claim=c["claim"],
                        part=c.get("part", ""),
                        statement=c["statement"],
                        verdict=c["verdict"],
                        evidence=evidence,
                        paper=c.get("paper", ""),
                        setting=setting,
                        values={"verdicts": c["verdicts"], **({"limits": c["limits"]} if c.get("limits") else {})},
                        measure=m,
                        fragile=c["fragile"],
                        provenance=sweep_provenance(name, combo["setting"], combo["runs"]),
                    )
                )
    return out


def _seeds_evidence(c: SeedsCheck) -> str:
    """The evidence of a check over seeds in words (:func:`sweep_checks`): the pooled measure with its interval and
    how it was pooled (counts, a geometric or an arithmetic mean), the seeds' spread and their verdicts."""
    seeds = ", ".join(f"seed {s}: {v}" for s, v in c["verdicts"].items())
    m = c.get("measure")
    if not m:
        return f"the seeds' verdicts: {seeds}"
    interval = (
        f"[{three_digits(m['ci95'][0])}, {three_digits(m['ci95'][1])}]"
        if c.get("resolved")
        else "(unresolved: the seeds' values are identical)"
    )
    if m.get("pooled") == "counts":
        return (
            f"{m['name']} over {m['seeds']} seeds, pooled as counts: {m['count']} of {m['n']}, "
            f"{three_digits(m['value'])} {interval} (95% Wilson interval of the pooled count; the seeds "
            f"spread from {three_digits(c['min'])} to {three_digits(c['max'])}); the seeds' verdicts: {seeds}"
        )
    geometric = m.get("pooled") == "geometric"
    return (
        f"{m['name']} over {m['n']} seeds: {'geometric mean' if geometric else 'mean'} "
        f"{three_digits(m['value'])} {interval} (95% t-interval over seeds"
        f"{' on the log scale' if geometric else ''}, each attacking its own inputs; spread "
        f"{three_digits(c['min'])} to "
        f"{three_digits(c['max'])}); the seeds' verdicts: {seeds}"
    )


def _limits(limits: JSON) -> str:
    """A check's limits in words: ``cap 51, never rose (clean) 12, ...``."""
    return ", ".join(f"{k} {three_digits(v) if isinstance(v, float) else v}" for k, v in mapping(limits).items())


def sweep_provenance(name: str, setting: Setting, runs: Sequence[SweepRun]) -> Provenance:
    """Where an over-seeds entry comes from.

    Args:
        name: the sweep.
        setting: the parameters of its combination, but the seed.
        runs: the combination's runs, as the summary records them.

    Returns:
        The entry's provenance: the sweep, its parameters with the seeds, and, per run, the commit, device, machine
        and time that made it (not the build that judges it).
    """
    commits = sorted({str(r.get("commit")) for r in runs})
    return {
        "source": f"sweep {name}",
        "params": {**setting, "seed": sorted(r["seed"] for r in runs)},
        "commit": ", ".join(commits),
        "device": ", ".join(sorted({str(r.get("device")) for r in runs})),
        "machine": {"cpu": ", ".join(sorted({str(r.get("machine")) for r in runs}))},
        "runs": list(runs),
    }
