"""Deployed implementations: each module exported, and every call run through what was exported.

``--target onnx``, ``onnx:torchscript``, ``onnx:wrong:NAME``, ``export`` and ``export:decomposed``
(``rnnspec/targets.py``) build torch.nn's module with the spec's explicit weights, as every target
does, and then replace its forward by :class:`Deployment`: a call is exported and run as a
deployed model runs, never by the module itself.

**What is exported.** For each *structure* of call (layer or cell; batched or unbatched input;
``batch_first``; padded or packed input; initial states given or not, h0 and c0 as graph inputs)
and each mode (``train()`` / ``eval()``, the dropout value), the module is exported from a sample
input of its own: zeros of the module's dtype whose sequence length L and batch N differ from the
call's (and from every other size of the configuration: torch.export gives equal sizes one
symbol), with L and N declared dynamic. The call then runs through that graph, so every test
exercises the dynamic sizes. Where the exported graph does not admit the call's sizes (the
exporter kept a size static, or bounded it: torch.export specialises the sequence length of
recurrent layers, and its dynamic sizes start at 2), the module is exported again at the call's
sizes: what a user of that exporter must do. The session's summary counts those exports.
A packed call is exported as its padded input and lengths, packed inside the graph
(``pack_padded_sequence(..., enforce_sorted=False)``) and padded again at its end: a graph
takes tensors; its output is packed again like the call's input.

**Runtimes.**

* ONNX (:class:`OnnxRuntime`): ``torch.onnx.export(..., dynamo=True)`` (``onnx``) or the
  TorchScript-based exporter (``onnx:torchscript``), weights as initializers, run by ONNX Runtime's
  CPU execution provider (one thread). ONNX Runtime runs inference only: the module declares
  ``no_gradients`` (``rnnspec.measure.NO_GRADIENTS``), so the spec's runs hold forward tensors
  only and a claim about gradients is not applicable; its outputs raise
  ``rnnspec.targets.NotApplicable`` from a backward. A call with an empty tensor runs in a child
  process first (``rnnspec/crashes.py``): ONNX Runtime 1.31 aborts on an empty batch.
* torch.export (:class:`TorchExport`): ``torch.export.export`` (``export``), optionally followed by
  ``run_decompositions()`` (``export:decomposed``: the fused recurrent kernels replaced by
  PyTorch's decompositions, what other runtimes consume), run through ``.module()`` with the
  module's own parameters (``torch.func.functional_call``), so the backward reaches them. An
  exported program lifts the weights into inputs, so modules of one structure share it.

**Every export as a process's first.** Each export starts from the dispatcher state a fresh process
has (:func:`as_in_a_fresh_process`): torch.onnx's dynamo exporter leaves state behind that changes what
later exports in the same process declare, so without it a test's outcome would depend on the tests
run before it.

**Wrong exports** (``rnnspec/wrong_exports.py``) are ONNX graphs edited after a correct export.

One concern, in one file: a module deployed (exported, and every call run through what was exported).
It is over 400 lines because the structures of call, the two runtimes and the bookkeeping of exports
belong together; the wrong exports and the child-process trials live in modules of their own.
"""

from __future__ import annotations

import contextlib
import hashlib
import inspect
import io
import logging
import types
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.nn.utils.rnn import PackedSequence, pack_padded_sequence, pad_packed_sequence

from rnnspec import crashes
from rnnspec.kinds import RECURRENCES
from rnnspec.measure import NO_GRADIENTS
from rnnspec.targets import NotApplicable

#: Sample sizes for the exported sequence length and batch: the first that no other size of the call or
#: the configuration takes (torch.export would otherwise give them one symbol, or specialise 0 and 1).
SAMPLE_SIZES = (2, 3, 5, 7, 11, 13, 17, 19, 23, 29, 31)


@dataclass(frozen=True)
class Structure:
    """What one exported graph serves: the structure of a call, without its sizes."""

    cell: bool
    lstm: bool
    batched: bool
    batch_first: bool
    packed: bool
    states: int  # 0, or 1 (h0), or 2 (h0, c0)

    @property
    def names(self) -> list[str]:
        """The graph's inputs, in order."""
        return ["input"] + ["lengths"] * self.packed + ["h0", "c0"][:self.states]

    def dynamic_axes(self) -> list[dict[int, str]]:
        """Per graph input: its dynamic axes, named "L" (sequence length) and "N" (batch)."""
        if self.cell:
            x = {0: "N"} if self.batched else {}
            state = x
        elif not self.batched:
            x, state = {0: "L"}, {}
        else:
            x = {0: "N", 1: "L"} if self.batch_first else {0: "L", 1: "N"}
            state = {1: "N"}
        return [x] + [{0: "N"}] * self.packed + [state] * self.states


def structure_of(module: nn.Module, input, hx) -> tuple[Structure, list[torch.Tensor], torch.Tensor | None]:
    """The call's structure, its graph inputs (padded input, lengths, h0, c0) and, for packed input, the lengths."""
    cell = isinstance(module, nn.RNNCellBase)
    lstm = isinstance(module, (nn.LSTM, nn.LSTMCell))
    batch_first = bool(getattr(module, "batch_first", False))
    lengths = None
    if isinstance(input, PackedSequence):
        input, lengths = pad_packed_sequence(input, batch_first=batch_first)
    states = () if hx is None else tuple(hx) if isinstance(hx, (tuple, list)) else (hx,)
    batched = input.dim() != (1 if cell else 2)  # any other rank is exported batched, and the runtime judges it
    structure = Structure(cell, lstm, batched, batch_first, lengths is not None, len(states))
    tensors = [input] + ([lengths] if lengths is not None else []) + list(states)
    return structure, tensors, lengths


def call_sizes(structure: Structure, tensors: list[torch.Tensor]) -> dict[str, int]:
    """The call's sequence length and batch (read from the input; 0 where the input lacks the axis)."""
    sizes = {}
    for axis, name in structure.dynamic_axes()[0].items():
        sizes[name] = tensors[0].shape[axis] if axis < tensors[0].dim() else 0
    return sizes


def configuration_sizes(module: nn.Module) -> set[int]:
    """Every fixed size of the module's graph inputs: features, hidden and projection sizes, stacked states."""
    sizes = {module.input_size, module.hidden_size}
    if not isinstance(module, nn.RNNCellBase):
        sizes |= {module.proj_size or module.hidden_size, module.num_layers * (2 if module.bidirectional else 1)}
    return sizes


def sample(module: nn.Module, structure: Structure, sizes: dict[str, int]) -> tuple[torch.Tensor, ...]:
    """Zeros of the module's dtype and device in the structure's shapes, with sequence length and batch ``sizes``."""
    parameter = next(module.parameters())
    L, N = sizes.get("L", 1), sizes.get("N", 1)
    batch = (N,) if structure.batched else ()
    zeros = lambda *shape: torch.zeros(shape, dtype=parameter.dtype, device=parameter.device)  # noqa: E731
    if structure.cell:
        x = zeros(*batch, module.input_size)
        # one tensor per state: torch.export takes one tensor passed twice as one input, and its program then
        # reads h0 for c0 (or c0 for h0) when called with two
        states = [zeros(*batch, module.hidden_size) for _ in range(structure.states)]
    else:
        x = zeros(*((N, L) if structure.batch_first else (L, N)) if structure.batched else (L,), module.input_size)
        stacked = module.num_layers * (2 if module.bidirectional else 1)
        states = [zeros(stacked, *batch, module.proj_size or module.hidden_size),
                  zeros(stacked, *batch, module.hidden_size)][:structure.states]
    lengths = [torch.tensor([max(1, L - i) for i in range(N)], dtype=torch.int64)] * structure.packed
    return (x, *lengths, *states)


class AsCalled(nn.Module):
    """The module called as one structure says, with tensors in and out: what an exporter traces.

    It calls the module's class's forward (the instance's own is the deployment's).
    """

    def __init__(self, module: nn.Module, structure: Structure):
        super().__init__()
        self.module, self.structure = module, structure

    def forward(self, x, *rest):
        s = self.structure
        total_length = x.shape[1 if s.batch_first else 0]
        if s.packed:
            lengths, *rest = rest
            x = pack_padded_sequence(x, lengths, batch_first=s.batch_first, enforce_sorted=False)
        hx = None if not rest else tuple(rest) if s.lstm else rest[0]
        result = type(self.module).forward(self.module, x, hx)
        if s.cell:
            return tuple(result) if isinstance(result, tuple) else (result,)
        output, final = result
        if s.packed:
            output = pad_packed_sequence(output, batch_first=s.batch_first, total_length=total_length)[0]
        return (output, *final) if isinstance(final, tuple) else (output, final)


# ---------------------------------------------------------------------------------------------
# Runtimes: how a structure is exported, whether the export admits a call, how a call runs
# ---------------------------------------------------------------------------------------------

class Program:
    """One exported graph and how a call runs through it."""

    def admits(self, structure: Structure, tensors: list[torch.Tensor], axes: set[str] = frozenset("LN")) -> bool:
        """Whether the graph's declared shapes admit the call's sizes along the dynamic ``axes`` ("L", "N")."""
        raise NotImplementedError

    def fixes(self, structure: Structure, axis: str) -> bool:
        """Whether the graph declares a fixed size along ``axis`` of its input (the exporter specialised it)."""
        raise NotImplementedError

    def run(self, module: nn.Module, tensors: list[torch.Tensor]) -> list[torch.Tensor]:
        raise NotImplementedError


class Runtime:
    """How a deployed module is exported and run: ``export`` makes a :class:`Program` of a traced module."""

    name: str
    description: str
    gradients: bool  # whether the runtime computes gradients (else the module declares NO_GRADIENTS)
    #: whether one program serves every module of a structure (the weights are its inputs) or each set of weights
    shares_programs: bool

    def export(self, traced: AsCalled, sample: tuple, dynamic: list[dict[int, str]]) -> Program:
        raise NotImplementedError

    def check(self, module: nn.Module, structure: Structure, tensors: list[torch.Tensor]) -> None:
        """Raise NotApplicable for a call the runtime cannot take (before anything is exported)."""

    def session(self) -> contextlib.AbstractContextManager:
        """Settings held for the pytest session: the exporters' log output silenced, restored afterwards."""
        stack = contextlib.ExitStack()
        for name in ("torch.onnx", "torch.export", "torch._export", "torch._dynamo", "torch.fx.experimental.symbolic_shapes",
                     "onnxscript"):
            logger = logging.getLogger(name)
            stack.callback(logger.setLevel, logger.level)
            logger.setLevel(logging.ERROR)
        return stack


def has_torchscript_exporter() -> bool:
    """Whether this torch still has the TorchScript-based ONNX exporter (``torch.onnx.export(dynamo=False)``, whose
    dynamic sizes are ``dynamic_axes``); deprecated since torch 2.9."""
    return "dynamic_axes" in inspect.signature(torch.onnx.export).parameters


def _dynamic_shapes(dynamic: list[dict[int, str]]) -> tuple:
    """torch.export's ``dynamic_shapes`` for ``AsCalled.forward(x, *rest)``: every named axis ``Dim.AUTO`` (the
    exporter decides; :meth:`Program.admits` reads what it decided)."""
    dims = [{axis: torch.export.Dim.AUTO for axis in axes} for axes in dynamic]
    return (dims[0], tuple(dims[1:])) if len(dims) > 1 else (dims[0],)


#: torch's recurrent operators (``aten.lstm``, ``aten.lstm_cell``...), whose cached Python-dispatcher kernels
#: :func:`as_in_a_fresh_process` forgets: the layers' and the cells' of every kind.
RECURRENT_OPERATORS = (*RECURRENCES, *(f"{kind}_cell" for kind in RECURRENCES))


def as_in_a_fresh_process() -> None:
    """Forget the Python dispatcher's cached kernels of torch's recurrent operators, so that the next export
    traces them as the first export of a process does.

    For an export with dynamic shapes, torch.onnx's dynamo exporter swaps a ``while_loop`` decomposition
    of ``aten.lstm`` and ``aten.gru`` in and out by writing ``OpOverload.py_kernels`` directly
    (``torch.export._patches._register_rnn_while_loop_decomposition``), without clearing the operator's
    ``_dispatch_cache`` as ``OpOverload.py_impl`` does. The first such export of a process traces the
    ``while_loop`` and declares the sequence length dynamic over [0, ∞); every later one in the process
    finds the cached kernel of the first, unrolls the loop, and bounds the sequence length to the traced
    one ([2, 2] for a GRU of one unit traced at 2 steps; torch 2.13, measured: the same module, the same
    call, exported twice). Clearing the cache is what ``py_impl`` itself does; a cache holds no meaning.
    """
    for name in RECURRENT_OPERATORS:
        packet = getattr(torch.ops.aten, name)
        for overload in packet.overloads():
            getattr(getattr(packet, overload), "_dispatch_cache", {}).clear()


def _quietly(export: Callable[[], object]):
    """Run an exporter without its warnings (deprecations, tracer notes): the target exports on purpose."""
    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
        warnings.simplefilter("ignore")
        return export()


class OnnxGraph(Program):
    """An ONNX model run by ONNX Runtime's CPU execution provider, one thread."""

    def __init__(self, model, describe: str, program=None, dtype: torch.dtype = torch.float32):
        import onnxruntime  # noqa: PLC0415 (the onnx extra)

        self.model, self.program = model, program
        self.bytes = model.SerializeToString()
        self.describe = describe
        if dtype != torch.float32:  # ONNX Runtime 1.31 segfaults making the session of some float16 graphs
            crashes.refuse_if_it_crashes(("onnxruntime session", hashlib.sha256(self.bytes).hexdigest()),
                                         _ONNX_SESSION_CHILD, lambda folder: (folder / "model.onnx").write_bytes(self.bytes),
                                         f"ONNX Runtime making a session of {describe} ({dtype})")
        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = options.inter_op_num_threads = 1
        options.log_severity_level = 4  # the runtime's errors are raised, not logged too
        self.session = onnxruntime.InferenceSession(self.bytes, options, providers=["CPUExecutionProvider"])

    def admits(self, structure, tensors, axes=frozenset("LN")):
        """By the torch.export program the dynamo exporter translated, where there is one (its ONNX graph declares
        every requested axis dynamic, even one the program specialised); else by the graph's declared input shapes."""
        if self.program is not None:
            return program_admits(self.program, structure, tensors, axes)
        for graph_input, tensor, named in zip(self.model.graph.input, tensors, structure.dynamic_axes()):
            dims = graph_input.type.tensor_type.shape.dim
            for axis in (a for a, name in named.items() if name in axes):
                if axis < len(dims) and axis < tensor.dim() and dims[axis].HasField("dim_value") and \
                        dims[axis].dim_value != tensor.shape[axis]:
                    return False
        return True

    def fixes(self, structure, axis):
        if self.program is not None:
            return program_fixes(self.program, structure, axis)
        return self.graph_fixes(structure, axis)

    def graph_fixes(self, structure, axis) -> bool:
        """Whether the ONNX graph's inputs declare a fixed size along ``axis``."""
        for graph_input, named in zip(self.model.graph.input, structure.dynamic_axes()):
            dims = graph_input.type.tensor_type.shape.dim
            if any(name == axis and index < len(dims) and dims[index].HasField("dim_value")
                   for index, name in named.items()):
                return True
        return False

    def run(self, module, tensors):
        feeds = {graph_input.name: _to_numpy(tensor) for graph_input, tensor in zip(self.session.get_inputs(), tensors)}
        if any(tensor.numel() == 0 for tensor in tensors):
            shapes = [tuple(t.shape) for t in tensors]
            crashes.refuse_if_it_crashes(
                ("onnxruntime", hashlib.sha256(self.bytes).hexdigest(), tuple(shapes)), _ONNX_CHILD,
                lambda folder: _write_onnx_payload(folder, self.bytes, feeds),
                f"ONNX Runtime running {self.describe} on inputs of shapes {shapes}")
        return [_from_numpy(array) for array in self.session.run(None, feeds)]


_ONNX_SESSION_CHILD = """
import sys, onnxruntime
try:
    onnxruntime.InferenceSession(sys.argv[1] + "/model.onnx", providers=["CPUExecutionProvider"])
except Exception:
    pass  # an exception is the parent's to raise and the test's to judge; only a crash is the child's to report
"""

_ONNX_CHILD = """
import sys, numpy, onnxruntime
folder = sys.argv[1]
feeds = dict(numpy.load(folder + "/feeds.npz", allow_pickle=False))
try:
    onnxruntime.InferenceSession(folder + "/model.onnx", providers=["CPUExecutionProvider"]).run(None, feeds)
except Exception:
    pass  # an exception is the parent's to raise and the test's to judge; only a crash is the child's to report
"""


def _write_onnx_payload(folder: Path, model: bytes, feeds: dict) -> None:
    (folder / "model.onnx").write_bytes(model)
    np.savez(folder / "feeds.npz", **feeds)


def _to_numpy(tensor: torch.Tensor) -> np.ndarray:
    """A CPU tensor as NumPy holds it (bfloat16 as ml_dtypes' bfloat16, the type ONNX's Python packages use)."""
    tensor = tensor.detach()
    if tensor.dtype == torch.bfloat16:
        import ml_dtypes  # noqa: PLC0415 (a dependency of onnx)

        return tensor.view(torch.int16).numpy().view(ml_dtypes.bfloat16)
    return tensor.numpy()


def _from_numpy(array: np.ndarray) -> torch.Tensor:
    if array.dtype.name == "bfloat16":
        return torch.from_numpy(np.ascontiguousarray(array).view(np.int16)).view(torch.bfloat16)
    return torch.from_numpy(np.ascontiguousarray(array))


class OnnxRuntime(Runtime):
    """ONNX export (dynamo or TorchScript-based) run by ONNX Runtime; ``edit`` changes the graph first (wrong
    exports)."""

    gradients = False
    shares_programs = False

    def __init__(self, name: str, exporter: str, description: str,
                 edit: Callable[[object], object] | None = None):
        self.name, self.exporter, self.description, self.edit = name, exporter, description, edit

    def check(self, module, structure, tensors):
        for what, tensor in [("the module's weights", next(module.parameters())), *zip(structure.names, tensors)]:
            if tensor.device.type != "cpu":
                raise NotApplicable(f"ONNX Runtime's CPU execution provider takes CPU tensors; {what} on "
                                    f"{tensor.device}")

    def export(self, traced, sample, dynamic):
        import onnx  # noqa: PLC0415 (the onnx extra)

        names = traced.structure.names[:len(sample)]
        program = None
        if self.exporter == "dynamo":
            dims = _dynamic_shapes(dynamic)
            exported = _quietly(lambda: torch.onnx.export(traced, sample, None, dynamo=True, input_names=names,
                                                          dynamic_shapes=dims, verbose=False))
            model, program = exported.model_proto, exported.exported_program
        else:
            buffer = io.BytesIO()
            axes = {name: dict(axes) for name, axes in zip(names, dynamic) if axes}
            _quietly(lambda: torch.onnx.export(traced, sample, buffer, dynamo=False, input_names=names,
                                               dynamic_axes=axes, training=torch.onnx.TrainingMode.PRESERVE))
            model = onnx.load_from_string(buffer.getvalue())
        if self.edit is not None:
            model = self.edit(model)
        return OnnxGraph(model, f"the {self.name} graph of {type(traced.module).__name__}"
                                f"({traced.module.extra_repr()})", program, sample[0].dtype)


class ExportedProgram(Program):
    """A torch.export program run through ``.module()`` with the calling module's parameters."""

    def __init__(self, program, describe: str):
        self.program, self.describe = program, describe
        self.runnable = program.module()

    def admits(self, structure, tensors, axes=frozenset("LN")):
        return program_admits(self.program, structure, tensors, axes)

    def fixes(self, structure, axis):
        return program_fixes(self.program, structure, axis)

    def run(self, module, tensors):
        parameters = {f"module.{name}": parameter for name, parameter in module.named_parameters()}
        if any(tensor.numel() == 0 for tensor in tensors):
            shapes = [tuple(t.shape) for t in tensors]
            crashes.refuse_if_it_crashes(
                ("torch.export", id(self.program), tuple(shapes), torch.is_grad_enabled()), _EXPORT_CHILD,
                lambda folder: _write_export_payload(folder, self.program, parameters, tensors),
                f"{self.describe} on inputs of shapes {shapes}")
        return list(torch.func.functional_call(self.runnable, parameters, tuple(tensors)))


def _input_shapes(program) -> list[list]:
    """A torch.export program's user inputs' shapes: an int where the size is specialised (also a symbol the trace
    replaced by a number), else the sympy symbol."""
    placeholders = {node.name: node for node in program.graph.nodes if node.op == "placeholder"}
    sizes = lambda shape: [size.node.expr if isinstance(size, torch.SymInt) else size for size in shape]  # noqa: E731
    return [[int(size) if getattr(size, "is_number", True) else size
             for size in sizes(placeholders[name].meta["val"].shape)] for name in program.graph_signature.user_inputs]


def program_fixes(program, structure: Structure, axis: str) -> bool:
    """Whether a torch.export program specialised the size along ``axis`` of any of its inputs."""
    return any(name == axis and index < len(shape) and isinstance(shape[index], int)
               for shape, named in zip(_input_shapes(program), structure.dynamic_axes()) for index, name in named.items())


def program_admits(program, structure: Structure, tensors: list[torch.Tensor], axes=frozenset("LN")) -> bool:
    """Whether a torch.export program's inputs admit the call's sizes along ``axes``: a specialised size equal to the
    call's, or a symbol whose range holds it (torch.export's dynamic sizes start at 2)."""
    for shape, tensor, named in zip(_input_shapes(program), tensors, structure.dynamic_axes()):
        for axis in (a for a, axis_name in named.items() if axis_name in axes):
            if axis >= len(shape) or axis >= tensor.dim():
                continue
            size = shape[axis]
            if isinstance(size, int):
                if size != tensor.shape[axis]:
                    return False
                continue
            bounds = program.range_constraints.get(size)
            if bounds is not None and not (int(bounds.lower) <= tensor.shape[axis] <= bounds.upper):
                return False
    return True


_EXPORT_CHILD = """
import sys, torch
folder = sys.argv[1]
program = torch.export.load(folder + "/program.pt2")
parameters, tensors, grad = torch.load(folder + "/call.pt")
with torch.set_grad_enabled(grad):
    try:
        torch.func.functional_call(program.module(), parameters, tuple(tensors))
    except Exception:
        pass  # an exception is the parent's to raise and the test's to judge; only a crash is the child's to report
"""


def _write_export_payload(folder: Path, program, parameters: dict, tensors: list) -> None:
    torch.export.save(program, folder / "program.pt2")
    torch.save(({name: p.detach() for name, p in parameters.items()}, [t.detach() for t in tensors],
                torch.is_grad_enabled()), folder / "call.pt")


class TorchExport(Runtime):
    """``torch.export.export``, optionally ``run_decompositions()``; forward and backward through ``.module()``."""

    gradients = True
    shares_programs = True

    def __init__(self, decomposed: bool):
        self.decomposed = decomposed
        self.name = "export:decomposed" if decomposed else "export"
        self.description = ("torch.export.export(...).run_decompositions(), run through .module()" if decomposed
                            else "torch.export.export(...), run through .module()")

    def export(self, traced, sample, dynamic):
        dims = _dynamic_shapes(dynamic)
        program = _quietly(lambda: torch.export.export(traced, sample, dynamic_shapes=dims))
        if self.decomposed:
            program = _quietly(program.run_decompositions)
        return ExportedProgram(program, f"{self.name} of {type(traced.module).__name__}({traced.module.extra_repr()})")


# ---------------------------------------------------------------------------------------------
# The deployment: a module's forward replaced by export-and-run
# ---------------------------------------------------------------------------------------------

class _Inference(torch.autograd.Function):
    """Outputs of a runtime without gradients: a backward through them raises the module's ``no_gradients()``."""

    @staticmethod
    def forward(ctx, anchor, no_gradients, outputs):
        ctx.no_gradients = no_gradients
        return tuple(outputs)

    @staticmethod
    def backward(ctx, *grads):
        raise ctx.no_gradients()


class Statistics:
    """What a runtime's exports did in a session: graphs exported, and those exported again at a call's sizes."""

    def __init__(self):
        self.exports = 0
        self.again: dict[str, set] = {"L": set(), "N": set()}  # axis -> structures whose size the exporter fixed

    def lines(self, runtime: Runtime) -> list[str]:
        if not self.exports:
            return []
        again = ", ".join(f"{'sequence length' if axis == 'L' else 'batch'} in {len(kinds)}"
                          for axis, kinds in self.again.items() if kinds) or "none"
        return [f"rnn-spec target {runtime.name}: {self.exports} graphs exported; structures whose size the exporter "
                f"fixed (exported at each call's size): {again}"]


class Summary:
    """A runtime's statistics for the end of the session (a target's ``summary``), gathered from pytest-xdist's
    workers too (each keeps its own): ``data`` on a worker, ``absorb`` on the controller."""

    def __init__(self, runtime: Runtime):
        self.runtime = runtime

    @property
    def statistics(self) -> Statistics:
        return Deployment.STATISTICS.setdefault(self.runtime.name, Statistics())

    def lines(self) -> list[str]:
        return self.statistics.lines(self.runtime)

    def data(self) -> dict:
        return {"exports": self.statistics.exports,
                "again": {axis: sorted(map(repr, kinds)) for axis, kinds in self.statistics.again.items()}}

    def absorb(self, data: dict) -> None:
        self.statistics.exports += data["exports"]
        for axis, kinds in data["again"].items():
            self.statistics.again[axis] |= set(kinds)


def configuration(module: nn.Module) -> tuple:
    """The module's class and every plain setting (sizes, nonlinearity, bias, layout, dropout, mode): what an
    export depends on besides the weights (``extra_repr`` omits, for one, nn.RNN's nonlinearity)."""
    settings = {name: value for name, value in vars(module).items()
                if not name.startswith("_") and isinstance(value, (bool, int, float, str))}
    return (type(module).__qualname__, *sorted(settings.items()))


class Deployment:
    """A module's deployed forward: export per structure and mode (cached), then run through the runtime."""

    #: Programs by (runtime, structure, mode, sizes, module configuration[, weights]), shared between modules.
    _PROGRAMS: dict[tuple, Program] = {}
    #: Per runtime and structure class: the axes whose size the export fixed (exported at the call's). A shortcut
    #: only: a call of a learned kind goes straight to the program the sample-sized export would have led it to
    #: (the same key; whether the exporter fixes an axis depends on the kind of call, not on its sizes), so what
    #: it learned changes the number of exports, never which program serves a call.
    _NOT_ADMITTED: dict[tuple, set[str]] = {}
    STATISTICS: dict[str, Statistics] = {}

    def __init__(self, runtime: Runtime, module: nn.Module):
        self.runtime, self.module = runtime, module
        self.statistics = self.STATISTICS.setdefault(runtime.name, Statistics())

    def _key(self, structure: Structure, sizes: dict) -> tuple:
        module = self.module
        parameter = next(module.parameters())
        key = (self.runtime.name, structure, tuple(sorted(sizes.items())), configuration(module),
               str(parameter.dtype), str(parameter.device))
        if not self.runtime.shares_programs:
            digest = hashlib.sha256()
            for name, p in module.named_parameters():
                digest.update(name.encode())
                digest.update(p.detach().cpu().contiguous().view(torch.uint8).numpy().tobytes())
            key += (digest.hexdigest(),)
        return key

    def _program(self, structure: Structure, sizes: dict) -> Program:
        key = self._key(structure, sizes)
        if key not in self._PROGRAMS:
            traced = AsCalled(self.module, structure)
            as_in_a_fresh_process()
            self._PROGRAMS[key] = self.runtime.export(traced, sample(self.module, structure, sizes),
                                                      structure.dynamic_axes())
            self.statistics.exports += 1
        return self._PROGRAMS[key]

    def program_for(self, structure: Structure, tensors: list[torch.Tensor]) -> Program:
        """The graph that serves the call: exported at sample sizes, or at the call's where that one cannot serve it."""
        wanted = call_sizes(structure, tensors)
        kind = (self.runtime.name, structure, configuration(self.module))
        static = self._NOT_ADMITTED.get(kind, set())
        taken = configuration_sizes(self.module) | set(wanted.values())
        sizes = {}
        for axis in wanted:
            sizes[axis] = next(s for s in SAMPLE_SIZES if s not in taken | set(sizes.values()))
        sizes = {axis: wanted[axis] if axis in static else size for axis, size in sizes.items()}
        program = self._program(structure, sizes)
        for axis in wanted:  # learn the sizes the exporter fixes, for the next export of this kind
            if sizes[axis] != wanted[axis] and program.fixes(structure, axis):
                self._NOT_ADMITTED.setdefault(kind, set()).add(axis)
                self.statistics.again[axis].add(kind)
        if program.admits(structure, tensors):
            return program
        fixed = self._NOT_ADMITTED.get(kind, set())
        refined = {axis: wanted[axis] if axis in fixed else size for axis, size in sizes.items()}
        if refined != sizes:  # the fixed sizes at the call's, the others still dynamic
            program = self._program(structure, refined)
            if program.admits(structure, tensors):
                return program
        return self._program(structure, wanted)  # a size outside the dynamic range (torch.export's start at 2)

    def __call__(self, input, hx=None):
        structure, tensors, lengths = structure_of(self.module, input, hx)
        self.runtime.check(self.module, structure, tensors)
        outputs = self.program_for(structure, tensors).run(self.module, tensors)
        no_gradients = getattr(self.module, NO_GRADIENTS, None)
        anchor = next(self.module.parameters())
        if no_gradients is not None and torch.is_grad_enabled() and anchor.requires_grad:
            outputs = list(_Inference.apply(anchor, no_gradients, outputs))
        if structure.cell:
            return tuple(outputs) if structure.lstm else outputs[0]
        output, *final = outputs
        if lengths is not None:
            output = pack_padded_sequence(output, lengths, batch_first=structure.batch_first,
                                          enforce_sorted=input.sorted_indices is None)
        return output, tuple(final) if structure.lstm else final[0]


def deploy(runtime: Runtime) -> Callable[[nn.Module], nn.Module]:
    """The target's ``finish``: the module's forward becomes its :class:`Deployment`; without gradients, the
    module declares ``no_gradients`` (``rnnspec.measure.NO_GRADIENTS``)."""
    def finish(module: nn.Module) -> nn.Module:
        deployment = Deployment(runtime, module)
        module.forward = types.MethodType(lambda self, input, hx=None: deployment(input, hx), module)
        if not runtime.gradients:
            reason = ("gradients: ONNX Runtime runs the exported graph for inference only (the forward tensors are "
                      "checked where the test reads them)")
            setattr(module, NO_GRADIENTS, lambda: NotApplicable(reason))
        return module
    return finish
