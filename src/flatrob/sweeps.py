"""Sweeps: a chapter re-run over a grid of parameters (seeds, datasets, radii, architectures) by Snakemake.

``python -m flatrob sweep CHAPTER -p seed 0,1,2 -p dataset fashion-mnist,digits`` plans the grid, checks every
combination with the chapter's own rules (:func:`flatrob.params.validate`: values, machine, data and architecture)
before anything runs, writes it to ``data/sweeps/<name>/grid.json`` and runs ``workflow/Snakefile`` in the sweep's
folder, whose jobs are ``flatrob run`` invocations, one run folder each (``data/sweeps/<name>/runs/<chapter>/<job>/``).
Snakemake re-runs only what is missing (a finished run is never redone; an interrupted sweep resumes), runs on the
local cores by default and reaches SLURM and other clusters through a profile (``--profile``; a job whose device is
cuda declares ``gpu=1``). Ctrl-C is passed on to Snakemake, which is given time to stop its jobs and release its
lock; a lock left by a sweep that was killed is removed when no process of that sweep is alive.

:func:`aggregate` then merges the finished runs into ``summary.json``: per combination of the other parameters and
per check, the verdict of every seed and the verdict over the seeds (:func:`flatrob.verdicts.over_seeds_verdict`:
a majority that the pooled interval confirms), with the check's measure over the seeds (mean, 95% t-interval,
spread; each seed attacks its own inputs, so the interval covers inputs and training). Every run's checks are judged
again by the code that reads them, from the measurements the run recorded (:mod:`flatrob.checks.replay`). A
committed sweep gives the chapters and the ledger their verdicts over seeds.
"""

from __future__ import annotations

import functools
import hashlib
import itertools
import json
import os
import re
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np

from flatrob.checks.replay import CALLS_FILE
from flatrob.params import ParameterError, parse_value, validate
from flatrob.paths import is_partial, repo_root, sweep_job_dir, sweep_log, sweeps_root
from flatrob.provenance import atomic_write_text, committed, provenance
from flatrob.verdicts import EVIDENCE_VERDICTS, Check, Rule, over_seeds_verdict, t_interval

__all__ = [
    "SNAKEFILE",
    "aggregate",
    "committed_sweeps",
    "job_id",
    "over_seeds",
    "plan",
    "run_sweep",
    "split_values",
    "summarize",
    "sweep_checks",
]

#: The workflow whose jobs are ``flatrob run``: local cores by default, a cluster through a profile.
SNAKEFILE = Path("workflow") / "Snakefile"
#: The version of ``summary.json``'s layout; summaries of another version (made by older code) are not read.
SUMMARY_FORMAT = 2
#: Seconds Snakemake is given after Ctrl-C to stop its jobs and release its lock before it is terminated.
GRACE_S = 60


def split_values(text: str) -> list[Any]:
    """A command-line list of values, split on the commas outside brackets: ``0,1,2`` -> [0, 1, 2];
    ``[0.1, 0.2],[0.3]`` -> [[0.1, 0.2], [0.3]]. Each value is read as YAML (:func:`flatrob.params.parse_value`)."""
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

    Raises :class:`flatrob.params.ParameterError` for the first impossible combination, before anything runs.
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


# ---------------------------------------------------------------------------
# running


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _stop(snake: subprocess.Popen[bytes]) -> None:
    """Stop Snakemake and its jobs as Ctrl-C in a terminal would: SIGINT to its whole process group (it runs in a
    session of its own), since Snakemake alone, interrupted, waits for its running jobs to finish, and so does it
    on SIGTERM. The jobs (``flatrob run``) stop their kernels and leave their partial folders; whatever still runs
    after :data:`GRACE_S` seconds is killed."""
    try:
        os.killpg(snake.pid, signal.SIGINT)
    except ProcessLookupError:
        pass
    try:
        snake.wait(timeout=GRACE_S)
    except subprocess.TimeoutExpired:
        pass
    try:
        os.killpg(snake.pid, signal.SIGKILL)  # the jobs may outlive Snakemake in its group
    except ProcessLookupError:
        pass
    snake.wait()


def _release_stale_lock(sweep: Path, cmd: list[str], whose: str = "an earlier sweep that did not finish") -> None:
    """Remove Snakemake's lock of a sweep whose Snakemake is no longer alive (killed, not interrupted); refuse to
    start a second Snakemake beside a live one."""
    locks = list((sweep / ".snakemake" / "locks").glob("*.lock"))
    if not locks:
        return
    pidfile = sweep / ".snakemake" / "flatrob.pid"
    pid = int(pidfile.read_text()) if pidfile.is_file() and pidfile.read_text().strip().isdigit() else None
    if pid is not None and _alive(pid):
        raise ParameterError(f"sweep {sweep.name} is running (Snakemake, process {pid}); wait for it or stop it first")
    subprocess.run([*cmd, "--unlock"], cwd=sweep, capture_output=True)
    print(f"sweep {sweep.name}: removed the lock left by {whose}", flush=True)


def run_sweep(
    chapter: str,
    grid: dict[str, list[Any]],
    *,
    name: str | None = None,
    cores: int = 1,
    profile: str | None = None,
    extra: list[str] | None = None,
    out_root: Path | None = None,
) -> int:
    """Plan, check and run a sweep with Snakemake, then aggregate it; returns 0 when every job finished, 1 when
    some failed, 130 when interrupted.

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
        try:
            spec["provenance"] = provenance({"grid": spec["grid"]})
            atomic_write_text(grid_file, json.dumps(spec, indent=2) + "\n")
        except OSError as err:
            raise ParameterError(
                f"cannot write the sweep under {sweep}: {err.strerror or err}; choose another --out"
            ) from None
    root = repo_root()
    base = [
        sys.executable,
        "-m",
        "snakemake",
        "--snakefile",
        str(root / SNAKEFILE),
        "--directory",
        str(sweep),
        "--config",
        f"grid={grid_file.resolve()}",
        f"python={sys.executable}",
        f"root={root}",
    ]
    _release_stale_lock(sweep, base)
    cmd = [
        *base,
        "--cores",
        str(cores),
        "--keep-going",
        "--rerun-incomplete",
        "--rerun-triggers",
        "mtime",
        "--quiet",
        "rules",
    ]
    if profile:
        cmd += ["--profile", profile]
    cmd += extra or []
    print(f"sweep {spec['name']}: {len(spec['jobs'])} jobs of chapter {chapter!r} in {sweep}", flush=True)
    snake = subprocess.Popen(cmd, cwd=sweep, start_new_session=True)
    (sweep / ".snakemake").mkdir(exist_ok=True)
    atomic_write_text(sweep / ".snakemake" / "flatrob.pid", str(snake.pid))
    interrupted = False
    try:
        snake.wait()
    except KeyboardInterrupt:
        interrupted = True
        print(
            f"interrupted: stopping Snakemake (up to {GRACE_S} s for it to stop its jobs and release its lock)",
            file=sys.stderr,
            flush=True,
        )
        _stop(snake)
        _release_stale_lock(sweep, base, "the stopped Snakemake")
    done = [j for j in spec["jobs"] if (sweep_job_dir(sweep, chapter, j["id"]) / "provenance.json").exists()]
    left = [j for j in spec["jobs"] if j not in done]
    if interrupted:
        print(
            f"sweep {spec['name']}: interrupted; {len(done)} done, {len(left)} not run (the same command resumes)",
            flush=True,
        )
    else:
        print(f"sweep {spec['name']}: {len(done)} done, {len(left)} failed", flush=True)
        for j in left:
            print(f"  failed: {j['id']} (log: {sweep_log(sweep, j['id'])})", flush=True)
    if done:
        aggregate(sweep)
        print(f"summary: {sweep / 'summary.json'}", flush=True)
    if interrupted:
        return 130
    return 0 if not left and snake.returncode == 0 else 1


# ---------------------------------------------------------------------------
# aggregation over seeds


def over_seeds(checks_by_seed: dict[Any, list[dict[str, Any]]]) -> list[dict[str, Any]]:
    """One verdict per check over several seeds' runs of the same setting.

    ``checks_by_seed``: seed -> that run's checks (as dicts, :meth:`Check.as_dict`). For a check with a
    ``measure``, its values over the seeds that could test give a mean and a 95% t-interval (each seed attacks its
    own inputs, so the interval covers inputs and training); an interval of zero width (identical values) is
    unresolved. The verdict is :func:`flatrob.verdicts.over_seeds_verdict`: a majority of the seeds that could test,
    at least half of all seeds, and the pooled interval on the same side, else "partly" (fragile). Each seed's limits
    (``values["limits"]``: caps, censored counts, the largest value a measure can show) travel with the entry.
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
        entry: dict[str, Any] = {
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
        measured = [
            c["measure"]
            for c in present.values()
            if c.get("measure")
            and c["verdict"] in EVIDENCE_VERDICTS
            and c["measure"].get("value") is not None
            and np.isfinite(c["measure"]["value"])
        ]
        pooled: dict[str, Any] | None = None
        rule: Rule | None = None
        if len(measured) >= 2:
            values = [float(m["value"]) for m in measured]
            lo, hi = t_interval(values)
            mean = float(np.mean(values))
            pooled = {"value": mean, "ci95": [lo, hi], "n": len(values)}
            rule = Rule.from_dict(measured[0]["rule"])
            entry |= {
                "measure": {"name": measured[0]["name"], **pooled, "rule": measured[0]["rule"]},
                "resolved": hi - lo > 1e-9 * max(1.0, abs(mean)),  # identical values: an interval of no width
                "min": float(min(values)),
                "max": float(max(values)),
            }
        verdict, fragile = over_seeds_verdict(list(verdicts.values()), pooled, rule)
        fragile = fragile or any(c.get("fragile") for c in present.values())
        out.append(entry | {"verdict": verdict, "fragile": bool(fragile)})
    return out


def _checks_of(run: Path) -> list[dict[str, Any]]:
    """A finished run's checks, judged again by this code from its recorded measurements
    (:func:`flatrob.checks.replay.replay`)."""
    from flatrob.checks.replay import replay

    return [c.as_dict() for c in replay(run)]


def _runs_of(sweep: Path, spec: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The finished runs of a sweep, grouped by their parameters other than ``seed``."""
    groups: dict[str, dict[str, Any]] = {}
    for job in spec["jobs"]:
        run = sweep_job_dir(sweep, spec["chapter"], job["id"])
        if not (run / CALLS_FILE).exists():  # unfinished, or made by code that recorded no measurements: re-run it
            continue
        setting = {k: v for k, v in job["params"].items() if k != "seed"}
        g = groups.setdefault(
            json.dumps(setting, sort_keys=True), {"setting": setting, "checks_by_seed": {}, "runs": []}
        )
        g["checks_by_seed"][job["params"].get("seed", 0)] = _checks_of(run)
        prov = json.loads((run / "provenance.json").read_text())
        g["runs"].append(
            {
                "job": job["id"],
                "seed": job["params"].get("seed", 0),
                "commit": prov.get("commit"),
                "device": prov.get("device"),
                "machine": prov.get("machine", {}).get("cpu"),
                "duration_s": prov.get("duration_s"),
            }
        )
    return groups


def summarize(sweep: Path) -> dict[str, Any]:
    """A sweep's finished runs merged, with provenance: runs grouped by their parameters other than ``seed`` (one
    group per combination), each group's checks judged over its seeds by :func:`over_seeds`, every run's checks
    judged again by this code from its recorded measurements."""
    spec = json.loads((sweep / "grid.json").read_text())
    groups = _runs_of(sweep, spec)
    summary = {
        "format": SUMMARY_FORMAT,
        "chapter": spec["chapter"],
        "name": spec["name"],
        "grid": spec["grid"],
        "jobs": len(spec["jobs"]),
        "finished": sum(len(g["runs"]) for g in groups.values()),
        "combinations": [
            {"setting": g["setting"], "runs": g["runs"], "checks": over_seeds(g["checks_by_seed"])}
            for g in groups.values()
        ],
        "grid_provenance": spec.get("provenance", {}),
    }
    return summary


def aggregate(sweep: Path) -> dict[str, Any]:
    """Merge a sweep's finished runs (:func:`summarize`) into ``summary.json`` and ``summary.csv``; written only
    when the content changes."""
    import pandas as pd

    summary = summarize(sweep)
    text = json.dumps(summary, indent=2, default=str) + "\n"
    target = sweep / "summary.json"
    if not target.exists() or target.read_text() != text:
        atomic_write_text(target, text)
        rows = [
            {
                **c["setting"],
                "check": chk["id"],
                "verdict": chk["verdict"],
                "fragile": chk["fragile"],
                "measure": (chk.get("measure") or {}).get("name"),
                "mean": (chk.get("measure") or {}).get("value"),
                "per-seed verdicts": ", ".join(f"{s}: {v}" for s, v in chk["verdicts"].items()),
            }
            for c in summary["combinations"]
            for chk in c["checks"]
        ]
        atomic_write_text(sweep / "summary.csv", pd.DataFrame(rows).to_csv(index=False))
    return summary


def committed_sweeps(chapter: str, root: Path | None = None) -> list[dict[str, Any]]:
    """The summaries of the sweeps of a chapter that count as evidence: their ``summary.json``
    :func:`flatrob.provenance.committed` (in the last commit, or promoted). [{"dir", "summary"}]. Summaries of
    another :data:`SUMMARY_FORMAT` (made by older code: re-aggregate or re-run them) are left out."""
    base = sweeps_root(root)
    found = sorted(p for p in base.glob("*/summary.json") if not is_partial(p.parent)) if base.is_dir() else []
    out = []
    for path in committed(found, root):
        summary = json.loads(path.read_text())
        if summary.get("chapter") == chapter and summary.get("format") == SUMMARY_FORMAT:
            fresh = (path.parent / "grid.json").is_file()  # its plan is there: its runs judged again by this code
            out.append({"dir": path.parent, "summary": _summarized(str(path.parent.resolve())) if fresh else summary})
    return out


@functools.lru_cache(maxsize=64)
def _summarized(sweep: str) -> dict[str, Any]:
    """:func:`summarize` once per sweep and process (a build re-judges each committed sweep once)."""
    return summarize(Path(sweep))


def _fmt(x: float) -> str:
    return f"{x:.3g}"


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
                seeds = ", ".join(f"seed {s}: {v}" for s, v in c["verdicts"].items())
                m = c.get("measure")
                if m:
                    interval = (
                        f"[{_fmt(m['ci95'][0])}, {_fmt(m['ci95'][1])}]"
                        if c.get("resolved")
                        else "(unresolved: the seeds' values are identical)"
                    )
                    evidence = (
                        f"{m['name']} over {m['n']} seeds: mean {_fmt(m['value'])} {interval} (95% "
                        f"t-interval over seeds, each attacking its own inputs; spread {_fmt(c['min'])} to "
                        f"{_fmt(c['max'])}); the seeds' verdicts: {seeds}"
                    )
                else:
                    evidence = f"the seeds' verdicts: {seeds}"
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
                        provenance=_sweep_provenance(sweep["summary"], combo),
                    )
                )
    return out


def _limits(limits: dict[str, Any]) -> str:
    """A check's limits in words: ``cap 51, never rose (clean) 12, ...``."""
    return ", ".join(f"{k} {_fmt(v) if isinstance(v, float) else v}" for k, v in limits.items())


def _sweep_provenance(summary: dict[str, Any], combo: dict[str, Any]) -> dict[str, Any]:
    """Where an over-seeds entry comes from: the sweep, the parameters of its combination and, per run, the commit,
    device, machine and time that made it (not the build that judges it)."""
    commits = sorted({str(r.get("commit")) for r in combo["runs"]})
    return {
        "source": f"sweep {summary['name']}",
        "params": {**combo["setting"], "seed": sorted(r["seed"] for r in combo["runs"])},
        "commit": ", ".join(commits),
        "device": ", ".join(sorted({str(r.get("device")) for r in combo["runs"]})),
        "machine": {"cpu": ", ".join(sorted({str(r.get("machine")) for r in combo["runs"]}))},
        "runs": combo["runs"],
    }
