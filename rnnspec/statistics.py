r"""Statistical claims about random behaviour, each with a stated false-failure probability.

Some of PyTorch's recurrent behaviour is random by design: the default initialisation draws every
parameter from a uniform distribution, and dropout draws a Bernoulli mask. PyTorch promises no
random stream across releases or platforms, so the spec never records random values. It asserts
properties that hold with probability at least :math:`1 - \alpha` for *any* stream, and runs them
under a fixed seed so that one build always gives the same verdict (no flaky tests).

Two distribution-free bounds, valid for every sample size n (no asymptotics):

* **Dvoretzky–Kiefer–Wolfowitz, with Massart's constant** (Ann. Probab. 18, 1990): for n
  independent draws from a continuous distribution F with empirical distribution
  :math:`\hat F_n`,

  $$ P\Big(\sup_x |\hat F_n(x) - F(x)| > \varepsilon\Big) \le 2 e^{-2 n \varepsilon^2}, $$

  so the Kolmogorov–Smirnov distance exceeds
  :math:`\varepsilon_\alpha(n) = \sqrt{\ln(2/\alpha) / (2n)}` with probability at most
  :math:`\alpha`. For :math:`\alpha = 10^{-6}`: :math:`\ln(2\cdot 10^6) = 14.51`, so
  :math:`\varepsilon = 2.69/\sqrt{n}` (0.336 at n = 64, 0.085 at n = 1000).

* **Hoeffding** (J. Amer. Statist. Assoc. 58, 1963): for n independent Bernoulli(q) draws with
  mean :math:`\bar X`,

  $$ P(|\bar X - q| \ge t) \le 2 e^{-2 n t^2}, $$

  the same half-width :math:`t_\alpha(n) = \sqrt{\ln(2/\alpha)/(2n)}`.

Several checks in one test share its :math:`\alpha` (Bonferroni): with m checks, each runs at
:math:`\alpha/m`, and by the union bound the test fails falsely with probability at most
:math:`\alpha`.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator

import numpy as np
import torch

#: The false-failure probability every statistical test of the spec is designed for.
ALPHA = 1e-6


def dkw_critical_distance(n: int, alpha: float = ALPHA) -> float:
    """The Kolmogorov–Smirnov distance that n draws from F exceed with probability ≤ ``alpha`` (DKW–Massart)."""
    return math.sqrt(math.log(2 / alpha) / (2 * n))


def hoeffding_half_width(n: int, alpha: float = ALPHA) -> float:
    """The distance from q that the mean of n Bernoulli(q) draws reaches with probability ≤ ``alpha``."""
    return math.sqrt(math.log(2 / alpha) / (2 * n))


def ks_distance_from_uniform(samples, low: float, high: float) -> float:
    r"""The Kolmogorov–Smirnov distance :math:`\sup_x |\hat F_n(x) - F(x)|` between the samples and U(low, high).

    With the samples sorted, :math:`x_{(1)} \le \dots \le x_{(n)}`, the supremum is reached at a
    sample: :math:`\max_i \max(i/n - F(x_{(i)}),\ F(x_{(i)}) - (i-1)/n)`. This holds with ties
    too (the first of equal values gives the left limit, the last the right one), so rounded
    samples need no special case. Samples outside [low, high] count with F clamped to 0 or 1.
    """
    x = np.sort(np.asarray(samples, dtype=np.float64).ravel())
    n = x.size
    cdf = np.clip((x - low) / (high - low), 0.0, 1.0)
    i = np.arange(1, n + 1)
    return float(max(np.max(i / n - cdf), np.max(cdf - (i - 1) / n)))


def rounding_allowance(dtype: torch.dtype) -> float:
    r"""How far rounding to ``dtype`` can move a uniform sample's distribution function on [−k, k].

    Rounding moves each value x by at most half a unit in the last place, :math:`\le
    |x|\,2^{-(p+1)} \le k\,\epsilon/2` for a significand of p fraction bits (:math:`\epsilon =
    2^{-p}`, ``torch.finfo(dtype).eps``). The empirical distribution of the rounded samples then
    lies between the unrounded one shifted by :math:`\pm k\epsilon/2`, and F = U(−k, k) moves by at
    most :math:`(k\epsilon/2)/(2k) = \epsilon/4` over that shift: the KS distance grows by at most
    ε/4 (bfloat16 2^-9 = 0.002, float16 2^-12, float32 3e-8, float64 6e-17).
    """
    return torch.finfo(dtype).eps / 4


@contextlib.contextmanager
def seeded(device: str, seed: int) -> Iterator[None]:
    """Torch's generators of the CPU and of ``device`` seeded with ``seed``, restored afterwards.

    Inside, a random operation on ``device`` (dropout, ``init.uniform_``) draws from a fixed
    stream, so a test gives the same verdict on every run of one build; outside nothing changed,
    so no other test sees a different stream (pytest-randomly, xdist).
    """
    where = torch.device(device)
    if where.type == "cpu":
        with torch.random.fork_rng(devices=[]):
            torch.default_generator.manual_seed(seed)
            yield
        return
    module = torch.get_device_module(where.type)
    index = where.index if where.index is not None else getattr(module, "current_device", lambda: 0)()
    selected = getattr(module, "device", None)  # cuda, xpu: a context that makes `index` current; mps: one device
    with torch.random.fork_rng(devices=[index], device_type=where.type):
        torch.default_generator.manual_seed(seed)
        with selected(index) if selected is not None else contextlib.nullcontext():
            module.manual_seed(seed)  # seeds the current device of that type only
        yield
