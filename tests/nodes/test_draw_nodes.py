"""Radial, Rectangle, Ramp and Noise as draw nodes: coverage against hand-written numpy formulas with
hypothesis, Rectangle against OpenImageIO's render_box, the shared drawing arithmetic over a
background (opacity, invert, replace, mask), Noise against the expression language's fBm and
turbulence through an Expression node, animation, half precision, empty windows, .nk
scripts (``Ramp { inputs 1 }``) and CPU/GPU parity."""

from __future__ import annotations

import numpy as np
import OpenImageIO as oiio
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from OpenImageIO import ROI, ImageBuf
from OpenImageIO import ImageBufAlgo as IBA

import nodegraph as ng
from nodegraph import Box, Format, Image
from nodegraph.channels import RGBA
from nodegraph.curve import Curve, Key
from nodegraph import expr_noise
from nodegraph.expression import Expression
from nodegraph.nodes.draw import Radial, Rectangle
from nodegraph.nodes.generate import Ramp
from nodegraph.nodes.noise import Noise
from nodegraph.nuke.reader import read_nk
from nodegraph.testing import compute_node

W, H = 24, 16


def grid(w: int = W, h: int = H) -> tuple[np.ndarray, np.ndarray]:
    """Pixel-centre coordinates in Nuke's y-up space, rows top-down."""
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float64)
    return xx + 0.5, h - (yy + 0.5)


def radial_numpy(area, softness, plinear, w=W, h=H) -> np.ndarray:
    x, y = grid(w, h)
    x0, x1 = sorted((area[0], area[2]))
    y0, y1 = sorted((area[1], area[3]))
    rx, ry = (x1 - x0) / 2, (y1 - y0) / 2
    if rx <= 0 or ry <= 0:
        return np.zeros_like(x)
    d = np.hypot((x - (x0 + rx)) / rx, (y - (y0 + ry)) / ry)
    soft = min(max(softness, 0.0), 1.0)
    if soft == 0:
        return (d < 1).astype(float)
    s = np.clip((1 - d) / soft, 0, 1)
    return s if plinear else s * s * (3 - 2 * s)


coord = st.floats(-4, 30, allow_nan=False)


@settings(max_examples=60, deadline=None)
@given(st.tuples(coord, coord, coord, coord), st.floats(0, 1.5), st.booleans())
def test_radial_coverage_matches_the_formula(area, softness, plinear):
    out = compute_node(Radial("R", format=f"{W}x{H}", area=area, softness=softness, plinear=plinear,
                              color=(1, 0.5, 0.25, 1)))
    want = radial_numpy(area, softness, plinear)
    np.testing.assert_allclose(out.pixels[0].numpy(), want, atol=1e-6)
    np.testing.assert_allclose(out.pixels[1].numpy(), want * 0.5, atol=1e-6)
    assert out.bbox == Box(0, 0, W, H) and out.channels == RGBA


def axis_coverage(n: int, lo: float, hi: float, soft: float) -> np.ndarray:
    """Fraction of each pixel [i, i+1] inside [lo, hi], times a smoothstep ramp inward."""
    p = np.arange(n, dtype=np.float64)
    cov = np.clip(np.minimum(p + 1, hi) - np.maximum(p, lo), 0, 1)
    if soft > 0:
        t = np.clip(np.minimum(p + 0.5 - lo, hi - p - 0.5) / soft, 0, 1)
        cov = cov * t * t * (3 - 2 * t)
    return cov


@settings(max_examples=60, deadline=None)
@given(st.tuples(coord, coord, coord, coord), st.floats(0, 6), st.floats(0, 6))
def test_rectangle_coverage_matches_the_formula(area, sx, sy):
    out = compute_node(Rectangle("Q", format=f"{W}x{H}", area=area, softness=(sx, sy)))
    x0, x1 = sorted((area[0], area[2]))
    y0, y1 = sorted((area[1], area[3]))
    want = axis_coverage(H, H - y1, H - y0, sy)[:, None] * axis_coverage(W, x0, x1, sx)[None, :]
    np.testing.assert_allclose(out.pixels[3].numpy(), want, atol=1e-6)


def test_rectangle_matches_oiio_render_box_over_a_background():
    rng = np.random.default_rng(3)
    bg = rng.uniform(-0.5, 2.0, size=(4, H, W)).astype(np.float32)
    img = Image(torch.from_numpy(bg), RGBA, Box(0, 0, W, H), Format.of_size(W, H))
    color = (0.8, 0.3, -0.2, 1.0)
    out = compute_node(Rectangle("Q", area=(3, 4, 17, 12), color=color), input=img)
    buf = ImageBuf(oiio.ImageSpec(W, H, 4, oiio.FLOAT))
    buf.set_pixels(ROI(0, W, 0, H, 0, 1, 0, 4), bg.transpose(1, 2, 0).copy())
    # OIIO's box is inclusive, y down: Nuke's y 4..12 is rows H-12 .. H-5
    IBA.render_box(buf, 3, H - 12, 16, H - 5, color, True)
    np.testing.assert_allclose(out.pixels.numpy(), buf.get_pixels(oiio.FLOAT).transpose(2, 0, 1), atol=1e-6)


@settings(max_examples=40, deadline=None)
@given(st.integers(0, 2**31 - 1), st.floats(-0.5, 1.5), st.booleans(), st.booleans(), st.booleans())
def test_drawing_over_a_background(seed, opacity, invert, replace, invert_mask):
    """drawn = bg (1 - v) + color v (replace: color v); out = bg + (drawn - bg) opacity mask."""
    rng = np.random.default_rng(seed)
    bg = rng.uniform(-0.5, 2.0, size=(4, H, W)).astype(np.float32)
    mask = rng.uniform(-0.2, 1.2, size=(4, H, W)).astype(np.float32)
    fmt = Format.of_size(W, H)
    img = Image(torch.from_numpy(bg), RGBA, Box(0, 0, W, H), fmt)
    mimg = Image(torch.from_numpy(mask), RGBA, Box(0, 0, W, H), fmt)
    color = (0.7, -0.1, 1.3, 0.9)
    node = Radial("R", area=(2, 3, 20, 14), softness=0.6, output="rgb", color=color, opacity=opacity,
                  invert=invert, replace=replace, maskChannelInput="rgba.green", invert_mask=invert_mask)
    out = compute_node(node, input=img, mask=mimg)
    v = radial_numpy((2, 3, 20, 14), 0.6, False)
    v = 1 - v if invert else v
    m = np.clip(mask[1], 0, 1)
    m = 1 - m if invert_mask else m
    for c in range(3):
        drawn = color[c] * v if replace else bg[c] * (1 - v) + color[c] * v
        want = bg[c] + (drawn - bg[c]) * opacity * m
        np.testing.assert_allclose(out.pixels[c].numpy(), want, atol=2e-6, rtol=1e-6)
    np.testing.assert_array_equal(out.pixels[3].numpy(), bg[3])  # alpha not in output: unchanged


def test_ramp_over_a_background_and_gradient_fill():
    fmt = Format.of_size(W, H)
    bg = Image(torch.full((4, H, W), 0.25), RGBA, Box(0, 0, W, H), fmt)
    out = compute_node(Ramp("Rp", p0=(0, 0), p1=(W, 0)), input=bg)
    x, _ = grid()
    t = np.clip(x / W, 0, 1)
    np.testing.assert_allclose(out.pixels[0].numpy(), 0.25 * (1 - t) + t, atol=1e-6)
    rect = compute_node(Rectangle("Q", format=f"{W}x{H}", area=(0, 0, W, H), ramp="smooth",
                                  p0=(0, 0), p1=(0, H), color0=(1, 0, 0, 1), color=(0, 0, 1, 1)))
    _, y = grid()
    s = np.clip(y / H, 0, 1)
    s = s * s * (3 - 2 * s)
    np.testing.assert_allclose(rect.pixels[0].numpy(), 1 - s, atol=1e-6)
    np.testing.assert_allclose(rect.pixels[2].numpy(), s, atol=1e-6)


def test_channels_the_background_lacks_and_an_empty_background():
    fmt = Format.of_size(W, H)
    rgb = Image(torch.full((3, H, W), 0.5), RGBA[:3], Box(0, 0, W, H), fmt)
    out = compute_node(Rectangle("Q", area=(0, 0, W, H)), input=rgb)
    assert out.channels == RGBA and torch.all(out.pixels == 1)
    for dtype in (torch.float32, torch.float16):
        empty = Image(torch.zeros((4, 0, 0), dtype=dtype), RGBA, Box(4, 4, 4, 4), fmt)
        out = compute_node(Radial("R", area=(0, 0, W, H)), input=empty, dtype=dtype)
        assert out.bbox == Box(0, 0, W, H) and out.pixels.dtype == dtype
        np.testing.assert_allclose(out.pixels[0].float().numpy(), radial_numpy((0, 0, W, H), 1.0, False),
                                   atol=2e-3)


def test_animated_area_and_half_precision():
    g = ng.Graph()
    node = g.add("Rectangle", "Q", format=f"{W}x{H}", softness=1.5,
                 area=[Curve([Key(1, 0.0, "linear"), Key(11, 10.0, "linear")]), 2.0, 20.0, 14.0])
    a, b = g.evaluate(node, 1), g.evaluate(node, 6)
    assert g.evaluator.hash(node, 1) != g.evaluator.hash(node, 6)
    assert a.pixels[3, 8, 2] > 0 and b.pixels[3, 8, 2] == 0  # the left edge moved from 0 to 5
    for n in (Radial("R", format=f"{W}x{H}", area=(1.3, 2, 21, 13.7), color=(2, 0.5, -0.25, 1)),
              Rectangle("Q", format=f"{W}x{H}", area=(1.3, 2, 21, 13.7), softness=3, ramp="linear",
                        p0=(0, 0), p1=(W, H))):
        full = compute_node(n)
        half = compute_node(n, dtype=torch.float16)
        assert half.pixels.dtype == torch.float16
        torch.testing.assert_close(half.pixels.float(), full.pixels, rtol=4e-3, atol=4e-3)


NK = """Root {
 format "24 16 0 0 24 16 1 tiny"
}
Constant {
 inputs 0
 color {0.25 0.25 0.25 1}
 name Bg
}
Ramp {
 p0 {0 0}
 p1 {24 0}
 name Ramp1
}
Ramp {
 inputs 1
 p0 {0 16}
 p1 {0 0}
 opacity 0.5
 name Ramp2
}
Radial {
 area {4 2 20 14}
 softness 0.5
 color {1 0 0 1}
 name Radial1
}
Rectangle {
 area {0 0 12 16}
 replace true
 color {0 1 0 1}
 name Rectangle1
}
"""


def test_nk_draw_chain_reads_and_renders():
    result = read_nk(NK)
    g = result.graph
    assert not result.unsupported
    nodes = {n: g.node(n) for n in ("Ramp1", "Ramp2", "Radial1", "Rectangle1")}
    for name, src in (("Ramp1", "Bg"), ("Ramp2", "Ramp1"), ("Radial1", "Ramp2"), ("Rectangle1", "Radial1")):
        assert g.sources_of(nodes[name])["input"].name == src
    assert nodes["Radial1"].knobs.area == (4, 2, 20, 14) and nodes["Rectangle1"].knobs.replace
    x, y = grid()
    t1 = np.clip(x / W, 0, 1)
    r1 = 0.25 * (1 - t1) + t1
    t2 = np.clip((H - y) / H, 0, 1)
    r2 = r1 + ((r1 * (1 - t2) + t2) - r1) * 0.5
    v = radial_numpy((4, 2, 20, 14), 0.5, False)
    out = g.evaluate(nodes["Radial1"], 1)
    np.testing.assert_allclose(out.pixels[0].numpy(), r2 * (1 - v) + v, atol=1e-5)
    np.testing.assert_allclose(out.pixels[1].numpy(), r2 * (1 - v), atol=1e-5)
    out = g.evaluate(nodes["Rectangle1"], 1)  # replace: the output channels are cleared first
    want = np.zeros((H, W))
    want[:, :12] = 1.0
    np.testing.assert_allclose(out.pixels[1].numpy(), want, atol=1e-6)
    np.testing.assert_allclose(out.pixels[0].numpy(), 0.0, atol=1e-6)


@pytest.mark.gpu
@pytest.mark.parametrize("node", [
    Radial("R", format=f"{W}x{H}", area=(1.3, 2, 21, 13.7), plinear=True, invert=True),
    Rectangle("Q", format=f"{W}x{H}", area=(1.3, 2, 21, 13.7), softness=(2, 3), ramp="smooth1"),
    Ramp("Rp", format=f"{W}x{H}", p0=(3, 1), p1=(20, 12), type="smooth", color0=(0.1, 0.2, 0.3, 0.4)),
    Noise("N", size=(5, 7), type="turbulence", rotate=30, center=(12, 8), zoffset=0.3),
], ids=["Radial", "Rectangle", "Ramp", "Noise"])
def test_gpu_matches_cpu(node):
    fmt = Format.of_size(W, H)
    bg = Image(torch.linspace(-1, 2, 4 * H * W).reshape(4, H, W), RGBA, Box(0, 0, W, H), fmt)
    cpu = compute_node(node, input=bg, mask=bg)
    gpu = compute_node(node, device="cuda", input=bg.to("cuda"), mask=bg.to("cuda"))
    assert gpu.pixels.device.type == "cuda"
    torch.testing.assert_close(gpu.pixels.cpu(), cpu.pixels, rtol=1e-6, atol=1e-6)


# --- Noise ----------------------------------------------------------------------------------------

def expression_noise(graph: ng.Graph, expr: str, fmt: str = f"{W}x{H}") -> np.ndarray:
    """The red channel of an Expression node evaluating ``expr`` over a Constant of ``fmt``."""
    const = graph.add("Constant", format=fmt)
    node = graph.add("Expression", expr0=expr)
    graph.connect(const, node, "input")
    return graph.evaluate(node, 1).pixels[0].numpy()


@pytest.mark.parametrize("kind, fn", [("fBm", "fBm"), ("turbulence", "turbulence")])
def test_noise_matches_the_expression_languages_fbm(kind, fn):
    """Without the lattice tilt, the noise is the expression language's fBm / turbulence of the
    pixel centre over the size, mapped and raised to gamma (an independent path: the Expression
    node's own x, y and parser)."""
    knobs = dict(type=kind, size=(9.0, 6.0), zoffset=0.35, octaves=4, nyquist=False, lacunarity=2.2,
                 gain=0.6, gamma=0.7, xrotate=0, yrotate=0)
    out = compute_node(Noise("N", format=f"{W}x{H}", **knobs))
    call = f"{fn}((x + 0.5) / 9, (y + 0.5) / 6, 0.35, 4, 2.2, 0.6)"
    value = f"0.5 + 0.5 * {call}" if kind == "fBm" else call
    want = expression_noise(ng.Graph(), f"pow(clamp({value}), 0.7)")
    np.testing.assert_allclose(out.pixels[0].numpy(), want, atol=2e-6)
    np.testing.assert_array_equal(out.pixels[3].numpy(), out.pixels[0].numpy())  # white: every channel


@settings(max_examples=25, deadline=None)
@given(st.floats(-90, 90), st.floats(0.5, 2), st.tuples(st.floats(-20, 20), st.floats(-20, 20)),
       st.floats(0, 60), st.floats(0, 60), st.floats(-3, 3))
def test_noise_coordinates_follow_the_transform_and_tilt(rotate, scale, translate, xrot, yrot, z):
    knobs = dict(size=7.0, octaves=3, nyquist=False, gamma=1.0, rotate=rotate, scale=scale, translate=translate,
                 center=(12, 8), xrotate=xrot, yrotate=yrot, zoffset=z)
    out = compute_node(Noise("N", format=f"{W}x{H}", **knobs))
    x, y = grid()
    a = np.radians(rotate)
    # undo: translate, then rotate and scale about the centre
    dx, dy = x - 12 - translate[0], y - 8 - translate[1]
    qx = (np.cos(a) * dx + np.sin(a) * dy) / scale + 12
    qy = (-np.sin(a) * dx + np.cos(a) * dy) / scale + 8
    p = np.stack([qx / 7, qy / 7, np.full_like(qx, z)])
    ax, ay = np.radians(xrot), np.radians(yrot)
    rx = np.array([[1, 0, 0], [0, np.cos(ax), -np.sin(ax)], [0, np.sin(ax), np.cos(ax)]])
    ry = np.array([[np.cos(ay), 0, np.sin(ay)], [0, 1, 0], [-np.sin(ay), 0, np.cos(ay)]])
    px, py, pz = np.einsum("ij,jhw->ihw", ry @ rx, p)
    f = expr_noise.fbm(torch.from_numpy(px), torch.from_numpy(py), torch.from_numpy(pz), 3, 2.0, 0.5).numpy()
    np.testing.assert_allclose(out.pixels[0].numpy(), np.clip(0.5 + 0.5 * f, 0, 1), atol=1e-5)


def test_noise_nyquist_drops_octaves_finer_than_two_pixels():
    fmt = f"{W}x{H}"
    cut = compute_node(Noise("N", format=fmt, size=8, octaves=10))
    assert torch.equal(cut.pixels, compute_node(Noise("N", format=fmt, size=8, octaves=3, nyquist=False)).pixels)
    scaled = compute_node(Noise("N", format=fmt, size=8, octaves=10, scale=2))  # features twice as big
    assert torch.equal(scaled.pixels, compute_node(Noise("N", format=fmt, size=8, octaves=4, nyquist=False,
                                                         scale=2)).pixels)


NOISE_NK = """Root {
 format "24 16 0 0 24 16 1 tiny"
}
Noise {
 inputs 0
 zoffset {{curve x2 1.74 x7 0.42 x16 1.16 x87 0.36}}
 size 12
 center {12 8}
 name Noise1
}
Noise {
 type turbulence
 gain 0.66666667
 gamma 0.3333333333
 opacity 0.5
 size 5
 name Noise2
}
"""


def test_nk_noise_reads_and_renders_over_its_background():
    g = read_nk(NOISE_NK).graph
    first, second = g.node("Noise1"), g.node("Noise2")
    assert g.sources_of(second)["input"] is first
    assert second.knobs.type == "turbulence" and second.knobs.gamma == pytest.approx(1 / 3)
    for frame in (2, 7):
        z = first.value("zoffset", frame)
        want = compute_node(Noise("N", format="24x16", size=12, center=(12, 8), zoffset=z))
        below = g.evaluate(first, frame)
        torch.testing.assert_close(below.pixels, want.pixels)
        v = compute_node(Noise("T", format="24x16", type="turbulence", gain=0.66666667, gamma=0.3333333333,
                               size=5, output="rgba")).pixels
        torch.testing.assert_close(g.evaluate(second, frame).pixels, below.pixels + (1 - below.pixels) * v * 0.5,
                                   rtol=1e-5, atol=1e-6)
    assert g.evaluator.hash(first, 2) != g.evaluator.hash(first, 7)


def test_noise_animated_half_and_empty_background():
    g = ng.Graph()
    node = g.add("Noise", "N", format=f"{W}x{H}", size=6, zoffset=Expression("frame / 10"))
    a, b = g.evaluate(node, 1), g.evaluate(node, 2)
    assert not torch.equal(a.pixels, b.pixels) and torch.equal(a.pixels, g.evaluate(node, 1).pixels)
    n = Noise("N", format=f"{W}x{H}", size=(5, 9), type="turbulence", rotate=20, center=(12, 8))
    full = compute_node(n)
    half = compute_node(n, dtype=torch.float16)
    torch.testing.assert_close(half.pixels.float(), full.pixels, rtol=4e-3, atol=4e-3)
    empty = Image(torch.zeros((4, 0, 0), dtype=torch.float16), RGBA, Box(3, 3, 3, 3), Format.of_size(W, H))
    over = compute_node(n, input=empty, dtype=torch.float16)
    assert over.bbox == Box(0, 0, W, H) and over.pixels.dtype == torch.float16
    torch.testing.assert_close(over.pixels.float(), full.pixels, rtol=4e-3, atol=4e-3)
