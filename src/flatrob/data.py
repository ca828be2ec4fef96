"""Data sets that need no download.

Every loader returns a :class:`Split` with inputs in [0, 1] (no normalisation:
attacks work in input space) and a deterministic, stratified train/test split.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

__all__ = ["CIFAR_CHECKSUM_ENV", "DATASETS", "Split", "circle_labels", "circle_manifold", "load_cifar", "load_dataset",
           "load_digits", "load_mnist1d", "missing_files", "off_manifold_points"]


@dataclass(frozen=True)
class Split:
    """A train/test split. Inputs (n, *input_shape) in [0, 1]; labels (n,) int64."""

    name: str
    x_train: Tensor
    y_train: Tensor
    x_test: Tensor
    y_test: Tensor
    n_classes: int

    @property
    def input_shape(self) -> tuple[int, ...]:
        return tuple(self.x_train.shape[1:])

    def __repr__(self) -> str:  # short: the tensors are large
        return (
            f"Split({self.name!r}, train={len(self.y_train)}, test={len(self.y_test)}, "
            f"input_shape={self.input_shape}, n_classes={self.n_classes})"
        )


def _stratified_split(y: np.ndarray, test_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    if not 0.0 < test_fraction < 1.0:
        raise ValueError(f"test_fraction must lie in (0, 1); got {test_fraction}")
    rng = np.random.default_rng(seed)
    train, test = [], []
    for c in np.unique(y):
        idx = rng.permutation(np.flatnonzero(y == c))
        n_test = int(round(test_fraction * len(idx)))
        test.append(idx[:n_test])
        train.append(idx[n_test:])
    return np.sort(np.concatenate(train)), np.sort(np.concatenate(test))


def load_digits(seed: int = 0, test_fraction: float = 0.2) -> Split:
    """scikit-learn's handwritten digits (1797 images of 8x8, 10 classes), shipped with the package.

    Pixels 0..16 are divided by 16; inputs have shape (n, 1, 8, 8).
    """
    from sklearn.datasets import load_digits as _sk_load_digits

    bunch = _sk_load_digits()
    x = torch.tensor(bunch.images / 16.0, dtype=torch.float32).unsqueeze(1)
    y = np.asarray(bunch.target, dtype=np.int64)
    tr, te = _stratified_split(y, test_fraction, seed)
    yt = torch.from_numpy(y)
    return Split("digits", x[tr], yt[tr], x[te], yt[te], n_classes=10)


def load_mnist1d(seed: int = 0, num_samples: int = 5000) -> Split:
    """MNIST-1D (Greydanus, 2020) generated locally by the ``mnist1d`` package: 40 features, 10 classes.

    The package's ``make_dataset`` builds the set from its templates in about 2 s;
    its download path is never used. Its own 80/20 split is kept. The raw values
    (about -5.5 .. 4.5) are mapped affinely to [0, 1] with the training set's
    minimum and maximum; test values outside are clipped. Inputs have shape (n, 1, 40).
    ``seed`` is the generator's seed (the package's default is 42, we add ours to it).
    """
    from mnist1d.data import get_dataset_args, make_dataset

    args = get_dataset_args()
    args.seed = 42 + seed
    args.num_samples = num_samples
    d = make_dataset(args)
    lo, hi = float(d["x"].min()), float(d["x"].max())

    def scale(a: np.ndarray) -> Tensor:
        return torch.tensor(np.clip((a - lo) / (hi - lo), 0.0, 1.0), dtype=torch.float32).unsqueeze(1)

    return Split(
        "mnist1d",
        scale(d["x"]),
        torch.as_tensor(d["y"], dtype=torch.int64),
        scale(d["x_test"]),
        torch.as_tensor(d["y_test"], dtype=torch.int64),
        n_classes=10,
    )


_CIFAR_HELP = (
    "{name} was not found under {root!r}. Put the python version of the data set there "
    "(the folder {folder!r} from {archive!r}, as distributed by the CIFAR authors at "
    "https://www.cs.toronto.edu/~kriz/cifar.html, or by torchvision.datasets.{cls} with its download option "
    "on a machine with internet) and pass that folder as the data root. Nothing is downloaded here."
)


def load_cifar(root: str | Path, name: str = "cifar10", verify_md5: bool = True) -> Split:
    """CIFAR-10 or CIFAR-100 from a folder, read by torchvision (no download, ever).

    ``root`` holds ``cifar-10-batches-py/`` or ``cifar-100-python/``. Inputs
    (n, 3, 32, 32) in [0, 1]; the official train/test split. With
    ``verify_md5=False`` the files are not checked against the official
    checksums (used by the tests, which write small files in the same format).
    """
    if name not in ("cifar10", "cifar100"):
        raise ValueError(f"name must be one of ['cifar10', 'cifar100']; got {name!r}")
    base = _cifar_class(name)
    root = Path(root).expanduser()
    folder = root / base.base_folder
    archive = base.filename
    needed = [f for f, _ in base.train_list + base.test_list] + [base.meta["filename"]]
    missing = [f for f in needed if not (folder / f).exists()]
    if missing:
        raise FileNotFoundError(
            _CIFAR_HELP.format(name=name.upper(), root=str(root), folder=base.base_folder, archive=archive,
                               cls=base.__name__)
            + f" Missing: {', '.join(missing)}."
        )

    class _Reader(base):  # type: ignore[misc, valid-type]
        """torchvision's reader; without ``verify_md5`` it skips the two checksum tests and nothing else."""

        def _check_integrity(self) -> bool:
            return True if not verify_md5 else super()._check_integrity()

        def _load_meta(self) -> None:
            if verify_md5:
                return super()._load_meta()
            import pickle

            with open(folder / self.meta["filename"], "rb") as fh:
                self.classes = pickle.load(fh, encoding="latin1")[self.meta["key"]]
            self.class_to_idx = {c: i for i, c in enumerate(self.classes)}

    try:
        train, test = _Reader(str(root), train=True), _Reader(str(root), train=False)
    except RuntimeError as err:  # torchvision: "Dataset not found or corrupted"
        raise RuntimeError(
            f"{name.upper()} files under {str(folder)!r} do not match the official checksums; "
            "re-extract the archive (or pass verify_md5=False for files you made yourself)"
        ) from err

    def to_tensor(ds: "CIFAR10") -> tuple[Tensor, Tensor]:
        x = torch.from_numpy(np.ascontiguousarray(ds.data)).permute(0, 3, 1, 2).float().div_(255.0)
        return x, torch.as_tensor(ds.targets, dtype=torch.int64)

    x_tr, y_tr = to_tensor(train)
    x_te, y_te = to_tensor(test)
    return Split(name, x_tr, y_tr, x_te, y_te, n_classes=len(train.classes))


def circle_manifold(n: int, n_classes: int = 3, noise: float = 0.0, seed: int = 0,
                    center: float = 0.5, radius: float = 0.3) -> tuple[Tensor, Tensor]:
    """Points on a circle in [0, 1]^2, the data manifold of chapter not-global. (n, 2) inputs, (n,) labels.

    Angles uniform on [0, 2 pi); the label is the sector, floor(theta k / 2 pi);
    ``noise`` is the standard deviation of a radial jitter. The manifold is known:
    the circle of ``radius`` around (center, center).
    """
    if n < 1 or n_classes < 2 or not 0 < radius < center:
        raise ValueError(f"need n >= 1, n_classes >= 2 and 0 < radius < center; got {n}, {n_classes}, {radius}, {center}")
    gen = torch.Generator().manual_seed(seed)
    theta = 2 * math.pi * torch.rand(n, generator=gen, dtype=torch.float64)
    rad = radius + noise * torch.randn(n, generator=gen, dtype=torch.float64)
    x = center + rad[:, None] * torch.stack([theta.cos(), theta.sin()], 1)
    return x.float().clamp(0, 1), circle_labels(x, n_classes, center)


def circle_labels(x: Tensor, n_classes: int, center: float = 0.5) -> Tensor:
    """The label of the nearest manifold point (the sector of the angle around the centre): (n, 2) -> (n,)."""
    theta = torch.atan2(x[:, 1] - center, x[:, 0] - center) % (2 * math.pi)
    return (theta * n_classes / (2 * math.pi)).long().clamp(max=n_classes - 1)


def off_manifold_points(n: int, margin: float, seed: int = 0, center: float = 0.5, radius: float = 0.3) -> Tensor:
    """n points uniform in [0, 1]^2 at distance > margin from the circle of :func:`circle_manifold`: (n, 2)."""
    gen = torch.Generator().manual_seed(seed)
    out: list[Tensor] = []
    got = 0
    while got < n:
        cand = torch.rand(4 * n, 2, generator=gen)
        dist = ((cand - center).norm(dim=1) - radius).abs()
        keep = cand[dist > margin]
        out.append(keep)
        got += len(keep)
    return torch.cat(out)[:n]


DATASETS: tuple[str, ...] = ("digits", "mnist1d", "cifar10", "cifar100")

#: Set to 0 to read CIFAR-format files without checking the official checksums (the tests and the GPU check
#: write small files in the format; a real copy of the data set is always checked).
CIFAR_CHECKSUM_ENV = "FLATROB_CIFAR_CHECKSUM"


def _cifar_class(name: str) -> type:
    from torchvision.datasets import CIFAR10, CIFAR100

    return {"cifar10": CIFAR10, "cifar100": CIFAR100}[name]


def missing_files(name: str, root: str | Path | None = None) -> str:
    """What is missing to load data set ``name`` on this machine, with the fix, in one line ("" if nothing).

    Cheap (it looks for files, it reads none), so that a run can be refused before any compute.
    """
    if name not in DATASETS:
        return f"unknown data set; choose one of {list(DATASETS)}"
    if name not in ("cifar10", "cifar100"):
        return ""
    base = _cifar_class(name)
    if not root:
        return (f"it needs parameter 'data_root': the folder holding {base.base_folder}/ (-p data_root FOLDER); "
                "nothing is downloaded")
    folder = Path(root).expanduser() / base.base_folder
    needed = [f for f, _ in base.train_list + base.test_list] + [base.meta["filename"]]
    absent = [f for f in needed if not (folder / f).exists()]
    if absent:
        return (f"{folder} lacks {', '.join(absent)}; put the python version of {name.upper()} under data_root "
                f"(the folder {base.base_folder}/ from {base.filename}); nothing is downloaded")
    return ""


def load_dataset(name: str, seed: int = 0, root: str | Path | None = None) -> Split:
    """Load a data set by name: ``digits``, ``mnist1d`` (generated), ``cifar10``/``cifar100`` (from ``root``).

    CIFAR files are checked against the official checksums unless ``$FLATROB_CIFAR_CHECKSUM`` is 0.
    """
    if name == "digits":
        return load_digits(seed=seed)
    if name == "mnist1d":
        return load_mnist1d(seed=seed)
    if name in ("cifar10", "cifar100"):
        if root is None:
            raise ValueError(f"{name} needs data_root: the folder that holds the CIFAR files")
        return load_cifar(root, name, verify_md5=os.environ.get(CIFAR_CHECKSUM_ENV, "1") != "0")
    raise ValueError(f"dataset must be one of {DATASETS}; got {name!r}")
