"""The pure-torch loop over time steps that computes a recurrent layer, with hooks to compute it wrongly.

:func:`reference_layers` computes what ``torch._VF.rnn_tanh``, ``rnn_relu``, ``lstm`` and ``gru``
(the functions behind ``nn.RNN``, ``nn.LSTM`` and ``nn.GRU``) compute, one step at a time, for
everything the modules pass them: padded input seq-first or batch-first (unbatched input arrives as
a batch of one), packed sequences, any number of layers, both directions, LSTM projections and
inter-layer dropout. bfloat16 and float16 layers are computed in float32, only their results
rounded (as fused kernels do). With no hook filled (:data:`NO_BREAK`) the loop agrees with the
original functions to roundoff in float64, forward and backward, and passes the whole spec in
every dtype (``selftest/test_breaks_are_caught.py``).

A :class:`Break` fills the loop's hooks: each of the mutant zoo's wrong implementations
(``rnnspec/zoo.py``) is one. The loop takes torch's place in two ways: :func:`install` (and
:func:`patched`) replaces the ``torch._VF`` functions for a whole session (``--break``,
``rnnspec/breaks.py``), :func:`routed` one module at a time (``--target mutant:NAME``, the ``cells``
target). The original also runs first on every call (without gradient and without using up random
numbers, its result discarded), so that an invalid call raises torch's own error. The cells
(``nn.RNNCell``, ``nn.LSTMCell``, ``nn.GRUCell``) are not affected, except by the ``cells`` target's
hook, which has each step computed by torch's cell module.
"""

from __future__ import annotations

import collections
import contextlib
import functools
import types
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from rnnspec.kinds import GATES, RECURRENCES

#: How many calls of each kind the reference loop computed (calls of an unknown form go to the original).
handled: collections.Counter[str] = collections.Counter()


class _ScaleGradient(torch.autograd.Function):
    """The identity forward; the backward multiplies the incoming gradient by ``factor``."""

    @staticmethod
    def forward(ctx, tensor, factor):
        ctx.factor = factor
        return tensor.view_as(tensor)

    @staticmethod
    def backward(ctx, grad):
        return grad * ctx.factor, None


def scale_gradient(factor: float) -> Callable[[torch.Tensor], torch.Tensor]:
    return lambda tensor: _ScaleGradient.apply(tensor, factor)


Weights = dict[str, torch.Tensor | None]  # w_ih, w_hh, b_ih, b_hh (None without bias)


@dataclass(frozen=True)
class Break:
    """One way of computing a recurrent layer wrongly: the reference loop with one hook filled.

    Every hook applies to the layer kinds in ``kinds`` only.
    """

    name: str
    models: str  # the real bug class, one line
    kinds: tuple[str, ...] = RECURRENCES
    nonlinearity: Callable[[torch.Tensor], torch.Tensor] | None = None  # the RNN's phi
    weights: Callable[[str, int, Weights], Weights] | None = None  # (kind, hidden size, weights) -> weights
    reset_before: bool = False  # GRU: W_hn (r * h) + b_hn instead of r * (W_hn h + b_hn)
    carry: Callable[[torch.Tensor], torch.Tensor] | None = None  # the state passed from step t to t+1
    entry: Callable[[torch.Tensor], torch.Tensor] | None = None  # every input, initial state and weight
    # Hooks of the mutant zoo (rnnspec/mutants.py); the breaks above leave them unset.
    carry_every: int = 1  # ``carry`` applies at every carry_every-th step only (1: every step)
    initial: Callable[[torch.Tensor], torch.Tensor] | None = None  # h0 and c0 as the loop reads them
    exit: Callable[[torch.Tensor], torch.Tensor] | None = None  # output, h_n and c_n as returned
    ignores_batch_first: bool = False  # batch-first input read as if it were sequence-first
    reverse_in_order: bool = False  # the reverse direction reads time forwards
    packed_runs_to_padded_end: bool = False  # packed: finished sequences keep stepping on zero input
    dropout_in_eval: bool = False  # inter-layer dropout also in evaluation mode
    projection_sliced: bool = False  # LSTM proj_size: h cut to its first P features, weight_hr unused
    update_gate_inverted: bool = False  # GRU: h' = z * n + (1 - z) * h (the paper's convention)
    h_n_direction_major: bool = False  # h_n (and c_n) stacked direction-major instead of layer-major
    float64_in_float32: bool = False  # float64 layers computed in float32, only results rounded back
    cell_modules: bool = False  # each step by torch's cell module (nn.LSTMCell...): the `cells` target
    # Hooks of the paths kernels take by size and memory layout (chapter 17's mutants).
    restart_every: int = 0  # the time loop runs in chunks of this many steps, each from the initial state (0: off)
    batch_block: int = 0  # in batches above 2 blocks, the rows past the last whole block read a zero state (0: off)
    reads_as_contiguous: bool = False  # input and initial states read from memory as if they were contiguous

    def applies_to(self, kind: str) -> bool:
        return kind in self.kinds


#: The loop with no hook: the correct layers, for checking the loop against the originals.
NO_BREAK = Break("none", "nothing: the reference loop as PyTorch documents the layers")


#: Input dtypes the loop computes in float32, rounding only its results: see :func:`reference_layers`.
COMPUTED_IN_FLOAT32 = (torch.bfloat16, torch.float16)

#: A step of torch's cell module: (input rows, h, c or None) -> (h', c' or None); see :func:`_cell_step`.
Step = Callable[[torch.Tensor, torch.Tensor, torch.Tensor | None], tuple[torch.Tensor, torch.Tensor | None]]


def _direction(kind: str, brk: Break, steps: list[torch.Tensor], h: torch.Tensor, c: torch.Tensor | None,
               weights: Weights, w_hr: torch.Tensor | None, hidden: int, reverse: bool, cell: Step | None = None):
    """One layer in one direction (its weights as the break has them): every step's output, h_n and c_n.

    ``steps[t]`` is step t's input term W_ih x_t + b_ih for the sequences still running at t: the
    first ``len(steps[t])`` rows of the batch (packed sequences are sorted longest first). The
    other rows keep their state, so each sequence's h_n is its state after its own last step.
    With ``cell`` (the ``cells`` target), ``steps[t]`` holds the input rows x_t themselves and
    ``cell`` computes the step.
    """
    active = brk.applies_to(kind)
    w_hh, b_hh = weights["w_hh"], weights["b_hh"]
    outputs: list[torch.Tensor | None] = [None] * len(steps)
    initial = h, c
    for position, t in enumerate(range(len(steps) - 1, -1, -1) if reverse else range(len(steps))):
        if position > 0 and active and brk.carry is not None and position % brk.carry_every == 0:
            h = brk.carry(h)
            c = None if c is None else brk.carry(c)
        if position > 0 and active and brk.restart_every and position % brk.restart_every == 0:
            h, c = initial  # a chunked time loop that starts every chunk from the initial state
        x_part = steps[t]
        valid = x_part.shape[0]
        if active and brk.packed_runs_to_padded_end and not reverse and valid < h.shape[0]:
            # the finished sequences step on on padding, as if it were input: W_ih 0 + b_ih
            padding = x_part.new_zeros((h.shape[0] - valid,) + x_part.shape[1:])
            x_part = torch.cat([x_part, padding if cell is not None or weights["b_ih"] is None
                                else padding + weights["b_ih"]])
        running = x_part.shape[0]
        h_prev = h[:running]
        if active and brk.batch_block and running > 2 * brk.batch_block and running % brk.batch_block:
            body = running - running % brk.batch_block  # the vectorised body; the scalar tail reads a zero state
            h_prev = torch.cat([h_prev[:body], torch.zeros_like(h_prev[body:])])
        c_new = None
        if cell is not None:
            h_new, c_new = cell(x_part, h_prev, None if c is None else c[:running])
        elif kind in ("rnn_tanh", "rnn_relu"):
            phi = brk.nonlinearity if active and brk.nonlinearity is not None else \
                (torch.tanh if kind == "rnn_tanh" else torch.relu)
            h_new = phi(x_part + F.linear(h_prev, w_hh, b_hh))
        elif kind == "lstm":
            i, f, g, o = (x_part + F.linear(h_prev, w_hh, b_hh)).chunk(4, dim=-1)
            c_new = torch.sigmoid(f) * c[:running] + torch.sigmoid(i) * torch.tanh(g)
            h_new = torch.sigmoid(o) * torch.tanh(c_new)
            if w_hr is not None:
                h_new = h_new[..., :w_hr.shape[0]] if active and brk.projection_sliced else F.linear(h_new, w_hr)
        else:  # gru
            x_r, x_z, x_n = x_part.chunk(3, dim=-1)
            if active and brk.reset_before:
                h_r, h_z = F.linear(h_prev, w_hh[:2 * hidden], None if b_hh is None else b_hh[:2 * hidden]).chunk(2, -1)
                r, z = torch.sigmoid(x_r + h_r), torch.sigmoid(x_z + h_z)
                n = torch.tanh(x_n + F.linear(r * h_prev, w_hh[2 * hidden:], None if b_hh is None else b_hh[2 * hidden:]))
            else:
                h_r, h_z, h_n = F.linear(h_prev, w_hh, b_hh).chunk(3, dim=-1)
                r, z = torch.sigmoid(x_r + h_r), torch.sigmoid(x_z + h_z)
                n = torch.tanh(x_n + r * h_n)
            h_new = z * n + (1 - z) * h_prev if active and brk.update_gate_inverted else (1 - z) * n + z * h_prev
        if c_new is not None:
            c = c_new if running == c.shape[0] else torch.cat([c_new, c[running:]])
        outputs[t] = h_new if valid == running else h_new[:valid]
        h = h_new if running == h.shape[0] else torch.cat([h_new, h[running:]])
    return outputs, h, c


@functools.cache
def _cell_module(kind: str, input_size: int, hidden_size: int, bias: bool) -> torch.nn.Module:
    """torch's cell of ``kind``, on the meta device (no memory, no random numbers): its weights come per call."""
    cells = {"rnn_tanh": (torch.nn.RNNCell, {"nonlinearity": "tanh"}), "rnn_relu": (torch.nn.RNNCell, {"nonlinearity": "relu"}),
             "lstm": (torch.nn.LSTMCell, {}), "gru": (torch.nn.GRUCell, {})}
    module_class, options = cells[kind]
    return module_class(input_size, hidden_size, bias=bias, device="meta", **options)


def _cell_step(kind: str, weights: Weights) -> Step:
    """One step of torch's cell module of ``kind`` (nn.RNNCell, nn.LSTMCell, nn.GRUCell) holding ``weights``."""
    cell = _cell_module(kind, weights["w_ih"].shape[1], weights["w_hh"].shape[1], weights["b_ih"] is not None)
    parameters = {"weight_ih": weights["w_ih"], "weight_hh": weights["w_hh"]}
    if weights["b_ih"] is not None:
        parameters.update(bias_ih=weights["b_ih"], bias_hh=weights["b_hh"])

    def step(x, h, c):
        if kind == "lstm":
            return torch.func.functional_call(cell, parameters, (x, (h, c)))
        return torch.func.functional_call(cell, parameters, (x, h)), None
    return step


def reference_layers(kind: str, brk: Break, input, hx, weights, has_biases, num_layers, dropout, training,
                     bidirectional, batch_first=False, batch_sizes=None):
    """What ``torch._VF.<kind>`` returns, computed step by step with ``brk``'s hooks.

    ``input`` is padded, (L, N, I) or (N, L, I) with ``batch_first``, or the data (sum of
    ``batch_sizes``, I) of a packed sequence. As in torch, each layer's output is rounded to the
    input's dtype (under ``torch.autocast`` it keeps the dtype its computation gave, as torch's
    composite kernels do: chapter 20), and inter-layer dropout (training mode) is ``torch.dropout`` on that output, so
    with the same random state it drops what torch drops on CPU. bfloat16 and float16 layers are
    computed in float32 and only their results are rounded, as fused kernels do (oneDNN on CPU,
    cuDNN): rounding every operation to 8 significant bits moves the 20-step LSTM's input gradient
    6 % from the truth, beyond bfloat16's tolerance, and the loop with no break must pass the spec
    in every dtype. float32 and float64 are computed as they come. With ``brk.cell_modules`` each
    step is torch's cell module instead, in the input's dtype (a loop of cells as a user writes it).
    """
    active = brk.applies_to(kind)
    directions = 2 if bidirectional else 1
    per_direction = len(weights) // (num_layers * directions)
    h0, c0 = hx if kind == "lstm" else (hx, None)
    if active and brk.reads_as_contiguous:
        input, h0 = _read_as_contiguous(input), _read_as_contiguous(h0)
        c0 = None if c0 is None else _read_as_contiguous(c0)
    transposed = batch_first and batch_sizes is None and not (active and brk.ignores_batch_first)
    x = input.transpose(0, 1) if transposed else input
    if active and brk.entry is not None:
        x, h0 = brk.entry(x), brk.entry(h0)
        c0 = None if c0 is None else brk.entry(c0)
        weights = [brk.entry(w) for w in weights]
    if active and brk.initial is not None:
        h0, c0 = brk.initial(h0), None if c0 is None else brk.initial(c0)
    dtype = input.dtype
    narrowed = (dtype in COMPUTED_IN_FLOAT32 and not brk.cell_modules) or (
        active and brk.float64_in_float32 and dtype == torch.float64)
    compute = (lambda t: None if t is None else t.float()) if narrowed else (lambda t: t)
    # Each layer's results in the input's dtype, as torch rounds them; under autocast, in the dtype the
    # computation gave (torch's composite kernels cast nothing back: a tanh RNN returns bfloat16).
    returned = (lambda t: t) if torch.is_autocast_enabled(input.device.type) else (lambda t: t.to(dtype))
    sizes = None if batch_sizes is None else [int(size) for size in batch_sizes]
    h_n, c_n = [], []
    for layer in range(num_layers):
        outputs = []
        for direction in range(directions):
            index = layer * directions + direction
            w = [compute(t) for t in weights[index * per_direction:(index + 1) * per_direction]]
            w_hr = w[-1] if kind == "lstm" and per_direction in (3, 5) else None  # proj_size > 0
            named = {"w_ih": w[0], "w_hh": w[1], "b_ih": w[2] if has_biases else None,
                     "b_hh": w[3] if has_biases else None}
            hidden = w[1].shape[0] // GATES[kind]
            if active and brk.weights is not None:
                named = brk.weights(kind, hidden, named)
            if brk.cell_modules:
                if w_hr is not None:
                    raise NotImplementedError("proj_size: torch's LSTMCell has no projection")
                cell, steps = _cell_step(kind, named), _split_steps(compute(x), sizes)
            else:  # all input terms at once
                cell, steps = None, _split_steps(F.linear(compute(x), named["w_ih"], named["b_ih"]), sizes)
            output, h, c = _direction(kind, brk, steps, compute(h0[index]),
                                      None if c0 is None else compute(c0[index]), named, w_hr, hidden,
                                      reverse=direction == 1 and not (active and brk.reverse_in_order), cell=cell)
            outputs.append(output)
            h_n.append(returned(h))
            c_n.append(None if c is None else returned(c))
        per_step = [torch.cat(parts, dim=-1) for parts in zip(*outputs)] if directions == 2 else outputs[0]
        x = returned(torch.cat(per_step) if sizes is not None else torch.stack(per_step))
        if dropout > 0 and (training or (active and brk.dropout_in_eval)) and layer < num_layers - 1:
            x = torch.dropout(x, dropout, True)
    if active and brk.h_n_direction_major and directions == 2:
        order = [layer * 2 + direction for direction in range(2) for layer in range(num_layers)]
        h_n, c_n = [h_n[i] for i in order], [c_n[i] for i in order]
    output = x.transpose(0, 1) if transposed else x
    results = [output, torch.stack(h_n)] + ([torch.stack(c_n)] if kind == "lstm" else [])
    if active and brk.exit is not None:
        results = [brk.exit(result) for result in results]
    return tuple(results)


def _read_as_contiguous(tensor: torch.Tensor) -> torch.Tensor:
    """The elements at the tensor's offset in its memory, read in contiguous order whatever its strides: what a
    kernel that takes the data pointer and assumes a contiguous tensor reads (an expanded tensor's memory is too
    short for that: torch refuses to read past it)."""
    if tensor.is_contiguous():
        return tensor
    strides = [1] * tensor.dim()
    for axis in range(tensor.dim() - 2, -1, -1):
        strides[axis] = strides[axis + 1] * tensor.shape[axis + 1]
    return tensor.as_strided(tensor.shape, strides, tensor.storage_offset())


def _split_steps(terms: torch.Tensor, sizes: list[int] | None) -> list[torch.Tensor]:
    """Per-step rows of a padded (L, N, ·) tensor, or of packed data (sum of sizes, ·)."""
    if sizes is None:
        return list(terms.unbind(0))
    return list(terms.split(sizes))


def _preserving_random_state(device: torch.device) -> contextlib.AbstractContextManager:
    """Restore the random state of the CPU (and of ``device``'s accelerator) afterwards."""
    module = getattr(torch, device.type, None)
    if device.type == "cpu" or not hasattr(module, "get_rng_state") or not module.is_available():
        return torch.random.fork_rng(devices=[])
    return torch.random.fork_rng(devices=[device.index or 0], device_type=device.type)


def _replacement(kind: str, brk: Break, original: Callable) -> Callable:
    def layer(*args, **kwargs):
        # Padded input: (input, hx, weights, has_biases: bool, layers, dropout, train, bidirectional, batch_first);
        # packed: (data, batch_sizes, hx, weights, has_biases: bool, layers, dropout, train, bidirectional).
        if kwargs or len(args) != 9 or not (isinstance(args[3], bool) or isinstance(args[4], bool)):
            return original(*args, **kwargs)
        # The original's argument checks first, so that every error is torch's own, word for word;
        # without gradient, and without using up random numbers its dropout would draw.
        with torch.no_grad(), _preserving_random_state(args[0].device):
            original(*args)
        handled[kind] += 1
        if isinstance(args[3], bool):
            return reference_layers(kind, brk, *args)
        data, batch_sizes, hx, weights, has_biases, num_layers, dropout, training, bidirectional = args
        return reference_layers(kind, brk, data, hx, weights, has_biases, num_layers, dropout, training,
                                bidirectional, batch_sizes=batch_sizes)
    layer.__name__ = layer.__qualname__ = f"{kind}_{brk.name}"
    return layer


_MISSING = object()


#: How many times a session-wide :func:`install` or its restore changed what computes torch's layers.
_GENERATION = 0


def generation() -> int:
    """Changes whenever :func:`install` (or its restore) changes, for a session, what computes torch's layers:
    ``rnnspec.measure`` keys its memoised runs by it, so that a session with a broken torch never reuses the
    runs of an earlier session in the same process, nor one after it the broken runs. Per-call patches
    (:func:`patched`, :func:`routed`) are undone before any run returns, and do not change it."""
    return _GENERATION


def _swap(brk: Break) -> Callable[[], None]:
    vf = torch._VF  # the module object torch/nn/modules/rnn.py calls through
    saved = {kind: vf.__dict__.get(kind, _MISSING) for kind in RECURRENCES}
    for kind in RECURRENCES:
        setattr(vf, kind, _replacement(kind, brk, getattr(vf, kind)))

    def restore() -> None:
        for kind, value in saved.items():
            if value is _MISSING:
                vars(vf).pop(kind, None)  # falls back to torch._C._VariableFunctions again
            else:
                setattr(vf, kind, value)
    return restore


def install(brk: Break) -> Callable[[], None]:
    """Replace ``torch._VF``'s layer functions by the loop with ``brk`` for a session; return the function
    that restores them. Both change :func:`generation`."""
    global _GENERATION
    swapped = _swap(brk)
    _GENERATION += 1

    def restore() -> None:
        global _GENERATION
        swapped()
        _GENERATION += 1
    return restore


@contextlib.contextmanager
def patched(brk: Break) -> Iterator[Break]:
    """``brk`` installed for the ``with`` block, restored afterwards whatever happens."""
    restore = _swap(brk)
    try:
        yield brk
    finally:
        restore()


def routed(module: torch.nn.Module, brk: Break) -> torch.nn.Module:
    """``module`` (an ``nn.RNN``, ``nn.LSTM`` or ``nn.GRU``) with its calls computed by the loop with ``brk``.

    Everything else stays the module's own: its class, parameters and their names, its call
    signature and argument checks; only the ``torch._VF`` function it calls is the loop's, patched
    for the duration of each of its calls (as :func:`patched` does) and restored afterwards. Other
    modules are untouched. This is how ``rnnspec.targets`` builds the ``cells`` target and the
    mutants of the zoo, one module at a time, where ``--break`` patches the session.
    """
    layer_forward = type(module).forward

    def forward(self, *args, **kwargs):
        with patched(brk):
            return layer_forward(self, *args, **kwargs)
    module.forward = types.MethodType(forward, module)
    return module
