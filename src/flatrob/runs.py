"""Provenance: what made a result (parameters, code version, device, library versions, time)."""

from __future__ import annotations

import datetime as _dt
import json
import platform
import subprocess
from pathlib import Path
from typing import Any

import torch

__all__ = ["git_commit", "provenance", "provenance_line", "repo_root"]


def repo_root() -> Path:
    """The repository root (the folder holding ``_config.yml``) above this package."""
    here = Path(__file__).resolve()
    for parent in here.parents:
        if (parent / "_config.yml").exists() and (parent / "src" / "flatrob").exists():
            return parent
    return Path.cwd()


def git_commit(root: Path | None = None) -> str:
    """Short commit hash of the repository, with ``+dirty`` when tracked files differ; ``unknown`` outside git."""
    root = root or repo_root()
    try:
        sha = subprocess.run(
            ["git", "rev-parse", "--short=10", "HEAD"], cwd=root, capture_output=True, text=True, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
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
