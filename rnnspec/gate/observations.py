"""Observed values: what a test saw without asserting it, kept for the upgrade gate's report.

An observed claim asserts the exception type and the facts its message names, never the wording
(``rnnspec/contracts.py``); the wording itself is handed to ``observe(what, value)``, kept on the
test item (:data:`OBSERVATIONS`), written into the report's row (``observations``), and shown by
``compare`` when it changed: drift to review, not a verdict.
"""

from __future__ import annotations

import pytest

#: Per test item: values it observed without asserting them (an exception's wording).
OBSERVATIONS = pytest.StashKey[dict]()


@pytest.fixture
def observe(request):
    """``observe(what, value)``: keep an observed value for the upgrade gate's report, without asserting it."""
    def keep(what: str, value: str) -> None:
        request.node.stash.setdefault(OBSERVATIONS, {})[what] = value
    return keep
