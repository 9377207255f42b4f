"""Chapter 17's machinery: memory layouts, drawn configurations, their reproduction snippets, the profiles.

* Each layout of ``rnnspec/layouts.py`` keeps the values, is differentiable, and lays the tensor out
  as its name says (strides, offset, contiguity); ``measure(layouts=...)`` reports the gradient of
  what the module received (an expanded input's gradient per element, not its row's sum).
* A configuration's arrays are what its snippet draws (the same function, the same order, which is
  torch's ``named_parameters`` order), and the snippet, run as a script without the suite, reproduces
  the suite's measurement bit for bit and prints each tensor.
* The explicit examples reach each large dimension with non-contiguous tensors; drawn configurations
  are valid (the reference runs them); the default profile is derandomised and the exploring one is
  registered for ``--hypothesis-profile``.
* A failing drawn example shrinks to the smallest configuration that fails: against the zoo's
  ``long_sequences_restart_every_128_steps``, 129 steps.
"""

from __future__ import annotations

import itertools
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # make `rnnspec` and `spec` importable however pytest was started
    sys.path.insert(0, str(ROOT))

from rnnspec import layouts, properties  # noqa: E402
from rnnspec.configurations import Configuration  # noqa: E402
from rnnspec.kinds import KINDS, RECURRENCES  # noqa: E402
from rnnspec.measure import EAGER, frozen  # noqa: E402
from rnnspec.numpy_reference import parameter_shapes  # noqa: E402
from rnnspec.targets import resolve  # noqa: E402

#: (layout, time axis, batch axis) on a (L, N, F) = (4, 3, 5) tensor, and what its memory must look like.
LAID_OUT = {
    "contiguous": dict(contiguous=True, offset=0),
    "transposed": dict(contiguous=False, offset=0, strides=(5, 20, 1)),
    "time_innermost": dict(contiguous=False, offset=0, strides=(1, 20, 4)),
    "strided": dict(contiguous=False, offset=0, strides=(30, 10, 2)),
    "expanded": dict(contiguous=False, offset=0, strides=(15, 0, 1)),
    "misaligned": dict(contiguous=True, offset=1),
}


@pytest.mark.parametrize("name", list(LAID_OUT))
def test_each_layout_keeps_the_values_and_lays_them_out_as_named(name):
    values = torch.arange(60, dtype=torch.float64).reshape(4, 3, 5)
    if name == "expanded":
        values = values[:, :1].expand(4, 3, 5).contiguous()
    leaf = values.clone().requires_grad_()
    view = layouts.lay_out(name, time_axis=0, batch_axis=1)(leaf)
    assert torch.equal(view, values), name
    wanted = LAID_OUT[name]
    assert view.is_contiguous() == wanted["contiguous"] and view.storage_offset() == wanted["offset"], layouts.facts(view)
    if "strides" in wanted:
        assert view.stride() == wanted["strides"], layouts.facts(view)
    view.retain_grad()
    (view * torch.arange(60, dtype=torch.float64).reshape(4, 3, 5)).sum().backward()
    assert torch.equal(view.grad, torch.arange(60, dtype=torch.float64).reshape(4, 3, 5)), name


def test_layouts_that_need_an_axis_are_not_applicable_without_it():
    assert not layouts.applicable("expanded", time_axis=0, batch_axis=None, ndim=2)
    assert not layouts.applicable("time_innermost", time_axis=None, batch_axis=1, ndim=3)
    assert layouts.applicable("transposed", time_axis=0, batch_axis=None, ndim=2)


@pytest.mark.parametrize("kind, options", list(itertools.product(RECURRENCES, [
    dict(), dict(num_layers=2, bidirectional=True), dict(bias=False, num_layers=3)])) +
    [("lstm", dict(proj_size=2, num_layers=2, bidirectional=True))])
def test_parameter_shapes_are_in_torchs_named_parameters_order(kind, options):
    """The snippet fills torch's parameters in named_parameters order from the same draws as the suite."""
    module = KINDS[kind].construct(3, 4, **options)
    assert [(name, tuple(p.shape)) for name, p in module.named_parameters()] == \
        list(parameter_shapes(kind, 3, 4, **options).items())


CONFIGURATION = Configuration("lstm", steps=5, batch=3, input_size=2, hidden_size=4, num_layers=2, bidirectional=True,
                              batch_first=True, initial_state=True, lengths=(5, 2, 4), training=False, dropout=0.5,
                              input_layout="expanded", state_layout="transposed", upstream_output=True, seed=7)


def test_an_expanded_input_is_drawn_with_equal_rows_and_its_gradient_is_per_element():
    arrays = CONFIGURATION.arrays()
    assert (arrays["x"] == arrays["x"][:1]).all() and arrays["h0"].shape == (4, 3, 4)
    case = CONFIGURATION.case()
    measured = frozen(case.measure(case.kind, implementation=EAGER, device="cpu", dtype="float64",
                                   **case.configuration()))
    assert measured["grad_input"].shape == (3, 5, 2)
    np.testing.assert_allclose(measured["grad_input"], case.truth().values["grad_input"], rtol=1e-10, atol=1e-13)


def test_the_snippet_runs_without_the_suite_and_reproduces_the_measurement(tmp_path):
    """Run as a script in a bare directory, the snippet prints every tensor; its run is the suite's, bit for bit."""
    snippet = CONFIGURATION.snippet("cpu", "float32")
    script = tmp_path / "reproduce.py"
    script.write_text(snippet)
    result = subprocess.run([sys.executable, str(script)], cwd=tmp_path, capture_output=True, text=True, timeout=120,
                            env={"PATH": "/usr/bin:/bin"})
    assert result.returncode == 0, result.stderr[-2000:]
    case = CONFIGURATION.case()
    measured = frozen(case.measure(case.kind, implementation=EAGER, device="cpu", dtype="float32",
                                   **case.configuration()))
    assert sorted(line.split()[0] for line in result.stdout.splitlines()) == sorted(measured)
    namespace: dict = {}
    exec(compile(snippet.split("suspect = ")[0], "snippet", "exec"), namespace)  # noqa: S102 (our own code)
    assert {name: value for name, value in namespace["draw"](CONFIGURATION.seed, CONFIGURATION.shapes(),
                                                             CONFIGURATION.bound, CONFIGURATION.repeated()).items()
            if not name.startswith(("weight", "bias"))}.keys() == CONFIGURATION.arrays().keys() - {"parameters"}
    ran = namespace["run"]("cpu", torch.float32, namespace["expanded"], namespace["transposed"])
    for key, value in measured.items():
        assert np.array_equal(ran[key].detach().double().numpy(), value), key


def test_the_explicit_examples_reach_each_large_dimension_and_kind_with_non_contiguous_tensors():
    examples = [example for family in properties.FAMILIES for example in properties.EXAMPLES[family]]
    for dimension, (low, high) in properties.LARGE.items():
        reaching = [example for example in properties.EXAMPLES["padded"]
                    if low <= (getattr(example, dimension) or 0) <= high]
        assert reaching, f"no explicit padded example has {dimension} in [{low}, {high}]"
    assert all(example.input_layout != "contiguous" for example in examples)
    assert {example.kind for example in examples} == set(RECURRENCES)
    assert all(example.lengths for example in properties.EXAMPLES["packed"])
    assert all(example.proj_size for example in properties.EXAMPLES["projections"])


@settings(max_examples=25, derandomize=True, database=None, deadline=None,
          suppress_health_check=[HealthCheck.too_slow])
@given(configuration=st.sampled_from(properties.FAMILIES).flatmap(lambda family: properties.configurations(
    family, large=False)))
def test_drawn_configurations_are_valid_runs_of_the_reference(configuration):
    assert configuration.case().truth().values["h_n"].shape[0] == configuration.directions * configuration.num_layers
    assert configuration.dropout == 0 or not configuration.training


def test_the_default_profile_is_derandomised_and_the_exploring_one_registered():
    properties.register_profiles()
    default, explore = settings.get_profile(properties.DEFAULT), settings.get_profile(properties.EXPLORE)
    assert default.derandomize and default.database is None and default.max_examples == properties.DEFAULT_EXAMPLES
    assert explore.max_examples == properties.EXPLORE_EXAMPLES and not explore.derandomize


def test_exploring_is_an_option_of_the_command_line():
    result = subprocess.run([sys.executable, "-m", "pytest", "spec/test_17_sizes_and_layouts.py", "--collect-only",
                             "-q", "--hypothesis-profile=rnn-spec-explore", "-p", "no:randomly"],
                            cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0 and "test_every_layer" in result.stdout, result.stdout[-2000:] + result.stderr[-2000:]


def test_a_failing_drawn_example_shrinks_to_the_smallest_configuration_that_fails():
    """Against a time loop that restarts every 128 steps, Hypothesis' smallest failure has 129 steps."""
    from spec.test_17_sizes_and_layouts import check_against_reference  # noqa: PLC0415

    properties.register_profiles()
    implementation = resolve("mutant:long_sequences_restart_every_128_steps")
    failures = []

    @settings(settings.get_profile(properties.EXPLORE), phases=[Phase.generate, Phase.shrink], max_examples=400,
              derandomize=True, database=None, print_blob=False)
    @given(configuration=properties.configurations("padded", large=True))
    def check(configuration):
        try:
            check_against_reference(configuration, implementation, "cpu", "float64")
        except AssertionError:
            failures.append(configuration)
            raise

    with pytest.raises(AssertionError, match="measured output disagrees"):
        check()
    assert failures[-1].steps == 129, failures[-1]


@pytest.mark.parametrize("ci", ["", "true"])
def test_the_property_tests_run_the_rnn_spec_profile_with_or_without_the_ci_variable(ci):
    """Where the CI variable is set, Hypothesis loads its own "ci" profile (100 examples): the property tests run
    the rnn-spec profile all the same, as in the default run (and the explore profile stays random)."""
    script = ("from hypothesis import settings; from rnnspec import properties; "
              "chosen, explore = properties.profile(), settings.get_profile(properties.EXPLORE); "
              "print(chosen is settings.get_profile(properties.DEFAULT), chosen.max_examples, explore.derandomize)")
    environment = {key: value for key, value in os.environ.items() if key != "CI"}
    if ci:
        environment["CI"] = ci
    done = subprocess.run([sys.executable, "-c", script], cwd=ROOT, env=environment, capture_output=True, text=True,
                          timeout=120)
    assert done.stdout.split() == ["True", str(properties.DEFAULT_EXAMPLES), "False"], done.stdout + done.stderr
