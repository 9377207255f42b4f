"""Expectation files turn known unsupported combinations into strict xfails that name the error.

A listed test must raise the listed exception type with a message containing ``match``: raising
something else fails, and so does passing (support appeared: remove the entry). An entry that
matches no selected test is reported as stale. A target's file (``target-NAME.toml``) applies under
``--target NAME`` only.
"""

import textwrap

pytest_plugins = ["pytester"]

#: A conftest that applies the expectation files of its folder to tests taking a cpu ``device``.
CONFTEST = textwrap.dedent("""
    from pathlib import Path
    from rnnspec import devices, expectations

    pytest_plugins = {plugins!r}

    def pytest_configure(config):
        config.spec_devices = [devices.Device("cpu")]
        config.pluginmanager.register(expectations.Plugin(Path(__file__).parent / "expectations"))

    def pytest_generate_tests(metafunc):
        if "device" in metafunc.fixturenames:
            metafunc.parametrize("device", ["cpu"], ids=str)
""")


def test_expectation_entries_are_strict_and_check_the_message(pytester):
    """Listed error: xfailed; other message: failed; passing: failed (strict); unmatched entry: reported."""
    pytester.makeconftest(CONFTEST.format(plugins=[]))
    pytester.makepyfile(test_support=textwrap.dedent("""
        def test_raises_the_listed_error(device):
            raise TypeError("cpu has no float128 kernel")

        def test_raises_another_message(device):
            raise TypeError("something else entirely")

        def test_passes(device):
            pass
    """))
    entry = '[[unsupported]]\ntests = "{}"\nraises = "TypeError"\nmatch = "no float128"\nreason = "example"\n'
    (pytester.path / "expectations").mkdir()
    (pytester.path / "expectations" / "cpu.toml").write_text(
        "".join(entry.format(f"test_support.py::{name}[[]cpu]") for name in
                ("test_raises_the_listed_error", "test_raises_another_message", "test_passes", "test_gone")))
    result = pytester.runpytest_inprocess("-p", "no:randomly", "-p", "no:cacheprovider", "-o", "xfail_strict=true")
    result.assert_outcomes(xfailed=1, failed=2)
    result.stdout.fnmatch_lines([
        "*test_raises_another_message* was expected to fail with TypeError containing 'no float128'*",
        "*stale expectation in expectations/cpu.toml: 'test_support.py::test_gone*' matches no selected test*",
    ])


def test_a_targets_expectations_apply_under_that_target_only(pytester):
    """expectations/target-NAME.toml: its entries (one pattern or a list, any device unless one is named, tests
    with or without a device) are strict xfails under --target NAME, and nothing at all under another target."""
    pytester.makeconftest(CONFTEST.format(plugins=["rnnspec.targets"]))
    pytester.makepyfile(test_support=textwrap.dedent("""
        def test_loop_a(device):
            raise TypeError("a loop of cells drifts")

        def test_loop_b(device):
            raise TypeError("a loop of cells drifts")

        def test_without_device():
            raise ValueError("cells have no projection")

        def test_on_cuda_only(device):
            raise TypeError("a loop of cells drifts")
    """))
    (pytester.path / "expectations").mkdir()
    (pytester.path / "expectations" / "target-cells.toml").write_text(textwrap.dedent("""
        [[unsupported]]
        tests = ["test_support.py::test_loop_a[[]cpu]", "test_support.py::test_loop_b*"]
        raises = "TypeError"
        match = "drifts"
        reason = "example"

        [[unsupported]]
        tests = "test_support.py::test_without_device"
        raises = "ValueError"
        match = "no projection"
        reason = "example"

        [[unsupported]]
        device = "cuda"
        tests = "test_support.py::test_on_cuda_only*"
        raises = "TypeError"
        match = "drifts"
        reason = "example"
    """))
    arguments = ("-p", "no:randomly", "-p", "no:cacheprovider", "-o", "xfail_strict=true")
    under_cells = pytester.runpytest_inprocess(*arguments, "--target", "cells")
    under_cells.assert_outcomes(xfailed=3, failed=1)
    under_cells.stdout.fnmatch_lines(["*stale expectation in expectations/target-cells.toml: "
                                      "'test_support.py::test_on_cuda_only*' matches no selected test*"])
    under_eager = pytester.runpytest_inprocess(*arguments)
    under_eager.assert_outcomes(failed=4)
    assert "stale expectation" not in under_eager.stdout.str()


def test_an_entry_holds_only_where_its_machine_condition_does(pytester, monkeypatch):
    """``when``: an entry whose condition is false on this machine applies to nothing and is not stale; a true one
    applies; an unknown condition is a usage error naming the known ones."""
    from rnnspec import expectations

    monkeypatch.setitem(expectations.CONDITIONS, "always", lambda: True)
    monkeypatch.setitem(expectations.CONDITIONS, "never", lambda: False)
    pytester.makeconftest(CONFTEST.format(plugins=[]))
    pytester.makepyfile(test_support=textwrap.dedent("""
        def test_fails_here(device):
            raise TypeError("no float128 kernel")

        def test_passes(device):
            pass
    """))
    entry = '[[unsupported]]\ntests = "{}"\nwhen = "{}"\nraises = "TypeError"\nmatch = "no float128"\nreason = "x"\n'
    (pytester.path / "expectations").mkdir()
    cpu = pytester.path / "expectations" / "cpu.toml"
    cpu.write_text(entry.format("test_support.py::test_fails_here[[]cpu]", "always")
                   + entry.format("test_support.py::test_passes[[]cpu]", "never"))
    result = pytester.runpytest_inprocess("-p", "no:randomly", "-p", "no:cacheprovider", "-o", "xfail_strict=true")
    result.assert_outcomes(xfailed=1, passed=1)
    assert "stale expectation" not in result.stdout.str()
    cpu.write_text(entry.format("test_support.py::test_passes[[]cpu]", "on Tuesdays"))
    result = pytester.runpytest_inprocess("-p", "no:randomly", "-p", "no:cacheprovider")
    assert result.ret == 4 and "when = 'on Tuesdays' is no known condition" in result.stderr.str()


def test_an_entry_with_several_matches_explains_each_exception_of_a_group():
    """``match`` as a list: the message contains one of them. A group of exceptions (Hypothesis' distinct failures
    of a property test's examples) is explained only when every exception in it is."""
    import builtins

    from rnnspec.expectations import Unsupported

    ExceptionGroup = getattr(builtins, "ExceptionGroup", None) or __import__("exceptiongroup").ExceptionGroup

    entry = Unsupported(file="x.toml", device_type=None, tests="*", raises="Exception", reason="no float64 kernels",
                        match=("no RNN kernel", "does not support double"))
    assert entry.explains(RuntimeError("LSTM operator does not support double yet"))
    assert not entry.explains(RuntimeError("Reshape failed"))
    explained = ExceptionGroup("2 distinct failures", [RuntimeError("no RNN kernel"),
                                                       ValueError("GRU operator does not support double yet")])
    assert entry.explains(explained)
    assert not entry.explains(ExceptionGroup("2 distinct failures", [RuntimeError("no RNN kernel"),
                                                                      RuntimeError("Reshape failed")]))
    assert "no RNN kernel | does not support double" in entry.describe()
