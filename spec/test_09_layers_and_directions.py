r"""Chapter 9. Stacking and layout: layers, directions, batch_first, unbatched input, bias, initial state.

Every recurrent layer (`nn.RNN <https://pytorch.org/docs/stable/generated/torch.nn.RNN.html>`_,
``nn.LSTM``, ``nn.GRU``) takes the same layout options. With D = 2 if ``bidirectional`` else 1,
:math:`H_{out}` the hidden size (the projection size for an LSTM with ``proj_size``, chapter 10):

* **num_layers.** Layer 1 reads the input; layer l+1 reads layer l's output sequence (both
  directions concatenated). Layer l has parameters ``weight_ih_l{l}``, ``weight_hh_l{l}``,
  ``bias_ih_l{l}``, ``bias_hh_l{l}``, with ``weight_ih_l{l}`` of shape :math:`(G H, D H_{out})`
  for l ≥ 1.
* **bidirectional.** Each layer also runs a reverse direction (parameters ``…_l{l}_reverse``)
  that reads time backwards, from step L to step 1, from its own initial state:

  $$ \overleftarrow{h}_t = \mathrm{cell}(x_t, \overleftarrow{h}_{t+1}), \qquad
     \text{output}[t] = [\overrightarrow{h}_t,\ \overleftarrow{h}_t] \in \mathbb{R}^{2 H_{out}}. $$

  So the forward direction's last state sits at output[L−1, :, :H] and the reverse direction's
  last state at output[0, :, H:].
* **h_n, c_n** stack the last states of every layer and direction, layer-major and
  direction-minor: index :math:`l \cdot D + d`, shape :math:`(D \cdot \text{num\_layers}, N, H_{out})`.
  ``h0`` / ``c0`` use the same order; omitted, they are zeros.
* **batch_first=True** swaps the first two axes of input and output only: (N, L, ·) instead of
  (L, N, ·). h0, h_n, c0, c_n keep (D·num_layers, N, ·).
* **Unbatched input** is 2-D (L, H_in); output is (L, D·H_out), h0 / h_n are (D·num_layers, H_out):
  a batch of one with the batch axis removed.
* **bias=False** removes ``bias_ih_*`` and ``bias_hh_*``: the same as biases fixed at 0.

Values. Two configurations per kind of layer (tanh RNN, relu RNN, LSTM, GRU), weights drawn from
:math:`[-1/\sqrt H, 1/\sqrt H]` by a seeded NumPy generator, seeded inputs and upstream
gradients on output, h_n (and c_n): ``2layers-bidir-batchfirst-h0`` (L = 4, N = 3, input 2,
hidden 3, a non-zero h0 and c0 whose gradients are checked: the classes of PyTorch bugs with
batch and time swapped under batch_first, wrong bidirectional outputs and a multi-layer backward
that mishandled a non-zero h0) and ``3layers-unbatched-nobias`` (L = 3, input 2, hidden 2, no h0).
Each is checked against the NumPy reference in every output and gradient.

Seeds. Each configuration's seed is the first (in steps of 10) whose CPU run lies within half the
row of the truth in every dtype, a margin for other devices' summation orders. A relu RNN needs
one more condition: relu' jumps from 0 to 1 at 0, so a pre-activation within rounding distance of
0 may land on either side in a narrow dtype and move a gradient by a whole term (one seed tried
here moved float16's ∂input by 18 %). The relu configurations keep every non-zero
pre-activation at least 0.04 from the kink (``rnnspec.numpy_reference.relu_kink_distance``; exact zeros,
from a unit whose inputs are exactly 0, are the same in every dtype; ``selftest/test_case_design.py`` checks it), with at
least a third of the outputs positive (not a dead network).

The reference computes layer l+1 from layer l's output and runs the reverse direction from step
L down to step 1 from its own h0; agreeing with it in output, h_n and every gradient is what says
that torch stacks and reverses as documented (a reverse direction that read time forwards, or a
second layer that read the input, moves output and h_n far outside every tolerance).

Structural laws. Within one run, exactly: the last layer's h_n is the output at each direction's
last step (step L for the forward direction, step 1 for the reverse one), bit for bit, because it
is the same state returned in two places, with no arithmetic between them. Between two torch
runs, within the sum of the two runs' tolerances (two results each within its tolerance of the
truth can differ by that much; bitwise equality between two code paths is promised nowhere: on an
AMD EPYC, MKL puts a float64 LSTM's batch_first output 3.8e-17 away from the sequence-first run,
transposed): batch_first is the transpose of the sequence-first run, in every value and gradient;
and the defaults: an unbatched run without h0 and with bias=False is a batch of one from zero
states with zero biases.

:configuration: 3.8e-17 (observed: MKL on an AMD EPYC, torch 2.13.0)
"""

import numpy as np
import pytest

from rnnspec import authority
from rnnspec.comparison import assert_agrees
from rnnspec.kinds import RECURRENCES
from rnnspec.records import Case, Record
from rnnspec.inputs import random_array, random_parameters

NAMES = {"rnn_tanh": "RNN(tanh)", "rnn_relu": "RNN(relu)", "lstm": "LSTM", "gru": "GRU"}
INPUT = 2
LAYOUTS = {  # name -> (options, steps, batch (None: unbatched), hidden, bias, initial state given)
    "2layers-bidir-batchfirst-h0": (dict(num_layers=2, bidirectional=True, batch_first=True), 4, 3, 3, True, True),
    "3layers-unbatched-nobias": (dict(num_layers=3), 3, None, 2, False, False),
}
BIDIR, UNBATCHED = list(LAYOUTS)
#: Each configuration's seed (its arrays use seed … seed + 6): the first multiple of 10 whose run on CPU
#: stays within half the row of the truth in every dtype (a margin for other devices' summation orders)
#: and, for relu, whose pre-activations keep RELU_MARGIN from the kink with at least a third of the
#: outputs positive (not a dead network).
SEEDS = {("rnn_tanh", BIDIR): 50, ("rnn_tanh", UNBATCHED): 20, ("rnn_relu", BIDIR): 3700, ("rnn_relu", UNBATCHED): 1400,
         ("lstm", BIDIR): 0, ("lstm", UNBATCHED): 0, ("gru", BIDIR): 0, ("gru", UNBATCHED): 0}
RELU_MARGIN = 0.04
TIME_AXIS = {"output", "grad_input"}  # the tensors batch_first transposes
LAW = "layer l+1 reads layer l's output; reverse reads time backwards; h_n layer-major, direction-minor"


def arrays(kind: str, layout: str, seed: int | None = None) -> dict:
    """The arrays of one run: parameters, input, initial state, upstream gradients."""
    options, steps, batch, hidden, bias, given_state = LAYOUTS[layout]
    seed = SEEDS[kind, layout] if seed is None else seed
    D = 2 if options.get("bidirectional") else 1
    states = D * options["num_layers"]
    lead = (steps,) if batch is None else ((batch, steps) if options.get("batch_first") else (steps, batch))
    state_shape = (states, hidden) if batch is None else (states, batch, hidden)
    config = dict(parameters=random_parameters(kind, INPUT, hidden, seed=seed, bias=bias, **options),
                  x=random_array(lead + (INPUT,), seed=seed + 1),
                  grad_output=random_array(lead + (D * hidden,), seed=seed + 2),
                  grad_h_n=random_array(state_shape, seed=seed + 3))
    if given_state:
        config["h0"] = random_array(state_shape, seed=seed + 4)
    if kind == "lstm":
        config["grad_c_n"] = random_array(state_shape, seed=seed + 5)
        if given_state:
            config["c0"] = random_array(state_shape, seed=seed + 6)
    return config


RECORDS = {(kind, layout): Record(__name__, f"{kind}_{layout.replace('-', '_')}", kind=kind,
                                  behaviour=f"{NAMES[kind]} {layout.replace('-', ' ')}", law=LAW,
                                  inputs=lambda kind=kind, layout=layout: arrays(kind, layout),
                                  options=LAYOUTS[layout][0])
           for kind in RECURRENCES for layout in LAYOUTS}


def configuration(kind: str, layout: str) -> dict:
    return RECORDS[kind, layout].configuration()


def seq_first(arrays: dict) -> dict:
    """The arrays of the same run with batch_first=False: input and upstream output gradient transposed to (L, N, ·)."""
    swap = lambda a: np.swapaxes(a, 0, 1)  # noqa: E731
    return dict(arrays, x=swap(arrays["x"]), grad_output=swap(arrays["grad_output"]))


def defaults_spelled_out(kind: str, arrays: dict) -> dict:
    """The unbatched, h0-less, bias-free run's arrays as a batch of one, explicit zero states, zero biases."""
    batch_of_one = {name: value[..., None, :] if name in ("grad_h_n", "grad_c_n") else value[:, None, :]
                    for name, value in arrays.items() if name in ("x", "grad_output", "grad_h_n", "grad_c_n")}
    states = arrays["grad_h_n"].shape[:1] + (1,) + arrays["grad_h_n"].shape[1:]
    zero_states = {"h0": np.zeros(states), **({"c0": np.zeros(states)} if kind == "lstm" else {})}
    parameters = dict(arrays["parameters"])
    for name, weight in arrays["parameters"].items():
        parameters[name.replace("weight", "bias")] = np.zeros(weight.shape[0])
    return dict(arrays, **batch_of_one, **zero_states, parameters=parameters)


def variant(kind: str, name: str) -> Case:
    """A run derived from a record's configuration, for the structural laws."""
    return VARIANTS[kind, name]


def _variant_case(kind: str, name: str) -> Case:
    if name == "seq-first":
        record, spell, options = RECORDS[kind, BIDIR], seq_first, {**LAYOUTS[BIDIR][0], "batch_first": False}
    else:
        record, spell, options = RECORDS[kind, UNBATCHED], lambda a: defaults_spelled_out(kind, a), LAYOUTS[UNBATCHED][0]
    arrays = lambda: spell({k: v for k, v in record.configuration().items() if k not in record.options})  # noqa: E731
    return Case(kind=kind, behaviour=f"{record.behaviour} ({name})", law=record.law, inputs=arrays, options=options)


VARIANTS = {(kind, name): _variant_case(kind, name) for kind in RECURRENCES for name in ("seq-first", "defaults spelled out")}


def run(implementation, kind: str, layout: str, device: str, dtype: str) -> dict:
    return RECORDS[kind, layout].measured(implementation, device, dtype)


@pytest.mark.documented(authority.LAYERS)
@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("kind", RECURRENCES)
def test_layer_matches_the_reference(kind, layout, device, dtype, spec_check):
    """Output, h_n, c_n and the gradients of input, h0, c0 and every parameter match the reference."""
    spec_check(RECORDS[kind, layout])


@pytest.mark.documented(authority.LAYERS)
@pytest.mark.parametrize("kind", RECURRENCES)
def test_h_n_is_the_output_at_each_directions_last_step(kind, implementation, device, dtype):
    """Last layer: h_n[forward] is output[step L, :H] and h_n[reverse] is output[step 1, H:], bitwise (one state)."""
    measured = run(implementation, kind, BIDIR, device, dtype)
    output, h_n = measured["output"], measured["h_n"]  # output (N, L, 2H) under batch_first
    H = h_n.shape[-1]
    config = f"{device}-{dtype}-{kind}-{BIDIR}"
    for direction, (index, step, features) in {"forward": (-2, -1, slice(0, H)), "reverse": (-1, 0, slice(H, 2 * H))}.items():
        assert np.array_equal(h_n[index], output[:, step, features]), (
            f"{NAMES[kind]} h_n [{config}]: the last layer's {direction} h_n {h_n[index].tolist()} is not "
            f"output[step {'L' if step else 1}, {'H:' if step == 0 else ':H'}] {output[:, step, features].tolist()}\n"
            f"  law: h_n[l*D + d] is direction d's last state; the reverse direction ends at step 1")


def assert_same_run(record: Case, actual: dict, other: Case, expected: dict, key: str, tolerance, *, transform,
                    behaviour: str, witness: str, config: str, law: str) -> None:
    """``actual[key]`` against ``transform(expected[key])``: each run within its tolerance of its truth, so the two
    within the sum (bitwise equality between two code paths is promised nowhere)."""
    __tracebackhide__ = True
    mine, theirs = actual[key], transform(expected[key])
    allowed = record.tolerance(key, tolerance, mine).plus(other.tolerance(key, tolerance, expected[key]),
                                                          "two runs, each within its tolerance of the truth")
    assert_agrees(mine, theirs, allowed, behaviour=behaviour, what=key, witness=witness, config=config, law=law)


@pytest.mark.documented(authority.LAYERS)
@pytest.mark.parametrize("kind", RECURRENCES)
def test_batch_first_is_the_seq_first_run_transposed(kind, implementation, device, dtype, tolerance):
    """output and ∂input are transposed, h_n, c_n and every other gradient the same, within the tolerance."""
    record, seq = RECORDS[kind, BIDIR], variant(kind, "seq-first")
    batch_first, seq_run = record.measured(implementation, device, dtype), seq.measured(implementation, device, dtype)
    for key in seq_run:
        assert_same_run(record, batch_first, seq, seq_run, key, tolerance,
                        transform=(lambda a: np.swapaxes(a, 0, 1)) if key in TIME_AXIS else (lambda a: a),
                        behaviour=f"{NAMES[kind]} batch_first", witness="the seq-first run, transposed",
                        config=f"{device}-{dtype}-{kind}-{BIDIR}",
                        law="batch_first swaps the first two axes of input and output only")


DEFAULTS = "an omitted h0 (c0) is zeros; unbatched (L, H_in) input is a batch of one; bias=False is biases fixed at 0"


@pytest.mark.documented(authority.LAYERS)
@pytest.mark.parametrize("kind", RECURRENCES)
def test_unbatched_stateless_bias_free_run_equals_its_defaults_spelled_out(kind, implementation, device, dtype, tolerance):
    """Unbatched, no h0, bias=False equals a batch of one from zero states with zero biases, in every value and gradient."""
    record, spelled = RECORDS[kind, UNBATCHED], variant(kind, "defaults spelled out")
    implicit, explicit = record.measured(implementation, device, dtype), spelled.measured(implementation, device, dtype)
    assert not {"grad_h0", "grad_bias_ih_l0"} & set(implicit), f"{kind} {UNBATCHED}: a state or bias was given"
    for key in implicit:
        assert_same_run(record, implicit, spelled, explicit, key, tolerance,
                        transform=(lambda a: a[..., 0, :]) if key in ("h_n", "c_n", "output", "grad_input") else
                        (lambda a: a),
                        behaviour=f"{NAMES[kind]} defaults",
                        witness="a batch of one from explicit zero states with zero biases",
                        config=f"{device}-{dtype}-{kind}-{UNBATCHED}", law=DEFAULTS)
