r"""Chapter 15. Error contracts: what a recurrent module refuses, with which exception and message.

A wrong call must fail loudly, at once, with an exception that says what is wrong, not compute
something of the wrong shape. PyTorch once shipped the opposite: an input with the wrong number of
features was silently accepted when no initial state was given (CPU, fixed in 2.2). Each case
below is one test: the exception type and a regular expression for the stable part of PyTorch's
message (``pytest.raises(T, match=...)``, a search). The messages are PyTorch 2.13's, checked on
CPU (see ``shared/NOTES.md``).

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
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

import pytest
import torch

from rnnspec.module_kinds import MODULES, explicit_module

IN, HIDDEN, L, N = 3, 5, 4, 2


@dataclass(frozen=True)
class ConstructorCase:
    id: str
    module: str
    arguments: dict
    raises: type[Exception]
    match: str


CONSTRUCTOR_CASES = [
    ConstructorCase("rnn_tanh-proj_size", "rnn_tanh", {"proj_size": 2}, ValueError,
                    r"proj_size argument is only supported for LSTM, not RNN or GRU"),
    ConstructorCase("gru-proj_size", "gru", {"proj_size": 2}, ValueError,
                    r"proj_size argument is only supported for LSTM, not RNN or GRU"),
    ConstructorCase("lstm-proj_size_equal_to_hidden_size", "lstm", {"proj_size": HIDDEN}, ValueError,
                    r"proj_size has to be smaller than hidden_size"),
    ConstructorCase("rnn-nonlinearity_sigmoid", "rnn_tanh", {"nonlinearity": "sigmoid"}, ValueError,
                    r"Unknown nonlinearity 'sigmoid'\. Select from 'tanh' or 'relu'\."),
    ConstructorCase("lstm-hidden_size_zero", "lstm", {"hidden_size": 0}, ValueError,
                    r"hidden_size must be greater than zero"),
    ConstructorCase("gru-hidden_size_negative", "gru", {"hidden_size": -1}, ValueError,
                    r"hidden_size must be greater than zero"),
    ConstructorCase("rnn_relu-dropout_above_one", "rnn_relu", {"num_layers": 2, "dropout": 1.5}, ValueError,
                    r"dropout should be a number in range \[0, 1\]"),
    ConstructorCase("gru_cell-hidden_size_negative", "gru_cell", {"hidden_size": -1}, RuntimeError,
                    r"Trying to create tensor with negative dimension"),
]


def construct(name: str, arguments: dict):
    """Module ``name`` built by torch with input_size 3, hidden_size 5, and ``arguments`` on top."""
    arguments = {"input_size": IN, "hidden_size": HIDDEN, **arguments}
    with torch.random.fork_rng(devices=[]):  # the default initialisation draws from torch's stream
        return MODULES[name].construct(arguments.pop("input_size"), arguments.pop("hidden_size"), **arguments)


def assert_raises(action: Callable[[], object], raises: type[Exception], pattern: str, *, config: str) -> None:
    """``pytest.raises(raises, match=pattern)`` around ``action``, the exact type required, and a failure
    message that names the contract, the configuration and what happened instead."""
    __tracebackhide__ = True
    try:
        with pytest.raises(raises, match=pattern) as raised:
            action()
    except pytest.fail.Exception:
        got = "nothing: the call succeeded"
    except AssertionError as mismatch:  # raised by pytest.raises when the message does not match
        got = f"{raises.__name__} with another message: {mismatch}"
    except Exception as other:  # noqa: BLE001 (any other exception is the failure being described)
        got = f"{type(other).__name__}: {other}"
    else:
        if raised.type is raises:
            return
        got = f"{raised.type.__name__}, a subclass: {raised.value}"
    raise AssertionError(f"error contract [{config}]: expected {raises.__name__} with a message matching "
                         f"/{pattern}/\n  raised: {got}")


@pytest.mark.parametrize("case", CONSTRUCTOR_CASES, ids=lambda case: case.id)
def test_constructor_rejects_the_configuration(case):
    """The constructor raises the documented exception type, with a message matching the stated pattern."""
    assert_raises(lambda: construct(case.module, case.arguments), case.raises, case.match, config=case.id)


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

    def run(self, device: str):
        module = explicit_module(self.module, IN, HIDDEN, device=elsewhere(device) if self.module_elsewhere else device,
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
    match: Callable[[str], str] | str  # a pattern, or a function of the device giving one


WRONG_INPUT_SIZE = r"input\.size\(-1\) must be equal to input_size\. Expected 3, got 7"
ZERO_LENGTH = r"Expected sequence length to be larger than 0 in RNN"

FORWARD_CASES = [
    ForwardCase("rnn_tanh-input_size_7_for_3_without_h0", Call("rnn_tanh", {}, (L, N, 7)), RuntimeError,
                WRONG_INPUT_SIZE),
    ForwardCase("lstm-input_size_7_for_3_without_h0", Call("lstm", {}, (L, N, 7)), RuntimeError, WRONG_INPUT_SIZE),
    ForwardCase("gru-input_size_7_for_3_without_h0", Call("gru", {}, (L, N, 7)), RuntimeError, WRONG_INPUT_SIZE),
    ForwardCase("lstm-input_size_7_for_3_with_h0",
                Call("lstm", {}, (L, N, 7), ((1, N, HIDDEN), (1, N, HIDDEN))), RuntimeError, WRONG_INPUT_SIZE),
    ForwardCase("gru-h0_with_6_features_for_5", Call("gru", {}, (L, N, IN), ((1, N, 6),)), RuntimeError,
                r"Expected hidden size \(1, 2, 5\), got \[1, 2, 6\]"),
    ForwardCase("lstm-c0_with_6_features_for_5", Call("lstm", {}, (L, N, IN), ((1, N, HIDDEN), (1, N, 6))),
                RuntimeError, r"Expected hidden\[1\] size \(1, 2, 5\), got \[1, 2, 6\]"),
    ForwardCase("rnn_tanh-h0_for_2_layers_given_to_1", Call("rnn_tanh", {}, (L, N, IN), ((2, N, HIDDEN),)),
                RuntimeError, r"Expected hidden size \(1, 2, 5\), got \[2, 2, 5\]"),
    ForwardCase("lstm-h0_batch_3_for_input_batch_2",
                Call("lstm", {"num_layers": 2}, (L, N, IN), ((2, 3, HIDDEN), (2, 3, HIDDEN))), RuntimeError,
                r"Expected hidden\[0\] size \(2, 2, 5\), got \[2, 3, 5\]"),
    ForwardCase("gru-batch_first-h0_batch_is_the_sequence_length",
                Call("gru", {"batch_first": True}, (N, L, IN), ((1, L, HIDDEN),)), RuntimeError,
                r"Expected hidden size \(1, 2, 5\), got \[1, 4, 5\]"),
    ForwardCase("rnn_tanh-2d_h0_for_batched_input", Call("rnn_tanh", {}, (L, N, IN), ((1, HIDDEN),)), RuntimeError,
                r"For batched 3-D input, hx should also be 3-D but got 2-D tensor"),
    ForwardCase("rnn_relu-3d_h0_for_unbatched_input", Call("rnn_relu", {}, (L, IN), ((1, 1, HIDDEN),)),
                RuntimeError, r"For unbatched 2-D input, hx should also be 2-D but got 3-D tensor"),
    ForwardCase("gru-4d_input", Call("gru", {}, (1, L, N, IN)), ValueError,
                r"GRU: Expected input to be 2D or 3D, got 4D instead"),
    ForwardCase("lstm-float16_input_float32_weights", Call("lstm", {}, (L, N, IN), input_dtype=torch.float16),
                ValueError, r"RNN input dtype \(torch\.float16\) does not match weight dtype \(torch\.float32\)"),
    ForwardCase("rnn_tanh-zero_length_sequence", Call("rnn_tanh", {}, (0, N, IN)), RuntimeError, ZERO_LENGTH),
    ForwardCase("lstm-zero_length_sequence", Call("lstm", {"bidirectional": True}, (0, N, IN)), RuntimeError,
                ZERO_LENGTH),
    ForwardCase("gru-batch_first-zero_length_sequence", Call("gru", {"batch_first": True}, (N, 0, IN)), RuntimeError,
                ZERO_LENGTH),
    ForwardCase("lstm-weights_on_another_device", Call("lstm", {}, (L, N, IN), module_elsewhere=True), RuntimeError,
                lambda device: f"Input and parameter tensors are not at the same device, found input tensor at "
                               f"{named(device)} and parameter tensor at {named(elsewhere(device))}"),
    ForwardCase("rnn_tanh-h0_on_another_device", Call("rnn_tanh", {}, (L, N, IN), ((1, N, HIDDEN),),
                                                      state_elsewhere=True), RuntimeError,
                lambda device: f"Input and hidden tensors are not at the same device, found input tensor at "
                               f"{named(device)} and hidden tensor at {named(elsewhere(device))}"),
    ForwardCase("rnn_tanh_cell-nonlinearity_sigmoid_fails_at_forward",
                Call("rnn_tanh_cell", {"nonlinearity": "sigmoid"}, (N, IN)), RuntimeError,
                r"Unknown nonlinearity: sigmoid"),
]


@pytest.mark.parametrize("case", FORWARD_CASES, ids=lambda case: case.id)
def test_forward_rejects_the_call(case, device):
    """The forward raises the documented exception type, with a message matching the stated pattern."""
    pattern = case.match(device) if callable(case.match) else case.match
    assert_raises(lambda: case.call.run(device), case.raises, pattern, config=f"{device}-float32-{case.id}")
