"""The document's plots: their data (always) and their drawing (with the optional matplotlib).

Each plot is first a :class:`Plot` of plain numbers, taken from the chapters' records (the records
themselves, imported from their chapters: their truths, and for what each dtype holds their recorded
fixtures); never from a fresh torch run, so the same sources always give the same plot.
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
import textwrap
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

FORMAT = "svg"
#: Fixed salt for the ids matplotlib writes into an SVG: the same figure gives the same bytes.
HASHSALT = "rnn-spec"
FLOAT16_MAX = float(np.finfo(np.float16).max)  # 65504
FLOAT16_ZERO_BELOW = 2.0**-25  # half the smallest subnormal: anything smaller rounds to 0
#: Every plot is this many inches wide and drawn at DPI: 800 px, the width a reader sees it at.
WIDTH, DPI = 8.0, 100
#: Font sizes in points; at 800 px for 8 inches one point is 800 / 576 = 1.39 px, so legends are 13.9 px.
FONTS = {"font.size": 11, "axes.titlesize": 12, "axes.labelsize": 11, "legend.fontsize": 10,
         "xtick.labelsize": 10, "ytick.labelsize": 10}
#: A title longer than this many characters is wrapped (12 pt bold: about 80 fit in 800 px).
TITLE_WIDTH = 60
#: Text smaller than this many pixels, at the width a reader sees the plot, is unreadable.
SMALLEST_TEXT_PX = 10.0


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
    table_x: str = "t"  # the heading of the x column of the data table
    legend_below: bool = False  # the legend under the axes (where it would cover data or edge markers)


@dataclass(frozen=True)
class Plot:
    name: str  # the file stem
    title: str
    caption: str  # one sentence: what the plot shows
    chapter: str  # the spec module it illustrates ("" for the introduction)
    panels: tuple[Panel, ...]
    size: tuple[float, float] = (WIDTH, 5.0)

    @property
    def filename(self) -> str:
        return f"{self.name}.{FORMAT}"


def _steps(n: int) -> tuple[float, ...]:
    return tuple(float(t) for t in range(1, n + 1))


def _flat(values) -> tuple[float, ...]:
    return tuple(float(v) for v in np.asarray(values, dtype=np.float64).ravel())


def _back(values: tuple[float, ...]) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """A sequence's input gradients by how many steps back from the last input they lie (T − t = 0, 1, …)."""
    return tuple(float(k) for k in range(len(values))), tuple(reversed(values))


def gradient_reach() -> Plot:
    """|∂h_T/∂x_t| against the steps back T − t: the exploding relu RNN, the vanishing tanh RNN, LSTM and GRU."""
    from spec.test_02_exploding_gradient import FIVE_STEPS as EXPLODING
    from spec.test_03_vanishing_gradient import TWENTY_STEPS as VANISHING
    from spec.test_05_lstm_slower_decay import TWENTY_STEPS as LSTM
    from spec.test_07_gru import TWENTY_STEPS as GRU

    gradients = {name: _flat(np.abs(record.truth().values["grad_input"]))
                 for name, record in (("relu", EXPLODING), ("tanh", VANISHING), ("lstm", LSTM), ("gru", GRU))}
    factor = {name: float(np.median(np.array(g[:-1]) / np.array(g[1:]))) for name, g in gradients.items()}
    decades = math.log10(gradients["lstm"][0] / gradients["tanh"][0])
    far = len(gradients["tanh"]) - 1
    series = (
        Series(f"relu RNN, weights 11, T = 5: ×{factor['relu']:.0f} per step back", "relu RNN (w 11, T 5)",
               *_back(gradients["relu"]), {"color": "tab:red", "marker": "o", "markersize": 6}),
        Series(f"tanh RNN, weights 0.5, T = 20: ×{factor['tanh']:.2f} per step back", "tanh RNN (w 0.5)",
               *_back(gradients["tanh"]), {"color": "tab:blue", "marker": "s", "markersize": 5}),
        Series(f"LSTM, weights 0.5, T = 20: ×{factor['lstm']:.2f} per step back", "LSTM (w 0.5)",
               *_back(gradients["lstm"]), {"color": "tab:green", "marker": "o", "markersize": 5, "linewidth": 2.5}),
        Series(f"GRU, weights 0.5, T = 20: ×{factor['gru']:.2f} per step back", "GRU (w 0.5)",
               *_back(gradients["gru"]), {"color": "black", "marker": "^", "markersize": 8, "fillstyle": "none",
                                          "linestyle": (0, (4, 3)), "linewidth": 1.2}),
    )
    panel = Panel(
        title="", xlabel="steps back from the last input, T − t", ylabel=r"$|\partial h_T / \partial x_t|$ (log scale)",
        series=series, lines=(Line("y", 1.0, "gradient 1", {"color": "grey", "linestyle": ":"}),),
        notes=((float(far), gradients["tanh"][0], gradients["lstm"][0],
                f"LSTM: {decades:.1f} decades\nabove the tanh RNN"),),
        table_title="|∂h_T/∂x_t| by steps back T − t from the last input (upstream gradient 1 on h_T; "
                    "blank: the 5-step run has no such step)",
        table_x="T − t",
    )
    caption = (
        f"Counted in steps back from the last input, the gradient grows elevenfold per step through the relu RNN "
        f"with weights 11 (to {gradients['relu'][0]:.0f} four steps back, at t = 1 of 5), but shrinks by a factor "
        f"of about {1 / factor['tanh']:.1f} per step through the tanh RNN with weights 0.5 (to "
        f"{gradients['tanh'][0]:.2g} nineteen steps back), while the LSTM (solid green) and the GRU (dashed, "
        f"hollow triangles) with the same weights lose only about a quarter per step and end {decades:.1f} decades "
        f"above the tanh RNN."
    )
    return Plot("gradient_reach", "How far back a gradient reaches: exploding, vanishing, and the gated layers",
                caption, "", (panel,), size=(WIDTH, 5.5))


def truncated_bptt() -> Plot:
    """Full BPTT of h_20 against four 5-step chunks, from zero and carrying the detached state."""
    from spec.test_03_vanishing_gradient import TWENTY_STEPS as FULL
    from spec.test_04_truncated_bptt import CARRYING, FROM_ZERO

    full = _flat(FULL.truth().values["grad_input"])
    chunked = {record: _flat(record.truth().values["grad_input"]) for record in (FROM_ZERO, CARRYING)}
    series = (
        Series("full BPTT: ∂h_20/∂x_t", "full BPTT", _steps(20), full,
               {"color": "black", "marker": "o", "markersize": 4}),
        Series("4 chunks from a zero state (the notebook): each chunk's ∂h_5/∂x_t", "chunks from zero",
               _steps(20), chunked[FROM_ZERO], {"color": "tab:orange", "marker": "s", "linestyle": "none",
                                                "markersize": 9, "fillstyle": "none", "markeredgewidth": 1.5}),
        Series("4 chunks carrying the detached state", "chunks, state carried", _steps(20), chunked[CARRYING],
               {"color": "tab:blue", "marker": "x", "linestyle": "none", "markersize": 8, "markeredgewidth": 1.5}),
    )
    boundaries = tuple(Line("x", edge + 0.5, "chunk boundary (no gradient crosses it)" if edge == 5 else "",
                            {"color": "grey", "linestyle": ":"}) for edge in (5, 10, 15))
    panel = Panel(title="", xlabel="input step t", ylabel=r"$\partial h / \partial x_t$ (log scale)",
                  series=series, lines=boundaries,
                  table_title="input gradient of each step: full BPTT of h_20, and after the four chunks' backwards")
    zero = chunked[FROM_ZERO]
    caption = (
        f"Cut into four 5-step chunks, the tanh RNN's gradient restarts at every chunk end "
        f"({zero[4]:.4f} at the last step of a chunk from zero) and falls only to {zero[0]:.4f} within the chunk, "
        f"so the notebook's four blocks are identical, while full BPTT keeps falling to {full[0]:.2g} at t = 1; "
        f"with the detached state carried, only the last chunk (t = 16…20) coincides with full BPTT."
    )
    return Plot("truncated_bptt", "Truncated BPTT: four 5-step chunks beside full backpropagation through time",
                caption, "test_04_truncated_bptt", (panel,), size=(WIDTH, 6.0))


def dtype_limits(fixtures: Path) -> Plot:
    """What float16 makes of the exploding and vanishing runs, against float32 and float64 (recorded fixtures)."""
    from rnnspec.fixture_files import load_record
    from spec.test_02_exploding_gradient import FIVE_STEPS as EXPLODING
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
    for record, title in ((EXPLODING, "Exploding: relu RNN, weights 11, 5 steps"),
                          (VANISHING, "Vanishing: tanh RNN, weights 0.5, 20 steps")):
        values = {dtype: recorded(record, dtype) for dtype in styles}
        facts[record] = values["float16"]
        n = len(values["float64"])
        series = tuple(Series(f"{dtype} fixture", dtype, _steps(n), values[dtype], styles[dtype]) for dtype in styles)
        line = (Line("y", FLOAT16_MAX, "float16's largest number, 65504", {"color": "tab:red", "linestyle": "--"})
                if record is EXPLODING else
                Line("y", FLOAT16_ZERO_BELOW, "2^-25 ≈ 3e-8: below it float16 rounds to 0",
                     {"color": "tab:red", "linestyle": "--"}))
        panels.append(Panel(title=title, xlabel="input step t", ylabel=r"$\partial h_T / \partial x_t$ (log scale)",
                            series=series, lines=(line,), legend_below=True,
                            table_title=f"{title}: ∂h_T/∂x_t as recorded in each dtype"))
    overflowed = [t for t, v in enumerate(facts[EXPLODING], start=1) if math.isinf(v)]
    zeros = [t for t, v in enumerate(facts[VANISHING], start=1) if v == 0.0]
    caption = (
        f"In the recorded fixtures float32 and float64 hold every input gradient of both runs, while float16 "
        f"overflows to inf where the exploding gradient passes its largest number 65504 "
        f"(t = {_spans(overflowed)}, the ▲ on the top edge) and flushes to exactly 0 where the vanishing gradient "
        f"falls below 2^-25 (t = {_spans(zeros)}, the ▼ on the bottom edge)."
    )
    return Plot("dtype_limits", "Where float16 runs out of range: overflow when exploding, underflow when vanishing",
                caption, "", tuple(panels), size=(WIDTH, 10.0))


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


def figure(plot: Plot):
    """``plot`` as a matplotlib Figure (the ``docs`` extra), its panels stacked, 800 px wide at :data:`DPI`."""
    import matplotlib
    from matplotlib.figure import Figure

    with matplotlib.rc_context({"svg.hashsalt": HASHSALT, "svg.fonttype": "path", "figure.dpi": DPI, **FONTS}):
        drawn = Figure(figsize=plot.size, layout="constrained")
        axes = drawn.subplots(len(plot.panels), 1, squeeze=False)[:, 0]
        for ax, panel in zip(axes, plot.panels):
            _draw_panel(ax, panel)
        drawn.suptitle(textwrap.fill(plot.title, TITLE_WIDTH), fontsize=12, fontweight="bold")
        drawn.canvas.draw()  # lays the figure out inside the context, so text sizes are final
    return drawn


def draw(plot: Plot, folder: Path, *, fmt: str = FORMAT) -> Path:
    """Draw ``plot`` into ``folder`` with matplotlib; the same plot gives the same bytes."""
    import matplotlib

    path = folder / f"{plot.name}.{fmt}"
    drawn = figure(plot)
    with matplotlib.rc_context({"svg.hashsalt": HASHSALT, "svg.fonttype": "path"}):
        drawn.savefig(path, format=fmt, dpi=DPI, metadata={"Date": None} if fmt == "svg" else {"Software": None})
    return path


def smallest_text_px(drawn, width_px: float = WIDTH * DPI) -> tuple[float, str]:
    """The smallest text of a drawn figure in pixels when the figure is shown ``width_px`` wide, and that text."""
    from matplotlib.text import Text

    px_per_point = width_px / (drawn.get_figwidth() * 72)
    texts = [t for t in drawn.findobj(Text) if t.get_visible() and t.get_text().strip()]
    smallest = min(texts, key=lambda t: t.get_fontsize())
    return smallest.get_fontsize() * px_per_point, smallest.get_text()


def _draw_panel(ax, panel: Panel) -> None:
    from matplotlib.lines import Line2D

    finite = [v for s in panel.series for v in s.y if np.isfinite(v) and v > 0]
    finite += [line.at for line in panel.lines if line.axis == "y"]
    low, high = min(finite) / 10 ** 0.8, max(finite) * 10 ** 0.8
    ax.set_yscale("log")
    ax.set_ylim(low, high)
    edge = ax.get_xaxis_transform()  # x in data, y as a fraction of the axes: markers on the edges
    extra = []
    for s in panel.series:
        x, y = np.array(s.x), np.array(s.y)
        shown = np.isfinite(y) & (y > 0)
        ax.plot(x[shown], y[shown], label=s.label, **s.style)
        colour = s.style.get("color")
        for where, at, marker, words in ((np.isinf(y), 1.0, "^", "inf (overflow), drawn on the top edge"),
                                         (y == 0, 0.0, "v", "exactly 0 (underflow), drawn on the bottom edge")):
            if where.any():
                style = {"marker": marker, "linestyle": "none", "color": colour, "markersize": 11,
                         "markeredgecolor": "white", "markeredgewidth": 0.8}
                ax.plot(x[where], np.full(int(where.sum()), at), transform=edge, clip_on=False, zorder=5, **style)
                extra.append(Line2D([], [], label=f"{s.column}: {words}", **style))
    for line in panel.lines:
        draw_line = ax.axhline if line.axis == "y" else ax.axvline
        draw_line(line.at, label=line.label or None, **line.style)
    for x, y_low, y_high, text in panel.notes:
        ax.annotate("", xy=(x, y_high), xytext=(x, y_low),
                    arrowprops={"arrowstyle": "<->", "color": "dimgrey", "linewidth": 1.2})
        ax.text(x - 0.35, math.sqrt(y_low * y_high), text, va="center", ha="right", color="dimgrey")
    xs = [v for s in panel.series for v in s.x]
    ax.set_xlim(min(xs) - 0.6, max(xs) + 0.6)
    ax.set_xticks(range(int(min(xs)), int(max(xs)) + 1, 1 if max(xs) - min(xs) < 10 else 2))
    if panel.title:
        ax.set_title(panel.title)
    ax.set_xlabel(panel.xlabel)
    ax.set_ylabel(panel.ylabel)
    ax.grid(True, which="major", alpha=0.3)
    handles = ax.get_legend_handles_labels()[0] + extra
    if panel.legend_below:
        ax.legend(handles=handles, loc="upper center", bbox_to_anchor=(0.5, -0.16), ncol=2, framealpha=0.9)
    else:
        ax.legend(handles=handles, loc="best", framealpha=0.9)
