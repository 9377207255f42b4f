"""Property-based configurations with Hypothesis: what chapter 17 draws, how many, and how a run is reproduced.

**What is drawn** (:func:`configurations`): a kind of layer, its input, hidden and projection
sizes, layers, directions, batch_first, unbatched input, h0/c0, packed lengths (sorted or not),
bias, evaluation mode with dropout, the memory layout of the input and of the initial states
(``rnnspec/layouts.py``), whether the output gets an upstream gradient too, and the seed of the
values (``rnnspec/configurations.py``). Sizes are small (:data:`SMALL`) except for at most **one
large dimension at a time** (:data:`LARGE`): hundreds of steps, hundreds of hidden units, or
dozens of sequences in a batch, where kernels change path (chunked or persistent time loops,
blocked GEMMs, vectorised batch bodies with scalar tails). One large dimension at a time is cheap;
all of them at once is not, and a bug of one of them shows alone.

**Three families**, one test each (:data:`FAMILIES`): padded input of every kind, packed sequences
of every kind, projected LSTMs; a target that lacks one (``cells``: projections; ``compile``: packed
sequences) loses that test only.

**In every run**: the explicit examples (:data:`EXAMPLES`) reach each large dimension, each with a
non-contiguous layout, and every kind of layer, whatever Hypothesis draws; Hypothesis adds
:data:`DEFAULT_EXAMPLES` drawn examples per test.

**Profiles.** ``rnn-spec`` (the default run and CI): derandomised (the examples are a function of
the test alone: every run draws the same), no example database, no deadline. ``rnn-spec-explore``:
:data:`EXPLORE_EXAMPLES` random examples per test, failures kept in ``.hypothesis/`` and replayed
first next time::

    python -m pytest spec/test_17_sizes_and_layouts.py --hypothesis-profile=rnn-spec-explore [--hypothesis-seed=N]

A profile named with ``--hypothesis-profile`` is Hypothesis' own (any registered one works); this
module registers its two before Hypothesis' plugin loads one (:func:`pytest_configure`, a plugin
listed in conftest.py). Hypothesis itself is imported only when a property test is collected, so a
run without them pays nothing for it.

**A failure** shows Hypothesis' minimal configuration (shrunk towards small sizes, contiguous
tensors and default options: the smallest configuration that still fails), as a constructor call to
paste into an ``@example``, and the chapter attaches a standalone reproduction snippet with
``hypothesis.note`` (:meth:`rnnspec.configurations.Configuration.snippet`).

**A target without gradients** (ONNX Runtime: ``rnnspec.measure.NO_GRADIENTS``): every example's
forward tensors are checked, and the test is then not applicable for its gradients
(:func:`forward_only_then_not_applicable`), not after the first example.
"""

from __future__ import annotations

import contextvars
import functools

import pytest

from rnnspec.configurations import Configuration
from rnnspec.kinds import RECURRENCES
from rnnspec.layouts import LAYOUTS, applicable
from rnnspec.spec_check import then_its_gradients

DEFAULT = "rnn-spec"
EXPLORE = "rnn-spec-explore"
#: Drawn examples per test in the default run, besides the explicit ones (chapter 17's speed budget).
DEFAULT_EXAMPLES = 2
#: Drawn examples per test with ``--hypothesis-profile=rnn-spec-explore``.
EXPLORE_EXAMPLES = 300

#: (smallest, largest) of each size when it is small, and when it is the one large dimension.
SMALL = {"steps": (1, 6), "batch": (1, 4), "input_size": (1, 5), "hidden_size": (1, 6)}
LARGE = {"steps": (100, 400), "batch": (17, 64), "hidden_size": (100, 320)}
#: Dropout probabilities drawn in evaluation mode (where dropout is the identity whatever p is).
DROPOUTS = (0.0, 0.5, 0.9)

#: The explicit examples of every run, per family: each large dimension at least once, each with
#: non-contiguous tensors, every kind of layer (the relu RNN with more layers, in evaluation mode with
#: dropout, input and states expanded from one row). The long one has an upstream gradient on h_n only (a
#: gradient summed over hundreds of steps in bfloat16 lies beyond the row, and sizing the step-by-step
#: envelope of a 200-step run takes seconds), and its seed keeps every gradient above float32's smallest
#: normal number (2.4e-36 at step 1): subnormal arithmetic is slow on x86 CPUs, and a gradient that
#: vanishes through that range costs the narrow dtypes, computed in float32, up to a second.
EXAMPLES = {
    "padded": (
        Configuration("rnn_tanh", steps=200, batch=2, input_size=3, hidden_size=4, initial_state=True,
                      state_layout="transposed", input_layout="transposed", seed=22),
        Configuration("lstm", steps=3, batch=2, input_size=5, hidden_size=160, initial_state=True,
                      state_layout="strided", input_layout="time_innermost", upstream_output=True, seed=2),
        Configuration("rnn_relu", steps=5, batch=33, input_size=4, hidden_size=6, num_layers=2, batch_first=True,
                      initial_state=True, state_layout="expanded", training=False, dropout=0.9,
                      input_layout="expanded", upstream_output=True, seed=5),
    ),
    "packed": (
        Configuration("gru", steps=6, batch=37, input_size=3, hidden_size=5, bidirectional=True, batch_first=True,
                      lengths=tuple(1 + (7 * row) % 6 for row in range(37)), input_layout="strided",
                      upstream_output=True, seed=3),
    ),
    "projections": (
        Configuration("lstm", steps=4, batch=3, input_size=4, hidden_size=128, proj_size=24, initial_state=True,
                      state_layout="expanded", input_layout="misaligned", upstream_output=True, seed=4),
    ),
}


#: The families chapter 17 tests apart (a target may lack one: ``cells`` has no projections, ``compile`` cannot
#: trace packed sequences): padded input of every kind, packed sequences of every kind, projected LSTMs.
FAMILIES = ("padded", "packed", "projections")


def configurations(family: str = "padded", *, large: bool | None = None):
    """The strategy of :class:`Configuration` of a family (:data:`FAMILIES`): every kind with padded input,
    every kind with packed input (lengths sorted or not), or LSTMs with ``proj_size`` (padded input); small
    sizes with at most one large dimension, and every option and layout that applies.

    In the default profile the drawn examples are small, and the explicit ones take the large
    dimensions (the speed budget: a drawn large example costs as much as all the explicit ones);
    with any other profile (exploring), three drawn examples in four have one large dimension.
    ``large`` says so explicitly (True: large dimensions are drawn; False: they are not).

    Each choice shrinks towards the simplest: no large dimension, batched, one layer, one direction,
    sequence-first, bias, zeros for h0, training mode, contiguous tensors, upstream on h_n only, seed 0.
    """
    from hypothesis import strategies as st  # noqa: PLC0415 (Hypothesis is imported when a property test is)

    if family not in FAMILIES:
        raise ValueError(f"unknown family {family!r}; choose from {FAMILIES}")
    drawn_large = tuple(LARGE) if (exploring() if large is None else large) else ()
    projections, packed = family == "projections", family == "packed"

    @st.composite
    def draw_configuration(draw) -> Configuration:
        kind = "lstm" if projections else draw(st.sampled_from(RECURRENCES))
        large = draw(st.sampled_from((None, *drawn_large)))

        def size(name: str, smallest: int = 1) -> int:
            low, high = (LARGE if name == large else SMALL)[name]
            return draw(st.integers(max(low, smallest), high))

        steps, input_size = size("steps"), size("input_size")
        hidden_size = size("hidden_size", 2 if projections else 1)
        proj_size = draw(st.integers(1, hidden_size - 1)) if projections else 0
        batch = None if large != "batch" and not packed and draw(st.booleans()) else size("batch")
        num_layers = draw(st.integers(1, 3 if large is None else 2))
        bidirectional = draw(st.booleans())
        batch_first = batch is not None and draw(st.booleans())
        bias = not draw(st.booleans())
        initial_state = draw(st.booleans())
        lengths, enforce_sorted = None, False
        if packed:
            lengths = draw(st.lists(st.integers(1, steps), min_size=batch, max_size=batch))
            enforce_sorted = draw(st.booleans())
            lengths = tuple(sorted(lengths, reverse=True) if enforce_sorted else lengths)
        training = not draw(st.booleans())
        dropout = draw(st.sampled_from(DROPOUTS)) if not training and num_layers > 1 else 0.0
        drawn = Configuration(kind, steps, batch, input_size, hidden_size, proj_size, num_layers, bidirectional,
                              batch_first, bias, initial_state, lengths, enforce_sorted, training, dropout)
        input_layout = draw(st.sampled_from([name for name in LAYOUTS if applicable(
            name, time_axis=drawn.time_axis, batch_axis=drawn.batch_axis, ndim=2 if batch is None else 3)]))
        state_layout = draw(st.sampled_from([name for name in LAYOUTS if applicable(
            name, time_axis=None, batch_axis=drawn.state_batch_axis, ndim=2 if batch is None else 3)])) \
            if initial_state else "contiguous"
        return Configuration(**{**vars(drawn), "input_layout": input_layout, "state_layout": state_layout,
                                "upstream_output": draw(st.booleans()), "seed": draw(st.integers(0, 2**16 - 1))})

    return draw_configuration()


def explicit(examples: tuple[Configuration, ...]):
    """``hypothesis.example(configuration=...)`` for each of ``examples``: run in every run, before any drawn one."""
    from hypothesis import example  # noqa: PLC0415

    def decorate(test):
        for configuration in reversed(examples):
            test = example(configuration=configuration)(test)
        return test
    return decorate


def property_test(family: str):
    """The decorators of chapter 17's test of ``family`` (:data:`FAMILIES`), outermost first: runs without
    gradients checked example by example (:func:`forward_only_then_not_applicable`), the profile
    (:func:`profile`), configurations drawn for the family (:func:`configurations`), its explicit examples first
    (:func:`explicit`)."""
    from hypothesis import given  # noqa: PLC0415

    def decorate(test):
        test = explicit(EXAMPLES[family])(test)
        test = given(configuration=configurations(family))(test)
        return forward_only_then_not_applicable(profile()(test))
    return decorate


#: While a property test runs under :func:`forward_only_then_not_applicable`: the ``no_gradients`` of the runs
#: whose forward tensors were checked without gradients (None outside such a test).
_WITHOUT_GRADIENTS: contextvars.ContextVar[list | None] = contextvars.ContextVar("without_gradients", default=None)


def forward_only_then_not_applicable(test):
    """Outermost decorator of a property test: runs without gradients (:func:`checked_without_gradients`) let every
    example check its forward tensors, and the test is not applicable (their ``no_gradients()``) once all passed."""
    @functools.wraps(test)
    def run(*args, **kwargs):
        pending = []
        token = _WITHOUT_GRADIENTS.set(pending)
        try:
            test(*args, **kwargs)
        finally:
            _WITHOUT_GRADIENTS.reset(token)
        if pending:
            raise pending[0]()
    return run


def checked_without_gradients(measurement) -> None:
    """After an example's tensors were checked: a run without gradients is noted for the end of the test (under
    :func:`forward_only_then_not_applicable`), or, outside one, raises its ``no_gradients()`` now."""
    pending = _WITHOUT_GRADIENTS.get()
    if pending is None or measurement.no_gradients is None:
        then_its_gradients(measurement)  # raises for a run without gradients, outside such a test
        return
    pending.append(measurement.no_gradients)


def register_profiles() -> None:
    """Register the ``rnn-spec`` and ``rnn-spec-explore`` profiles (module docstring), once: a profile loaded
    with ``--hypothesis-profile`` stays the object registered."""
    from hypothesis import HealthCheck, settings  # noqa: PLC0415
    from hypothesis.errors import InvalidArgument  # noqa: PLC0415

    try:
        settings.get_profile(EXPLORE)
        return
    except InvalidArgument:
        pass
    from hypothesis.database import DirectoryBasedExampleDatabase  # noqa: PLC0415

    # Every setting that matters is explicit: a profile inherits the rest from the one in force, which is
    # Hypothesis' own "ci" profile (derandomised, no database) where the CI variable is set.
    common = dict(deadline=None, print_blob=True,
                  suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
    settings.register_profile(DEFAULT, max_examples=DEFAULT_EXAMPLES, derandomize=True, database=None, **common)
    settings.register_profile(EXPLORE, max_examples=EXPLORE_EXAMPLES, derandomize=False,
                              database=DirectoryBasedExampleDatabase(".hypothesis/examples"), **common)


def exploring() -> bool:
    """Whether the property tests run under another profile than ``rnn-spec`` (``--hypothesis-profile``)."""
    from hypothesis import settings  # noqa: PLC0415

    return profile() is not settings.get_profile(DEFAULT)


def profile():
    """The settings of the property tests: the profile ``--hypothesis-profile`` chose, else ``rnn-spec``."""
    from hypothesis import settings  # noqa: PLC0415
    from hypothesis.errors import InvalidArgument  # noqa: PLC0415

    register_profiles()
    chosen = settings.default  # Hypothesis' own profile ("default", or "ci" where the CI variable is set) unless
    own = []                   # --hypothesis-profile loaded another
    for name in ("default", "ci"):
        try:
            own.append(settings.get_profile(name))
        except InvalidArgument:  # a Hypothesis without a "ci" profile
            pass
    return settings.get_profile(DEFAULT) if any(chosen is hypothesis_own for hypothesis_own in own) else chosen


#: The marker of a property-based test: its examples have a speed budget of their own (bench/ratio.py).
MARKER = "property"


@pytest.hookimpl(tryfirst=True)
def pytest_configure(config):
    """Register the ``property`` marker, and this module's profiles before Hypothesis' plugin loads the one
    ``--hypothesis-profile`` names."""
    config.addinivalue_line("markers", f"{MARKER}: a property-based test (Hypothesis); bench/ratio.py measures its "
                                       "share of the run (-m 'not property' leaves it out)")
    if config.getoption("hypothesis_profile", None) in (DEFAULT, EXPLORE):
        register_profiles()
