"""Provenance, CHANGES.md and the fixtures folder's integrity check, on small folders made for each test.

* ``rnnspec/gate/provenance.py``: a re-recorded file moves to the baseline of its environment and
  day; every other file keeps its entry, its baseline and that baseline's date; a file no recording
  wrote, or changed since, is found with its fix.
* ``rnnspec/gate/rebaseline.py``: a recording's section goes first in CHANGES.md and every older
  line stays, also of a CHANGES.md of the earlier one-summary form.
* ``rnnspec/gate/integrity.py``: stray files, orphans (no chapter, no dtype, no such record) and
  provenance problems, each named with its fix; a sound folder has none.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from rnnspec.gate import integrity, provenance, rebaseline, reports
from synthetic_reports import BEFORE

ENV = {"torch": "2.13.0", "torch_git": "abc", "numpy": "2.4.6", "python": "3.11.7", "system": "Linux",
       "machine": "x86_64", "cpu_capability": "AVX2",
       "numerics": {"cudnn.allow_tf32": False, "cuda.matmul.allow_tf32": False, "deterministic_algorithms": False}}


def make_fixtures(folder: Path, names: list[str], content: bytes = b"recorded") -> None:
    for name in names:
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_bytes(content)


def test_provenance_moves_re_recorded_files_to_their_new_baseline(tmp_path):
    """A file re-recorded by another torch moves to that torch's baseline with its new digest; files
    not recorded keep their entries; entries of deleted files are dropped."""
    make_fixtures(tmp_path, ["ch1/a-float32.npz", "ch1/b-float32.npz", "ch2/c-float64.npz"])
    provenance.update(tmp_path, ["ch1/a-float32.npz", "ch1/b-float32.npz", "ch2/c-float64.npz"], ENV,
                      today="2026-01-01")
    make_fixtures(tmp_path, ["ch1/b-float32.npz"], content=b"recorded again")
    document = provenance.update(tmp_path, ["ch1/b-float32.npz"], {**ENV, "torch": "2.14.1"}, today="2026-02-01")
    digest = provenance.file_digest
    assert [(b["torch"], b["fixtures"], b["recorded_on"]) for b in document["baselines"]] == [
        ("2.13.0", {"ch1": {"a-float32.npz": digest(tmp_path / "ch1/a-float32.npz")},
                    "ch2": {"c-float64.npz": digest(tmp_path / "ch2/c-float64.npz")}}, "2026-01-01"),
        ("2.14.1", {"ch1": {"b-float32.npz": digest(tmp_path / "ch1/b-float32.npz")}}, "2026-02-01")]
    assert provenance.read(tmp_path) == document and provenance.problems(document, tmp_path) == []
    assert reports.validate({**BEFORE, "runs": [{**BEFORE["runs"][0], "baseline": document}]}) == []
    (tmp_path / "ch2" / "c-float64.npz").unlink()
    document = provenance.update(tmp_path, ["ch1/a-float32.npz"], {**ENV, "torch": "2.14.1"}, today="2026-03-01")
    assert [(b["torch"], b["recorded_on"], sorted(b["fixtures"]["ch1"])) for b in document["baselines"]] == [
        ("2.14.1", "2026-02-01", ["b-float32.npz"]), ("2.14.1", "2026-03-01", ["a-float32.npz"])]


def test_re_recording_one_file_changes_only_its_entry(tmp_path):
    """Re-recording one file on a later day in the same environment: its entry moves to a baseline of that day;
    the other files keep their baseline and its date, and the file's text changes only in those lines."""
    names = [f"ch1/{n}-float32.npz" for n in "abcdef"]
    make_fixtures(tmp_path, names)
    provenance.update(tmp_path, names, ENV, today="2026-01-01")
    before = (tmp_path / provenance.FILE).read_text()
    make_fixtures(tmp_path, ["ch1/c-float32.npz"], content=b"recorded again")
    document = provenance.update(tmp_path, ["ch1/c-float32.npz"], ENV, today="2026-05-05")
    assert [(b["recorded_on"], sorted(b["fixtures"]["ch1"])) for b in document["baselines"]] == [
        ("2026-01-01", [f"{n}-float32.npz" for n in "abdef"]), ("2026-05-05", ["c-float32.npz"])]
    after = (tmp_path / provenance.FILE).read_text()
    removed = [line for line in before.splitlines() if line not in after.splitlines()]
    assert len(removed) == 1 and '"c-float32.npz"' in removed[0], removed


def test_provenance_finds_fixtures_copied_in_or_changed_by_hand(tmp_path):
    """A file no recording wrote, and a file edited since its recording, each a problem with its fix."""
    make_fixtures(tmp_path, ["ch1/a-float32.npz", "ch2/b-float32.npz"])
    document = provenance.update(tmp_path, ["ch1/a-float32.npz", "ch2/b-float32.npz"], ENV)
    make_fixtures(tmp_path, ["ch1/a-float32.npz"], content=b"edited by hand")
    make_fixtures(tmp_path, ["ch2/copied-float32.npz"])
    (tmp_path / "ch2" / "b-float32.npz").unlink()  # a deleted file is the chapter's problem, not provenance's
    assert provenance.problems(document, tmp_path) == [
        "fixtures/ch1/a-float32.npz changed since torch 2.13.0 recorded it (its sha256 is not the one in "
        "PROVENANCE.json), not by a recording run; restore it (git checkout -- fixtures/ch1/a-float32.npz) or, if "
        "the change is deliberate, re-record: pytest --regen-all --device cpu spec/ch1.py",
        "fixtures/ch2/copied-float32.npz: PROVENANCE.json names no baseline for it, so no recording run wrote it; "
        "if it is an orphan delete it (git rm), else re-record it: pytest --regen-all --device cpu spec/ch2.py"]


def test_provenance_of_this_process_names_torch_numpy_and_the_flags_of_a_test():
    """environment(): the versions, the platform and the numerics flags tests run under (TF32 off)."""
    import numpy
    import torch

    env = provenance.environment()
    assert env["torch"] == torch.__version__ and env["numpy"] == numpy.__version__
    assert env["numerics"]["cudnn.allow_tf32"] is False and env["numerics"]["cuda.matmul.allow_tf32"] is False


def test_unreadable_provenance_says_how_to_restore_it(tmp_path):
    """A damaged PROVENANCE.json is an error naming the file and the git command that restores it."""
    (tmp_path / provenance.FILE).write_text("{ not json")
    with pytest.raises(provenance.ProvenanceError,
                       match=r"PROVENANCE.json is unreadable .*restore it from git \(git checkout --"):
        provenance.read(tmp_path)


def test_a_recording_section_goes_first_and_every_older_line_stays(tmp_path):
    """CHANGES.md of the earlier form is kept whole below the first section, its headings one level down; a
    second section goes above the first and removes no line."""
    old = "# What moved in fixtures/ since a90932c\n\nintro\n\n## New\n\n- `ch/a-inputs.npz`\n"
    (tmp_path / provenance.CHANGES).write_text(old)
    rebaseline.add_section(tmp_path, "## Recorded first\n\none file moved\n")
    first = (tmp_path / provenance.CHANGES).read_text()
    assert first.startswith(f"{rebaseline.TITLE}\n\n{rebaseline.ABOUT}\n\n## Recorded first\n\none file moved\n\n")
    assert first.endswith("## What moved in fixtures/ since a90932c\n\nintro\n\n### New\n\n- `ch/a-inputs.npz`\n")
    rebaseline.add_section(tmp_path, "## Recorded second\n\nanother file moved\n")
    second = (tmp_path / provenance.CHANGES).read_text()
    assert second.index("## Recorded second") < second.index("## Recorded first")
    assert second.count(rebaseline.TITLE) == 1 and set(first.splitlines()) <= set(second.splitlines())


def test_the_integrity_check_names_each_damage_with_its_fix(tmp_path):
    """A stray file, a file of no chapter, one with no dtype, one of an undeclared record, a file edited since its
    recording: each is one problem, naming the file and the fix; the sound files are none."""
    (tmp_path / "spec").mkdir()
    (tmp_path / "spec" / "test_01_a.py").write_text("")
    folder = tmp_path / "fixtures"
    sound = ["test_01_a/rec-float32.npz", "test_01_a/rec-inputs.npz"]
    make_fixtures(folder, sound)
    provenance.update(folder, sound, ENV)
    (folder / provenance.CHANGES).write_text("# changes\n")
    assert integrity.problems(tmp_path, {"test_01_a": {"rec": object()}}) == []
    make_fixtures(folder, ["test_01_a/rec-float32.obtained.npz", "test_01_a/deeper/x-float32.npz", "notes.txt"])
    make_fixtures(folder, ["test_01_a/gone-float32.npz", "test_01_a/rec-float8.npz", "test_99_b/rec-float32.npz"])
    make_fixtures(folder, ["test_01_a/rec-float32.npz"], content=b"one ULP off")
    found = integrity.problems(tmp_path, {"test_01_a": {"rec": object()}})
    assert found[0] == integrity.stray_problem(["fixtures/notes.txt", "fixtures/test_01_a/deeper/x-float32.npz",
                                                "fixtures/test_01_a/rec-float32.obtained.npz"])
    assert found[1:4] == [
        "orphan fixture fixtures/test_01_a/gone-float32.npz: spec/test_01_a.py declares no record 'gone' (it declares "
        "['rec']); delete the file (git rm) or restore the record",
        "orphan fixture fixtures/test_01_a/rec-float8.npz: no chapter spec/test_01_a.py or no dtype 'float8'; delete "
        "the file (git rm) or restore its chapter",
        "orphan fixture fixtures/test_99_b/rec-float32.npz: no chapter spec/test_99_b.py or no dtype 'float32'; delete "
        "the file (git rm) or restore its chapter"]
    assert [problem.split(" ")[0].rstrip(":") for problem in found[4:]] == [
        "fixtures/test_01_a/gone-float32.npz", "fixtures/test_01_a/rec-float32.npz",
        "fixtures/test_01_a/rec-float8.npz", "fixtures/test_99_b/rec-float32.npz"]
    assert "changed since torch 2.13.0 recorded it" in found[5]
    (folder / provenance.FILE).unlink()
    assert integrity.problems(tmp_path, {})[-1].startswith("fixtures/PROVENANCE.json is missing; restore it from git")
