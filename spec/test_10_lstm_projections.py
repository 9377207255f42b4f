r"""Chapter 10. LSTM projections: proj_size shrinks the hidden state, not the cell state.

`nn.LSTM(input_size, hidden_size, proj_size=P) <https://pytorch.org/docs/stable/generated/torch.nn.LSTM.html>`_
(0 < P < H) multiplies every hidden state by a learnt projection before it is emitted and fed
back (Sak et al., 2014, "LSTMP"):

$$ c_t = f_t \odot c_{t-1} + i_t \odot g_t \in \mathbb{R}^{H},\qquad
   h_t = W_{hr}\,\big(o_t \odot \tanh(c_t)\big) \in \mathbb{R}^{P}, $$

with the gates computed from :math:`h_{t-1} \in \mathbb{R}^P` as usual. Hence the shapes:

* ``weight_hr_l{k}`` (one per layer and direction) is (P, H);
* ``weight_hh_l{k}`` is (4H, P): the recurrence reads the projected state;
* ``weight_ih_l{k}`` for k ≥ 1 is (4H, D·P): the next layer reads the projected output;
* output is (L, N, D·P), h0 and h_n are (D·num_layers, N, P), c0 and c_n stay (D·num_layers, N, H).

Values. One configuration, ``2layers-bidir-h0c0``: input 2, hidden 4, projection 2, two layers,
both directions, L = 3, N = 2, weights from :math:`[-1/2, 1/2]` (±1/√H) by a seeded NumPy
generator, a non-zero h0 (P features) and c0 (H features), seeded upstream gradients on output,
h_n and c_n. Output, h_n, c_n and the gradients of input, h0, c0 and every parameter
(``weight_hr`` included) are checked against the NumPy reference, which applies
:math:`W_{hr}` exactly as above and backpropagates through it
(:math:`\delta m = W_{hr}^\top \delta h`, :math:`\delta W_{hr} \mathrel{+}= \delta h\, m^\top`).
The last layer's h_n is the projected output at each direction's last step, bit for bit: the same
state, returned in two places.

On CPU, float32 and bfloat16 LSTMs normally run oneDNN; with projections torch falls back to its
default implementation and warns once per process ("LSTM with projections is not supported with
oneDNN"). The warning is expected here and filtered; the values are the same specification.

:configuration: 2014 (the paper's year)
"""

import numpy as np
import pytest

from rnnspec import authority
from rnnspec.records import Record
from rnnspec.inputs import random_array, random_parameters

pytestmark = pytest.mark.filterwarnings("ignore:LSTM with projections is not supported with oneDNN:UserWarning")

INPUT, HIDDEN, PROJ, LAYERS, STEPS, BATCH = 2, 4, 2, 2, 3, 2
D = 2
OPTIONS = dict(num_layers=LAYERS, bidirectional=True, proj_size=PROJ)
STATES = D * LAYERS
LAW = "c_t = f c_(t-1) + i g (H features); h_t = W_hr (o tanh c_t) (P features), fed back and to the next layer"
EXPECTED_SHAPES = {
    "output": (STEPS, BATCH, D * PROJ), "h_n": (STATES, BATCH, PROJ), "c_n": (STATES, BATCH, HIDDEN),
    "grad_h0": (STATES, BATCH, PROJ), "grad_c0": (STATES, BATCH, HIDDEN),
    **{f"grad_weight_hr_l{layer}{suffix}": (PROJ, HIDDEN) for layer in range(LAYERS) for suffix in ("", "_reverse")},
    **{f"grad_weight_hh_l{layer}{suffix}": (4 * HIDDEN, PROJ) for layer in range(LAYERS) for suffix in ("", "_reverse")},
    "grad_weight_ih_l1": (4 * HIDDEN, D * PROJ), "grad_weight_ih_l1_reverse": (4 * HIDDEN, D * PROJ),
}

PROJECTED = Record(
    __name__, "lstm_proj_2layers_bidir_h0c0", kind="lstm", law=LAW, options=OPTIONS,
    behaviour="LSTM projection (proj_size 2, hidden 4, 2 layers, bidirectional)",
    inputs=lambda: dict(parameters=random_parameters("lstm", INPUT, HIDDEN, seed=1000, **OPTIONS),
                        x=random_array((STEPS, BATCH, INPUT), seed=1001),
                        h0=random_array((STATES, BATCH, PROJ), seed=1002),
                        c0=random_array((STATES, BATCH, HIDDEN), seed=1003),
                        grad_output=random_array((STEPS, BATCH, D * PROJ), seed=1004),
                        grad_h_n=random_array((STATES, BATCH, PROJ), seed=1005),
                        grad_c_n=random_array((STATES, BATCH, HIDDEN), seed=1006)))


def run(implementation, device: str, dtype: str) -> dict:
    return PROJECTED.measured(implementation, device, dtype)


@pytest.mark.documented(authority.LSTM)
def test_projected_lstm_matches_the_reference(device, dtype, spec_check):
    """Output, h_n, c_n and the gradients of input, h0, c0 and every parameter, weight_hr included."""
    spec_check(PROJECTED)


@pytest.mark.documented(authority.LSTM)
def test_output_and_h_n_have_proj_size_features_and_c_n_hidden_size(implementation, device, dtype):
    """output (3, 2, 2·2), h_n (4, 2, 2), c_n (4, 2, 4); weight_hr (2, 4), weight_hh (16, 2), weight_ih_l1 (16, 4)."""
    measured = run(implementation, device, dtype)
    shapes = {key: measured[key].shape for key in EXPECTED_SHAPES}
    wrong = {key: (shape, EXPECTED_SHAPES[key]) for key, shape in shapes.items() if shape != EXPECTED_SHAPES[key]}
    assert not wrong, (f"LSTM projection shapes [{device}-{dtype}-2layers-bidir-h0c0]: (got, expected) {wrong}\n"
                       f"  law: output and h carry proj_size = {PROJ} features, c carries hidden_size = {HIDDEN}")


@pytest.mark.documented(authority.LSTM)
def test_h_n_is_the_projected_output_at_each_directions_last_step(implementation, device, dtype):
    """h_n[last layer, forward] is output[step L, :P] and h_n[last layer, reverse] is output[step 1, P:], bitwise."""
    measured = run(implementation, device, dtype)
    output, h_n = measured["output"], measured["h_n"]
    assert np.array_equal(h_n[-2], output[-1, :, :PROJ]) and np.array_equal(h_n[-1], output[0, :, PROJ:]), (
        f"LSTM projection [{device}-{dtype}-2layers-bidir-h0c0]: h_n {h_n[-2:].tolist()} is not the projected "
        f"output at each direction's last step {output[-1, :, :PROJ].tolist()}, {output[0, :, PROJ:].tolist()}")
