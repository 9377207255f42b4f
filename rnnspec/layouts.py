"""Memory layouts: the same values laid out in memory in different ways, as a module may receive them.

A tensor is a view of memory: a shape, a stride per axis (how many elements apart two neighbours
along that axis lie) and an offset. Two tensors with equal values may differ in all three, and
kernels look at them: a contiguous input is read as one block, or handed to a GEMM directly; any
other is copied first, or read element by element, or (a bug) read as if it were contiguous. An
implementation that is right for contiguous tensors and wrong for the others passes every test that
builds its inputs with ``torch.tensor(...)``. Each layout here is a function from the contiguous
tensor of the values to a tensor of the *same values* laid out another way, differentiable, so the
gradient of what the module received can be compared with the reference as well
(``rnnspec.measure.measure(..., layouts=...)``):

``contiguous``
    as ``torch.tensor`` makes it: the last axis innermost, no gaps.
``transposed``
    stored with its first two axes swapped (a batch-first tensor ``transpose(0, 1)``-ed to
    sequence-first, the usual way to switch layouts), read through a transposing view.
``time_innermost``
    stored with the time axis innermost: a ``Conv1d``'s (N, C, L) output ``permute``-d to the
    (L, N, C) a recurrent layer reads, the conv-then-RNN pattern (channels-last-like: the axis stored
    innermost is not the last one).
``strided``
    every other element of a buffer twice as long along the feature axis (stride 2): a slice with a
    step, as ``x[..., ::2]`` makes.
``expanded``
    the batch axis broadcast from one row with stride 0 (``expand``): every sequence of the batch
    reads the same memory. Defined only for a batch whose rows are equal (the configuration draws
    them so) and for tensors with a batch axis.
``misaligned``
    contiguous, but starting one element into its buffer (storage offset 1): vectorised kernels that
    assume aligned memory take another path, or read wrong.

Each function takes the tensor and the index of its time and batch axes (None where the tensor has
none: initial states have no time axis, unbatched input no batch axis) and uses torch alone, so a
failure's reproduction snippet (``rnnspec/configurations.py``) can carry its source as it is.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable

import torch


def contiguous(t, time_axis, batch_axis):
    return t


def transposed(t, time_axis, batch_axis):
    order = [1, 0] + list(range(2, t.dim()))
    return t.permute(order).contiguous().permute(order)


def time_innermost(t, time_axis, batch_axis):
    order = [axis for axis in range(t.dim()) if axis != time_axis] + [time_axis]
    inverse = [order.index(axis) for axis in range(t.dim())]
    return t.permute(order).contiguous().permute(inverse)


def strided(t, time_axis, batch_axis):
    return torch.stack([t, torch.zeros_like(t)], dim=-1).flatten(-2)[..., ::2]


def expanded(t, time_axis, batch_axis):
    return t.narrow(batch_axis, 0, 1).expand(t.shape)


def misaligned(t, time_axis, batch_axis):
    return torch.cat([t.new_zeros(1), t.flatten()])[1:].view(t.shape)


Layout = Callable[[torch.Tensor, "int | None", "int | None"], torch.Tensor]
#: Every layout by name, contiguous first (the one a shrinking failure falls back to).
LAYOUTS: dict[str, Layout] = {f.__name__: f for f in (contiguous, transposed, time_innermost, strided, expanded,
                                                       misaligned)}
#: What each layout needs of the tensor: a time axis, a batch axis.
NEEDS_TIME_AXIS = frozenset({"time_innermost"})
NEEDS_BATCH_AXIS = frozenset({"expanded"})


def applicable(name: str, *, time_axis: int | None, batch_axis: int | None, ndim: int) -> bool:
    """Whether layout ``name`` can lay out a tensor with these axes (transposing needs two axes)."""
    return ((name not in NEEDS_TIME_AXIS or time_axis is not None)
            and (name not in NEEDS_BATCH_AXIS or batch_axis is not None)
            and (name != "transposed" or ndim >= 2))


def lay_out(name: str, *, time_axis: int | None, batch_axis: int | None) -> Callable[[torch.Tensor], torch.Tensor]:
    """Layout ``name`` for tensors with these axes, as ``rnnspec.measure.measure(layouts=...)`` takes it."""
    function = LAYOUTS[name]
    return lambda tensor: function(tensor, time_axis, batch_axis)


def facts(tensor: torch.Tensor) -> str:
    """Where the tensor's elements lie: ``strides (1, 12, 4), offset 0, non-contiguous``."""
    return (f"strides {tuple(tensor.stride())}, offset {tensor.storage_offset()}, "
            f"{'contiguous' if tensor.is_contiguous() else 'non-contiguous'}")


def source(name: str) -> str:
    """The layout function's source, for a standalone reproduction."""
    return inspect.getsource(LAYOUTS[name])
