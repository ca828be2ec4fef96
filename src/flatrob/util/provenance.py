"""Provenance: which repository, which code and which machine made a result, and which results count as evidence.

* :func:`provenance` and :func:`provenance_line` say with which parameters, code (commit), device, machine (CPU,
  threads, the kernels torch uses) and library versions a result was made; :func:`machine` is the machine part.
* :func:`committed` says what counts as evidence in the book: files committed to the repository (in ``HEAD``,
  unchanged), or promoted explicitly (:meth:`flatrob.jobs.run.Run.committed` lists a chapter's runs by it).
"""

from __future__ import annotations

import datetime as _dt
import functools
import json
import os
import platform
import subprocess
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, TypedDict

import torch

from flatrob._cpu import CPU_PINS, pin_cpu_kernels
from flatrob.util.devices import device_name
from flatrob.util.paths import repo_root

__all__ = [
    "COMMIT_ENV",
    "Provenance",
    "git_commit",
    "is_dirty",
    "machine",
    "machine_slug",
    "provenance",
    "provenance_line",
    "sweep_caption",
    "changed_parameters",
    "in_255ths",
    "interval_text",
    "short_value",
    "three_digits",
]


class Provenance(TypedDict, total=False):
    """How a result was made (:func:`provenance`), the one record of a run (``provenance.json``, with the run's
    chapter, source, status and duration: :class:`flatrob.jobs.run.Run`) and, for committed evidence, where it
    comes from (``source``: "sweep <name>", "run <name>"; a sweep's ``runs``) and which build judged it
    (``judged_at``, the ledger's). Every key is optional: each kind of record holds its own."""

    params: dict[str, Any]
    commit: str
    device: str
    device_type: str
    machine: dict[str, Any]
    versions: dict[str, str]
    time_utc: str
    chapter: str
    source: str
    progress: bool
    status: str
    duration_s: float
    runs: list[Any]
    judged_at: str


#: The commit to record where the repository's history is absent (a copy of the working tree on another machine).
COMMIT_ENV = "FLATROB_COMMIT"


def git_commit(root: Path | None = None) -> str:
    """Short commit hash of the repository, with ``+dirty`` when tracked files differ.

    Files under ``data/`` (results the chapters write, such as the claims ledger) do not make the code dirty.
    Outside git (for example a copy of the working tree on a GPU machine) it is ``$FLATROB_COMMIT``
    when the copier set it, else ``unknown``.
    """
    root = root or repo_root()
    if not (root / ".git").exists() and os.environ.get(COMMIT_ENV):
        return os.environ[COMMIT_ENV]
    try:
        sha = subprocess.run(
            ["git", "rev-parse", "--short=10", "HEAD"], cwd=root, capture_output=True, text=True, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no", "--", ".", ":(exclude)data"],
            cwd=root,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return os.environ.get(COMMIT_ENV, "unknown")
    return sha + ("+dirty" if dirty else "")


def is_dirty(root: Path | None = None) -> list[str]:
    """The tracked files (anywhere, data/ included) that differ from the last commit: [] for a clean tree."""
    out = subprocess.run(
        ["git", "status", "--porcelain", "--untracked-files=no"],
        cwd=root or repo_root(),
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return [line[3:] for line in out.splitlines() if line.strip()]


@functools.lru_cache(maxsize=1)
def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine() -> dict[str, Any]:
    """The machine a result was computed on, as far as it can change the numbers: the CPU, torch's thread count,
    the kernels torch dispatches to (ATen's CPU capability, oneDNN's instruction set, MKL's reproducibility mode)
    and whether they are pinned (:mod:`flatrob._cpu`)."""
    return {
        "cpu": _cpu_model(),
        "arch": platform.machine(),
        "threads": torch.get_num_threads(),
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "onednn_isa": os.environ.get("ONEDNN_MAX_CPU_ISA", "native"),
        "mkl_cbwr": os.environ.get("MKL_CBWR", "default"),
        "kernels_pinned": pin_cpu_kernels()
        and torch.backends.cpu.get_cpu_capability().lower() == CPU_PINS["ATEN_CPU_CAPABILITY"],
    }


def machine_slug() -> str:
    """A file-safe name of this machine as its numbers depend on it: ``amd-epyc-avx2-2t`` (CPU model, the kernels'
    instruction set, threads). Benchmark files carry it, so that no figure passes for another machine's."""
    import re

    m = machine()
    cpu = re.sub(r"[^a-z0-9]+", "-", str(m["cpu"]).lower()).strip("-")[:40] or "cpu"
    return f"{cpu}-{str(m['cpu_capability']).lower()}-{m['threads']}t"


def provenance(params: dict[str, Any] | None = None, device: torch.device | str | None = None) -> Provenance:
    """A JSON-serialisable record of how a result was made: parameters, commit, device, machine, versions, time."""
    import numpy
    import sympy

    return {
        "params": dict(params or {}),
        "commit": git_commit(),
        "device": device_name(device),
        "device_type": torch.device(device).type if device is not None else "cpu",
        "machine": machine(),
        "versions": {
            "python": platform.python_version(),
            "torch": torch.__version__,
            "numpy": numpy.__version__,
            "sympy": sympy.__version__,
        },
        "time_utc": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
    }


def in_255ths(value: float) -> str | None:
    """A radius or step size as the paper writes it, when it is a whole number of 255ths up to 32/255.

    Args:
        value: a radius or step size in pixel units (images in [0, 1]).

    Returns:
        ``"k/255"`` (``8/255``, not 0.03137254901960784) where ``value * 255`` is a whole number from 1 to 32, else
        None: the caller writes the number itself (0.1, 0.2, 0.025).
    """
    k = value * 255
    if 0 < value and abs(k - round(k)) < 1e-6 and round(k) <= 32:
        return f"{round(k)}/255"
    return None


def short_value(value: Any) -> str:
    """A parameter's value as a footer, a table or a label shows it: a radius or step size in 255ths where it is a
    whole number of them (:func:`in_255ths`), other numbers to four digits, words unquoted, lists item by item."""
    if isinstance(value, float):
        return in_255ths(value) or f"{value:.4g}"
    if isinstance(value, list):
        return "[" + ", ".join(short_value(v) for v in value) + "]"
    return value if isinstance(value, str) else json.dumps(value)


def three_digits(x: float) -> str:
    """A number as verdicts, reports and prose write it: three significant digits (``0.00975``, ``2.33``, ``1e+02``)."""
    return f"{x:.3g}"


def interval_text(value: Any, lo: Any, hi: Any, number: Callable[[Any], str] = three_digits) -> str:
    """A value with its interval as every page writes it, ``value [lo, hi]``, each number by ``number``."""
    return f"{number(value)} [{number(lo)}, {number(hi)}]"


def changed_parameters(
    params: Mapping[str, Any], defaults: Mapping[str, Any] | None = None, whose: str = "the chapter's"
) -> str:
    """Parameters as a footer writes them (radii in 255ths, numbers to four digits); with a chapter's ``defaults``,
    only those that differ from them: "the chapter's defaults except epochs=10, seed=2" (the rest are the defaults
    of the chapter at the commit the footer names, listed in its parameter table); ``whose`` names the chapter."""
    if defaults is None:
        return ", ".join(f"{k}={short_value(v)}" for k, v in params.items())
    changed = [f"{k}={short_value(v)}" for k, v in params.items() if k not in defaults or defaults[k] != v]
    return f"{whose} defaults" + (f" except {', '.join(changed)}" if changed else "")


def provenance_line(record: Provenance, defaults: Mapping[str, Any] | None = None) -> str:
    """One line for a figure caption: parameters (:func:`changed_parameters`: with the chapter's ``defaults``, only
    those that differ), device, commit."""
    params = changed_parameters(record["params"], defaults)
    return f"parameters: {params} | device: {record['device']} | commit: {record['commit']}"


def sweep_caption(
    results: Sequence[Mapping[str, Any]],
    drawn_at: str,
    defaults: Mapping[str, Any] | None = None,
    chapter: str | None = None,
) -> str:
    """The provenance line of a figure drawn from committed sweep results: the sweeps, the parameters all their
    runs share (those that vary, as a study's axes, are named and left to the figure), their seeds, the commits
    (beyond two, the first and how many more: each run's is in its sweep's summary) and devices that made them, and
    the commit that drew the figure.

    Args:
        results: records of :meth:`flatrob.jobs.chapter.ChapterContext.sweep_results` (keys "sweep", "setting",
            "seed", "run"), at least one.
        drawn_at: the commit of the build that draws the figure.
        defaults: the chapter's parameter defaults; where given, only the shared parameters that differ from them
            are written (:func:`flatrob.util.provenance.changed_parameters`).
        chapter: the chapter whose defaults these are, where it is not the page's own.
    """
    if not results:
        raise ValueError("sweep_caption needs at least one sweep result")
    names = sorted({str(r["sweep"]) for r in results})
    shared = {k: v for k, v in results[0]["setting"].items() if all(r["setting"].get(k) == v for r in results)}
    varying = sorted({k for r in results for k in r["setting"]} - set(shared))
    whose = f"chapter {chapter}'s" if chapter else "the chapter's"
    commits = sorted({str(r["run"]["commit"]) for r in results})
    made = ", ".join(commits) if len(commits) <= 2 else f"{commits[0]} and {len(commits) - 1} more (in the summaries)"
    return (
        f"committed sweep{'s' if len(names) > 1 else ''} {', '.join(names)}: "
        f"{changed_parameters(shared, defaults, whose)}"
        + (f", {', '.join(varying)} varying" if varying else "")
        + f"; seeds {sorted({r['seed'] for r in results})}; made at commit {made} on "
        f"{', '.join(sorted({str(r['run']['device']) for r in results}))}; drawn at commit {drawn_at}"
    )
