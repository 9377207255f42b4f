"""``compare BEFORE.json AFTER.json``: what changed between two reports (say, before and after upgrading torch).

Outcomes: every test present in both is sorted into one category (:data:`CATEGORIES`): new
failures (each with its whole message, the tensors that disagreed and the command that reproduces
it), failures present in both runs (named, not only counted), new passes, support that appeared or
disappeared (strict xfails of ``expectations/``), tests now or no longer skipped; tests in one
report only.

Drift: every tensor × witness compared in both runs. **One rule** decides: the share of the
tolerance used (``tolerance_used``, the figure a verdict depends on: at most 1 passes against the
reference). It grew or shrank when that share did; the ULP distance, the absolute and relative
errors and the count of differing values are shown beside it. A comparison is **unchanged** only
when every figure is equal; figures that moved while the share stayed equal are listed apart.

Observed values (an exception's wording, ``rnnspec/gate/observations.py``) that changed are
listed as drift to review, not failures. Exit status 1 when there are new failures or support
disappeared, else 0.
"""

from __future__ import annotations

from rnnspec.gate.markdown import failure_details, outcomes_text, run_title
from rnnspec.gate.reports import WITNESSES
from rnnspec.gate.text import baselines_text, cell, first_line, fmt, number, used

#: Category -> its title, in the order they are shown.
CATEGORIES = {
    "new_failures": "New failures",
    "still_failing": "Failures in both runs",
    "support_disappeared": "Support disappeared (now an expected failure)",
    "new_passes": "New passes",
    "support_appeared": "Support appeared (a stated unsupported case now works: remove its expectation)",
    "now_skipped": "Now skipped",
    "no_longer_skipped": "No longer skipped",
    "other_outcome_changes": "Other outcome changes",
    "only_before": "Tests only in the first report",
    "only_after": "Tests only in the second report",
}
BAD, GOOD = ("failed", "error"), ("passed", "xpassed")


def compare(before: dict, after: dict) -> dict:
    """What changed from ``before`` to ``after``: outcome changes as (key, before result, after result) per
    category, and every tensor comparison sorted by the share of the tolerance it used."""
    def keyed(report):
        single = len(report["runs"]) == 1
        return {(("" if single else report["runs"][r["run"]]["label"]), r["nodeid"]): r for r in report["results"]}

    old, new = keyed(before), keyed(after)
    if len(before["runs"]) != len(after["runs"]) or (len(before["runs"]) > 1 and not set(old) & set(new)):
        # merged reports with different machines: match on the test alone
        old = {key[1]: r for key, r in old.items()}
        new = {key[1]: r for key, r in new.items()}
    changes: dict[str, list] = {name: [] for name in CATEGORIES}
    observed = []  # (key, what, before, after): observed values (an exception's wording) that changed
    drift = []
    for key in sorted(set(old) | set(new), key=str):
        a, b = old.get(key), new.get(key)
        if a is None or b is None:
            changes["only_after" if a is None else "only_before"].append((key, a, b))
            continue
        category = _category(a, b)
        if category:
            changes[category].append((key, a, b))
        drift += _drift(key, a, b)
        if "skipped" in (a["outcome"], b["outcome"]):
            continue  # a skipped test observed nothing: its outcome change says it
        for what in sorted(set(a.get("observations", {})) | set(b.get("observations", {}))):
            x, y = a.get("observations", {}).get(what), b.get("observations", {}).get(what)
            if x != y:
                observed.append((key, what, x, y))
    by_verdict: dict[str, list] = {"grew": [], "shrank": [], "moved": [], "unchanged": []}
    for row in drift:
        by_verdict[row["verdict"]].append(row)
    by_verdict["grew"].sort(key=lambda d: (-d["after_share"], str(d["key"])))
    by_verdict["shrank"].sort(key=lambda d: (-d["before_share"], str(d["key"])))
    return {"changes": changes, "grew": by_verdict["grew"], "shrank": by_verdict["shrank"],
            "moved": by_verdict["moved"], "unchanged": len(by_verdict["unchanged"]),
            "compared": len(set(old) & set(new)), "tensors": len(drift), "observations": observed}


def _xpass_strict(result: dict) -> bool:
    return result["outcome"] == "failed" and (result["message"] or "").startswith("[XPASS(strict)]")


def _category(a: dict, b: dict) -> str | None:
    """The category of a test present in both runs, None when its outcome is the same and not a failure."""
    if a["outcome"] == "xfailed" and (b["outcome"] in GOOD or _xpass_strict(b)):
        return "support_appeared"
    if a["outcome"] in GOOD and b["outcome"] == "xfailed":
        return "support_disappeared"
    if b["outcome"] in BAD:
        return "still_failing" if a["outcome"] in BAD else "new_failures"
    if a["outcome"] == b["outcome"]:
        return None
    if a["outcome"] in BAD and b["outcome"] in GOOD:
        return "new_passes"
    if b["outcome"] == "skipped":
        return "now_skipped"
    if a["outcome"] == "skipped":
        return "no_longer_skipped"
    return "other_outcome_changes"


def verdict(before: dict, after: dict) -> str:
    """``unchanged`` (every figure equal), ``grew`` or ``shrank`` (the share of the tolerance used rose or
    fell), or ``moved`` (figures changed, the share did not, or is not known on both sides)."""
    if before == after:
        return "unchanged"
    x, y = before.get("tolerance_used"), after.get("tolerance_used")
    if x is None or y is None or number(x) == number(y):
        return "moved"
    return "grew" if number(y) > number(x) else "shrank"


def _drift(key, a: dict, b: dict) -> list[dict]:
    """Every tensor × witness compared in both results, with its before and after figures and its verdict."""
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
                rows.append({"key": key, "test": b["nodeid"], "record": c["record"], "tensor": name,
                             "witness": witness, "before": x, "after": y, "verdict": verdict(x, y),
                             "before_share": _share(x), "after_share": _share(y)})
    return rows


def _share(figures: dict) -> float:
    share = figures.get("tolerance_used")
    return -1.0 if share is None else number(share)


def regressed(result: dict) -> bool:
    return bool(result["changes"]["new_failures"] or result["changes"]["support_disappeared"])


def summary(before: dict, after: dict, result: dict, names: tuple[str, str]) -> list[str]:
    """The few lines that say what changed (the terminal shows them when the Markdown goes to a file)."""
    counts = ", ".join(f"{len(entries)} {name.replace('_', ' ')}" for name, entries in result["changes"].items())
    return [
        f"rnn-spec compare: {names[0]} ({_runs_text(before)}) → {names[1]} ({_runs_text(after)})",
        f"outcomes: {counts}",
        f"drift, decided by the share of the tolerance used: {len(result['grew'])} grew, {len(result['shrank'])} "
        f"shrank, {len(result['moved'])} moved at an equal share, {result['unchanged']} unchanged (every figure "
        f"equal), of {result['tensors']} tensor comparisons in {result['compared']} tests present in both",
        f"observed without a promise, changed: {len(result['observations'])}",
        "verdict: " + ("exit 1: new failures or support disappeared" if regressed(result) else "exit 0: nothing broke"),
    ]


def _runs_text(report: dict) -> str:
    return "; ".join(f"torch {run['torch']['version']}, {run_title(run)}" for run in report["runs"])


def render_comparison(before: dict, after: dict, result: dict, names: tuple[str, str]) -> str:
    b0, a0 = before["runs"][0], after["runs"][0]
    out = [f"# rnn-spec: what changed from {names[0]} to {names[1]}", ""]
    out += [f"- {line}" for line in summary(before, after, result, names)] + [""]
    out += ["| | before | after |", "|---|---|---|",
            f"| torch | {_torches(before)} | {_torches(after)} |",
            f"| target | {_targets(before)} | {_targets(after)} |",
            f"| fixtures recorded with | {baselines_text(b0['baseline'], 'unknown')} "
            f"| {baselines_text(a0['baseline'], 'unknown')} |",
            f"| runs | {cell(', '.join(run_title(r) for r in before['runs']))} "
            f"| {cell(', '.join(run_title(r) for r in after['runs']))} |",
            f"| outcomes | {outcomes_text(before['results'])} | {outcomes_text(after['results'])} |", ""]
    if _targets(before) != _targets(after):
        out += [f"The implementations under test differ ({_targets(before)} → {_targets(after)}): a change may be "
                f"the implementation's, not torch's.", ""]
    changes = result["changes"]
    for name, title in CATEGORIES.items():
        entries = changes[name]
        out += [f"## {title}: {len(entries)}", ""]
        if name == "new_failures":
            for number_, (_, a, b) in enumerate(entries, 1):
                details = failure_details(b, after["runs"][b["run"]], f"{number_}.", several=len(after["runs"]) > 1)
                out += details[:4] + [f"Before: {a['outcome']}" + (f" ({a['reason']})" if a["reason"] else "") + ".",
                                      ""] + details[4:]
            continue
        for key, a, b in entries:
            test = (b or a)["nodeid"] + (f" ({key[0]})" if isinstance(key, tuple) and key[0] else "")
            if a is None or b is None:
                out.append(f"- `{test}`: {(a or b)['outcome']}")
                continue
            detail = (b["reason"] or "") if b["outcome"] in ("skipped", "xfailed") else first_line(b["message"], 300)
            if name == "still_failing":
                before = first_line(a["message"], 200)
                detail += " (same message)" if a["message"] == b["message"] else f" (before: {before})"
            out.append(f"- `{test}`: {a['outcome']} → {b['outcome']}" + (f": {detail}" if detail else ""))
        if entries:
            out.append("")
    for name, title in (("grew", "Drift that grew (a larger share of the tolerance used)"),
                        ("shrank", "Drift that shrank (a smaller share of the tolerance used)"),
                        ("moved", "Figures that moved at an equal share of the tolerance")):
        rows = result[name]
        out += [f"## {title}: {len(rows)} tensor comparisons", ""]
        if rows:
            out += ["| test | tensor | witness | tolerance used before → after | max ULP before → after "
                    "| max abs before → after | max rel before → after | values differing before → after |",
                    "|---|---|---|---|---|---|---|---|"]
            for d in rows:
                x, y = d["before"], d["after"]
                out.append(f"| `{d['test']}` | {d['record']}: {d['tensor']} | {WITNESSES[d['witness']]} | "
                           f"{used(x)} → {used(y)} | {fmt(x['max_ulp'], True)} → {fmt(y['max_ulp'], True)} | "
                           f"{fmt(x['max_abs'])} → {fmt(y['max_abs'])} | "
                           f"{fmt(x['max_rel'])} → {fmt(y['max_rel'])} | "
                           f"{x['differing']} → {y['differing']} |")
            out.append("")
    observed = result["observations"]
    out += [f"## Observed without a promise, changed: {len(observed)}", "",
            "What releases do without promising it (an exception's wording, chapter 15): a change is drift to "
            "review, not a failure.", ""]
    for key, what, x, y in observed:
        test = key[1] if isinstance(key, tuple) else key
        out.append(f"- `{test}` {what}: {x!r} → {y!r}")
    if observed:
        out.append("")
    out.append(f"Compared {result['compared']} tests present in both; {result['tensors']} tensor comparisons: "
               f"{len(result['grew'])} grew, {len(result['shrank'])} shrank, {len(result['moved'])} moved at an "
               f"equal share, {result['unchanged']} unchanged (every figure equal).")
    return "\n".join(out) + "\n"


def _torches(report: dict) -> str:
    return ", ".join(sorted({run["torch"]["version"] for run in report["runs"]}))


def _targets(report: dict) -> str:
    return ", ".join(sorted({run["target"]["name"] for run in report["runs"]}))
