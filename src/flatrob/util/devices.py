"""Devices and threads: a chapter's ``device`` parameter as a :class:`torch.device`, readable device names, and the
thread count every chapter computes with."""

from __future__ import annotations

import os
import platform

import torch

__all__ = ["DEVICES", "THREADS_ENV", "default_device", "device_name", "fix_threads", "resolve_device"]

#: torch's thread count for the chapters (default 2): the same on every machine, whatever its number of cores.
THREADS_ENV = "FLATROB_THREADS"

#: The accepted values of every chapter's ``device`` parameter.
DEVICES: tuple[str, ...] = ("auto", "cpu", "cuda")


def default_device() -> torch.device:
    """CUDA when present, else CPU."""
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def resolve_device(name: str) -> torch.device:
    """A chapter's ``device`` parameter: "auto" (CUDA when present), "cpu" or "cuda" (an error when absent)."""
    if name not in DEVICES:
        raise ValueError(f"parameter 'device' must be one of {list(DEVICES)}; got {name!r}")
    if name == "cuda" and not torch.cuda.is_available():
        raise ValueError("parameter 'device' is 'cuda' but CUDA is not available on this machine; use auto or cpu")
    return default_device() if name == "auto" else torch.device(name)


def device_name(device: torch.device | str | None) -> str:
    """A readable name of a device: ``cuda (NVIDIA H200)`` or ``cpu (x86_64, 2 threads)``."""
    device = torch.device(device) if device is not None else torch.device("cpu")
    if device.type == "cuda" and torch.cuda.is_available():
        return f"cuda ({torch.cuda.get_device_name(device)})"
    return f"cpu ({platform.processor() or platform.machine()}, {torch.get_num_threads()} threads)"


def fix_threads() -> int:
    """Set torch's thread count to ``$FLATROB_THREADS`` (default 2) and return it: the chapters compute with the same
    count on every machine (with the pinned kernels of :mod:`flatrob._cpu`, numbers then agree across machines)."""
    text = os.environ.get(THREADS_ENV, "2")
    try:
        n = int(text)
    except ValueError:
        raise ValueError(f"{THREADS_ENV} must be a positive integer; got {text!r}") from None
    if n < 1:
        raise ValueError(f"{THREADS_ENV} must be a positive integer; got {text!r}")
    torch.set_num_threads(n)
    return n
