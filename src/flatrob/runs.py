"""Provenance: what made a result (parameters, code version, device, library versions, time)."""

from __future__ import annotations

import datetime as _dt
import json
import os
import platform
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

__all__ = [
    "Chapter",
    "Constraint",
    "ParameterError",
    "chapters",
    "check_parameters",
    "committed_runs",
    "git_commit",
    "parameter_defaults",
    "parse_value",
    "provenance",
    "provenance_line",
    "repo_root",
    "run_chapter",
    "save_results",
    "validate",
]


def repo_root() -> Path:
    """The repository root (the folder holding ``_config.yml``) above this package."""
    here = Path(__file__).resolve()
    for parent in here.parents:
        if (parent / "_config.yml").exists() and (parent / "src" / "flatrob").exists():
            return parent
    return Path.cwd()


def git_commit(root: Path | None = None) -> str:
    """Short commit hash of the repository, with ``+dirty`` when tracked files differ; ``unknown`` outside git.

    Files under ``data/`` (results the chapters write, such as the claims ledger) do not make the code dirty.
    """
    root = root or repo_root()
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
        return "unknown"
    return sha + ("+dirty" if dirty else "")


def _device_name(device: torch.device | str | None) -> str:
    device = torch.device(device) if device is not None else torch.device("cpu")
    if device.type == "cuda" and torch.cuda.is_available():
        return f"cuda ({torch.cuda.get_device_name(device)})"
    return f"cpu ({platform.processor() or platform.machine()}, {torch.get_num_threads()} threads)"


def provenance(params: dict[str, Any] | None = None, device: torch.device | str | None = None) -> dict[str, Any]:
    """A JSON-serialisable record of how a result was made."""
    import numpy
    import sympy

    return {
        "params": dict(params or {}),
        "commit": git_commit(),
        "device": _device_name(device),
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
# chapters as parameterised jobs


class ParameterError(ValueError):
    """A chapter parameter that is unknown, of the wrong type or out of range."""


@dataclass(frozen=True)
class Constraint:
    """What a parameter accepts beyond the type of its default."""

    choices: tuple[Any, ...] | None = None
    min: float | None = None
    max: float | None = None
    item_min: float | None = None  # for lists: every item >= item_min
    item_choices: tuple[Any, ...] | None = None  # for lists: every item among these


@dataclass(frozen=True)
class Chapter:
    """A chapter that can be run as a job: its MyST file (relative to book/) and its parameters' constraints."""

    path: str
    constraints: dict[str, Constraint] = field(default_factory=dict)


def _chapters() -> dict[str, Chapter]:
    from flatrob.data import DATASETS
    from flatrob.models import ARCHITECTURES

    pos = Constraint(min=1)
    training = {  # the experiment chapters' shared training and device parameters
        "dataset": Constraint(choices=DATASETS), "architecture": Constraint(choices=tuple(ARCHITECTURES)),
        "epochs": pos, "lr": Constraint(min=1e-12), "batch_size": pos, "device": Constraint(choices=("auto", "cpu", "cuda")),
    }
    adversarial = {"adv_eps": Constraint(min=1e-12), "adv_steps": pos, "adv_step_size": Constraint(min=1e-12)}
    return {
        "intro": Chapter("intro.md"),
        "reproduction": Chapter("reproduction.md"),
        "relative-flatness": Chapter(
            "theory/relative-flatness.md",
            {"epochs": pos, "lr": Constraint(min=1e-12), "batch_size": pos, "channels": pos, "width": pos,
             "lambdas": Constraint(item_min=1e-12), "n_autograd": pos},
        ),
        "closed-form": Chapter(
            "theory/closed-form.md",
            {"epochs": pos, "lr": Constraint(min=1e-12), "batch_size": pos, "channels": pos, "width": pos,
             "n_check": pos, "symbolic_sizes": Constraint(item_choices=(2, 3, 4, 5, 6))},
        ),
        "loss-change": Chapter(
            "theory/loss-change.md",
            {"symbolic_sizes": Constraint(item_choices=(2, 3, 4, 5, 6)), "n_random": pos, "epochs": pos,
             "attack_eps": Constraint(min=1e-12), "attack_steps": pos},
        ),
        "feature-robustness": Chapter(
            "theory/feature-robustness.md",
            {"symbolic_sizes": Constraint(item_choices=(2, 3, 4, 5)), "n_points": pos, "n_haar": pos, "epochs": pos,
             "deltas": Constraint(item_min=1e-12)},
        ),
        "bridging-lemma": Chapter(
            "theory/bridging-lemma.md",
            {"epochs": pos, "n_points": pos, "radii": Constraint(item_min=1e-12), "power_iters": pos},
        ),
        "local-bound": Chapter(
            "theory/local-bound.md",
            {"epochs": pos, "n_points": pos, "radii": Constraint(item_min=1e-12), "attack_steps": pos,
             "budget": Constraint(min=1e-12), "scales": Constraint(item_min=1e-12), "n_random": pos},
        ),
        "not-global": Chapter(
            "theory/not-global.md",
            {"n_classes": Constraint(min=2, max=12), "n_train": pos, "noise": Constraint(min=0),
             "margin": Constraint(min=0, max=0.2), "epochs": pos, "hidden": Constraint(item_min=1),
             "attack_eps": Constraint(item_min=1e-12), "attack_steps": pos, "n_attack": pos, "grid": Constraint(min=8)},
        ),
        "last-layer-scaling": Chapter(
            "experiments/last-layer-scaling.md",
            {**training, "scales": Constraint(item_min=1e-12), "attack_eps": Constraint(min=1e-12),
             "attack_steps": pos, "attack_step_size": Constraint(min=1e-12), "n_samples": pos},
        ),
        "gradient-masking": Chapter(
            "experiments/gradient-masking.md",
            {**training, "scales": Constraint(item_min=1e-12), "attack_eps": Constraint(min=1e-12),
             "attack_steps": pos, "attack_step_size": Constraint(min=1e-12), "square_queries": pos, "n_samples": pos},
        ),
        "basin": Chapter(
            "experiments/basin.md",
            {**training, **adversarial, "walk_eps": Constraint(min=1e-12), "walk_steps": pos,
             "walk_step_size": Constraint(min=1e-12), "rise_threshold": Constraint(min=1e-12),
             "rise_factor": Constraint(min=1.0 + 1e-9), "n_samples": pos},
        ),
        "confidence-flatness": Chapter(
            "experiments/confidence-flatness.md",
            {**training, "attack_norm": Constraint(choices=("linf", "l2")), "attack_eps": Constraint(min=1e-12),
             "attack_steps": pos, "attack_step_size": Constraint(min=1e-12), "n_samples": pos},
        ),
        "detector": Chapter(
            "experiments/detector.md",
            {**training, **adversarial, "attack_eps": Constraint(min=1e-12), "attack_steps": pos,
             "attack_step_size": Constraint(min=1e-12), "folds": Constraint(min=2, max=20), "n_samples": pos},
        ),
        "uncanny-valley": Chapter(
            "experiments/uncanny-valley.md",
            {
                **training, **adversarial, "attack_norm": Constraint(choices=("linf", "l2")),
                "attack_eps": Constraint(min=1e-12), "attack_steps": pos, "attack_step_size": Constraint(min=1e-12),
                "n_samples": pos, "noise_steps": pos,
            },
        ),
    }


def chapters() -> dict[str, Chapter]:
    """The chapters that ``python -m flatrob run`` knows, by name."""
    return _chapters()


def chapter(name: str) -> Chapter:
    known = chapters()
    if name not in known:
        raise ParameterError(f"unknown chapter {name!r}; chapters: {', '.join(sorted(known))}")
    return known[name]


def chapter_path(name: str) -> Path:
    return repo_root() / "book" / chapter(name).path


def parameter_defaults(name: str) -> dict[str, tuple[Any, str]]:
    """The chapter's ``parameters`` cell as {name: (default, comment)}, read without executing anything."""
    import ast

    import jupytext

    nb = jupytext.read(chapter_path(name))
    cells = [c for c in nb.cells if c.cell_type == "code" and "parameters" in c.metadata.get("tags", [])]
    if len(cells) != 1:
        raise RuntimeError(f"chapter {name!r} must have exactly one cell tagged 'parameters'")
    source = cells[0].source
    lines = source.splitlines()
    out: dict[str, tuple[Any, str]] = {}
    for node in ast.parse(source).body:
        if not (isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name)):
            raise RuntimeError(f"chapter {name!r}: the parameters cell may only hold simple assignments")
        line = lines[node.lineno - 1]
        comment = line.split("#", 1)[1].strip() if "#" in line else ""
        out[node.targets[0].id] = (ast.literal_eval(node.value), comment)
    return out


def _type_name(v: Any) -> str:
    return {bool: "a boolean", int: "an integer", float: "a number", str: "a string", list: "a list"}.get(type(v), type(v).__name__)


def _check_one(chapter_name: str, pname: str, value: Any, default: Any, c: Constraint | None) -> Any:
    where = f"parameter {pname!r} of chapter {chapter_name!r}"
    if isinstance(default, bool):
        ok = isinstance(value, bool)
    elif isinstance(default, int):
        ok = isinstance(value, int) and not isinstance(value, bool)
    elif isinstance(default, float):
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
        value = float(value) if ok else value
    else:
        ok = isinstance(value, type(default))
    if not ok:
        raise ParameterError(f"{where} must be {_type_name(default)} (default {default!r}); got {value!r}")
    if c is None:
        return value
    if c.choices is not None and value not in c.choices:
        raise ParameterError(f"{where} must be one of {list(c.choices)}; got {value!r}")
    if c.min is not None and value < c.min:
        raise ParameterError(f"{where} must be >= {c.min:g}; got {value!r}")
    if c.max is not None and value > c.max:
        raise ParameterError(f"{where} must be <= {c.max:g}; got {value!r}")
    if isinstance(value, list):
        if not value:
            raise ParameterError(f"{where} must be a non-empty list; got []")
        for item in value:
            if not isinstance(item, (int, float)) or isinstance(item, bool):
                raise ParameterError(f"{where} must hold numbers; got {item!r}")
            if c.item_min is not None and item < c.item_min:
                raise ParameterError(f"{where}: every item must be >= {c.item_min:g}; got {item!r}")
            if c.item_choices is not None and item not in c.item_choices:
                raise ParameterError(f"{where}: every item must be one of {list(c.item_choices)}; got {item!r}")
    return value


def validate(chapter_name: str, values: dict[str, Any]) -> dict[str, Any]:
    """Check parameter values for a chapter; return the complete parameter set (defaults filled in).

    Unknown names, wrong types and impossible values raise :class:`ParameterError`
    with a message naming the parameter and what it accepts.
    """
    spec = chapter(chapter_name)
    defaults = parameter_defaults(chapter_name)
    unknown = sorted(set(values) - set(defaults))
    if unknown:
        raise ParameterError(
            f"unknown parameter(s) {', '.join(map(repr, unknown))} for chapter {chapter_name!r}; "
            f"accepted: {', '.join(defaults)}"
        )
    full = {k: d for k, (d, _) in defaults.items()} | dict(values)
    return {k: _check_one(chapter_name, k, v, defaults[k][0], spec.constraints.get(k)) for k, v in full.items()}


def check_parameters(chapter_name: str, namespace: dict[str, Any]) -> dict[str, Any]:
    """Called by a chapter right after its parameters cell: validate the values in ``namespace``."""
    names = parameter_defaults(chapter_name)
    return validate(chapter_name, {k: namespace[k] for k in names if k in namespace})


def parse_value(text: str) -> Any:
    """A command-line value: YAML scalars and lists (``40``, ``0.5``, ``true``, ``[1, 2]``), else the string."""
    import yaml

    try:
        return yaml.safe_load(text)
    except yaml.YAMLError:
        return text


def _atomic_write_text(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def save_results(results_dir: str | Path | None, files: dict[str, Any]) -> list[Path]:
    """Write a chapter's results into ``results_dir`` (nothing when it is empty): DataFrames as CSV, the rest as JSON.

    Each file is written to a temporary name and renamed, so a reader never sees half a file.
    """
    if not results_dir:
        return []
    folder = Path(results_dir)
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for fname, obj in files.items():
        path = folder / fname
        if hasattr(obj, "to_csv"):
            _atomic_write_text(path, obj.to_csv(index=False))
        else:
            _atomic_write_text(path, json.dumps(obj, indent=2, default=str) + "\n")
        written.append(path)
    return written


def committed_runs(chapter_name: str, root: Path | None = None) -> list[dict[str, Any]]:
    """Runs of a chapter committed under ``data/runs/<chapter>/``: [{"dir", "params", "provenance"}], oldest first."""
    base = (root or repo_root() / "data" / "runs") / chapter_name
    runs = []
    for d in sorted(base.glob("*/")) if base.exists() else []:
        if (d / "provenance.json").exists():
            prov = json.loads((d / "provenance.json").read_text())
            runs.append({"dir": d, "params": prov.get("params", {}), "provenance": prov})
    return runs


def run_chapter(
    chapter_name: str,
    overrides: dict[str, Any],
    out_root: Path | None = None,
    run_name: str | None = None,
    progress: bool = True,
) -> Path:
    """Validate, convert (jupytext), execute (papermill) and store a chapter run.

    The run goes to ``<out_root>/<chapter>/<run_name>/`` (default
    ``data/runs``; the name defaults to the UTC time and a hash of the
    parameters) holding ``params.json``, ``provenance.json``, the executed
    ``notebook.ipynb`` and the chapter's result files. It is written in a
    hidden partial folder renamed at the end: a run that fails or is interrupted
    leaves no half-written run behind (the partial folder stays, for debugging).
    """
    import hashlib
    import time

    import jupytext
    import papermill

    params = validate(chapter_name, overrides)  # before any compute
    out_root = Path(out_root) if out_root else repo_root() / "data" / "runs"
    stamp_ = _dt.datetime.now(_dt.timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    digest = hashlib.sha256(json.dumps(params, sort_keys=True).encode()).hexdigest()[:8]
    run_name = run_name or f"{stamp_}-{digest}"
    final = out_root / chapter_name / run_name
    if final.exists():
        raise FileExistsError(f"{final} exists; choose another --name")
    partial = out_root / chapter_name / f".{run_name}.partial"
    if partial.exists():
        import shutil

        shutil.rmtree(partial)
    partial.mkdir(parents=True)
    source = chapter_path(chapter_name)
    nb_in = partial / "input.ipynb"
    jupytext.write(jupytext.read(source), nb_in)
    injected = dict(overrides)
    if "results_dir" in params:
        injected["results_dir"] = str(partial.resolve())
    from flatrob.training import default_device

    record = provenance(params, default_device())
    record["chapter"] = chapter_name
    record["source"] = str(source.relative_to(repo_root()))
    started = time.perf_counter()
    papermill.execute_notebook(
        str(nb_in), str(partial / "notebook.ipynb"), parameters=injected, cwd=str(source.parent),
        kernel_name="python3", progress_bar=progress, log_output=False,
    )
    nb_in.unlink()
    record["duration_s"] = round(time.perf_counter() - started, 1)
    _atomic_write_text(partial / "params.json", json.dumps(params, indent=2) + "\n")
    _atomic_write_text(partial / "provenance.json", json.dumps(record, indent=2) + "\n")
    os.replace(partial, final)
    return final
