"""A run's environment as the report records it: the machine, torch build, devices, numerics flags,
the implementation under test and the fixtures' baseline (one entry of the report's ``runs``)."""

from __future__ import annotations

import platform as _platform

from rnnspec.gate import provenance


def describe_run(config, *, exitstatus: int | None, duration: float) -> dict:
    """The run's environment: machine, torch build, devices, numerics flags, target, fixtures' baseline."""
    import numpy
    import torch

    from rnnspec import machine, numerics, targets

    try:
        baseline = provenance.read(config.rootpath / "fixtures")
    except provenance.ProvenanceError:
        baseline = None
    with numerics.pinned_numerics():
        in_tests = {name: provenance.plain(value) for name, value in numerics.numerics_flags().items()}
    cudnn = torch.backends.cudnn
    target = targets.active(config)
    return {
        "label": config.getoption("spec_report_label") or f"{_platform.system().lower()}-{_platform.machine()}",
        "host": _platform.node() or None,
        "command": ["pytest", *config.invocation_params.args],
        "exit_status": exitstatus,
        "duration_s": round(duration, 3),
        "python": _platform.python_version(),
        "platform": _platform.platform(),
        "machine": _platform.machine(),
        "torch": {"version": torch.__version__, "git_version": getattr(torch.version, "git_version", None),
                  "cuda": torch.version.cuda, "hip": getattr(torch.version, "hip", None),
                  "cudnn": cudnn.version() if cudnn.is_available() else None,
                  "cpu_capability": machine.cpu_capability()},
        "numpy": numpy.__version__,
        "devices": [describe_device(device) for device in getattr(config, "spec_devices", [])],
        "dtypes": list(getattr(config, "spec_dtypes", [])),
        "numerics": {
            "in_tests": in_tests,
            "session": {name: provenance.plain(value) for name, value in numerics.numerics_flags().items()},
            "cudnn": {"enabled": bool(cudnn.enabled), "deterministic": bool(cudnn.deterministic),
                      "benchmark": bool(cudnn.benchmark)},
            "deterministic_warn_only": bool(torch.is_deterministic_algorithms_warn_only_enabled()),
        },
        "baseline": baseline,
        "totals": {},
        "target": {"name": target.name, "description": getattr(target, "description", "torch.nn as installed")},
        "cpu": machine.describe(),
    }


def describe_device(device) -> dict:
    description = None
    if device.unavailable_because is None:
        try:
            description = _device_name(device.name)
        except Exception as error:  # a description is a courtesy: never fail the run for it
            description = f"(no description: {type(error).__name__})"
    return {"name": device.name, "type": device.type, "available": device.unavailable_because is None,
            "description": description, "unavailable_because": device.unavailable_because}


def _device_name(name: str) -> str | None:
    import torch

    from rnnspec import machine

    device = torch.device(name)
    if device.type == "cpu":
        return f"{machine.cpu()['model']} ({machine.cpu_capability()}, {torch.get_num_threads()} threads)"
    if device.type == "cuda":
        index = device.index or 0
        major, minor = torch.cuda.get_device_capability(index)
        return f"{torch.cuda.get_device_name(index)} (sm_{major}{minor})"
    if device.type == "mps":
        return f"Apple MPS (macOS {_platform.mac_ver()[0]})"
    getter = getattr(getattr(torch, device.type, None), "get_device_name", None)
    return getter(device.index or 0) if getter else None
