"""Provenance of the recorded fixtures: which torch, NumPy, platform and numerics flags recorded them.

``fixtures/PROVENANCE.json`` is small and meant to be read in review. It lists *baselines*, each
one environment that recorded fixtures, with the files it recorded, one line each, and the first
16 hex digits of each file's sha256 as the recording wrote it::

    {
      "format": "rnn-spec-provenance/1",
      "baselines": [
        {
          "torch": "2.13.0+cpu", "torch_git": "…", "numpy": "2.4.6", "python": "3.11.7",
          "system": "Linux", "machine": "x86_64", "cpu_capability": "AVX512",
          "numerics": {"cudnn.allow_tf32": false, "cuda.matmul.allow_tf32": false, …},
          "how": "recorded by pytest --regen-all", "recorded_on": "2026-11-28",
          "fixtures": {
            "test_01_forward_values": {
              "relu_rnn_one_step-bfloat16.npz": "3f2a9c1b0d4e5f60",
              …
            }
          }
        }
      ]
    }

A re-recording moves each file it wrote, and only those, to the baseline of its environment and
day, so ``git diff`` of this file shows which files a recording changed (their digests) and which
torch recorded them; every other file keeps its entry, its baseline and that baseline's date. A
fixture that no recording run wrote (copied in) or that changed since (edited by hand) is found by
:func:`problems`, which every conformance run checks (``rnnspec/gate/integrity.py``), each with
the fix.

The file is rewritten only by a recording run (``--regen-all`` or ``--force-regen``, on CPU), at
the end of the session, for the files that run wrote (``rnnspec/gate/recording.py`` calls
:func:`update`); a normal run only reads it, for the report header and the integrity check.
"""

from __future__ import annotations

import datetime
import hashlib
import json
import os
import platform as _platform
from pathlib import Path

FILE = "PROVENANCE.json"
#: What the recordings moved (rnnspec/gate/rebaseline.py writes it): with FILE, the only files of fixtures/
#: that are not fixtures.
CHANGES = "CHANGES.md"
FORMAT = "rnn-spec-provenance/1"
ABOUT = ("Which environment recorded the fixtures in this folder. Rewritten by recording runs "
         "(pytest --regen-all --device cpu), never by a normal run: see README, 'Upgrade gate'.")
#: The fields that tell two environments apart (a baseline is one value of these).
IDENTITY = ("torch", "torch_git", "numpy", "python", "system", "machine", "cpu_capability", "cpu", "numerics")


class ProvenanceError(ValueError):
    """PROVENANCE.json is unreadable or not in the expected format."""


def environment() -> dict:
    """This process's recording environment, with the numerics flags each test runs under."""
    import numpy
    import torch

    from rnnspec import machine, numerics

    with numerics.pinned_numerics():  # the flags in force inside a test (conftest pins them per test)
        flags = {name: plain(value) for name, value in numerics.numerics_flags().items()}
    return {
        "torch": torch.__version__,
        "torch_git": getattr(torch.version, "git_version", None),
        "numpy": numpy.__version__,
        "python": _platform.python_version(),
        "system": _platform.system(),
        "machine": _platform.machine(),
        "cpu_capability": machine.cpu_capability(),
        "cpu": {key: value for key, value in machine.describe().items() if key != "cpu_capability"},
        "numerics": flags,
    }


def describe_baseline(baseline: dict) -> str:
    """One line, e.g. ``torch 2.13.0+cpu (numpy 2.4.6, Linux x86_64, AVX512; recorded 2026-11-28: 24 files in
    6 chapters)``."""
    details = [f"numpy {baseline.get('numpy')}", f"{baseline.get('system')} {baseline.get('machine')}"]
    cpu = baseline.get("cpu") or {}
    if cpu.get("cpu_model"):
        details.append(f"{cpu['cpu_model']} ({cpu.get('cpu_vendor')})")
    if baseline.get("cpu_capability"):
        details.append(str(baseline["cpu_capability"]))
    if cpu.get("blas"):
        served = ", ".join(cpu.get("onednn_rnn_dtypes") or []) or "nothing"
        details.append(f"{cpu['blas']} {cpu.get('blas_version')}, oneDNN LSTM in {served}, {cpu.get('threads')} threads")
    how = "declared" if str(baseline.get("how", "")).startswith("declared") else "recorded"
    chapters = baseline.get("fixtures", {})
    files = sum(len(names) for names in chapters.values())
    return (f"torch {baseline.get('torch')} ({', '.join(details)}; {how} {baseline.get('recorded_on', '')}: "
            f"{files} files in {len(chapters)} chapters)")


def read(folder: Path) -> dict | None:
    """The provenance document of ``folder`` (fixtures/), None when there is none."""
    path = Path(folder) / FILE
    if not path.is_file():
        return None
    try:
        document = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ProvenanceError(f"{path} is unreadable ({error}); restore it from git (git checkout -- {path})") from None
    if not isinstance(document, dict) or document.get("format") != FORMAT:
        raise ProvenanceError(f"{path} is not a {FORMAT} document; restore it from git (git checkout -- {path})")
    return document


def owners(document: dict | None) -> dict[str, tuple[int, str]]:
    """``chapter/file.npz`` -> (index of the baseline that recorded it, the file's digest then)."""
    owned: dict[str, tuple[int, str]] = {}
    for index, baseline in enumerate((document or {}).get("baselines", [])):
        for chapter, files in baseline.get("fixtures", {}).items():
            owned.update({f"{chapter}/{name}": (index, digest) for name, digest in files.items()})
    return owned


def file_digest(path) -> str:
    """The first 16 hex digits of the file's sha256: enough to tell a changed file."""
    with open(path, "rb") as handle:
        return hashlib.sha256(handle.read()).hexdigest()[:16]


def update(folder: Path, recorded: list[str], env: dict | None = None, *, today: str | None = None,
           how: str = "recorded by pytest --regen-all") -> dict:
    """Name this environment's baseline of today as the recorder of the ``recorded`` files
    (``chapter/file.npz``, with their digests now) and rewrite PROVENANCE.json. Entries of files that
    no longer exist are dropped; every other entry stays as it is, in its baseline, with its date (a
    baseline is one environment on one day: recording again on a later day starts another). Returns
    the new document."""
    folder = Path(folder)
    env = environment() if env is None else env
    today = today or datetime.date.today().isoformat()
    document = read(folder) or {"format": FORMAT, "baselines": []}
    baselines = document.get("baselines", [])
    identity = {key: env.get(key) for key in IDENTITY}
    index = next((i for i, b in enumerate(baselines) if {key: b.get(key) for key in IDENTITY} == identity
                  and b.get("how") == how and b.get("recorded_on") == today), None)
    if index is None and recorded:
        baselines.append({**identity, "how": how, "recorded_on": today, "fixtures": {}})
        index = len(baselines) - 1
    moved = set(recorded)
    for baseline in baselines:  # drop what is re-recorded now, and what no longer exists
        baseline["fixtures"] = {chapter: {name: digest for name, digest in files.items()
                                          if f"{chapter}/{name}" not in moved and (folder / chapter / name).is_file()}
                                for chapter, files in baseline.get("fixtures", {}).items()}
    for name in recorded:
        chapter, _, file = name.partition("/")
        baselines[index]["fixtures"].setdefault(chapter, {})[file] = file_digest(folder / name)
    ordered = []  # each baseline's keys in reading order: who, how, when, then its files
    for baseline in baselines:
        fixtures = {chapter: dict(sorted(files.items())) for chapter, files in sorted(baseline["fixtures"].items())
                    if files}
        if fixtures:
            rest = {k: v for k, v in baseline.items() if k not in (*IDENTITY, "how", "recorded_on", "fixtures")}
            ordered.append({**{key: baseline.get(key) for key in IDENTITY}, "how": baseline.get("how"),
                            "recorded_on": baseline.get("recorded_on"), **rest, "fixtures": fixtures})
    document = {"format": FORMAT, "about": ABOUT, "baselines": ordered}
    (folder / FILE).write_text(dumps(document))
    return document


def dumps(document: dict) -> str:
    """JSON for review: indented, one line per fixture file, the CPU's facts and the numerics flags on one line each."""
    inline: dict[str, str] = {}

    def placeholder(value) -> str:
        key = f"@@{len(inline)}@@"
        inline[key] = json.dumps(value, separators=(", ", ": "))
        return key

    shown = {**document, "baselines": [{**b, "cpu": placeholder(b.get("cpu")), "numerics": placeholder(b.get("numerics"))}
                                       for b in document.get("baselines", [])]}
    text = json.dumps(shown, indent=2)
    for key, value in inline.items():
        text = text.replace(json.dumps(key), value)
    return text + "\n"


def problems(document: dict | None, folder: Path, names: list[str] | None = None) -> list[str]:
    """Every fixture file (``names``, ``chapter/file.npz``; default: every one in ``folder``) that no recording
    run wrote or that changed since its recording, with the fix. (A deleted file is no problem here: a chapter
    that needs it fails for its absence.)"""
    folder = Path(folder)
    found = []
    owned = owners(document)
    baselines = (document or {}).get("baselines", [])
    if names is None:
        names = [f"{path.parent.name}/{path.name}" for path in folder.glob("*/*.npz")]
    for name in sorted(names):
        path = os.path.join(folder, name)
        record = f"pytest --regen-all --device cpu spec/{name.partition('/')[0]}.py"
        if name not in owned:
            found.append(f"fixtures/{name}: {FILE} names no baseline for it, so no recording run wrote it; "
                         f"if it is an orphan delete it (git rm), else re-record it: {record}")
        elif file_digest(path) != owned[name][1]:
            found.append(f"fixtures/{name} changed since torch {baselines[owned[name][0]].get('torch')} recorded it "
                         f"(its sha256 is not the one in {FILE}), not by a recording run; restore it "
                         f"(git checkout -- fixtures/{name}) or, if the change is deliberate, re-record: {record}")
    return found


def plain(value):
    """A flag's value as JSON can hold it (torch.float64 -> "torch.float64")."""
    return value if isinstance(value, (bool, int, float, str, type(None))) else str(value)
