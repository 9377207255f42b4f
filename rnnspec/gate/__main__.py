"""``python -m rnnspec.gate COMMAND``: compare, merge, render and validate reports; what moved in fixtures/.

``compare BEFORE.json AFTER.json [-o OUT.md]``
    what changed between two reports (``rnnspec/gate/compare.py``); with ``-o`` the Markdown goes
    to the file and the terminal shows only the summary. Exit status 1 when there are new failures
    or support disappeared, else 0.
``merge A.json B.json ... -o ALL.json``
    one report of several runs: ``ALL.json`` (same schema) and ``ALL.md``.
``render REPORT.json [-o REPORT.md]``
    the Markdown of a report (``--spec-report`` writes it already).
``validate REPORT.json ...``
    checks reports against the schema (needs the ``jsonschema`` package, in the ``test`` extra).
``rebaseline-summary [--base REV] [--fixtures DIR] [-o PATH]``
    what moved in ``fixtures/`` between git revision REV (default HEAD) and the working tree, per
    file and tensor in ULPs of the file's dtype, with the baselines of both; printed, or written to
    PATH (recording runs add their own section to ``fixtures/CHANGES.md``).

Reports of every readable version are accepted (``rnnspec/gate/reports.py``); any other file is
an error that names it (exit 2).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from rnnspec.gate import provenance, reports


def parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m rnnspec.gate",
                                     description="Compare, merge, render and validate rnn-spec reports; "
                                                 "summarise what moved in fixtures/.")
    commands = parser.add_subparsers(dest="command", required=True)
    p = commands.add_parser("compare", help="what changed between two reports (exit 1 on new failures "
                                            "or lost support)")
    p.add_argument("before")
    p.add_argument("after")
    p.add_argument("-o", "--output", help="write the Markdown here and print only the summary")
    p = commands.add_parser("merge", help="merge reports of several runs into one (JSON and Markdown)")
    p.add_argument("reports", nargs="+")
    p.add_argument("-o", "--output", required=True, help="ALL.json (ALL.md is written beside it)")
    p = commands.add_parser("render", help="Markdown of a report")
    p.add_argument("report")
    p.add_argument("-o", "--output", help="default: print")
    p = commands.add_parser("validate", help="check reports against rnnspec/gate/report.schema.json")
    p.add_argument("reports", nargs="+")
    p = commands.add_parser("rebaseline-summary", help="what moved in fixtures/ since a git revision")
    p.add_argument("--base", default="HEAD", help="git revision to compare with (default HEAD)")
    p.add_argument("--fixtures", default=None, help="the fixtures folder (default: ./fixtures)")
    p.add_argument("-o", "--output", default="-", help="write the summary here (default '-': print)")
    return parser


def main(argv: list[str] | None = None) -> int:
    options = parser().parse_args(argv)
    from rnnspec.gate.rebaseline import RebaselineError

    try:
        return COMMANDS[options.command](options)
    except (reports.ReportError, RebaselineError, provenance.ProvenanceError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2


def compare(options) -> int:
    from rnnspec.gate.compare import compare, regressed, render_comparison, summary

    before, after = reports.load(options.before), reports.load(options.after)
    result = compare(before, after)
    names = (options.before, options.after)
    if options.output:
        Path(options.output).write_text(render_comparison(before, after, result, names))
        print("\n".join(summary(before, after, result, names) + [f"wrote {options.output}"]))
    else:
        sys.stdout.write(render_comparison(before, after, result, names))
    return 1 if regressed(result) else 0


def merge(options) -> int:
    from rnnspec.gate.markdown import render
    from rnnspec.gate.merge import merge

    merged = merge([reports.load(path) for path in options.reports])
    output = Path(options.output)
    output.write_text(reports.dumps(merged))
    output.with_suffix(".md").write_text(render(merged))
    print(f"merged {len(options.reports)} reports ({len(merged['runs'])} runs, {len(merged['results'])} "
          f"results) into {output} and {output.with_suffix('.md')}")
    return 0


def render(options) -> int:
    from rnnspec.gate.markdown import render

    text = render(reports.load(options.report))
    if options.output:
        Path(options.output).write_text(text)
    else:
        sys.stdout.write(text)
    return 0


def validate(options) -> int:
    status = 0
    for path in options.reports:
        problems = reports.validate(reports.load(path))
        print(f"{path}: " + ("valid" if not problems else f"{len(problems)} problem(s)"))
        for problem in problems[:50]:
            print(f"  {problem}")
        status |= bool(problems)
    return status


def rebaseline_summary(options) -> int:
    from rnnspec.gate.rebaseline import moved, section, summary_heading

    fixtures = Path(options.fixtures) if options.fixtures else Path.cwd() / "fixtures"
    found = moved(fixtures, options.base)
    text = section(found, summary_heading(found))
    if options.output == "-":
        sys.stdout.write(text)
    else:
        Path(options.output).write_text(text)
        print(f"wrote {options.output}")
    return 0


COMMANDS = {"compare": compare, "merge": merge, "render": render, "validate": validate,
            "rebaseline-summary": rebaseline_summary}

if __name__ == "__main__":
    sys.exit(main())
