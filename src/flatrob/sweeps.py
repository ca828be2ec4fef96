"""Sweeps: a chapter re-run over a grid of parameters (seeds, datasets, radii, architectures) by Snakemake.

``python -m flatrob sweep CHAPTER -p seed 0,1,2 -p dataset fashion-mnist,digits`` plans the grid,
checks every combination with the chapter's own rules (:func:`flatrob.runs.validate`) before anything
runs, writes it to ``data/sweeps/<name>/grid.json`` and runs ``workflow/Snakefile``, whose jobs are
``flatrob run`` invocations, one run folder each (``data/sweeps/<name>/runs/<chapter>/<job>/``). Snakemake
re-runs only what is missing (a finished run is never redone; an interrupted sweep resumes), runs on the
local cores by default and reaches SLURM and other clusters through a profile (``--profile``; a job whose
device is cuda declares ``gpu=1``). :func:`aggregate` then merges the finished runs into
``summary.json``: per combination of the other parameters and per check, the verdict of every seed and
the check's measure over the seeds (mean, 95% t-interval, spread), judged against the check's own
threshold. A committed sweep's summary gives the chapters and the ledger verdicts over seeds.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import math
import re
import shlex
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np

from flatrob.checks import NOT_TESTABLE, Check, combine, judge
from flatrob.provenance import atomic_write_text, committed, provenance, repo_root
from flatrob.runs import ParameterError, parse_value, validate

__all__ = ["SNAKEFILE", "aggregate", "committed_sweeps", "job_id", "over_seeds", "plan", "run_sweep", "split_values",
           "over_seeds_section", "sweep_checks", "sweeps_root"]

#: The workflow whose jobs are ``flatrob run``: local cores by default, a cluster through a profile.
SNAKEFILE = Path("workflow") / "Snakefile"


def sweeps_root() -> Path:
    """Where sweeps live: ``data/sweeps`` of the repository."""
    return repo_root() / "data" / "sweeps"


def split_values(text: str) -> list[Any]:
    """A command-line list of values, split on the commas outside brackets: ``0,1,2`` -> [0, 1, 2];
    ``[0.1, 0.2],[0.3]`` -> [[0.1, 0.2], [0.3]]. Each value is read as YAML (:func:`flatrob.runs.parse_value`)."""
    parts, depth, current = [], 0, ""
    for ch in text:
        if ch in "[{":
            depth += 1
        elif ch in "]}":
            depth -= 1
        if ch == "," and depth == 0:
            parts.append(current)
            current = ""
        else:
            current += ch
    parts.append(current)
    if depth != 0 or any(not p.strip() for p in parts):
        raise ParameterError(f"cannot read the list of values {text!r}: write them as a,b,c")
    return [parse_value(p.strip()) for p in parts]


def job_id(params: dict[str, Any]) -> str:
    """A readable, file-safe name for one combination: ``dataset-digits_seed-1``."""
    def clean(v: Any) -> str:
        return re.sub(r"[^A-Za-z0-9.+]", "", json.dumps(v) if not isinstance(v, str) else v) or "x"

    return "_".join(f"{k}-{clean(v)}" for k, v in sorted(params.items())) or "default"


def plan(chapter: str, grid: dict[str, list[Any]], name: str | None = None) -> dict[str, Any]:
    """The sweep's jobs: every combination of ``grid``'s values, each validated by the chapter's rules.

    Raises :class:`flatrob.runs.ParameterError` for the first impossible combination, before anything runs.
    """
    if not grid:
        raise ParameterError("a sweep needs at least one parameter with values (-p NAME v1,v2,...)")
    for key, values in grid.items():
        if not isinstance(values, list) or not values:
            raise ParameterError(f"parameter {key!r} of the sweep needs at least one value")
    keys = sorted(grid)
    jobs = []
    for combo in itertools.product(*(grid[k] for k in keys)):
        params = dict(zip(keys, combo))
        full = validate(chapter, params)  # the chapter's own checks, for every combination
        typed = {k: full[k] for k in params}
        jobs.append({"id": job_id(typed), "params": typed})
    if len({j["id"] for j in jobs}) != len(jobs):
        raise ParameterError("two combinations of the sweep have the same values; remove the duplicates")
    varied = {k: v for k, v in grid.items() if len(v) > 1}
    digest = hashlib.sha256(json.dumps(jobs, sort_keys=True).encode()).hexdigest()[:6]
    default = f"{chapter}-" + ("-".join(sorted(varied)) or "single") + f"-{digest}"
    return {"chapter": chapter, "name": name or default, "grid": {k: grid[k] for k in keys}, "jobs": jobs}


def _run_dir(sweep: Path, chapter: str, job: str) -> Path:
    return sweep / "runs" / chapter / job


def run_sweep(chapter: str, grid: dict[str, list[Any]], *, name: str | None = None, cores: int = 1,
              profile: str | None = None, extra: list[str] | None = None, out_root: Path | None = None) -> int:
    """Plan, check and run a sweep with Snakemake, then aggregate it; returns 0 when every job finished.

    Prints Snakemake's progress, then how many jobs are done and which failed, with their logs.
    """
    spec = plan(chapter, grid, name)
    sweep = (out_root or sweeps_root()) / spec["name"]
    grid_file = sweep / "grid.json"
    if grid_file.exists():
        old = json.loads(grid_file.read_text())
        if old.get("jobs") != spec["jobs"] or old.get("chapter") != chapter:
            raise ParameterError(f"a different sweep named {spec['name']!r} exists at {sweep}; choose another --name")
    else:
        spec["provenance"] = provenance({"grid": spec["grid"]})
        atomic_write_text(grid_file, json.dumps(spec, indent=2) + "\n")
    root = repo_root()
    cmd = [sys.executable, "-m", "snakemake", "--snakefile", str(root / SNAKEFILE), "--directory", str(root),
           "--config", f"grid={grid_file.resolve()}", f"python={sys.executable}",
           "--cores", str(cores), "--keep-going", "--rerun-incomplete", "--rerun-triggers", "mtime",
           "--quiet", "rules"]
    if profile:
        cmd += ["--profile", profile]
    cmd += extra or []
    print(f"sweep {spec['name']}: {len(spec['jobs'])} jobs of chapter {chapter!r} in {sweep}", flush=True)
    snake = subprocess.run(cmd, cwd=root)
    done = [j for j in spec["jobs"] if (_run_dir(sweep, chapter, j["id"]) / "provenance.json").exists()]
    failed = [j for j in spec["jobs"] if j not in done]
    print(f"sweep {spec['name']}: {len(done)} done, {len(failed)} failed", flush=True)
    for j in failed:
        print(f"  failed: {j['id']} (log: {sweep / 'logs' / (j['id'] + '.log')})", flush=True)
    if done:
        aggregate(sweep)
        print(f"summary: {sweep / 'summary.json'}", flush=True)
    return 0 if not failed and snake.returncode == 0 else 1


# ---------------------------------------------------------------------------
# aggregation over seeds


def _t_interval(values: list[float]) -> tuple[float, float]:
    """95% t-interval of the mean of a few values (NaN with fewer than two)."""
    v = np.asarray(values, dtype=float)
    if len(v) < 2:
        return math.nan, math.nan
    from scipy.stats import t

    half = t.ppf(0.975, len(v) - 1) * v.std(ddof=1) / math.sqrt(len(v))
    return float(v.mean() - half), float(v.mean() + half)


def over_seeds(checks_by_seed: dict[Any, list[dict[str, Any]]]) -> list[dict[str, Any]]:
    """One verdict per check over several seeds' runs of the same setting.

    ``checks_by_seed``: seed -> that run's checks (as in its ``checks.json``). For a check with a
    ``measure``, its values over the seeds give a mean and a 95% t-interval, judged by the check's own
    rule, the one that made its verdict within each run (:func:`flatrob.checks.judge`); without a
    measure (or with fewer than two seeds), the seeds' verdicts are combined (:func:`flatrob.checks.combine`).
    """
    ids: dict[str, None] = {}
    for found in checks_by_seed.values():
        ids.update({c["id"]: None for c in found})
    out = []
    for cid in ids:
        per_seed = {seed: next((c for c in found if c["id"] == cid), None) for seed, found in checks_by_seed.items()}
        present = {s: c for s, c in per_seed.items() if c is not None}
        first = next(iter(present.values()))
        verdicts = {str(s): c["verdict"] for s, c in present.items()}
        measured = {s: c["measure"] for s, c in present.items() if c.get("measure") and c["verdict"] != NOT_TESTABLE
                    and c["measure"]["value"] == c["measure"]["value"]}
        entry = {"id": cid, "claim": first["claim"], "statement": first["statement"], "paper": first.get("paper", ""),
                 "seeds": len(present), "verdicts": verdicts}
        if len(measured) >= 2:
            m0 = next(iter(measured.values()))
            values = [m["value"] for m in measured.values()]
            lo, hi = _t_interval(values)
            verdict = judge({"value": float(np.mean(values)), "lo": lo, "hi": hi}, m0["rule"])
            entry |= {"verdict": verdict, "measure": m0["name"], "mean": float(np.mean(values)), "ci95": [lo, hi],
                      "min": float(min(values)), "max": float(max(values)), "rule": m0["rule"],
                      "seeds_measured": len(measured)}
        else:
            entry["verdict"] = combine(list(verdicts.values()))
        out.append(entry)
    return out


def aggregate(sweep: Path) -> dict[str, Any]:
    """Merge a sweep's finished runs into ``summary.json`` (and ``summary.csv``), with provenance.

    Runs are grouped by their parameters other than ``seed`` (one group per combination); each group's
    checks are judged over its seeds by :func:`over_seeds`. Written only when the content changes.
    """
    import pandas as pd

    spec = json.loads((sweep / "grid.json").read_text())
    groups: dict[str, dict[str, Any]] = {}
    for job in spec["jobs"]:
        run = _run_dir(sweep, spec["chapter"], job["id"])
        if not (run / "checks.json").exists():
            continue
        setting = {k: v for k, v in job["params"].items() if k != "seed"}
        key = json.dumps(setting, sort_keys=True)
        g = groups.setdefault(key, {"setting": setting, "checks_by_seed": {}, "runs": []})
        g["checks_by_seed"][job["params"].get("seed", 0)] = json.loads((run / "checks.json").read_text())
        prov = json.loads((run / "provenance.json").read_text())
        g["runs"].append({"job": job["id"], "seed": job["params"].get("seed", 0), "commit": prov.get("commit"),
                          "device": prov.get("device"), "duration_s": prov.get("duration_s")})
    summary = {
        "chapter": spec["chapter"], "name": spec["name"], "grid": spec["grid"], "jobs": len(spec["jobs"]),
        "finished": sum(len(g["runs"]) for g in groups.values()),
        "combinations": [{"setting": g["setting"], "runs": g["runs"], "checks": over_seeds(g["checks_by_seed"])}
                         for g in groups.values()],
        "grid_provenance": spec.get("provenance", {}),
    }
    text = json.dumps(summary, indent=2, default=str) + "\n"
    target = sweep / "summary.json"
    if not target.exists() or target.read_text() != text:
        atomic_write_text(target, text)
        rows = [{**c["setting"], **{k: v for k, v in chk.items() if k not in ("statement", "verdicts", "paper")},
                 "per-seed verdicts": ", ".join(f"{s}: {v}" for s, v in chk["verdicts"].items())}
                for c in summary["combinations"] for chk in c["checks"]]
        atomic_write_text(sweep / "summary.csv", pd.DataFrame(rows).to_csv(index=False))
    return summary


def committed_sweeps(chapter: str, root: Path | None = None) -> list[dict[str, Any]]:
    """The summaries of the sweeps of a chapter that count as evidence: their ``summary.json``
    :func:`flatrob.provenance.committed` (to the repository, or promoted). [{"dir", "summary"}]."""
    root = (root or repo_root()).resolve()
    base = root / "data" / "sweeps"
    found = sorted(base.glob("*/summary.json")) if base.is_dir() else []
    out = []
    for path in committed(found, root):
        summary = json.loads(path.read_text())
        if summary.get("chapter") == chapter:
            out.append({"dir": path.parent, "summary": summary})
    return out


def over_seeds_section(chapter: str) -> list[Check]:
    """For a chapter's page: show its committed sweeps' verdicts over seeds, and return them as checks for its ledger.

    Says so when no sweep of the chapter is committed yet.
    """
    from IPython.display import Markdown, display

    from flatrob.checks import checks_table

    found = sweep_checks(chapter)
    if not found:
        display(Markdown(f"No sweep over seeds of this chapter is committed yet (see {{ref}}`sweeps`)."))
        return []
    import pandas as pd

    with pd.option_context("display.max_colwidth", None):
        display(checks_table(found)[["id", "verdict", "paper", "ours"]].style.hide(axis="index"))
    return found


def sweep_checks(chapter: str, root: Path | None = None) -> list[Check]:
    """The over-seeds verdicts of a chapter's committed sweeps as checks for its ledger entries.

    Each check's id is the run's check id followed by ``-seeds``; its evidence gives the measure's mean and
    interval over the seeds and every seed's verdict. Settings with a single seed are left out (no interval).
    """
    out = []
    for sweep in committed_sweeps(chapter, root):
        for combo in sweep["summary"]["combinations"]:
            if len(combo["runs"]) < 2:
                continue
            tag = ", ".join(f"{k}={v}" for k, v in combo["setting"].items())
            for c in combo["checks"]:
                seeds = ", ".join(f"seed {s}: {v}" for s, v in c["verdicts"].items())
                if "mean" in c:
                    evidence = (f"{c['measure']} over {c['seeds_measured']} seeds: mean {c['mean']:.3g} "
                                f"[{c['ci95'][0]:.3g}, {c['ci95'][1]:.3g}] (t-interval, judged as within a run; spread "
                                f"{c['min']:.3g} to {c['max']:.3g}); {seeds}")
                else:
                    evidence = f"the seeds' verdicts combined: {seeds}"
                seed_list = ", ".join(str(r["seed"]) for r in combo["runs"])
                setting = {"data": combo["setting"].get("dataset", "the chapter's default"),
                           "model": combo["setting"].get("architecture", "the chapter's default"),
                           "attack": f"sweep {sweep['summary']['name']}, seeds {seed_list}"
                                     + (f"; {tag}" if tag else "; the chapter's defaults")}
                out.append(Check(f"{c['id']}-seeds", c["claim"], c["statement"], c["verdict"],
                                 f"sweep {sweep['summary']['name']}{' (' + tag + ')' if tag else ''}: {evidence}",
                                 c.get("paper", ""), {"sweep": sweep["summary"]["name"], "setting": setting,
                                                      **{k: v for k, v in c.items() if k not in ("statement",)}}))
    return out
