r"""Chapter 13. Shapes: what every recurrent module returns, as formulas of its configuration.

Notation (`torch.nn.LSTM <https://pytorch.org/docs/stable/generated/torch.nn.LSTM.html>`_):
L the sequence length, N the batch size, :math:`H_{in}` the input size, H the hidden size,
P the projection size (LSTM only, ``proj_size``; 0 means none), D = 2 for a bidirectional
module and 1 otherwise, and

$$ H_{out} = \begin{cases} P & \text{if } P > 0 \\ H & \text{otherwise.} \end{cases} $$

The layers (``nn.RNN``, ``nn.LSTM``, ``nn.GRU``) take input (L, N, :math:`H_{in}`), or
(N, L, :math:`H_{in}`) with ``batch_first=True``, or an unbatched (L, :math:`H_{in}`), and return

$$ \text{output}: (L, N, D\,H_{out}) \quad
   [\text{batch\_first}: (N, L, D\,H_{out});\ \text{unbatched}: (L, D\,H_{out})] $$
$$ h_n: (D \cdot \text{num\_layers}, N, H_{out}) \quad [\text{unbatched}: (D \cdot \text{num\_layers}, H_{out})] $$
$$ c_n\ (\text{LSTM}): (D \cdot \text{num\_layers}, N, H) \quad [\text{unbatched}: (D \cdot \text{num\_layers}, H)] $$

``batch_first`` changes the layout of the input and of ``output`` only, never of h_0/c_0 or
h_n/c_n, and has no effect on unbatched input. The initial states h_0 and c_0, when given, have
the shapes of h_n and c_n. The cells (``nn.RNNCell``, ``nn.LSTMCell``, ``nn.GRUCell``) take one
step, input (N, :math:`H_{in}`) or unbatched (:math:`H_{in}`), and return h' (and c') of shape
(N, H), or (H) unbatched.

The sizes are chosen so that no two dimensions of one tensor are equal: L = 5, N = 7,
:math:`H_{in}` = 3, H = 11, P = 8, so :math:`D\,H_{out}` ∈ {11, 22, 8, 16} and
D·num_layers ∈ {1, 2, 3, 4, 6}. A layout bug that swaps two dimensions (batch and time under
``batch_first``, a bug PyTorch once shipped on one backend) therefore changes the shape.

The grid covers each kind with one and several layers, both directions, both layouts, batched
and unbatched input, and initial states given or omitted, without the full product. An empty
batch (N = 0) is accepted and gives empty tensors of the same formulas (a zero-length *sequence*
is an error: chapter 15). Shapes do not
depend on the dtype: every case runs in float32, which every device supports, forward only,
without autograd; it runs on every device (a backend can get the layout wrong).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pytest
import torch

from rnnspec import authority
from rnnspec.kinds import KINDS
from rnnspec.measure import explicit_module

# torch 2.13's CPU LSTM with projections says once per process that oneDNN does not run it (it falls
# back to its default implementation): an implementation notice, not a behaviour of the module.
pytestmark = pytest.mark.filterwarnings("ignore:LSTM with projections is not supported with oneDNN:UserWarning")

L, N, H_IN, H, P = 5, 7, 3, 11, 8


@dataclass(frozen=True)
class Case:
    """One configuration of one module, and the words of its test id."""

    module: str
    layers: int = 1
    bidirectional: bool = False
    batch_first: bool = False
    unbatched: bool = False
    proj: int = 0
    with_h0: bool = False
    batch: int = N  # 0: an empty batch

    @property
    def cell(self) -> bool:
        return KINDS[self.module].cell

    @property
    def id(self) -> str:
        words = [self.module]
        if not self.cell:
            words += [f"{self.layers}layer" + ("s" if self.layers > 1 else ""),
                      "bidir" if self.bidirectional else "unidir",
                      "batch_first" if self.batch_first else "seq_first"]
        words.append("unbatched" if self.unbatched else "empty_batch" if self.batch == 0 else "batched")
        if self.proj:
            words.append(f"proj{self.proj}")
        if self.with_h0:
            words.append("with_h0")
        return "-".join(words)

    def options(self) -> dict:
        """The module's constructor options (a cell has none of these)."""
        if self.cell:
            return {}
        options = {"num_layers": self.layers, "bidirectional": self.bidirectional, "batch_first": self.batch_first}
        return {**options, "proj_size": self.proj} if self.proj else options


def layer_cases(kind: str) -> list[Case]:
    return [
        Case(kind),
        Case(kind, layers=2, bidirectional=True, with_h0=True),
        Case(kind, layers=3, batch_first=True, with_h0=True),
        Case(kind, layers=2, bidirectional=True, batch_first=True, unbatched=True),
        Case(kind, layers=1, bidirectional=True, unbatched=True, with_h0=True),
    ]


CASES = [
    *layer_cases("rnn_tanh"), *layer_cases("lstm"), *layer_cases("gru"),
    Case("rnn_relu", layers=2, bidirectional=True, batch_first=True, with_h0=True),
    Case("lstm", proj=P),
    Case("lstm", layers=2, bidirectional=True, batch_first=True, proj=P, with_h0=True),
    Case("lstm", layers=3, bidirectional=True, unbatched=True, proj=P, with_h0=True),
    Case("lstm_cell"),
    Case("lstm_cell", unbatched=True, with_h0=True),
    Case("gru_cell", with_h0=True),
    Case("rnn_tanh_cell", unbatched=True),
    Case("lstm", layers=2, bidirectional=True, batch=0),
    Case("gru", batch_first=True, batch=0, with_h0=True),
]


def expected_shapes(case: Case) -> dict[str, tuple[int, ...]]:
    """The formulas of the module docstring: the shape of every returned tensor."""
    batch = () if case.unbatched else (case.batch,)
    if case.cell:
        shapes = {"h'": batch + (H,)}
        if KINDS[case.module].recurrence == "lstm":
            shapes["c'"] = batch + (H,)
        return shapes
    directions = 2 if case.bidirectional else 1
    h_out = case.proj or H
    if case.unbatched:
        output = (L, directions * h_out)
    elif case.batch_first:
        output = (case.batch, L, directions * h_out)
    else:
        output = (L, case.batch, directions * h_out)
    shapes = {"output": output, "h_n": (directions * case.layers,) + batch + (h_out,)}
    if KINDS[case.module].recurrence == "lstm":
        shapes["c_n"] = (directions * case.layers,) + batch + (H,)
    return shapes


def formulas(case: Case) -> str:
    """The law, as failure messages quote it."""
    if case.cell:
        return "h', c': (N, H), unbatched (H)"
    return ("output: (L, N, D·H_out), batch_first (N, L, D·H_out), unbatched (L, D·H_out); "
            "h_n: (D·num_layers, [N,] H_out); c_n: (D·num_layers, [N,] H); H_out = proj_size or H")


def run(implementation, case: Case, device: str) -> dict[str, tuple[int, ...]]:
    """The module's forward (explicit weights and input, no autograd): the shape of every returned tensor."""
    module = explicit_module(case.module, H_IN, H, implementation=implementation, device=device, dtype="float32",
                             **case.options())
    rng = np.random.default_rng(13)
    as_tensor = lambda shape: torch.tensor(rng.uniform(-1, 1, shape), dtype=torch.float32, device=device)  # noqa: E731
    batch = () if case.unbatched else (case.batch,)
    is_lstm = KINDS[case.module].recurrence == "lstm"
    if case.cell:
        x = as_tensor(batch + (H_IN,))
        state = None
        if case.with_h0:
            state = (as_tensor(batch + (H,)), as_tensor(batch + (H,))) if is_lstm else as_tensor(batch + (H,))
        with torch.no_grad():
            result = module(x, state)
        return {"h'": tuple(result[0].shape), "c'": tuple(result[1].shape)} if is_lstm else {"h'": tuple(result.shape)}
    x = as_tensor((case.batch, L, H_IN) if case.batch_first and not case.unbatched else
                  (L, H_IN) if case.unbatched else (L, case.batch, H_IN))
    state = None
    if case.with_h0:  # the initial states have the shapes of h_n and c_n
        expected = expected_shapes(case)
        h0 = as_tensor(expected["h_n"])
        state = (h0, as_tensor(expected["c_n"])) if is_lstm else h0
    with torch.no_grad():
        output, final = module(x, state)
    h_n, c_n = final if is_lstm else (final, None)
    shapes = {"output": tuple(output.shape), "h_n": tuple(h_n.shape)}
    if c_n is not None:
        shapes["c_n"] = tuple(c_n.shape)
    return shapes


@pytest.mark.documented(authority.LAYERS + ' ' + authority.CELLS)
@pytest.mark.parametrize("case", CASES, ids=lambda case: case.id)
def test_returned_shapes_follow_the_formulas(case, implementation, device):
    """output, h_n and c_n (h' and c' for a cell) have the shapes the formulas give."""
    got, expected = run(implementation, case, device), expected_shapes(case)
    assert got == expected, (
        f"shape contract [{device}-float32-{case.id}]: returned shapes {got}, the formulas give {expected}\n"
        f"  sizes: L={L}, N={case.batch}, H_in={H_IN}, H={H}, proj_size={case.proj}, num_layers={case.layers}, "
        f"D={2 if case.bidirectional else 1}\n"
        f"  law: {formulas(case)}")
