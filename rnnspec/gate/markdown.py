"""The Markdown rendering of a report (``--spec-report`` writes it beside the JSON; ``render`` prints it).

What a reader needs first comes first:

1. a headline per run: its outcomes, torch, target, devices and the fixtures' baseline;
2. **the failures**, each with its whole message, the tensors that disagreed with their figures
   (max ULP, absolute and relative error, share of the tolerance used) and the command that
   reproduces it alone (:func:`reproduction`);
3. the conformance matrix: passed/total per chapter, dtype and device (tests that take no device in
   a column of their own), and a line per requested device where nothing ran;
4. folded (``<details>``): the runs' environments, the outcome per behaviour and device when there
   are several, and every test's row with its figures.
"""

from __future__ import annotations

import math
import shlex

from rnnspec.gate import provenance
from rnnspec.gate.reports import WITNESSES, not_a_case, totals
from rnnspec.gate.text import cell, dtype_order, fenced, first_line, fmt, fmt_figures, number, used
from rnnspec.vocabulary import LEGEND, NO_DEVICE, NO_DTYPE, cell_text, chapter_title, nothing_ran, summed

#: A tensor disagreed with a witness when its share of the tolerance exceeds this: the truth holds
#: measurement and fixture to the tolerance each, so they are held to twice it of each other
#: (rnnspec/spec_check.py).
LIMITS = {"against_reference": 1.0, "against_fixture": 2.0, "fixture_against_reference": 1.0}
#: Failures shown in full; any beyond are listed by name and first line.
DETAILED = 50
#: The options of a run's command that its failures need to reproduce (the implementation under test).
REPRODUCING = ("--target", "--break", "--onednn", "-p")


def render(report: dict) -> str:
    """The Markdown rendering of a report (one run or merged)."""
    out = ["# rnn-spec conformance report", ""]
    out += _headlines(report)
    out += _failures(report)
    out += _matrix(report)
    out += _folded("The runs: torch build, devices, numerics flags, command", _runs(report))
    if len(report["runs"]) > 1 or len({r["device"] for r in report["results"] if r["device"]}) > 1:
        out += _folded("Conformance by behaviour and device", _by_device(report))
    out += _folded(f"Every test: {len(report['results'])} results with their error figures", _results(report))
    out.append(f"Report format {report['format']} version {report['version']}, created {report['created']}. "
               f"Figures are per compared tensor: max absolute, max relative and max ULP distance in the dtype "
               f"under test, and the share of the tolerance used (definitions: `rnnspec/figures.py`).")
    return "\n".join(out) + "\n"


def outcomes_text(results: list[dict]) -> str:
    counts = totals(results)
    words = [f"**{n} {name}**" if name in ("failed", "error") else f"{n} {name}" for name, n in counts.items() if n]
    return ", ".join(words) or "no tests"


def run_title(run: dict) -> str:
    """A run as merged reports and compare name it: its label, host and target."""
    host = f" on {run['host']}" if run.get("host") and run["host"] != run["label"] else ""
    return f"{run['label']}{host}, target {run['target']['name']}"


def _headlines(report: dict) -> list[str]:
    out = []
    for index, run in enumerate(report["runs"]):
        mine = [r for r in report["results"] if r["run"] == index]
        devices = ", ".join(d["name"] for d in run["devices"] if d["available"]) or "none"
        baselines = sorted({b.get("torch") for b in (run["baseline"] or {}).get("baselines", [])} - {None})
        out.append(f"- **{run_title(run)}**: {outcomes_text(mine)} of {len(mine)} tests; torch "
                   f"{run['torch']['version']} on {devices}; fixtures recorded with torch "
                   f"{', '.join(baselines) or 'unknown'}.")
    return out + [""]


def _failures(report: dict) -> list[str]:
    failed = sorted((r for r in report["results"] if r["outcome"] in ("failed", "error")),
                    key=lambda r: (r["run"], r["nodeid"]))
    if not failed:
        return ["## Failures: none", ""]
    out = [f"## Failures: {len(failed)}", ""]
    for number_, result in enumerate(failed[:DETAILED], 1):
        out += failure_details(result, report["runs"][result["run"]], f"{number_}.",
                               several=len(report["runs"]) > 1)
    if len(failed) > DETAILED:
        out += [f"And {len(failed) - DETAILED} more (their rows, under *Every test*, hold the messages):", ""]
        out += [f"- `{r['nodeid']}`: {first_line(r['message'], 200)}" for r in failed[DETAILED:]] + [""]
    return out


def failure_details(result: dict, run: dict, label: str = "", *, several: bool = False) -> list[str]:
    """One failure: the test, its claim and authority, the whole message, the tensors that disagreed and the
    command that reproduces it."""
    where = ", ".join(w for w in (result["device"], result["dtype"], *result["params"].values()) if w) or "no device"
    claimed = result.get("authority")
    out = [f"### {label} `{result['nodeid']}`".replace("###  ", "### "), "",
           f"{result['outcome']} ({where}" + (f"; run {run_title(run)}" if several else "") + ")"
           + (f". {claimed['kind'].capitalize()}: {claimed['source']}" if claimed else ""), ""]
    if result["claim"]:
        out += [f"Claim: {result['claim']}", ""]
    out += fenced(result["message"] or "(no message)") + [""]
    out += disagreements(result)
    out += ["Reproduce:", "", "```bash", reproduction(result, run), "```", ""]
    return out


def disagreements(result: dict) -> list[str]:
    """The tensors of a result that lay outside their tolerance of a witness, as a table with their figures."""
    rows = []
    for comparison in result["comparisons"]:
        for name, tensor in comparison["tensors"].items():
            for witness, limit in LIMITS.items():
                figures = tensor.get(witness)
                if figures and figures.get("tolerance_used") is not None and number(figures["tolerance_used"]) > limit:
                    rows.append(f"| {comparison['record']} | {name} | {WITNESSES[witness]} | "
                                f"{fmt(figures['max_ulp'], True)} | {fmt(figures['max_abs'])} | "
                                f"{fmt(figures['max_rel'])} | {figures['differing']} of {math.prod(tensor['shape'])} "
                                f"| {used(figures)} |")
    if not rows:
        return (["No compared tensor lay outside its tolerance: the message says what failed.", ""]
                if result["comparisons"] else [])
    return (["Tensors that disagreed (the tolerance used is that of the truth; measured and fixture are held to "
             "twice it of each other):", "",
             "| record | tensor | witness | max ULP | max abs | max rel | values differing | tolerance used |",
             "|---|---|---|---|---|---|---|---|"] + rows + [""])


def reproduction(result: dict, run: dict) -> str:
    """``python -m pytest '<nodeid>' --device D --dtype T`` and the options of the run that chose the implementation."""
    words = ["python", "-m", "pytest", result["nodeid"]]
    if result["device"]:
        words += ["--device", result["device"]]
    if result["dtype"]:
        words += ["--dtype", result["dtype"]]
    command = run["command"][1:]
    for index, word in enumerate(command):
        option, equals, value = word.partition("=")
        if option not in REPRODUCING:
            continue
        if not equals:
            value = command[index + 1] if index + 1 < len(command) else ""
        if value and not (option == "-p" and value.startswith("no:")):
            words += [option, value]
    return shlex.join(words)


def column_titles(report: dict) -> dict[tuple[int, str], str]:
    """(run, device) -> a column title: the device, and the run's label, host, target and torch when several runs
    are merged. Tests that take no device are the device :data:`NO_DEVICE`."""
    keys = sorted({(r["run"], r["device"] or NO_DEVICE) for r in report["results"] if not not_a_case(r)},
                  key=lambda key: (key[0], key[1] == NO_DEVICE, key[1]))
    runs = report["runs"]
    if len(runs) == 1:
        return {key: key[1] for key in keys if key[1] not in _idle(runs[0], report, 0)}
    titles = {(run, device): f"{device} · {run_title(runs[run])} · torch {runs[run]['torch']['version']}"
              for run, device in keys if device not in _idle(runs[run], report, run)}
    for key, title in list(titles.items()):  # two runs alike in every word: number them
        if list(titles.values()).count(title) > 1:
            titles[key] = f"{title} #{key[0] + 1}"
    return titles


def _idle(run: dict, report: dict, index: int) -> dict[str, str]:
    """device -> why nothing ran there, for the requested devices of a run where no test ran."""
    ran = {r["device"] for r in report["results"] if r["run"] == index and r["outcome"] != "skipped"}
    return {d["name"]: (d["unavailable_because"] or "every test there was skipped") for d in run["devices"]
            if d["name"] not in ran}


def _matrix(report: dict) -> list[str]:
    titles = column_titles(report)
    counted = [r for r in report["results"] if not not_a_case(r)]
    out = ["## Conformance matrix", "",
           f"Per chapter and dtype: {LEGEND} (x: unsupported, as stated in `expectations/`); tests that take no "
           f"device in a column of their own.", ""]
    cells: dict[tuple, dict[str, int]] = {}
    for r in counted:
        key = (r["chapter"], r["dtype"] or NO_DTYPE, r["run"], r["device"] or NO_DEVICE)
        cells[key] = {**cells.get(key, {}), r["outcome"]: cells.get(key, {}).get(r["outcome"], 0) + 1}
    chapters = sorted({r["chapter"] for r in counted})
    devices = [key for key in titles if key[1] != NO_DEVICE]
    if len(devices) == 1:  # one device: the dtypes are the columns
        (device,) = devices
        dtypes = sorted({r["dtype"] or NO_DTYPE for r in counted if r["device"]}, key=dtype_order)
        free = [key for key in titles if key[1] == NO_DEVICE]
        out += [f"| chapter ({titles[device]}) | " + " | ".join(dtypes + [NO_DEVICE] * len(free)) + " |",
                "|---|" + "---|" * (len(dtypes) + len(free))]
        for chapter in [*chapters, None]:  # None: the row of all chapters
            mine = [(k, c) for k, c in cells.items() if chapter in (None, k[0])]
            values = [summed([c for k, c in mine if k[1:] == (dtype, *device)]) for dtype in dtypes]
            values += [summed([c for k, c in mine if k[2:] == key]) for key in free]
            title = "all" if chapter is None else chapter_title(chapter)
            out.append(f"| {title} | " + " | ".join(cell_text(v) if v else "–" for v in values) + " |")
    elif titles:
        dtypes = sorted({r["dtype"] or NO_DTYPE for r in counted}, key=dtype_order)
        out += ["| chapter | dtype | " + " | ".join(cell(t) for t in titles.values()) + " |",
                "|---|---|" + "---|" * len(titles)]
        for chapter in chapters:
            for dtype in dtypes:
                values = [cells.get((chapter, dtype) + key) for key in titles]
                if any(values):
                    out.append(f"| {chapter_title(chapter)} | {dtype} | " +
                               " | ".join(cell_text(v) if v else "–" for v in values) + " |")
    out.append("")
    for index, run in enumerate(report["runs"]):
        total = len([r for r in counted if r["run"] == index])
        for device, why in _idle(run, report, index).items():
            out += [f"- {nothing_ran(device, why, total)}" + (f" ({run_title(run)})" if len(report["runs"]) > 1 else "")
                    + "."]
    return out + [""]


def _folded(summary: str, lines: list[str]) -> list[str]:
    return [f"<details><summary>{summary}</summary>", "", *lines, "</details>", ""] if lines else []


def _runs(report: dict) -> list[str]:
    runs = report["runs"]
    out = ["| | " + " | ".join(cell(run_title(run)) for run in runs) + " |", "|---|" + "---|" * len(runs)]

    def row(title, values):
        out.append(f"| {title} | " + " | ".join(cell(v) for v in values) + " |")

    row("torch (running)", [run["torch"]["version"] for run in runs])
    row("target", [f"{run['target']['name']}: {run['target']['description']}" for run in runs])
    row("fixtures recorded with", ["<br>".join(provenance.describe_baseline(b) for b in
                                               (run["baseline"] or {}).get("baselines", [])) or "unknown"
                                   for run in runs])
    row("host", [run.get("host") or "unknown" for run in runs])
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


def _by_device(report: dict) -> list[str]:
    titles = column_titles(report)
    keyed: dict[tuple, dict] = {}
    for r in report["results"]:
        if not not_a_case(r):
            key = (r["chapter"], r["behaviour"], r["dtype"] or "", tuple(r["params"].values()))
            keyed.setdefault(key, {})[(r["run"], r["device"] or NO_DEVICE)] = r
    out = ["One row per behaviour and configuration, one column per device (and run); "
           "the cell is the outcome and the largest ULP distance to the fixture.", "",
           "| behaviour | configuration | " + " | ".join(cell(t) for t in titles.values()) + " |",
           "|---|---|" + "---|" * len(titles)]
    for (chapter, behaviour, dtype, params), row in sorted(keyed.items()):
        cells = []
        for key in titles:
            result = row.get(key)
            if result is None:
                cells.append("–")
                continue
            drift = worst(result, "against_fixture")
            cells.append(f"{result['outcome']} ({fmt(drift[0], True)} ULP)" if drift and drift[0] > 0
                         else result["outcome"])
        out.append(f"| {chapter_title(chapter)}: {behaviour} | {'-'.join([dtype, *params]).strip('-') or '–'} | "
                   + " | ".join(cells) + " |")
    return out + [""]


def worst(result: dict, witness: str) -> tuple[float, str] | None:
    """The largest ULP distance of a result's tensors for one witness, with the tensor's name."""
    found = [(number(t[witness]["max_ulp"]), name) for c in result["comparisons"]
             for name, t in c["tensors"].items() if t.get(witness)]
    return max(found) if found else None


def configuration(result: dict) -> str:
    words = [w for w in (result["device"], result["dtype"]) if w] + list(result["params"].values())
    return "-".join(words) or "–"


def _results(report: dict) -> list[str]:
    runs = report["runs"]
    several = len(runs) > 1
    out = []
    by_chapter: dict[str, list[dict]] = {}
    for r in report["results"]:
        by_chapter.setdefault(r["chapter"], []).append(r)
    for chapter, results in sorted(by_chapter.items()):
        out += [f"### {chapter_title(chapter)} (`{chapter}`)", "",
                ("| run " if several else "") + "| behaviour | configuration | outcome | reason or message "
                "| worst vs reference | worst vs fixture |",
                ("|---" if several else "") + "|---|---|---|---|---|---|"]
        for r in sorted(results, key=lambda r: (r["behaviour"], r["run"], configuration(r))):
            note = r["reason"] if r["outcome"] in ("skipped", "xfailed", "xpassed") else first_line(r["message"])
            columns = [run_title(runs[r["run"]])] if several else []
            columns += [f"`{r['behaviour']}`", configuration(r), r["outcome"], note or ""]
            for witness in ("against_reference", "against_fixture"):
                found = worst(r, witness)
                columns.append("–" if found is None else "0" if found[0] == 0 else
                               f"{fmt(found[0], True)} ULP ({found[1]})")
            out.append("| " + " | ".join(cell(c) for c in columns) + " |")
        detailed = [r for r in results if r["comparisons"]]
        if detailed:
            out += ["", "Errors per tensor (max ULP, with max absolute and relative error; `–` not compared):", "",
                    ("| run " if several else "") + "| test | record | tensor | measured vs reference "
                    "| measured vs fixture | fixture vs reference | tolerance used (vs reference) |",
                    ("|---" if several else "") + "|---|---|---|---|---|---|---|"]
            for r in sorted(detailed, key=lambda r: (r["behaviour"], r["run"], configuration(r))):
                for comparison in r["comparisons"]:
                    for name, tensor in comparison["tensors"].items():
                        columns = [run_title(runs[r["run"]])] if several else []
                        columns += [f"`{r['behaviour']}[{configuration(r)}]`", comparison["record"], name,
                                    fmt_figures(tensor["against_reference"]), fmt_figures(tensor["against_fixture"]),
                                    fmt_figures(tensor["fixture_against_reference"]),
                                    used(tensor["against_reference"])]
                        out.append("| " + " | ".join(cell(c) for c in columns) + " |")
        out.append("")
    return out
