"""The tolerance table: how far a result in each dtype may lie from its truth, one row per dtype.

conftest.py hands the rows to the tests (the ``tolerance`` and ``tolerance_table`` fixtures) and the
rendered document prints them (``rnnspec/document/``): both import this one table. Every
comparison in the suite takes its numbers from here; how they are applied (normwise, elementwise
relatively, widened to the step-by-step envelope, summed for two runs) is ``rnnspec/comparison.py``.
"""

from __future__ import annotations

from rnnspec.comparison import Tolerance

# The tolerance table: how far a result computed in each dtype may lie from its truth (the float64
# closed form or NumPy reference, rounded to that dtype), and from the recorded fixture.
# Every comparison in the suite takes its numbers from here; "resolution" is the dtype's smallest
# subnormal number, the atol of elementwise-relative comparisons (see rnnspec/comparison.py).
# The step-by-step envelope's factor: 2 × the emulated run's share of the row (rnnspec/comparison.py).
ENVELOPE = 2.0

TOLERANCES = {
    # torch.testing.assert_close's float64 default. The spec's float64 results agree with the
    # reference to about 1e-15 relative; 1e-7 leaves room for other devices' summation orders.
    "float64": Tolerance("float64", rtol=1e-7, atol=1e-7, resolution=2.0**-1074,
                         source="torch.testing.assert_close default"),
    # assert_close's float32 default (about 11 units of roundoff, 2^-24 each). Measured worst on
    # CPU: 2.4e-7 relative (tanh RNN, 20 steps). TF32 is pinned off, so cuDNN must meet it too.
    "float32": Tolerance("float32", rtol=1.3e-6, atol=1e-5, resolution=2.0**-149,
                         source="torch.testing.assert_close default"),
    # assert_close's bfloat16 default (2^-6: four units of roundoff of an 8-bit significand), for a
    # kernel that keeps float32 intermediates (oneDNN's LSTM where the CPU serves bfloat16, cuDNN).
    # A step-by-step computation rounds every operation to 8 bits and its errors add up over the
    # steps (the 20-step LSTM's ∂x lands 6.2 % from the truth on CPUs where oneDNN does not serve
    # bfloat16): where a result lies outside the row, the row widens to ENVELOPE times the share of
    # it the reference computed step by step in bfloat16 uses (rnnspec/stepwise.py,
    # rnnspec/comparison.py).
    "bfloat16": Tolerance("bfloat16", rtol=1.6e-2, atol=1e-5, resolution=2.0**-133, envelope=ENVELOPE,
                          source="torch.testing.assert_close default"),
    # PyTorch's own RNN tests (dtype2prec: half 1e-2). assert_close's one-operation default (1e-3,
    # one unit of roundoff 2^-11 is 4.9e-4) is too tight for a 20-step recurrence: each step adds
    # roundoff, and the LSTM's ∂x_1 lands 2.9e-3 from the float64 truth on CPU. The same step-by-step
    # envelope as bfloat16's (float16's step-by-step runs measured so far keep to the row).
    "float16": Tolerance("float16", rtol=1e-2, atol=1e-5, resolution=2.0**-24, envelope=ENVELOPE,
                         source="PyTorch's RNN tests (dtype2prec)"),
}
