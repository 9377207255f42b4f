"""The whole Markdown document, a pure function of the chapters, the prose, the fixtures, the outcomes
of the run, the tolerance table and the plots' data.

Its parts, in order: a header with the contents; the prose files :data:`PROSE` of ``docs/prose/``
(written in Markdown, each opening with its ``## `` heading), where "Outcomes at a glance" and the
chapters come in after :data:`BEFORE_CHAPTERS`; each chapter (its docstring, its plots, its claims
and their outcomes, its expected numbers); the appendix.

The prose is plain Markdown that reads on its own, with three conventions the renderer resolves:

* a link to a chapter's file (``[](../../spec/test_05_lstm_slower_decay.py)``) becomes a link to
  the chapter's section, with the chapter's short title where the link has no text;
* an image of a plot on its own line (``![](../gradient_reach.svg)``) becomes the plot with its
  caption and the numbers it is drawn from; a plot no prose shows goes to its chapter;
* an HTML comment ``<!-- generated: NAME -->`` is replaced by what the run adds (:data:`GENERATED`);
  ``<!-- numbers … -->`` comments hold the marks of the number check and are dropped.
"""

from __future__ import annotations

import re
from pathlib import Path

from rnnspec.document import tables
from rnnspec.document.chapters import Chapter, cited
from rnnspec.document.markup import slug
from rnnspec.document.outcomes import Outcomes, cell, column

#: The prose files of docs/prose/, in the order they appear; the chapters follow BEFORE_CHAPTERS.
PROSE = ("introduction.md", "notebook.md", "how_to_read.md", "tolerances.md")
BEFORE_CHAPTERS = 3
#: The parts the run adds to the prose, by the name of their placeholder.
GENERATED = ("beyond the notebook", "the run", "the tolerance table")
CHAPTER_LINK = re.compile(r"\[([^\]]*)\]\((?:[^)\s]*/)?spec/(test_\d\d_\w+)\.py\)")
PLOT_LINE = re.compile(r"^!\[[^\]]*\]\((?:[^)\s]*/)?([\w-]+\.svg)\)$", re.M)
COMMENT = re.compile(r"<!--\s*(generated:\s*(?P<name>[^>]*?)|numbers\b.*?)\s*-->\n?", re.S)


def render(root: Path, chapter_list: list[Chapter], fixtures: Path, outcomes: Outcomes, tolerances: dict,
           figures, command: str, install: str) -> str:
    """The document's text."""
    by_file = {figure.filename: figure for figure in figures}
    prose = [(name, (root / "docs" / "prose" / name).read_text(encoding="utf-8")) for name in PROSE]
    placed = {match for _, text in prose for match in PLOT_LINE.findall(text)}
    generated = {"beyond the notebook": beyond(chapter_list, dict(prose)["notebook.md"]), "the run": the_run(outcomes),
                 "the tolerance table": tables.tolerance_table(tolerances)}
    resolved = [resolve(text, chapter_list, by_file, generated) for _, text in prose]
    parts = [header(chapter_list, resolved, command, install), *resolved[:BEFORE_CHAPTERS]]
    parts.append(summary(chapter_list, outcomes))
    for chapter in chapter_list:
        own = [f for f in figures if f.chapter == chapter.stem and f.filename not in placed]
        parts.append(chapter_section(chapter, fixtures, outcomes, own, tolerances))
    parts += resolved[BEFORE_CHAPTERS:]
    return "\n\n".join(part.strip("\n") for part in parts) + "\n"


def resolve(text: str, chapter_list: list[Chapter], figures: dict, generated: dict) -> str:
    """A prose file as the document shows it: chapter links, plots and generated parts filled in."""
    by_stem = {c.stem: c for c in chapter_list}

    def link(match):
        chapter = by_stem.get(match.group(2))
        if chapter is None:
            return match.group(1) or "(a chapter not yet written)"
        return f"[{match.group(1) or chapter.short_title}](#{chapter.anchor})"

    def comment(match):
        name = match.group("name")
        if name is None:
            return ""
        if name not in generated:
            raise KeyError(f"docs/prose: no generated part named {name!r} (known: {', '.join(GENERATED)})")
        return generated[name] + "\n"

    text = COMMENT.sub(comment, text)
    text = PLOT_LINE.sub(lambda m: tables.figure_markdown(figures[m.group(1)]) if m.group(1) in figures else "", text)
    return CHAPTER_LINK.sub(link, text).strip()


def header(chapter_list: list[Chapter], prose: list[str], command: str, install: str) -> str:
    def entry(heading: str) -> str:
        return f"[{heading}](#{slug(heading)})"

    headings = [re.search(r"^## (.+)$", text, re.M).group(1) for text in prose]
    before = [entry(h) for h in headings[:BEFORE_CHAPTERS]] + [entry("Outcomes at a glance"), "The chapters"]
    after = [entry(h) for h in headings[BEFORE_CHAPTERS:]]
    contents = [f"{n}. {item}" for n, item in enumerate(before, start=1)]
    contents += [f"   - [{c.title}](#{c.anchor})" for c in chapter_list]
    contents += [f"{n}. {item}" for n, item in enumerate(after, start=len(before) + 1)]
    return f"""# rnn-spec: how PyTorch's recurrent layers behave, as an executable specification

<!-- Generated from spec/ and docs/prose/ by `{command}`. Do not edit by hand:
     selftest/test_document_is_current.py fails when this file differs from what the spec renders. -->

> This document is rendered from the executable specification under `spec/`: every chapter below is
> a test module, every number is checked by the suite, and the outcome tables come from the run
> that rendered it. Re-render it with `{install} && {command}`.

**Contents**

""" + "\n".join(contents)


def beyond(chapter_list: list[Chapter], notebook: str) -> str:
    """The chapters the notebook's map does not name: the rest of the recurrent API."""
    mapped = {c.stem for c in cited(notebook, chapter_list)}
    rest = [f"[{c.short_title}](#{c.anchor})" for c in chapter_list if c.stem not in mapped]
    if not rest:
        return ""
    return ("Beyond the notebook, the chapters extend the same laws and the same two witnesses to the rest of "
            "the recurrent API: " + "; ".join(rest) + ".")


def the_run(outcomes: Outcomes) -> str:
    devices = ", ".join(outcomes.devices) or "none"
    skipped = "".join(f"\n- `{device}` was skipped: {reason}." for device, reason in sorted(outcomes.unavailable.items()))
    return (f"This rendering's run: devices {devices}; dtypes {', '.join(outcomes.dtypes)}." + skipped)


def summary(chapter_list: list[Chapter], outcomes: Outcomes) -> str:
    configs = outcomes.configurations()
    head = "| chapter | claims | " + " | ".join(column(c, outcomes.devices) for c in configs) + " |"
    rule = "|---|---:|" + "---:|" * len(configs)
    rows, links = [], []
    for c in chapter_list:
        label = f"chapter-{c.number}"
        rows.append(f"| [{c.short_title.removeprefix('Chapter ')}][{label}] | {len(c.claims())} | "
                    + " | ".join(cell(outcomes.counts(c.stem, None, d, t), "—" if outcomes.tests_of(c.stem) else "not run")
                                 for d, t in configs) + " |")
        links.append(f"[{label}]: #{c.anchor}")
    return "\n\n".join(["## Outcomes at a glance",
                        f"Devices: {', '.join(outcomes.devices) or 'none'}. Each cell counts the chapter's tests "
                        f"that ran there, by outcome.",
                        "\n".join([head, rule, *rows]), "\n".join(links)])


def chapter_section(chapter: Chapter, fixtures: Path, outcomes: Outcomes, figures, tolerances: dict) -> str:
    parts = [f"## {chapter.title}", f"*`{chapter.path}`*", chapter.body]
    parts += [tables.figure_markdown(figure) for figure in figures]
    parts.append(tables.claims_section(chapter, outcomes))
    parts.append(tables.expected_numbers(chapter, fixtures, tolerances))
    return "\n\n".join(parts)
