"""CPU kernels pinned to one instruction set, so that the book's numbers do not depend on the reader's processor.

Measured on this project's machines (one epoch of the small CNN on 10,000 Fashion-MNIST images, torch 2.14):
with torch's defaults the final weights differ between 1 and 2 threads and between AVX-512 and AVX2 kernels;
with the three variables below set before torch starts, they are bit-identical across 1 or 2 threads and
AVX-512 or AVX2 machines (``book/reproducibility.md`` measures the same for the whole ledger).

* ``ATEN_CPU_CAPABILITY=avx2``: torch's own vectorised kernels at AVX2, the widest set every x86-64 machine of the
  last decade has;
* ``ONEDNN_MAX_CPU_ISA=AVX2``: the same for oneDNN (convolutions);
* ``MKL_CBWR=AVX2``: MKL's conditional numerical reproducibility (matrix products) on the AVX2 code path.

They take effect only when set before torch is imported (``import flatrob`` does it when torch is not imported yet;
a value the user set wins), and never when ``FLATROB_CPU_PINS=0``. Provenance records what was in effect. This
module imports nothing, so that it can run before torch.
"""

from __future__ import annotations

import os
import sys

#: The variables and the values flatrob sets when they are unset.
CPU_PINS: dict[str, str] = {"ATEN_CPU_CAPABILITY": "avx2", "ONEDNN_MAX_CPU_ISA": "AVX2", "MKL_CBWR": "AVX2"}
#: Set to 0 to leave torch's CPU kernels as they are (faster on some machines; numbers then depend on the CPU).
PINS_ENV = "FLATROB_CPU_PINS"


def pin_cpu_kernels() -> bool:
    """Set :data:`CPU_PINS` in the environment unless opted out or too late (torch already imported).

    Returns whether the pins are in the environment now (set here or by the user).
    """
    if os.environ.get(PINS_ENV) == "0":
        return False
    if "torch" not in sys.modules:
        for key, value in CPU_PINS.items():
            os.environ.setdefault(key, value)
    return all(os.environ.get(k, "").lower() == v.lower() for k, v in CPU_PINS.items())
