"""Error contracts: an exception's type and the facts its message names, never its wording.

What PyTorch raises for a wrong call is observed behaviour, not documented: the wording of a
message changes between releases (torch 2.6 said "input must have the type torch.float32, got
type torch.float16" where 2.13 says "RNN input dtype (torch.float16) does not match weight dtype
(torch.float32)"), while the exception's type and what it names (the two dtypes, the expected and
the given size, the two devices) stay. So a claim states the type, exactly, and the facts: each a
regular expression that must occur in the message as a whole word or number (not inside a longer
one: the fact ``3`` is not found in ``13``). The message itself is kept for the upgrade gate's
report (the ``observe`` fixture, ``rnnspec/gate/observations.py``), where a changed wording shows as drift.
"""

from __future__ import annotations

import re
import warnings
from collections.abc import Callable, Sequence


def missing_facts(message: str, facts: Sequence[str]) -> list[str]:
    """The facts (regular expressions) that ``message`` does not name as whole words, case-insensitively."""
    return [fact for fact in facts
            if not re.search(rf"(?<![A-Za-z0-9_])(?:{fact})(?![A-Za-z0-9_])", message, re.IGNORECASE)]


def assert_raises(action: Callable[[], object], raises: type[BaseException], facts: Sequence[str], *, config: str,
                  observe: Callable[[str, str], None] | None = None) -> None:
    """``action()`` raises exactly ``raises`` with a message naming every fact; the failure message says what
    happened instead. The raised message goes to ``observe("message", ...)``."""
    __tracebackhide__ = True
    expected = f"{raises.__name__} naming {', '.join(f'/{fact}/' for fact in facts)}"
    try:
        action()
    except Exception as error:  # noqa: BLE001 (any exception is judged below)
        message = str(error)
        if observe is not None:
            observe("message", f"{type(error).__name__}: {message}")
        if type(error) is not raises:
            kind = "a subclass of" if isinstance(error, raises) else "another type than"
            raise AssertionError(f"error contract [{config}]: expected {expected}\n"
                                 f"  raised: {type(error).__name__}: {message}\n"
                                 f"  ({kind} {raises.__name__})") from None
        missing = missing_facts(message, facts)
        if missing:
            raise AssertionError(f"error contract [{config}]: expected {expected}\n"
                                 f"  raised: {raises.__name__}: {message}\n"
                                 f"  (its message does not name {', '.join(f'/{fact}/' for fact in missing)})") from None
        return
    raise AssertionError(f"error contract [{config}]: expected {expected}\n  raised: nothing, the call succeeded")


def assert_warns(action: Callable[[], object], category: type[Warning], facts: Sequence[str], *, config: str,
                 observe: Callable[[str, str], None] | None = None) -> None:
    """``action()`` warns with ``category`` (or a subclass), the message naming every fact."""
    __tracebackhide__ = True
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        action()
    messages = [str(w.message) for w in caught if issubclass(w.category, category)]
    for message in messages:
        if not missing_facts(message, facts):
            if observe is not None:
                observe("message", f"{category.__name__}: {message}")
            return
    raise AssertionError(f"warning contract [{config}]: expected a {category.__name__} naming "
                         f"{', '.join(f'/{fact}/' for fact in facts)}; warned: {messages or 'nothing'}")
