"""Every recorded fixture agrees with its independent truth, and every record has its fixtures.

A fixture records what torch computed on the machine that recorded it. This module reads every
file under ``fixtures/`` and checks each recorded tensor against the truth of the record its
chapter declares (``rnnspec.records.Record``: closed form or NumPy reference, rounded to the file's
dtype) under the tolerance table: fixtures regenerated from a broken PyTorch fail here even if no
chapter runs. Each record's inputs file (``<record>-inputs.npz``: the arrays its outputs were
computed from) must hold the arrays the record declares. A file that no chapter declares (an
orphan) fails with the fix; so does a declared record without its files, a stray file that is not
a fixture (a leftover ``.obtained.npz``, a ``.npy``), and fixture files that are not as a
recording run left them (``fixtures/PROVENANCE.json`` names none for them, or its digest of their
chapter differs: copied in, edited or deleted by hand). A truncated or unreadable file, or one
whose dtype tag contradicts its name, fails with the fix (``rnnspec.fixture_files.load_record``).
Orphans, stray files and provenance are also checked by every conformance run, in the same words
(``rnnspec/gate/integrity.py``); ``selftest/test_gate_run.py`` adds the fixtures no test uses.
"""

import importlib
from pathlib import Path

import pytest

from rnnspec.devices import DTYPES
from rnnspec.fixture_files import InputsError, load_record, read_inputs
from rnnspec.gate import integrity
from rnnspec.records import INPUTS, records_of
from rnnspec.spec_check import assert_matches_truth

ROOT = Path(__file__).resolve().parents[1]
FILES = sorted((ROOT / "fixtures").glob("*/*.npz"))
CHAPTERS = sorted(path.stem for path in (ROOT / "spec").glob("test_*.py"))


def records_in(chapter: str) -> dict:
    return {record.name: record for record in records_of(importlib.import_module(f"spec.{chapter}"))}


@pytest.mark.parametrize("path", FILES, ids=lambda p: f"{p.parent.name}/{p.stem}")
def test_recorded_fixture_agrees_with_its_truth(path, tolerance_table):
    """The recorded tensors equal the record's truth rounded to the file's dtype, within its tolerance; an inputs
    file holds the record's arrays."""
    chapter, (name, _, dtype) = path.parent.name, path.stem.rpartition("-")
    name_in_folder = f"{chapter}/{path.name}"
    orphan = integrity.orphan_problem(name_in_folder, None, set(CHAPTERS))
    if orphan:
        pytest.fail(orphan, pytrace=False)
    records = records_in(chapter)
    orphan = integrity.orphan_problem(name_in_folder, records, set(CHAPTERS))
    if orphan:
        pytest.fail(orphan, pytrace=False)
    record = records[name]
    if dtype == INPUTS:
        try:
            record.configuration()  # reads the file and holds it to the record's arrays (names, shapes)
            read_inputs(path)
        except InputsError as error:
            pytest.fail(str(error), pytrace=False)
        return
    fix = f"pytest --regen-all --device cpu spec/{chapter}.py"
    assert_matches_truth(load_record(path, dtype, fix=fix), record.truth(), dtype, tolerance_table[dtype],
                         what=f"fixture {path.relative_to(ROOT)}:", witness="its truth", config=f"recorded-{dtype}")


@pytest.mark.parametrize("chapter", CHAPTERS)
def test_every_declared_record_has_its_inputs_and_a_fixture_for_every_dtype(chapter):
    """Each record of a chapter has its inputs file and one fixture file per dtype, named <record>-<dtype>.npz."""
    missing = [str(path.relative_to(ROOT)) for record in records_in(chapter).values()
               for path in (record.inputs_file, *(record.fixture(dtype) for dtype in DTYPES)) if not path.is_file()]
    assert not missing, (f"spec/{chapter}.py declares records without their files: {missing}; "
                         f"record them with: pytest --regen-all --device cpu spec/{chapter}.py")


def test_fixtures_folder_holds_only_fixture_files():
    """Under fixtures/ live only <chapter>/<record>-<dtype or inputs>.npz files, PROVENANCE.json and CHANGES.md."""
    stray = integrity.stray_files(ROOT / "fixtures")
    assert not stray, integrity.stray_problem(stray)


def test_every_fixture_file_is_as_its_recording_left_it():
    """fixtures/PROVENANCE.json names the torch that recorded every fixture file, and the files match its digests."""
    problems = integrity.provenance_problems(ROOT / "fixtures")
    assert not problems, "fixtures not as a recording run left them:\n  " + "\n  ".join(problems)
