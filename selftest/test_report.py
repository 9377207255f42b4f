"""The upgrade gate: error figures, the report and its schema, compare, merge, provenance, re-baselining.

* Error figures (``rnnspec/figures.py``): the ULP distance of hand-counted cases in each dtype,
  checked against stepping with ``numpy.nextafter`` (torch's for bfloat16), the special values
  (NaN, infinities, signed zeros) as documented, and ``tolerance_used <= 1`` exactly where the
  spec's rule ``|a - b| <= atol + rtol |b|`` holds; any damaged file (every truncation, every
  flipped byte) fails with the fix, never with a bare exception.
* A real run: the whole spec on CPU, in-process, with ``--spec-report``. The report validates
  against ``rnnspec/report.schema.json``; the run writes nothing into ``fixtures/`` (the tree is
  hashed before and after); every fixture file is used by a test (else it is an orphan); the
  terminal matrix stays within 100 columns.
* ``compare`` and ``merge`` on small synthetic reports whose differences are known.
* Provenance (``rnnspec/provenance.py``): re-recorded files move to their new baseline; a file no
  recording wrote, or changed since, is found with its fix.
* In a copy of one chapter (``fixtures/`` of the repository is never written): a corrupted, a
  deleted, a mistagged and an orphan fixture each fail with a message naming the file and the
  fix; a recording run refuses values that disagree with the truth (nothing written), and a
  recording run that succeeds updates PROVENANCE.json and writes CHANGES.md with what moved.
"""

from __future__ import annotations

import contextlib
import copy
import hashlib
import io
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from repository_copy import copy_into
from rnnspec import provenance, report, reporting, vocabulary
from rnnspec.comparison import Tolerance
from rnnspec.figures import INF, error_figures, ordinals
from rnnspec.fixture_files import record_command
from rnnspec.records import INPUTS

ROOT = Path(__file__).resolve().parents[1]
FIXTURES = ROOT / "fixtures"
TOLERANCE = Tolerance("float32", rtol=1.3e-6, atol=1e-5, resolution=2.0**-149, source="test")


# ----------------------------------------------------------------------------------------------
# Error figures
# ----------------------------------------------------------------------------------------------

def steps(start: float, count: int, dtype: str) -> float:
    """``start`` moved ``count`` representable values up in ``dtype`` (an independent witness of ULP distance)."""
    if dtype == "bfloat16":
        import torch

        value = torch.tensor(start, dtype=torch.bfloat16)
        for _ in range(count):
            value = torch.nextafter(value, torch.tensor(float("inf"), dtype=torch.bfloat16))
        return float(value)
    kind = np.dtype(dtype).type
    value = kind(start)
    for _ in range(count):
        value = np.nextafter(value, kind(np.inf))
    return float(value)


@pytest.mark.parametrize("number_format", ["float64", "float32", "bfloat16", "float16"])
@pytest.mark.parametrize("start", [1.0, -3.0, 0.0, 1000.0, 2.0**-10], ids=lambda s: f"from{s:g}")
def test_ulp_distance_counts_the_representable_values_between(number_format, start):
    """Moving k values up the format's number line (nextafter) is k ULP, across zero and binades too."""
    for count in (1, 2, 7, 300):
        moved = steps(start, count, number_format)
        assert error_figures([moved], [start], number_format)["max_ulp"] == count, (number_format, start, count)


@pytest.mark.parametrize("number_format, smallest", [("float64", 2.0**-1074), ("float32", 2.0**-149),
                                                     ("bfloat16", 2.0**-133), ("float16", 2.0**-24)])
def test_signed_zeros_are_one_point_and_the_smallest_subnormals_two_apart(number_format, smallest):
    """+0 and -0 are 0 ULP apart; 0 and the smallest subnormal 1; that subnormal and its negative 2."""
    dtype = number_format
    assert error_figures([0.0], [-0.0], dtype) == {"max_abs": 0.0, "max_rel": 0.0, "max_ulp": 0, "differing": 0}
    assert error_figures([smallest], [0.0], dtype)["max_ulp"] == 1
    assert error_figures([-smallest], [smallest], dtype)["max_ulp"] == 2
    assert ordinals(np.array([-smallest, -0.0, 0.0, smallest]), dtype).tolist() == [-1, 0, 0, 1]


def test_special_values_follow_the_documented_rules():
    """NaN = NaN and equal infinities are 0 apart; NaN or an infinity against anything else is inf."""
    same = error_figures([np.nan, np.inf, -np.inf], [np.nan, np.inf, -np.inf], "float16", TOLERANCE)
    assert same == {"max_abs": 0.0, "max_rel": 0.0, "max_ulp": 0, "tolerance_used": 0.0, "differing": 0}
    for actual, expected in [(np.nan, 1.0), (1.0, np.nan), (65504.0, np.inf), (np.inf, 65504.0), (np.inf, -np.inf)]:
        figures = error_figures([actual], [expected], "float16", TOLERANCE)
        assert figures == {"max_abs": INF, "max_rel": INF, "max_ulp": INF, "tolerance_used": INF, "differing": 1}, (
            actual, expected, figures)


def test_relative_error_is_against_the_witness_and_infinite_where_it_is_zero():
    """|a-b|/|b| with b the witness: 1.5 against 1 is 0.5; anything non-zero against 0 is inf."""
    figures = error_figures([1.5, 0.0], [1.0, 0.0], "float64")
    assert figures["max_rel"] == 0.5 and figures["max_abs"] == 0.5 and figures["differing"] == 1
    assert error_figures([1e-30], [0.0], "float64")["max_rel"] == INF


def test_tolerance_used_is_at_most_one_exactly_where_the_spec_accepts():
    """tolerance_used <= 1 if and only if numpy.isclose (the spec's rule) accepts every element."""
    generator = np.random.default_rng(7)
    for _ in range(200):
        expected = generator.normal(size=5).astype(np.float32).astype(np.float64)
        actual = expected * (1 + generator.normal(size=5) * 10.0 ** generator.uniform(-8, -5))
        actual = actual.astype(np.float32).astype(np.float64)
        used = error_figures(actual, expected, "float32", TOLERANCE)["tolerance_used"]
        assert (used <= 1) == bool(np.isclose(actual, expected, rtol=TOLERANCE.rtol, atol=TOLERANCE.atol).all())


def test_shapes_that_differ_give_infinite_figures_and_say_so():
    """A shape mismatch is not compared elementwise: every figure is inf, with a note."""
    figures = error_figures(np.zeros((2, 3)), np.zeros((3, 2)), "float32")
    assert figures["max_ulp"] == INF and "shape (2, 3) against (3, 2)" in figures["note"]


def test_any_damaged_fixture_fails_with_the_fix_never_a_bare_exception(tmp_path):
    """Every single flipped byte and every truncation of a fixture either leaves it readable or fails
    with 'is unreadable … Restore it from git': no zlib.error or NotImplementedError escapes."""
    from rnnspec.fixture_files import load_fixture

    data = (FIXTURES / "test_01_forward_values" / "relu_rnn_two_steps-float32.npz").read_bytes()
    damaged = [data[:cut] for cut in range(0, len(data), 41)]
    damaged += [data[:at] + bytes([data[at] ^ 0x55]) + data[at + 1:] for at in range(0, len(data), 3)]
    path, kinds = tmp_path / "damaged-float32.npz", set()
    for content in damaged:
        path.write_bytes(content)
        try:
            load_fixture(path)
        except pytest.fail.Exception as failure:
            assert "is unreadable" in str(failure) and "Restore it from git (git checkout --" in str(failure)
            kinds.add(str(failure).split("(")[1].split(":")[0])
    assert {"BadZipFile", "error"} <= kinds, kinds  # zipfile's and zlib's errors both occurred and were caught


def test_fixture_reader_returns_what_numpy_reads_and_never_unpickles(tmp_path):
    """read_fixture equals numpy.load on every committed fixture (dtype, shape, values, names); other
    headers (Fortran order, 0-d, empty) read too, and an object array is refused, not unpickled."""
    from rnnspec.fixture_files import read_fixture

    for path in sorted(FIXTURES.rglob("*.npz")):
        ours = read_fixture(path)
        with np.load(path, allow_pickle=False) as archive:
            assert sorted(ours) == sorted(archive.files), path
            for key in archive.files:
                theirs = archive[key]
                assert (ours[key].dtype, ours[key].shape) == (theirs.dtype, theirs.shape), (path, key)
                assert np.array_equal(ours[key], theirs), (path, key)
    odd = {"fortran": np.asfortranarray(np.arange(6.0).reshape(2, 3)), "scalar": np.array(3.5),
           "empty": np.zeros((0, 2)), "tag": np.array("float16")}
    np.savez_compressed(tmp_path / "odd.npz", **odd)
    read = read_fixture(tmp_path / "odd.npz")
    assert all(np.array_equal(read[k], v) and read[k].shape == v.shape for k, v in odd.items())
    np.savez(tmp_path / "pickled.npz", value=np.array([{"a": 1}], dtype=object))
    with pytest.raises(ValueError, match="allow_pickle=False"):
        read_fixture(tmp_path / "pickled.npz")


# ----------------------------------------------------------------------------------------------
# A real run, in-process: the whole spec on CPU with --spec-report
# ----------------------------------------------------------------------------------------------

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
    """The JSON report of a real run is valid under rnnspec/report.schema.json (format 1)."""
    problems = reporting.validate(real_run["report"])
    assert not problems, "the report breaks its schema:\n" + "\n".join(problems[:20])
    assert real_run["report"]["format"] == "rnn-spec-report" and real_run["report"]["version"] == reporting.VERSION


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


def test_the_matrix_keeps_within_100_columns_for_many_devices_and_long_names():
    """Long chapter names are clipped and each device gets its own block, so no line exceeds 100 columns."""
    cells = {(device, "test_99_" + "a_very_long_chapter_name" * 4, dtype): {"passed": 1234, "failed": 567,
                                                                               "xfailed": 89, "skipped": 10}
             for device in ("cpu", "cuda:0", "mps") for dtype in ("float64", "float32", "bfloat16", "float16")}
    lines = [line for line, _ in report.matrix_lines(cells, ["cpu", "cuda:0", "mps"],
                                                     ["float64", "float32", "bfloat16", "float16"])]
    assert len([line for line in lines if line.startswith("rnn-spec matrix on")]) == 3
    assert max(len(line) for line in lines) <= 100, max(lines, key=len)
    assert "1234/1900 F567 x89 s10" in lines[2]


def test_the_matrix_counts_each_test_once_with_errors_outranking_its_call():
    """A passed call with a failed teardown counts as an error; a claim with no selected dtype is no cell."""
    from types import SimpleNamespace

    def made(nodeid, longrepr=None):
        return SimpleNamespace(nodeid=nodeid, longrepr=longrepr)

    stats = {"passed": [made("a[cpu-float32]"), made("b[cpu-float32]")], "error": [made("b[cpu-float32]")],
             "xfailed": [made("c[mps-float64]")], "": [made("a[cpu-float32]")],
             "skipped": [made("d[cpu-NOTSET]", ("x.py", 1, "Skipped: got empty parameter set ['dtype']")),
                         made("e[cuda-float32]", ("x.py", 1, "Skipped: cuda is not available"))]}
    assert report.tallied(stats) == {"a[cpu-float32]": "passed", "b[cpu-float32]": "error",
                                     "c[mps-float64]": "xfailed", "e[cuda-float32]": "skipped"}
    def where(nodeid, devices, dtypes):
        place = vocabulary.parse(nodeid, devices, dtypes)
        return place.device, place.dtype
    assert where("spec/x.py::t[cpu-NOTSET]", ["cpu"], ["float32"]) == (None, None)
    assert where("spec/x.py::t[cuda:1-bfloat16-n7]", ["cuda:1"], ["bfloat16"]) == ("cuda:1", "bfloat16")
    assert where("spec/x.py::t[cpu-lstm-2layers]", ["cpu"], ["float32"]) == ("cpu", None)


# ----------------------------------------------------------------------------------------------
# compare and merge, on synthetic reports
# ----------------------------------------------------------------------------------------------

def figures(ulp: int, abs_: float = 0.0) -> dict:
    return {"max_abs": abs_, "max_rel": abs_, "max_ulp": ulp, "tolerance_used": abs_, "differing": int(ulp > 0)}


def result(name: str, outcome: str, *, device="cpu", dtype="float32", ulp: int | None = None, message=None,
           reason=None, run: int = 0) -> dict:
    comparisons = [] if ulp is None else [{
        "record": name, "fixture": f"fixtures/test_01_x/{name}-{dtype}.npz", "fixture_readable": True,
        "truth": name, "law": "a law", "recording": False,
        "tensors": {"output": {"shape": [2], "tolerance": {"rtol": 1e-6, "atol": 1e-5, "elementwise_relative": False,
                                                            "envelope": False},
                               "against_reference": figures(ulp, ulp * 1e-7),
                               "against_fixture": figures(ulp, ulp * 1e-7),
                               "fixture_against_reference": figures(0)}}}]
    return {"run": run, "nodeid": f"spec/test_01_x.py::test_{name}[{device}-{dtype}]", "chapter": "test_01_x",
            "behaviour": f"test_{name}", "claim": None, "device": device, "dtype": dtype, "params": {},
            "outcome": outcome, "reason": reason, "message": message, "duration_s": 0.01, "comparisons": comparisons,
            "authority": {"kind": "documented", "source": "https://pytorch.org/docs/stable/"}, "observations": {}}


def synthetic(torch_version: str, results: list[dict], label: str = "linux-x86_64",
              devices: tuple[str, ...] = ("cpu",)) -> dict:
    flags = {"cudnn.allow_tf32": False, "cuda.matmul.allow_tf32": False, "deterministic_algorithms": False}
    run = {"label": label, "command": ["pytest"], "exit_status": 0, "duration_s": 1.0, "python": "3.11",
           "platform": "Linux",
           "machine": "x86_64", "numpy": "2.4.6", "dtypes": ["float32"], "baseline": None,
           "torch": {"version": torch_version, "git_version": None, "cuda": None, "hip": None, "cudnn": None,
                     "cpu_capability": "AVX2"},
           "devices": [{"name": d, "type": d, "available": True, "description": d, "unavailable_because": None}
                       for d in devices],
           "numerics": {"in_tests": flags, "session": flags, "deterministic_warn_only": False,
                        "cudnn": {"enabled": True, "deterministic": False, "benchmark": False}},
           "totals": reporting.totals(results), "target": {"name": "eager", "description": "torch.nn as installed"},
           "cpu": {"cpu_model": "AMD EPYC", "cpu_vendor": "AuthenticAMD", "cpu_capability": "AVX2", "blas": "mkl",
                   "blas_version": "2024.2", "onednn_version": "3.12.0", "onednn_rnn_dtypes": ["float32"],
                   "threads": 2, "kernel_variables": {}}}
    return {"format": "rnn-spec-report", "version": 2, "created": "2026-01-01T00:00:00+00:00", "runs": [run],
            "results": results}


def version_1(report: dict) -> dict:
    """The same report as version 1 wrote it: no target, CPU facts, authorities, observations or envelopes."""
    runs = [{key: value for key, value in run.items() if key not in ("target", "cpu")} for run in report["runs"]]
    results = [{**{key: value for key, value in result.items() if key not in ("authority", "observations")},
                "comparisons": [{**c, "tensors": {name: {**t, "tolerance": {k: v for k, v in t["tolerance"].items()
                                                                          if k != "envelope"}}
                                                  for name, t in c["tensors"].items()}} for c in result["comparisons"]]}
               for result in report["results"]]
    return {**report, "version": 1, "runs": runs, "results": results}


BEFORE = synthetic("2.13.0", [
    result("steady", "passed", ulp=1),
    result("breaks", "passed", ulp=0),
    result("heals", "failed", ulp=40, message="AssertionError: heals disagrees"),
    result("drifts", "passed", ulp=2),
    result("improves", "passed", ulp=9),
    result("gains_support", "xfailed", reason="TypeError: ...no float64..."),
    result("gains_strict", "xfailed", reason="TypeError: ...no float16..."),
    result("loses_support", "passed"),
    result("gone", "passed"),
])
AFTER = synthetic("2.14.1", [
    result("steady", "passed", ulp=1),
    result("breaks", "failed", ulp=50, message="AssertionError: breaks disagrees with the truth"),
    result("heals", "passed", ulp=0),
    result("drifts", "passed", ulp=5),
    result("improves", "passed", ulp=3),
    result("gains_support", "passed"),
    result("gains_strict", "failed", message="[XPASS(strict)] TypeError: ...no float16..."),
    result("loses_support", "xfailed", reason="TypeError: now unsupported"),
    result("new", "passed"),
])


def test_synthetic_reports_are_valid():
    """The synthetic reports used below are valid reports (so they test the real format)."""
    assert reporting.validate(BEFORE) == [] and reporting.validate(AFTER) == []


def test_compare_sorts_every_change_into_its_category():
    """New failures, new passes, support that appeared or disappeared, tests added and removed."""
    changes = reporting.compare(BEFORE, AFTER)["changes"]
    names = {category: sorted(b["behaviour"] if b else a["behaviour"] for _, a, b in entries)
             for category, entries in changes.items()}
    assert names["new_failures"] == ["test_breaks"]
    assert names["new_passes"] == ["test_heals"]
    assert names["support_appeared"] == ["test_gains_strict", "test_gains_support"]
    assert names["support_disappeared"] == ["test_loses_support"]
    assert names["only_before"] == ["test_gone"] and names["only_after"] == ["test_new"]


def test_compare_lists_drift_that_grew_or_shrank_with_figures():
    """Per tensor and witness: 2 → 5 ULP grew, 9 → 3 shrank, 1 → 1 is unchanged and not listed."""
    result_ = reporting.compare(BEFORE, AFTER)
    grew = {(d["test"].split("::")[1], d["witness"]): (d["before"]["max_ulp"], d["after"]["max_ulp"])
            for d in result_["grew"]}
    shrank = {(d["test"].split("::")[1], d["witness"]) for d in result_["shrank"]}
    assert grew[("test_drifts[cpu-float32]", "against_fixture")] == (2, 5)
    assert grew[("test_breaks[cpu-float32]", "against_reference")] == (0, 50)
    assert ("test_improves[cpu-float32]", "against_fixture") in shrank
    assert not any("steady" in key[0] for key in grew | dict.fromkeys(shrank))
    text = reporting.render_comparison(BEFORE, AFTER, result_, ("a.json", "b.json"))
    assert "| `spec/test_01_x.py::test_drifts[cpu-float32]` | drifts: output | measured vs fixture | 2 → 5 |" in text
    assert "## New failures: 1" in text and "breaks disagrees with the truth" in text
    assert "| torch | 2.13.0 | 2.14.1 |" in text


def test_compare_command_exits_1_on_new_failures_and_0_otherwise(tmp_path, capsys):
    """`python -m rnnspec.report compare` is a gate: exit 1 when something broke, else 0."""
    (tmp_path / "a.json").write_text(json.dumps(BEFORE))
    (tmp_path / "b.json").write_text(json.dumps(AFTER))
    assert reporting.main(["compare", str(tmp_path / "a.json"), str(tmp_path / "b.json")]) == 1
    assert "## New failures: 1" in capsys.readouterr().out
    assert reporting.main(["compare", str(tmp_path / "a.json"), str(tmp_path / "a.json")]) == 0


def test_reports_of_another_version_are_refused(tmp_path, capsys):
    """A report of an unknown version is refused with a message, exit 2, rather than misread."""
    (tmp_path / "old.json").write_text(json.dumps({**BEFORE, "version": 0}))
    assert reporting.main(["render", str(tmp_path / "old.json")]) == 2
    assert "report version 0; this rnn-spec reads versions 1, 2" in capsys.readouterr().err


def test_version_1_reports_are_read_as_version_2_with_the_new_fields_unknown(tmp_path):
    """compare reads a version 1 report: its target is unknown, its claims carry no authority, nothing else moves."""
    (tmp_path / "old.json").write_text(json.dumps(version_1(BEFORE)))
    (tmp_path / "new.json").write_text(json.dumps(AFTER))
    old = reporting.load(tmp_path / "old.json")
    assert old["version"] == 2 and not reporting.validate(old), reporting.validate(old)
    assert old["runs"][0]["target"]["name"].startswith("unknown") and old["results"][0]["authority"] is None
    def outcomes(result):
        return {name: [(key, a and a["outcome"], b and b["outcome"]) for key, a, b in entries]
                for name, entries in result["changes"].items()}
    assert outcomes(reporting.compare(old, reporting.load(tmp_path / "new.json"))) == \
        outcomes(reporting.compare(BEFORE, AFTER))


def test_merge_makes_one_matrix_with_a_column_per_device_of_each_machine(tmp_path):
    """Merging a CPU box's and a CUDA box's reports: one valid report, a column per device and machine."""
    cpu = synthetic("2.14.1", [result("a", "passed"), result("b", "passed")], label="cpu-box")
    cuda = synthetic("2.14.1+cu130", [result("a", "passed", device="cpu"), result("b", "passed", device="cpu"),
                                      result("a", "passed", device="cuda"), result("b", "failed", device="cuda",
                                                                                   message="AssertionError: b")],
                     label="cuda-box", devices=("cpu", "cuda"))
    for name, content in (("cpu.json", cpu), ("cuda.json", cuda)):
        (tmp_path / name).write_text(json.dumps(content))
    assert reporting.main(["merge", str(tmp_path / "cpu.json"), str(tmp_path / "cuda.json"),
                        "-o", str(tmp_path / "all.json")]) == 0
    merged = json.loads((tmp_path / "all.json").read_text())
    assert reporting.validate(merged) == []
    assert [run["label"] for run in merged["runs"]] == ["cpu-box", "cuda-box"]
    assert sorted({(r["run"], r["device"]) for r in merged["results"]}) == [(0, "cpu"), (1, "cpu"), (1, "cuda")]
    markdown = (tmp_path / "all.md").read_text()
    header = next(line for line in markdown.splitlines() if line.startswith("| chapter | dtype |"))
    assert header == ("| chapter | dtype | cpu · cpu-box · torch 2.14.1 | cpu · cuda-box · torch 2.14.1+cu130 "
                      "| cuda · cuda-box · torch 2.14.1+cu130 |")
    assert "| 01 x | float32 | 2/2 | 2/2 | 1/2 F1 |" in markdown
    assert "## Conformance by behaviour" in markdown


# ----------------------------------------------------------------------------------------------
# Provenance
# ----------------------------------------------------------------------------------------------

ENV = {"torch": "2.13.0", "torch_git": "abc", "numpy": "2.4.6", "python": "3.11.7", "system": "Linux",
       "machine": "x86_64", "cpu_capability": "AVX2",
       "numerics": {"cudnn.allow_tf32": False, "cuda.matmul.allow_tf32": False, "deterministic_algorithms": False}}


def make_fixtures(folder: Path, names: list[str], content: bytes = b"recorded") -> None:
    for name in names:
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_bytes(content)


def test_provenance_moves_re_recorded_files_to_their_new_baseline(tmp_path):
    """A file re-recorded by another torch moves to that torch's baseline with its new digest; files
    not recorded keep their entries; entries of deleted files are dropped."""
    make_fixtures(tmp_path, ["ch1/a-float32.npz", "ch1/b-float32.npz", "ch2/c-float64.npz"])
    provenance.update(tmp_path, ["ch1/a-float32.npz", "ch1/b-float32.npz", "ch2/c-float64.npz"], ENV,
                      today="2026-01-01")
    make_fixtures(tmp_path, ["ch1/b-float32.npz"], content=b"recorded again")
    document = provenance.update(tmp_path, ["ch1/b-float32.npz"], {**ENV, "torch": "2.14.1"}, today="2026-02-01")
    digest = provenance.file_digest
    assert [(b["torch"], b["fixtures"], b["recorded_on"]) for b in document["baselines"]] == [
        ("2.13.0", {"ch1": {"a-float32.npz": digest(tmp_path / "ch1/a-float32.npz")},
                    "ch2": {"c-float64.npz": digest(tmp_path / "ch2/c-float64.npz")}}, "2026-01-01"),
        ("2.14.1", {"ch1": {"b-float32.npz": digest(tmp_path / "ch1/b-float32.npz")}}, "2026-02-01")]
    assert provenance.read(tmp_path) == document and provenance.problems(document, tmp_path) == []
    assert reporting.validate({**BEFORE, "runs": [{**BEFORE["runs"][0], "baseline": document}]}) == []
    (tmp_path / "ch2" / "c-float64.npz").unlink()
    document = provenance.update(tmp_path, ["ch1/a-float32.npz"], {**ENV, "torch": "2.14.1"}, today="2026-03-01")
    assert [(b["torch"], sorted(b["fixtures"]["ch1"])) for b in document["baselines"]] == [
        ("2.14.1", ["a-float32.npz", "b-float32.npz"])]


def test_provenance_finds_fixtures_copied_in_or_changed_by_hand(tmp_path):
    """A file no recording wrote, and a file edited since its recording, each a problem with its fix."""
    make_fixtures(tmp_path, ["ch1/a-float32.npz", "ch2/b-float32.npz"])
    document = provenance.update(tmp_path, ["ch1/a-float32.npz", "ch2/b-float32.npz"], ENV)
    make_fixtures(tmp_path, ["ch1/a-float32.npz"], content=b"edited by hand")
    make_fixtures(tmp_path, ["ch2/copied-float32.npz"])
    (tmp_path / "ch2" / "b-float32.npz").unlink()  # a deleted file is the chapter's problem, not provenance's
    assert provenance.problems(document, tmp_path) == [
        "fixtures/ch1/a-float32.npz changed since torch 2.13.0 recorded it (its sha256 is not the one in "
        "PROVENANCE.json), not by a recording run; restore it (git checkout -- fixtures/ch1/a-float32.npz) or, if "
        "the change is deliberate, re-record: pytest --regen-all --device cpu spec/ch1.py",
        "fixtures/ch2/copied-float32.npz: PROVENANCE.json names no baseline for it, so no recording run wrote it; "
        "if it is an orphan delete it (git rm), else re-record it: pytest --regen-all --device cpu spec/ch2.py"]


def test_provenance_of_this_process_names_torch_numpy_and_the_flags_of_a_test():
    """environment(): the versions, the platform and the numerics flags tests run under (TF32 off)."""
    import numpy
    import torch

    env = provenance.environment()
    assert env["torch"] == torch.__version__ and env["numpy"] == numpy.__version__
    assert env["numerics"]["cudnn.allow_tf32"] is False and env["numerics"]["cuda.matmul.allow_tf32"] is False


def test_unreadable_provenance_says_how_to_restore_it(tmp_path):
    """A damaged PROVENANCE.json is an error naming the file and the git command that restores it."""
    (tmp_path / provenance.FILE).write_text("{ not json")
    with pytest.raises(provenance.ProvenanceError,
                       match=r"PROVENANCE.json is unreadable .*restore it from git \(git checkout --"):
        provenance.read(tmp_path)


# ----------------------------------------------------------------------------------------------
# A copy of one chapter: damaged fixtures, recording runs
# ----------------------------------------------------------------------------------------------

CHAPTER = "test_01_forward_values"
COPIED = ["conftest.py", "pyproject.toml", "expectations", "spec/__init__.py", f"spec/{CHAPTER}.py",
          f"fixtures/{CHAPTER}", "selftest/test_fixtures_against_truth.py"]
# Several sessions in one process (torch is imported once); after each, its exit status and a digest
# of fixtures/, so that what a session wrote is known.
DRIVER = """
import hashlib, json, sys, pathlib, pytest
for arguments in json.loads(sys.argv[1]):
    code = pytest.main(arguments)
    digest = hashlib.sha256()
    for path in sorted(pathlib.Path("fixtures").rglob("*")):
        if path.is_file():
            digest.update(str(path).encode() + path.read_bytes())
    print(f"\\n@@session-exit {int(code)} {digest.hexdigest()}@@", flush=True)
"""
# Loaded with -p in the refused recording: every truth moves by 10 % (beyond every dtype's tolerance),
# so every measurement disagrees.
TRUTH_MOVED = """
from rnnspec import comparison

_in_dtype = comparison.Truth.in_dtype


def pytest_configure(config):
    comparison.Truth.in_dtype = lambda self, dtype: {k: v * 1.1 for k, v in _in_dtype(self, dtype).items()}


def pytest_unconfigure(config):
    comparison.Truth.in_dtype = _in_dtype
"""


def make_copy(target: Path) -> Path:
    """The files one chapter needs, with its fixtures and their provenance, in ``target``."""
    copy_into(target, COPIED)
    document = copy.deepcopy(provenance.read(FIXTURES))
    for baseline in document["baselines"]:
        baseline["fixtures"] = {k: v for k, v in baseline["fixtures"].items() if k == CHAPTER}
    document["baselines"] = [b for b in document["baselines"] if b["fixtures"]]
    (target / "fixtures" / provenance.FILE).write_text(provenance.dumps(document))
    return target


class Session:
    def __init__(self, code: int, output: str, digest: str, report_path: Path | None):
        self.code, self.output, self.digest = code, output, digest
        self.report = json.loads(report_path.read_text()) if report_path and report_path.is_file() else None

    def messages(self, file: str) -> list[str]:
        """The messages of the failed tests whose message names ``file``."""
        return [r["message"] for r in self.report["results"] if r["outcome"] in ("failed", "error")
                and file in (r["message"] or "")]


def run_sessions(root: Path, *sessions: list[str]) -> tuple[str, list[Session]]:
    """Run pytest ``sessions`` one after the other in one new process in ``root``, each with --spec-report."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTEST_", "COV_CORE"))}
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT)] + ([env["PYTHONPATH"]] if env.get("PYTHONPATH") else []))
    env["COLUMNS"] = "1000"
    common = ["-p", "no:randomly", "-p", "no:cacheprovider", "-p", "no:xdist", "-q", "--tb=no", "-rfE",
              "--device", "cpu"]
    reports = [root / f"report-{i}.json" for i in range(len(sessions))]
    arguments = [common + [f"--basetemp={root / f'tmp-{i}'}", "--spec-report", str(reports[i])] + list(session)
                 for i, session in enumerate(sessions)]
    digest = hashlib.sha256()
    for path in sorted((root / "fixtures").rglob("*")):  # the driver's digest, before any session
        if path.is_file():
            digest.update(str(path.relative_to(root)).encode() + path.read_bytes())
    done = subprocess.run([sys.executable, "-c", DRIVER, json.dumps(arguments)], cwd=root, env=env,
                          capture_output=True, text=True, timeout=600)
    parts = re.split(r"^@@session-exit (-?\d+) (\w+)@@$", done.stdout, flags=re.MULTILINE)
    found = [Session(int(code), text, hexdigest, path)
             for text, code, hexdigest, path in zip(parts[0::3], parts[1::3], parts[2::3], reports)]
    assert len(found) == len(sessions), f"{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    return digest.hexdigest(), found


@pytest.fixture(scope="module")
def damaged(tmp_path_factory):
    """A copy where one fixture is truncated, one deleted, one mistagged (a float16 file holding the float64
    record) and one an orphan (a record no truth declares); the chapter and the fixture selftest run once."""
    root = make_copy(tmp_path_factory.mktemp("damaged"))
    folder = root / "fixtures" / CHAPTER
    data = (folder / "relu_rnn_one_step-float32.npz").read_bytes()
    (folder / "relu_rnn_one_step-float32.npz").write_bytes(data[: len(data) // 2])
    (folder / "relu_rnn_two_steps-float64.npz").unlink()
    shutil.copy2(folder / "relu_rnn_relu_clamps-float64.npz", folder / "relu_rnn_relu_clamps-float16.npz")
    shutil.copy2(folder / "relu_rnn_one_step-float64.npz", folder / "relu_rnn_gone-float32.npz")
    before, (session,) = run_sessions(root, [f"spec/{CHAPTER}.py", "selftest/test_fixtures_against_truth.py"])
    session.before = before
    return session


def test_a_truncated_fixture_fails_naming_the_file_and_the_fix(damaged):
    """A truncated .npz: 'fixture … is unreadable …; Restore it from git (git checkout -- …) or re-record it'."""
    path = f"fixtures/{CHAPTER}/relu_rnn_one_step-float32.npz"
    messages = [m for m in damaged.messages(path) if "is unreadable" in m]
    assert len(messages) == 2, damaged.output  # the chapter's test and the fixture selftest
    assert all(f"git checkout -- {path}" in m and "re-record it on CPU with --regen-all" in m
               for m in messages), messages
    assert any(f"{path} changed since torch" in m for m in damaged.messages(path)), damaged.output  # provenance
    row = next(r for r in damaged.report["results"]
               if r["nodeid"].endswith("test_relu_rnn_forward_matches_the_recurrence[cpu-float32-one_step]"))
    assert row["comparisons"][0]["fixture_readable"] is False and row["comparisons"][0]["tensors"]["output"][
        "against_fixture"] is None


def test_a_deleted_fixture_fails_with_the_command_that_records_it(damaged):
    """A missing .npz: the chapter's test says 'is missing' with the --regen-all command; so does the selftest."""
    path = f"fixtures/{CHAPTER}/relu_rnn_two_steps-float64.npz"
    nodeid = f"spec/{CHAPTER}.py::test_relu_rnn_forward_matches_the_recurrence[cpu-float64-two_steps]"
    messages = damaged.messages(path)
    assert any("is missing" in m and f"Record it on CPU with: {record_command(nodeid)}" in m
               for m in messages), messages
    assert any("declares records without their files" in m and f"pytest --regen-all --device cpu spec/{CHAPTER}.py" in m
               for m in messages), messages


def test_a_fixture_with_the_wrong_dtype_tag_fails_naming_both_dtypes_and_the_fix(damaged):
    """A float16 file holding a float64 record: 'is tagged dtype 'float64' but its name says float16; re-record it'."""
    messages = [m for m in damaged.messages(f"fixtures/{CHAPTER}/relu_rnn_relu_clamps-float16.npz")
                if "is tagged dtype" in m]
    assert len(messages) == 2 and all(
        "is tagged dtype 'float64' but its name says float16; re-record it: pytest --regen-all --device cpu" in m
        for m in messages), messages


def test_an_orphan_fixture_fails_naming_the_file_and_the_fix(damaged):
    """A file whose record no chapter declares: 'orphan fixture …; delete the file (git rm) or restore the record'."""
    messages = damaged.messages(f"fixtures/{CHAPTER}/relu_rnn_gone-float32.npz")
    assert any("orphan fixture" in m and "delete the file (git rm) or restore the record" in m
               for m in messages), messages
    assert any(f"fixtures/{CHAPTER}/relu_rnn_gone-float32.npz: PROVENANCE.json names no baseline for it" in m
               and "if it is an orphan delete it (git rm)" in m for m in messages), messages


def test_damaged_fixtures_are_reported_but_never_rewritten(damaged):
    """The run fails (exit 1), and leaves fixtures/ exactly as it found it, damage included."""
    assert damaged.code == 1 and damaged.digest == damaged.before


@pytest.fixture(scope="module")
def recording(tmp_path_factory):
    """In a git copy whose committed float32 'two_steps' output is 1 ULP off, three sessions: a recording
    with every truth moved by 10 % (refused), a real recording, then a normal run."""
    root = make_copy(tmp_path_factory.mktemp("recording"))
    nudged = root / "fixtures" / CHAPTER / "relu_rnn_two_steps-float32.npz"
    with np.load(nudged, allow_pickle=False) as archive:
        arrays = {key: archive[key] for key in archive.files}
    flat = arrays["output"].reshape(-1)
    index = int(np.argmax(np.abs(flat)))
    flat[index] = float(np.nextafter(np.float32(flat[index]), np.float32(np.inf)))
    np.savez_compressed(nudged, **arrays)
    (root / "truth_moved.py").write_text(TRUTH_MOVED)
    git = ["git", "-c", "user.email=spec@example.invalid", "-c", "user.name=spec", "-c", "commit.gpgsign=false"]
    for command in (["init", "-q"], ["add", "-A"], ["commit", "-qm", "baseline"]):
        subprocess.run(git + command, cwd=root, check=True, capture_output=True)
    before, sessions = run_sessions(root, ["-p", "truth_moved", "--regen-all", f"spec/{CHAPTER}.py"],
                                    ["--regen-all", f"spec/{CHAPTER}.py"], [f"spec/{CHAPTER}.py"])
    return {"root": root, "before": before, "refused": sessions[0], "recorded": sessions[1], "normal": sessions[2]}


def test_recording_refuses_values_that_disagree_with_the_truth(recording):
    """--regen-all with every truth moved 10 %: each spec_check fails 'measured … disagrees'; nothing is written."""
    refused = recording["refused"]
    assert refused.code == 1
    checks = [r for r in refused.report["results"] if r["comparisons"]]
    accepted = [(r["nodeid"], r["outcome"], r["message"]) for r in checks if not (
        r["outcome"] == "failed" and "measured" in r["message"] and "disagrees with the truth" in r["message"])]
    assert len(checks) == 12 and not accepted, accepted
    assert refused.digest == recording["before"], "a refused recording wrote into fixtures/"
    assert "rnn-spec: recorded" not in refused.output


def test_a_recording_run_updates_provenance_and_summarises_what_moved(recording):
    """--regen-all names this torch in PROVENANCE.json and writes CHANGES.md: the nudged output moved 1 ULP."""
    import torch

    session, root = recording["recorded"], recording["root"]
    assert session.code == 0, session.output
    assert "rnn-spec: recorded 12 fixture file(s); provenance updated" in session.output
    document = provenance.read(root / "fixtures")
    recorded_by = [b for b in document["baselines"] if b["how"] == "recorded by pytest --regen-all"]
    assert len(recorded_by) == 1 and recorded_by[0]["torch"] == torch.__version__
    files = sorted(p.name for p in (root / "fixtures" / CHAPTER).glob("*.npz"))
    outputs = [name for name in files if not name.endswith(f"-{INPUTS}.npz")]
    assert {c: sorted(names) for c, names in recorded_by[0]["fixtures"].items()} == {CHAPTER: outputs}
    inputs = [b for b in document["baselines"] if b is not recorded_by[0]]  # kept: a recording writes no inputs file
    assert [sorted(b["fixtures"][CHAPTER]) for b in inputs] == [sorted(set(files) - set(outputs))]
    assert provenance.problems(document, root / "fixtures") == []
    changes = (root / "fixtures" / "CHANGES.md").read_text()
    assert "14 unchanged, 1 changed, 0 new, 0 deleted fixture files." in changes, changes
    moved = rf"\| `{CHAPTER}/relu_rnn_two_steps-float32.npz` \| `output` 1 ULP in 1 of \d+ values"
    assert re.search(moved, changes), changes


def test_after_recording_a_normal_run_passes_and_writes_nothing(recording):
    """The normal run after the recording passes, and changes no file under fixtures/."""
    normal = recording["normal"]
    assert normal.code == 0, normal.output
    assert normal.digest == recording["recorded"].digest


def test_rebaseline_summary_command_compares_with_a_git_revision(recording, capsys):
    """`python -m rnnspec.report rebaseline-summary -o -` prints the summary; an unknown revision is exit 2."""
    fixtures = str(recording["root"] / "fixtures")
    assert reporting.main(["rebaseline-summary", "--fixtures", fixtures, "-o", "-"]) == 0
    assert "14 unchanged, 1 changed" in capsys.readouterr().out
    assert reporting.main(["rebaseline-summary", "--fixtures", fixtures, "--base", "nosuchrev"]) == 2
    assert "nosuchrev" in capsys.readouterr().err
