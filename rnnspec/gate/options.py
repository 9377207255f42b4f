"""The upgrade gate's command-line options, and what they say about a session.

``--spec-report=PATH.json`` (with ``=``: pytest looks for conftest.py before it knows this option,
and would take a separate existing PATH for a test path) asks for the report;
``--spec-report-label=TEXT`` names this machine in merged reports. A recording run is one with
pytest-regressions' ``--regen-all`` or ``--force-regen``; an xdist worker leaves the summaries to
the controller.
"""

from __future__ import annotations


def pytest_addoption(parser):
    group = parser.getgroup("rnn-spec", "PyTorch recurrent-layer spec")
    group.addoption("--spec-report", default=None, metavar="PATH.json",
                    help="write the conformance report (JSON, schema rnnspec/gate/report.schema.json) and PATH.md")
    group.addoption("--spec-report-label", default=None, metavar="TEXT",
                    help="this run's name in merged reports (default: system-machine, e.g. linux-x86_64)")


def report_path(config) -> str | None:
    return config.getoption("spec_report")


def recording(config) -> bool:
    """A recording run: pytest-regressions writes fixture files (``--regen-all``, ``--force-regen``)."""
    return bool(config.getoption("regen_all", False) or config.getoption("force_regen", False))


def is_worker(config) -> bool:
    """An xdist worker: it runs tests; the controller writes the summaries."""
    return hasattr(config, "workerinput")
