"""Deliberately broken PyTorch: a pytest plugin that proves the spec catches broken recurrent layers.

Load it with ``-p rnnspec.breaks`` and choose one wrong implementation of the mutant zoo
(``rnnspec/zoo.py``) with ``--break NAME``::

    python -m pytest -p rnnspec.breaks --break lstm_gates_swapped --device cpu

Without ``--break`` the plugin does nothing at all. With it, ``torch._VF.rnn_tanh``, ``rnn_relu``,
``lstm`` and ``gru`` (the functions behind ``nn.RNN``, ``nn.LSTM`` and ``nn.GRU``) are replaced,
for the whole session, by the pure-torch loop of ``rnnspec/torch_loop.py`` with that entry's hook
filled; everything is restored at ``pytest_unconfigure``. ``selftest/test_breaks_are_caught.py``
shows that the spec catches such a torch even when its fixtures were regenerated from it.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest

from rnnspec.torch_loop import Break, install
from rnnspec.zoo import ZOO

_RESTORE = pytest.StashKey[Callable[[], None]]()
_ACTIVE = pytest.StashKey[Break]()


def pytest_addoption(parser):
    group = parser.getgroup("rnn-spec-breaks", "deliberately broken PyTorch (rnnspec.breaks)")
    group.addoption("--break", dest="rnnspec_break", default=None, metavar="NAME",
                    help=f"run the whole session with torch's recurrent layers broken in one way: "
                         f"{', '.join(ZOO)}")


def pytest_configure(config):
    name = config.getoption("rnnspec_break")
    if name is None:
        return
    if name not in ZOO:
        raise pytest.UsageError(f"--break: unknown break {name!r}; choose from {', '.join(ZOO)}")
    config.stash[_ACTIVE] = ZOO[name]
    config.stash[_RESTORE] = install(ZOO[name])


def pytest_unconfigure(config):
    restore = config.stash.get(_RESTORE, None)
    if restore is not None:
        restore()
        del config.stash[_RESTORE]


def pytest_report_header(config):
    brk = config.stash.get(_ACTIVE, None)
    if brk is not None:
        return [f"rnn-spec: --break {brk.name}: torch is broken on purpose ({brk.models})"]
    return None
