"""Small reports whose differences are known, for the selftests of compare, merge and the Markdown.

Each is a valid report of the current version (``selftest/test_gate_reports.py`` checks it
against the schema), so the tests exercise the real format.
"""

from __future__ import annotations

from rnnspec.gate import reports


def figures(ulp: int, abs_: float = 0.0, *, share: float | None = None, differing: int | None = None) -> dict:
    """Figures of one tensor against one witness; the share of the tolerance used is ``abs_`` unless given."""
    return {"max_abs": abs_, "max_rel": abs_, "max_ulp": ulp, "tolerance_used": abs_ if share is None else share,
            "differing": int(ulp > 0) if differing is None else differing}


def result(name: str, outcome: str, *, device="cpu", dtype="float32", ulp: int | None = None, message=None,
           reason=None, run: int = 0, tensors: dict | None = None) -> dict:
    """One test's row; ``ulp`` gives it one compared tensor ``output`` with those figures against each witness,
    ``tensors`` (name -> figures) several."""
    if tensors is None and ulp is not None:
        tensors = {"output": figures(ulp, ulp * 1e-7)}
    comparisons = [] if tensors is None else [{
        "record": name, "fixture": f"fixtures/test_01_x/{name}-{dtype}.npz", "fixture_readable": True,
        "truth": name, "law": "a law", "recording": False,
        "tensors": {key: {"shape": [2], "tolerance": {"rtol": 1e-6, "atol": 1e-5, "elementwise_relative": False,
                                                       "envelope": False},
                          "against_reference": value, "against_fixture": value,
                          "fixture_against_reference": figures(0)} for key, value in tensors.items()}}]
    return {"run": run, "nodeid": f"spec/test_01_x.py::test_{name}[{device}-{dtype}]", "chapter": "test_01_x",
            "behaviour": f"test_{name}", "claim": None, "device": device, "dtype": dtype, "params": {},
            "outcome": outcome, "reason": reason, "message": message, "duration_s": 0.01, "comparisons": comparisons,
            "authority": {"kind": "documented", "source": "https://pytorch.org/docs/stable/"}, "observations": {}}


def synthetic(torch_version: str, results: list[dict], label: str = "linux-x86_64",
              devices: tuple[str, ...] = ("cpu",), *, host: str | None = "box", target: str = "eager",
              command: tuple[str, ...] = ("pytest",)) -> dict:
    flags = {"cudnn.allow_tf32": False, "cuda.matmul.allow_tf32": False, "deterministic_algorithms": False}
    run = {"label": label, "host": host, "command": list(command), "exit_status": 0, "duration_s": 1.0,
           "python": "3.11", "platform": "Linux",
           "machine": "x86_64", "numpy": "2.4.6", "dtypes": ["float32"], "baseline": None,
           "torch": {"version": torch_version, "git_version": None, "cuda": None, "hip": None, "cudnn": None,
                     "cpu_capability": "AVX2"},
           "devices": [{"name": d, "type": d, "available": True, "description": d, "unavailable_because": None}
                       for d in devices],
           "numerics": {"in_tests": flags, "session": flags, "deterministic_warn_only": False,
                        "cudnn": {"enabled": True, "deterministic": False, "benchmark": False}},
           "totals": reports.totals(results), "target": {"name": target, "description": f"the {target} target"},
           "cpu": {"cpu_model": "AMD EPYC", "cpu_vendor": "AuthenticAMD", "cpu_capability": "AVX2", "blas": "mkl",
                   "blas_version": "2024.2", "onednn_version": "3.12.0", "onednn_rnn_dtypes": ["float32"],
                   "threads": 2, "kernel_variables": {}}}
    return {"format": "rnn-spec-report", "version": reports.VERSION, "created": "2026-01-01T00:00:00+00:00",
            "runs": [run], "results": results}


def version_2(report: dict) -> dict:
    """The same report as version 2 wrote it: no host."""
    return {**report, "version": 2, "runs": [{k: v for k, v in run.items() if k != "host"} for run in report["runs"]]}


def version_1(report: dict) -> dict:
    """The same report as version 1 wrote it: no host, target, CPU facts, authorities, observations or envelopes."""
    runs = [{key: value for key, value in run.items() if key not in ("host", "target", "cpu")}
            for run in report["runs"]]
    results = [{**{key: value for key, value in result.items() if key not in ("authority", "observations")},
                "comparisons": [{**c, "tensors": {name: {**t, "tolerance": {k: v for k, v in t["tolerance"].items()
                                                                          if k != "envelope"}}
                                                  for name, t in c["tensors"].items()}} for c in result["comparisons"]]}
               for result in report["results"]]
    return {**report, "version": 1, "runs": runs, "results": results}


BEFORE = synthetic("2.13.0", [
    result("steady", "passed", ulp=1),
    result("breaks", "passed", ulp=0),
    result("heals", "failed", ulp=40, message="AssertionError: heals disagrees"),
    result("drifts", "passed", ulp=2),
    result("improves", "passed", ulp=9),
    result("gains_support", "xfailed", reason="TypeError: ...no float64..."),
    result("gains_strict", "xfailed", reason="TypeError: ...no float16..."),
    result("loses_support", "passed"),
    result("stays_broken", "failed", message="AssertionError: stays broken, first wording"),
    result("gone", "passed"),
])
AFTER = synthetic("2.14.1", [
    result("steady", "passed", ulp=1),
    result("breaks", "failed", tensors={"output": figures(50, 5e-6, share=3.0), "h_n": figures(0)},
           message="AssertionError: breaks disagrees with the truth\n"
                                                "  law: h_t = relu(...)\n  1 of 2 values differ; worst at [1]"),
    result("heals", "passed", ulp=0),
    result("drifts", "passed", ulp=5),
    result("improves", "passed", ulp=3),
    result("gains_support", "passed"),
    result("gains_strict", "failed", message="[XPASS(strict)] TypeError: ...no float16..."),
    result("loses_support", "xfailed", reason="TypeError: now unsupported"),
    result("stays_broken", "failed", message="AssertionError: stays broken, second wording"),
    result("new", "passed"),
])
