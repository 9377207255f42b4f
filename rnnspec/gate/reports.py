"""Report files: the format, reading (older versions upgraded), writing, validating against the schema.

A report is JSON (``rnnspec/gate/report.schema.json``), ``"format": "rnn-spec-report"`` and a
``"version"``; any change to the schema changes the version. The commands read every version in
:data:`READABLE`, each upgraded to the current one with the fields it lacks unknown
(:func:`upgraded`), and refuse others with a message rather than misread them:

* version 1 had no target, CPU facts, authorities, observations or envelopes;
* version 2 added those; it had no host name;
* version 3 adds each run's ``host`` (``merge`` and ``compare`` name runs by label, host and target).
"""

from __future__ import annotations

import datetime
import json
from pathlib import Path

from rnnspec.vocabulary import NONE_SELECTED, OUTCOMES, no_case

FORMAT = "rnn-spec-report"
VERSION = 3
READABLE = (1, 2, 3)
SCHEMA = Path(__file__).with_name("report.schema.json")
#: A comparison's key in the report -> how the report names it.
WITNESSES = {
    "against_reference": "measured vs reference",
    "against_fixture": "measured vs fixture",
    "fixture_against_reference": "fixture vs reference",
}


class ReportError(ValueError):
    """A file is not a report this version can read."""


def load(path) -> dict:
    try:
        report = json.loads(Path(path).read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ReportError(f"{path}: not a readable JSON report ({error})") from None
    if not isinstance(report, dict) or report.get("format") != FORMAT:
        raise ReportError(f"{path}: not an {FORMAT} file (no \"format\": \"{FORMAT}\")")
    if report.get("version") not in READABLE:
        raise ReportError(f"{path}: report version {report.get('version')!r}; this rnn-spec reads versions "
                          f"{', '.join(map(str, READABLE))}")
    return upgraded(report)


def upgraded(report: dict) -> dict:
    """A report of an older version as the current one, what it did not record unknown."""
    if report["version"] == 1:
        report = _version_2(report)
    if report["version"] == 2:
        report = {**report, "version": 3, "runs": [{**run, "host": run.get("host")} for run in report["runs"]]}
    return report


def _version_2(report: dict) -> dict:
    """A version 1 report as version 2: no target, CPU facts, authorities, observations or envelopes are known."""
    unknown = {"name": "unknown (a version 1 report)", "description": "version 1 reports do not name their target"}
    runs = [{**run, "target": run.get("target", unknown), "cpu": run.get("cpu", {
        "cpu_model": None, "cpu_vendor": None, "cpu_capability": run["torch"].get("cpu_capability"), "blas": None,
        "blas_version": None, "onednn_version": None, "onednn_rnn_dtypes": [], "threads": 1, "kernel_variables": {}})}
        for run in report["runs"]]
    results = []
    for result in report["results"]:
        comparisons = [{**comparison, "tensors": {name: {**tensor, "tolerance": {"envelope": False, **tensor["tolerance"]}}
                                                  for name, tensor in comparison["tensors"].items()}}
                       for comparison in result["comparisons"]]
        results.append({"authority": None, "observations": {}, **result, "comparisons": comparisons})
    return {**report, "version": 2, "runs": runs, "results": results}


def dumps(report: dict) -> str:
    """The report as JSON, one result per line (so that grep and diff work on it), the runs indented."""
    head = {key: value for key, value in report.items() if key != "results"}
    text = json.dumps(head, indent=1)[:-2]  # reopen the object to append the results
    results = ",\n  ".join(json.dumps(result, separators=(",", ":")) for result in report["results"])
    return f"{text},\n \"results\": [\n  {results}\n ]\n}}\n" if results else f"{text},\n \"results\": []\n}}\n"


def schema() -> dict:
    return json.loads(SCHEMA.read_text())


def validate(report: dict) -> list[str]:
    """Every way ``report`` breaks the schema (empty when valid). Needs the jsonschema package."""
    import jsonschema

    validator = jsonschema.Draft202012Validator(schema())
    return [f"{'/'.join(str(p) for p in error.absolute_path) or '(top)'}: {error.message}"
            for error in sorted(validator.iter_errors(report), key=lambda e: list(map(str, e.absolute_path)))]


def totals(results: list[dict]) -> dict[str, int]:
    counts = dict.fromkeys(OUTCOMES, 0)
    for result in results:
        counts[result["outcome"]] += 1
    return counts


def not_a_case(result: dict) -> bool:
    """A result that is no cell of the matrix: a claim about dtypes none of which was selected."""
    return no_case(result["reason"]) or result["params"].get("dtype") == NONE_SELECTED


def now() -> str:
    return datetime.datetime.now(datetime.timezone.utc).replace(microsecond=0).isoformat()
