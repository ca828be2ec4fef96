"""Provenance and results: which repository, which code, which machine made a result, and safe writes.

This module imports nothing of flatrob but :mod:`flatrob.paths` (the layout) and :mod:`flatrob._cpu`, so every
other module can use it.

* :func:`provenance` and :func:`provenance_line` say with which parameters, code (commit), device, machine (CPU,
  threads, the kernels torch uses) and library versions a result was made; :func:`machine` is the machine part.
* :func:`atomic_write` and friends write a file under a unique temporary name and rename it, so that a reader
  never sees half a file and two writers never share a temporary file.
* :func:`committed` and :func:`committed_runs` list what counts as evidence in the book: files committed to the
  repository (in ``HEAD``, unchanged), or promoted explicitly.
* :func:`default_device` and :func:`resolve_device` turn a chapter's ``device`` parameter into a
  :class:`torch.device`.
"""

from __future__ import annotations

import datetime as _dt
import functools
import json
import math
import os
import platform
import secrets
import subprocess
import sys
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any, TypeVar

import torch

from flatrob._cpu import CPU_PINS, pin_cpu_kernels
from flatrob.paths import PROMOTED, repo_root

__all__ = [
    "COMMIT_ENV",
    "DEVICES",
    "THREADS_ENV",
    "atomic_write",
    "atomic_write_text",
    "committed",
    "committed_runs",
    "default_device",
    "device_name",
    "fix_threads",
    "git_commit",
    "is_dirty",
    "json_text",
    "strict_json",
    "machine",
    "machine_slug",
    "progress_bar",
    "progress_enabled",
    "provenance",
    "provenance_line",
    "resolve_device",
    "save_results",
    "set_progress_default",
]

#: The commit to record where the repository's history is absent (a copy of the working tree on another machine).
COMMIT_ENV = "FLATROB_COMMIT"
#: torch's thread count for the chapters (default 2): the same on every machine, whatever its number of cores.
THREADS_ENV = "FLATROB_THREADS"
#: The accepted values of every chapter's ``device`` parameter.
DEVICES: tuple[str, ...] = ("auto", "cpu", "cuda")


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


# ---------------------------------------------------------------------------
# devices


def default_device() -> torch.device:
    """CUDA when present, else CPU."""
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def resolve_device(name: str) -> torch.device:
    """A chapter's ``device`` parameter: "auto" (CUDA when present), "cpu" or "cuda" (an error when absent)."""
    if name not in DEVICES:
        raise ValueError(f"parameter 'device' must be one of {list(DEVICES)}; got {name!r}")
    if name == "cuda" and not torch.cuda.is_available():
        raise ValueError("parameter 'device' is 'cuda' but CUDA is not available on this machine; use auto or cpu")
    return default_device() if name == "auto" else torch.device(name)


def device_name(device: torch.device | str | None) -> str:
    """A readable name of a device: ``cuda (NVIDIA H200)`` or ``cpu (x86_64, 2 threads)``."""
    device = torch.device(device) if device is not None else torch.device("cpu")
    if device.type == "cuda" and torch.cuda.is_available():
        return f"cuda ({torch.cuda.get_device_name(device)})"
    return f"cpu ({platform.processor() or platform.machine()}, {torch.get_num_threads()} threads)"


# ---------------------------------------------------------------------------
# what made a result


def fix_threads() -> int:
    """Set torch's thread count to ``$FLATROB_THREADS`` (default 2) and return it: the chapters compute with the same
    count on every machine (with the pinned kernels of :mod:`flatrob._cpu`, numbers then agree across machines)."""
    text = os.environ.get(THREADS_ENV, "2")
    try:
        n = int(text)
    except ValueError:
        raise ValueError(f"{THREADS_ENV} must be a positive integer; got {text!r}") from None
    if n < 1:
        raise ValueError(f"{THREADS_ENV} must be a positive integer; got {text!r}")
    torch.set_num_threads(n)
    return n


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


def provenance(params: dict[str, Any] | None = None, device: torch.device | str | None = None) -> dict[str, Any]:
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


def provenance_line(record: dict[str, Any]) -> str:
    """One line for a figure caption: parameters, device, commit."""
    params = ", ".join(f"{k}={json.dumps(v)}" for k, v in record["params"].items())
    return f"parameters: {params} | device: {record['device']} | commit: {record['commit']}"


# ---------------------------------------------------------------------------
# writing results


def atomic_write(path: str | Path, write: Callable[[Path], None]) -> Path:
    """Call ``write(tmp)`` on a unique temporary file beside ``path``, then rename it to ``path``.

    A reader sees the old file or the new one, never half of one; concurrent
    writers each have their own temporary file. The folder is created if needed.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}-{secrets.token_hex(4)}.tmp")
    try:
        write(tmp)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def atomic_write_text(path: str | Path, text: str) -> Path:
    """Write ``text`` to ``path`` atomically (see :func:`atomic_write`)."""

    def write(tmp: Path) -> None:
        tmp.write_text(text)

    return atomic_write(path, write)


def save_results(results_dir: str | Path | None, files: dict[str, Any]) -> list[Path]:
    """Write a chapter's results into ``results_dir`` (nothing when it is empty): DataFrames as CSV, a dict of arrays
    named ``*.npz`` as a compressed NumPy archive, the rest as JSON.

    Each file is written atomically (:func:`atomic_write`), so a reader never sees half a file.
    Floats that are not finite are written as ``null``: the files stay strict JSON.
    """
    if not results_dir:
        return []
    folder = Path(results_dir)
    written = []
    for fname, obj in files.items():
        if fname.endswith(".npz"):  # a dict of arrays: one compressed NumPy archive
            import numpy as np

            arrays = {k: np.asarray(v) for k, v in obj.items()}

            def write(tmp: Path, a: dict[str, Any] = arrays) -> None:
                with open(tmp, "wb") as handle:  # a handle: given a path, NumPy would append ".npz" to it
                    np.savez_compressed(handle, **a)

            written.append(atomic_write(folder / fname, write))
            continue
        text = obj.to_csv(index=False) if hasattr(obj, "to_csv") else json_text(obj)
        written.append(atomic_write_text(folder / fname, text))
    return written


def strict_json(obj: Any) -> Any:
    """``obj`` as strict JSON holds it: tuples as lists, anything else JSON cannot hold as its string, and every float
    that is NaN or infinite as None (strict JSON has no such numbers)."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {str(k): strict_json(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [strict_json(v) for v in obj]
    if obj is None or isinstance(obj, (str, int, bool)):
        return obj
    return str(obj)


def json_text(obj: Any) -> str:
    """``obj`` as the text of a strict JSON file: :func:`strict_json`, indented, with a final newline."""
    return json.dumps(strict_json(obj), indent=2, allow_nan=False) + "\n"


def committed(files: list[Path], root: Path | None = None) -> list[Path]:
    """The files among ``files`` that count as evidence: committed (in ``HEAD`` and unchanged since: a file that is
    only staged, or modified after its commit, does not count), or beside a file named ``PROMOTED``
    (``python -m flatrob promote``). In their order; none outside git unless promoted."""
    root = (root or repo_root()).resolve()
    good: set[Path] = set()
    if files:
        try:
            rel = [str(p.resolve().relative_to(root)) for p in files]
            listed = subprocess.run(
                ["git", "ls-tree", "-r", "-z", "--name-only", "HEAD", "--", *rel],
                cwd=root,
                capture_output=True,
                text=True,
                check=True,
            ).stdout
            changed = subprocess.run(
                ["git", "diff", "--name-only", "-z", "HEAD", "--", *rel],
                cwd=root,
                capture_output=True,
                text=True,
                check=True,
            ).stdout
            good = {(root / p).resolve() for p in set(listed.split("\0")) - set(changed.split("\0")) if p}
        except (OSError, subprocess.CalledProcessError, ValueError):
            pass
    return [f for f in files if f.resolve() in good or (f.parent / PROMOTED).exists()]


def committed_runs(chapter_name: str, root: Path | None = None) -> list[dict[str, Any]]:
    """The runs of a chapter that count as evidence: [{"dir", "params", "provenance"}], oldest first.

    A run folder ``data/runs/<chapter>/<run>/`` counts when its ``provenance.json``
    is :func:`committed` (to the repository, or promoted). A local test run is
    neither, so it never appears in the book as evidence. Unfinished runs (hidden
    ``.partial`` folders) never count.
    """
    from flatrob.paths import run_dirs, runs_root

    root = (root or repo_root()).resolve()
    candidates = [
        d / "provenance.json" for d in run_dirs(runs_root(root) / chapter_name) if (d / "provenance.json").is_file()
    ]
    runs = []
    for prov_file in committed(candidates, root):
        prov = json.loads(prov_file.read_text())
        runs.append({"dir": prov_file.parent, "params": prov.get("params", {}), "provenance": prov})
    return runs


# ---------------------------------------------------------------------------
# progress

T = TypeVar("T")

#: Whether progress bars are on when a function is not told (``progress=None``): off, except in a chapter that
#: ``flatrob run`` executes with progress (its run record says so; :func:`flatrob.chapter.setup_chapter` sets it).
_PROGRESS_DEFAULT = [False]


def set_progress_default(on: bool) -> None:
    """Turn progress bars on or off for every call that does not say (``progress=None``)."""
    _PROGRESS_DEFAULT[0] = bool(on)


def progress_enabled(progress: bool | None) -> bool:
    """An explicit ``progress`` wins; ``None`` means the default of :func:`set_progress_default`."""
    return bool(progress) if progress is not None else _PROGRESS_DEFAULT[0]


def progress_bar(iterable: Iterable[T], *, progress: bool | None = None, **kwargs: Any) -> Iterable[T]:
    """A text progress bar (tqdm) on standard error when :func:`progress_enabled`, else the iterable itself.

    Standard error is the terminal of ``python -m flatrob run`` (and its run log);
    off a terminal the bar is redrawn at most every few seconds.
    """
    if not progress_enabled(progress):
        return iterable
    from tqdm import tqdm

    tty = hasattr(sys.stderr, "isatty") and sys.stderr.isatty()
    bar: Iterable[T] = tqdm(iterable, file=sys.stderr, mininterval=0.1 if tty else 5.0, dynamic_ncols=tty, **kwargs)
    return bar
