"""Files written safely: a reader never sees half a file, two writers never share a temporary file; results as
strict JSON, CSV or NumPy archives."""

from __future__ import annotations

import json
import math
import os
import secrets
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

__all__ = ["atomic_write", "atomic_write_text", "json_text", "save_results", "strict_json"]


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


def save_results(results_dir: str | Path | None, files: Mapping[str, object]) -> list[Path]:
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

            if not isinstance(obj, Mapping):
                raise TypeError(f"{fname}: a .npz result is a dict of arrays; got {type(obj).__name__}")
            arrays = {str(k): np.asarray(v) for k, v in obj.items()}

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
