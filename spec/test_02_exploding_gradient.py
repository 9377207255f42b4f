r"""Chapter 2. Exploding gradients: a recurrent weight above 1 multiplies the gradient at every step.

The notebook's "Analyse d'un exploding gradient": ``nn.RNN(1, 1, nonlinearity='relu')`` with every
weight 11 ("Poids supérieur à 1"), biases 0, x = ones(5, 1, 1), then ``h_n.backward(ones)``.

Forward. Every pre-activation is positive, so relu is the identity and

$$ h_t = 11 + 11\,h_{t-1} = \sum_{k=1}^{t} 11^k : \quad 11,\ 132,\ 1463,\ 16104,\ 177155. $$

Backward. Write :math:`\delta_t = \partial h_n / \partial h_t`. Each step back multiplies by
:math:`\partial h_{t+1}/\partial h_t = w_{hh}\,\mathrm{relu}'(\cdot) = 11`, so
:math:`\delta_t = 11^{n-t}` and

$$ \frac{\partial h_n}{\partial x_t} = w_{ih}\,\delta_t = 11^{\,n+1-t}:
   \quad 161051,\ 14641,\ 1331,\ 121,\ 11 \quad (n = 5), $$

$$ \frac{\partial h_n}{\partial W_{ih}} = \sum_t \delta_t x_t = \sum_{j=0}^{4} 11^j = 16105,\qquad
   \frac{\partial h_n}{\partial W_{hh}} = \sum_t \delta_t h_{t-1}
   = 11^3\cdot 11 + 11^2\cdot 132 + 11\cdot 1463 + 16104 = 62810. $$

The growth law: consecutive input gradients differ by exactly the factor 11, and the gradient
reaching the first step grows as :math:`11^n`: the gradient explodes geometrically with length.

What each dtype holds. Every number here is an integer, exact while it stays below
:math:`2^p` for a significand of p bits (see ``closed_forms.exact_exploding_steps``):

* float64 (p = 53): exact up to n = 15;
* float32 (p = 24): exact up to n = 6, since :math:`11^7 > 2^{24}`;
* float16 (p = 11): exact up to n = 3; at n = 5, :math:`h_5 = 177155` and
  :math:`\partial x_1 = 161051` exceed float16's largest finite number 65504 and **overflow to
  inf**. That is the specified float16 behaviour and it is asserted. The other gradients stay
  finite (:math:`\partial W_{hh}` = 62810 rounds to 62784, within float16's tolerance);
* bfloat16 (p = 8, float32's exponent range): exact up to n = 2; it keeps the range but rounds:
  1463 becomes 1464, 177155 becomes 177152. Rounding to nearest gives these values whether a
  kernel rounds once (a fused kernel, exact in float32) or after every operation (step by step):
  ``selftest/test_case_design.py`` checks both, so the claim holds for either kind of kernel.

Beyond a dtype's exact range, results must still match the closed form rounded to that dtype,
within the tolerance table's row (or, for a step-by-step computation, its envelope).

Every length in one run. The law is checked for n = 1 … 16 from a single run of a batch of 16
identical sequences of 16 ones: sequence b's upstream gradient is 1 on its output at step b + 1
and 0 elsewhere, so its input gradient is :math:`\partial h_{b+1} / \partial x_t`, the gradient of
the (b + 1)-step run's :math:`h_n` (the recurrence is causal: :math:`h_n` is the same whether or
not later steps follow). Inputs after step n get exactly 0: they cannot reach :math:`h_n`.
"""

import numpy as np
import pytest

from rnnspec import closed_forms
from rnnspec.comparison import Tolerance, assert_agrees, ratio_tolerance, round_to_dtype
from rnnspec.records import Case, Record
from rnnspec.inputs import constant_parameters
from rnnspec.measure import measure, memoised

ELEVENS = constant_parameters("rnn_relu", 1, 1, weight=11.0)
LAW = "h_t = sum_{k=1..t} 11^k; dh_n/dx_t = 11^(n+1-t)"


def exploding_values(n: int) -> dict[str, np.ndarray]:
    """The closed form of the n-step run: every hidden state and every gradient of h_n."""
    hidden = np.array(closed_forms.exploding_hidden_states(n), dtype=np.float64).reshape(n, 1, 1)
    return {"output": hidden, "h_n": hidden[-1:].copy(), **closed_forms.exploding_gradients(n)}


def behaviour(n: int) -> str:
    return f"exploding gradient (relu RNN, weights 11, {n} steps)"


FIVE_STEPS = Record(__name__, "relu_rnn_weights_11_five_steps", kind="rnn_relu", behaviour=behaviour(5), law=LAW,
                    inputs=lambda: dict(parameters=ELEVENS, x=np.ones((5, 1, 1))),
                    closed_form=lambda parameters, x: exploding_values(len(x)))


@pytest.mark.derived("the documented recurrence in integer arithmetic: exact below 2^p, rounded to nearest beyond")
def test_notebook_values_hidden_states_and_gradients(device, dtype, spec_check):
    """Hidden states 11…177155, ∂W_hh 62810, ∂W_ih 16105, ∂x_t 11^(6−t), as the dtype holds them."""
    spec_check(FIVE_STEPS)


LONGEST = 16


@memoised
def every_length(implementation, device: str, dtype: str) -> dict:
    """Batch of LONGEST sequences of ones; sequence n - 1 takes its upstream gradient at step n only: ∂h_n/∂x."""
    steps = np.arange(LONGEST)
    grad_output = np.zeros((LONGEST, LONGEST, 1))
    grad_output[steps, steps, 0] = 1.0
    return measure("rnn_relu", ELEVENS, np.ones((LONGEST, LONGEST, 1)), implementation=implementation, device=device,
                   dtype=dtype,
                   grad_output=grad_output, grad_h_n=np.zeros((1, LONGEST, 1)))


#: The n-step run of every length n, compared relatively (11 … 11^16 span 16 decades).
LENGTHS = {n: Case(kind="rnn_relu", behaviour=behaviour(n), law=LAW, closed_form=lambda parameters, x: exploding_values(len(x)),
                   inputs=lambda n=n: dict(parameters=ELEVENS, x=np.ones((n, 1, 1))),
                   relative=frozenset({"output", "grad_input"}))
           for n in range(1, LONGEST + 1)}


@pytest.mark.derived("integers below 2^p are exact in every order of operations; beyond, within the tolerance")
def test_input_gradient_grows_by_factor_11_per_step(implementation, device, dtype, tolerance):
    """For every length n ≤ 16: h_t = Σ_{k≤t} 11^k, ∂h_n/∂x_t = 11^(n+1−t), ratio exactly 11: exact in the
    dtype's exact range, rounded beyond; and ∂h_n/∂x_t = 0 for t > n."""
    every = every_length(implementation, device, dtype)
    for n in range(1, LONGEST + 1):  # a failure names its n: [cpu-float32-n7]
        measured = {"output": every["output"][:n, n - 1:n], "grad_input": every["grad_input"][:n, n - 1:n]}
        truth = LENGTHS[n].truth()
        config = f"{device}-{dtype}-n{n}"
        exact = n <= closed_forms.exact_exploding_steps(dtype)
        met = {}
        for key in ("output", "grad_input"):
            met[key] = assert_agrees(
                measured[key], round_to_dtype(truth.values[key], dtype),
                Tolerance.exact(dtype, "integers below 2^p: every partial sum and product is one too")
                if exact else truth.tolerance_for(key, tolerance),
                behaviour=truth.behaviour, what=key, config=config, law=LAW,
                witness="the closed form" + (" (exact)" if exact else " rounded to " + dtype),
                envelope=None if exact else lambda key=key: truth.envelope_for(key, tolerance))
        assert_agrees(every["grad_input"][n:, n - 1, 0], np.zeros(LONGEST - n),
                      Tolerance.exact(dtype, "no path from x_t to h_n: its gradient is a sum of products by 0"),
                      behaviour=truth.behaviour, what="∂h_n/∂x_t for t > n", config=config, witness="causality",
                      law="h_n depends on x_1 … x_n only")
        grad = measured["grad_input"].flatten()
        finite = np.isfinite(grad[:-1])
        assert_agrees(grad[:-1][finite] / grad[1:][finite], np.full(finite.sum(), 11.0),
                      Tolerance.exact(dtype, "11^n is an integer below 2^p") if exact else
                      ratio_tolerance(met["grad_input"], met["grad_input"]),
                      behaviour="exploding gradient growth", what="∂x_t/∂x_(t+1)",
                      witness="the factor w_hh·relu' = 11", config=config, law="dh_n/dx_t = 11 · dh_n/dx_(t+1)")


@pytest.mark.derived("IEEE 754: a result beyond the largest finite float16, 65504, rounds to inf")
@pytest.mark.dtypes("float16")
def test_float16_overflows_to_inf_beyond_65504(implementation, device, dtype):
    """In float16, h_5 = 177155 and ∂x_1 = 161051 exceed 65504 and become inf; the rest stays finite."""
    measured = FIVE_STEPS.measured(implementation, device, "float16")
    h = measured["output"].flatten().tolist()
    gx = measured["grad_input"].flatten().tolist()
    assert h[4] == float("inf") and measured["h_n"].item() == float("inf"), (
        f"float16 overflow [{device}-float16]: h_5 should be inf (177155 > 65504), got {h[4]}")
    assert gx[0] == float("inf"), f"float16 overflow [{device}-float16]: ∂x_1 should be inf (161051 > 65504), got {gx[0]}"
    assert h[:4] == [11.0, 132.0, 1463.0, 16104.0] and gx[1:] == [14640.0, 1331.0, 121.0, 11.0], (
        f"float16 [{device}]: values below 65504 should stay finite and rounded: h={h}, ∂x={gx}")


@pytest.mark.derived("bfloat16 has float32's exponent and 8 significant bits: rounding to nearest, once or at every operation, gives these")
@pytest.mark.dtypes("bfloat16")
def test_bfloat16_keeps_the_range_but_rounds_1463_to_1464(implementation, device, dtype):
    """bfloat16 has float32's range (no overflow at 177155) but 8 significant bits: 1463 → 1464."""
    h = FIVE_STEPS.measured(implementation, device, "bfloat16")["output"].flatten().tolist()
    assert h == [11.0, 132.0, 1464.0, 16128.0, 177152.0], (
        f"bfloat16 rounding [{device}-bfloat16]: hidden states {h}, expected each sum of powers of 11 rounded "
        f"to 8 significant bits: [11, 132, 1464, 16128, 177152]")
