"""The chapters' RST-ish docstrings as Markdown: the markup a chapter may use, and nothing else.

A chapter docstring may use:

* ``:math:`…``` roles (→ ``$…$``) and ``$$ … $$`` display blocks, on their own lines or inline;
* double-backtick literals (→ single backticks) and RST links (`` `text <url>`_ `` → ``[text](url)``);
* ``*emphasis*`` and ``**bold**`` (the same in both);
* bullet lists (``* `` or ``- ``) and numbered lists (``1. ``), continued by indented lines;
* RST simple tables (columns under runs of ``=``, the header above the second border);
* section titles underlined with ``---`` (→ ``####``);
* literal blocks after a paragraph ending in ``::``, and ``.. code-block:: LANGUAGE`` directives
  (→ fenced code, with the language);
* a final **field list** of number marks (``:parameters: …``, see
  :mod:`rnnspec.document.numbers`): taken out of the text, never rendered.

A short opening phrase ending in a full stop ("Backward.", "float16.") is set in bold.
"""

from __future__ import annotations

import inspect
import re

#: The fields of a docstring's closing field list that mark its numbers (rnnspec.document.numbers).
MARK_FIELDS = ("parameters", "configuration", "derived", "cites")
_FIELD = re.compile(r"^:(" + "|".join(MARK_FIELDS) + r"):(.*)$")


def split_marks(text: str) -> tuple[str, dict[str, str]]:
    """(the text without its number marks, {field: its text}): the marks are the docstring's last lines that
    open with ``:parameters:``, ``:configuration:``, ``:derived:`` or ``:cites:`` (continued by indented
    lines)."""
    lines = inspect.cleandoc(text).split("\n")
    marks: dict[str, str] = {}
    end = len(lines)
    while end > 0 and not lines[end - 1].strip():
        end -= 1
    start = end
    while start > 0:  # walk up over the field list: field lines and their indented continuations
        line = lines[start - 1]
        if _FIELD.match(line) or (line.startswith((" ", "\t")) and line.strip()):
            start -= 1
        else:
            break
    while start < end and not _FIELD.match(lines[start]):  # continuation lines above the first field
        start += 1
    current = None
    for line in lines[start:end]:
        field = _FIELD.match(line)
        if field:
            current = field.group(1)
            marks[current] = (marks.get(current, "") + " " + field.group(2).strip()).strip()
        elif current:
            marks[current] += " " + line.strip()
    return "\n".join(lines[:start]).rstrip(), marks


def markdown_of_docstring(text: str) -> tuple[str, str]:
    """(title, body) of a chapter docstring in Markdown (the module docstring lists the markup)."""
    text, _ = split_marks(text)
    title, _, rest = text.partition("\n")
    displays: list[str] = []

    def hold(match):
        displays.append(inspect.cleandoc(match.group(1)).strip())
        return f"\n\n\0{len(displays) - 1}\0\n\n"

    rest = re.sub(r"\$\$(.+?)\$\$", hold, rest, flags=re.S)
    blocks: list[str] = []
    literal_next: str | None = None  # the language of the literal block that follows, "" for a plain one
    for block in re.split(r"\n[ \t]*\n", rest.strip()):
        if not block.strip():
            continue
        held = re.fullmatch(r"\s*\0(\d+)\0\s*", block)
        lines = block.split("\n")
        directive = re.fullmatch(r"\.\. code-block::\s*(\S*)\s*", lines[0].strip())
        if held:
            blocks.append("$$\n" + displays[int(held.group(1))] + "\n$$")
        elif directive and len(lines) == 1:
            literal_next = directive.group(1)
            continue
        elif directive:  # the directive and its code without a blank line between them
            blocks.append(f"```{directive.group(1)}\n" + inspect.cleandoc("\n".join(lines[1:])) + "\n```")
        elif literal_next is not None and block.startswith((" ", "\t")):
            blocks.append(f"```{literal_next}\n" + inspect.cleandoc(block) + "\n```")
        elif re.fullmatch(r"=+( +=+)+", lines[0].strip()) and len(lines) >= 3:
            blocks.append(simple_table(lines))
        elif len(lines) == 2 and re.fullmatch(r"[-=~^]{3,}", lines[1].strip()):
            blocks.append(f"#### {inline(lines[0].strip())}")
        else:
            text, literal = paragraph_and_items(lines)
            blocks.extend(text)
            literal_next = "" if literal else None
            continue
        literal_next = None
    return inline(title.strip().rstrip(".")), "\n\n".join(blocks)


def paragraph_and_items(lines: list[str]) -> tuple[list[str], bool]:
    """A paragraph, list items (a line opening with "* ", "- " or "1. "), or a paragraph then items, as Markdown
    blocks; and whether the paragraph announces a literal block (it ends in ``::``)."""
    paragraph, items = [], []
    for i, line in enumerate(lines):
        if re.match(r"\s*([*-] (?!\d)|\d+\. )", line) and (items or i == 0 or not line[0].isdigit()):
            items.append(line.strip())
        elif items:
            items[-1] += " " + line.strip()
        else:
            paragraph.append(line.strip())
    text = inline(" ".join(paragraph))
    literal = not items and text.endswith("::")
    parts = [lead_in(text[:-1] if literal else text)] if paragraph else []
    if items:
        parts.append("\n".join(inline(item) for item in items))
    return parts, literal


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


def cell_text(text: str) -> str:
    """Text that may stand in a Markdown table cell (a ``|`` escaped)."""
    return text.replace("|", "\\|")
