"""The implementation under test (``--target``, ``rnnspec/targets.py``): its choices, reasons and user factories.

Each case runs pytest in-process on this repository's chapters (``pytester``), so it sees the real
conftest.py and reads what a user would see:

* an unknown target, a factory that cannot be found and a recording run under another target are
  usage errors (exit 4) that say what is wrong; the report header names the target;
* what a target does not provide is skipped, "not applicable to --target X: ...", with the
  target's own words (``-rs``), including where the test caught the target's exception and failed
  with another (chapter 15); tests that state torch.nn itself (marked ``torch_nn_itself``) are not
  applicable to other targets, and none of them asks for the implementation under test;
* the README's example (``examples/loop_lstm.py``, shown verbatim in the README) passes the whole
  spec through ``--target examples/loop_lstm.py:factory``, and through the dotted form;
* ``cells`` passes the whole spec (its bfloat16 drift stated in expectations/target-cells.toml);
  ``script`` and ``compile`` pass or state, per test, what they do not do (a smoke run each: the
  full runs take 1.5 and 5 minutes and are described in the README);
* memoised runs are keyed by the target, so in-process sessions never share one.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from rnnspec import inputs, measure, targets

pytest_plugins = ["pytester"]

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = "examples/loop_lstm.py:factory"


def run(pytester, *args):
    """pytest in-process on the repository's chapters (default: the whole spec), from the current directory."""
    paths = [a for a in args if a.startswith("spec")] or ["spec"]
    options = [a for a in args if not a.startswith("spec")]
    return pytester.runpytest_inprocess(*[str(ROOT / p) for p in paths], "--rootdir", str(ROOT), "-c",
                                        str(ROOT / "pyproject.toml"), "-p", "no:randomly", "-p", "no:cacheprovider",
                                        "--device", "cpu", *options)


@pytest.fixture
def at_root(monkeypatch):
    """Relative ``--target path.py:factory`` is read from the directory pytest starts in: the repository."""
    monkeypatch.chdir(ROOT)


@pytest.mark.parametrize("target, message", [
    pytest.param("fortran", "unknown target; use one of eager, cells, script, compile", id="unknown-name"),
    pytest.param("mutant:sigmoid_everywhere", "no such implementation; choose from reference, relu_computes_tanh",
                 id="unknown-mutant"),
    pytest.param("examples/no_such_file.py:factory", "no file", id="missing-file"),
    pytest.param("examples/loop_lstm.py:make_lstm", "has no attribute 'make_lstm'", id="missing-factory"),
    pytest.param("no_such_package.layers:factory", "cannot import no_such_package.layers", id="missing-module"),
])
def test_unknown_targets_are_usage_errors_before_any_test_runs(pytester, at_root, target, message):
    """--target with nothing behind it stops pytest with exit 4 and says what is missing."""
    result = run(pytester, "spec/test_01_forward_values.py", "--target", target)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([f"*{message}*"])


def test_fixtures_are_recorded_from_torch_nn_only(pytester):
    """--regen-all under another target is a usage error: a fixture records torch.nn, never a target."""
    result = run(pytester, "spec/test_01_forward_values.py", "--target", "cells", "--regen-all")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*fixtures are recorded from torch.nn only (--target eager)*"])


def test_the_header_names_the_target(pytester):
    """The report header says which implementation is under test, eager by default."""
    default = run(pytester, "spec/test_01_forward_values.py", "--collect-only")
    default.stdout.fnmatch_lines(["rnn-spec target: eager (torch.nn as installed)"])
    cells = run(pytester, "spec/test_01_forward_values.py", "--collect-only", "--target", "cells")
    cells.stdout.fnmatch_lines(["rnn-spec target: cells (each layer a Python loop over torch's cell module*"])


def test_cells_pass_the_whole_spec_with_reasons_for_what_they_lack(pytester):
    """cells: no failure, bfloat16 included (the step-by-step envelope admits it); LSTM projections and torch.nn's
    own constructors are not applicable, with the reason."""
    result = run(pytester, "--target", "cells", "-rsx")
    outcomes = result.parseoutcomes()
    assert result.ret == pytest.ExitCode.OK and outcomes["passed"] > 400 and "xfailed" not in outcomes, outcomes
    result.stdout.fnmatch_lines([
        "*SKIPPED*not applicable to --target cells: lstm(*proj_size=*): proj_size: nn.LSTMCell has no projection*",
        "*SKIPPED*test_14_default_initialisation.py*not applicable to --target cells: the test states torch.nn's "
        "default initialisation*",
    ])


def test_cells_compute_each_step_with_the_cell_module(monkeypatch):
    """A 2-layer bidirectional cells-target LSTM over 4 steps calls nn.LSTMCell 16 times, and agrees with nn.LSTM."""
    import torch

    calls = []
    cell_forward = torch.nn.LSTMCell.forward
    monkeypatch.setattr(torch.nn.LSTMCell, "forward", lambda self, *a, **k: calls.append(1) or cell_forward(self, *a, **k))
    parameters = inputs.random_parameters("lstm", 2, 3, seed=0, num_layers=2, bidirectional=True)
    x = inputs.random_array((4, 2, 2), seed=1)
    options = dict(device="cpu", dtype="float64", num_layers=2, bidirectional=True)
    expected = measure.measure("lstm", parameters, x, implementation=measure.EAGER, **options)
    looped = measure.measure("lstm", parameters, x, implementation=targets.resolve("cells"), **options)
    assert len(calls) == 2 * 2 * 4, f"{len(calls)} calls of nn.LSTMCell for 2 layers x 2 directions x 4 steps"
    for key, value in expected.items():
        assert (looped[key] - value).abs().max().item() < 1e-12, key


def test_the_readme_example_passes_the_spec_through_its_file(pytester, at_root):
    """examples/loop_lstm.py:factory passes every applicable test; the rest are skipped in its own words."""
    result = run(pytester, "--target", EXAMPLE, "-rs")
    outcomes = result.parseoutcomes()
    assert result.ret == pytest.ExitCode.OK and outcomes["passed"] >= 50, outcomes
    result.stdout.fnmatch_lines([
        f"*not applicable to --target {EXAMPLE}: gru(*): LoopLSTM is an LSTM, not gru*",
        f"*not applicable to --target {EXAMPLE}: lstm(*proj_size=*): LoopLSTM has no projection*",
        f"*not applicable to --target {EXAMPLE}: LoopLSTM takes padded input only, not a PackedSequence*",
    ])
    # Chapter 15 catches every exception and reports it as an AssertionError; the target's is still seen.
    assert "test_forward_rejects_the_call[[]cpu-rnn_tanh" not in result.stdout.str()
    assert not re.search(r"FAILED .*test_15", result.stdout.str())


def test_the_readme_example_passes_through_its_dotted_module(pytester, at_root):
    """The same factory as examples.loop_lstm:factory (a module on the path) runs the LSTM error contracts."""
    result = run(pytester, "spec/test_15_error_contracts.py", "--target", "examples.loop_lstm:factory")
    outcomes = result.parseoutcomes()
    assert result.ret == pytest.ExitCode.OK and outcomes["passed"] == 7, outcomes  # the LSTM's forward cases


def test_the_readme_shows_the_example_file_verbatim():
    """The README's section shows examples/loop_lstm.py as it is, so the example shown is the one tested."""
    readme = (ROOT / "README.md").read_text()
    section = readme.split("## Other implementations (--target)", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"```python\n(.*?)```", section, re.S)
    assert (ROOT / "examples" / "loop_lstm.py").read_text() in blocks, "README's example differs from examples/loop_lstm.py"


def test_tests_that_state_torch_nn_itself_build_no_implementation(pytester):
    """A test marked torch_nn_itself (not applicable to other targets) never asks for the implementation under
    test, and every other test of chapters 14 and 15's constructor checks is marked: the marker says what it does."""
    result = run(pytester, "--target", "cells", "--collect-only", "-q")
    assert result.ret == pytest.ExitCode.OK
    items = pytester.inline_genitems(str(ROOT / "spec"), "--rootdir", str(ROOT), "-c", str(ROOT / "pyproject.toml"),
                                     "-p", "no:randomly", "-p", "no:cacheprovider", "--device", "cpu")[0]
    marked = [item for item in items if item.get_closest_marker(targets.TORCH_NN_ITSELF)]
    assert marked and not [item.nodeid for item in marked if "implementation" in item.fixturenames]
    stated = {item.nodeid.split("[")[0] for item in marked}
    assert {"spec/test_14_default_initialisation.py::test_every_parameter_is_uniform_within_one_over_sqrt_hidden_size",
            "spec/test_15_error_contracts.py::test_constructor_rejects_the_configuration",
            "spec/test_15_error_contracts.py::test_cells_accept_hidden_size_zero",
            "spec/test_12_dropout.py::test_one_layer_dropout_warns",
            "spec/test_11_packed_sequences.py::test_enforce_sorted_rejects_lengths_out_of_order",
            "spec/test_20_autocast.py::test_autocast_returns_the_observed_dtypes_at_the_autocast_precision"} == stated, stated


def test_script_states_what_torchscript_does_not_do(pytester):
    """script: the cells pass; the layers are strict xfails with TorchScript's error (no failure, no blanket skip)."""
    result = run(pytester, "spec/test_08_cells.py", "spec/test_16_support_matrix.py", "--target", "script",
                 "--dtype", "float64", "-rx")
    result.assert_outcomes(passed=8, xfailed=8)
    result.stdout.fnmatch_lines(["*XFAIL*test_16*[[]cpu-float64-lstm]*'RecursiveScriptModule' object has no "
                                 "attribute 'forward'*"])


def test_compile_traces_the_layer_and_states_its_dropout_bug(pytester):
    """compile: values pass; inter-layer dropout is a strict xfail, which only a traced, decomposed layer shows.

    In a subprocess: torch.compile imports modules that register operator libraries, which an
    in-process run would drop from sys.modules afterwards (pytester restores them) and a later
    import would register twice. The xfail is also the evidence that the layer was compiled: eager
    torch drops three quarters of the elements there.
    """
    result = pytester.runpytest_subprocess(
        str(ROOT / "spec" / "test_01_forward_values.py"), str(ROOT / "spec" / "test_12_dropout.py"), "--rootdir",
        str(ROOT), "-c", str(ROOT / "pyproject.toml"), "-p", "no:randomly", "-p", "no:cacheprovider", "--device", "cpu",
        "--target", "compile", "--dtype", "float64", "-k", "forward_matches_the_recurrence or training_output and lstm",
        "-rx")
    result.assert_outcomes(passed=3, xfailed=1)
    result.stdout.fnmatch_lines(["*XFAIL*0 of 192 inter-layer elements dropped*"])


def test_memoised_runs_are_keyed_by_the_target():
    """The same arguments under two targets are two runs; under one target, one."""
    calls = []

    @measure.memoised
    def run_once(implementation, value):
        calls.append((implementation.name, value))
        return {"value": float(value)}

    other = targets.resolve("cells")
    run_once(measure.EAGER, 1)
    run_once(measure.EAGER, 1)
    run_once(other, 1)
    run_once(measure.EAGER, 1)
    assert calls == [("eager", 1), ("cells", 1)], calls
