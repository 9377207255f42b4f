"""Machine variants: the conformance check under the CPU kernels other machines would run.

A claim that holds on one machine's kernels may be a claim PyTorch never made: MKL chooses its
kernels by CPU vendor and instruction set, torch's own CPU kernels by the vector ISA, oneDNN serves
the LSTM only where the CPU has the instructions for the dtype, and the thread count splits sums
differently. This machine can emulate several of those choices; each must pass:

================================  ====================================================================
variant                           what it changes
================================  ====================================================================
as it is                          nothing
``MKL_CBWR=COMPATIBLE``           MKL's conditional numerical reproducibility: its most portable kernels
``MKL_CBWR=AVX2``                 MKL's AVX2 kernels, whatever the CPU offers
``ATEN_CPU_CAPABILITY=default``   torch's own kernels without vector instructions
``ATEN_CPU_CAPABILITY=avx2``      torch's own kernels with AVX2
``--onednn off``                  ``torch.backends.mkldnn.enabled = False``: torch's own LSTM kernels,
                                  as on CPUs that oneDNN does not serve (bfloat16 step by step)
``OMP_NUM_THREADS=1``             one thread: no sum split between threads
================================  ====================================================================

``python -m rnnspec.variants [PYTEST ARGUMENTS]`` runs ``python -m pytest`` under each (in this
order, one process each) and prints one line per variant; it exits 1 if any variant fails. CI runs
it (``.ci/run``). As a pytest plugin this module adds ``--onednn {on,off}`` (default: on, torch's
own default), set for the session and restored at its end.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
#: (name, environment variables, pytest arguments)
VARIANTS = (
    ("as it is", {}, ()),
    ("MKL_CBWR=COMPATIBLE", {"MKL_CBWR": "COMPATIBLE"}, ()),
    ("MKL_CBWR=AVX2", {"MKL_CBWR": "AVX2"}, ()),
    ("ATEN_CPU_CAPABILITY=default", {"ATEN_CPU_CAPABILITY": "default"}, ()),
    ("ATEN_CPU_CAPABILITY=avx2", {"ATEN_CPU_CAPABILITY": "avx2"}, ()),
    ("oneDNN off", {}, ("--onednn", "off")),
    ("OMP_NUM_THREADS=1", {"OMP_NUM_THREADS": "1"}, ()),
)
_RESTORE = pytest.StashKey[bool]()


def pytest_addoption(parser):
    group = parser.getgroup("rnn-spec", "PyTorch recurrent-layer spec")
    group.addoption("--onednn", choices=("on", "off"), default="on",
                    help="off: torch.backends.mkldnn.enabled = False for the session (torch's own CPU kernels, as on "
                         "CPUs oneDNN does not serve); default on")


def pytest_configure(config):
    if config.getoption("onednn") == "off":
        import torch

        config.stash[_RESTORE] = torch.backends.mkldnn.enabled
        torch.backends.mkldnn.enabled = False


def pytest_unconfigure(config):
    if _RESTORE in config.stash:
        import torch

        torch.backends.mkldnn.enabled = config.stash[_RESTORE]
        del config.stash[_RESTORE]


def run(arguments: list[str]) -> list[tuple[str, int, str, float]]:
    """Each variant's (name, exit status, pytest's last line, seconds)."""
    results = []
    for name, variables, extra in VARIANTS:
        environment = {key: value for key, value in os.environ.items() if not key.startswith("PYTEST_")}
        environment.update(variables)
        start = time.perf_counter()
        done = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:randomly", *extra, *arguments],
                              cwd=ROOT, env=environment, capture_output=True, text=True)
        lines = [line for line in done.stdout.splitlines() if re.search(r"\d+ (passed|failed|error)", line)]
        results.append((name, done.returncode, lines[-1] if lines else done.stdout[-300:], time.perf_counter() - start))
    return results


def main(argv: list[str] | None = None) -> int:
    arguments = sys.argv[1:] if argv is None else argv
    results = run(arguments)
    width = max(len(name) for name, *_ in results)
    for name, status, last, seconds in results:
        print(f"{name:<{width}}  {'ok  ' if status == 0 else 'FAIL'}  {seconds:5.1f} s  {last}")
    failed = [name for name, status, *_ in results if status != 0]
    if failed:
        print(f"rnn-spec: the conformance check fails under {', '.join(failed)}: a claim PyTorch does not make "
              f"on every machine, or a kernel that is wrong there", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
