"""Fixture files: reading what ``fixtures/`` holds, and failing loudly, with the fix, when it is damaged.

Layout: ``fixtures/<chapter>/<record>-<dtype>.npz``, one array per quantity plus a ``dtype`` tag
(pytest-regressions alone would accept a float64 result against a float32 record), and
``<record>-inputs.npz``, the arrays the outputs were computed from (``rnnspec/records.py``). A
fixture never depends on the device: it is recorded on CPU and checked on every device. Files are
read with NumPy's reader and ``allow_pickle=False``: a fixture is never unpickled. A truncated,
corrupted or mistagged file fails with a message that names it and how to restore it.
"""

from __future__ import annotations

import os
import zipfile
import zlib
from pathlib import Path

import numpy as np
import pytest

DTYPE_TAG = "dtype"
#: What reading a damaged .npz raises (truncated, flipped bytes, a pickled array): each becomes a
#: failure that names the file and the fix, never a bare traceback.
UNREADABLE = (OSError, ValueError, EOFError, zipfile.BadZipFile, zlib.error, NotImplementedError)


def record_command(nodeid: str) -> str:
    return f"pytest --regen-all --device cpu '{nodeid}'"


def read_fixture(path: Path) -> dict[str, np.ndarray]:
    """The arrays of one fixture file (read-only), never unpickled; raises one of :data:`UNREADABLE` if damaged."""
    with np.load(path, allow_pickle=False) as archive:
        arrays = {key: archive[key] for key in archive.files}
    for array in arrays.values():
        array.flags.writeable = False
    return arrays


def load_fixture(path: Path) -> dict[str, np.ndarray]:
    """The arrays of one fixture file, or a failure that says what is wrong and how to fix it."""
    __tracebackhide__ = True
    try:
        return read_fixture(path)
    except UNREADABLE as error:
        path = Path(os.path.relpath(path))
        pytest.fail(
            f"fixture {path} is unreadable ({type(error).__name__}: {error}).\n"
            f"  Restore it from git (git checkout -- {path}) or re-record it on CPU with --regen-all "
            f"and review the change.",
            pytrace=False,
        )


def load_record(path: Path, dtype: str, *, fix: str) -> dict[str, np.ndarray]:
    """The arrays of a fixture file without its dtype tag, failing when the tag is not ``dtype``."""
    __tracebackhide__ = True
    recorded = load_fixture(path)
    tag = str(recorded.pop(DTYPE_TAG, "(none)"))
    if tag != dtype:
        pytest.fail(f"fixture {os.path.relpath(path)} is tagged dtype {tag!r} but its name says {dtype}; re-record it: {fix}",
                    pytrace=False)
    return recorded


def file_state(path: Path):
    """What tells whether a file was (re)written: its modification time and size, or None if absent."""
    try:
        stat = path.stat()
    except OSError:
        return None
    return stat.st_mtime_ns, stat.st_size


class InputsError(LookupError):
    """A record's inputs file is unreadable or does not hold the record's arrays."""


def flatten(arrays: dict) -> dict[str, np.ndarray]:
    """The arrays of a configuration under the names of its inputs file (``parameters/weight_ih_l0``, ``x``)."""
    flat = {}
    for key, value in arrays.items():
        if isinstance(value, dict):
            flat.update({f"{key}/{name}": np.asarray(item) for name, item in value.items()})
        else:
            flat[key] = np.asarray(value)
    return flat


def read_inputs(path: Path) -> dict:
    """A record's arrays from its inputs file (read-only, never unpickled), nested as ``inputs`` makes them."""
    try:
        with np.load(path, allow_pickle=False) as stored:
            flat = {key: stored[key] for key in stored.files}
    except Exception as error:  # noqa: BLE001 (any damage: truncated, flipped bytes, a pickle)
        shown = os.path.relpath(path)
        raise InputsError(f"inputs file {shown} is unreadable ({type(error).__name__}: {error}); restore it "
                          f"(git checkout -- {shown})") from None
    arrays: dict = {}
    for key, value in flat.items():
        group, slash, name = key.partition("/")
        if slash:
            arrays.setdefault(group, {})[name] = value
        else:
            arrays[key] = value
    return read_only(arrays)


def layout(arrays: dict) -> dict:
    """Each array's name, shape and kind of number: what an inputs file must agree on with its record."""
    return {key: layout(value) if isinstance(value, dict) else (value.shape, value.dtype.kind)
            for key, value in sorted(arrays.items())}


def read_only(arrays: dict) -> dict:
    result = {}
    for key, value in arrays.items():
        if isinstance(value, dict):
            result[key] = read_only(value)
        else:
            value = np.array(value)
            value.flags.writeable = False
            result[key] = value
    return result
