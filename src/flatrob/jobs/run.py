"""Chapters as jobs: ``python -m flatrob run CHAPTER -p NAME VALUE ...`` stores a run under ``data/runs/``.

:func:`run_chapter` checks the parameters (:func:`flatrob.jobs.params.validate`) before anything is computed, writes
the run's one provenance record (``provenance.json``: the checked parameters, the device, commit, machine and
versions), converts the chapter with jupytext and executes it with papermill. The kernel finds its run through one
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
from pathlib import Path
from typing import Any

from flatrob.jobs.chapter import RUN_ENV
from flatrob.jobs.params import ParameterError, chapter_path, validate
from flatrob.util.devices import fix_threads, resolve_device
from flatrob.util.io import atomic_write_text
from flatrob.util.paths import PARTIAL_SUFFIX, partial_dir, repo_root, runs_root, sweeps_root
from flatrob.util.provenance import provenance

__all__ = ["RunFailed", "partial_runs", "run_chapter"]


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
    overrides: dict[str, Any],
    out_root: Path | None = None,
    run_name: str | None = None,
    progress: bool = True,
    echo: Any = None,
) -> Path:
    """Validate, record, convert (jupytext), execute (papermill) and store a chapter run.

    The run goes to ``<out_root>/<chapter>/<run_name>/`` (default ``data/runs``) holding ``provenance.json`` (the one
    record of the run, with its checked parameters and, at the end, its duration), the executed ``notebook.ipynb``,
    the notebook's output ``run.log``, the kernel's own messages ``kernel.log`` and the chapter's result files
    (``checks.json`` among them). With ``progress``, the kernel shows progress bars; ``echo`` (a stream, for example
    ``sys.stderr``) also receives the notebook's output live.
    """
    import jupytext
    import papermill
    from nbclient.exceptions import DeadKernelError
    from papermill.exceptions import PapermillExecutionError

    params = validate(chapter, overrides)  # before any compute
    digest = hashlib.sha256(json.dumps(params, sort_keys=True).encode()).hexdigest()[:8]
    partial, final = _new_run_folder(Path(out_root or runs_root()) / chapter, run_name, digest)
    source = chapter_path(chapter)
    fix_threads()  # the kernel fixes the same count: the record says what it computes with
    device = resolve_device(params["device"]) if "device" in params else resolve_device("cpu")
    record = provenance(params, device) | {
        "chapter": chapter,
        "source": str(source.relative_to(repo_root())),
        "progress": bool(progress),
        "status": "running",
    }
    atomic_write_text(partial / "provenance.json", json.dumps(record, indent=2) + "\n")
    nb_in = partial / "input.ipynb"
    jupytext.write(jupytext.read(source), nb_in)
    injected = {k: params[k] for k in overrides}  # typed values: "1e-3" arrives as a number
    started = time.perf_counter()
    old = os.environ.get(RUN_ENV)
    os.environ[RUN_ENV] = str(partial.resolve())
    try:
        with open(partial / "run.log", "a") as log, open(partial / "kernel.log", "ab") as kernel_log:
            stream = _Tee(log, echo) if echo is not None else log
            papermill.execute_notebook(
                str(nb_in),
                str(partial / "notebook.ipynb"),
                parameters=injected,
                cwd=str(source.parent),
                kernel_name="python3",
                progress_bar=False,
                log_output=False,
                stdout_file=stream,
                stderr_file=stream,
                kernel_manager_class=_logged_kernel_manager(kernel_log),
            )
    except PapermillExecutionError as err:
        if err.ename == "KeyboardInterrupt":  # Ctrl-C reached the kernel first
            _note(partial, "interrupted (Ctrl-C)")
            raise KeyboardInterrupt from None
        _note(partial, f"failed in cell {err.exec_count}: {err.ename}: {err.evalue}")
        raise RunFailed(
            f"chapter {chapter!r} failed in cell {err.exec_count}: {err.ename}: {err.evalue}; "
            f"the executed notebook and its log are in {partial}"
        ) from None
    except DeadKernelError:
        _note(partial, "the kernel died")
        raise RunFailed(
            f"the kernel running chapter {chapter!r} died (out of memory?); the executed notebook "
            f"and its log are in {partial}"
        ) from None
    except KeyboardInterrupt:
        _note(partial, "interrupted (Ctrl-C)")
        raise
    finally:
        if old is None:
            os.environ.pop(RUN_ENV, None)
        else:
            os.environ[RUN_ENV] = old
    nb_in.unlink()
    record |= {"status": "finished", "duration_s": round(time.perf_counter() - started, 1)}
    atomic_write_text(partial / "provenance.json", json.dumps(record, indent=2) + "\n")
    os.rename(partial, final)
    return final


def _note(partial: Path, what: str) -> None:
    """The last line of an unfinished run's log: what stopped it, and when."""
    stamp = _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds")
    try:
        with open(partial / "run.log", "a") as log:
            log.write(f"\n[flatrob] {what} at {stamp}; the run is incomplete\n")
    except OSError:
        pass
