"""The machine the spec runs on: the facts that decide which kernels compute a recurrent layer.

Two correct PyTorch builds can round differently on two machines: MKL chooses its kernels by CPU
vendor and instruction set (``MKL_CBWR`` pins them), torch's own CPU kernels by the vector ISA
(``ATEN_CPU_CAPABILITY``), oneDNN serves the LSTM in float32 everywhere but in bfloat16 and
float16 only where the CPU has the instructions, and the thread count changes how sums are split.
A report that shows a failure or a drift names all of these, so a reader can tell a kernel
choice from a bug (the report header, ``--spec-report``, ``fixtures/PROVENANCE.json``).
"""

from __future__ import annotations

import functools
import os
import platform
import re

import torch

from rnnspec import releases

#: Environment variables that choose kernels or threads; the report shows those that are set.
KERNEL_VARIABLES = ("MKL_CBWR", "ATEN_CPU_CAPABILITY", "OMP_NUM_THREADS", "MKL_NUM_THREADS", "DNNL_MAX_CPU_ISA",
                    "ONEDNN_MAX_CPU_ISA")


def _cpuinfo(field: str) -> str | None:
    try:
        with open("/proc/cpuinfo") as handle:
            return next((line.split(":", 1)[1].strip() for line in handle if line.split(":")[0].strip() == field),
                        None)
    except OSError:
        return None


@functools.cache
def cpu() -> dict:
    """The CPU's model, vendor and the vector ISA torch's own kernels use."""
    return {"model": _cpuinfo("model name") or platform.processor() or platform.machine(),
            "vendor": _cpuinfo("vendor_id") or platform.machine(),
            "capability": cpu_capability()}


def cpu_capability() -> str | None:
    try:
        return torch.backends.cpu.get_cpu_capability()
    except (AttributeError, RuntimeError):
        return None


@functools.cache
def blas() -> dict:
    """The BLAS torch was built with and its version, as ``torch.__config__.show()`` states them; oneDNN's version."""
    shown = torch.__config__.show()
    info = re.search(r"BLAS_INFO=(\w+)", shown)
    name = info.group(1) if info else None
    version = None
    if name == "mkl":
        found = re.search(r"Math Kernel Library Version ([\w.\-]+)", shown)
        version = found.group(1) if found else None
    elif name:
        found = re.search(rf"{name}\S*\s+(?:version\s+)?v?(\d[\w.]*)", shown, re.IGNORECASE)
        version = found.group(1) if found else None
    onednn = re.search(r"(?:MKL-DNN|oneDNN)\s+v?(\d[\w.]*)", shown)
    return {"name": name, "version": version, "onednn": onednn.group(1) if onednn else None}


def describe() -> dict:
    """Everything above, as the report and PROVENANCE.json hold it (JSON-ready)."""
    return {**{f"cpu_{key}": value for key, value in cpu().items()},
            "blas": blas()["name"], "blas_version": blas()["version"], "onednn_version": blas()["onednn"],
            "onednn_rnn_dtypes": releases.onednn_rnn_dtypes(), "threads": torch.get_num_threads(),
            "kernel_variables": {name: os.environ[name] for name in KERNEL_VARIABLES if name in os.environ}}


def summary() -> str:
    """One line for the report header."""
    facts = describe()
    served = ", ".join(facts["onednn_rnn_dtypes"]) or "none (oneDNN off or absent)"
    variables = "".join(f", {name}={value}" for name, value in facts["kernel_variables"].items())
    return (f"{facts['cpu_model']} ({facts['cpu_vendor']}, {facts['cpu_capability']}), {facts['threads']} threads; "
            f"BLAS {facts['blas']} {facts['blas_version']}; oneDNN {facts['onednn_version']} serves the LSTM in "
            f"{served}{variables}")
