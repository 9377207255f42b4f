"""One drawn configuration of a recurrent layer: its arrays, its case, its words and its standalone reproduction.

Chapter 17's property tests draw :class:`Configuration` objects (``rnnspec/properties.py`` says how);
this module says what one is and what follows from it:

* :meth:`Configuration.arrays`: the weights, input, initial states and upstream gradients, drawn by
  NumPy's generator from the configuration's seed in a fixed order (:func:`draw`), so the
  configuration alone (a few integers and words) reproduces every value on every machine;
* :meth:`Configuration.case`: the :class:`rnnspec.records.Case` whose truth is the NumPy reference's
  run and whose measurement runs the layer with the configuration's memory layouts
  (``rnnspec/layouts.py``) and mode (:func:`case_of` keeps the last ones, so the truth of a
  configuration is derived once for every dtype);
* :meth:`Configuration.words`: the configuration as failure messages name it;
* :meth:`Configuration.snippet`: a Python script that reproduces the run with torch and NumPy alone,
  without the suite: it builds the module, draws the same arrays with the same function, lays the
  input out in the same memory layout, runs forward and backward, and prints each tensor's distance
  from the same run in float64 on the CPU with contiguous tensors.
"""

from __future__ import annotations

import functools
import inspect
import math
import textwrap
from dataclasses import asdict, dataclass, fields

import numpy as np

from rnnspec import layouts
from rnnspec.kinds import KINDS, LAYER_NAMES
from rnnspec.measure import measure
from rnnspec.numpy_reference import parameter_shapes
from rnnspec.records import Case


def draw(seed, shapes, bound, repeat):
    """Arrays drawn uniformly by NumPy's generator ``seed``, one after the other in the order of ``shapes``
    (name -> shape): parameters (``weight_*``, ``bias_*``) within ±bound, the others within ±1. An array
    named in ``repeat`` (name -> axis) is drawn with one row along that axis and repeated, so its rows
    are equal (what an expanded layout needs)."""
    rng = np.random.default_rng(seed)
    arrays = {}
    for name, shape in shapes.items():
        axis = repeat.get(name)
        drawn = [1 if index == axis else size for index, size in enumerate(shape)]
        scale = bound if name.startswith(("weight", "bias")) else 1.0
        values = rng.uniform(-scale, scale, drawn)
        arrays[name] = values if axis is None else np.repeat(values, shape[axis], axis=axis)
    return arrays


@dataclass(frozen=True)
class Configuration:
    """One layer, its sizes, options, memory layouts and upstream gradients: everything a run needs but the
    values, which :func:`draw` makes from ``seed``."""

    kind: str  # rnn_tanh, rnn_relu, lstm, gru
    steps: int  # L
    batch: int | None  # N; None: unbatched input (L, H_in)
    input_size: int
    hidden_size: int
    proj_size: int = 0  # LSTM only
    num_layers: int = 1
    bidirectional: bool = False
    batch_first: bool = False
    bias: bool = True
    initial_state: bool = False  # h0 (and c0) given, else zeros
    lengths: tuple[int, ...] | None = None  # padded input run as a packed sequence
    enforce_sorted: bool = False  # lengths sorted longest first, and packed so
    training: bool = True  # False: module.eval()
    dropout: float = 0.0  # between layers; drawn only in evaluation mode, where it is the identity
    input_layout: str = "contiguous"  # rnnspec/layouts.py
    state_layout: str = "contiguous"  # of h0 and c0
    upstream_output: bool = False  # an upstream gradient on every output step too (always on h_n, c_n)
    seed: int = 0

    # --- sizes and axes -------------------------------------------------------------------------

    @property
    def directions(self) -> int:
        return 2 if self.bidirectional else 1

    @property
    def features(self) -> int:
        """H_out: the features of each direction's output and of h_n."""
        return self.proj_size or self.hidden_size

    @property
    def time_axis(self) -> int:
        return 1 if self.batch_first and self.batch is not None else 0

    @property
    def batch_axis(self) -> int | None:
        return None if self.batch is None else (0 if self.batch_first else 1)

    @property
    def state_batch_axis(self) -> int | None:
        return None if self.batch is None else 1

    def shapes(self) -> dict[str, tuple[int, ...]]:
        """Every array's shape, in the order :func:`draw` draws them: parameters, input, states, upstream."""
        lead = ((self.steps,) if self.batch is None else
                (self.batch, self.steps) if self.batch_first else (self.steps, self.batch))
        states = (self.directions * self.num_layers,) + (() if self.batch is None else (self.batch,))
        shapes = dict(parameter_shapes(self.kind, self.input_size, self.hidden_size, num_layers=self.num_layers,
                                       bias=self.bias, bidirectional=self.bidirectional, proj_size=self.proj_size))
        shapes["x"] = lead + (self.input_size,)
        if self.initial_state:
            shapes["h0"] = states + (self.features,)
            if self.kind == "lstm":
                shapes["c0"] = states + (self.hidden_size,)
        if self.upstream_output:
            shapes["grad_output"] = lead + (self.directions * self.features,)
        shapes["grad_h_n"] = states + (self.features,)
        if self.kind == "lstm":
            shapes["grad_c_n"] = states + (self.hidden_size,)
        return shapes

    def repeated(self) -> dict[str, int]:
        """The arrays drawn with equal rows along their batch axis: those an expanded layout reads."""
        repeat = {}
        if self.input_layout == "expanded":
            repeat["x"] = self.batch_axis
        if self.state_layout == "expanded":
            repeat.update({name: self.state_batch_axis for name in ("h0", "c0")})
        return repeat

    @property
    def bound(self) -> float:
        """The parameters' range, torch's default initialisation's: ±1/√hidden_size."""
        return 1.0 / math.sqrt(self.hidden_size)

    # --- the run ----------------------------------------------------------------------------------

    def arrays(self) -> dict:
        """The configuration's arrays, as ``rnnspec.measure.measure`` and the reference take them."""
        drawn = draw(self.seed, self.shapes(), self.bound, self.repeated())
        parameters = {name: drawn.pop(name) for name in list(drawn) if name.startswith(("weight", "bias"))}
        return {"parameters": parameters, **drawn}

    def options(self) -> dict:
        """The options both the layer and the reference take (memory layouts, mode and dropout: the layer's only)."""
        options = dict(num_layers=self.num_layers, bidirectional=self.bidirectional, batch_first=self.batch_first)
        if self.proj_size:
            options["proj_size"] = self.proj_size
        if self.lengths is not None:
            options.update(lengths=np.array(self.lengths), enforce_sorted=self.enforce_sorted)
        return options

    def layouts(self) -> dict:
        """``rnnspec.measure.measure``'s ``layouts``: the input's and the initial states' memory layouts."""
        chosen = {"input": layouts.lay_out(self.input_layout, time_axis=self.time_axis, batch_axis=self.batch_axis)}
        state = layouts.lay_out(self.state_layout, time_axis=None, batch_axis=self.state_batch_axis)
        return {**chosen, "h0": state, "c0": state}

    def case(self) -> Case:
        """The configuration's case: the NumPy reference's truth, and the layer's run with its layouts and mode
        (:func:`case_of`: derived once per configuration)."""
        return case_of(self)

    # --- words ------------------------------------------------------------------------------------

    def words(self) -> str:
        """``LSTM, 300 steps, batch 2, input 3, hidden 4, 2 layers, bidirectional, ..., seed 7``."""
        parts = [LAYER_NAMES[self.kind], f"{self.steps} steps",
                 "unbatched" if self.batch is None else f"batch {self.batch}", f"input {self.input_size}",
                 f"hidden {self.hidden_size}" + (f" projected to {self.proj_size}" if self.proj_size else "")]
        if self.num_layers > 1:
            parts.append(f"{self.num_layers} layers")
        parts += [word for flag, word in ((self.bidirectional, "bidirectional"), (self.batch_first, "batch_first"),
                                          (not self.bias, "no bias")) if flag]
        if self.initial_state:
            parts.append(("h0 and c0" if self.kind == "lstm" else "h0") + f" given ({self.state_layout})")
        if self.lengths is not None:
            parts.append(f"packed lengths {list(self.lengths)} ({'sorted' if self.enforce_sorted else 'not sorted'})")
        if not self.training:
            parts.append("eval mode" + (f", dropout {self.dropout:g}" if self.dropout else ""))
        parts.append(f"input {self.input_layout}")
        parts.append("upstream on output, h_n" + (", c_n" if self.kind == "lstm" else "") if self.upstream_output
                     else "upstream on h_n" + (", c_n" if self.kind == "lstm" else ""))
        parts.append(f"seed {self.seed}")
        return ", ".join(parts)

    def __repr__(self) -> str:
        """The constructor call with the fields that differ from the defaults: paste it into an ``@example``."""
        defaults = {field.name: field.default for field in fields(self)}
        given = ", ".join(f"{name}={value!r}" for name, value in asdict(self).items()
                          if name in ("kind", "steps", "batch", "input_size", "hidden_size") or value != defaults[name])
        return f"Configuration({given})"

    def snippet(self, device: str, dtype: str) -> str:
        """A standalone script (torch and NumPy only) that runs this configuration on ``device`` in ``dtype`` and
        prints how far each tensor lies from the same run in float64 on the CPU with contiguous tensors."""
        kind = KINDS[self.kind]
        options = {"num_layers": self.num_layers, "bidirectional": self.bidirectional, "batch_first": self.batch_first,
                   "bias": self.bias, **kind.options}
        if self.proj_size:
            options["proj_size"] = self.proj_size
        if self.dropout:
            options["dropout"] = self.dropout
        sources = "\n\n".join([inspect.getsource(draw)] + [layouts.source(name) for name in
                                                            sorted({"contiguous", self.input_layout, self.state_layout})])
        return _SNIPPET.format(
            what=self.words(), device=device, dtype=dtype, module=kind.class_name, input_size=self.input_size,
            hidden_size=self.hidden_size, options=options, seed=self.seed, shapes=self.shapes(), bound=self.bound,
            repeat=self.repeated(), lengths=self.lengths, enforce_sorted=self.enforce_sorted, steps=self.steps,
            training=self.training, batch_first=self.batch_first, time_axis=self.time_axis,
            batch_axis=self.batch_axis, state_batch_axis=self.state_batch_axis, input_layout=self.input_layout,
            state_layout=self.state_layout, sources=textwrap.dedent(sources).strip())


@functools.lru_cache(maxsize=64)
def case_of(configuration: Configuration) -> Case:
    """The configuration's case, kept for the last 64 configurations: a property test runs its examples once per
    device and dtype, and each configuration's truth is derived once for all of them."""
    measured = functools.partial(measure, layouts=configuration.layouts(), training=configuration.training,
                                 **({"dropout": configuration.dropout} if configuration.dropout else {}))
    return Case(kind=configuration.kind, behaviour=f"{LAYER_NAMES[configuration.kind]} at any size and memory layout",
                law="the documented recurrence, for every size and memory layout: the NumPy reference",
                inputs=configuration.arrays, options=configuration.options(), measure=measured)


_SNIPPET = '''\
# Reproduces, without the suite: {what}
# on {device} in {dtype}. Needs torch and NumPy only; prints each tensor's largest distance from the same
# run in float64 on the CPU with contiguous tensors (the suite compares with its NumPy reference).
import numpy as np
import torch
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence


{sources}


LENGTHS = {lengths!r}  # None: padded input, not packed


def run(device, dtype, input_layout, state_layout):
    arrays = draw({seed}, {shapes!r}, {bound!r}, {repeat!r})
    module = torch.nn.{module}({input_size}, {hidden_size}, **{options!r}, dtype=torch.float64)
    with torch.no_grad():
        for name, parameter in module.named_parameters():
            parameter.copy_(torch.from_numpy(arrays[name]))
    module = module.to(device=device, dtype=dtype).train({training})
    leaves = {{name: torch.tensor(arrays[name], dtype=dtype, device=device, requires_grad=True)
              for name in ("x", "h0", "c0") if name in arrays}}
    views = {{name: (input_layout(leaf, {time_axis}, {batch_axis}) if name == "x" else
                    state_layout(leaf, None, {state_batch_axis})) for name, leaf in leaves.items()}}
    for view in views.values():
        if not view.is_leaf:
            view.retain_grad()
    x = views["x"]
    if LENGTHS is not None:
        x = pack_padded_sequence(x, torch.tensor(LENGTHS), batch_first={batch_first}, enforce_sorted={enforce_sorted})
    state = (views["h0"], views["c0"]) if "c0" in views else views.get("h0")
    output, final = module(x, state)
    if LENGTHS is not None:
        output, _ = pad_packed_sequence(output, batch_first={batch_first}, total_length={steps})
    h_n, c_n = final if isinstance(final, tuple) else (final, None)
    results = {{"output": output, "h_n": h_n}}
    if c_n is not None:
        results["c_n"] = c_n
    upstream = lambda name: torch.tensor(arrays[name], dtype=dtype, device=device)
    loss = sum((results[name[5:]] * upstream(name)).sum() for name in ("grad_output", "grad_h_n", "grad_c_n")
               if name in arrays)
    loss.backward()
    results.update({{"grad_input" if name == "x" else "grad_" + name: view.grad for name, view in views.items()}})
    results.update({{"grad_" + name: p.grad for name, p in module.named_parameters()}})
    return results


suspect = run("{device}", torch.{dtype}, {input_layout}, {state_layout})
baseline = run("cpu", torch.float64, contiguous, contiguous)
for name, value in baseline.items():
    got = suspect[name]
    print(f"{{name:22s}} {{str(got.dtype):15s}} {{str(got.device):6s}} {{tuple(got.shape)}}: largest |difference| "
          f"{{(got.detach().double().cpu() - value.detach()).abs().max().item():.3g}} (largest |value| "
          f"{{value.detach().abs().max().item():.3g}})")
'''
