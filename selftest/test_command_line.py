"""The command line: --device and --dtype, readable ids, usage errors, skips with reasons.

Each case runs pytest in-process on one chapter of this repository (``pytester``), so it sees
the real conftest.py, and reads what a user would see.
"""

from pathlib import Path

import pytest

pytest_plugins = ["pytester"]

ROOT = Path(__file__).resolve().parents[1]
CHAPTER = str(ROOT / "spec" / "test_01_forward_values.py")


def run(pytester, *args):
    return pytester.runpytest_inprocess(CHAPTER, "--rootdir", str(ROOT), "-c", str(ROOT / "pyproject.toml"),
                                        "-p", "no:randomly", "-p", "no:cacheprovider", *args)


def test_ids_read_as_device_and_dtype_words(pytester):
    """Collected ids read [cpu-float64-one_step], never positional ids like dtype0."""
    result = run(pytester, "--collect-only", "-q")
    ids = [line for line in result.outlines if "::" in line]
    assert any(line.endswith("[cpu-float64-one_step]") for line in ids), ids
    assert {dtype for dtype in ("float64", "float32", "bfloat16", "float16")
            if any(f"-{dtype}-" in line for line in ids)} == {"float64", "float32", "bfloat16", "float16"}
    assert not any("dtype0" in line or "device0" in line for line in ids)


def test_device_and_dtype_lists_select_the_parametrisation(pytester):
    """--device cpu --dtype float32,float16 collects exactly those combinations."""
    result = run(pytester, "--collect-only", "-q", "--device", "cpu", "--dtype", "float32,float16")
    ids = {line.split("[")[1].rsplit("-", 1)[0] for line in result.outlines if "::" in line}
    assert ids == {"cpu-float32", "cpu-float16"}, ids


@pytest.mark.parametrize("option, value, message", [
    pytest.param("--device", "gpu0", "unknown device 'gpu0'", id="unknown-device"),
    pytest.param("--device", "meta", "'meta' tensors hold no values", id="meta-device"),
    pytest.param("--dtype", "float8", "unknown dtype 'float8'", id="unknown-dtype"),
    pytest.param("--dtype", "float32,,float16", "empty entry", id="empty-entry"),
])
def test_unknown_values_are_usage_errors_before_any_test_runs(pytester, option, value, message):
    """An unknown device or dtype stops pytest with a usage error (exit 4) that names it."""
    result = run(pytester, option, value)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([f"*{message}*"])


def test_absent_device_is_skipped_with_its_reason(pytester):
    """A known device this machine lacks is kept beside one it has, and its tests are skipped with the reason (-rs)."""
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has cuda; the case needs a machine without it")
    result = run(pytester, "--device", "cpu,cuda", "--dtype", "float32", "-rs")
    result.assert_outcomes(passed=9, skipped=9)
    result.stdout.fnmatch_lines(["*SKIPPED*cuda is not available on this machine*"])


def test_speed_breakdown_accounts_for_the_run_loop(tmp_path):
    """bench/breakdown.py (bench/ratio.py --breakdown) times each part of a run's loop; the parts fit inside it."""
    import json
    import os
    import subprocess
    import sys

    figures_path = tmp_path / "breakdown.json"
    environment = dict(os.environ, RNNSPEC_BREAKDOWN=str(figures_path), PYTHONPATH=str(ROOT / "bench"))
    result = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "no:randomly",
                             "-p", "breakdown", str(ROOT / "spec" / "test_06_multidimensional.py")],
                            cwd=ROOT, env=environment, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout[-2000:]
    figures = json.loads(figures_path.read_text())
    assert figures.pop("tests") == 12
    loop = figures.pop("run loop")
    assert all(seconds >= 0 for seconds in figures.values()), figures
    assert figures["torch: backward"] > 0 and figures["torch: module calls (forward)"] > 0, figures
    assert abs(sum(figures.values()) - loop) < 1e-6 * max(loop, 1.0) + 1e-9, (figures, loop)
