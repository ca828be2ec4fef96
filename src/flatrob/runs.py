"""Chapters as parameterised jobs: their parameters, checked once, and the runner that stores a run.

**Parameters are declared once**, in the chapter's cell tagged ``parameters``:
one assignment per line, its comment saying what it is, and, in square brackets
at the end of the comment, what it accepts::

    epochs = 30  # training epochs [at least 1]
    attack_norm = "linf"  # the instrumented attack [one of: linf, l2]
    scales = [0.25, 1.0, 50.0]  # last-layer scales s [above 0; ascending; contains 1.0]
    dataset = "digits"  # the data [one of: DATASETS]

Rules, separated by ``;``: ``at least x``, ``above x``, ``at most x``, ``below x``
(for a list: every item), ``one of: a, b, c`` or ``one of: DATASETS | ARCHITECTURES | DEVICES``
(for a list: every item), ``ascending``, ``contains x``, ``starts at x``, ``may be empty``. The
type is the default's (an integer parameter takes integers; a float parameter
takes any number, written in any YAML or Python float syntax, and never NaN or
an infinity). Lists are never empty unless their rules say ``may be empty``. (The rules are words, not ``>=``: papermill's own
reader of parameters cells cannot parse a line with a second ``=``.)

:func:`validate` checks a set of values against these rules and against the
machine (``device cuda`` needs CUDA; a CIFAR data set needs ``data_root`` with
its files) before anything is computed. :func:`setup_chapter` is the one call a
chapter makes after its parameters cell; :func:`run_chapter` executes a chapter
with papermill and stores the run under ``data/runs/<chapter>/<run>/``.
"""

from __future__ import annotations

import ast
import datetime as _dt
import functools
import hashlib
import json
import math
import os
import re
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from flatrob import ledger
from flatrob.checks import Check
from flatrob.provenance import (
    DEVICES,
    PROGRESS_ENV,
    atomic_write_text,
    provenance,
    provenance_line,
    repo_root,
    resolve_device,
    save_results,
)

if TYPE_CHECKING:
    from flatrob.data import Split
    from flatrob.training import TrainConfig

__all__ = [
    "ChapterContext",
    "Parameter",
    "ParameterError",
    "RunFailed",
    "chapter_path",
    "chapters",
    "check_parameters",
    "parameter_spec",
    "parse_value",
    "partial_runs",
    "run_chapter",
    "setup_chapter",
    "validate",
]


class ParameterError(ValueError):
    """A chapter parameter that is unknown, of the wrong type, out of range, or impossible on this machine."""


class RunFailed(RuntimeError):
    """A chapter stopped with an error; the partial run (with the executed notebook) is kept for inspection."""


# ---------------------------------------------------------------------------
# the chapters


def _book() -> Path:
    root = repo_root()
    if not (root / "_toc.yml").is_file():
        raise ParameterError(
            f"no book found at {root}: run inside the repository (a folder with _config.yml, _toc.yml and book/) "
            "or set FLATROB_ROOT"
        )
    return root


def chapters() -> dict[str, Path]:
    """The chapters that can be run, by name (the file's stem), as paths relative to ``book/``, in book order.

    Read from ``_toc.yml``: every entry that is a MyST notebook.
    """
    import yaml

    root = _book()
    toc = yaml.safe_load((root / "_toc.yml").read_text())
    files = [toc["root"]] + [c["file"] for part in toc.get("parts", []) for c in part.get("chapters", [])]
    out = {}
    for f in files:
        path = root / "book" / f"{f}.md"
        if path.is_file() and path.read_text().startswith("---\njupytext:"):
            out[Path(f).name] = Path(f"{f}.md")
    return out


def chapter_path(name: str) -> Path:
    """The MyST file of a chapter."""
    known = chapters()
    if name not in known:
        raise ParameterError(f"unknown chapter {name!r}; chapters: {', '.join(known)}")
    return repo_root() / "book" / known[name]


# ---------------------------------------------------------------------------
# parameters, declared once in the parameters cell


def _named_choices(name: str) -> tuple[Any, ...]:
    if name == "DATASETS":
        from flatrob.data import DATASETS

        return DATASETS
    if name == "ARCHITECTURES":
        from flatrob.models import ARCHITECTURES

        return tuple(ARCHITECTURES)
    if name == "DEVICES":
        return DEVICES
    raise KeyError(name)


@dataclass(frozen=True)
class Parameter:
    """One line of a parameters cell: name, default, what it is (``doc``) and what it accepts (``rules``)."""

    name: str
    default: Any
    doc: str
    rules: tuple[str, ...]

    def describe(self) -> str:
        """The line as ``flatrob params`` prints it, with named choice sets spelled out."""
        rules = []
        for r in self.rules:
            m = re.fullmatch(r"one of:\s*([A-Z]+)", r)
            rules.append(f"one of: {', '.join(map(str, _named_choices(m.group(1))))}" if m else r)
        comment = " ".join(filter(None, [self.doc, f"[{'; '.join(rules)}]" if rules else ""]))
        return f"{self.name} = {self.default!r}" + (f"  # {comment}" if comment else "")


_RULE = re.compile(r"^(.*?)\s*\[([^\[\]]*)\]\s*$")
_BOUND = re.compile(r"^(at least|above|at most|below)\s+(\S+)$")


def _parse_comment(chapter_name: str, name: str, comment: str) -> tuple[str, tuple[str, ...]]:
    m = _RULE.match(comment)
    if not m:
        return comment, ()
    rules = tuple(r.strip() for r in m.group(2).split(";") if r.strip())
    for r in rules:  # fail at once on a rule the validator would not understand
        ok = (_BOUND.match(r) and _number(_BOUND.match(r).group(2)) is not None) or r in ("ascending", "may be empty") \
            or re.fullmatch(r"(contains|starts at)\s+\S+", r) or r.startswith("one of:")
        if r.startswith("one of:") and re.fullmatch(r"one of:\s*[A-Z]+", r):
            try:
                _named_choices(r.split(":", 1)[1].strip())
            except KeyError:
                ok = False
        if not ok:
            raise RuntimeError(f"chapter {chapter_name!r}, parameter {name!r}: rule {r!r} is not understood")
    return m.group(1), rules


def parameter_spec(name: str) -> dict[str, Parameter]:
    """The chapter's ``parameters`` cell, read without executing anything: {name: Parameter}.

    Read once per version of the file (validating a sweep's grid asks for it once per combination).
    """
    path = chapter_path(name)
    return dict(_parameter_spec(name, str(path), path.stat().st_mtime_ns))


@functools.lru_cache(maxsize=64)
def _parameter_spec(name: str, path: str, mtime_ns: int) -> dict[str, Parameter]:
    import jupytext

    nb = jupytext.read(path)
    cells = [c for c in nb.cells if c.cell_type == "code" and "parameters" in c.metadata.get("tags", [])]
    if len(cells) != 1:
        raise RuntimeError(f"chapter {name!r} must have exactly one cell tagged 'parameters'")
    source = cells[0].source
    lines = source.splitlines()
    out: dict[str, Parameter] = {}
    for node in ast.parse(source).body:
        if not (isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name)):
            raise RuntimeError(f"chapter {name!r}: the parameters cell may only hold simple assignments")
        pname = node.targets[0].id
        line = lines[node.end_lineno - 1]
        comment = line.split("#", 1)[1].strip() if "#" in line else ""
        doc, rules = _parse_comment(name, pname, comment)
        try:
            default = _literal(node.value)
        except ValueError as err:
            raise RuntimeError(f"chapter {name!r}, parameter {pname!r}: {err}") from None
        out[pname] = Parameter(pname, default, doc, rules)
    return out


def _literal(node: ast.expr) -> Any:
    """A literal, or arithmetic on numbers (``8 / 255``), or a list of those: read without executing anything."""
    if isinstance(node, ast.BinOp) and isinstance(node.op, (ast.Add, ast.Sub, ast.Mult, ast.Div)):
        a, b = _literal(node.left), _literal(node.right)
        if not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in (a, b)):
            raise ValueError("arithmetic is allowed on numbers only")
        op = {ast.Add: float.__add__, ast.Sub: float.__sub__, ast.Mult: float.__mul__, ast.Div: float.__truediv__}
        return op[type(node.op)](float(a), float(b))
    if isinstance(node, ast.List):
        return [_literal(e) for e in node.elts]
    return ast.literal_eval(node)


def _number(text: str) -> float | None:
    try:
        return float(text)
    except ValueError:
        return None


def _type_name(v: Any) -> str:
    return {bool: "a boolean", int: "an integer", float: "a number", str: "a string", list: "a list"}.get(
        type(v), type(v).__name__)


def _coerce_number(value: Any, want_int: bool) -> Any:
    """A number written in any YAML or Python syntax ("1e-3", ".nan", "1_000") as int or float; anything else unchanged."""
    if isinstance(value, str):
        text = value.strip()
        parsed = _number(text)
        if parsed is None:
            return value
        if want_int and re.fullmatch(r"[+-]?[0-9_]+", text):
            return int(text)
        value = parsed
    if not want_int and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    return value


def _check_number(where: str, value: Any, want_int: bool, what: str) -> Any:
    value = _coerce_number(value, want_int)
    if want_int:
        if not (isinstance(value, int) and not isinstance(value, bool)):
            raise ParameterError(f"{where} must be {what}; got {value!r}")
        return value
    if not isinstance(value, float):
        raise ParameterError(f"{where} must be {what}; got {value!r}")
    if not math.isfinite(value):
        raise ParameterError(f"{where} must be a finite number; got {value!r}")
    return value


def _apply_rules(where: str, value: Any, rules: tuple[str, ...]) -> None:
    items = value if isinstance(value, list) else [value]
    must = f"{where}: every item must be" if isinstance(value, list) else f"{where} must be"
    for r in rules:
        if m := _BOUND.match(r):
            op, bound = m.group(1), float(m.group(2))
            ok = {"at least": lambda v: v >= bound, "above": lambda v: v > bound, "at most": lambda v: v <= bound,
                  "below": lambda v: v < bound}[op]
            bad = [v for v in items if not ok(v)]
            if bad:
                sign = {"at least": ">=", "above": ">", "at most": "<=", "below": "<"}[op]
                raise ParameterError(f"{must} {sign} {bound:g}; got {bad[0]!r}")
        elif r.startswith("one of:"):
            spec = r.split(":", 1)[1].strip()
            choices = _named_choices(spec) if re.fullmatch(r"[A-Z]+", spec) else tuple(
                _coerce_number(c.strip(), bool(re.fullmatch(r"[+-]?[0-9]+", c.strip()))) for c in spec.split(","))
            bad = [v for v in items if v not in choices]
            if bad:
                raise ParameterError(f"{must} one of {list(choices)}; got {bad[0]!r}")
        elif r == "may be empty":
            continue
        elif r == "ascending":
            if list(value) != sorted(set(value)):
                raise ParameterError(f"{where} must be strictly ascending; got {value}")
        elif m := re.fullmatch(r"contains\s+(\S+)", r):
            if float(m.group(1)) not in value:
                raise ParameterError(f"{where} must contain {m.group(1)}; got {value}")
        elif m := re.fullmatch(r"starts at\s+(\S+)", r):
            if value[0] != float(m.group(1)):
                raise ParameterError(f"{where} must start at {m.group(1)}; got {value}")


def _check_one(chapter_name: str, p: Parameter, value: Any) -> Any:
    where = f"parameter {p.name!r} of chapter {chapter_name!r}"
    default = p.default
    what = f"{_type_name(default)} (default {default!r})"
    if isinstance(default, bool):
        if not isinstance(value, bool):
            raise ParameterError(f"{where} must be {what}; got {value!r}")
    elif isinstance(default, (int, float)):
        value = _check_number(where, value, isinstance(default, int), what)
    elif isinstance(default, list):
        if not isinstance(value, list):
            raise ParameterError(f"{where} must be {what}; got {value!r}")
        if not value and "may be empty" not in p.rules:
            raise ParameterError(f"{where} must be a non-empty list; got []")
        want_int = bool(default) and all(isinstance(v, int) and not isinstance(v, bool) for v in default)
        value = [_check_number(where, v, want_int, "a list of " + ("integers" if want_int else "numbers"))
                 for v in value]
    elif not isinstance(value, type(default)):
        raise ParameterError(f"{where} must be {what}; got {value!r}")
    _apply_rules(where, value, p.rules)
    return value


def _check_machine(chapter_name: str, params: dict[str, Any]) -> None:
    """Checks against this machine, before any compute: CUDA for ``device cuda``, the files of a CIFAR data set."""
    where = f"chapter {chapter_name!r}"
    if params.get("device") == "cuda" and not torch.cuda.is_available():
        raise ParameterError(f"parameter 'device' of {where} is 'cuda' but CUDA is not available on this machine; "
                             "use -p device auto (or cpu)")
    dataset = params.get("dataset")
    if dataset is None:
        return
    from flatrob.data import missing_files

    missing = missing_files(dataset, params.get("data_root") or None)
    if missing:
        raise ParameterError(f"parameter 'dataset' of {where} is {dataset!r}: {missing}")


def validate(chapter_name: str, values: dict[str, Any]) -> dict[str, Any]:
    """Check parameter values for a chapter; return the complete parameter set (defaults filled in, numbers typed).

    Unknown names, wrong types, values outside the rules of the parameters cell and
    values this machine cannot run raise :class:`ParameterError`, with a message
    naming the parameter and what it accepts.
    """
    spec = parameter_spec(chapter_name)
    unknown = sorted(set(values) - set(spec))
    if unknown:
        raise ParameterError(
            f"unknown parameter(s) {', '.join(map(repr, unknown))} for chapter {chapter_name!r}; "
            f"accepted: {', '.join(spec)}"
        )
    full = {k: p.default for k, p in spec.items()} | dict(values)
    checked = {k: _check_one(chapter_name, spec[k], v) for k, v in full.items()}
    _check_machine(chapter_name, checked)
    return checked


def check_parameters(chapter_name: str, namespace: dict[str, Any]) -> dict[str, Any]:
    """Validate the values a chapter's parameters cell (and papermill's injected cell) left in ``namespace``."""
    return validate(chapter_name, {k: namespace[k] for k in parameter_spec(chapter_name) if k in namespace})


def parse_value(text: str) -> Any:
    """A command-line value: YAML scalars and lists (``40``, ``0.5``, ``1e-3``, ``true``, ``[1, 2]``), else the string."""
    import yaml

    try:
        return yaml.safe_load(text)
    except yaml.YAMLError:
        return text


# ---------------------------------------------------------------------------
# the one call after a chapter's parameters cell


@dataclass
class ChapterContext:
    """What a chapter needs after its parameters: the checked values, the device, provenance and its caption."""

    name: str
    params: dict[str, Any]
    device: torch.device
    provenance: dict[str, Any]

    @property
    def caption(self) -> str:
        """The provenance line for figure captions (parameters, device, commit)."""
        return provenance_line(self.provenance)

    @property
    def results_dir(self) -> Path | None:
        d = self.params.get("results_dir")
        return Path(d) if d else None

    def data(self) -> "Split":
        """The chapter's data: ``dataset`` (from ``data_root`` for CIFAR), with ``n_train`` training images."""
        from flatrob.data import load_dataset, train_subset

        p = self.params
        split = load_dataset(p["dataset"], seed=p["seed"], root=p.get("data_root") or None)
        return train_subset(split, p.get("n_train", 0), p["seed"])

    def train_config(self, adversarial: bool = True) -> "TrainConfig":
        """The chapter's training recipe from its parameters; its adversarial ones only with ``adversarial``."""
        from flatrob.training import TrainConfig

        keys = ("epochs", "lr", "batch_size", "seed", "augment") + (("adv_eps", "adv_steps", "adv_step_size")
                                                                    if adversarial else ())
        return TrainConfig(**{k: self.params[k] for k in keys if k in self.params})

    def train(self, split: "Split", adversarial: bool = False) -> tuple[Any, Any]:
        """The chapter's model on ``split``, trained or from the cache, on its device: (model, record); with
        ``adversarial``, the pair of :func:`flatrob.training.train_clean_and_adversarial`: (models, records)."""
        from flatrob.training import train_clean_and_adversarial, train_model

        arch = self.params["architecture"]
        if adversarial:
            return train_clean_and_adversarial(arch, split, self.train_config(), device=self.device)
        return train_model(arch, split, self.train_config(adversarial=False), device=self.device)

    def save(self, files: dict[str, Any]) -> list[Path]:
        """Write result files into the run's folder (nothing outside ``flatrob run``); see :func:`save_results`."""
        return save_results(self.results_dir, files)

    def record(self, checks: list[Check], setting: dict[str, Any] | Callable[[Check], dict[str, Any]]) -> list[dict[str, Any]]:
        """The checks as ledger entries with the setting that made them and this run's provenance, recorded in
        data/claims/ when the book is built (``make book``); returns the entries.

        ``setting``: what the report shows beside each verdict, {"data": ..., "model": ..., "attack": ...}, or a
        function of the check giving it (when the checks of one run differ, for example by radius). A check
        that carries its own setting (``values["setting"]``, as a sweep's verdicts over seeds do) keeps it.
        """
        def setting_of(c: Check) -> dict[str, Any]:
            if isinstance(c.values.get("setting"), dict):
                return c.values["setting"]
            return setting(c) if callable(setting) else setting

        entries = [ledger.entry(c, setting_of(c), self.name, self.provenance) for c in checks]
        ledger.record(self.name, entries)
        return entries


def setup_chapter(name: str, namespace: dict[str, Any]) -> ChapterContext:
    """Validate the chapter's parameters, set the figure style, resolve the device and make the provenance record.

    ``namespace`` is the chapter's ``globals()``. The provenance's parameters leave out
    ``results_dir``, which says where a run is stored, not what it computes.
    """
    from flatrob.plotting import setup

    params = check_parameters(name, namespace)
    setup()
    device = resolve_device(params["device"]) if "device" in params else torch.device("cpu")
    run_params = {k: v for k, v in params.items() if k != "results_dir"}
    return ChapterContext(name, params, device, provenance(run_params, device))


# ---------------------------------------------------------------------------
# the runner


def runs_root() -> Path:
    """Where ``flatrob run`` stores runs by default: ``data/runs`` of the repository."""
    return repo_root() / "data" / "runs"


def partial_runs(out_root: Path | None = None) -> list[Path]:
    """Folders of runs that did not finish (``data/runs/<chapter>/.<run>.partial``), oldest first."""
    base = Path(out_root) if out_root else runs_root()
    found = [p for p in base.glob("*/.*.partial") if p.is_dir()] if base.is_dir() else []
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
    """A kernel manager whose kernel process writes its own messages (its log, not the notebook's output) to ``log``.

    Without it the kernel's start-up warnings and, on Ctrl-C, its tracebacks would reach the user's terminal.
    """
    from jupyter_client import AsyncKernelManager

    class LoggedKernelManager(AsyncKernelManager):
        async def _async_launch_kernel(self, kernel_cmd: list[str], **kw: Any) -> None:
            kw.setdefault("stdout", log)
            kw.setdefault("stderr", log)
            await super()._async_launch_kernel(kernel_cmd, **kw)

    return LoggedKernelManager


def _new_run_folder(base: Path, run_name: str | None, digest: str) -> tuple[Path, Path]:
    """(partial, final) folders for a new run, the partial one created exclusively.

    Without an explicit name the name is the UTC time, the parameters' hash and a
    random suffix, so that two identical runs started in the same second never meet.
    """
    base.mkdir(parents=True, exist_ok=True)
    for _ in range(100):
        name = run_name or (f"{_dt.datetime.now(_dt.timezone.utc).strftime('%Y%m%dT%H%M%SZ')}-{digest}-"
                            f"{secrets.token_hex(2)}")
        final, partial = base / name, base / f".{name}.partial"
        if final.exists():
            if run_name:
                raise FileExistsError(f"{final} exists; choose another --name")
            continue
        try:
            partial.mkdir()
        except FileExistsError:
            if run_name:
                raise FileExistsError(f"a run named {run_name!r} is in progress or was interrupted ({partial}); "
                                      "choose another --name, or remove it with: python -m flatrob clean --remove")
            continue
        return partial, final
    raise RuntimeError(f"could not find a free run folder under {base}")


def run_chapter(
    chapter_name: str,
    overrides: dict[str, Any],
    out_root: Path | None = None,
    run_name: str | None = None,
    progress: bool = True,
    echo: Any = None,
) -> Path:
    """Validate, convert (jupytext), execute (papermill) and store a chapter run.

    The run goes to ``<out_root>/<chapter>/<run_name>/`` (default ``data/runs``)
    holding ``params.json``, ``provenance.json``, the executed ``notebook.ipynb``,
    the kernel's output ``run.log`` and the chapter's result files. It is written
    in a hidden ``.partial`` folder, created exclusively and renamed at the end: a
    run that fails or is interrupted leaves no half-written run behind, and its
    partial folder stays for inspection (``python -m flatrob clean`` lists and
    removes them). With ``progress``, the kernel shows progress bars; ``echo`` (a
    stream, for example ``sys.stderr``) also receives the kernel's output live.
    """
    import jupytext
    import papermill
    from nbclient.exceptions import DeadKernelError
    from papermill.exceptions import PapermillExecutionError

    params = validate(chapter_name, overrides)  # before any compute
    digest = hashlib.sha256(json.dumps(params, sort_keys=True).encode()).hexdigest()[:8]
    partial, final = _new_run_folder(Path(out_root or runs_root()) / chapter_name, run_name, digest)
    source = chapter_path(chapter_name)
    nb_in = partial / "input.ipynb"
    jupytext.write(jupytext.read(source), nb_in)
    injected = {k: params[k] for k in overrides}  # typed values: "1e-3" arrives as a number
    if "results_dir" in params:
        injected["results_dir"] = str(partial.resolve())
    device = resolve_device(params["device"]) if "device" in params else torch.device("cpu")
    record = provenance({k: v for k, v in params.items() if k != "results_dir"}, device)
    record["chapter"] = chapter_name
    record["source"] = str(source.relative_to(repo_root()))
    started = time.perf_counter()
    old_progress = os.environ.get(PROGRESS_ENV)
    os.environ[PROGRESS_ENV] = "1" if progress else "0"
    try:
        with open(partial / "run.log", "a") as log, open(partial / "run.log", "ab") as kernel_log:
            stream = _Tee(log, echo) if echo is not None else log
            papermill.execute_notebook(
                str(nb_in), str(partial / "notebook.ipynb"), parameters=injected, cwd=str(source.parent),
                kernel_name="python3", progress_bar=False, log_output=False, stdout_file=stream, stderr_file=stream,
                kernel_manager_class=_logged_kernel_manager(kernel_log),
            )
    except PapermillExecutionError as err:
        if err.ename == "KeyboardInterrupt":  # Ctrl-C reached the kernel first
            raise KeyboardInterrupt from None
        raise RunFailed(f"chapter {chapter_name!r} failed in cell {err.exec_count}: {err.ename}: {err.evalue}; "
                        f"the executed notebook and its log are in {partial}") from None
    except DeadKernelError:
        raise RunFailed(f"the kernel running chapter {chapter_name!r} died (out of memory?); the executed notebook "
                        f"and its log are in {partial}") from None
    finally:
        if old_progress is None:
            os.environ.pop(PROGRESS_ENV, None)
        else:
            os.environ[PROGRESS_ENV] = old_progress
    nb_in.unlink()
    record["duration_s"] = round(time.perf_counter() - started, 1)
    atomic_write_text(partial / "params.json", json.dumps(params, indent=2) + "\n")
    atomic_write_text(partial / "provenance.json", json.dumps(record, indent=2) + "\n")
    os.rename(partial, final)
    return final
