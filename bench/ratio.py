"""Speed benchmark: the default CPU conformance run's wall time as a ratio to the floor.

The floor is a pytest run of one trivial torch test in the same environment: interpreter start,
torch import, pytest and plugin start-up, everything the suite cannot avoid. It is
``bench/floor/test_floor.py`` run from the repository root, so the repository's pytest
configuration and conftest.py (the suite's own plugins) start as they do for the suite, and no
chapter is collected. Both are measured in the same invocation, alternating, and the medians are
compared, so a slower or busier machine moves both. Aim: ratio <= 1.5.

    python bench/ratio.py [--repeat 5] [pytest args for the suite run...]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
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
    options, suite_args = parser.parse_known_args()
    pytest = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider"]
    floors, suites = [], []
    wall_time(pytest + suite_args, ROOT)  # warm the file cache and __pycache__ once
    for _ in range(options.repeat):
        floors.append(wall_time(pytest + [str(FLOOR.relative_to(ROOT))], ROOT))
        suites.append(wall_time(pytest + suite_args, ROOT))
    floor, suite = statistics.median(floors), statistics.median(suites)
    ratio, best_ratio = suite / floor, min(suites) / min(floors)
    print(f"floor (one trivial torch test): median {floor:.2f} s, min {min(floors):.2f} s "
          f"over {options.repeat} runs {['%.2f' % t for t in floors]}")
    print(f"suite (python -m pytest {' '.join(suite_args)}): median {suite:.2f} s, min {min(suites):.2f} s "
          f"{['%.2f' % t for t in suites]}")
    print(f"ratio suite/floor: medians {ratio:.2f}, minima {best_ratio:.2f} (aim <= {AIM}: "
          f"{'OK' if ratio <= AIM else 'ABOVE AIM'}; the minima are the least disturbed runs)")


if __name__ == "__main__":
    main()
