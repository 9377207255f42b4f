r"""Chapter 18. Gradual underflow: a state or gradient below the smallest normal number is kept as a subnormal.

IEEE 754 binary formats hold numbers below their smallest normal number :math:`2^{e_{min}}` with
fewer significant bits, down to the smallest **subnormal** :math:`2^{e_{min}-p+1}`: float32 from
:math:`2^{-126} \approx 1.18\times10^{-38}` down to :math:`2^{-149} \approx 1.4\times10^{-45}`,
float64 from :math:`2^{-1022} \approx 2.2\times10^{-308}` down to :math:`2^{-1074} \approx
4.9\times10^{-324}`. A result in that range rounds to the nearest subnormal, not to 0: **gradual
underflow**. Only a result below half the smallest subnormal rounds to 0 (float16's vanishing
gradients do, chapter 3). torch computes float32 and float64 in IEEE arithmetic, and its CPU keeps
subnormals unless told otherwise: ``torch.set_flush_denormal(True)``
(`documented <https://pytorch.org/docs/stable/generated/torch.set_flush_denormal.html>`_) makes the
CPU flush subnormal results to zero and read subnormal operands as zero (FTZ and DAZ), as code
built with fast-math does.

Why a spec states it. A process that flushes subnormals passes every other chapter in float32 and
float64: no state or gradient they compute comes near the range (chapter 3's smallest is
:math:`4.7\times10^{-12}`). Yet a vanishing gradient is exactly the quantity that gets there, and
a flushed one is not small but zero, and stays zero through every product after it.

Where ∂x_1 turns subnormal. Chapter 3's recurrence (tanh RNN, every weight 0.5, biases 0,
:math:`x_t = 1`, ``h_n.backward()``) gives, for a sequence of T steps,

$$ \partial h_T / \partial x_1 = w_{ih} (1 - h_1^2) \prod_{s=2}^{T} w_{hh} (1 - h_s^2), $$

where :math:`h_s` does not depend on T (it climbs to the fixed point 0.6879 within a few steps),
so each step more multiplies ∂x_1 by about :math:`0.2634 = 2^{-1.92}`. Summing the logarithms
(normal numbers only, so the derivation itself cannot underflow): ∂x_1 first falls below the smallest
normal number at **T = 66 in float32** (:math:`2^{-126.15} \approx 1.06\times10^{-38}`; at T = 65 it
is :math:`2^{-124.2}`) and at **T = 532 in float64** (:math:`2^{-1023.05} \approx 1.08\times10^{-308}`;
at T = 531, :math:`2^{-1021.1}`); it would round to 0 from T = 79 and T = 559. At those lengths the
spec asserts ∂x_1 is a non-zero subnormal, and every ∂x_t agrees with the NumPy reference (its float64
run, rounded to the dtype) elementwise, relatively: within the row, or within :math:`5 T u` (u the unit
roundoff) where a product of T steps' rounded factors, five roundings each, can move further (66
float32 steps: 2e-5, where the row's 1.3e-6 is sized for 20), plus one unit in the last place of the
subnormal range.

Subnormal inputs, forward. A relu RNN with every weight 0.5, biases 0 and every input
:math:`x_t = s` a subnormal (:math:`2^{-130}` in float32, :math:`2^{-1040}` in float64) computes
:math:`h_t = \mathrm{relu}(0.5 s + 0.5 h_{t-1}) = s (1 - 2^{-t})` **exactly**: each term is a
dyadic number whose lowest bit, :math:`s\,2^{-t-1}`, lies above the smallest subnormal for
the 12 steps run (up to t = 18 in float32, 33 in float64), so no operation rounds. The gradients
are exact too: :math:`\partial h_T/\partial x_t = 0.5^{T-t+1}`, and the weight gradients are sums
of such dyadic subnormals. A CPU that reads subnormal inputs as zero computes all zeros instead.

What ``torch.set_flush_denormal(True)`` changes, on the CPU where it is supported: the same runs
give ∂x_1 = 0 and every forward state 0 (the subnormal input is read as 0). Under it the conformance
check fails here (``selftest/test_flush_denormal.py`` runs this chapter in a process that flushes);
every test restores the flag it found.

:derived: 1.06\times10^{-38} = 2.0 ** log2_first_input_gradient(66);
          1.08\times10^{-308} = 2.0 ** log2_first_input_gradient(532)
"""

import math

import numpy as np
import pytest

from rnnspec import authority, subnormals
from rnnspec.closed_forms import SIGNIFICAND_BITS
from rnnspec.comparison import Tolerance, assert_agrees, round_to_dtype
from rnnspec.inputs import constant_parameters
from rnnspec.measure import Measurement, frozen
from rnnspec.numpy_reference import derive
from rnnspec.records import Case
from rnnspec.spec_check import assert_matches_truth, assert_output_contract, of_the_run
from spec.test_03_vanishing_gradient import HALVES

SET_FLUSH_DENORMAL = authority.DOCS + "generated/torch.set_flush_denormal.html"
IEEE = "IEEE 754 gradual underflow: a result below the smallest normal number rounds to the nearest subnormal"
DTYPES = ("float32", "float64")


def log2_first_input_gradient(steps: int) -> float:
    """log2 ∂h_T/∂x_1 of chapter 3's recurrence over ``steps`` steps, summed from logarithms of normal numbers."""
    h, total = 0.0, 0.0
    for step in range(1, steps + 1):
        h = math.tanh(0.5 + 0.5 * h)
        total += math.log2(0.5 * (1.0 - h * h))  # w_ih (1 - h_1^2) at step 1, w_hh (1 - h_s^2) after it
    return total


def first_subnormal_length(dtype: str) -> int:
    """The shortest sequence whose ∂x_1 lies below the dtype's smallest normal number."""
    return next(steps for steps in range(1, 10_000)
                if log2_first_input_gradient(steps) < math.log2(subnormals.SMALLEST_NORMAL[dtype]))


VANISHING = {dtype: Case(kind="rnn_tanh", behaviour=f"gradual underflow of ∂x_1 (tanh RNN, weights 0.5, {dtype})",
                         law="dh_T/dx_1 = w_ih (1 - h_1^2) prod_{s>1} w_hh (1 - h_s^2), kept as a subnormal",
                         inputs=lambda dtype=dtype: dict(parameters=HALVES,
                                                         x=np.ones((first_subnormal_length(dtype), 1, 1))))
             for dtype in DTYPES}
#: Roundings per step in the backward chain of ∂x (h_s^2, 1 - h_s^2, the product with δh, the product with w_hh,
#: and h_s's own): a product of k rounded factors lies within (1 + u)^k - 1 ≈ k u of the exact one.
ROUNDINGS_PER_STEP = 5


def product_tolerance(dtype: str, steps: int, row: Tolerance) -> Tolerance:
    """How far ∂x_t, a product of up to ROUNDINGS_PER_STEP × steps rounded factors, may lie from the truth, relatively:
    the row, or that many units of roundoff where more; atol one unit in the last place of the subnormal range."""
    unit = 2.0 ** -SIGNIFICAND_BITS[dtype]
    rtol = max(row.rtol, ROUNDINGS_PER_STEP * steps * unit)
    return Tolerance(dtype, rtol=rtol, atol=subnormals.SMALLEST_SUBNORMAL[dtype], resolution=row.resolution,
                     source=f"a product of {ROUNDINGS_PER_STEP} x {steps} rounded factors, each within 2^-"
                            f"{SIGNIFICAND_BITS[dtype]} ({row.source} where wider); atol: the smallest subnormal")

#: The subnormal input of the forward case, per dtype: 2^-130 (float32), 2^-1040 (float64).
SUBNORMAL_INPUT = {"float32": 2.0**-130, "float64": 2.0**-1040}
FORWARD_STEPS = 12
RELU_HALVES = constant_parameters("rnn_relu", 1, 1, weight=0.5)


def exact_subnormal_run(s: float, steps: int) -> dict:
    """relu RNN, weights 0.5, biases 0, x_t = s, upstream 1 on h_n: every value a dyadic multiple of s or of 0.5."""
    h = [s * (1.0 - 2.0**-t) for t in range(steps + 1)]  # h_0 = 0
    delta = [0.5 ** (steps - t) for t in range(1, steps + 1)]  # dh_T/dh_t, relu' = 1 (every pre-activation > 0)
    return {"output": np.array(h[1:]).reshape(steps, 1, 1), "h_n": np.array([[[h[-1]]]]),
            "grad_input": np.array([0.5 * d for d in delta]).reshape(steps, 1, 1),
            "grad_weight_ih_l0": np.array([[sum(d * s for d in delta)]]),
            "grad_weight_hh_l0": np.array([[sum(d * h[t] for t, d in enumerate(delta))]]),
            "grad_bias_ih_l0": np.array([sum(delta)]), "grad_bias_hh_l0": np.array([sum(delta)])}


SUBNORMAL_INPUTS = {dtype: Case(kind="rnn_relu", behaviour=f"subnormal inputs (relu RNN, weights 0.5, {dtype})",
                                law="h_t = relu(0.5 s + 0.5 h_(t-1)) = s (1 - 2^-t), exactly",
                                inputs=lambda dtype=dtype: dict(parameters=RELU_HALVES, x=np.full(
                                    (FORWARD_STEPS, 1, 1), SUBNORMAL_INPUT[dtype])),
                                closed_form=lambda parameters, x: exact_subnormal_run(float(x.flat[0]), len(x)))
                    for dtype in DTYPES}


def assert_subnormal(values, dtype: str, what: str, config: str) -> None:
    """Every value is a non-zero subnormal of ``dtype`` (a flushed value is 0 and fails)."""
    __tracebackhide__ = True
    flat = np.ravel(values)
    found = subnormals.is_subnormal(flat, dtype)
    assert found.all(), (
        f"gradual underflow [{config}]: {what} should be non-zero subnormals of {dtype} (below "
        f"{subnormals.SMALLEST_NORMAL[dtype]:.3g}, above 0), got {flat[~found][:4]}\n"
        f"  law: {IEEE}; a process that flushes subnormals to zero (torch.set_flush_denormal(True), fast-math) "
        f"gives 0")


def measured_with_its_contract(case: Case, implementation, device: str, dtype: str) -> Measurement:
    """The case's run (memoised), its output contract asserted before any value (a run without gradients, as
    ONNX Runtime's, holds the forward tensors; reading a gradient from it makes the test not applicable)."""
    __tracebackhide__ = True
    measured = case.measured(implementation, device, dtype)
    assert_output_contract(measured, case.truth(), device=device, dtype=dtype, config=f"{device}-{dtype}")
    return measured


@pytest.mark.derived(IEEE)
@pytest.mark.dtypes(*DTYPES)
def test_dx1_is_kept_as_a_subnormal_at_the_length_it_enters_the_range(device, dtype, implementation, tolerance):
    """∂x_1 of chapter 3's recurrence at T = 66 (float32) or 532 (float64) steps: a subnormal, as the reference says."""
    case, steps, config = VANISHING[dtype], first_subnormal_length(dtype), f"{device}-{dtype}"
    closed_form = log2_first_input_gradient(steps)
    assert log2_first_input_gradient(steps - 1) >= math.log2(subnormals.SMALLEST_NORMAL[dtype]) > closed_form
    reference = case.truth().values["grad_input"].ravel()
    assert abs(math.log2(reference[0]) - closed_form) < 1e-9, (  # the two witnesses of ∂x_1 agree
        f"the NumPy reference's ∂x_1 = 2^{math.log2(reference[0]):.6f}, the closed form's 2^{closed_form:.6f}")
    measured = measured_with_its_contract(case, implementation, device, dtype)
    assert_matches_truth(dict(measured), of_the_run(case.truth(), measured), dtype, tolerance, what="measured",
                         witness=f"the NumPy reference in float64 rounded to {dtype}", config=config)
    assert_subnormal(measured["grad_input"].ravel()[:1], dtype, f"∂x_1 of {steps} steps", config)
    assert_agrees(measured["grad_input"].ravel(), round_to_dtype(reference, dtype),
                  product_tolerance(dtype, steps, tolerance), behaviour=case.behaviour, what="measured ∂x, elementwise",
                  witness=f"the NumPy reference in float64 rounded to {dtype}", config=config, law=case.law)


@pytest.mark.derived(f"{IEEE}; sums and products of dyadic numbers above the smallest subnormal are exact")
@pytest.mark.dtypes(*DTYPES)
def test_subnormal_inputs_give_exact_subnormal_states_and_gradients(device, dtype, implementation):
    """x_t = 2^-130 (float32) or 2^-1040 (float64): h_t = s (1 - 2^-t) exactly, every state a subnormal."""
    case, config = SUBNORMAL_INPUTS[dtype], f"{device}-{dtype}"
    exact = Tolerance.exact(dtype, "dyadic values above the smallest subnormal")
    closed_form = case.truth().values
    reference = derive(case.kind, **case.configuration())
    for key, expected in closed_form.items():  # the two witnesses agree, bit for bit
        assert_agrees(reference[key], expected, exact, behaviour=case.behaviour, what=f"the NumPy reference's {key}",
                      witness="the closed form", config="reference", law=case.law)
    measured = measured_with_its_contract(case, implementation, device, dtype)
    for key in ("output", "h_n", "grad_weight_ih_l0", "grad_weight_hh_l0"):  # forward first: a run without
        assert_subnormal(measured[key], dtype, key, config)                   # gradients stops at the first gradient
    for key, expected in closed_form.items():
        assert_agrees(measured[key], expected, exact, behaviour=case.behaviour, what=f"measured {key}",
                      witness="the closed form", config=config, law=case.law)


@pytest.mark.documented(SET_FLUSH_DENORMAL)
def test_set_flush_denormal_flushes_them_to_zero_on_the_cpu(implementation):
    """Under torch.set_flush_denormal(True), where the CPU supports it: ∂x_1 is 0 and subnormal inputs read as 0;
    where it does not (it returns False), nothing changes."""
    before = subnormals.flushing()
    for dtype in DTYPES:
        cases = (VANISHING[dtype], SUBNORMAL_INPUTS[dtype])
        with subnormals.flush_denormal(True) as supported:
            flushed = [frozen(case.measure(case.kind, implementation=implementation, device="cpu", dtype=dtype,
                                           **case.configuration())) for case in cases]
        assert subnormals.flushing() == before, "torch.set_flush_denormal's flag was not restored"
        vanishing, subnormal_inputs = flushed[0]["grad_input"].flat[0], flushed[1]["output"]
        if supported:
            assert vanishing == 0 and (subnormal_inputs == 0).all(), (
                f"set_flush_denormal(True) [cpu-{dtype}]: ∂x_1 (a subnormal when kept) should be flushed to 0 and the "
                f"subnormal inputs read as 0 (every state 0); got ∂x_1 = {vanishing!r}, states "
                f"{subnormal_inputs.ravel()[:4]}")
        else:  # "Returns True if your system supports flushing denormal numbers": elsewhere nothing changes
            assert subnormals.is_subnormal(vanishing, dtype) and subnormals.is_subnormal(subnormal_inputs, dtype).all(), (
                f"set_flush_denormal(True) [cpu-{dtype}] returned False (not supported here), yet the subnormals "
                f"changed: ∂x_1 = {vanishing!r}, states {subnormal_inputs.ravel()[:4]}")
