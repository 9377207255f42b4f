"""The document's plots: their data (always) and their drawing (with the optional matplotlib).

Each plot is first a :class:`Plot` of plain numbers, taken from the NumPy reference and the closed
forms (``rnnspec.numpy_reference.derive``, ``rnnspec.closed_forms``) and, for what each dtype holds, from the
recorded fixtures; never from a fresh torch run, so the same sources always give the same plot.
The document prints those numbers in a table under each image, so the staleness check compares
them exactly even where matplotlib is not installed. :func:`draw` turns a plot into an SVG file
with matplotlib (``pip install -e '.[docs]'``), imported only when a plot is drawn.

Why SVG: it is text, so a changed plot shows in a diff; with a fixed ``svg.hashsalt`` (the ids of
clip paths and glyphs) and no date in its metadata, matplotlib writes the same bytes for the same
data on every run, whereas PNG output also depends on the rasteriser. Glyphs are written as paths,
so the plot looks the same on every code host, whatever fonts the reader has. The SVG keeps
matplotlib's version in its metadata (``Creator``): the staleness test compares plot bytes only
when the installed matplotlib is the one that drew the committed files.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

FORMAT = "svg"
#: Fixed salt for the ids matplotlib writes into an SVG: the same figure gives the same bytes.
HASHSALT = "rnn-spec"
FLOAT16_MAX = float(np.finfo(np.float16).max)  # 65504
FLOAT16_ZERO_BELOW = 2.0**-25  # half the smallest subnormal: anything smaller rounds to 0


@dataclass(frozen=True)
class Series:
    """One curve: y against x. In a log plot, inf is drawn at the top edge and 0 at the bottom."""

    label: str  # the legend entry
    column: str  # its short name in the data table
    x: tuple[float, ...]
    y: tuple[float, ...]
    style: dict = field(default_factory=dict, compare=False)


@dataclass(frozen=True)
class Line:
    """A horizontal (``axis="y"``) or vertical (``axis="x"``) reference line with its legend entry."""

    axis: str
    at: float
    label: str
    style: dict = field(default_factory=dict, compare=False)


@dataclass(frozen=True)
class Panel:
    title: str
    xlabel: str
    ylabel: str
    series: tuple[Series, ...]
    lines: tuple[Line, ...] = ()
    notes: tuple[tuple[float, float, float, str], ...] = ()  # (x, y_low, y_high, text): a two-headed arrow
    table_title: str = ""


@dataclass(frozen=True)
class Plot:
    name: str  # the file stem
    title: str
    caption: str  # one sentence: what the plot shows
    chapter: str  # the spec module it illustrates ("" for the introduction)
    panels: tuple[Panel, ...]
    size: tuple[float, float] = (8.0, 5.0)

    @property
    def filename(self) -> str:
        return f"{self.name}.{FORMAT}"


def _steps(n: int) -> tuple[float, ...]:
    return tuple(float(t) for t in range(1, n + 1))


def _flat(values) -> tuple[float, ...]:
    return tuple(float(v) for v in np.asarray(values, dtype=np.float64).ravel())


def gradient_reach() -> Plot:
    """|∂h_T/∂x_t| against t: the exploding relu RNN, the vanishing tanh RNN, LSTM and GRU."""
    from rnnspec import closed_forms
    from rnnspec.inputs import constant_parameters
    from rnnspec.numpy_reference import derive

    ones = np.ones((20, 1, 1))
    exploding = _flat(closed_forms.exploding_gradients(5)["grad_input"])
    halves = {kind: _flat(np.abs(derive(kind, constant_parameters(kind, 1, 1, weight=0.5), ones)["grad_input"]))
              for kind in ("rnn_tanh", "lstm", "gru")}
    factor = {kind: float(np.median(np.array(g[:-1]) / np.array(g[1:]))) for kind, g in halves.items()}
    decades = math.log10(halves["lstm"][0] / halves["rnn_tanh"][0])
    series = (
        Series(f"relu RNN, weights 11, T = 5: ×{exploding[0] / exploding[1]:.0f} per step back", "relu RNN (w 11, T 5)",
               _steps(5), exploding, {"color": "tab:red", "marker": "o"}),
        Series(f"tanh RNN, weights 0.5, T = 20: ×{factor['rnn_tanh']:.2f} per step back", "tanh RNN (w 0.5)",
               _steps(20), halves["rnn_tanh"], {"color": "tab:blue", "marker": "s"}),
        Series(f"LSTM, weights 0.5, T = 20: ×{factor['lstm']:.2f} per step back", "LSTM (w 0.5)",
               _steps(20), halves["lstm"], {"color": "tab:green", "marker": "o"}),
        Series(f"GRU, weights 0.5, T = 20: ×{factor['gru']:.2f} per step back", "GRU (w 0.5)",
               _steps(20), halves["gru"], {"color": "tab:purple", "marker": "^", "linestyle": "--"}),
    )
    panel = Panel(
        title="", xlabel="input step t", ylabel=r"$|\partial h_T / \partial x_t|$ (log scale)", series=series,
        lines=(Line("y", 1.0, "gradient 1", {"color": "grey", "linestyle": ":"}),),
        notes=((1.0, halves["rnn_tanh"][0], halves["lstm"][0], f"LSTM: {decades:.1f} decades\nabove the tanh RNN"),),
        table_title="|∂h_T/∂x_t| by input step t (upstream gradient 1 on h_T; blank: the 5-step run has no such step)",
    )
    caption = (
        f"The gradient that reaches input x_t grows elevenfold per step back through the relu RNN with weights 11 "
        f"(to {exploding[0]:.0f} at t = 1 of 5), but shrinks by a factor of about {1 / factor['rnn_tanh']:.1f} per "
        f"step through the tanh RNN with weights 0.5 (to {halves['rnn_tanh'][0]:.2g} at t = 1 of 20), while the "
        f"LSTM and GRU with the same weights lose only about a quarter per step and end "
        f"{decades:.1f} decades above the tanh RNN at t = 1."
    )
    return Plot("gradient_reach", "How far back a gradient reaches: exploding, vanishing, and the gated layers",
                caption, "", (panel,))


def truncated_bptt() -> Plot:
    """Full BPTT of h_20 against four 5-step chunks, from zero and carrying the detached state."""
    from rnnspec import closed_forms, numpy_reference
    from rnnspec.inputs import constant_parameters

    halves = constant_parameters("rnn_tanh", 1, 1, weight=0.5)
    x = np.ones((20, 1, 1))
    forward = numpy_reference.forward("rnn_tanh", halves, x)
    full = _flat(numpy_reference.backward(forward, grad_h_n=np.ones_like(forward.h_n))["input"])
    chunked = {carry: _flat(np.concatenate([c["input"] for c in closed_forms.truncated_bptt_gradients(
        "rnn_tanh", halves, x, 5, carry=carry)])) for carry in (False, True)}
    series = (
        Series("full BPTT: ∂h_20/∂x_t", "full BPTT", _steps(20), full,
               {"color": "black", "marker": "o", "markersize": 4}),
        Series("4 chunks from a zero state (the notebook): each chunk's ∂h_5/∂x_t", "chunks from zero",
               _steps(20), chunked[False], {"color": "tab:orange", "marker": "s", "linestyle": "none",
                                            "markersize": 9, "fillstyle": "none", "markeredgewidth": 1.5}),
        Series("4 chunks carrying the detached state", "chunks, state carried", _steps(20), chunked[True],
               {"color": "tab:blue", "marker": "x", "linestyle": "none", "markersize": 8, "markeredgewidth": 1.5}),
    )
    boundaries = tuple(Line("x", edge + 0.5, "chunk boundary (no gradient crosses it)" if edge == 5 else "",
                            {"color": "grey", "linestyle": ":"}) for edge in (5, 10, 15))
    panel = Panel(title="", xlabel="input step t", ylabel=r"$\partial h / \partial x_t$ (log scale)",
                  series=series, lines=boundaries,
                  table_title="input gradient of each step: full BPTT of h_20, and after the four chunks' backwards")
    caption = (
        f"Cut into four 5-step chunks, the tanh RNN's gradient restarts at every chunk end "
        f"({chunked[False][4]:.4f} at the last step of a chunk from zero) and falls only to "
        f"{chunked[False][0]:.4f} within the chunk, so the notebook's four blocks are identical, while full BPTT "
        f"keeps falling to {full[0]:.2g} at t = 1; with the detached state carried, only the last chunk "
        f"(t = 16…20) coincides with full BPTT."
    )
    return Plot("truncated_bptt", "Truncated BPTT: four 5-step chunks beside full backpropagation through time",
                caption, "test_04_truncated_bptt", (panel,))


def dtype_limits(fixtures: Path) -> Plot:
    """What float16 makes of the exploding and vanishing runs, against float32 and float64 (recorded fixtures)."""
    from rnnspec.fixture_files import load_record
    from spec.test_02_exploding_gradient import FIVE_STEPS as EXPLODING  # the records whose fixtures it reads
    from spec.test_03_vanishing_gradient import TWENTY_STEPS as VANISHING

    def recorded(record, dtype):
        path = fixtures / record.chapter / record.fixture(dtype).name
        fix = f"pytest --regen-all --device cpu spec/{record.chapter}.py"
        return _flat(load_record(path, dtype, fix=fix)["grad_input"])

    styles = {"float64": {"color": "black", "marker": "o", "markersize": 4},
              "float32": {"color": "tab:blue", "marker": "s", "linestyle": "none", "markersize": 9,
                          "fillstyle": "none", "markeredgewidth": 1.5},
              "float16": {"color": "tab:red", "marker": "D", "linestyle": "none", "markersize": 6}}
    panels, facts = [], {}
    for record, title, n in ((EXPLODING, "Exploding: relu RNN, weights 11, 5 steps", 5),
                                     (VANISHING, "Vanishing: tanh RNN, weights 0.5, 20 steps", 20)):
        values = {dtype: recorded(record, dtype) for dtype in styles}
        half = values["float16"]
        facts[record.name] = half
        series = tuple(Series(f"{dtype} fixture{_edge_note(values[dtype])}", dtype, _steps(n), values[dtype],
                              styles[dtype]) for dtype in styles)
        line = (Line("y", FLOAT16_MAX, "float16's largest number, 65504", {"color": "tab:red", "linestyle": "--"})
                if record is EXPLODING else
                Line("y", FLOAT16_ZERO_BELOW, "2^-25 ≈ 3e-8: below it float16 rounds to 0",
                     {"color": "tab:red", "linestyle": "--"}))
        panels.append(Panel(title=title, xlabel="input step t", ylabel=r"$\partial h_T / \partial x_t$ (log scale)",
                            series=series, lines=(line,),
                            table_title=f"{title}: ∂h_T/∂x_t as recorded in each dtype"))
    exploding, vanishing = facts[EXPLODING.name], facts[VANISHING.name]
    overflowed = [t for t, v in enumerate(exploding, start=1) if math.isinf(v)]
    zeros = [t for t, v in enumerate(vanishing, start=1) if v == 0.0]
    caption = (
        f"In the recorded fixtures float32 and float64 hold every input gradient of both runs, while float16 "
        f"overflows to inf where the exploding gradient passes its largest number 65504 "
        f"(t = {_spans(overflowed)}) and flushes to exactly 0 where the vanishing gradient falls below 2^-25 "
        f"(t = {_spans(zeros)})."
    )
    return Plot("dtype_limits", "Where float16 runs out of range: overflow when exploding, underflow when vanishing",
                caption, "", tuple(panels), size=(12.0, 5.0))


def _edge_note(values: tuple[float, ...]) -> str:
    """What the edge markers of a series stand for, when it has values a log axis cannot show."""
    notes = (["▲ = inf, at the top edge"] if any(math.isinf(v) for v in values) else []) + \
            (["▼ = exactly 0, at the bottom edge"] if any(v == 0.0 for v in values) else [])
    return f" ({'; '.join(notes)})" if notes else ""


def _spans(steps: list[int]) -> str:
    if not steps:
        return "none"
    return str(steps[0]) if len(steps) == 1 else f"{steps[0]}…{steps[-1]}"


def plots(fixtures: Path) -> tuple[Plot, ...]:
    """Every plot of the document, in the order they appear."""
    return (gradient_reach(), dtype_limits(fixtures), truncated_bptt())


def matplotlib_version() -> str | None:
    """The installed matplotlib's version, or None (without importing it)."""
    from importlib import metadata

    try:
        return metadata.version("matplotlib")
    except metadata.PackageNotFoundError:
        return None


def draw(plot: Plot, folder: Path, *, fmt: str = FORMAT) -> Path:
    """Draw ``plot`` into ``folder`` with matplotlib (the ``docs`` extra); the same plot gives the same bytes."""
    import matplotlib
    from matplotlib.figure import Figure

    path = folder / f"{plot.name}.{fmt}"
    settings = {"svg.hashsalt": HASHSALT, "svg.fonttype": "path", "font.size": 10, "axes.titlesize": 11,
                "legend.fontsize": 9, "figure.dpi": 100}
    with matplotlib.rc_context(settings):
        figure = Figure(figsize=plot.size, layout="constrained")
        axes = figure.subplots(1, len(plot.panels), squeeze=False)[0]
        for ax, panel in zip(axes, plot.panels):
            _draw_panel(ax, panel)
        figure.suptitle(plot.title, fontsize=12, fontweight="bold")
        figure.savefig(path, format=fmt, metadata={"Date": None} if fmt == "svg" else {"Software": None})
    return path


def _draw_panel(ax, panel: Panel) -> None:
    finite = [v for s in panel.series for v in s.y if np.isfinite(v) and v > 0]
    finite += [line.at for line in panel.lines if line.axis == "y"]
    low, high = min(finite) / 10 ** 0.8, max(finite) * 10 ** 0.8
    ax.set_yscale("log")
    ax.set_ylim(low, high)
    edge = ax.get_xaxis_transform()  # x in data, y as a fraction of the axes: markers at the edges
    for s in panel.series:
        x, y = np.array(s.x), np.array(s.y)
        shown = np.isfinite(y) & (y > 0)
        ax.plot(x[shown], y[shown], label=s.label, **s.style)
        colour = s.style.get("color")
        if np.isinf(y).any():
            ax.plot(x[np.isinf(y)], np.full(int(np.isinf(y).sum()), 0.97), transform=edge, marker="^",
                    linestyle="none", color=colour, markersize=10, clip_on=False)
        if (y == 0).any():
            ax.plot(x[y == 0], np.full(int((y == 0).sum()), 0.03), transform=edge, marker="v",
                    linestyle="none", color=colour, markersize=10, clip_on=False)
    for line in panel.lines:
        draw_line = ax.axhline if line.axis == "y" else ax.axvline
        draw_line(line.at, label=line.label or None, **line.style)
    for x, y_low, y_high, text in panel.notes:
        ax.annotate("", xy=(x, y_high), xytext=(x, y_low),
                    arrowprops={"arrowstyle": "<->", "color": "dimgrey", "linewidth": 1.2})
        ax.text(x + 0.35, math.sqrt(y_low * y_high), text, va="center", fontsize=9, color="dimgrey")
    xs = [v for s in panel.series for v in s.x]
    ax.set_xlim(min(xs) - 0.6, max(xs) + 0.6)
    ax.set_xticks(range(int(min(xs)), int(max(xs)) + 1, 1 if max(xs) - min(xs) < 10 else 2))
    if panel.title:
        ax.set_title(panel.title)
    ax.set_xlabel(panel.xlabel)
    ax.set_ylabel(panel.ylabel)
    ax.grid(True, which="major", alpha=0.3)
    ax.legend(loc="best", framealpha=0.9)
