r"""Chapter 20. Autocast: what a float32 recurrent module returns under ``torch.autocast``, and how precisely.

`torch.autocast <https://pytorch.org/docs/stable/amp.html>`_ runs chosen operations in a lower
precision (bfloat16 on the CPU, float16 on CUDA) and leaves the others in float32: matrix products
and ``linear`` are cast down, pointwise operations follow the usual type promotion. The
documentation lists operations, not modules, so what a recurrent module returns under autocast is
an observation of how each computes. On torch 2.13's CPU, with bfloat16, for a float32 module
given float32 input and no initial state:

=================  ===========================================  =======================================
module             returns                                      why
=================  ===========================================  =======================================
``nn.RNN``         output, h_n in **bfloat16**                  the step adds two bfloat16 products
``nn.GRU``         output, h_n in float32                       the update mixes in the float32 state
``nn.LSTM``        output, h_n, c_n in float32, or a refusal    the cell state starts as a float32 zero
``nn.RNNCell``     h' in **bfloat16**                           as ``nn.RNN``
``nn.GRUCell``     h' in float32                                as ``nn.GRU``
``nn.LSTMCell``    h', c' in float32                            as ``nn.LSTM``
=================  ===========================================  =======================================

A float32 result is not float32-precise: its gates were computed from bfloat16 products. Every
module's results lie within the bfloat16 row of the tolerance table from the NumPy reference
(float64), widened to the step-by-step envelope where needed (``rnnspec/stepwise.py``): the
precision of the lowest dtype in play, whatever the dtype returned.

The LSTM's refusal. With oneDNN enabled, torch runs a float32 CPU LSTM with oneDNN
(``mkldnn_rnn_layer``), and autocast casts that operation's inputs to bfloat16; on a CPU without
bfloat16 instructions for oneDNN (AVX2 only; ``rnnspec.releases.onednn_rnn_dtypes``) oneDNN cannot
create the primitive and the call raises RuntimeError ("could not create a primitive descriptor for
the LSTM forward propagation primitive"): the same failure the project's README cites for torch
2.4's plain bfloat16 LSTM, still there under autocast in 2.13. With oneDNN off
(``--onednn off``, ``python -m rnnspec.variants``) torch's own kernels run it and return float32. On
CPUs where oneDNN serves bfloat16, and on accelerators (float16), the dtypes were not observed: the
spec then asserts only that each result is in float32 or the autocast dtype, and keeps what it saw
for the report (``observe``).

These are observations of torch.nn's own kernels, not laws of the recurrence: under another
``--target`` the chapter is not applicable (another implementation may compute in other dtypes
under autocast; the zoo's loop follows torch's, so that ``--break`` runs it too).

Configuration: L = 4 steps, N = 2, input size 3, hidden size 4, one layer, weights and input from
a seeded NumPy generator; a cell runs the 4 steps in a loop, carrying its state.

:configuration: 2.13 (the torch release observed); 2.4 (the torch release whose plain bfloat16 LSTM is recalled)
"""

from __future__ import annotations

import pytest
import torch

from rnnspec import releases
from rnnspec.comparison import assert_agrees
from rnnspec.contracts import assert_raises
from rnnspec.devices import DTYPES
from rnnspec.inputs import random_array, random_parameters
from rnnspec.kinds import KINDS, RECURRENCES
from rnnspec.measure import EAGER, explicit_module
from rnnspec.records import Case
from rnnspec.tolerances import TOLERANCES

L, N, IN, HIDDEN, SEED = 4, 2, 3, 4, 20
AMP = "https://pytorch.org/docs/stable/amp.html"
WHERE = ("torch 2.13.0 on an x86-64 CPU (AMD EPYC, AVX2) with bfloat16 autocast, oneDNN on (serving the LSTM in "
         "float32 only) and off; " + AMP)
#: What each module returned under CPU autocast with bfloat16 (the LSTM: where oneDNN does not run it).
OBSERVED_ON_CPU = {
    "rnn_tanh": ("bfloat16", "bfloat16"), "rnn_relu": ("bfloat16", "bfloat16"),
    "lstm": ("float32", "float32", "float32"), "gru": ("float32", "float32"),
    "rnn_tanh_cell": ("bfloat16",), "rnn_relu_cell": ("bfloat16",), "lstm_cell": ("float32", "float32"),
    "gru_cell": ("float32",),
}
CASES = {recurrence: Case(kind=recurrence, behaviour=f"{recurrence} under autocast",
                          law="the documented recurrence, at the precision of the autocast dtype",
                          inputs=lambda recurrence=recurrence: dict(
                              parameters=random_parameters(recurrence, IN, HIDDEN, seed=SEED),
                              x=random_array((L, N, IN), seed=SEED + 1)))
         for recurrence in RECURRENCES}


def autocast_dtype(device: str) -> str:
    """Autocast's default lower precision: bfloat16 on the CPU, float16 on accelerators."""
    return "bfloat16" if torch.device(device).type == "cpu" else "float16"


def onednn_refuses_the_lstm(device: str) -> bool:
    """Whether oneDNN runs this CPU's float32 LSTM but cannot run it in the autocast dtype."""
    served = releases.onednn_rnn_dtypes()
    return torch.device(device).type == "cpu" and "float32" in served and autocast_dtype(device) not in served


def run_under_autocast(name: str, device: str) -> tuple[dict[str, torch.Tensor], tuple[str, ...]]:
    """The float32 module's forward under autocast: its results under the layer's names (a cell's loop: output,
    h_n, c_n) and the dtypes of what the module returned (a cell's: of h' and c' at the last step)."""
    kind = KINDS[name]
    module = explicit_module(name, IN, HIDDEN, implementation=EAGER, device=device, dtype="float32", seed=SEED)
    x = torch.tensor(CASES[kind.recurrence].configuration()["x"], dtype=torch.float32, device=device)
    with torch.autocast(device_type=torch.device(device).type, dtype=DTYPES[autocast_dtype(device)]):
        if kind.cell:
            state, steps = None, []
            for x_t in x:
                state = module(x_t, state)
                steps.append(state[0] if isinstance(state, tuple) else state)
            last = state if isinstance(state, tuple) else (state,)
            results = {"output": torch.stack(steps), **{key: t.unsqueeze(0) for key, t in zip(("h_n", "c_n"), last)}}
        else:
            output, final = module(x)
            last = (output, *final) if isinstance(final, tuple) else (output, final)
            results = dict(zip(("output", "h_n", "c_n"), last))
    return results, tuple(str(tensor.dtype).removeprefix("torch.") for tensor in last)


@pytest.mark.observed(WHERE)
@pytest.mark.torch_nn_itself("states which dtypes torch.nn's own kernels return under autocast, an observation of "
                             "torch.nn: another implementation may compute in other dtypes under autocast")
@pytest.mark.parametrize("name", list(KINDS))
def test_autocast_returns_the_observed_dtypes_at_the_autocast_precision(name, device, observe):
    """The dtypes of the table (bfloat16 or float32), each result within the autocast dtype's row of the truth."""
    kind, lower = KINDS[name], autocast_dtype(device)
    config = f"{device}-autocast-{lower}-{name}"
    if name == "lstm" and onednn_refuses_the_lstm(device):
        assert_raises(lambda: run_under_autocast(name, device), RuntimeError, [], config=config,
                      observe=observe)
        return
    results, dtypes = run_under_autocast(name, device)
    observe("dtypes", ", ".join(dtypes))
    observed = OBSERVED_ON_CPU[name] if torch.device(device).type == "cpu" and (
        name != "lstm" or not releases.onednn_rnn_dtypes()) else None
    if observed is not None:
        assert dtypes == observed, f"autocast [{config}]: {name} returned {dtypes}, observed {observed} on {WHERE}"
    else:  # not observed (oneDNN serving the autocast dtype, an accelerator): autocast's two dtypes
        assert set(dtypes) <= {"float32", lower}, f"autocast [{config}]: {name} returned {dtypes}"
    truth = CASES[kind.recurrence].truth()
    for key, tensor in results.items():
        assert_agrees(tensor, truth.in_dtype(lower)[key], truth.allowed(key, TOLERANCES[lower], tensor),
                      behaviour=f"{name} under autocast", what=f"{key} (returned in {str(tensor.dtype)[6:]})",
                      witness=f"the NumPy reference in float64 rounded to {lower}", config=config,
                      law=f"the documented recurrence, at {lower} precision whatever the dtype returned")
