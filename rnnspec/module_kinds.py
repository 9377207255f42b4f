"""Every recurrent module the spec covers, layers and cells, by one name each, built with explicit weights.

The layers are ``nn.RNN`` (tanh, relu), ``nn.LSTM`` and ``nn.GRU``; the cells ``nn.RNNCell``
(tanh, relu), ``nn.LSTMCell`` and ``nn.GRUCell``. Chapters that state one contract for all eight
(shapes, error contracts, the support matrix) take their names from :data:`MODULES` and build
them with :func:`explicit_module`: weights drawn by NumPy's generator from a seed (the same on
every machine and release), never torch's default random initialisation, and torch's random
stream is left as it was (the constructors' own initialisation runs inside ``fork_rng``).
"""

from __future__ import annotations

from dataclasses import dataclass

from torch import nn

from rnnspec.runs import build, random_parameters


@dataclass(frozen=True)
class ModuleKind:
    """One module: its class, the recurrence it computes (a NumPy reference kind) and its options."""

    module_class: type[nn.Module]
    kind: str  # rnn_tanh, rnn_relu, lstm or gru: the recurrence, as in rnnspec.runs.LAYERS
    options: dict
    cell: bool  # one step (nn.*Cell) rather than a whole sequence

    def construct(self, input_size: int, hidden_size: int, **options) -> nn.Module:
        """The module as torch builds it (default initialisation); ``options`` override the kind's own."""
        return self.module_class(input_size, hidden_size, **{**self.options, **options})


#: The eight modules, by the name used in test ids.
MODULES: dict[str, ModuleKind] = {
    "rnn_tanh": ModuleKind(nn.RNN, "rnn_tanh", {"nonlinearity": "tanh"}, cell=False),
    "rnn_relu": ModuleKind(nn.RNN, "rnn_relu", {"nonlinearity": "relu"}, cell=False),
    "lstm": ModuleKind(nn.LSTM, "lstm", {}, cell=False),
    "gru": ModuleKind(nn.GRU, "gru", {}, cell=False),
    "rnn_tanh_cell": ModuleKind(nn.RNNCell, "rnn_tanh", {"nonlinearity": "tanh"}, cell=True),
    "rnn_relu_cell": ModuleKind(nn.RNNCell, "rnn_relu", {"nonlinearity": "relu"}, cell=True),
    "lstm_cell": ModuleKind(nn.LSTMCell, "lstm", {}, cell=True),
    "gru_cell": ModuleKind(nn.GRUCell, "gru", {}, cell=True),
}


def explicit_module(name: str, input_size: int, hidden_size: int, *, device: str, dtype: str, seed: int = 0,
                    **options) -> nn.Module:
    """Module ``name`` on ``device`` in ``dtype`` holding ``runs.random_parameters(seed)`` (rounded once, to ``dtype``).

    ``options``: bias, and for the layers num_layers, bidirectional, batch_first, proj_size, dropout.
    """
    spec = MODULES[name]
    shape_options = {key: options.pop(key) for key in ("num_layers", "bidirectional", "proj_size") if key in options}
    parameters = random_parameters(spec.kind, input_size, hidden_size, seed, bias=options.pop("bias", True),
                                   **shape_options)
    layer_options = {} if spec.cell else shape_options
    return build(spec.kind, parameters, device=device, dtype=dtype, cell=spec.cell, **layer_options, **options)
