r"""Chapter 12. Dropout: between layers, in training only.

``nn.RNN``, ``nn.LSTM`` and ``nn.GRU`` take ``dropout=p``: "If non-zero, introduces a Dropout
layer on the outputs of each RNN layer except the last layer, with dropout probability equal to
dropout" (`torch.nn.LSTM <https://pytorch.org/docs/stable/generated/torch.nn.LSTM.html>`_).
With :math:`y^{(l)}_t` the output of layer l at step t, in training mode layer l + 1 reads

$$ d^{(l)}_t = \frac{m^{(l)}_t \odot y^{(l)}_t}{1 - p}, \qquad m^{(l)}_t \in \{0, 1\}^{H_{out}}
   \text{ independent Bernoulli}(1 - p) \text{ per element}, $$

so each element of the inter-layer input is either 0 or :math:`y/(1-p)`, and its expectation is
y. The last layer's output is not dropped, and h_n and c_n hold every layer's final state before
any dropout. The backward uses the same mask: :math:`\partial/\partial y = (m/(1-p))\,\partial/\partial d`.
With one layer there is nothing between layers: dropout has no effect, and the constructor warns
(a UserWarning naming dropout, its value and num_layers; torch 2.13 says *dropout option adds
dropout after all but last recurrent layer, so non-zero dropout expects num_layers greater than
1, but got dropout=0.75 and num_layers=1*). In evaluation mode (``module.eval()``) there is no
dropout at all: the output does not depend on the random stream (two runs under different seeds
agree) and equals that of the same module with ``dropout=0``. These three laws are checked on
general weights (input size 3, hidden size 5, L = 4, N = 3), within the sum of the two runs'
tolerances: evaluation and training mode may compute the same layers along different kernels.

**What is observable.** The mask is random and PyTorch promises no random stream across
releases, so the spec never records a mask, nor any value that depends on one. It makes the
mask observable instead. Every case uses p = 3/4, so :math:`1/(1-p) = 4` is a power of two and
:math:`4y` is exact in every dtype. The first layer has small positive weights and positive
inputs, so :math:`y^{(1)} > 0` everywhere (between 0.13 and 0.81: moderate pre-activations, far
from saturation, so the reduced dtypes stay well conditioned). The second layer is made
memoryless and elementwise: ``weight_ih_l1`` is 1/4 of the identity in every gate block (undoing the scale 4, so its
pre-activation is :math:`m \odot y^{(1)}`), ``weight_hh_l1`` and the layer's biases are 0. Each
element of its output is then a function of one element of :math:`d^{(1)}` that is 0 exactly
when that element is 0 (relu(0) = tanh(0) = 0; for the LSTM the gate g = tanh(0) = 0 gives
c = 0 and h = 0; for the GRU n = tanh(0) = 0 and h = (1 − z) n = 0). So **the mask is the set of
nonzero elements of the output**.

* The relu RNN's second layer is then exact: its output is :math:`m \odot y^{(1)}` in training
  and :math:`y^{(1)}/4` in evaluation mode, where nothing is dropped (a product by 1/4, 4 or 0
  and a sum with zeros are exact in IEEE 754 arithmetic). Their ratio, the inter-layer input
  over the first layer's output, is exactly 0 where an element is dropped and 4 where it is
  kept, up to how far the two modes' first layers differ (within the sum of their tolerances:
  nothing promises that training and evaluation mode run the same kernel), and both occur
  (unless all 192 draws agree: probability :math:`0.75^{192} + 0.25^{192} < 10^{-23}`).
* The LSTM's cell state and the GRU's interpolation :math:`z h_{t-1}` carry memory even with
  ``weight_hh_l1`` = 0, so their masks are read from a one-step sequence (L = 1, N = 24); the RNNs
  use L = 6, N = 4. In both, the first layer's output has n = 192 elements (H = 8).
* Given the mask, the output, h_n, c_n and every gradient follow from the NumPy reference: the
  first layer, then the mask applied and scaled by 4, then the second layer, then the backward
  through the same mask (loss: the sum of output and h_n). That is the law checked, under the
  tolerance table; dropout after the last layer, a different mask in the backward, a scale of
  1/p, or a dropped h_n would all break it.
* The fraction of dropped elements is p = 0.75 up to chance: by Hoeffding's inequality,
  :math:`P(|\hat p - p| \ge t) \le 2e^{-2nt^2}`, so with n = 192 and α = 10⁻⁶ it lies within
  t = 0.194 of p, in [0.556, 0.944] (see ``rnnspec/statistics.py``). This excludes p and 1 − p
  being confused (0.25), and no dropout at all (0).

The random draws run under a fixed seed inside ``torch.random.fork_rng``: one build always gives
the same verdict, no test changes another's stream, and nothing depends on which mask is drawn.

:parameters: 0.75 (the dropout probability p)
:configuration: 2.13 (the torch release whose warning is quoted); 10⁻⁶ (the probability with which a
    statistical claim may fail a correct PyTorch)
:derived: 0.13 = min([np.min(first_layer_truth(kind).values["output"]) for kind in RECURRENCES]);
    0.81 = max([np.max(first_layer_truth(kind).values["output"]) for kind in RECURRENCES]);
    0.194 = sqrt(log(2 / 1e-6) / (2 * 192));
    0.556 = P - sqrt(log(2 / 1e-6) / (2 * 192));
    0.944 = P + sqrt(log(2 / 1e-6) / (2 * 192));
    0.25 = 1 - P
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch

from rnnspec import authority, kinds, numpy_reference, statistics, stepwise
from rnnspec.comparison import Truth, as_float64, assert_agrees, ratio_tolerance
from rnnspec.contracts import assert_warns
from rnnspec.kinds import RECURRENCES
from rnnspec.devices import DTYPES
from rnnspec.spec_check import assert_matches_truth
from rnnspec.records import Case
from rnnspec.inputs import random_parameters
from rnnspec.measure import build, memoised

P = 0.75  # 1/(1 - p) = 4: exact in every dtype
HIDDEN = 8
SEED = 12
#: (L, N) per kind: the LSTM and GRU carry memory in their second layer, so they take one step.
LENGTH_AND_BATCH = {"rnn_tanh": (6, 4), "rnn_relu": (6, 4), "lstm": (1, 24), "gru": (1, 24)}


def observable_parameters(kind: str) -> dict[str, np.ndarray]:
    """A first layer with positive weights (so y > 0), a memoryless identity second layer (so the mask shows)."""
    shapes = numpy_reference.parameter_shapes(kind, HIDDEN, HIDDEN, num_layers=2)
    rng = np.random.default_rng(SEED)
    gates = numpy_reference.gate_count(kind)
    first = {"weight_ih_l0": (0.02, 0.1), "weight_hh_l0": (0.0, 0.05), "bias_ih_l0": (0.0, 0.05),
             "bias_hh_l0": (0.0, 0.05)}
    parameters = {name: rng.uniform(*first[name], shapes[name]) for name in first}
    parameters["weight_ih_l1"] = np.tile((1 - P) * np.eye(HIDDEN), (gates, 1))
    parameters.update({name: np.zeros(shapes[name]) for name in ("weight_hh_l1", "bias_ih_l1", "bias_hh_l1")})
    return parameters


def observable_input(kind: str) -> np.ndarray:
    length, batch = LENGTH_AND_BATCH[kind]
    return np.random.default_rng(SEED + 1).uniform(0.5, 1.5, (length, batch, HIDDEN))


@memoised
def observable_run(implementation, kind: str, device: str, dtype: str, *, training: bool) -> dict:
    """The two-layer module with dropout 0.75, forward and backward (loss Σ output + Σ h_n), seeded."""
    with torch.random.fork_rng(devices=[]):  # the constructor's default initialisation draws from torch's stream
        module = build(kind, observable_parameters(kind), implementation=implementation, device=device, dtype=dtype,
                       num_layers=2, dropout=P)
    module.train(training)
    x = torch.tensor(observable_input(kind), dtype=DTYPES[dtype], device=device, requires_grad=True)
    with statistics.seeded(device, SEED):
        output, state = module(x)
    h_n, c_n = state if isinstance(state, tuple) else (state, None)
    (output.sum() + h_n.sum()).backward()
    measured = {"output": output, "h_n": h_n, "grad_input": x.grad}
    if c_n is not None:
        measured["c_n"] = c_n
    measured.update({f"grad_{name}": p.grad for name, p in module.named_parameters()})
    return measured


def layer(parameters: dict, index: int) -> dict:
    """Layer ``index``'s parameters under the names of a one-layer module (``_l{index}`` → ``_l0``)."""
    suffix = f"_l{index}"
    return {name.removesuffix(suffix) + "_l0": value for name, value in parameters.items() if name.endswith(suffix)}


def masked_values(kind: str, parameters: dict, x: np.ndarray, mask: np.ndarray) -> dict:
    """The reference's two-layer run with ``mask`` applied between the layers and scaled by 1/(1 − p)."""
    first = numpy_reference.forward(kind, layer(parameters, 0), x)
    second = numpy_reference.forward(kind, layer(parameters, 1), mask * first.output / (1 - P))
    back_second = numpy_reference.backward(second, grad_output=np.ones_like(second.output),
                                           grad_h_n=np.ones_like(second.h_n))
    back_first = numpy_reference.backward(first, grad_output=mask / (1 - P) * back_second["input"],
                                          grad_h_n=np.ones_like(first.h_n))
    values = {"output": second.output, "h_n": np.concatenate([first.h_n, second.h_n]),
              "grad_input": back_first["input"]}
    if kind == "lstm":
        values["c_n"] = np.concatenate([first.c_n, second.c_n])
    values.update({f"grad_{name}": back_first[name] for name in layer(parameters, 0)})
    values.update({f"grad_{name.removesuffix('_l0')}_l1": back_second[name] for name in layer(parameters, 1)})
    return values


def masked_truth(kind: str, mask: np.ndarray) -> Truth:
    """The truth of the training run given its mask (with its step-by-step envelope, rnnspec/stepwise.py)."""
    arguments = (kind, observable_parameters(kind), observable_input(kind), mask)
    return Truth(behaviour=f"{kind} dropout between layers (p = 0.75, 2 layers, training)",
                 law="layer 2 reads m * y1 / (1 - p), m ~ Bernoulli(1 - p) per element; output and h_n are not "
                     "dropped; the backward uses the same mask",
                 values=masked_values(*arguments),
                 emulate=lambda dtype: stepwise.emulate_all(masked_values, dtype, *arguments))


def first_layer_truth(kind: str) -> Truth:
    """The first layer's output alone (what the second layer reads, undropped), compared relatively."""
    parameters, x = layer(observable_parameters(kind), 0), observable_input(kind)
    first = lambda parameters, x: {"output": numpy_reference.forward(kind, parameters, x).output}  # noqa: E731
    return Truth(behaviour=f"{kind} dropout: the first layer's output", law="y1 = the first layer's recurrence",
                 values=first(parameters, x), relative=frozenset({"output"}),
                 emulate=lambda dtype: stepwise.emulate_all(first, dtype, parameters, x))


def dropped(implementation, kind: str, device: str, dtype: str) -> np.ndarray:
    """The mask's zeros, read from the training output (0 exactly where the inter-layer input was dropped)."""
    return observable_run(implementation, kind, device, dtype, training=True)["output"] == 0


@pytest.mark.documented(authority.LAYERS)
@pytest.mark.parametrize("kind", RECURRENCES)
def test_training_output_is_the_second_layer_applied_to_the_masked_first_layer(kind, implementation, device, dtype, tolerance):
    """Output, h_n, c_n and all gradients equal the reference run on m·y1/(1 − p), the mask read from the output."""
    zeros = dropped(implementation, kind, device, dtype)
    config = f"{device}-{dtype}-{kind}"
    fraction, width = zeros.mean(), statistics.hoeffding_half_width(zeros.size)
    assert abs(fraction - P) < width, (
        f"{kind} dropout [{config}]: {zeros.sum()} of {zeros.size} inter-layer elements dropped ({fraction:.3f}); "
        f"with p = {P} the fraction lies in [{P - width:.3f}, {P + width:.3f}] except with probability "
        f"{statistics.ALPHA:g} (Hoeffding)")
    assert_matches_truth(observable_run(implementation, kind, device, dtype, training=True), masked_truth(kind, (~zeros).astype(float)),
                         dtype, tolerance, what="measured", witness=f"the reference with the observed mask, rounded "
                         f"to {dtype}", config=config)


@pytest.mark.derived("documented dropout; 0 times anything is 0, and 1/(1 - 3/4) = 4 is exact")
def test_relu_inter_layer_input_is_zero_or_four_times_the_first_layer_output(implementation, device, dtype, tolerance):
    """The relu RNN's inter-layer input over its first layer's output: exactly 0 where dropped, 1/(1 − p) = 4 where
    kept (within the tolerance: training and evaluation mode may compute the first layer along different paths),
    and both occur."""
    trained = observable_run(implementation, "rnn_relu", device, dtype, training=True)["output"]
    first_layer = observable_run(implementation, "rnn_relu", device, dtype, training=False)["output"]  # eval: nothing dropped
    config = f"{device}-{dtype}-rnn_relu"
    assert (first_layer > 0).all(), (
        f"relu dropout [{config}]: {int((first_layer <= 0).sum())} of {first_layer.size} eval-mode "
        f"outputs are 0; in eval mode nothing is dropped, and they are the first layer's positive outputs / 4")
    ratios = trained / first_layer
    dropped_here, kept = ratios == 0, ratios != 0
    assert dropped_here.any() and kept.any(), (
        f"relu dropout [{config}]: {int(dropped_here.sum())} of {ratios.size} inter-layer elements are dropped; both "
        f"dropped and kept ones occur except with probability 0.75^192 + 0.25^192 < 1e-23")
    # trained = y1 where kept (training mode), first_layer = y1 / 4 (evaluation mode), each exactly: their ratio
    # is 4 within the tolerances of two runs of the first layer
    truth = first_layer_truth("rnn_relu")
    row = truth.tolerance_for("output", tolerance)

    def envelope():
        widened = truth.envelope_for("output", tolerance)
        return None if widened is None else ratio_tolerance(widened, widened)
    assert_agrees(ratios[kept], np.full(int(kept.sum()), 4.0), ratio_tolerance(row, row), envelope=envelope,
                  behaviour="relu dropout between layers",
                  what="inter-layer input / first-layer output where kept", witness="1/(1 - p) = 4", config=config,
                  law="d = m * y / (1 - p) with p = 0.75, m in {0, 1} per element: 0 (dropped, exactly: 0 times "
                      "anything is 0 and relu(0) = 0) or 4 y")


def inert_arrays(kind: str, layers: int) -> dict:
    """General weights (input size 3, hidden size 5) and input (L = 4, N = 3), for the laws where dropout is inert."""
    return dict(parameters=random_parameters(kind, 3, 5, seed=0, num_layers=layers),
                x=np.random.default_rng(SEED + 2).uniform(-1, 1, (4, 3, 3)))


#: The runs where dropout=0.75 must change nothing: the truth of each is the reference without dropout.
INERT = {(kind, layers): Case(kind=kind, behaviour=f"{kind} dropout (p = 0.75, {layers} layer{'s' * (layers > 1)})",
                              law="no dropout: evaluation mode, or after the last layer",
                              inputs=lambda kind=kind, layers=layers: inert_arrays(kind, layers),
                              options=dict(num_layers=layers))
         for kind in RECURRENCES for layers in (1, 2)}


def forward(implementation, kind: str, layers: int, device: str, dtype: str, *, training: bool, dropout: float,
            seed: int = SEED) -> np.ndarray:
    """The module's output on the inert case's input in the given mode, with the given dropout and seed."""
    configuration = INERT[kind, layers].configuration()
    with warnings.catch_warnings():  # the one-layer warning has a test of its own
        warnings.simplefilter("ignore", UserWarning)
        module = build(kind, configuration["parameters"], implementation=implementation, device=device, dtype=dtype,
                       num_layers=layers, dropout=P)
    module.train(training)
    module.dropout = dropout  # read at every forward: the same weights with and without dropout
    x = torch.tensor(configuration["x"], dtype=DTYPES[dtype], device=device)
    with torch.no_grad(), statistics.seeded(device, seed):
        return as_float64(module(x)[0])


@memoised
def inert_runs(implementation, kind: str, device: str, dtype: str) -> dict:
    """Outputs where dropout=0.75 must change nothing, and the same modules' outputs with dropout=0."""
    return {
        "eval": forward(implementation, kind, 2, device, dtype, training=False, dropout=P),
        "eval, another seed": forward(implementation, kind, 2, device, dtype, training=False, dropout=P, seed=SEED + 1),
        "2 layers without dropout": forward(implementation, kind, 2, device, dtype, training=True, dropout=0.0),
        "1 layer in training": forward(implementation, kind, 1, device, dtype, training=True, dropout=P),
        "1 layer without dropout": forward(implementation, kind, 1, device, dtype, training=True, dropout=0.0),
    }


@pytest.mark.documented(authority.MODULE_EVAL)
@pytest.mark.parametrize("kind", RECURRENCES)
def test_dropout_changes_nothing_in_eval_mode_or_with_one_layer(kind, implementation, device, dtype, tolerance):
    """eval(): runs under two seeds agree, and agree with dropout=0; one layer in training: agrees with dropout=0."""
    runs = inert_runs(implementation, kind, device, dtype)
    for (measured, expected), layers, law in (
            (("eval", "eval, another seed"), 2, "module.eval() disables dropout: the output does not depend on the "
                                                "random stream"),
            (("eval", "2 layers without dropout"), 2, "in eval mode dropout is the identity"),
            (("1 layer in training", "1 layer without dropout"), 1,
             "dropout acts after every layer but the last, and a single layer is the last")):
        got, want = runs[measured], runs[expected]
        truth = INERT[kind, layers].truth()
        assert_agrees(got, want, truth.between("output", tolerance, got, want), behaviour=truth.behaviour,
                      what=f"output ({measured})", witness=f"output ({expected})",
                      config=f"{device}-{dtype}-{kind}", law=law)


@pytest.mark.observed(authority.RELEASES)
@pytest.mark.torch_nn_itself("states torch.nn's constructor warning, constructing torch's modules itself")
@pytest.mark.parametrize("kind", RECURRENCES)
def test_one_layer_dropout_warns(kind, observe):
    """nn.RNN/LSTM/GRU(num_layers=1, dropout=0.75) warns, naming dropout, its value and num_layers."""
    with torch.random.fork_rng(devices=[]):
        assert_warns(lambda: kinds.layer(kind).construct(3, 5, num_layers=1, dropout=P), UserWarning,
                     ("dropout", "num_layers", r"0\.75"), config=kind, observe=observe)
