"""The fixtures folder as recording runs left it, checked by every conformance run.

``fixtures/`` holds ``<chapter>/<record>-<dtype>.npz`` and ``<record>-inputs.npz`` files,
``PROVENANCE.json`` and ``CHANGES.md``, nothing else. What a chapter's own tests cannot see
(a file no test reads passes every test; so does a hand edit of one ULP, well within the
tolerance) is found here, each problem with its file and its fix (:func:`problems`):

* a **stray** file: anything that is not one of the above (a leftover ``.obtained.npz``, a
  ``.npy``, a folder inside a chapter's folder);
* an **orphan**: a fixture of a chapter that does not exist, with a suffix that is no dtype, or of a
  record its chapter does not declare (checked for the chapters the session collected);
* a file **not as its recording left it**: ``PROVENANCE.json`` names no baseline for it, or the
  sha256 it holds for the file is not the file's (``rnnspec/gate/provenance.py``); a missing or
  unreadable ``PROVENANCE.json`` itself.

How a run fails: after collection, when the session collected a chapter (``python -m pytest``,
``pytest spec/test_07_gru.py``) and this is not a recording run, the folder is checked (hashing
every file: a few milliseconds). If anything is wrong, one more test joins the run,
``fixtures/PROVENANCE.json::every_fixture_file_is_as_its_recording_left_it``, and fails with every
problem; the chapters still run. A sound folder adds no test, so test ids and counts do not
depend on the check. ``python -m pytest fixtures/PROVENANCE.json`` runs the check alone, whatever
it finds. Files a chapter needs but lacks are the chapter's tests' own failures ("is missing",
with the command that records them).
"""

from __future__ import annotations

import importlib
import os
from pathlib import Path

import pytest

from rnnspec.gate import provenance
from rnnspec.records import FIXTURES, INPUTS, records_of
from rnnspec.vocabulary import DTYPE_NAMES, chapter_of

NAME = "every_fixture_file_is_as_its_recording_left_it"


def listing(folder: Path) -> tuple[list[str], list[str]]:
    """The fixture files of ``folder`` (``chapter/file.npz``) and every other file in it (``fixtures/...``),
    in one walk of the folder."""
    fixtures, others = [], []
    allowed = {provenance.FILE, provenance.CHANGES}
    for top in os.scandir(folder):
        if not top.is_dir():
            if top.name not in allowed:
                others.append(f"{FIXTURES}/{top.name}")
            continue
        for entry in os.scandir(top.path):
            name = f"{top.name}/{entry.name}"
            if entry.is_dir():
                others += [f"{FIXTURES}/{name}/{path.relative_to(entry.path).as_posix()}"
                           for path in Path(entry.path).rglob("*") if path.is_file()]
            elif entry.name.endswith(".npz") and not entry.name.endswith(".obtained.npz"):
                fixtures.append(name)
            else:
                others.append(f"{FIXTURES}/{name}")
    return sorted(fixtures), sorted(others)


def stray_files(folder: Path) -> list[str]:
    """The files under ``folder`` (fixtures/) that are not fixtures of any chapter, as ``fixtures/...`` paths."""
    return listing(folder)[1]


def stray_problem(stray: list[str]) -> str:
    return (f"stray files under fixtures/, not fixtures of any chapter: {stray}; delete them "
            f"(git rm, or rm for untracked leftovers such as *.obtained.npz)")


def orphan_problem(name: str, records: dict | None, chapters: set[str]) -> str | None:
    """Why the fixture file ``name`` (``chapter/file.npz``) is an orphan, with the fix; None if it is not.
    ``records``: its chapter's records by name (None: the chapter was not imported, so only its
    existence and the file's suffix are checked); ``chapters``: the chapters of spec/."""
    chapter, _, file = name.partition("/")
    record, _, suffix = file.removesuffix(".npz").rpartition("-")
    if chapter not in chapters or (suffix not in DTYPE_NAMES and suffix != INPUTS):
        return (f"orphan fixture {FIXTURES}/{name}: no chapter spec/{chapter}.py or no dtype {suffix!r}; "
                f"delete the file (git rm) or restore its chapter")
    if records is not None and record not in records:
        return (f"orphan fixture {FIXTURES}/{name}: spec/{chapter}.py declares no record {record!r} (it declares "
                f"{sorted(records)}); delete the file (git rm) or restore the record")
    return None


def chapters_of(root: Path) -> set[str]:
    """The chapters of ``root``/spec (their module names)."""
    return {name[:-3] for name in os.listdir(root / "spec") if name.startswith("test_") and name.endswith(".py")}


def provenance_problems(folder: Path, names: list[str] | None = None) -> list[str]:
    """Every fixture file no recording run wrote or that changed since, and a missing or unreadable PROVENANCE.json."""
    try:
        document = provenance.read(folder)
    except provenance.ProvenanceError as error:
        return [str(error)]
    if document is None:
        return [f"fixtures/{provenance.FILE} is missing; restore it from git (git checkout -- "
                f"fixtures/{provenance.FILE}) or re-record the fixtures on CPU with --regen-all, which writes it"]
    return provenance.problems(document, folder, names)


def problems(root: Path, declared: dict[str, dict]) -> list[str]:
    """Everything wrong with ``root``/fixtures, each with its fix. ``declared``: chapter -> its records
    by name, for the chapters whose records are known (the others' files are held to their chapter's
    existence only)."""
    folder = root / FIXTURES
    if not folder.is_dir():
        return [f"the fixtures folder {FIXTURES}/ is missing; restore it from git (git checkout -- {FIXTURES})"]
    fixtures, stray = listing(folder)
    found = [stray_problem(stray)] if stray else []
    chapters = chapters_of(root)
    for name in fixtures:
        orphan = orphan_problem(name, declared.get(name.partition("/")[0]), chapters)
        if orphan:
            found.append(orphan)
    return found + provenance_problems(folder, fixtures)


def declared_records(modules) -> dict[str, dict]:
    """chapter -> {record name: record} for chapter modules."""
    return {module.__name__.rpartition(".")[2]: {r.name: r for r in records_of(module)} for module in modules}


class Check:
    """The plugin part (rnnspec/gate/plugin.py registers it, except in recording runs)."""

    def pytest_collect_file(self, file_path, parent):
        if file_path == parent.config.rootpath / FIXTURES / provenance.FILE:
            return FixturesFolder.from_parent(parent, path=file_path)
        return None

    @pytest.hookimpl(tryfirst=True)  # before -k and -m deselect: the check is part of the run they filter
    def pytest_collection_modifyitems(self, session, config, items):
        if any(isinstance(item, FolderCheck) for item in items):
            return  # collected by name: it runs whatever it finds
        modules = {id(m): m for item in items if chapter_of(item.nodeid) and (m := getattr(item, "module", None))}
        if not modules:
            return
        found = problems(config.rootpath, declared_records(modules.values()))
        if found:
            folder = FixturesFolder.from_parent(session, path=config.rootpath / FIXTURES / provenance.FILE)
            items.insert(0, FolderCheck.from_parent(folder, name=NAME, found=found))


class FixturesFolder(pytest.File):
    """``fixtures/PROVENANCE.json`` as a test file: its one test checks the whole folder."""

    def collect(self):
        yield FolderCheck.from_parent(self, name=NAME)


class FolderCheck(pytest.Item):
    """Every fixture file is as its recording left it; nothing else lies in fixtures/."""

    def __init__(self, *, found: list[str] | None = None, **kwargs):
        super().__init__(**kwargs)
        self.found = found

    def runtest(self):
        found = self.found
        if found is None:  # collected by name: every chapter's records are checked
            root = self.config.rootpath
            chapters = [importlib.import_module(f"spec.{p.stem}") for p in sorted((root / "spec").glob("test_*.py"))]
            found = problems(root, declared_records(chapters))
        if found:
            pytest.fail(f"fixtures/ is not as recording runs left it ({len(found)} problem"
                        f"{'s' if len(found) > 1 else ''}, each with its fix):\n  " + "\n  ".join(found), pytrace=False)

    def reportinfo(self):
        return self.path, None, f"{FIXTURES}/{provenance.FILE}: {NAME}"
