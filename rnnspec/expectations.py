"""Known unsupported combinations, stated rather than hidden.

``expectations/<device type>.toml`` lists the tests that a device cannot run, each with the exact
error it raises. Such a test becomes a *strict* xfail: it must raise that exception type with a
message containing ``match``. If a PyTorch upgrade adds support, the test passes, the strict xfail
turns it into a failure, and the entry must be removed: the support matrix stays true. Example::

    [[unsupported]]
    tests = "spec/*[mps-float64]"          # fnmatch pattern on the test's node id
    raises = "TypeError"
    match = "doesn't support float64"
    reason = "the MPS framework has no float64"

An entry that matches no selected test on a device of the run is reported as stale.
"""

from __future__ import annotations

import builtins
import fnmatch
import tomllib
from dataclasses import dataclass
from pathlib import Path

import pytest


@dataclass(frozen=True)
class Unsupported:
    file: str
    device_type: str
    tests: str
    raises: str
    match: str
    reason: str

    @property
    def exception(self) -> type[BaseException]:
        exception = getattr(builtins, self.raises, None)
        if not (isinstance(exception, type) and issubclass(exception, BaseException)):
            raise pytest.UsageError(f"{self.file}: raises = {self.raises!r} is not a built-in exception type")
        return exception

    def describe(self) -> str:
        return f"{self.raises}: ...{self.match}... ({self.reason}; {self.file})"


def load(folder: Path) -> list[Unsupported]:
    entries = []
    for path in sorted(folder.glob("*.toml")):
        try:
            document = tomllib.loads(path.read_text())
            for entry in document.get("unsupported", []):
                entries.append(Unsupported(file=path.name, device_type=path.stem, **entry))
        except (tomllib.TOMLDecodeError, TypeError) as error:
            raise pytest.UsageError(f"expectations file {path} is malformed: {error}") from None
    return entries


class Plugin:
    """Applies the expectation files as strict xfails and checks the raised message."""

    def __init__(self, folder: Path):
        self.entries = load(folder)
        self.stale: list[Unsupported] = []

    def pytest_collection_modifyitems(self, config, items):
        used = set()
        for item in items:
            device = getattr(item, "callspec", None) and item.callspec.params.get("device")
            if device is None:
                continue
            for entry in self.entries:
                if device.split(":")[0] == entry.device_type and fnmatch.fnmatchcase(item.nodeid, entry.tests):
                    item.add_marker(pytest.mark.xfail(raises=entry.exception, strict=True, reason=entry.describe()))
                    item.stash[_ENTRY] = entry
                    used.add(entry)
        selected = {d.type for d in config.spec_devices}
        self.stale = [e for e in self.entries if e.device_type in selected and e not in used]

    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_makereport(self, item, call):
        report = yield
        entry = item.stash.get(_ENTRY, None)
        if entry is not None and call.when == "call" and call.excinfo is not None:
            if entry.match not in str(call.excinfo.value):
                report.outcome = "failed"
                report.longrepr = (f"{item.nodeid} was expected to fail with {entry.raises} containing "
                                   f"{entry.match!r}, but raised: {call.excinfo.typename}: {call.excinfo.value}")
                if hasattr(report, "wasxfail"):
                    del report.wasxfail
        return report

    def pytest_terminal_summary(self, terminalreporter):
        for entry in self.stale:
            terminalreporter.write_line(f"rnn-spec: stale expectation in expectations/{entry.file}: "
                                        f"{entry.tests!r} matches no selected test", yellow=True)


_ENTRY = pytest.StashKey[Unsupported]()
