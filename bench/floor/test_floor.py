"""The benchmark's floor (bench/ratio.py): one trivial torch test, run outside the project.

bench/ratio.py copies this file into an empty temporary directory (with an empty pytest.ini) and
runs it there: the interpreter, torch's import and pytest with the installed plugins, and nothing
of the spec. Whatever the suite adds to that is the suite's cost.
"""

import torch


def test_floor():
    assert torch.ones(1).item() == 1.0
