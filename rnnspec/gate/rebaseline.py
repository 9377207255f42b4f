"""What moved in ``fixtures/``: the working tree against a git revision, per file and tensor in ULPs.

A recording run (``pytest --regen-all --device cpu``) ends by adding one section to
``fixtures/CHANGES.md`` about the files it wrote, and only those: which are new, which changed and
by how much (each tensor in units in the last place of the file's dtype, with the absolute and
relative error; ``rnnspec/figures.py``), against the last commit (HEAD), with the baselines of both
(``fixtures/PROVENANCE.json``). Sections are newest first; older ones stay as they were, so a
re-recording of one file adds a few lines and removes none. A recording that moved nothing (every
file it wrote is byte-identical to HEAD's) leaves CHANGES.md alone.

``python -m rnnspec.gate rebaseline-summary [--base REV] [-o PATH]`` prints (or writes to PATH) the
same section for every file of the working tree against revision REV (default HEAD).
"""

from __future__ import annotations

import datetime
import io
import json
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

from rnnspec import fixture_files
from rnnspec.figures import FORMATS, error_figures
from rnnspec.gate import provenance
from rnnspec.gate.text import baselines_text, fmt

TITLE = "# What the recordings moved in fixtures/"
ABOUT = ("Each section below is what one recording run (`pytest --regen-all --device cpu`) moved, newest first: "
         "the files it wrote, against the git revision the working tree was at (`python -m rnnspec.gate "
         "rebaseline-summary` prints the same for every file). Figures: the new recording against the old one, in "
         "units in the last place of the file's dtype (`rnnspec/figures.py`). Review each with the .npz files "
         "before committing; older sections stay as they were.")


class RebaselineError(RuntimeError):
    """The summary cannot be made (no git, no such revision)."""


def _git(root: Path, *args: str, data: bytes | None = None) -> bytes:
    try:
        result = subprocess.run(["git", *args], cwd=root, input=data, capture_output=True, timeout=120)
    except (OSError, subprocess.TimeoutExpired) as error:
        raise RebaselineError(f"git is not usable here ({error})") from None
    if result.returncode != 0:
        raise RebaselineError(f"git {' '.join(args[:2])} failed: {result.stderr.decode(errors='replace').strip()}")
    return result.stdout


def fixtures_at(fixtures: Path, base: str) -> tuple[dict[str, bytes], str]:
    """The fixture files (``chapter/file`` -> bytes) of git revision ``base``, and its short hash."""
    root = Path(_git(fixtures, "rev-parse", "--show-toplevel").decode().strip())
    prefix = fixtures.resolve().relative_to(root.resolve()).as_posix()
    try:
        commit = _git(root, "rev-parse", "--short", "--verify", f"{base}^{{commit}}").decode().strip()
    except RebaselineError as error:
        raise RebaselineError(f"no git revision {base!r} in {root} ({error})") from None
    names = _git(root, "ls-tree", "-r", "--name-only", commit, "--", prefix).decode().splitlines()
    if not names:
        return {}, commit
    output = _git(root, "cat-file", "--batch", data="".join(f"{commit}:{n}\n" for n in names).encode())
    files, position = {}, 0
    for name in names:
        header_end = output.index(b"\n", position)
        size = int(output[position:header_end].split()[2])
        start = header_end + 1
        files[name[len(prefix) + 1:]] = output[start:start + size]
        position = start + size + 1
    return files, commit


@dataclass
class Moved:
    """What moved in some fixture files since a revision."""

    commit: str
    base: str
    old_baselines: dict | None
    new_baselines: dict | None
    unchanged: int = 0
    changed: list[tuple[str, list[str]]] = field(default_factory=list)
    added: list[str] = field(default_factory=list)
    deleted: list[str] = field(default_factory=list)
    unreadable: list[str] = field(default_factory=list)

    @property
    def anything(self) -> bool:
        return bool(self.changed or self.added or self.deleted or self.unreadable)


def moved(fixtures: Path, base: str = "HEAD", only: set[str] | None = None) -> Moved:
    """Which fixture files (``chapter/file.npz``; all, or those of ``only``) are new, deleted or changed since
    ``base``, each changed tensor in ULPs."""
    fixtures = Path(fixtures)
    old_files, commit = fixtures_at(fixtures, base)
    new_names = {f"{p.parent.name}/{p.name}" for p in fixtures.glob("*/*.npz")}
    old_names = {n for n in old_files if n.endswith(".npz") and n.count("/") == 1}
    if only is not None:
        new_names, old_names = new_names & only, old_names & only
    try:
        old_doc = json.loads(old_files[provenance.FILE]) if provenance.FILE in old_files else None
    except json.JSONDecodeError:
        old_doc = None
    found = Moved(commit, base, old_doc, provenance.read(fixtures), added=sorted(new_names - old_names),
                  deleted=sorted(old_names - new_names))
    for name in sorted(new_names & old_names):
        data = (fixtures / name).read_bytes()
        if data == old_files[name]:
            found.unchanged += 1
            continue
        try:
            lines = _what_moved(_arrays(old_files[name]), _arrays(data))
        except fixture_files.UNREADABLE as error:
            found.unreadable.append(f"`{name}`: {type(error).__name__}: {error}")
            continue
        found.changed.append((name, lines))
    return found


def _arrays(data: bytes) -> dict:
    import numpy as np

    with np.load(io.BytesIO(data), allow_pickle=False) as archive:
        return {key: archive[key] for key in archive.files}


def _what_moved(before: dict, after: dict) -> list[str]:
    order_before, order_after = list(before), list(after)
    dtype = str(after.pop(fixture_files.DTYPE_TAG, "(none)"))
    old_tag = str(before.pop(fixture_files.DTYPE_TAG, "(none)"))
    lines = []
    for key in sorted(set(before) | set(after)):
        if key not in before or key not in after:
            lines.append(f"`{key}` {'added' if key in after else 'removed'}")
            continue
        figures = error_figures(after[key], before[key], dtype if dtype in FORMATS else "float64")
        if after[key].dtype != before[key].dtype:
            lines.append(f"`{key}` stored as {after[key].dtype}, was {before[key].dtype}")
        if figures["differing"]:
            lines.append(f"`{key}` {fmt(figures['max_ulp'], True)} ULP in {figures['differing']} of {after[key].size} "
                         f"values (abs {fmt(figures['max_abs'])}, rel {fmt(figures['max_rel'])})")
    if old_tag != dtype:
        lines.insert(0, f"dtype tag {old_tag} → {dtype}")
    return lines or ["same values; the arrays are stored in another order" if order_before != order_after
                     else "same values; the bytes differ (compression)"]


def section(found: Moved, heading: str) -> str:
    """One section of CHANGES.md: ``heading``, the baselines of both sides, the counts, then each file."""
    out = [f"## {heading}", "", f"| baseline | at {found.commit} | now |", "|---|---|---|",
           f"| fixtures recorded with | {baselines_text(found.old_baselines, 'none recorded')} "
           f"| {baselines_text(found.new_baselines, 'none recorded')} |", "",
           f"{found.unchanged} unchanged, {len(found.changed)} changed, {len(found.added)} new, "
           f"{len(found.deleted)} deleted fixture files.", ""]
    if found.changed:
        out += ["### Changed", "", "| fixture | what moved |", "|---|---|"]
        out += [f"| `{name}` | {'<br>'.join(lines)} |" for name, lines in found.changed] + [""]
    for title, names in (("New", found.added), ("Deleted", found.deleted)):
        if names:
            out += [f"### {title}", ""] + [f"- `{name}`" for name in names] + [""]
    if found.unreadable:
        out += ["### Unreadable", ""] + [f"- {line}" for line in found.unreadable] + [""]
    return "\n".join(out)


def summary_heading(found: Moved) -> str:
    return f"What moved in fixtures/ since {found.commit} ({found.base})"


def recording_heading(found: Moved, names: list[str], torch_version: str, today: str | None = None) -> str:
    today = today or datetime.date.today().isoformat()
    return (f"Recorded on {today} with torch {torch_version}: {len(names)} file{'s' if len(names) != 1 else ''}, "
            f"against {found.commit} ({found.base})")


def add_section(fixtures: Path, text: str) -> Path:
    """Put ``text`` (one section) first in fixtures/CHANGES.md, keeping every section already there. A
    CHANGES.md of the earlier one-summary form is kept whole below, its headings one level down."""
    path = Path(fixtures) / provenance.CHANGES
    old = path.read_text() if path.is_file() else ""
    if old.startswith(TITLE):
        _, _, older = old.partition("\n## ")
        older = f"## {older}" if older else ""
    else:
        older = "\n".join(f"#{line}" if line.startswith("#") else line for line in old.splitlines())
    path.write_text(f"{TITLE}\n\n{ABOUT}\n\n{text.rstrip()}\n" + (f"\n{older.rstrip()}\n" if older.strip() else ""))
    return path
