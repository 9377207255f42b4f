r"""Chapter 1. Forward values: what one recurrent step computes.

An Elman RNN (`torch.nn.RNN <https://pytorch.org/docs/stable/generated/torch.nn.RNN.html>`_) keeps a
hidden state :math:`h_t` and updates it once per input step:

$$ h_t = \phi(W_{ih} x_t + b_{ih} + W_{hh} h_{t-1} + b_{hh}), \qquad h_0 = 0 \text{ when omitted} $$

with :math:`\phi` = tanh (the default) or relu (``nonlinearity='relu'``). The layer returns
``output`` (every :math:`h_t`, shape (L, N, H)) and ``h_n`` (the last one, shape (1, N, H)).

The notebook's example: ``nn.RNN(1, 1, nonlinearity='relu')`` with every weight 0.5 and every
bias 0.

* One step of x = 1: :math:`h_1 = \max(0,\ 0.5 \cdot 1 + 0 + 0.5 \cdot 0 + 0) = 0.5`;
  output = [0.5], h_n = 0.5.
* Two steps of x = 1: :math:`h_2 = \max(0,\ 0.5 \cdot 1 + 0.5 \cdot 0.5) = 0.75`;
  output = [0.5, 0.75], h_n = 0.75 = output[-1].
* The relu clamps: x = (1, -3, 2, 0.5) gives h = (0.5, max(0, -1.5 + 0.25) = 0,
  max(0, 1 + 0) = 1, max(0, 0.25 + 0.5) = 0.75).

Every one of these numbers is a dyadic rational with a few bits, and so is every product and
partial sum on the way (0.5 · 1, 0.5 · 0.5, 1 + 0.25...): IEEE 754 arithmetic computes each
exactly in every dtype, in any order of summation, so the spec asserts exact equality on every
device and dtype, besides the recorded fixture. h_n is output[-1] bit for bit: the same state,
returned twice.

:derived: -1.5 = relu_rnn_relu_clamps.weight_ih_l0[0] * relu_rnn_relu_clamps.x[1]
"""

import numpy as np
import pytest

from rnnspec import authority
from rnnspec.records import Record
from rnnspec.inputs import constant_parameters

RELU_HALF = constant_parameters("rnn_relu", 1, 1, weight=0.5)
STEPS = {
    "one_step": [1.0],
    "two_steps": [1.0, 1.0],
    "relu_clamps": [1.0, -3.0, 2.0, 0.5],
}
HAND_DERIVED_OUTPUTS = {"one_step": [0.5], "two_steps": [0.5, 0.75], "relu_clamps": [0.5, 0.0, 1.0, 0.75]}

RECORDS = {
    case: Record(__name__, f"relu_rnn_{case}", kind="rnn_relu",
                 behaviour=f"relu RNN forward values ({case.replace('_', ' ')})",
                 law="h_t = relu(W_ih x_t + b_ih + W_hh h_{t-1} + b_hh), weights 0.5, biases 0, h_0 = 0",
                 inputs=lambda case=case: dict(parameters=RELU_HALF, x=np.array(STEPS[case]).reshape(-1, 1, 1)))
    for case in STEPS
}


@pytest.mark.documented(authority.RNN)
@pytest.mark.parametrize("case", list(STEPS))
def test_relu_rnn_forward_matches_the_recurrence(case, device, dtype, spec_check):
    """Output, h_n and every gradient of the relu RNN with weights 0.5 match the recurrence."""
    spec_check(RECORDS[case])


@pytest.mark.derived("dyadic values of a few bits: every product and partial sum is exact in every dtype, in any order")
@pytest.mark.parametrize("case", list(STEPS))
def test_relu_rnn_outputs_are_exactly_the_hand_derived_values(case, implementation, device, dtype):
    """0.5; then 0.5, 0.75; then 0.5, 0, 1, 0.75: exact in every dtype (dyadic numbers)."""
    output = RECORDS[case].measured(implementation, device, dtype)["output"]
    expected = HAND_DERIVED_OUTPUTS[case]
    assert output.flatten().tolist() == expected, (
        f"relu RNN forward [{device}-{dtype}, x={STEPS[case]}]: output {output.flatten().tolist()} "
        f"is not exactly {expected} (law: h_t = max(0, 0.5 x_t + 0.5 h_(t-1)))"
    )


@pytest.mark.documented(authority.RNN)
@pytest.mark.parametrize("case", list(STEPS))
def test_h_n_is_the_last_output_step(case, implementation, device, dtype):
    """h_n is bitwise output[-1], with shape (num_layers, N, H) = (1, 1, 1)."""
    measured = RECORDS[case].measured(implementation, device, dtype)
    shapes = (measured["output"].shape, measured["h_n"].shape)
    assert shapes == ((len(STEPS[case]), 1, 1), (1, 1, 1)), f"[{device}-{dtype}, {case}] shapes (output, h_n) = {shapes}"
    assert np.array_equal(measured["h_n"][0], measured["output"][-1]), (
        f"h_n ≠ output[-1] [{device}-{dtype}, {case}]: {measured['h_n'].flatten()} vs {measured['output'][-1].flatten()}"
    )
