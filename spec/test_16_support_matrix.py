r"""Chapter 16. The support matrix: which module runs forward and backward on which device and dtype.

For each of the eight modules (``nn.RNN`` with tanh and with relu, ``nn.LSTM``, ``nn.GRU``,
``nn.RNNCell`` tanh and relu, ``nn.LSTMCell``, ``nn.GRUCell``), each selected device and each
dtype, one test builds the module with explicit weights, runs a forward pass on a small batch
(L = 3 steps, N = 2, input size 3, hidden size 4; a cell takes one step) and a backward pass
from the sum of everything it returns, and states:

* the forward runs and returns tensors of the module's dtype, on the device;
* the backward runs and gives the input and every parameter a gradient of its own shape and dtype.

Values are not asserted here (the chapters before do that); this chapter is the table of what
runs at all. On the CPU of PyTorch 2.13 every combination runs: 8 modules × 4 dtypes.

Where a combination raises instead, ``expectations/<device type>.toml`` states it with the exact
error (see ``rnnspec/expectations.py``): the test becomes a strict xfail that must raise that
exception with that message. An upgrade that adds support turns the xfail into a failure (the
entry must go), and one that removes support fails with the new error, so the matrix cannot
silently drift. The test ids read as the matrix: ``[cpu-bfloat16-lstm]``.

:configuration: 2.13 (the torch release observed)
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from rnnspec import authority
from rnnspec.kinds import KINDS
from rnnspec.measure import explicit_module
from rnnspec.devices import DTYPES

L, N, IN, HIDDEN = 3, 2, 3, 4


def forward_and_backward(implementation, name: str, device: str, dtype: str) -> tuple[list, torch.Tensor, torch.nn.Module]:
    """The module's forward on explicit input, then the backward of the sum of all it returns."""
    module = explicit_module(name, IN, HIDDEN, implementation=implementation, device=device, dtype=dtype)
    shape = (N, IN) if KINDS[name].cell else (L, N, IN)
    x = torch.tensor(np.random.default_rng(16).uniform(-1, 1, shape), dtype=DTYPES[dtype], device=device,
                     requires_grad=True)
    result = module(x)
    if KINDS[name].cell:  # h' (and c')
        returned = list(result) if isinstance(result, tuple) else [result]
    else:  # output, h_n (and c_n)
        output, state = result
        returned = [output, *(state if isinstance(state, tuple) else (state,))]
    sum(t.sum() for t in returned).backward()
    return returned, x, module


@pytest.mark.observed(authority.RELEASES)
@pytest.mark.parametrize("name", list(KINDS))
def test_forward_and_backward_run(name, implementation, device, dtype):
    """Forward and backward run; outputs and gradients have the module's dtype, gradients the parameters' shapes."""
    config = f"{device}-{dtype}-{name}"
    try:
        returned, x, module = forward_and_backward(implementation, name, device, dtype)
    except Exception as error:  # the type and message stay as raised: expectations files match them
        if hasattr(error, "add_note"):
            error.add_note(f"support matrix [{config}]: forward or backward raised. If this combination is not "
                           f"supported, state it in expectations/{torch.device(device).type}.toml with "
                           f"raises = \"{type(error).__name__}\" and a match on the message (rnnspec/expectations.py)")
        raise
    wanted = (DTYPES[dtype], torch.device(device).type)
    for index, tensor in enumerate(returned):
        assert (tensor.dtype, tensor.device.type) == wanted, (
            f"support matrix [{config}]: returned tensor {index} is {tensor.dtype} on {tensor.device}, "
            f"expected {wanted[0]} on {wanted[1]}")
    for what, leaf in [("input", x), *module.named_parameters()]:
        grad = leaf.grad
        assert grad is not None and grad.shape == leaf.shape and grad.dtype == leaf.dtype, (
            f"support matrix [{config}]: the backward gave {what} "
            f"{'no gradient' if grad is None else f'a gradient {tuple(grad.shape)} {grad.dtype}'}, "
            f"expected {tuple(leaf.shape)} {leaf.dtype}")
