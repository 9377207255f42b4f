"""The check of a recorded behaviour: its measurement against its truth and its recorded fixture.

A behaviour test hands its record (``rnnspec.records.Record``) to :class:`SpecCheck`, which measures
it (memoised) and asks:

0. did every tensor come back in the dtype and on the device under test, of the truth's shape,
   dense, requiring grad where the contract says? (the output contract, before any value: a run that
   leaks into float32 or onto the CPU, keeps an axis or detaches a result fails here;
   :func:`assert_output_contract`, which the property tests of chapter 17 use too)
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

When the report plugin asks for them (``--spec-report``, or a recording run), every comparison
also leaves its error figures for the report (``rnnspec/figures.py``).
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

import numpy as np
import pytest

from rnnspec.comparison import Tolerance, Truth, assert_agrees, disagreement
from rnnspec.figures import error_figures
from rnnspec.fixture_files import (DTYPE_TAG, UNREADABLE, file_state, load_record, read_fixture,
                                   record_command)
from rnnspec.fixture_files import InputsError
from rnnspec.measure import Implementation, Measurement, TensorFacts
from rnnspec.records import Record

CLAIMS = pytest.StashKey[dict]()  # fixture path -> the one test that owns it
#: Set by the report plugin when it wants error figures: off by default, so a plain run spends no time on them.
FIGURES_WANTED = pytest.StashKey[bool]()
#: Per test item: the comparisons SpecCheck made, with their figures (JSON-ready dicts).
COMPARISONS = pytest.StashKey[list]()
#: Per test item: the fixture files (paths relative to the rootdir) it wrote in a recording run.
RECORDED = pytest.StashKey[list]()


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

    def __init__(self, request, *, implementation: Implementation, device: str, dtype: str, tolerance: Tolerance):
        self.request = request
        self.implementation = implementation
        self.device = device
        self.dtype = dtype
        self.tolerance = tolerance
        self.config = request.node.callspec.id if hasattr(request.node, "callspec") else f"{device}-{dtype}"

    def __call__(self, record: Record) -> None:
        """Measure ``record`` (memoised) and check it: its output contract, the truth, the recorded fixture.

        A run without gradients (its module computes none, ``rnnspec.measure.NO_GRADIENTS``) has its
        forward tensors checked against the truth and the fixture, then raises the module's
        ``no_gradients()``: for a target, NotApplicable, so the test is not applicable for its gradients
        once its forward values have held.
        """
        __tracebackhide__ = True
        then_its_gradients(self._check(record))

    def _check(self, record: Record):
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
            measurement = record.measured(self.implementation, self.device, self.dtype)
        except InputsError as error:
            pytest.fail(f"{record.behaviour} [{self.config}]: {error}", pytrace=False)
        self.assert_contract(record, measurement)
        measured = dict(measurement)
        truth = of_the_run(record.truth(), measurement)  # the truth and the fixture of the tensors the run has
        forward_only = measurement.no_gradients is not None
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
            if forward_only:
                fixture = {key: fixture[key] for key in measured if key in fixture}
            if fixture.keys() == measured.keys() and not any(
                    disagreement(measured[key], fixture[key], between[key]) for key in fixture):
                return measurement  # no drift: ndarrays_regression below would compare these same arrays, and agree
            assert_matches_truth(fixture, truth, self.dtype, self.tolerance, what=f"recorded fixture {shown}:",
                                 witness="the truth", config=self.config)

        if regenerating and record.write_inputs():
            self.request.node.stash.setdefault(RECORDED, []).append(
                str(record.inputs_file.relative_to(config.rootpath)))
        tolerances = {key: _as_isclose(between[key]) for key in measured}
        tolerances[DTYPE_TAG] = {}
        before = file_state(path) if regenerating else None
        try:
            self.request.getfixturevalue("ndarrays_regression").check({**measured, DTYPE_TAG: np.array(self.dtype)},
                                                                      fullpath=path, tolerances=tolerances)
        except AssertionError as error:
            raise AssertionError(
                f"{truth.behaviour}: measured values drifted from the recorded fixture {shown} "
                f"[{self.config}], tolerance {self.tolerance}\n{error}"
            ) from None
        finally:
            if regenerating and file_state(path) not in (before, None):  # written by this check
                self.request.node.stash.setdefault(RECORDED, []).append(str(shown))
        return measurement

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

    def assert_contract(self, record: Record, measurement: Measurement) -> None:
        """Every measured tensor is what the output contract says, before any value is compared."""
        __tracebackhide__ = True
        assert_output_contract(measurement, record.truth(), device=self.device, dtype=self.dtype, config=self.config)


def of_the_run(truth: Truth, measurement: Measurement) -> Truth:
    """``truth`` for the tensors ``measurement`` holds: all of them, or, for a run without gradients (its module
    computes none, ``rnnspec.measure.NO_GRADIENTS``), the forward ones. The test then checks those and reads a
    gradient from the run, which raises the module's ``no_gradients()``: for a target, NotApplicable."""
    if measurement.no_gradients is None:
        return truth
    return dataclasses.replace(truth, values={key: value for key, value in truth.values.items() if key in measurement})


def then_its_gradients(measurement: Measurement) -> None:
    """After a run's tensors were checked: a run without gradients raises its module's ``no_gradients()`` (for a
    target, NotApplicable: the claim's gradients do not apply once its forward values have held)."""
    if measurement.no_gradients is not None:
        raise measurement.no_gradients()


#: The law of the output contract, as failure messages state it.
CONTRACT_LAW = ("a module returns its results, and autograd its gradients, in the module's dtype, on its device, "
                "as dense (strided) tensors of the documented shapes; the forward results of a run with gradients "
                "require grad, the gradients do not")


def assert_output_contract(measurement: Measurement, truth: Truth, *, device: str, dtype: str, config: str) -> None:
    """Every tensor of ``measurement`` came back in ``dtype``, on ``device``, of the truth's shape, dense, and
    requiring grad exactly where the contract says (``rnnspec.measure.TensorFacts.contract``).

    Checked before any value is compared: a run that leaks into float32 or onto the CPU, keeps an axis,
    or detaches a result fails here, naming the tensor and the fact, whatever its values.
    """
    __tracebackhide__ = True
    for key, facts in measurement.facts.items():
        if key not in truth.values:
            continue  # a tensor the truth does not name: the comparison of values reports it
        contract = TensorFacts.contract(key, np.shape(truth.values[key]), device=device, dtype=dtype)
        breaches = facts.breaches(contract)
        if breaches:
            raise AssertionError(
                f"{truth.behaviour}: the output contract is broken: measured {key} came back with "
                f"{'; '.join(breaches)} [{config}]\n"
                f"  law: {CONTRACT_LAW}\n"
                f"  measured: {facts}\n"
                f"  expected: {contract}")


def _as_isclose(tolerance: Tolerance) -> dict[str, float]:
    return {"rtol": tolerance.rtol, "atol": tolerance.atol}
