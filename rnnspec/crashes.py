"""Calls that may kill the process are tried in a child process first.

Empty tensors are where kernels divide by sizes or index past ends, and some targets' kernels then
crash the process instead of raising: on torch 2.13 a compiled float32 nn.LSTM on an empty batch
dies with SIGFPE (oneDNN's mkldnn_rnn_layer), and ONNX Runtime 1.31 aborts (SIGABRT) on an LSTM or
GRU node given an empty batch. A crash would end the whole pytest session, so a target runs such a
call in a child process first (:func:`refuse_if_it_crashes`): if the child dies of a signal, the
call fails here as an ordinary RuntimeError, which ``expectations/target-NAME.toml`` can state; if
it survives (returns or raises), the call runs here. Each verdict is kept per key, so a call of
one configuration is tried once per session. If a release fixes the crash, the call runs here and
the test passes: a strict xfail then fails, and the entry must go.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
from collections.abc import Callable, Hashable
from pathlib import Path

#: Verdicts by key: the name of the signal that killed the child, or None where it survived.
_VERDICTS: dict[Hashable, str | None] = {}


def verdict(key: Hashable, script: str, write_payload: Callable[[Path], None]) -> str | None:
    """Run ``script`` (``python -c script FOLDER``) in a child once per ``key``, after ``write_payload(FOLDER)``
    put there what it reads; the name of the signal that killed the child, or None if it survived.

    The script should catch the exceptions of the call it makes: an exception is the parent's to
    raise and the test's to judge; only a crash is the child's to report.
    """
    if key not in _VERDICTS:
        with tempfile.TemporaryDirectory() as folder:
            write_payload(Path(folder))
            child = subprocess.run([sys.executable, "-c", script, folder], capture_output=True, text=True,
                                   timeout=600, env={**os.environ, "PYTHONFAULTHANDLER": ""})
        _VERDICTS[key] = signal.Signals(-child.returncode).name if child.returncode < 0 else None
    return _VERDICTS[key]


def refuse_if_it_crashes(key: Hashable, script: str, write_payload: Callable[[Path], None], what: str) -> None:
    """Raise RuntimeError ``"<what> killed a child process with SIG...; not run in this process"`` if the call
    :func:`verdict` tries kills its child; return if it survives."""
    killed_by = verdict(key, script, write_payload)
    if killed_by is not None:
        raise RuntimeError(f"{what} killed a child process with {killed_by}; not run in this process")
