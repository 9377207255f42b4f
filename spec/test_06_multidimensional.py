r"""Chapter 6. More dimensions: the same recurrence with matrices.

The notebook's "Augmentons la dimensionalité": ``nn.RNN(2, 3)`` (tanh), input size 2, hidden
size 3, on x = [[[1, 2]], [[2, 3]]] (L = 2 steps, batch N = 1, 2 features). Now
:math:`W_{ih}` is 3×2, :math:`W_{hh}` 3×3 and the biases have 3 entries:

$$ h_t = \tanh(W_{ih} x_t + b_{ih} + W_{hh} h_{t-1} + b_{hh}) \in \mathbb{R}^3 . $$

Shapes (sequence-first layout): output is (L, N, H) = (2, 1, 3), one hidden state per step;
h_n is (num_layers, N, H) = (1, 1, 3) and equals output[-1].

Values. The notebook's weights were PyTorch's random initialisation, printed rounded to 4
decimals; the spec stores those printed values (``NOTEBOOK_WEIGHTS``) rather than relying on a
seed, since PyTorch promises no stable random stream across releases. With them, step 1 is
:math:`h_1 = \tanh(W_{ih}[1, 2]^T + b_{ih} + b_{hh})` = [0.2179, 0.2392, 0.7639] and step 2
[0.5607, 0.0734, 0.7474], each within 2e-4 of the notebook's printed outputs, [0.2178, 0.2392,
0.7638] and [0.5607, 0.0734, 0.7473] (the printed weights were rounded by up to 5e-5, and the
error passes through the two steps). The exact values for the stored weights come from the NumPy
reference, as do the gradients of h_n (upstream ones).

:configuration: 0.2178, 0.7638, 0.7473 (the notebook's printed outputs); 2e-4 (how far the truth
    for the printed weights may lie from them)
:derived: 5e-5 = 0.5 * 10**-4
"""

import numpy as np
import pytest

from rnnspec import authority
from rnnspec.comparison import assert_agrees, magnitude
from rnnspec.records import Record

NOTEBOOK_WEIGHTS = {
    "weight_ih_l0": np.array([[0.2224, -0.1436], [-0.4591, -0.0053], [-0.2355, 0.2791]]),
    "weight_hh_l0": np.array([[-0.2226, -0.1108, 0.5350], [0.1088, 0.2017, 0.2907], [0.5027, -0.3554, -0.1394]]),
    "bias_ih_l0": np.array([0.5437, 0.3929, 0.1203]),
    "bias_hh_l0": np.array([-0.2575, 0.3207, 0.5624]),
}
X = np.array([[[1.0, 2.0]], [[2.0, 3.0]]])
NOTEBOOK_OUTPUT = np.array([[[0.2178, 0.2392, 0.7638]], [[0.5607, 0.0734, 0.7473]]])
PRINTED_WEIGHTS_ERROR = 2e-4  # the notebook's own statement of how far its rounded weights reach


NOTEBOOK_WEIGHTS_RUN = Record(__name__, "rnn_2_to_3_notebook_weights", kind="rnn_tanh",
                              behaviour="RNN(2, 3) forward and gradients (notebook weights)",
                              law="h_t = tanh(W_ih x_t + b_ih + W_hh h_(t-1) + b_hh), W_ih 3x2, W_hh 3x3",
                              inputs=lambda: dict(parameters=NOTEBOOK_WEIGHTS, x=X))


def run(implementation, device, dtype):
    return NOTEBOOK_WEIGHTS_RUN.measured(implementation, device, dtype)


@pytest.mark.documented(authority.RNN)
def test_outputs_and_gradients_match_the_reference(device, dtype, spec_check):
    """Output, h_n and every gradient of RNN(2, 3) with the notebook's weights match the NumPy reference."""
    spec_check(NOTEBOOK_WEIGHTS_RUN)


@pytest.mark.documented(authority.RNN)
def test_output_is_L_N_H_and_h_n_is_layers_N_H(implementation, device, dtype):
    """output has shape (2, 1, 3), h_n (1, 1, 3), and h_n is bitwise output[-1]."""
    measured = run(implementation, device, dtype)
    shapes = (tuple(measured["output"].shape), tuple(measured["h_n"].shape))
    assert shapes == ((2, 1, 3), (1, 1, 3)), f"RNN(2, 3) [{device}-{dtype}]: shapes {shapes}, expected (2,1,3), (1,1,3)"
    assert (measured["h_n"][0] == measured["output"][-1]).all(), (
        f"RNN(2, 3) [{device}-{dtype}]: h_n {measured['h_n'].tolist()} ≠ output[-1] {measured['output'][-1].tolist()}")


@pytest.mark.derived("the documented recurrence on the notebook's weights, printed rounded to 4 decimals")
def test_outputs_reproduce_the_notebook_within_2e_4(implementation, device, dtype, tolerance):
    """[0.2178, 0.2392, 0.7638] and [0.5607, 0.0734, 0.7473] within 2e-4, plus the dtype's own (normwise) tolerance."""
    allowed = tolerance.normwise(magnitude(NOTEBOOK_OUTPUT)).plus_atol(
        PRINTED_WEIGHTS_ERROR, "the notebook printed its weights rounded to 4 decimals")
    assert_agrees(run(implementation, device, dtype)["output"], NOTEBOOK_OUTPUT, allowed, behaviour="RNN(2, 3) forward",
                  what="output", witness="the notebook's printed output", config=f"{device}-{dtype}",
                  law="h_t = tanh(W_ih x_t + b_ih + W_hh h_(t-1) + b_hh)")
