"""ContactSheet, ModifyMetaData, Glow, and Switch / Dissolve as real scripts use them (many
inputs, a mask): pixels against numpy references written from the documented formulas, windows,
animated knobs, half precision, empty windows, .nk scripts read and rendered, CPU/GPU parity."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings, strategies as st

import nodegraph as ng
from nodegraph import Format, Image, Knobs, Node
from nodegraph.curve import Curve, Key
from nodegraph.image import Box
from nodegraph.nuke.reader import read_nk


class LayoutSource(Node):
    """Test-only image: a w x h format with random-ish rgba (seeded) over ``box`` (empty allowed);
    metadata {"src": "yes"}."""

    class Knobs(Knobs):
        size: tuple[int, int] = (8, 6)
        """Format width, height."""
        box: tuple[int, int, int, int] = (0, 0, 8, 6)
        """Data window."""
        seed: int = 0
        """Pixel seed."""

    def compute(self, ctx):
        b = Box(*self.knobs.box)
        gen = torch.Generator().manual_seed(self.knobs.seed)
        px = torch.rand((4, b.height, b.width), generator=gen, dtype=torch.float64) * 2
        return Image(px.to(ctx.dtype).to(ctx.device), ("rgba.red", "rgba.green", "rgba.blue", "rgba.alpha"), b,
                     Format.of_size(*self.knobs.size), {"src": "yes"})


def src_np(g: ng.Graph, name: str) -> np.ndarray:
    img = g.evaluate(name, 1, dtype=torch.float64)
    return img.crop_to(img.format.display).pixels.numpy()


# --- ContactSheet -------------------------------------------------------------------------------

def test_contact_sheet_places_whole_factor_reductions_exactly():
    g = ng.Graph()
    for i in range(5):
        g.add("LayoutSource", f"S{i}", size=(8, 6), box=(0, 0, 8, 6), seed=i)
    # 2 x 3 cells of 4 x 3 pixels, gap 1: sheet (3*4 + 4) x (2*3 + 3) = 16 x 9
    sheet = g.add("ContactSheet", "CS", width=16, height=9, rows=2, columns=3, gap=1)
    for i in range(5):
        g.connect(g[f"S{i}"], sheet, str(i))
    out = g.evaluate(sheet, 1, dtype=torch.float64)
    full = out.crop_to(Box(0, 0, 16, 9)).pixels.numpy()
    want = np.zeros((4, 9, 16))
    for i in range(5):
        r, c = divmod(i, 3)
        x0, y0 = 1 + c * 5, 1 + r * 4  # TopBottom, LeftRight
        cell = src_np(g, f"S{i}").reshape(4, 3, 2, 4, 2).mean(axis=(2, 4))  # 2x2 area average
        want[:, y0:y0 + 3, x0:x0 + 4] = cell
    np.testing.assert_allclose(full, want, atol=1e-12)
    assert out.format.width == 16 and out.format.height == 9
    sheet.set(roworder="BottomTop", colorder="RightLeft")
    flipped = g.evaluate(sheet, 1, dtype=torch.float64).crop_to(Box(0, 0, 16, 9)).pixels.numpy()
    # input 0 now in the bottom-right cell
    np.testing.assert_allclose(flipped[:, 5:8, 11:15], want[:, 1:4, 1:5], atol=1e-12)


@settings(max_examples=40, deadline=None)
@given(w=st.integers(20, 60), h=st.integers(20, 60), rows=st.integers(1, 4), cols=st.integers(1, 4),
       gap=st.integers(0, 3), center=st.booleans())
def test_contact_sheet_cells_tile_the_sheet(w, h, rows, cols, gap, center):
    from nodegraph.nodes.layout import cell_boxes, fit_in_cell

    cells = cell_boxes(w, h, rows, cols, gap, "TopBottom", "LeftRight")
    cw, ch = (w - gap * (cols + 1)) / cols, (h - gap * (rows + 1)) / rows
    for i, (x0, y0, x1, y1) in enumerate(cells):
        r, c = divmod(i, cols)
        assert math.isclose(x0, gap + c * (cw + gap)) and math.isclose(y1 - y0, ch) and math.isclose(x1 - x0, cw)
        place = fit_in_cell(16, 9, (x0, y0, x1, y1), center)
        if place is not None:
            px, py, pw, ph = place
            assert abs(pw / ph - 16 / 9) < 0.5 + 16 / ph  # aspect kept up to rounding
            assert px >= math.floor(x0) - 1 and py >= math.floor(y0) - 1 and px + pw <= math.ceil(x1) + 1


def test_contact_sheet_split_inputs_shows_frames():
    g = ng.Graph()
    src = g.add("Constant", "C", format="4x4", color=Curve([Key(1, 1.0, "linear"), Key(11, 11.0, "linear")]))
    sheet = g.add("ContactSheet", "CS", width=8, height=4, rows=1, columns=2, splitinputs=True, startframe=3)
    g.connect(src, sheet, "0")
    out = g.evaluate(sheet, 1).crop_to(Box(0, 0, 8, 4))
    assert float(out.pixels[0, 0, 0]) == 3.0 and float(out.pixels[0, 0, 4]) == 4.0
    sheet.set(endframe=3)
    out = g.evaluate(sheet, 1).crop_to(Box(0, 0, 8, 4))
    assert float(out.pixels[0, 0, 4]) == 0.0


def test_contact_sheet_from_a_nuke_script_and_empty_windows():
    text = """LayoutSource {
 inputs 0
 name S0
 size {8 6}
 box {0 0 8 6}
}
LayoutSource {
 inputs 0
 name S1
 size {8 6}
 box {4 4 4 4}
 seed 1
}
ContactSheet {
 inputs 2
 width {{"16 + gap * 3"}}
 height {{"6 + gap * 2"}}
 rows 1
 columns 2
 gap 1
 roworder TopBottom
 name ContactSheet1
}
"""
    res = read_nk(text)
    g = res.graph
    cs = g["ContactSheet1"]
    assert cs.value("width", 1) == 19 and cs.value("height", 1) == 8
    for dtype in (torch.float32, torch.float16):
        out = g.evaluate(cs, 1, dtype=dtype)
        assert out.dtype == dtype and out.format.width == 19
    # the .nk stack: S1 is input 0 (top of the stack), S0 input 1; S1 is empty: one cell filled
    out = g.evaluate(cs, 1, dtype=torch.float64)
    np.testing.assert_allclose(out.crop_to(Box(10, 1, 18, 7)).pixels.numpy(), src_np(g, "S0"), atol=1e-12)
    assert out.bbox == Box(10, 1, 18, 7)


# --- ModifyMetaData -----------------------------------------------------------------------------

def test_modify_metadata_sets_and_removes_as_nuke_writes_it():
    text = r"""LayoutSource {
 inputs 0
 name S
}
ModifyMetaData {
 metadata {
  {set sam/detailLevel "\[expr \{\[value parent.detail] == \"false\" ? \"high\": \" low\"\}]"}
  {set shot {sh 010}}
  {remove src}
 }
 name ModifyMetaData1
}
"""
    res = read_nk(text)
    g = res.graph
    node = g["ModifyMetaData1"]
    out = g.evaluate(node, 1)
    assert out.metadata == {"sam/detailLevel": '[expr {[value parent.detail] == "false" ? "high": " low"}]',
                            "shot": "sh 010"}
    assert out.pixels is g.evaluate("S", 1).pixels  # pixels shared, untouched
    node.set(metadata="{set a 1} {frob b}")
    assert g.evaluate(node, 1).metadata == {"src": "yes", "a": "1"}
    assert any("frob" in m for m in node.check())
    with pytest.raises(ng.KnobError):
        node.set(metadata="{set a")


# --- Glow ---------------------------------------------------------------------------------------

def conv_same_black(x: np.ndarray, k: np.ndarray, pad: tuple[int, int]) -> np.ndarray:
    """x [C, H, W] padded with black by (ry, rx), convolved with the separable kernel k (1D), full."""
    ry, rx = pad
    p = np.pad(x, ((0, 0), (2 * ry, 2 * ry), (2 * rx, 2 * rx)))
    c, h, w = p.shape
    r = len(k) // 2
    horiz = np.zeros((c, h, w - 2 * r))
    for i, kv in enumerate(k):
        horiz += kv * p[:, :, i:i + w - 2 * r]
    out = np.zeros((c, h - 2 * r, w - 2 * r))
    for i, kv in enumerate(k):
        out += kv * horiz[:, i:i + h - 2 * r, :]
    return out


def glow_reference(x: np.ndarray, tol: float, sat: float, tint, bright: float, k: np.ndarray) -> np.ndarray:
    s = np.maximum(x - tol, 0)
    lum = 0.2126 * s[0] + 0.7152 * s[1] + 0.0722 * s[2]
    s[:3] = lum + (s[:3] - lum) * sat
    s[:3] *= np.array(tint)[:, None, None]
    s *= bright
    r = len(k) // 2
    return conv_same_black(s, k, (r, r))


@settings(max_examples=25, deadline=None)
@given(tol=st.floats(0, 1), sat=st.floats(0, 2), bright=st.floats(0, 3),
       tint=st.tuples(st.floats(0, 2), st.floats(0, 2), st.floats(0, 2)), size=st.sampled_from([1, 3, 5]),
       effect_only=st.booleans())
def test_glow_box_matches_numpy(tol, sat, bright, tint, size, effect_only):
    g = ng.Graph()
    src = g.add("LayoutSource", "S", size=(8, 6), box=(0, 0, 8, 6), seed=3)
    node = g.add("Glow", "G", input=src, tolerance=tol, saturation=sat, brightness=bright, tint=tint,
                 size=float(size), filter="box", effect_only=effect_only, crop=False)
    k = np.full(size, 1.0 / size)
    r = size // 2
    x = src_np(g, "S")
    glow = glow_reference(x.copy(), tol, sat, tint, bright, k)
    base = np.pad(x, ((0, 0), (r, r), (r, r)))
    want = glow if effect_only else base + glow
    out = g.evaluate(node, 1, dtype=torch.float64)
    assert out.bbox == Box(-r, -r, 8 + r, 6 + r)
    np.testing.assert_allclose(out.pixels.numpy(), want, rtol=1e-5, atol=1e-6)


def test_glow_gaussian_crop_mask_and_animated_brightness():
    g = ng.Graph()
    src = g.add("LayoutSource", "S", size=(8, 6), box=(0, 0, 8, 6), seed=4)
    node = g.add("Glow", "G", input=src, size=4.8, brightness=Curve([Key(1, 0.5, "linear"), Key(3, 1.5, "linear")]))
    sigma = 4.8 / 2.4
    r = math.ceil(3 * sigma)
    k = np.exp(-np.arange(-r, r + 1) ** 2 / (2 * sigma * sigma))
    k /= k.sum()
    x = src_np(g, "S")
    for frame, bright in ((1, 0.5), (2, 1.0)):
        glow = glow_reference(x.copy(), 0.0, 1.0, (1, 1, 1), bright, k)[:, r:r + 6, r:r + 8]
        out = g.evaluate(node, frame, dtype=torch.float64)
        assert out.bbox == Box(0, 0, 8, 6)  # crop: the format
        np.testing.assert_allclose(out.pixels.numpy(), x + glow, rtol=1e-6, atol=1e-9)
    mask = g.add("Ramp", "M", format="8x6", p0=(0, 0), p1=(8, 0))
    g.connect(mask, node, "mask")
    node.set(mix=0.5, brightness=1.0)
    m = g.evaluate(mask, 1, dtype=torch.float64).channel("rgba.alpha").numpy()
    glow = glow_reference(x.copy(), 0.0, 1.0, (1, 1, 1), 1.0, k)[:, r:r + 6, r:r + 8]
    np.testing.assert_allclose(g.evaluate(node, 1, dtype=torch.float64).pixels.numpy(), x + glow * 0.5 * m,
                               rtol=1e-6, atol=1e-9)


def test_glow_half_and_empty_window_and_nk():
    text = """LayoutSource {
 inputs 0
 name S
 box {2 2 2 2}
}
Glow {
 tolerance 0.2
 brightness 2
 size 6
 effect_only true
 name Glow1
}
"""
    g = read_nk(text).graph
    for dtype in (torch.float32, torch.float16):
        out = g.evaluate("Glow1", 1, dtype=dtype)
        assert out.dtype == dtype
        assert not out.pixels.any()
    node = g["Glow1"]
    assert node["tolerance"] == 0.2 and node["effect_only"] is True and node["filter"] == "gaussian"
    g["S"].set(box=(0, 0, 8, 6))
    full = g.evaluate(node, 1)
    half = g.evaluate(node, 1, dtype=torch.float16)
    torch.testing.assert_close(half.pixels.float(), full.pixels, rtol=4e-3, atol=4e-3)


# --- EdgeDetect ---------------------------------------------------------------------------------

def edges_reference(x: np.ndarray, method: str, threshold: float) -> np.ndarray:
    """Gradient magnitude by explicit neighbour sums over a black-padded copy."""
    p = np.pad(x, ((0, 0), (1, 1), (1, 1)))
    h, w = x.shape[1:]

    def at(dy, dx):
        return p[:, 1 + dy:1 + dy + h, 1 + dx:1 + dx + w]

    if method == "simple":
        gx = (at(0, 1) - at(0, -1)) / 2
        gy = (at(1, 0) - at(-1, 0)) / 2
    else:
        c = 2 if method == "sobel" else 1
        n = 2 * (2 + c)
        gx = (at(-1, 1) + c * at(0, 1) + at(1, 1) - at(-1, -1) - c * at(0, -1) - at(1, -1)) / n
        gy = (at(1, -1) + c * at(1, 0) + at(1, 1) - at(-1, -1) - c * at(-1, 0) - at(-1, 1)) / n
    mag = np.sqrt(gx * gx + gy * gy)
    return np.where(mag < threshold, 0, mag)


@settings(max_examples=20, deadline=None)
@given(method=st.sampled_from(["simple", "sobel", "prewitt"]), threshold=st.floats(0, 0.6), seed=st.integers(0, 50))
def test_edge_detect_matches_numpy(method, threshold, seed):
    g = ng.Graph()
    src = g.add("LayoutSource", "S", size=(8, 6), box=(1, 1, 7, 5), seed=seed)
    node = g.add("EdgeDetect", "E", input=src, edgedetector=method, threshold=threshold)
    x = g.evaluate(src, 1, dtype=torch.float64).pixels.numpy()
    out = g.evaluate(node, 1, dtype=torch.float64)
    assert out.bbox == Box(1, 1, 7, 5)
    np.testing.assert_allclose(out.pixels.numpy(), edges_reference(x, method, threshold), rtol=1e-9, atol=1e-12)


def test_edge_detect_ramp_slope_output_channel_and_mask_channel():
    g = ng.Graph()
    ramp = g.add("Ramp", "R", format="16x4", p0=(0, 0), p1=(16, 0), color=(1.0, 1.0, 1.0, 1.0))
    node = g.add("EdgeDetect", "E", input=ramp, channels="rgba.red")
    red = g.evaluate(node, 1).channel("rgba.red").numpy()
    np.testing.assert_allclose(red[1:-1, 1:-1], 1 / 16, rtol=1e-5)  # slope 1/16 per pixel, inside
    node.set(output="depth.Z")
    out = g.evaluate(node, 1)
    assert "depth.Z" in out.channels
    np.testing.assert_allclose(out.channel("rgba.red").numpy(), g.evaluate(ramp, 1).channel("rgba.red").numpy())
    np.testing.assert_allclose(out.channel("depth.Z").numpy(), red, rtol=1e-6)
    node.set(output="none", maskedgedetect="rgba.alpha")
    x = g.evaluate(ramp, 1)
    a = x.channel("rgba.alpha").numpy()
    want = x.channel("rgba.red").numpy() * (1 - a) + red * a
    np.testing.assert_allclose(g.evaluate(node, 1).channel("rgba.red").numpy(), want, rtol=1e-5, atol=1e-7)
    g.connect(g.add("LayoutSource", "Empty", box=(3, 3, 3, 3)), node, "input")
    for dtype in (torch.float32, torch.float16):  # an empty window stays empty
        assert g.evaluate(node, 1, dtype=dtype).bbox.empty


def test_edge_detect_from_a_nuke_script():
    text = """LayoutSource {
 inputs 0
 name S
}
EdgeDetect {
 edgedetector prewitt
 threshold 0.1
 name EdgeDetect1
}
"""
    res = read_nk(text)
    assert not [w for w in res.warnings if "EdgeDetect1" in str(w)], res.warnings
    g = res.graph
    x = g.evaluate("S", 1, dtype=torch.float64).pixels.numpy()
    np.testing.assert_allclose(g.evaluate("EdgeDetect1", 1, dtype=torch.float64).pixels.numpy(),
                               edges_reference(x, "prewitt", 0.1), rtol=1e-9, atol=1e-12)
    half = g.evaluate("EdgeDetect1", 1, dtype=torch.float16).pixels.float().numpy()
    np.testing.assert_allclose(half, edges_reference(x, "prewitt", 0.1), rtol=5e-3, atol=5e-3)


# --- Switch and Dissolve as scripts use them ----------------------------------------------------

def test_switch_takes_a_dozen_inputs_from_a_script():
    sources = "\n".join(f"Constant {{\n inputs 0\n name C{i}\n format \"4 4 0 0 4 4 1 sq\"\n color {i}\n}}"
                        for i in range(12))
    text = sources + "\nSwitch {\n inputs 12\n which 10\n name Switch1\n}\n"
    g = read_nk(text).graph
    sw = g["Switch1"]
    # the stack: the last Constant pushed is input 0, so input 10 is C1
    assert float(g.evaluate(sw, 1).pixels[0, 0, 0]) == 1.0
    sw.set(which=Curve([Key(1, 0, "constant"), Key(2, 11, "constant")]))
    assert float(g.evaluate(sw, 1).pixels[0, 0, 0]) == 11.0 and float(g.evaluate(sw, 2).pixels[0, 0, 0]) == 0.0


def test_dissolve_mask_from_a_script():
    text = """LayoutSource {
 inputs 0
 name S0
 seed 5
}
LayoutSource {
 inputs 0
 name S1
 seed 6
}
Ramp {
 inputs 0
 name M
 format "8 6 0 0 8 6 1 x"
 p0 {0 0}
 p1 {8 0}
}
Dissolve {
 inputs 2+1
 which 0.5
 name Dissolve1
}
"""
    g = read_nk(text).graph
    node = g["Dissolve1"]
    assert set(g.sources_of(node)) == {"0", "1", "mask"}
    a = g.evaluate(g.sources_of(node)["0"], 1, dtype=torch.float64).pixels.numpy()
    b = g.evaluate(g.sources_of(node)["1"], 1, dtype=torch.float64).pixels.numpy()
    # the stack's top (the Ramp) is input 0, S1 input 1, S0 the mask (clamped to 0..1)
    m = g.evaluate(g.sources_of(node)["mask"], 1, dtype=torch.float64).channel("rgba.alpha").numpy().clip(0, 1)
    want = a + ((a + (b - a) * 0.5) - a) * m
    np.testing.assert_allclose(g.evaluate(node, 1, dtype=torch.float64).pixels.numpy(), want, rtol=1e-6)
    node.set(invert_mask=True)
    want = a + ((a + (b - a) * 0.5) - a) * (1 - m)
    np.testing.assert_allclose(g.evaluate(node, 1, dtype=torch.float64).pixels.numpy(), want, rtol=1e-6)


# --- GPU ----------------------------------------------------------------------------------------

@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.parametrize("type_name, knobs", [
    ("ContactSheet", {"width": 40, "height": 30, "rows": 2, "columns": 2, "gap": 2, "center": True}),
    ("Glow", {"size": (5.0, 3.0), "tolerance": 0.3, "saturation": 0.5, "tint": (1.0, 0.5, 2.0), "mix": 0.7}),
    ("ModifyMetaData", {"metadata": "{set a b}"}),
    ("EdgeDetect", {"edgedetector": "prewitt", "threshold": 0.05, "maskedgedetect": "rgba.alpha"}),
    ("Dissolve", {"which": 0.3}),
])
def test_cuda_matches_cpu(type_name, knobs):
    g = ng.Graph()
    node = g.add(type_name, "N", **knobs)
    images = [spec.name for spec in node.inputs if spec.name != "mask"][:2]  # one or two image inputs
    for i, name in enumerate(images):
        g.connect(g.add("LayoutSource", f"S{i}", seed=i), node, name)
    if "mask" in node.input_names():
        g.connect(g.add("Ramp", "M", format="8x6", p0=(0, 0), p1=(8, 0)), node, "mask")
    cpu = g.evaluate(node, 1, device="cpu")
    gpu = g.evaluate(node, 1, device="cuda")
    assert gpu.device.type == "cuda" and gpu.metadata == cpu.metadata
    torch.testing.assert_close(gpu.pixels.cpu(), cpu.pixels, rtol=1e-4, atol=1e-5)
