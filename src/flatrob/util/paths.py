"""The layout of the repository: the one place that knows where things live (the Snakefile reads it too).

This module imports nothing of flatrob (and nothing outside the standard library), so every other module can
use it. All folders follow :func:`repo_root`, the repository the user runs in, not the place where the package
is installed::

    <root>/
      _config.yml, _toc.yml, book/      the book (repo_root finds it by these)
      data/claims/<chapter>.json        the committed evidence: each chapter's ledger entries (the reference)
      data/claims.json                  ... merged, one entry per claim
      data/runs/<chapter>/<run>/        runs of `flatrob run` (committed or promoted ones count as evidence)
      data/runs/<chapter>/.<run>.partial/   a run in progress, interrupted or failed
      data/sweeps/<name>/               sweeps: grid.json, summary.json, runs/<chapter>/<job>/, logs/
      data/benchmarks/                  benchmark results, per machine
      data/models/                      trained models behind committed verdicts, with manifest.json (their recipe,
                                        hash and provenance)
      data/raw/                         the image data converted at set-up (ignored by git; $FLATROB_DATA)
      cache/                            trained models and checkpoints (ignored by git; $FLATROB_CACHE)
      _build/ledger/<chapter>.json      this build's ledger entries (compared with data/claims/, never copied there
                                        except by `flatrob ledger --update`)
"""

from __future__ import annotations

import os
from pathlib import Path

__all__ = [
    "ARRAYS",
    "CACHE_ENV",
    "CALLS",
    "CHECKS",
    "GRID",
    "INPUT_NOTEBOOK",
    "KERNEL_LOG",
    "NOTEBOOK",
    "PROVENANCE",
    "RUN_LOG",
    "SUMMARY",
    "SUMMARY_CSV",
    "DATA_ENV",
    "PARTIAL_SUFFIX",
    "PROMOTED",
    "ROOT_ENV",
    "benchmarks_dir",
    "build_dir",
    "build_ledger_dir",
    "cache_dir",
    "claims_dir",
    "claims_file",
    "book_dir",
    "chapter_file",
    "html_page",
    "snakefile",
    "snakemake_dir",
    "snakemake_locks",
    "snakemake_pid",
    "toc_file",
    "models_dir",
    "model_cache_dir",
    "MODELS_MANIFEST",
    "is_partial",
    "partial_dir",
    "raw_dir",
    "repo_root",
    "run_dirs",
    "runs_root",
    "sweep_job_dir",
    "sweep_runs_dir",
    "sweep_log",
    "sweeps_root",
]

#: Environment variable naming the repository root (default: found from the working directory).
ROOT_ENV = "FLATROB_ROOT"
#: Environment variable naming the folder of cached models (default: ``<repo>/cache``).
CACHE_ENV = "FLATROB_CACHE"
#: Environment variable naming the folder of the converted image data (default: ``<repo>/data/raw``).
DATA_ENV = "FLATROB_DATA"
#: A run folder in progress (or interrupted, or failed) is hidden: ``.<name>`` + this suffix.
PARTIAL_SUFFIX = ".partial"
#: A file of this name in a run or sweep folder promotes uncommitted evidence (``python -m flatrob promote``).
PROMOTED = "PROMOTED"

# The files of a run folder (flatrob.jobs.run.Run) and of a sweep folder: named here only.
#: The run's one record: its checked parameters, device, commit, machine, versions, status and duration.
PROVENANCE = "provenance.json"
#: The run's checks as it judged them (for reading; a build judges the recorded calls again).
CHECKS = "checks.json"
#: The calls of the run's checks and the measurements they take (flatrob.evidence.checks.replay).
CALLS, ARRAYS = "check-calls.json", "check-arrays.npz"
#: The executed notebook, the notebook's output and the kernel's own messages.
NOTEBOOK, RUN_LOG, KERNEL_LOG = "notebook.ipynb", "run.log", "kernel.log"
#: The chapter converted for papermill while the run executes it (removed at the end).
INPUT_NOTEBOOK = "input.ipynb"
#: A sweep's plan, and its runs merged over seeds (JSON and a table).
GRID, SUMMARY, SUMMARY_CSV = "grid.json", "summary.json", "summary.csv"


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


def _root(root: Path | None) -> Path:
    return root if root is not None else repo_root()


def cache_dir() -> Path:
    """Cached models and training checkpoints: ``$FLATROB_CACHE`` or ``<repo>/cache``."""
    env = os.environ.get(CACHE_ENV)
    return Path(env).expanduser() if env else repo_root() / "cache"


def model_cache_dir() -> Path:
    """Trained models and their checkpoints in the cache, keyed by recipe and code: ``<cache>/models``."""
    return cache_dir() / "models"


def raw_dir() -> Path:
    """The converted image data sets: ``$FLATROB_DATA`` or ``<repo>/data/raw``.

    Returns:
        ``$FLATROB_DATA`` or ``<repo>/data/raw``.
    """
    env = os.environ.get(DATA_ENV)
    return Path(env).expanduser() if env else repo_root() / "data" / "raw"


def claims_dir(root: Path | None = None) -> Path:
    """The committed ledger entries, one file per chapter: ``data/claims``."""
    return _root(root) / "data" / "claims"


def claims_file(root: Path | None = None) -> Path:
    """The committed ledger merged into one entry per claim: ``data/claims.json``."""
    return _root(root) / "data" / "claims.json"


def build_dir(root: Path | None = None) -> Path:
    """This build's output: ``_build`` (the book in ``_build/html``)."""
    return _root(root) / "_build"


def build_ledger_dir(root: Path | None = None) -> Path:
    """This build's ledger entries, one file per chapter: ``_build/ledger``."""
    return build_dir(root) / "ledger"


def book_dir(root: Path | None = None) -> Path:
    """The book's sources, ``book/``."""
    return _root(root) / "book"


def toc_file(root: Path | None = None) -> Path:
    """The table of contents, ``_toc.yml`` at the root (``book/_toc.yml`` links to it)."""
    return _root(root) / "_toc.yml"


def chapter_file(entry: str, root: Path | None = None) -> Path:
    """The MyST file of a table-of-contents entry (``theory/closed-form``): ``book/<entry>.md``."""
    return book_dir(root) / f"{entry}.md"


def html_page(name: str, root: Path | None = None) -> Path:
    """A page of the built book, ``_build/html/<name>`` (``reproduction.html``)."""
    return build_dir(root) / "html" / name


def snakefile(root: Path | None = None) -> Path:
    """The workflow whose jobs are ``flatrob run``: ``workflow/Snakefile``."""
    return _root(root) / "workflow" / "Snakefile"


def snakemake_dir(sweep: Path) -> Path:
    """Snakemake's own folder in a sweep (its locks, logs and the pid file of the sweep's Snakemake)."""
    return sweep / ".snakemake"


def snakemake_locks(sweep: Path) -> list[Path]:
    """The locks Snakemake holds (or left behind) in a sweep."""
    return sorted((snakemake_dir(sweep) / "locks").glob("*.lock"))


def snakemake_pid(sweep: Path) -> Path:
    """The file with the process id of the Snakemake running a sweep (written when it starts)."""
    return snakemake_dir(sweep) / "flatrob.pid"


#: The committed models' manifest, in :func:`models_dir`.
MODELS_MANIFEST = "manifest.json"


def models_dir(root: Path | None = None) -> Path:
    """The committed trained models (``data/models``): the weights behind committed verdicts."""
    return _root(root) / "data" / "models"


def benchmarks_dir(root: Path | None = None) -> Path:
    """Benchmark results: ``data/benchmarks``."""
    return _root(root) / "data" / "benchmarks"


def runs_root(root: Path | None = None) -> Path:
    """Where ``flatrob run`` stores runs by default: ``data/runs``."""
    return _root(root) / "data" / "runs"


def sweeps_root(root: Path | None = None) -> Path:
    """Where sweeps live: ``data/sweeps``."""
    return _root(root) / "data" / "sweeps"


def partial_dir(final: Path) -> Path:
    """The hidden folder in which the run that will be ``final`` is written: ``<parent>/.<name>.partial``."""
    return final.parent / f".{final.name}{PARTIAL_SUFFIX}"


def is_partial(folder: Path) -> bool:
    """Whether ``folder`` is an unfinished run's folder (:func:`partial_dir`)."""
    return folder.name.startswith(".") and folder.name.endswith(PARTIAL_SUFFIX)


def run_dirs(base: Path) -> list[Path]:
    """The finished run folders directly under ``base`` (one chapter's runs), sorted; hidden ones left out."""
    return sorted(p for p in base.iterdir() if p.is_dir() and not p.name.startswith(".")) if base.is_dir() else []


def sweep_runs_dir(sweep: Path, chapter: str) -> Path:
    """The run folders of a sweep: ``<sweep>/runs/<chapter>``."""
    return sweep / "runs" / chapter


def sweep_job_dir(sweep: Path, chapter: str, job: str) -> Path:
    """One job's run folder in a sweep: ``<sweep>/runs/<chapter>/<job>``."""
    return sweep_runs_dir(sweep, chapter) / job


def is_sweep_job(run: Path) -> bool:
    """Whether ``run`` (a run's folder, or its :func:`partial_dir` while it runs) is a job of a sweep: it lies in
    ``<sweep>/runs/<chapter>/`` beside the sweep's plan (:data:`GRID`)."""
    return (run.parent.parent.parent / GRID).is_file() and run.parent.parent.name == "runs"


def sweep_log(sweep: Path, job: str) -> Path:
    """One job's log in a sweep: ``<sweep>/logs/<job>.log``."""
    return sweep / "logs" / f"{job}.log"
