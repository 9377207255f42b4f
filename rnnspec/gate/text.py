"""How the upgrade gate writes figures and table cells in Markdown (the report, compare, CHANGES.md).

Figures (``rnnspec/figures.py``) read ``2 ULP (abs 1.19e-07, rel 1.2e-07)``; the share of the
tolerance used reads ``57%``; ``∞`` is infinity (``"inf"`` in JSON), ``–`` a figure not computed.
"""

from __future__ import annotations

import math

from rnnspec.figures import INF
from rnnspec.gate import provenance
from rnnspec.vocabulary import DTYPE_NAMES


def number(value) -> float:
    """A figure as a float (``"inf"`` is infinity)."""
    return math.inf if value == INF else float(value)


def fmt(value, ulp: bool = False) -> str:
    if value is None:
        return "–"
    if value == INF or value == math.inf:
        return "∞"
    if ulp:
        return str(int(value))
    return "0" if value == 0 else f"{value:.3g}"


def used(figures: dict | None) -> str:
    """The share of the tolerance used, as a percentage with two significant digits."""
    share = (figures or {}).get("tolerance_used")
    return "–" if share is None else ("∞" if share == INF else f"{share * 100:.2g}%")


def fmt_figures(figures: dict | None) -> str:
    """``2 ULP (abs 1.19e-07, rel 1.2e-07)``, ``0`` when equal, ``–`` when not compared."""
    if figures is None:
        return "–"
    if figures["differing"] == 0:
        return "0"
    return f"{fmt(figures['max_ulp'], True)} ULP (abs {fmt(figures['max_abs'])}, rel {fmt(figures['max_rel'])})"


def cell(text) -> str:
    """Text that stays in one cell of a Markdown table."""
    return str(text).replace("|", "\\|").replace("\n", "<br>")


def first_line(text: str | None, limit: int = 160) -> str:
    if not text:
        return ""
    line = text.strip().splitlines()[0]
    return line if len(line) <= limit else line[:limit] + " …"


def fenced(text: str) -> list[str]:
    """``text`` as a fenced block, the fence longer than any run of backticks inside it."""
    longest = max((len(run) for run in text.split("\n") for run in _backtick_runs(run)), default=0)
    fence = "`" * max(3, longest + 1)
    return [f"{fence}text", text.rstrip("\n"), fence]


def _backtick_runs(line: str) -> list[str]:
    runs, current = [], ""
    for char in line:
        if char == "`":
            current += char
        elif current:
            runs.append(current)
            current = ""
    return runs + ([current] if current else [])


def dtype_order(dtype: str):
    return (DTYPE_NAMES.index(dtype) if dtype in DTYPE_NAMES else len(DTYPE_NAMES), dtype)


def baselines_text(document: dict | None, none: str) -> str:
    """The baselines of a provenance document, one per line (``<br>``), or ``none``."""
    return "<br>".join(provenance.describe_baseline(b) for b in (document or {}).get("baselines", [])) or none
