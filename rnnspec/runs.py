"""One recurrent run, measured on torch and derived by the NumPy reference, with the same names.

Both return ``{"output", "h_n", ["c_n"], "grad_input", "grad_<parameter>"...}`` for a forward pass
followed by a backward pass of an upstream gradient on ``h_n`` (and optionally on ``output``), as
the notebook does with ``h_n.backward(...)``. Weights are always explicit, never torch's random
initialisation: PyTorch promises no stable random stream across releases.
"""

from __future__ import annotations

import functools

import numpy as np
import torch
from torch import nn

from rnnspec import numpy_reference
from rnnspec.comparison import as_float64
from rnnspec.platform import DTYPES

#: The module behind each kind of recurrent layer, with the constructor option that selects it.
LAYERS = {
    "rnn_tanh": (nn.RNN, {"nonlinearity": "tanh"}),
    "rnn_relu": (nn.RNN, {"nonlinearity": "relu"}),
    "lstm": (nn.LSTM, {}),
    "gru": (nn.GRU, {}),
}


def constant_parameters(kind: str, input_size: int, hidden_size: int, *, weight: float, bias: float = 0.0,
                        **options) -> dict[str, np.ndarray]:
    """Every weight set to ``weight`` and every bias to ``bias``, as the notebook's ``init.constant_`` does."""
    shapes = numpy_reference.parameter_shapes(kind, input_size, hidden_size, **options)
    return {name: np.full(shape, bias if name.startswith("bias") else weight) for name, shape in shapes.items()}


def build(kind: str, parameters: dict[str, np.ndarray], *, device: str, dtype: str, **options) -> nn.Module:
    """The torch layer of ``kind`` holding exactly ``parameters`` (rounded to ``dtype``)."""
    module_class, kind_options = LAYERS[kind]
    input_size = parameters["weight_ih_l0"].shape[1]
    hidden_size = parameters["weight_ih_l0"].shape[0] // numpy_reference.gate_count(kind)
    module = module_class(input_size, hidden_size, bias="bias_ih_l0" in parameters, **kind_options, **options)
    names = [name for name, _ in module.named_parameters()]
    if sorted(names) != sorted(parameters):
        raise ValueError(f"{kind} with {options} has parameters {names}, given {sorted(parameters)}")
    with torch.no_grad():
        for name, parameter in module.named_parameters():
            parameter.copy_(torch.as_tensor(parameters[name], dtype=torch.float64))
    return module.to(device=device, dtype=DTYPES[dtype])


def measure(kind: str, parameters: dict[str, np.ndarray], x, *, device: str, dtype: str, h0=None,
            grad_h_n=None, grad_output=None, **options) -> dict[str, torch.Tensor]:
    """Run torch's layer forward, then backward from ``grad_h_n`` (default ones) and ``grad_output``."""
    module = build(kind, parameters, device=device, dtype=dtype, **options)
    as_tensor = lambda value: torch.tensor(np.asarray(value, dtype=np.float64), dtype=DTYPES[dtype], device=device)
    x = as_tensor(x).requires_grad_()
    output, state = module(x) if h0 is None else module(x, as_tensor(h0))
    h_n, c_n = state if isinstance(state, tuple) else (state, None)
    # Backward of the scalar sum(grad_h_n * h_n) [+ sum(grad_output * output)]: the same gradients as
    # h_n.backward(grad_h_n) (multiplying by the upstream gradient is what backward does first),
    # without the explicit-gradient path, whose first use imports sympy (half a second).
    loss = h_n.sum() if grad_h_n is None else (h_n * as_tensor(grad_h_n)).sum()
    if grad_output is not None:
        loss = loss + (output * as_tensor(grad_output)).sum()
    loss.backward()
    measured = {"output": output, "h_n": h_n, "grad_input": x.grad}
    if c_n is not None:
        measured["c_n"] = c_n
    measured.update({f"grad_{name}": p.grad for name, p in module.named_parameters()})
    return measured


def derive(kind: str, parameters: dict[str, np.ndarray], x, *, h0=None, grad_h_n=None, grad_output=None,
           **options) -> dict[str, np.ndarray]:
    """The same run through the NumPy reference: float64, forward and hand-written BPTT, no torch."""
    forward = numpy_reference.forward(kind, parameters, x, h0, **options)
    grads = numpy_reference.backward(
        forward,
        grad_output=grad_output,
        grad_h_n=np.ones_like(forward.h_n) if grad_h_n is None else grad_h_n,
    )
    derived = {"output": forward.output, "h_n": forward.h_n, "grad_input": grads["input"]}
    if forward.c_n is not None:
        derived["c_n"] = forward.c_n
    derived.update({f"grad_{name}": grads[name] for name in parameters})
    return derived


def frozen(value):
    """A run's results as read-only float64 arrays (dicts and tuples kept), safe to share between tests."""
    if isinstance(value, dict):
        return {key: frozen(item) for key, item in value.items()}
    if isinstance(value, (tuple, list)):
        return tuple(frozen(item) for item in value)
    array = as_float64(value)
    array.flags.writeable = False
    return array


def memoised(run):
    """Compute a chapter's run once per arguments (configuration, device, dtype) and share it.

    Several claims read the same run (values, a law, a dtype's special values); computing it once
    keeps the suite fast. The results are frozen, so no test can change what another one reads,
    and they depend on the arguments alone, so the order of tests does not matter.
    """
    cached = functools.cache(lambda *args, **kwargs: frozen(run(*args, **kwargs)))
    return functools.wraps(run)(cached)
