"""README's counts of tests come from runs (rnnspec/document/counts.py), and the check can fail.

The default target's count and the example matrix are checked here against the run that rendered
docs/SPEC.md (whose outcomes test_document_is_current.py keeps equal to a fresh run); the other
targets' counts take a run each, ``python -m rnnspec.document.counts`` (``--write`` puts them in).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from rnnspec.document import counts

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def readme() -> str:
    return (ROOT / "README.md").read_text(encoding="utf-8")


@pytest.fixture(scope="module")
def spec_md() -> str:
    return (ROOT / "docs" / "SPEC.md").read_text(encoding="utf-8")


def test_every_outcome_count_in_readme_is_measured(readme):
    """Each "N passed", "N xfailed", "N not applicable"... of README belongs to a count a run measures."""
    assert not counts.uncovered(readme), (f"README states counts no run measures: {counts.uncovered(readme)}; "
                                          f"add them to rnnspec/document/counts.py's COUNTS")
    for count in counts.COUNTS:
        count.find(readme)  # each measured place is stated exactly once


def test_the_default_targets_count_is_the_document_runs(readme, spec_md):
    """README's eager count is the number of tests of the run that rendered docs/SPEC.md (all passed)."""
    eager = next(c for c in counts.COUNTS if c.name == "eager")
    problems = counts.differences(readme, eager, counts.eager_from_document(spec_md))
    assert not problems, f"{problems}: run `python -m rnnspec.document.counts --only eager --write`"


def test_the_example_matrix_is_the_document_runs(readme, spec_md):
    """README's example matrix shows, per chapter and dtype, the counts of the run that rendered docs/SPEC.md."""
    problems = counts.matrix_differences(readme, spec_md)
    assert not problems, "\n".join(problems)


def test_a_wrong_count_is_named(readme, spec_md):
    """A count one off in README is reported with its name, README's number and the measured one."""
    eager = next(c for c in counts.COUNTS if c.name == "eager")
    measured = counts.eager_from_document(spec_md)
    wrong = counts.written(readme, eager, {"passed": measured["passed"] + 1})
    assert counts.differences(wrong, eager, measured) == [
        f"README's eager count: {measured['passed'] + 1} passed, measured {measured['passed']}"]
    assert counts.written(wrong, eager, measured) == counts.written(readme, eager, measured)


def test_a_wrong_matrix_cell_is_named(readme, spec_md):
    """A cell of the example matrix that the run does not give is named by row and dtype."""
    row = next(line for line in readme.splitlines() if line.startswith("01 forward values"))
    first = row.split()[3]  # the float64 cell, "9/9"
    wrong = readme.replace(row, row.replace(first, "8/9", 1))
    assert any("row 01, float64: 8/9" in p for p in counts.matrix_differences(wrong, spec_md))


def test_a_runs_output_is_counted_with_what_a_target_declines():
    """pytest's summary and -rs lines give passed, xfailed and not applicable (skips a target declines)."""
    output = "\n".join([
        "SKIPPED [28] spec/test_14_default_initialisation.py:116: not applicable to --target cells: torch.nn itself",
        "SKIPPED [4] spec/test_10_lstm_projections.py:72: not applicable to --target cells: no projections",
        "SKIPPED [2] spec/test_02_x.py:1: cuda is not available",
        "418 passed, 34 skipped, 4 xfailed in 3.21s",
    ])
    found = counts.outcome_counts(output)
    assert (found["passed"], found["xfailed"], found["not_applicable"], found["skipped"]) == (418, 4, 32, 2)


def test_a_cell_of_a_table_by_dtype_is_counted_from_the_report_and_named_when_wrong():
    """A deployed target's row counts each dtype's tests from the run's report (not applicable apart from other
    skips); a cell that differs is named with README's words and the measured ones."""
    results = [{"dtype": "float32", "outcome": "passed", "reason": None},
               {"dtype": "float32", "outcome": "xfailed", "reason": "RuntimeError: no kernel"},
               {"dtype": "float32", "outcome": "skipped", "reason": "not applicable to --target onnx: gradients"},
               {"dtype": "float32", "outcome": "skipped", "reason": "cuda is not available"},
               {"dtype": None, "outcome": "passed", "reason": None}]
    assert counts.cell(counts.report_counts(results, "float32")) == "1 passed, 1 xfailed, 1 n/a"
    assert counts.cell(counts.report_counts(results, "no dtype")) == "1 passed"
    assert counts.cell(counts.report_counts(results, "float16")) == "none"
    row = next(c for c in counts.COUNTS if c.name == "export float32")
    readme = "| `--target export` | 1 passed | 2 passed, 1 xfailed | none | none | none |\n"
    measured = counts.report_counts(results, "float32")
    assert counts.differences(readme, row, measured) == [
        "README's export float32 count: 2 passed, 1 xfailed, measured 1 passed, 1 xfailed, 1 n/a"]
    assert counts.differences(counts.written(readme, row, measured), row, measured) == []
