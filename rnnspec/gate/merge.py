"""``merge A.json B.json ... -o ALL.json``: one report of several runs (a CPU box, a CUDA box, a Mac).

The runs are kept as they are, each result pointing at its run; the Markdown of the merged report
(``rnnspec/gate/markdown.py``) has a matrix column per device of each run, titled by the run's
label, host, target and torch.
"""

from __future__ import annotations

from rnnspec.gate.reports import FORMAT, VERSION, now


def merge(reports: list[dict]) -> dict:
    """One report holding every run of ``reports`` (read with ``reports.load``: all of the current version)."""
    runs, results = [], []
    for report in reports:
        offset = len(runs)
        runs.extend(report["runs"])
        results.extend({**result, "run": result["run"] + offset} for result in report["results"])
    return {"format": FORMAT, "version": VERSION, "created": now(), "runs": runs, "results": results}
