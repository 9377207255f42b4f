"""Recorded fixtures: the expected tensors under ``fixtures/``, and the check that uses them.

A behaviour test hands its measured tensors to :class:`SpecCheck`, which asks three questions:

1. does the measurement agree with the independent truth (closed form or NumPy reference),
   rounded to the dtype under test?
2. does the recorded fixture agree with that same truth? (a fixture regenerated from a broken
   PyTorch fails here, whatever the measurement)
3. does the measurement agree with the recorded fixture (pytest-regressions' ``ndarrays_regression``)?

File layout: ``fixtures/<spec module>/<record>-<dtype>.npz``, one array per quantity plus a
``dtype`` tag (pytest-regressions alone would accept a float64 result against a float32 record).
A fixture never depends on the device: it is recorded on CPU and checked on every device.
Files are read with ``allow_pickle=False``: a fixture is never unpickled.
"""

from __future__ import annotations

import os
import zipfile
from pathlib import Path

import numpy as np
import pytest

from rnnspec.comparison import Tolerance, Truth, as_float64, assert_agrees

DTYPE_TAG = "dtype"
CLAIMS = pytest.StashKey[dict]()  # fixture path -> the one test that owns it


def fixture_basename(record: str, dtype: str) -> str:
    return f"{record}-{dtype}"


def record_command(nodeid: str) -> str:
    return f"pytest --regen-all --device cpu '{nodeid}'"


def load_fixture(path: Path) -> dict[str, np.ndarray]:
    """The arrays of one fixture file, or a failure that says what is wrong and how to fix it."""
    __tracebackhide__ = True
    try:
        with open(path, "rb") as handle, np.load(handle, allow_pickle=False) as archive:
            return {key: archive[key] for key in archive.files}
    except (OSError, ValueError, zipfile.BadZipFile, EOFError) as error:
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
                         what: str, witness: str, config: str) -> None:
    """Every array agrees with the truth rounded to ``dtype``, and no array is missing or extra."""
    __tracebackhide__ = True
    expected = truth.in_dtype(dtype)
    if set(arrays) != set(expected):
        raise AssertionError(f"{truth.behaviour}: {what} holds {sorted(arrays)}, "
                             f"the truth holds {sorted(expected)} [{config}]")
    for key in expected:
        assert_agrees(arrays[key], expected[key], truth.tolerance_for(key, tolerance), behaviour=truth.behaviour,
                      what=f"{what} {key}", witness=witness, config=config, law=truth.law)


class SpecCheck:
    """Compares one test's measured tensors with the truth and with its recorded fixture."""

    def __init__(self, request, ndarrays_regression, *, folder: Path, device: str, dtype: str,
                 tolerance: Tolerance):
        self.request = request
        self.ndarrays_regression = ndarrays_regression
        self.folder = folder
        self.device = device
        self.dtype = dtype
        self.tolerance = tolerance
        self.config = request.node.callspec.id if hasattr(request.node, "callspec") else f"{device}-{dtype}"

    def truth(self, record: str) -> Truth:
        """The module's truth for ``record``: every chapter declares ``TRUTHS = {record: function}``."""
        truths = getattr(self.request.module, "TRUTHS", {})
        if record not in truths:
            raise LookupError(f"{self.request.module.__name__}.TRUTHS has no entry {record!r}: "
                              f"every recorded behaviour declares its independent truth there")
        return truths[record]()

    def __call__(self, measured: dict, record: str) -> None:
        """Check ``measured`` (name -> tensor or array) against the truth and the fixture ``record``."""
        __tracebackhide__ = True
        measured = {key: as_float64(value) for key, value in measured.items()}
        truth = self.truth(record)
        assert_matches_truth(measured, truth, self.dtype, self.tolerance, what="measured",
                             witness=f"the truth in float64 rounded to {self.dtype}", config=self.config)

        basename = fixture_basename(record, self.dtype)
        path = self.folder / f"{basename}.npz"
        shown = path.relative_to(self.request.config.rootpath) if path.is_relative_to(self.request.config.rootpath) else path
        owner = self.request.config.stash.setdefault(CLAIMS, {}).setdefault(path, self.request.node.nodeid)
        if owner != self.request.node.nodeid:
            raise LookupError(f"fixture {shown} is claimed by two tests, {owner} and {self.request.node.nodeid}: "
                              f"give each its own record name")
        regenerating = self.request.config.getoption("regen_all") or self.request.config.getoption("force_regen")
        if regenerating and self.device != "cpu":
            pytest.fail(f"fixtures are recorded on CPU only; rerun the regeneration with --device cpu ({shown})",
                        pytrace=False)
        if not path.is_file() and not regenerating:
            pytest.fail(
                f"{truth.behaviour}: fixture {shown} is missing [{self.config}].\n"
                f"  Record it on CPU with: {record_command(self.request.node.nodeid)}\n"
                f"  then review and commit the new file.",
                pytrace=False,
            )
        if path.is_file() and not regenerating:
            recorded = load_record(path, self.dtype, fix=record_command(self.request.node.nodeid))
            assert_matches_truth(recorded, truth, self.dtype, self.tolerance, what=f"recorded fixture {shown}:",
                                 witness="the truth", config=self.config)

        tolerances = {key: _as_isclose(truth.tolerance_for(key, self.tolerance)) for key in measured}
        tolerances[DTYPE_TAG] = {}
        try:
            self.ndarrays_regression.check({**measured, DTYPE_TAG: np.array(self.dtype)},
                                           basename=basename, tolerances=tolerances)
        except AssertionError as error:
            raise AssertionError(
                f"{truth.behaviour}: measured values drifted from the recorded fixture {shown} "
                f"[{self.config}], tolerance {self.tolerance}\n{error}"
            ) from None


def _as_isclose(tolerance: Tolerance) -> dict[str, float]:
    return {"rtol": tolerance.rtol, "atol": tolerance.atol}
