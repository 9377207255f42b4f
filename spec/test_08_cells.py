r"""Chapter 8. Cells: one step of the recurrence, and a loop of cells is the layer.

`nn.RNNCell <https://pytorch.org/docs/stable/generated/torch.nn.RNNCell.html>`_,
`nn.LSTMCell <https://pytorch.org/docs/stable/generated/torch.nn.LSTMCell.html>`_ and
`nn.GRUCell <https://pytorch.org/docs/stable/generated/torch.nn.GRUCell.html>`_ compute a single
step: given :math:`x` of shape (N, H_in) and the state :math:`h` (and :math:`c`) of shape (N, H),
they return the next state, nothing else. The one-step formulas (weights ``weight_ih`` (G·H, H_in),
``weight_hh`` (G·H, H), biases ``bias_ih``, ``bias_hh`` (G·H), gate blocks stacked by rows):

$$ \text{RNNCell:}\quad h' = \phi(W_{ih} x + b_{ih} + W_{hh} h + b_{hh}),\qquad \phi = \tanh \text{ or relu}, $$
$$ \text{LSTMCell:}\quad (i, f, g, o) = (\sigma, \sigma, \tanh, \sigma)(W_{ih} x + b_{ih} + W_{hh} h + b_{hh}),\quad
   c' = f \odot c + i \odot g,\quad h' = o \odot \tanh c', $$
$$ \text{GRUCell:}\quad (r, z) = \sigma(\ldots),\quad n = \tanh\big(W_{in} x + b_{in} + r \odot (W_{hn} h + b_{hn})\big),\quad
   h' = (1 - z) \odot n + z \odot h. $$

The cell's parameters are the layer's without the suffix: ``weight_ih`` is ``nn.LSTM``'s
``weight_ih_l0``. A missing state is zeros.

**A loop of cells is the layer.** Calling the cell once per step, each time with the state it
returned, computes exactly the one-layer, one-direction layer's recurrence: output is the stack of
the states, :math:`h_n` the last state (:math:`c_n` the last cell state). So with the same weights
the loop and the layer agree in every forward value and every gradient (input, initial state,
each parameter: autograd through the loop is backpropagation through time). They are separate
implementations (the layer runs whole-sequence kernels: oneDNN for the CPU LSTM in float32 and
bfloat16, cuDNN on CUDA; the loop runs the cell's kernel step by step, rounding every step's state
to the dtype), so they are
compared under tolerance, not bitwise: two results each within their tolerance of the truth (the
row, or in bfloat16 and float16 its step-by-step envelope) lie within the sum of the two of each
other.

The configurations: every kind, input size 2, hidden size 3, batch 2, weights drawn from
:math:`[-1/\sqrt3, 1/\sqrt3]` by a seeded NumPy generator, a non-zero initial state (and cell
state) and seeded upstream gradients on every output. One step is recorded and checked against
the NumPy reference with all gradients; the three-step loop is checked against the layer.
"""

import pytest

from rnnspec import authority
from rnnspec.comparison import assert_agrees
from rnnspec.kinds import RECURRENCES
from rnnspec.records import Case, Record
from rnnspec.inputs import random_array, random_parameters
from rnnspec.measure import measure, measure_cell_loop

CELL_NAMES = {"rnn_tanh": "RNNCell(tanh)", "rnn_relu": "RNNCell(relu)", "lstm": "LSTMCell", "gru": "GRUCell"}
LAYER_NAMES = {"rnn_tanh": "RNN(tanh)", "rnn_relu": "RNN(relu)", "lstm": "LSTM", "gru": "GRU"}
STEPS, BATCH, INPUT, HIDDEN = 3, 2, 2, 3


def configuration(kind: str, steps: int) -> dict:
    """The run of ``kind`` over the first ``steps`` of one seeded sequence, from a non-zero state."""
    seed = 10 * RECURRENCES.index(kind)
    state = (1, BATCH, HIDDEN)
    config = dict(parameters=random_parameters(kind, INPUT, HIDDEN, seed=seed),
                  x=random_array((STEPS, BATCH, INPUT), seed=seed + 1)[:steps],
                  h0=random_array(state, seed=seed + 2, scale=0.5),
                  grad_h_n=random_array(state, seed=seed + 3),
                  grad_output=random_array((STEPS, BATCH, HIDDEN), seed=seed + 4)[:steps])
    if kind == "lstm":
        config.update(c0=random_array(state, seed=seed + 5, scale=0.5), grad_c_n=random_array(state, seed=seed + 6))
    return config


ONE_STEP = {kind: Record(__name__, f"{kind}_cell_one_step", kind=kind, behaviour=f"{CELL_NAMES[kind]} one step",
                         law=f"one step of the documented {LAYER_NAMES[kind]} recurrence from a non-zero state",
                         inputs=lambda kind=kind: configuration(kind, 1), measure=measure_cell_loop)
            for kind in RECURRENCES}


#: Three steps, as a loop of cells and as the layer: the same computation two ways.
THREE_STEPS = {
    (kind, cell): Case(kind=kind, behaviour=f"{CELL_NAMES[kind]} loop equals {LAYER_NAMES[kind]}",
                       law="h_t = cell(x_t, h_(t-1)); output = stack(h_t), h_n = h_L; gradients by BPTT through the loop",
                       inputs=lambda kind=kind: configuration(kind, STEPS),
                       measure=measure_cell_loop if cell else measure)
    for kind in RECURRENCES for cell in (True, False)
}


@pytest.mark.documented(authority.CELLS)
@pytest.mark.parametrize("kind", RECURRENCES)
def test_one_cell_step_matches_the_one_step_formula(kind, device, dtype, spec_check):
    """h' (and c') of one call, and the gradients of x, h, c and every parameter, are the formula's."""
    spec_check(ONE_STEP[kind])


@pytest.mark.derived("the documented layer is the documented cell iterated; two runs within their tolerances of one truth")
@pytest.mark.parametrize("kind", RECURRENCES)
def test_loop_of_cells_equals_the_layer_forward_and_backward(kind, implementation, device, dtype, tolerance):
    """Three cell calls carrying the state give the layer's output, h_n, c_n and every gradient."""
    loop, layer = THREE_STEPS[kind, True], THREE_STEPS[kind, False]
    looped, whole = loop.measured(implementation, device, dtype), layer.measured(implementation, device, dtype)
    assert sorted(looped) == sorted(whole), f"{CELL_NAMES[kind]} loop [{device}-{dtype}]: {sorted(looped)} vs {sorted(whole)}"
    truth = layer.truth()
    for key, expected in whole.items():
        assert_agrees(looped[key], expected, truth.between(key, tolerance, looped[key], expected),
                      behaviour=truth.behaviour, what=key,
                      witness=f"nn.{LAYER_NAMES[kind].split('(')[0]} with the same weights",
                      config=f"{device}-{dtype}-{kind}", law=truth.law)
