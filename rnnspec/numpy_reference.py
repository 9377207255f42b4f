r"""Float64 NumPy reference of torch.nn.RNN (tanh, relu), torch.nn.LSTM and torch.nn.GRU.

Forward pass and backward pass (backpropagation through time written out by hand),
NumPy only: no torch, no autograd.  Every cell below is meant to be checked line by
line against the formulas in torch.nn's documentation, which are restated here.

Notation.  ``W x`` is a matrix-vector product; in code a batch of row vectors is
multiplied as ``x @ W.T`` (see :func:`linear`).  ``σ`` is the logistic sigmoid, ``⊙``
the elementwise product.  Stacked gate weights are split by rows, in torch's order.

Forward equations (exactly as torch documents them)
---------------------------------------------------
RNN (``nonlinearity`` = tanh or relu; weight_ih_l{k}: (H, H_in), weight_hh_l{k}: (H, H))::

    h_t = act(W_ih x_t + b_ih + W_hh h_{t-1} + b_hh)

LSTM (weight_ih_l{k} = [W_ii | W_if | W_ig | W_io] stacked by rows, gate order i, f, g, o)::

    i_t = σ(W_ii x_t + b_ii + W_hi h_{t-1} + b_hi)
    f_t = σ(W_if x_t + b_if + W_hf h_{t-1} + b_hf)
    g_t = tanh(W_ig x_t + b_ig + W_hg h_{t-1} + b_hg)
    o_t = σ(W_io x_t + b_io + W_ho h_{t-1} + b_ho)
    c_t = f_t ⊙ c_{t-1} + i_t ⊙ g_t
    h_t = o_t ⊙ tanh(c_t)
    with proj_size > 0:  h_t = W_hr (o_t ⊙ tanh(c_t))     (weight_hr_l{k}: (P, H))

GRU (PyTorch's "reset-after" form; weight_ih_l{k} = [W_ir | W_iz | W_in], gate order r, z, n)::

    r_t = σ(W_ir x_t + b_ir + W_hr h_{t-1} + b_hr)
    z_t = σ(W_iz x_t + b_iz + W_hz h_{t-1} + b_hz)
    n_t = tanh(W_in x_t + b_in + r_t ⊙ (W_hn h_{t-1} + b_hn))
    h_t = (1 − z_t) ⊙ n_t + z_t ⊙ h_{t-1}

(GRU's W_hr is the reset-gate rows of weight_hh, not the LSTM projection weight_hr.)

Backward recurrences (adjoints δv = ∂loss/∂v)
--------------------------------------------
δh_t is the *total* adjoint of h_t: the upstream gradient of output[t] plus what step
t+1 sends back (at the last step: the upstream gradient of h_n; likewise δc_T from c_n).
Every cell ends with the adjoint δa of its pre-activations a = W_ih x + b_ih + W_hh h + b_hh
(split per gate); the shared "linear" part then is::

    δx_t      = W_ihᵀ δa_ih          δW_ih += δa_ih x_tᵀ        δb_ih += δa_ih
    δh_{t-1} += W_hhᵀ δa_hh          δW_hh += δa_hh h_{t-1}ᵀ    δb_hh += δa_hh

with δa_ih = δa_hh = δa except in the GRU (below).

RNN::   δa = δh_t ⊙ act'(a_t),   tanh' = 1 − h_t²,   relu'(a) = [a > 0]   (relu'(0) = 0)

LSTM::  m_t = o_t ⊙ tanh(c_t);   δm = W_hrᵀ δh_t, δW_hr += δh_t m_tᵀ  (or δm = δh_t without projection)
        δo = δm ⊙ tanh(c_t)
        δc_t ← δc_t + δm ⊙ o_t ⊙ (1 − tanh²(c_t))
        δi = δc_t ⊙ g_t,   δf = δc_t ⊙ c_{t-1},   δg = δc_t ⊙ i_t,   δc_{t-1} = δc_t ⊙ f_t
        δa = [δi ⊙ i(1 − i), δf ⊙ f(1 − f), δg ⊙ (1 − g²), δo ⊙ o(1 − o)]

GRU::   δn = δh_t ⊙ (1 − z_t),   δz = δh_t ⊙ (h_{t-1} − n_t),   δh_{t-1} = δh_t ⊙ z_t + W_hhᵀ δa_hh
        δa_n = δn ⊙ (1 − n_t²),  δr = δa_n ⊙ (W_hn h_{t-1} + b_hn)
        δa_r = δr ⊙ r(1 − r),    δa_z = δz ⊙ z(1 − z)
        δa_ih = [δa_r, δa_z, δa_n],   δa_hh = [δa_r, δa_z, r_t ⊙ δa_n]

Stacking, directions, lengths
-----------------------------
* Layer l+1 consumes layer l's output (forward and reverse features concatenated).
* The reverse direction reads each sequence backwards; output[t] = [h_t^fwd, h_t^rev];
  h_n / c_n are ordered layer-major, direction-minor: index = layer * D + direction.
* ``lengths`` (pack_padded_sequence → pad_packed_sequence semantics): sequence b only
  advances while t < lengths[b]; otherwise its state is carried unchanged and its output
  is 0.  So the forward direction stops at lengths[b] − 1, the reverse direction starts
  at lengths[b] − 1 from h0, h_n/c_n are taken at the true last step, and padded
  inputs get zero gradient.  The backward pass mirrors this: where a step is padding its
  adjoint passes straight through to the previous state.
* Inter-layer dropout is not modelled (dropout = 0 / eval mode).

One concern, in one file: the reference (its forward, its backward, and its run under torch's
names, :func:`derive`), so that a reader checks it against torch's documentation in one place.

Arrays are taken as given (``np.asanyarray``): an ndarray subclass whose arithmetic rounds every
result to a narrow dtype (``rnnspec.stepwise.Rounded``) runs this same code step by step in that
dtype, which is how the tolerance table sizes a step-by-step computation's errors.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np

from rnnspec.kinds import GATES, RECURRENCES

def _check_kind(kind: str) -> None:
    if kind not in RECURRENCES:
        raise ValueError(f"unknown kind {kind!r}; expected one of {RECURRENCES}")


def gate_count(kind: str) -> int:
    """Number of stacked gate blocks in weight_ih / weight_hh: 1, 1, 4 (i,f,g,o), 3 (r,z,n)."""
    _check_kind(kind)
    return GATES[kind]


# --------------------------------------------------------------------------------------
# Elementwise functions and the affine map
# --------------------------------------------------------------------------------------


def sigmoid(x: np.ndarray) -> np.ndarray:
    """σ(x) = 1 / (1 + exp(−x)); exp overflow for very negative x correctly gives 0."""
    with np.errstate(over="ignore"):
        return 1.0 / (1.0 + np.exp(-x))


def tanh(x: np.ndarray) -> np.ndarray:
    return np.tanh(x)


def relu(x: np.ndarray) -> np.ndarray:
    return np.maximum(x, 0.0)


def linear(v: np.ndarray, W: np.ndarray, b: np.ndarray | None) -> np.ndarray:
    """W v + b for a batch of row vectors v: (N, in) -> (N, out).  b may be None (bias=False)."""
    y = v @ W.T
    return y if b is None else y + b


def linear_backward(dy: np.ndarray, v: np.ndarray, W: np.ndarray):
    """Adjoint of y = W v + b:  δv = Wᵀ δy,  δW = Σ_batch δy vᵀ,  δb = Σ_batch δy."""
    return dy @ W, dy.T @ v, dy.sum(axis=0)


def _split(a: np.ndarray, n: int) -> list[np.ndarray]:
    """Split stacked gate pre-activations (N, n*H) into n blocks of (N, H), in row order."""
    return np.split(a, n, axis=-1)


# --------------------------------------------------------------------------------------
# Per-direction parameters of one layer
# --------------------------------------------------------------------------------------


@dataclass
class CellParams:
    """Parameters of one (layer, direction): torch's weight_ih, weight_hh, bias_ih, bias_hh, weight_hr.

    Used for gradients as well (same fields, same shapes; biases / W_hr None when absent).
    """

    W_ih: np.ndarray
    W_hh: np.ndarray
    b_ih: np.ndarray | None = None
    b_hh: np.ndarray | None = None
    W_hr: np.ndarray | None = None

    def zeros_like(self) -> "CellParams":
        z = lambda a: None if a is None else np.zeros_like(a)  # noqa: E731
        return CellParams(z(self.W_ih), z(self.W_hh), z(self.b_ih), z(self.b_hh), z(self.W_hr))

    def add_(self, other: "CellParams") -> None:
        for name in ("W_ih", "W_hh", "b_ih", "b_hh", "W_hr"):
            mine = getattr(self, name)
            if mine is not None:
                mine += getattr(other, name)


_TORCH_NAME = {"W_ih": "weight_ih", "W_hh": "weight_hh", "b_ih": "bias_ih", "b_hh": "bias_hh", "W_hr": "weight_hr"}


def _suffix(layer: int, direction: int) -> str:
    return f"_l{layer}" + ("_reverse" if direction == 1 else "")


# --------------------------------------------------------------------------------------
# Cells: forward step and its backward twin, side by side
# --------------------------------------------------------------------------------------


def rnn_cell_step(x, h_prev, p: CellParams, nonlinearity: str):
    """h_t = act(W_ih x_t + b_ih + W_hh h_{t-1} + b_hh)."""
    a = linear(x, p.W_ih, p.b_ih) + linear(h_prev, p.W_hh, p.b_hh)
    h = tanh(a) if nonlinearity == "tanh" else relu(a)
    return h, {"x": x, "h_prev": h_prev, "a": a, "h": h}


def rnn_cell_step_backward(dh, cache, p: CellParams, nonlinearity: str):
    """δa = δh ⊙ act'(a); then the linear adjoints.  Returns (δx, δh_{t-1}, grads)."""
    if nonlinearity == "tanh":
        da = dh * (1.0 - cache["h"] ** 2)
    else:
        da = dh * (cache["a"] > 0)  # relu'(0) = 0, as torch's threshold_backward
    dx, dW_ih, db_ih = linear_backward(da, cache["x"], p.W_ih)
    dh_prev, dW_hh, db_hh = linear_backward(da, cache["h_prev"], p.W_hh)
    grads = CellParams(dW_ih, dW_hh, None if p.b_ih is None else db_ih, None if p.b_hh is None else db_hh)
    return dx, dh_prev, grads


def lstm_cell_step(x, h_prev, c_prev, p: CellParams):
    """i, f, g, o gates; c_t = f ⊙ c_{t-1} + i ⊙ g; h_t = o ⊙ tanh(c_t)  [then h_t = W_hr h_t]."""
    a = linear(x, p.W_ih, p.b_ih) + linear(h_prev, p.W_hh, p.b_hh)
    a_i, a_f, a_g, a_o = _split(a, 4)
    i = sigmoid(a_i)
    f = sigmoid(a_f)
    g = tanh(a_g)
    o = sigmoid(a_o)
    c = f * c_prev + i * g
    tanh_c = tanh(c)
    m = o * tanh_c
    h = m if p.W_hr is None else m @ p.W_hr.T  # h_t = W_hr (o_t ⊙ tanh(c_t))
    cache = {"x": x, "h_prev": h_prev, "c_prev": c_prev, "i": i, "f": f, "g": g, "o": o, "tanh_c": tanh_c, "m": m}
    return h, c, cache


def lstm_cell_step_backward(dh, dc, cache, p: CellParams):
    """Adjoint of lstm_cell_step.  dc is the adjoint of c_t from later steps / c_n.

    Returns (δx, δh_{t-1}, δc_{t-1}, grads).
    """
    i, f, g, o, tanh_c = cache["i"], cache["f"], cache["g"], cache["o"], cache["tanh_c"]
    dW_hr = None
    if p.W_hr is None:
        dm = dh
    else:
        dm = dh @ p.W_hr  # δm = W_hrᵀ δh
        dW_hr = dh.T @ cache["m"]  # δW_hr = δh mᵀ
    do = dm * tanh_c
    dc = dc + dm * o * (1.0 - tanh_c**2)
    di = dc * g
    df = dc * cache["c_prev"]
    dg = dc * i
    dc_prev = dc * f
    da = np.concatenate([di * i * (1.0 - i), df * f * (1.0 - f), dg * (1.0 - g**2), do * o * (1.0 - o)], axis=-1)
    dx, dW_ih, db_ih = linear_backward(da, cache["x"], p.W_ih)
    dh_prev, dW_hh, db_hh = linear_backward(da, cache["h_prev"], p.W_hh)
    grads = CellParams(dW_ih, dW_hh, None if p.b_ih is None else db_ih, None if p.b_hh is None else db_hh, dW_hr)
    return dx, dh_prev, dc_prev, grads


def gru_cell_step(x, h_prev, p: CellParams):
    """r, z, n gates (reset applied after W_hn h + b_hn); h_t = (1 − z) ⊙ n + z ⊙ h_{t-1}."""
    a_ir, a_iz, a_in = _split(linear(x, p.W_ih, p.b_ih), 3)  # W_i· x_t + b_i·
    a_hr, a_hz, a_hn = _split(linear(h_prev, p.W_hh, p.b_hh), 3)  # W_h· h_{t-1} + b_h·
    r = sigmoid(a_ir + a_hr)
    z = sigmoid(a_iz + a_hz)
    n = tanh(a_in + r * a_hn)
    h = (1.0 - z) * n + z * h_prev
    return h, {"x": x, "h_prev": h_prev, "r": r, "z": z, "n": n, "a_hn": a_hn}


def gru_cell_step_backward(dh, cache, p: CellParams):
    """Adjoint of gru_cell_step.  Returns (δx, δh_{t-1}, grads)."""
    r, z, n, a_hn, h_prev = cache["r"], cache["z"], cache["n"], cache["a_hn"], cache["h_prev"]
    dn = dh * (1.0 - z)
    dz = dh * (h_prev - n)
    dh_prev_direct = dh * z
    da_n = dn * (1.0 - n**2)
    dr = da_n * a_hn
    da_r = dr * r * (1.0 - r)
    da_z = dz * z * (1.0 - z)
    da_ih = np.concatenate([da_r, da_z, da_n], axis=-1)  # adjoint of W_i· x + b_i·
    da_hh = np.concatenate([da_r, da_z, r * da_n], axis=-1)  # adjoint of W_h· h + b_h·
    dx, dW_ih, db_ih = linear_backward(da_ih, cache["x"], p.W_ih)
    dh_prev_lin, dW_hh, db_hh = linear_backward(da_hh, h_prev, p.W_hh)
    grads = CellParams(dW_ih, dW_hh, None if p.b_ih is None else db_ih, None if p.b_hh is None else db_hh)
    return dx, dh_prev_direct + dh_prev_lin, grads


# Uniform wrappers: a state is the tuple (h,) or, for the LSTM, (h, c).


def _cell_forward(kind: str, x, state: tuple, p: CellParams):
    if kind == "lstm":
        h, c, cache = lstm_cell_step(x, state[0], state[1], p)
        return (h, c), cache
    if kind == "gru":
        h, cache = gru_cell_step(x, state[0], p)
        return (h,), cache
    h, cache = rnn_cell_step(x, state[0], p, "tanh" if kind == "rnn_tanh" else "relu")
    return (h,), cache


def _cell_backward(kind: str, dstate: tuple, cache, p: CellParams):
    if kind == "lstm":
        dx, dh_prev, dc_prev, grads = lstm_cell_step_backward(dstate[0], dstate[1], cache, p)
        return dx, (dh_prev, dc_prev), grads
    if kind == "gru":
        dx, dh_prev, grads = gru_cell_step_backward(dstate[0], cache, p)
        return dx, (dh_prev,), grads
    dx, dh_prev, grads = rnn_cell_step_backward(dstate[0], cache, p, "tanh" if kind == "rnn_tanh" else "relu")
    return dx, (dh_prev,), grads


# --------------------------------------------------------------------------------------
# One direction of one layer over time, with length masking
# --------------------------------------------------------------------------------------


def _time_order(L: int, reverse: bool) -> range:
    return range(L - 1, -1, -1) if reverse else range(L)


def _run_direction(kind, xs, state0: tuple, p: CellParams, active, reverse: bool):
    """Run one direction over xs (L, N, F).  active[t]: (N, 1) bool, t < lengths[b].

    Inactive (padding) steps keep the state unchanged and emit output 0.
    Returns (outputs (L, N, H_out), final state tuple, per-step caches).
    """
    L, N = xs.shape[:2]
    out = np.zeros((L, N, state0[0].shape[-1]))
    caches: list[Any] = [None] * L
    state = state0
    for t in _time_order(L, reverse):
        new_state, caches[t] = _cell_forward(kind, xs[t], state, p)
        state = tuple(np.where(active[t], new, old) for new, old in zip(new_state, state))
        out[t] = np.where(active[t], new_state[0], 0.0)
    return out, state, caches


def _run_direction_backward(kind, dout, dstate_final: tuple, caches, p: CellParams, active, reverse: bool):
    """Adjoint of _run_direction: visits the steps in the opposite order.

    Returns (δxs (L, N, F), δstate0 tuple, accumulated parameter gradients).
    """
    L = dout.shape[0]
    dxs: list[Any] = [None] * L
    grads = p.zeros_like()
    dstate = dstate_final  # adjoint of the state after the step being visited
    for t in reversed(_time_order(L, reverse)):
        on = active[t]
        # state = where(on, new, old) and out[t] = where(on, new_h, 0):
        d_new = (np.where(on, dstate[0] + dout[t], 0.0),) + tuple(np.where(on, d, 0.0) for d in dstate[1:])
        d_carried = tuple(np.where(on, 0.0, d) for d in dstate)
        dxs[t], d_prev, step_grads = _cell_backward(kind, d_new, caches[t], p)
        dstate = tuple(a + b for a, b in zip(d_carried, d_prev))
        grads.add_(step_grads)
    return np.stack(dxs), dstate, grads


# --------------------------------------------------------------------------------------
# Parameter layout
# --------------------------------------------------------------------------------------


def parameter_shapes(
    kind: str,
    input_size: int,
    hidden_size: int,
    *,
    num_layers: int = 1,
    bias: bool = True,
    bidirectional: bool = False,
    proj_size: int = 0,
) -> dict[str, tuple[int, ...]]:
    """Shapes of the module's parameters, in the order of torch's module.named_parameters()."""
    G = gate_count(kind)
    if proj_size and kind != "lstm":
        raise ValueError("proj_size is only supported for kind='lstm'")
    if proj_size < 0:
        raise ValueError("proj_size must be >= 0")
    if proj_size >= hidden_size > 0 and proj_size > 0:
        raise ValueError("proj_size has to be smaller than hidden_size")
    H_out = proj_size if proj_size > 0 else hidden_size
    D = 2 if bidirectional else 1
    shapes: dict[str, tuple[int, ...]] = {}
    for layer in range(num_layers):
        layer_input = input_size if layer == 0 else D * H_out
        for direction in range(D):
            s = _suffix(layer, direction)
            shapes["weight_ih" + s] = (G * hidden_size, layer_input)
            shapes["weight_hh" + s] = (G * hidden_size, H_out)
            if bias:
                shapes["bias_ih" + s] = (G * hidden_size,)
                shapes["bias_hh" + s] = (G * hidden_size,)
            if proj_size > 0:
                shapes["weight_hr" + s] = (proj_size, hidden_size)
    return shapes


# --------------------------------------------------------------------------------------
# Forward / backward over the whole module
# --------------------------------------------------------------------------------------


@dataclass
class _Tape:
    kind: str
    num_layers: int
    D: int
    batch_first: bool
    unbatched: bool
    H_out: int
    hidden_size: int
    param_order: tuple[str, ...]
    cell_params: list  # [layer][direction] -> CellParams
    caches: list  # [layer][direction] -> per-step caches
    layer_input_sizes: list
    active: np.ndarray  # (L, N, 1) bool
    out_shape: tuple
    state_shape: tuple  # internal (D*num_layers, N, H_out)


@dataclass(frozen=True)
class Forward:
    output: np.ndarray  # (L, N, D*H_out) | batch_first (N, L, D*H_out) | unbatched (L, D*H_out)
    h_n: np.ndarray  # (D*num_layers, N, H_out) | unbatched (D*num_layers, H_out)
    c_n: np.ndarray | None  # LSTM only: hidden_size features
    tape: _Tape = field(repr=False, compare=False)  # private: what backward() needs


def _infer_sizes(kind: str, params: dict, proj_size: int, num_layers: int, bidirectional: bool):
    G = gate_count(kind)
    if "weight_ih_l0" not in params:
        raise ValueError("params has no 'weight_ih_l0'")
    rows, input_size = np.shape(params["weight_ih_l0"])
    if rows % G:
        raise ValueError(f"weight_ih_l0 has {rows} rows, not a multiple of {G} gates")
    hidden_size = rows // G
    bias = "bias_ih_l0" in params
    inferred_proj = np.shape(params["weight_hr_l0"])[0] if "weight_hr_l0" in params else 0
    if inferred_proj != proj_size:
        raise ValueError(f"proj_size={proj_size} but params imply proj_size={inferred_proj}")
    expected = parameter_shapes(
        kind, input_size, hidden_size, num_layers=num_layers, bias=bias, bidirectional=bidirectional, proj_size=proj_size
    )
    if set(params) != set(expected):
        raise ValueError(
            f"params keys mismatch: missing {sorted(set(expected) - set(params))}, "
            f"unexpected {sorted(set(params) - set(expected))}"
        )
    for name, shape in expected.items():
        if tuple(np.shape(params[name])) != shape:
            raise ValueError(f"{name} has shape {tuple(np.shape(params[name]))}, expected {shape}")
    return input_size, hidden_size, bias, expected


def forward(
    kind: str,
    params: dict[str, np.ndarray],
    x,
    h0=None,
    c0=None,
    *,
    num_layers: int = 1,
    bidirectional: bool = False,
    batch_first: bool = False,
    lengths: Sequence[int] | None = None,
    proj_size: int = 0,
) -> Forward:
    """Run the module.  input_size, hidden_size and bias are inferred from params."""
    _check_kind(kind)
    input_size, hidden_size, _bias, expected = _infer_sizes(kind, params, proj_size, num_layers, bidirectional)
    D = 2 if bidirectional else 1
    H_out = proj_size if proj_size > 0 else hidden_size
    is_lstm = kind == "lstm"
    if c0 is not None and not is_lstm:
        raise ValueError("c0 is only accepted for kind='lstm'")

    x = np.asanyarray(x, dtype=np.float64)
    if x.ndim == 2:
        unbatched = True
        if lengths is not None:
            raise ValueError("lengths is not supported for unbatched (2-D) input")
        xs = x[:, None, :]  # (L, 1, H_in)
    elif x.ndim == 3:
        unbatched = False
        xs = x.transpose(1, 0, 2) if batch_first else x  # time-major (L, N, H_in)
    else:
        raise ValueError(f"input must be 2-D (unbatched) or 3-D, got shape {x.shape}")
    L, N, F = xs.shape
    if F != input_size:
        raise ValueError(f"input has {F} features, params expect input_size={input_size}")

    def initial_state(s, features, name):
        if s is None:
            return np.zeros((D * num_layers, N, features))
        s = np.asanyarray(s, dtype=np.float64)
        want = (D * num_layers, features) if unbatched else (D * num_layers, N, features)
        if s.shape != want:
            raise ValueError(f"{name} has shape {s.shape}, expected {want}")
        return s[:, None, :] if unbatched else s

    h0_ = initial_state(h0, H_out, "h0")
    c0_ = initial_state(c0, hidden_size, "c0") if is_lstm else None

    if lengths is None:
        active = np.ones((L, N, 1), dtype=bool)
    else:
        lengths = np.asarray(lengths)
        if lengths.shape != (N,) or not np.issubdtype(lengths.dtype, np.integer):
            raise ValueError(f"lengths must be {N} integers, got {lengths!r}")
        if lengths.min() < 1 or lengths.max() > L:
            raise ValueError(f"lengths must lie in [1, {L}], got {lengths.tolist()}")
        active = (np.arange(L)[:, None] < lengths[None, :])[:, :, None]  # (L, N, 1)

    h_n = np.zeros((D * num_layers, N, H_out))
    c_n = np.zeros((D * num_layers, N, hidden_size)) if is_lstm else None
    cell_params, caches, layer_input_sizes = [], [], []
    layer_input = xs
    for layer in range(num_layers):
        layer_input_sizes.append(layer_input.shape[-1])
        outs, layer_params, layer_caches = [], [], []
        for direction in range(D):
            s = _suffix(layer, direction)
            get = lambda base: np.asanyarray(params[base + s], dtype=np.float64) if base + s in params else None  # noqa: E731
            p = CellParams(get("weight_ih"), get("weight_hh"), get("bias_ih"), get("bias_hh"), get("weight_hr"))
            k = layer * D + direction
            state0 = (h0_[k], c0_[k]) if is_lstm else (h0_[k],)
            out, state, step_caches = _run_direction(kind, layer_input, state0, p, active, reverse=direction == 1)
            h_n[k] = state[0]
            if is_lstm:
                c_n[k] = state[1]
            outs.append(out)
            layer_params.append(p)
            layer_caches.append(step_caches)
        layer_input = np.concatenate(outs, axis=-1)  # (L, N, D*H_out): [forward, reverse]
        cell_params.append(layer_params)
        caches.append(layer_caches)

    output = layer_input
    if unbatched:
        output, h_n = output[:, 0, :], h_n[:, 0, :]
        c_n = None if c_n is None else c_n[:, 0, :]
    elif batch_first:
        output = output.transpose(1, 0, 2)

    tape = _Tape(
        kind=kind,
        num_layers=num_layers,
        D=D,
        batch_first=batch_first,
        unbatched=unbatched,
        H_out=H_out,
        hidden_size=hidden_size,
        param_order=tuple(expected),
        cell_params=cell_params,
        caches=caches,
        layer_input_sizes=layer_input_sizes,
        active=active,
        out_shape=output.shape,
        state_shape=(D * num_layers, N, H_out),
    )
    return Forward(output=output, h_n=h_n, c_n=c_n, tape=tape)


def backward(fwd: Forward, grad_output=None, grad_h_n=None, grad_c_n=None) -> dict[str, np.ndarray]:
    """Gradients of loss = Σ grad_output·output + Σ grad_h_n·h_n + Σ grad_c_n·c_n.

    Missing upstream gradients are zeros.  Returns "input", "h0", "c0" (LSTM only) and one
    entry per parameter under torch's name; each is shaped like the tensor it belongs to.
    "h0"/"c0" are the gradients with respect to the initial state, i.e. with respect to the
    implicit zeros when h0/c0 were omitted (same shape either way).
    """
    tp = fwd.tape
    is_lstm = tp.kind == "lstm"
    if grad_c_n is not None and not is_lstm:
        raise ValueError("grad_c_n is only accepted for kind='lstm'")

    def upstream(g, like, name):
        if g is None:
            return np.zeros(like.shape)
        g = np.asanyarray(g, dtype=np.float64)
        if g.shape != like.shape:
            raise ValueError(f"{name} has shape {g.shape}, expected {like.shape}")
        return g

    d_out = upstream(grad_output, fwd.output, "grad_output")
    dh_n = upstream(grad_h_n, fwd.h_n, "grad_h_n")
    dc_n = upstream(grad_c_n, fwd.c_n, "grad_c_n") if is_lstm else None
    # to the internal time-major, batched layout
    if tp.unbatched:
        d_out, dh_n = d_out[:, None, :], dh_n[:, None, :]
        dc_n = None if dc_n is None else dc_n[:, None, :]
    elif tp.batch_first:
        d_out = d_out.transpose(1, 0, 2)

    dh0 = np.zeros_like(dh_n)
    dc0 = np.zeros_like(dc_n) if is_lstm else None
    param_grads: dict[str, np.ndarray] = {}
    H = tp.H_out
    d_layer_out = d_out
    for layer in reversed(range(tp.num_layers)):
        L, N = d_layer_out.shape[:2]
        d_layer_in = np.zeros((L, N, tp.layer_input_sizes[layer]))
        for direction in range(tp.D):
            k = layer * tp.D + direction
            p = tp.cell_params[layer][direction]
            dout = d_layer_out[..., direction * H : (direction + 1) * H]
            dstate_final = (dh_n[k], dc_n[k]) if is_lstm else (dh_n[k],)
            dxs, dstate0, grads = _run_direction_backward(
                tp.kind, dout, dstate_final, tp.caches[layer][direction], p, tp.active, reverse=direction == 1
            )
            d_layer_in += dxs  # both directions read the same layer input
            dh0[k] = dstate0[0]
            if is_lstm:
                dc0[k] = dstate0[1]
            for field_name, torch_base in _TORCH_NAME.items():
                g = getattr(grads, field_name)
                if g is not None:
                    param_grads[torch_base + _suffix(layer, direction)] = g
        d_layer_out = d_layer_in

    d_input = d_layer_out
    if tp.unbatched:
        d_input, dh0 = d_input[:, 0, :], dh0[:, 0, :]
        dc0 = None if dc0 is None else dc0[:, 0, :]
    elif tp.batch_first:
        d_input = d_input.transpose(1, 0, 2)

    result: dict[str, np.ndarray] = {"input": np.ascontiguousarray(d_input), "h0": dh0}
    if is_lstm:
        result["c0"] = dc0
    for name in tp.param_order:
        result[name] = param_grads[name]
    return result


# --------------------------------------------------------------------------------------
# One run under torch's names (the counterpart of rnnspec.measure.measure)
# --------------------------------------------------------------------------------------


def derive(kind: str, parameters: dict[str, np.ndarray], x, *, h0=None, c0=None, grad_h_n=None, grad_output=None,
           grad_c_n=None, enforce_sorted: bool = False, **options) -> dict[str, np.ndarray]:
    """The same run through the NumPy reference: float64, forward and hand-written BPTT, no torch.

    ``options`` are the reference's (num_layers, bidirectional, batch_first, proj_size, lengths);
    ``enforce_sorted`` only says how torch packs the batch, not what it computes, and is ignored.
    """
    run = forward(kind, parameters, x, h0, c0, **options)
    grads = backward(
        run,
        grad_output=grad_output,
        grad_h_n=np.ones_like(run.h_n) if grad_h_n is None else grad_h_n,
        grad_c_n=grad_c_n,
    )
    derived = {"output": run.output, "h_n": run.h_n}
    if run.c_n is not None:
        derived["c_n"] = run.c_n
    derived["grad_input"] = grads["input"]
    if h0 is not None:
        derived["grad_h0"] = grads["h0"]
    if c0 is not None:
        derived["grad_c0"] = grads["c0"]
    derived.update({f"grad_{name}": grads[name] for name in parameters})
    return derived


def relu_kink_distance(parameters: dict[str, np.ndarray], x, *, h0=None, **options) -> float:
    """The smallest non-zero |pre-activation| of a relu RNN run, from the reference (float64).

    relu' jumps from 0 to 1 at 0: a pre-activation within rounding distance of 0 may land on
    either side in a narrow dtype, and a gradient then moves by a whole term. A configuration
    whose pre-activations all keep a distance from 0 has a gradient every dtype can approximate.
    Exact zeros (a unit whose inputs are all exactly 0) are the same in every dtype and are skipped.
    The pre-activations are read from the per-step caches (``Forward.tape``) kept for the backward pass.
    """
    run = forward("rnn_relu", parameters, x, h0, **{
        name: value for name, value in options.items() if name in ("num_layers", "bidirectional", "batch_first", "lengths")})
    pre_activations = np.concatenate([np.abs(cache["a"]).ravel() for layer in run.tape.caches
                                      for direction in layer for cache in direction if cache is not None])
    return float(pre_activations[pre_activations > 0].min())
