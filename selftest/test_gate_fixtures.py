"""The fixtures folder in real sessions, on a copy of one chapter (``fixtures/`` of the repository is never written).

* Damage the chapter's tests see: a corrupted, a deleted, a mistagged and an orphan fixture each
  fail with a message naming the file and the fix, and nothing is rewritten.
* Damage only the integrity check sees (``rnnspec/gate/integrity.py``): a stray file, a one-ULP
  hand edit (well within the tolerance: every chapter test passes), a fixture of no chapter and one
  of an undeclared record make ``python -m pytest`` fail, with one failed test that names each file
  and its fix; a sound folder adds no test; ``pytest fixtures/PROVENANCE.json`` runs the check alone.
* A run with one broken behaviour writes a Markdown report that opens with its failures.
* Recording: a recording refuses values that disagree with the truth (nothing written); one that
  succeeds updates PROVENANCE.json and adds what moved to CHANGES.md; re-recording one file later
  changes its provenance entry only and adds a section, keeping every older line of CHANGES.md.
"""

from __future__ import annotations

import copy
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from repository_copy import copy_into
from rnnspec.fixture_files import record_command
from rnnspec.gate import __main__ as commands
from rnnspec.gate import provenance, rebaseline
from rnnspec.records import INPUTS

ROOT = Path(__file__).resolve().parents[1]
FIXTURES = ROOT / "fixtures"

CHAPTER = "test_01_forward_values"
COPIED = ["conftest.py", "pyproject.toml", "expectations", "spec/__init__.py", f"spec/{CHAPTER}.py",
          f"fixtures/{CHAPTER}", "selftest/test_fixtures_against_truth.py"]
# Several sessions in one process (torch is imported once); after each, its exit status and a digest
# of fixtures/, so that what a session wrote is known. A step {"exec": CODE} runs Python code between
# sessions (damage a file, commit to git).
DRIVER = """
import hashlib, json, sys, pathlib, shutil, pytest
for step, arguments in enumerate(json.loads(sys.argv[1])):
    code = exec(arguments["exec"], {}) or 0 if isinstance(arguments, dict) else pytest.main(arguments)
    digest = hashlib.sha256()
    for path in sorted(pathlib.Path("fixtures").rglob("*")):
        if path.is_file():
            digest.update(str(path).encode() + path.read_bytes())
    for name in ("CHANGES.md", "PROVENANCE.json"):  # as this step left them
        if pathlib.Path("fixtures", name).is_file():
            shutil.copy(pathlib.Path("fixtures", name), f"after-{step}-{name}")
    print(f"\\n@@session-exit {int(code)} {digest.hexdigest()}@@", flush=True)
"""
# Loaded with -p in the refused recording: every truth moves by 10 % (beyond every dtype's tolerance),
# so every measurement disagrees.
TRUTH_MOVED = """
from rnnspec import comparison

_in_dtype = comparison.Truth.in_dtype


def pytest_configure(config):
    comparison.Truth.in_dtype = lambda self, dtype: {k: v * 1.1 for k, v in _in_dtype(self, dtype).items()}


def pytest_unconfigure(config):
    comparison.Truth.in_dtype = _in_dtype
"""


# Moves the largest value of a float32 or float64 fixture's output one representable value of its dtype up (within
# every tolerance).
NUDGE = """
import numpy as np
with np.load("{path}", allow_pickle=False) as archive:
    arrays = {{key: archive[key] for key in archive.files}}
kind = np.dtype(str(arrays["dtype"])).type
flat = arrays["output"].reshape(-1)
index = int(np.argmax(np.abs(flat)))
flat[index] = float(np.nextafter(kind(flat[index]), kind(np.inf)))
np.savez_compressed("{path}", **arrays)
"""
COMMIT = """
import subprocess
for command in (["add", "-A"], ["commit", "-qm", "next"]):
    subprocess.run({git} + command, check=True, capture_output=True)
"""


def make_copy(target: Path) -> Path:
    """The files one chapter needs, with its fixtures and their provenance, in ``target``."""
    copy_into(target, COPIED)
    document = copy.deepcopy(provenance.read(FIXTURES))
    for baseline in document["baselines"]:
        baseline["fixtures"] = {k: v for k, v in baseline["fixtures"].items() if k == CHAPTER}
    document["baselines"] = [b for b in document["baselines"] if b["fixtures"]]
    (target / "fixtures" / provenance.FILE).write_text(provenance.dumps(document))
    return target


class Session:
    def __init__(self, code: int, output: str, digest: str, report_path: Path | None, root: Path, step: int):
        self.code, self.output, self.digest = code, output, digest
        self.report = json.loads(report_path.read_text()) if report_path and report_path.is_file() else None
        self.markdown = report_path.with_suffix(".md").read_text() if self.report else None
        left = {name: root / f"after-{step}-{name}" for name in (provenance.CHANGES, provenance.FILE)}
        self.changes = left[provenance.CHANGES].read_text() if left[provenance.CHANGES].is_file() else None
        self.provenance = json.loads(left[provenance.FILE].read_text()) if left[provenance.FILE].is_file() else None

    def messages(self, file: str) -> list[str]:
        """The messages of the failed tests whose message names ``file``."""
        return [r["message"] for r in self.report["results"] if r["outcome"] in ("failed", "error")
                and file in (r["message"] or "")]


def run_sessions(root: Path, *sessions) -> tuple[str, list[Session]]:
    """Run pytest ``sessions`` one after the other in one new process in ``root``, each with --spec-report (a
    session {"exec": CODE} runs that Python code instead)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTEST_", "COV_CORE"))}
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT)] + ([env["PYTHONPATH"]] if env.get("PYTHONPATH") else []))
    env["COLUMNS"] = "1000"
    common = ["-p", "no:randomly", "-p", "no:cacheprovider", "-p", "no:xdist", "-q", "--tb=no", "-rfE",
              "--device", "cpu"]
    reports = [root / f"report-{i}.json" for i in range(len(sessions))]
    arguments = [session if isinstance(session, dict) else
                 common + [f"--basetemp={root / f'tmp-{i}'}", "--spec-report", str(reports[i])] + list(session)
                 for i, session in enumerate(sessions)]
    digest = hashlib.sha256()
    for path in sorted((root / "fixtures").rglob("*")):  # the driver's digest, before any session
        if path.is_file():
            digest.update(str(path.relative_to(root)).encode() + path.read_bytes())
    done = subprocess.run([sys.executable, "-c", DRIVER, json.dumps(arguments)], cwd=root, env=env,
                          capture_output=True, text=True, timeout=600)
    parts = re.split(r"^@@session-exit (-?\d+) (\w+)@@$", done.stdout, flags=re.MULTILINE)
    found = [Session(int(code), text, hexdigest, path, root, step) for step, (text, code, hexdigest, path)
             in enumerate(zip(parts[0::3], parts[1::3], parts[2::3], reports))]
    assert len(found) == len(sessions), f"{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    return digest.hexdigest(), found


@pytest.fixture(scope="module")
def damaged(tmp_path_factory):
    """A copy where one fixture is truncated, one deleted, one mistagged (a float16 file holding the float64
    record) and one an orphan (a record no truth declares); the chapter and the fixture selftest run once."""
    root = make_copy(tmp_path_factory.mktemp("damaged"))
    folder = root / "fixtures" / CHAPTER
    data = (folder / "relu_rnn_one_step-float32.npz").read_bytes()
    (folder / "relu_rnn_one_step-float32.npz").write_bytes(data[: len(data) // 2])
    (folder / "relu_rnn_two_steps-float64.npz").unlink()
    shutil.copy2(folder / "relu_rnn_relu_clamps-float64.npz", folder / "relu_rnn_relu_clamps-float16.npz")
    shutil.copy2(folder / "relu_rnn_one_step-float64.npz", folder / "relu_rnn_gone-float32.npz")
    before, (session,) = run_sessions(root, [f"spec/{CHAPTER}.py", "selftest/test_fixtures_against_truth.py"])
    session.before = before
    return session


def test_a_truncated_fixture_fails_naming_the_file_and_the_fix(damaged):
    """A truncated .npz: 'fixture … is unreadable …; Restore it from git (git checkout -- …) or re-record it'."""
    path = f"fixtures/{CHAPTER}/relu_rnn_one_step-float32.npz"
    messages = [m for m in damaged.messages(path) if "is unreadable" in m]
    assert len(messages) == 2, damaged.output  # the chapter's test and the fixture selftest
    assert all(f"git checkout -- {path}" in m and "re-record it on CPU with --regen-all" in m
               for m in messages), messages
    assert any(f"{path} changed since torch" in m for m in damaged.messages(path)), damaged.output  # provenance
    row = next(r for r in damaged.report["results"]
               if r["nodeid"].endswith("test_relu_rnn_forward_matches_the_recurrence[cpu-float32-one_step]"))
    assert row["comparisons"][0]["fixture_readable"] is False and row["comparisons"][0]["tensors"]["output"][
        "against_fixture"] is None


def test_a_deleted_fixture_fails_with_the_command_that_records_it(damaged):
    """A missing .npz: the chapter's test says 'is missing' with the --regen-all command; so does the selftest."""
    path = f"fixtures/{CHAPTER}/relu_rnn_two_steps-float64.npz"
    nodeid = f"spec/{CHAPTER}.py::test_relu_rnn_forward_matches_the_recurrence[cpu-float64-two_steps]"
    messages = damaged.messages(path)
    assert any("is missing" in m and f"Record it on CPU with: {record_command(nodeid)}" in m
               for m in messages), messages
    assert any("declares records without their files" in m and f"pytest --regen-all --device cpu spec/{CHAPTER}.py" in m
               for m in messages), messages


def test_a_fixture_with_the_wrong_dtype_tag_fails_naming_both_dtypes_and_the_fix(damaged):
    """A float16 file holding a float64 record: 'is tagged dtype 'float64' but its name says float16; re-record it'."""
    messages = [m for m in damaged.messages(f"fixtures/{CHAPTER}/relu_rnn_relu_clamps-float16.npz")
                if "is tagged dtype" in m]
    assert len(messages) == 2 and all(
        "is tagged dtype 'float64' but its name says float16; re-record it: pytest --regen-all --device cpu" in m
        for m in messages), messages


def test_an_orphan_fixture_fails_naming_the_file_and_the_fix(damaged):
    """A file whose record no chapter declares: 'orphan fixture …; delete the file (git rm) or restore the record'."""
    messages = damaged.messages(f"fixtures/{CHAPTER}/relu_rnn_gone-float32.npz")
    assert any("orphan fixture" in m and "delete the file (git rm) or restore the record" in m
               for m in messages), messages
    assert any(f"fixtures/{CHAPTER}/relu_rnn_gone-float32.npz: PROVENANCE.json names no baseline for it" in m
               and "if it is an orphan delete it (git rm)" in m for m in messages), messages


def test_damaged_fixtures_are_reported_but_never_rewritten(damaged):
    """The run fails (exit 1), and leaves fixtures/ exactly as it found it, damage included."""
    assert damaged.code == 1 and damaged.digest == damaged.before


@pytest.fixture(scope="module")
def recording(tmp_path_factory):
    """In a git copy whose committed float32 'two_steps' output is 1 ULP off, three sessions: a recording
    with every truth moved by 10 % (refused), a real recording, then a normal run."""
    root = make_copy(tmp_path_factory.mktemp("recording"))
    exec(NUDGE.format(path=root / "fixtures" / CHAPTER / "relu_rnn_two_steps-float32.npz"), {})
    (root / "truth_moved.py").write_text(TRUTH_MOVED)
    git = ["git", "-c", "user.email=spec@example.invalid", "-c", "user.name=spec", "-c", "commit.gpgsign=false"]
    for command in (["init", "-q"], ["add", "-A"], ["commit", "-qm", "baseline"]):
        subprocess.run(git + command, cwd=root, check=True, capture_output=True)
    second = NUDGE.format(path=f"fixtures/{CHAPTER}/relu_rnn_one_step-float32.npz") + COMMIT.format(git=git)
    one = f"spec/{CHAPTER}.py::test_relu_rnn_forward_matches_the_recurrence[cpu-float32-one_step]"
    before, sessions = run_sessions(root, ["-p", "truth_moved", "--regen-all", f"spec/{CHAPTER}.py"],
                                    ["--regen-all", f"spec/{CHAPTER}.py"], [f"spec/{CHAPTER}.py"],
                                    {"exec": second}, ["--regen-all", one])
    return {"root": root, "before": before, "refused": sessions[0], "recorded": sessions[1], "normal": sessions[2],
            "committed": sessions[3], "again": sessions[4]}


def test_recording_refuses_values_that_disagree_with_the_truth(recording):
    """--regen-all with every truth moved 10 %: each spec_check fails 'measured … disagrees'; nothing is written."""
    refused = recording["refused"]
    assert refused.code == 1
    checks = [r for r in refused.report["results"] if r["comparisons"]]
    accepted = [(r["nodeid"], r["outcome"], r["message"]) for r in checks if not (
        r["outcome"] == "failed" and "measured" in r["message"] and "disagrees with the truth" in r["message"])]
    assert len(checks) == 12 and not accepted, accepted
    assert refused.digest == recording["before"], "a refused recording wrote into fixtures/"
    assert "rnn-spec: recorded" not in refused.output


def test_a_recording_run_updates_provenance_and_summarises_what_moved(recording):
    """--regen-all names this torch in PROVENANCE.json and writes CHANGES.md: the nudged output moved 1 ULP."""
    import torch

    session, root = recording["recorded"], recording["root"]
    assert session.code == 0, session.output
    assert "rnn-spec: recorded 12 fixture file(s); provenance updated" in session.output
    document = session.provenance
    recorded_by = [b for b in document["baselines"] if b["how"] == "recorded by pytest --regen-all"]
    assert len(recorded_by) == 1 and recorded_by[0]["torch"] == torch.__version__
    files = sorted(p.name for p in (root / "fixtures" / CHAPTER).glob("*.npz"))
    outputs = [name for name in files if not name.endswith(f"-{INPUTS}.npz")]
    assert {c: sorted(names) for c, names in recorded_by[0]["fixtures"].items()} == {CHAPTER: outputs}
    inputs = [b for b in document["baselines"] if b is not recorded_by[0]]  # kept: a recording writes no inputs file
    assert [sorted(b["fixtures"][CHAPTER]) for b in inputs] == [sorted(set(files) - set(outputs))]
    changes = session.changes
    assert changes.startswith(f"{rebaseline.TITLE}\n\n{rebaseline.ABOUT}\n\n## Recorded on "), changes
    assert "11 unchanged, 1 changed, 0 new, 0 deleted fixture files." in changes, changes
    moved = rf"\| `{CHAPTER}/relu_rnn_two_steps-float32.npz` \| `output` 1 ULP in 1 of \d+ values"
    assert re.search(moved, changes), changes


def test_after_recording_a_normal_run_passes_and_writes_nothing(recording):
    """The normal run after the recording passes, and changes no file under fixtures/."""
    normal = recording["normal"]
    assert normal.code == 0, normal.output
    assert normal.digest == recording["recorded"].digest


def test_re_recording_one_file_changes_its_entry_only_and_adds_a_section(recording):
    """After a commit, re-recording one test's fixture: PROVENANCE.json changes in that file's entry only (every
    other entry, baseline and date as it was), and CHANGES.md gains a section about that file above every older
    line."""
    committed, again, root = recording["committed"], recording["again"], recording["root"]
    name = "relu_rnn_one_step-float32.npz"
    assert again.code == 0, again.output
    assert "rnn-spec: recorded 1 fixture file(s); provenance updated" in again.output

    def entries(document):
        return {(b["how"], b["recorded_on"], chapter, file): digest for b in document["baselines"]
                for chapter, files in b["fixtures"].items() for file, digest in files.items()}
    before, after = entries(committed.provenance), entries(again.provenance)
    changed = {key for key in before.keys() | after.keys() if before.get(key) != after.get(key)}
    assert {key[3] for key in changed} <= {name}, changed  # re-recorded as the committed entry says: unchanged
    assert [(b["how"], b["recorded_on"]) for b in again.provenance["baselines"]] == [
        (b["how"], b["recorded_on"]) for b in committed.provenance["baselines"]]
    assert provenance.problems(again.provenance, root / "fixtures") == []
    older = committed.changes.partition(f"{rebaseline.ABOUT}\n\n")[2]
    new, _, kept = again.changes.partition(f"{rebaseline.ABOUT}\n\n")[2].partition("\n## Recorded on ")
    assert older and f"## Recorded on {kept}" == older, again.changes
    assert "0 unchanged, 1 changed, 0 new, 0 deleted fixture files." in new, new
    assert re.search(rf"\| `{CHAPTER}/{name}` \| `output` 1 ULP in 1 of \d+ values", new), new


def test_rebaseline_summary_command_compares_with_a_git_revision(recording, capsys):
    """`python -m rnnspec.gate rebaseline-summary` prints the summary; an unknown revision is exit 2."""
    fixtures = str(recording["root"] / "fixtures")
    assert commands.main(["rebaseline-summary", "--fixtures", fixtures]) == 0
    assert "14 unchanged, 1 changed" in capsys.readouterr().out
    assert commands.main(["rebaseline-summary", "--fixtures", fixtures, "--base", "nosuchrev"]) == 2
    assert "nosuchrev" in capsys.readouterr().err


# Damage only the integrity check sees: every chapter test still passes.
DAMAGE = f"""
import os, shutil
folder = "fixtures/{CHAPTER}"
shutil.copy(folder + "/relu_rnn_one_step-float32.npz", folder + "/relu_rnn_one_step-float32.obtained.npz")
shutil.copy(folder + "/relu_rnn_one_step-float64.npz", folder + "/relu_rnn_gone-float64.npz")
os.makedirs("fixtures/test_99_removed")
shutil.copy(folder + "/relu_rnn_one_step-float64.npz", "fixtures/test_99_removed/relu_rnn_one_step-float64.npz")
""" + NUDGE.format(path=f"fixtures/{CHAPTER}/relu_rnn_two_steps-float64.npz")
CHECK = "fixtures/PROVENANCE.json::every_fixture_file_is_as_its_recording_left_it"


@pytest.fixture(scope="module")
def integrity_sessions(tmp_path_factory):
    """In a copy: `python -m pytest` on the sound folder; a run with a broken behaviour (bias_hh ignored, float64);
    the damage above; `python -m pytest` again; the check alone, by name."""
    root = make_copy(tmp_path_factory.mktemp("integrity"))
    # Its own process: measurements are memoised per process, and the break patches torch, not the implementation.
    _, (broken,) = run_sessions(root, ["-p", "rnnspec.breaks", "--break", "bias_hh_ignored", "--dtype", "float64"])
    _, sessions = run_sessions(root, [], {"exec": DAMAGE}, [], ["fixtures/PROVENANCE.json"])
    return {"broken": broken, **dict(zip(["sound", "damage", "damaged", "alone"], sessions))}


def test_a_sound_fixtures_folder_adds_no_test(integrity_sessions):
    """`python -m pytest` on the sound copy passes with the chapter's tests alone: the check adds no test."""
    sound = integrity_sessions["sound"]
    assert sound.code == 0, sound.output
    assert len(sound.report["results"]) == 36 and not any(r["nodeid"].startswith("fixtures/")
                                                          for r in sound.report["results"])


def test_a_stray_an_orphan_and_a_one_ulp_edit_fail_python_m_pytest_naming_each_file_and_fix(integrity_sessions):
    """With a leftover .obtained.npz, a fixture of an undeclared record, one of a removed chapter and a one-ULP
    hand edit (every chapter test still passes), `python -m pytest` fails: one more test, the fixtures check,
    names each file and its fix."""
    damaged = integrity_sessions["damaged"]
    assert damaged.code == 1, damaged.output
    failed = [r for r in damaged.report["results"] if r["outcome"] != "passed"]
    assert [r["nodeid"] for r in failed] == [CHECK] and len(damaged.report["results"]) == 37, failed
    message = failed[0]["message"]
    for expected in (
            f"stray files under fixtures/, not fixtures of any chapter: ['fixtures/{CHAPTER}/relu_rnn_one_step-float32"
            f".obtained.npz']; delete them (git rm, or rm for untracked leftovers such as *.obtained.npz)",
            f"orphan fixture fixtures/{CHAPTER}/relu_rnn_gone-float64.npz: spec/{CHAPTER}.py declares no record "
            f"'relu_rnn_gone'",
            "orphan fixture fixtures/test_99_removed/relu_rnn_one_step-float64.npz: no chapter "
            "spec/test_99_removed.py or no dtype 'float64'; delete the file (git rm) or restore its chapter",
            f"fixtures/{CHAPTER}/relu_rnn_two_steps-float64.npz changed since torch",
            f"restore it (git checkout -- fixtures/{CHAPTER}/relu_rnn_two_steps-float64.npz) or, if the change is "
            f"deliberate, re-record: pytest --regen-all --device cpu spec/{CHAPTER}.py"):
        assert expected in message, message
    assert re.search(r"^fixtures +0/1 F1$", damaged.output, re.MULTILINE), damaged.output  # its matrix row


def test_the_check_runs_alone_when_named(integrity_sessions):
    """`pytest fixtures/PROVENANCE.json` runs the check alone, whatever it finds."""
    alone = integrity_sessions["alone"]
    assert alone.code == 1 and [(r["nodeid"], r["outcome"]) for r in alone.report["results"]] == [(CHECK, "failed")]


def test_a_report_with_a_failure_opens_with_it_and_the_command_that_reproduces_it(integrity_sessions):
    """bias_hh ignored, float64: the Markdown's first section is the failures, the first with its whole message,
    the tensor that disagreed with its figures and the pytest command for it alone, then the matrix."""
    broken = integrity_sessions["broken"]
    assert broken.code == 1
    sections = [line for line in broken.markdown.splitlines() if line.startswith("## ")]
    assert sections[:2] == ["## Failures: 3", "## Conformance matrix"], sections
    first = broken.markdown.split("### 1. ", 1)[1].split("### 2. ", 1)[0]
    nodeid = f"spec/{CHAPTER}.py::test_relu_rnn_forward_matches_the_recurrence[cpu-float64-one_step]"
    assert first.startswith(f"`{nodeid}`"), first
    assert "measured grad_bias_hh_l0 disagrees with the truth" in first and "\n  law: h_t = relu(" in first
    assert re.search(r"\| relu_rnn_one_step \| grad_bias_hh_l0 \| measured vs reference \| \d+ \| 1 \| 1 \| 1 of 1 \|",
                     first), first
    assert (f"python -m pytest '{nodeid}' --device cpu --dtype float64 -p rnnspec.breaks --break bias_hh_ignored"
            in first), first
