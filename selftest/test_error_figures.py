"""Error figures and the fixture reader: the numbers the upgrade gate reports, and how damaged files fail.

* Error figures (``rnnspec/figures.py``): the ULP distance of hand-counted cases in each dtype,
  checked against stepping with ``numpy.nextafter`` (torch's for bfloat16), the special values
  (NaN, infinities, signed zeros) as documented, and ``tolerance_used <= 1`` exactly where the
  spec's rule ``|a - b| <= atol + rtol |b|`` holds.
* The fixture reader (``rnnspec/fixture_files.py``): any damaged file (every truncation, every
  flipped byte) fails with the fix, never with a bare exception; it reads what NumPy reads and
  never unpickles.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from rnnspec.comparison import Tolerance
from rnnspec.figures import INF, error_figures, ordinals

ROOT = Path(__file__).resolve().parents[1]
FIXTURES = ROOT / "fixtures"
TOLERANCE = Tolerance("float32", rtol=1.3e-6, atol=1e-5, resolution=2.0**-149, source="test")


def steps(start: float, count: int, dtype: str) -> float:
    """``start`` moved ``count`` representable values up in ``dtype`` (an independent witness of ULP distance)."""
    if dtype == "bfloat16":
        import torch

        value = torch.tensor(start, dtype=torch.bfloat16)
        for _ in range(count):
            value = torch.nextafter(value, torch.tensor(float("inf"), dtype=torch.bfloat16))
        return float(value)
    kind = np.dtype(dtype).type
    value = kind(start)
    for _ in range(count):
        value = np.nextafter(value, kind(np.inf))
    return float(value)


@pytest.mark.parametrize("number_format", ["float64", "float32", "bfloat16", "float16"])
@pytest.mark.parametrize("start", [1.0, -3.0, 0.0, 1000.0, 2.0**-10], ids=lambda s: f"from{s:g}")
def test_ulp_distance_counts_the_representable_values_between(number_format, start):
    """Moving k values up the format's number line (nextafter) is k ULP, across zero and binades too."""
    for count in (1, 2, 7, 300):
        moved = steps(start, count, number_format)
        assert error_figures([moved], [start], number_format)["max_ulp"] == count, (number_format, start, count)


@pytest.mark.parametrize("number_format, smallest", [("float64", 2.0**-1074), ("float32", 2.0**-149),
                                                     ("bfloat16", 2.0**-133), ("float16", 2.0**-24)])
def test_signed_zeros_are_one_point_and_the_smallest_subnormals_two_apart(number_format, smallest):
    """+0 and -0 are 0 ULP apart; 0 and the smallest subnormal 1; that subnormal and its negative 2."""
    dtype = number_format
    assert error_figures([0.0], [-0.0], dtype) == {"max_abs": 0.0, "max_rel": 0.0, "max_ulp": 0, "differing": 0}
    assert error_figures([smallest], [0.0], dtype)["max_ulp"] == 1
    assert error_figures([-smallest], [smallest], dtype)["max_ulp"] == 2
    assert ordinals(np.array([-smallest, -0.0, 0.0, smallest]), dtype).tolist() == [-1, 0, 0, 1]


def test_special_values_follow_the_documented_rules():
    """NaN = NaN and equal infinities are 0 apart; NaN or an infinity against anything else is inf."""
    same = error_figures([np.nan, np.inf, -np.inf], [np.nan, np.inf, -np.inf], "float16", TOLERANCE)
    assert same == {"max_abs": 0.0, "max_rel": 0.0, "max_ulp": 0, "tolerance_used": 0.0, "differing": 0}
    for actual, expected in [(np.nan, 1.0), (1.0, np.nan), (65504.0, np.inf), (np.inf, 65504.0), (np.inf, -np.inf)]:
        figures = error_figures([actual], [expected], "float16", TOLERANCE)
        assert figures == {"max_abs": INF, "max_rel": INF, "max_ulp": INF, "tolerance_used": INF, "differing": 1}, (
            actual, expected, figures)


def test_relative_error_is_against_the_witness_and_infinite_where_it_is_zero():
    """|a-b|/|b| with b the witness: 1.5 against 1 is 0.5; anything non-zero against 0 is inf."""
    figures = error_figures([1.5, 0.0], [1.0, 0.0], "float64")
    assert figures["max_rel"] == 0.5 and figures["max_abs"] == 0.5 and figures["differing"] == 1
    assert error_figures([1e-30], [0.0], "float64")["max_rel"] == INF


def test_tolerance_used_is_at_most_one_exactly_where_the_spec_accepts():
    """tolerance_used <= 1 if and only if numpy.isclose (the spec's rule) accepts every element."""
    generator = np.random.default_rng(7)
    for _ in range(200):
        expected = generator.normal(size=5).astype(np.float32).astype(np.float64)
        actual = expected * (1 + generator.normal(size=5) * 10.0 ** generator.uniform(-8, -5))
        actual = actual.astype(np.float32).astype(np.float64)
        used = error_figures(actual, expected, "float32", TOLERANCE)["tolerance_used"]
        assert (used <= 1) == bool(np.isclose(actual, expected, rtol=TOLERANCE.rtol, atol=TOLERANCE.atol).all())


def test_shapes_that_differ_give_infinite_figures_and_say_so():
    """A shape mismatch is not compared elementwise: every figure is inf, with a note."""
    figures = error_figures(np.zeros((2, 3)), np.zeros((3, 2)), "float32")
    assert figures["max_ulp"] == INF and "shape (2, 3) against (3, 2)" in figures["note"]


def test_any_damaged_fixture_fails_with_the_fix_never_a_bare_exception(tmp_path):
    """Every single flipped byte and every truncation of a fixture either leaves it readable or fails
    with 'is unreadable … Restore it from git': no zlib.error or NotImplementedError escapes."""
    from rnnspec.fixture_files import load_fixture

    data = (FIXTURES / "test_01_forward_values" / "relu_rnn_two_steps-float32.npz").read_bytes()
    damaged = [data[:cut] for cut in range(0, len(data), 41)]
    damaged += [data[:at] + bytes([data[at] ^ 0x55]) + data[at + 1:] for at in range(0, len(data), 3)]
    path, kinds = tmp_path / "damaged-float32.npz", set()
    for content in damaged:
        path.write_bytes(content)
        try:
            load_fixture(path)
        except pytest.fail.Exception as failure:
            assert "is unreadable" in str(failure) and "Restore it from git (git checkout --" in str(failure)
            kinds.add(str(failure).split("(")[1].split(":")[0])
    assert {"BadZipFile", "error"} <= kinds, kinds  # zipfile's and zlib's errors both occurred and were caught


def test_fixture_reader_returns_what_numpy_reads_and_never_unpickles(tmp_path):
    """read_fixture equals numpy.load on every committed fixture (dtype, shape, values, names); other
    headers (Fortran order, 0-d, empty) read too, and an object array is refused, not unpickled."""
    from rnnspec.fixture_files import read_fixture

    for path in sorted(FIXTURES.rglob("*.npz")):
        ours = read_fixture(path)
        with np.load(path, allow_pickle=False) as archive:
            assert sorted(ours) == sorted(archive.files), path
            for key in archive.files:
                theirs = archive[key]
                assert (ours[key].dtype, ours[key].shape) == (theirs.dtype, theirs.shape), (path, key)
                assert np.array_equal(ours[key], theirs), (path, key)
    odd = {"fortran": np.asfortranarray(np.arange(6.0).reshape(2, 3)), "scalar": np.array(3.5),
           "empty": np.zeros((0, 2)), "tag": np.array("float16")}
    np.savez_compressed(tmp_path / "odd.npz", **odd)
    read = read_fixture(tmp_path / "odd.npz")
    assert all(np.array_equal(read[k], v) and read[k].shape == v.shape for k, v in odd.items())
    np.savez(tmp_path / "pickled.npz", value=np.array([{"a": 1}], dtype=object))
    with pytest.raises(ValueError, match="allow_pickle=False"):
        read_fixture(tmp_path / "pickled.npz")

