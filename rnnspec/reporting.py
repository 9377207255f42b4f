"""The conformance report: writing it, reading, validating, merging, rendering and comparing
reports, and the summary of what moved in ``fixtures/``; the commands of ``python -m rnnspec.report``.

What each part shows and how to use it is in rnnspec/report.py's docstring and the README's
"Upgrade gate". This module is imported only by a run with ``--spec-report``, a recording run, or
a command; rnnspec/report.py, the plugin every run loads, stays small.
"""

from __future__ import annotations

import datetime
import json
import math
import os
import platform as _platform
import subprocess
import sys
import time
from pathlib import Path

import pytest

from rnnspec import authority, fixture_files, provenance, spec_check
from rnnspec.figures import FORMATS, INF, error_figures
from rnnspec.report import OBSERVATIONS, is_worker
from rnnspec.vocabulary import (NO_DTYPE, NONE_SELECTED, OUTCOMES, cell_text, chapter_title, module_of, no_case,
                                phase_outcome)

FORMAT = "rnn-spec-report"
VERSION = 2
#: The versions the commands read: a version 1 report is read as version 2 with the new fields unknown.
READABLE = (1, 2)
SCHEMA = Path(__file__).with_name("report.schema.json")
WITNESSES = {  # a comparison's key in the report -> how the report names it
    "against_reference": "measured vs reference",
    "against_fixture": "measured vs fixture",
    "fixture_against_reference": "fixture vs reference",
}
CHANGES = "CHANGES.md"


# ----------------------------------------------------------------------------------------------
# Writing the report (the plugin's part for --spec-report and recording runs)
# ----------------------------------------------------------------------------------------------

class Details:
    """With --spec-report or in a recording run: gathers every test's row, writes the report,
    and after a recording run the provenance and the summary of what moved."""

    def __init__(self, config, path: str | None, recording: bool):
        self.config = config
        self.path = Path(path) if path else None
        self.recording = recording
        self.rows: dict[str, dict] = {}
        self.recorded: list[str] = []
        self.notes: list[str] = []
        self.started = time.time()

    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_makereport(self, item, call):
        """On the process that runs the test (an xdist worker too): attach the row's facts to the report."""
        report = yield
        if call.when == "call" or report.failed or report.skipped:
            report.rnnspec_case = case_of(item)
            report.rnnspec_comparisons = item.stash.get(spec_check.COMPARISONS, [])
            report.rnnspec_recorded = item.stash.get(spec_check.RECORDED, [])
            report.rnnspec_observations = item.stash.get(OBSERVATIONS, {})
        return report

    def pytest_runtest_logreport(self, report):
        row = self.rows.get(report.nodeid)
        if row is None:
            row = self.rows[report.nodeid] = {"nodeid": report.nodeid, "chapter": module_of(report.nodeid),
                                              "behaviour": report.nodeid.split("::")[-1].split("[")[0],
                                              "claim": None, "device": None, "dtype": None, "params": {},
                                              "outcome": None, "reason": None, "message": None,
                                              "duration_s": 0.0, "comparisons": [], "authority": None,
                                              "observations": {}}
        row["duration_s"] = round(row["duration_s"] + (report.duration or 0.0), 6)
        case = getattr(report, "rnnspec_case", None)
        if case:
            row.update(case)
        if getattr(report, "rnnspec_comparisons", None):
            row["comparisons"] = report.rnnspec_comparisons
        if getattr(report, "rnnspec_observations", None):
            row["observations"] = dict(report.rnnspec_observations)
        self.recorded.extend(getattr(report, "rnnspec_recorded", None) or [])
        decided = phase_outcome(report)
        if decided is not None and (decided[0] == "error" or row["outcome"] is None):
            row["outcome"], row["reason"] = decided
            if report.failed:
                row["message"] = failure_message(report)

    @pytest.hookimpl(trylast=True)
    def pytest_sessionfinish(self, session, exitstatus):
        if is_worker(self.config):
            return
        fixtures = self.config.rootpath / "fixtures"
        if self.recording and self.recorded:
            self.after_recording(fixtures)
        if self.path is not None:
            report = {"format": FORMAT, "version": VERSION, "created": _now(),
                      "runs": [describe_run(self.config, exitstatus=int(exitstatus),
                                            duration=time.time() - self.started)],
                      "results": [{"run": 0, **row} for row in self.rows.values() if row["outcome"] is not None]}
            report["runs"][0]["totals"] = totals(report["results"])
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self.path.write_text(dumps(report))
            markdown = self.path.with_suffix(".md")
            markdown.write_text(render(report))
            self.notes.append(f"rnn-spec: report written to {self.path} and {markdown}")

    def after_recording(self, fixtures: Path) -> None:
        names = sorted({os.path.relpath(self.config.rootpath / name, fixtures) for name in self.recorded})
        try:
            provenance.update(fixtures, names)
        except provenance.ProvenanceError as error:
            self.notes.append(f"rnn-spec: provenance not updated: {error}")
            return
        self.notes.append(f"rnn-spec: recorded {len(names)} fixture file(s); "
                          f"provenance updated in {os.path.relpath(fixtures / provenance.FILE)}")
        try:
            text = rebaseline_summary(fixtures)
        except RebaselineError as error:
            self.notes.append(f"rnn-spec: {CHANGES} not written: {error}")
            return
        (fixtures / CHANGES).write_text(text)
        self.notes.append(f"rnn-spec: what moved is summarised in {os.path.relpath(fixtures / CHANGES)}: "
                          f"review it with the .npz files before committing")

    def pytest_terminal_summary(self, terminalreporter, config):
        for note in self.notes:
            terminalreporter.write_line(note)


def case_of(item) -> dict:
    """The row's structured facts, from the collected item (device, dtype, other parameters, the claim)."""
    callspec = getattr(item, "callspec", None)
    params = dict(callspec.params) if callspec is not None else {}
    device, dtype = params.pop("device", None), params.pop("dtype", None)
    if dtype is not None and not isinstance(dtype, str):  # NOTSET: no selected dtype is one this claim is about
        dtype, params["dtype"] = None, NONE_SELECTED
    doc = (getattr(getattr(item, "function", None), "__doc__", None) or "").strip()
    claimed = authority.of(item)
    return {"chapter": Path(str(item.path)).stem, "behaviour": getattr(item, "originalname", item.name),
            "claim": doc.splitlines()[0] if doc else None,
            "authority": None if claimed is None else {"kind": claimed.kind, "source": claimed.source},
            "device": None if device is None else str(device), "dtype": None if dtype is None else str(dtype),
            "params": {name: _word(value) for name, value in params.items()}}


def _word(value) -> str:
    return value if isinstance(value, str) else repr(value)[:80]


def failure_message(report, limit: int = 4000) -> str:
    crash = getattr(report.longrepr, "reprcrash", None)
    text = crash.message if crash is not None else str(report.longrepr)
    return text if len(text) <= limit else text[:limit] + " …"


def totals(results: list[dict]) -> dict[str, int]:
    counts = dict.fromkeys(OUTCOMES, 0)
    for result in results:
        counts[result["outcome"]] += 1
    return counts


def _now() -> str:
    return datetime.datetime.now(datetime.timezone.utc).replace(microsecond=0).isoformat()


def describe_run(config, *, exitstatus: int | None, duration: float) -> dict:
    """The run's environment: machine, torch build, devices, numerics flags, fixtures' baseline."""
    import numpy
    import torch

    from rnnspec import machine, numerics, targets

    try:
        baseline = provenance.read(config.rootpath / "fixtures")
    except provenance.ProvenanceError:
        baseline = None
    with numerics.pinned_numerics():
        in_tests = {name: provenance._plain(value) for name, value in numerics.numerics_flags().items()}
    cudnn = torch.backends.cudnn
    return {
        "label": config.getoption("spec_report_label") or f"{_platform.system().lower()}-{_platform.machine()}",
        "command": ["pytest", *config.invocation_params.args],
        "exit_status": exitstatus,
        "duration_s": round(duration, 3),
        "python": _platform.python_version(),
        "platform": _platform.platform(),
        "machine": _platform.machine(),
        "torch": {"version": torch.__version__, "git_version": getattr(torch.version, "git_version", None),
                  "cuda": torch.version.cuda, "hip": getattr(torch.version, "hip", None),
                  "cudnn": cudnn.version() if cudnn.is_available() else None,
                  "cpu_capability": provenance._cpu_capability(torch)},
        "numpy": numpy.__version__,
        "devices": [describe_device(device, torch) for device in getattr(config, "spec_devices", [])],
        "dtypes": list(getattr(config, "spec_dtypes", [])),
        "numerics": {
            "in_tests": in_tests,
            "session": {name: provenance._plain(value) for name, value in numerics.numerics_flags().items()},
            "cudnn": {"enabled": bool(cudnn.enabled), "deterministic": bool(cudnn.deterministic),
                      "benchmark": bool(cudnn.benchmark)},
            "deterministic_warn_only": bool(torch.is_deterministic_algorithms_warn_only_enabled()),
        },
        "baseline": baseline,
        "totals": {},
        "target": {"name": targets.active(config).name,
                   "description": getattr(targets.active(config), "description", "torch.nn as installed")},
        "cpu": machine.describe(),
    }


def describe_device(device, torch) -> dict:
    description = None
    if device.unavailable_because is None:
        try:
            description = _device_name(torch.device(device.name), torch)
        except Exception as error:  # a description is a courtesy: never fail the run for it
            description = f"(no description: {type(error).__name__})"
    return {"name": device.name, "type": device.type, "available": device.unavailable_because is None,
            "description": description, "unavailable_because": device.unavailable_because}


def _device_name(device, torch) -> str | None:
    if device.type == "cpu":
        name = _platform.processor() or _platform.machine()
        try:
            with open("/proc/cpuinfo") as handle:
                name = next((line.split(":", 1)[1].strip() for line in handle if line.startswith("model name")), name)
        except OSError:
            pass
        return f"{name} ({provenance._cpu_capability(torch)}, {torch.get_num_threads()} threads)"
    if device.type == "cuda":
        index = device.index or 0
        major, minor = torch.cuda.get_device_capability(index)
        return f"{torch.cuda.get_device_name(index)} (sm_{major}{minor})"
    if device.type == "mps":
        return f"Apple MPS (macOS {_platform.mac_ver()[0]})"
    module = getattr(torch, device.type, None)
    getter = getattr(module, "get_device_name", None)
    return getter(device.index or 0) if getter else None


def not_a_case(result: dict) -> bool:
    """A result that is no cell of the matrix: a claim about dtypes none of which was selected."""
    return no_case(result["reason"]) or result["params"].get("dtype") == NONE_SELECTED


# ----------------------------------------------------------------------------------------------
# Reading, validating, merging
# ----------------------------------------------------------------------------------------------

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
    """A version 1 report as version 2: no target, CPU facts, authorities, observations or envelopes are known."""
    if report["version"] == VERSION:
        return report
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
    return {**report, "version": VERSION, "runs": runs, "results": results}


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


def merge(reports: list[dict]) -> dict:
    """One report holding every run of ``reports`` (the results point at their run)."""
    runs, results = [], []
    for report in reports:
        offset = len(runs)
        runs.extend(report["runs"])
        results.extend({**result, "run": result["run"] + offset} for result in report["results"])
    return {"format": FORMAT, "version": VERSION, "created": _now(), "runs": runs, "results": results}


def column_titles(report: dict) -> dict[tuple[int, str], str]:
    """(run, device) -> a column title: the device, and the machine and torch when several runs are merged."""
    keys = sorted({(r["run"], r["device"]) for r in report["results"] if r["device"] is not None})
    runs = report["runs"]
    if len(runs) == 1:
        return {key: key[1] for key in keys}
    labels = [run["label"] for run in runs]
    return {(run, device): f"{device} · {labels[run]}{'' if labels.count(labels[run]) == 1 else f' #{run + 1}'}"
                           f" · torch {runs[run]['torch']['version']}" for run, device in keys}


# ----------------------------------------------------------------------------------------------
# Markdown
# ----------------------------------------------------------------------------------------------

def fmt(value, ulp: bool = False) -> str:
    if value is None:
        return "–"
    if value == INF:
        return "∞"
    if ulp:
        return str(value)
    return "0" if value == 0 else f"{value:.3g}"


def fmt_figures(figures: dict | None) -> str:
    """``2 ULP (abs 1.19e-07, rel 1.2e-07)``, ``0`` when equal, ``–`` when not compared."""
    if figures is None:
        return "–"
    if figures["differing"] == 0:
        return "0"
    return f"{fmt(figures['max_ulp'], True)} ULP (abs {fmt(figures['max_abs'])}, rel {fmt(figures['max_rel'])})"


def worst(result: dict, witness: str) -> tuple[float, str] | None:
    """The largest ULP distance of a result's tensors for one witness, with the tensor's name."""
    found = [(_number(t[witness]["max_ulp"]), name) for c in result["comparisons"]
             for name, t in c["tensors"].items() if t.get(witness)]
    return max(found) if found else None


def _number(value) -> float:
    return math.inf if value == INF else float(value)


def configuration(result: dict) -> str:
    words = [w for w in (result["device"], result["dtype"]) if w] + list(result["params"].values())
    return "-".join(words) or "–"


def _cell(text) -> str:
    return str(text).replace("|", "\\|").replace("\n", "<br>")


def _first_line(text: str | None, limit: int = 160) -> str:
    if not text:
        return ""
    line = text.strip().splitlines()[0]
    return line if len(line) <= limit else line[:limit] + " …"


def render(report: dict) -> str:
    """The Markdown rendering of a report (one run or merged)."""
    out = ["# rnn-spec conformance report", "",
           f"Report format {report['format']} version {report['version']}, created {report['created']}. "
           f"Errors are per compared tensor: max absolute, max relative and max ULP distance in the dtype "
           f"under test (definitions: `rnnspec/figures.py`).", ""]
    out += _render_runs(report)
    out += _render_matrix(report)
    if len(report["runs"]) > 1 or len({r["device"] for r in report["results"] if r["device"]}) > 1:
        out += _render_by_device(report)
    out += _render_results(report)
    return "\n".join(out) + "\n"


def _render_runs(report: dict) -> list[str]:
    out = ["## Runs", "", "| | " + " | ".join(run["label"] for run in report["runs"]) + " |",
           "|---|" + "---|" * len(report["runs"])]

    def row(title, values):
        out.append(f"| {title} | " + " | ".join(_cell(v) for v in values) + " |")

    runs = report["runs"]
    row("torch (running)", [run["torch"]["version"] for run in runs])
    row("fixtures recorded with", ["<br>".join(provenance.describe_baseline(b) for b in
                                               (run["baseline"] or {}).get("baselines", [])) or "unknown"
                                   for run in runs])
    row("numpy · python", [f"{run['numpy']} · {run['python']}" for run in runs])
    row("platform", [run["platform"] for run in runs])
    row("devices", ["<br>".join(f"{d['name']}: "
                                + (d["description"] if d["available"] else f"absent: {d['unavailable_because']}")
                                for d in run["devices"]) or "–" for run in runs])
    row("CUDA · cuDNN", [f"{run['torch']['cuda'] or '–'} · {run['torch']['cudnn'] or '–'}" for run in runs])
    row("TF32 in tests (cudnn · matmul)", [f"{run['numerics']['in_tests'].get('cudnn.allow_tf32')} · "
                                           f"{run['numerics']['in_tests'].get('cuda.matmul.allow_tf32')}"
                                           for run in runs])
    row("deterministic algorithms · cudnn.deterministic · cudnn.benchmark",
        [f"{run['numerics']['in_tests'].get('deterministic_algorithms')} · {run['numerics']['cudnn']['deterministic']}"
         f" · {run['numerics']['cudnn']['benchmark']}" for run in runs])
    row("float32 matmul precision", [run["numerics"]["in_tests"].get("float32_matmul_precision") for run in runs])
    row("command", [" ".join(run["command"]) for run in runs])
    row("outcomes", [", ".join(f"{n} {name}" for name, n in run["totals"].items() if n) or "none" for run in runs])
    return out + [""]


def _render_matrix(report: dict) -> list[str]:
    titles = column_titles(report)
    if not titles:
        return []
    dtypes = sorted({r["dtype"] or NO_DTYPE for r in report["results"] if r["device"] and not not_a_case(r)},
                    key=_dtype_order)
    chapters = sorted({r["chapter"] for r in report["results"] if r["device"] and not not_a_case(r)})
    cells: dict[tuple, dict[str, int]] = {}
    for r in report["results"]:
        if r["device"] and not not_a_case(r):
            counts = cells.setdefault((r["chapter"], r["dtype"] or NO_DTYPE, r["run"], r["device"]), {})
            counts[r["outcome"]] = counts.get(r["outcome"], 0) + 1
    out = ["## Conformance matrix", "",
           "passed/total per chapter and dtype; F failed, E error, x xfailed (unsupported, stated in "
           "`expectations/`), s skipped.", ""]
    if len(titles) == 1:  # one device: the dtypes are the columns
        (key,) = titles
        out += [f"| chapter ({titles[key]}) | " + " | ".join(dtypes) + " |", "|---|" + "---|" * len(dtypes)]
        for chapter in chapters:
            values = [cells.get((chapter, dtype) + key) for dtype in dtypes]
            out.append(f"| {chapter_title(chapter)} | "
                       + " | ".join(cell_text(v) if v else "–" for v in values) + " |")
        return out + [""]
    out += ["| chapter | dtype | " + " | ".join(_cell(t) for t in titles.values()) + " |",
            "|---|---|" + "---|" * len(titles)]
    for chapter in chapters:
        for dtype in dtypes:
            values = [cells.get((chapter, dtype) + key) for key in titles]
            if any(values):
                out.append(f"| {chapter_title(chapter)} | {dtype} | " +
                           " | ".join(cell_text(v) if v else "–" for v in values) + " |")
    return out + [""]


def _render_by_device(report: dict) -> list[str]:
    titles = column_titles(report)
    keyed: dict[tuple, dict] = {}
    for r in report["results"]:
        if r["device"] and not not_a_case(r):
            key = (r["chapter"], r["behaviour"], r["dtype"] or "", tuple(r["params"].values()))
            keyed.setdefault(key, {})[(r["run"], r["device"])] = r
    out = ["## Conformance by behaviour", "",
           "One row per behaviour and configuration, one column per device (and machine); "
           "the cell is the outcome and the largest ULP distance to the fixture.", "",
           "| behaviour | configuration | " + " | ".join(_cell(t) for t in titles.values()) + " |",
           "|---|---|" + "---|" * len(titles)]
    for (chapter, behaviour, dtype, params), row in sorted(keyed.items()):
        cells = []
        for key in titles:
            result = row.get(key)
            if result is None:
                cells.append("–")
                continue
            drift = worst(result, "against_fixture")
            if drift is not None and drift[0] > 0:
                ulp = INF if drift[0] == math.inf else int(drift[0])
                cells.append(f"{result['outcome']} ({fmt(ulp, True)} ULP)")
            else:
                cells.append(result["outcome"])
        out.append(f"| {chapter_title(chapter)}: {behaviour} | {'-'.join([dtype, *params]).strip('-') or '–'} | "
                   + " | ".join(cells) + " |")
    return out + [""]


def _render_results(report: dict) -> list[str]:
    runs = report["runs"]
    several = len(runs) > 1
    out = ["## Results", ""]
    by_chapter: dict[str, list[dict]] = {}
    for r in report["results"]:
        by_chapter.setdefault(r["chapter"], []).append(r)
    for chapter, results in sorted(by_chapter.items()):
        out += [f"### {chapter_title(chapter)} (`{chapter}`)", "",
                ("| machine " if several else "") + "| behaviour | configuration | outcome | reason or message "
                "| worst vs reference | worst vs fixture |",
                ("|---" if several else "") + "|---|---|---|---|---|---|"]
        for r in sorted(results, key=lambda r: (r["behaviour"], r["run"], configuration(r))):
            note = r["reason"] if r["outcome"] in ("skipped", "xfailed", "xpassed") else _first_line(r["message"])
            columns = [runs[r["run"]]["label"]] if several else []
            columns += [f"`{r['behaviour']}`", configuration(r), r["outcome"], note or ""]
            for witness in ("against_reference", "against_fixture"):
                found = worst(r, witness)
                columns.append("–" if found is None else "0" if found[0] == 0 else
                               f"{fmt(INF if found[0] == math.inf else int(found[0]), True)} ULP ({found[1]})")
            out.append("| " + " | ".join(_cell(c) for c in columns) + " |")
        detailed = [r for r in results if r["comparisons"]]
        if detailed:
            out += ["", "Errors per tensor (max ULP, with max absolute and relative error; `–` not compared):", "",
                    ("| machine " if several else "") + "| test | record | tensor | measured vs reference "
                    "| measured vs fixture | fixture vs reference | tolerance used (vs reference) |",
                    ("|---" if several else "") + "|---|---|---|---|---|---|---|"]
            for r in sorted(detailed, key=lambda r: (r["behaviour"], r["run"], configuration(r))):
                for comparison in r["comparisons"]:
                    for name, tensor in comparison["tensors"].items():
                        columns = [runs[r["run"]]["label"]] if several else []
                        columns += [f"`{r['behaviour']}[{configuration(r)}]`", comparison["record"], name,
                                    fmt_figures(tensor["against_reference"]), fmt_figures(tensor["against_fixture"]),
                                    fmt_figures(tensor["fixture_against_reference"]),
                                    _used(tensor["against_reference"])]
                        out.append("| " + " | ".join(_cell(c) for c in columns) + " |")
        out.append("")
    return out


def _dtype_order(dtype: str):
    order = ["float64", "float32", "bfloat16", "float16"]
    return (order.index(dtype) if dtype in order else len(order), dtype)


# ----------------------------------------------------------------------------------------------
# Comparing two reports
# ----------------------------------------------------------------------------------------------

def compare(before: dict, after: dict) -> dict:
    """What changed from ``before`` to ``after``: lists of (key, before result, after result) and drift rows."""
    def keyed(report):
        single = len(report["runs"]) == 1
        return {(("" if single else report["runs"][r["run"]]["label"]), r["nodeid"]): r for r in report["results"]}

    old, new = keyed(before), keyed(after)
    if len(before["runs"]) != len(after["runs"]) or (len(before["runs"]) > 1 and not set(old) & set(new)):
        # merged reports with different machines: match on the test alone
        old = {key[1]: r for key, r in old.items()}
        new = {key[1]: r for key, r in new.items()}
    changes = {name: [] for name in ("new_failures", "new_passes", "support_appeared", "support_disappeared",
                                     "now_skipped", "no_longer_skipped", "other_outcome_changes",
                                     "only_before", "only_after")}
    observed = []  # (key, what, before, after): observed values (an exception's wording) that changed
    drift = []
    for key in sorted(set(old) | set(new), key=str):
        a, b = old.get(key), new.get(key)
        if a is None or b is None:
            changes["only_after" if a is None else "only_before"].append((key, a, b))
            continue
        if a["outcome"] != b["outcome"] or _xpass_strict(b):
            changes[_category(a, b)].append((key, a, b))
        drift += _drift(key, a, b)
        for what in sorted(set(a.get("observations", {})) | set(b.get("observations", {}))):
            x, y = a.get("observations", {}).get(what), b.get("observations", {}).get(what)
            if x != y:
                observed.append((key, what, x, y))
    grew = sorted([d for d in drift if d["change"] > 0], key=lambda d: (-d["after_ulp"], str(d["key"])))
    shrank = sorted([d for d in drift if d["change"] < 0], key=lambda d: (d["after_ulp"], str(d["key"])))
    return {"changes": changes, "grew": grew, "shrank": shrank, "compared": len(set(old) & set(new)),
            "tensors": len(drift), "observations": observed}


def _xpass_strict(result: dict) -> bool:
    return result["outcome"] == "failed" and (result["message"] or "").startswith("[XPASS(strict)]")


def _category(a: dict, b: dict) -> str:
    good, bad = ("passed", "xpassed"), ("failed", "error")
    if a["outcome"] == "xfailed" and (b["outcome"] in good or _xpass_strict(b)):
        return "support_appeared"
    if a["outcome"] in good and b["outcome"] == "xfailed":
        return "support_disappeared"
    if b["outcome"] in bad and a["outcome"] not in bad:
        return "new_failures"
    if a["outcome"] in bad and b["outcome"] in good:
        return "new_passes"
    if b["outcome"] == "skipped":
        return "now_skipped"
    if a["outcome"] == "skipped":
        return "no_longer_skipped"
    return "other_outcome_changes"


def _drift(key, a: dict, b: dict) -> list[dict]:
    """Every tensor × witness compared in both results, with its before and after figures."""
    rows = []
    before = {(c["record"], name): t for c in a["comparisons"] for name, t in c["tensors"].items()}
    for c in b["comparisons"]:
        for name, t in c["tensors"].items():
            old = before.get((c["record"], name))
            if old is None:
                continue
            for witness in WITNESSES:
                x, y = old.get(witness), t.get(witness)
                if x is None or y is None:
                    continue
                change = (_order(y) > _order(x)) - (_order(y) < _order(x))
                rows.append({"key": key, "test": b["nodeid"], "record": c["record"], "tensor": name,
                             "witness": witness, "before": x, "after": y, "after_ulp": _number(y["max_ulp"]),
                             "change": change})
    return rows


def _order(figures: dict) -> tuple:
    """Drift is ordered by max ULP, then by max absolute error (for a change at the same ULP count)."""
    return (_number(figures["max_ulp"]), _number(figures["max_abs"]))


def render_comparison(before: dict, after: dict, result: dict, names: tuple[str, str]) -> str:
    b0, a0 = before["runs"][0], after["runs"][0]
    out = [f"# rnn-spec: what changed from {names[0]} to {names[1]}", "",
           "| | before | after |", "|---|---|---|",
           f"| torch | {_torches(before)} | {_torches(after)} |",
           f"| fixtures recorded with | {_baselines(b0)} | {_baselines(a0)} |",
           f"| machine | {_labels(before)} | {_labels(after)} |",
           f"| outcomes | {_totals_text(before)} | {_totals_text(after)} |", ""]
    titles = {
        "new_failures": "New failures", "new_passes": "New passes",
        "support_appeared": "Support appeared (a stated unsupported case now works: remove its expectation)",
        "support_disappeared": "Support disappeared (now an expected failure)",
        "now_skipped": "Now skipped", "no_longer_skipped": "No longer skipped",
        "other_outcome_changes": "Other outcome changes",
        "only_before": "Tests only in the first report", "only_after": "Tests only in the second report",
    }
    changes = result["changes"]
    for name, title in titles.items():
        entries = changes[name]
        out.append(f"## {title}: {len(entries)}")
        out.append("")
        for key, a, b in entries:
            test = (b or a)["nodeid"] + (f" ({key[0]})" if isinstance(key, tuple) and key[0] else "")
            if a is None or b is None:
                out.append(f"- `{test}`: {(a or b)['outcome']}")
                continue
            detail = (b["reason"] or "") if b["outcome"] in ("skipped", "xfailed") else _first_line(b["message"], 300)
            out.append(f"- `{test}`: {a['outcome']} → {b['outcome']}" + (f": {detail}" if detail else ""))
        if entries:
            out.append("")
    for name, rows in (("grew", result["grew"]), ("shrank", result["shrank"])):
        out += [f"## Drift that {name}: {len(rows)} tensor comparisons", ""]
        if rows:
            out += ["| test | tensor | witness | max ULP before → after | max abs before → after "
                    "| max rel before → after | tolerance used before → after |", "|---|---|---|---|---|---|---|"]
            for d in rows:
                x, y = d["before"], d["after"]
                out.append(f"| `{d['test']}` | {d['record']}: {d['tensor']} | {WITNESSES[d['witness']]} | "
                           f"{fmt(x['max_ulp'], True)} → {fmt(y['max_ulp'], True)} | {fmt(x['max_abs'])} → "
                           f"{fmt(y['max_abs'])} | {fmt(x['max_rel'])} → {fmt(y['max_rel'])} | "
                           f"{_used(x)} → {_used(y)} |")
            out.append("")
    observed = result.get("observations", [])
    out += [f"## Observed without a promise, changed: {len(observed)}", "",
            "What releases do without promising it (an exception's wording, chapter 15): a change is drift to "
            "review, not a failure.", ""]
    for key, what, x, y in observed:
        test = key[1] if isinstance(key, tuple) else key
        out.append(f"- `{test}` {what}: {x!r} → {y!r}")
    if observed:
        out.append("")
    unchanged = result["tensors"] - len(result["grew"]) - len(result["shrank"])
    out.append(f"Compared {result['compared']} tests present in both; {result['tensors']} tensor comparisons, "
               f"{unchanged} with unchanged figures.")
    return "\n".join(out) + "\n"


def regressed(result: dict) -> bool:
    return bool(result["changes"]["new_failures"] or result["changes"]["support_disappeared"])


def _used(figures: dict | None) -> str:
    """The share of the tolerance used, as a percentage with two significant digits."""
    used = (figures or {}).get("tolerance_used")
    return "–" if used is None else ("∞" if used == INF else f"{used * 100:.2g}%")


def _torches(report: dict) -> str:
    return ", ".join(sorted({run["torch"]["version"] for run in report["runs"]}))


def _baselines(run: dict) -> str:
    return baselines_text(run["baseline"], "unknown")


def baselines_text(document: dict | None, none: str) -> str:
    """The baselines of a provenance document, one per line (``<br>``), or ``none``."""
    return "<br>".join(provenance.describe_baseline(b) for b in (document or {}).get("baselines", [])) or none


def _labels(report: dict) -> str:
    return ", ".join(run["label"] for run in report["runs"])


def _totals_text(report: dict) -> str:
    counts = totals(report["results"])
    return ", ".join(f"{n} {name}" for name, n in counts.items() if n) or "none"


# ----------------------------------------------------------------------------------------------
# Re-baselining: what moved in fixtures/
# ----------------------------------------------------------------------------------------------

class RebaselineError(RuntimeError):
    """The summary cannot be made (no git, no such revision)."""


def _git(root: Path, *args: str, data: bytes | None = None) -> bytes:
    try:
        result = subprocess.run(["git", *args], cwd=root, input=data, capture_output=True, timeout=120)
    except (OSError, subprocess.TimeoutExpired) as error:
        raise RebaselineError(f"git is not usable here ({error})") from None
    if result.returncode != 0:
        raise RebaselineError(f"git {' '.join(args[:2])} failed: {result.stderr.decode(errors='replace').strip()}")
    return result.stdout


def fixtures_at(fixtures: Path, base: str) -> tuple[dict[str, bytes], str]:
    """The fixture files (``chapter/file`` -> bytes) of git revision ``base``, and its short hash."""
    root = Path(_git(fixtures, "rev-parse", "--show-toplevel").decode().strip())
    prefix = fixtures.resolve().relative_to(root.resolve()).as_posix()
    try:
        commit = _git(root, "rev-parse", "--short", "--verify", f"{base}^{{commit}}").decode().strip()
    except RebaselineError as error:
        raise RebaselineError(f"no git revision {base!r} in {root} ({error})") from None
    names = [n for n in _git(root, "ls-tree", "-r", "--name-only", commit, "--", prefix).decode().splitlines()]
    if not names:
        return {}, commit
    output = _git(root, "cat-file", "--batch", data="".join(f"{commit}:{n}\n" for n in names).encode())
    files, position = {}, 0
    for name in names:
        header_end = output.index(b"\n", position)
        size = int(output[position:header_end].split()[2])
        start = header_end + 1
        files[name[len(prefix) + 1:]] = output[start:start + size]
        position = start + size + 1
    return files, commit


def rebaseline_summary(fixtures: Path, base: str = "HEAD") -> str:
    """Markdown: which fixture files are new, deleted or changed since ``base``, each changed tensor in ULPs."""
    import io

    import numpy as np

    fixtures = Path(fixtures)
    old_files, commit = fixtures_at(fixtures, base)
    new_names = sorted(f"{p.parent.name}/{p.name}" for p in fixtures.glob("*/*.npz"))
    old_names = sorted(n for n in old_files if n.endswith(".npz") and n.count("/") == 1)
    try:
        old_doc = json.loads(old_files[provenance.FILE]) if provenance.FILE in old_files else None
    except json.JSONDecodeError:
        old_doc = None
    new_doc = provenance.read(fixtures)

    def arrays(data: bytes) -> dict[str, np.ndarray]:
        with np.load(io.BytesIO(data), allow_pickle=False) as archive:
            return {key: archive[key] for key in archive.files}

    changed, unchanged, unreadable = [], 0, []
    for name in sorted(set(new_names) & set(old_names)):
        data = (fixtures / name).read_bytes()
        if data == old_files[name]:
            unchanged += 1
            continue
        try:
            before, after = arrays(old_files[name]), arrays(data)
        except fixture_files.UNREADABLE as error:
            unreadable.append(f"`{name}`: {type(error).__name__}: {error}")
            continue
        order_before, order_after = list(before), list(after)
        dtype = str(after.pop(fixture_files.DTYPE_TAG, "(none)"))
        old_tag = str(before.pop(fixture_files.DTYPE_TAG, "(none)"))
        moved = []
        for key in sorted(set(before) | set(after)):
            if key not in before or key not in after:
                moved.append(f"`{key}` {'added' if key in after else 'removed'}")
                continue
            moved_by = error_figures(after[key], before[key], dtype if dtype in FORMATS else "float64")
            if after[key].dtype != before[key].dtype:
                moved.append(f"`{key}` stored as {after[key].dtype}, was {before[key].dtype}")
            if moved_by["differing"]:
                moved.append(f"`{key}` {fmt(moved_by['max_ulp'], True)} ULP in {moved_by['differing']} of "
                             f"{after[key].size} values (abs {fmt(moved_by['max_abs'])}, rel {fmt(moved_by['max_rel'])})")
        if old_tag != dtype:
            moved.insert(0, f"dtype tag {old_tag} → {dtype}")
        if not moved:
            moved = ["same values; the arrays are stored in another order" if order_before != order_after
                     else "same values; the bytes differ (compression)"]
        changed.append((name, moved))

    out = [f"# What moved in fixtures/ since {commit}", "",
           f"Written by `python -m rnnspec.report rebaseline-summary` (also at the end of every recording run, "
           f"`pytest --regen-all --device cpu`): the working tree's fixtures against git revision {base} "
           f"({commit}). Figures: the new recording against the old one, in units in the last place of "
           f"the file's dtype (`rnnspec/figures.py`). Review this with the .npz files before committing.", "",
           "| baseline | at " + commit + " | now |", "|---|---|---|"]
    old_b, new_b = baselines_text(old_doc, "none recorded"), baselines_text(new_doc, "none recorded")
    out += [f"| fixtures recorded with | {old_b} | {new_b} |", ""]
    added = sorted(set(new_names) - set(old_names))
    deleted = sorted(set(old_names) - set(new_names))
    out.append(f"{unchanged} unchanged, {len(changed)} changed, {len(added)} new, {len(deleted)} deleted "
               f"fixture files.")
    out.append("")
    if changed:
        out += ["## Changed", "", "| fixture | what moved |", "|---|---|"]
        out += [f"| `{name}` | {'<br>'.join(moved)} |" for name, moved in changed] + [""]
    if added:
        out += ["## New", ""] + [f"- `{name}`" for name in added] + [""]
    if deleted:
        out += ["## Deleted", ""] + [f"- `{name}`" for name in deleted] + [""]
    if unreadable:
        out += ["## Unreadable", ""] + [f"- {line}" for line in unreadable] + [""]
    return "\n".join(out)


# ----------------------------------------------------------------------------------------------
# Command line
# ----------------------------------------------------------------------------------------------

def main(argv: list[str] | None = None) -> int:
    import argparse

    parser = argparse.ArgumentParser(prog="python -m rnnspec.report",
                                     description="Compare, merge, render and validate rnn-spec reports; "
                                                 "summarise what moved in fixtures/.")
    commands = parser.add_subparsers(dest="command", required=True)
    p = commands.add_parser("compare", help="what changed between two reports (exit 1 on new failures "
                                            "or lost support)")
    p.add_argument("before")
    p.add_argument("after")
    p.add_argument("-o", "--output", help="also write the Markdown here")
    p = commands.add_parser("merge", help="merge reports of several machines into one (JSON and Markdown)")
    p.add_argument("reports", nargs="+")
    p.add_argument("-o", "--output", required=True, help="ALL.json (ALL.md is written beside it)")
    p = commands.add_parser("render", help="Markdown of a report")
    p.add_argument("report")
    p.add_argument("-o", "--output", help="default: print")
    p = commands.add_parser("validate", help="check reports against rnnspec/report.schema.json")
    p.add_argument("reports", nargs="+")
    p = commands.add_parser("rebaseline-summary", help="what moved in fixtures/ since a git revision")
    p.add_argument("--base", default="HEAD", help="git revision to compare with (default HEAD)")
    p.add_argument("--fixtures", default=None, help="the fixtures folder (default: ./fixtures)")
    p.add_argument("-o", "--output", default=None, help="default: FIXTURES/CHANGES.md; '-' prints")
    options = parser.parse_args(argv)

    try:
        if options.command == "compare":
            before, after = load(options.before), load(options.after)
            result = compare(before, after)
            text = render_comparison(before, after, result, (options.before, options.after))
            _emit(text, options.output)
            return 1 if regressed(result) else 0
        if options.command == "merge":
            merged = merge([load(path) for path in options.reports])
            output = Path(options.output)
            output.write_text(dumps(merged))
            output.with_suffix(".md").write_text(render(merged))
            print(f"merged {len(options.reports)} reports ({len(merged['runs'])} runs, {len(merged['results'])} "
                  f"results) into {output} and {output.with_suffix('.md')}")
            return 0
        if options.command == "render":
            _emit(render(load(options.report)), options.output, quiet=True)
            return 0
        if options.command == "validate":
            status = 0
            for path in options.reports:
                problems = validate(load(path))
                print(f"{path}: " + ("valid" if not problems else f"{len(problems)} problem(s)"))
                for problem in problems[:50]:
                    print(f"  {problem}")
                status |= bool(problems)
            return status
        if options.command == "rebaseline-summary":
            fixtures = Path(options.fixtures) if options.fixtures else Path.cwd() / "fixtures"
            text = rebaseline_summary(fixtures, options.base)
            target = options.output or str(fixtures / CHANGES)
            _emit(text, None if target == "-" else target, quiet=True)
            if target != "-":
                print(f"wrote {target}")
            return 0
    except (ReportError, RebaselineError, provenance.ProvenanceError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    return 2


def _emit(text: str, output: str | None, quiet: bool = False) -> None:
    """Write ``text`` to ``output`` if given; print it unless it was written and ``quiet``."""
    if output:
        Path(output).write_text(text)
    if not (output and quiet):
        sys.stdout.write(text)


if __name__ == "__main__":
    sys.exit(main())
