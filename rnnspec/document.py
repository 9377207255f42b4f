"""The spec as a document: ``pytest --spec-doc DIR`` writes ``DIR/SPEC.md`` and its plots.

The document is built from the chapters themselves (``spec/test_NN_*.py``, in order, so a new
chapter appears by existing): each chapter's docstring (its law, formula and derivation, with the
RST-ish ``:math:`…``` roles turned into Markdown's ``$…$``), its claims (the tests' one-line
docstrings), its expected numbers (every record of its ``TRUTHS``: the float64 reference beside
the recorded fixture of each dtype) and the outcome of each claim per device × dtype in the run
that rendered it. An introduction written here frames the chapters: why gradients explode or
vanish, and why LSTM helps. The plots are drawn by :mod:`rnnspec.plots` (with the optional
matplotlib) and linked from the text; the numbers behind each plot are printed under it.

Chapter docstrings may use: ``:math:`…``` roles, ``$$ … $$`` display blocks (on their own lines
or inline), double-backtick literals, RST links (`` `text <url>`_ ``), ``*emphasis*`` and
``**bold**``, bullet lists (``* `` or ``- ``, continued by indented lines), RST simple tables
(columns under runs of ``=``), section titles underlined with ``---``, and literal blocks after
``::``. A short opening phrase ending in a full stop ("Backward.", "float16.") is set in bold.

Rendering is deterministic: no dates, timings or versions, and everything in a fixed order. The
committed rendering is ``docs/SPEC.md``, made with :data:`COMMAND`;
``selftest/test_document_is_current.py`` fails when it differs from what the spec renders now.

Without ``--spec-doc`` this plugin adds one option and nothing else: no hook runs, no file is read,
matplotlib is never imported.
"""

from __future__ import annotations

import difflib
import hashlib
import importlib
import inspect
import math
import re
import sys
import traceback
from pathlib import Path

import numpy as np
import pytest

from rnnspec import authority
from rnnspec.vocabulary import SEVERITY, chapter_of, parse, phase_outcome

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
            self.written = write(self.config.rootpath, self.folder, self.outcomes, tolerances(self.config))
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


def tolerances(config) -> dict:
    """The tolerance table of the suite's conftest.py (the plugin that defines ``TOLERANCES``)."""
    for plugin in config.pluginmanager.get_plugins():
        table = getattr(plugin, "TOLERANCES", None)
        if isinstance(table, dict):
            return table
    raise LookupError("no conftest.py with a TOLERANCES table is loaded")


# --- Outcomes ----------------------------------------------------------------------------------

SYMBOL = {"passed": "✅", "skipped": "⏭", "xfailed": "⚠️", "xpassed": "❗", "failed": "❌", "error": "❌"}


class Outcomes:
    """Each chapter test's outcome, keyed by chapter, test function and (device, dtype).

    A report names its device and dtype only in its id (``test_x[cpu-float32-n5]``): the words of
    the id that are a device or a dtype of the run are taken as such.
    """

    def __init__(self, devices: list[str], dtypes: list[str], unavailable: dict[str, str] | None = None):
        self.devices, self.dtypes = list(devices), list(dtypes)
        self.unavailable = dict(unavailable or {})
        self.tests: dict[str, str] = {}  # nodeid -> its outcome so far
        self.where: dict[str, tuple] = {}  # nodeid -> (chapter, test function, device, dtype)

    def add(self, report) -> None:
        decided = phase_outcome(report)
        if decided and chapter_of(report.nodeid):
            word, known = decided[0], self.tests.get(report.nodeid)
            if known is None or SEVERITY[word] > SEVERITY[known]:
                self.tests[report.nodeid] = word
                place = parse(report.nodeid, self.devices, self.dtypes)
                self.where[report.nodeid] = (place.chapter, place.test, place.device, place.dtype)

    def counts(self, chapter: str, test: str | None, device: str | None, dtype: str | None) -> dict[str, int]:
        """How many parametrisations of ``test`` (or of every test of ``chapter``) ended in each outcome."""
        found: dict[str, int] = {}
        for nodeid, word in self.tests.items():
            where = self.where[nodeid]
            if where[:2] == (chapter, test or where[1]) and where[2:] == (device, dtype):
                found[word] = found.get(word, 0) + 1
        return found

    def configurations(self, chapter: str | None = None) -> list[tuple[str | None, str | None]]:
        """The (device, dtype) columns of a table: those the chapter's (or the run's) tests ran with, in the
        order of ``--device`` and ``--dtype``; a test without a dtype (or device) gets a column of its own.
        Every device × dtype of the run when no test ran."""
        seen = {where[2:] for where in self.where.values() if chapter is None or where[0] == chapter}
        grid = [(d, t) for d in self.devices for t in self.dtypes]
        if not seen:
            return grid
        order = [(d, t) for d in [*self.devices, None] for t in [*self.dtypes, None]]
        return [config for config in order if config in seen]

    def tests_of(self, chapter: str) -> list[str]:
        return sorted({where[1] for where in self.where.values() if where[0] == chapter})


def column(config: tuple[str | None, str | None]) -> str:
    """A table header: ``cpu float32``; ``cpu, dtype-free`` for tests without a dtype; ``device-free``."""
    device, dtype = config
    if device is None:
        return dtype or "device-free"
    return f"{device} {dtype}" if dtype else f"{device}, dtype-free"


def cell(counts: dict[str, int], empty: str = "not run") -> str:
    """One table cell: ``✅ 3`` when three parametrisations passed, ``❌ 1 failed, 2 passed`` otherwise,
    ``empty`` when none ran there."""
    if not counts:
        return empty
    if set(counts) == {"passed"}:
        return f"✅ {counts['passed']}"
    worst = max(counts, key=SEVERITY.get)
    parts = ", ".join(f"{counts[word]} {word}" for word in sorted(counts, key=lambda w: -SEVERITY[w]))
    return f"{SYMBOL[worst]} {parts}"


# --- Chapters ----------------------------------------------------------------------------------

class Chapter:
    """One spec module: its name, its docstring, its claims and its declared truths."""

    def __init__(self, module):
        self.module = module
        self.stem = module.__name__.rsplit(".", 1)[-1]
        self.title, self.body = markdown_of_docstring(module.__doc__ or self.stem)

    @property
    def anchor(self) -> str:
        return slug(self.title)

    def claims(self) -> list[tuple[str, str, tuple[str, ...] | None, str]]:
        """(test name, one-line docstring, dtypes it is restricted to or None, its authority), in source order."""
        tests = [(name, obj) for name, obj in vars(self.module).items()
                 if name.startswith("test") and inspect.isfunction(obj)]
        tests.sort(key=lambda item: item[1].__code__.co_firstlineno)
        claims = []
        for name, function in tests:
            doc = inspect.getdoc(function) or ""
            marks = getattr(function, "pytestmark", [])
            only = [mark for mark in marks if mark.name == "dtypes"]
            claimed = [mark for mark in marks if mark.name in authority.KINDS]
            claims.append((name, " ".join(doc.split("\n\n")[0].split()), tuple(only[0].args) if only else None,
                           authority_text(claimed[0].name, str(claimed[0].args[0])) if claimed else ""))
        return claims


def chapters(root: Path) -> list[Chapter]:
    """Every chapter under ``root/spec`` in file-name order, imported as ``spec.<module>``."""
    if str(root) not in sys.path:
        sys.path.insert(0, str(root))
    return [Chapter(importlib.import_module(f"spec.{path.stem}"))
            for path in sorted((root / "spec").glob("test_[0-9][0-9]_*.py"))]


# --- From the chapters' RST-ish docstrings to Markdown -----------------------------------------

def markdown_of_docstring(text: str) -> tuple[str, str]:
    """(title, body) of a chapter docstring in Markdown: ``:math:`x``` → ``$x$``, ``$$…$$`` on their own lines,
    ````code```` → ```code```, RST links → Markdown links, wrapped paragraphs joined into one line."""
    text = inspect.cleandoc(text)
    title, _, rest = text.partition("\n")
    displays: list[str] = []

    def hold(match):
        displays.append(inspect.cleandoc(match.group(1)).strip())
        return f"\n\n\0{len(displays) - 1}\0\n\n"

    rest = re.sub(r"\$\$(.+?)\$\$", hold, rest, flags=re.S)
    blocks, literal_next = [], False
    for block in re.split(r"\n[ \t]*\n", rest.strip()):
        if not block.strip():
            continue
        held = re.fullmatch(r"\s*\0(\d+)\0\s*", block)
        lines = block.split("\n")
        if held:
            blocks.append("$$\n" + displays[int(held.group(1))] + "\n$$")
        elif literal_next and block.startswith((" ", "\t")):
            blocks.append("```\n" + inspect.cleandoc(block) + "\n```")
            continue
        elif re.fullmatch(r"=+( +=+)+", lines[0].strip()) and len(lines) >= 3:
            blocks.append(simple_table(lines))
        elif len(lines) == 2 and re.fullmatch(r"[-=~^]{3,}", lines[1].strip()):
            blocks.append(f"#### {inline(lines[0].strip())}")
        else:  # a paragraph, list items (a line opening with "* ", "- " or "1. "), or a paragraph then items
            paragraph, items = [], []
            for i, line in enumerate(lines):
                if re.match(r"\s*([*-] (?!\d)|\d+\. )", line) and (items or i == 0 or not line[0].isdigit()):
                    items.append(line.strip())
                elif items:
                    items[-1] += " " + line.strip()
                else:
                    paragraph.append(line.strip())
            text = inline(" ".join(paragraph))
            literal_next = not items and text.endswith("::")
            parts = [lead_in(text[:-1] if literal_next else text)] if paragraph else []
            if items:
                parts.append("\n".join(inline(item) for item in items))
            blocks.extend(parts)
            continue
        literal_next = False
    return inline(title.strip().rstrip(".")), "\n\n".join(blocks)


def simple_table(lines: list[str]) -> str:
    """An RST simple table (columns under runs of ``=``, the header above the second border) as Markdown."""
    border = lines[0]
    spans = [match.span() for match in re.finditer(r"=+", border)]
    starts = [start for start, _ in spans]

    def cells(line: str) -> list[str]:
        ends = starts[1:] + [max(len(line), len(border))]
        return [cell_text(inline(line[a:b].strip())) for a, b in zip(starts, ends)]

    borders = [i for i, line in enumerate(lines) if re.fullmatch(r"=+( +=+)+", line.strip())]
    header_end = borders[1] if len(borders) > 2 else 0
    header = [cells(line) for line in lines[1:header_end]] or [[""] * len(starts)]
    body = [cells(line) for i, line in enumerate(lines) if i > header_end and i not in borders and line.strip()]
    head = ["| " + " | ".join(" ".join(part[k] for part in header).strip() for k in range(len(starts))) + " |"]
    return "\n".join(head + ["|" + "---|" * len(starts)] + ["| " + " | ".join(row) + " |" for row in body])


def inline(text: str) -> str:
    """RST inline markup as Markdown: math roles, double-backtick literals, links."""
    text = re.sub(r":math:`([^`]+)`", lambda m: f"${m.group(1).strip()}$", text)
    text = re.sub(r"`([^`<]+?)\s*<([^>]+)>`_+", r"[\1](\2)", text)
    return re.sub(r"``(.+?)``", r"`\1`", text)


def lead_in(paragraph: str) -> str:
    """A short opening phrase ending in a full stop ("Backward.", "Law (i), no carried state.") in bold."""
    match = re.match(r"([A-Za-z][^.:$`\[]{0,48}?)\. (?=\S)", paragraph)
    if match and len(match.group(1).split()) <= 6:
        return f"**{match.group(1)}.** {paragraph[match.end():]}"
    return paragraph


def slug(title: str) -> str:
    """The anchor code hosts give a heading: lower case, punctuation dropped, spaces as hyphens."""
    return re.sub(r"[^\w\- ]", "", title.lower()).replace(" ", "-")


# --- Numbers -----------------------------------------------------------------------------------

def shown(value: float, dtype: str, digits: int = 17) -> str:
    """A number as the document prints it: integers in full; otherwise the shortest decimal that rounds
    to the same ``dtype`` number, so a recorded value is printed exactly (the float64 reference is printed
    with ``digits=10``: its last bits may differ between NumPy builds, its tenth digit does not)."""
    from rnnspec.comparison import round_to_dtype

    if math.isnan(value):
        return "nan"
    if math.isinf(value):
        return "inf" if value > 0 else "-inf"
    if value == int(value) and abs(value) < 1e7:
        return str(int(value))
    for count in range(1, digits + 1):
        text = f"{value:.{count}g}"
        if round_to_dtype(float(text), dtype) == value:
            break
    return text


def index_label(key: str, index: tuple[int, ...], shape: tuple[int, ...]) -> str:
    """``grad_input t=3`` for the notebook's sequences, shape (L, 1, 1); otherwise the full index from 0."""
    if math.prod(shape) == 1:
        return key
    if key in ("output", "grad_input") and shape[0] > 1 and all(n == 1 for n in shape[1:]):
        return f"{key} t={index[0] + 1}"
    return f"{key} [{', '.join(str(i) for i in index)}]"


def cell_text(text: str) -> str:
    return text.replace("|", "\\|")


# --- The document ------------------------------------------------------------------------------

def write(root: Path, folder: Path, outcomes: Outcomes, tolerance_table: dict) -> list[str]:
    """Render the document into ``folder`` (plots too where matplotlib is installed); the files written."""
    from rnnspec import plots

    folder.mkdir(parents=True, exist_ok=True)
    figures = plots.plots(root / "fixtures")
    text = render(chapters(root), root / "fixtures", outcomes, tolerance_table, figures)
    (folder / DOCUMENT).write_text(text, encoding="utf-8")
    written = [str(folder / DOCUMENT)]
    if plots.matplotlib_version() is not None:
        written += [str(plots.draw(figure, folder)) for figure in figures]
    return written


def render(chapter_list: list[Chapter], fixtures: Path, outcomes: Outcomes, tolerance_table: dict,
           figures) -> str:
    """The whole Markdown document: a pure function of the chapters, fixtures, outcomes and plots' data."""
    by_chapter: dict[str, list] = {}
    for figure in figures:
        owner = figure.chapter if any(c.stem == figure.chapter for c in chapter_list) else ""
        by_chapter.setdefault(owner, []).append(figure)
    parts = [header(chapter_list)]
    parts.append(introduction(chapter_list, by_chapter.get("", [])))
    parts.append(how_to_read(outcomes))
    parts.append(summary(chapter_list, outcomes))
    for chapter in chapter_list:
        parts.append(chapter_section(chapter, fixtures, outcomes, by_chapter.get(chapter.stem, []), tolerance_table))
    parts.append(tolerance_section(tolerance_table))
    return "\n\n".join(part.strip("\n") for part in parts) + "\n"


def header(chapter_list: list[Chapter]) -> str:
    contents = "\n".join(f"   - [{c.title}](#{c.anchor})" for c in chapter_list)
    return f"""# rnn-spec: how PyTorch's recurrent layers behave, as an executable specification

<!-- Generated from spec/ by `{COMMAND}`. Do not edit by hand:
     selftest/test_document_is_current.py fails when this file differs from what the spec renders. -->

> This document is rendered from the executable specification under `spec/`: every chapter below is a
> test module, every number is checked by the suite, and the outcome tables come from the run that
> rendered it. Re-render it with `{INSTALL} && {COMMAND}`.

**Contents**

1. [Introduction: why gradients explode or vanish, and why LSTM helps](#{slug("Introduction: why gradients explode or vanish, and why LSTM helps")})
2. [The notebook, chapter by chapter](#the-notebook-chapter-by-chapter)
3. [How to read this document](#how-to-read-this-document)
4. [Outcomes at a glance](#outcomes-at-a-glance)
5. The chapters
{contents}
6. [Appendix: the tolerance table](#appendix-the-tolerance-table)"""


def figure_markdown(figure) -> str:
    """The image, its caption, and the numbers it is drawn from (so they are checked with the text)."""
    tables = []
    for panel in figure.panels:
        xs = sorted({x for s in panel.series for x in s.x})
        head = "| t | " + " | ".join(cell_text(s.column) for s in panel.series) + " |"
        rule = "|---:|" + "---:|" * len(panel.series)
        rows = []
        for x in xs:
            values = [dict(zip(s.x, s.y)).get(x) for s in panel.series]
            rows.append(f"| {x:g} | " + " | ".join("" if v is None else shown(v, "float64", 5) for v in values) + " |")
        tables.append(f"*{cell_text(panel.table_title)}*\n\n{head}\n{rule}\n" + "\n".join(rows))
    data = "\n\n".join(tables)
    return f"""![{figure.title}]({figure.filename})

*{figure.caption}*

<details><summary>The numbers behind this plot</summary>

{data}

</details>"""


INTRODUCTION = r"""
## Introduction: why gradients explode or vanish, and why LSTM helps

A recurrent layer reads a sequence one step at a time and carries a hidden state from step to
step. `torch.nn.RNN` applies the same step to every input $x_t$:

$$
h_t = \phi(W_{ih} x_t + b_{ih} + W_{hh} h_{t-1} + b_{hh}), \qquad h_0 = 0,
$$

with $\phi$ = tanh or relu. @forward@ computes this recurrence by hand on the notebook's tiny
layer (one input, one hidden unit, every weight 0.5), and @dims@ repeats it with matrices.

**Training backpropagates through time.** For a loss computed from the last state $h_T$ to teach
the layer anything about the input at step $t$, it needs $\partial h_T / \partial x_t$. Unrolled
over $T$ steps, the layer is a deep network of $T$ copies of the same step, and the chain rule
multiplies one factor per step between $t$ and $T$:

$$
\frac{\partial h_T}{\partial x_t}
  = \Big( \prod_{s=t+1}^{T} \frac{\partial h_s}{\partial h_{s-1}} \Big) \frac{\partial h_t}{\partial x_t},
\qquad \frac{\partial h_s}{\partial h_{s-1}} = \mathrm{diag}\big(\phi'(a_s)\big)\, W_{hh},
$$

where $a_s$ is the step's pre-activation. With one hidden unit every factor is a number,
$w_{hh}\,\phi'(a_s)$, and a product of $T - t$ such numbers grows or shrinks geometrically:

* **It explodes when the factor exceeds 1** (@exploding@). relu passes positive values
  unchanged ($\phi' = 1$), so with $w_{hh} = 11$ each step back multiplies the gradient by exactly
  11: after five steps $\partial h_5 / \partial x_1 = 11^5 = 161051$. Training steps of that size
  are unstable (the usual remedy is to clip the gradient's norm), and float16, whose largest
  number is 65504, cannot even hold it: it becomes `inf`.
* **It vanishes when the factor is below 1** (@vanishing@). tanh squashes: $\phi' = 1 - h^2 \le 1$.
  With $w_{hh} = 0.5$ each step back multiplies the gradient by $0.5\,(1 - h_t^2) \approx 0.26$, so
  the gradient of the first of twenty inputs is $4.7 \times 10^{-12}$, almost eleven decades below
  the last input's 0.26. The early inputs receive no learning signal: the layer cannot learn that
  something at step 1 matters at step 20. In float16 these gradients are exactly 0.

With more hidden units (@dims@) the factor is a matrix and the same dichotomy
holds per direction: how much $\mathrm{diag}(\phi')\,W_{hh}$ stretches or shrinks a vector decides
whether the product blows up or dies out.

**Truncated BPTT** (@truncated@) runs a long sequence in chunks and calls `backward()` after each
one, as the notebook does with four chunks of five steps. No gradient crosses a chunk boundary, by
construction: whether a chunk starts from zero or from the previous chunk's state, detached, its
gradient is that of a short five-step run. This bounds the memory and time of a backward pass and
caps how far back the gradient can reach; it does not cure vanishing, since within a chunk the
gradient still shrinks by about 0.26 per step.

**Why LSTM helps** (@lstm@). An LSTM adds a cell state that is updated additively,
$c_t = f_t \odot c_{t-1} + i_t \odot g_t$, and reads the hidden state from it,
$h_t = o_t \odot \tanh(c_t)$. Along the cell path one step back multiplies the gradient by the
forget gate $f_t$ alone: no squashing derivative, no weight matrix. A forget gate near 1 lets the
gradient through almost unchanged, and since the gate is computed from the input and the state,
training can learn when to keep and when to forget. With the notebook's weights 0.5 the forget
gate is about 0.69 and the LSTM's input gradient shrinks by about 0.75 per step instead of 0.26:
at $t = 1$ it is $3.7 \times 10^{-4}$ rather than $4.7 \times 10^{-12}$, nearly eight decades more.
A GRU@gru@ mixes its state the same way, $h_t = (1 - z_t) \odot n_t + z_t \odot h_{t-1}$, and its
gradient decays just as slowly, as the first plot shows.

@gradient_reach@

**The number format is part of the behaviour.** float16 holds numbers up to 65504 and rounds
anything below $2^{-25} \approx 3 \times 10^{-8}$ to zero, so the exploding gradient overflows and
the vanishing one underflows; bfloat16 keeps float32's range with only 8 significant bits, so
1463 becomes 1464. The spec states what each dtype must give, `inf` and 0 included: the expected
value is always the exact one rounded to the dtype under test.

@dtype_limits@
"""


NOTEBOOK_MAP = (  # (the notebook's section, what it does, the chapter that asserts it)
    ("`nn.RNN(1, 1, nonlinearity='relu')`, weights 0.5", "one step, then two: 0.5, then 0.5, 0.75",
     "test_01_forward_values"),
    ("Analyse d'un \"exploding gradient\"", "relu RNN, weights 11 (\"poids supérieur à 1\"), 5 steps: 11 … 177155, "
     "∂x = 161051 … 11", "test_02_exploding_gradient"),
    ("Analyse d'un \"vanishing gradient\"", "tanh RNN, weights 0.5 (\"poids inférieur à 1\"), 20 steps: "
     "∂x = 4.7499e-12 … 0.2634", "test_03_vanishing_gradient"),
    ("Backprop through time (BPTT)", "the same RNN in four 5-step chunks: four blocks 0.0023 … 0.2642",
     "test_04_truncated_bptt"),
    ("Augmentons la dimensionalité", "`nn.RNN(2, 3)` on two steps of two features", "test_06_multidimensional"),
    ("Utilisons un LSTM pour contrer le vanishing gradient", "LSTM, weights 0.5, 20 steps: ∂x = 0.0004 … 0.1483",
     "test_05_lstm_slower_decay"),
)


def introduction(chapter_list: list[Chapter], figures) -> str:
    by_stem = {c.stem: c for c in chapter_list}

    def ref(stem: str, fallback: str) -> str:
        chapter = by_stem.get(stem)
        return f"[{chapter.title.split(':')[0]}](#{chapter.anchor})" if chapter else fallback

    shown_figures = {figure.name: figure_markdown(figure) for figure in figures}
    fills = {  # @name@ in INTRODUCTION (its LaTeX braces rule out str.format)
        "forward": ref("test_01_forward_values", "The chapter on forward values"),
        "dims": ref("test_06_multidimensional", "the chapter on more dimensions"),
        "exploding": ref("test_02_exploding_gradient", "exploding gradients"),
        "vanishing": ref("test_03_vanishing_gradient", "vanishing gradients"),
        "truncated": ref("test_04_truncated_bptt", "truncated BPTT"),
        "lstm": ref("test_05_lstm_slower_decay", "LSTM"),
        "gru": f" ({ref('test_07_gru', '')})" if "test_07_gru" in by_stem else "",
        "gradient_reach": shown_figures.pop("gradient_reach", ""),
        "dtype_limits": shown_figures.pop("dtype_limits", ""),
    }
    intro = INTRODUCTION
    for name, text in fills.items():
        intro = intro.replace(f"@{name}@", text)
    rows = [f"| {section} | {what} | {ref(stem, '(not yet a chapter)')} |" for section, what, stem in NOTEBOOK_MAP]
    mapped = {stem for _, _, stem in NOTEBOOK_MAP}
    beyond = [ref(c.stem, c.title) for c in chapter_list if c.stem not in mapped]
    if beyond:
        rows.append("")
        rows.append("Beyond the notebook, the chapters extend the same laws and the same two witnesses to the rest of "
                    "the recurrent API: " + "; ".join(beyond) + ".")
    notebook = "\n".join([
        "## The notebook, chapter by chapter",
        "",
        "The spec began as a notebook that walks through `nn.RNN` and `nn.LSTM` with constant weights and "
        "prints exact values (partly in French). Every number it prints is asserted by a chapter.",
        "",
        "| the notebook's section | what it computes | asserted in |",
        "|---|---|---|",
        *rows,
    ])
    rest = "\n\n".join(shown_figures.values())
    return "\n\n".join(part for part in (intro.strip(), rest, notebook) if part)


def how_to_read(outcomes: Outcomes) -> str:
    runs = ", ".join(outcomes.devices) or "none"
    skipped = "".join(f"\n- `{device}` was skipped: {reason}." for device, reason in sorted(outcomes.unavailable.items()))
    return f"""## How to read this document

Each chapter opens with the law it asserts, its formula and the derivation of its numbers; then come

- **its claims**, one per test, with the outcome of each on every device × dtype of the run that
  rendered this document (devices: {runs}; dtypes: {", ".join(outcomes.dtypes)}). A cell counts the
  test's parametrisations: ✅ passed, ❌ failed or errored, ⚠️ a strict expected failure (a
  combination a device states it does not support, see `expectations/`), ⏭ skipped,
  *n/a* a claim made for other dtypes only, — a column the test is not parametrised over
  (*dtype-free* and *device-free* columns hold the tests that take no dtype or no device),
  *not run* not selected in that run;{skipped}
- **its expected numbers**, with two witnesses side by side. The *reference* is the independent
  truth in float64: a closed form or the NumPy reference (forward pass and hand-written
  backpropagation, no torch). The *fixture* columns are the tensors recorded from torch on CPU in
  each dtype (`fixtures/<chapter>/<record>-<dtype>.npz`). A fixture must equal the reference
  rounded to its dtype, within that dtype's row of the [tolerance table](#appendix-the-tolerance-table),
  and every run must match both; so the fixture columns show what each dtype can hold: `inf` where
  float16 overflows, 0 where it underflows, 1464 where bfloat16 rounds 1463.

Numbers are printed as integers when they are integers. A fixture's number is printed exactly: the
fewest digits that identify it in its dtype (so a float64 fixture may show 17 digits). The float64
reference is printed to at most 10 significant digits, which is where the two agree; the plots'
tables print 5.
In the notebook's chapters the gradients are those of $h_T$ with an upstream gradient of ones,
as the notebook's `h_n.backward()`, so `grad_input t=1` is $\\partial h_T / \\partial x_1$; a chapter
that backpropagates from other outputs says so. Larger tensors are indexed from 0 in their own
layout: `output [3, 0, 2]`."""


def summary(chapter_list: list[Chapter], outcomes: Outcomes) -> str:
    configs = outcomes.configurations()
    head = "| chapter | claims | " + " | ".join(column(c) for c in configs) + " |"
    rule = "|---|---:|" + "---|" * len(configs)
    rows = [f"| [{c.title.split(':')[0]}](#{c.anchor}) | {len(c.claims())} | "
            + " | ".join(cell(outcomes.counts(c.stem, None, d, t), "—" if outcomes.tests_of(c.stem) else "not run")
                         for d, t in configs) + " |"
            for c in chapter_list]
    return "## Outcomes at a glance\n\n" + "\n".join([head, rule, *rows])


def chapter_section(chapter: Chapter, fixtures: Path, outcomes: Outcomes, figures, tolerance_table: dict) -> str:
    parts = [f"## {chapter.title}", f"*`spec/{chapter.stem}.py`*", chapter.body]
    parts += [figure_markdown(figure) for figure in figures]
    parts.append(claims_table(chapter, outcomes))
    parts.append(expected_numbers(chapter, fixtures, tolerance_table))
    return "\n\n".join(parts)


def authority_text(kind: str, source: str) -> str:
    """A claim's authority as the claims table shows it: documented, with links to the pages; derived or
    observed, with why or where."""
    if kind == "documented":
        pages = [page for page in source.split() if page.startswith("http")]
        links = ", ".join(f"[{page.rstrip('/').rsplit('/', 1)[-1].removesuffix('.html').split('#')[-1]}]({page})"
                          for page in pages)
        return f"documented: {links}" if links else f"documented: {source}"
    return f"{kind}: {source}"


def claims_table(chapter: Chapter, outcomes: Outcomes) -> str:
    configs = outcomes.configurations(chapter.stem)
    claims = chapter.claims()
    named = {name for name, *_ in claims}
    claims += [(name, "", None, "") for name in outcomes.tests_of(chapter.stem) if name not in named]
    head = "| claim | authority | test | " + " | ".join(column(c) for c in configs) + " |"
    rule = "|---|---|---|" + "---|" * len(configs)
    rows = []
    for name, doc, only, claimed in claims:
        ran = name in outcomes.tests_of(chapter.stem)
        cells = [cell(outcomes.counts(chapter.stem, name, d, t),
                      "n/a" if only is not None and t not in only else "—" if ran else "not run") for d, t in configs]
        rows.append(f"| {cell_text(doc)} | {cell_text(claimed)} | `{name}` | " + " | ".join(cells) + " |")
    return ("### Claims and outcomes\n\nEach claim names its authority: *documented* (PyTorch's documentation "
            "states it), *derived* (it follows from documented formulas and IEEE 754 arithmetic), or *observed* "
            "(releases do it without a promise; written so that every release observed passes).\n\n"
            + "\n".join([head, rule, *rows]))


#: A record with more values than this is summarised per quantity rather than printed value by value.
PRINTED_VALUES = 100


def expected_numbers(chapter: Chapter, fixtures: Path, tolerance_table: dict) -> str:
    """Every record the chapter declares: the reference beside each dtype's recorded fixture."""
    from rnnspec.devices import DTYPES
    from rnnspec.fixture_files import load_record
    from rnnspec.records import records_of

    declared = records_of(chapter.module)
    if not declared:
        return "### Expected numbers\n\nThis chapter records no tensors: its claims are checked as stated."
    parts = ["### Expected numbers"]
    for entry in declared:
        record, truth = entry.name, entry.truth()
        recorded = {}
        for dtype in DTYPES:
            path = fixtures / chapter.stem / entry.fixture(dtype).name
            fix = f"pytest --regen-all --device cpu spec/{chapter.stem}.py"
            recorded[dtype] = load_record(path, dtype, fix=fix) if path.is_file() else None
        relative = sorted(truth.relative)
        comparison = (f"Compared elementwise-relatively (they span many decades): {', '.join(f'`{k}`' for k in relative)}; "
                      f"the others normwise." if relative else "Compared normwise (against the tensor's largest value).")
        body = (f"#### {cell_text(truth.behaviour)}\n\nRecord `{record}` "
                f"(`fixtures/{chapter.stem}/{record}-<dtype>.npz`). Law: `{truth.law}`. {comparison}\n\n")
        count = sum(int(np.size(v)) for v in truth.values.values())
        if count > PRINTED_VALUES:
            body += summary_table(truth, recorded, tolerance_table, count)
        else:
            table = values_table(truth, recorded)
            rows = table.count("\n") - 1
            body += (f"<details><summary>All {rows} expected values</summary>\n\n{table}\n\n</details>"
                     if rows > 30 else table)
        parts.append(body)
    return "\n\n".join(parts)


def recorded_array(recorded: dict, dtype: str, key: str, shape: tuple) -> "np.ndarray | None":
    arrays = recorded[dtype]
    if arrays is None or key not in arrays or np.shape(arrays[key]) != shape:
        return None
    return np.asarray(arrays[key], dtype=np.float64)


def values_table(truth, recorded: dict) -> str:
    """One row per value: the float64 reference (10 digits) and each dtype's fixture (exactly)."""
    from rnnspec.devices import DTYPES

    rows = ["| quantity | reference (float64) | " + " | ".join(f"{d} fixture" for d in DTYPES) + " |",
            "|---|---:|" + "---:|" * len(DTYPES)]
    for key, value in truth.values.items():
        values = np.asarray(value, dtype=np.float64)
        fixtures = {dtype: recorded_array(recorded, dtype, key, values.shape) for dtype in DTYPES}
        for index in np.ndindex(values.shape):
            cells = ["missing" if fixtures[d] is None else shown(float(fixtures[d][index]), d) for d in DTYPES]
            rows.append(f"| `{index_label(key, index, values.shape)}` | {shown(float(values[index]), 'float64', 10)} | "
                        + " | ".join(cells) + " |")
    return "\n".join(rows)


def summary_table(truth, recorded: dict, tolerance_table: dict, count: int) -> str:
    """For a large record: per quantity its shape, the reference's range, and how close each fixture lies
    (its worst error as a fraction of what the tolerance allows); a digest of each fixture's arrays."""
    from rnnspec.comparison import round_to_dtype
    from rnnspec.devices import DTYPES

    rows = ["| quantity | shape | reference (float64): min … max | "
            + " | ".join(f"{d} fixture: worst error / allowed" for d in DTYPES) + " |",
            "|---|---|---|" + "---:|" * len(DTYPES)]
    for key, value in truth.values.items():
        values = np.asarray(value, dtype=np.float64)
        cells = []
        for dtype in DTYPES:
            fixture = recorded_array(recorded, dtype, key, values.shape)
            if fixture is None or dtype not in tolerance_table:
                cells.append("missing" if fixture is None else "")
                continue
            tolerance = truth.tolerance_for(key, tolerance_table[dtype])
            expected = round_to_dtype(values, dtype)
            with np.errstate(invalid="ignore"):
                error = np.where(fixture == expected, 0.0, np.abs(fixture - expected))
            allowed = tolerance.atol + tolerance.rtol * np.abs(expected)
            with np.errstate(divide="ignore", invalid="ignore"):
                share = np.where(error == 0, 0.0, error / allowed)
            worst = float(np.max(share)) if share.size else 0.0
            cells.append("0" if worst == 0 else "< 0.001" if worst < 1e-3 else f"{worst:.2g}")
        span = f"{shown(float(values.min()), 'float64', 4)} … {shown(float(values.max()), 'float64', 4)}" if values.size else ""
        rows.append(f"| `{key}` | {tuple(values.shape)} | {span} | " + " | ".join(cells) + " |")
    digests = ", ".join(f"{d} `{digest(recorded[d])}`" for d in DTYPES)
    return (f"{count} values, too many to print one by one: each quantity's range, and the worst error of each "
            f"fixture as a fraction of what its tolerance allows (0: equal to the reference rounded to the "
            f"dtype). The values are in the fixture files; their digests (SHA-256 of the arrays, 12 hex "
            f"digits) pin them here: {digests}.\n\n" + "\n".join(rows))


def digest(arrays: dict | None) -> str:
    """A short SHA-256 of a fixture's arrays (names, dtypes, shapes and bytes), so any change shows."""
    if arrays is None:
        return "missing"
    sha = hashlib.sha256()
    for key in sorted(arrays):
        array = np.ascontiguousarray(arrays[key])
        sha.update(f"{key}:{array.dtype.str}:{array.shape}:".encode())
        sha.update(array.tobytes())
    return sha.hexdigest()[:12]


def tolerance_section(tolerance_table: dict) -> str:
    rows = [f"| {name} | {row.rtol:g} | {row.atol:g} | {row.resolution:.3g} | "
            f"{f'{row.envelope:g} ×' if row.envelope else 'never'} | {cell_text(row.source)} |"
            for name, row in tolerance_table.items()]
    return "\n".join([
        "## Appendix: the tolerance table",
        "",
        "One table, in `conftest.py`, for every comparison: a value passes when "
        "$|\\text{actual} - \\text{expected}| \\le \\text{atol} + \\text{rtol}\\,|\\text{expected}|$. "
        "Normwise comparisons raise atol to rtol × the tensor's largest value; elementwise-relative ones "
        "(for values spanning many decades) use the dtype's smallest subnormal as atol.",
        "",
        "**The step-by-step envelope.** A fused kernel (oneDNN's LSTM on CPUs that serve bfloat16, cuDNN) keeps "
        "float32 intermediates and lands within the row. A step-by-step computation (torch's own CPU kernels "
        "elsewhere, a loop of cells, torch.compile's decompositions) rounds every operation to the dtype, and its "
        "errors add up over the steps: a 20-step bfloat16 LSTM's input gradient lands about 6 % from the truth. "
        "Both are PyTorch. Where a bfloat16 or float16 result lies outside the row, the spec computes the same "
        "run step by step in that dtype with the NumPy reference (every operation rounded: once to nearest, eight "
        "times stochastically, `rnnspec/stepwise.py`) and widens the row by the envelope factor times the share "
        "of the row the farthest of those runs uses. Two runs of one computation (a layout, a batch split, a loop "
        "of cells against the layer) are compared within the sum of their tolerances: bitwise equality between two "
        "code paths is promised nowhere.",
        "",
        "| dtype | rtol | atol | smallest subnormal | step-by-step envelope | source |",
        "|---|---:|---:|---:|---|---|",
        *rows,
    ])


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
