"""The mutant zoo: one catalogue of deliberately wrong recurrent layers, each a real class of bug.

Every entry is the pure-torch loop of ``rnnspec/torch_loop.py`` with one hook filled
(:class:`rnnspec.torch_loop.Break`). The same catalogue serves two ways of putting it in torch's
place: ``-p rnnspec.breaks --break NAME`` patches torch's layer functions for a whole session
(``rnnspec/breaks.py``), and ``--target mutant:NAME`` builds each module the spec runs as that
implementation (``rnnspec/mutants.py``, which also runs the whole zoo). ``reference`` is the loop
with nothing broken: the correct implementation the spec must accept.

The wrong implementations, and the real bug class each one models:

``relu_computes_tanh``
    ``nn.RNN(nonlinearity='relu')`` computes tanh: a dispatch bug, the wrong kernel chosen for a
    mode (a ``mode`` string compared wrongly, a kernel table indexed off by one).
``tanh_computes_relu``
    ``nn.RNN`` with tanh (the default) computes relu: the same dispatch bug the other way round.
``lstm_gates_swapped``
    the LSTM reads rows 0:H of its weights and biases as the forget gate and rows H:2H as the
    input gate (the documented order is i, f, g, o): a gate-layout bug, as when weights are
    repacked for a vendor library (cuDNN, MKL-DNN, MIOpen) whose gate order differs.
``gru_reset_before``
    the GRU applies the reset gate before the recurrent matrix,
    ``n = tanh(W_in x + b_in + W_hn (r * h) + b_hn)`` (Cho et al., 2014), instead of PyTorch's
    documented reset-after ``n = tanh(W_in x + b_in + r * (W_hn h + b_hn))``: an implementation
    that follows the paper (or another framework) instead of the documented formula.
``bias_hh_ignored``
    ``bias_hh`` contributes nothing (multiplied by 0, so it stays in the graph and its gradient is
    0): a dropped term, as in a fused kernel that adds one bias vector only.
``hidden_gradient_scaled_0_9``
    the gradient flowing from h_t back to h_(t-1) (and c_t to c_(t-1)) is multiplied by 0.9, the
    forward is unchanged: a wrong backward formula in the recurrent path, invisible to any
    forward-only test.
``hidden_state_detached``
    the state carried from one step to the next is detached, so no gradient crosses a step (BPTT
    truncated to one step), the forward is unchanged: a stray ``.detach()`` / ``no_grad`` in the
    time loop.
``gradient_perturbed_1e-4``
    every parameter, input and initial-state gradient is multiplied by 1 + 1e-4, the forward is
    unchanged: a small numerical error in a backward kernel (a wrong accumulation, a lost
    correction term), which only a tolerance tighter than 1e-4 can see.
``recurrence_drops_w_hh``
    the ``W_hh h_(t-1)`` term is missing from the forward (``W_hh`` multiplied by 0, its gradient
    is 0; ``b_hh`` stays): the layer no longer recurs, like a kernel that passes a zero state.

``h0_ignored``
    the initial state is replaced by zeros (multiplied by 0: its gradient is 0): a state
    argument accepted and dropped, as in a wrapper that forgets to pass ``hx`` on.
``reverse_not_reversed``
    the reverse direction reads time forwards: a bidirectional layer that runs both directions
    the same way.
``batch_first_ignored``
    batch-first input is read as if it were sequence-first (batch and time swapped), the bug
    PyTorch shipped on one backend.
``packed_h_n_from_padded_end``
    with packed sequences, a finished sequence keeps stepping on padding (zero input) up to the
    longest length, so its h_n is the state at the padded end, not at its own last step.
``dropout_in_eval``
    inter-layer dropout also acts in evaluation mode (``training`` ignored).
``projection_missing``
    ``proj_size``: h is cut to its first P features instead of projected by ``weight_hr``.
``bptt_truncated_after_3_steps``
    the carried state is detached every 3 steps: the gradient reaches back at most 3 steps, a
    truncated BPTT hidden inside the layer (the forward is unchanged).
``float64_computed_in_float32``
    float64 layers are computed in float32 and only their results rounded back, as a kernel
    without a float64 path does.
``output_perturbed_1e-4``
    output, h_n and c_n are 1e-4 relative too large (the backward is the chain rule of that): a
    small numerical error in a forward kernel.
``gru_update_gate_inverted``
    the GRU interpolates the other way round, h' = z n + (1 − z) h (the original paper's
    convention, and Keras'), instead of PyTorch's h' = (1 − z) n + z h.
``h_n_direction_major``
    h_n and c_n of a multi-layer bidirectional layer are stacked direction-major (all forward
    layers, then all reverse ones) instead of layer-major (index l·D + d).

Paths kernels take by size and memory layout, IEEE corners and the output contract (chapters 17
and 18, and the contract every check asserts first):

``long_sequences_restart_every_128_steps``
    beyond 128 steps the time loop runs in chunks of 128, and each chunk starts from the initial
    state instead of the state the previous chunk left: a chunked or persistent time loop that
    loses its carry between chunks, invisible on sequences of at most 128 steps.
``wide_layers_w_hh_transposed``
    from 128 hidden units on, the recurrent GEMM reads each gate's block of ``W_hh`` transposed: a
    wrong transposition flag on the path a BLAS or a kernel library takes for large matrices.
``batch_tail_loses_its_state``
    in batches of more than 16 sequences, the rows past the last whole block of 8 (the scalar tail
    of a vectorised batch body) read a zero state instead of their own: the class of "wrong for
    batch > 1" and "huge errors for large batches" bugs.
``non_contiguous_read_as_contiguous``
    the input and the initial states are read from memory as if they were contiguous, whatever
    their strides (a kernel that takes the data pointer and skips the copy): transposed, permuted
    and strided views are read in the wrong order; an expanded one is refused.
``subnormals_flushed_to_zero``
    every input, weight, carried state and result below the smallest normal number of its dtype
    is flushed to zero, and so is every gradient flowing back through them (FTZ and DAZ, what
    ``torch.set_flush_denormal(True)`` or a kernel built with fast-math does): gradual underflow lost.
``results_leak_into_float32``
    output, h_n and c_n come back in float32 whatever the layer's dtype (a kernel whose output
    buffers are allocated in the default dtype): in float64 their values move by float32's
    rounding (3e-8 relative), within most value checks' tolerance; the output contract, asserted
    first in every recorded check and property example, names it (so do chapter 16's support
    matrix and the claims exact in float64).
``backward_not_differentiable``
    output, h_n and c_n pass through a function whose backward hands the upstream gradient on
    detached: every value and first derivative is right, but the backward has no backward (a
    hand-written kernel without double backward that does not say so); chapter 19's
    ``gradgradcheck`` sees second derivatives of 0.


:data:`DEFAULT_ZOO` is the representative subset ``selftest/test_mutant_zoo.py`` runs by default;
``--full-zoo`` (or ``RNNSPEC_FULL_ZOO=1``) runs every mutant. Each mutant runs the whole spec
(``spec/``, every chapter) in float64: the subset chooses mutants, never chapters.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from rnnspec.torch_loop import NO_BREAK, Break, Weights, scale_gradient


def _swap_input_and_forget_gates(kind: str, hidden: int, weights: Weights) -> Weights:
    """Rows H:2H first, then 0:H, then 2H:4H, in every LSTM weight and bias (not the projection)."""
    def swapped(tensor):
        return None if tensor is None else torch.cat([tensor[hidden:2 * hidden], tensor[:hidden], tensor[2 * hidden:]])
    return {name: swapped(tensor) for name, tensor in weights.items()}


def _zero(name: str) -> Callable[[str, int, Weights], Weights]:
    """``weights[name]`` multiplied by 0: the term vanishes, the parameter stays in the graph (gradient 0)."""
    def hook(kind: str, hidden: int, weights: Weights) -> Weights:
        return {**weights, name: None if weights[name] is None else weights[name] * 0}
    return hook


class _OnceDifferentiable(torch.autograd.Function):
    """The identity, whose backward passes the upstream gradient on detached: no second derivative flows."""

    @staticmethod
    def forward(ctx, tensor):
        return tensor.view_as(tensor)

    @staticmethod
    def backward(ctx, grad):
        return grad.detach().clone()


class _FlushSubnormals(torch.autograd.Function):
    """Subnormal values flushed to zero, forward and backward: FTZ (results) and DAZ (operands) on the loop."""

    @staticmethod
    def forward(ctx, tensor):
        return _flushed(tensor)

    @staticmethod
    def backward(ctx, grad):
        return _flushed(grad)


def _flushed(tensor: torch.Tensor) -> torch.Tensor:
    return torch.where(tensor.abs() < torch.finfo(tensor.dtype).tiny, torch.zeros_like(tensor), tensor)


def _w_hh_transposed_from(hidden_size: int) -> Callable[[str, int, Weights], Weights]:
    """From ``hidden_size`` units on, each gate's square block of ``W_hh`` transposed (projected LSTMs: untouched)."""
    def hook(kind: str, hidden: int, weights: Weights) -> Weights:
        w_hh = weights["w_hh"]
        if hidden < hidden_size or w_hh.shape[1] != hidden:
            return weights
        gates = w_hh.shape[0] // hidden
        return {**weights, "w_hh": w_hh.view(gates, hidden, hidden).transpose(1, 2).reshape(gates * hidden, hidden)}
    return hook


ZOO: dict[str, Break] = {b.name: b for b in (
    Break("relu_computes_tanh", "dispatch bug: the relu RNN runs the tanh kernel",
          kinds=("rnn_relu",), nonlinearity=torch.tanh),
    Break("tanh_computes_relu", "dispatch bug: the tanh RNN runs the relu kernel",
          kinds=("rnn_tanh",), nonlinearity=torch.relu),
    Break("lstm_gates_swapped", "gate-layout bug: LSTM input and forget gate rows swapped",
          kinds=("lstm",), weights=_swap_input_and_forget_gates),
    Break("gru_reset_before", "formula bug: GRU reset gate applied before W_hn (the paper's form)",
          kinds=("gru",), reset_before=True),
    Break("bias_hh_ignored", "dropped term: bias_hh contributes nothing (its gradient is 0)",
          weights=_zero("b_hh")),
    Break("hidden_gradient_scaled_0_9", "backward bug: the recurrent gradient is scaled by 0.9 per step",
          carry=scale_gradient(0.9)),
    Break("hidden_state_detached", "backward bug: the carried state is detached (BPTT of one step)",
          carry=torch.Tensor.detach),
    Break("gradient_perturbed_1e-4", "numerical bug: every gradient is 1e-4 relative too large",
          entry=scale_gradient(1 + 1e-4)),
    Break("recurrence_drops_w_hh", "dropped term: W_hh h_(t-1) is missing from the forward",
          weights=_zero("w_hh")),
    Break("h0_ignored", "state dropped: h0 and c0 replaced by zeros (their gradient is 0)",
          initial=lambda state: state * 0),
    Break("reverse_not_reversed", "direction bug: the reverse direction reads time forwards", reverse_in_order=True),
    Break("batch_first_ignored", "layout bug: batch-first input read as sequence-first (batch and time swapped)",
          ignores_batch_first=True),
    Break("packed_h_n_from_padded_end", "packing bug: finished sequences step on padding, h_n at the padded end",
          packed_runs_to_padded_end=True),
    Break("dropout_in_eval", "mode bug: inter-layer dropout also in evaluation mode", dropout_in_eval=True),
    Break("projection_missing", "dropped term: LSTM h cut to proj_size features, weight_hr unused",
          kinds=("lstm",), projection_sliced=True),
    Break("bptt_truncated_after_3_steps", "backward bug: the state is detached every 3 steps (truncated BPTT)",
          carry=torch.Tensor.detach, carry_every=3),
    Break("float64_computed_in_float32", "precision bug: float64 computed in float32, results rounded back",
          float64_in_float32=True),
    Break("output_perturbed_1e-4", "numerical bug: output, h_n and c_n 1e-4 relative too large",
          exit=lambda tensor: tensor * (1 + 1e-4)),
    Break("gru_update_gate_inverted", "formula bug: GRU h' = z n + (1 - z) h (the paper's convention)",
          kinds=("gru",), update_gate_inverted=True),
    Break("h_n_direction_major", "layout bug: h_n and c_n stacked direction-major instead of layer-major",
          h_n_direction_major=True),
    Break("long_sequences_restart_every_128_steps",
          "size bug: beyond 128 steps the time loop runs in chunks, each from the initial state", restart_every=128),
    Break("wide_layers_w_hh_transposed",
          "size bug: from 128 hidden units the recurrent GEMM reads each gate's W_hh block transposed",
          weights=_w_hh_transposed_from(128)),
    Break("batch_tail_loses_its_state",
          "size bug: in batches over 16, the rows past the last block of 8 read a zero state", batch_block=8),
    Break("non_contiguous_read_as_contiguous",
          "layout bug: input and initial states read as if contiguous, whatever their strides",
          reads_as_contiguous=True),
    Break("subnormals_flushed_to_zero",
          "IEEE bug: subnormal values and gradients flushed to zero (FTZ/DAZ, fast-math)",
          entry=_FlushSubnormals.apply, carry=_FlushSubnormals.apply, exit=_FlushSubnormals.apply),
    Break("results_leak_into_float32", "dtype bug: output, h_n and c_n returned in float32 whatever the dtype",
          exit=lambda tensor: tensor.float()),
    Break("backward_not_differentiable",
          "autograd bug: the backward hands the gradient on detached, so it has no derivative of its own",
          exit=_OnceDifferentiable.apply),
)}
#: The loop with no mutation: the correct implementation the spec must accept.
REFERENCE = "reference"
IMPLEMENTATIONS: dict[str, Break] = {REFERENCE: NO_BREAK, **ZOO}

#: The subset selftest/test_mutant_zoo.py runs by default: one mutant per family of bug (a wrong
#: nonlinearity, a gate layout, a formula convention, a direction, packing, a backward-only bug, a
#: mode, a precision bug, a small numerical error), together touching every kind of layer. The
#: others run with --full-zoo. Every session runs every chapter: the subset chooses mutants only.
DEFAULT_ZOO = ("relu_computes_tanh", "lstm_gates_swapped", "gru_update_gate_inverted", "reverse_not_reversed",
               "packed_h_n_from_padded_end", "bptt_truncated_after_3_steps", "dropout_in_eval",
               "float64_computed_in_float32", "output_perturbed_1e-4")
