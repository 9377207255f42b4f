"""Every claim names its authority: why the spec may demand it of every correct PyTorch.

Each test under ``spec/`` carries exactly one of three markers:

``@pytest.mark.documented(page)``
    PyTorch's documentation states it: the formulas, the gate order, the reset-after GRU, the
    shapes, what an argument means. ``page`` is the documentation page that says so.
``@pytest.mark.derived(why)``
    it follows from documented formulas and IEEE 754 arithmetic: integers below 2^p are exact,
    values beyond the largest finite number overflow to inf, values below the smallest subnormal
    round to 0, two runs within the tolerance of one truth lie within twice it of each other.
    ``why`` says which arithmetic.
``@pytest.mark.observed(where)``
    what releases do without a promise: an exception's type and the facts its message names, a
    warning, which dtypes a device runs. ``where`` names the releases and backends it was observed
    on. An observed claim is written so that every legitimate PyTorch passes it (the facts, never
    the wording: the wording goes to the upgrade gate's report, ``rnnspec/gate/observations.py``).

A test without one, or with more than one, is a collection error naming it. The report
(``--spec-report``) and the rendered document (``--spec-doc``) show each claim's authority.
"""

from __future__ import annotations

from dataclasses import dataclass

import pytest

KINDS = ("documented", "derived", "observed")
MARKERS = {
    "documented": "documented(page): PyTorch's documentation states the claim (the page that does)",
    "derived": "derived(why): the claim follows from documented formulas and IEEE 754 arithmetic (which)",
    "observed": "observed(where): releases do this without a promise (the releases and backends seen)",
}
#: The torch pages the chapters cite.
DOCS = "https://pytorch.org/docs/stable/"
RNN = DOCS + "generated/torch.nn.RNN.html"
LSTM = DOCS + "generated/torch.nn.LSTM.html"
GRU = DOCS + "generated/torch.nn.GRU.html"
RNN_CELL = DOCS + "generated/torch.nn.RNNCell.html"
LSTM_CELL = DOCS + "generated/torch.nn.LSTMCell.html"
GRU_CELL = DOCS + "generated/torch.nn.GRUCell.html"
#: Claims about every kind of layer, or every cell, cite the three pages.
LAYERS = " ".join((RNN, LSTM, GRU))
CELLS = " ".join((RNN_CELL, LSTM_CELL, GRU_CELL))
PACK_PADDED = DOCS + "generated/torch.nn.utils.rnn.pack_padded_sequence.html"
DETACH = DOCS + "generated/torch.Tensor.detach.html"
MODULE_EVAL = DOCS + "generated/torch.nn.Module.html#torch.nn.Module.eval"
#: Where the observed claims were observed (see the README, "Releases").
RELEASES = "torch 2.5.1, 2.6.0, 2.13.0, 2.14.1 and 2.15.0 on x86-64 CPUs (AVX2; oneDNN on and off)"

AUTHORITY = pytest.StashKey["Authority"]()


@dataclass(frozen=True)
class Authority:
    kind: str  # documented, derived or observed
    source: str  # the page, the arithmetic, or where it was observed

    def __str__(self) -> str:
        return f"{self.kind}: {self.source}"


def of(item) -> Authority | None:
    """The authority of a collected test (None outside spec/)."""
    return item.stash.get(AUTHORITY, None)


def pytest_configure(config):
    for marker in MARKERS.values():
        config.addinivalue_line("markers", marker)


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(config, items):
    problems = []
    for item in items:
        if not item.nodeid.startswith("spec/"):
            continue
        found = [(kind, marker) for kind in KINDS for marker in item.iter_markers(kind)]
        if len(found) != 1 or len(found[0][1].args) != 1 or not str(found[0][1].args[0]).strip():
            problems.append(item.nodeid.split("[")[0])
            continue
        kind, marker = found[0]
        item.stash[AUTHORITY] = Authority(kind, str(marker.args[0]))
    if problems:
        raise pytest.UsageError(
            "every claim names its authority: give each of these tests exactly one of "
            "@pytest.mark.documented(page), @pytest.mark.derived(why), @pytest.mark.observed(where) "
            "(rnnspec/authority.py): " + ", ".join(sorted(set(problems))))
