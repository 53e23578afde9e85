"""Roto/RotoPaint rendering: areas against analytic areas, antialiased edges, feather, animation,
opacity/invert, colour and channels, half precision, empty windows, GPU parity."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import nodegraph as ng
from nodegraph.curve import Curve
from nodegraph.nodes import roto_raster as R
from nodegraph.nodes.roto_model import Layer, Point, Shape, Stroke, Transform

K = 4 * (math.sqrt(2) - 1) / 3  # Bezier circle handle length (radius 1)
W, H = 64, 48


def rect(x0, y0, x1, y1, **kw) -> Shape:
    return Shape(points=[Point(center=(x0, y0)), Point(center=(x1, y0)), Point(center=(x1, y1)),
                         Point(center=(x0, y1))], **kw)


def circle(cx, cy, r, **kw) -> Shape:
    pts = []
    for ang in (0, 90, 180, 270):
        c, s = math.cos(math.radians(ang)), math.sin(math.radians(ang))
        pts.append(Point(center=(cx + r * c, cy + r * s), left=(r * K * s, -r * K * c),
                         right=(-r * K * s, r * K * c)))
    return Shape(points=pts, **kw)


def render(items, frame=1, fmt=f"{W}x{H}", kind="Roto", dtype=None, **knobs):
    g = ng.Graph()
    node = g.add(kind, "R", format=fmt, curves=items, **knobs)
    img = g.evaluate(node, frame) if dtype is None else g.evaluate(node, frame, dtype=dtype)
    return img


def alpha(img) -> np.ndarray:
    return img.channel("rgba.alpha").double().numpy()


def naive_inside(x, y, poly):
    """Even-odd point in polygon (numpy, the oracle for a convex, simple polygon)."""
    inside = np.zeros_like(x, dtype=bool)
    n = len(poly)
    for i in range(n):
        (xa, ya), (xb, yb) = poly[i], poly[(i + 1) % n]
        cross = ((ya > y) != (yb > y)) & (x < (xb - xa) * (y - ya) / (yb - ya + 1e-300) + xa)
        inside ^= cross
    return inside


@settings(max_examples=25, deadline=None)
@given(x0=st.floats(0, 30), y0=st.floats(0, 20), w=st.floats(0.5, 30), h=st.floats(0.5, 25))
def test_rectangle_area_is_exact(x0, y0, w, h):
    a = alpha(render([rect(x0, y0, x0 + w, y0 + h)]))
    assert a.sum() == pytest.approx(w * h, abs=w / 16 + 1e-3)  # 16 sub-scanlines: <= 1/32 px per edge row
    assert a.min() >= 0 and a.max() <= 1


@settings(max_examples=20, deadline=None)
@given(cx=st.floats(15, 49), cy=st.floats(15, 33), r=st.floats(2, 14))
def test_circle_area_matches_pi_r2(cx, cy, r):
    a = alpha(render([circle(cx, cy, r)]))
    # the 4-arc Bezier circle is within 0.03 % of the radius
    assert a.sum() == pytest.approx(math.pi * r * r, rel=2e-3, abs=0.1)


def test_pixels_agree_with_point_in_polygon_away_from_edges():
    tri = Shape(points=[Point(center=(5.3, 4.1)), Point(center=(58.7, 10.2)), Point(center=(20.2, 44.9))])
    a = alpha(render([tri]))
    xs, ys = np.meshgrid(np.arange(W) + 0.5, H - (np.arange(H) + 0.5))
    poly = [(5.3, 4.1), (58.7, 10.2), (20.2, 44.9)]
    inside = naive_inside(xs, ys, poly)
    # pixels whose whole square is on one side: exactly 0 or 1
    corners = [naive_inside(xs + dx, ys + dy, poly) for dx in (-.5, .5) for dy in (-.5, .5)]
    full, empty = np.logical_and.reduce(corners), ~np.logical_or.reduce(corners)
    for vx, vy in poly:  # a pixel holding a vertex may be partly covered with its corners outside
        empty &= ~((np.abs(xs - vx) <= 0.5) & (np.abs(ys - vy) <= 0.5))
    assert np.all(a[full] == 1) and np.all(a[empty] == 0)
    assert inside[full].all()


def test_antialiased_edges_are_the_covered_fraction():
    a = alpha(render([rect(10.25, 10, 30.75, 20)]))
    row = a[H - 15]  # y 14.5
    assert row[10] == pytest.approx(0.75) and row[30] == pytest.approx(0.75)
    assert row[9] == 0 and row[31] == 0 and np.all(row[11:30] == 1)
    a = alpha(render([rect(10, 10.5, 20, 30)]))
    assert a[H - 11, 15] == pytest.approx(0.5)  # pixel y 10..11 half covered


def test_feather_is_monotonic_and_within_the_band():
    feather = 6.0
    a = alpha(render([rect(20, 14, 44, 34, feather=(feather, feather))]))
    row = a[H - 24]  # y 23.5, through the middle
    left = row[:21]  # x 0.5 .. 20.5: from outside the band to the edge
    assert np.all(np.diff(left) >= -1e-9)
    xs = np.arange(W) + 0.5
    assert np.all(row[xs < 20 - feather] == 0) and np.all(row[(xs > 20) & (xs < 44)] == 1)
    band = row[(xs > 20 - feather) & (xs < 20)]
    assert np.all((band > 0) & (band < 1))
    # smooth falloff: 3t^2 - 2t^3 of the distance to the feather edge
    t = (xs[(xs > 20 - feather) & (xs < 20)] - (20 - feather)) / feather
    np.testing.assert_allclose(band, t * t * (3 - 2 * t), atol=1e-6)


def test_feather_linear_and_per_point_feather_curve():
    a = alpha(render([rect(20, 14, 44, 34, feather=(4.0, 4.0), falloff_type="linear")]))
    np.testing.assert_allclose(a[H - 24, 16:20], [0.125, 0.375, 0.625, 0.875], atol=1e-6)
    # a feather curve 4 px to the left of the left edge only
    pts = [Point(center=(20, 14), feather=(-4, 0)), Point(center=(44, 14)), Point(center=(44, 34)),
           Point(center=(20, 34), feather=(-4, 0))]
    b = alpha(render([Shape(points=pts, falloff_type="linear")]))
    np.testing.assert_allclose(b[H - 24, 16:20], [0.125, 0.375, 0.625, 0.875], atol=1e-6)
    assert b[H - 24, 44] == pytest.approx(0, abs=1e-9)  # no feather on the right


def test_negative_feather_shrinks_inside_the_shape():
    a = alpha(render([rect(10, 10, 50, 40, feather=(-4.0, -4.0), falloff_type="linear")]))
    row = a[H - 25]
    np.testing.assert_allclose(row[10:14], [0.125, 0.375, 0.625, 0.875], atol=1e-6)
    assert row[9] == 0 and row[20] == 1


def test_animated_point_at_in_between_frames():
    x = Curve([(1, 10.0), (11, 30.0)])  # two smooth keys: a straight line between them
    pts = [Point(center=(10, 10)), Point(center=(x, 10)), Point(center=(x, 30)), Point(center=(10, 30))]
    for frame, width in ((1, 0.0), (6, 10.0), (11, 20.0), (3, 4.0), (20, 20.0)):
        assert alpha(render([Shape(points=pts)], frame=frame)).sum() == pytest.approx(20 * width, abs=0.05)


def test_animated_shapes_hash_per_frame_and_still_ones_share():
    x = Curve([(1, 10.0), (11, 30.0)])
    g = ng.Graph()
    n = g.add("Roto", "R", format="64x48", curves=[rect(10, 10, x, 30)])
    assert g.evaluate(n, 1).pixels.sum() != g.evaluate(n, 5).pixels.sum()
    still = g.add("Roto", "S", format="64x48", curves=[rect(10, 10, 20, 30)])
    assert still.hash_extra(type("C", (), {"frame": 1})()) == still.hash_extra(type("C", (), {"frame": 7})())


def test_opacity_invert_and_colour_in_rgba():
    a = render([rect(10, 10, 20, 20, opacity=0.5)])
    assert alpha(a).sum() == pytest.approx(50)
    inv = alpha(render([rect(10, 10, 20, 20, invert=True)]))
    assert inv.sum() == pytest.approx(W * H - 100) and inv[H - 15, 15] == 0 and inv[0, 0] == 1
    img = render([rect(0, 0, W, H, color=(0.25, 0.5, 0.75, 1.0))], kind="RotoPaint")
    assert img.channels == ("rgba.red", "rgba.green", "rgba.blue", "rgba.alpha")
    np.testing.assert_allclose(img.pixels[:, 5, 5].numpy(), [0.25, 0.5, 0.75, 1.0])


def test_over_background_and_transforms():
    g = ng.Graph()
    bg = g.add("Constant", format="64x48", color=(0.2, 0.2, 0.2, 0.5))
    # the shape at 0..10 moved by its transform to 20..30 (x) and by its layer up 5
    shape = rect(0, 0, 10, 10, transform=Transform(translate=(20, 0)))
    layer = Layer(name="L", children=[shape], transform=Transform(translate=(0, 5)))
    node = g.add("Roto", "R", bg=bg, curves=[layer])
    img = g.evaluate(node, 1)
    a = alpha(img)
    assert a[H - 10, 25] == 1 and a[H - 3, 25] == pytest.approx(0.5) and a[H - 10, 5] == pytest.approx(0.5)
    np.testing.assert_allclose(img.channel("rgba.red").numpy(), 0.2)  # rgb passes through
    # rotation 90 degrees about the centre of a 20x4 bar makes a 4x20 bar
    bar = rect(22, 22, 42, 26, transform=Transform(rotate=90, center=(32, 24)))
    b = alpha(render([bar]))
    assert b.sum() == pytest.approx(80) and b[H - 15, 32] == 1 and b[H - 24, 24] == 0


def test_layers_draw_the_top_of_the_list_last():
    red, blue = (1.0, 0, 0, 1.0), (0, 0, 1.0, 1.0)
    img = render([rect(0, 0, 20, 20, color=red), rect(0, 0, 20, 20, color=blue)], kind="RotoPaint")
    np.testing.assert_allclose(img.pixels[:, H - 5, 5].numpy(), red)


def test_half_precision_and_empty_window():
    a = render([circle(32, 24, 10)], dtype=torch.float16)
    assert a.pixels.dtype == torch.float16
    full = render([circle(32, 24, 10)])
    np.testing.assert_allclose(a.pixels.float().numpy(), full.pixels.numpy(), atol=2e-3)
    g = ng.Graph()
    bg = g.add("Constant", format="64x48", color=(0, 0, 0, 1))
    crop = g.add("Crop", input=bg, box=(10, 10, 10, 10), reformat=False)
    node = g.add("Roto", "R", bg=crop, curves=[circle(32, 24, 10)])
    out = g.evaluate(node, 1)
    assert out.bbox.empty and out.pixels.shape[1:] == (0, 0)


def test_strokes_are_reported_never_dropped():
    stroke = Stroke(name="Brush7", points=[(1.0, 2.0, 1.0), (5.0, 6.0, 1.0)])
    g = ng.Graph()
    node = g.add("RotoPaint", "P", format="64x48", curves=[rect(0, 0, 5, 5), stroke])
    assert any("Brush7" in p for p in node.check())
    with pytest.raises(ng.NodeGraphError, match="Brush7"):
        g.evaluate(node, 1)
    assert any("Brush7" in str(i) for i in g.validate())


def test_bad_curves_text_names_node_and_knob():
    g = ng.Graph()
    node = g.add("Roto", "R", format="64x48", curves="{{v x3f99999a} {f 0} {n {layer Root {curvegroup B 512 bspline}}}}")
    assert any("bspline" in p for p in node.check())
    with pytest.raises(ng.NodeGraphError, match="curves"):
        g.evaluate(node, 1)


def test_cliptype_none_grows_the_window_to_the_shapes():
    img = render([rect(50, 10, 80, 20)], cliptype="none")
    assert img.bbox.x1 >= 80 and alpha(img).sum() == pytest.approx(300)
    assert render([rect(50, 10, 80, 20)]).bbox == (0, 0, W, H)


def test_kernels_directly():
    sq = torch.tensor([[1.0, 1.0], [3.0, 1.0], [3.0, 3.0], [1.0, 3.0]], dtype=torch.float64)
    assert R.coverage(sq, 4, 4).sum() == pytest.approx(4.0)
    assert R.signed_area(sq) == pytest.approx(4.0)
    bowtie = torch.tensor([[0.0, 0.0], [4.0, 4.0], [4.0, 0.0], [0.0, 4.0]], dtype=torch.float64)
    assert R.coverage(bowtie, 4, 4).sum() == pytest.approx(8.0, abs=0.1)  # both lobes (non-zero)


@pytest.mark.gpu
def test_gpu_matches_cpu():
    if not torch.cuda.is_available():
        pytest.skip("no CUDA")
    g = ng.Graph()
    node = g.add("Roto", "R", format="64x48", curves=[circle(30, 20, 12, feather=(3.0, 3.0))])
    cpu, gpu = g.evaluate(node, 1, device="cpu"), g.evaluate(node, 1, device="cuda")
    torch.testing.assert_close(gpu.pixels.cpu(), cpu.pixels, rtol=1e-4, atol=1e-4)
