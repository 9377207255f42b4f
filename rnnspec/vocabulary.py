"""The suite's shared words: what a test id says, which chapter a test belongs to, what its outcome was.

The terminal matrix, the report and the rendered document all speak of tests by these words, so
they are defined once, here:

* a **node id** ``spec/test_02_exploding_gradient.py::test_x[cpu-float32-n7]`` names its chapter
  (:func:`chapter_of`), its test function, and in its parameters the device and dtype it ran on
  (conftest.py puts them first): :func:`parse`;
* an **outcome** is one of :data:`OUTCOMES`; one phase report of pytest decides it
  (:func:`phase_outcome`), and of several phases the most severe wins (:data:`SEVERITY`: an error in
  teardown outranks a passed call);
* a **row** of the matrix is a chapter, or the check of the fixtures folder (:func:`row_of`); tests
  outside both (the suite's own, under selftest/) are in no row;
* a **cell** of the matrix counts outcomes: ``7/9 F2`` (:func:`cell_text`, the letters of
  :data:`MARKS`, explained by :data:`LEGEND`; :func:`summed` adds cells up); a requested device where
  nothing ran gets a line instead (:func:`nothing_ran`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

#: The dtypes the spec knows, widest first, by the names of test ids, fixture files and ``--dtype``
#: (``rnnspec/devices.py`` maps them to torch's).
DTYPE_NAMES = ("float64", "float32", "bfloat16", "float16")
OUTCOMES = ("passed", "failed", "error", "xfailed", "xpassed", "skipped")
#: Of two outcomes of one test, the more severe one stands.
SEVERITY = {"passed": 0, "skipped": 1, "xfailed": 2, "xpassed": 3, "failed": 4, "error": 5}
#: The matrix column of tests parametrised by device only.
NO_DTYPE = "no dtype"
#: The matrix block of tests that take no device (constructors' checks, warnings, the fixtures check).
NO_DEVICE = "no device"
#: The matrix row of the fixtures folder's integrity check (``fixtures/PROVENANCE.json::…``).
FIXTURES = "fixtures"
#: The letter of each outcome that is not a pass, in the order a cell shows them.
MARKS = (("failed", "F"), ("error", "E"), ("xfailed", "x"), ("skipped", "s"))
#: What a cell says.
LEGEND = "passed/total; F failed, E error, x xfailed, s skipped"
#: The dtype of a claim about dtypes that --dtype left out (pytest's NOTSET parameter).
NONE_SELECTED = "(none selected)"


@dataclass(frozen=True)
class Place:
    """Where a test ran, as its node id says: chapter (None outside spec/), test function, device, dtype."""

    chapter: str | None
    test: str
    device: str | None
    dtype: str | None


def module_of(nodeid: str) -> str:
    """``spec/test_01_forward_values.py::test_x[…]`` -> ``test_01_forward_values`` (any test file's stem)."""
    return nodeid.split("::", 1)[0].rpartition("/")[2].removesuffix(".py")


def chapter_of(nodeid: str) -> str | None:
    """``test_02_exploding_gradient`` for a node id of a chapter under spec/, else None."""
    match = re.fullmatch(r"(?:.*/)?spec/(test_\d\d_\w+)\.py", nodeid.split("::", 1)[0])
    return match.group(1) if match else None


def row_of(nodeid: str) -> str | None:
    """The matrix row of a test: its chapter, :data:`FIXTURES` for the fixtures folder's check, else None."""
    if nodeid.split("::", 1)[0].startswith(f"{FIXTURES}/"):
        return FIXTURES
    return chapter_of(nodeid)


def chapter_title(chapter: str) -> str:
    """``test_01_forward_values`` -> ``01 forward values``."""
    return chapter.removeprefix("test_").replace("_", " ")


def parse(nodeid: str, devices: list[str], dtypes: list[str]) -> Place:
    """The place of a test id: its parameters' first word is its device if it is one of ``devices``, the next
    (or the first, for a test without a device) its dtype if one of ``dtypes``; a claim about dtypes that
    --dtype left out (``NOTSET``) has neither."""
    _, _, name = nodeid.partition("::")
    function, _, params = name.partition("[")
    words = params.rstrip("]").split("-") if params else []
    device = words.pop(0) if words and words[0] in devices else None
    if words and words[0] == "NOTSET":
        return Place(chapter_of(nodeid), function, None, None)
    dtype = words[0] if words and words[0] in dtypes else None
    return Place(chapter_of(nodeid), function, device, dtype)


def skip_reason(report) -> str | None:
    longrepr = report.longrepr
    if isinstance(longrepr, tuple) and len(longrepr) == 3:
        return str(longrepr[2]).removeprefix("Skipped: ")
    return None if longrepr is None else str(longrepr)


def phase_outcome(report) -> tuple[str, str | None] | None:
    """The outcome one phase report decides (with the skip or xfail reason), None if it decides none."""
    if report.when == "call":
        if hasattr(report, "wasxfail"):
            return ("xfailed" if report.skipped else "xpassed"), report.wasxfail
        if report.skipped:
            return "skipped", skip_reason(report)
        return ("passed" if report.passed else "failed"), None
    if report.failed:
        return "error", None
    if report.skipped:
        return ("xfailed", report.wasxfail) if hasattr(report, "wasxfail") else ("skipped", skip_reason(report))
    return None


def no_case(reason: str | None) -> bool:
    """A claim about dtypes none of which is selected: pytest skips its empty parameter set; no matrix cell."""
    return bool(reason) and reason.startswith("got empty parameter set")


def cell_text(counts: dict[str, int]) -> str:
    """``9/9``, ``7/9 F2``, ``0/9 x9``: passed (and xpassed) over total, then what did not pass."""
    total = sum(counts.values())
    passed = counts.get("passed", 0) + counts.get("xpassed", 0)
    marks = "".join(f" {letter}{counts[name]}" for name, letter in MARKS if counts.get(name))
    return f"{passed}/{total}{marks}"


def summed(counters) -> dict[str, int]:
    """Outcome counts added up: the cell of several cells (a row of all chapters)."""
    total: dict[str, int] = {}
    for counts in counters:
        for name, n in counts.items():
            total[name] = total.get(name, 0) + n
    return total


def nothing_ran(device: str, why: str, total: int) -> str:
    """The line for a requested device where no test ran: ``cuda: not available on this machine (...), 0 of 481
    tests ran there``; ``why`` is the device's reason (``cuda is not available ...``) or another cause."""
    for prefix in (f"{device} ", f"{device.split(':')[0]} "):
        why = why.removeprefix(prefix)
    return f"{device}: {why.removeprefix('is ')}, 0 of {total} tests ran there"
