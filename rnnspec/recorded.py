"""Recorded fixtures: the expected tensors under ``fixtures/``, and the check that uses them.

A behaviour test hands its record (``rnnspec.records.Record``) to :class:`SpecCheck`, which measures
it (memoised) and asks:

0. did every tensor come back in the dtype and on the device under test, dense? (the output
   contract, before any value: a run that leaks into float32 or onto the CPU fails here)
1. does the measurement agree with the independent truth (closed form or NumPy reference),
   rounded to the dtype under test? (a PyTorch that computes something else fails here, whatever
   its fixtures say: also when the fixtures were regenerated from it). In bfloat16 and float16
   the row is widened to the step-by-step envelope where needed (``rnnspec.comparison``).
2. does the measurement agree with the recorded fixture? Both lie within the tolerance of the
   truth, so they must lie within twice it of each other; how far they moved apart within that
   is drift, which the upgrade gate's report measures (``--spec-report``), not a verdict: the
   fixture was recorded on one machine, and kernels legitimately differ between machines.
3. when they do not: does the recorded fixture agree with the truth? That names the witness at
   fault: a fixture that disagrees with the truth was edited or recorded wrongly.

Question 3 is asked only on a disagreement: ``selftest/test_fixtures_against_truth.py`` holds
every committed fixture to the truth itself.

pytest-regressions' ``ndarrays_regression`` writes the fixtures (``--regen-all``) and explains a
drift: when question 2 finds one, its check runs on the same arrays and tolerances, fails with its
table of differing elements and leaves the obtained file in the test's tmp directory. When the
measurement agrees, the fixture already read answers question 2 directly, and ``ndarrays_regression``
(with the tmp directory it makes) is not even set up: that saves writing, copying and re-reading
two files per check.

File layout: ``fixtures/<spec module>/<record>-<dtype>.npz``, one array per quantity plus a
``dtype`` tag (pytest-regressions alone would accept a float64 result against a float32 record).
A fixture never depends on the device: it is recorded on CPU and checked on every device.
Files are read with ``allow_pickle=False``: a fixture is never unpickled.

Error figures. When the report plugin asks for them (``--spec-report``, or a recording run; see
``rnnspec/report.py``), every comparison the check makes also leaves figures for the report, per
compared tensor: the maximum absolute error, the maximum relative error, the maximum distance in
units in the last place (ULP) of the dtype under test, the share of the tolerance used and the
number of elements that differ (:func:`error_figures`). The figures never decide anything: the
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

import io
import math
import os
import re
import zipfile
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch

from rnnspec.comparison import Tolerance, Truth, as_float64, assert_agrees, disagreement, round_to_dtype
from rnnspec.records import InputsError, Record

DTYPE_TAG = "dtype"
CLAIMS = pytest.StashKey[dict]()  # fixture path -> the one test that owns it

#: Set by the report plugin (rnnspec/report.py) when it wants error figures: off by default, so a
#: plain run spends no time on them.
FIGURES_WANTED = pytest.StashKey[bool]()
#: Per test item: the comparisons SpecCheck made, with their figures (JSON-ready dicts).
COMPARISONS = pytest.StashKey[list]()
#: Per test item: the fixture files (paths relative to the rootdir) it wrote in a recording run.
RECORDED = pytest.StashKey[list]()
#: How a non-finite figure is written (JSON has no infinity).
INF = "inf"
#: What reading a damaged .npz raises (truncated, flipped bytes, a pickled array): each becomes a
#: failure that names the file and the fix, never a bare traceback.
UNREADABLE = (OSError, ValueError, EOFError, zipfile.BadZipFile, zlib.error, NotImplementedError)


def fixture_basename(record: str, dtype: str) -> str:
    return f"{record}-{dtype}"


def record_command(nodeid: str) -> str:
    return f"pytest --regen-all --device cpu '{nodeid}'"


def read_fixture(path: Path) -> dict[str, np.ndarray]:
    """The arrays of one fixture file (read-only), never unpickled; raises one of :data:`UNREADABLE` if damaged.

    An ``.npz`` is a zip of ``.npy`` files (zipfile checks each member's CRC). The plain headers
    ``ndarrays_regression`` writes are read here in a few operations (:func:`read_npy`): NumPy's own
    reader parses each header with ``ast.literal_eval``, two thirds of the time a fixture takes.
    """
    with zipfile.ZipFile(path) as archive:
        return {info.filename.removesuffix(".npy"): read_npy(archive.read(info)) for info in archive.infolist()}


#: A version 1.0 ``.npy`` header holding a plain dtype (never an object, ``O``: nothing is unpickled).
NPY_HEADER = re.compile(r"\{'descr': '([<>|=]?[a-zA-NP-Z]\d*)', 'fortran_order': (True|False), "
                        r"'shape': \(((?:\d+, ?)*\d*)\), *\}\s*$")


def read_npy(data: bytes) -> np.ndarray:
    """One ``.npy`` file's array; any header but the plain one goes to NumPy's reader, pickles refused."""
    if data[:8] == b"\x93NUMPY\x01\x00":
        length = int.from_bytes(data[8:10], "little")
        header = NPY_HEADER.match(data[10:10 + length].decode("latin1"))
        if header:
            descr, fortran_order, shape = header.groups()
            shape = tuple(int(n) for n in shape.replace(" ", "").split(",") if n)
            return np.frombuffer(data, dtype=np.dtype(descr), count=math.prod(shape), offset=10 + length).reshape(
                shape, order="F" if fortran_order == "True" else "C")
    return np.lib.format.read_array(io.BytesIO(data), allow_pickle=False)


def load_fixture(path: Path) -> dict[str, np.ndarray]:
    """The arrays of one fixture file, or a failure that says what is wrong and how to fix it."""
    __tracebackhide__ = True
    try:
        return read_fixture(path)
    except UNREADABLE as error:
        path = Path(os.path.relpath(path))
        pytest.fail(
            f"fixture {path} is unreadable ({type(error).__name__}: {error}).\n"
            f"  Restore it from git (git checkout -- {path}) or re-record it on CPU with --regen-all "
            f"and review the change.",
            pytrace=False,
        )


def load_record(path: Path, dtype: str, *, fix: str) -> dict[str, np.ndarray]:
    """The arrays of a fixture file without its dtype tag, failing when the tag is not ``dtype``."""
    __tracebackhide__ = True
    recorded = load_fixture(path)
    tag = str(recorded.pop(DTYPE_TAG, "(none)"))
    if tag != dtype:
        pytest.fail(f"fixture {os.path.relpath(path)} is tagged dtype {tag!r} but its name says {dtype}; re-record it: {fix}",
                    pytrace=False)
    return recorded


def assert_matches_truth(arrays: dict[str, np.ndarray], truth: Truth, dtype: str, tolerance: Tolerance, *,
                         what: str, witness: str, config: str) -> dict[str, Tolerance]:
    """Every array agrees with the truth rounded to ``dtype``, and no array is missing or extra.

    In bfloat16 and float16 a tensor outside the row may lie within the step-by-step envelope
    (``rnnspec.comparison.Truth.envelope_for``). Returns the tolerance each array met.
    """
    __tracebackhide__ = True
    expected = truth.in_dtype(dtype)
    if set(arrays) != set(expected):
        raise AssertionError(f"{truth.behaviour}: {what} holds {sorted(arrays)}, "
                             f"the truth holds {sorted(expected)} [{config}]")
    return {key: assert_agrees(arrays[key], expected[key], truth.tolerance_for(key, tolerance),
                               behaviour=truth.behaviour, what=f"{what} {key}", witness=witness, config=config,
                               law=truth.law, envelope=lambda key=key: truth.envelope_for(key, tolerance))
            for key in expected}


class SpecCheck:
    """Checks one record's measurement on the test's device and dtype against its truth and its fixture."""

    def __init__(self, request, *, device: str, dtype: str, tolerance: Tolerance):
        self.request = request
        self.device = device
        self.dtype = dtype
        self.tolerance = tolerance
        self.config = request.node.callspec.id if hasattr(request.node, "callspec") else f"{device}-{dtype}"

    def __call__(self, record: Record) -> None:
        """Measure ``record`` (memoised) and check it: its output contract, the truth, the recorded fixture."""
        __tracebackhide__ = True
        config = self.request.config
        regenerating = config.getoption("regen_all") or config.getoption("force_regen")
        path = record.fixture(self.dtype)
        shown = path.relative_to(config.rootpath) if path.is_relative_to(config.rootpath) else path
        owner = config.stash.setdefault(CLAIMS, {}).setdefault(path, self.request.node.nodeid)
        if owner != self.request.node.nodeid:
            raise LookupError(f"fixture {shown} is claimed by two tests, {owner} and {self.request.node.nodeid}: "
                              f"give each its own record name")
        if regenerating and self.device != "cpu":
            pytest.fail(f"fixtures are recorded on CPU only; rerun the regeneration with --device cpu ({shown})",
                        pytrace=False)
        if not regenerating and path.is_file() and not record.stored:
            pytest.fail(f"{record.behaviour}: the inputs file {os.path.relpath(record.inputs_file)} of the recorded "
                        f"fixture {shown} is missing [{self.config}].\n  Restore it (git checkout -- "
                        f"{os.path.relpath(record.inputs_file)}): the fixture's values were computed from it.",
                        pytrace=False)
        try:
            measurement = record.measured(self.device, self.dtype)
        except InputsError as error:
            pytest.fail(f"{record.behaviour} [{self.config}]: {error}", pytrace=False)
        self.assert_contract(record, measurement)
        measured = dict(measurement)
        truth = record.truth()
        if config.stash.get(FIGURES_WANTED, False):
            self._leave_figures(measured, truth, record, path, shown, regenerating)

        met = assert_matches_truth(measured, truth, self.dtype, self.tolerance, what="measured",
                                   witness=f"the truth in float64 rounded to {self.dtype}", config=self.config)

        if not path.is_file() and not regenerating:
            pytest.fail(
                f"{truth.behaviour}: fixture {shown} is missing [{self.config}].\n"
                f"  Record it on CPU with: {record_command(self.request.node.nodeid)}\n"
                f"  then review and commit the new file.",
                pytrace=False,
            )
        # The measurement and the fixture each lie within the tolerance of the truth: of each other, within twice
        # it. How far this build moved from the recording, within that, is the upgrade gate's drift report
        # (--spec-report), not the verdict: kernels legitimately differ between machines and releases.
        between = {key: met[key].widened(2, "the measurement and the fixture, each within the tolerance of the truth")
                   for key in met}
        if path.is_file() and not regenerating:
            fixture = load_record(path, self.dtype, fix=record_command(self.request.node.nodeid))
            if fixture.keys() == measured.keys() and not any(
                    disagreement(measured[key], fixture[key], between[key]) for key in fixture):
                return  # no drift: ndarrays_regression below would compare these same arrays, and agree
            assert_matches_truth(fixture, truth, self.dtype, self.tolerance, what=f"recorded fixture {shown}:",
                                 witness="the truth", config=self.config)

        if regenerating and record.write_inputs():
            self.request.node.stash.setdefault(RECORDED, []).append(
                str(record.inputs_file.relative_to(config.rootpath)))
        tolerances = {key: _as_isclose(between[key]) for key in measured}
        tolerances[DTYPE_TAG] = {}
        before = _file_state(path) if regenerating else None
        try:
            self.request.getfixturevalue("ndarrays_regression").check({**measured, DTYPE_TAG: np.array(self.dtype)},
                                                                      fullpath=path, tolerances=tolerances)
        except AssertionError as error:
            raise AssertionError(
                f"{truth.behaviour}: measured values drifted from the recorded fixture {shown} "
                f"[{self.config}], tolerance {self.tolerance}\n{error}"
            ) from None
        finally:
            if regenerating and _file_state(path) not in (before, None):  # written by this check
                self.request.node.stash.setdefault(RECORDED, []).append(str(shown))

    def _leave_figures(self, measured: dict[str, np.ndarray], truth: Truth, record: Record, path: Path, shown,
                       regenerating: bool) -> None:
        """Hand the report every comparison's error figures, before any check can fail.

        The fixture is read here without failing (an unreadable or mistagged file has no figures;
        the check below fails on it with its message). In a recording run the fixture is the file
        about to be replaced: its figures say how far the new recording moves from it. Each tensor's
        tolerance is the one the measurement is held to: the row, or its step-by-step envelope.
        """
        try:
            recorded = read_fixture(path)
            tag = str(recorded.pop(DTYPE_TAG, "(none)"))
            if tag != self.dtype:
                recorded = None
        except UNREADABLE:
            recorded = None
        expected = truth.in_dtype(self.dtype)
        tensors = {}
        for key in expected:
            ours = measured.get(key)
            tolerance = truth.allowed(key, self.tolerance, ours if ours is not None and
                                      np.shape(ours) == np.shape(expected[key]) else None)
            theirs = None if recorded is None else recorded.get(key)
            tensors[key] = {
                "shape": list(np.shape(expected[key])),
                "tolerance": {"rtol": tolerance.rtol, "atol": tolerance.atol,
                              "elementwise_relative": key in truth.relative,
                              "envelope": tolerance != truth.tolerance_for(key, self.tolerance)},
                "against_reference": None if ours is None else
                error_figures(ours, expected[key], self.dtype, tolerance),
                "against_fixture": None if ours is None or theirs is None else
                error_figures(ours, theirs, self.dtype, tolerance),
                "fixture_against_reference": None if theirs is None else
                error_figures(theirs, expected[key], self.dtype, tolerance),
            }
        self.request.node.stash.setdefault(COMPARISONS, []).append({
            "record": record.name,
            "fixture": str(shown),
            "fixture_readable": recorded is not None,
            "truth": truth.behaviour,
            "law": truth.law,
            "recording": bool(regenerating),
            "tensors": tensors,
        })

    def assert_contract(self, record: Record, measurement) -> None:
        """Every measured tensor came back in the dtype under test, on the device under test, dense."""
        __tracebackhide__ = True
        wanted = (self.dtype, torch.device(self.device).type, "strided")
        for key, facts in measurement.facts.items():
            got = (facts.dtype, torch.device(facts.device).type, facts.layout)
            if got != wanted:
                raise AssertionError(
                    f"{record.behaviour}: measured {key} came back as {facts.dtype} on {facts.device} "
                    f"({facts.layout}) [{self.config}]\n"
                    f"  law: a module returns its results, and autograd its gradients, in the module's dtype, on "
                    f"its device, as dense (strided) tensors\n"
                    f"  expected: {self.dtype} on {self.device} (strided)")

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


def _file_state(path: Path):
    """What tells whether a file was (re)written: its modification time and size, or None if absent."""
    try:
        stat = path.stat()
    except OSError:
        return None
    return stat.st_mtime_ns, stat.st_size


#: dtype -> (NumPy storage type, its signed integer view, bits to drop): bfloat16 is float32's upper half.
FORMATS = {
    "float64": (np.float64, np.int64, 0),
    "float32": (np.float32, np.int32, 0),
    "float16": (np.float16, np.int16, 0),
    "bfloat16": (np.float32, np.int32, 16),
}


def _as_isclose(tolerance: Tolerance) -> dict[str, float]:
    return {"rtol": tolerance.rtol, "atol": tolerance.atol}
