"""Every recorded fixture agrees with its independent truth, and every truth has its fixtures.

A fixture records what torch computed on the machine that recorded it. This module reads every
file under ``fixtures/`` and checks each recorded tensor against the truth its chapter declares in
``TRUTHS`` (closed form or NumPy reference, rounded to the file's dtype) under the tolerance
table: fixtures regenerated from a broken PyTorch fail here even if no chapter runs. A file that
no chapter declares (an orphan) fails with the fix; so does a declared record without its file, a
stray file that is not a fixture (a leftover ``.obtained.npz``, a ``.npy``), and fixture files that
are not as a recording run left them (``fixtures/PROVENANCE.json`` names none for them, or its
digest of their chapter differs: copied in, edited or deleted by hand). A truncated
or unreadable file, or one whose dtype tag contradicts its name, fails with the fix
(``rnnspec.recorded.load_record``). ``selftest/test_report.py`` adds the fixtures no test uses.
"""

import importlib
from pathlib import Path

import pytest

from rnnspec import provenance
from rnnspec.platform import DTYPES
from rnnspec.recorded import assert_matches_truth, fixture_basename, load_record
from rnnspec.reporting import CHANGES

ROOT = Path(__file__).resolve().parents[1]
FILES = sorted((ROOT / "fixtures").glob("*/*.npz"))
CHAPTERS = sorted(path.stem for path in (ROOT / "spec").glob("test_*.py"))


def truths_of(chapter: str) -> dict:
    return getattr(importlib.import_module(f"spec.{chapter}"), "TRUTHS", {})


@pytest.mark.parametrize("path", FILES, ids=lambda p: f"{p.parent.name}/{p.stem}")
def test_recorded_fixture_agrees_with_its_truth(path, tolerance_table):
    """The recorded tensors equal the chapter's truth rounded to the file's dtype, within its tolerance."""
    chapter, (record, _, dtype) = path.parent.name, path.stem.rpartition("-")
    if chapter not in CHAPTERS or dtype not in DTYPES:
        pytest.fail(f"orphan fixture {path.relative_to(ROOT)}: no chapter spec/{chapter}.py or no dtype {dtype!r}; "
                    f"delete the file (git rm) or restore its chapter", pytrace=False)
    truths = truths_of(chapter)
    if record not in truths:
        pytest.fail(f"orphan fixture {path.relative_to(ROOT)}: spec/{chapter}.py declares no truth {record!r} "
                    f"(it declares {sorted(truths)}); delete the file (git rm) or restore the record", pytrace=False)
    fix = f"pytest --regen-all --device cpu spec/{chapter}.py"
    assert_matches_truth(load_record(path, dtype, fix=fix), truths[record](), dtype, tolerance_table[dtype],
                         what=f"fixture {path.relative_to(ROOT)}:", witness="its truth", config=f"recorded-{dtype}")


@pytest.mark.parametrize("chapter", CHAPTERS)
def test_every_declared_truth_has_a_fixture_for_every_dtype(chapter):
    """Each record in a chapter's TRUTHS has one fixture file per dtype, named <record>-<dtype>.npz."""
    missing = [f"fixtures/{chapter}/{fixture_basename(record, dtype)}.npz"
               for record in truths_of(chapter) for dtype in DTYPES
               if not (ROOT / "fixtures" / chapter / f"{fixture_basename(record, dtype)}.npz").is_file()]
    assert not missing, (f"spec/{chapter}.py declares records without fixtures: {missing}; "
                         f"record them with: pytest --regen-all --device cpu spec/{chapter}.py")


def test_fixtures_folder_holds_only_fixture_files():
    """Under fixtures/ live only <chapter>/<record>-<dtype>.npz files, PROVENANCE.json and CHANGES.md."""
    allowed = {provenance.FILE, CHANGES}
    stray = sorted(str(path.relative_to(ROOT)) for path in (ROOT / "fixtures").rglob("*")
                   if path.is_file() and path.relative_to(ROOT / "fixtures").as_posix() not in allowed
                   and not (path.suffix == ".npz" and path.parent.parent == ROOT / "fixtures"
                            and not path.name.endswith(".obtained.npz")))
    assert not stray, (f"stray files under fixtures/, not fixtures of any chapter: {stray}; delete them "
                       f"(git rm, or rm for untracked leftovers such as *.obtained.npz)")


def test_every_fixture_file_is_as_its_recording_left_it():
    """fixtures/PROVENANCE.json names the torch that recorded every fixture file, and the files match its digests."""
    try:
        document = provenance.read(ROOT / "fixtures")
    except provenance.ProvenanceError as error:
        pytest.fail(str(error), pytrace=False)
    assert document is not None, ("fixtures/PROVENANCE.json is missing; restore it from git "
                                  "(git checkout -- fixtures/PROVENANCE.json) or re-record the fixtures on CPU "
                                  "with --regen-all, which writes it")
    problems = provenance.problems(document, ROOT / "fixtures")
    assert not problems, "fixtures not as a recording run left them:\n  " + "\n  ".join(problems)
