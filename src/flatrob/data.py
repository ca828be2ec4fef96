"""Data sets that need no download.

Every loader returns a :class:`Split` with inputs in [0, 1] (no normalisation:
attacks work in input space) and a deterministic, stratified train/test split.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

__all__ = ["Split", "load_digits"]


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
