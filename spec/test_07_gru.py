r"""Chapter 7. GRU: the gated recurrent unit, PyTorch's reset-after form, and its gradient decay.

`torch.nn.GRU <https://pytorch.org/docs/stable/generated/torch.nn.GRU.html>`_ keeps one state
:math:`h_t` and two gates (weight rows in the order r, z, n):

$$ r_t = \sigma(W_{ir} x_t + b_{ir} + W_{hr} h_{t-1} + b_{hr}),\qquad
   z_t = \sigma(W_{iz} x_t + b_{iz} + W_{hz} h_{t-1} + b_{hz}), $$
$$ n_t = \tanh\big(W_{in} x_t + b_{in} + r_t \odot (W_{hn} h_{t-1} + b_{hn})\big),\qquad
   h_t = (1 - z_t) \odot n_t + z_t \odot h_{t-1}. $$

**Reset after, not before.** PyTorch applies the reset gate *after* the recurrent matrix and its
bias ("reset-after", as Keras' ``reset_after=True`` and ONNX's ``linear_before_reset=1``). The
paper (Cho et al., 2014) applies it *before*:

$$ n_t^{\text{paper}} = \tanh\big(W_{in} x_t + b_{in} + W_{hn} (r_t \odot h_{t-1}) + b_{hn}\big). $$

The candidate's pre-activations differ by :math:`(1 - r_t) \odot b_{hn}` plus
:math:`r_t \odot (W_{hn} h) - W_{hn}(r_t \odot h)`; the second term vanishes for one unit, so a
one-unit case separates the forward values only with a non-zero :math:`b_{hn}` and a reset gate
away from 1. (With one unit and :math:`b_{hn} = 0`, as in the 20-step case below, the forward
values coincide and only :math:`b_{hn}`'s gradient differs: :math:`r_t \odot \delta a_n` after,
:math:`\delta a_n` before.) The chapter's separating case, ``GRU(1, 1)`` for one
step from :math:`h_0 = 1` with :math:`x_1 = 1`, weights :math:`W_{ir} = W_{iz} = 0.5`,
:math:`W_{in} = 0`, :math:`W_{hr} = W_{hz} = -0.5`, :math:`W_{hn} = -0.5`, biases 0 except
:math:`b_{hn} = 1`:

$$ r_1 = z_1 = \sigma(0.5 - 0.5) = \tfrac12, $$
$$ \text{reset-after: } n_1 = \tanh\big(\tfrac12(-0.5 + 1)\big) = \tanh 0.25 = 0.24492,\quad
   h_1 = \tfrac12 n_1 + \tfrac12 h_0 = 0.62246, $$
$$ \text{reset-before: } n_1 = \tanh\big(-0.5 \cdot \tfrac12 + 1\big) = \tanh 0.75 = 0.63515,\quad
   h_1 = 0.81757. $$

The gap, 0.195, is twenty times bfloat16's tolerance at this magnitude (1.6e-2 × 0.62): every
dtype tells the forms apart. So does the chapter's general case, GRU(2, 3) over 4 steps from a
non-zero :math:`h_0` with seeded weights (:math:`b_{hn}` = 0.12, 0.16, 0.20, reset gates
between 0.15 and 0.62): its largest gap, 0.124, is thirteen times bfloat16's tolerance. ``reset_before_gru`` below
computes the paper's form in NumPy; torch must match the reset-after reference and must lie
outside the tolerance of the reset-before values. The one-unit case is recorded with every
gradient; the general case's values and gradients are recorded by chapter 9 (GRU in two layouts).

**Gradient decay beside the tanh RNN and the LSTM.** The notebook's 20-step input
x = ones(20, 1, 1), every weight 0.5, biases 0, ``h_n.backward()``: the GRU climbs to
:math:`h_{20} = 0.6093` and its input gradient falls from :math:`\partial x_{20} = 0.1029` to
:math:`\partial x_1 = 3.9817\times10^{-4}`. Each step back multiplies it by
:math:`\partial h_t/\partial h_{t-1} = z_t + (1 - z_t)(1 - n_t^2)\,\partial a_n/\partial h + (h_{t-1} - n_t)\,\partial z_t/\partial h`,
dominated by the update gate's direct path :math:`z_t = \sigma(0.5 + 0.5 h) \approx 0.69`: the
ratio :math:`\partial x_t/\partial x_{t+1}` rises from 0.667 to 0.764. The tanh RNN's factor is
0.263 (chapter 3), the LSTM's about 0.75 (chapter 5). The earliest input gradients:

=========  ==============================
layer      :math:`\partial h_{20}/\partial x_1`
=========  ==============================
tanh RNN   4.7499e-12
LSTM       3.7013e-4
GRU        3.9817e-4
=========  ==============================

The record compares every quantity normwise; the decay profile :math:`\partial x_1 \ldots \partial x_{20}`,
which spans 2.4 decades, is compared elementwise relatively in its own test, within the table's
row for float64, float32 and float16. **bfloat16 states a different bound**: on CPU the GRU has no
fused kernel (the LSTM's bfloat16 path runs oneDNN, which accumulates in float32), every
operation of the 20-step backward rounds to 8 significant bits, and the input gradient lands up
to 2.6 % from the truth (t = 7: about seven units of roundoff :math:`2^{-8}`, where the row's
:math:`2^{-6}` allows four): the spec asserts it within twice the row, 3.2 %.

Law (ordering): :math:`\partial x_1^{\text{RNN}} < \partial x_1^{\text{LSTM}} < \partial x_1^{\text{GRU}}`:
the gated layers keep the gradient nearly eight decades above the tanh RNN's
(GRU / RNN = 8.38e7), and the GRU's update-gate path keeps 1.076 times the LSTM's. Both gaps
exceed every dtype's tolerance, so the ordering is asserted in every dtype; in float16 the tanh
RNN's value underflows to exactly 0 (chapter 3) and the ordering still holds.
"""

import functools

import numpy as np
import pytest

from rnnspec.comparison import Truth, assert_agrees, disagreement, magnitude, round_to_dtype
from rnnspec.numpy_reference import sigmoid
from rnnspec.runs import constant_parameters, derive, frozen, measure, memoised, random_array, random_parameters

LAW = "r, z = sigma(...); n = tanh(W_in x + b_in + r * (W_hn h + b_hn)); h' = (1 - z) n + z h"

SEPARATING = {  # GRU(1, 1): rows r, z, n
    "weight_ih_l0": np.array([[0.5], [0.5], [0.0]]),
    "weight_hh_l0": np.array([[-0.5], [-0.5], [-0.5]]),
    "bias_ih_l0": np.zeros(3),
    "bias_hh_l0": np.array([0.0, 0.0, 1.0]),  # b_hn = 1
}
CASES = {
    "one_unit_one_step": dict(parameters=SEPARATING, x=np.ones((1, 1, 1)), h0=np.ones((1, 1, 1))),
    "3_units_four_steps": dict(parameters=random_parameters("gru", 2, 3, seed=7), x=random_array((4, 2, 2), seed=8),
                              h0=random_array((1, 2, 3), seed=9), grad_output=random_array((4, 2, 3), seed=10)),
}
HAND_DERIVED_H1 = {"reset-after": 0.5 + 0.5 * np.tanh(0.25), "reset-before": 0.5 + 0.5 * np.tanh(0.75)}

TWENTY_ONES = np.ones((20, 1, 1))
HALVES = {kind: constant_parameters(kind, 1, 1, weight=0.5) for kind in ("rnn_tanh", "lstm", "gru")}
EARLIEST_GRADIENT = {"rnn_tanh": 4.7499e-12, "lstm": 3.7013e-4, "gru": 3.9817e-4}  # printed to 5 digits
DECAY_ORDER = ("rnn_tanh", "lstm", "gru")  # ∂x_1 ascending


def reset_before_gru(parameters: dict, x: np.ndarray, h0: np.ndarray) -> np.ndarray:
    """The paper's GRU (one layer, time-major): n = tanh(W_in x + b_in + W_hn (r ⊙ h) + b_hn); returns every h_t."""
    W_ir, W_iz, W_in = np.split(parameters["weight_ih_l0"], 3)
    W_hr, W_hz, W_hn = np.split(parameters["weight_hh_l0"], 3)
    b_ir, b_iz, b_in = np.split(parameters["bias_ih_l0"], 3)
    b_hr, b_hz, b_hn = np.split(parameters["bias_hh_l0"], 3)
    h, outputs = h0[0], []
    for x_t in x:
        r = sigmoid(x_t @ W_ir.T + b_ir + h @ W_hr.T + b_hr)
        z = sigmoid(x_t @ W_iz.T + b_iz + h @ W_hz.T + b_hz)
        n = np.tanh(x_t @ W_in.T + b_in + (r * h) @ W_hn.T + b_hn)
        h = (1 - z) * n + z * h
        outputs.append(h)
    return np.stack(outputs)


@memoised
def run(case: str, device: str, dtype: str) -> dict:
    return measure("gru", **CASES[case], device=device, dtype=dtype)


@memoised
def run_twenty_steps(kind: str, device: str, dtype: str) -> dict:
    return measure(kind, HALVES[kind], TWENTY_ONES, device=device, dtype=dtype)


@functools.cache
def reference(case: str) -> dict:
    """The reset-after reference's run of a case (float64)."""
    return frozen(derive("gru", **CASES[case]))


@functools.cache
def reference_twenty_steps(kind: str) -> dict:
    return frozen(derive(kind, HALVES[kind], TWENTY_ONES))


def case_truth(case: str) -> Truth:
    return Truth(behaviour=f"GRU forward and gradients ({case.replace('_', ' ')})", law=LAW, values=reference(case))


@functools.cache
def twenty_steps_truth() -> Truth:
    """Every quantity compared normwise; the input gradient's decay is compared relatively in its own tests."""
    return Truth(behaviour="GRU gradient decay (weights 0.5, 20 steps)", law=LAW,
                 values=reference_twenty_steps("gru"))


TRUTHS = {
    "gru_one_unit_one_step": lambda: case_truth("one_unit_one_step"),
    "gru_weights_half_twenty_steps": twenty_steps_truth,
}


def test_gru_one_unit_values_and_gradients_match_the_reset_after_reference(device, dtype, spec_check):
    """The separating case: h_1 0.62246 and the gradients of x, h0 and every parameter, reset-after."""
    spec_check(run("one_unit_one_step", device, dtype), "gru_one_unit_one_step")


@pytest.mark.parametrize("case", list(CASES))
def test_gru_output_is_reset_after_and_lies_far_from_the_papers_reset_before(case, device, dtype, tolerance):
    """torch's output agrees with the reset-after reference; the reset-before values lie outside the tolerance."""
    measured = run(case, device, dtype)["output"]
    after = reference(case)["output"]
    before = reset_before_gru(CASES[case]["parameters"], CASES[case]["x"], CASES[case]["h0"])
    allowed = tolerance.normwise(magnitude(after))
    config = f"{device}-{dtype}-{case}"
    assert_agrees(measured, round_to_dtype(after, dtype), allowed, behaviour="GRU reset form", what="output",
                  witness="the reset-after reference", config=config, law=LAW)
    gap = float(np.abs(after - before).max())
    assert gap > 5 * (allowed.atol + allowed.rtol * magnitude(after)), (
        f"GRU reset form [{config}]: the case does not separate the forms (gap {gap:.3g} vs tolerance {allowed})")
    problem = disagreement(measured, round_to_dtype(before, dtype), allowed)
    assert problem is not None, (
        f"GRU reset form [{config}]: torch's output agrees with the paper's reset-before form "
        f"n = tanh(W_in x + b_in + W_hn (r * h) + b_hn), not PyTorch's documented reset-after form\n  law: {LAW}\n"
        f"  tolerance: {allowed}")


def test_one_unit_case_gives_the_hand_derived_reset_after_value(device, dtype, tolerance):
    """h_1 = ½ + ½ tanh(0.25) = 0.62246 (reset-after), not ½ + ½ tanh(0.75) = 0.81757 (reset-before)."""
    h_1 = run("one_unit_one_step", device, dtype)["h_n"].item()
    after, before = HAND_DERIVED_H1["reset-after"], HAND_DERIVED_H1["reset-before"]
    assert_agrees(h_1, round_to_dtype(after, dtype), tolerance.normwise(after), behaviour="GRU reset form",
                  what="h_1", witness="the reset-after closed form 1/2 + tanh(0.25)/2", config=f"{device}-{dtype}",
                  law="r = z = 1/2, n = tanh(r (W_hn h + b_hn)) = tanh(1/2 (-0.5 + 1))")
    assert abs(h_1 - before) > 10 * tolerance.rtol * before, (
        f"GRU reset form [{device}-{dtype}]: h_1 = {h_1} is near the reset-before value {before:.5f}")


def test_gru_twenty_step_values_and_gradients(device, dtype, spec_check):
    """The notebook's 20-step input through GRU(1, 1) with weights 0.5: h_n 0.6093, ∂x_1 3.9817e-4 … ∂x_20 0.1029."""
    spec_check(run_twenty_steps("gru", device, dtype), "gru_weights_half_twenty_steps")


def assert_decays_as_the_reference(device: str, dtype: str, allowed) -> None:
    __tracebackhide__ = True
    truth = reference_twenty_steps("gru")["grad_input"]
    assert_agrees(run_twenty_steps("gru", device, dtype)["grad_input"], round_to_dtype(truth, dtype), allowed,
                  behaviour="GRU gradient decay", what="∂x_1 … ∂x_20", witness="the reference, elementwise relatively",
                  config=f"{device}-{dtype}", law="dh_20/dx_t = (dh_20/dx_(t+1)) × (0.667 … 0.764)")


@pytest.mark.dtypes("float64", "float32", "float16")
def test_gru_input_gradient_decays_as_the_reference_at_every_step(device, dtype, tolerance):
    """∂x_1 = 3.9817e-4 … ∂x_20 = 0.1029: every step within the dtype's tolerance, relatively (2.4 decades)."""
    assert_decays_as_the_reference(device, dtype, tolerance.relative())


@pytest.mark.dtypes("bfloat16")
def test_bfloat16_gru_input_gradient_stays_within_twice_the_row(device, dtype, tolerance):
    """bfloat16: within 2 × 1.6e-2 relatively (CPU rounds every operation; measured worst 2.6 % at t = 7)."""
    assert_decays_as_the_reference(device, dtype, tolerance.relative().scaled(
        2, "20 steps of backward, every operation rounded to 8 bits on CPU (no fused GRU kernel there), "
           "accumulate about 7 units of roundoff 2^-8, beyond the row's four"))


def test_earliest_input_gradient_orders_rnn_below_lstm_below_gru(device, dtype, tolerance):
    """∂x_1: tanh RNN 4.7499e-12 < LSTM 3.7013e-4 < GRU 3.9817e-4, each value the reference's (relatively)."""
    earliest = {kind: run_twenty_steps(kind, device, dtype)["grad_input"][0, 0, 0] for kind in DECAY_ORDER}
    config = f"{device}-{dtype}"
    for kind, value in earliest.items():
        truth = reference_twenty_steps(kind)["grad_input"][0, 0, 0]
        assert f"{truth:.4e}" == f"{EARLIEST_GRADIENT[kind]:.4e}", f"the stated figure for {kind} is not the reference's"
        assert_agrees(value, round_to_dtype(truth, dtype), tolerance.relative(), behaviour="GRU gradient decay",
                      what=f"∂x_1 of the {kind}", witness="the reference", config=config,
                      law="dh_20/dx_1 on x = ones(20), weights 0.5, biases 0")
    values = [earliest[kind] for kind in DECAY_ORDER]
    assert values[0] < values[1] < values[2], (
        f"GRU gradient decay [{config}]: ∂x_1 should order tanh RNN < LSTM < GRU, got "
        + ", ".join(f"{kind} {earliest[kind]:.4e}" for kind in DECAY_ORDER))
