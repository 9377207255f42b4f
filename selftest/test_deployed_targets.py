"""The deployed targets (``--target onnx``, ``onnx:torchscript``, ``onnx:wrong:NAME``, ``export``; rnnspec/deployed.py).

* without the onnx extra, ``--target onnx`` is a usage error (exit 4) naming the install command;
* an ONNX-deployed module is exported once from sample sizes of its own and serves calls of other
  sequence lengths and batches, within float32's tolerance of eager torch; its forward claims run, its
  gradient claims are not applicable in the target's words (a backward through its outputs raises
  NotApplicable);
* the torch.export target runs forward and backward, the backward reaching the module's parameters, and
  one program serves modules of one structure with other weights;
* each wrong export (rnnspec/wrong_exports.py) is rejected by tests that the correct export
  (``onnx:torchscript``, the wrong exports' base) passes;
* an export does not depend on the exports before it in the process (the dynamo exporter leaves dispatcher
  state behind), and a chapter's outcomes under each deployed target do not depend on the order of its tests.

The spec runs go through ``runpytest_subprocess``: the exporters import modules that register operator
libraries, which an in-process run would drop from sys.modules afterwards (pytester restores them) and
a later import would register twice.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from rnnspec import inputs, measure, targets

pytest_plugins = ["pytester"]

ROOT = Path(__file__).resolve().parents[1]
HAS_ONNX = all(__import__("importlib").util.find_spec(name) for name in ("onnx", "onnxruntime", "onnxscript"))
needs_onnx = pytest.mark.skipif(not HAS_ONNX, reason=f"the onnx extra is not installed ({targets.ONNX_EXTRA})")


def run_spec(pytester, *args):
    """pytest in a subprocess on the repository's chapters, CPU, in file order, the outcomes listed (-rA)."""
    paths = [str(ROOT / a) for a in args if a.startswith("spec")]
    options = [a for a in args if not a.startswith("spec")]
    return pytester.runpytest_subprocess(*paths, "--rootdir", str(ROOT), "-c", str(ROOT / "pyproject.toml"), "-p",
                                         "no:randomly", "-p", "no:cacheprovider", "--device", "cpu", "-rA", *options)


def outcome_ids(result, outcome: str) -> set[str]:
    """The node ids -rA lists with ``outcome`` (PASSED, FAILED...)."""
    return {m.group(1) for m in re.finditer(rf"^{outcome} \S*?(spec/\S+)", result.stdout.str(), re.M)}


@pytest.mark.parametrize("target", ["onnx", "onnx:torchscript", "onnx:wrong:initial_state_dropped"])
def test_onnx_without_the_extra_is_a_usage_error_naming_the_install_command(pytester, monkeypatch, target):
    """With onnxruntime missing, --target onnx stops pytest with exit 4 and says how to install the extra."""
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # importlib.util.find_spec then finds nothing
    result = pytester.runpytest_inprocess(str(ROOT / "spec" / "test_01_forward_values.py"), "--rootdir", str(ROOT),
                                          "-c", str(ROOT / "pyproject.toml"), "-p", "no:randomly", "-p",
                                          "no:cacheprovider", "--target", target)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([f"*--target {target} needs *onnxruntime*, from the project's onnx extra: "
                                 f"python -m pip install -e '.[[]onnx]'*"])  # with the rest of the extra missing too


@needs_onnx
def test_an_onnx_deployed_module_serves_other_lengths_and_batches_from_one_export():
    """One export (at sample sizes of its own) serves calls of two other lengths and batches, as eager torch does."""
    from rnnspec import deployed

    target = targets.resolve("onnx:torchscript")
    parameters = inputs.random_parameters("lstm", 3, 4, seed=0, num_layers=2, bidirectional=True)
    module = measure.build("lstm", parameters, implementation=target, device="cpu", dtype="float32", num_layers=2,
                           bidirectional=True)
    eager = measure.build("lstm", parameters, implementation=measure.EAGER, device="cpu", dtype="float32",
                          num_layers=2, bidirectional=True)
    before = deployed.Deployment.STATISTICS.get(target.name, deployed.Statistics()).exports
    # two calls whose sizes leave the sample sizes the same (L = 2, N = 5: the first free of rnnspec.deployed.
    # SAMPLE_SIZES beside the configuration's 3 and 4 and the call's own), so one export serves both
    for length, batch in ((6, 8), (9, 10)):
        x = torch.tensor(inputs.random_array((length, batch, 3), seed=length), dtype=torch.float32)
        h0 = torch.tensor(inputs.random_array((4, batch, 4), seed=batch), dtype=torch.float32)
        with torch.no_grad():
            got, want = module(x, (h0, h0)), eager(x, (h0, h0))
        for name, a, b in (("output", got[0], want[0]), ("h_n", got[1][0], want[1][0]), ("c_n", got[1][1], want[1][1])):
            assert a.shape == b.shape and (a - b).abs().max().item() < 1e-5, (name, length, batch)
    assert deployed.Deployment.STATISTICS[target.name].exports == before + 1, "one export serves both calls"


@needs_onnx
def test_onnx_runs_forward_claims_and_states_gradients_not_applicable(pytester):
    """Chapter 1 under onnx:torchscript: the exact forward values and h_n = output[-1] pass; the records' claims
    (which include gradients) and chapter 16's backward are not applicable, in the target's words."""
    result = run_spec(pytester, "spec/test_01_forward_values.py", "spec/test_16_support_matrix.py", "--target",
                      "onnx:torchscript", "--dtype", "float32")
    result.assert_outcomes(passed=6, skipped=3 + 8)
    result.stdout.fnmatch_lines(["*SKIPPED*test_16*not applicable to --target onnx:torchscript: gradients: ONNX "
                                 "Runtime runs the exported graph for inference only*"])


def test_export_runs_forward_and_backward_and_shares_a_program_between_weights():
    """Two modules of one structure with other weights: one exported program, each module's own values and
    gradients (those of eager torch), the gradients on the module's own parameters."""
    from rnnspec import deployed

    target = targets.resolve("export")
    x = inputs.random_array((4, 3, 2), seed=1)
    runs, exports = [], []
    for seed in (0, 1):
        exports.append(deployed.Deployment.STATISTICS.get("export", deployed.Statistics()).exports)
        parameters = inputs.random_parameters("gru", 2, 3, seed=seed)
        options = dict(device="cpu", dtype="float64")
        exported = measure.measure("gru", parameters, x, implementation=target, **options)
        eager = measure.measure("gru", parameters, x, implementation=measure.EAGER, **options)
        assert exported.keys() == eager.keys() and "grad_weight_hh_l0" in exported
        for key in eager:
            assert (exported[key] - eager[key]).abs().max().item() < 1e-12, (seed, key)
        runs.append(exported)
    assert (runs[0]["output"] - runs[1]["output"]).abs().max().item() > 0.01, "the two weights give other outputs"
    assert deployed.Deployment.STATISTICS["export"].exports == exports[1], "the second module exported nothing"


@needs_onnx
def test_a_dynamo_onnx_export_declares_what_the_first_export_of_a_process_declares():
    """Two GRUs of one configuration (other weights, so two exports) called alike: both exported programs declare
    the same ranges, the sequence length dynamic from 0 as in a fresh process; without
    ``rnnspec.deployed.as_in_a_fresh_process`` the second export (and every one after the process's first) bounds
    the sequence length to the traced one (``nn.GRU(1, 1)`` traced at 2 steps: [2, 2] against [0, ∞), torch 2.13)."""
    from rnnspec import deployed

    runtime = deployed.OnnxRuntime("onnx", "dynamo", "the dynamo exporter, as --target onnx")
    x = torch.tensor(inputs.random_array((4, 3, 2), seed=1), dtype=torch.float32)
    declared = []
    for seed in (0, 1):
        module = measure.build("gru", inputs.random_parameters("gru", 2, 3, seed=seed), implementation=measure.EAGER,
                               device="cpu", dtype="float32")
        structure, tensors, _ = deployed.structure_of(module, x, None)
        program = deployed.Deployment(runtime, module).program_for(structure, tensors).program
        declared.append({str(symbol): (int(bounds.lower), str(bounds.upper))
                         for symbol, bounds in program.range_constraints.items()})
    assert declared[0] == declared[1], f"the second export declares {declared[1]}, the first {declared[0]}"
    assert any(bounds == (0, "int_oo") for bounds in declared[0].values()), declared[0]


@pytest.mark.parametrize("target", [pytest.param("onnx", marks=needs_onnx), "export"])
def test_a_chapters_outcomes_under_a_deployed_target_do_not_depend_on_the_order_of_its_tests(pytester, target):
    """Chapter 7 (float32) in file order and in a random order (pytest-randomly's seed 1: without
    ``rnnspec.deployed.as_in_a_fresh_process``, some of its onnx outcomes differ from file order's): every test
    that ``-rA`` names has the same outcome in both."""
    chapter = ["spec/test_07_gru.py", "--target", target, "--dtype", "float32"]
    in_order = run_spec(pytester, *chapter)
    shuffled = run_spec(pytester, *chapter, "-p", "randomly", "--randomly-seed=1")
    outcomes = {}
    for name, result in (("file order", in_order), ("seed 1", shuffled)):
        outcomes[name] = {test: outcome for outcome in ("PASSED", "FAILED", "XFAIL", "XPASS", "SKIPPED", "ERROR")
                          for test in outcome_ids(result, outcome)}
    first, second = outcomes["file order"], outcomes["seed 1"]
    differ = {test: (first.get(test), second.get(test)) for test in first.keys() | second.keys()
              if first.get(test) != second.get(test)}
    assert first and not differ, f"outcomes (file order, seed 1) that differ under --target {target}: {differ}"


WRONG_EXPORT_CHAPTERS = ("spec/test_07_gru.py", "spec/test_09_layers_and_directions.py")


_CORRECT: dict[str, dict] = {}  # the correct export's outcomes, run once per process


def correct_export(pytester) -> dict:
    """The wrong exports' base, ``onnx:torchscript``, on chapters 7 and 9 in float32: no failure and no expected
    failure, so every test passes or is not applicable for its gradients once its forward values held."""
    if "outcomes" not in _CORRECT:
        correct = run_spec(pytester, *WRONG_EXPORT_CHAPTERS, "--target", "onnx:torchscript", "--dtype", "float32")
        outcomes = correct.parseoutcomes()
        assert correct.ret == pytest.ExitCode.OK and "xfailed" not in outcomes, correct.stdout.str()[-3000:]
        _CORRECT["outcomes"] = outcomes
    return _CORRECT["outcomes"]


@needs_onnx
@pytest.mark.parametrize("wrong", ["gru_linear_before_reset_0", "lstm_gates_in_pytorch_order", "initial_state_dropped"])
def test_each_wrong_export_is_rejected_by_tests_the_correct_export_passes(pytester, wrong):
    """onnx:torchscript runs chapters 7 and 9 (float32) with no failure and no expected failure (its forward values
    hold everywhere); onnx:wrong:NAME, with the same expectations, fails: each failure is the edit's."""
    assert correct_export(pytester).get("passed", 0) > 0
    wrong_run = run_spec(pytester, *WRONG_EXPORT_CHAPTERS, "--target", f"onnx:wrong:{wrong}", "--dtype", "float32")
    killers = outcome_ids(wrong_run, "FAILED")
    assert wrong_run.ret == pytest.ExitCode.TESTS_FAILED and killers, (
        f"onnx:wrong:{wrong} was not rejected:\n{wrong_run.stdout.str()[-3000:]}")
    print(f"onnx:wrong:{wrong}: rejected by {len(killers)} tests, e.g. {sorted(killers)[0]}")


def test_gradient_claims_of_a_forward_only_run_raise_what_the_module_declares():
    """A forward-only measurement: forward tensors readable; a gradient, or all tensors, raise NotApplicable."""
    run = measure.Measurement(output=np.zeros(1))
    run.no_gradients = lambda: targets.NotApplicable("no gradients here")
    assert dict(run) == {"output": run["output"]} and "grad_input" not in run
    with pytest.raises(targets.NotApplicable, match="no gradients here"):
        run["grad_input"]
    with pytest.raises(targets.NotApplicable):
        sorted(run)
    with pytest.raises(KeyError):
        run["c_n"]
