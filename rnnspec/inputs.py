"""The configurations' arrays: explicit weights, inputs, initial states and upstream gradients.

Weights are always explicit, never torch's random initialisation: PyTorch promises no stable random
stream across releases. :func:`constant_parameters` sets every weight and bias to one value, as the
notebook's ``init.constant_`` does; :func:`random_parameters` and :func:`random_array` draw explicit
values from a seed with NumPy's Generator. A recorded case keeps what these made in its inputs file
(``rnnspec/records.py``): the functions here are the documented origin of those values.
"""

from __future__ import annotations

import numpy as np

from rnnspec import numpy_reference


def constant_parameters(kind: str, input_size: int, hidden_size: int, *, weight: float, bias: float = 0.0,
                        **options) -> dict[str, np.ndarray]:
    """Every weight set to ``weight`` and every bias to ``bias``, as the notebook's ``init.constant_`` does."""
    shapes = numpy_reference.parameter_shapes(kind, input_size, hidden_size, **options)
    return {name: np.full(shape, bias if name.startswith("bias") else weight) for name, shape in shapes.items()}


def random_parameters(kind: str, input_size: int, hidden_size: int, seed: int, **options) -> dict[str, np.ndarray]:
    """Every parameter drawn uniformly from [−1/√H, 1/√H] (torch's default range) by NumPy's generator ``seed``.

    ``options`` are those of ``numpy_reference.parameter_shapes`` (num_layers, bias, bidirectional,
    proj_size) and may include ``batch_first``, which changes no shape; the values depend on the seed
    and the shapes alone, the same on every machine.
    """
    options.pop("batch_first", None)
    shapes = numpy_reference.parameter_shapes(kind, input_size, hidden_size, **options)
    rng = np.random.default_rng(seed)
    bound = 1.0 / np.sqrt(hidden_size)
    return {name: rng.uniform(-bound, bound, shape) for name, shape in shapes.items()}


def random_array(shape: tuple[int, ...], seed: int, *, scale: float = 1.0) -> np.ndarray:
    """An input, initial state or upstream gradient: uniform in [−scale, scale], from NumPy's generator ``seed``."""
    return np.random.default_rng(seed).uniform(-scale, scale, shape)
