"""The upgrade gate: a conformance report with drift figures, its comparison and merging.

A pytest plugin (conftest.py lists it in ``pytest_plugins``) and a command line.

In every run
    the terminal summary shows the conformance matrix compactly: for each device, one row per
    chapter and one column per dtype, each cell ``passed/total`` with the failed (F), error (E),
    xfailed (x) and skipped (s) counts, within 100 columns. The report header names the torch
    that recorded the fixtures (``fixtures/PROVENANCE.json``) beside the running one.

``--spec-report=PATH.json`` (with ``=``: pytest looks for conftest.py before it knows this option,
and would take a separate existing PATH for a test path)
    writes the JSON report (schema: ``rnnspec/report.schema.json``, versioned by ``"version"``) and
    its Markdown rendering ``PATH.md``: the run (torch, the fixtures' baseline, devices, cuDNN, the
    TF32 and determinism flags in force) and one row per test, i.e. behaviour × device × dtype ×
    other parameters, with its outcome (passed, failed, error, xfailed, xpassed, skipped, with the
    reason or message) and, for every tensor the test compared (``spec_check``), the maximum
    absolute, relative and ULP errors against the reference and against the recorded fixture
    (rnnspec/figures.py defines them). Only then are the figures computed: a run without
    ``--spec-report`` spends no time on them.

A recording run (``--regen-all`` or ``--force-regen``, CPU only)
    updates ``fixtures/PROVENANCE.json`` for the files it wrote and writes ``fixtures/CHANGES.md``,
    what moved against the last commit (see ``rebaseline-summary`` below).

The command line, ``python -m rnnspec.report COMMAND``:

``compare BEFORE.json AFTER.json [-o OUT.md]``
    what changed between two reports (say, before and after upgrading torch): new failures, new
    passes, support that appeared or disappeared (strict xfails), tests that are now skipped or
    no longer are, and drift that grew or shrank, per tensor with its figures. Exit status 1 when
    there are new failures or support disappeared, else 0.
``merge A.json B.json ... -o ALL.json``
    one report from several machines (a CPU box, a CUDA box, a Mac): ``ALL.json`` (same schema) and
    ``ALL.md``, a conformance matrix with one column per device of each machine.
``render REPORT.json [-o REPORT.md]``
    the Markdown rendering of a report (``--spec-report`` writes it already).
``validate REPORT.json ...``
    checks reports against the schema (needs the ``jsonschema`` package, in the ``test`` extra).
``rebaseline-summary [--base REV] [-o PATH]``
    a readable summary of what moved in ``fixtures/`` between git revision REV (default HEAD) and
    the working tree, per file and tensor in ULPs of the file's dtype, and the baselines of both
    (default output: ``fixtures/CHANGES.md``; ``-o -`` prints it).
"""

from __future__ import annotations

import sys

import pytest

from rnnspec import spec_check
from rnnspec.vocabulary import NO_DTYPE, cell_text, chapter_title, module_of, no_case, parse, skip_reason

# The plugin below runs in every session, so this module stays small (it is compiled on every run
# where bytecode is not cached): the report itself, its rendering, compare, merge and the summary
# of what moved live in rnnspec/reporting.py, imported only when a run or a command needs them.

WIDTH = 100  # the terminal matrix never exceeds this many columns


# ----------------------------------------------------------------------------------------------
# The plugin
# ----------------------------------------------------------------------------------------------

#: Per test item: values it observed without asserting them (an exception's wording): the report keeps them,
#: and ``compare`` shows those that changed (rnnspec/contracts.py).
OBSERVATIONS = pytest.StashKey[dict]()


@pytest.fixture
def observe(request):
    """``observe(what, value)``: keep an observed value for the upgrade gate's report, without asserting it."""
    def keep(what: str, value: str) -> None:
        request.node.stash.setdefault(OBSERVATIONS, {})[what] = value
    return keep


def pytest_addoption(parser):
    group = parser.getgroup("rnn-spec", "PyTorch recurrent-layer spec")
    group.addoption("--spec-report", default=None, metavar="PATH.json",
                    help="write the conformance report (JSON, schema rnnspec/report.schema.json) and PATH.md")
    group.addoption("--spec-report-label", default=None, metavar="TEXT",
                    help="this machine's name in merged reports (default: system-machine, e.g. linux-x86_64)")


def pytest_configure(config):
    config.pluginmanager.register(Matrix(), "rnn-spec-matrix")
    path = config.getoption("spec_report")
    recording = bool(config.getoption("regen_all", False) or config.getoption("force_regen", False))
    if path or recording:
        from rnnspec import reporting

        if path:
            config.stash[spec_check.FIGURES_WANTED] = True
        config.pluginmanager.register(reporting.Details(config, path, recording), "rnn-spec-report")


def pytest_report_header(config):
    from rnnspec import provenance

    try:
        document = provenance.read(config.rootpath / "fixtures")
    except provenance.ProvenanceError as error:
        return [f"rnn-spec: fixtures' provenance: {error}"]
    if document is None:
        return []
    import torch

    baselines = document.get("baselines", [])
    lines = [f"rnn-spec: fixtures recorded with {provenance.describe_baseline(b)}" for b in baselines]
    if any(b.get("torch") != torch.__version__ for b in baselines):
        lines.append(f"rnn-spec: running torch {torch.__version__}, not the fixtures' baseline: a failure against a "
                     f"fixture may be drift (README, 'Upgrade gate')")
    return lines


def is_worker(config) -> bool:
    return hasattr(config, "workerinput")


class Matrix:
    """Always on: prints the matrix from the outcomes the terminal reporter already tallied, so a run
    pays nothing per test for it."""

    def pytest_terminal_summary(self, terminalreporter, config):
        if is_worker(config) or config.get_verbosity() < -1:
            return
        outcomes = tallied(terminalreporter.stats)
        devices = [d.name for d in getattr(config, "spec_devices", [])]
        dtypes = list(getattr(config, "spec_dtypes", []))
        cells: dict[tuple[str, str, str], dict[str, int]] = {}
        for nodeid, outcome in outcomes.items():
            place = parse(nodeid, devices, dtypes)
            device, dtype = place.device, place.dtype
            if device is not None:
                counts = cells.setdefault((device, module_of(nodeid), dtype or NO_DTYPE), {})
                counts[outcome] = counts.get(outcome, 0) + 1
        for line, bad in matrix_lines(cells, devices, dtypes):
            terminalreporter.write_line(line, red=bad)


def tallied(stats: dict[str, list]) -> dict[str, str]:
    """nodeid -> outcome, from the terminal reporter's reports by category; an error (a failed setup
    or teardown) outranks the call's outcome. Claims with no selected dtype are left out."""
    outcomes: dict[str, str] = {}
    for category in ("passed", "xpassed", "xfailed", "skipped", "failed", "error"):
        for report in stats.get(category, []):
            nodeid = getattr(report, "nodeid", None)
            if nodeid and not (category == "skipped" and no_case(skip_reason(report))):
                outcomes[nodeid] = category
    return outcomes


def matrix_lines(cells, devices: list[str], dtypes: list[str]) -> list[tuple[str, bool]]:
    """The terminal matrix, one block per device, every line at most :data:`WIDTH` columns."""
    lines = []
    for device in devices:
        mine = {key[1:]: counts for key, counts in cells.items() if key[0] == device}
        if not mine:
            continue
        columns = [d for d in dtypes + [NO_DTYPE] if any(key[1] == d for key in mine)]
        chapters = sorted({key[0] for key in mine})
        texts = {key: cell_text(counts) for key, counts in mine.items()}
        cell = max([len(t) for t in texts.values()] + [len(c) for c in columns]) + 2
        name = max(12, min(max(len(chapter_title(c)) for c in chapters + ["all"]) + 1, WIDTH - cell * len(columns)))
        lines.append((_fit(f"rnn-spec matrix on {device}: passed/total; F failed, E error, x xfailed, s skipped"),
                      False))
        lines.append((_fit("chapter".ljust(name) + "".join(c.rjust(cell) for c in columns)), False))
        for chapter in chapters + ["all"]:
            if chapter == "all":
                row = {c: _sum([counts for key, counts in mine.items() if key[1] == c]) for c in columns}
            else:
                row = {c: mine.get((chapter, c)) for c in columns}
            text = _clip(chapter_title(chapter), name - 1).ljust(name) + "".join(
                (cell_text(row[c]) if row[c] else "-").rjust(cell) for c in columns)
            bad = any(row[c] and (row[c].get("failed") or row[c].get("error")) for c in columns)
            lines.append((_fit(text), bool(bad)))
    return lines


def _sum(counters: list[dict[str, int]]) -> dict[str, int]:
    total: dict[str, int] = {}
    for counts in counters:
        for name, n in counts.items():
            total[name] = total.get(name, 0) + n
    return total


def _clip(text: str, width: int) -> str:
    return text if len(text) <= width else text[:max(width - 1, 0)] + "…"


def _fit(line: str) -> str:
    return _clip(line.rstrip(), WIDTH)


def main(argv: list[str] | None = None) -> int:
    """``python -m rnnspec.report COMMAND``: see the module docstring and rnnspec/reporting.py."""
    from rnnspec import reporting

    return reporting.main(argv)


if __name__ == "__main__":
    sys.exit(main())
