"""The conformance check fails in a process that flushes subnormal numbers to zero, and only where it should.

Chapter 18 states gradual underflow. Its claims must go red in a process where
``torch.set_flush_denormal(True)`` is in force (as in a program built with fast-math): a pytest
session started in a fresh process, with a plugin that sets the flag before any test runs (the flag
is per thread and has no getter, so it cannot be set and undone inside this one safely for the
memoised runs), runs chapter 18. The subnormal claims fail, naming gradual underflow; the claim
about ``set_flush_denormal`` itself still holds (it sets the flag and restores what it found).
Before the fix of chapter 18 no chapter noticed: every other claim holds under the flag (checked by
hand: ``python -m pytest -p flush`` with the plugin below on the whole spec fails in chapter 18 only).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # make `rnnspec` importable however pytest was started
    sys.path.insert(0, str(ROOT))

from rnnspec import subnormals  # noqa: E402

CHAPTER = "spec/test_18_gradual_underflow.py"
PLUGIN = '''
import torch

def pytest_configure(config):
    assert torch.set_flush_denormal(True), "this CPU has no flush-to-zero mode"
'''


def test_chapter_18_fails_under_set_flush_denormal(tmp_path):
    """Under set_flush_denormal(True): the four subnormal claims fail, the flag's own claim passes."""
    with subnormals.flush_denormal(True) as supported:
        pass
    if not supported:
        pytest.skip("this CPU has no flush-to-zero mode: set_flush_denormal returns False")
    (tmp_path / "flush_plugin.py").write_text(PLUGIN)
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(tmp_path), os.environ.get("PYTHONPATH")])))
    env = {key: value for key, value in env.items() if not key.startswith(("PYTEST_XDIST", "PYTEST_CURRENT"))}
    result = subprocess.run([sys.executable, "-m", "pytest", CHAPTER, "-p", "flush_plugin", "-p", "no:randomly",
                             "-p", "no:cacheprovider", "-q", "--tb=line", "--device", "cpu",
                             f"--basetemp={tmp_path / 'run'}"],
                            cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    output = result.stdout + result.stderr
    assert result.returncode == 1, output[-3000:]
    failed = sorted(line.split()[1] for line in output.splitlines() if line.startswith("FAILED "))
    assert failed == [f"{CHAPTER}::test_dx1_is_kept_as_a_subnormal_at_the_length_it_enters_the_range[cpu-float32]",
                      f"{CHAPTER}::test_dx1_is_kept_as_a_subnormal_at_the_length_it_enters_the_range[cpu-float64]",
                      f"{CHAPTER}::test_subnormal_inputs_give_exact_subnormal_states_and_gradients[cpu-float32]",
                      f"{CHAPTER}::test_subnormal_inputs_give_exact_subnormal_states_and_gradients[cpu-float64]"], output
    assert "should be non-zero subnormals" in output, output[-3000:]
    assert "1 passed" in output, output[-3000:]
