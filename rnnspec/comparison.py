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

The step-by-step envelope (bfloat16 and float16 only). A fused kernel keeps float32 intermediates
and lands within the row; a step-by-step computation rounds every operation to the dtype and its
errors accumulate over the steps (``rnnspec/stepwise.py``). Both are PyTorch. Where a narrow
dtype's result lies outside the row, :meth:`Truth.envelope_for` runs the reference step by step in
that dtype nine times (rounding to nearest, and rounding stochastically from eight fixed seeds:
Monte Carlo arithmetic, which samples what other orders and groupings of the same roundings do),
measures the largest share of the row those runs use (``s``: their worst
``|stepwise - truth| / (atol + rtol |truth|)`` over the tensor) and widens the row by
``envelope × s`` (the table's factor, 2) when that exceeds 1. Measured on CPU (torch 2.13, every
record, bfloat16 and float16): torch's own step-by-step kernels and a loop of cells land at most
0.94 times as far from the truth as the farthest emulated run (round-to-nearest alone would
under-estimate one tensor 2.45 times); the factor 2 leaves as much again for kernels not measured.
float64 and float32 are never widened: their rows hold for every implementation measured.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
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
    envelope: float = 0.0  # the step-by-step envelope's factor (0: the row is never widened)

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

    def plus(self, other: "Tolerance", why: str) -> "Tolerance":
        """The sum of two tolerances (rtol and atol each): how far apart two values within them may lie."""
        return dataclasses.replace(self, rtol=self.rtol + other.rtol, atol=self.atol + other.atol,
                                   source=f"{why}: ({self}) + ({other})")

    def widened(self, factor: float, why: str) -> "Tolerance":
        """This row with rtol and atol multiplied by ``factor`` (the step-by-step envelope)."""
        return dataclasses.replace(self, rtol=self.rtol * factor, atol=self.atol * factor,
                                   source=f"{self.source}, widened {factor:.3g}×: {why}")

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
    #: The same computation by the reference, step by step in a dtype (``rnnspec.stepwise``): its runs,
    #: (dtype) -> [values rounded to nearest, values rounded stochastically from seed 0, 1, ...].
    emulate: Callable[[str], list[dict[str, np.ndarray]]] | None = field(default=None, compare=False)

    def tolerance_for(self, key: str, tolerance: Tolerance) -> Tolerance:
        """Elementwise relative for the keys in ``relative``, normwise for the others."""
        return tolerance.relative() if key in self.relative else tolerance.normwise(magnitude(self.values[key]))

    def allowed(self, key: str, tolerance: Tolerance, measured=None) -> Tolerance:
        """The tolerance ``key`` is held to in the row's dtype: the row (normwise, or elementwise relative for the
        ``relative`` tensors), widened to the step-by-step envelope where ``measured`` (when given) lies outside it."""
        base = self.tolerance_for(key, tolerance)
        if measured is None or disagreement(measured, round_to_dtype(self.values[key], tolerance.dtype), base) is None:
            return base
        return self.envelope_for(key, tolerance) or base

    def between(self, key: str, tolerance: Tolerance, first, second) -> Tolerance:
        """How far two runs of this computation may lie apart in ``key``: each within its tolerance of the truth
        (:meth:`allowed`), so within the sum of the two of each other. Bitwise equality between two code paths
        (layouts, batch splits, a loop of cells against the layer, kernels) is promised nowhere."""
        return self.allowed(key, tolerance, first).plus(self.allowed(key, tolerance, second),
                                                        "two runs, each within its tolerance of the truth")

    def envelope_for(self, key: str, tolerance: Tolerance) -> Tolerance | None:
        """``key``'s tolerance widened to admit a step-by-step computation in the row's dtype, or None where
        the row is not widened (float64, float32; no emulation; or a step-by-step run that keeps to the row)."""
        if not tolerance.envelope or self.emulate is None:
            return None
        base = self.tolerance_for(key, tolerance)
        expected = round_to_dtype(self.values[key], tolerance.dtype)
        share = max(share_used(run[key], expected, base) for run in self.emulate(tolerance.dtype))
        factor = tolerance.envelope * share
        if not np.isfinite(factor) or factor <= 1:
            return None  # an emulated run that overflows where the truth does not widens nothing
        return base.widened(factor, f"{tolerance.envelope:g} × the {share:.3g} rows step-by-step {tolerance.dtype} "
                                    f"runs of this computation land from the truth (rnnspec/stepwise.py)")

    def in_dtype(self, dtype: str) -> dict[str, np.ndarray]:
        """The truth as the dtype can hold it (rounded to nearest, overflow to inf, underflow to 0)."""
        return {key: round_to_dtype(value, dtype) for key, value in self.values.items()}


def ratio_tolerance(numerator: Tolerance, denominator: Tolerance) -> Tolerance:
    """How far a ratio of two values, each within its relative tolerance of its truth, may lie from the ratio
    of the truths: to first order, the sum of the two relative tolerances (no absolute part)."""
    return Tolerance(numerator.dtype, rtol=numerator.rtol + denominator.rtol, atol=0.0, resolution=0.0,
                     source=f"a ratio of two values within rtol {numerator.rtol:.3g} and {denominator.rtol:.3g} "
                            f"of their truths ({numerator.source})")


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


def share_used(actual, expected, tolerance: Tolerance) -> float:
    """The largest ``|actual - expected| / (atol + rtol |expected|)``: at most 1 passes (equal values use 0,
    equal infinities and NaNs included; an infinity against a number is ``inf``)."""
    a, b = as_float64(actual), as_float64(expected)
    with np.errstate(all="ignore"):
        same = (a == b) | (np.isnan(a) & np.isnan(b))
        error = np.where(np.isfinite(a) & np.isfinite(b), np.abs(a - b), np.inf)
        allowed = tolerance.atol + tolerance.rtol * np.abs(b)
        used = np.where(same, 0.0, np.where(allowed > 0, error / allowed, np.inf))
    return float(used.max(initial=0.0))


def assert_agrees(actual, expected, tolerance: Tolerance, *, behaviour: str, what: str, witness: str,
                  config: str, law: str, envelope: Callable[[], Tolerance | None] | None = None) -> Tolerance:
    """Assert ``actual`` matches ``expected``; the message names behaviour, configuration, law and tolerance.

    ``envelope`` gives the step-by-step envelope's widened tolerance (:meth:`Truth.envelope_for`); it is
    asked for only when the row is not met. Returns the tolerance the values met.
    """
    __tracebackhide__ = True
    problem = disagreement(actual, expected, tolerance)
    if problem is not None and envelope is not None:
        widened = envelope()
        if widened is not None:
            tolerance, problem = widened, disagreement(actual, expected, widened)
    if problem is not None:
        raise AssertionError(
            f"{behaviour}: {what} disagrees with {witness} [{config}]\n"
            f"  law: {law}\n"
            f"  {problem}\n"
            f"  tolerance: {tolerance}"
        )
    return tolerance
