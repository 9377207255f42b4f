"""The spec catches a broken PyTorch, even one whose fixtures were regenerated from it.

``rnnspec/breaks.py`` breaks ``nn.RNN`` / ``nn.LSTM`` / ``nn.GRU`` on purpose (``-p rnnspec.breaks
--break NAME``). These tests establish:

* The breaks' machinery is sound: with no hook filled, its loop agrees with torch's own
  ``_VF.rnn_tanh`` / ``rnn_relu`` / ``lstm`` / ``gru`` to 1e-12 in float64, forward and backward,
  over layers, directions, layouts (packed included), bias and projections, and drops what torch
  drops between layers; every break changes exactly what its name says (forward or backward, on
  its kinds of layer only); everything is restored afterwards; no ``--break`` does nothing; an
  unknown name is a usage error listing the names.
* Every break is caught. For each break, on a copy of the repository's ``spec/``, ``fixtures/``,
  ``conftest.py``, ``pyproject.toml``, ``expectations/`` and ``selftest/test_numpy_reference.py``
  (the repository's own ``fixtures/`` are never written), one Python process runs two pytest
  sessions under the break, with ``--device cpu --dtype float64``:

  1. ``--regen-all`` with the suite's refusal to record values that disagree with the truth
     switched off (a helper plugin written into the copy): the fixtures now hold what the broken
     PyTorch computes, as if someone had regenerated them carelessly. Some fixture must change.
  2. A normal run of the chapters and of the NumPy reference's comparison with torch
     (``selftest/test_numpy_reference.py::test_matches_torch_float64``, its single-layer
     configurations of the kinds the break touches). It must fail, naming the behaviour and the
     configuration: for every kind of layer the break touches (``rnn_relu``, ``lstm``...), some
     chapter that measures that kind fails a test whose message names the chapter's behaviour
     ("exploding gradient", "LSTM slower decay"...) and a ``[cpu-float64...]`` configuration; and
     the reference comparison fails for every touched kind (``gru-1layer-unidir-...``).

  For ``gradient_perturbed_1e-4``, a plain ``--regen-all`` runs first: it is refused (exit 1,
  failures naming the configuration); and a second process then runs the chapters on a healthy
  PyTorch against the fixtures of step 1: they fail on the recorded fixtures ("recorded fixture
  ... disagrees with the truth") and on nothing else.

  The chapters run are the recording ones (with a folder under ``fixtures/``) that measure a kind
  the break touches, read from their sources (``"gru"``, ``"lstm"``...), so a new chapter joins
  in by itself. GRU: while no chapter measures ``nn.GRU``, ``gru_reset_before`` is caught by the
  reference comparison alone; no case is marked xfail.
* Sanity: with no break, the copy passes (regeneration, then a normal run), and the breaks' loop
  with no hook filled passes every chapter in float64. (It passes them in all four dtypes too, as
  checked when its float32 computation of bfloat16 and float16 layers was written; that run takes
  about 20 s, too long to repeat here.)

Speed: each process imports torch once and runs its sessions one after the other; the sessions
of one process share one torch (the chapters memoise their runs in the imported modules).
float64 alone: every break shows there, and each further dtype costs time without evidence.
"""

from __future__ import annotations

import itertools
import json
import os
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:  # make `rnnspec` importable however pytest was started
    sys.path.insert(0, str(REPO))

from repository_copy import copy_into  # noqa: E402
from rnnspec import breaks, torch_loop, zoo  # noqa: E402
from rnnspec.kinds import RECURRENCES  # noqa: E402

#: The zoo's entries these tests patch into torch with --break and regenerate fixtures from: the first nine,
#: one per kind of wrong torch (each costs a recording and a normal session); the zoo's selftest
#: (selftest/test_mutant_zoo.py) runs every entry as a --target.
BREAKS = {name: zoo.ZOO[name] for name in (
    "relu_computes_tanh", "tanh_computes_relu", "lstm_gates_swapped", "gru_reset_before", "bias_hh_ignored",
    "hidden_gradient_scaled_0_9", "hidden_state_detached", "gradient_perturbed_1e-4", "recurrence_drops_w_hh")}

#: The words each chapter's failures start with (its Truth.behaviour and assert_agrees' behaviour=).
CHAPTER_BEHAVIOURS = {
    "test_01_forward_values.py": "relu RNN forward values",
    "test_02_exploding_gradient.py": "exploding gradient",
    "test_03_vanishing_gradient.py": "vanishing gradient",
    "test_04_truncated_bptt.py": "truncated BPTT",
    "test_05_lstm_slower_decay.py": "LSTM slower decay",
    "test_06_multidimensional.py": "RNN(2, 3)",
    "test_07_gru.py": "GRU",
}
DTYPES = "float64"
COPIED = ("spec", "fixtures", "conftest.py", "pyproject.toml", "expectations", "selftest/test_numpy_reference.py")
REFERENCE_TEST = "selftest/test_numpy_reference.py::test_matches_torch_float64"


# ----------------------------------------------------------------------------------------------
# The machinery, in this process
# ----------------------------------------------------------------------------------------------


def _module(kind: str, *, layers: int, bidirectional: bool, batch_first: bool, bias: bool, proj: int):
    common = dict(input_size=3, hidden_size=4, num_layers=layers, bidirectional=bidirectional,
                  batch_first=batch_first, bias=bias, dtype=torch.float64)
    if kind in ("rnn_tanh", "rnn_relu"):
        return torch.nn.RNN(nonlinearity=kind[4:], **common)
    if kind == "lstm":
        return torch.nn.LSTM(proj_size=proj, **common)
    return torch.nn.GRU(**common)


LENGTHS = [3, 5, 2]  # packed layouts: unsorted, so torch permutes the batch (enforce_sorted=False)


def _run(kind: str, seed: int = 0, **options) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
    """Forward and backward of one float64 layer with seeded weights and inputs.

    Returns the forward tensors (output, h_n[, c_n]) and the gradients (input, h0[, c0], every parameter).
    Layouts: seqfirst, batchfirst, unbatched, and packed / packed_batchfirst (variable lengths).
    """
    layout = options.pop("layout", "seqfirst")
    given_state = options.pop("h0", True)
    generator = torch.Generator().manual_seed(seed)
    batch_first = layout in ("batchfirst", "packed_batchfirst")
    module = _module(kind, batch_first=batch_first, **options)
    with torch.no_grad():
        for parameter in module.parameters():
            parameter.copy_(torch.rand(parameter.shape, generator=generator, dtype=torch.float64) * 1.4 - 0.7)
    directions = 2 if options["bidirectional"] else 1
    steps, batch = 5, len(LENGTHS)
    x_shape = (steps, 3) if layout == "unbatched" else (batch, steps, 3) if batch_first else (steps, batch, 3)
    x = torch.randn(x_shape, generator=generator, dtype=torch.float64, requires_grad=True)
    leading = (directions * options["layers"],) + (() if layout == "unbatched" else (batch,))
    leaves, state = [x], None
    if given_state:
        h0 = torch.randn(leading + (options["proj"] or 4,), generator=generator, dtype=torch.float64,
                         requires_grad=True)
        leaves.append(h0)
        state = h0
        if kind == "lstm":
            c0 = torch.randn(leading + (4,), generator=generator, dtype=torch.float64, requires_grad=True)
            leaves.append(c0)
            state = (h0, c0)
    if layout.startswith("packed"):
        packed = pack_padded_sequence(x, torch.tensor(LENGTHS), batch_first=batch_first, enforce_sorted=False)
        output, final = module(packed, state)
        output, _ = pad_packed_sequence(output, batch_first=batch_first, total_length=steps)
    else:
        output, final = module(x, state)
    forward = [output] + (list(final) if isinstance(final, tuple) else [final])
    upstream = [torch.randn(t.shape, generator=generator, dtype=torch.float64) for t in forward]
    torch.autograd.backward(forward, upstream)
    return [t.detach() for t in forward], [leaf.grad for leaf in leaves] + [p.grad for p in module.parameters()]


def _configurations(kind: str):
    """Every layout in both directions; layers, bias, initial state (and projection) alternate across them."""
    layouts = ("seqfirst", "batchfirst", "unbatched", "packed", "packed_batchfirst")
    for i, (layout, bidirectional) in enumerate(itertools.product(layouts, (False, True))):
        yield dict(layers=1 + i % 2, bidirectional=bidirectional, layout=layout, bias=i % 4 < 2, h0=i % 3 > 0,
                   proj=2 if kind == "lstm" and i % 3 == 1 else 0)


@pytest.mark.parametrize("kind", RECURRENCES)
def test_loop_without_a_break_matches_torch_to_1e_12_in_float64(kind):
    """The loop every break builds on is torch's layer: forward and every gradient within 1e-12, over
    layers, directions, layouts (packed included), bias, projections, given or omitted initial state."""
    for options in _configurations(kind):
        expected_forward, expected_gradients = _run(kind, **options)
        before = torch_loop.handled[kind]
        with torch_loop.patched(torch_loop.NO_BREAK):
            forward, gradients = _run(kind, **options)
        assert torch_loop.handled[kind] == before + 1, f"{kind} {options}: the loop was not used"
        for index, (a, b) in enumerate(zip(forward + gradients, expected_forward + expected_gradients, strict=True)):
            assert a.shape == b.shape and (a - b).abs().max().item() <= 1e-12, (
                f"{kind} {options}: tensor {index} differs from torch's by {(a - b).abs().max().item():.3g}")


@pytest.mark.parametrize("kind", RECURRENCES)
def test_loop_drops_what_torch_drops_between_layers(kind):
    """Training with inter-layer dropout: the same outputs from the same seed, and the same random state after."""
    module = _module(kind, layers=3, bidirectional=True, batch_first=False, bias=True, proj=0)
    module.dropout = 0.5
    module.train()
    x = torch.randn(5, 2, 3, dtype=torch.float64)
    torch.manual_seed(1)
    expected, expected_next = module(x)[0], torch.rand(3)
    with torch_loop.patched(torch_loop.NO_BREAK):
        torch.manual_seed(1)
        got, got_next = module(x)[0], torch.rand(3)
    assert (got - expected).abs().max().item() <= 1e-12 and torch.equal(got_next, expected_next)


#: The breaks that leave the forward pass bitwise unchanged and break the backward only.
BACKWARD_ONLY = {"hidden_gradient_scaled_0_9", "hidden_state_detached", "gradient_perturbed_1e-4"}


@pytest.mark.parametrize("name", list(BREAKS))
def test_each_break_changes_what_its_name_says_and_nothing_else(name):
    """On its kinds the break changes the gradients, and the forward unless it is backward-only;
    on the other kinds it is bitwise the loop with no break."""
    brk = BREAKS[name]
    options = dict(layers=1, bidirectional=False, layout="seqfirst", bias=True, proj=0, h0=True)
    for kind in RECURRENCES:
        with torch_loop.patched(torch_loop.NO_BREAK):
            healthy_forward, healthy_gradients = _run(kind, **options)
        with torch_loop.patched(brk):
            broken_forward, broken_gradients = _run(kind, **options)
        forward_same = all(torch.equal(a, b) for a, b in zip(healthy_forward, broken_forward, strict=True))
        gradients_same = all(torch.equal(a, b) for a, b in zip(healthy_gradients, broken_gradients, strict=True))
        if kind not in brk.kinds:
            assert forward_same and gradients_same, f"{name} changed {kind}, which it does not claim to touch"
        else:
            assert not gradients_same, f"{name} left the gradients of {kind} unchanged"
            assert forward_same == (name in BACKWARD_ONLY), (
                f"{name} on {kind}: the forward should {'stay' if name in BACKWARD_ONLY else 'not stay'} the same")


def test_zeroed_terms_stay_in_the_graph_with_gradient_zero():
    """bias_hh_ignored and recurrence_drops_w_hh keep the parameter in the graph: its .grad exists and is 0."""
    for name, parameter in (("bias_hh_ignored", "bias_hh_l0"), ("recurrence_drops_w_hh", "weight_hh_l0")):
        module = torch.nn.LSTM(2, 3, dtype=torch.float64)
        with torch_loop.patched(BREAKS[name]):
            output, _ = module(torch.randn(4, 1, 2, dtype=torch.float64))
            output.sum().backward()
        grad = getattr(module, parameter).grad
        assert grad is not None and torch.count_nonzero(grad) == 0, f"{name}: {parameter}.grad is {grad}"


def test_patching_is_undone_and_no_option_does_nothing():
    """After a break, torch._VF is as before; without --break the plugin patches nothing and says nothing."""
    vf = torch._VF
    originals = {kind: getattr(vf, kind) for kind in RECURRENCES}
    with torch_loop.patched(BREAKS["relu_computes_tanh"]):
        assert all(getattr(vf, kind) is not originals[kind] for kind in RECURRENCES)
    assert all(getattr(vf, kind) is originals[kind] for kind in RECURRENCES)
    assert not set(vars(vf)) & set(RECURRENCES)

    config = SimpleNamespace(getoption=lambda name: None, stash=pytest.Stash())
    breaks.pytest_configure(config)
    assert all(getattr(vf, kind) is originals[kind] for kind in RECURRENCES)
    assert breaks.pytest_report_header(config) is None
    breaks.pytest_unconfigure(config)


def test_a_break_is_installed_for_the_session_and_announced_in_the_header():
    vf = torch._VF
    originals = {kind: getattr(vf, kind) for kind in RECURRENCES}
    config = SimpleNamespace(getoption=lambda name: "lstm_gates_swapped", stash=pytest.Stash())
    breaks.pytest_configure(config)
    try:
        assert all(getattr(vf, kind) is not originals[kind] for kind in RECURRENCES)
        header = breaks.pytest_report_header(config)
        assert header and "lstm_gates_swapped" in header[0] and "broken on purpose" in header[0]
    finally:
        breaks.pytest_unconfigure(config)
    assert all(getattr(vf, kind) is originals[kind] for kind in RECURRENCES)


def test_unknown_break_is_a_usage_error_listing_the_names():
    config = SimpleNamespace(getoption=lambda name: "relu_computes_sigmoid", stash=pytest.Stash())
    with pytest.raises(pytest.UsageError) as error:
        breaks.pytest_configure(config)
    assert "relu_computes_sigmoid" in str(error.value)
    assert all(name in str(error.value) for name in zoo.ZOO)
    assert "none" not in str(error.value).split("choose from")[1].split(", ")


def test_every_break_is_documented_in_the_module_docstring():
    for name in zoo.ZOO:
        assert f"``{name}``" in zoo.__doc__, f"{name} is not described in rnnspec/zoo.py's docstring"


# ----------------------------------------------------------------------------------------------
# The spec against a broken PyTorch, in a copy of the repository
# ----------------------------------------------------------------------------------------------

# Written into the copy: the careless recording of step 1. The suite refuses to record a measurement
# that disagrees with the truth (rnnspec.spec_check.assert_matches_truth(..., what="measured")); this
# plugin skips that one check, so whatever the broken PyTorch computes is recorded.
RECORD_ANYTHING = """
import pytest
from rnnspec import spec_check

_check = getattr(spec_check, "assert_matches_truth", None)


def _record_anything(arrays, truth, dtype, tolerance, *, what, **options):
    if what != "measured":
        return _check(arrays, truth, dtype, tolerance, what=what, **options)
    return {key: truth.tolerance_for(key, tolerance) for key in arrays}


def pytest_configure(config):
    if _check is None:
        raise pytest.UsageError("rnnspec.spec_check.assert_matches_truth is gone: update RECORD_ANYTHING "
                                "in selftest/test_breaks_are_caught.py")
    spec_check.assert_matches_truth = _record_anything


def pytest_unconfigure(config):
    spec_check.assert_matches_truth = _check
"""

# Written into the copy: the breaks' loop with no hook filled, for the sanity run.
LOOP_WITHOUT_A_BREAK = """
from rnnspec import torch_loop


def pytest_configure(config):
    config._rnnspec_restore = torch_loop.install(torch_loop.NO_BREAK)


def pytest_unconfigure(config):
    config._rnnspec_restore()
"""

# Runs several pytest sessions in one process, so that torch is imported once; a marker ends each.
# The sessions share imported modules and the chapters' memoised runs, which are keyed by what
# computes torch's layers (rnnspec.torch_loop.generation): a --break session never reuses another's.
DRIVER = """
import json, sys, pytest
for arguments in json.loads(sys.argv[1]):
    code = pytest.main(arguments)
    print(f"\\n@@rnnspec-session-exit {int(code)}@@", flush=True)
"""
SESSION_END = re.compile(r"^@@rnnspec-session-exit (-?\d+)@@$", re.MULTILINE)
FAILED = re.compile(r"^FAILED (\S+?)::(\S+) - (.*)$", re.MULTILINE)


@dataclass
class Session:
    exit_code: int
    output: str
    errors: str  # the process's stderr, shared by its sessions

    @property
    def failures(self) -> list[tuple[str, str, str]]:
        """(file, test id, message) of every failed test, from the short summary."""
        return FAILED.findall(self.output)

    def excerpt(self, lines: int = 40) -> str:
        tail = self.output.splitlines()[-lines:] + self.errors.splitlines()[-10:]
        return "\n".join(line.rstrip()[:300] for line in tail)


class Copy:
    """A copy of the repository's spec in a temporary directory, where sessions may write fixtures."""

    def __init__(self, root: Path):
        self.root = root
        copy_into(root, COPIED)
        (root / "record_anything.py").write_text(RECORD_ANYTHING)
        (root / "loop_without_a_break.py").write_text(LOOP_WITHOUT_A_BREAK)
        self.sessions_run = 0

    def arguments(self, *extra: str) -> list[str]:
        self.sessions_run += 1
        return ["-p", "rnnspec.breaks", "-p", "no:randomly", "-p", "no:xdist", "-p", "no:cacheprovider",
                "-q", "--tb=no", "-rf", "--device", "cpu", f"--basetemp={self.root / f'tmp-{self.sessions_run}'}",
                *extra]

    def run(self, *sessions: list[str]) -> list[Session]:
        """Run ``sessions`` one after the other in one new Python process (they must share one torch)."""
        env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTEST_", "COV_CORE"))}
        env["PYTHONPATH"] = os.pathsep.join([str(REPO)] + ([env["PYTHONPATH"]] if env.get("PYTHONPATH") else []))
        env["COLUMNS"] = "1000"  # the short summary keeps each failure's whole first line
        result = subprocess.run([sys.executable, "-c", DRIVER, json.dumps(sessions)], cwd=self.root, env=env,
                                capture_output=True, text=True, timeout=600)
        parts = SESSION_END.split(result.stdout)
        found = [Session(int(code), text, result.stderr) for text, code in zip(parts[0::2], parts[1::2])]
        assert len(found) == len(sessions), (
            f"the driver ran {len(found)} of {len(sessions)} sessions (exit {result.returncode})\n"
            f"{result.stdout[-3000:]}\n{result.stderr[-3000:]}")
        return found

    def fixtures(self) -> dict[str, dict[str, np.ndarray]]:
        return load_fixtures(self.root / "fixtures")


def load_fixtures(folder: Path) -> dict[str, dict[str, np.ndarray]]:
    arrays = {}
    for path in sorted(folder.glob("*/*.npz")):
        with np.load(path, allow_pickle=False) as archive:
            arrays[f"{path.parent.name}/{path.name}"] = {key: archive[key] for key in archive.files}
    return arrays


def changed_fixtures(before: dict, after: dict) -> list[str]:
    """The fixture files (``chapter/record-dtype.npz``) whose arrays are not all equal (NaN equal to NaN)."""
    def same(a: np.ndarray, b: np.ndarray) -> bool:
        return a.shape == b.shape and np.array_equal(a, b, equal_nan=a.dtype.kind == "f" and b.dtype.kind == "f")
    return [name for name, arrays in after.items()
            if set(arrays) != set(before.get(name, {})) or not all(same(arrays[k], before[name][k]) for k in arrays)]


def chapter_kinds() -> dict[str, set[str]]:
    """The kinds of layer each recording chapter measures, read from its source (``"rnn_tanh"``...).

    Recording chapters are those with recorded fixtures (a folder under ``fixtures/``): their claims
    are values, each with an independent truth. The others state shapes, errors or support, which
    no numerical break changes; leaving them out keeps these runs short as the spec grows.
    """
    pattern = re.compile(r"""["'](%s)["']""" % "|".join(RECURRENCES))
    return {path.name: set(pattern.findall(path.read_text())) for path in sorted((REPO / "spec").glob("test_*.py"))
            if (REPO / "fixtures" / path.stem).is_dir()}


def chapters_measuring(kinds) -> list[str]:
    """The recording chapters that measure any of ``kinds``, as paths for the command line."""
    return [f"spec/{chapter}" for chapter, measured in chapter_kinds().items() if measured & set(kinds)]


def reference_selection(kinds: tuple[str, ...]) -> str:
    """-k: every chapter test, and the reference comparison's single-layer configurations of ``kinds``."""
    return f"not test_matches_torch_float64 or (1layer and ({' or '.join(kinds)}))"


def names_a_configuration(message: str) -> bool:
    return re.search(r"\[cpu-float64(\]|-)", message) is not None


@pytest.fixture(scope="module")
def repository_fixtures():
    return load_fixtures(REPO / "fixtures")


#: The break whose process first runs a plain --regen-all, to see the suite refuse to record it:
#: the subtlest one, 1e-4 relative on gradients only.
REFUSAL_CHECKED = "gradient_perturbed_1e-4"
#: Breaks whose recorded fixtures are then run against a healthy torch: the same subtle one. The
#: others would cost a process each and show nothing new (the check does not depend on the break).
HEALTHY_RUN_AGAINST_THEIR_FIXTURES = {"gradient_perturbed_1e-4"}


@pytest.mark.parametrize("name", list(BREAKS))
def test_break_is_caught_even_with_fixtures_regenerated_from_it(name, tmp_path, repository_fixtures):
    brk = BREAKS[name]
    copy = Copy(tmp_path)
    measured_by = {kind: sorted(chapter for chapter, kinds in chapter_kinds().items() if kind in kinds)
                   for kind in brk.kinds}
    affected = sorted(set().union(*measured_by.values()))
    broken = ("--break", name, "--dtype", DTYPES)
    chapters = chapters_measuring(brk.kinds)
    sessions = [
        copy.arguments(*broken, "-p", "record_anything", "--regen-all", *chapters),
        copy.arguments(*broken, "-k", reference_selection(brk.kinds), *chapters, REFERENCE_TEST),
    ]
    if name == REFUSAL_CHECKED:
        sessions.insert(0, copy.arguments(*broken, "--regen-all", *chapters))
    *refused, recorded, caught = copy.run(*sessions)

    # 0. A plain regeneration under the break is refused, naming the configurations.
    for session in refused:
        assert session.exit_code == 1, f"--regen-all under {name} recorded without complaint:\n{session.excerpt()}"
        assert any(names_a_configuration(message) for _, _, message in session.failures), session.excerpt()

    # 1. Recording anyway does put the broken values into the fixtures.
    assert recorded.exit_code in (0, 1), recorded.excerpt()
    changed = changed_fixtures(repository_fixtures, copy.fixtures())
    if affected:
        assert changed, f"recording under {name} changed no fixture: the careless recording did not happen"

    # 2. The normal run under the break fails, naming the behaviour and the configuration.
    assert caught.exit_code == 1, f"{name} was not caught:\n{caught.excerpt()}"
    catching = {file.removeprefix("spec/") for file, _, message in caught.failures
                if file.startswith("spec/") and names_a_configuration(message)
                and CHAPTER_BEHAVIOURS.get(file.removeprefix("spec/"), "") in message}  # newer chapters: any message
    for kind, measuring in measured_by.items():
        assert not measuring or catching & set(measuring), (
            f"{name} breaks {kind}, which {', '.join(measuring)} measure, but none of them failed naming its "
            f"behaviour and a [cpu-float64] configuration:\n{caught.excerpt()}")
    for kind in brk.kinds:
        reference = [test for file, test, _ in caught.failures
                     if file == REFERENCE_TEST.split("::")[0] and re.search(rf"\[{kind}(_proj)?-1layer-", test)]
        assert reference, f"{name}: the reference comparison caught no {kind} configuration:\n{caught.excerpt()}"

    # 3. A healthy torch fails on the fixtures recorded under the break, and only on them.
    if name in HEALTHY_RUN_AGAINST_THEIR_FIXTURES:
        (healthy,) = copy.run(copy.arguments("--dtype", DTYPES, *chapters))
        assert healthy.exit_code == 1, f"fixtures recorded under {name} pass a healthy torch:\n{healthy.excerpt()}"
        messages = [message for _, _, message in healthy.failures]
        assert all("recorded fixture" in message for message in messages), healthy.excerpt()
        assert any(names_a_configuration(message) for message in messages), healthy.excerpt()
        failed = {Path(re.search(r"recorded fixture (\S+?\.npz)", message).group(1)).name for message in messages}
        assert failed <= {Path(file).name for file in changed}, (failed, changed)


def test_without_a_break_the_copy_passes(tmp_path, repository_fixtures):
    """On a healthy torch, regeneration and then a normal run of the copy pass."""
    copy = Copy(tmp_path)
    regenerated, normal = copy.run(
        copy.arguments("--dtype", DTYPES, "--regen-all", *chapters_measuring(RECURRENCES)),
        copy.arguments("--dtype", DTYPES, "-k", reference_selection(RECURRENCES), *chapters_measuring(RECURRENCES),
                       REFERENCE_TEST),
    )
    for session in (regenerated, normal):
        assert session.exit_code == 0, session.excerpt()


def test_the_loop_without_a_break_passes_the_spec(tmp_path):
    """The loop the breaks are built on is not itself caught where the breaks are run (every chapter,
    float64): a failure under a break is the break's."""
    copy = Copy(tmp_path)
    (session,) = copy.run(copy.arguments("-p", "loop_without_a_break", "--dtype", DTYPES, "spec"))
    assert session.exit_code == 0, session.excerpt()


def test_sessions_of_one_process_never_share_runs_across_a_break(tmp_path):
    """Runs are memoised per process; a --break session after a sound one must measure its broken torch, and
    a sound session after it torch as installed (``rnnspec.torch_loop.generation`` keys the memo)."""
    copy = Copy(tmp_path)
    chosen = ("--dtype", DTYPES, "spec/test_01_forward_values.py", "-k", "one_step")
    sound, broken, sound_again = copy.run(copy.arguments(*chosen), copy.arguments("--break", "bias_hh_ignored", *chosen),
                                          copy.arguments(*chosen))
    assert sound.exit_code == 0, sound.excerpt()
    assert broken.exit_code == 1 and broken.failures, f"the broken session reused the sound one's runs:\n{broken.excerpt()}"
    assert sound_again.exit_code == 0, f"the sound session reused the broken one's runs:\n{sound_again.excerpt()}"
