"""The committed document, docs/SPEC.md and its plots, is what the spec renders today.

As ONNX does for its generated operator documentation, the document is rendered again here and
compared with the committed one; when they differ the test fails with the sections that differ, a
diff, and the command that re-renders it (``python -m pytest --spec-doc docs --device cpu``).

What is compared, and how exactly:

* **The Markdown text, byte for byte**, against the canonical rendering: ``pytest --spec-doc``
  over spec/ on CPU in all four dtypes, run in-process here (without pytest-randomly; outcomes do
  not depend on the order anyway). The text holds every chapter's docstring, every claim with its
  outcome per dtype in that run, every expected number (each fixture exactly, the float64
  reference to 10 significant digits, where NumPy builds agree), the tolerance table, and the
  numbers each plot is drawn from (5 digits). It holds no date, version or timing, and needs no
  matplotlib, so CI (which installs only ``.[test]``) checks all of it.
* **The plot files, byte for byte**, where the installed matplotlib is the version that drew the
  committed files (each SVG names it); elsewhere that comparison is skipped with the reason, and
  the plots' numbers are still compared through the Markdown. Every plot must be committed.
* **That a change shows**: a chapter's docstring, a truth's value or a fixture's value changed
  without re-rendering makes the rendering differ from the document rendered before the change.

And what a reader needs of it: every table readable at 100 columns, no RST left unrendered, only
files a reader can open cited, and each plot readable at 800 px with its edge markers on the edges.
Its numbers are checked by ``selftest/test_document_numbers.py``.
"""

from __future__ import annotations

import dataclasses
import glob
import importlib
import re
import shutil
import subprocess
import sys
import unicodedata
from pathlib import Path

import numpy as np
import pytest

from rnnspec import document
from rnnspec.devices import DTYPES
from rnnspec.document import plots

pytest_plugins = ["pytester"]

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
RERENDER = (f"re-render it with `{document.INSTALL} && {document.COMMAND}` (the plots need matplotlib; "
            f"the text does not), review `git diff docs/`, and commit it with the change")


def committed_text() -> str:
    path = DOCS / document.DOCUMENT
    return path.read_text(encoding="utf-8") if path.is_file() else ""


def test_committed_markdown_is_what_the_spec_renders_on_cpu(pytester):
    """docs/SPEC.md equals, byte for byte, what `pytest --spec-doc DIR --device cpu` writes now."""
    folder = pytester.path / "rendered"
    result = pytester.runpytest_inprocess(
        str(ROOT / "spec"), "--rootdir", str(ROOT), "-c", str(ROOT / "pyproject.toml"), "-p", "no:randomly",
        "-p", "no:cacheprovider", "-q", "--device", "cpu", "--spec-doc", str(folder))
    rendered = folder / document.DOCUMENT
    assert rendered.is_file(), "the spec run wrote no document:\n" + "\n".join(result.outlines[-30:])
    problem = document.difference(committed_text(), rendered.read_text(encoding="utf-8"))
    assert problem is None, f"docs/{document.DOCUMENT} is stale: {RERENDER}.\n{problem}"


def test_every_plot_is_committed_and_linked_from_the_document():
    """Each plot of rnnspec.plots has its file under docs/ and an image link in SPEC.md."""
    text = committed_text()
    for figure in plots.plots(ROOT / "fixtures"):
        assert (DOCS / figure.filename).is_file(), f"docs/{figure.filename} is missing: {RERENDER}"
        linked = f"]({figure.filename})" in text
        assert linked, f"docs/{document.DOCUMENT} does not link {figure.filename}: {RERENDER}"


def test_committed_plots_are_what_matplotlib_draws_now(tmp_path):
    """Each committed SVG equals, byte for byte, the plot drawn now (where the same matplotlib is installed)."""
    installed = plots.matplotlib_version()
    if installed is None:
        pytest.skip(f"matplotlib is not installed ({document.INSTALL}): plot files are not compared; "
                    f"the numbers they are drawn from are, in SPEC.md")
    figures = plots.plots(ROOT / "fixtures")
    drawn_by = {figure.filename: drawing_version(DOCS / figure.filename) for figure in figures}
    if set(drawn_by.values()) != {installed}:
        pytest.skip(f"the committed plots were drawn by matplotlib {sorted(set(map(str, drawn_by.values())))}, "
                    f"{installed} is installed: byte comparison is meaningful only for the same version")
    stale = [figure.filename for figure in figures
             if plots.draw(figure, tmp_path).read_bytes() != (DOCS / figure.filename).read_bytes()]
    assert not stale, f"plots differ from what the spec draws now: {stale}; {RERENDER}"


def drawing_version(path: Path) -> str | None:
    """The matplotlib version an SVG names in its metadata (its Creator), or None."""
    if not path.is_file():
        return None
    match = re.search(r"Matplotlib v([^\s,<]+)", path.read_text(encoding="utf-8", errors="replace"))
    return match.group(1) if match else None


# --- The check can fail: a change without re-rendering shows ----------------------------------

@pytest.fixture
def render():
    """Render the document's text from the chapters as they are now (outcomes: none, the same each time)."""
    outcomes = document.Outcomes(["cpu"], list(DTYPES))

    def rendered(fixtures: Path = ROOT / "fixtures") -> str:
        return document.text(ROOT, outcomes, fixtures)

    return rendered


def seed_chapter(name: str):
    return importlib.import_module(f"spec.{name}")


def test_a_changed_chapter_docstring_makes_the_document_stale(render, monkeypatch):
    """Adding a sentence to chapter 3's docstring changes chapter 3 of the rendering."""
    before = render()
    chapter = seed_chapter("test_03_vanishing_gradient")
    monkeypatch.setattr(chapter, "__doc__", chapter.__doc__ + "\nA sentence added without re-rendering.\n")
    problem = document.difference(before, render())
    assert problem is not None and "Chapter 3. Vanishing gradients" in problem.splitlines()[0], problem


def test_a_changed_truth_makes_the_document_stale(render, monkeypatch):
    """Moving one value of chapter 2's closed form by one part in a million changes chapter 2's table."""
    before = render()
    record = seed_chapter("test_02_exploding_gradient").FIVE_STEPS
    truth = record.truth()
    key = next(iter(truth.values))
    moved = dataclasses.replace(truth, values={**truth.values, key: truth.values[key] * (1 + 1e-6)})
    monkeypatch.setitem(record.__dict__, "_truth", moved)  # the record's memoised truth
    problem = document.difference(before, render())
    assert problem is not None and "Chapter 2. Exploding gradients" in problem.splitlines()[0], problem


def test_a_changed_fixture_makes_the_document_stale(render, tmp_path):
    """One float16 value of chapter 3's fixture moved by one unit changes chapter 3 and the dtype plot's numbers."""
    copy = tmp_path / "fixtures"
    shutil.copytree(ROOT / "fixtures", copy)
    before = render(copy)
    path = copy / "test_03_vanishing_gradient" / "tanh_rnn_weights_half_twenty_steps-float16.npz"
    with np.load(path, allow_pickle=False) as archive:
        arrays = {key: archive[key] for key in archive.files}
    grad = arrays["grad_input"].copy()
    grad[8] = np.nextafter(np.float16(grad[8]), np.float16(1))  # t = 9: a float16 subnormal, one unit up
    arrays["grad_input"] = grad
    np.savez_compressed(path, **arrays)
    problem = document.difference(before, render(copy))
    assert problem is not None, "a changed fixture left the document unchanged"
    sections = problem.splitlines()[0]
    assert "Chapter 3. Vanishing gradients" in sections and "Introduction" in sections, sections


def test_without_the_option_the_plugin_costs_nothing(pytestconfig):
    """Without --spec-doc no hook of the document is registered, and importing it loads neither plots nor matplotlib."""
    if pytestconfig.getoption("--spec-doc"):
        pytest.skip("this run renders the document")
    assert pytestconfig.pluginmanager.get_plugin("rnn-spec-document") is None
    probe = ("import sys, rnnspec.document; "
             "print(sorted(m for m in ('matplotlib', 'rnnspec.document.plots', 'torch') if m in sys.modules))")
    loaded = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True, cwd=ROOT).stdout
    assert loaded.strip() == "[]", f"importing rnnspec.document loads {loaded.strip()}"


# --- What a reader needs of it -----------------------------------------------------------------

#: The widest a table line may be, in columns (a wide character, such as an emoji, takes two).
TABLE_COLUMNS = 100


def columns(line: str) -> int:
    return sum(2 if unicodedata.east_asian_width(c) in "WF" else 1 for c in line)


def test_every_table_is_readable_at_100_columns():
    """No table line of docs/SPEC.md is wider than 100 columns: long text stands in lists, not in cells."""
    wide = [(number, columns(line)) for number, line in enumerate(committed_text().splitlines(), start=1)
            if line.startswith("|") and columns(line) > TABLE_COLUMNS]
    assert not wide, f"table lines wider than {TABLE_COLUMNS} columns (line, width): {wide[:10]}"


def test_no_markup_is_left_unrendered():
    """Code blocks, math roles and RST literals of the chapters all come out as Markdown (an RST link ends in `_
    before a space or punctuation; Markdown code may start with an underscore: `_cudnn_rnn_backward`)."""
    text = committed_text()
    for leftover in (r"\.\. code-block::", ":math:`", r"(?<!`)``(?!`)", r"`__?(?!\w)", r"^:(derived|parameters|configuration):"):
        found = re.search(leftover, text, re.M)
        assert not found, f"docs/{document.DOCUMENT} shows RST markup {found.group(0)!r} literally"


def test_the_document_cites_only_files_a_reader_can_open():
    """Every repository path the document names (in backticks or as a link) exists; a pattern matches a file."""
    text = committed_text()
    cited = set(re.findall(r"`((?:[\w.<>-]+/)+[\w.<>{}-]+\.(?:py|toml|json|md|npz|txt|svg))`", text))
    cited |= {link for link in re.findall(r"\]\(([^)#:\s]+)\)", text)}
    missing = [path for path in sorted(cited)
               if not glob.glob(str(ROOT / re.sub(r"<[^>]+>|\{[^}]+\}", "*", path)))
               and not (DOCS / path).exists()]
    assert not missing, f"docs/{document.DOCUMENT} cites files not in the repository: {missing}"


@pytest.fixture(scope="module")
def drawn():
    if plots.matplotlib_version() is None:
        pytest.skip(f"matplotlib is not installed ({document.INSTALL}): the plots are not drawn")
    return {plot.name: (plot, plots.figure(plot)) for plot in plots.plots(ROOT / "fixtures")}


def test_each_plot_is_readable_at_800_px(drawn):
    """Shown 800 px wide, a plot's smallest text (legend entries included) is at least 10 px high."""
    for name, (plot, figure) in drawn.items():
        px, text = plots.smallest_text_px(figure, 800)
        assert px >= plots.SMALLEST_TEXT_PX, f"{name}: {text!r} is {px:.1f} px at 800 px wide"
        assert plot.size[0] * plots.DPI == 800, f"{name} is drawn {plot.size[0] * plots.DPI} px wide"


def test_inf_and_zero_markers_sit_on_the_edges(drawn):
    """What a log axis cannot show is drawn where the caption says: inf on the top edge, 0 on the bottom edge."""
    plot, figure = drawn["dtype_limits"]
    placed = {}
    for ax in figure.axes:
        for line in ax.get_lines():
            if line.get_marker() in ("^", "v") and line.get_transform() == ax.get_xaxis_transform():
                placed[line.get_marker()] = set(map(float, line.get_ydata()))
    assert placed == {"^": {1.0}, "v": {0.0}}, placed
    assert "▲ on the top edge" in plot.caption and "▼ on the bottom edge" in plot.caption
