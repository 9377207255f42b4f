"""One recurrent run on torch, with the reference's names; the modules it runs, built with explicit weights.

:func:`measure` runs a layer forward, then backward from upstream gradients on ``h_n`` (and
optionally on ``output`` and ``c_n``), as the notebook does with ``h_n.backward(...)``, and returns
``{"output", "h_n", ["c_n"], "grad_input", ["grad_h0"], ["grad_c0"], "grad_<parameter>"...}``:
the names ``rnnspec.numpy_reference.derive`` returns for the same configuration, so one set of
keyword arguments feeds both (``h0``, ``c0``, ``num_layers``, ``bidirectional``, ``batch_first``,
``proj_size``, ``lengths``: padded input run as a packed sequence, and the upstream gradients;
``bias`` is read from the parameters). :func:`measure_cell_loop` runs the cell once per step over
the same configuration (one layer, one direction).

Every module is built by :func:`build` for an **implementation**: torch.nn as installed
(:data:`EAGER`), or what ``--target`` chose (``rnnspec/targets.py``), which the session hands to
tests as the ``implementation`` fixture. Nothing here holds the session's choice: each call names
its implementation, and every memoised run is keyed by it.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from rnnspec import numpy_reference, torch_loop
from rnnspec.comparison import as_float64
from rnnspec.devices import DTYPES
from rnnspec.inputs import random_parameters
from rnnspec.kinds import KINDS


class Implementation:
    """What :func:`build` constructs: torch.nn as installed (the ``eager`` target).

    ``rnnspec.targets`` (``--target NAME``) chooses another for a session, handed to the tests as
    the ``implementation`` fixture: a subclass that constructs other modules (``construct``) or
    transforms the built one (``finish``: ``torch.jit.script``, ``torch.compile``).
    """

    name = "eager"

    def construct(self, kind: str, input_size: int, hidden_size: int, *, cell: bool, dtype: torch.dtype = torch.float64,
                  **options) -> nn.Module:
        """The module of ``kind`` (``cell``: its cell) on the CPU in ``dtype``, with torch's parameter names;
        ``options``: the constructor's keyword arguments (bias, num_layers, bidirectional, batch_first,
        proj_size...)."""
        return KINDS[f"{kind}_cell" if cell else kind].construct(input_size, hidden_size, **options, dtype=dtype)

    def finish(self, module: nn.Module) -> nn.Module:
        """The module as tests call it, once it holds its weights on its device in its dtype."""
        return module

    def __repr__(self) -> str:
        return f"Implementation({self.name!r})"


#: torch.nn as installed.
EAGER = Implementation()

#: The attribute of a module that computes no gradients (a deployed graph run for inference): a callable
#: returning the exception to raise where a gradient is asked (``rnnspec.targets.NotApplicable``).
#: :func:`measure` and :func:`measure_cell_loop` then run no backward, and their run holds the forward
#: tensors only (see :class:`Measurement`).
NO_GRADIENTS = "no_gradients"


def build(kind: str, parameters: dict[str, np.ndarray], *, implementation: Implementation, device: str, dtype: str,
          cell: bool = False, **options) -> nn.Module:
    """The layer of ``kind`` (with ``cell=True``: its cell) holding exactly ``parameters``, as ``implementation``
    builds it.

    ``parameters`` carry the layer's names (``weight_ih_l0``...) also for a cell, whose own names
    drop the ``_l0``. The module is constructed on the CPU in ``dtype`` and each float64 value is
    copied in, rounded once to ``dtype`` by the copy (the rounding ``.to(dtype)`` does), then moved
    to ``device``. The constructor's default initialisation draws from torch's random stream: it
    runs inside ``fork_rng``, so building leaves torch's stream as it was (and on the CPU, so no
    accelerator's stream is drawn from).
    """
    target = implementation
    input_size = parameters["weight_ih_l0"].shape[1]
    hidden_size = _hidden_size(kind, parameters)
    with torch.random.fork_rng(devices=[]):
        module = target.construct(kind, input_size, hidden_size, cell=cell, dtype=DTYPES[dtype],
                                  bias="bias_ih_l0" in parameters, **options)
    _load(module, parameters, cell=cell, kind=kind, options=options)
    return target.finish(module if device == "cpu" else module.to(device=device))


def _load(module: nn.Module, parameters: dict[str, np.ndarray], *, cell: bool, kind: str, options: dict) -> None:
    """Copy ``parameters`` (float64) into the module's, each rounded once to the module's dtype; no gradients."""
    named = list(module.named_parameters())
    layer_name = (lambda name: f"{name}_l0") if cell else (lambda name: name)
    names = [layer_name(name) for name, _ in named]
    if sorted(names) != sorted(parameters):
        raise ValueError(f"{type(module).__name__}({kind}, {options}) has parameters {names}, given {sorted(parameters)}")
    with torch.no_grad():
        for name, parameter in named:
            parameter.copy_(torch.tensor(np.asarray(parameters[layer_name(name)], dtype=np.float64)))
            parameter.grad = None


#: torch.nn's modules built for :func:`measure` and :func:`measure_cell_loop`, one per structure.
_FOR_RUNS: dict[tuple, nn.Module] = {}


def _module_for_run(kind: str, parameters: dict[str, np.ndarray], *, implementation: Implementation, device: str,
                    dtype: str, cell: bool = False, **options) -> nn.Module:
    """:func:`build`'s module for a run that never hands it out: torch.nn's (``eager``) module of the same
    structure is built once and gets each run's parameters copied in anew, its gradients cleared.

    Constructing a layer (default initialisation, flattening) costs as much as a third of a small run.
    Only the module itself is kept between runs: the parameters are overwritten in place, the
    gradients reset to None, and no run changes its mode (``measure`` never calls ``train``/``eval``).
    Another ``--target`` builds afresh every time (a compiled or scripted module keeps more).
    """
    if implementation is not EAGER:
        return build(kind, parameters, implementation=implementation, device=device, dtype=dtype, cell=cell, **options)
    key = (kind, cell, device, dtype, tuple(sorted((name, value.shape) for name, value in parameters.items())),
           tuple(sorted(options.items())))
    module = _FOR_RUNS.get(key)
    if module is None:
        module = _FOR_RUNS[key] = build(kind, parameters, implementation=EAGER, device=device, dtype=dtype, cell=cell,
                                        **options)
    else:
        _load(module, parameters, cell=cell, kind=kind, options=options)
    return module


def _as_tensor(value, *, device: str, dtype: str) -> torch.Tensor:
    return torch.tensor(np.ascontiguousarray(value, dtype=np.float64), dtype=DTYPES[dtype], device=device)


def _backward(tensor, results: dict) -> None:
    """Backward of the scalar Σ grad_h_n·h_n + Σ grad_output·output + Σ grad_c_n·c_n.

    ``results`` maps each forward tensor to its upstream gradient (None: ones for h_n, nothing for
    the others). The gradients are those of ``h_n.backward(grad_h_n)`` (multiplying by the upstream
    gradient is what backward does first), without the explicit-gradient path, whose first use
    imports sympy (half a second).
    """
    loss = 0
    for name, (value, upstream) in results.items():
        if upstream is not None:
            loss = loss + (value * tensor(upstream)).sum()
        elif name == "h_n":
            loss = loss + value.sum()
    loss.backward()


def _measured(output, h_n, c_n, leaves: dict, parameters, *, no_gradients=None) -> dict[str, torch.Tensor]:
    """The forward tensors and every gradient; a leaf the loss does not reach (``.grad`` None) has gradient 0.

    ``no_gradients``: the module computes none (:data:`NO_GRADIENTS`); the run is its forward tensors.
    """
    measured = Measurement(output=output, h_n=h_n)
    measured.no_gradients = no_gradients
    if c_n is not None:
        measured["c_n"] = c_n
    gradient = lambda leaf: torch.zeros_like(leaf) if leaf.grad is None else leaf.grad  # noqa: E731
    measured.update({f"grad_{name}": gradient(leaf) for name, leaf in leaves.items()})
    measured.update({f"grad_{name}": gradient(p) for name, p in parameters})
    return measured


def measure(kind: str, parameters: dict[str, np.ndarray], x, *, implementation: Implementation, device: str, dtype: str,
            h0=None, c0=None,
            lengths=None, enforce_sorted: bool = False, grad_h_n=None, grad_output=None, grad_c_n=None,
            backward: bool = True, layouts: dict | None = None, training: bool = True,
            **options) -> dict[str, torch.Tensor]:
    """Run torch's layer forward, then backward from ``grad_h_n`` (default ones), ``grad_output``, ``grad_c_n``.

    ``options`` go to the module (num_layers, bidirectional, batch_first, proj_size, dropout). With ``lengths``
    the padded ``x`` goes through ``pack_padded_sequence(x, lengths, batch_first, enforce_sorted)``
    and the output back through ``pad_packed_sequence(..., total_length=L)``, so it keeps its shape.
    An LSTM given only one of ``h0`` / ``c0`` gets zeros for the other (no gradient is reported for it).
    ``backward=False`` returns the forward values only; the forward still runs with gradients
    enabled, so it takes the same kernels as a full run (CPU's float16 LSTM, for one, runs oneDNN
    only without gradients) and compares with one bitwise.

    ``layouts`` lays tensors out in memory as a caller chooses (``rnnspec/layouts.py``): ``{"input": f,
    "h0": f, "c0": f}``, each ``f`` taking the contiguous tensor of the values and returning the tensor of
    the same values the module receives (a transposed, strided or expanded view); the gradient reported
    for it is the gradient of what the module received. ``training=False`` runs the module in
    evaluation mode (``module.eval()``; its mode is restored afterwards).
    """
    module = _module_for_run(kind, parameters, implementation=implementation, device=device, dtype=dtype, **options)
    tensor = functools.partial(_as_tensor, device=device, dtype=dtype)
    leaves = {"input": tensor(x).requires_grad_()}
    if h0 is not None:
        leaves["h0"] = tensor(h0).requires_grad_()
    if c0 is not None:
        leaves["c0"] = tensor(c0).requires_grad_()
    for name, lay_out in (layouts or {}).items():
        if name in leaves:
            leaves[name] = lay_out(leaves[name])
            if not leaves[name].is_leaf:
                leaves[name].retain_grad()  # the gradient of the tensor the module received, in its shape
    state = _initial_state(kind, leaves, parameters)
    inputs = leaves["input"]
    batch_first = options.get("batch_first", False)
    if lengths is not None:
        inputs = pack_padded_sequence(inputs, torch.tensor(np.asarray(lengths), dtype=torch.int64), batch_first=batch_first,
                                      enforce_sorted=enforce_sorted)
    if training:
        output, final = module(inputs, state)
    else:
        was_training = module.training
        module.eval()
        try:
            output, final = module(inputs, state)
        finally:
            module.train(was_training)
    if lengths is not None:
        output, _ = pad_packed_sequence(output, batch_first=batch_first, total_length=np.shape(x)[1 if batch_first else 0])
    h_n, c_n = final if isinstance(final, tuple) else (final, None)
    no_gradients = getattr(module, NO_GRADIENTS, None)
    if not backward or no_gradients is not None:
        return _measured(output, h_n, c_n, {}, (), no_gradients=no_gradients)
    results = {"h_n": (h_n, grad_h_n), "output": (output, grad_output)}
    if c_n is not None:
        results["c_n"] = (c_n, grad_c_n)
    _backward(tensor, results)
    return _measured(output, h_n, c_n, leaves, module.named_parameters())


def _hidden_size(kind: str, parameters: dict[str, np.ndarray]) -> int:
    return parameters["weight_ih_l0"].shape[0] // numpy_reference.gate_count(kind)


def _initial_state(kind: str, leaves: dict, parameters: dict[str, np.ndarray]):
    """The state argument of the layer: None, h0, or (h0, c0) with zeros for a missing one."""
    h0, c0 = leaves.get("h0"), leaves.get("c0")
    if kind != "lstm":
        return h0
    if h0 is None and c0 is None:
        return None
    like = h0 if h0 is not None else c0
    leading = tuple(like.shape[:-1])
    hidden_size = _hidden_size(kind, parameters)
    out_size = parameters["weight_hr_l0"].shape[0] if "weight_hr_l0" in parameters else hidden_size
    zeros = lambda features: torch.zeros(leading + (features,), dtype=like.dtype, device=like.device)  # noqa: E731
    return (h0 if h0 is not None else zeros(out_size), c0 if c0 is not None else zeros(hidden_size))


def measure_cell_loop(kind: str, parameters: dict[str, np.ndarray], x, *, implementation: Implementation, device: str,
                      dtype: str, h0=None, c0=None, grad_h_n=None, grad_output=None,
                      grad_c_n=None) -> dict[str, torch.Tensor]:
    """Torch's cell called once per step over ``x`` (L, N, F) or unbatched (L, F), the state carried by hand.

    Takes and returns everything in the one-layer, one-direction layer's names and shapes (``h0`` is
    (1, N, H), the gradients are ``grad_weight_ih_l0``...), so one configuration feeds both this and
    :func:`measure`. A missing ``h0`` / ``c0`` is zeros, as for the layer.
    """
    module = _module_for_run(kind, parameters, implementation=implementation, device=device, dtype=dtype, cell=True)
    tensor = functools.partial(_as_tensor, device=device, dtype=dtype)
    leaves = {"input": tensor(x).requires_grad_()}
    hidden_size = _hidden_size(kind, parameters)
    state_shape = (1,) + tuple(np.shape(x)[1:-1]) + (hidden_size,)
    for name, value in (("h0", h0), ("c0", c0)):
        if value is not None:
            leaves[name] = tensor(value).requires_grad_()
    zeros = torch.zeros(state_shape, dtype=DTYPES[dtype], device=device)
    h = leaves.get("h0", zeros)[0]
    c = leaves.get("c0", zeros)[0]
    outputs = []
    for x_t in leaves["input"]:
        if kind == "lstm":
            h, c = module(x_t, (h, c))
        else:
            h = module(x_t, h)
        outputs.append(h)
    output, h_n = torch.stack(outputs), h.unsqueeze(0)
    c_n = c.unsqueeze(0) if kind == "lstm" else None
    no_gradients = getattr(module, NO_GRADIENTS, None)
    if no_gradients is not None:
        return _measured(output, h_n, c_n, {}, (), no_gradients=no_gradients)
    results = {"h_n": (h_n, grad_h_n), "output": (output, grad_output)}
    if c_n is not None:
        results["c_n"] = (c_n, grad_c_n)
    _backward(tensor, results)
    return _measured(output, h_n, c_n, leaves, ((f"{name}_l0", p) for name, p in module.named_parameters()))


@dataclass(frozen=True)
class TensorFacts:
    """What a measured tensor was, before it became a float64 array: the output contract's facts."""

    dtype: str  # "float32": the name of its torch dtype
    device: str  # "cpu", "cuda:0"
    shape: tuple[int, ...]
    layout: str  # "strided" for an ordinary (dense) tensor
    requires_grad: bool

    @staticmethod
    def of(tensor: torch.Tensor) -> "TensorFacts":
        return TensorFacts(str(tensor.dtype).removeprefix("torch."), str(tensor.device), tuple(tensor.shape),
                           str(tensor.layout).removeprefix("torch."), tensor.requires_grad)

    @staticmethod
    def contract(key: str, shape: tuple[int, ...], *, device: str, dtype: str) -> "TensorFacts":
        """What measured tensor ``key`` must be: in the dtype and on the device under test, of the truth's
        ``shape``, dense (strided); a forward result (output, h_n, c_n) of a run with gradients enabled
        requires grad (it is part of the graph backward runs through), a gradient (``grad_*``) does not."""
        return TensorFacts(dtype, device, tuple(int(n) for n in shape), "strided", not key.startswith("grad_"))

    def breaches(self, contract: "TensorFacts") -> list[str]:
        """The facts in which this tensor breaks ``contract``, in words: ``["dtype float32, not float64"]``.

        A contract device without an index (``cuda``) is met by any device of its type (``cuda:0``).
        """
        wanted, got = torch.device(contract.device), torch.device(self.device)
        same_device = got.type == wanted.type and (wanted.index is None or got.index == wanted.index)
        found = [] if same_device else [f"device {self.device}, not {contract.device}"]
        for name in ("dtype", "shape", "layout", "requires_grad"):
            mine, theirs = getattr(self, name), getattr(contract, name)
            if mine != theirs:
                found.append(f"{name} {mine}, not {theirs}")
        return found


class Measurement(dict):
    """A run's tensors as read-only float64 arrays, with the facts of each tensor as it came back (:attr:`facts`).

    The run of a module that computes no gradients (:data:`NO_GRADIENTS`) holds its forward tensors
    only, and keeps the module's :attr:`no_gradients`: asking it for a gradient (``run["grad_input"]``),
    or going through all its tensors (``for key in run``, after the forward ones), raises what that
    returns, for a target ``rnnspec.targets.NotApplicable``: a claim about the gradients, or about every
    tensor of the run, is then not applicable, and a claim about the forward tensors holds as usual.
    ``keys()``, ``items()``, ``dict(run)`` and ``in`` see the forward tensors alone.
    """

    facts: dict[str, TensorFacts]
    no_gradients: Callable[[], Exception] | None = None

    def __missing__(self, key: str):
        if self.no_gradients is not None and key.startswith("grad_"):
            raise self.no_gradients()
        raise KeyError(key)

    def __iter__(self):
        yield from super().__iter__()
        if self.no_gradients is not None:
            raise self.no_gradients()


def frozen(value):
    """A run's results as read-only float64 arrays (dicts and tuples kept), safe to share between tests.

    A dict becomes a :class:`Measurement` that keeps each torch tensor's dtype, device, shape and layout.
    """
    if isinstance(value, dict):
        measurement = Measurement({key: frozen(item) for key, item in value.items()})
        measurement.facts = {key: TensorFacts.of(item) for key, item in value.items() if isinstance(item, torch.Tensor)}
        measurement.no_gradients = getattr(value, "no_gradients", None)
        return measurement
    if isinstance(value, (tuple, list)):
        return tuple(frozen(item) for item in value)
    array = as_float64(value)
    array.flags.writeable = False
    return array


def memoised(run):
    """Compute a chapter's run once per arguments (implementation, configuration, device, dtype) and share it.

    Several claims read the same run (values, a law, a dtype's special values); computing it once
    keeps the suite fast. The results are frozen, so no test can change what another one reads,
    and they depend on the arguments alone (the implementation under test among them) and on what
    computes torch's layers (``rnnspec.torch_loop.generation``: a ``--break`` session's torch), so the
    order of tests does not matter and sessions with different targets or torches never share a run.
    """
    cached = functools.cache(lambda torch_generation, *args, **kwargs: frozen(run(*args, **kwargs)))

    @functools.wraps(run)
    def remembered(*args, **kwargs):
        return cached(torch_loop.generation(), *args, **kwargs)
    return remembered


def explicit_module(name: str, input_size: int, hidden_size: int, *, implementation: Implementation, device: str,
                    dtype: str, seed: int = 0, **options) -> nn.Module:
    """Module ``name`` (a kind of ``rnnspec.kinds.KINDS``: a layer or a cell) on ``device`` in ``dtype``, holding
    ``rnnspec.inputs.random_parameters(seed)`` (rounded once, to ``dtype``), as ``implementation`` builds it.

    Chapters that state one contract for all eight modules (shapes, error contracts, the support
    matrix) build them so: weights drawn by NumPy's generator from a seed, never torch's default
    initialisation. ``options``: bias, and for the layers num_layers, bidirectional, batch_first,
    proj_size, dropout.
    """
    kind = KINDS[name]
    shape_options = {key: options.pop(key) for key in ("num_layers", "bidirectional", "proj_size") if key in options}
    parameters = random_parameters(kind.recurrence, input_size, hidden_size, seed, bias=options.pop("bias", True),
                                   **shape_options)
    layer_options = {} if kind.cell else shape_options
    return build(kind.recurrence, parameters, implementation=implementation, device=device, dtype=dtype, cell=kind.cell,
                 **layer_options, **options)
