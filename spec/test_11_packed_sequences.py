r"""Chapter 11. Packed sequences: a batch of different lengths is each sequence run alone.

`pack_padded_sequence <https://pytorch.org/docs/stable/generated/torch.nn.utils.rnn.pack_padded_sequence.html>`_
turns a padded batch (L, N, H_in) and the true lengths :math:`\ell_b` into a ``PackedSequence``;
a recurrent layer given one advances sequence b only for :math:`t < \ell_b`, and
``pad_packed_sequence(..., total_length=L)`` pads the output back with zeros. So, for every b:

$$ \text{output}[t, b] = \begin{cases} \text{output of sequence } b \text{ run alone at step } t, & t < \ell_b \\
   0, & t \ge \ell_b \end{cases} $$

* the forward direction's h_n (and c_n) is the state at the **true last step** :math:`\ell_b - 1`,
  not at the padded end L − 1: h_n[forward, b] = output[:math:`\ell_b - 1`, b, :H];
* the reverse direction starts at :math:`\ell_b - 1` from h0 and ends at step 0:
  h_n[reverse, b] = output[0, b, H:];
* padded inputs take no part: their gradient is exactly 0, and a backward pass through the packed
  batch gives each sequence the gradients it gets alone (the parameter gradients are the sum over
  the sequences).

``enforce_sorted=True`` requires the lengths in decreasing order (it raises ``RuntimeError``
otherwise, naming ``enforce_sorted`` and the decreasing order; torch 2.13 says "`lengths` array
must be sorted in decreasing order when `enforce_sorted` is True");
``enforce_sorted=False`` sorts the batch internally and restores the caller's order in the output
and in h_n / c_n. Both compute the same thing: the sorted batch with ``enforce_sorted=True`` gives
the unsorted run's values and gradients, permuted.

The configurations: one per recurrent class (nn.RNN with tanh, nn.LSTM, nn.GRU; the relu RNN shares
nn.RNN's packing code and its values are chapter 9's), bidirectional, input 2, hidden 3, L = 5,
N = 3, unsorted lengths (3, 5, 2), seeded weights from :math:`[-1/\sqrt3, 1/\sqrt3]`, seeded inputs **also at padded
positions** (anything read from them would show), a non-zero h0 (c0), seeded upstream gradients
on output, h_n and c_n. (A real MPS bug computed packed sequences wrongly for batch > 1: the
batch here has three sequences of three lengths.) Each is checked against the NumPy reference
(``lengths=``), values and gradients; the structural laws compare torch with itself. Exactly
where no arithmetic lies between the two: h_n is the output at each sequence's true last step
(the same state, returned twice), and padded positions are 0 in the output (padding writes 0)
and in the input gradient (no path reaches them: a sum of products by 0). Between two runs
within the sum of their tolerances: each sequence against its run alone, the sorted batch
against the unsorted one, since a batch of three and a batch of one (or a reordered batch)
multiply matrices of other shapes and may round differently (they do in float32 on CPU, by 6e-8).

:configuration: 2.13 (the torch release whose message is quoted)
"""

import numpy as np
import pytest
import torch
from torch.nn.utils.rnn import pack_padded_sequence

from rnnspec import authority
from rnnspec.comparison import assert_agrees
from rnnspec.contracts import assert_raises
from rnnspec.devices import DTYPES
from rnnspec.records import Case, Record
from rnnspec.inputs import random_array, random_parameters

NAMES = {"rnn_tanh": "RNN(tanh)", "lstm": "LSTM", "gru": "GRU"}
#: The packed path of each recurrent class: nn.RNN (its relu mode shares the class and the packing
#: code with tanh, and chapter 9 covers its values), nn.LSTM, nn.GRU.
KINDS = tuple(NAMES)
INPUT, HIDDEN, STEPS = 2, 3, 5
LENGTHS = np.array([3, 5, 2])
BATCH = len(LENGTHS)
SORTED = np.argsort(-LENGTHS, kind="stable")  # (1, 0, 2): lengths 5, 3, 2
STATES = (2, BATCH, HIDDEN)
#: Each kind's seed (its arrays use seed … seed + 6): the first in steps of 10 from the kind's base (2000,
#: 2200, 2300) whose run on CPU stays within half the row of the truth in every dtype.
SEEDS = {"rnn_tanh": 2000, "lstm": 2210, "gru": 2300}
BATCH_AXIS = {"output": 1, "grad_input": 1, "h_n": 1, "c_n": 1, "grad_h0": 1, "grad_c0": 1}  # else: a parameter
PER_SEQUENCE = ("x", "h0", "c0", "grad_output", "grad_h_n", "grad_c_n")  # the arrays with a batch axis (axis 1)
LAW = "sequence b advances only for t < length_b; output 0 beyond; h_n at the true last step"


def arrays(kind: str) -> dict:
    seed = SEEDS[kind]
    config = dict(parameters=random_parameters(kind, INPUT, HIDDEN, seed=seed, bidirectional=True),
                  x=random_array((STEPS, BATCH, INPUT), seed=seed + 1), lengths=LENGTHS,
                  h0=random_array(STATES, seed=seed + 2), grad_output=random_array((STEPS, BATCH, 2 * HIDDEN), seed=seed + 3),
                  grad_h_n=random_array(STATES, seed=seed + 4))
    if kind == "lstm":
        config.update(c0=random_array(STATES, seed=seed + 5), grad_c_n=random_array(STATES, seed=seed + 6))
    return config


RECORDS = {kind: Record(__name__, f"{kind}_packed_bidir_lengths_3_5_2", kind=kind, law=LAW,
                        behaviour=f"{NAMES[kind]} packed sequences (lengths 3, 5, 2)",
                        inputs=lambda kind=kind: arrays(kind), options=dict(bidirectional=True))
           for kind in KINDS}


def stored_arrays(kind: str) -> dict:
    record = RECORDS[kind]
    return {key: value for key, value in record.configuration().items() if key not in record.options}


def batch_slice(arrays: dict, index) -> dict:
    """The arrays restricted to batch entries ``index`` (a slice or an index array), lengths included."""
    sliced = {name: value[:, index] for name, value in arrays.items() if name in PER_SEQUENCE}
    return dict(arrays, **sliced, lengths=arrays["lengths"][index])


def alone(arrays: dict, b: int) -> dict:
    """Sequence b alone: its own length, no padding, no packing."""
    config = batch_slice(arrays, slice(b, b + 1))
    length = int(config.pop("lengths")[0])
    return dict(config, x=config["x"][:length], grad_output=config["grad_output"][:length])


#: The batch reordered by decreasing length, packed with enforce_sorted=True.
SORTED_RUNS = {kind: Case(kind=kind, behaviour=f"{NAMES[kind]} packed sequences, sorted", law=LAW,
                          inputs=lambda kind=kind: batch_slice(stored_arrays(kind), SORTED),
                          options=dict(bidirectional=True, enforce_sorted=True))
               for kind in KINDS}
#: Each sequence alone.
ALONE = {(kind, b): Case(kind=kind, behaviour=f"{NAMES[kind]} sequence {b} alone", law=LAW,
                         inputs=lambda kind=kind, b=b: alone(stored_arrays(kind), b), options=dict(bidirectional=True))
         for kind in KINDS for b in range(BATCH)}


def run(implementation, kind: str, device: str, dtype: str) -> dict:
    return RECORDS[kind].measured(implementation, device, dtype)


def config_id(kind: str, device: str, dtype: str) -> str:
    return f"{device}-{dtype}-{kind}-bidir-lengths-3-5-2"


@pytest.mark.documented(authority.PACK_PADDED)
@pytest.mark.parametrize("kind", KINDS)
def test_packed_run_matches_the_reference(kind, device, dtype, spec_check):
    """Output (zeros at padding), h_n, c_n and the gradients of input, h0, c0 and every parameter."""
    spec_check(RECORDS[kind])


@pytest.mark.derived("a packed sequence advances only while t < its length (documented); two runs within their tolerances")
@pytest.mark.parametrize("kind", KINDS)
def test_each_sequence_gets_what_it_gets_alone(kind, implementation, device, dtype, tolerance):
    """Per sequence: output, h_n, c_n and the gradients of its input, h0, c0 equal its run alone; parameter gradients add up."""
    record = RECORDS[kind]
    packed = record.measured(implementation, device, dtype)
    runs_alone = [ALONE[kind, b].measured(implementation, device, dtype) for b in range(BATCH)]
    for key, value in packed.items():
        # the packed run within its tolerance of its truth, each run alone within its own: together, their sum
        allowed = record.tolerance(key, tolerance, value)
        for b in range(BATCH):
            allowed = allowed.plus(ALONE[kind, b].tolerance(key, tolerance, runs_alone[b][key]),
                                   "runs, each within its tolerance of the truth")
        if key in BATCH_AXIS:
            pairs = [(f"{key}[sequence {b}]", value[:LENGTHS[b], b] if key in ("output", "grad_input") else value[:, b],
                      runs_alone[b][key][:, 0]) for b in range(BATCH)]
        else:
            pairs = [(f"{key} (sum over the sequences)", value, sum(a[key] for a in runs_alone))]
        for what, actual, expected in pairs:
            assert_agrees(actual, expected, allowed,
                          behaviour=f"{NAMES[kind]} packed sequences", what=what, witness="each sequence run alone",
                          config=config_id(kind, device, dtype),
                          law="a packed batch computes each sequence as if alone; parameter gradients sum")


@pytest.mark.documented(authority.LAYERS)
@pytest.mark.parametrize("kind", KINDS)
def test_h_n_is_taken_at_each_sequences_true_last_step(kind, implementation, device, dtype):
    """h_n[forward, b] = output[length_b − 1, b, :H] and h_n[reverse, b] = output[0, b, H:], bitwise."""
    measured = run(implementation, kind, device, dtype)
    output, h_n = measured["output"], measured["h_n"]
    for b, length in enumerate(LENGTHS):
        for direction, index, step, features in (("forward", 0, length - 1, slice(0, HIDDEN)),
                                                 ("reverse", 1, 0, slice(HIDDEN, 2 * HIDDEN))):
            assert np.array_equal(h_n[index, b], output[step, b, features]), (
                f"{NAMES[kind]} packed sequences [{config_id(kind, device, dtype)}]: h_n[{direction}, {b}] "
                f"{h_n[index, b].tolist()} is not output[step {step}, {b}] {output[step, b, features].tolist()} "
                f"(length {length}; the padded end is step {STEPS - 1})\n  law: {LAW}")


@pytest.mark.documented(authority.PACK_PADDED)
@pytest.mark.parametrize("kind", KINDS)
def test_padded_positions_have_zero_output_and_zero_gradient(kind, implementation, device, dtype):
    """output[t, b] = 0 and ∂input[t, b] = 0 exactly for every t ≥ length_b."""
    measured = run(implementation, kind, device, dtype)
    for key in ("output", "grad_input"):
        padded = {b: measured[key][length:, b] for b, length in enumerate(LENGTHS)}
        nonzero = {b: values.tolist() for b, values in padded.items() if np.any(values != 0)}
        assert not nonzero, (f"{NAMES[kind]} packed sequences [{config_id(kind, device, dtype)}]: {key} at padded "
                             f"positions is not 0 (sequence: values past its length) {nonzero}\n  law: {LAW}")


@pytest.mark.documented(authority.PACK_PADDED)
@pytest.mark.parametrize("kind", KINDS)
def test_enforce_sorted_on_the_sorted_batch_is_the_unsorted_run_permuted(kind, implementation, device, dtype, tolerance):
    """The batch sorted by decreasing length with enforce_sorted=True gives the same values and gradients, permuted."""
    record, sorted_case = RECORDS[kind], SORTED_RUNS[kind]
    unsorted, ordered = record.measured(implementation, device, dtype), sorted_case.measured(implementation, device, dtype)
    for key, value in ordered.items():
        expected = np.take(unsorted[key], SORTED, axis=BATCH_AXIS[key]) if key in BATCH_AXIS else unsorted[key]
        allowed = sorted_case.tolerance(key, tolerance, value).plus(
            record.tolerance(key, tolerance, unsorted[key]), "two runs, each within its tolerance of the truth")
        assert_agrees(value, expected, allowed,
                      behaviour=f"{NAMES[kind]} packed sequences", what=key,
                      witness="the enforce_sorted=False run of the unsorted batch, permuted",
                      config=config_id(kind, device, dtype) + "-enforce-sorted",
                      law="enforce_sorted=False sorts by length, runs, and restores the caller's order")


@pytest.mark.observed(authority.RELEASES)
@pytest.mark.torch_nn_itself("states torch.nn.utils.rnn.pack_padded_sequence's check; no recurrent module is involved")
def test_enforce_sorted_rejects_lengths_out_of_order(device, observe):
    """enforce_sorted=True with lengths (3, 5, 2) raises RuntimeError naming enforce_sorted and the decreasing order."""
    padded = torch.zeros((STEPS, BATCH, INPUT), dtype=DTYPES["float32"], device=device)
    assert_raises(lambda: pack_padded_sequence(padded, torch.as_tensor(LENGTHS), enforce_sorted=True), RuntimeError,
                  ("enforce_sorted", "decreasing"), config=f"{device}-lengths-3-5-2", observe=observe)
