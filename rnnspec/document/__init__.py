"""The spec as a document: ``pytest --spec-doc DIR`` writes ``DIR/SPEC.md`` and its plots.

This package renders; it holds no prose and no table of its own. The document is built from

* the chapters (``spec/test_NN_*.py``, in order, so a new chapter appears by existing): each
  docstring as Markdown (:mod:`.markup`), each claim with its authority and its outcome per device
  × dtype in the run that rendered it (:mod:`.outcomes`), each record's expected numbers (:mod:`.tables`);
* the prose in ``docs/prose/*.md`` (the introduction, the notebook's map, how to read the document,
  the appendix), Markdown with chapter links and plots that :mod:`.render` resolves;
* the tolerance table, :data:`rnnspec.tolerances.TOLERANCES` (the one conftest.py hands the tests);
* the plots (:mod:`.plots`), drawn from the chapters' records with the optional matplotlib.

Every number a reader is shown is checked (:mod:`.numbers`). Rendering is deterministic: no dates,
timings or versions, and everything in a fixed order. The committed rendering is ``docs/SPEC.md``,
made with :data:`COMMAND`; ``selftest/test_document_is_current.py`` fails when it differs from what
the spec renders now.

Without ``--spec-doc`` this plugin adds one option and nothing else: no hook runs, no file is read,
neither torch nor matplotlib is imported.
"""

from __future__ import annotations

import difflib
import traceback
from pathlib import Path

import pytest

from rnnspec.document.outcomes import Outcomes

#: The one command that re-renders the committed document (CPU only, all four dtypes).
COMMAND = "python -m pytest --spec-doc docs --device cpu"
INSTALL = "python -m pip install -e '.[docs]'"
DOCUMENT = "SPEC.md"


def pytest_addoption(parser):
    group = parser.getgroup("rnn-spec", "PyTorch recurrent-layer spec")
    group.addoption("--spec-doc", default=None, metavar="DIR",
                    help=f"after the run, write DIR/{DOCUMENT} (the spec as a document) and its plots "
                         f"(plots need the docs extra: {INSTALL}); the committed one: {COMMAND}")


def pytest_configure(config):
    folder = config.getoption("--spec-doc")
    if folder and not hasattr(config, "workerinput"):  # under xdist only the controller writes
        config.pluginmanager.register(Renderer(config, Path(folder)), "rnn-spec-document")


class Renderer:
    """Collects each test's outcome during the run and writes the document at the end of it."""

    def __init__(self, config, folder: Path):
        self.config = config
        self.folder = folder
        self.outcomes: Outcomes | None = None
        self.written: list[str] = []
        self.problem: str | None = None

    def pytest_sessionstart(self):
        """The devices and dtypes of the run (conftest.py's pytest_configure has parsed them by now)."""
        devices = self.config.spec_devices
        self.outcomes = Outcomes([d.name for d in devices], list(self.config.spec_dtypes),
                                 {d.name: d.unavailable_because for d in devices if d.unavailable_because})

    def pytest_runtest_logreport(self, report):
        self.outcomes.add(report)

    @pytest.hookimpl(trylast=True)
    def pytest_sessionfinish(self, session):
        try:
            self.written = write(self.config.rootpath, self.folder, self.outcomes)
        except (Exception, pytest.fail.Exception):  # the run's results stand; the failure to render is reported
            self.problem = traceback.format_exc()
            session.exitstatus = pytest.ExitCode.TESTS_FAILED

    def pytest_terminal_summary(self, terminalreporter):
        if self.problem:
            terminalreporter.write_line(f"rnn-spec: the document was not rendered: {self.problem}", red=True)
            return
        terminalreporter.write_line(f"rnn-spec: wrote {', '.join(self.written)}")
        if not any(name.endswith(".svg") for name in self.written):
            terminalreporter.write_line(f"rnn-spec: plots not drawn: matplotlib is not installed ({INSTALL}); "
                                        f"{DOCUMENT} links them and prints their numbers")


def text(root: Path, outcomes: Outcomes, fixtures: Path | None = None) -> str:
    """The document's Markdown, rendered from the repository at ``root`` (its fixtures, or ``fixtures``)."""
    from rnnspec.document import plots
    from rnnspec.document.chapters import chapters
    from rnnspec.document.render import render
    from rnnspec.tolerances import TOLERANCES

    fixtures = fixtures or root / "fixtures"
    chapter_list = chapters(root)
    return render(root, chapter_list, fixtures, outcomes, TOLERANCES, plots.plots(fixtures), COMMAND, INSTALL)


def write(root: Path, folder: Path, outcomes: Outcomes) -> list[str]:
    """Render the document into ``folder`` (plots too where matplotlib is installed); the files written."""
    from rnnspec.document import plots

    folder.mkdir(parents=True, exist_ok=True)
    (folder / DOCUMENT).write_text(text(root, outcomes), encoding="utf-8")
    written = [str(folder / DOCUMENT)]
    if plots.matplotlib_version() is not None:
        written += [str(plots.draw(figure, folder)) for figure in plots.plots(root / "fixtures")]
    return written


def difference(committed: str, rendered: str, *, context: int = 2, limit: int = 60) -> str | None:
    """None when the texts are equal; else the sections that differ and a unified diff (cut to ``limit`` lines)."""
    if committed == rendered:
        return None
    old, new = committed.splitlines(), rendered.splitlines()
    sections = set()
    for tag, a0, a1, b0, b1 in difflib.SequenceMatcher(a=old, b=new, autojunk=False).get_opcodes():
        if tag != "equal":
            sections.add(_section_at(new, b0) if b1 > b0 else _section_at(old, a0))
    diff = list(difflib.unified_diff(old, new, "committed", "rendered now", n=context, lineterm=""))
    if committed.endswith("\n") != rendered.endswith("\n"):
        diff.append("(the files differ in their final newline)")
    more = f"\n... ({len(diff) - limit} more diff lines)" if len(diff) > limit else ""
    return f"sections that differ: {'; '.join(sorted(sections))}\n" + "\n".join(diff[:limit]) + more


def _section_at(lines: list[str], line: int) -> str:
    """The ``## `` heading above ``line`` (the preamble before the first one)."""
    title = "the preamble"
    for i, text in enumerate(lines[:line + 1]):
        if text.startswith("## "):
            title = text[3:].strip()
    return title
