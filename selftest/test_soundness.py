"""The machinery that keeps the spec sound: error contracts by facts, tolerances between runs, the envelope.

* ``rnnspec/contracts.py``: an error contract holds for the exact type and every fact named as a
  whole word or number, whatever the wording; it fails for another type, a subclass, a missing
  fact (``3`` is not found inside ``13``) or no exception at all, and keeps the wording it saw.
* ``rnnspec/comparison.py``: two values within their tolerances of one truth lie within the sum
  (``Tolerance.plus``); a ratio within the sum of the relative tolerances (``ratio_tolerance``).
* The step-by-step envelope (``rnnspec/stepwise.py``, ``Truth.envelope_for``): never in float64
  or float32; in bfloat16 it admits torch's own step-by-step LSTM (6 % from the truth at 20 steps)
  but not a value 50 % off; the emulation rounds every operation (a 1-step relu RNN on dyadic
  values stays exact), and stochastic rounding picks only the two neighbours, without bias.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from rnnspec import stepwise
from rnnspec.comparison import Tolerance, assert_agrees, ratio_tolerance, round_to_dtype
from rnnspec.contracts import assert_raises, assert_warns, missing_facts
from rnnspec.inputs import constant_parameters
from rnnspec.numpy_reference import derive
from spec import test_05_lstm_slower_decay as chapter_5


def raising(error: BaseException):
    def action():
        raise error
    return action


def test_a_contract_holds_for_the_type_and_the_facts_whatever_the_wording():
    """Both releases' float16 messages name float16 and float32: both pass; the wording is observed."""
    seen = {}
    for message in ("input must have the type torch.float32, got type torch.float16",
                    "RNN input dtype (torch.float16) does not match weight dtype (torch.float32)"):
        assert_raises(raising(ValueError(message)), ValueError, ("float16", "float32"), config="x",
                      observe=lambda what, value: seen.update({what: value}))
        assert seen["message"] == f"ValueError: {message}"


@pytest.mark.parametrize("action, why", [
    (raising(RuntimeError("Expected 3, got 7")), "another type than ValueError"),
    (raising(UnicodeError("Expected 3, got 7")), "a subclass of ValueError"),
    (raising(ValueError("Expected 13, got 7")), "does not name /3/"),
    (lambda: None, "raised: nothing, the call succeeded"),
], ids=["another type", "a subclass", "a fact inside a longer number", "no exception"])
def test_a_contract_fails_for_anything_else(action, why):
    with pytest.raises(AssertionError, match="error contract") as failed:
        assert_raises(action, ValueError, ("3", "7"), config="x")
    assert why in str(failed.value), str(failed.value)


def test_facts_are_whole_words_and_case_blind():
    assert missing_facts("Expected hidden[1] size (1, 2, 5), got [1, 2, 6]", (r"hidden\[1\]", "1, 2, 5", "1, 2, 6")) == []
    assert missing_facts("input.size(-1) must be equal to input_size", ("input_size", "Input")) == []
    assert missing_facts("got 4D instead", ("4-D", "D")) == ["4-D", "D"]


def test_a_warning_contract_names_its_facts():
    def warn():
        warnings.warn("dropout=0.75 and num_layers=1", UserWarning)
    assert_warns(warn, UserWarning, ("dropout", "num_layers", r"0\.75"), config="x")
    with pytest.raises(AssertionError, match="warning contract"):
        assert_warns(warn, UserWarning, ("proj_size",), config="x")
    with pytest.raises(AssertionError, match="warned: nothing"):
        assert_warns(lambda: None, UserWarning, ("dropout",), config="x")


def test_two_runs_lie_within_the_sum_of_their_tolerances():
    row = Tolerance("float32", rtol=1e-6, atol=1e-5, resolution=2.0**-149, source="row")
    both = row.plus(row, "two runs")
    assert (both.rtol, both.atol) == (2e-6, 2e-5)
    ratio = ratio_tolerance(row, row.widened(3, "envelope"))
    assert (ratio.rtol, ratio.atol) == (4e-6, 0.0)


def lstm_truth():
    return chapter_5.TWENTY_STEPS.truth()


@pytest.mark.dtypes("float64", "float32")
def test_float64_and_float32_are_never_widened(dtype, tolerance_table):
    assert lstm_truth().envelope_for("grad_input", tolerance_table[dtype]) is None


def test_the_envelope_admits_a_step_by_step_bfloat16_lstm_and_nothing_far(tolerance_table):
    """The 20-step LSTM's ∂x computed step by step lands ~6 % off: outside the row, inside the envelope; 50 % off fails."""
    truth, row = lstm_truth(), tolerance_table["bfloat16"]
    expected = truth.in_dtype("bfloat16")["grad_input"]
    step_by_step = stepwise.emulate(derive, "bfloat16", "lstm", chapter_5.LSTM_HALVES, chapter_5.X)["grad_input"]
    kwargs = dict(behaviour="LSTM", what="grad_input", witness="the truth", config="bfloat16", law="the LSTM")
    with pytest.raises(AssertionError):
        assert_agrees(step_by_step, expected, truth.tolerance_for("grad_input", row), **kwargs)
    widened = truth.envelope_for("grad_input", row)
    assert widened is not None and 0.05 < widened.rtol < 0.3, widened
    assert_agrees(step_by_step, expected, truth.tolerance_for("grad_input", row),
                  envelope=lambda: truth.envelope_for("grad_input", row), **kwargs)
    with pytest.raises(AssertionError, match="widened"):
        assert_agrees(round_to_dtype(expected * 1.5, "bfloat16"), expected, truth.tolerance_for("grad_input", row),
                      envelope=lambda: truth.envelope_for("grad_input", row), **kwargs)


def test_the_emulation_rounds_every_operation():
    """Dyadic values stay exact step by step; 1/3 does not: each product and sum is rounded to the dtype."""
    halves = constant_parameters("rnn_relu", 1, 1, weight=0.5)
    exact = stepwise.emulate(derive, "bfloat16", "rnn_relu", halves, np.array([1.0, -3.0, 2.0, 0.5]).reshape(-1, 1, 1))
    assert exact["output"].flatten().tolist() == [0.5, 0.0, 1.0, 0.75]
    thirds = constant_parameters("rnn_relu", 1, 1, weight=1 / 3)
    run = stepwise.emulate(derive, "bfloat16", "rnn_relu", thirds, np.ones((3, 1, 1)))
    assert np.array_equal(run["output"], round_to_dtype(run["output"], "bfloat16"))
    assert not np.array_equal(run["output"], derive("rnn_relu", thirds, np.ones((3, 1, 1)))["output"])


@pytest.mark.parametrize("number_format", ["bfloat16", "float16", "float32"])
def test_stochastic_rounding_picks_a_neighbour_without_bias(number_format):
    dtype = number_format
    rng = np.random.default_rng(0)
    values = rng.uniform(1, 2, 20_000)
    rounded = stepwise.round_stochastically(values, dtype, np.random.default_rng(1))
    nearest = round_to_dtype(values, dtype)
    assert np.array_equal(round_to_dtype(rounded, dtype), rounded)  # every result is a number of the dtype
    spacing = np.abs(np.nextafter(nearest.astype(np.float32), np.float32(3)) - nearest) if dtype == "float32" else \
        {"bfloat16": 2.0**-7, "float16": 2.0**-10}[dtype]
    assert np.all(np.abs(rounded - values) < spacing * 1.0001)  # one of the two neighbours
    assert abs(np.mean(rounded - values)) < 0.02 * np.mean(spacing)  # unbiased
    assert 0.2 < np.mean(rounded != nearest) < 0.3  # the farther neighbour a quarter of the time
