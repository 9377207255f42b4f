r"""Chapter 14. Default initialisation: every parameter is drawn uniformly from [−1/√H, 1/√H].

PyTorch documents, for ``nn.RNN``, ``nn.LSTM``, ``nn.GRU`` and their cells: "All the weights and
biases are initialized from :math:`\mathcal{U}(-\sqrt{k}, \sqrt{k})` where
:math:`k = 1/\text{hidden\_size}`". The source says the same for every parameter
(`torch/nn/modules/rnn.py <https://github.com/pytorch/pytorch/blob/main/torch/nn/modules/rnn.py>`_,
``RNNBase.reset_parameters`` and ``RNNCellBase.reset_parameters``):

.. code-block:: python

    stdv = 1.0 / math.sqrt(self.hidden_size) if self.hidden_size > 0 else 0
    for weight in self.parameters():
        init.uniform_(weight, -stdv, stdv)

So the bound is :math:`1/\sqrt{H}` for *every* parameter, whatever its shape: not the fan-in of
the matrix (``weight_ih_l1`` of a bidirectional layer has fan-in 2H, ``weight_hh`` of an LSTM with
projections has fan-in P), and for the LSTM's projection ``weight_hr_l{k}`` (shape (P, H)) the
bound uses hidden_size, not proj_size.

The sizes make each alternative visible: input size 4 and proj_size 4 (a bound of 1/√4 = 0.5),
hidden size H = 16, so the specified bound is exactly :math:`k = 1/4`. Being a power of two, k is
representable in every dtype: a sample drawn below k and rounded to the dtype cannot pass it, so
the bound holds *exactly*, inclusive (bfloat16 rounds some samples to exactly ±0.25).

**Uniformity, a statistical claim.** PyTorch promises no random stream across releases, so the
spec records no initial values. It asserts what holds for any stream with high probability:
the empirical distribution of the samples is close to U(−k, k). The Kolmogorov–Smirnov distance
:math:`D_n = \sup_x |\hat F_n(x) - F(x)|` of n independent uniform samples exceeds
:math:`\varepsilon(n, \alpha) = \sqrt{\ln(2/\alpha)/(2n)}` with probability at most α, for every n
(Dvoretzky–Kiefer–Wolfowitz with Massart's constant; see ``rnnspec/statistics.py``). Rounding
to the dtype moves :math:`D_n` by at most :math:`\epsilon/4` (ε the dtype's machine epsilon:
2^-9 = 0.002 in bfloat16), which is added to the critical value.

Each test checks m samples sets: every parameter alone (a tensor initialised differently or not
at all), every role pooled over layers and directions (all biases, all input weights, all
recurrent weights, all projections: a bias of 16 values alone is too small a sample to see much)
and all parameters pooled (n from 352 for the RNN cell to 9216 for the LSTM). With m sets (8 for a
cell, 20 for a layer, 25 with projections), each set runs at :math:`\alpha/m` with α = 10⁻⁶, so by
the union bound a correct PyTorch fails a test with probability at most 10⁻⁶. The critical
distance is :math:`\sqrt{\ln(2m/\alpha)/(2n)}`: with m = 20, 0.37 for 64 values, 0.13 for 512,
0.03 for 9216. The draws use a fixed seed inside ``torch.random.fork_rng``, so
one build always gives the same verdict and the test leaves torch's stream as it found it.

The parameters are created directly on the device under test, in the dtype under test (factory
arguments ``device=`` and ``dtype=``), so ``init.uniform_`` runs there.

:configuration: 1.0 (PyTorch's source, quoted); 10⁻⁶ (the probability with which a statistical
    claim may fail a correct PyTorch)
:derived: 0.5 = 1 / sqrt(INPUT_SIZE);
    0.25 = BOUND;
    −0.25 = -BOUND;
    0.002 = 2**-9;
    9216 = sum([v.size for v in initial_parameters("lstm-2layers-bidir", "cpu", "float64").values()]);
    0.37 = sqrt(log(2 * 20 / 1e-6) / (2 * 64));
    0.13 = sqrt(log(2 * 20 / 1e-6) / (2 * 512));
    0.03 = sqrt(log(2 * 20 / 1e-6) / (2 * 9216))
"""

from __future__ import annotations

import re

import numpy as np
import pytest

from rnnspec import authority, statistics
from rnnspec.kinds import KINDS
from rnnspec.devices import DTYPES
from rnnspec.measure import memoised

#: Every claim here states torch.nn's own default initialisation: under another --target, not applicable.
pytestmark = pytest.mark.torch_nn_itself("states torch.nn's default initialisation, constructing torch's modules itself")

INPUT_SIZE, HIDDEN_SIZE, PROJ_SIZE = 4, 16, 4
BOUND = 1 / np.sqrt(HIDDEN_SIZE)  # 0.25 exactly
SEED = 14
LAW = "every parameter ~ U(-1/sqrt(hidden_size), 1/sqrt(hidden_size)) (reset_parameters)"

#: The configurations: every layer kind with two layers in both directions (every parameter name:
#: _l0, _l1, _reverse), the LSTM with projections, and the cells.
CONFIGURATIONS = {
    "rnn_tanh-2layers-bidir": ("rnn_tanh", {"num_layers": 2, "bidirectional": True}),
    "lstm-2layers-bidir": ("lstm", {"num_layers": 2, "bidirectional": True}),
    "lstm-2layers-bidir-proj4": ("lstm", {"num_layers": 2, "bidirectional": True, "proj_size": PROJ_SIZE}),
    "gru-2layers-bidir": ("gru", {"num_layers": 2, "bidirectional": True}),
    "rnn_tanh_cell": ("rnn_tanh_cell", {}),
    "lstm_cell": ("lstm_cell", {}),
    "gru_cell": ("gru_cell", {}),
}


@memoised
def initial_parameters(configuration: str, device: str, dtype: str) -> dict:
    """Every parameter as torch's default initialisation leaves it, created on ``device`` in ``dtype``."""
    name, options = CONFIGURATIONS[configuration]
    with statistics.seeded(device, SEED):
        module = KINDS[name].construct(INPUT_SIZE, HIDDEN_SIZE, device=device, dtype=DTYPES[dtype], **options)
    return dict(module.named_parameters())


def role(parameter: str) -> str:
    """The parameter's role, its name without layer and direction: weight_ih, weight_hh, bias, weight_hr."""
    base = re.sub(r"(_l\d+)?(_reverse)?$", "", parameter)
    return "bias" if base.startswith("bias") else base


def sample_sets(parameters: dict) -> dict[str, np.ndarray]:
    """Every parameter alone, every role pooled, and everything pooled: the sets whose spread is tested."""
    sets = {name: values.ravel() for name, values in parameters.items()}
    roles = sorted({role(name) for name in parameters})
    for each in roles:
        sets[f"every {each}"] = np.concatenate([v.ravel() for n, v in parameters.items() if role(n) == each])
    sets["every parameter"] = np.concatenate([v.ravel() for v in parameters.values()])
    return sets


@pytest.mark.documented(authority.LAYERS + ' ' + authority.CELLS)
@pytest.mark.parametrize("configuration", list(CONFIGURATIONS))
def test_every_parameter_is_uniform_within_one_over_sqrt_hidden_size(configuration, device, dtype):
    """|w| ≤ 1/√16 = 0.25 for every parameter, weight_hr included, and spread as U(−0.25, 0.25) (KS test)."""
    parameters = initial_parameters(configuration, device, dtype)
    config = f"{device}-{dtype}-{configuration}"
    for name, values in parameters.items():  # the support: exact, since 0.25 is representable
        largest = float(np.max(np.abs(values)))
        assert largest <= BOUND, (
            f"default initialisation [{config}]: {name} {values.shape} reaches |w| = {largest:.6g} > "
            f"1/sqrt(hidden_size) = 1/sqrt({HIDDEN_SIZE}) = {BOUND:g}\n"
            f"  law: {LAW}; a bound of 1/sqrt(input_size) or 1/sqrt(proj_size) would be "
            f"1/sqrt(4) = 0.5, of 1/sqrt(fan_in) 1/sqrt({values.shape[-1]}) = {1 / np.sqrt(values.shape[-1]):.3g}")
    sets = sample_sets(parameters)  # the spread: a statistical test at alpha for the whole test
    alpha = statistics.ALPHA / len(sets)
    allowance = statistics.rounding_allowance(DTYPES[dtype])
    for name, values in sets.items():
        distance = statistics.ks_distance_from_uniform(values, -BOUND, BOUND)
        critical = statistics.dkw_critical_distance(values.size, alpha) + allowance
        assert distance <= critical, (
            f"default initialisation [{config}]: {name} ({values.size} values) lies at Kolmogorov-Smirnov "
            f"distance {distance:.4f} from U(-{BOUND:g}, {BOUND:g}), beyond the critical {critical:.4f} "
            f"(DKW-Massart at alpha = {statistics.ALPHA:g}/{len(sets)} per set, plus {allowance:.2g} for rounding "
            f"to {dtype}): a correct PyTorch fails this test with probability below {statistics.ALPHA:g}\n"
            f"  law: {LAW}\n"
            f"  sample: min {values.min():.4g}, max {values.max():.4g}, mean {values.mean():.4g}, "
            f"std {values.std():.4g} (uniform: mean 0, std {BOUND / np.sqrt(3):.4g})")
