"""Chapters as jobs: :class:`Run` owns a run folder; ``python -m flatrob run CHAPTER -p NAME VALUE ...`` stores a run
under ``data/runs/``.

A :class:`Run` creates its folder (exclusively, hidden while it runs), writes its one record (``provenance.json``:
the checked parameters, the device, commit, machine and versions, then its status and duration), saves the
chapter's result files and checks, judges its checks again from the measurements it recorded, and says whether it
counts as evidence (committed or promoted). Every reader of a run (the chapters, the sweeps, the ledger) goes
through it: adding a field to what a run records touches :meth:`Run.create` only.

:func:`run_chapter` checks the parameters (:func:`flatrob.jobs.params.validate`) before anything is computed, makes
the run, converts the chapter with jupytext and executes it with papermill. The kernel finds its run through one
channel, the environment variable ``FLATROB_RUN`` naming the run's folder (:mod:`flatrob.jobs.chapter`), and writes its
result files and ``checks.json`` there. The run is written in a hidden ``.partial`` folder, created exclusively
and renamed at the end: a run that fails or is interrupted leaves no half-written run behind, and its partial
folder stays for inspection (:func:`partial_runs`; ``python -m flatrob clean`` lists and removes them).
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
import os
import secrets
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

import torch

from flatrob.evidence.admission import committed
from flatrob.evidence.records import Params, text
from flatrob.evidence.verdicts import Check
from flatrob.jobs.params import ParameterError, chapter_path, validate
from flatrob.util.devices import fix_threads, resolve_device
from flatrob.util.io import atomic_write, atomic_write_text, save_results
from flatrob.util.paths import (
    CHECKS,
    INPUT_NOTEBOOK,
    KERNEL_LOG,
    NOTEBOOK,
    PARTIAL_SUFFIX,
    PROVENANCE,
    RUN_LOG,
    is_partial,
    partial_dir,
    repo_root,
    run_dirs,
    runs_root,
    sweeps_root,
)
from flatrob.util.provenance import Provenance, provenance

if TYPE_CHECKING:
    from flatrob.evidence.checks.replay import CheckLog

__all__ = ["RUN_ENV", "Run", "RunFailed", "partial_runs", "run_chapter"]

#: The one channel from ``flatrob run`` to the chapter's kernel: the run's folder (:meth:`Run.current`).
RUN_ENV = "FLATROB_RUN"


@dataclass
class Run:
    """One run of a chapter: a folder holding its record (:data:`~flatrob.util.paths.PROVENANCE`), its result files,
    its checks and the measurements they were made from, its executed notebook and its logs.

    A run in progress lives in a hidden ``.partial`` folder (:func:`~flatrob.util.paths.partial_dir`) and becomes
    the final folder when it finishes (:meth:`finish`).
    """

    folder: Path
    _record: Provenance | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        self.folder = Path(self.folder)

    # -- making and finding runs --------------------------------------------------------------------------------

    @classmethod
    def create(
        cls,
        chapter: str,
        params: Params,
        device: torch.device,
        *,
        base: Path | None = None,
        name: str | None = None,
        progress: bool = True,
    ) -> Run:
        """A new run of ``chapter`` with checked ``params``: its hidden folder created exclusively under
        ``base/<chapter>/`` (default ``data/runs``) and its record written (parameters, device, commit, machine,
        versions, the chapter's source, whether the kernel shows progress, status "running")."""
        digest = hashlib.sha256(json.dumps(params, sort_keys=True).encode()).hexdigest()[:8]
        partial, _ = _new_run_folder(Path(base or runs_root()) / chapter, name, digest)
        run = cls(partial)
        run.write_record(
            provenance(params, device)
            | {
                "chapter": chapter,
                "source": str(chapter_path(chapter).relative_to(repo_root())),
                "progress": bool(progress),
                "status": "running",
            }
        )
        return run

    @classmethod
    def open(cls, folder: Path | str) -> Run:
        """The run in ``folder`` (finished, or in progress); refused when it holds no record."""
        run = cls(Path(folder))
        if not run.path(PROVENANCE).is_file():
            raise FileNotFoundError(f"{folder} is not a run folder: it holds no {PROVENANCE}")
        return run

    @classmethod
    def current(cls) -> Run | None:
        """The run this process belongs to: the one ``flatrob run`` named in :data:`RUN_ENV` (None elsewhere)."""
        folder = os.environ.get(RUN_ENV)
        return cls.open(folder) if folder else None

    @classmethod
    def committed(cls, chapter: str, root: Path | None = None) -> list[Run]:
        """The finished runs of a chapter under ``data/runs/<chapter>/`` that count as evidence: whose record is
        committed (in ``HEAD``, unchanged) or promoted (:func:`~flatrob.util.provenance.committed`), oldest first.
        A local test run is neither; an unfinished (hidden) run never counts."""
        root = (root or repo_root()).resolve()
        records = [d / PROVENANCE for d in run_dirs(runs_root(root) / chapter) if (d / PROVENANCE).is_file()]
        return [cls(r.parent) for r in committed(records, root)]

    # -- what a run holds -------------------------------------------------------------------------------------

    def path(self, name: str) -> Path:
        """A file of the run's folder."""
        return self.folder / name

    @property
    def name(self) -> str:
        return self.folder.name

    @property
    def record(self) -> Provenance:
        """The run's record (read once)."""
        if self._record is None:
            self._record = json.loads(self.path(PROVENANCE).read_text())
        return self._record

    @property
    def chapter(self) -> str:
        return str(self.record.get("chapter", ""))

    @property
    def params(self) -> Params:
        return dict(self.record.get("params", {}))

    @property
    def finished(self) -> bool:
        return not is_partial(self.folder) and self.record.get("status", "finished") == "finished"

    def write_record(self, record: Provenance) -> None:
        """Replace the run's record (atomically)."""
        self._record = Provenance(**record)  # a copy
        atomic_write_text(self.path(PROVENANCE), json.dumps(self._record, indent=2) + "\n")

    def save(self, files: Mapping[str, object]) -> list[Path]:
        """Write result files into the run (:func:`~flatrob.util.io.save_results`: tables as CSV, dicts of arrays
        as ``.npz``, the rest as JSON; bytes as they are)."""
        out = []
        rest = {}
        for fname, obj in files.items():
            if isinstance(obj, bytes):

                def write(tmp: Path, content: bytes = obj) -> None:
                    tmp.write_bytes(content)

                out.append(atomic_write(self.path(fname), write))
            else:
                rest[fname] = obj
        return out + save_results(self.folder, rest)

    def save_checks(self, checks: list[Check], log: CheckLog) -> None:
        """The run's checks as it judged them, and the calls that made them with their measurements (``log``, a
        :class:`flatrob.evidence.checks.replay.CheckLog`), so that any later build can judge them again."""
        self.save({CHECKS: [c.as_dict() for c in checks], **log.files()})

    def checks(self) -> list[Check]:
        """The run's checks judged by this code from its recorded measurements, or (a run that recorded none) as
        the run judged them."""
        from flatrob.evidence.checks.replay import replay

        again = replay(self.folder)
        if again or not self.path(CHECKS).is_file():
            return again
        return [Check.from_dict(c) for c in json.loads(self.path(CHECKS).read_text())]

    def read(self, fname: str) -> Any:
        """A result file: a ``.npz`` as a dict of arrays, a ``.csv`` as a DataFrame, anything else as JSON."""
        path = self.path(fname)
        if fname.endswith(".npz"):
            import numpy as np

            with np.load(path, allow_pickle=False) as npz:
                return {k: npz[k] for k in npz.files}
        if fname.endswith(".csv"):
            import pandas as pd

            return pd.read_csv(path)
        return json.loads(path.read_text())

    def finish(self, duration_s: float) -> Run:
        """Mark the run finished with its duration and move it from its hidden folder to the final one."""
        self.write_record(self.record | {"status": "finished", "duration_s": round(duration_s, 1)})
        final = self.folder.parent / self.folder.name.removeprefix(".").removesuffix(PARTIAL_SUFFIX)
        os.rename(self.folder, final)
        return Run(final, self._record)

    def note(self, what: str) -> None:
        """The last line of an unfinished run's log: what stopped it, and when."""
        stamp = _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds")
        try:
            with open(self.path(RUN_LOG), "a") as log:
                log.write(f"\n[flatrob] {what} at {stamp}; the run is incomplete\n")
        except OSError:
            pass


class RunFailed(RuntimeError):
    """A chapter stopped with an error; the partial run (with the executed notebook) is kept for inspection."""


def partial_runs(out_root: Path | None = None) -> list[Path]:
    """Folders of runs that did not finish, oldest first: ``<out_root>/<chapter>/.<run>.partial`` (default
    ``data/runs``) and, by default, those of sweeps (``data/sweeps/<name>/runs/<chapter>/.<job>.partial``)."""
    patterns = (
        [(Path(out_root), f"*/.*{PARTIAL_SUFFIX}")]
        if out_root
        else [(runs_root(), f"*/.*{PARTIAL_SUFFIX}"), (sweeps_root(), f"*/runs/*/.*{PARTIAL_SUFFIX}")]
    )
    found = [p for base, pattern in patterns if base.is_dir() for p in base.glob(pattern) if p.is_dir()]
    return sorted(found, key=lambda p: p.stat().st_mtime)


class _Tee:
    """A stream that writes to several (papermill's stdout_file / stderr_file: the terminal and the run log)."""

    def __init__(self, *streams: Any) -> None:
        self.streams = streams

    def write(self, text: str) -> None:
        for s in self.streams:
            s.write(text)

    def flush(self) -> None:
        for s in self.streams:
            s.flush()


def _logged_kernel_manager(log: Any) -> type:
    """A kernel manager whose kernel process writes its own messages (its log, not the notebook's output) to
    ``log`` (the run's ``kernel.log``), and runs in a session of its own: Ctrl-C on the terminal reaches the runner,
    which interrupts the kernel and shuts it down, and neither the user's terminal nor the run's ``run.log`` gets
    the kernel's tracebacks."""
    from jupyter_client.manager import AsyncKernelManager

    class LoggedKernelManager(AsyncKernelManager):
        async def _async_launch_kernel(self, kernel_cmd: list[str], **kw: Any) -> None:
            kw.setdefault("stdout", log)
            kw.setdefault("stderr", log)
            kw["start_new_session"] = True
            await super()._async_launch_kernel(kernel_cmd, **kw)

    return LoggedKernelManager


def _new_run_folder(base: Path, run_name: str | None, digest: str) -> tuple[Path, Path]:
    """(partial, final) folders for a new run, the partial one created exclusively.

    Without an explicit name the name is the UTC time, the parameters' hash and a random suffix, so that two
    identical runs started in the same second never meet. A folder that cannot be written is refused in one line.
    """
    try:
        base.mkdir(parents=True, exist_ok=True)
        probe = base / f".write-test-{secrets.token_hex(4)}"
        probe.touch()
        probe.unlink()
    except OSError as err:
        raise ParameterError(f"cannot write runs under {base}: {err.strerror or err}; choose another --out") from None
    for _ in range(100):
        name = run_name or (f"{_dt.datetime.now(_dt.UTC).strftime('%Y%m%dT%H%M%SZ')}-{digest}-{secrets.token_hex(2)}")
        final = base / name
        partial = partial_dir(final)
        if final.exists():
            if run_name:
                raise FileExistsError(f"{final} exists; choose another --name")
            continue
        try:
            partial.mkdir()
        except FileExistsError:
            if run_name:
                raise FileExistsError(
                    f"a run named {run_name!r} is in progress or was interrupted ({partial}); "
                    "choose another --name, or remove it with: python -m flatrob clean --remove"
                ) from None
            continue
        return partial, final
    raise RuntimeError(f"could not find a free run folder under {base}")


def run_chapter(
    chapter: str,
    overrides: Mapping[str, object],
    out_root: Path | None = None,
    run_name: str | None = None,
    progress: bool = True,
    echo: TextIO | None = None,
) -> Path:
    """Validate, record, convert (jupytext), execute (papermill) and store a chapter run.

    The run goes to ``<out_root>/<chapter>/<run_name>/`` (default ``data/runs``) holding ``provenance.json`` (the one
    record of the run, with its checked parameters and, at the end, its duration), the executed ``notebook.ipynb``,
    the notebook's output ``run.log``, the kernel's own messages ``kernel.log`` and the chapter's result files
    (``checks.json`` among them). With ``progress``, the kernel shows progress bars; ``echo`` (a stream, for example
    ``sys.stderr``) also receives the notebook's output live.
    """
    import jupytext

    params = validate(chapter, overrides)  # before any compute
    source = chapter_path(chapter)
    fix_threads()  # the kernel fixes the same count: the record says what it computes with
    device = resolve_device(text(params["device"]) if "device" in params else "cpu")
    run = Run.create(chapter, params, device, base=out_root, name=run_name, progress=progress)
    nb_in = run.path(INPUT_NOTEBOOK)
    jupytext.write(jupytext.read(source), nb_in)
    injected = {k: params[k] for k in overrides}  # typed values: "1e-3" arrives as a number
    started = time.perf_counter()
    old = os.environ.get(RUN_ENV)
    os.environ[RUN_ENV] = str(run.folder.resolve())
    try:
        _execute(run, chapter, injected, source.parent, echo)
    finally:
        if old is None:
            os.environ.pop(RUN_ENV, None)
        else:
            os.environ[RUN_ENV] = old
    nb_in.unlink()
    return run.finish(time.perf_counter() - started).folder


def _execute(run: Run, chapter: str, injected: Params, cwd: Path, echo: TextIO | None) -> None:
    """Execute the run's input notebook with papermill into its folder (output to ``run.log``, and to ``echo``; the
    kernel's messages to ``kernel.log``); a failure, Ctrl-C or a dead kernel is noted in the run's log and raised as
    one line (:class:`RunFailed`, :class:`KeyboardInterrupt`)."""
    import papermill
    from nbclient.exceptions import DeadKernelError
    from papermill.exceptions import PapermillExecutionError

    try:
        with open(run.path(RUN_LOG), "a") as log, open(run.path(KERNEL_LOG), "ab") as kernel_log:
            stream = _Tee(log, echo) if echo is not None else log
            papermill.execute_notebook(
                str(run.path(INPUT_NOTEBOOK)),
                str(run.path(NOTEBOOK)),
                parameters=injected,
                cwd=str(cwd),
                kernel_name="python3",
                progress_bar=False,
                log_output=False,
                stdout_file=stream,
                stderr_file=stream,
                kernel_manager_class=_logged_kernel_manager(kernel_log),
            )
    except PapermillExecutionError as err:
        if err.ename == "KeyboardInterrupt":  # Ctrl-C reached the kernel first
            run.note("interrupted (Ctrl-C)")
            raise KeyboardInterrupt from None
        run.note(f"failed in cell {err.exec_count}: {err.ename}: {err.evalue}")
        raise RunFailed(
            f"chapter {chapter!r} failed in cell {err.exec_count}: {err.ename}: {err.evalue}; "
            f"the executed notebook and its log are in {run.folder}"
        ) from None
    except DeadKernelError:
        run.note("the kernel died")
        raise RunFailed(
            f"the kernel running chapter {chapter!r} died (out of memory?); the executed notebook "
            f"and its log are in {run.folder}"
        ) from None
    except KeyboardInterrupt:
        run.note("interrupted (Ctrl-C)")
        raise
