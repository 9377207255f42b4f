"""Deliberately wrong exports: ONNX graphs edited after a correct export, each a bug an exporter can ship.

``--target onnx:wrong:NAME`` exports each module as ``onnx:torchscript`` does (the TorchScript-based
exporter writes every recurrent layer as one ONNX ``RNN``, ``GRU`` or ``LSTM`` node, weights as
initializers; where torch no longer has it, the dynamo exporter) and applies the edit NAME to the
graph before ONNX Runtime loads it. The spec must reject each, as it must reject every mutant of
``rnnspec/mutants.py``; ``selftest/test_deployed_targets.py`` shows that the correct export passes
the tests that kill each wrong one. An edit leaves a graph without the nodes it edits as it is (a
GRU edit changes nothing in an LSTM), so each wrong export is wrong for the layers it names.

ONNX's recurrent operators (https://onnx.ai/onnx/operators/onnx__LSTM.html, ``GRU``, ``RNN``) take
``X, W, R, B, sequence_lens, initial_h[, initial_c]``; their gate order is i, o, f, c for the LSTM
(PyTorch's weight rows are i, f, g, o) and z, r, h for the GRU (PyTorch's r, z, n).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class WrongExport:
    name: str
    bug: str  # what the edited graph computes, in a sentence
    edit: Callable[[object], object]  # onnx.ModelProto -> onnx.ModelProto (edited in place and returned)


def _nodes(model, op_type: str):
    return [node for node in model.graph.node if node.op_type == op_type]


def _initializer(model, name: str):
    for tensor in model.graph.initializer:
        if tensor.name == name:
            return tensor
    raise LookupError(f"the exported graph computes {name!r} instead of holding it as an initializer; the wrong "
                      f"export edits initializers only")


def _replace(tensor, array: np.ndarray) -> None:
    from onnx import numpy_helper  # noqa: PLC0415 (the onnx extra)

    tensor.CopyFrom(numpy_helper.from_array(array.astype(numpy_helper.to_array(tensor).dtype), tensor.name))


def gru_linear_before_reset_0(model):
    """Every GRU node with ``linear_before_reset = 0``: n = tanh(W_in x + b_in + W_hn (r ⊙ h) + b_hn), the paper's
    reset form, where PyTorch computes r ⊙ (W_hn h + b_hn)."""
    from onnx import helper  # noqa: PLC0415

    for node in _nodes(model, "GRU"):
        kept = [a for a in node.attribute if a.name != "linear_before_reset"]
        del node.attribute[:]
        node.attribute.extend([*kept, helper.make_attribute("linear_before_reset", 0)])
    return model


def lstm_gates_in_pytorch_order(model):
    """Every LSTM node's W, R and B in PyTorch's row order (i, f, g, o) where ONNX reads i, o, f, c: the forget
    gate read as the output gate, the cell candidate as the forget gate, the output gate as the cell candidate."""
    from onnx import numpy_helper  # noqa: PLC0415

    onnx_to_pytorch = [0, 2, 3, 1]  # blocks i, o, f, c (ONNX) rearranged to i, f, c(=g), o
    for node in _nodes(model, "LSTM"):
        for index in (1, 2, 3):  # W, R, B
            if index >= len(node.input) or not node.input[index]:
                continue
            tensor = _initializer(model, node.input[index])
            array = numpy_helper.to_array(tensor)
            halves = 2 if index == 3 else 1  # B is [Wb, Rb], each 4 blocks
            parts = np.split(array, 4 * halves, axis=1)
            order = [half * 4 + block for half in range(halves) for block in onnx_to_pytorch]
            _replace(tensor, np.concatenate([parts[i] for i in order], axis=1))
    return model


def initial_state_dropped(model):
    """Every RNN, GRU and LSTM node without its initial_h (and initial_c): the graph takes h0 and ignores it, and
    every layer starts from zeros."""
    for op_type in ("RNN", "GRU", "LSTM"):
        for node in _nodes(model, op_type):
            for index in (5, 6):
                if index < len(node.input):
                    node.input[index] = ""
    return model


CATALOGUE: dict[str, WrongExport] = {wrong.name: wrong for wrong in (
    WrongExport("gru_linear_before_reset_0", "GRU nodes in the paper's reset form (linear_before_reset = 0)",
                gru_linear_before_reset_0),
    WrongExport("lstm_gates_in_pytorch_order", "LSTM weights in PyTorch's gate order, read in ONNX's",
                lstm_gates_in_pytorch_order),
    WrongExport("initial_state_dropped", "recurrent nodes that ignore the initial state (h0, c0)",
                initial_state_dropped),
)}
