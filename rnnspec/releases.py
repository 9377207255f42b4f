"""What each torch release offers that the suite uses: detected here, in one place, never elsewhere.

The project admits torch 2.5 and newer (pyproject.toml; why not 2.4: see :data:`FLOOR`). Releases
differ in what the suite's tooling touches, not in what the chapters claim:

* ``torch.accelerator`` (2.6 and newer) names the machine's accelerator; before it, each
  accelerator module (``torch.cuda``, ``torch.mps``...) is asked in turn (:func:`accelerator_type`).
* dynamo's recompilation limits were renamed in 2.7: ``cache_size_limit`` became
  ``recompile_limit`` (and ``accumulated_…`` likewise), and ``fail_on_recompile_limit_hit`` appeared
  in 2.6 as ``fail_on_cache_limit_hit`` (:func:`dynamo_recompile_settings`).
* whether oneDNN serves a dtype's recurrent layers on this CPU (:func:`onednn_rnn_dtypes`), which
  decides whether a narrow dtype's LSTM is fused or computed step by step (``rnnspec/stepwise.py``).
* the wording of error messages changes between releases (2.6's "input must have the type
  torch.float32, got type torch.float16" became 2.13's "RNN input dtype (torch.float16) does not
  match weight dtype (torch.float32)"): chapter 15 therefore states the exception type and the facts
  the message names, never its wording, and the report keeps the wording for the upgrade gate.
"""

from __future__ import annotations

import torch

#: The oldest release pyproject.toml admits, and why not the one before it.
FLOOR = "2.5"
WHY_NOT_OLDER = ("torch 2.4's CPU bfloat16 LSTM raises \"could not create a primitive descriptor for an LSTM forward "
                 "propagation primitive\" on CPUs without AVX512-BF16 (it hands bfloat16 to oneDNN there): checked "
                 "with 2.4.1 on an AMD EPYC (AVX2); 2.5.1 computes it")

#: Accelerator types probed, besides what ``torch.accelerator`` reports.
ACCELERATORS = ("cuda", "mps", "xpu", "hpu", "mtia")


def accelerator_type() -> str | None:
    """The machine's accelerator (``cuda``, ``mps``...), or None: ``torch.accelerator`` where the release has it."""
    api = getattr(torch, "accelerator", None)
    if api is not None:
        return api.current_accelerator().type if api.is_available() else None
    for device_type in ACCELERATORS:
        is_available = getattr(getattr(torch, device_type, None), "is_available", None)
        if is_available is not None and is_available():
            return device_type
    return None


def dynamo_recompile_settings(limit: int) -> dict:
    """``torch._dynamo.config`` settings that raise every recompilation limit to ``limit`` and, where the
    release can, make hitting one an error instead of a silent fall-back to eager."""
    import torch._dynamo.config as config  # noqa: PLC0415 (only the compile target needs it)

    settings = {}
    for new, old in (("recompile_limit", "cache_size_limit"),
                     ("accumulated_recompile_limit", "accumulated_cache_size_limit")):
        settings[new if hasattr(config, new) else old] = limit
    for flag in ("fail_on_recompile_limit_hit", "fail_on_cache_limit_hit"):
        if hasattr(config, flag):
            settings[flag] = True
            break
    return settings


def onednn_rnn_dtypes() -> list[str]:
    """The dtypes whose CPU LSTM oneDNN runs here (torch's own step-by-step kernels run the others)."""
    if not (torch.backends.mkldnn.is_available() and torch.backends.mkldnn.enabled):
        return []
    dtypes = ["float32"]
    probes = {"bfloat16": "_is_mkldnn_bf16_supported", "float16": "_is_mkldnn_fp16_supported"}
    for dtype, probe in probes.items():
        supported = getattr(torch.ops.mkldnn, probe, None)
        try:
            if supported is not None and supported():
                dtypes.append(dtype)
        except RuntimeError:
            pass
    return dtypes
