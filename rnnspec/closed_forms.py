"""Closed forms for the notebook's behaviours: the second witness that needs no reference run.

Integers are computed with Python's exact integers, then converted once to float64.
"""

from __future__ import annotations

import numpy as np

from rnnspec import numpy_reference

#: Significand bits (with the implicit bit) of each dtype: every integer up to 2**p is exact.
SIGNIFICAND_BITS = {"float64": 53, "float32": 24, "bfloat16": 8, "float16": 11}


def exploding_hidden_states(n: int, w: int = 11) -> list[int]:
    """relu RNN, w_ih = w_hh = w, biases 0, x_t = 1, h_0 = 0: h_t = w + w h_{t-1} = sum_{k=1..t} w^k."""
    return [sum(w**k for k in range(1, t + 1)) for t in range(1, n + 1)]


def exploding_gradients(n: int, w: int = 11) -> dict[str, np.ndarray]:
    """Backward of h_n with upstream 1 through the same relu RNN (every pre-activation is positive).

    The adjoint of h_t is delta_t = dh_n/dh_t = w^(n-t) (relu' = 1), so
      dx_t     = w_ih delta_t          = w^(n+1-t)
      dW_ih    = sum_t delta_t x_t     = sum_{j=0..n-1} w^j  (= dbias_ih = dbias_hh)
      dW_hh    = sum_t delta_t h_{t-1} (h_0 = 0)
    """
    h = [0] + exploding_hidden_states(n, w)
    delta = [w ** (n - t) for t in range(1, n + 1)]
    d_bias = sum(delta)
    return {
        "grad_input": np.array([float(w * d) for d in delta]).reshape(n, 1, 1),
        "grad_weight_ih_l0": np.array([[float(d_bias)]]),
        "grad_weight_hh_l0": np.array([[float(sum(d * h[t - 1] for t, d in enumerate(delta, start=1)))]]),
        "grad_bias_ih_l0": np.array([float(d_bias)]),
        "grad_bias_hh_l0": np.array([float(d_bias)]),
    }


def exact_exploding_steps(dtype: str, w: int = 11) -> int:
    """The longest sequence whose hidden states and input gradients the dtype holds exactly.

    Every integer up to 2^p is exact in a dtype with p significand bits; the largest number in
    play is h_n = sum_{k=1..n} w^k > w^n. float64: n = 15 (h_15 = 4.6e15 < 2^53); float32: n = 6
    (h_6 = 1948716 < 2^24, 11^7 > 2^24); float16: n = 3 (h_3 = 1463 < 2^11); bfloat16: n = 2
    (h_2 = 132 < 2^8, h_3 = 1463 > 2^8, hence 1463 -> 1464).
    """
    limit = 2 ** SIGNIFICAND_BITS[dtype]
    n = 0
    while exploding_hidden_states(n + 1, w)[-1] <= limit:
        n += 1
    return n


def float16_underflow_threshold() -> float:
    """Half of float16's smallest subnormal, 2^-25 ≈ 2.98e-8: anything smaller rounds to exactly 0."""
    return 2.0**-25


def input_gradient_ratio(h_t: np.ndarray, w_hh: float) -> np.ndarray:
    """tanh RNN, one unit, upstream gradient only on h_T: dx_t / dx_{t+1} = w_hh (1 - h_t^2).

    With delta_t = dh_T/dh_t: delta_t = delta_{t+1} w_hh (1 - h_{t+1}^2) and
    dx_t = w_ih (1 - h_t^2) delta_t, so the ratio of consecutive input gradients is
      dx_t / dx_{t+1} = (1 - h_t^2) delta_t / ((1 - h_{t+1}^2) delta_{t+1}) = w_hh (1 - h_t^2),
    the derivative of the step *leaving* h_t, evaluated at the earlier of the two steps.
    """
    return w_hh * (1.0 - np.asarray(h_t, dtype=np.float64) ** 2)


def truncated_bptt_gradients(kind: str, parameters: dict, x: np.ndarray, chunk: int, *, carry: bool) -> list[dict]:
    """The laws of truncated BPTT, one entry per chunk of ``chunk`` steps with h_n.backward() after each.

    (i) Without carried state every chunk starts from h_0 = 0, so its gradients are the
        ``chunk``-step gradients from zero over its own inputs.
    (ii) With the state carried but detached, chunk k starts from the full sequence's state
        h_{chunk*(k-1)}, treated as a constant: its gradients are the ``chunk``-step gradients from
        that state, and nothing flows into earlier chunks.
    Each entry holds ``"input"`` and every parameter's gradient, as numpy_reference.backward returns.
    """
    full = numpy_reference.forward(kind, parameters, x)
    gradients = []
    for start in range(0, len(x), chunk):
        h0 = full.output[start - 1:start] if carry and start else None
        run = numpy_reference.forward(kind, parameters, x[start:start + chunk], h0)
        gradients.append(numpy_reference.backward(run, grad_h_n=np.ones_like(run.h_n)))
    return gradients
