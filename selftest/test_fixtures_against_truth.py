"""Every recorded fixture agrees with its independent truth, and every truth has its fixtures.

A fixture records what torch computed on the machine that recorded it. This module reads every
file under ``fixtures/`` and checks each recorded tensor against the truth its chapter declares in
``TRUTHS`` (closed form or NumPy reference, rounded to the file's dtype) under the tolerance
table: fixtures regenerated from a broken PyTorch fail here even if no chapter runs. A file that
no chapter declares (an orphan) fails with the fix; so does a declared record without its file.
"""

import importlib
from pathlib import Path

import pytest

from rnnspec.platform import DTYPES
from rnnspec.recorded import assert_matches_truth, fixture_basename, load_record

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
