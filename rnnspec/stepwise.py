"""The NumPy reference computed step by step in a narrow dtype: every operation's result rounded.

Two legitimate ways of computing a recurrent layer in bfloat16 or float16 exist side by side in
PyTorch, and the spec must admit both:

* a **fused kernel** (oneDNN's LSTM on CPUs that serve bfloat16, cuDNN) keeps its intermediate
  values in float32 and rounds only what it returns: its results lie within the tolerance table's
  row of the float64 truth;
* a **step-by-step** computation (torch's own CPU kernels where oneDNN does not serve the dtype, a
  loop of ``nn.LSTMCell``, ``torch.compile``'s decompositions) rounds every operation's result, and
  every step's state, to the dtype. Its rounding errors accumulate over the steps: a 20-step LSTM's
  earliest input gradient lands about 6 % from the truth in bfloat16, four times the row.

This module measures the second kind's reach for one computation: :func:`emulate` runs a function
of the NumPy reference (``rnnspec.numpy_reference.derive``, a closed form's reference run) on arrays of the
:class:`Rounded` type, whose every arithmetic operation (each ufunc: products, sums, ``exp``,
``tanh``, matrix products, reductions) rounds its float64 result to the dtype, as step-by-step
arithmetic does. A matrix product is rounded once, as a kernel that accumulates in float32 rounds
it. Operations that only select values (``where``, ``concatenate``, slicing) round nothing; they
need not.

One run rounds to nearest. Another order or grouping of the same roundings (a kernel that fuses
the gates, sums in another order, accumulates across steps differently) lands elsewhere, so the
envelope also runs the computation with **stochastic rounding** (:func:`round_stochastically`) from
eight fixed seeds: Monte Carlo arithmetic (Parker, 1997), whose spread samples what rounding
errors of that size can do to this computation. The tolerance table (conftest.py) turns the
farthest of these :data:`SEEDS` runs into a bound: where a narrow dtype's result lies outside the
row, the row is widened by the table's envelope factor times the share of the row that run uses
(``rnnspec.comparison.Truth.envelope_for``). The emulation runs only then, so a build whose
kernels keep to the row never pays for it; the seeds are fixed, so the verdict is the same on
every run.

No torch here: like the reference itself, this is the independent side of the spec.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from rnnspec.comparison import round_to_dtype


#: The runs of an envelope: rounding to nearest (None), then stochastically from each of eight seeds.
SEEDS = (None, *range(8))


def round_stochastically(values, dtype: str, rng: np.random.Generator) -> np.ndarray:
    """Round each value to one of its two neighbours in ``dtype``, the nearer one more often: up with
    probability (x - below) / (above - below). Unbiased; its error is below one unit in the last place."""
    values = np.asarray(values, dtype=np.float64)
    if dtype == "bfloat16":  # float32's upper half: add 16 random low bits, keep the upper half
        bits = values.astype(np.float32).view(np.uint32)
        noise = (rng.random(bits.shape) * 65536).astype(np.uint32)  # uniform in 0 … 2^16 - 1
        kept = np.where(np.isfinite(values), bits + noise, bits) & np.uint32(0xFFFF0000)
        return kept.view(np.float32).astype(np.float64)
    nearest = round_to_dtype(values, dtype)
    with np.errstate(all="ignore"):
        finite = np.isfinite(nearest) & np.isfinite(values)
        toward = np.where(nearest > values, -np.inf, np.inf)  # the other neighbour lies this way
        other = _next_in_dtype(nearest, toward, dtype)
        span = np.abs(other - nearest)
        p_other = np.where(finite & (span > 0), np.abs(values - nearest) / span, 0.0)
    pick = rng.random(values.shape) < p_other
    return np.where(pick & np.isfinite(other), other, nearest)


def _next_in_dtype(values: np.ndarray, toward: np.ndarray, dtype: str) -> np.ndarray:
    """The neighbour of each value of ``dtype`` (float64, float32, float16) in the direction ``toward``."""
    storage = {"float64": np.float64, "float32": np.float32, "float16": np.float16}[dtype]
    return np.nextafter(values.astype(storage), toward.astype(storage)).astype(np.float64)


class _Mode:
    """How the emulation running now rounds: to ``dtype``, to nearest or stochastically from ``rng``."""

    dtype = "float64"
    rng: np.random.Generator | None = None

    @classmethod
    def round(cls, values) -> np.ndarray:
        if cls.rng is None:
            return round_to_dtype(values, cls.dtype)
        return round_stochastically(values, cls.dtype, cls.rng)


class Rounded(np.ndarray):
    """A float64 array whose arithmetic rounds every result to the running emulation's dtype (:func:`emulate`)."""

    def __array_ufunc__(self, ufunc, method, *inputs, out=None, **kwargs):
        plain = [value.view(np.ndarray) if type(value) is Rounded else value for value in inputs]
        if out is not None:  # in place (``a += b``): round what was written
            targets = tuple(value.view(np.ndarray) if type(value) is Rounded else value for value in out)
            getattr(ufunc, method)(*plain, out=targets, **kwargs)
            for target in targets:
                target[...] = _Mode.round(target)
            return out[0] if len(out) == 1 else out
        return _rounded(getattr(ufunc, method)(*plain, **kwargs))


def _rounded(result):
    if type(result) is tuple:
        return tuple(_rounded(item) for item in result)
    if isinstance(result, (np.ndarray, np.floating, float)) and np.asarray(result).dtype.kind == "f":
        return _Mode.round(result).view(Rounded)
    return result


def _wrap(value, dtype: str):
    """Every float array (also inside dicts) rounded to nearest in ``dtype``, as a :class:`Rounded` array."""
    if isinstance(value, dict):
        return {key: _wrap(item, dtype) for key, item in value.items()}
    if isinstance(value, np.ndarray) and value.dtype.kind == "f":
        return round_to_dtype(value, dtype).view(Rounded)
    return value


def _unwrap(value):
    if isinstance(value, dict):
        return {key: _unwrap(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(_unwrap(item) for item in value)
    if isinstance(value, np.ndarray):
        return np.array(value, dtype=np.float64)  # a plain copy
    return value


def emulate(function: Callable, dtype: str, *args, seed: int | None = None, **kwargs):
    """``function(*args, **kwargs)`` with every float array argument (also inside dicts) rounded to
    ``dtype`` and computed step by step in it; the results as plain float64 arrays.

    ``seed``: round stochastically (:func:`round_stochastically`) from that seed, instead of to nearest.
    The inputs are rounded to nearest either way: they are the same for every implementation.
    """
    wrapped = [_wrap(a, dtype) for a in args], {k: _wrap(v, dtype) for k, v in kwargs.items()}
    previous = _Mode.dtype, _Mode.rng
    _Mode.dtype, _Mode.rng = dtype, None if seed is None else np.random.default_rng(seed)
    try:
        return _unwrap(function(*wrapped[0], **wrapped[1]))
    finally:
        _Mode.dtype, _Mode.rng = previous


def emulate_all(function: Callable, dtype: str, *args, **kwargs) -> list:
    """:func:`emulate` once per entry of :data:`SEEDS`: the runs of one computation's envelope."""
    return [emulate(function, dtype, *args, seed=seed, **kwargs) for seed in SEEDS]
