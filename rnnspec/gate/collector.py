"""``--spec-report=PATH.json``: one row per test, written as the JSON report and its Markdown ``PATH.md``.

A row is one test, i.e. behaviour × device × dtype × other parameters: its outcome (passed,
failed, error, xfailed, xpassed, skipped, with the reason or the whole failure message), its
claim and authority, what it observed without asserting (``rnnspec/gate/observations.py``), and,
for every tensor ``spec_check`` compared, the error figures against the reference and against the
recorded fixture (``rnnspec/figures.py``; computed only in such a run). The run's environment is
``rnnspec/gate/environment.py``'s; the format ``rnnspec/gate/reports.py``'s; the Markdown
``rnnspec/gate/markdown.py``'s.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from rnnspec import authority, spec_check
from rnnspec.gate import reports
from rnnspec.gate.observations import OBSERVATIONS
from rnnspec.gate.options import is_worker
from rnnspec.vocabulary import NONE_SELECTED, module_of, phase_outcome, row_of

#: A failure message is kept whole up to this many characters.
MESSAGE_LIMIT = 4000


class Collector:
    """Gathers every test's row (on the controller, from the reports of every process) and writes the report."""

    def __init__(self, config, path: str):
        self.config = config
        self.path = Path(path)
        self.rows: dict[str, dict] = {}
        self.notes: list[str] = []
        self.started = time.time()

    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_makereport(self, item, call):
        """On the process that runs the test (an xdist worker too): attach the row's facts to the report."""
        report = yield
        if call.when == "call" or report.failed or report.skipped:
            report.rnnspec_case = case_of(item)
            report.rnnspec_comparisons = item.stash.get(spec_check.COMPARISONS, [])
            report.rnnspec_observations = item.stash.get(OBSERVATIONS, {})
        return report

    def pytest_runtest_logreport(self, report):
        row = self.rows.get(report.nodeid)
        if row is None:
            row = self.rows[report.nodeid] = {"nodeid": report.nodeid,
                                              "chapter": row_of(report.nodeid) or module_of(report.nodeid),
                                              "behaviour": report.nodeid.split("::")[-1].split("[")[0],
                                              "claim": None, "device": None, "dtype": None, "params": {},
                                              "outcome": None, "reason": None, "message": None,
                                              "duration_s": 0.0, "comparisons": [], "authority": None,
                                              "observations": {}}
        row["duration_s"] = round(row["duration_s"] + (report.duration or 0.0), 6)
        case = getattr(report, "rnnspec_case", None)
        if case:
            row.update(case)
        if getattr(report, "rnnspec_comparisons", None):
            row["comparisons"] = report.rnnspec_comparisons
        if getattr(report, "rnnspec_observations", None):
            row["observations"] = dict(report.rnnspec_observations)
        decided = phase_outcome(report)
        if decided is not None and (decided[0] == "error" or row["outcome"] is None):
            row["outcome"], row["reason"] = decided
            if report.failed:
                row["message"] = failure_message(report)

    @pytest.hookimpl(trylast=True)
    def pytest_sessionfinish(self, session, exitstatus):
        if is_worker(self.config):
            return
        from rnnspec.gate.environment import describe_run
        from rnnspec.gate.markdown import render

        report = {"format": reports.FORMAT, "version": reports.VERSION, "created": reports.now(),
                  "runs": [describe_run(self.config, exitstatus=int(exitstatus), duration=time.time() - self.started)],
                  "results": [{"run": 0, **row} for row in self.rows.values() if row["outcome"] is not None]}
        report["runs"][0]["totals"] = reports.totals(report["results"])
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.path.write_text(reports.dumps(report))
        markdown = self.path.with_suffix(".md")
        markdown.write_text(render(report))
        self.notes.append(f"rnn-spec: report written to {self.path} and {markdown}")

    def pytest_terminal_summary(self, terminalreporter, config):
        for note in self.notes:
            terminalreporter.write_line(note)


def case_of(item) -> dict:
    """The row's structured facts, from the collected item (device, dtype, other parameters, the claim)."""
    callspec = getattr(item, "callspec", None)
    params = dict(callspec.params) if callspec is not None else {}
    device, dtype = params.pop("device", None), params.pop("dtype", None)
    if dtype is not None and not isinstance(dtype, str):  # NOTSET: no selected dtype is one this claim is about
        dtype, params["dtype"] = None, NONE_SELECTED
    documented = item.function if hasattr(item, "function") else item  # a test function, or the fixtures check
    doc = (documented.__doc__ or "").strip()
    claimed = authority.of(item)
    return {"chapter": row_of(item.nodeid) or Path(str(item.path)).stem,
            "behaviour": getattr(item, "originalname", item.name),
            "claim": doc.splitlines()[0] if doc else None,
            "authority": None if claimed is None else {"kind": claimed.kind, "source": claimed.source},
            "device": None if device is None else str(device), "dtype": None if dtype is None else str(dtype),
            "params": {name: _word(value) for name, value in params.items()}}


def _word(value) -> str:
    return value if isinstance(value, str) else repr(value)[:80]


def failure_message(report) -> str:
    """The whole message of what was raised (the assertion's text, or the exception and its message)."""
    crash = getattr(report.longrepr, "reprcrash", None)
    text = crash.message if crash is not None else str(report.longrepr)
    return text if len(text) <= MESSAGE_LIMIT else text[:MESSAGE_LIMIT] + " …"
