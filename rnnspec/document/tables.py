"""The document's tables: claims and their outcomes, expected numbers, the numbers behind a plot.

Every table is readable at 100 columns (``selftest/test_document_is_current.py`` checks it): long
text (a claim, its authority, the test's name) stands in a numbered list above the outcome grid,
and long links are written as reference links below their table.
"""

from __future__ import annotations

import hashlib
import math

import numpy as np

from rnnspec.devices import DTYPES
from rnnspec.document.markup import cell_text
from rnnspec.document.outcomes import Outcomes, cell, column

#: A record with more values than this is summarised per quantity rather than printed value by value.
PRINTED_VALUES = 100
#: The float64 reference's significant digits (its last bits may differ between NumPy builds, its tenth
#: digit does not).
REFERENCE_DIGITS = 10
#: A value table longer than this is folded (``<details>``).
FOLDED_ROWS = 30


def shown(value: float, dtype: str, digits: int = 17) -> str:
    """A number as the document prints it: integers in full; otherwise the shortest decimal that rounds
    to the same ``dtype`` number, so a recorded value is printed exactly (the float64 reference is printed
    with ``digits=10``: its last bits may differ between NumPy builds, its tenth digit does not)."""
    from rnnspec.comparison import round_to_dtype

    if math.isnan(value):
        return "nan"
    if math.isinf(value):
        return "inf" if value > 0 else "-inf"
    if value == int(value) and abs(value) < 1e7:
        return str(int(value))
    for count in range(1, digits + 1):
        text = f"{value:.{count}g}"
        if round_to_dtype(float(text), dtype) == value:
            break
    return text


def index_label(key: str, index: tuple[int, ...], shape: tuple[int, ...]) -> str:
    """``grad_input t=3`` for the notebook's sequences, shape (L, 1, 1); otherwise the full index from 0."""
    if math.prod(shape) == 1:
        return key
    if key in ("output", "grad_input") and shape[0] > 1 and all(n == 1 for n in shape[1:]):
        return f"{key} t={index[0] + 1}"
    return f"{key} [{', '.join(str(i) for i in index)}]"


# --- Claims ------------------------------------------------------------------------------------

def authority_text(claimed) -> str:
    """A claim's authority: documented, with links to the pages; derived or observed, with why or where."""
    if claimed is None:
        return "*no authority*"
    if claimed.kind == "documented":
        pages = [page for page in claimed.source.split() if page.startswith("http")]
        links = ", ".join(f"[{page.rstrip('/').rsplit('/', 1)[-1].removesuffix('.html').split('#')[-1]}]({page})"
                          for page in pages)
        return f"*documented*: {links or claimed.source}"
    return f"*{claimed.kind}*: {claimed.source}"


def claims_section(chapter, outcomes: Outcomes) -> str:
    """The chapter's claims, numbered, each with its authority and its test; then their outcomes, one row each."""
    configs = outcomes.configurations(chapter.stem)
    claims = [(c.test, c.text, c.only, c.authority) for c in chapter.claims()]
    named = {name for name, *_ in claims}
    claims += [(name, "", None, None) for name in outcomes.tests_of(chapter.stem) if name not in named]
    items, rows = [], []
    for number, (name, text, only, claimed) in enumerate(claims, start=1):
        items.append(f"{number}. {text or '(no docstring)'}\n   {authority_text(claimed)}. Test `{name}`.")
        ran = name in outcomes.tests_of(chapter.stem)
        cells = [cell(outcomes.counts(chapter.stem, name, d, t),
                      "n/a" if only is not None and t not in only else "—" if ran else "not run") for d, t in configs]
        kind = claimed.kind if claimed else ""
        rows.append(f"| {number} | {kind} | " + " | ".join(cells) + " |")
    head = "| claim | authority | " + " | ".join(column(c, outcomes.devices) for c in configs) + " |"
    rule = "|---:|---|" + "---|" * len(configs)
    return "\n\n".join(["### Claims and outcomes", "\n".join(items), "\n".join([head, rule, *rows])])


# --- Expected numbers --------------------------------------------------------------------------

def expected_numbers(chapter, fixtures, tolerance_table: dict) -> str:
    """Every record the chapter declares: the reference beside each dtype's recorded fixture."""
    from rnnspec.fixture_files import load_record

    declared = chapter.records()
    if not declared:
        return "### Expected numbers\n\nThis chapter records no tensors: its claims are checked as stated."
    parts = ["### Expected numbers"]
    for record in declared:
        truth = record.truth()
        recorded = {}
        for dtype in DTYPES:
            path = fixtures / chapter.stem / record.fixture(dtype).name
            fix = f"pytest --regen-all --device cpu spec/{chapter.stem}.py"
            recorded[dtype] = load_record(path, dtype, fix=fix) if path.is_file() else None
        relative = sorted(truth.relative)
        comparison = (f"Compared elementwise-relatively (they span many decades): {', '.join(f'`{k}`' for k in relative)}; "
                      f"the others normwise." if relative else "Compared normwise (against the tensor's largest value).")
        body = (f"#### {cell_text(truth.behaviour)}\n\nRecord `{record.name}` "
                f"(`fixtures/{chapter.stem}/{record.name}-<dtype>.npz`). Law: `{truth.law}`. {comparison}\n\n")
        count = sum(int(np.size(v)) for v in truth.values.values())
        if count > PRINTED_VALUES:
            body += summary_table(truth, recorded, tolerance_table, count)
        else:
            table = values_table(truth, recorded)
            rows = table.count("\n") - 1
            body += (f"<details><summary>All {rows} expected values</summary>\n\n{table}\n\n</details>"
                     if rows > FOLDED_ROWS else table) + "\n\n" + digests_line(recorded)
        parts.append(body)
    return "\n\n".join(parts)


def recorded_array(recorded: dict, dtype: str, key: str, shape: tuple) -> np.ndarray | None:
    arrays = recorded[dtype]
    if arrays is None or key not in arrays or np.shape(arrays[key]) != shape:
        return None
    return np.asarray(arrays[key], dtype=np.float64)


def values_table(truth, recorded: dict) -> str:
    """One row per value: the float64 reference (10 digits), then each dtype's fixture: exactly, except the
    float64 fixture, which shows ``=`` where it agrees with the reference to the 10 digits printed (the
    digests under the table pin its every bit)."""
    rows = ["| quantity | reference | " + " | ".join(DTYPES) + " |", "|---|---:|" + "---:|" * len(DTYPES)]
    for key, value in truth.values.items():
        values = np.asarray(value, dtype=np.float64)
        fixtures = {dtype: recorded_array(recorded, dtype, key, values.shape) for dtype in DTYPES}
        for index in np.ndindex(values.shape):
            reference = shown(float(values[index]), "float64", REFERENCE_DIGITS)
            cells = []
            for dtype in DTYPES:
                if fixtures[dtype] is None:
                    cells.append("missing")
                    continue
                exact = shown(float(fixtures[dtype][index]), dtype, REFERENCE_DIGITS if dtype == "float64" else 17)
                cells.append("=" if dtype == "float64" and exact == reference else exact)
            rows.append(f"| `{index_label(key, index, values.shape)}` | {reference} | " + " | ".join(cells) + " |")
    return "\n".join(rows)


def digests_line(recorded: dict) -> str:
    return ("The fixtures' digests (SHA-256 of the arrays, 12 hex digits) pin every bit: "
            + ", ".join(f"{d} `{digest(recorded[d])}`" for d in DTYPES) + ".")


def summary_table(truth, recorded: dict, tolerance_table: dict, count: int) -> str:
    """For a large record: per quantity its shape, the reference's range, and how close each fixture lies
    (its worst error as a fraction of what the tolerance allows); a digest of each fixture's arrays."""
    from rnnspec.comparison import round_to_dtype

    rows = ["| quantity | shape | reference: min … max | " + " | ".join(DTYPES) + " |",
            "|---|---|---|" + "---:|" * len(DTYPES)]
    for key, value in truth.values.items():
        values = np.asarray(value, dtype=np.float64)
        cells = []
        for dtype in DTYPES:
            fixture = recorded_array(recorded, dtype, key, values.shape)
            if fixture is None or dtype not in tolerance_table:
                cells.append("missing" if fixture is None else "")
                continue
            tolerance = truth.tolerance_for(key, tolerance_table[dtype])
            expected = round_to_dtype(values, dtype)
            with np.errstate(invalid="ignore"):
                error = np.where(fixture == expected, 0.0, np.abs(fixture - expected))
            allowed = tolerance.atol + tolerance.rtol * np.abs(expected)
            with np.errstate(divide="ignore", invalid="ignore"):
                share = np.where(error == 0, 0.0, error / allowed)
            worst = float(np.max(share)) if share.size else 0.0
            cells.append("0" if worst == 0 else "< 0.001" if worst < 1e-3 else f"{worst:.2g}")
        span = f"{shown(float(values.min()), 'float64', 4)} … {shown(float(values.max()), 'float64', 4)}" if values.size else ""
        rows.append(f"| `{key}` | {tuple(values.shape)} | {span} | " + " | ".join(cells) + " |")
    return (f"{count} values, too many to print one by one: each quantity's shape and range, and in each dtype's "
            f"column the worst error of that fixture as a fraction of what its tolerance allows (0: equal to the "
            f"reference rounded to the dtype). The values are in the fixture files.\n\n" + "\n".join(rows)
            + "\n\n" + digests_line(recorded))


def digest(arrays: dict | None) -> str:
    """A short SHA-256 of a fixture's arrays (names, dtypes, shapes and bytes), so any change shows."""
    if arrays is None:
        return "missing"
    sha = hashlib.sha256()
    for key in sorted(arrays):
        array = np.ascontiguousarray(arrays[key])
        sha.update(f"{key}:{array.dtype.str}:{array.shape}:".encode())
        sha.update(array.tobytes())
    return sha.hexdigest()[:12]


# --- Plots -------------------------------------------------------------------------------------

def figure_markdown(figure) -> str:
    """The image, its caption, and the numbers it is drawn from (so they are checked with the text)."""
    tables = []
    for panel in figure.panels:
        xs = sorted({x for s in panel.series for x in s.x})
        head = f"| {cell_text(panel.table_x)} | " + " | ".join(cell_text(s.column) for s in panel.series) + " |"
        rule = "|---:|" + "---:|" * len(panel.series)
        rows = []
        for x in xs:
            values = [dict(zip(s.x, s.y)).get(x) for s in panel.series]
            rows.append(f"| {x:g} | " + " | ".join("" if v is None else shown(v, "float64", 5) for v in values) + " |")
        tables.append(f"*{cell_text(panel.table_title)}*\n\n{head}\n{rule}\n" + "\n".join(rows))
    data = "\n\n".join(tables)
    return f"""![{figure.title}]({figure.filename})

*{figure.caption}*

<details><summary>The numbers behind this plot</summary>

{data}

</details>"""


def tolerance_table(tolerances: dict) -> str:
    rows = [f"| {name} | {row.rtol:g} | {row.atol:g} | {row.resolution:.3g} | "
            f"{f'{row.envelope:g} ×' if row.envelope else 'never'} | {cell_text(row.source)} |"
            for name, row in tolerances.items()]
    return "\n".join(["| dtype | rtol | atol | smallest subnormal | envelope | source |",
                      "|---|---:|---:|---:|---|---|", *rows])
