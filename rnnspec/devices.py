"""Devices and dtypes: what the spec runs on, named as the command line names them.

The command line names devices and dtypes as words (``--device cpu,cuda --dtype float32``);
this module turns those words into torch objects, says which devices this machine has (and why a
requested one cannot run), and describes them for the report header.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from rnnspec import machine, releases
from rnnspec.vocabulary import DTYPE_NAMES

#: The dtypes the spec knows, by the name used in test ids, fixture names and ``--dtype``.
DTYPES: dict[str, torch.dtype] = {name: getattr(torch, name) for name in DTYPE_NAMES}

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
    (their tests are skipped with the reason, and the matrix says that none ran there) as long as
    one of them is here: a run that could check nothing on any requested device is a usage error
    that names the devices this machine has."""
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
    if all(device.unavailable_because for device in devices):
        raise UsageError(f"--device {text}: no requested device can run here ("
                         + "; ".join(device.unavailable_because for device in devices)
                         + f"); this machine has: {', '.join(default_device_names())}")
    return devices


def parse_dtypes(text: str | None) -> list[str]:
    """The dtype names of ``--dtype LIST`` (default: all four), checked against :data:`DTYPES`."""
    names = list(DTYPES) if text is None else _split(text, "--dtype")
    unknown = [name for name in names if name not in DTYPES]
    if unknown:
        raise UsageError(f"--dtype: unknown dtype {unknown[0]!r}; choose from {', '.join(DTYPES)}")
    return names


def describe(devices: list[Device]) -> list[str]:
    """Report-header lines: torch build, devices, and the numerics flags the spec runs under."""
    lines = [f"rnn-spec: torch {torch.__version__}, cuDNN {torch.backends.cudnn.version()}"]
    for device in devices:
        state = "available" if device.unavailable_because is None else f"skipped: {device.unavailable_because}"
        lines.append(f"rnn-spec: device {device.name} ({state})")
    lines.append("rnn-spec: numerics pinned per test: cudnn.allow_tf32=False, cuda.matmul.allow_tf32=False")
    lines.append(f"rnn-spec: machine: {machine.summary()}")
    return lines
