"""Files of a training that survive an interruption: a resumable checkpoint written atomically after every epoch
(the one before kept beside it), read back on the CPU, and any file that cannot be read named and set aside rather
than used or silently overwritten (:func:`flatrob.training.train`, :func:`flatrob.training.fit_or_load`)."""

from __future__ import annotations

import datetime as _dt
import os
import warnings
from pathlib import Path
from typing import Any

import torch

from flatrob.util.io import atomic_write

__all__ = ["load", "previous", "restore", "resume_point", "save", "set_aside", "store"]


def save(obj: object, path: Path) -> None:
    """``torch.save(obj, path)`` atomically: a reader (or an interrupted writer) never leaves half a file.

    Args:
        obj: what to save (a state dict, or a dict of them).
        path: the file.

    Returns:
        None; the file is complete or absent.
    """
    atomic_write(path, lambda tmp: torch.save(obj, tmp))


def set_aside(path: Path, err: BaseException, what: str) -> None:
    """Move an unreadable file out of the way (``<name>.corrupt-<time>``) and say so, naming it.

    Args:
        path: the file that could not be read.
        err: why.
        what: what the file is, for the warning ("cached model", "training checkpoint").

    Returns:
        None; the file is renamed and a RuntimeWarning names both names.
    """
    stamp = _dt.datetime.now(_dt.UTC).strftime("%Y%m%dT%H%M%S%fZ")
    aside = path.with_name(f"{path.name}.corrupt-{stamp}")
    os.replace(path, aside)
    warnings.warn(
        f"{what} {path} is unreadable ({type(err).__name__}: {str(err).splitlines()[0][:160]}); "
        f"moved aside to {aside.name}",
        RuntimeWarning,
        stacklevel=3,
    )


def load(path: Path, what: str, *, weights_only: bool) -> dict[str, Any] | None:
    """``torch.load(path)`` on the CPU.

    Args:
        path: the file.
        what: what it is, for the warning when it cannot be read.
        weights_only: torch's safe loader (tensors and plain containers only).

    Returns:
        The saved dict, or None when the file is missing or unreadable (then set aside, :func:`set_aside`).
    """
    if not path.exists():
        return None
    try:
        state = torch.load(path, map_location="cpu", weights_only=weights_only)
        if not isinstance(state, dict):
            raise TypeError(f"expected a dict, found {type(state).__name__}")
        return state
    except Exception as err:  # a truncated zip, a pickle error, a foreign file: all mean "cannot use it"
        set_aside(path, err, what)
        return None


def previous(checkpoint: Path) -> Path:
    """The checkpoint kept from the epoch before ``checkpoint``'s.

    Args:
        checkpoint: the file of the resumable state.

    Returns:
        Its sibling ``<name>.prev.pt``.
    """
    return checkpoint.with_name(checkpoint.name.replace(".pt", "") + ".prev.pt")


def resume_point(checkpoint: Path) -> int:
    """Where a training with this checkpoint will resume.

    Args:
        checkpoint: the file of the resumable state.

    Returns:
        The epochs completed in the newest readable checkpoint (0 if none is).
    """
    for path in (checkpoint, previous(checkpoint)):
        try:
            return len(torch.load(path, map_location="cpu", weights_only=False)["history"])
        except Exception:  # missing or unreadable: restore() names and sets aside what it cannot use
            continue
    return 0


def restore(
    checkpoint: Path | None,
    model: torch.nn.Module,
    opt: torch.optim.Optimizer,
    sched: torch.optim.lr_scheduler.LRScheduler,
    gen: torch.Generator,
) -> list[dict[str, float]]:
    """Load the newest readable checkpoint (``checkpoint``, else the one before) into the training's state.

    Args:
        checkpoint: the file of the resumable state, or None (nothing to resume).
        model, opt, sched, gen: the model, optimiser, schedule and random generator, loaded in place.

    Returns:
        The history of the completed epochs, or [] when none is readable (the training then starts afresh).
    """
    for path in (checkpoint, previous(checkpoint)) if checkpoint is not None else ():
        state = load(path, "training checkpoint", weights_only=False)
        if state is None:
            continue
        try:
            model.load_state_dict(state["model"])
            opt.load_state_dict(state["optimizer"])
            sched.load_state_dict(state["scheduler"])
            gen.set_state(state["generator"])
            history: list[dict[str, float]] = state["history"]
            return history
        except (KeyError, RuntimeError, TypeError, ValueError) as err:
            set_aside(path, err, "training checkpoint")
    return []


def store(
    checkpoint: Path,
    model: torch.nn.Module,
    opt: torch.optim.Optimizer,
    sched: torch.optim.lr_scheduler.LRScheduler,
    gen: torch.Generator,
    history: list[dict[str, float]],
) -> None:
    """Write the training's state after an epoch, the previous checkpoint kept beside it (:func:`previous`).

    Args:
        checkpoint: the file of the resumable state.
        model, opt, sched, gen: the model, optimiser, schedule and random generator.
        history: one record per completed epoch.

    Returns:
        None; ``checkpoint`` holds this epoch's state and ``previous(checkpoint)`` the one before.
    """
    if checkpoint.exists():
        os.replace(checkpoint, previous(checkpoint))
    save(
        {
            "model": model.state_dict(),
            "optimizer": opt.state_dict(),
            "scheduler": sched.state_dict(),
            "generator": gen.get_state(),
            "history": history,
        },
        checkpoint,
    )
