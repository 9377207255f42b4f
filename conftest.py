"""Parametrisation, tolerances and the fixture directory of the spec. Nothing else lives here.

* ``--device LIST`` and ``--dtype LIST`` choose what every behaviour test runs on; a test that takes
  the ``device`` and ``dtype`` fixtures is parametrised over both, with ids like ``[cpu-float32]``.
* ``TOLERANCES`` is the one tolerance table.
* Fixtures (expected tensors) live in the top-level ``fixtures/``, one folder per spec module.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from rnnspec import expectations, platform, records
from rnnspec.comparison import Tolerance
from rnnspec.recorded import SpecCheck

# Plugins of the suite's own tooling (reports, documents), each in a module of rnnspec/.
pytest_plugins: list[str] = ["rnnspec.authority", "rnnspec.document", "rnnspec.report", "rnnspec.targets", "rnnspec.variants"]

ROOT = Path(__file__).parent
FIXTURES = ROOT / records.FIXTURES  # one folder per chapter (rnnspec.records reads a record's from here)

# The tolerance table: how far a result computed in each dtype may lie from its truth (the float64
# closed form or NumPy reference, rounded to that dtype), and from the recorded fixture.
# Every comparison in the suite takes its numbers from here; "resolution" is the dtype's smallest
# subnormal number, the atol of elementwise-relative comparisons (see rnnspec/comparison.py).
# The step-by-step envelope's factor: 2 × the emulated run's share of the row (rnnspec/comparison.py).
ENVELOPE = 2.0

TOLERANCES = {
    # torch.testing.assert_close's float64 default. The spec's float64 results agree with the
    # reference to about 1e-15 relative; 1e-7 leaves room for other devices' summation orders.
    "float64": Tolerance("float64", rtol=1e-7, atol=1e-7, resolution=2.0**-1074,
                         source="torch.testing.assert_close default"),
    # assert_close's float32 default (about 11 units of roundoff, 2^-24 each). Measured worst on
    # CPU: 2.4e-7 relative (tanh RNN, 20 steps). TF32 is pinned off, so cuDNN must meet it too.
    "float32": Tolerance("float32", rtol=1.3e-6, atol=1e-5, resolution=2.0**-149,
                         source="torch.testing.assert_close default"),
    # assert_close's bfloat16 default (2^-6: four units of roundoff of an 8-bit significand), for a
    # kernel that keeps float32 intermediates (oneDNN's LSTM where the CPU serves bfloat16, cuDNN).
    # A step-by-step computation rounds every operation to 8 bits and its errors add up over the
    # steps (the 20-step LSTM's ∂x lands 6.2 % from the truth on CPUs where oneDNN does not serve
    # bfloat16): where a result lies outside the row, the row widens to ENVELOPE times the share of
    # it the reference computed step by step in bfloat16 uses (rnnspec/stepwise.py,
    # rnnspec/comparison.py).
    "bfloat16": Tolerance("bfloat16", rtol=1.6e-2, atol=1e-5, resolution=2.0**-133, envelope=ENVELOPE,
                          source="torch.testing.assert_close default"),
    # PyTorch's own RNN tests (dtype2prec: half 1e-2). assert_close's one-operation default (1e-3,
    # one unit of roundoff 2^-11 is 4.9e-4) is too tight for a 20-step recurrence: each step adds
    # roundoff, and the LSTM's ∂x_1 lands 2.9e-3 from the float64 truth on CPU. The same step-by-step
    # envelope as bfloat16's (float16's step-by-step runs measured so far keep to the row).
    "float16": Tolerance("float16", rtol=1e-2, atol=1e-5, resolution=2.0**-24, envelope=ENVELOPE,
                         source="PyTorch's RNN tests (dtype2prec)"),
}


def pytest_addoption(parser):
    group = parser.getgroup("rnn-spec", "PyTorch recurrent-layer spec")
    group.addoption("--device", default=None, metavar="LIST",
                    help="comma-separated devices, e.g. cpu,cuda (default: cpu and every available accelerator)")
    group.addoption("--dtype", default=None, metavar="LIST",
                    help=f"comma-separated dtypes (default: {','.join(platform.DTYPES)})")


def pytest_configure(config):
    try:
        config.spec_devices = platform.parse_devices(config.getoption("--device"))
        config.spec_dtypes = platform.parse_dtypes(config.getoption("--dtype"))
    except platform.UsageError as error:
        raise pytest.UsageError(str(error)) from None
    config.pluginmanager.register(expectations.Plugin(ROOT / "expectations"), "rnn-spec-expectations")


def pytest_report_header(config):
    return platform.describe(config.spec_devices)


def pytest_generate_tests(metafunc):
    """Parametrise every test that takes ``device`` and ``dtype`` over the chosen ones: ``[cpu-float32]``."""
    if "device" in metafunc.fixturenames:
        params = [pytest.param(d.name, id=d.name,
                               marks=[pytest.mark.skip(reason=d.unavailable_because)] if d.unavailable_because else [])
                  for d in metafunc.config.spec_devices]
        metafunc.parametrize("device", params)
    if "dtype" in metafunc.fixturenames:
        dtypes = metafunc.config.spec_dtypes
        only = metafunc.definition.get_closest_marker("dtypes")
        if only is not None:  # a claim about particular dtypes runs where those dtypes are selected
            dtypes = [d for d in dtypes if d in only.args]
        metafunc.parametrize("dtype", dtypes, ids=str)


@pytest.fixture
def torch_dtype(dtype) -> torch.dtype:
    return platform.DTYPES[dtype]


@pytest.fixture
def tolerance(dtype) -> Tolerance:
    return TOLERANCES[dtype]


@pytest.fixture
def tolerance_table() -> dict[str, Tolerance]:
    return TOLERANCES


@pytest.fixture(autouse=True)
def _pinned_numerics():
    """Every test runs with TF32 off; all numerics flags are restored afterwards."""
    with platform.pinned_numerics():
        yield


@pytest.fixture
def original_datadir(request) -> Path:
    """pytest-regressions reads expected files from fixtures/<spec module>/ (obtained files stay in tmp)."""
    return FIXTURES / request.path.stem


@pytest.fixture
def spec_check(request, device, dtype, tolerance) -> SpecCheck:
    """``spec_check(RECORD)``: measure a record and compare it with its truth and its recorded fixture."""
    return SpecCheck(request, device=device, dtype=dtype, tolerance=tolerance)
