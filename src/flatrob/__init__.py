"""flatrob: relative flatness and adversarial robustness, the library behind the companion book."""

import warnings

from flatrob._cpu import pin_cpu_kernels

pin_cpu_kernels()  # before torch starts: the same numbers on every x86 machine (flatrob._cpu says why)

# torch 2.14 warns about its own use of torch.jit.script the first time forward-mode AD
# (torch.func.hessian) runs; the warning concerns torch internals, not this library.
warnings.filterwarnings("ignore", message=r"`torch\.jit\.script` is deprecated", category=FutureWarning)

from flatrob.flatness import (  # noqa: E402  (after the pins)
    autograd_last_layer_hessian,
    autograd_relative_sharpness,
    hessian_trace,
    kappa_from_hessian,
    last_layer_hessian,
    relative_sharpness,
    relative_sharpness_dataset,
)

__version__ = "0.3.0"  # one version: pyproject.toml and CITATION.cff say the same (tests/test_structure.py)

__all__ = [
    "autograd_last_layer_hessian",
    "autograd_relative_sharpness",
    "hessian_trace",
    "kappa_from_hessian",
    "last_layer_hessian",
    "relative_sharpness",
    "relative_sharpness_dataset",
]
