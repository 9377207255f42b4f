"""The mutant zoo: the spec rejects every deliberately wrong implementation and accepts the correct one.

``rnnspec/zoo.py`` holds at least 15 mutants, each the loop of ``rnnspec/torch_loop.py`` with one
hook filled, each modelling a real class of bug, each a ``--target``. For each mutant, a pytest
session runs the whole spec (every chapter, float64, CPU) with ``--target mutant:NAME``; the
mutant is killed when at least one test fails that the correct implementation passes. The same
session with the loop and no mutation (``mutant:reference``) runs first in every group and must pass
with no failure at all; a test it fails kills no mutant (``rnnspec.mutants.kills``), and a rejected
reference is the headline of the summary, before any kill rate.

By default a representative subset runs (``rnnspec.mutants.DEFAULT_ZOO``: one mutant per family
of bug, every kind of layer); ``--full-zoo`` (or ``RNNSPEC_FULL_ZOO=1``) runs all of them. The
subset chooses mutants, never chapters: every session runs all of ``spec/``. The sessions run in
fresh processes (torch imported once per group), in groups that pytest-xdist spreads over its
workers. Each group prints its kill rate and, for every mutant, the tests that killed it (shown
with ``-rP``; ``python -m rnnspec.mutants`` prints the whole zoo's table).
"""

from __future__ import annotations

import os

from rnnspec import mutants, torch_loop, zoo
from rnnspec.kinds import RECURRENCES


def full_zoo(config) -> bool:
    return bool(config.getoption("full_zoo", False)) or os.environ.get("RNNSPEC_FULL_ZOO") == "1"


def pytest_generate_tests(metafunc):
    """Groups of implementations, each with the reference first: one process each, spread over the xdist workers."""
    if "group" not in metafunc.fixturenames:
        return
    names = list(mutants.ZOO) if full_zoo(metafunc.config) else list(mutants.DEFAULT_ZOO)
    count = 3 if full_zoo(metafunc.config) else 2
    groups = [[mutants.REFERENCE, *names[index::count]] for index in range(count)]
    metafunc.parametrize("group", groups, ids=[f"{'full' if count == 3 else 'subset'}-group{index + 1}"
                                               for index in range(count)])


def test_the_zoo_holds_at_least_15_mutants_each_a_documented_bug_class():
    """Every mutant is named in a docstring with the bug class it models; the subset is drawn from the zoo."""
    assert len(mutants.ZOO) >= 15, f"the zoo holds {len(mutants.ZOO)} mutants"
    for name, mutant in mutants.ZOO.items():
        assert f"``{name}``" in zoo.__doc__, f"{name} is described in no docstring"
        assert mutant.models, f"{name} names no bug class"
    assert set(mutants.DEFAULT_ZOO) <= set(mutants.ZOO)
    assert mutants.REFERENCE not in mutants.ZOO and mutants.IMPLEMENTATIONS[mutants.REFERENCE] is torch_loop.NO_BREAK


def test_the_default_subset_breaks_every_kind_of_layer():
    """The subset's mutants touch rnn_tanh, rnn_relu, lstm and gru, forward and backward-only bugs alike."""
    touched = {kind for name in mutants.DEFAULT_ZOO for kind in mutants.ZOO[name].kinds}
    assert touched == set(RECURRENCES), touched
    assert any(mutants.ZOO[name].carry is not None for name in mutants.DEFAULT_ZOO), "no backward-only mutant"


def test_every_session_runs_the_whole_spec():
    """A session's command names spec/ and selects nothing within it: no chapter can be left out."""
    assert "spec" in mutants.SESSION
    assert not {"-k", "-m", "--deselect", "--lf"} & set(mutants.SESSION)


def test_the_spec_rejects_every_mutant_and_accepts_the_reference(group, tmp_path):
    verdicts = mutants.run(group, tmp_path)
    print(mutants.summary(verdicts))
    assert [v.name for v in verdicts] == group, [v.name for v in verdicts]
    reference = verdicts[0]
    assert not mutants.reference_rejected(verdicts) and reference.passed > 100, (
        f"the reference loop is rejected (exit {reference.exit_code}, {reference.passed} passed): "
        f"{reference.failed}; see {tmp_path / 'reference.log'}")
    for verdict in verdicts[1:]:
        assert mutants.kills(verdict, verdicts), (
            f"mutant {verdict.name} survived the spec ({mutants.ZOO[verdict.name].models}): {verdict.passed} tests "
            f"passed, none failed that the reference passes; see {tmp_path / verdict.name}.log")


def test_a_rejected_reference_is_the_headline_and_its_failures_kill_nothing():
    """With the reference failing a test, the summary opens with REJECTED and that test kills no mutant."""
    shared = "spec/test_01_forward_values.py::test_x[cpu-float64]"
    verdicts = [mutants.Verdict(mutants.REFERENCE, 1, [shared], passed=99),
                mutants.Verdict("relu_computes_tanh", 1, [shared], passed=99),
                mutants.Verdict("lstm_gates_swapped", 1, [shared, "spec/test_05_x.py::test_y[cpu-float64]"], passed=98)]
    text = mutants.summary(verdicts)
    assert text.splitlines()[0].startswith("mutant zoo: reference REJECTED"), text
    assert "1/2 killed (50 %), not a verdict: the reference is rejected" in text, text
    assert mutants.kills(verdicts[1], verdicts) == [] and len(mutants.kills(verdicts[2], verdicts)) == 1
    assert "relu_computes_tanh: SURVIVED" in text, text
