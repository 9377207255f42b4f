"""Speed benchmark: the conformance runs' wall times as ratios to a floor measured in the same run.

The floor is a pytest run of one trivial torch test **outside the project**: interpreter start,
torch import, pytest with the installed plugins, nothing of the spec (no conftest.py, no pytest
configuration of the project, no import of rnnspec): ``bench/floor/test_floor.py`` copied into a
temporary directory and run there. Everything the suite adds to that (its own imports, conftest.py
and plugins, collection, the chapters' runs) is the suite's cost. The runs measured:

=================  ===================================================  ==========
run                command                                              aim
=================  ===================================================  ==========
seed               ``python -m pytest spec/test_0[1-6]_*.py``            <= 1.3
chapters           ``python -m pytest --ignore=<property chapters>``     <= 2.0
default            ``python -m pytest`` (the conformance check)          <= 2.5
=================  ===================================================  ==========

The default run's aim is 2.0 × the floor for the chapters, and the property-based tests (marked
``property``: chapter 17) have a budget of their own, at most 0.5 × the floor on top: 2.5 in all.
Their share is measured, not assumed: the default run's median less the chapters' run's median, as
a ratio to the floor (aim <= 0.5); the chapters' run leaves the modules marked ``property`` out
whole (``--ignore``), so that importing Hypothesis and drawing at collection count as theirs. Each run alternates with the floor, ``--repeat`` rounds, and the
report gives the medians' ratio, the minima's ratio (the least disturbed runs) and the median of the
rounds' own ratios: timings on a shared machine swing up to 2x, so read the medians of several rounds.

    python bench/ratio.py [--repeat 7] [--breakdown] [--only seed|chapters|default] [pytest args for the runs...]

``--breakdown`` then runs the default run once more with ``bench/breakdown.py`` and shows where its
run loop goes (pytest's work per test, torch's forward and backward passes and module
construction, the NumPy reference, fixture reads, the spec's own code), each also as a share of
the floor.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
FLOOR = ROOT / "bench" / "floor" / "test_floor.py"
SEED = sorted(str(path.relative_to(ROOT)) for path in (ROOT / "spec").glob("test_0[1-6]_*.py"))
#: The chapters of property-based tests (their module marks them ``property``): the chapters' run leaves them out
#: whole, so that what they cost at collection (importing Hypothesis, drawing) counts as theirs too.
PROPERTY_CHAPTERS = sorted(str(path.relative_to(ROOT)) for path in (ROOT / "spec").glob("test_*.py")
                           if "pytest.mark.property" in path.read_text(encoding="utf-8"))
#: run name -> (pytest arguments, aim as a ratio to the floor)
RUNS = {"seed": (SEED, 1.3), "chapters": ([f"--ignore={path}" for path in PROPERTY_CHAPTERS], 2.0),
        "default": ([], 2.5)}
#: Of the default run's aim, what the property-based tests may add (marker ``property``).
PROPERTY_BUDGET = 0.5


def wall_time(command: list[str], cwd: Path) -> float:
    start = time.perf_counter()
    result = subprocess.run(command, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    elapsed = time.perf_counter() - start
    if result.returncode != 0:
        sys.exit(f"benchmark run failed ({' '.join(command)}):\n{result.stdout[-3000:]}")
    return elapsed


def floor_command(folder: Path) -> list[str]:
    """The floor: the trivial test in an empty project of its own (an empty pytest.ini stops the search)."""
    shutil.copy(FLOOR, folder / FLOOR.name)
    (folder / "pytest.ini").write_text("[pytest]\n")
    return [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", FLOOR.name]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument("--breakdown", action="store_true", help="show where the default run's loop goes")
    parser.add_argument("--only", choices=list(RUNS), help="measure one run only")
    options, extra = parser.parse_known_args()
    pytest = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider"]
    names = [options.only] if options.only else list(RUNS)
    with tempfile.TemporaryDirectory() as outside:
        floor = floor_command(Path(outside))
        wall_time(floor, Path(outside))  # warm the file cache and __pycache__ once
        for name in names:
            wall_time(pytest + RUNS[name][0] + extra, ROOT)
        floors, times = [], {name: [] for name in names}
        for _ in range(options.repeat):
            for name in names:  # alternate: floor, run, floor, run...
                floors.append(wall_time(floor, Path(outside)))
                times[name].append(wall_time(pytest + RUNS[name][0] + extra, ROOT))
    print(f"floor (one trivial torch test, outside the project): median {statistics.median(floors):.2f} s, "
          f"min {min(floors):.2f} s over {len(floors)} runs")
    rounds = len(names)
    for index, name in enumerate(names):
        mine = floors[index::rounds]  # the floors measured just before this run's rounds
        ratio = statistics.median(times[name]) / statistics.median(mine)
        best = min(times[name]) / min(mine)
        per_round = statistics.median(t / f for t, f in zip(times[name], mine))
        aim = RUNS[name][1]
        arguments = RUNS[name][0] if len(RUNS[name][0]) <= 2 else [RUNS[name][0][0], "..."]
        print(f"{name} ({' '.join(['pytest', *arguments, *extra])}): "
              f"median {statistics.median(times[name]):.2f} s; ratio: medians {ratio:.2f}, minima {best:.2f}, "
              f"per-round median {per_round:.2f} (aim <= {aim}: {'OK' if per_round <= aim else 'ABOVE AIM'})")
    if {"chapters", "default"} <= set(names):
        share = (statistics.median(times["default"]) - statistics.median(times["chapters"])) / statistics.median(floors)
        print(f"property tests (default less chapters): {share:.2f} x floor "
              f"(aim <= {PROPERTY_BUDGET}: {'OK' if share <= PROPERTY_BUDGET else 'ABOVE AIM'})")
    if options.breakdown:
        breakdown(pytest + extra, statistics.median(floors))


def breakdown(command: list[str], floor: float) -> None:
    """One more default run with bench/breakdown.py: each part of its run loop in seconds and x floor."""
    with tempfile.TemporaryDirectory() as folder:
        figures_path = Path(folder) / "breakdown.json"
        environment = dict(os.environ, RNNSPEC_BREAKDOWN=str(figures_path),
                           PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT / "bench"), os.environ.get("PYTHONPATH")])))
        result = subprocess.run(command + ["-p", "breakdown"], cwd=ROOT, env=environment, stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, text=True)
        if result.returncode != 0 or not figures_path.is_file():
            sys.exit(f"breakdown run failed:\n{result.stdout[-3000:]}")
        figures = json.loads(figures_path.read_text())
    print(f"where the default run's loop goes ({figures.pop('tests')} tests; collection and teardown not included):")
    for part, seconds in figures.items():
        print(f"  {part:48s} {seconds:6.3f} s  {seconds / floor:5.2f} x floor")


if __name__ == "__main__":
    main()
