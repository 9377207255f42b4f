r"""Chapter 17. Every size and every memory layout: the recurrence does not depend on how big or how stored.

The law is the one the earlier chapters state on small, hand-picked, contiguous configurations:
each layer computes the documented recurrence (`nn.RNN <https://pytorch.org/docs/stable/generated/torch.nn.RNN.html>`_,
``nn.LSTM``, ``nn.GRU``), forward and backward, whatever its sizes, and a tensor's *values* are
its meaning, not the way its elements lie in memory
(`tensor views <https://pytorch.org/docs/stable/tensor_view.html>`_): a transposed, strided,
expanded or offset view of the same values is the same input.

Why sizes and layouts matter. A kernel is many programs, chosen by size and layout at run time:
a time loop that runs in chunks, or in a persistent kernel, beyond some length; a GEMM blocked
differently for large matrices; a batch body vectorised by 8 or 16 rows with a scalar tail for the
rest; a fast path for contiguous, aligned memory and a copy (or a bug) for anything else.
PyTorch's own history has bugs that live only there: LSTMs wrong for batch > 1, huge errors for
large bidirectional batches, batch and time swapped under ``batch_first`` on one backend. A spec
whose every configuration is small and contiguous accepts an implementation that is wrong on all
of those paths. This chapter draws its configurations with
`Hypothesis <https://hypothesis.readthedocs.io>`_ (``rnnspec/properties.py``): any kind, sizes
small except **one large dimension at a time** (100 to 400 steps, 100 to 320 hidden units, or 17
to 64 sequences), every option (layers, directions, batch_first, unbatched, h0/c0, packed
lengths sorted or not, bias, evaluation mode with dropout, projections) and every memory layout of
the input and the initial states (``rnnspec/layouts.py``: transposed, time innermost as a
``Conv1d``'s output permuted, strided, expanded from one row, misaligned by one element). Three
tests, one per family a target may lack: padded input of every kind, packed sequences of every kind,
projected LSTMs. Explicit examples reach each large dimension and every kind, with non-contiguous
tensors, in every run: a 200-step tanh RNN, an LSTM of 160 hidden units, a relu RNN over a batch of
33 (two layers, evaluation mode with dropout 0.9, input and states expanded from one row), a
bidirectional GRU over 37 packed sequences of unsorted lengths, a projected LSTM of 128 hidden units.

Each example is checked as a recorded case is (``rnnspec/spec_check.py``): first the output
contract (every tensor in the dtype and on the device under test, of the documented shape, dense,
requiring grad where it must), then every output and gradient against the NumPy reference rounded
to the dtype, under the tolerance table, widened to the step-by-step envelope in bfloat16 and
float16 where the row is not met. The values are drawn from the configuration's seed
(``rnnspec/configurations.py``), the parameters within torch's ±1/√H and the inputs within ±1.

One exception, the relu RNN's gradients: relu' jumps from 0 to 1 at 0, so where a pre-activation
lies within rounding distance of 0, a narrow dtype may land on the other side and move a gradient
by a whole term (chapter 9). Its gradients are compared when every non-zero pre-activation keeps
:data:`KINK_REACH` machine epsilons of the dtype from 0, its forward values always.

One refusal, on accelerators: cuDNN's and MIOpen's kernels check that the initial states are
contiguous (``TORCH_CHECK(hx.is_contiguous(), "rnn: hx is not contiguous")`` in PyTorch's source;
its own module tests expect a GRU given a non-contiguous h0 to fail on CUDA). A torch.nn run on CUDA
with non-contiguous initial states may therefore compute the recurrence, or refuse with a
RuntimeError whose message names contiguity; either is PyTorch (not run here: no GPU).

Reproducing a failure. The default run is derandomised: the same examples every time. Hypothesis
shrinks a failing drawn example to the smallest configuration that still fails (for a bug of long
sequences: the shortest length that shows it), prints it as a ``Configuration(...)`` call, and the
failure carries a standalone script, torch and NumPy only, that runs it and prints each tensor's
distance from the same run in float64 on the CPU. More examples:
``python -m pytest spec/test_17_sizes_and_layouts.py --hypothesis-profile=rnn-spec-explore``.
"""

import dataclasses

import pytest
import torch
from hypothesis import event, note

from rnnspec import authority, properties
from rnnspec.configurations import Configuration
from rnnspec.contracts import missing_facts
from rnnspec.devices import DTYPES
from rnnspec.measure import EAGER, frozen
from rnnspec.numpy_reference import relu_kink_distance
from rnnspec.spec_check import assert_matches_truth, assert_output_contract, of_the_run
from rnnspec.tolerances import TOLERANCES

pytestmark = [pytest.mark.property,  # property-based: bench/ratio.py measures this chapter's share of the run
              pytest.mark.filterwarnings("ignore:LSTM with projections is not supported with oneDNN:UserWarning")]

TENSOR_VIEWS = authority.DOCS + "tensor_view.html"
#: Machine epsilons (of the dtype) a relu pre-activation keeps from the kink for its gradients to be compared.
KINK_REACH = 64
FORWARD = ("output", "h_n", "c_n")
#: The layouts whose tensors are contiguous (misaligned: contiguous, one element into its buffer).
CONTIGUOUS = ("contiguous", "misaligned")


def relu_gradients_comparable(configuration: Configuration, dtype: str) -> bool:
    """Whether every non-zero pre-activation of a relu run keeps KINK_REACH machine epsilons of ``dtype`` from 0."""
    arrays = configuration.case().configuration()
    unit = torch.finfo(DTYPES[dtype]).eps
    options = {name: arrays[name] for name in ("num_layers", "bidirectional", "batch_first", "lengths") if name in arrays}
    return relu_kink_distance(arrays["parameters"], arrays["x"], h0=arrays.get("h0"), **options) > KINK_REACH * unit


def refuses_non_contiguous_states(configuration: Configuration, implementation, device: str, error) -> bool:
    """Whether ``error`` is cuDNN's or MIOpen's refusal of non-contiguous initial states (torch.nn on an accelerator)."""
    return (implementation is EAGER and torch.device(device).type == "cuda" and configuration.initial_state
            and configuration.state_layout not in CONTIGUOUS and not missing_facts(str(error), ["contiguous"]))


def check_against_reference(configuration: Configuration, implementation, device: str, dtype: str) -> None:
    """The output contract, then every output and gradient against the NumPy reference, under the tolerance table."""
    __tracebackhide__ = True
    case = configuration.case()
    config = f"{device}-{dtype}: {configuration.words()}"
    try:
        try:
            measured = frozen(case.measure(case.kind, implementation=implementation, device=device, dtype=dtype,
                                           **case.configuration()))
        except RuntimeError as error:
            if refuses_non_contiguous_states(configuration, implementation, device, error):
                event("refused: non-contiguous initial states on cuDNN / MIOpen")
                return
            raise
        truth = of_the_run(case.truth(), measured)  # a run without gradients (ONNX Runtime): its forward tensors
        assert_output_contract(measured, truth, device=device, dtype=dtype, config=config)
        if configuration.kind == "rnn_relu" and not relu_gradients_comparable(configuration, dtype):
            truth = dataclasses.replace(truth, values={key: value for key, value in truth.values.items()
                                                       if key in FORWARD})
        assert_matches_truth({key: value for key, value in measured.items() if key in truth.values}, truth, dtype,
                             TOLERANCES[dtype], what="measured",
                             witness=f"the NumPy reference in float64 rounded to {dtype}", config=config)
        properties.checked_without_gradients(measured)
    except Exception:
        note(f"configuration: {configuration!r}")
        note(f"standalone reproduction (torch and NumPy only):\n{configuration.snippet(device, dtype)}")
        raise


@pytest.mark.documented(f"{authority.LAYERS} {TENSOR_VIEWS}")
@properties.property_test("padded")
def test_every_layer_computes_its_recurrence_at_every_size_and_memory_layout(implementation, device, dtype,
                                                                              configuration):
    """RNN, LSTM, GRU, padded input: any sizes (one dimension large), options and memory layouts; forward and
    backward."""
    check_against_reference(configuration, implementation, device, dtype)


@pytest.mark.documented(f"{authority.LAYERS} {authority.PACK_PADDED} {TENSOR_VIEWS}")
@properties.property_test("packed")
def test_packed_sequences_compute_their_recurrence_at_every_size_and_memory_layout(implementation, device, dtype,
                                                                                   configuration):
    """RNN, LSTM, GRU on packed sequences, lengths sorted or not: any sizes, options and memory layouts."""
    check_against_reference(configuration, implementation, device, dtype)


@pytest.mark.documented(f"{authority.LSTM} {TENSOR_VIEWS}")
@properties.property_test("projections")
def test_lstm_projections_compute_their_recurrence_at_every_size_and_memory_layout(implementation, device, dtype,
                                                                                    configuration):
    """LSTM with proj_size, padded input: any sizes (one dimension large), options and memory layouts."""
    check_against_reference(configuration, implementation, device, dtype)
