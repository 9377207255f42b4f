"""The mutant zoo as targets, and the command that runs it: the spec must reject every wrong implementation.

Each implementation of ``rnnspec/zoo.py`` is a ``--target``: torch's own module (class, parameter
names, call signature, argument checks) whose calls compute through the loop with that entry's
hook (:func:`rnnspec.torch_loop.routed`); the cells are torch's own, correct::

    python -m pytest --target mutant:gru_update_gate_inverted      # or rnnspec.mutants:gru_update_gate_inverted
    python -m rnnspec.mutants                                       # the zoo: kill rate and the killers

``python -m rnnspec.mutants`` runs the whole spec (every chapter, float64, CPU) once per
implementation, the reference first: a rejected reference is the summary's headline, and a test
the reference fails kills no mutant (:func:`kills`).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from torch import nn

from rnnspec.kinds import KINDS
from rnnspec.torch_loop import routed
from rnnspec.zoo import DEFAULT_ZOO, IMPLEMENTATIONS, REFERENCE, ZOO  # noqa: F401 (the zoo's names, re-exported)


def factory(name: str) -> Callable[..., nn.Module]:
    """The ``--target`` factory of implementation ``name`` (a mutant or ``reference``)."""
    mutant = IMPLEMENTATIONS[name]

    def build(kind: str, input_size: int, hidden_size: int, **options) -> nn.Module:
        module = KINDS[kind].construct(input_size, hidden_size, **options)
        return module if KINDS[kind].cell else routed(module, mutant)
    build.__name__ = build.__qualname__ = name
    return build


def __getattr__(name: str):
    """``rnnspec.mutants:NAME`` as a ``--target``: each mutant's factory, by its name."""
    if name in IMPLEMENTATIONS:
        return factory(name)
    raise AttributeError(f"module 'rnnspec.mutants' has no attribute {name!r}")


# ---------------------------------------------------------------------------------------------
# Running the zoo
# ---------------------------------------------------------------------------------------------

ROOT = Path(__file__).resolve().parents[1]
#: One session per implementation: the whole spec, float64, on the CPU.
SESSION = ("spec", "--dtype", "float64", "--device", "cpu", "-q", "--tb=no", "-p", "no:randomly", "-p", "no:xdist",
           "-p", "no:cacheprovider")


@dataclass
class Verdict:
    """One implementation's session: how many tests ran, which failed, and how long it took."""

    name: str
    exit_code: int
    failed: list[str] = field(default_factory=list)
    passed: int = 0
    skipped: int = 0
    seconds: float = 0.0

    @property
    def killed(self) -> bool:
        return bool(self.failed)


class _Collector:
    """A pytest plugin that records one session's outcomes."""

    def __init__(self):
        self.failed, self.passed, self.skipped = [], 0, 0

    def pytest_runtest_logreport(self, report):
        if report.failed:
            self.failed.append(report.nodeid)
        elif report.when == "call" and report.passed:
            self.passed += 1
        elif report.skipped:
            self.skipped += 1


def run_in_this_process(names: list[str], basetemp: Path) -> list[Verdict]:
    """One pytest session per implementation, one after the other (torch imported once).

    Each session's terminal output goes to ``basetemp/NAME.log``.
    """
    import pytest  # noqa: PLC0415

    verdicts = []
    basetemp.mkdir(parents=True, exist_ok=True)
    for name in names:
        collector, start = _Collector(), time.perf_counter()
        with open(basetemp / f"{name}.log", "w") as log, contextlib.redirect_stdout(log):
            code = pytest.main([*SESSION, "--target", f"mutant:{name}", f"--basetemp={basetemp / name}"],
                               plugins=[collector])
        verdicts.append(Verdict(name, int(code), collector.failed, collector.passed, collector.skipped,
                                time.perf_counter() - start))
    return verdicts


def run(names: list[str], basetemp: Path) -> list[Verdict]:
    """The sessions of ``names`` in a fresh Python process started in the repository, as verdicts."""
    env = {key: value for key, value in os.environ.items() if not key.startswith(("PYTEST_", "COV_CORE"))}
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT)] + ([env["PYTHONPATH"]] if env.get("PYTHONPATH") else []))
    out = basetemp / "verdicts.json"
    result = subprocess.run([sys.executable, "-m", "rnnspec.mutants", "--json", str(out), "--basetemp",
                             str(basetemp), *names], cwd=ROOT, env=env, capture_output=True, text=True, timeout=1200)
    if not out.is_file():
        raise RuntimeError(f"the zoo's process wrote no verdicts (exit {result.returncode}):\n"
                           f"{result.stdout[-3000:]}\n{result.stderr[-3000:]}")
    return [Verdict(**entry) for entry in json.loads(out.read_text())]


def reference_rejected(verdicts: list[Verdict]) -> bool:
    """Whether the correct implementation failed a test (or its session did not finish cleanly)."""
    return any(v.failed or v.exit_code != 0 for v in verdicts if v.name == REFERENCE)


def kills(verdict: Verdict, verdicts: list[Verdict]) -> list[str]:
    """The tests that reject this mutant and accept the reference: a test the reference fails kills nothing."""
    rejected_reference = {test for v in verdicts if v.name == REFERENCE for test in v.failed}
    return [test for test in verdict.failed if test not in rejected_reference]


def summary(verdicts: list[Verdict]) -> str:
    """The reference's verdict first (a rejected reference is the headline), then the kill rate and the killers."""
    lines = []
    for verdict in verdicts:
        if verdict.name == REFERENCE:
            accepted = not reference_rejected(verdicts)
            lines.append(f"mutant zoo: reference {'ACCEPTED' if accepted else 'REJECTED'} ({verdict.passed} passed, "
                         f"{verdict.skipped} skipped, {len(verdict.failed)} failed, {verdict.seconds:.1f} s)"
                         + ("" if accepted else ": the spec fails a correct implementation, so no kill below counts "
                                                "until it passes; the tests it fails kill nothing")
                         + "".join(f"\n      {test}" for test in verdict.failed))
    mutants = [v for v in verdicts if v.name != REFERENCE]
    killed = [v for v in mutants if kills(v, verdicts)]
    rate = f"{len(killed)}/{len(mutants)} killed ({100 * len(killed) / max(len(mutants), 1):.0f} %)"
    lines.append(f"mutant zoo: {rate if not reference_rejected(verdicts) else rate + ', not a verdict: the reference is rejected'}"
                 f", {sum(v.seconds for v in verdicts):.1f} s in sessions")
    for verdict in mutants:
        killers = kills(verdict, verdicts)
        lines.append(f"  {verdict.name}: {'killed' if killers else 'SURVIVED'} by {len(killers)} of "
                     f"{len(verdict.failed) + verdict.passed} tests ({verdict.seconds:.1f} s; "
                     f"{ZOO[verdict.name].models})")
        chapters: dict[str, list[str]] = {}
        for test in killers:
            path, _, rest = test.partition("::")
            chapters.setdefault(Path(path).stem, []).append(rest)
        for chapter, tests in chapters.items():
            lines.append(f"      {chapter}: {len(tests)}: {', '.join(tests[:4])}{' ...' if len(tests) > 4 else ''}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m rnnspec.mutants",
                                     description="Run the spec against the reference loop and every mutant.")
    parser.add_argument("names", nargs="*", help=f"implementations (default: {REFERENCE} and every mutant)")
    parser.add_argument("--json", type=Path, help="write the verdicts here, as JSON")
    parser.add_argument("--basetemp", type=Path, default=Path("/tmp/rnnspec-zoo"))
    arguments = parser.parse_args(argv)
    names = arguments.names or list(IMPLEMENTATIONS)
    unknown = sorted(set(names) - set(IMPLEMENTATIONS))
    if unknown:
        parser.error(f"unknown implementations {unknown}; choose from {', '.join(IMPLEMENTATIONS)}")
    verdicts = run_in_this_process(names, arguments.basetemp)
    if arguments.json:
        arguments.json.write_text(json.dumps([vars(v) for v in verdicts]))
    print(summary(verdicts))
    survived = [v for v in verdicts if v.name != REFERENCE and not kills(v, verdicts)]
    return 0 if not reference_rejected(verdicts) and not survived else 1


if __name__ == "__main__":  # the zoo's own module, not a second copy of it as __main__
    from rnnspec.mutants import main as zoo_main
    sys.exit(zoo_main())
