"""Numerics flags: the global switches that change recurrent layers' results, pinned in every test.

cuDNN runs float32 RNNs in TF32 by default on Ampere and later (``cudnn.allow_tf32`` is True),
which moves the exploding product 11^5 by about 7e-5 relative: the spec pins TF32 off in every
test rather than loosening float32's tolerance for every device, and restores every flag
afterwards (conftest.py's ``_pinned_numerics`` fixture). The flags are also named in the report
and in PROVENANCE.json.
"""

from __future__ import annotations

import contextlib

import torch


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
