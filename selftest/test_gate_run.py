"""The upgrade gate in a real run: the whole spec on CPU, in this process, with ``--spec-report``.

The report validates against ``rnnspec/gate/report.schema.json`` and records the target and each
claim's authority; the run writes nothing into ``fixtures/`` (the tree is hashed before and after);
every fixture file is used by a test (else it is an orphan); the terminal matrix stays within 100
columns and holds every test of the run exactly once; a sound fixtures folder adds no test.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import re
import sys
from pathlib import Path

import pytest

from rnnspec.gate import provenance, reports
from rnnspec.records import INPUTS

ROOT = Path(__file__).resolve().parents[1]
FIXTURES = ROOT / "fixtures"


def tree_digest(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def real_run(tmp_path_factory):
    """Run the whole spec in this process (--device cpu, all dtypes, --spec-report); fixtures hashed around it."""
    folder = tmp_path_factory.mktemp("real-run")
    path = folder / "report.json"
    before = tree_digest(FIXTURES)
    output = io.StringIO()
    saved_path, saved_cwd = list(sys.path), os.getcwd()
    try:
        with contextlib.redirect_stdout(output):
            code = pytest.main([str(ROOT / "spec"), "--rootdir", str(ROOT), "-c", str(ROOT / "pyproject.toml"),
                                "-p", "no:randomly", "-p", "no:cacheprovider", "-p", "no:xdist", "--capture=sys",
                                "-q", "--device", "cpu", f"--basetemp={folder / 'tmp'}", "--spec-report", str(path)])
    finally:
        sys.path[:], _ = saved_path, os.chdir(saved_cwd)
    after = tree_digest(FIXTURES)
    assert path.is_file(), f"the run wrote no report (exit {code}):\n{output.getvalue()[-3000:]}"
    return {"code": code, "report": json.loads(path.read_text()), "markdown": path.with_suffix(".md").read_text(),
            "output": output.getvalue(), "before": before, "after": after}


def test_a_normal_run_writes_nothing_into_fixtures(real_run):
    """A normal run (here the whole spec with --spec-report) leaves every file under fixtures/ as it was."""
    before, after = real_run["before"], real_run["after"]
    changed = sorted(name for name in set(before) | set(after) if before.get(name) != after.get(name))
    assert not changed, f"a normal run wrote into fixtures/: {changed}"


def test_the_report_validates_against_its_schema(real_run):
    """The JSON report of a real run is valid under rnnspec/gate/report.schema.json."""
    problems = reports.validate(real_run["report"])
    assert not problems, "the report breaks its schema:\n" + "\n".join(problems[:20])
    assert real_run["report"]["format"] == "rnn-spec-report" and real_run["report"]["version"] == reports.VERSION


def test_the_report_holds_a_row_per_test_with_figures_for_every_checked_tensor(real_run):
    """Each passing spec_check test's row has, per tensor, figures against the reference and the fixture."""
    results = real_run["report"]["results"]
    checked = [r for r in results if r["comparisons"] and r["outcome"] == "passed"]
    assert checked and all(r["device"] == "cpu" and r["dtype"] for r in checked)
    for result in checked:
        for comparison in result["comparisons"]:
            assert comparison["fixture_readable"], comparison["fixture"]
            for name, tensor in comparison["tensors"].items():
                assert tensor["against_reference"] is not None and tensor["against_fixture"] is not None, (
                    result["nodeid"], name)
    assert len({r["nodeid"] for r in results}) == len(results)


def test_the_report_header_names_the_baseline_beside_the_running_torch(real_run):
    """The run names its torch, the fixtures' baseline, devices, cuDNN, TF32 and determinism flags."""
    import torch

    run = real_run["report"]["runs"][0]
    assert run["torch"]["version"] == torch.__version__
    assert run["baseline"] == provenance.read(FIXTURES)
    assert run["numerics"]["in_tests"]["cudnn.allow_tf32"] is False
    markdown = real_run["markdown"]
    for text in (f"| torch (running) | {torch.__version__} |", "fixtures recorded with", "TF32 in tests",
                 "deterministic algorithms", "CUDA · cuDNN", "## Conformance matrix", "Errors per tensor"):
        assert text in markdown, text


def test_every_fixture_file_is_used_by_a_test(real_run):
    """A fixture file that no test of the whole spec reads is an orphan, even when its chapter declares the record."""
    results = real_run["report"]["results"]
    used = {c["fixture"] for r in results for c in r["comparisons"]}
    used |= {fixture.rpartition("-")[0] + f"-{INPUTS}.npz" for fixture in used}  # its inputs file
    failing = {r["chapter"] for r in results if r["outcome"] in ("failed", "error")}
    unused = sorted(str(p.relative_to(ROOT)) for p in FIXTURES.glob("*/*.npz")
                    if str(p.relative_to(ROOT)) not in used and p.parent.name not in failing)
    assert not unused, (f"fixture files no test uses: {unused}. Delete each (git rm) and its Record, or "
                        f"restore the test that calls spec_check with that record")


def test_the_terminal_matrix_fits_in_100_columns(real_run):
    """Every run prints the chapter × dtype matrix for each device, no line wider than 100 columns."""
    lines = real_run["output"].splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("rnn-spec matrix on cpu"))
    block = lines[start:start + 3 + len(list((ROOT / "spec").glob("test_*.py")))]
    assert block[1].split()[:5] == ["chapter", "float64", "float32", "bfloat16", "float16"], block
    assert any(line.startswith("all ") for line in block), block
    assert max(len(line) for line in block) <= 100, block


def test_the_terminal_matrix_holds_every_test_once(real_run):
    """The 'all' rows of the matrix's blocks (cpu, and the tests that take no device) add up to every test the
    report holds, less the claims about a dtype no run selected; no test is added for a sound fixtures folder."""
    results = real_run["report"]["results"]
    cases = [r for r in results if not reports.not_a_case(r)]
    alls = [re.split(r" {2,}", line.strip())[1:] for line in real_run["output"].splitlines() if line.startswith("all ")]
    totals = [int(cell.split("/")[1].split()[0]) for row in alls for cell in row if cell != "-"]
    assert sum(totals) == len(cases), (alls, len(cases))
    assert not any(r["nodeid"].startswith("fixtures/") for r in results)


def test_the_report_records_the_target_and_each_claims_authority(real_run):
    """The run names its target (eager here); every result of a chapter carries its authority."""
    report = real_run["report"]
    assert report["runs"][0]["target"]["name"] == "eager"
    assert all(r["authority"] and r["authority"]["kind"] in ("documented", "derived", "observed")
               for r in report["results"])
    assert report["results"] and "## Failures: none" in real_run["markdown"]
