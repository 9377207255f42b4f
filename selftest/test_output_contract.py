"""The output contract, asserted before any value: dtype, device, shape, layout, requires_grad of every tensor.

``rnnspec.spec_check.assert_output_contract`` (every recorded check and every property example)
fails on the first tensor that breaks the contract, naming the tensor and each broken fact, whatever
the values; ``TensorFacts.breaches`` says which facts differ (a device without an index is met by
any device of its type). Implementations that break only the contract (values within tolerance)
are rejected: the zoo's ``results_leak_into_float32`` in float64, and two targets written here, one
that returns h_n detached from the graph and one that keeps the batch axis of an unbatched h_n.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # make `rnnspec` importable however pytest was started
    sys.path.insert(0, str(ROOT))

from rnnspec.comparison import Truth  # noqa: E402
from rnnspec.measure import Measurement, TensorFacts  # noqa: E402
from rnnspec.spec_check import assert_output_contract  # noqa: E402

pytest_plugins = ["pytester"]


def facts(**changes) -> TensorFacts:
    return TensorFacts(**{**dict(dtype="float64", device="cpu", shape=(2, 3), layout="strided", requires_grad=True),
                          **changes})


@pytest.mark.parametrize("changes, words", [
    (dict(dtype="float32"), ["dtype float32, not float64"]),
    (dict(device="meta"), ["device meta, not cpu"]),
    (dict(shape=(1, 2, 3)), ["shape (1, 2, 3), not (2, 3)"]),
    (dict(layout="sparse_coo"), ["layout sparse_coo, not strided"]),
    (dict(requires_grad=False), ["requires_grad False, not True"]),
    (dict(dtype="bfloat16", shape=(3, 2)), ["dtype bfloat16, not float64", "shape (3, 2), not (2, 3)"]),
])
def test_breaches_name_each_fact_that_differs(changes, words):
    assert facts(**changes).breaches(facts()) == words


def test_a_device_without_an_index_is_met_by_any_of_its_type():
    assert facts(device="cuda:1").breaches(facts(device="cuda")) == []
    assert facts(device="cuda:1").breaches(facts(device="cuda:0")) == ["device cuda:1, not cuda:0"]


def test_the_contract_of_a_gradient_is_not_to_require_grad():
    assert TensorFacts.contract("grad_input", (2, 3), device="cpu", dtype="float64").requires_grad is False
    assert TensorFacts.contract("h_n", (1, 2, 3), device="cpu", dtype="float64").requires_grad is True


def test_a_broken_contract_fails_before_the_values_naming_the_tensor_and_the_fact():
    truth = Truth(behaviour="some behaviour", law="some law", values={"h_n": np.zeros((1, 2, 3)),
                                                                       "grad_input": np.zeros((4, 2, 1))})
    measurement = Measurement({"h_n": np.zeros((1, 2, 3)), "grad_input": np.zeros((4, 2, 1))})
    measurement.facts = {"h_n": TensorFacts("float32", "cpu", (1, 2, 3), "strided", True),
                         "grad_input": TensorFacts("float64", "cpu", (4, 2, 1), "strided", False)}
    with pytest.raises(AssertionError) as caught:
        assert_output_contract(measurement, truth, device="cpu", dtype="float64", config="cpu-float64")
    text = str(caught.value)
    assert "some behaviour: the output contract is broken: measured h_n came back with dtype float32, not float64" \
        in text and "[cpu-float64]" in text and "law:" in text, text


TARGETS = '''
import torch
from torch import nn


class Broken(nn.Module):
    """torch.nn's layer, one result broken: {what}."""

    def __init__(self, kind, input_size, hidden_size, **options):
        super().__init__()
        self.layer = {{"rnn_tanh": nn.RNN, "rnn_relu": nn.RNN, "lstm": nn.LSTM, "gru": nn.GRU}}[kind](
            input_size, hidden_size, **({{"nonlinearity": kind[4:]}} if kind.startswith("rnn_") else {{}}), **options)
        for name, parameter in list(self.layer.named_parameters()):
            self.register_parameter(name, parameter)

    def forward(self, input, hx=None):
        output, final = self.layer(input, hx)
        h_n = final[0] if isinstance(final, tuple) else final
        {change}
        return output, ((h_n, final[1]) if isinstance(final, tuple) else h_n)


def factory(kind, input_size, hidden_size, **options):
    if kind.endswith("_cell"):
        raise NotImplementedError("layers only")
    return Broken(kind, input_size, hidden_size, **options)
'''


@pytest.mark.parametrize("what, change, breach", [
    ("h_n detached from the graph", "h_n = h_n.detach()", "requires_grad False, not True"),
    ("an unbatched h_n keeps its batch axis", "h_n = h_n.unsqueeze(1) if input.dim() == 2 else h_n", "shape (3, 1, 2)"),
])
def test_targets_that_break_only_the_contract_are_rejected_naming_it(pytester, what, change, breach):
    """Chapter 9's unbatched records fail on the contract, naming the broken fact, before any value."""
    (pytester.path / "broken.py").write_text(TARGETS.format(what=what, change=change))
    result = pytester.runpytest_subprocess(str(ROOT / "spec" / "test_09_layers_and_directions.py"), "--rootdir",
                                           str(ROOT), "-c", str(ROOT / "pyproject.toml"), "-p", "no:randomly",
                                           "-p", "no:cacheprovider", "--dtype", "float64", "--target",
                                           f"{pytester.path / 'broken.py'}:factory", "-k", "unbatched and lstm")
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.stdout.fnmatch_lines([f"*the output contract is broken: measured h_n came back with*{breach}*"])
    assert torch.get_default_dtype() == torch.float32
