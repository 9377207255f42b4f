"""How the spec compares a tensor with what it should be, and what it says when they differ.

Every expected value has an independent truth: a closed-form law or the NumPy reference, both in
float64. A result computed in a narrower dtype is compared with that truth *rounded to the dtype*,
so the format's own limits are part of the expectation: 177155 rounds to ``inf`` in float16
(above 65504), 1463 to 1464 in bfloat16, 4.7e-12 to exactly 0 in float16 (below 2^-25).

One rule, ``|actual - expected| <= atol + rtol * |expected|`` (torch.testing's), one tolerance table
(conftest.py), and two ways of choosing ``atol`` for a tensor:

* normwise (the default): ``atol = max(row atol, rtol * max|expected|)``. A value that comes out
  small by cancellation (0.5 - 0.43 = 0.07) carries the absolute rounding error of the terms that
  cancelled, not a small relative one: bfloat16 computes RNN(2, 3)'s 0.0734 as 0.0703. Measuring
  the error against the tensor's largest value is the usual normwise relative error.
* elementwise relative: ``atol`` = the dtype's resolution, its smallest subnormal number. For
  sign-definite quantities that span many decades, like vanishing gradients from 1e-12 to 0.26,
  where any fixed ``atol`` would accept every small value (pytest-regressions' default atol of
  1e-8 accepts 1e-12 against 1e-20).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

import numpy as np


@dataclass(frozen=True)
class Tolerance:
    """One row of the tolerance table: how far a result in one dtype may be from its truth."""

    dtype: str
    rtol: float
    atol: float
    resolution: float  # the dtype's smallest subnormal: below it, a value is 0
    source: str

    def relative(self) -> "Tolerance":
        """The same row for elementwise-relative comparison (atol is the dtype's resolution)."""
        return dataclasses.replace(self, atol=self.resolution)

    def normwise(self, scale: float) -> "Tolerance":
        """This row with atol raised to rtol × ``scale``, the largest magnitude in the compared tensor."""
        return dataclasses.replace(self, atol=max(self.atol, self.rtol * scale))

    def plus_atol(self, extra: float, why: str) -> "Tolerance":
        return dataclasses.replace(self, atol=self.atol + extra, source=f"{self.source}, plus {extra:g}: {why}")

    def scaled(self, factor: float, why: str) -> "Tolerance":
        """This row with rtol multiplied by ``factor`` (e.g. 2 for a ratio of two rounded values)."""
        return dataclasses.replace(self, rtol=self.rtol * factor, atol=0.0, source=f"{factor:g} × {self.source}: {why}")

    @staticmethod
    def exact(dtype: str, why: str) -> "Tolerance":
        """No tolerance at all: for values the dtype represents exactly."""
        return Tolerance(dtype, rtol=0.0, atol=0.0, resolution=0.0, source=f"exact: {why}")

    def __str__(self) -> str:
        return f"rtol={self.rtol:g}, atol={self.atol:g} ({self.dtype}: {self.source})"


@dataclass(frozen=True)
class Truth:
    """The independent expectation for one recorded behaviour, in float64.

    ``relative`` names the arrays compared elementwise-relatively (they span many decades).
    """

    behaviour: str
    law: str
    values: dict[str, np.ndarray]
    relative: frozenset[str] = field(default_factory=frozenset)

    def tolerance_for(self, key: str, tolerance: Tolerance) -> Tolerance:
        """Elementwise relative for the keys in ``relative``, normwise for the others."""
        return tolerance.relative() if key in self.relative else tolerance.normwise(magnitude(self.values[key]))

    def in_dtype(self, dtype: str) -> dict[str, np.ndarray]:
        """The truth as the dtype can hold it (rounded to nearest, overflow to inf, underflow to 0)."""
        return {key: round_to_dtype(value, dtype) for key, value in self.values.items()}


def as_float64(value) -> np.ndarray:
    """A tensor or array as a float64 NumPy array (bfloat16 and float16 widen exactly)."""
    if isinstance(value, np.ndarray) and value.dtype == np.float64:
        return value
    if hasattr(value, "detach"):
        value = value.detach().to("cpu")
        if value.is_floating_point():
            value = value.double()
        value = value.numpy()
    return np.asarray(value, dtype=np.float64)


def magnitude(values) -> float:
    """The largest finite absolute value in ``values`` (0 when there is none)."""
    finite = np.abs(as_float64(values))
    finite = finite[np.isfinite(finite)]
    return float(finite.max()) if finite.size else 0.0


def round_to_dtype(values, dtype: str) -> np.ndarray:
    """Round float64 ``values`` to the nearest number of ``dtype`` (returned as float64).

    NumPy has no bfloat16: it is float32's upper 16 bits, rounded to nearest even on the bits.
    """
    values = np.asarray(values, dtype=np.float64)
    with np.errstate(over="ignore"):
        if dtype == "float64":
            return values.copy()
        if dtype in ("float32", "float16"):
            return values.astype(dtype).astype(np.float64)
        if dtype == "bfloat16":
            bits = values.astype(np.float32).view(np.uint32)
            finite = np.isfinite(values)
            rounded = (bits + np.uint32(0x7FFF) + ((bits >> np.uint32(16)) & np.uint32(1))) & np.uint32(0xFFFF0000)
            bits = np.where(finite, rounded, bits & np.uint32(0xFFFF0000))
            return bits.astype(np.uint32).view(np.float32).astype(np.float64)
    raise ValueError(f"no rounding rule for dtype {dtype!r}")


def disagreement(actual, expected, tolerance: Tolerance) -> str | None:
    """None when ``actual`` is within ``tolerance`` of ``expected``; else a description of the worst element."""
    actual, expected = as_float64(actual), as_float64(expected)
    if actual.shape != expected.shape:
        return f"shape {actual.shape} where {expected.shape} is expected"
    with np.errstate(invalid="ignore", over="ignore"):  # the common case, answered in a few operations:
        if (np.abs(actual - expected) <= tolerance.atol + tolerance.rtol * np.abs(expected)).all() \
                and np.isfinite(expected).all():  # every element finite and within the tolerance
            return None
    close = np.isclose(actual, expected, rtol=tolerance.rtol, atol=tolerance.atol, equal_nan=True)
    if close.all():
        return None
    with np.errstate(invalid="ignore", over="ignore", divide="ignore"):
        error = np.abs(actual - expected)
        allowed = tolerance.atol + tolerance.rtol * np.abs(expected)
        excess = np.where(close, -np.inf, np.nan_to_num(error / allowed, nan=np.inf, posinf=np.inf))
        worst = np.unravel_index(int(np.argmax(excess)), actual.shape) if actual.shape else ()
        rel = error[worst] / abs(expected[worst]) if expected[worst] != 0 else np.inf
    index = "[" + ", ".join(str(int(i)) for i in worst) + "]"
    bad = int((~close).sum())
    return (
        f"{bad} of {actual.size} values differ; worst at {index}: got {actual[worst]!r}, "
        f"expected {expected[worst]!r}, |Δ|={error[worst]:.3g} (relative {rel:.3g}) "
        f"> allowed {allowed[worst]:.3g}"
    )


def assert_agrees(actual, expected, tolerance: Tolerance, *, behaviour: str, what: str, witness: str,
                  config: str, law: str) -> None:
    """Assert ``actual`` matches ``expected``; the message names behaviour, configuration, law and tolerance."""
    __tracebackhide__ = True
    problem = disagreement(actual, expected, tolerance)
    if problem is not None:
        raise AssertionError(
            f"{behaviour}: {what} disagrees with {witness} [{config}]\n"
            f"  law: {law}\n"
            f"  {problem}\n"
            f"  tolerance: {tolerance}"
        )
