"""README's counts, measured: every count of tests README quotes comes from a run, and is checked against one.

``python -m rnnspec.document.counts`` runs what measures each count (a pytest run under the target
the count describes), compares it with README.md and exits 1 on a difference; ``--write`` puts the
measured counts into README.md; ``--only NAME,…`` measures some (:data:`COUNTS` names them;
``script``, ``compile`` and the deployed targets take minutes and run only when named or with ``--slow``;
``--only export`` names every cell of a row of a table by dtype).

Two counts need no run of their own: the default target's and the example matrix's are the
outcomes of the run that rendered ``docs/SPEC.md`` (its "Outcomes at a glance", which
``selftest/test_document_is_current.py`` keeps equal to a fresh run). ``selftest/test_readme_counts.py``
checks those against SPEC.md, and that every outcome count README states ("N passed", "N xfailed",
"N not applicable", a matrix cell "N/N") is one of :data:`COUNTS`.
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

#: An outcome count as README states it.
OUTCOME = re.compile(r"\b\d+ (?:passed|failed|xfailed|xpassed|skipped|errors?|not applicable)\b")
#: The outcome words of pytest's summary line, and the skips a target declines.
WORDS = ("passed", "failed", "xfailed", "xpassed", "skipped", "error", "not_applicable")
NOT_APPLICABLE = "not applicable to --target"


@dataclass(frozen=True)
class Count:
    """One place of README that states counts: the pattern that finds it (its counts as named groups: passed,
    xfailed, not_applicable...) and the pytest arguments of the run that measures it."""

    name: str
    pattern: str
    arguments: tuple[str, ...]
    slow: bool = False
    #: A cell of a table by dtype: the counts of this dtype's tests alone ("no dtype": tests that take none), read
    #: from the run's ``--spec-report``; the pattern's group ``cell`` is the whole cell, written by :func:`cell`.
    dtype: str | None = None

    def find(self, readme: str) -> re.Match:
        found = list(re.finditer(self.pattern, readme, re.M))
        if len(found) != 1:
            raise LookupError(f"README states the {self.name} counts {len(found)} times, not once "
                              f"(pattern {self.pattern!r}): update rnnspec/document/counts.py with README")
        return found[0]


def _target_row(target: str, groups: str) -> str:
    return rf"^\| `{target}`[^|\n]*\|[^\n]*\| {groups}"


#: The words of a cell of a table by dtype, in order, as :func:`cell` writes them.
CELL_WORDS = (("passed", "passed"), ("failed", "failed"), ("xfailed", "xfailed"), ("xpassed", "xpassed"),
              ("error", "error"), ("not_applicable", "n/a"))
#: The columns of a table by dtype.
DTYPE_COLUMNS = ("float64", "float32", "bfloat16", "float16", "no dtype")


def cell(counts: dict[str, int]) -> str:
    """A cell of a table by dtype: "85 passed, 15 xfailed, 7 n/a" (words with no test left out; "none")."""
    return ", ".join(f"{counts[word]} {label}" for word, label in CELL_WORDS if counts.get(word)) or "none"


def _dtype_row(name: str, row: str, arguments: tuple[str, ...]) -> tuple[Count, ...]:
    """One Count per cell (named ``name`` and the column) of the row of a table by dtype whose first cell is ``row``;
    one run measures them all."""
    return tuple(Count(f"{name} {column}", rf"^\| {re.escape(row)} \|(?:[^|\n]*\|){{{index}}} "
                                                     rf"(?P<cell>[^|\n]*?) \|", arguments, slow=True, dtype=column)
                 for index, column in enumerate(DTYPE_COLUMNS))


COUNTS = (
    Count("eager", _target_row("eager", r"(?P<passed>\d+) passed"), ("--target", "eager")),
    Count("cells", _target_row("cells", r"(?P<passed>\d+) passed, (?P<xfailed>\d+) xfailed, "
                                        r"(?P<not_applicable>\d+) not applicable"), ("--target", "cells")),
    Count("script", _target_row("script", r"(?P<passed>\d+) passed, (?P<xfailed>\d+) xfailed, "
                                          r"(?P<not_applicable>\d+) not applicable"), ("--target", "script"), slow=True),
    Count("compile", _target_row("compile", r"(?P<passed>\d+) passed, (?P<xfailed>\d+) xfailed, "
                                            r"(?P<not_applicable>\d+) not applicable"), ("--target", "compile"),
          slow=True),
    Count("example", r"passes every applicable test\s*\((?P<passed>\d+);", ("--target", "examples/loop_lstm.py:factory")),
    Count("report example", r"target eager\*\*: (?P<passed>\d+) passed, \*\*(?P<failed>\d+) failed\*\* of",
          ("-p", "rnnspec.breaks", "--break", "bias_hh_ignored", "--dtype", "float64",
           "spec/test_01_forward_values.py", "-k", "one_step")),
    Count("zoo reference", r"reference accepted \((?P<passed>\d+) passed, (?P<failed>\d+) failed\)",
          ("--target", "mutant:reference", "--dtype", "float64")),
    # The deployed targets, by dtype (README, "Deployed targets"): each row one run, in parallel (minutes to an hour).
    *_dtype_row("onnx", "`--target onnx`", ("--target", "onnx", "-n", "2")),
    *_dtype_row("onnx:torchscript", "`--target onnx:torchscript`", ("--target", "onnx:torchscript", "-n", "2")),
    *_dtype_row("export", "`--target export`", ("--target", "export", "-n", "2")),
    Count("export:decomposed float32", r"`--target export:decomposed --dtype float32`:\s+(?P<passed>\d+) passed, "
                                       r"(?P<xfailed>\d+) xfailed, (?P<not_applicable>\d+) not applicable",
          ("--target", "export:decomposed", "--dtype", "float32", "-n", "2"), slow=True),
)
#: The example of the conformance matrix: a fenced block whose first line starts "rnn-spec matrix on".
MATRIX = re.compile(r"^```\n(rnn-spec matrix on [^\n]*\n(?:[^`][^\n]*\n)+?)```", re.M)


def outcome_counts(output: str) -> dict[str, int]:
    """The counts of a ``pytest -rs`` run's output: its summary line, with the skips a target declines
    (``not applicable to --target …``) counted apart from other skips."""
    summary = [line for line in output.splitlines() if re.search(r"\b\d+ (passed|failed|skipped|xfailed)\b", line)
               and " in " in line]
    if not summary:
        raise ValueError("no pytest summary line in the run's output:\n" + output[-2000:])
    counts = {word: 0 for word in WORDS}
    for number, word in re.findall(r"(\d+) (passed|failed|xfailed|xpassed|skipped|errors?)", summary[-1]):
        counts[word.rstrip("s") if word.startswith("error") else word] += int(number)
    for number in re.findall(rf"^SKIPPED \[(\d+)\] [^\n]*?: {NOT_APPLICABLE}", output, re.M):
        counts["not_applicable"] += int(number)
    counts["skipped"] -= counts["not_applicable"]
    return counts


def report_counts(results: list[dict], dtype: str) -> dict[str, int]:
    """The counts of one column of a table by dtype, from a ``--spec-report``'s results (``"no dtype"``: the
    tests that take none), with the skips a target declines counted as not applicable."""
    counts = {word: 0 for word in WORDS}
    for result in results:
        if (result["dtype"] or "no dtype") != dtype:
            continue
        outcome = result["outcome"]
        if outcome == "skipped" and (result["reason"] or "").startswith(NOT_APPLICABLE):
            outcome = "not_applicable"
        counts[outcome] += 1
    return counts


def measure(count: Count, root: Path, runs: dict | None = None) -> dict[str, int]:
    """Run the spec as ``count`` says and return its outcome counts (``runs``: the runs made so far, by their
    arguments, so that the cells of one row of a table by dtype take one run)."""
    runs = {} if runs is None else runs
    by_dtype = count.dtype is not None  # only a cell of a table by dtype needs the report (and its error figures)
    key = (count.arguments, by_dtype)
    if key not in runs:
        with tempfile.TemporaryDirectory() as folder:
            report = Path(folder) / "report.json"
            command = [sys.executable, "-m", "pytest", "-q", "-rs", "-p", "no:randomly",
                       *([f"--spec-report={report}"] if by_dtype else []), *count.arguments]
            done = subprocess.run(command, cwd=root, capture_output=True, text=True)
            results = json.loads(report.read_text())["results"] if report.is_file() else None
            runs[key] = (done.stdout + done.stderr, results)
    output, results = runs[key]
    if count.dtype is None:
        return outcome_counts(output)
    if results is None:
        raise ValueError(f"the run of {count.name} wrote no report:\n{output[-2000:]}")
    return report_counts(results, count.dtype)


def differences(readme: str, count: Count, measured: dict[str, int]) -> list[str]:
    """How README's ``count`` differs from ``measured`` (empty: it agrees)."""
    match = count.find(readme)
    if "cell" in match.groupdict():
        stated = match.group("cell")
        return [] if stated == cell(measured) else [f"README's {count.name} count: {stated}, measured {cell(measured)}"]
    return [f"README's {count.name} count: {match.group(word)} {word.replace('_', ' ')}, measured "
            f"{measured.get(word, 0)}" for word in match.groupdict() if int(match.group(word)) != measured.get(word, 0)]


def written(readme: str, count: Count, measured: dict[str, int]) -> str:
    """README with ``count``'s numbers replaced by ``measured``."""
    match = count.find(readme)
    if "cell" in match.groupdict():
        return readme[:match.start("cell")] + cell(measured) + readme[match.end("cell"):]
    text = match.group(0)
    for word in sorted(match.groupdict(), key=lambda w: -match.start(w)):  # right to left keeps the offsets
        start, end = match.start(word) - match.start(0), match.end(word) - match.start(0)
        text = text[:start] + str(measured.get(word, 0)) + text[end:]
    return readme[:match.start(0)] + text + readme[match.end(0):]


def uncovered(readme: str) -> list[str]:
    """README's outcome counts that no entry of :data:`COUNTS` (nor the example matrix) measures."""
    spans = [count.find(readme).span() for count in COUNTS]
    spans += [m.span() for m in MATRIX.finditer(readme)]
    return [m.group(0) for m in OUTCOME.finditer(readme) if not any(a <= m.start() < b for a, b in spans)]


# --- The counts the document's run gives ---------------------------------------------------------

def document_outcomes(spec_md: str) -> dict[int, dict[str, int]]:
    """docs/SPEC.md's "Outcomes at a glance": per chapter number, the count of tests per column (``float64``,
    ``float32``..., ``no dtype``, ``no device``), as the run that rendered it counted them (every cell ✅ n)."""
    section = spec_md.partition("## Outcomes at a glance")[2].partition("\n## ")[0]
    rows = [line for line in section.splitlines() if line.startswith("|")]
    head = [cell.strip() for cell in rows[0].strip("|").split("|")]
    found = {}
    for row in rows[2:]:
        cells = [cell.strip() for cell in row.strip("|").split("|")]
        number = int(re.match(r"\[(\d+)\.", cells[0]).group(1))
        found[number] = {column: sum(int(n) for n in re.findall(r"\d+", cell)) for column, cell in zip(head[2:], cells[2:])}
    return found


def matrix_differences(readme: str, spec_md: str) -> list[str]:
    """Where README's example matrix differs from SPEC.md's run: per block (a device's, then the block of the
    tests that take no device), per chapter and "all", per column (a dtype or "no dtype")."""
    outcomes = document_outcomes(spec_md)
    problems = []
    for block in MATRIX.findall(readme):
        header, columns = "", []
        for line in block.splitlines():
            if line.startswith("rnn-spec matrix"):
                header = line
                continue
            if line.startswith("chapter"):
                columns = re.findall(r"float64|float32|bfloat16|float16|no dtype", line)
                continue
            label = line.split()[0] if line.strip() else ""
            cells = re.findall(r"(\d+)/(\d+)|(?<!\S)-(?!\S)", line)
            if not (label.isdigit() or label == "all"):
                continue
            no_device = "on no device" in header
            for column, (passed, total) in zip(columns, cells):
                if not total:  # "-": no test of the chapter in this column
                    passed = total = "0"
                key = "no device" if no_device else column
                expected = (sum(row.get(key, 0) for row in outcomes.values()) if label == "all"
                            else outcomes.get(int(label), {}).get(key, 0))
                if int(total) != expected or int(passed) != expected:
                    where = "the no-device block" if no_device else "the device block"
                    problems.append(f"README's example matrix, {where}, row {label}, {column}: {passed}/{total}; "
                                    f"docs/SPEC.md's run: {expected}/{expected}")
    return problems


def eager_from_document(spec_md: str) -> dict[str, int]:
    """The default target's counts in the run that rendered SPEC.md (every test of it passed there)."""
    return {"passed": sum(sum(row.values()) for row in document_outcomes(spec_md).values())}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m rnnspec.document.counts", description=__doc__.split("\n\n")[0])
    parser.add_argument("--write", action="store_true", help="write the measured counts into README.md")
    parser.add_argument("--only", default="", help="comma-separated names: " + ", ".join(c.name for c in COUNTS))
    parser.add_argument("--slow", action="store_true", help="also the slow targets (script, compile, "
                                                                    "the deployed ones: minutes)")
    options = parser.parse_args(argv)
    root = Path.cwd()
    readme_path = root / "README.md"
    readme = readme_path.read_text(encoding="utf-8")
    names = [n for n in options.only.split(",") if n]
    unknown = {n for n in names if not any(c.name == n or c.name.startswith(f"{n} ") for c in COUNTS)}
    if unknown:
        parser.error(f"unknown counts {sorted(unknown)}; known: {', '.join(c.name for c in COUNTS)}")
    chosen = [c for c in COUNTS if c.name in names or any(c.name.startswith(f"{n} ") for n in names)
              or (not names and (options.slow or not c.slow))]
    problems, runs = [], {}
    for count in chosen:
        measured = measure(count, root, runs)
        print(f"{count.name}: {', '.join(f'{n} {w}' for w, n in measured.items() if n)}")
        problems += differences(readme, count, measured)
        readme = written(readme, count, measured)
    problems += matrix_differences(readme, (root / "docs" / "SPEC.md").read_text(encoding="utf-8"))
    if options.write:
        readme_path.write_text(readme, encoding="utf-8")
        print("wrote README.md" + (" (the example matrix is not written: fix it by hand)" if
                                   matrix_differences(readme, (root / "docs" / "SPEC.md").read_text()) else ""))
    for problem in problems:
        print(problem)
    return 1 if problems and not options.write else 0


if __name__ == "__main__":
    sys.exit(main())
