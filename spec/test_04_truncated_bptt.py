r"""Chapter 4. Truncated backpropagation through time: gradients stop where the graph is cut.

The notebook's "Backprop through time (BPTT)" cell runs the vanishing-gradient RNN of chapter 3
(tanh, weights 0.5, biases 0) over x = ones(20, 1, 1) in four chunks of 5 steps, each from a zero
state (``rnn(x3[:5])``, ``rnn(x3[5:10])``, …), calling ``h_n.backward()`` after each chunk.

Law (i), no carried state. Each chunk is an independent 5-step sequence from :math:`h_0 = 0` over
the same inputs, so each chunk's input gradient is the 5-step gradient from zero, and the four
blocks are the same (four runs of one computation: within the sum of their tolerances, since
nothing promises that a kernel rounds the same way at another memory offset):

$$ \partial h_5/\partial x_{1..5} = 0.0023,\ 0.0059,\ 0.0194,\ 0.0704,\ 0.2642 \quad (\text{four times}). $$

Why 0.2642 and not the full sequence's 0.2634: the last step's gradient is
:math:`w_{ih}(1 - h^2)` at the chunk's last state. Five steps from zero reach
:math:`h_5 = 0.6867` (chapter 3's run at t = 5), not yet the fixed point :math:`h_{20} = 0.6879`, and
:math:`0.5(1 - 0.6867^2) = 0.2642 \ne 0.5(1 - 0.6879^2) = 0.2634`. The gap, 3e-3 relative, is
resolved by float64 and float32 and lies inside bfloat16's and float16's tolerances (those dtypes
assert each side's law, not the gap). Each chunk's weight gradients add up in ``.grad``: four
times the 5-step weight gradient.

Law (ii), state carried but detached (``h = h_n.detach()`` passed to the next chunk). The forward
values are those of the full sequence, but no gradient crosses a chunk boundary: a chunk's
backward leaves the earlier chunks' input gradients unchanged, chunk k's input gradients are the
5-step gradients from the carried state :math:`h_{5(k-1)}`, and the last chunk's input gradients
equal full-sequence BPTT's for steps 16…20 (full BPTT of :math:`h_{20}` reaches steps 16…20 only
through those same five steps).

:derived: 3e-3 = four_chunks_from_zero_state.grad_input[4] / tanh_rnn_weights_half_twenty_steps.grad_input[19] - 1
"""

import numpy as np
import pytest
import torch

from rnnspec import authority, closed_forms
from rnnspec.comparison import as_float64, assert_agrees
from rnnspec.devices import DTYPES
from rnnspec.records import Record
from rnnspec.inputs import constant_parameters
from rnnspec.measure import Implementation, build, measure, memoised

HALVES = constant_parameters("rnn_tanh", 1, 1, weight=0.5)
X = np.ones((20, 1, 1))
CHUNK = 5
NOTEBOOK_BLOCK = ["0.0023", "0.0059", "0.0194", "0.0704", "0.2642"]  # printed four times


@memoised
def run(implementation, steps: int, device: str, dtype: str) -> dict:
    return measure("rnn_tanh", HALVES, X[:steps], implementation=implementation, device=device, dtype=dtype)


def measure_chunks(kind: str, *, implementation: Implementation, device: str, dtype: str, parameters: dict,
                   x: np.ndarray, chunk: int, carry: bool) -> tuple[dict, list[np.ndarray]]:
    """Run ``x`` in chunks with a backward after each: the gradients, and x.grad after every chunk."""
    module = build(kind, parameters, implementation=implementation, device=device, dtype=dtype)
    inputs = torch.tensor(np.asarray(x), dtype=DTYPES[dtype], device=device, requires_grad=True)
    state, after_each_chunk = None, []
    for start in range(0, len(inputs), chunk):
        piece = inputs[start:start + chunk]
        _, h_n = module(piece) if state is None else module(piece, state)
        h_n.backward()
        after_each_chunk.append(as_float64(inputs.grad).copy())
        state = h_n.detach() if carry else None
    measured = {"grad_input": inputs.grad, **{f"grad_{n}": p.grad for n, p in module.named_parameters()}}
    return measured, after_each_chunk


def truncated_values(kind: str, *, parameters: dict, x: np.ndarray, chunk: int, carry: bool) -> dict:
    """The laws (i) and (ii): every chunk's gradients from its starting state, added up as .grad adds them."""
    chunks = closed_forms.truncated_bptt_gradients(kind, parameters, x, chunk, carry=carry)
    values = {"grad_input": np.concatenate([c["input"] for c in chunks])}
    values.update({f"grad_{name}": sum(c[name] for c in chunks) for name in parameters})
    return values


def chunks_record(name: str, *, carry: bool) -> Record:
    state = "the carried, detached state" if carry else "a zero state"
    return Record(__name__, name, kind="rnn_tanh", behaviour=f"truncated BPTT (4 chunks of 5 steps from {state})",
                  law="each chunk's gradient is the 5-step gradient from its starting state; none crosses a chunk",
                  inputs=lambda: dict(parameters=HALVES, x=X), options=dict(chunk=CHUNK, carry=carry),
                  relative=frozenset({"grad_input"}), reference=truncated_values,
                  measure=lambda kind, **configuration: measure_chunks(kind, **configuration)[0])


FROM_ZERO = chunks_record("four_chunks_from_zero_state", carry=False)
CARRYING = chunks_record("four_chunks_carrying_detached_state", carry=True)


@memoised
def snapshots(implementation, device: str, dtype: str) -> list[np.ndarray]:
    """x.grad after each chunk's backward, the state carried and detached."""
    return measure_chunks("rnn_tanh", implementation=implementation, device=device, dtype=dtype,
                          **CARRYING.configuration())[1]


@pytest.mark.documented(authority.RNN)
def test_notebook_chunks_from_zero_state(device, dtype, spec_check):
    """Four chunks from zero: four identical blocks 0.0023 … 0.2642; weight gradients add up four times."""
    spec_check(FROM_ZERO)


@pytest.mark.documented(authority.DETACH)
def test_chunks_carrying_detached_state(device, dtype, spec_check):
    """Carried but detached: chunk k's gradients are the 5-step gradients from h_{5(k-1)}."""
    spec_check(CARRYING)


@pytest.mark.derived("four runs of the same computation, each within its tolerance of one truth")
def test_without_carried_state_the_four_gradient_blocks_are_the_same(implementation, device, dtype, tolerance):
    """Law (i): every chunk's input gradient is the same 5-step gradient from zero (four runs of one computation)."""
    gradient = FROM_ZERO.measured(implementation, device, dtype)["grad_input"]
    allowed = FROM_ZERO.tolerance("grad_input", tolerance, gradient)
    blocks = gradient.reshape(4, CHUNK)
    for k in range(1, 4):
        assert_agrees(blocks[k], blocks[0], allowed.plus(allowed, "two runs, each within its tolerance of the truth"),
                      behaviour=FROM_ZERO.behaviour, what=f"chunk {k + 1}'s input gradients", witness="chunk 1's",
                      config=f"{device}-{dtype}", law="each chunk is the same 5-step run from h_0 = 0 over ones")


@pytest.mark.derived("the documented recurrence, far within the last printed digit in float64 and float32")
@pytest.mark.dtypes("float64", "float32")
def test_notebook_printed_block_holds_to_four_decimals(implementation, device, dtype):
    """Each block prints as the notebook's 0.0023, 0.0059, 0.0194, 0.0704, 0.2642."""
    grad = FROM_ZERO.measured(implementation, device, dtype)["grad_input"].flatten()
    assert [f"{g:.4f}" for g in grad] == NOTEBOOK_BLOCK * 4, (
        f"truncated BPTT [{device}-{dtype}]: input gradients {grad} do not print as the notebook's block ×4")


@pytest.mark.derived("backpropagation through the documented tanh recurrence")
def test_last_step_gradient_is_w_ih_times_one_minus_h_squared_at_the_chunk_end(implementation, device, dtype, tolerance):
    """The chunk's last gradient is 0.5(1 − h_5²) = 0.2642; the full sequence's is 0.5(1 − h_20²) = 0.2634."""
    for name, measured in (("5-step chunk", run(implementation, CHUNK, device, dtype)), ("20-step sequence", run(implementation, 20, device, dtype))):
        h_last = measured["h_n"].item()
        assert_agrees(measured["grad_input"][-1].item(), 0.5 * (1 - h_last**2),
                      tolerance.scaled(4, "a gradient against 1 - h^2 of a measured h, which moves 2h/(1-h^2) "
                                          "= 2.6 times as much as h"),
                      behaviour="truncated BPTT", what=f"{name}: last input gradient", witness="w_ih (1 - h_T^2)",
                      config=f"{device}-{dtype}", law="dh_T/dx_T = w_ih (1 - h_T^2)")


@pytest.mark.derived("the documented recurrence: 5 steps from 0 have not reached the fixed point")
@pytest.mark.dtypes("float64", "float32")
def test_chunk_end_gradient_differs_from_the_full_sequence_end_gradient(implementation, device, dtype, tolerance):
    """0.2642 ≠ 0.2634: five steps from zero have not reached the fixed point (resolved in float64 and float32)."""
    chunk = run(implementation, CHUNK, device, dtype)["grad_input"][-1].item()
    full = run(implementation, 20, device, dtype)["grad_input"][-1].item()
    assert abs(chunk - full) > 100 * tolerance.rtol * abs(full), (
        f"truncated BPTT [{device}-{dtype}]: chunk end gradient {chunk} should differ from the full sequence's {full}")


@pytest.mark.derived("a detached state has no gradient path (torch.Tensor.detach); x + 0 = x exactly")
def test_detached_state_stops_gradient_at_chunk_boundaries(implementation, device, dtype):
    """Law (ii): a chunk's backward leaves every earlier chunk's input gradient unchanged."""
    after_each_chunk = snapshots(implementation, device, dtype)
    for k in range(1, len(after_each_chunk)):
        before, after = after_each_chunk[k - 1], after_each_chunk[k]
        edge = k * CHUNK
        assert (after[:edge] == before[:edge]).all(), (
            f"truncated BPTT [{device}-{dtype}]: chunk {k + 1}'s backward changed the input gradients of "
            f"steps 1..{edge} across a detached state: {before[:edge].flatten()} -> {after[:edge].flatten()}")
        assert (before[edge:] == 0).all(), f"[{device}-{dtype}] steps after chunk {k} had gradient before their backward"


@pytest.mark.derived("backpropagation reaches steps 16-20 of h_20 only through those steps")
def test_last_chunk_gradients_equal_full_bptt_for_its_steps(implementation, device, dtype, tolerance):
    """Law (ii): with the state carried, steps 16…20 get the same input gradient as full-sequence BPTT."""
    chunked = CARRYING.measured(implementation, device, dtype)["grad_input"][-CHUNK:]
    full = run(implementation, 20, device, dtype)["grad_input"][-CHUNK:]
    assert_agrees(chunked, full, tolerance.relative(), behaviour="truncated BPTT",
                  what="last chunk's input gradients", witness="full BPTT's for steps 16..20",
                  config=f"{device}-{dtype}", law="dh_20/dx_t for t > 15 only passes through steps 16..20")
