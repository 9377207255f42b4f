"""The terminal matrix every run ends with: what passed, per device, chapter and dtype.

One block per device that ran tests, a row per chapter (and one for the fixtures folder's check,
when it ran) and a column per dtype (``no dtype`` for tests that take none); the tests that take no
device (constructors' checks, warnings) have a block of their own, so every test of the run is in
exactly one cell. A cell reads ``passed/total`` and then what did not pass (``F`` failed, ``E``
error, ``x`` xfailed, ``s`` skipped: ``rnnspec/vocabulary.py``). Then one line per requested
device that ran nothing, with the reason::

    cuda: not available on this machine (torch.cuda.is_available() is False), 0 of 481 tests ran there

Layout: no line is wider than :data:`WIDTH`, and no two cells ever touch: each column is as wide
as its widest cell plus :data:`GAP` spaces; where a device's columns do not fit beside the chapter
names, they continue in a second block under the same title. The matrix is printed from the
outcomes the terminal reporter already tallied, so a run pays nothing per test for it.
"""

from __future__ import annotations

import textwrap

from rnnspec.gate.options import is_worker
from rnnspec.vocabulary import (LEGEND, NO_DEVICE, NO_DTYPE, cell_text, chapter_title, no_case, nothing_ran, parse,
                                row_of, skip_reason, summed)

WIDTH = 100  # the matrix never exceeds this many columns
GAP = 2  # the fewest spaces between two cells
NAME = 16  # the fewest columns the chapter names keep (longer names are clipped with …)

Cells = dict[tuple[str, str, str], dict[str, int]]  # (device or NO_DEVICE, row, dtype or NO_DTYPE) -> counts


class Matrix:
    """Always on (rnnspec/gate/plugin.py registers it): prints the matrix at the end of the session."""

    def pytest_terminal_summary(self, terminalreporter, config):
        if is_worker(config) or config.get_verbosity() < -1:
            return
        devices = list(getattr(config, "spec_devices", []))
        dtypes = list(getattr(config, "spec_dtypes", []))
        cells = counted(tallied(terminalreporter.stats), [d.name for d in devices], dtypes)
        absent = {d.name: d.unavailable_because for d in devices if d.unavailable_because}
        for line, bad in matrix_lines(cells, [d.name for d in devices], dtypes, absent):
            terminalreporter.write_line(line, red=bad)


def tallied(stats: dict[str, list]) -> dict[str, str]:
    """nodeid -> outcome, from the terminal reporter's reports by category; an error (a failed setup
    or teardown) outranks the call's outcome. Claims with no selected dtype are left out."""
    outcomes: dict[str, str] = {}
    for category in ("passed", "xpassed", "xfailed", "skipped", "failed", "error"):
        for report in stats.get(category, []):
            nodeid = getattr(report, "nodeid", None)
            if nodeid and not (category == "skipped" and no_case(skip_reason(report))):
                outcomes[nodeid] = category
    return outcomes


def counted(outcomes: dict[str, str], devices: list[str], dtypes: list[str]) -> Cells:
    """The outcomes of the matrix's tests counted per device (or :data:`NO_DEVICE`), row and dtype."""
    cells: Cells = {}
    for nodeid, outcome in outcomes.items():
        row = row_of(nodeid)
        if row is None:
            continue
        place = parse(nodeid, devices, dtypes)
        counts = cells.setdefault((place.device or NO_DEVICE, row, place.dtype or NO_DTYPE), {})
        counts[outcome] = counts.get(outcome, 0) + 1
    return cells


def matrix_lines(cells: Cells, devices: list[str], dtypes: list[str],
                 absent: dict[str, str] | None = None) -> list[tuple[str, bool]]:
    """The matrix as (line, whether it shows a failure): a block per device that ran tests, one for the
    tests that take no device, then a line per device that ran nothing. ``absent``: device -> why it
    cannot run here."""
    absent = absent or {}
    total = sum(sum(counts.values()) for counts in cells.values())
    if not total:  # a session of no chapter (the suite's own tests): no matrix
        return []
    lines: list[tuple[str, bool]] = []
    idle = []
    for device in [*devices, NO_DEVICE]:
        mine = {key[1:]: counts for key, counts in cells.items() if key[0] == device}
        ran = any(n for counts in mine.values() for outcome, n in counts.items() if outcome != "skipped")
        if device != NO_DEVICE and (not ran or device in absent):
            idle.append(device)
            continue
        if mine:
            title = (f"rnn-spec matrix on {device}" if device != NO_DEVICE
                     else "rnn-spec matrix of tests on no device")
            lines += _block(title, mine, [d for d in [*dtypes, NO_DTYPE] if any(key[1] == d for key in mine)])
    if len(idle) == len(devices):  # a selection of no device's tests: only the absent devices need saying
        idle = [device for device in idle if device in absent]
    for device in idle:  # a long reason wraps: no line exceeds WIDTH
        why = absent.get(device) or ("every test there was skipped" if any(key[0] == device for key in cells)
                                     else "no test was selected there")
        lines += [(line, False) for line in textwrap.wrap(nothing_ran(device, why, total), WIDTH,
                                                          subsequent_indent="  ")]
    return lines


def _block(title: str, mine: dict[tuple[str, str], dict[str, int]], columns: list[str]) -> list[tuple[str, bool]]:
    rows = sorted({key[0] for key in mine})
    table = {row: {c: mine.get((row, c)) for c in columns} for row in rows}
    table["all"] = {c: summed([counts for key, counts in mine.items() if key[1] == c]) for c in columns}
    texts = {row: {c: cell_text(counts) if counts else "-" for c, counts in cells.items()}
             for row, cells in table.items()}
    widths = {c: max(len(c), *(len(texts[row][c]) for row in table)) + GAP for c in columns}
    longest = max(len(chapter_title(row)) for row in table) + 1
    lines = []
    for part, group in enumerate(_groups(columns, widths)):
        name = max(NAME, min(longest, WIDTH - sum(widths[c] for c in group)))
        heading = f"{title}: {LEGEND}" if part == 0 else f"{title} (continued)"
        lines.append((_clip(heading, WIDTH), False))
        lines.append(("chapter".ljust(name) + "".join(c.rjust(widths[c]) for c in group), False))
        for row, cells in table.items():
            text = _clip(chapter_title(row), name - 1).ljust(name) + "".join(texts[row][c].rjust(widths[c])
                                                                          for c in group)
            lines.append((text, any(cells[c] and (cells[c].get("failed") or cells[c].get("error")) for c in group)))
    return lines


def _groups(columns: list[str], widths: dict[str, int]) -> list[list[str]]:
    """The columns in runs that fit beside :data:`NAME` columns of chapter names (at least one column each)."""
    groups: list[list[str]] = [[]]
    for column in columns:
        if groups[-1] and NAME + sum(widths[c] for c in groups[-1]) + widths[column] > WIDTH:
            groups.append([])
        groups[-1].append(column)
    return groups


def _clip(text: str, width: int) -> str:
    text = text.rstrip()
    return text if len(text) <= width else text[:max(width - 1, 0)] + "…"
