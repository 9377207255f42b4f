"""The terminal matrix every run ends with, and what a run on absent devices does.

* No two cells ever touch, whatever the counts and markers (three-digit counts, every marker),
  and no line exceeds 100 columns: a device whose columns do not fit continues in a second block.
* Every test of the run is in exactly one cell: tests that take no device have a block of their
  own; a requested device where nothing ran gets a final line with the reason, not a block of skips.
* A run whose requested devices are all absent is a usage error (exit 4) before collection, naming
  the devices this machine has.
"""

from __future__ import annotations

import re
from pathlib import Path
from types import SimpleNamespace

import pytest

from rnnspec import vocabulary
from rnnspec.gate.matrix import WIDTH, counted, matrix_lines, tallied

pytest_plugins = ["pytester"]

ROOT = Path(__file__).resolve().parents[1]
DTYPES = ["float64", "float32", "bfloat16", "float16"]
EVERY_MARK = {"passed": 105, "failed": 101, "error": 102, "xfailed": 103, "skipped": 104}  # 515 in all


def table_rows(lines: list[str]) -> list[list[str]]:
    """The cells of each table line, split where two or more spaces separate them."""
    return [re.split(r" {2,}", line.strip()) for line in lines if not line.startswith(("rnn-spec matrix", "cuda:"))]


def test_matrix_columns_never_touch_with_three_digit_counts_and_every_marker():
    """Cells of '105/515 F101 E102 x103 s104' in every column of every device, with the device-free tests: each
    cell is set apart by at least two spaces, reads back whole, and no line exceeds 100 columns."""
    chapters = ["test_09_layers_and_directions", "test_14_default_initialisation", "test_16_support_matrix"]
    cells = {(device, chapter, dtype): dict(EVERY_MARK) for device in ("cpu", "cuda:1") for chapter in chapters
             for dtype in [*DTYPES, vocabulary.NO_DTYPE]}
    cells.update({(vocabulary.NO_DEVICE, chapter, vocabulary.NO_DTYPE): dict(EVERY_MARK) for chapter in chapters})
    lines = [line for line, _ in matrix_lines(cells, ["cpu", "cuda:1"], DTYPES)]
    assert max(len(line) for line in lines) <= WIDTH, max(lines, key=len)
    cell = "105/515 F101 E102 x103 s104"
    rows = [row for row in table_rows(lines) if row[0] != "chapter"]
    assert rows and all(row[1:] and set(row[1:]) == {cell} for row in rows if row[0] != "all"), rows
    assert all(set(row[1:]) == {"315/1545 F303 E306 x309 s312"} for row in rows if row[0] == "all"), rows
    headings = [line for line in lines if line.startswith("rnn-spec matrix") and "(continued)" not in line]
    assert headings == ["rnn-spec matrix on cpu: passed/total; F failed, E error, x xfailed, s skipped",
                        "rnn-spec matrix on cuda:1: passed/total; F failed, E error, x xfailed, s skipped",
                        "rnn-spec matrix of tests on no device: passed/total; F failed, E error, x xfailed, s skipped"]
    blocks = "\n".join(lines).split("\nrnn-spec matrix on cuda:1: ")  # cpu's blocks, then cuda's and no device's
    for block in blocks:
        columns = [column for row in table_rows(block.splitlines()) if row[0] == "chapter" for column in row[1:]]
        assert columns[:5] == [*DTYPES, vocabulary.NO_DTYPE], columns  # every column once, continued in order


def test_the_matrix_keeps_within_100_columns_for_many_devices_and_long_names():
    """Long chapter names are clipped and each device gets its own block, so no line exceeds 100 columns."""
    cells = {(device, "test_99_" + "a_very_long_chapter_name" * 4, dtype): {"passed": 1234, "failed": 567,
                                                                               "xfailed": 89, "skipped": 10}
             for device in ("cpu", "cuda:0", "mps") for dtype in DTYPES}
    lines = [line for line, _ in matrix_lines(cells, ["cpu", "cuda:0", "mps"], DTYPES)]
    assert len([line for line in lines if line.startswith("rnn-spec matrix on") and "continued" not in line]) == 3
    assert max(len(line) for line in lines) <= WIDTH, max(lines, key=len)
    assert "1234/1900 F567 x89 s10" in lines[2]


def report(nodeid, longrepr=None):
    return SimpleNamespace(nodeid=nodeid, longrepr=longrepr)


def test_every_test_is_in_one_cell_and_a_device_that_ran_nothing_gets_a_line():
    """Device-free tests have their own block; the 'all' rows add up to every test of the matrix; an absent device
    has no block but a line with its reason and '0 of N tests ran there', within 100 columns."""
    stats = {"passed": [report("spec/test_01_a.py::t[cpu-float32]"), report("spec/test_15_b.py::t[lstm-zero]"),
                        report("spec/test_13_c.py::t[cpu-lstm]"), report("selftest/test_x.py::t")],
             "failed": [report("fixtures/PROVENANCE.json::every_fixture_file_is_as_its_recording_left_it")],
             "skipped": [report("spec/test_01_a.py::t[cuda-float32]", ("x", 1, "Skipped: cuda is not available")),
                         report("spec/test_13_c.py::t[cuda-lstm]", ("x", 1, "Skipped: cuda is not available"))]}
    cells = counted(tallied(stats), ["cpu", "cuda"], ["float32"])
    absent = {"cuda": "cuda is not available on this machine (torch.cuda.is_available() is False)"}
    shown = matrix_lines(cells, ["cpu", "cuda"], ["float32"], absent)
    lines = [line for line, _ in shown]
    assert [line for line in lines if line.startswith("rnn-spec matrix")] == [
        "rnn-spec matrix on cpu: passed/total; F failed, E error, x xfailed, s skipped",
        "rnn-spec matrix of tests on no device: passed/total; F failed, E error, x xfailed, s skipped"]
    alls = [row for row in table_rows(lines) if row[0] == "all"]
    assert alls == [["all", "1/1", "1/1"], ["all", "1/2 F1"]], alls  # 4 tests here, the selftest in no cell
    assert lines[-1] == ("cuda: not available on this machine (torch.cuda.is_available() is False), 0 of 6 tests "
                         "ran there"), lines
    assert [bad for line, bad in shown if line.startswith(("fixtures", "all"))] == [False, True, True]
    assert max(len(line) for line in lines) <= WIDTH


def test_the_matrix_counts_each_test_once_with_errors_outranking_its_call():
    """A passed call with a failed teardown counts as an error; a claim with no selected dtype is no cell."""
    stats = {"passed": [report("a[cpu-float32]"), report("b[cpu-float32]")], "error": [report("b[cpu-float32]")],
             "xfailed": [report("c[mps-float64]")], "": [report("a[cpu-float32]")],
             "skipped": [report("d[cpu-NOTSET]", ("x.py", 1, "Skipped: got empty parameter set ['dtype']")),
                         report("e[cuda-float32]", ("x.py", 1, "Skipped: cuda is not available"))]}
    assert tallied(stats) == {"a[cpu-float32]": "passed", "b[cpu-float32]": "error",
                              "c[mps-float64]": "xfailed", "e[cuda-float32]": "skipped"}

    def where(nodeid, devices, dtypes):
        place = vocabulary.parse(nodeid, devices, dtypes)
        return place.device, place.dtype
    assert where("spec/x.py::t[cpu-NOTSET]", ["cpu"], ["float32"]) == (None, None)
    assert where("spec/x.py::t[cuda:1-bfloat16-n7]", ["cuda:1"], ["bfloat16"]) == ("cuda:1", "bfloat16")
    assert where("spec/x.py::t[cpu-lstm-2layers]", ["cpu"], ["float32"]) == ("cpu", None)


def run(pytester, *args):
    return pytester.runpytest_inprocess(str(ROOT / "spec" / "test_01_forward_values.py"), "--rootdir", str(ROOT),
                                        "-c", str(ROOT / "pyproject.toml"), "-p", "no:randomly",
                                        "-p", "no:cacheprovider", *args)


def test_no_available_device_is_a_usage_error_naming_the_devices_here(pytester):
    """--device cuda on a machine without CUDA: exit 4 before collection, saying why and which devices exist."""
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has cuda; the case needs a machine without it")
    result = run(pytester, "--device", "cuda")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*--device cuda: no requested device can run here (cuda is not available on this "
                                 "machine*); this machine has: cpu*"])


def test_an_absent_device_beside_a_present_one_runs_and_says_nothing_ran_there(pytester):
    """--device cpu,cuda without CUDA: cpu runs, cuda's tests are skipped, and the matrix's last line says so."""
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has cuda; the case needs a machine without it")
    result = run(pytester, "--device", "cpu,cuda", "--dtype", "float32")
    result.assert_outcomes(passed=9, skipped=9)
    result.stdout.fnmatch_lines(["cuda: not available on this machine (torch.cuda.is_available() is False), 0 of 18 "
                                 "tests ran there"])
    assert "rnn-spec matrix on cuda" not in result.stdout.str()
