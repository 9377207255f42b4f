"""Speed benchmark: the default CPU conformance run's wall time as a ratio to the floor.

The floor is a pytest run of one trivial torch test in the same environment: interpreter start,
torch import, pytest and plugin start-up, everything the suite cannot avoid. It is
``bench/floor/test_floor.py`` run from the repository root, so the repository's pytest
configuration and conftest.py (the suite's own plugins) start as they do for the suite, and no
chapter is collected. Both are measured in the same invocation, alternating, and the medians are
compared, so a slower or busier machine moves both. Aim: ratio <= 1.5.

    python bench/ratio.py [--repeat 5] [--breakdown] [pytest args for the suite run...]

``--breakdown`` then runs the suite once more with ``bench/breakdown.py`` and shows where its
run loop goes (pytest's work per test, torch's forward and backward passes and module
construction, the NumPy reference, fixture reads, the spec's own code), each also as a share of
the floor: the ratio's budget, 0.5 x floor, is what the loop may cost.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
AIM = 1.5
FLOOR = ROOT / "bench" / "floor" / "test_floor.py"


def wall_time(command: list[str], cwd: Path) -> float:
    start = time.perf_counter()
    result = subprocess.run(command, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    elapsed = time.perf_counter() - start
    if result.returncode != 0:
        sys.exit(f"benchmark run failed ({' '.join(command)}):\n{result.stdout[-3000:]}")
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--breakdown", action="store_true", help="show where the suite run's loop goes")
    options, suite_args = parser.parse_known_args()
    pytest = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider"]
    floors, suites = [], []
    wall_time(pytest + suite_args, ROOT)  # warm the file cache and __pycache__ once
    for _ in range(options.repeat):
        floors.append(wall_time(pytest + [str(FLOOR.relative_to(ROOT))], ROOT))
        suites.append(wall_time(pytest + suite_args, ROOT))
    floor, suite = statistics.median(floors), statistics.median(suites)
    ratio, best_ratio = suite / floor, min(suites) / min(floors)
    per_round = statistics.median(s / f for s, f in zip(suites, floors))
    print(f"floor (one trivial torch test): median {floor:.2f} s, min {min(floors):.2f} s "
          f"over {options.repeat} runs {['%.2f' % t for t in floors]}")
    print(f"suite (python -m pytest {' '.join(suite_args)}): median {suite:.2f} s, min {min(suites):.2f} s "
          f"{['%.2f' % t for t in suites]}")
    print(f"ratio suite/floor: medians {ratio:.2f}, minima {best_ratio:.2f} (aim <= {AIM}: "
          f"{'OK' if ratio <= AIM else 'ABOVE AIM'}; the minima are the least disturbed runs; "
          f"median of the rounds' own ratios {per_round:.2f})")
    if options.breakdown:
        breakdown(pytest + suite_args, floor)


def breakdown(command: list[str], floor: float) -> None:
    """One more suite run with bench/breakdown.py: each part of its run loop in seconds and x floor."""
    with tempfile.TemporaryDirectory() as folder:
        figures_path = Path(folder) / "breakdown.json"
        environment = dict(os.environ, RNNSPEC_BREAKDOWN=str(figures_path),
                           PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT / "bench"), os.environ.get("PYTHONPATH")])))
        result = subprocess.run(command + ["-p", "breakdown"], cwd=ROOT, env=environment, stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, text=True)
        if result.returncode != 0 or not figures_path.is_file():
            sys.exit(f"breakdown run failed:\n{result.stdout[-3000:]}")
        figures = json.loads(figures_path.read_text())
    print(f"where the suite's run loop goes ({figures.pop('tests')} tests; budget for the aim: "
          f"{(AIM - 1) * floor:.2f} s = {AIM - 1:.1f} x floor, collection and teardown included):")
    for part, seconds in figures.items():
        print(f"  {part:48s} {seconds:6.3f} s  {seconds / floor:5.2f} x floor")


if __name__ == "__main__":
    main()
