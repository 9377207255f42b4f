"""Parametrisation, tolerances and the fixture directory of the spec. Nothing else lives here.

* ``--device LIST`` and ``--dtype LIST`` choose what every behaviour test runs on; a test that takes
  the ``device`` and ``dtype`` fixtures is parametrised over both, with ids like ``[cpu-float32]``.
* ``TOLERANCES`` is the one tolerance table (``rnnspec/tolerances.py``, which the rendered document
  prints too).
* Fixtures (expected tensors) live in the top-level ``fixtures/``, one folder per spec module.
* ``implementation`` is the implementation under test (``--target``, ``rnnspec/targets.py``).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from rnnspec import devices, expectations, numerics, records
from rnnspec.comparison import Tolerance
from rnnspec.measure import Implementation
from rnnspec.spec_check import SpecCheck
from rnnspec.tolerances import TOLERANCES

# Plugins of the suite's own tooling (reports, documents), each in a module of rnnspec/.
pytest_plugins: list[str] = ["rnnspec.authority", "rnnspec.document", "rnnspec.gate.plugin", "rnnspec.properties",
                             "rnnspec.targets", "rnnspec.variants"]

ROOT = Path(__file__).parent
FIXTURES = ROOT / records.FIXTURES  # one folder per chapter (rnnspec.records reads a record's from here)


def pytest_addoption(parser):
    group = parser.getgroup("rnn-spec", "PyTorch recurrent-layer spec")
    group.addoption("--device", default=None, metavar="LIST",
                    help="comma-separated devices, e.g. cpu,cuda (default: cpu and every available accelerator)")
    group.addoption("--dtype", default=None, metavar="LIST",
                    help=f"comma-separated dtypes (default: {','.join(devices.DTYPES)})")


def pytest_configure(config):
    try:
        config.spec_devices = devices.parse_devices(config.getoption("--device"))
        config.spec_dtypes = devices.parse_dtypes(config.getoption("--dtype"))
    except devices.UsageError as error:
        raise pytest.UsageError(str(error)) from None
    config.pluginmanager.register(expectations.Plugin(ROOT / "expectations"), "rnn-spec-expectations")


def pytest_report_header(config):
    return devices.describe(config.spec_devices)


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
def tolerance(dtype) -> Tolerance:
    return TOLERANCES[dtype]


@pytest.fixture
def tolerance_table() -> dict[str, Tolerance]:
    return TOLERANCES


@pytest.fixture(scope="session")
def implementation(pytestconfig) -> Implementation:
    """The implementation under test: torch.nn as installed, or what ``--target`` chose."""
    from rnnspec import targets  # a plugin (pytest_plugins): imported by pytest first, for assertion rewriting

    return targets.active(pytestconfig)


@pytest.fixture(autouse=True)
def _pinned_numerics():
    """Every test runs with TF32 off; all numerics flags are restored afterwards."""
    with numerics.pinned_numerics():
        yield


@pytest.fixture
def original_datadir(request) -> Path:
    """pytest-regressions reads expected files from fixtures/<spec module>/ (obtained files stay in tmp)."""
    return FIXTURES / request.path.stem


@pytest.fixture
def spec_check(request, implementation, device, dtype, tolerance) -> SpecCheck:
    """``spec_check(RECORD)``: measure a record and compare it with its truth and its recorded fixture."""
    return SpecCheck(request, implementation=implementation, device=device, dtype=dtype, tolerance=tolerance)
