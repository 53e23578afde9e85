"""Nuke animation curves (nodegraph.curve).

Expected values are computed here from the documented formulas (cubic Hermite basis, the slope rules
of each interpolation type, Bezier handles found by bisection), never by the code under test.
Derivatives of the piecewise cubics are taken from samples with one-sided difference formulas that
are exact for cubic polynomials, so continuity checks need no loose tolerances.
"""

from __future__ import annotations

import copy
import json
import math
import pickle
import re
from pathlib import Path

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from nodegraph.curve import EXTRAPOLATIONS, INTERPOLATIONS, Curve, CurveError, Key
from nodegraph.errors import KnobError, NodeGraphError

NK_DATA = Path("/work/shared/data/nk")


# ---------------------------------------------------------------------- independent oracles
def hermite(y0: float, y1: float, m0: float, m1: float, h: float, u: float) -> float:
    """Cubic Hermite through (0, y0), (h, y1) with end slopes m0, m1, at x = u*h."""
    h00 = 2 * u**3 - 3 * u**2 + 1
    h10 = u**3 - 2 * u**2 + u
    h01 = -2 * u**3 + 3 * u**2
    h11 = u**3 - u**2
    return h00 * y0 + h10 * h * m0 + h01 * y1 + h11 * h * m1


def bezier_at(points: list[tuple[float, float]], x: float) -> float:
    """y of a cubic Bezier (monotone in x) at x, by bisection on the parameter."""
    def b(c: list[float], s: float) -> float:
        return (1 - s) ** 3 * c[0] + 3 * (1 - s) ** 2 * s * c[1] + 3 * (1 - s) * s * s * c[2] + s**3 * c[3]
    px, py = [p[0] for p in points], [p[1] for p in points]
    lo, hi = 0.0, 1.0
    for _ in range(200):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if b(px, mid) < x else (lo, mid)
    return b(py, (lo + hi) / 2)


def left_derivative(f, x: float, a: float) -> float:
    """f'(x) from f(x), f(x-a), f(x-2a), f(x-3a): exact for a cubic on [x-3a, x]."""
    return (11 * f(x) - 18 * f(x - a) + 9 * f(x - 2 * a) - 2 * f(x - 3 * a)) / (6 * a)


def right_derivative(f, x: float, a: float) -> float:
    return (-11 * f(x) + 18 * f(x + a) - 9 * f(x + 2 * a) + 2 * f(x + 3 * a)) / (6 * a)


def left_second(f, x: float, a: float) -> float:
    """f''(x) from four samples at and left of x: exact for a cubic."""
    return (2 * f(x) - 5 * f(x - a) + 4 * f(x - 2 * a) - f(x - 3 * a)) / (a * a)


def right_second(f, x: float, a: float) -> float:
    return (2 * f(x) - 5 * f(x + a) + 4 * f(x + 2 * a) - f(x + 3 * a)) / (a * a)


# ---------------------------------------------------------------------- hand-computed keys, per type
def test_two_smooth_keys_are_a_straight_line():
    # Ends have zero second derivative: 2*m0 + m1 = 3d and m0 + 2*m1 = 3d give m0 = m1 = d.
    c = Curve.parse("{curve x1 0 x10 1}")
    assert c(5.5) == pytest.approx(0.5, abs=1e-12)
    assert c(1) == 0 and c(10) == 1
    assert c(-100) == 0 and c(100) == 1  # constant extrapolation by default


def test_linear_segments():
    c = Curve.parse("{curve L x0 0 x10 5 x20 5}")
    assert c(4) == pytest.approx(2.0, abs=1e-15)
    assert c(15) == 5
    assert c(12.5) == pytest.approx(5.0, abs=1e-15)


def test_linear_key_next_to_smooth_key_is_a_hermite_segment():
    # L key: right slope = secant 0.5; S last key: natural end 2*m1 + 0.5 = 3*0.5 -> m1 = 0.5; ... a line.
    # Make the smooth end curve: keys (0,0) L, (10,5) S, (20,0) S.
    # key1 smooth interior: neighbours 0 and 0 -> extremum -> slope 0; key2 end: 0 + 2*m2 = 3*(-0.5) -> -0.75.
    c = Curve.parse("{curve L x0 0 S x10 5 x20 0}")
    assert c(5) == pytest.approx(hermite(0, 5, 0.5, 0.0, 10, 0.5))
    assert c(15) == pytest.approx(hermite(5, 0, 0.0, -0.75, 10, 0.5))


def test_constant_holds_until_the_next_key():
    c = Curve.parse("{curve K x0 1 x10 3 x20 -2}")
    assert c(0) == 1 and c(9.999) == 1 and c(10) == 3 and c(19.5) == 3 and c(20) == -2
    assert c(-5) == 1 and c(50) == -2


def test_catmull_rom_hand():
    # interior slopes: key1 (20-0)/(30-0) = 2/3, key2 (0-10)/(40-10) = -1/3
    # ends (second derivative 0): 2*m0 + 2/3 = 3*1 -> m0 = 7/6; -1/3 + 2*m3 = 3*(-2) -> m3 = -17/6
    c = Curve.parse("{curve R x0 0 x10 10 x30 20 x40 0}")
    assert c(5) == pytest.approx(hermite(0, 10, 7 / 6, 2 / 3, 10, 0.5))
    assert c(20) == pytest.approx(hermite(10, 20, 2 / 3, -1 / 3, 20, 0.5))  # 17.5
    assert c(20) == pytest.approx(17.5)
    assert c(37.5) == pytest.approx(hermite(20, 0, -1 / 3, -17 / 6, 10, 0.75))


def test_smooth_is_flat_at_an_extremum_and_catmull_rom_is_not():
    # Same keys as above; key2 (y=20) is a maximum: smooth slope 0, catmull-rom -1/3.
    # key1 keeps its catmull-rom slope 2/3 (secants 1 and 0.5: limit 3*0.5 = 1.5).
    # ends: 2*m0 + 2/3 = 3 -> 7/6 (within [0, 3]); 0 + 2*m3 = -6 -> -3 (within [-6, 0]).
    c = Curve.parse("{curve x0 0 x10 10 x30 20 x40 0}")
    assert c(20) == pytest.approx(hermite(10, 20, 2 / 3, 0.0, 20, 0.5))  # 17.083..
    assert c(35) == pytest.approx(hermite(20, 0, 0.0, -3.0, 10, 0.5))
    assert c(5) == pytest.approx(hermite(0, 10, 7 / 6, 2 / 3, 10, 0.5))
    assert c(20) != pytest.approx(Curve.parse("{curve R x0 0 x10 10 x30 20 x40 0}")(20))


def test_smooth_clamps_where_catmull_rom_overshoots():
    # key1: catmull-rom slope (10-0)/2 = 5; secants 0.1 and 9.9 -> smooth limit 3*0.1 = 0.3.
    # smooth ends: 2*m0 + 0.3 = 0.3 -> 0; 0.3 + 2*m2 = 29.7 -> 14.7.
    smooth = Curve.parse("{curve x0 0 x1 0.1 x2 10}")
    assert smooth(0.5) == pytest.approx(hermite(0, 0.1, 0.0, 0.3, 1, 0.5))  # 0.0125
    assert smooth(1.5) == pytest.approx(hermite(0.1, 10, 0.3, 14.7, 1, 0.5))
    # catmull-rom: 2*m0 + 5 = 0.3 -> m0 = -2.35, which dips below the first key.
    cr = Curve.parse("{curve R x0 0 x1 0.1 x2 10}")
    assert cr(0.25) == pytest.approx(hermite(0, 0.1, -2.35, 5.0, 1, 0.25))
    assert cr(0.25) < 0
    assert all(0 <= smooth(i / 100) <= 0.1 for i in range(101))


def test_smooth_end_key_is_clamped_after_the_end_condition():
    # key1 has the explicit slope 5; key0's end condition 2*m0 + 5 = 3*1 gives -1, against the
    # secant's sign: smooth flattens it to 0, catmull-rom keeps -1.
    smooth = Curve.parse("{curve x0 0 x1 1 s5}")
    assert right_derivative(smooth, 0, 0.25) == pytest.approx(0, abs=1e-9)
    assert smooth(0.5) == pytest.approx(hermite(0, 1, 0, 5, 1, 0.5))
    cr = Curve.parse("{curve R x0 0 x1 1 s5}")
    assert right_derivative(cr, 0, 0.25) == pytest.approx(-1, abs=1e-9)
    # and a too-steep end slope is cut to 3 secants: 2*m0 + (-9) = 3 -> 6 -> 3
    steep = Curve.parse("{curve x0 0 x1 1 s-9}")
    assert right_derivative(steep, 0, 0.25) == pytest.approx(3, abs=1e-9)


def test_segment_into_a_constant_key_arrives_flat():
    # our choice where the docs are silent: a constant key's left slope is 0
    # key0 smooth end: 2*m0 + 0 = 3*1 -> 1.5
    c = Curve.parse("{curve x0 0 K x10 10 x20 0}")
    assert c(5) == pytest.approx(hermite(0, 10, 1.5, 0, 10, 0.5))
    assert c(15) == 10


def test_cubic_is_a_natural_spline():
    # keys (0,0) (1,1) (2,0): 2m0 + m1 = 3; m0 + 4m1 + m2 = 0; m1 + 2m2 = -3 -> 1.5, 0, -1.5
    c = Curve.parse("{curve C x0 0 x1 1 x2 0}")
    assert c(0.5) == pytest.approx(hermite(0, 1, 1.5, 0, 1, 0.5))  # 0.6875
    assert c(0.5) == pytest.approx(0.6875)
    # keys (0,0) (1,1) (3,0): 2m0 + m1 = 3; m0 + 3m1 + m2/2 = 2.25; m1 + 2m2 = -1.5 -> 1.25, 0.5, -1
    c = Curve.parse("{curve C x0 0 x1 1 x3 0}")
    assert c(0.5) == pytest.approx(hermite(0, 1, 1.25, 0.5, 1, 0.5))
    assert c(2) == pytest.approx(0.875)
    # first and second derivatives continuous at the inner key, second derivative 0 at the ends
    assert left_derivative(c, 1, 0.25) == pytest.approx(right_derivative(c, 1, 0.5), abs=1e-9)
    assert left_derivative(c, 1, 0.25) == pytest.approx(0.5, abs=1e-9)
    assert left_second(c, 1, 0.25) == pytest.approx(right_second(c, 1, 0.5), abs=1e-8)
    assert right_second(c, 0, 0.25) == pytest.approx(0, abs=1e-8)
    assert left_second(c, 3, 0.5) == pytest.approx(0, abs=1e-8)


def test_cubic_run_between_other_keys_uses_their_slopes():
    # (0,0) L, (1,1) C, (2,0) L: linear keys have fixed slopes: R[0] = 1, L[2] = -1.
    # C2 at key1: R0/h0 + 2*m1*(1/h0 + 1/h1) + L2/h1 = 3*(d0/h0 + d1/h1) -> 1 + 4*m1 - 1 = 0 -> m1 = 0
    c = Curve.parse("{curve L x0 0 C x1 1 L x2 0}")
    assert c(0.5) == pytest.approx(hermite(0, 1, 1.0, 0.0, 1, 0.5))
    assert c(1.5) == pytest.approx(hermite(1, 0, 0.0, -1.0, 1, 0.5))


def test_horizontal_keys_have_flat_tangents():
    c = Curve.parse("{curve x0 0 s0 x10 10 s0}")
    assert c(5) == pytest.approx(5)
    assert c(2.5) == pytest.approx(hermite(0, 10, 0, 0, 10, 0.25))  # 1.5625
    assert c(2.5) == pytest.approx(1.5625)
    assert c == Curve([Key(0, 0, "horizontal"), Key(10, 10, "horizontal")])
    assert c.keys[0].interpolation == "horizontal"


def test_user_slope_is_used_on_both_sides():
    c = Curve.parse("{curve x0 0 s2 x10 10 s-1 x20 0}")
    assert c.keys[1] == Key(10, 10, "user", left_slope=-1)
    assert c(5) == pytest.approx(hermite(0, 10, 2, -1, 10, 0.5))  # 8.75
    assert c(5) == pytest.approx(8.75)
    # smooth last key: -1 + 2*m2 = 3*(-1) -> -1 (within [-3, 0])
    assert c(15) == pytest.approx(hermite(10, 0, -1, -1, 10, 0.5))
    assert left_derivative(c, 10, 2.5) == pytest.approx(-1, abs=1e-9)
    assert right_derivative(c, 10, 2.5) == pytest.approx(-1, abs=1e-9)


def test_break_key_has_independent_slopes():
    # key0 smooth end: 2*m0 + 3 = 3 -> 0; key2 smooth end: -2 + 2*m2 = -3 -> -0.5
    c = Curve.parse("{curve x0 0 x10 10 s3 t-2 x20 0}")
    assert c.keys[1] == Key(10, 10, "break", left_slope=3, right_slope=-2)
    assert c(5) == pytest.approx(hermite(0, 10, 0, 3, 10, 0.5))
    assert c(15) == pytest.approx(hermite(10, 0, -2, -0.5, 10, 0.5))  # 3.125
    assert c(15) == pytest.approx(3.125)
    assert left_derivative(c, 10, 2.5) == pytest.approx(3, abs=1e-9)
    assert right_derivative(c, 10, 2.5) == pytest.approx(-2, abs=1e-9)


def test_tangent_lengths_weight_the_bezier_handles():
    # ra = 3, la = 0, flat slopes: x(s) = 1 - (1-s)^3, y(s) = 10*s^2*(3 - 2s).
    # x = 8.75 -> 1 - s = (1/8)^(1/3) = 1/2 -> y = 10 * 0.25 * 2 = 5
    c = Curve.parse("{curve x0 0 s0 v3 x10 10 s0 u0}")
    assert c(8.75) == pytest.approx(5.0, abs=1e-12)
    # half-length handles, slopes 2 and -1 over h = 4: control points by the docs' la/ra rule
    c = Curve.parse("{curve x0 1 s2 v0.5 x4 3 s-1 u2}")
    points = [(0, 1), (0 + 0.5 * 4 / 3, 1 + 2 * 0.5 * 4 / 3), (4 - 2 * 4 / 3, 3 - (-1) * 2 * 4 / 3), (4, 3)]
    for x in (0.3, 1, 2, 2.9, 3.7):
        assert c(x) == pytest.approx(bezier_at(points, x), abs=1e-9)
    # lengths of 1 are the plain Hermite
    assert Curve.parse("{curve x0 1 s2 v1 x4 3 s-1 u1}")(1.3) == pytest.approx(hermite(1, 3, 2, -1, 4, 1.3 / 4))


def test_extrapolation():
    assert Curve.parse("{curve x0 0 x10 10}")(-5) == 0
    line = Curve.parse("{curve l x0 0 x10 10}")
    assert line.extrapolation == "linear"
    assert line(-5) == pytest.approx(-5) and line(20) == pytest.approx(20)
    mixed = Curve.parse("{curve l x0 0 k x10 10}")
    assert mixed.extrapolation == ("linear", "constant")
    assert mixed(-5) == pytest.approx(-5) and mixed(20) == 10
    # linear keys: the extrapolated lines continue the first and last segments
    lin = Curve.parse("{curve l L x0 0 x10 5 x20 5}")
    assert lin(-2) == pytest.approx(-1) and lin(30) == 5
    # one key: both slopes are zero, whatever the extrapolation
    assert Curve.parse("{curve l x5 3}")(100) == 3
    assert Curve([Key(1, 0), Key(3, 4, "linear")], extrapolation=("constant", "linear"))(5) == pytest.approx(8)


def test_explicit_slope_on_an_end_key_sets_the_extrapolated_line():
    # USER_SET_SLOPE: "interpolation and extrapolation are ignored"
    c = Curve.parse("{curve x0 0 s2 x10 10}")
    assert c(-1) == pytest.approx(-2)
    assert Curve.parse("{curve x0 0 x10 10 s3 t-1}")(12) == pytest.approx(8)


def test_empty_curve_is_zero():
    c = Curve.parse("{curve}")
    assert len(c) == 0 and c(7) == 0.0 and c.is_constant()
    assert c.to_nuke() == "{curve}"


def test_float_frames_and_numbers():
    c = Curve([(0, 0, "linear"), (2, 1, "linear")])
    assert c(0.5) == pytest.approx(0.25)
    assert c.evaluate(1) == c(1.0) == pytest.approx(0.5)
    with pytest.raises(CurveError):
        c(float("nan"))
    with pytest.raises(CurveError):
        c(float("inf"))
    with pytest.raises(CurveError):
        c("3")  # type: ignore[arg-type]


# ---------------------------------------------------------------------- text form
@pytest.mark.parametrize("text, keys", [
    ("{curve x1 0 S x100 50}", [(1, 0, "smooth"), (100, 50, "smooth")]),
    ("curve x1 0 x10 1", [(1, 0, "smooth"), (10, 1, "smooth")]),
    ("{{curve x1 0 x10 1}}", [(1, 0, "smooth"), (10, 1, "smooth")]),
    ("curve L x1 0 x10 1", [(1, 0, "linear"), (10, 1, "linear")]),
    ("{curve K x1001 1}", [(1001, 1, "constant")]),
    ("{curve x1 5.209845026}", [(1, 5.209845026, "smooth")]),
    ("curve K x1 0 L x5 1 S x9 2 R x12 0 C x15 1 x20 3",
     [(1, 0, "constant"), (5, 1, "linear"), (9, 2, "smooth"), (12, 0, "catmull-rom"), (15, 1, "cubic"),
      (20, 3, "cubic")]),
    ("curve 1 2 3", [(0, 1, "smooth"), (1, 2, "smooth"), (2, 3, "smooth")]),
    ("curve x10 1 2 x20 3 4 5", [(10, 1, "smooth"), (11, 2, "smooth"), (20, 3, "smooth"), (29, 4, "smooth"),
                                 (38, 5, "smooth")]),
    ("curve x-2.5 1e3 x0.5 -.25 x1E1 +3", [(-2.5, 1000, "smooth"), (0.5, -0.25, "smooth"), (10, 3, "smooth")]),
    ("curve i x1 0", [(1, 0, "smooth")]),
    ("curve I x1 0 L", [(1, 0, "smooth")]),  # display flag kept out; a trailing flag is harmless
    ("  {curve\n\tx1 0\n x2 1 }  ", [(1, 0, "smooth"), (2, 1, "smooth")]),
])
def test_parse_forms(text, keys):
    c = Curve.parse(text)
    assert [(k.x, k.y, k.interpolation) for k in c.keys] == [(float(x), float(y), i) for x, y, i in keys]
    assert Curve.parse(c.to_nuke()) == c


def test_parse_tangents():
    c = Curve.parse("{curve x1 5 s2 t3 u0.5 v1.5 x4 1 s0 x9 2 s-1}")
    assert c.keys == (Key(1, 5, "break", 2, 3, 0.5, 1.5), Key(4, 1, "horizontal"), Key(9, 2, "user", -1))
    assert Curve.parse("{curve x1 5 v2 u0.5 t3 s2}") == Curve.parse("{curve x1 5 s2 t3 u0.5 v2}")


@pytest.mark.parametrize("text", [
    "{curve x1 0 x100 50}",
    "{curve x1 0 x10 1}",
    "{curve L x1 0 x10 1}",
    "{curve K x1001 1}",
    "{curve}",
    "{curve x2 1.74 x7 0.42 x16 1.16 x87 0.36}",
    "{curve x1001 2224 2224.851074 2225.715332 2226.397705}",
    "{curve l x1 0 k x10 1}",
    "{curve l L x1 0 x3 1 C x4 0 R x6 1 K x9 0}",
    "{curve x1 0 s0 x5 1 s2 x8 2 s-1 t0.5 u0.25 v3 x10 0}",
    "{curve x-10 -0.5 x0.1 1e-05 x10 1.5e+20}",
])
def test_print_is_canonical(text):
    assert Curve.parse(text).to_nuke() == text
    assert str(Curve.parse(text)) == text


@pytest.mark.parametrize("text, printed", [
    ("{curve x1 0 S x100 50}", "{curve x1 0 x100 50}"),  # smooth is the default
    ("curve k x1 0 x2 1 x3 2 x10 0", "{curve x1 0 1 2 x10 0}"),  # frames continuing the step are implied
    ("curve K L x1 0 L x2 1", "{curve L x1 0 1}"),
    ("curve x1 0 s0 t0 x2 1 s0.0", "{curve x1 0 s0 t0 1 s0}"),
    ("{curve x1.0 -0.0 u1 v1.0}", "{curve x1 0}"),
])
def test_print_is_compact(text, printed):
    assert Curve.parse(text).to_nuke() == printed
    assert Curve.parse(printed) == Curve.parse(text)


@pytest.mark.parametrize("text, token, position", [
    ("curve x1 0 Z x10 1", "Z", 11),
    ("curve x1 0 B x10 1", "B", 11),
    ("curve x1 0 H", "H", 11),
    ("curve x1 0 q1", "q1", 11),
    ("{curve x1 0 x10 nan}", "nan", 16),
    ("curve x1 inf", "inf", 9),
    ("curve x1 1_000", "1_000", 9),
    ("curve x1 0 s", "s", 11),
    ("curve s1 x1 0", "s1", 6),
    ("curve x1 L 0", "L", 9),
    ("curve x1 x2 0", "x2", 9),
    ("curve x1 0 x5", "x5", 11),
    ("curve x1 0 t1", "t1", 11),
    ("curve x1 0 s1 s2", "s2", 14),
    ("curve L s1 x1 0", "s1", 8),
    ("curve x1 0 {x2} 1", "{", 11),
    ("{curve x1 0", "0", 10),
    ("sin(frame) x1 0", "sin(frame)", 0),
    ("{curve(frame*2) x1 0}", "curve(frame*2)", 1),
    ("", "", 0),
])
def test_parse_errors_name_token_and_position(text, token, position):
    with pytest.raises(CurveError) as info:
        Curve.parse(text)
    err = info.value
    assert isinstance(err, ValueError) and isinstance(err, KnobError) and isinstance(err, NodeGraphError)
    assert (err.token, err.position) == (token, position)
    if token:
        assert repr(token) in str(err) and f"character {position}" in str(err)


@pytest.mark.parametrize("text, words", [
    ("curve x1 0 x1 2", "two keys at frame 1"),
    ("curve x1 0 u4", "left_length"),
    ("curve x1 0 v-1", "right_length"),
])
def test_parse_rejects_bad_keys(text, words):
    with pytest.raises(CurveError, match=words):
        Curve.parse(text)


def test_parse_keys_reads_the_key_list_of_an_expression():
    assert Curve.parse_keys("x1 0 L x2 1") == Curve.parse("{curve x1 0 L x2 1}")
    assert Curve.parse_keys("") == Curve()
    with pytest.raises(CurveError) as info:
        Curve.parse_keys("x1 0 curve")
    assert (info.value.token, info.value.position) == ("curve", 5)


def test_overflowing_curves_are_rejected():
    with pytest.raises(CurveError, match="too far apart"):
        Curve([Key(-1e308, 0), Key(1e308, 1)])
    with pytest.raises(CurveError, match="too"):
        Curve([Key(0, -1e308, "linear"), Key(0.5, 1e308, "linear")])
    with pytest.raises(CurveError, match="too"):
        Curve([Key(0, 0, "user", 1e300), Key(1e10, 1)])


def test_parse_rejects_non_text():
    with pytest.raises(CurveError):
        Curve.parse(b"curve x1 0")  # type: ignore[arg-type]


def test_keys_without_x_follow_the_last_step_and_print_back_compact():
    c = Curve([Key(float(f), f * 0.5) for f in range(1001, 1006)])
    assert c.to_nuke() == "{curve x1001 500.5 501 501.5 502 502.5}"
    c = Curve([Key(0, 1), Key(1, 2)])
    assert c.to_nuke() == "{curve x0 1 2}"  # the first key always names its frame


# ---------------------------------------------------------------------- API, validation, JSON
def test_key_validation():
    assert Key(1, 2) == Key(1.0, 2.0, "smooth")
    assert Key(0, 0, "user", right_slope=2) == Key(0, 0, "user", left_slope=2, right_slope=2)
    assert Key(0, 0, "user", left_slope=0) == Key(0, 0, "horizontal")
    assert Key(0, 0, "horizontal", 0, 0).slopes == (0.0, 0.0)
    assert Key(0, 0).slopes is None
    for bad in [
        dict(x=0, y=0, interpolation="bezier"),
        dict(x=0, y=0, interpolation="smooth", left_slope=1),
        dict(x=0, y=0, interpolation="user"),
        dict(x=0, y=0, interpolation="user", left_slope=1, right_slope=2),
        dict(x=0, y=0, interpolation="break", left_slope=1),
        dict(x=0, y=0, interpolation="horizontal", left_slope=1),
        dict(x=float("nan"), y=0),
        dict(x=0, y=float("inf")),
        dict(x="1", y=0),
        dict(x=True, y=0),
        dict(x=0, y=0, left_length=3.5),
        dict(x=0, y=0, right_length=-0.1),
    ]:
        with pytest.raises(CurveError):
            Key(**bad)


def test_curve_validation():
    with pytest.raises(CurveError, match="two keys at frame 1"):
        Curve([Key(1, 0), Key(1, 2)])
    with pytest.raises(CurveError):
        Curve([Key(1, 0)], extrapolation="cycle")
    with pytest.raises(CurveError):
        Curve([Key(1, 0)], extrapolation=("constant",))  # type: ignore[arg-type]
    with pytest.raises(CurveError):
        Curve("curve x1 0")  # type: ignore[arg-type]
    with pytest.raises(CurveError):
        Curve([(1, 2, "linear", 4)])
    assert Curve([(10, 1), (0, 0)]).keys == (Key(0, 0), Key(10, 1))  # sorted by frame
    assert Curve([(0, 0), (1, 1)], ("linear", "linear")).extrapolation == "linear"
    assert Curve([(0, 0)], ("linear", "constant")).extrapolation == "linear"  # one key: one extrapolation


def test_value_semantics():
    a = Curve.parse("{curve x1 0 L x10 1}")
    b = Curve([Key(1, 0), Key(10, 1, "linear")])
    assert a == b and hash(a) == hash(b) and len({a, b}) == 1
    assert a != Curve.parse("{curve x1 0 L x10 2}")
    assert a != Curve([Key(1, 0), Key(10, 1, "linear")], "linear")
    assert a != "{curve x1 0 L x10 1}"
    with pytest.raises(AttributeError):
        a.keys = ()  # type: ignore[misc]
    with pytest.raises(AttributeError):
        a.keys[0].x = 3  # type: ignore[misc]
    assert pickle.loads(pickle.dumps(a)) == a and copy.deepcopy(a) == a
    assert pickle.loads(pickle.dumps(a))(5) == a(5)
    assert eval(repr(a), {"Curve": Curve}) == a


def test_is_constant():
    assert Curve.parse("{curve}").is_constant()
    assert Curve.parse("{curve x1 5}").is_constant()
    assert Curve.parse("{curve l x1 5}").is_constant()
    assert Curve.parse("{curve x1 5 x10 5 C x20 5}").is_constant()
    assert not Curve.parse("{curve x1 5 x10 6}").is_constant()
    assert not Curve.parse("{curve x1 5 s1}").is_constant()  # the explicit slope tilts it
    assert not Curve.parse("{curve x1 5 x10 5 s1 x20 5}").is_constant()  # equal keys, a sloped tangent
    assert not Curve.parse("{curve K x1 5 x10 6}").is_constant()


def test_json_form():
    c = Curve.parse("{curve l x1 0 L x10 2.5 x20 1 s2 x30 0 s-1 t3 u0.5 k x40 1}")
    data = c.to_json()
    assert data == {
        "curve": [[1, 0, "smooth"], [10, 2.5, "linear"], [20, 1, "user", {"left_slope": 2, "right_slope": 2}],
                  [30, 0, "break", {"left_slope": -1, "right_slope": 3, "left_length": 0.5}],
                  [40, 1, "linear"]],
        "extrapolation": ["linear", "constant"],
    }
    assert Curve.from_json(json.loads(json.dumps(data))) == c
    assert Curve.from_json({"curve": [[1, 2], [3, 4, "cubic"]]}) == Curve([Key(1, 2), Key(3, 4, "cubic")])
    assert Curve.from_json({"curve": []}) == Curve()


@pytest.mark.parametrize("data, words", [
    ([1, 2], "curve document"),
    ({"keys": []}, "curve document"),
    ({"curve": [], "extra": 1}, "unknown field"),
    ({"curve": "x1 0"}, "list of keys"),
    ({"curve": [[1]]}, r"curve\[0\]"),
    ({"curve": [[1, 2], [3, "a"]]}, r"curve\[1\]"),
    ({"curve": [[1, 2, 3]]}, r"curve\[0\]\[2\]"),
    ({"curve": [[1, 2, "smooth", []]]}, r"curve\[0\]\[3\]"),
    ({"curve": [[1, 2, "user", {"slope": 1}]]}, "unknown field"),
    ({"curve": [[1, 2, "wobbly"]]}, "unknown interpolation"),
    ({"curve": [[1, 2]], "extrapolation": "cycle"}, "unknown extrapolation"),
])
def test_json_errors(data, words):
    with pytest.raises(CurveError, match=words):
        Curve.from_json(data)


# ---------------------------------------------------------------------- properties over random keys
def frames(draw, n: int) -> list[float]:
    start = draw(st.integers(-400, 400))
    steps = draw(st.lists(st.integers(1, 40), min_size=n, max_size=n))
    xs, x = [], start
    for step in steps:
        x += step
        xs.append(x / 4)  # quarter frames: spacing >= 0.25
    return xs


@st.composite
def curves(draw, kinds=INTERPOLATIONS, lengths=True, min_keys=0, max_keys=7, scale=1000.0, value=None):
    n = draw(st.integers(min_keys, max_keys))
    xs = frames(draw, n)
    if value is None:
        value = st.floats(-scale, scale, allow_nan=False, allow_infinity=False, allow_subnormal=False)
    slope = st.floats(-50, 50, allow_nan=False, allow_infinity=False, allow_subnormal=False)
    length = st.one_of(st.just(1.0), st.floats(0.25, 3.0)) if lengths else st.just(1.0)
    keys = []
    for x in xs:
        kind = draw(st.sampled_from(kinds))
        left = right = None
        if kind == "user":
            left = draw(slope.filter(lambda s: s != 0))
        elif kind == "break":
            left, right = draw(slope), draw(slope)
        keys.append(Key(x, draw(value), kind, left, right, draw(length), draw(length)))
    return Curve(keys, (draw(st.sampled_from(EXTRAPOLATIONS)), draw(st.sampled_from(EXTRAPOLATIONS))))


def scale_of(c: Curve) -> float:
    return 1.0 + max((abs(k.y) for k in c.keys), default=0.0)


PROPS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@PROPS
@given(curves())
def test_passes_through_every_key(c):
    for key in c.keys:
        value = c(key.x)
        assert math.isfinite(value) and value == key.y


@PROPS
@given(curves())
def test_continuous_except_after_constant_keys(c):
    tol = 1e-6 * scale_of(c)
    keys = c.keys
    for i, key in enumerate(keys):
        if i + 1 < len(keys):
            delta = (keys[i + 1].x - key.x) * 1e-9
            assert abs(c(key.x + delta) - key.y) <= tol  # right limit: the segment starts at the key
        if i > 0 and keys[i - 1].interpolation != "constant":
            delta = (key.x - keys[i - 1].x) * 1e-9
            assert abs(c(key.x - delta) - key.y) <= tol  # left limit: the segment arrives at the key
    if keys:
        assert abs(c(keys[-1].x + 1e-9) - keys[-1].y) <= tol
        assert abs(c(keys[0].x - 1e-9) - keys[0].y) <= tol


C1_KINDS = ("smooth", "catmull-rom", "cubic", "horizontal", "user")


@PROPS
@given(curves(lengths=False))
def test_first_derivative_continuous_where_the_type_promises_it(c):
    keys = c.keys
    for i in range(1, len(keys) - 1):
        if keys[i].interpolation not in C1_KINDS or keys[i - 1].interpolation == "constant":
            continue
        a_left = (keys[i].x - keys[i - 1].x) / 4
        a_right = (keys[i + 1].x - keys[i].x) / 4
        dl = left_derivative(c, keys[i].x, a_left)
        dr = right_derivative(c, keys[i].x, a_right)
        tol = 1e-9 * scale_of(c) / min(a_left, a_right) + 1e-9 * abs(dl)
        assert abs(dl - dr) <= tol, (i, dl, dr)


@PROPS
@given(curves(kinds=("cubic",), lengths=False, min_keys=2))
def test_cubic_curves_are_c2_and_natural_at_the_ends(c):
    keys = c.keys
    tol = 1e-7 * scale_of(c)
    for i in range(1, len(keys) - 1):
        a_left = (keys[i].x - keys[i - 1].x) / 4
        a_right = (keys[i + 1].x - keys[i].x) / 4
        assert abs(left_second(c, keys[i].x, a_left) - right_second(c, keys[i].x, a_right)) <= tol / min(
            a_left, a_right) ** 2
    a = (keys[1].x - keys[0].x) / 4
    assert abs(right_second(c, keys[0].x, a)) <= tol / a**2
    a = (keys[-1].x - keys[-2].x) / 4
    assert abs(left_second(c, keys[-1].x, a)) <= tol / a**2


@PROPS
@given(curves(), st.lists(st.floats(0, 1), min_size=1, max_size=5))
def test_linear_segments_are_straight_and_constant_keys_hold(c, fractions):
    keys = c.keys
    for k0, k1 in zip(keys, keys[1:]):
        for f in fractions:
            t = k0.x + f * (k1.x - k0.x)
            if t >= k1.x:
                continue
            if k0.interpolation == "constant":
                assert c(t) == k0.y
            elif k0.interpolation == "linear" and k1.interpolation == "linear":
                expected = k0.y + (k1.y - k0.y) * (t - k0.x) / (k1.x - k0.x)
                assert c(t) == pytest.approx(expected, rel=1e-12, abs=1e-12 * scale_of(c))


@PROPS
@given(curves(lengths=False, min_keys=2))
def test_segments_between_smooth_keys_stay_within_their_keys(c):
    keys = c.keys
    tol = 1e-9 * scale_of(c)
    for k0, k1 in zip(keys, keys[1:]):
        if k0.interpolation == k1.interpolation == "smooth":
            lo, hi = min(k0.y, k1.y), max(k0.y, k1.y)
            for j in range(1, 16):
                assert lo - tol <= c(k0.x + (k1.x - k0.x) * j / 16) <= hi + tol


@PROPS
@given(curves(lengths=False, min_keys=1), st.floats(0.5, 1e4))
def test_extrapolated_lines_continue_the_end_keys(c, far):
    first, last = c.keys[0], c.keys[-1]
    explicit = ("user", "break")
    tol = 1e-9 * (scale_of(c) + far * 100)
    if c.before == "constant" and first.interpolation not in explicit:
        assert c(first.x - far) == first.y
    if c.after == "constant" and last.interpolation not in explicit:
        assert c(last.x + far) == last.y
    # before the first key the curve is a straight line, whose slope continues the first segment
    y1, y2 = c(first.x - far), c(first.x - 2 * far)
    assert abs((y1 - first.y) - (y2 - y1)) <= tol
    y1, y2 = c(last.x + far), c(last.x + 2 * far)
    assert abs((y1 - last.y) - (y2 - y1)) <= tol
    if len(c.keys) >= 2 and c.before == "linear" and first.interpolation not in explicit + ("constant",):
        a = (c.keys[1].x - first.x) / 4
        slope = (first.y - c(first.x - far)) / far
        assert slope == pytest.approx(right_derivative(c, first.x, a), rel=1e-6, abs=1e-6 * scale_of(c) / a)
    if len(c.keys) >= 2 and c.after == "linear" and last.interpolation not in explicit:
        if c.keys[-2].interpolation != "constant":
            a = (last.x - c.keys[-2].x) / 4
            slope = (c(last.x + far) - last.y) / far
            assert slope == pytest.approx(left_derivative(c, last.x, a), rel=1e-6, abs=1e-6 * scale_of(c) / a)


@PROPS
@given(curves(kinds=("user", "break", "horizontal")), st.lists(st.floats(0, 1), min_size=1, max_size=4))
def test_explicit_tangents_follow_the_documented_bezier(c, fractions):
    # control points from the docs: handles at la/ra thirds of the span, along the key's slopes
    keys = c.keys
    for k0, k1 in zip(keys, keys[1:]):
        h = k1.x - k0.x
        m0 = k0.slopes[1]
        m1 = k1.slopes[0]
        points = [(k0.x, k0.y), (k0.x + k0.right_length * h / 3, k0.y + m0 * k0.right_length * h / 3),
                  (k1.x - k1.left_length * h / 3, k1.y - m1 * k1.left_length * h / 3), (k1.x, k1.y)]
        for f in fractions:
            t = k0.x + f * h
            if t < k1.x:
                tol = 1e-9 * (scale_of(c) + abs(m0 * h) + abs(m1 * h))
                assert abs(c(t) - bezier_at(points, t)) <= tol


@PROPS
@given(curves(max_keys=4, value=st.sampled_from([0.0, 2.5])), st.lists(st.floats(-1e3, 1e3), max_size=8))
def test_is_constant_is_never_wrong(c, frames):
    if len({k.y for k in c.keys}) > 1:
        assert not c.is_constant()
    if c.is_constant():
        first = c(0)
        assert all(c(f) == first for f in frames + [k.x for k in c.keys] + [k.x + 0.1 for k in c.keys])


@PROPS
@given(curves())
def test_text_and_json_round_trips(c):
    text = c.to_nuke()
    again = Curve.parse(text)
    assert again == c and again.to_nuke() == text
    assert Curve.parse(text[1:-1]) == c  # bare, without the braces
    assert Curve.from_json(json.loads(json.dumps(c.to_json()))) == c
    for key in c.keys:
        assert again(key.x) == c(key.x)
    for x in (c.keys[0].x - 3.3, c.keys[-1].x + 2.7) if c.keys else ():
        assert again(x) == c(x)


@st.composite
def curve_texts(draw):
    """Random texts in Nuke's grammar: sticky flags, optional frames, optional tangent data."""
    parts = ["curve"]
    x = draw(st.integers(-50, 50))
    for i in range(draw(st.integers(0, 6))):
        parts += draw(st.lists(st.sampled_from(list("KLSRCkl")), max_size=2))
        if draw(st.booleans()) or i < 2:
            x += draw(st.integers(1, 9))
            parts.append(f"x{x}")
        else:
            x = None  # the frame comes from the previous keys; no more explicit frames
        parts.append(repr(draw(st.floats(-1e6, 1e6, allow_nan=False, allow_subnormal=False))))
        if draw(st.booleans()):
            parts.append(f"s{draw(st.integers(-9, 9))}")
            if draw(st.booleans()):
                parts.append(f"t{draw(st.integers(-9, 9))}")
        if draw(st.booleans()):
            parts.append(f"u{draw(st.sampled_from(['0', '0.5', '1', '2.25', '3']))}")
        if draw(st.booleans()):
            parts.append(f"v{draw(st.sampled_from(['0', '0.5', '1', '2.25', '3']))}")
        if x is None:
            break
    return " ".join(parts)


@PROPS
@given(curve_texts())
def test_parse_print_parse(text):
    c = Curve.parse(text)
    printed = c.to_nuke()
    assert Curve.parse(printed) == c
    assert Curve.parse(printed).to_nuke() == printed


# ---------------------------------------------------------------------- real scripts
CURVE_IN_SCRIPT = re.compile(r"\{curve(?=[\s}])[^{}]*\}")


def nk_curves() -> list[tuple[str, str]]:
    found = []
    for path in sorted(NK_DATA.rglob("*")):
        if path.suffix in (".nk", ".gizmo") and path.is_file():
            text = path.read_text(errors="replace")
            found += [(str(path.relative_to(NK_DATA)), m.group()) for m in CURVE_IN_SCRIPT.finditer(text)]
    return found


@pytest.mark.skipif(not NK_DATA.is_dir(), reason="public .nk scripts not present")
def test_every_curve_in_public_scripts_parses():
    found = nk_curves()
    assert found, "no {curve ...} found: the scan itself is broken"
    for where, text in found:
        c = Curve.parse(text)
        assert Curve.parse(c.to_nuke()) == c, where
        for key in c.keys:
            assert math.isfinite(c(key.x)) and c(key.x) == key.y, (where, text)
        numbers = [float(tok.lstrip("x")) for tok in text.strip("{}").split()[1:]]
        assert [v for k in c.keys for v in (k.x, k.y)] == numbers, (where, text)  # all written with x
