"""The upgrade gate's pytest plugin (conftest.py lists it in ``pytest_plugins``): what each run does.

In every run
    the terminal summary ends with the conformance matrix (``rnnspec/gate/matrix.py``); the
    report header names the torch that recorded the fixtures (``fixtures/PROVENANCE.json``)
    beside the running one; and the fixtures folder is checked (``rnnspec/gate/integrity.py``):
    an orphan, a stray file or a file changed since its recording fails the run, naming the file
    and the fix. The ``observe`` fixture keeps what a test saw without asserting it
    (``rnnspec/gate/observations.py``).
``--spec-report=PATH.json``
    the collector (``rnnspec/gate/collector.py``) writes the JSON report and its Markdown
    rendering ``PATH.md``, with the error figures of every compared tensor (computed only then).
A recording run (``--regen-all`` or ``--force-regen``, CPU only)
    ``rnnspec/gate/recording.py`` names this environment in ``fixtures/PROVENANCE.json`` for the
    files the run wrote, and adds what they moved to ``fixtures/CHANGES.md``.

The commands that read reports are ``python -m rnnspec.gate COMMAND`` (``rnnspec/gate/__main__.py``).
This module and those it imports stay small: they are loaded by every run; the report's modules
are imported only when a run asks for them.
"""

from __future__ import annotations

from rnnspec import spec_check
from rnnspec.gate import integrity, options, provenance
from rnnspec.gate.matrix import Matrix
from rnnspec.gate.observations import observe  # noqa: F401 (the fixture, registered with this plugin)
from rnnspec.gate.options import pytest_addoption  # noqa: F401 (the hook, registered with this plugin)


def pytest_configure(config):
    config.pluginmanager.register(Matrix(), "rnn-spec-matrix")
    recording = options.recording(config)
    if not recording:  # a recording run rewrites the provenance the check holds the files to
        config.pluginmanager.register(integrity.Check(), "rnn-spec-fixtures")
    path = options.report_path(config)
    if path:
        from rnnspec.gate.collector import Collector

        config.stash[spec_check.FIGURES_WANTED] = True
        config.pluginmanager.register(Collector(config, path), "rnn-spec-report")
    if recording:
        from rnnspec.gate.recording import Recorder

        config.pluginmanager.register(Recorder(config), "rnn-spec-recording")


def pytest_report_header(config):
    try:
        document = provenance.read(config.rootpath / "fixtures")
    except provenance.ProvenanceError as error:
        return [f"rnn-spec: fixtures' provenance: {error}"]
    if document is None:
        return []
    import torch

    baselines = document.get("baselines", [])
    lines = [f"rnn-spec: fixtures recorded with {provenance.describe_baseline(b)}" for b in baselines]
    if len(baselines) > 1:  # say why there are several, and what "declared" means
        lines.append(f"rnn-spec: ({len(baselines)} baselines in fixtures/PROVENANCE.json, each with the files it "
                     f"recorded; 'declared': named there by hand, not by a recording run, with the reason)")
    if any(b.get("torch") != torch.__version__ for b in baselines):
        lines.append(f"rnn-spec: running torch {torch.__version__}, not the fixtures' baseline: a failure against a "
                     f"fixture may be drift (README, 'Upgrade gate')")
    return lines
