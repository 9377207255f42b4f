"""The chapters of the spec read as a document: each ``spec/test_NN_*.py`` module, in file-name order.

A :class:`Chapter` is what the document and the number check read from one module: its title and
body (the docstring in Markdown, :mod:`rnnspec.document.markup`), the marks on its numbers, its
claims (each test's one-line docstring, its authority, the dtypes it is restricted to) and its
records (:func:`rnnspec.records.records_of`). New chapters appear by existing.
"""

from __future__ import annotations

import importlib
import inspect
import re
import sys
from dataclasses import dataclass
from pathlib import Path

from rnnspec import authority
from rnnspec.document.markup import markdown_of_docstring, slug, split_marks

#: The chapters' file names under spec/.
PATTERN = "test_[0-9][0-9]_*.py"


@dataclass(frozen=True)
class Claim:
    """One test of a chapter: its name, its claim (the docstring's first paragraph), its whole docstring,
    the dtypes it is restricted to (None: every dtype of the run) and its authority (None: unmarked)."""

    test: str
    text: str
    docstring: str
    only: tuple[str, ...] | None
    authority: authority.Authority | None


class Chapter:
    """One spec module: its name, its docstring, its claims and its records."""

    def __init__(self, module):
        self.module = module
        self.stem = module.__name__.rsplit(".", 1)[-1]
        self.title, self.body = markdown_of_docstring(module.__doc__ or self.stem)
        self.marks = split_marks(module.__doc__ or "")[1]

    def __repr__(self) -> str:
        return f"Chapter({self.stem})"

    @property
    def number(self) -> int:
        return int(self.stem.split("_")[1])

    @property
    def anchor(self) -> str:
        return slug(self.title)

    @property
    def short_title(self) -> str:
        """``Chapter 3. Vanishing gradients`` (the title up to its colon)."""
        return self.title.split(":")[0]

    @property
    def path(self) -> str:
        return f"spec/{self.stem}.py"

    def claims(self) -> list[Claim]:
        """Every test of the chapter, in source order."""
        tests = [(name, obj) for name, obj in vars(self.module).items()
                 if name.startswith("test") and inspect.isfunction(obj)]
        tests.sort(key=lambda item: item[1].__code__.co_firstlineno)
        found = []
        for name, function in tests:
            doc = inspect.getdoc(function) or ""
            marks = getattr(function, "pytestmark", [])
            only = [mark for mark in marks if mark.name == "dtypes"]
            claimed = [mark for mark in marks if mark.name in authority.KINDS]
            found.append(Claim(name, " ".join(doc.split("\n\n")[0].split()), doc,
                               tuple(only[0].args) if only else None,
                               authority.Authority(claimed[0].name, str(claimed[0].args[0])) if claimed else None))
        return found

    def records(self) -> list:
        from rnnspec.records import records_of

        return records_of(self.module)


def chapters(root: Path) -> list[Chapter]:
    """Every chapter under ``root/spec`` in file-name order, imported as ``spec.<module>``."""
    if str(root) not in sys.path:
        sys.path.insert(0, str(root))
    return [Chapter(importlib.import_module(f"spec.{path.stem}")) for path in sorted((root / "spec").glob(PATTERN))]


def cited(text: str, chapter_list: list[Chapter]) -> list[Chapter]:
    """The chapters a text names: "chapter 3", "chapters 3 and 5", or a link to ``spec/test_03_….py``."""
    numbers = set()
    for match in re.finditer(r"\b[Cc]hapters? (\d+(?:(?:, | and | or |–|…)\d+)*)", text):
        numbers.update(int(n) for n in re.findall(r"\d+", match.group(1)))
    stems = set(re.findall(r"spec/(test_\d\d_\w+)\.py", text))
    return [c for c in chapter_list if c.number in numbers or c.stem in stems]
