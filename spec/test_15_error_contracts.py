r"""Chapter 15. Error contracts: what a recurrent module refuses, with which exception, naming what.

A wrong call must fail loudly, at once, with an exception that says what is wrong, not compute
something of the wrong shape. PyTorch once shipped the opposite: an input with the wrong number of
features was silently accepted when no initial state was given (CPU, fixed in 2.2). Each case
below is one test: the exception type, exactly, and the **facts its message names** (the sizes,
shapes, dtypes or devices that are wrong, as whole words or numbers), never the wording: the
wording is not promised and changes between releases (torch 2.6 said *input must have the type
torch.float32, got type torch.float16* where 2.13 says *RNN input dtype (torch.float16) does not
match weight dtype (torch.float32)*). The wording each release raises goes to the upgrade gate's
report, where a change shows as drift (``rnnspec/contracts.py``). The messages quoted below are
torch 2.13's; the types and facts hold from 2.5 to 2.15 on CPU.

**Constructor.** Checked in Python before any tensor exists, so these cases do not depend on the
device or dtype and run once:

* ``proj_size`` on ``nn.RNN`` or ``nn.GRU``: ValueError *proj_size argument is only supported
  for LSTM, not RNN or GRU*; on ``nn.LSTM``, ``proj_size >= hidden_size``: ValueError
  *proj_size has to be smaller than hidden_size*;
* a nonlinearity other than tanh or relu: ValueError *Unknown nonlinearity 'sigmoid'. Select
  from 'tanh' or 'relu'.*;
* ``hidden_size`` 0 or negative: ValueError *hidden_size must be greater than zero*;
* dropout outside [0, 1]: ValueError *dropout should be a number in range [0, 1] ...*.

The cells check less. ``nn.RNNCell(nonlinearity='sigmoid')`` is accepted and fails only at the
first forward (RuntimeError *Unknown nonlinearity: sigmoid*); ``nn.LSTMCell(3, 0)`` is accepted;
a negative hidden size fails while allocating the weights (RuntimeError *Trying to create tensor
with negative dimension*). The spec states these as they are: an upgrade that adds the checks
shows up here.

**Forward.** Checked per device (part of the checks live in the device's kernels), in float32:

* input feature size ≠ ``input_size``, with or without h_0: RuntimeError *input.size(-1) must be
  equal to input_size. Expected 3, got 7*;
* h_0 of the wrong shape (features, layers, or a batch that differs from the input's, which with
  ``batch_first`` is dimension 0): RuntimeError *Expected hidden size (1, 2, 5), got [1, 2, 6]*,
  for the LSTM *Expected hidden[0] size ...* (h_0) and *hidden[1]* (c_0);
* h_0 with the wrong number of dimensions: RuntimeError *For batched 3-D input, hx should also be
  3-D but got 2-D tensor* (and the unbatched counterpart); a 4-D input: ValueError *GRU: Expected
  input to be 2D or 3D, got 4D instead* (nn.RNN says *RNN: ... got 4D tensor instead*);
* input dtype ≠ weight dtype: ValueError *RNN input dtype (torch.float16) does not match weight
  dtype (torch.float32)* (float16 input into a float32 module: float64, the usual NumPy mistake,
  gives the same message but does not exist on every device);
* a zero-length sequence: RuntimeError *Expected sequence length to be larger than 0 in RNN*
  (an empty *batch* is accepted: see chapter 13);
* input and weights, or input and h_0, on different devices: RuntimeError *Input and parameter
  tensors are not at the same device, found input tensor at cpu and parameter tensor at meta*
  (*Input and hidden tensors ...* for h_0). The input is on the device under test and the other
  tensor elsewhere: on the ``meta`` device when testing the CPU (a CPU-only machine has no second
  device; ``meta`` tensors hold no values but have a device), on the CPU when testing an
  accelerator, a real cross-device call (the message then names e.g. ``cuda:0`` and ``cpu``).

:configuration: 2.2, 2.5, 2.6, 2.13, 2.15 (torch releases)
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

import pytest
import torch

from rnnspec import authority
from rnnspec.contracts import assert_raises
from rnnspec.kinds import KINDS
from rnnspec.measure import explicit_module

IN, HIDDEN, L, N = 3, 5, 4, 2


@dataclass(frozen=True)
class ConstructorCase:
    id: str
    module: str
    arguments: dict
    raises: type[Exception]
    names: tuple[str, ...]  # the facts the message names (regular expressions, each a whole word or number)


CONSTRUCTOR_CASES = [
    ConstructorCase("rnn_tanh-proj_size", "rnn_tanh", {"proj_size": 2}, ValueError, ("proj_size", "LSTM")),
    ConstructorCase("gru-proj_size", "gru", {"proj_size": 2}, ValueError, ("proj_size", "LSTM")),
    ConstructorCase("lstm-proj_size_equal_to_hidden_size", "lstm", {"proj_size": HIDDEN}, ValueError,
                    ("proj_size", "hidden_size")),
    ConstructorCase("rnn-nonlinearity_sigmoid", "rnn_tanh", {"nonlinearity": "sigmoid"}, ValueError,
                    ("sigmoid", "tanh", "relu")),
    ConstructorCase("lstm-hidden_size_zero", "lstm", {"hidden_size": 0}, ValueError, ("hidden_size",)),
    ConstructorCase("gru-hidden_size_negative", "gru", {"hidden_size": -1}, ValueError, ("hidden_size",)),
    ConstructorCase("rnn_relu-dropout_above_one", "rnn_relu", {"num_layers": 2, "dropout": 1.5}, ValueError,
                    ("dropout", r"\[0, 1\]")),
    ConstructorCase("gru_cell-hidden_size_negative", "gru_cell", {"hidden_size": -1}, RuntimeError,
                    ("negative", r"-3")),
]


def construct(name: str, arguments: dict):
    """Module ``name`` built by torch with input_size 3, hidden_size 5, and ``arguments`` on top."""
    arguments = {"input_size": IN, "hidden_size": HIDDEN, **arguments}
    with torch.random.fork_rng(devices=[]):  # the default initialisation draws from torch's stream
        return KINDS[name].construct(arguments.pop("input_size"), arguments.pop("hidden_size"), **arguments)


@pytest.mark.observed(authority.RELEASES)
@pytest.mark.torch_nn_itself("states torch.nn's constructor checks, constructing torch's modules itself")
@pytest.mark.parametrize("case", CONSTRUCTOR_CASES, ids=lambda case: case.id)
def test_constructor_rejects_the_configuration(case, observe):
    """The constructor raises the stated exception type, its message naming what is wrong."""
    assert_raises(lambda: construct(case.module, case.arguments), case.raises, case.names, config=case.id,
                  observe=observe)


@pytest.mark.observed(authority.RELEASES)
@pytest.mark.torch_nn_itself("states torch.nn's constructor checks, constructing torch's modules itself")
def test_cells_accept_hidden_size_zero():
    """The cells do not check hidden_size: LSTMCell(3, 0) constructs (the layers raise ValueError)."""
    cell = construct("lstm_cell", {"hidden_size": 0})
    assert cell.weight_hh.shape == (0, 0), f"LSTMCell(3, 0): weight_hh has shape {tuple(cell.weight_hh.shape)}"


# ---------------------------------------------------------------------------------------------
# Forward
# ---------------------------------------------------------------------------------------------


def elsewhere(device: str) -> str:
    """A device that is not ``device``: meta for the CPU, the CPU for an accelerator."""
    return "meta" if torch.device(device).type == "cpu" else "cpu"


def named(device: str) -> str:
    """A pattern for ``device`` as PyTorch prints a tensor's device (``cuda`` is printed ``cuda:0``)."""
    return re.escape(torch.device(device).type) + r"(:\d+)?"


@dataclass(frozen=True)
class Call:
    """What one forward case builds and calls: every tensor on the device under test unless moved."""

    module: str
    options: dict
    input_shape: tuple
    state_shapes: tuple = ()  # h_0 (and c_0): none means omitted
    input_dtype: torch.dtype = torch.float32
    module_elsewhere: bool = False
    state_elsewhere: bool = False

    def run(self, implementation, device: str):
        module = explicit_module(self.module, IN, HIDDEN, implementation=implementation,
                                 device=elsewhere(device) if self.module_elsewhere else device,
                                 dtype="float32", **self.options)
        x = torch.ones(self.input_shape, dtype=self.input_dtype, device=device)
        where = elsewhere(device) if self.state_elsewhere else device
        states = [torch.zeros(shape, device=where) for shape in self.state_shapes]
        if not states:
            return module(x)
        return module(x, tuple(states) if len(states) == 2 else states[0])


@dataclass(frozen=True)
class ForwardCase:
    id: str
    call: Call
    raises: type[Exception]
    names: Callable[[str], tuple[str, ...]] | tuple[str, ...]  # the facts, or a function of the device giving them


WRONG_INPUT_SIZE = ("input_size", "3", "7")  # expected 3, given 7
ZERO_LENGTH = ("sequence length", "0")


def shapes(expected: str, given: str) -> tuple[str, ...]:
    """The facts of a wrong state shape: the expected and the given shape, written "1, 2, 5"."""
    return re.escape(expected), re.escape(given)


FORWARD_CASES = [
    ForwardCase("rnn_tanh-input_size_7_for_3_without_h0", Call("rnn_tanh", {}, (L, N, 7)), RuntimeError,
                WRONG_INPUT_SIZE),
    ForwardCase("lstm-input_size_7_for_3_without_h0", Call("lstm", {}, (L, N, 7)), RuntimeError, WRONG_INPUT_SIZE),
    ForwardCase("gru-input_size_7_for_3_without_h0", Call("gru", {}, (L, N, 7)), RuntimeError, WRONG_INPUT_SIZE),
    ForwardCase("lstm-input_size_7_for_3_with_h0",
                Call("lstm", {}, (L, N, 7), ((1, N, HIDDEN), (1, N, HIDDEN))), RuntimeError, WRONG_INPUT_SIZE),
    ForwardCase("gru-h0_with_6_features_for_5", Call("gru", {}, (L, N, IN), ((1, N, 6),)), RuntimeError,
                shapes("1, 2, 5", "1, 2, 6")),
    ForwardCase("lstm-c0_with_6_features_for_5", Call("lstm", {}, (L, N, IN), ((1, N, HIDDEN), (1, N, 6))),
                RuntimeError, (r"hidden\[1\]", *shapes("1, 2, 5", "1, 2, 6"))),
    ForwardCase("rnn_tanh-h0_for_2_layers_given_to_1", Call("rnn_tanh", {}, (L, N, IN), ((2, N, HIDDEN),)),
                RuntimeError, shapes("1, 2, 5", "2, 2, 5")),
    ForwardCase("lstm-h0_batch_3_for_input_batch_2",
                Call("lstm", {"num_layers": 2}, (L, N, IN), ((2, 3, HIDDEN), (2, 3, HIDDEN))), RuntimeError,
                (r"hidden\[0\]", *shapes("2, 2, 5", "2, 3, 5"))),
    ForwardCase("gru-batch_first-h0_batch_is_the_sequence_length",
                Call("gru", {"batch_first": True}, (N, L, IN), ((1, L, HIDDEN),)), RuntimeError,
                shapes("1, 2, 5", "1, 4, 5")),
    ForwardCase("rnn_tanh-2d_h0_for_batched_input", Call("rnn_tanh", {}, (L, N, IN), ((1, HIDDEN),)), RuntimeError,
                ("3-D", "2-D")),
    ForwardCase("rnn_relu-3d_h0_for_unbatched_input", Call("rnn_relu", {}, (L, IN), ((1, 1, HIDDEN),)),
                RuntimeError, ("2-D", "3-D")),
    ForwardCase("gru-4d_input", Call("gru", {}, (1, L, N, IN)), ValueError, ("2D", "3D", "4D")),
    ForwardCase("lstm-float16_input_float32_weights", Call("lstm", {}, (L, N, IN), input_dtype=torch.float16),
                ValueError, ("float16", "float32")),
    ForwardCase("rnn_tanh-zero_length_sequence", Call("rnn_tanh", {}, (0, N, IN)), RuntimeError, ZERO_LENGTH),
    ForwardCase("lstm-zero_length_sequence", Call("lstm", {"bidirectional": True}, (0, N, IN)), RuntimeError,
                ZERO_LENGTH),
    ForwardCase("gru-batch_first-zero_length_sequence", Call("gru", {"batch_first": True}, (N, 0, IN)), RuntimeError,
                ZERO_LENGTH),
    ForwardCase("lstm-weights_on_another_device", Call("lstm", {}, (L, N, IN), module_elsewhere=True), RuntimeError,
                lambda device: ("parameter", named(device), named(elsewhere(device)))),
    ForwardCase("rnn_tanh-h0_on_another_device", Call("rnn_tanh", {}, (L, N, IN), ((1, N, HIDDEN),),
                                                      state_elsewhere=True), RuntimeError,
                lambda device: ("hidden", named(device), named(elsewhere(device)))),
    ForwardCase("rnn_tanh_cell-nonlinearity_sigmoid_fails_at_forward",
                Call("rnn_tanh_cell", {"nonlinearity": "sigmoid"}, (N, IN)), RuntimeError, ("sigmoid",)),
]


@pytest.mark.observed(authority.RELEASES)
@pytest.mark.parametrize("case", FORWARD_CASES, ids=lambda case: case.id)
def test_forward_rejects_the_call(case, implementation, device, observe):
    """The forward raises the stated exception type, its message naming what is wrong."""
    names = case.names(device) if callable(case.names) else case.names
    assert_raises(lambda: case.call.run(implementation, device), case.raises, names, config=f"{device}-float32-{case.id}",
                  observe=observe)
