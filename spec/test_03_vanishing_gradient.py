r"""Chapter 3. Vanishing gradients: a contracting step shrinks the gradient geometrically.

The notebook's "Analyse d'un vanishing gradient": ``nn.RNN(1, 1)`` (tanh) with every weight 0.5
("Poids inférieur à 1"), biases 0, x = ones(20, 1, 1), then ``h_n.backward()``.

Forward. :math:`h_t = \tanh(0.5 + 0.5\,h_{t-1})` climbs from :math:`h_1 = \tanh 0.5 = 0.4621`
to the fixed point :math:`h^* = \tanh(0.5 + 0.5 h^*) \approx 0.6879`: h_n = 0.6879.

Backward. With :math:`\delta_t = \partial h_T/\partial h_t` (T = 20),
:math:`\delta_t = \delta_{t+1}\, w_{hh} (1 - h_{t+1}^2)` and
:math:`\partial h_T/\partial x_t = w_{ih}(1 - h_t^2)\,\delta_t`. Dividing two consecutive input
gradients, the :math:`(1 - h_{t+1}^2)` factors cancel:

$$ \frac{\partial h_T/\partial x_t}{\partial h_T/\partial x_{t+1}} = w_{hh}\,(1 - h_t^2), $$

the derivative of the step that *leaves* :math:`h_t`, evaluated at the earlier step t. Near the
fixed point it is :math:`0.5\,(1 - 0.6879^2) = 0.2634 < 1`, so each step back multiplies the
gradient by about a quarter: from 0.2634 at t = 20 (:math:`= w_{ih}(1 - h_{20}^2)`) down to
4.7499e-12 at t = 1, eleven orders of magnitude. The weight gradients are sums over those
terms: ∂W_hh = 0.4920, ∂W_ih = 0.7152 (the notebook's four decimals).

Comparison. These gradients span eleven decades, so they are compared **relatively**: an absolute
tolerance such as pytest-regressions' default 1e-8 would accept any value below it.

float16. Its smallest subnormal is :math:`2^{-24} \approx 5.96\times10^{-8}`; a true value below
half of it, :math:`2^{-25} \approx 2.98\times10^{-8}`, rounds to exactly 0. The true gradients at
t = 1…7 (4.7e-12 … 7.7e-9) lie far below: they **underflow to exactly 0**. t = 8 (2.938e-8) lies
within 1.4 % of the threshold, so a device may round either way: 0 or 5.96e-8 are both specified.
From t = 9 (1.1e-7) on the gradient is a nonzero subnormal, then normal from t = 14 (8.8e-5).

:configuration: 1e-8 (pytest-regressions' default absolute tolerance)
:derived: 1.4 = 100 * (2**-25 - tanh_rnn_weights_half_twenty_steps.grad_input[7]) / 2**-25
"""

import numpy as np
import pytest

from rnnspec import authority, closed_forms
from rnnspec.comparison import assert_agrees
from rnnspec.records import Record
from rnnspec.inputs import constant_parameters

HALVES = constant_parameters("rnn_tanh", 1, 1, weight=0.5)
NOTEBOOK = {  # as the notebook printed them: torch's 4 decimals, fixed or scientific
    "h_n": "0.6879", "grad_weight_hh_l0": "0.4920", "grad_weight_ih_l0": "0.7152",
    "grad_input[t=1]": "4.7499e-12", "grad_input[t=20]": "2.6340e-01",
}


def printed(value: float, like: str) -> str:
    return f"{value:.4e}" if "e" in like else f"{value:.4f}"


TWENTY_STEPS = Record(__name__, "tanh_rnn_weights_half_twenty_steps", kind="rnn_tanh",
                      behaviour="vanishing gradient (tanh RNN, weights 0.5, 20 steps)",
                      law="dh_T/dx_t = w_ih (1 - h_t^2) prod_{s>t} w_hh (1 - h_s^2)",
                      inputs=lambda: dict(parameters=HALVES, x=np.ones((20, 1, 1))),
                      relative=frozenset({"grad_input"}))


def run(implementation, device: str, dtype: str) -> dict:
    return TWENTY_STEPS.measured(implementation, device, dtype)


@pytest.mark.documented(authority.RNN)
def test_notebook_values_h_n_and_gradients(device, dtype, spec_check):
    """h_n, every gradient, ∂x from 4.7499e-12 to 0.2634: the reference rounded to the dtype, relatively."""
    spec_check(TWENTY_STEPS)


@pytest.mark.derived("the documented recurrence, far within the last printed digit in float64 and float32")
@pytest.mark.dtypes("float64", "float32")
def test_notebook_printed_numbers_hold_to_their_printed_digits(implementation, device, dtype):
    """The notebook's printed 0.6879, 0.4920, 0.7152, 4.7499e-12 and 0.2634 hold to their last digit."""
    measured = run(implementation, device, dtype)
    got = {"h_n": measured["h_n"].item(), "grad_weight_hh_l0": measured["grad_weight_hh_l0"].item(),
           "grad_weight_ih_l0": measured["grad_weight_ih_l0"].item(),
           "grad_input[t=1]": measured["grad_input"][0].item(), "grad_input[t=20]": measured["grad_input"][-1].item()}
    for name, text in NOTEBOOK.items():
        assert printed(got[name], text) == text, (
            f"vanishing gradient [{device}-{dtype}]: {name} = {got[name]!r} does not print as the notebook's {text}")


@pytest.mark.derived("backpropagation through the documented tanh recurrence")
def test_consecutive_input_gradient_ratio_is_w_hh_times_one_minus_h_squared(implementation, device, dtype, tolerance):
    """∂x_t / ∂x_{t+1} = w_hh (1 − h_t²), with h_t the measured hidden state at the earlier step."""
    measured = run(implementation, device, dtype)
    grad, h = measured["grad_input"].flatten(), measured["output"].flatten()
    normal = np.abs(grad[:-1]) >= np.finfo(np.float16).tiny if dtype == "float16" else np.ones(19, bool)
    ratio = grad[:-1][normal] / grad[1:][normal]
    assert_agrees(ratio, closed_forms.input_gradient_ratio(h[:-1][normal], w_hh=0.5),
                  tolerance.scaled(5, "two gradients within rtol each (2 rtol) against 1 - h_t^2 of a measured "
                                      "h_t, which moves 2h/(1-h^2) = 2.6 times as much"),
                  behaviour="vanishing gradient decay", what="∂x_t/∂x_(t+1)", witness="w_hh (1 - h_t^2)",
                  config=f"{device}-{dtype}", law="dx_t/dx_(t+1) = w_hh (1 - h_t^2)")


@pytest.mark.derived("IEEE 754: a value below half of float16's smallest subnormal, 2^-25, rounds to 0")
@pytest.mark.dtypes("float16")
def test_float16_early_gradients_underflow_to_exactly_zero(implementation, device, dtype):
    """In float16, ∂x_t for t = 1…7 (true values < 2^-25) is exactly 0; from t = 9 on it is nonzero."""
    grad = run(implementation, device, dtype)["grad_input"].flatten()
    truth = np.abs(TWENTY_STEPS.truth().values["grad_input"].flatten())
    assert (truth[:7] < closed_forms.float16_underflow_threshold()).all()
    assert (grad[:7] == 0).all(), (
        f"float16 underflow [{device}-float16]: ∂x_1…∂x_7 (true 4.7e-12…7.7e-9 < 2^-25) should be exactly 0, got {grad[:7]}")
    assert grad[7] in (0.0, 2.0**-24), f"float16 [{device}]: ∂x_8 (true 2.938e-8, at the threshold) is {grad[7]}"
    assert (grad[8:] > 0).all(), f"float16 [{device}]: ∂x_9…∂x_20 (true ≥ 1.1e-7) should be nonzero, got {grad[8:]}"
