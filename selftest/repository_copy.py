"""A copy of some of this repository's files in a temporary directory.

Selftests that run whole pytest sessions which may write fixtures (recording runs, broken torch)
run them on such a copy, never on the repository itself.
"""

import shutil
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def copy_into(target: Path, names) -> Path:
    """Copy each path of ``names`` (relative to the repository root) into ``target``; caches are left out."""
    for name in names:
        source, destination = ROOT / name, target / name
        destination.parent.mkdir(parents=True, exist_ok=True)
        if source.is_dir():
            shutil.copytree(source, destination, ignore=shutil.ignore_patterns("__pycache__", "*.obtained*"))
        else:
            shutil.copy2(source, destination)
    return target
