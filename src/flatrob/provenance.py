"""Provenance and results: which repository, which code, which device made a result, and safe writes.

This module imports nothing else from flatrob, so every other module can use it.

* :func:`repo_root` is the repository the user runs in (``$FLATROB_ROOT``, else the
  nearest folder at or above the working directory holding ``_config.yml`` and
  ``book/``): results, runs and the model cache follow it, not the place where the
  package happens to be installed.
* :func:`provenance` and :func:`provenance_line` say with which parameters, code
  (commit), device and library versions a result was made.
* :func:`atomic_write` and friends write a file under a unique temporary name and
  rename it, so that a reader never sees half a file and two writers never share a
  temporary file.
* :func:`committed_runs` lists the runs that count as evidence in the book: those
  committed to the repository, or promoted explicitly.
* :func:`default_device` and :func:`resolve_device` turn a chapter's ``device``
  parameter into a :class:`torch.device`.
"""

from __future__ import annotations

import datetime as _dt
import json
import os
import platform
import secrets
import subprocess
import sys
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any, TypeVar

import torch

__all__ = [
    "CACHE_ENV",
    "COMMIT_ENV",
    "DEVICES",
    "PROGRESS_ENV",
    "PROMOTED",
    "ROOT_ENV",
    "atomic_write",
    "atomic_write_text",
    "cache_dir",
    "committed",
    "committed_runs",
    "default_device",
    "device_name",
    "git_commit",
    "progress_bar",
    "progress_enabled",
    "provenance",
    "provenance_line",
    "repo_root",
    "resolve_device",
    "save_results",
]

#: Environment variable naming the repository root (default: found from the working directory).
ROOT_ENV = "FLATROB_ROOT"
#: Environment variable naming the folder of cached models (default: ``<repo>/cache``).
CACHE_ENV = "FLATROB_CACHE"
#: Environment variable that turns on progress bars (``python -m flatrob run`` sets it for its kernel).
PROGRESS_ENV = "FLATROB_PROGRESS"
#: The commit to record where the repository's history is absent (a copy of the working tree on another machine).
COMMIT_ENV = "FLATROB_COMMIT"
#: A file of this name in a run folder promotes an uncommitted run to evidence (``python -m flatrob promote``).
PROMOTED = "PROMOTED"
#: The accepted values of every chapter's ``device`` parameter.
DEVICES: tuple[str, ...] = ("auto", "cpu", "cuda")


# ---------------------------------------------------------------------------
# where


def _is_root(folder: Path) -> bool:
    return (folder / "_config.yml").is_file() and (folder / "book").is_dir()


def repo_root() -> Path:
    """The repository the user runs in.

    ``$FLATROB_ROOT`` when set; else the nearest folder at or above the working
    directory that holds ``_config.yml`` and ``book/`` (chapters execute in
    ``book/...``, so they find it too); else the working directory itself.
    """
    env = os.environ.get(ROOT_ENV)
    if env:
        return Path(env).expanduser().resolve()
    cwd = Path.cwd().resolve()
    for folder in (cwd, *cwd.parents):
        if _is_root(folder):
            return folder
    return cwd


def cache_dir() -> Path:
    """Folder of cached models and training checkpoints: ``$FLATROB_CACHE`` or ``<repo>/cache``."""
    env = os.environ.get(CACHE_ENV)
    return Path(env).expanduser() if env else repo_root() / "cache"


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
            cwd=root, capture_output=True, text=True, check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return os.environ.get(COMMIT_ENV, "unknown")
    return sha + ("+dirty" if dirty else "")


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


def provenance(params: dict[str, Any] | None = None, device: torch.device | str | None = None) -> dict[str, Any]:
    """A JSON-serialisable record of how a result was made: parameters, commit, device, versions, time."""
    import numpy
    import sympy

    return {
        "params": dict(params or {}),
        "commit": git_commit(),
        "device": device_name(device),
        "versions": {
            "python": platform.python_version(),
            "torch": torch.__version__,
            "numpy": numpy.__version__,
            "sympy": sympy.__version__,
        },
        "time_utc": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
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
    return atomic_write(path, lambda tmp: tmp.write_text(text))


def save_results(results_dir: str | Path | None, files: dict[str, Any]) -> list[Path]:
    """Write a chapter's results into ``results_dir`` (nothing when it is empty): DataFrames as CSV, the rest as JSON.

    Each file is written atomically (:func:`atomic_write`), so a reader never sees half a file.
    Floats that are not finite are written as ``null``: the files stay strict JSON.
    """
    if not results_dir:
        return []
    folder = Path(results_dir)
    written = []
    for fname, obj in files.items():
        if hasattr(obj, "to_csv"):
            text = obj.to_csv(index=False)
        else:
            text = json.dumps(_finite(obj), indent=2, default=str, allow_nan=False) + "\n"
        written.append(atomic_write_text(folder / fname, text))
    return written


def _finite(obj: Any) -> Any:
    """``obj`` with every float that is NaN or infinite replaced by None (strict JSON has no such numbers)."""
    if isinstance(obj, float):
        return obj if obj == obj and abs(obj) != float("inf") else None
    if isinstance(obj, dict):
        return {k: _finite(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_finite(v) for v in obj]
    return obj


def committed(files: list[Path], root: Path | None = None) -> list[Path]:
    """The files among ``files`` that count as evidence: committed to the repository (tracked by git), or beside
    a file named ``PROMOTED`` (``python -m flatrob promote``). In their order; none outside git unless promoted."""
    root = (root or repo_root()).resolve()
    tracked: set[Path] = set()
    if files:
        try:
            out = subprocess.run(
                ["git", "ls-files", "-z", "--", *[str(p.resolve().relative_to(root)) for p in files]],
                cwd=root, capture_output=True, text=True, check=True,
            ).stdout
            tracked = {(root / p).resolve() for p in out.split("\0") if p}
        except (OSError, subprocess.CalledProcessError, ValueError):
            pass
    return [f for f in files if f.resolve() in tracked or (f.parent / PROMOTED).exists()]


def committed_runs(chapter_name: str, root: Path | None = None) -> list[dict[str, Any]]:
    """The runs of a chapter that count as evidence: [{"dir", "params", "provenance"}], oldest first.

    A run folder ``data/runs/<chapter>/<run>/`` counts when its ``provenance.json``
    is :func:`committed` (to the repository, or promoted). A local test run is
    neither, so it never appears in the book as evidence. Unfinished runs (hidden
    ``.partial`` folders) never count.
    """
    root = (root or repo_root()).resolve()
    base = root / "data" / "runs" / chapter_name
    candidates = sorted(p for p in base.glob("*/provenance.json") if not p.parent.name.startswith(".")) if base.is_dir() else []
    runs = []
    for prov_file in committed(candidates, root):
        prov = json.loads(prov_file.read_text())
        runs.append({"dir": prov_file.parent, "params": prov.get("params", {}), "provenance": prov})
    return runs


# ---------------------------------------------------------------------------
# progress

T = TypeVar("T")


def progress_enabled(progress: bool | None) -> bool:
    """An explicit ``progress`` wins; ``None`` means on when ``$FLATROB_PROGRESS`` is 1 (set by ``flatrob run``)."""
    return bool(progress) if progress is not None else os.environ.get(PROGRESS_ENV) == "1"


def progress_bar(iterable: Iterable[T], *, progress: bool | None = None, **kwargs: Any) -> Iterable[T]:
    """A text progress bar (tqdm) on standard error when :func:`progress_enabled`, else the iterable itself.

    Standard error is the terminal of ``python -m flatrob run`` (and its run log);
    off a terminal the bar is redrawn at most every few seconds.
    """
    if not progress_enabled(progress):
        return iterable
    from tqdm import tqdm

    tty = hasattr(sys.stderr, "isatty") and sys.stderr.isatty()
    return tqdm(iterable, file=sys.stderr, mininterval=0.1 if tty else 5.0, dynamic_ncols=tty, **kwargs)
