"""The chapters' cases are designed as their docstrings say: checks of the spec's own design, not of torch.

A chapter's claim can only be as good as its case: a GRU case whose reset gate is 1 cannot tell the
paper's reset-before form from PyTorch's reset-after one; a relu configuration with a
pre-activation at the kink has a gradient no narrow dtype can be held to; an exact claim about a
narrow dtype must hold for every legitimate way of rounding, not only for the one kernel that ran
when it was written. These tests check those properties of the cases themselves, from the NumPy
reference and the closed forms (no torch run), so a chapter's test fails only on torch.
"""

from __future__ import annotations

import numpy as np
import pytest

from rnnspec import closed_forms, stepwise
from rnnspec.comparison import magnitude, round_to_dtype
from rnnspec.devices import DTYPES
from rnnspec.numpy_reference import derive, relu_kink_distance
from spec import test_02_exploding_gradient as chapter_2
from spec import test_03_vanishing_gradient as chapter_3
from spec import test_05_lstm_slower_decay as chapter_5
from spec import test_07_gru as chapter_7
from spec import test_09_layers_and_directions as chapter_9


@pytest.mark.parametrize("layout", chapter_9.LAYOUTS)
def test_relu_configurations_keep_every_pre_activation_off_the_kink(layout):
    """Every relu pre-activation (reference, float64) is 0 exactly or at least 0.04 from it: relu' is defined by rounding."""
    config = chapter_9.RECORDS["rnn_relu", layout].configuration()
    distance = relu_kink_distance(**config)
    assert distance >= chapter_9.RELU_MARGIN, (
        f"RNN(relu) {layout}: a pre-activation lies {distance:.3g} from relu's kink at 0, closer than "
        f"{chapter_9.RELU_MARGIN}; a narrow dtype may round it to the other side and move a gradient by a whole term: "
        f"choose another seed")


@pytest.mark.parametrize("row", list(DTYPES))
@pytest.mark.parametrize("case", list(chapter_7.CASES))
def test_gru_cases_separate_the_reset_forms_in_every_dtype(case, row, tolerance_table):
    """The reset-before output lies more than 5 tolerances from the reset-after one, even with the envelope."""
    record = chapter_7.CASES[case]
    configuration = record.configuration()
    after = record.truth().values["output"]
    before = chapter_7.reset_before_gru(configuration["parameters"], configuration["x"], configuration["h0"])
    allowed = record.truth().envelope_for("output", tolerance_table[row]) or \
        record.truth().tolerance_for("output", tolerance_table[row])
    gap = float(np.abs(after - before).max())
    assert gap > 5 * (allowed.atol + allowed.rtol * magnitude(after)), (
        f"GRU case {case} [{row}]: the forms differ by {gap:.3g}, within 5 × the tolerance {allowed}")


def test_the_float16_underflow_claim_is_about_values_below_the_threshold():
    """Chapter 3's true ∂x_1 … ∂x_7 lie below 2^-25, so float16 must round them to 0."""
    truth = np.abs(chapter_3.TWENTY_STEPS.truth().values["grad_input"].flatten())
    assert (truth[:7] < closed_forms.float16_underflow_threshold()).all(), truth[:7]


def test_the_lstm_to_rnn_ratio_is_eight_decades():
    """Chapter 5's reference ratio ∂x_1(LSTM) / ∂x_1(RNN) exceeds 10^7."""
    lstm = chapter_5.TWENTY_STEPS.truth().values["grad_input"][0, 0, 0]
    rnn = chapter_5.RUNS["rnn_tanh"].truth().values["grad_input"][0, 0, 0]
    assert lstm / rnn > 1e7, lstm / rnn


@pytest.mark.parametrize("kind", list(chapter_7.EARLIEST_GRADIENT))
def test_the_stated_earliest_gradients_are_the_references(kind):
    """Chapter 7's table of ∂x_1 values prints the reference's values to 5 digits."""
    truth = chapter_7.TWENTY_STEP_RUNS[kind].truth().values["grad_input"][0, 0, 0]
    assert f"{truth:.4e}" == f"{chapter_7.EARLIEST_GRADIENT[kind]:.4e}", (kind, truth)


@pytest.mark.parametrize("narrow, hidden, gradient", [
    ("bfloat16", [11.0, 132.0, 1464.0, 16128.0, 177152.0], None),
    ("float16", [11.0, 132.0, 1463.0, 16104.0, np.inf], [np.inf, 14640.0, 1331.0, 121.0, 11.0]),
])
def test_the_exact_narrow_dtype_claims_hold_for_fused_and_step_by_step_rounding(narrow, hidden, gradient):
    """Chapter 2's exact bfloat16 and float16 values are those of the closed form rounded once (a fused kernel)
    and of the computation rounded to nearest at every operation (step by step): the claim holds for both.
    (Stochastic rounding, which the envelope uses to size errors, is no arithmetic a kernel uses.)"""
    closed = chapter_2.exploding_values(5)
    step_by_step = stepwise.emulate(derive, narrow, "rnn_relu", chapter_2.ELEVENS, np.ones((5, 1, 1)))
    for name, run in [("rounded once", {key: round_to_dtype(value, narrow) for key, value in closed.items()}),
                      ("step by step", step_by_step)]:
        assert run["output"].flatten().tolist() == hidden, (narrow, name, run["output"].flatten())
        if gradient is not None:
            assert run["grad_input"].flatten().tolist() == gradient, (narrow, name, run["grad_input"].flatten())
