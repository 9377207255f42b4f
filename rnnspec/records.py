"""Recorded behaviours: each case a chapter records is one :class:`Record`.

A record is one behaviour measured on one configuration, declared once in its chapter::

    ONE_STEP = Record(__name__, "relu_rnn_one_step", kind="rnn_relu",
                      behaviour="relu RNN forward values (one step)", law="h_t = relu(...)",
                      inputs=lambda: dict(parameters=RELU_HALF, x=np.ones((1, 1, 1))))

    def test_relu_rnn_forward_matches_the_recurrence(device, dtype, spec_check):
        spec_check(ONE_STEP)

From the record, everything else is one step away:

* :meth:`Record.configuration`: its arrays (weights, input, initial states, upstream gradients,
  lengths) and its options (layers, directions, layout);
* :meth:`Record.truth`: the independent expectation, a closed form of the configuration
  (``closed_form``) or the NumPy reference's run of it (``reference``, by default
  ``rnnspec.numpy_reference.derive``), with the same computation emulated step by step in a narrow dtype for
  the tolerance table's envelope (``rnnspec.stepwise``);
* :meth:`Record.measured`: torch's run of it (``measure``, by default ``rnnspec.measure.measure``: the
  layer; a chapter may measure a loop of cells or truncated chunks), memoised per implementation
  under test, device and dtype, with the dtype and device every tensor came back in;
* :meth:`Record.fixture`: ``fixtures/<chapter>/<name>-<dtype>.npz``, what torch computed when the
  fixtures were recorded, and :meth:`Record.inputs_file`, ``fixtures/<chapter>/<name>-inputs.npz``.

**Inputs beside outputs.** The configuration's arrays are made once by the record's ``inputs``
function (constants, or NumPy's Generator from the seeds the chapter states), written to the inputs
file by the recording run that records the outputs, and read from that file ever after: NumPy
promises no stream across releases, so a fixture's inputs must not depend on the Generator that made
them. The ``inputs`` function stays in the chapter as the documented origin of the values, and
records a new record's inputs. Options (``num_layers``, ``bidirectional``...) are code, not data.
"""

from __future__ import annotations

import functools
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from rnnspec import stepwise
from rnnspec.comparison import Tolerance, Truth
from rnnspec.fixture_files import InputsError, flatten, layout, read_inputs, read_only
from rnnspec.measure import Implementation, Measurement, frozen, measure, memoised
from rnnspec.numpy_reference import derive

#: The fixtures folder's name, beside ``spec/``: one folder per chapter (conftest.py's FIXTURES).
FIXTURES = "fixtures"
#: The suffix of a record's inputs file, in the place of a dtype: ``<name>-inputs.npz``.
INPUTS = "inputs"


@dataclass(frozen=True, eq=False, kw_only=True)
class Case:
    """One configuration of one recurrence: its truth and its measurement, nothing recorded.

    Chapters state laws between torch runs on cases (a loop of cells against the layer); a
    :class:`Record` is a case with fixture files.
    """

    kind: str  # the recurrence: rnn_tanh, rnn_relu, lstm or gru
    behaviour: str  # what failure messages and the report call it
    law: str
    inputs: Callable[[], dict]  # the arrays: {"parameters": {...}, "x": ..., "h0": ...}
    options: dict = field(default_factory=dict)  # the configuration's non-array part
    relative: frozenset[str] = frozenset()  # the tensors compared elementwise-relatively
    closed_form: Callable[..., dict] | None = None  # (**configuration) -> truth values; None: the reference
    reference: Callable[..., dict] = derive  # (kind, **configuration) -> the NumPy reference's run
    #: (kind, implementation=, device=, dtype=, **configuration) -> torch's tensors
    measure: Callable[..., dict] = measure

    @functools.cached_property
    def _arrays(self) -> dict:
        return read_only(self.inputs())

    def configuration(self) -> dict:
        """The keyword arguments of the case's runs: its arrays (read-only) and its options."""
        return {**self._arrays, **self.options}

    @functools.cached_property
    def _truth(self) -> Truth:
        configuration = self.configuration()
        values = (self.closed_form(**configuration) if self.closed_form is not None
                  else self.reference(self.kind, **configuration))
        return Truth(behaviour=self.behaviour, law=self.law, values=frozen(values), relative=self.relative,
                     emulate=self.stepwise)

    def truth(self) -> Truth:
        """The independent expectation in float64 (closed form or NumPy reference)."""
        return self._truth

    def tolerance(self, key: str, row: Tolerance, measured=None) -> Tolerance:
        """The tolerance ``key`` is held to (``rnnspec.comparison.Truth.allowed``): the row, widened to the
        step-by-step envelope where ``measured`` (when given) lies outside it."""
        return self.truth().allowed(key, row, measured)

    def stepwise(self, dtype: str) -> list[dict]:
        """The reference's runs computed step by step in ``dtype``, every operation rounded (rnnspec.stepwise)."""
        return _stepwise(self, dtype)

    def measured(self, implementation: Implementation, device: str, dtype: str) -> Measurement:
        """``implementation``'s run of the configuration on ``device`` in ``dtype`` (memoised)."""
        return _measured(self, implementation, device, dtype)


@dataclass(frozen=True, eq=False, kw_only=True)
class Record(Case):
    """One recorded behaviour: a case with fixture files and stored inputs (module docstring)."""

    module: str = field(kw_only=False)  # the declaring chapter's __name__: its last part names the folder
    name: str = field(kw_only=False)  # the fixture files' stem: <name>-<dtype>.npz, <name>-inputs.npz

    @property
    def chapter(self) -> str:
        return self.module.rpartition(".")[2]

    @property
    def folder(self) -> Path:
        """``fixtures/<chapter>/`` beside the chapter's own ``spec/`` (a copy of the repository reads its own)."""
        return Path(sys.modules[self.module].__file__).resolve().parents[1] / FIXTURES / self.chapter

    def fixture(self, dtype: str) -> Path:
        return self.folder / f"{self.name}-{dtype}.npz"

    @property
    def inputs_file(self) -> Path:
        return self.folder / f"{self.name}-{INPUTS}.npz"

    def __repr__(self) -> str:
        return f"Record({self.chapter}/{self.name})"

    @functools.cached_property
    def stored(self) -> bool:
        """Whether the inputs come from the inputs file (else from the ``inputs`` function: not yet recorded)."""
        return self.inputs_file.is_file()

    @functools.cached_property
    def _arrays(self) -> dict:
        made = read_only(self.inputs())
        if not self.stored:
            return made
        stored = read_inputs(self.inputs_file)
        if layout(stored) != layout(made):
            shown = os.path.relpath(self.inputs_file)
            raise InputsError(f"inputs file {shown} holds {layout(stored)}, but {self.module}'s inputs for "
                              f"{self.name!r} make {layout(made)}: the record changed since its inputs were "
                              f"recorded. If the change is deliberate, delete the file and re-record the record "
                              f"(pytest --regen-all --device cpu spec/{self.chapter}.py); else restore the chapter")
        return stored

    def write_inputs(self) -> bool:
        """Write the inputs file from the ``inputs`` function if it is missing; whether it was written."""
        if self.inputs_file.is_file():
            return False
        self.inputs_file.parent.mkdir(parents=True, exist_ok=True)
        np.savez_compressed(self.inputs_file, **flatten(self.inputs()))
        return True


@functools.cache
def _stepwise(case: Case, dtype: str) -> list[dict]:
    return [frozen(run) for run in stepwise.emulate_all(case.reference, dtype, case.kind, **case.configuration())]


@memoised
def _measured(case: Case, implementation: Implementation, device: str, dtype: str) -> Measurement:
    return case.measure(case.kind, implementation=implementation, device=device, dtype=dtype, **case.configuration())


def records_of(module) -> list[Record]:
    """The records a chapter module declares (its module-level Record objects and RECORDS collections)."""
    found: dict[int, Record] = {}
    for value in vars(module).values():
        items = value.values() if isinstance(value, dict) else value if isinstance(value, (list, tuple)) else [value]
        for item in items:
            if isinstance(item, Record) and item.module == module.__name__:
                found[id(item)] = item
    return sorted(found.values(), key=lambda record: record.name)
