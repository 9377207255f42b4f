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

``expectations/target-<name>.toml`` states what another implementation (``--target <name>``, see
``rnnspec/targets.py``) does not do, in the same form (``:`` in a target's name is written ``-``:
``target-onnx-torchscript.toml``); its entries apply only when that target is under test, on every
device unless an entry names one (``device = "cpu"``), and to tests with or without a device.
``tests`` may be one pattern or a list of them; ``match`` too (the message contains one of them). A
group of exceptions (Hypothesis' distinct failures of a property test) must be explained exception
by exception.

An entry may hold only on some machines: ``when = "<condition>"`` names one of :data:`CONDITIONS`
(e.g. ``"oneDNN does not serve bfloat16"``: a CPU without AVX512-BF16); where the condition is
false the entry does not apply and is not stale. An unknown condition is a usage error.
"""

from __future__ import annotations

import builtins
import fnmatch
import tomllib
from dataclasses import dataclass
from pathlib import Path

import pytest

from rnnspec import releases

#: The machine conditions an entry may name with ``when``.
CONDITIONS = {
    "oneDNN does not serve bfloat16": lambda: "bfloat16" not in releases.onednn_rnn_dtypes(),
    "oneDNN serves bfloat16": lambda: "bfloat16" in releases.onednn_rnn_dtypes(),
}


@dataclass(frozen=True)
class Unsupported:
    file: str
    device_type: str | None  # None: every device (a target's entry without ``device``)
    tests: str | tuple[str, ...]  # one fnmatch pattern on node ids, or several (a list in the file)
    raises: str
    match: str | tuple[str, ...]  # a part of the message, or several (a list in the file: any one of them)
    reason: str
    target: str | None = None  # the --target the entry is about (None: torch.nn as installed, any target)
    when: str | None = None  # a machine condition of CONDITIONS (None: every machine)

    def holds_here(self) -> bool:
        """Whether this machine meets the entry's condition (always, without one)."""
        if self.when is None:
            return True
        if self.when not in CONDITIONS:
            raise pytest.UsageError(f"{self.file}: when = {self.when!r} is no known condition; choose from "
                                    f"{', '.join(repr(c) for c in CONDITIONS)}")
        return CONDITIONS[self.when]()

    @property
    def exception(self) -> type[BaseException]:
        exception = getattr(builtins, self.raises, None)
        if not (isinstance(exception, type) and issubclass(exception, BaseException)):
            raise pytest.UsageError(f"{self.file}: raises = {self.raises!r} is not a built-in exception type")
        return exception

    def describe(self) -> str:
        match = self.match if isinstance(self.match, str) else " | ".join(self.match)
        return f"{self.raises}: ...{match}... ({self.reason}; {self.file})"

    def explains(self, error: BaseException) -> bool:
        """``error`` is of the listed type (or a subclass), with ``match`` (one of them, for a list) in its message.

        A group of exceptions (Hypothesis reports each distinct failure of a property test's examples) is
        explained when each exception in it is."""
        group = getattr(error, "exceptions", None)  # an (Base)ExceptionGroup, built in or the 3.10 backport's
        if isinstance(group, tuple) and group:
            return all(self.explains(inner) for inner in group)
        matches = (self.match,) if isinstance(self.match, str) else self.match
        return isinstance(error, self.exception) and any(match in str(error) for match in matches)

    def applies(self, nodeid: str, device: str | None, target: str) -> bool:
        """Whether the entry is about test ``nodeid`` on ``device`` (None: the test has none) under ``target``."""
        if self.target is not None:
            if self.target != target or (self.device_type is not None and
                                          (device is None or device.split(":")[0] != self.device_type)):
                return False
        elif device is None or device.split(":")[0] != self.device_type:
            return False
        patterns = (self.tests,) if isinstance(self.tests, str) else self.tests
        return any(fnmatch.fnmatchcase(nodeid, pattern) for pattern in patterns)


def load(folder: Path) -> list[Unsupported]:
    entries = []
    for path in sorted(folder.glob("*.toml")):
        try:
            document = tomllib.loads(path.read_text())
            target = path.stem.removeprefix("target-") if path.stem.startswith("target-") else None
            for entry in document.get("unsupported", []):
                for key in ("tests", "match"):
                    if isinstance(entry.get(key), list):
                        entry = {**entry, key: tuple(entry[key])}
                if target is None:
                    entries.append(Unsupported(file=path.name, device_type=path.stem, **entry))
                else:
                    entry = dict(entry)
                    entries.append(Unsupported(file=path.name, device_type=entry.pop("device", None), target=target,
                                               **entry))
        except (tomllib.TOMLDecodeError, TypeError) as error:
            raise pytest.UsageError(f"expectations file {path} is malformed: {error}") from None
    return entries


class Plugin:
    """Applies the expectation files as strict xfails and checks the raised message."""

    def __init__(self, folder: Path):
        self.entries = [entry for entry in load(folder) if entry.holds_here()]
        self.stale: list[Unsupported] = []

    def pytest_collection_modifyitems(self, config, items):
        from rnnspec import targets  # noqa: PLC0415 (a pytest plugin: imported by pytest first, for assert rewriting)

        target = targets.expectations_name(targets.active(config))
        used = set()
        for item in items:
            callspec = getattr(item, "callspec", None)
            device = callspec.params.get("device") if callspec is not None else None
            for entry in self.entries:
                if entry.applies(item.nodeid, device, target):
                    item.add_marker(pytest.mark.xfail(strict=True, reason=entry.describe()))
                    item.stash[_ENTRY] = entry
                    used.add(entry)
                    break
        selected = {d.type for d in config.spec_devices}
        self.stale = [e for e in self.entries if e not in used and (
            e.target == target if e.target is not None else e.device_type in selected)]

    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_makereport(self, item, call):
        report = yield
        entry = item.stash.get(_ENTRY, None)
        if entry is not None and call.when == "call" and call.excinfo is not None:
            if not entry.explains(call.excinfo.value):
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
