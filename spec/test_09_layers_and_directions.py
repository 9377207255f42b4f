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
pre-activation at least 0.04 from the kink (``rnnspec.runs.relu_kink_distance``; exact zeros,
from a unit whose inputs are exactly 0, are the same in every dtype), asserted below, with at
least a third of the outputs positive (not a dead network).

The reference computes layer l+1 from layer l's output and runs the reverse direction from step
L down to step 1 from its own h0; agreeing with it in output, h_n and every gradient is what says
that torch stacks and reverses as documented (a reverse direction that read time forwards, or a
second layer that read the input, moves output and h_n far outside every tolerance).

Structural laws, between torch runs (exact on CPU, where each holds bitwise; elsewhere within
twice the row, since two results each within the row of the truth can differ by that much): the
last layer's h_n is the output at each direction's last step (step L for the forward direction,
step 1 for the reverse one); batch_first is the transpose of the sequence-first run, in every
value and gradient (bitwise on CPU in float64 and float32; in bfloat16 and float16 the CPU
kernels round the transposed input's projections differently, and the two agree within twice
the row); and the defaults: an unbatched run without h0 and with bias=False is, bitwise, a
batch of one from zero states with zero biases.
"""

import functools

import numpy as np
import pytest

from rnnspec.comparison import Tolerance, Truth, assert_agrees, magnitude
from rnnspec.numpy_reference import KINDS
from rnnspec.runs import derive, frozen, measure, memoised, random_array, random_parameters, relu_kink_distance

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


def configuration(kind: str, layout: str, seed: int | None = None) -> dict:
    """The keyword arguments of one run: parameters, input, initial state, upstream gradients, options."""
    options, steps, batch, hidden, bias, given_state = LAYOUTS[layout]
    seed = SEEDS[kind, layout] if seed is None else seed
    D = 2 if options.get("bidirectional") else 1
    states = D * options["num_layers"]
    lead = (steps,) if batch is None else ((batch, steps) if options.get("batch_first") else (steps, batch))
    state_shape = (states, hidden) if batch is None else (states, batch, hidden)
    config = dict(options, parameters=random_parameters(kind, INPUT, hidden, seed=seed, bias=bias, **options),
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


def seq_first(config: dict) -> dict:
    """The same run with batch_first=False: input and upstream output gradient transposed to (L, N, ·)."""
    swap = lambda a: np.swapaxes(a, 0, 1)  # noqa: E731
    return dict(config, batch_first=False, x=swap(config["x"]), grad_output=swap(config["grad_output"]))


def defaults_spelled_out(kind: str, config: dict) -> dict:
    """The unbatched, h0-less, bias-free run as a batch of one, from explicit zero states, with zero biases."""
    batch_of_one = {name: value[..., None, :] if name in ("grad_h_n", "grad_c_n") else value[:, None, :]
                    for name, value in config.items() if name in ("x", "grad_output", "grad_h_n", "grad_c_n")}
    states = config["grad_h_n"].shape[:1] + (1,) + config["grad_h_n"].shape[1:]
    zero_states = {"h0": np.zeros(states), **({"c0": np.zeros(states)} if kind == "lstm" else {})}
    parameters = dict(config["parameters"])
    for name, weight in config["parameters"].items():
        parameters[name.replace("weight", "bias")] = np.zeros(weight.shape[0])
    return dict(config, **batch_of_one, **zero_states, parameters=parameters)


@memoised
def run(kind: str, layout: str, device: str, dtype: str) -> dict:
    return measure(kind, **configuration(kind, layout), device=device, dtype=dtype)


@memoised
def run_variant(kind: str, variant: str, device: str, dtype: str) -> dict:
    """A torch run derived from a configuration, for the structural laws."""
    if variant == "seq-first":
        return measure(kind, **seq_first(configuration(kind, BIDIR)), device=device, dtype=dtype)
    if variant == "defaults spelled out":
        return measure(kind, **defaults_spelled_out(kind, configuration(kind, UNBATCHED)), device=device, dtype=dtype)
    raise ValueError(variant)


@functools.cache
def layer_truth(kind: str, layout: str) -> Truth:
    return Truth(behaviour=f"{NAMES[kind]} {layout.replace('-', ' ')}",
                 law="layer l+1 reads layer l's output; reverse reads time backwards; h_n layer-major, direction-minor",
                 values=frozen(derive(kind, **configuration(kind, layout))))


TRUTHS = {f"{kind}_{layout.replace('-', '_')}": (lambda kind=kind, layout=layout: layer_truth(kind, layout))
          for kind in KINDS for layout in LAYOUTS}


def assert_same_run(actual, expected, device: str, dtype: str, tolerance, *, exact: bool, behaviour: str, what: str,
                    witness: str, config: str, law: str) -> None:
    """Bitwise where ``exact``, else within twice the row (two results, each within the row of the truth)."""
    __tracebackhide__ = True
    allowed = Tolerance.exact(dtype, "the same arithmetic in both runs on CPU") if exact else \
        tolerance.scaled(2, "two results, each within the row of the truth").normwise(magnitude(expected))
    assert_agrees(actual, expected, allowed, behaviour=behaviour, what=what, witness=witness, config=config, law=law)


@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("kind", KINDS)
def test_layer_matches_the_reference(kind, layout, device, dtype, spec_check):
    """Output, h_n, c_n and the gradients of input, h0, c0 and every parameter match the reference."""
    spec_check(run(kind, layout, device, dtype), f"{kind}_{layout.replace('-', '_')}")


@pytest.mark.parametrize("layout", LAYOUTS)
def test_relu_configurations_keep_every_pre_activation_off_the_kink(layout):
    """Every relu pre-activation (reference, float64) is 0 exactly or at least 0.04 from it: relu' is defined by rounding."""
    config = configuration("rnn_relu", layout)
    distance = relu_kink_distance(**config)
    assert distance >= RELU_MARGIN, (
        f"RNN(relu) {layout}: a pre-activation lies {distance:.3g} from relu's kink at 0, closer than {RELU_MARGIN}; "
        f"a narrow dtype may round it to the other side and move a gradient by a whole term: choose another seed")


@pytest.mark.parametrize("kind", KINDS)
def test_h_n_is_the_output_at_each_directions_last_step(kind, device, dtype):
    """Last layer: h_n[forward] is output[step L, :H] and h_n[reverse] is output[step 1, H:], bitwise."""
    measured = run(kind, BIDIR, device, dtype)
    output, h_n = measured["output"], measured["h_n"]  # output (N, L, 2H) under batch_first
    H = h_n.shape[-1]
    config = f"{device}-{dtype}-{kind}-{BIDIR}"
    for direction, (index, step, features) in {"forward": (-2, -1, slice(0, H)), "reverse": (-1, 0, slice(H, 2 * H))}.items():
        assert np.array_equal(h_n[index], output[:, step, features]), (
            f"{NAMES[kind]} h_n [{config}]: the last layer's {direction} h_n {h_n[index].tolist()} is not "
            f"output[step {'L' if step else 1}, {'H:' if step == 0 else ':H'}] {output[:, step, features].tolist()}\n"
            f"  law: h_n[l*D + d] is direction d's last state; the reverse direction ends at step 1")


@pytest.mark.parametrize("kind", KINDS)
def test_batch_first_is_the_seq_first_run_transposed(kind, device, dtype, tolerance):
    """output and ∂input are transposed, h_n, c_n and every other gradient identical (bitwise on CPU in float64/32)."""
    batch_first, seq = run(kind, BIDIR, device, dtype), run_variant(kind, "seq-first", device, dtype)
    for key, value in seq.items():
        assert_same_run(batch_first[key], np.swapaxes(value, 0, 1) if key in TIME_AXIS else value, device, dtype,
                        tolerance, exact=device == "cpu" and dtype in ("float64", "float32"),
                        behaviour=f"{NAMES[kind]} batch_first", what=key, witness="the seq-first run, transposed",
                        config=f"{device}-{dtype}-{kind}-{BIDIR}",
                        law="batch_first swaps the first two axes of input and output only")


DEFAULTS = "an omitted h0 (c0) is zeros; unbatched (L, H_in) input is a batch of one; bias=False is biases fixed at 0"


@pytest.mark.parametrize("kind", KINDS)
def test_unbatched_stateless_bias_free_run_equals_its_defaults_spelled_out(kind, device, dtype, tolerance):
    """Unbatched, no h0, bias=False equals a batch of one from zero states with zero biases, in every value and gradient."""
    implicit, explicit = run(kind, UNBATCHED, device, dtype), run_variant(kind, "defaults spelled out", device, dtype)
    assert not {"grad_h0", "grad_bias_ih_l0"} & set(implicit), f"{kind} {UNBATCHED}: a state or bias was given"
    for key, value in implicit.items():
        expected = explicit[key][..., 0, :] if key in ("h_n", "c_n", "output", "grad_input") else explicit[key]
        assert_same_run(value, expected, device, dtype, tolerance, exact=device == "cpu",
                        behaviour=f"{NAMES[kind]} defaults", what=key,
                        witness="a batch of one from explicit zero states with zero biases",
                        config=f"{device}-{dtype}-{kind}-{UNBATCHED}", law=DEFAULTS)
