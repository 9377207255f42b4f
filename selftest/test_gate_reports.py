"""The upgrade gate's commands on small synthetic reports whose differences are known.

* ``compare``: every outcome change in its category, failures present in both runs named, a new
  failure shown with its whole message, its disagreeing tensors and the command that reproduces it;
  drift decided by one rule, the share of the tolerance used (a row whose share doubled while its
  ULP fell is "grew", never "shrank"), and "unchanged" only when every figure is equal; ``-o``
  writes the file and prints only the summary; exit status 1 on new failures or lost support.
* Reading: versions 1 and 2 are read as version 3 with the fields they lack unknown; other
  versions are refused with a message.
* ``merge``: one valid report, a matrix column per device of each run, titled by the run's label,
  host and target.
* The Markdown of a report opens with its failures, then the matrix; the rest is folded.
"""

from __future__ import annotations

import json

import pytest

from rnnspec.gate import __main__ as commands
from rnnspec.gate import compare, markdown, reports
from synthetic_reports import AFTER, BEFORE, figures, result, synthetic, version_1, version_2


def test_synthetic_reports_are_valid():
    """The synthetic reports used below are valid reports (so they test the real format)."""
    assert reports.validate(BEFORE) == [] and reports.validate(AFTER) == []


def categories(before: dict, after: dict) -> dict[str, list[str]]:
    changes = compare.compare(before, after)["changes"]
    return {category: sorted(b["behaviour"] if b else a["behaviour"] for _, a, b in entries)
            for category, entries in changes.items()}


def test_compare_sorts_every_change_into_its_category():
    """New failures, failures in both runs, new passes, support that appeared or disappeared, tests added and
    removed; a test whose outcome stayed passed is in none."""
    names = categories(BEFORE, AFTER)
    assert names["new_failures"] == ["test_breaks"]
    assert names["still_failing"] == ["test_stays_broken"]
    assert names["new_passes"] == ["test_heals"]
    assert names["support_appeared"] == ["test_gains_strict", "test_gains_support"]
    assert names["support_disappeared"] == ["test_loses_support"]
    assert names["only_before"] == ["test_gone"] and names["only_after"] == ["test_new"]
    assert not any("test_steady" in entries for entries in names.values())


def drift_of(result_: dict, name: str) -> dict[str, tuple[str, str]]:
    """The verdict of each (test, witness) of one drift list."""
    return {(d["test"].split("::")[1], d["witness"]) for d in result_[name]}


def test_compare_decides_grew_and_shrank_by_the_share_of_the_tolerance_alone():
    """A share that doubled is 'grew' although max ULP and abs fell; a share that halved is 'shrank' although
    they rose; figures that moved at an equal share are neither, nor unchanged; only equal figures are unchanged."""
    before = synthetic("2.13.0", [
        result("share_doubles", "passed", tensors={"output": figures(9, 9e-7, share=0.0029)}),
        result("share_halves", "passed", tensors={"output": figures(2, 2e-7, share=0.5)}),
        result("count_moves", "passed", tensors={"output": figures(3, 3e-7, share=0.3, differing=4)}),
        result("same", "passed", tensors={"output": figures(1, 1e-7, share=0.1)}),
    ])
    after = synthetic("2.14.1", [
        result("share_doubles", "passed", tensors={"output": figures(3, 3e-7, share=0.0057)}),
        result("share_halves", "passed", tensors={"output": figures(7, 7e-7, share=0.25)}),
        result("count_moves", "passed", tensors={"output": figures(3, 3e-7, share=0.3, differing=5)}),
        result("same", "passed", tensors={"output": figures(1, 1e-7, share=0.1)}),
    ])
    found = compare.compare(before, after)
    witnesses = ("against_reference", "against_fixture")
    assert drift_of(found, "grew") == {("test_share_doubles[cpu-float32]", w) for w in witnesses}
    assert drift_of(found, "shrank") == {("test_share_halves[cpu-float32]", w) for w in witnesses}
    assert drift_of(found, "moved") == {("test_count_moves[cpu-float32]", w) for w in witnesses}
    assert found["unchanged"] == 4 + 2  # every fixture vs reference (equal), and "same" against both witnesses
    text = compare.render_comparison(before, after, found, ("a.json", "b.json"))
    assert ("| `spec/test_01_x.py::test_share_doubles[cpu-float32]` | share_doubles: output | measured vs fixture "
            "| 0.29% → 0.57% | 9 → 3 | 9e-07 → 3e-07 | 9e-07 → 3e-07 | 1 → 1 |") in text


def test_compare_lists_drift_with_its_figures_and_names_the_failures_in_both_runs():
    """The drift table shows the share of the tolerance, ULP and errors before → after; a failure present in
    both runs is named with its message; the header names torch and the target of each side."""
    result_ = compare.compare(BEFORE, AFTER)
    assert ("test_drifts[cpu-float32]", "against_fixture") in drift_of(result_, "grew")
    assert ("test_improves[cpu-float32]", "against_fixture") in drift_of(result_, "shrank")
    text = compare.render_comparison(BEFORE, AFTER, result_, ("a.json", "b.json"))
    assert ("| `spec/test_01_x.py::test_drifts[cpu-float32]` | drifts: output | measured vs fixture "
            "| 2e-05% → 5e-05% | 2 → 5 | 2e-07 → 5e-07 | 2e-07 → 5e-07 | 1 → 1 |") in text
    assert ("## Failures in both runs: 1\n\n- `spec/test_01_x.py::test_stays_broken[cpu-float32]`: failed → failed: "
            "AssertionError: stays broken, second wording "
            "(before: AssertionError: stays broken, first wording)") in text
    assert "| torch | 2.13.0 | 2.14.1 |" in text and "| target | eager | eager |" in text


def test_a_new_failure_shows_what_was_raised_the_tensors_and_how_to_reproduce_it():
    """Under 'New failures': the whole message, the outcome before, the tensors beyond their tolerance with
    their figures, and the pytest command for that test alone."""
    text = compare.render_comparison(BEFORE, AFTER, compare.compare(BEFORE, AFTER), ("a.json", "b.json"))
    section = text.split("## New failures: 1", 1)[1].split("\n## ", 1)[0]
    assert "AssertionError: breaks disagrees with the truth\n  law: h_t = relu(...)\n  1 of 2 values differ" in section
    assert "Before: passed." in section
    assert "| breaks | output | measured vs reference | 50 | 5e-06 | 5e-06 | 1 of 2 | 3e+02% |" in section
    assert "| h_n |" not in section  # within its tolerance: not a disagreement
    assert "python -m pytest 'spec/test_01_x.py::test_breaks[cpu-float32]' --device cpu --dtype float32" in section


def test_compare_says_when_the_implementations_under_test_differ():
    """An eager run against a cells run: the header shows both targets and says a change may be the target's."""
    cells = {**AFTER, "runs": [{**AFTER["runs"][0], "target": {"name": "cells", "description": "a loop of cells"}}]}
    text = compare.render_comparison(BEFORE, cells, compare.compare(BEFORE, cells), ("a.json", "b.json"))
    assert "| target | eager | cells |" in text and "The implementations under test differ (eager → cells)" in text


def test_compare_command_exits_1_on_new_failures_and_with_o_prints_only_the_summary(tmp_path, capsys):
    """`python -m rnnspec.gate compare` is a gate: exit 1 when something broke, else 0; with -o the Markdown goes
    to the file and the terminal gets the few summary lines."""
    (tmp_path / "a.json").write_text(json.dumps(BEFORE))
    (tmp_path / "b.json").write_text(json.dumps(AFTER))
    assert commands.main(["compare", str(tmp_path / "a.json"), str(tmp_path / "b.json")]) == 1
    assert "## New failures: 1" in capsys.readouterr().out
    assert commands.main(["compare", str(tmp_path / "a.json"), str(tmp_path / "b.json"),
                          "-o", str(tmp_path / "out.md")]) == 1
    printed = capsys.readouterr().out.splitlines()
    assert "## New failures: 1" in (tmp_path / "out.md").read_text()
    assert len(printed) == 6 and printed[-1] == f"wrote {tmp_path / 'out.md'}", printed
    assert printed[1].startswith("outcomes: 1 new failures, 1 still failing, 1 support disappeared"), printed
    assert "verdict: exit 1" in printed[4]
    assert commands.main(["compare", str(tmp_path / "a.json"), str(tmp_path / "a.json")]) == 0


def test_reports_of_another_version_are_refused(tmp_path, capsys):
    """A report of an unknown version is refused with a message, exit 2, rather than misread."""
    (tmp_path / "old.json").write_text(json.dumps({**BEFORE, "version": 0}))
    assert commands.main(["render", str(tmp_path / "old.json")]) == 2
    assert "report version 0; this rnn-spec reads versions 1, 2, 3" in capsys.readouterr().err


@pytest.mark.parametrize("older", [version_1, version_2], ids=["version_1", "version_2"])
def test_older_reports_are_read_as_the_current_version_with_the_new_fields_unknown(tmp_path, older):
    """compare reads a version 1 or 2 report: what it did not record is unknown, nothing else moves."""
    (tmp_path / "old.json").write_text(json.dumps(older(BEFORE)))
    old = reports.load(tmp_path / "old.json")
    assert old["version"] == reports.VERSION and not reports.validate(old), reports.validate(old)
    assert old["runs"][0]["host"] is None
    if older is version_1:
        assert old["runs"][0]["target"]["name"].startswith("unknown") and old["results"][0]["authority"] is None
    assert categories(old, AFTER) == categories(BEFORE, AFTER)


def test_merge_makes_one_matrix_with_a_column_per_device_of_each_run_titled_by_label_host_and_target(tmp_path):
    """Merging a CPU box's and a CUDA box's reports: one valid report; each column names the device, the run's
    label, host and target, and torch; tests that take no device have a column per run."""
    cpu = synthetic("2.14.1", [result("a", "passed"), result("b", "passed")], label="cpu-box", host="node-1")
    cuda = synthetic("2.14.1+cu130", [result("a", "passed", device="cpu"), result("b", "passed", device="cpu"),
                                      result("a", "passed", device="cuda"),
                                      result("b", "failed", device="cuda", message="AssertionError: b"),
                                      {**result("c", "passed"), "device": None, "nodeid": "spec/test_01_x.py::test_c"}],
                     label="cuda-box", host="node-2", devices=("cpu", "cuda"), target="cells")
    for name, content in (("cpu.json", cpu), ("cuda.json", cuda)):
        (tmp_path / name).write_text(json.dumps(content))
    assert commands.main(["merge", str(tmp_path / "cpu.json"), str(tmp_path / "cuda.json"),
                          "-o", str(tmp_path / "all.json")]) == 0
    merged = json.loads((tmp_path / "all.json").read_text())
    assert reports.validate(merged) == []
    assert [(run["label"], run["host"]) for run in merged["runs"]] == [("cpu-box", "node-1"), ("cuda-box", "node-2")]
    markdown_ = (tmp_path / "all.md").read_text()
    header = next(line for line in markdown_.splitlines() if line.startswith("| chapter | dtype |"))
    assert header == ("| chapter | dtype | cpu · cpu-box on node-1, target eager · torch 2.14.1 "
                      "| cpu · cuda-box on node-2, target cells · torch 2.14.1+cu130 "
                      "| cuda · cuda-box on node-2, target cells · torch 2.14.1+cu130 "
                      "| no device · cuda-box on node-2, target cells · torch 2.14.1+cu130 |")
    assert "| 01 x | float32 | 2/2 | 2/2 | 1/2 F1 | 1/1 |" in markdown_
    assert "Conformance by behaviour and device" in markdown_


def test_the_markdown_opens_with_the_failures_then_the_matrix_and_folds_the_rest():
    """The first section is the failures (whole message, disagreeing tensors, reproduction with the options that
    chose the implementation), then the matrix; the runs and every test's row are folded in <details>."""
    report = {**AFTER, "runs": [{**AFTER["runs"][0], "command": [
        "pytest", "-q", "-p", "no:randomly", "-p", "rnnspec.breaks", "--break", "bias_hh_ignored",
        "--target=cells", "--spec-report=out/r.json", "-n", "2"]}]}
    text = markdown.render(report)
    sections = [line for line in text.splitlines() if line.startswith(("## ", "<details>"))]
    assert sections[:2] == ["## Failures: 3", "## Conformance matrix"], sections
    assert all(line.startswith("<details>") for line in sections[2:]), sections
    first = text.split("## Failures: 3", 1)[1].split("### 2.", 1)[0]
    assert "### 1. `spec/test_01_x.py::test_breaks[cpu-float32]`" in first
    assert "  law: h_t = relu(...)\n  1 of 2 values differ; worst at [1]" in first
    assert "| breaks | output | measured vs reference | 50 | 5e-06 | 5e-06 | 1 of 2 | 3e+02% |" in first
    assert ("python -m pytest 'spec/test_01_x.py::test_breaks[cpu-float32]' --device cpu --dtype float32 "
            "-p rnnspec.breaks --break bias_hh_ignored --target cells") in first
    assert "| all | 6/10 F3 x1 |" in text


def test_the_markdown_says_which_requested_device_ran_nothing():
    """A requested device that ran nothing has no column; a line says so, with the reason and the count."""
    report = synthetic("2.14.1", [result("a", "passed"), result("b", "skipped", device="cuda", reason="absent")],
                       devices=("cpu", "cuda"))
    report["runs"][0]["devices"][1].update(available=False, unavailable_because="cuda is not available here")
    text = markdown.render(report)
    assert "| chapter (cpu) | float32 |" in text
    assert "- cuda: not available here, 0 of 2 tests ran there." in text
