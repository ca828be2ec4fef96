"""CIFAR-10 and CIFAR-100 from a folder the user provides, read by torchvision: never downloaded, always checked.

The tests and the GPU check write small files in the same format; they read them with the official checksums turned
off (``$FLATROB_CIFAR_CHECKSUM=0``, ``flatrob run --unchecked-data``). A real copy is always checked.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

__all__ = ["CIFAR_CHECKSUM_ENV", "cifar_problem", "read_cifar"]

#: Set to 0 to read CIFAR-format files without checking the official checksums (the tests and the GPU check
#: write small files in the format; a real copy of the data set is always checked).
CIFAR_CHECKSUM_ENV = "FLATROB_CIFAR_CHECKSUM"

_CIFAR_HELP = (
    "{name} was not found under {root!r}. Put the python version of the data set there "
    "(the folder {folder!r} from {archive!r}, as distributed by the CIFAR authors at "
    "https://www.cs.toronto.edu/~kriz/cifar.html, or by torchvision.datasets.{cls} with its download option "
    "on a machine with internet) and pass that folder as the data root. Nothing is downloaded here."
)


def read_cifar(
    root: str | Path, name: str = "cifar10", verify_md5: bool = True
) -> tuple[Tensor, Tensor, Tensor, Tensor, int]:
    """CIFAR-10 or CIFAR-100 from a folder, read by torchvision (no download, ever): (x_train, y_train, x_test,
    y_test, number of classes) (:func:`flatrob.data.load_cifar` makes a Split of it).

    ``root`` holds ``cifar-10-batches-py/`` or ``cifar-100-python/``. Inputs
    (n, 3, 32, 32) in [0, 1]; the official train/test split. With
    ``verify_md5=False`` the files are not checked against the official
    checksums (used by the tests, which write small files in the same format).

    Args:
        root: the folder holding ``cifar-10-batches-py/`` or ``cifar-100-python/``.
        name: ``cifar10`` or ``cifar100``.
        verify_md5: check the files against the official checksums.

    Returns:
        The training and test inputs (n, 3, 32, 32) in [0, 1], labels (n,), the number of
        classes.
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
            _CIFAR_HELP.format(
                name=name.upper(), root=str(root), folder=base.base_folder, archive=archive, cls=base.__name__
            )
            + f" Missing: {', '.join(missing)}."
        )

    class _Reader(base):  # type: ignore[misc, valid-type]
        """torchvision's reader; without ``verify_md5`` it skips the two checksum tests and nothing else."""

        def _check_integrity(self) -> bool:
            return True if not verify_md5 else super()._check_integrity()

        def _load_meta(self) -> None:
            if verify_md5:
                super()._load_meta()
                return
            import pickle

            with open(folder / self.meta["filename"], "rb") as fh:
                self.classes = pickle.load(fh, encoding="latin1")[self.meta["key"]]
            self.class_to_idx = {c: i for i, c in enumerate(self.classes)}

    try:
        train, test = _Reader(str(root), train=True), _Reader(str(root), train=False)
    except RuntimeError as err:  # torchvision: "Dataset not found or corrupted"
        raise RuntimeError(
            f"{name.upper()} files under {str(folder)!r} do not match the official checksums; re-extract the archive "
            "(or, for files you made yourself, set FLATROB_CIFAR_CHECKSUM=0: flatrob run --unchecked-data)"
        ) from err

    def to_tensor(ds: Any) -> tuple[Tensor, Tensor]:
        x = torch.from_numpy(np.ascontiguousarray(ds.data)).permute(0, 3, 1, 2).float().div_(255.0)
        return x, torch.as_tensor(ds.targets, dtype=torch.int64)

    x_tr, y_tr = to_tensor(train)
    x_te, y_te = to_tensor(test)
    return x_tr, y_tr, x_te, y_te, len(train.classes)


def _cifar_class(name: str) -> Any:
    from torchvision.datasets import CIFAR10, CIFAR100

    return {"cifar10": CIFAR10, "cifar100": CIFAR100}[name]


def cifar_problem(name: str, root: str | Path | None) -> str:
    """What keeps CIFAR data set ``name`` from loading from ``root``, with the fix, in one line ("" if nothing).

    Args:
        name: ``cifar10`` or ``cifar100``.
        root: the folder to look in.

    Returns:
        What keeps it from loading, with the fix, in one line; "" when it loads.
    """
    base = _cifar_class(name)
    if not root:
        return (
            f"it needs parameter 'data_root': the folder holding {base.base_folder}/ (-p data_root FOLDER); "
            "nothing is downloaded"
        )
    folder = Path(root).expanduser() / base.base_folder
    files = base.train_list + base.test_list + [(base.meta["filename"], base.meta["md5"])]
    absent = [f for f, _ in files if not (folder / f).exists()]
    if absent:
        return (
            f"{folder} lacks {', '.join(absent)}; put the python version of {name.upper()} under data_root "
            f"(the folder {base.base_folder}/ from {base.filename}); nothing is downloaded"
        )
    if os.environ.get(CIFAR_CHECKSUM_ENV, "1") != "0":
        from torchvision.datasets.utils import check_integrity

        bad = [f for f, md5 in files if not check_integrity(str(folder / f), md5)]
        if bad:
            return (
                f"{folder / bad[0]} does not match the official checksum ({len(bad)} of {len(files)} files differ): "
                f"re-extract {base.filename}, or for files you made yourself run with --unchecked-data"
            )
    return ""
