"""The one table of module kinds: every recurrent module the spec covers, by one name each.

Four recurrences (``RECURRENCES``), each as a layer and as a cell, eight modules in all:

==================  =========================  ================  =====  ====
name                torch module               recurrence        cell   gates
==================  =========================  ================  =====  ====
``rnn_tanh``        ``nn.RNN(nonlinearity='tanh')``      rnn_tanh          no     1
``rnn_relu``        ``nn.RNN(nonlinearity='relu')``      rnn_relu          no     1
``lstm``            ``nn.LSTM``                lstm              no     4 (i, f, g, o)
``gru``             ``nn.GRU``                 gru               no     3 (r, z, n)
``rnn_tanh_cell``   ``nn.RNNCell(nonlinearity='tanh')``  rnn_tanh          yes    1
``rnn_relu_cell``   ``nn.RNNCell(nonlinearity='relu')``  rnn_relu          yes    1
``lstm_cell``       ``nn.LSTMCell``            lstm              yes    4
``gru_cell``        ``nn.GRUCell``             gru               yes    3
==================  =========================  ================  =====  ====

The NumPy reference, the runs on torch, the targets, the torch loop of the mutant zoo and every
chapter take their names and classes from here. Importing this module imports no torch (the
reference imports it): a kind's class is looked up in ``torch.nn`` when it is first used.
"""

from __future__ import annotations

from dataclasses import dataclass, field

#: The recurrences, each computed by one layer module and one cell module.
RECURRENCES = ("rnn_tanh", "rnn_relu", "lstm", "gru")
#: Stacked gate blocks in weight_ih / weight_hh, per recurrence.
GATES = {"rnn_tanh": 1, "rnn_relu": 1, "lstm": 4, "gru": 3}
#: How failure messages and documents name each recurrence's layer and cell.
LAYER_NAMES = {"rnn_tanh": "RNN(tanh)", "rnn_relu": "RNN(relu)", "lstm": "LSTM", "gru": "GRU"}
CELL_NAMES = {"rnn_tanh": "RNNCell(tanh)", "rnn_relu": "RNNCell(relu)", "lstm": "LSTMCell", "gru": "GRUCell"}


@dataclass(frozen=True)
class Kind:
    """One module: its name, the recurrence it computes, its torch class and the options that select it."""

    name: str
    recurrence: str  # one of RECURRENCES: what the NumPy reference computes for it
    class_name: str  # in torch.nn
    options: dict = field(default_factory=dict)
    cell: bool = False  # one step (nn.*Cell) rather than a whole sequence

    @property
    def module_class(self):
        from torch import nn  # noqa: PLC0415 (the reference imports this module without torch)

        return getattr(nn, self.class_name)

    @property
    def gates(self) -> int:
        return GATES[self.recurrence]

    def construct(self, input_size: int, hidden_size: int, **options):
        """The module as torch builds it (default initialisation); ``options`` override the kind's own."""
        return self.module_class(input_size, hidden_size, **{**self.options, **options})


def _kinds() -> dict[str, Kind]:
    table = {}
    for cell in (False, True):
        for recurrence in RECURRENCES:
            name = f"{recurrence}_cell" if cell else recurrence
            base = {"rnn_tanh": "RNN", "rnn_relu": "RNN", "lstm": "LSTM", "gru": "GRU"}[recurrence]
            options = {"nonlinearity": recurrence.removeprefix("rnn_")} if recurrence.startswith("rnn_") else {}
            table[name] = Kind(name, recurrence, base + ("Cell" if cell else ""), options, cell)
    return table


#: The eight modules, by the name used in test ids and by ``--target`` factories.
KINDS: dict[str, Kind] = _kinds()


def layer(recurrence: str) -> Kind:
    """The layer module of a recurrence (``nn.LSTM`` for ``lstm``)."""
    return KINDS[recurrence]


def cell(recurrence: str) -> Kind:
    """The cell module of a recurrence (``nn.LSTMCell`` for ``lstm``)."""
    return KINDS[f"{recurrence}_cell"]
