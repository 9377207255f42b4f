"""Every number a reader is shown is checked (rnnspec/document/numbers.py), and the check can fail.

Each number of the chapters' docstrings (the module's and every test's) and of the document's prose
(docs/prose/*.md) must be a truth of a record the text sees, at the precision printed; a parameter of
one; a fact of a dtype or a row of the tolerance table; or declared by the text's closing marks
(``:parameters:``, ``:configuration:``, ``:derived:`` with an expression the check evaluates).
The tests below insert numbers that match nothing and watch the check name the chapter and the number.
"""

from __future__ import annotations

import importlib
import re
from pathlib import Path

import pytest

from rnnspec.document import numbers
from rnnspec.document.chapters import chapters

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def chapter_list():
    return chapters(ROOT)


@pytest.fixture(scope="module")
def shared():
    found = numbers.Witnesses()
    for value, what in {**numbers.dtype_facts(), **numbers.tolerance_facts()}.items():
        found.add(value, what)
    return found


def unchecked_in(stem: str, chapter_list, shared) -> list[numbers.Finding]:
    chapter = next(c for c in chapter_list if c.stem == stem)
    return [f for f in numbers.check(numbers.chapter_text(chapter, chapter_list), shared) if f.witness is None]


def insert_before_marks(docstring: str, sentence: str) -> str:
    """The docstring with a paragraph added at the end of its text, above its closing marks."""
    body, _, marks = docstring.partition(re.search(r"\n:(parameters|configuration|derived|cites):", docstring).group(0))
    return body.rstrip() + "\n\n" + sentence + "\n" + docstring[len(body):].lstrip(" ")


def test_every_number_in_the_chapters_and_the_prose_is_vouched_for(chapter_list):
    """No number of a chapter or of docs/prose matches nothing: each is a truth, a parameter, or marked."""
    bad = numbers.unchecked(ROOT, chapter_list)
    assert not bad, ("numbers a reader is shown that nothing checks (write the truth's value at the precision "
                     "printed, or declare the number in the text's closing marks: see rnnspec/document/numbers.py):\n"
                     + "\n".join(map(str, bad)))


@pytest.mark.parametrize("stem, sentence", [
    ("test_03_vanishing_gradient", "The gradient at t = 10 is 0.3817."),
    ("test_09_layers_and_directions", "The largest output is 0.4183."),  # a chapter of large random records
])
def test_an_inserted_number_that_matches_no_truth_is_named_with_its_chapter(stem, sentence, chapter_list, shared,
                                                                            monkeypatch):
    """A sentence with a number no truth holds, added to a chapter's docstring, fails the check, naming both."""
    module = importlib.import_module(f"spec.{stem}")
    assert not unchecked_in(stem, chapter_list, shared)
    monkeypatch.setattr(module, "__doc__", insert_before_marks(module.__doc__, sentence))
    bad = unchecked_in(stem, chapter_list, shared)
    number = sentence.split()[-1].rstrip(".")
    assert [f.number for f in bad] == [number], bad
    assert f"spec/{stem}.py" in bad[0].place and "Chapter" in bad[0].place, bad[0]
    assert number in str(bad[0]) and "matches no truth" in str(bad[0])


def test_float16s_value_does_not_vouch_for_a_float64_sentence(chapter_list, shared, monkeypatch):
    """Chapter 4's old defect: h_5 = 0.6865 is float16's h_5, not the truth 0.68669; the check rejects it."""
    module = importlib.import_module("spec.test_04_truncated_bptt")
    assert "h_5 = 0.6867" in module.__doc__
    monkeypatch.setattr(module, "__doc__", module.__doc__.replace("0.6867", "0.6865"))
    bad = unchecked_in("test_04_truncated_bptt", chapter_list, shared)
    assert {f.number for f in bad} == {"0.6865"}, bad


def test_a_sentence_that_names_the_dtype_may_quote_its_rounding(chapter_list, shared, monkeypatch):
    """The same value is vouched for where its sentence says it is float16's."""
    module = importlib.import_module("spec.test_04_truncated_bptt")
    monkeypatch.setattr(module, "__doc__", insert_before_marks(module.__doc__, "In float16, h_5 rounds to 0.6865."))
    assert not unchecked_in("test_04_truncated_bptt", chapter_list, shared)


def test_a_derived_mark_is_evaluated(chapter_list, shared, monkeypatch):
    """A :derived: number whose expression gives another value fails, with what the expression gives."""
    module = importlib.import_module("spec.test_05_lstm_slower_decay")
    assert "0.7534 = " in module.__doc__
    monkeypatch.setattr(module, "__doc__", module.__doc__.replace("0.7534", "0.7543"))
    bad = unchecked_in("test_05_lstm_slower_decay", chapter_list, shared)
    assert {f.number.split(" = ")[0] for f in bad} == {"0.7543"}, bad
    assert any("the expression gives" in str(f) for f in bad), bad


def test_a_mark_no_number_uses_is_reported(chapter_list, shared, monkeypatch):
    """A declared number that the text no longer shows is a stale mark."""
    module = importlib.import_module("spec.test_16_support_matrix")
    monkeypatch.setattr(module, "__doc__", module.__doc__.replace(":configuration: 2.13", ":configuration: 2.13, 3.14"))
    bad = unchecked_in("test_16_support_matrix", chapter_list, shared)
    assert [f.number for f in bad] == ["3.14"] and "stale" in str(bad[0]), bad


def test_an_inserted_number_in_the_prose_is_named_with_its_file(chapter_list, shared, tmp_path):
    """The introduction's prose is checked against the chapters it links."""
    text = (ROOT / "docs" / "prose" / "introduction.md").read_text(encoding="utf-8")
    copy = tmp_path / "introduction.md"
    copy.write_text(text.replace("nearly eight\ndecades more", "nearly eight\ndecades more (a factor of 6.1e7)"),
                    encoding="utf-8")
    assert copy.read_text(encoding="utf-8") != text
    bad = [f for f in numbers.check(numbers.prose_text(copy, chapter_list, "docs/prose/introduction.md"), shared)
           if f.witness is None]
    assert [(f.place, f.number) for f in bad] == [("docs/prose/introduction.md", "6.1e7")], bad


@pytest.mark.parametrize("text, found", [
    ("h_5 = 0.6867 and 4.7499e-12", [("0.6867", 0.6867, 5e-5), ("4.7499e-12", 4.7499e-12, 5e-17)]),
    (r"$2^{-24} \approx 5.96\times10^{-8}$", [(r"5.96\times10^{-8}", 5.96e-8, 5e-11)]),
    ("$4.7 \\times 10^{-12}$, 3 × 10^-8", [("4.7 \\times 10^{-12}", 4.7e-12, 5e-14), ("3 × 10^-8", 3e-8, 5e-9)]),
    ("α = 10⁻⁶, 11⁵ = 161051", [("10⁻⁶", 1e-6, 5e-7), ("161051", 161051, 0.5)]),
    ("torch 2.13.0, weight_hh_l0, x_{1..5}, 20 steps, (−0.25, 0.25)", [("−0.25", -0.25, 5e-3), ("0.25", 0.25, 5e-3)]),
    ("see https://example.org/a/0.5.html", []),
])
def test_numbers_are_read_as_printed(text, found):
    """What counts as a number, its value and its precision (half a unit of the last printed digit)."""
    shown = [(n.text, n.value, n.half_unit) for n in numbers.numbers_in(text)]
    assert [s[0] for s in shown] == [f[0] for f in found]
    for (_, value, half), (_, want, want_half) in zip(shown, found):
        assert value == pytest.approx(want) and half == pytest.approx(want_half)
