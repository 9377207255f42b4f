"""Where a suite run's time goes, for ``bench/ratio.py --breakdown`` (a pytest plugin: ``-p breakdown``).

The run loop (every test's setup, call and teardown) is split into pytest's own work with the
fixtures (loop minus the test functions' calls) and, inside the calls, torch's module forward
calls, backward passes and module construction, the NumPy reference, fixture reads, and the rest
(the spec's own comparisons, conversions, inputs). Each part is timed where it is entered, not
again when nested. The figures go, as JSON, to the file named by ``RNNSPEC_BREAKDOWN``.
"""

from __future__ import annotations

import functools
import json
import os
import time

import pytest

PARTS = {}  # part -> seconds
_depth = [0]
_originals: list[tuple[object, str, object]] = []  # put back at the end of the session


def _timed(owner, name: str, part: str) -> None:
    original = getattr(owner, name)
    _originals.append((owner, name, original))

    @functools.wraps(original)
    def timed(*args, **kwargs):
        if _depth[0]:
            return original(*args, **kwargs)
        _depth[0] += 1
        start = time.perf_counter()
        try:
            return original(*args, **kwargs)
        finally:
            PARTS[part] = PARTS.get(part, 0.0) + time.perf_counter() - start
            _depth[0] -= 1
    setattr(owner, name, timed)


def pytest_configure(config):
    import torch  # noqa: PLC0415
    from torch import nn  # noqa: PLC0415

    from rnnspec import fixture_files, numpy_reference  # noqa: PLC0415

    _timed(nn.Module, "__call__", "torch: module calls (forward)")
    _timed(torch.Tensor, "backward", "torch: backward")
    _timed(nn.RNNBase, "__init__", "torch: module construction")
    _timed(nn.RNNCellBase, "__init__", "torch: module construction")
    _timed(numpy_reference, "forward", "NumPy reference")
    _timed(numpy_reference, "backward", "NumPy reference")
    _timed(fixture_files, "read_fixture", "fixture reads")


@pytest.hookimpl(wrapper=True)
def pytest_pyfunc_call(pyfuncitem):
    start = time.perf_counter()
    try:
        return (yield)
    finally:
        PARTS["test calls"] = PARTS.get("test calls", 0.0) + time.perf_counter() - start


@pytest.hookimpl(wrapper=True)
def pytest_runtestloop(session):
    start = time.perf_counter()
    try:
        return (yield)
    finally:
        PARTS["loop"] = time.perf_counter() - start
        PARTS["tests"] = session.testscollected


def pytest_unconfigure(config):
    while _originals:
        owner, name, original = _originals.pop()
        setattr(owner, name, original)
    path = os.environ.get("RNNSPEC_BREAKDOWN")
    if path and "loop" in PARTS:
        inner = sum(v for k, v in PARTS.items() if k not in ("loop", "tests", "test calls"))
        figures = {"tests": PARTS["tests"], "run loop": PARTS["loop"],
                   "pytest and fixtures (loop minus the calls)": PARTS["loop"] - PARTS.get("test calls", 0.0)}
        figures.update({k: v for k, v in PARTS.items() if k not in ("loop", "tests", "test calls")})
        figures["the spec's own code in the calls (the rest)"] = PARTS.get("test calls", 0.0) - inner
        with open(path, "w") as handle:
            json.dump(figures, handle)
