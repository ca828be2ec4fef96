"""Checks as recorded calls: the measurements a check was made from, kept so that any later build judges them again.

A chapter calls a check through :class:`CheckLog` (``ctx.judge(checks.check_valley_shape, samples, setting)``): the
check runs now, and the call, its function's name and its arguments (per-input arrays, counts, the setting), is
logged. A run stores the log beside its checks (:data:`CALLS_FILE`, :data:`ARRAYS_FILE`); the book re-judges the
committed runs of a sweep with the code of the build (:func:`replay`), so a verdict over seeds is always made by the
rules of the book that shows it, from measurements made once, at the run's commit. Nothing of a check's verdict is
stored as evidence: only what it measured.

The arguments are encoded as JSON with the arrays apart, in one compressed ``.npz``: a tensor or an array becomes
``{"$array": key, "tensor": bool}``, a float that JSON cannot hold ``{"$float": "nan"}``; dictionaries need string
keys, tuples come back as lists.
"""

from __future__ import annotations

import io
import json
import math
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from flatrob.evidence.records import CALLS_FORMAT, LoggedCall
from flatrob.evidence.verdicts import Check
from flatrob.util.paths import ARRAYS, CALLS

__all__ = ["ARRAYS_FILE", "CALLS_FILE", "CALLS_FORMAT", "CheckLog", "calls", "decode", "encode", "replay"]

#: The calls of a run's checks (JSON) and the arrays they take (compressed NumPy archive), in the run's folder.
CALLS_FILE, ARRAYS_FILE = CALLS, ARRAYS

CheckFunction = Callable[..., Check | list[Check]]


def encode(value: Any, arrays: dict[str, np.ndarray]) -> Any:
    """``value`` as JSON, its arrays moved into ``arrays`` (key -> array) and replaced by references."""
    if isinstance(value, (torch.Tensor, np.ndarray)):
        key = f"a{len(arrays)}"
        tensor = isinstance(value, torch.Tensor)
        arrays[key] = value.detach().cpu().numpy() if isinstance(value, torch.Tensor) else np.asarray(value)
        return {"$array": key, "tensor": tensor}
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return {"$float": repr(value)}
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, dict):
        bad = [k for k in value if not isinstance(k, str)]
        if bad:
            raise TypeError(f"a recorded check's dictionary needs string keys; found {bad[0]!r}")
        return {k: encode(v, arrays) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [encode(v, arrays) for v in value]
    raise TypeError(f"cannot record an argument of type {type(value).__name__} for a check")


def decode(value: Any, arrays: Any) -> Any:
    """The inverse of :func:`encode`: references replaced by the arrays of ``arrays`` (a mapping or an npz file)."""
    if isinstance(value, dict):
        if "$array" in value:
            a = np.asarray(arrays[value["$array"]])
            return torch.from_numpy(a.copy()) if value.get("tensor") else a
        if "$float" in value:
            return float(value["$float"])
        return {k: decode(v, arrays) for k, v in value.items()}
    if isinstance(value, list):
        return [decode(v, arrays) for v in value]
    return value


def _registry() -> dict[str, CheckFunction]:
    """The check functions by name: every public ``check_*`` of :mod:`flatrob.evidence.checks`."""
    from flatrob.evidence import checks

    return {n: getattr(checks, n) for n in dir(checks) if n.startswith("check_") and callable(getattr(checks, n))}


def _as_list(found: Check | Sequence[Check]) -> list[Check]:
    return [found] if isinstance(found, Check) else list(found)


class CheckLog:
    """The checks a run made, as calls that can be made again: :meth:`judge` runs a check and logs it."""

    def __init__(self) -> None:
        self.calls: list[LoggedCall] = []
        self.arrays: dict[str, np.ndarray] = {}
        self.made: list[Check] = []  # the checks the logged calls returned: only these can be recorded as this run's

    def judge(self, check: CheckFunction, *args: Any, **kwargs: Any) -> list[Check]:
        """``check(*args, **kwargs)`` (a ``check_*`` function of :mod:`flatrob.evidence.checks`), as a list of checks;
        the call is logged with its arguments."""
        name = getattr(check, "__name__", "")
        if _registry().get(name) is not check:
            raise ValueError(f"{name or check!r} is not a check of flatrob.evidence.checks: only those can be recorded")
        found = _as_list(check(*args, **kwargs))
        self.calls.append(
            {"check": name, "args": encode(list(args), self.arrays), "kwargs": encode(kwargs, self.arrays)}
        )
        self.made += found
        return found

    def logged(self, check: Check) -> bool:
        """Whether ``check`` is one that a logged call returned (the very object)."""
        return any(check is made for made in self.made)

    def files(self) -> dict[str, bytes]:
        """The log as the two files of a run folder: name -> content."""
        buffer = io.BytesIO()
        np.savez_compressed(buffer, allow_pickle=False, **self.arrays)
        calls = {"format": CALLS_FORMAT, "calls": self.calls}
        return {CALLS_FILE: (json.dumps(calls, indent=1) + "\n").encode(), ARRAYS_FILE: buffer.getvalue()}


def calls(folder: Path) -> list[tuple[str, list[object], dict[str, object]]]:
    """The recorded calls of a run folder, decoded: [(check name, args, kwargs)], the measurements as the run made
    them (a chapter draws its committed figures from them); [] when it has none."""
    calls_file = folder / CALLS_FILE
    if not calls_file.is_file():
        return []
    record = json.loads(calls_file.read_text())
    if record.get("format") != CALLS_FORMAT:
        raise ValueError(f"{calls_file} has format {record.get('format')}; this code reads format {CALLS_FORMAT}")
    with np.load(folder / ARRAYS_FILE, allow_pickle=False) as arrays:
        return [(c["check"], decode(c["args"], arrays), decode(c["kwargs"], arrays)) for c in record["calls"]]


def replay(folder: Path) -> list[Check]:
    """The checks of a run folder judged again by this code, from its recorded calls; [] when it has none."""
    registry = _registry()
    out: list[Check] = []
    for name, args, kwargs in calls(folder):
        if name not in registry:
            raise ValueError(f"{folder / CALLS_FILE} calls {name!r}, which flatrob.evidence.checks no longer has")
        out += _as_list(registry[name](*args, **kwargs))
    return out
