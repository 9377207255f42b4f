"""Subnormal numbers: each dtype's range of them, and whether this process flushes them to zero.

IEEE 754 represents numbers below a format's smallest normal number, 2^emin, with fewer significant
bits, down to the smallest subnormal, 2^(emin - p + 1): a result in that range rounds to the nearest
subnormal instead of to 0 (**gradual underflow**), and only a result below half the smallest
subnormal rounds to 0. A CPU can be told to flush subnormal results to zero (FTZ) and to read
subnormal operands as zero (DAZ): ``torch.set_flush_denormal(True)`` does so on x86 CPUs with SSE3
and on AArch64, for the thread that calls it, and so does code built with fast-math. The flag has
no getter: :func:`flushing` probes it, and :func:`flush_denormal` sets it and restores what it was.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import numpy as np
import torch

#: The smallest normal number of each dtype (2^emin) and its smallest subnormal (2^(emin - p + 1)).
SMALLEST_NORMAL = {"float64": 2.0**-1022, "float32": 2.0**-126, "bfloat16": 2.0**-126, "float16": 2.0**-14}
SMALLEST_SUBNORMAL = {"float64": 2.0**-1074, "float32": 2.0**-149, "bfloat16": 2.0**-133, "float16": 2.0**-24}


def is_subnormal(values, dtype: str) -> np.ndarray:
    """Elementwise: a non-zero value below the dtype's smallest normal number (a flushed one is 0, so False)."""
    magnitude = np.abs(np.asarray(values, dtype=np.float64))
    return (magnitude > 0) & (magnitude < SMALLEST_NORMAL[dtype])


def flushing() -> bool:
    """Whether this thread flushes subnormal numbers to zero now: float64's smallest subnormal times 1 is 0."""
    return (torch.tensor(SMALLEST_SUBNORMAL["float64"], dtype=torch.float64) * 1).item() == 0.0


@contextlib.contextmanager
def flush_denormal(flush: bool = True) -> Iterator[bool]:
    """``torch.set_flush_denormal(flush)`` for the block, the flag restored afterwards whatever happens.

    Yields what ``set_flush_denormal`` returned: whether the CPU supports the mode (else nothing changes).
    """
    before = flushing()
    try:
        yield torch.set_flush_denormal(flush)
    finally:
        torch.set_flush_denormal(before)
