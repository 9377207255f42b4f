"""Error figures: how far one tensor lies from another, in the units the upgrade gate reports.

Error figures. When the report plugin asks for them (``--spec-report``; see
``rnnspec/gate/collector.py``), every comparison the check makes also leaves figures for the report, per
compared tensor: the maximum absolute error, the maximum relative error, the maximum distance in
units in the last place (ULP) of the dtype under test, the share of the tolerance used and the
number of elements that differ (:func:`error_figures`). The figures never decide anything: ``rnnspec/spec_check.py``'s
checks and their messages are the same with or without them.

ULP distance, defined for float64, float32, float16 and bfloat16. Number the values a format can
hold in order, each value once, with +0 and -0 as the single point 0: the k-th value above zero
is k, the k-th below zero is -k (:func:`ordinals`; for IEEE formats this is the bit pattern read
as sign and magnitude; bfloat16 is float32's upper 16 bits, so its number is the float32 pattern
shifted right by 16). The ULP distance of a and b is |ord(a) - ord(b)|: consecutive values are 1
apart (1.0 and 1 + 2^-23 in float32; 65504 and 65472 in float16), the smallest subnormal and its
negative are 2 apart. Values are rounded to the format first, which changes nothing for the
three witnesses compared here (measured and recorded values are members of the format, the
truth is held rounded to it). Special values, explicitly:

* two NaNs are 0 apart (the spec counts NaN equal to NaN); NaN against any number is ``inf``;
* equal infinities are 0 apart; an infinity against anything else is ``inf`` (an overflow is not
  "one step" from the largest finite number, whatever the bit patterns say);
* +0 and -0 are 0 apart.

The relative error is |a - b| / |b|, b being the witness compared against (the truth or the
fixture); where b = 0 it is 0 if a = 0, else ``inf``. The same rules for NaN and infinities hold
for the absolute and relative errors. Non-finite figures are written as the string ``"inf"``
(JSON has no infinity).
"""

from __future__ import annotations

import numpy as np

from rnnspec.comparison import Tolerance, round_to_dtype

#: How a non-finite figure is written (JSON has no infinity).
INF = "inf"
#: dtype -> (NumPy storage type, its signed integer view, bits to drop): bfloat16 is float32's upper half.
FORMATS = {
    "float64": (np.float64, np.int64, 0),
    "float32": (np.float32, np.int32, 0),
    "float16": (np.float16, np.int16, 0),
    "bfloat16": (np.float32, np.int32, 16),
}


def ordinals(values, dtype: str) -> np.ndarray:
    """Each finite value's number on ``dtype``'s number line (int64): consecutive values of the
    format differ by 1, +0 and -0 are both 0 (see the module docstring). Non-finite values give 0:
    the caller treats them apart."""
    storage, signed, shift = FORMATS[dtype]
    rounded = round_to_dtype(np.where(np.isfinite(values), values, 0.0), dtype)
    bits = rounded.astype(storage).view(signed).astype(np.int64)
    magnitude = (bits & np.int64(np.iinfo(signed).max)) >> np.int64(shift)
    return np.where(bits < 0, -magnitude, magnitude)


def ulp_distances(a, b, dtype: str) -> np.ndarray:
    """|ord(a) - ord(b)| elementwise, as uint64 (no overflow across zero in float64); finite values only."""
    first, second = ordinals(a, dtype), ordinals(b, dtype)
    same_side = (first >= 0) == (second >= 0)
    apart = np.abs(first).astype(np.uint64) + np.abs(second).astype(np.uint64)
    return np.where(same_side, np.abs(first - second).astype(np.uint64), apart)


def error_figures(actual, expected, dtype: str, tolerance: Tolerance | None = None) -> dict:
    """How far ``actual`` lies from ``expected`` (the witness), in the figures the report shows.

    ``max_abs``, ``max_rel`` (relative to ``expected``), ``max_ulp`` (in ``dtype``),
    ``tolerance_used`` (max |a - b| / (atol + rtol |b|) under ``tolerance``: at most 1 passes) and
    ``differing`` (how many elements are not equal). Non-finite figures are :data:`INF`.
    """
    a, b = np.asarray(actual, dtype=np.float64), np.asarray(expected, dtype=np.float64)
    if a.shape != b.shape:
        return {"max_abs": INF, "max_rel": INF, "max_ulp": INF, "tolerance_used": INF,
                "differing": int(max(a.size, b.size)), "note": f"shape {a.shape} against {b.shape}"}
    with np.errstate(all="ignore"):
        same = (a == b) | (np.isnan(a) & np.isnan(b))  # equal infinities and +0 == -0 included
        finite = np.isfinite(a) & np.isfinite(b)
        apart = ~same
        error = np.where(finite, np.abs(a - b), np.inf)[apart]
        scale = np.abs(b)[apart]
        measurable = np.isfinite(error)  # then the witness is finite too
        relative = np.where(measurable & (scale > 0), error / scale, np.inf)
        figures = {
            "max_abs": _figure(error.max(initial=0.0)),
            "max_rel": _figure(relative.max(initial=0.0)),
            "max_ulp": INF if not finite[apart].all() else int(ulp_distances(a[apart], b[apart], dtype).max(initial=0)),
            "tolerance_used": None,
            "differing": int(apart.sum()),
        }
        if tolerance is not None:
            allowed = tolerance.atol + tolerance.rtol * scale
            used = np.where(measurable & (allowed > 0), error / allowed, np.inf)
            figures["tolerance_used"] = _figure(used.max(initial=0.0))
        else:
            del figures["tolerance_used"]
    return figures


def _figure(value) -> float | str:
    value = float(value)
    return value if np.isfinite(value) else INF
