"""After a recording run (``--regen-all`` or ``--force-regen``, CPU only): provenance and CHANGES.md.

The run's tests name the fixture files they wrote (``rnnspec/spec_check.py``: the record's
outputs, and its inputs file where that was written). At the end of the session this plugin names
this environment, today, as their recorder in ``fixtures/PROVENANCE.json``
(``rnnspec/gate/provenance.py``: other files keep their entries and dates) and adds what those
files moved against the last commit to ``fixtures/CHANGES.md`` (``rnnspec/gate/rebaseline.py``:
earlier sections are kept). Both only for the files written: re-recording one file changes one
entry and adds one short section.
"""

from __future__ import annotations

import os

import pytest

from rnnspec import spec_check
from rnnspec.gate import provenance, rebaseline
from rnnspec.gate.options import is_worker


class Recorder:
    """In a recording run: gathers the files written (from every process) and records their provenance."""

    def __init__(self, config):
        self.config = config
        self.recorded: set[str] = set()
        self.notes: list[str] = []

    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_makereport(self, item, call):
        report = yield
        if call.when == "call":
            report.rnnspec_recorded = item.stash.get(spec_check.RECORDED, [])
        return report

    def pytest_runtest_logreport(self, report):
        self.recorded.update(getattr(report, "rnnspec_recorded", None) or [])

    @pytest.hookimpl(trylast=True)
    def pytest_sessionfinish(self, session, exitstatus):
        if is_worker(self.config) or not self.recorded:
            return
        fixtures = self.config.rootpath / "fixtures"
        names = sorted({os.path.relpath(self.config.rootpath / name, fixtures) for name in self.recorded})
        try:
            provenance.update(fixtures, names)
        except provenance.ProvenanceError as error:
            self.notes.append(f"rnn-spec: provenance not updated: {error}")
            return
        self.notes.append(f"rnn-spec: recorded {len(names)} fixture file(s); "
                          f"provenance updated in {os.path.relpath(fixtures / provenance.FILE)}")
        try:
            found = rebaseline.moved(fixtures, "HEAD", only=set(names))
        except rebaseline.RebaselineError as error:
            self.notes.append(f"rnn-spec: {provenance.CHANGES} not written: {error}")
            return
        if not found.anything:
            self.notes.append(f"rnn-spec: the files recorded are as at {found.commit} (HEAD): nothing moved, "
                              f"{provenance.CHANGES} left as it was")
            return
        import torch

        path = rebaseline.add_section(fixtures, rebaseline.section(
            found, rebaseline.recording_heading(found, names, torch.__version__)))
        self.notes.append(f"rnn-spec: what moved is summarised in {os.path.relpath(path)}: "
                          f"review it with the .npz files before committing")

    def pytest_terminal_summary(self, terminalreporter, config):
        for note in self.notes:
            terminalreporter.write_line(note)
