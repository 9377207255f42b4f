"""Every number a reader is shown is checked: each number in the chapters' prose and docstrings, and in
the document's prose (``docs/prose/*.md``), is a truth, a parameter or configuration, or derived.

``python -m rnnspec.document.numbers`` lists every number with what vouches for it, and exits 1 if one
is vouched for by nothing; ``selftest/test_document_numbers.py`` runs the same check.

**What is a number.** A numeral with a decimal point or an exponent (``0.2642``, ``3e-3``,
``4.7 \\times 10^{-12}``, ``7.79e7``, ``10⁻⁶``) and an integer of four digits or more (``161051``).
Smaller integers (steps, sizes, chapter numbers) and version triples (``2.13.0``) are not checked;
nor are links' addresses.

**What vouches for it**, in this order (a number is printed to some precision: ``0.2642`` stands
for anything within half a unit of its last digit, 0.26415 to 0.26425):

1. *a truth*: a value of a record the text can see, in float64, or rounded to a dtype or as that
   dtype's fixture holds it when the number's sentence names the dtype. A chapter sees its own
   records, the records its module imports, and the records of the chapters it names ("chapter 3",
   or a link to ``spec/test_03_….py``); a prose file sees the chapters it names or links. Only
   records the document prints value by value count (at most ``PRINTED_VALUES``): the thousands of
   seeded random values of a large record would match any number of few digits by chance;
2. *a parameter of a record*: a value of a record's inputs (weights, input, initial state) or
   options, of the same records;
3. *a fact of a dtype* (its largest number, smallest normal and subnormal, half the smallest
   subnormal, machine epsilon, the integers it holds exactly: 2^p) or *a tolerance* (a row's rtol or
   atol, the envelope's factor, ``rnnspec/tolerances.py``);
4. *a mark*: the text's closing field list (in a docstring; in a prose file, inside an HTML comment
   ``<!-- numbers … -->``) declares the rest::

       :parameters: 0.25, 0.75 (the dropout probabilities)
       :configuration: 2.13 (the torch release whose messages are quoted); 1e-8 (pytest-regressions' atol)
       :derived: 0.693 = sigmoid(0.5 + 0.5 * lstm_weights_half_twenty_steps.h_n[0]);
                 7.79e7 = lstm_weights_half_twenty_steps.grad_input[0] / tanh_rnn_weights_half_twenty_steps.grad_input[0]

   In ``:parameters:`` and ``:configuration:`` every number outside parentheses is declared. A
   ``:derived:`` entry (entries separated by ``;``) is ``NUMBER = EXPRESSION``: the expression is
   evaluated in the chapter module's namespace (its constants and functions) with the records the
   text sees (each by its name; its truth's tensors as attributes,
   flattened, and its inputs: ``x``, ``weight_hh_l0``...) with NumPy (``np``, ``sigmoid``, ``tanh``, ``exp``,
   ``log``, ``log10``, ``sqrt``, ``median``), and must give
   the number at its printed precision, so a derived number is checked too. ``:cites:`` names further
   chapters (``test_03_vanishing_gradient``) whose records the text sees.

A mark that no number of the text uses is reported too (it went stale).

One concern, the number check; it is a little over 400 lines because the rules above are its
specification.
"""

from __future__ import annotations

import ast
import math
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace

import numpy as np

from rnnspec.document.chapters import Chapter, chapters, cited
from rnnspec.document.markup import split_marks
from rnnspec.document.tables import PRINTED_VALUES

#: A number as the texts write it (see the module docstring).
NUMBER = re.compile(r"""
    (?<![\w.^{}\\/#@-])                       # not inside a name, a path, an exponent or a LaTeX group
    (?P<sign>[-−](?=\d))?
    (?P<mantissa>\d+(?:\.\d+)?)
    (?:
        [eE](?P<e>[-+−]?\d+)
      | \s*(?:\\times|×)\s*10\s*(?:\^\{?(?P<caret>[-+−]?\d+)\}?|(?P<super>[⁻⁺]?[⁰¹²³⁴⁵⁶⁷⁸⁹]+))
      | (?P<power>[⁻⁺]?[⁰¹²³⁴⁵⁶⁷⁸⁹]+)          # 10⁻⁶ (other powers, 11⁵, are integers: not checked)
    )?
    (?![\w⁰¹²³⁴⁵⁶⁷⁸⁹]|\.\d)
""", re.X)
SUPERSCRIPTS = str.maketrans("⁰¹²³⁴⁵⁶⁷⁸⁹⁻⁺", "0123456789-+")
URL = re.compile(r"https?://[^\s)>`]+")
MARKS_COMMENT = re.compile(r"<!--\s*numbers\b(.*?)-->", re.S)


@dataclass(frozen=True)
class Shown:
    """One number of a text: as printed, its value and how far a value may lie from it (half a unit of its
    last printed digit)."""

    text: str
    value: float
    half_unit: float

    def admits(self, value: float) -> bool:
        return abs(value - self.value) <= self.half_unit * (1 + 1e-9) + 1e-300


def numbers_in(text: str) -> list[Shown]:
    """Every checked number of ``text``, in order."""
    text = URL.sub(" ", text)
    found = []
    for match in NUMBER.finditer(text):
        mantissa, exponent = match.group("mantissa"), match.group("e") or match.group("caret")
        if match.group("super") or match.group("power"):
            exponent = (match.group("super") or match.group("power")).translate(SUPERSCRIPTS)
        if match.group("power"):  # 10⁻⁶: the mantissa is the base
            if mantissa != "10":
                continue
            mantissa = "1"
        decimals = len(mantissa.partition(".")[2])
        if exponent is None and not decimals and len(mantissa) < 4:
            continue  # a small integer: a count, a size, a step
        power = int(exponent.replace("−", "-")) if exponent else 0
        sign = -1.0 if match.group("sign") else 1.0
        value = sign * float(mantissa) * 10.0 ** power
        found.append(Shown(match.group(0).strip(), value, 0.5 * 10.0 ** (power - decimals)))
    return found


# --- What a text sees --------------------------------------------------------------------------

def records_in(module) -> list:
    """The records a chapter module sees: its own, and every record of the chapters it imports a record from."""
    from rnnspec.records import Record, records_of

    imported = {value.module for value in vars(module).values()
                if isinstance(value, Record) and value.module != module.__name__}
    return records_of(module) + [record for name in sorted(imported) for record in records_of(sys.modules[name])]


def dtype_facts() -> dict[float, str]:
    """The numbers a dtype is known by: its range, its resolution, its exact integers."""
    from rnnspec.devices import DTYPES  # torch dtypes by name; finfo of torch knows bfloat16

    import torch

    facts = {}
    for name, dtype in DTYPES.items():
        info = torch.finfo(dtype)
        subnormal = float(info.smallest_normal) * float(info.eps)
        facts.update({float(info.max): f"{name}'s largest number", float(info.smallest_normal): f"{name}'s smallest normal",
                      subnormal: f"{name}'s smallest subnormal", subnormal / 2: f"half {name}'s smallest subnormal",
                      float(info.eps): f"{name}'s machine epsilon",
                      2.0 / float(info.eps): f"2^p for {name}: the integers it holds exactly end here"})
    return facts


def tolerance_facts() -> dict[float, str]:
    from rnnspec.tolerances import ENVELOPE, TOLERANCES

    facts = {ENVELOPE: "the step-by-step envelope's factor (rnnspec/tolerances.py)"}
    for name, row in TOLERANCES.items():
        facts[row.rtol] = f"{name}'s rtol (rnnspec/tolerances.py)"
        facts[row.atol] = f"{name}'s atol (rnnspec/tolerances.py)"
    return facts


class Witnesses:
    """The values that vouch for a text's numbers: sorted, with what each one is. A value that only one dtype
    holds (a truth rounded to it, a fixture recorded in it) vouches only for a number whose sentence names
    that dtype: float16's h_5 (0.6865) does not vouch for a sentence about h_5 (0.6867)."""

    def __init__(self):
        self.values: list[float] = []
        self.what: list[tuple[str, str | None]] = []
        self._sorted = None

    def add(self, values, what: str, dtype: str | None = None) -> None:
        for value in np.asarray(values, dtype=np.float64).ravel():
            if math.isfinite(value):
                self.values.append(float(value))
                self.what.append((what, dtype))
        self._sorted = None

    def find(self, number: Shown, sentence: str = "") -> str | None:
        if self._sorted is None:
            order = np.argsort(self.values, kind="stable")
            self._sorted = (np.asarray(self.values)[order], [self.what[i] for i in order])
        values, what = self._sorted
        lo = np.searchsorted(values, number.value - number.half_unit * (1 + 1e-9), side="left")
        hi = np.searchsorted(values, number.value + number.half_unit * (1 + 1e-9), side="right")
        for text, dtype in what[lo:hi]:
            if dtype is None or re.search(rf"\b{dtype}\b", sentence):
                return text
        return None

    def nearest(self, number: Shown) -> str:
        if not self.values:
            return "none"
        i = int(np.argmin(np.abs(np.asarray(self.values) - number.value)))
        return f"{self.values[i]:.6g} ({self.what[i][0]})"


def witnesses_of(records: list) -> Witnesses:
    """The truths of ``records`` (in float64; rounded to each dtype and as each dtype's fixture holds them, for
    sentences that name the dtype) and their parameters."""
    from rnnspec.comparison import round_to_dtype
    from rnnspec.devices import DTYPES
    from rnnspec.fixture_files import load_record

    found = Witnesses()
    for record in records:
        if sum(int(np.size(v)) for v in record.truth().values.values()) > PRINTED_VALUES:
            continue  # its values are not shown one by one, and so many values would match any number by chance
        for key, value in record.truth().values.items():
            found.add(value, f"truth {record.chapter}/{record.name}.{key}")
            for dtype in DTYPES:
                found.add(round_to_dtype(np.asarray(value, dtype=np.float64), dtype),
                          f"truth {record.chapter}/{record.name}.{key} rounded to {dtype}", dtype)
        for dtype in DTYPES:
            if record.fixture(dtype).is_file():
                fix = f"pytest --regen-all --device cpu spec/{record.chapter}.py"
                for key, value in load_record(record.fixture(dtype), dtype, fix=fix).items():
                    found.add(value, f"fixture {record.chapter}/{record.name}-{dtype}.{key}", dtype)
        for key, value in parameters(record).items():
            found.add(value, f"parameter {record.chapter}/{record.name}.{key}")
    return found


def parameters(record) -> dict[str, np.ndarray]:
    """A record's inputs and numeric options by name (weights by their torch names), as float64 arrays."""
    found = {}
    for key, value in record.configuration().items():
        for name, array in (value.items() if isinstance(value, dict) else [(key, value)]):
            if isinstance(array, (int, float, np.ndarray, list, tuple)) and not isinstance(array, bool):
                try:
                    found[name] = np.asarray(array, dtype=np.float64).ravel()
                except (TypeError, ValueError):
                    continue
    return found


# --- Marks -------------------------------------------------------------------------------------

@dataclass
class Marks:
    """A text's declared numbers: parameters and configuration (the numbers), derived (number, expression)."""

    declared: dict[str, list[Shown]] = field(default_factory=dict)  # "parameters"/"configuration" -> numbers
    derived: list[tuple[Shown, str]] = field(default_factory=list)
    cites: list[str] = field(default_factory=list)

    @classmethod
    def parse(cls, fields: dict[str, str]) -> Marks:
        marks = cls()
        for kind in ("parameters", "configuration"):
            outside = re.sub(r"\([^()]*\)", " ", fields.get(kind, ""))
            marks.declared[kind] = numbers_in(outside)
        for entry in fields.get("derived", "").split(";"):
            if entry.strip():
                number, equals, expression = entry.partition("=")
                shown = numbers_in(number)
                if not equals or len(shown) != 1:
                    raise ValueError(f":derived: entry {entry.strip()!r} is not NUMBER = EXPRESSION")
                marks.derived.append((shown[0], expression.strip()))
        marks.cites = fields.get("cites", "").split()
        return marks


def namespace(records: list, module=None) -> dict:
    """The names a ``:derived:`` expression may use: the chapter module's own names (its constants and
    functions), every record the text sees, by name, and NumPy."""
    names = {**(vars(module) if module is not None else {}), "np": np, "sigmoid": lambda v: 1 / (1 + np.exp(-np.asarray(v))), "tanh": np.tanh, "exp": np.exp,
             "log": np.log, "log10": np.log10, "sqrt": np.sqrt, "abs": np.abs, "min": np.min, "max": np.max,
             "median": np.median, "sum": sum, "len": len, "__builtins__": {}}
    for record in records:
        truth = {key: np.asarray(value, dtype=np.float64).ravel() for key, value in record.truth().values.items()}
        names[record.name] = SimpleNamespace(**parameters(record), **truth)
    return names


# --- The check ---------------------------------------------------------------------------------

@dataclass(frozen=True)
class Finding:
    """One number of a text and what vouches for it (None: nothing)."""

    place: str  # "spec/test_04_truncated_bptt.py (Chapter 4), module docstring"
    number: str
    witness: str | None
    nearest: str = ""

    def __str__(self) -> str:
        if self.witness:
            return f"{self.place}: {self.number} ← {self.witness}"
        return (f"{self.place}: {self.number} matches no truth it can see at the precision printed, and no "
                f"mark declares it (nearest value: {self.nearest})")


@dataclass
class Text:
    """A text to check: where it is, the passages a reader is shown, its marks and the records it sees."""

    place: str
    passages: list[tuple[str, str]]  # (which passage, its text)
    marks: Marks
    records: list
    module: object = None  # the chapter's module, whose names :derived: expressions may use


def chapter_text(chapter: Chapter, chapter_list: list[Chapter]) -> Text:
    body, fields = split_marks(chapter.module.__doc__ or "")
    marks = Marks.parse(fields)
    passages = [("module docstring", body)] + [(claim.test, claim.docstring) for claim in chapter.claims()]
    named = cited("\n".join(text for _, text in passages), chapter_list)
    named += [c for c in chapter_list if c.stem in marks.cites]
    records = records_in(chapter.module) + [r for c in named if c is not chapter for r in records_in(c.module)]
    return Text(f"{chapter.path} ({chapter.short_title})", passages, marks, _unique(records), chapter.module)


def prose_text(path: Path, chapter_list: list[Chapter], place: str) -> Text:
    text = path.read_text(encoding="utf-8")
    fields = {}
    for comment in MARKS_COMMENT.findall(text):
        fields.update(split_marks(comment)[1])
    body = MARKS_COMMENT.sub("", text)
    marks = Marks.parse(fields)
    named = cited(body, chapter_list) + [c for c in chapter_list if c.stem in marks.cites]
    records = [r for c in named for r in records_in(c.module)]
    return Text(place, [("", body)], marks, _unique(records))


def sentences(text: str) -> list[str]:
    """``text`` cut into sentences: at a full stop, question or exclamation mark followed by white space, at
    blank lines and before list items (a decimal point is followed by a digit, so it cuts nothing)."""
    return [part for part in re.split(r"(?<=[.!?])\s+|\n\s*\n|\n(?=\s*(?:[*-]|\d+\.) )", text) if part.strip()]


def _unique(records: list) -> list:
    return list({id(r): r for r in records}.values())


def check(text: Text, shared: Witnesses | None = None) -> list[Finding]:
    """Every number of ``text`` with what vouches for it, and a finding per mark no number uses."""
    seen = witnesses_of(text.records)
    names = namespace(text.records, text.module)
    derived = []
    findings = []
    for number, expression in text.marks.derived:
        try:
            value = np.asarray(eval(compile(ast.parse(expression, mode="eval"), "<derived>", "eval"), names),
                               dtype=np.float64).ravel()
        except Exception as error:  # the mark is wrong: say so, as a number nothing vouches for
            findings.append(Finding(f"{text.place}, :derived:", f"{number.text} = {expression}", None,
                                    f"the expression fails: {type(error).__name__}: {error}"))
            continue
        if value.size != 1 or not number.admits(float(value[0])):
            findings.append(Finding(f"{text.place}, :derived:", f"{number.text} = {expression}", None,
                                    f"the expression gives {value.ravel()[:3]}"))
            continue
        derived.append(number)
    shown = []
    for where, passage in text.passages:
        place = f"{text.place}, {where}" if where else text.place
        for sentence in sentences(passage):
            for number in numbers_in(sentence):
                shown.append(number)
                witness = vouch(number, sentence, derived, seen, text.marks, shared)
                findings.append(Finding(place, number.text, witness, "" if witness else seen.nearest(number)))
    for kind, numbers in [*text.marks.declared.items(), ("derived", derived)]:
        for number in numbers:
            if not any(n.value == number.value for n in shown):
                findings.append(Finding(f"{text.place}, :{kind}:", number.text, None,
                                        "the mark is used by no number of the text (stale: remove it)"))
    return findings


def vouch(number: Shown, sentence: str, derived: list[Shown], seen: Witnesses, marks: Marks,
          shared: Witnesses | None) -> str | None:
    """What vouches for ``number`` (in ``sentence``): a derived mark, a truth or parameter, a declared mark, a
    fact of a dtype or a tolerance; None: nothing."""
    if any(mark.value == number.value and mark.text == number.text for mark in derived):
        return "derived (:derived:, evaluated)"
    witness = seen.find(number, sentence)
    if witness:
        return witness
    for kind in ("parameters", "configuration"):
        if any(mark.value == number.value for mark in marks.declared.get(kind, [])):
            return f"declared in :{kind}:"
    return shared.find(number, sentence) if shared is not None else None


def texts(root: Path, chapter_list: list[Chapter] | None = None) -> list[Text]:
    """Every text a reader is shown: each chapter (its docstring and its tests'), then each prose file."""
    from rnnspec.document.render import PROSE

    chapter_list = chapter_list if chapter_list is not None else chapters(root)
    found = [chapter_text(chapter, chapter_list) for chapter in chapter_list]
    for name in PROSE:
        path = root / "docs" / "prose" / name
        if path.is_file():
            found.append(prose_text(path, chapter_list, f"docs/prose/{name}"))
    return found


def findings(root: Path, chapter_list: list[Chapter] | None = None) -> list[Finding]:
    shared = Witnesses()
    for value, what in {**dtype_facts(), **tolerance_facts()}.items():
        shared.add(value, what)
    return [finding for text in texts(root, chapter_list) for finding in check(text, shared)]


def unchecked(root: Path, chapter_list: list[Chapter] | None = None) -> list[Finding]:
    """The numbers (and marks) nothing vouches for."""
    return [finding for finding in findings(root, chapter_list) if finding.witness is None]


def main(argv: list[str] | None = None) -> int:
    root = Path.cwd()
    every = findings(root)
    for finding in every:
        print(finding)
    bad = [f for f in every if f.witness is None]
    print(f"\n{len(every)} numbers and marks, {len(bad)} vouched for by nothing")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
