"""Progress bars (tqdm) on standard error, on when a run asks for them and off elsewhere."""

from __future__ import annotations

import sys
from collections.abc import Iterable
from typing import Any, TypeVar

__all__ = ["progress_bar", "progress_enabled", "set_progress_default"]

T = TypeVar("T")

#: Whether progress bars are on when a function is not told (``progress=None``): off, except in a chapter that
#: ``flatrob run`` executes with progress (its run record says so; :func:`flatrob.jobs.chapter.setup_chapter` sets it).
_PROGRESS_DEFAULT = [False]


def set_progress_default(on: bool) -> None:
    """Turn progress bars on or off for every call that does not say (``progress=None``)."""
    _PROGRESS_DEFAULT[0] = bool(on)


def progress_enabled(progress: bool | None) -> bool:
    """An explicit ``progress`` wins; ``None`` means the default of :func:`set_progress_default`."""
    return bool(progress) if progress is not None else _PROGRESS_DEFAULT[0]


def progress_bar(iterable: Iterable[T], *, progress: bool | None = None, **kwargs: Any) -> Iterable[T]:
    """A text progress bar (tqdm) on standard error when :func:`progress_enabled`, else the iterable itself.

    Standard error is the terminal of ``python -m flatrob run`` (and its run log);
    off a terminal the bar is redrawn at most every few seconds.
    """
    if not progress_enabled(progress):
        return iterable
    from tqdm import tqdm

    tty = hasattr(sys.stderr, "isatty") and sys.stderr.isatty()
    bar: Iterable[T] = tqdm(iterable, file=sys.stderr, mininterval=0.1 if tty else 5.0, dynamic_ncols=tty, **kwargs)
    return bar
