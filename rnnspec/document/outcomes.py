"""The outcome of each claim in the run that renders the document, per device × dtype.

:class:`Outcomes` collects pytest's reports (the words of :mod:`rnnspec.vocabulary`) and counts them
per chapter, test, device and dtype; :func:`cell` writes one table cell, :func:`column` one header.
"""

from __future__ import annotations

from rnnspec.vocabulary import NO_DTYPE, SEVERITY, chapter_of, parse, phase_outcome

SYMBOL = {"passed": "✅", "skipped": "⏭", "xfailed": "⚠️", "xpassed": "❗", "failed": "❌", "error": "❌"}


class Outcomes:
    """Each chapter test's outcome, keyed by chapter, test function and (device, dtype).

    A report names its device and dtype only in its id (``test_x[cpu-float32-n5]``): the words of
    the id that are a device or a dtype of the run are taken as such.
    """

    def __init__(self, devices: list[str], dtypes: list[str], unavailable: dict[str, str] | None = None):
        self.devices, self.dtypes = list(devices), list(dtypes)
        self.unavailable = dict(unavailable or {})
        self.tests: dict[str, str] = {}  # nodeid -> its outcome so far
        self.where: dict[str, tuple] = {}  # nodeid -> (chapter, test function, device, dtype)

    def add(self, report) -> None:
        decided = phase_outcome(report)
        if decided and chapter_of(report.nodeid):
            word, known = decided[0], self.tests.get(report.nodeid)
            if known is None or SEVERITY[word] > SEVERITY[known]:
                self.tests[report.nodeid] = word
                place = parse(report.nodeid, self.devices, self.dtypes)
                self.where[report.nodeid] = (place.chapter, place.test, place.device, place.dtype)

    def counts(self, chapter: str, test: str | None, device: str | None, dtype: str | None) -> dict[str, int]:
        """How many parametrisations of ``test`` (or of every test of ``chapter``) ended in each outcome."""
        found: dict[str, int] = {}
        for nodeid, word in self.tests.items():
            where = self.where[nodeid]
            if where[:2] == (chapter, test or where[1]) and where[2:] == (device, dtype):
                found[word] = found.get(word, 0) + 1
        return found

    def configurations(self, chapter: str | None = None) -> list[tuple[str | None, str | None]]:
        """The (device, dtype) columns of a table: those the chapter's (or the run's) tests ran with, in the
        order of ``--device`` and ``--dtype``; a test without a dtype (or device) gets a column of its own.
        Every device × dtype of the run when no test ran."""
        seen = {where[2:] for where in self.where.values() if chapter is None or where[0] == chapter}
        grid = [(d, t) for d in self.devices for t in self.dtypes]
        if not seen:
            return grid
        order = [(d, t) for d in [*self.devices, None] for t in [*self.dtypes, None]]
        return [config for config in order if config in seen]

    def tests_of(self, chapter: str) -> list[str]:
        return sorted({where[1] for where in self.where.values() if where[0] == chapter})

    def total(self) -> dict[str, int]:
        """How many tests of the chapters ended in each outcome."""
        found: dict[str, int] = {}
        for word in self.tests.values():
            found[word] = found.get(word, 0) + 1
        return found


#: The column of tests parametrised by neither device nor dtype.
NO_DEVICE = "no device"


def column(config: tuple[str | None, str | None], devices: list[str]) -> str:
    """A table header: ``cpu float32``, ``cpu, no dtype`` for tests without a dtype, ``no device``; without the
    device's name when the run has one device (the text above the table names it)."""
    device, dtype = config
    if device is None:
        return dtype or NO_DEVICE
    if len(devices) == 1:
        return dtype or NO_DTYPE
    return f"{device} {dtype}" if dtype else f"{device}, {NO_DTYPE}"


def cell(counts: dict[str, int], empty: str = "not run") -> str:
    """One table cell: ``✅ 3`` when three parametrisations passed, ``❌ 1 failed, 2 passed`` otherwise,
    ``empty`` when none ran there."""
    if not counts:
        return empty
    if set(counts) == {"passed"}:
        return f"✅ {counts['passed']}"
    worst = max(counts, key=SEVERITY.get)
    parts = ", ".join(f"{counts[word]} {word}" for word in sorted(counts, key=lambda w: -SEVERITY[w]))
    return f"{SYMBOL[worst]} {parts}"
