"""Devices, dtypes and numerics flags: what the spec runs on, and under which settings.

The command line names devices and dtypes as words (``--device cpu,cuda --dtype float32``);
this module turns those words into torch objects, says which devices this machine has, and pins
the numerics flags that would otherwise change results from one machine to the next (TF32).
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass

import torch

from rnnspec import machine, releases

#: The dtypes the spec knows, by the name used in test ids, fixture names and ``--dtype``.
DTYPES: dict[str, torch.dtype] = {
    "float64": torch.float64,
    "float32": torch.float32,
    "bfloat16": torch.bfloat16,
    "float16": torch.float16,
}

class UsageError(ValueError):
    """A command-line value the spec cannot run with (conftest turns it into pytest's usage error)."""


@dataclass(frozen=True)
class Device:
    """One ``--device`` entry: its name as typed, and why it cannot run here (None if it can)."""

    name: str
    unavailable_because: str | None = None

    @property
    def type(self) -> str:
        return torch.device(self.name).type


def _accelerator_module(device_type: str):
    return getattr(torch, device_type, None)


def unavailability(device: torch.device) -> str | None:
    """Why ``device`` cannot run tests on this machine, or None when it can."""
    if device.type == "cpu":
        return None
    module = _accelerator_module(device.type)
    is_available = getattr(module, "is_available", None)
    if is_available is None or not is_available():
        return f"{device.type} is not available on this machine (torch.{device.type}.is_available() is False)"
    count = getattr(module, "device_count", lambda: 1)()
    if device.index is not None and device.index >= count:
        return f"{device} does not exist: this machine has {count} {device.type} device(s)"
    return None


def default_device_names() -> list[str]:
    """cpu, then every accelerator this machine has."""
    names = ["cpu"]
    accelerator = releases.accelerator_type()
    if accelerator is not None:
        names.append(accelerator)
    for device_type in releases.ACCELERATORS:
        if device_type not in names and unavailability(torch.device(device_type)) is None:
            names.append(device_type)
    return names


def _split(text: str, option: str) -> list[str]:
    items = [item.strip() for item in text.split(",")]
    if not all(items):
        raise UsageError(f"{option}: empty entry in {text!r}; give a comma-separated list")
    return list(dict.fromkeys(items))


def parse_devices(text: str | None) -> list[Device]:
    """The devices of ``--device LIST``: unknown names are usage errors, absent ones are kept
    (their tests are skipped with the reason)."""
    names = default_device_names() if text is None else _split(text, "--device")
    devices = []
    for name in names:
        try:
            device = torch.device(name)
        except (RuntimeError, ValueError) as error:
            raise UsageError(f"--device: unknown device {name!r} ({error})") from None
        if device.type == "meta":
            raise UsageError("--device: 'meta' tensors hold no values, so no behaviour can be checked on them")
        devices.append(Device(name, unavailability(device)))
    return devices


def parse_dtypes(text: str | None) -> list[str]:
    """The dtype names of ``--dtype LIST`` (default: all four), checked against :data:`DTYPES`."""
    names = list(DTYPES) if text is None else _split(text, "--dtype")
    unknown = [name for name in names if name not in DTYPES]
    if unknown:
        raise UsageError(f"--dtype: unknown dtype {unknown[0]!r}; choose from {', '.join(DTYPES)}")
    return names


@contextlib.contextmanager
def pinned_numerics():
    """Run with the numerics the spec is written for, and restore every flag afterwards.

    cuDNN runs float32 RNNs in TF32 by default on Ampere and later (``cudnn.allow_tf32`` is True),
    which moves the exploding product 11^5 by about 7e-5 relative. The spec pins TF32 off rather
    than loosening float32's tolerance for every device.
    """
    saved = numerics_flags()
    torch.backends.cudnn.allow_tf32 = False
    torch.backends.cuda.matmul.allow_tf32 = False
    try:
        yield
    finally:
        restore_numerics(saved)


def restore_numerics(saved: dict) -> None:
    """Put back every flag of :func:`numerics_flags` that differs from ``saved``.

    Only changed flags are set: ``use_deterministic_algorithms`` imports torch's compiler stack
    (about a second) the first time it is called.
    """
    setters = {
        "cudnn.allow_tf32": lambda v: setattr(torch.backends.cudnn, "allow_tf32", v),
        "cuda.matmul.allow_tf32": lambda v: setattr(torch.backends.cuda.matmul, "allow_tf32", v),
        "float32_matmul_precision": torch.set_float32_matmul_precision,
        "default_dtype": torch.set_default_dtype,
        "deterministic_algorithms": torch.use_deterministic_algorithms,
        "grad_enabled": torch.set_grad_enabled,
        "mkldnn.enabled": lambda v: setattr(torch.backends.mkldnn, "enabled", v),
    }
    now = numerics_flags()
    for name, value in saved.items():
        if now[name] != value:
            setters[name](value)


def numerics_flags() -> dict:
    """The global flags that change recurrent layers' numerics, as they stand now."""
    return {
        "cudnn.allow_tf32": torch.backends.cudnn.allow_tf32,
        "cuda.matmul.allow_tf32": torch.backends.cuda.matmul.allow_tf32,
        "float32_matmul_precision": torch.get_float32_matmul_precision(),
        "default_dtype": torch.get_default_dtype(),
        "deterministic_algorithms": torch.are_deterministic_algorithms_enabled(),
        "grad_enabled": torch.is_grad_enabled(),
        "mkldnn.enabled": bool(torch.backends.mkldnn.enabled),
    }


def describe(devices: list[Device]) -> list[str]:
    """Report-header lines: torch build, devices, and the numerics flags the spec runs under."""
    lines = [f"rnn-spec: torch {torch.__version__}, cuDNN {torch.backends.cudnn.version()}"]
    for device in devices:
        state = "available" if device.unavailable_because is None else f"skipped: {device.unavailable_because}"
        lines.append(f"rnn-spec: device {device.name} ({state})")
    lines.append("rnn-spec: numerics pinned per test: cudnn.allow_tf32=False, cuda.matmul.allow_tf32=False")
    lines.append(f"rnn-spec: machine: {machine.summary()}")
    return lines
