"""The benchmark's floor (bench/ratio.py): one trivial torch test, run in the suite's own environment.

Run from the repository root, it starts exactly what the suite cannot avoid: the interpreter,
pytest with the installed plugins, the repository's pytest configuration and conftest.py (which
imports torch and starts the suite's own plugins). Nothing of the spec is collected.
"""

import torch


def test_floor():
    assert torch.ones(1).item() == 1.0
