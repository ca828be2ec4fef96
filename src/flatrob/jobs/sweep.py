"""Sweeps: a chapter re-run over a grid of parameters (seeds, datasets, radii, architectures) by Snakemake.

``python -m flatrob sweep CHAPTER -p seed 0,1,2 -p dataset fashion-mnist,digits`` plans the grid, checks every
combination with the chapter's own rules (:func:`flatrob.jobs.params.validate`: values, machine, data and architecture)
before anything runs, writes it to ``data/sweeps/<name>/grid.json`` and runs ``workflow/Snakefile`` in the sweep's
folder, whose jobs are ``flatrob run`` invocations, one run folder each (``data/sweeps/<name>/runs/<chapter>/<job>/``).
Snakemake re-runs only what is missing (a finished run is never redone; an interrupted sweep resumes), runs on the
local cores by default and reaches SLURM and other clusters through a profile (``--profile``; a job whose device is
cuda declares ``gpu=1``). Ctrl-C is passed on to Snakemake, which is given time to stop its jobs and release its
lock; a lock left by a sweep that was killed is removed when no process of that sweep is alive.

:func:`aggregate` then merges the finished runs into ``summary.json``: per combination of the other parameters and
per check, the verdict of every seed and the verdict over the seeds
(:func:`flatrob.evidence.verdicts.over_seeds_verdict`: a majority that the pooled interval confirms), with the check's
measure over the seeds (mean, 95% t-interval, spread; each seed attacks its own inputs, so the interval covers inputs
and training). Every run's checks are judged again by the code that reads them, from the measurements the run recorded
(:mod:`flatrob.evidence.checks.replay`). A committed sweep gives the chapters and the ledger their verdicts over seeds.
"""

from __future__ import annotations

import hashlib
import importlib.util
import itertools
import json
import os
import re
import signal
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from flatrob.evidence.records import ParamValue, SweepJob, SweepPlan
from flatrob.evidence.seeds import aggregate
from flatrob.jobs.params import ParameterError, parse_value, validate
from flatrob.util.io import atomic_write_text
from flatrob.util.paths import (
    GRID,
    PROVENANCE,
    repo_root,
    snakefile,
    snakemake_dir,
    snakemake_locks,
    snakemake_pid,
    sweep_job_dir,
    sweep_log,
    sweeps_root,
)
from flatrob.util.provenance import provenance

__all__ = [
    "SNAKEFILE",
    "job_id",
    "plan",
    "run_sweep",
    "split_values",
]

#: The workflow whose jobs are ``flatrob run`` (local cores by default, a cluster through a profile), relative to
#: the repository: :func:`flatrob.util.paths.snakefile`.
SNAKEFILE = snakefile(Path(".")).relative_to(".")
#: Seconds Snakemake is given after Ctrl-C to stop its jobs and release its lock before it is terminated.
GRACE_S = 60


def split_values(text: str) -> list[Any]:
    """A command-line list of values, split on the commas outside brackets: ``0,1,2`` -> [0, 1, 2];
    ``[0.1, 0.2],[0.3]`` -> [[0.1, 0.2], [0.3]]. Each value is read as YAML
    (:func:`flatrob.jobs.params.parse_value`)."""
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


def job_id(params: Mapping[str, ParamValue]) -> str:
    """A readable, file-safe name for one combination: ``dataset-digits_seed-1``."""

    def clean(v: Any) -> str:
        return re.sub(r"[^A-Za-z0-9.+]", "", json.dumps(v) if not isinstance(v, str) else v) or "x"

    return "_".join(f"{k}-{clean(v)}" for k, v in sorted(params.items())) or "default"


def plan(chapter: str, grid: dict[str, list[Any]], name: str | None = None) -> SweepPlan:
    """The sweep's jobs: every combination of ``grid``'s values, each validated by the chapter's rules.

    Raises :class:`flatrob.jobs.params.ParameterError` for the first impossible combination, before anything runs.
    """
    if not grid:
        raise ParameterError("a sweep needs at least one parameter with values (-p NAME v1,v2,...)")
    for key, values in grid.items():
        if not isinstance(values, list) or not values:
            raise ParameterError(f"parameter {key!r} of the sweep needs at least one value")
    keys = sorted(grid)
    jobs: list[SweepJob] = []
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
    locks = snakemake_locks(sweep)
    if not locks:
        return
    pidfile = snakemake_pid(sweep)
    pid = int(pidfile.read_text()) if pidfile.is_file() and pidfile.read_text().strip().isdigit() else None
    if pid is not None and _alive(pid):
        raise ParameterError(f"sweep {sweep.name} is running (Snakemake, process {pid}); wait for it or stop it first")
    subprocess.run([*cmd, "--unlock"], cwd=sweep, capture_output=True)
    print(f"sweep {sweep.name}: removed the lock left by {whose}", flush=True)


def _run_sequentially(spec: SweepPlan, sweep: Path) -> int:
    """The sweep's jobs one after the other in this process (:func:`flatrob.jobs.run.run_chapter`), each into its
    folder; finished jobs are kept, a job's unfinished folder is removed first; then reported and aggregated
    (:func:`_finish`)."""
    import shutil

    from flatrob.jobs.run import RunFailed, run_chapter
    from flatrob.util.paths import partial_dir

    chapter, interrupted = spec["chapter"], False
    print(f"sweep {spec['name']}: {len(spec['jobs'])} jobs of chapter {chapter!r}, one at a time", flush=True)
    for job in spec["jobs"]:
        final = sweep_job_dir(sweep, chapter, job["id"])
        if (final / PROVENANCE).exists():
            continue
        shutil.rmtree(partial_dir(final), ignore_errors=True)
        log = sweep_log(sweep, job["id"])
        log.parent.mkdir(parents=True, exist_ok=True)
        try:
            with open(log, "w") as stream:
                run_chapter(chapter, job["params"], final.parent.parent, job["id"], progress=False, echo=stream)
            print(f"  done: {job['id']}", flush=True)
        except RunFailed as err:
            print(f"  {job['id']}: {err}", flush=True)  # listed among the failed, with its log, at the end
        except KeyboardInterrupt:
            interrupted = True
            print(f"interrupted during {job['id']}", file=sys.stderr, flush=True)
            break
    return _finish(spec, sweep, interrupted)


def _finish(spec: SweepPlan, sweep: Path, interrupted: bool, ok: bool = True) -> int:
    """The end of a sweep, however its jobs ran: how many are done and which failed (with their logs) or are left,
    then the aggregate over seeds of those done (``summary.json``). Returns 0 when every job finished (and the
    runner reported success, ``ok``), 1 when some failed, 130 when interrupted."""
    chapter = spec["chapter"]
    done = [j for j in spec["jobs"] if (sweep_job_dir(sweep, chapter, j["id"]) / PROVENANCE).exists()]
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
    return 0 if not left and ok else 1


def run_sweep(
    chapter: str,
    grid: dict[str, list[Any]],
    *,
    name: str | None = None,
    cores: int = 1,
    profile: str | None = None,
    extra: list[str] | None = None,
    out_root: Path | None = None,
    sequential: bool = False,
) -> int:
    """Plan, check and run a sweep with Snakemake, then aggregate it; returns 0 when every job finished, 1 when
    some failed, 130 when interrupted.

    Prints Snakemake's progress, then how many jobs are done and which failed, with their logs. With
    ``sequential`` (or where Snakemake is not installed, as on a bare GPU machine), the jobs run one after the other
    in this process, into the same folders: a finished job is never redone, an unfinished one starts afresh.
    """
    spec = plan(chapter, grid, name)
    sweep = (out_root or sweeps_root()) / spec["name"]
    _keep_plan(spec, sweep)
    if sequential or importlib.util.find_spec("snakemake") is None:
        return _run_sequentially(spec, sweep)
    interrupted, ok = _snakemake(spec, sweep, cores, profile, extra or [])
    return _finish(spec, sweep, interrupted, ok)


def _keep_plan(spec: SweepPlan, sweep: Path) -> None:
    """Write the sweep's plan (with the provenance of the checkout that planned it) into ``sweep``, or check that
    the plan already there is this one (the same chapter and jobs: a resumed sweep)."""
    grid_file = sweep / GRID
    if grid_file.exists():
        old = json.loads(grid_file.read_text())
        if old.get("jobs") != spec["jobs"] or old.get("chapter") != spec["chapter"]:
            raise ParameterError(f"a different sweep named {spec['name']!r} exists at {sweep}; choose another --name")
        return
    try:
        spec["provenance"] = provenance({"grid": spec["grid"]})
        atomic_write_text(grid_file, json.dumps(spec, indent=2) + "\n")
    except OSError as err:
        raise ParameterError(
            f"cannot write the sweep under {sweep}: {err.strerror or err}; choose another --out"
        ) from None


def _snakemake(spec: SweepPlan, sweep: Path, cores: int, profile: str | None, extra: list[str]) -> tuple[bool, bool]:
    """Run the sweep's jobs with Snakemake (``cores`` at once, or through a cluster ``profile``; ``extra``
    arguments passed on), its pid kept for a later start to find a stale lock; Ctrl-C stops it cleanly and releases
    its lock. Returns (interrupted, every job finished)."""
    root = repo_root()
    base = [sys.executable, "-m", "snakemake", "--snakefile", str(root / SNAKEFILE), "--directory", str(sweep),
            "--config", f"grid={(sweep / GRID).resolve()}", f"python={sys.executable}", f"root={root}"]  # fmt: skip
    _release_stale_lock(sweep, base)
    cmd = [*base, "--cores", str(cores), "--keep-going", "--rerun-incomplete", "--rerun-triggers", "mtime", "--quiet",
           "rules", *(["--profile", profile] if profile else []), *extra]  # fmt: skip
    print(f"sweep {spec['name']}: {len(spec['jobs'])} jobs of chapter {spec['chapter']!r} in {sweep}", flush=True)
    snake = subprocess.Popen(cmd, cwd=sweep, start_new_session=True)
    snakemake_dir(sweep).mkdir(exist_ok=True)
    atomic_write_text(snakemake_pid(sweep), str(snake.pid))
    try:
        snake.wait()
    except KeyboardInterrupt:
        print(
            f"interrupted: stopping Snakemake (up to {GRACE_S} s for it to stop its jobs and release its lock)",
            file=sys.stderr,
            flush=True,
        )
        _stop(snake)
        _release_stale_lock(sweep, base, "the stopped Snakemake")
        return True, False
    return False, snake.returncode == 0


# ---------------------------------------------------------------------------
# aggregation over seeds
