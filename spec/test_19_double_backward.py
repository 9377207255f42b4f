r"""Chapter 19. Double backward: the derivative of the backward pass, where PyTorch computes one.

A gradient computed with ``create_graph=True`` is itself differentiable: Hessian-vector products,
gradient penalties (WGAN-GP's, R1) and meta-learning differentiate a recurrent layer's backward pass
once more. Nothing in PyTorch's documentation promises it for recurrent layers; what releases do:

* **CPU** (torch 2.13): every module, layers and cells, computes its recurrence from
  differentiable operations (the composite kernels of ``aten/src/ATen/native/RNN.cpp``; in float64
  oneDNN never runs), so its backward has a backward. ``torch.autograd.gradgradcheck`` then holds:
  the second derivatives autograd computes, projected on random directions (``fast_mode``), agree
  with central finite differences of the first derivatives, in float64.
* **cuDNN** computes a layer (``nn.RNN``, ``nn.LSTM``, ``nn.GRU``; not the cells) with one fused
  kernel whose backward, ``_cudnn_rnn_backward``, has no derivative: double backward refuses with
  ``NotImplementedError`` naming ``_cudnn_rnn_backward`` (*Double backwards is not supported for
  CuDNN RNNs due to limitations in the CuDNN API*). That is PyTorch's source
  (``tools/autograd/derivatives.yaml``, ``not_implemented``) and its own module tests, which expect
  ``test_gradgrad`` to fail on CUDA with cuDNN; it was not run here (no GPU). The way round it,
  which PyTorch's message names, is to run the forward with ``torch.backends.cudnn.flags(enabled=False)``.

Configuration: L = 3 steps, N = 2, input size 2, hidden size 2, one layer, an initial state, weights
from a seeded NumPy generator (``rnnspec.measure.explicit_module``); a cell takes one step. The
second derivatives are taken with respect to the input, the initial state(s) and every parameter,
of every tensor the module returns (output and h_n, and c_n; a cell's h' and c').

:configuration: 2.13 (the torch release observed)
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch.autograd import gradgradcheck
from torch.autograd.gradcheck import GradcheckError

from rnnspec.contracts import assert_raises
from rnnspec.devices import DTYPES
from rnnspec.kinds import KINDS
from rnnspec.measure import EAGER, NO_GRADIENTS, explicit_module

L, N, IN, HIDDEN = 3, 2, 2, 2
LAW = ("d/dv <grad(f)(x), v> = the central difference (grad f(x + e v) - grad f(x - e v)) / 2e, to first order: "
       "torch.autograd.gradgradcheck's tolerances, float64")
WHERE = ("torch 2.13.0 on CPU (x86-64): every module; cuDNN's refusal from PyTorch's source and its own module tests "
         "(derivatives.yaml: _cudnn_rnn_backward not_implemented; test_gradgrad expected to fail with cuDNN)")


def cudnn_refuses(implementation, name: str, device: str) -> bool:
    """Whether torch.nn's layer runs on cuDNN here (a CUDA device, cuDNN enabled, not ROCm): its backward has none."""
    return (implementation is EAGER and not KINDS[name].cell and torch.device(device).type == "cuda"
            and torch.version.hip is None and torch.backends.cudnn.is_available() and torch.backends.cudnn.enabled)


def second_derivative_check(implementation, name: str, device: str):
    """gradgradcheck's call: the module as a function of (input, initial states, parameters), in float64."""
    kind = KINDS[name]
    module = explicit_module(name, IN, HIDDEN, implementation=implementation, device=device, dtype="float64", seed=19)
    rng = np.random.default_rng(19)
    tensor = lambda *shape: torch.tensor(rng.uniform(-1, 1, shape), dtype=DTYPES["float64"], device=device,  # noqa: E731
                                         requires_grad=True)
    x = tensor(N, IN) if kind.cell else tensor(L, N, IN)
    states = [tensor(*(() if kind.cell else (1,)), N, HIDDEN) for _ in range(2 if kind.recurrence == "lstm" else 1)]
    parameters = list(module.parameters())  # the module's own: gradgradcheck perturbs them in place
    no_gradients = getattr(module, NO_GRADIENTS, None)
    if no_gradients is not None:  # a deployed graph run for inference: a claim about derivatives does not apply
        raise no_gradients()

    def run(x, *rest):
        hx = tuple(rest[:2]) if kind.recurrence == "lstm" else rest[0]
        result = module(x, hx)
        if kind.cell:
            return result
        output, final = result
        return (output, *final) if isinstance(final, tuple) else (output, final)

    return lambda: gradgradcheck(run, (x, *states, *parameters), fast_mode=True)


@pytest.mark.observed(WHERE)
@pytest.mark.dtypes("float64")
@pytest.mark.parametrize("name", list(KINDS))
def test_double_backward_agrees_with_finite_differences_or_is_refused_by_cudnn(name, implementation, device, dtype,
                                                                              observe):
    """gradgradcheck holds in float64 (CPU); a layer on cuDNN refuses with NotImplementedError naming its backward."""
    check = second_derivative_check(implementation, name, device)
    config = f"{device}-{dtype}-{name}"
    if cudnn_refuses(implementation, name, device):
        assert_raises(check, NotImplementedError, ["_cudnn_rnn_backward"], config=config, observe=observe)
        return
    try:
        check()
    except GradcheckError as error:
        raise AssertionError(f"double backward [{config}]: the second derivatives disagree with finite differences "
                             f"of the first\n  law: {LAW}\n  {error}") from None
