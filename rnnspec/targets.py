"""The implementation under test: ``--target NAME`` checks another implementation against the same spec.

Every module a chapter runs is built by :func:`rnnspec.measure.build` (directly, or through
``rnnspec.measure.explicit_module``) for the implementation under test, which the session hands to
the tests as the ``implementation`` fixture (conftest.py): with explicit weights copied in, moved
to the device and dtype under test. ``--target`` chooses that implementation, for the session:

``eager`` (the default)
    ``torch.nn`` as installed: ``nn.RNN``, ``nn.LSTM``, ``nn.GRU`` and their cells.
``cells``
    each layer computed as a Python loop over the matching cell module (``nn.RNNCell``,
    ``nn.LSTMCell``, ``nn.GRUCell``) holding that layer's and direction's weights, step by step in
    the dtype under test: the loop of ``rnnspec/torch_loop.py`` with its steps done by the cells.
    The module is otherwise torch's own (class, parameter names, call signature and argument
    checks; layers, directions, ``batch_first``, unbatched input, h0/c0, packed sequences and
    inter-layer dropout all go through the loop). LSTM projections (``proj_size``) are not
    applicable: ``nn.LSTMCell`` has none. The cells are torch's own.
``script``
    ``torch.jit.script`` of the module. On torch 2.13 a scripted layer has no ``forward``: its
    first call raises AttributeError *'RecursiveScriptModule' object has no attribute 'forward'*;
    ``expectations/target-script.toml`` states it per test as a strict xfail with that error (and
    the two other things TorchScript does differently). The cells script and pass.
``compile`` (``compile:BACKEND``)
    ``torch.compile(module.forward, backend="aot_eager", fullgraph=True, dynamic=False)``, with
    ``torch._dynamo.config.allow_rnn`` on for the session (restored at its end): without it
    dynamo does not trace recurrent layers and runs them eagerly, and the target would test
    nothing new. ``aot_eager`` because it is the most that fits the suite's time: dynamo captures
    the layer, AOTAutograd replaces ``aten.lstm`` and its kin by PyTorch's own decompositions
    into matmuls and pointwise operations (``torch/_decomp/decompositions.py``: the graph
    inductor would compile) and derives their backward, and the result runs eagerly. About
    1 s per distinct configuration here; a module of a configuration already compiled reuses the
    compiled graph (its weights are graph inputs), so the session compiles each configuration
    once. ``eager`` would only capture the graph (the recurrence is still torch's kernel);
    ``inductor`` adds code generation, 25 to 55 s per configuration on a 2-core CPU. Recompile
    limits are raised and ``fail_on_recompile_limit_hit`` is set, so a layer never silently falls
    back to eager; ``fullgraph=True`` makes any graph break an error. A call with an empty tensor
    runs in a child process first (:func:`survives_in_a_child`): one crashes the process on torch
    2.13. What compile does differently is stated in ``expectations/target-compile.toml``.
``onnx`` (``onnx:torchscript``)
    the module exported by ``torch.onnx.export(..., dynamo=True)`` (``onnx:torchscript``: the older
    TorchScript-based exporter, while torch has it), weights as initializers, inputs and initial
    states as graph inputs, sequence length and batch dynamic where the exporter keeps them so, and
    every call run by ONNX Runtime's CPU execution provider (``rnnspec/deployed.py``). Forward claims
    apply; ONNX Runtime computes no gradients, so gradient claims are not applicable (the module
    declares ``rnnspec.measure.NO_GRADIENTS``). Needs the ``onnx`` extra; without it, a usage error
    names the install command. What the exporter or the runtime does differently is stated in
    ``expectations/target-onnx.toml`` (``target-onnx-torchscript.toml``).
``onnx:wrong:NAME``
    a deliberately wrong export (``rnnspec/wrong_exports.py``): the ``onnx:torchscript`` graph
    edited, e.g. a GRU in the paper's reset form; it shares that target's expectations.
``export`` (``export:decomposed``)
    ``torch.export.export`` of the module, run through ``.module()`` with the module's parameters,
    forward and backward (``export:decomposed``: after ``run_decompositions()``, the fused recurrent
    kernels replaced by PyTorch's decompositions, what other runtimes consume).
``mutant:NAME``
    a deliberately wrong implementation from the mutant zoo (``rnnspec/mutants.py``); the same as
    ``rnnspec.mutants:NAME``. ``mutant:reference`` is the zoo's loop with no mutation.
``some.module:factory`` or ``path/to/file.py:factory``
    your own implementation. ``factory(kind, input_size, hidden_size, **options)`` returns an
    ``nn.Module`` with PyTorch's parameter names (``weight_ih_l0``, ``bias_hh_l1_reverse``,
    ``weight_hr_l0``...) and call signature: ``module(input, hx=None)`` returning
    ``(output, h_n)`` (LSTM: ``(output, (h_n, c_n))``), input padded (L, N, H_in), (N, L, H_in)
    with ``batch_first``, unbatched (L, H_in), or a ``PackedSequence``. ``kind`` is one of
    ``rnn_tanh``, ``rnn_relu``, ``lstm``, ``gru`` and, for the cells chapters, ``rnn_tanh_cell``,
    ``rnn_relu_cell``, ``lstm_cell``, ``gru_cell`` (a cell returns h', or (h', c')). ``options``
    are the torch constructor's keyword arguments a test sets: ``bias``, ``num_layers``,
    ``bidirectional``, ``batch_first``, ``dropout``, ``proj_size`` (and ``nonlinearity`` where a
    test overrides the kind's). The spec moves the module with ``.to(dtype)``, copies its weights
    in (each rounded once to dtype) and moves it with ``.to(device)``; it reads ``.dropout`` and
    calls ``.train()`` / ``.eval()``.
    Raise ``NotImplementedError`` from the factory for a configuration you do not support, and
    :class:`NotApplicable` (a ``NotImplementedError``) from the module for an input you do not
    support: each test that needs it is then reported as skipped, "not applicable to --target
    X: <your message>" (``-rs`` lists them).

A test that needs something the target does not provide is skipped with a reason that starts
"not applicable to --target X:": the target said so (the test failed after a
:class:`NotApplicable` was raised during it, whatever exception the test then reported), or the
test states a property of ``torch.nn`` itself, building torch's modules directly by design
(they carry the marker ``@pytest.mark.torch_nn_itself(why)``): the default initialisation, the
constructors' argument checks and
warning, ``pack_padded_sequence``. What a target does differently is stated per test in
``expectations/target-NAME.toml`` (strict xfails with the error, see ``rnnspec/expectations.py``). Fixtures are recorded from
``torch.nn`` only: ``--regen-all`` / ``--force-regen`` under another target is a usage error.
Every memoised run is keyed by the implementation (``rnnspec.measure.memoised``), and the report header
names it.

One concern, in one file: choosing and building the implementation under test. It is over 400 lines
because each target's construction is short and they share one registry; the deployed targets live in
``rnnspec/deployed.py``, the loop in ``rnnspec/torch_loop.py``.
"""

from __future__ import annotations

import contextlib
import importlib
import importlib.util
import sys
import types
import warnings
from collections.abc import Callable
from pathlib import Path

import pytest
import torch
from torch import nn

from rnnspec import crashes, releases
from rnnspec.kinds import KINDS
from rnnspec.measure import EAGER, Implementation


class NotApplicable(NotImplementedError):
    """Raised by a target for something it does not provide; the test is skipped as not applicable.

    Each one is noted when it is made, so that a test that fails after one was raised is reported
    as not applicable even where the test caught it and failed with another exception (chapter
    15's error contracts report any unexpected exception as an AssertionError).
    """

    def __init__(self, *args):
        super().__init__(*args)
        _noted.append(self)


#: The NotApplicable exceptions made during the current test (cleared as each test starts).
_noted: list[NotApplicable] = []


#: The marker of a test that states a property of torch.nn itself, building torch's modules directly by
#: design (the default initialisation, the constructors' checks, pack_padded_sequence): under another target
#: it says nothing about that target, and is not applicable.
TORCH_NN_ITSELF = "torch_nn_itself"


def module_name(kind: str, cell: bool) -> str:
    """The factory's name of a module: the layer kinds as they are, the cells with ``_cell``."""
    return f"{kind}_cell" if cell else kind


class Target(Implementation):
    """An implementation ``--target`` can choose: a factory of modules and what is done to each once built.

    ``factory(kind, input_size, hidden_size, **options)`` (see the module docstring) and
    ``finish(module)``; ``session`` is a context manager held for the whole session (settings the
    target needs, restored afterwards).
    """

    def __init__(self, name: str, description: str, factory: Callable[..., nn.Module],
                 finish: Callable[[nn.Module], nn.Module] | None = None,
                 session: Callable[[], contextlib.AbstractContextManager] | None = None,
                 summary=None, expectations: str | None = None):
        self.name, self.description, self.factory = name, description, factory
        self._finish, self.session = finish, session or contextlib.nullcontext
        #: what the target did, for the end of the session: ``lines()``, and ``data()`` / ``absorb(data)`` to gather
        #: it from pytest-xdist's workers (rnnspec.deployed.Summary); None: nothing to say
        self.summary = summary
        #: whose expectations/target-*.toml applies (a wrong export shares its exporter's); see :func:`expectations_name`
        self.expectations = expectations or name

    def construct(self, kind: str, input_size: int, hidden_size: int, *, cell: bool, dtype: torch.dtype = torch.float64,
                  **options) -> nn.Module:
        name = module_name(kind, cell)
        try:
            module = self.factory(name, input_size, hidden_size, **options)
        except NotApplicable:
            raise
        except NotImplementedError as error:
            raise NotApplicable(f"{name}({input_size}, {hidden_size}, {_words(options)}): {error}") from error
        return module.to(dtype)

    def finish(self, module: nn.Module) -> nn.Module:
        return module if self._finish is None else self._finish(module)

    def __repr__(self) -> str:
        return f"Target({self.name!r})"


def _words(options: dict) -> str:
    return ", ".join(f"{key}={value!r}" for key, value in options.items())


def torch_module(kind: str, input_size: int, hidden_size: int, **options) -> nn.Module:
    """torch.nn's module of ``kind`` (a factory's name: ``lstm``, ``gru_cell``...), default initialisation."""
    return KINDS[kind].construct(input_size, hidden_size, **options)


# ---------------------------------------------------------------------------------------------
# The built-in targets
# ---------------------------------------------------------------------------------------------

def cell_loop(kind: str, input_size: int, hidden_size: int, **options) -> nn.Module:
    """The ``cells`` target: torch's layer, computed as a loop over its cell module; the cells as they are.

    The loop is that of rnnspec/torch_loop.py with nothing broken and each step done by the cell
    (imported here: the default run does not need it).
    """
    from rnnspec import torch_loop  # noqa: PLC0415

    if options.get("proj_size"):
        raise NotImplementedError("proj_size: nn.LSTMCell has no projection, so a loop of cells cannot project")
    module = torch_module(kind, input_size, hidden_size, **options)
    cells = torch_loop.Break("cells", "nothing: each step computed by torch's cell module", cell_modules=True)
    return module if KINDS[kind].cell else torch_loop.routed(module, cells)


#: The backend of ``--target compile`` (see the module docstring for why).
COMPILE_BACKEND = "aot_eager"


def compile_settings() -> contextlib.AbstractContextManager:
    """Dynamo traces recurrent layers, never silently falls back to eager, and forgets its graphs afterwards."""
    import torch._dynamo  # noqa: PLC0415 (only the compile target needs it)

    stack = contextlib.ExitStack()
    stack.callback(torch._dynamo.reset)
    stack.enter_context(torch._dynamo.config.patch(allow_rnn=True, **releases.dynamo_recompile_settings(100_000)))
    return stack


def compiled(backend: str) -> Callable[[nn.Module], nn.Module]:
    """The module with its forward compiled; a call with an empty tensor is first tried in a child process."""
    def finish(module: nn.Module) -> nn.Module:
        compiled_forward = torch.compile(module.forward, backend=backend, fullgraph=True, dynamic=False)

        def forward(self, *args, **kwargs):
            if any(isinstance(a, torch.Tensor) and a.numel() == 0 for a in (*args, *kwargs.values())):
                survives_in_a_child(self, args, kwargs, backend)
            return compiled_forward(*args, **kwargs)
        module.forward = types.MethodType(forward, module)
        return module
    return finish


_CHILD = """
import sys, torch
module, args, kwargs, grad, backend = torch.load(sys.argv[1] + "/call.pt", weights_only=False)
torch._dynamo.config.allow_rnn = True
module.forward = torch.compile(module.forward, backend=backend, fullgraph=True, dynamic=False)
with torch.set_grad_enabled(grad):
    try:
        module(*args, **kwargs)
    except Exception:
        pass  # an exception is the parent's to raise and the test's to judge; only a crash is the child's to report
"""


def survives_in_a_child(module: nn.Module, args: tuple, kwargs: dict, backend: str) -> None:
    """Run the compiled call in a child process first (rnnspec/crashes.py); raise RuntimeError if it kills the child.

    On torch 2.13 a compiled float32 nn.LSTM on an empty batch kills the process with SIGFPE (the
    LSTM's decomposition picks oneDNN's mkldnn_rnn_layer on CPU, which cannot run an empty batch);
    the child takes about 4 s, once per configuration.
    """
    shapes = tuple(tuple(a.shape) if isinstance(a, torch.Tensor) else repr(a) for a in (*args, *kwargs.values()))
    key = ("compile", type(module).__qualname__, module.extra_repr(), str(next(module.parameters()).dtype), shapes,
           torch.is_grad_enabled(), backend)

    def write_payload(folder: Path) -> None:
        forward = module.__dict__.pop("forward")  # the instance's compiled forward does not pickle
        try:
            detached = lambda a: a.detach() if isinstance(a, torch.Tensor) else a  # noqa: E731
            torch.save((module, tuple(detached(a) for a in args), {k: detached(v) for k, v in kwargs.items()},
                        torch.is_grad_enabled(), backend), folder / "call.pt")
        finally:
            module.forward = forward
    crashes.refuse_if_it_crashes(key, _CHILD, write_payload,
                                 f"torch.compile(backend={backend!r}) of {type(module).__name__}({module.extra_repr()}) "
                                 f"on inputs of shapes {list(shapes)}")


def scripted(module: nn.Module) -> nn.Module:
    """``torch.jit.script(module)``, without its deprecation warning (the target uses TorchScript on purpose)."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", "`torch.jit.script` is deprecated", DeprecationWarning)
        return torch.jit.script(module)


def _eager() -> Implementation:
    return EAGER


def _cells() -> Target:
    return Target("cells", "each layer a Python loop over torch's cell module, same weights", cell_loop)


def _script() -> Target:
    return Target("script", "torch.jit.script of torch.nn's module", torch_module, finish=scripted)


def _compile(backend: str = COMPILE_BACKEND) -> Target:
    return Target(f"compile:{backend}" if backend != COMPILE_BACKEND else "compile",
                  f"torch.compile(backend={backend!r}, fullgraph=True, dynamic=False), allow_rnn on",
                  torch_module, finish=compiled(backend), session=compile_settings)


def _mutant(name: str) -> Target:
    from rnnspec import mutants  # noqa: PLC0415 (the zoo imports this module)
    if name not in mutants.IMPLEMENTATIONS:
        raise pytest.UsageError(f"--target mutant:{name}: no such implementation; choose from "
                                f"{', '.join(mutants.IMPLEMENTATIONS)}")
    return Target(f"mutant:{name}", mutants.IMPLEMENTATIONS[name].models, mutants.factory(name))


#: The install command of the onnx extra, named by the usage error of a session without it.
ONNX_EXTRA = "python -m pip install -e '.[onnx]'"


def _needs(spec: str, *packages: str) -> None:
    """A usage error naming the install command where a package of the onnx extra is missing."""
    missing = [name for name in packages if importlib.util.find_spec(name) is None]
    if missing:
        raise pytest.UsageError(f"--target {spec} needs {', '.join(missing)}, from the project's onnx extra: "
                                f"{ONNX_EXTRA}")


def _deployed(runtime) -> Target:
    """A deployed target (rnnspec/deployed.py): torch.nn's module, its forward exported and run by ``runtime``."""
    from rnnspec import deployed  # noqa: PLC0415 (imports this module; only the deployed targets need it)

    return Target(runtime.name, runtime.description, torch_module, finish=deployed.deploy(runtime),
                  session=runtime.session, summary=deployed.Summary(runtime),
                  expectations=getattr(runtime, "expectations", None))


ONNX_EXPORTERS = {"dynamo": "torch.onnx.export(dynamo=True)", "torchscript": "torch.onnx.export(dynamo=False)"}


def _onnx(exporter: str = "dynamo") -> Target:
    _needs(f"onnx:{exporter}" if exporter != "dynamo" else "onnx", "onnx", "onnxruntime",
           *(["onnxscript"] if exporter == "dynamo" else []))
    from rnnspec import deployed  # noqa: PLC0415

    name = "onnx" if exporter == "dynamo" else f"onnx:{exporter}"
    if exporter == "torchscript" and not deployed.has_torchscript_exporter():
        raise pytest.UsageError(f"--target {name}: torch {torch.__version__} no longer has the TorchScript-based "
                                f"ONNX exporter; use --target onnx")
    return _deployed(deployed.OnnxRuntime(name, exporter, f"{ONNX_EXPORTERS[exporter]} of torch.nn's module, run by "
                                                          f"ONNX Runtime's CPU execution provider"))


def _wrong_export(name: str) -> Target:
    _needs(f"onnx:wrong:{name}", "onnx", "onnxruntime")
    from rnnspec import deployed, wrong_exports  # noqa: PLC0415

    if name not in wrong_exports.CATALOGUE:
        raise pytest.UsageError(f"--target onnx:wrong:{name}: no such wrong export; choose from "
                                f"{', '.join(wrong_exports.CATALOGUE)}")
    exporter = "torchscript" if deployed.has_torchscript_exporter() else "dynamo"
    base = _onnx(exporter)
    wrong = wrong_exports.CATALOGUE[name]
    runtime = deployed.OnnxRuntime(f"onnx:wrong:{name}", exporter, f"{base.description}, graph edited: {wrong.bug}",
                                   edit=wrong.edit)
    runtime.expectations = base.name  # what the exporter does not do is stated once, for the correct export
    return _deployed(runtime)


def _export(variant: str = "") -> Target:
    from rnnspec import deployed  # noqa: PLC0415

    return _deployed(deployed.TorchExport(decomposed=variant == "decomposed"))


BUILT_IN: dict[str, Callable[[], Implementation]] = {"eager": _eager, "cells": _cells, "script": _script,
                                                         "compile": _compile, "onnx": _onnx, "export": _export}
FORMS = ("eager, cells, script, compile[:BACKEND], onnx, onnx:torchscript, onnx:wrong:NAME, export, "
         "export:decomposed, mutant:NAME, some.module:factory or path/to/file.py:factory")


def resolve(spec: str, *, root: Path | None = None) -> Implementation:
    """The target ``--target spec`` names; a relative file path is taken from ``root`` (default: the cwd)."""
    if spec in BUILT_IN:
        return BUILT_IN[spec]()
    prefix, colon, rest = spec.partition(":")
    if colon and prefix == "compile" and rest:
        return _compile(rest)
    if colon and prefix == "mutant":
        return _mutant(rest)
    if colon and prefix == "onnx" and rest.startswith("wrong:"):
        return _wrong_export(rest.removeprefix("wrong:"))
    if colon and prefix == "onnx" and rest in ONNX_EXPORTERS:
        return _onnx(rest)
    if spec == "export:decomposed":
        return _export("decomposed")
    location, colon, attribute = spec.rpartition(":")
    if not colon or not location or not attribute:
        raise pytest.UsageError(f"--target {spec!r}: unknown target; use one of {FORMS}")
    module = _load(location, spec, root or Path.cwd())
    try:
        factory = getattr(module, attribute)
    except AttributeError:
        raise pytest.UsageError(f"--target {spec!r}: {location} has no attribute {attribute!r}") from None
    if not callable(factory):
        raise pytest.UsageError(f"--target {spec!r}: {location}:{attribute} is not callable")
    return Target(spec, f"{attribute} from {location}", factory)


def _load(location: str, spec: str, root: Path) -> types.ModuleType:
    if location.endswith(".py") or "/" in location or "\\" in location:
        path = (root / location).resolve()
        if not path.is_file():
            raise pytest.UsageError(f"--target {spec!r}: no file {path}")
        name = f"rnnspec_target_{abs(hash(str(path)))}"
        loader_spec = importlib.util.spec_from_file_location(name, path)
        module = importlib.util.module_from_spec(loader_spec)
        sys.modules[name] = module  # dataclasses and pickling look modules up by name
        loader_spec.loader.exec_module(module)
        return module
    try:
        return importlib.import_module(location)
    except ImportError as error:
        raise pytest.UsageError(f"--target {spec!r}: cannot import {location}: {error}") from None


# ---------------------------------------------------------------------------------------------
# The pytest plugin
# ---------------------------------------------------------------------------------------------

_ACTIVE = pytest.StashKey[Implementation]()
_RESTORE = pytest.StashKey[contextlib.ExitStack]()


def pytest_addoption(parser):
    group = parser.getgroup("rnn-spec", "PyTorch recurrent-layer spec")
    group.addoption("--target", default="eager", metavar="NAME",
                    help=f"the implementation under test: {FORMS} (default: eager, torch.nn as installed)")
    group.addoption("--full-zoo", action="store_true", default=False,
                    help="selftest/test_mutant_zoo.py runs every mutant of rnnspec/mutants.py, not a representative "
                         "subset (also RNNSPEC_FULL_ZOO=1)")


def pytest_configure(config):
    config.addinivalue_line("markers", f"{TORCH_NN_ITSELF}(why): the test states torch.nn itself (why), building "
                                       f"torch's modules directly: not applicable under another --target")
    spec = config.getoption("--target")
    target = resolve(spec, root=config.invocation_params.dir)
    if target is not EAGER and (config.getoption("regen_all", False) or config.getoption("force_regen", False)):
        raise pytest.UsageError(f"--target {spec}: fixtures are recorded from torch.nn only (--target eager)")
    stack = contextlib.ExitStack()
    if isinstance(target, Target):
        stack.enter_context(target.session())
    config.stash[_ACTIVE] = target
    config.stash[_RESTORE] = stack


def pytest_unconfigure(config):
    stack = config.stash.get(_RESTORE, None)
    if stack is not None:
        stack.close()
        del config.stash[_RESTORE]


def active(config) -> Implementation:
    """The session's target (eager where this plugin is not loaded)."""
    return config.stash.get(_ACTIVE, EAGER)


def describe(target: Implementation) -> str:
    return f"{target.name} ({getattr(target, 'description', 'torch.nn as installed')})"


def pytest_report_header(config):
    return [f"rnn-spec target: {describe(active(config))}"]


def _summary(config):
    return getattr(active(config), "summary", None)


def pytest_terminal_summary(terminalreporter, config):
    summary = _summary(config)
    for line in summary.lines() if summary is not None else ():
        terminalreporter.write_line(line)


def pytest_sessionfinish(session):
    output = getattr(session.config, "workeroutput", None)  # set on a pytest-xdist worker
    if output is not None and _summary(session.config) is not None:
        output["rnnspec_target_summary"] = _summary(session.config).data()


@pytest.hookimpl(optionalhook=True)
def pytest_testnodedown(node, error):
    """pytest-xdist's controller: a worker finished; add what its target did to the session's summary."""
    data = getattr(node, "workeroutput", {}).get("rnnspec_target_summary")
    if data is not None and _summary(node.config) is not None:
        _summary(node.config).absorb(data)


def expectations_name(target: Implementation) -> str:
    """The name under which ``expectations/target-NAME.toml`` states what ``target`` does differently: the
    target's name (a wrong export's: its exporter's), with ``:`` written ``-`` (``target-onnx-torchscript.toml``)."""
    return getattr(target, "expectations", target.name).replace(":", "-")


def pytest_collection_modifyitems(config, items):
    target = active(config)
    if target is EAGER:
        return
    for item in items:
        marker = item.get_closest_marker(TORCH_NN_ITSELF)
        if marker is not None:
            item.add_marker(pytest.mark.skip(reason=f"not applicable to --target {target.name}: the test "
                                                    f"{marker.args[0]}"))


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item):
    _noted.clear()
    try:
        return (yield)
    except Exception:
        if not _noted:
            raise
        raise pytest.skip.Exception(f"not applicable to --target {active(item.config).name}: {_noted[0]}",
                                    _use_item_location=True) from None
    finally:
        _noted.clear()
