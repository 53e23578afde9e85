"""STMap, IDistort and CornerPin2D: against OpenImageIO (st_warp, warp) on a real HDR crop, and
against hand-written numpy gathers (impulse filter: exact) with hypothesis.

Tolerances. OpenImageIO's warp computes the same weighted sums in float32 (the kernel widened
by the same rule where the pin minifies): a small multiple of float32 precision times the
image's peak. st_warp filters over the map's
derivatives: on a smooth map of about one pixel per pixel its "cubic" agrees with ours to float
precision (compared away from the edges, where OpenImageIO clamps and we read black).
"""

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
from nodegraph.nodes.transform import flip_y
from nodegraph.nodes.warp import CornerPin2D, IDistort, STMap, pin_matrix
from nodegraph.nuke.reader import read_nk
from nodegraph.testing import compute_node

from test_transform import desk, pixels, to_image  # noqa: F401  (desk: the same HDR crop fixture)

def smooth(w: int = 64, h: int = 48) -> Image:
    """A smooth RGBA pattern (no hard edges) of a w x h format."""
    y, x = torch.meshgrid(torch.arange(h, dtype=torch.float64), torch.arange(w, dtype=torch.float64), indexing="ij")
    planes = [0.5 + 0.4 * torch.sin(x / 7.0), 0.5 + 0.4 * torch.cos(y / 5.0),
              0.5 + 0.3 * torch.sin((x + y) / 9.0), torch.ones_like(x)]
    return Image(torch.stack(planes).float(), RGBA, Box(0, 0, w, h), Format.of_size(w, h))


def uv_image(u: np.ndarray, v: np.ndarray, fmt: Format) -> Image:
    """An image whose red/green hold u/v (y-down rows), blue and alpha zero."""
    h, w = u.shape
    px = np.stack([u, v, np.zeros_like(u), np.zeros_like(u)]).astype(np.float32)
    return Image(torch.from_numpy(px), RGBA, Box(0, 0, w, h), fmt)


# --- STMap ----------------------------------------------------------------------------------------

def test_stmap_matches_oiio_st_warp_on_a_smooth_image():
    src = smooth()
    h, w = 48, 64
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float64)
    # a gentle swirl: s, t in 0..1, t measured up from the bottom as Nuke's v
    s = (xx + 0.5 + 1.5 * np.sin(yy / 8.0)) / w
    t = 1.0 - (yy + 0.5 + 1.2 * np.cos(xx / 10.0)) / h
    out = compute_node(STMap("S", uv="rgb", filter="cubic"), src=src, stmap=uv_image(s, t, src.format))
    buf = ImageBuf(oiio.ImageSpec(w, h, 4, oiio.FLOAT))
    buf.set_pixels(ROI(0, w, 0, h, 0, 1, 0, 4), src.pixels.numpy().transpose(1, 2, 0).copy())
    stbuf = ImageBuf(oiio.ImageSpec(w, h, 2, oiio.FLOAT))
    stbuf.set_pixels(ROI(0, w, 0, h, 0, 1, 0, 2), np.stack([s, t], axis=-1).astype(np.float32))
    ref = IBA.st_warp(buf, stbuf, filtername="cubic", flip_t=True)
    inner = (slice(None), slice(4, h - 4), slice(4, w - 4))  # away from the edges (OIIO clamps there)
    assert np.abs(out.pixels.numpy()[inner] - pixels(ref)[inner]).max() < 1e-5


@settings(max_examples=30, deadline=None)
@given(st.integers(0, 2**31 - 1), st.integers(1, 12), st.integers(1, 12))
def test_stmap_impulse_is_a_gather(seed, w, h):
    rng = np.random.default_rng(seed)
    src = Image(torch.from_numpy(rng.normal(size=(4, h, w)).astype(np.float32)), RGBA, Box(0, 0, w, h),
                Format.of_size(w, h))
    u = rng.uniform(-0.2, 1.2, size=(h, w))
    v = rng.uniform(-0.2, 1.2, size=(h, w))
    out = compute_node(STMap("S", uv="rgb", filter="impulse"), src=src, stmap=uv_image(u, v, src.format))
    uf, vf = u.astype(np.float32).astype(np.float64), v.astype(np.float32).astype(np.float64)
    col = np.floor(uf * w).astype(int)
    row = np.floor((1.0 - vf) * h).astype(int)
    inside = (col >= 0) & (col < w) & (row >= 0) & (row < h)
    want = src.pixels.numpy()[:, row.clip(0, h - 1), col.clip(0, w - 1)] * inside
    np.testing.assert_array_equal(out.pixels.numpy(), want.astype(np.float32))


def test_stmap_takes_the_map_window_and_leaves_other_channels():
    src = smooth()
    fmt = Format.of_size(20, 10)
    u = np.full((10, 20), 0.5)
    out = compute_node(STMap("S", uv="rgb", channels="rgb", filter="impulse"), src=src,
                       stmap=uv_image(u, u, fmt))
    assert out.format == fmt and out.bbox == Box(0, 0, 20, 10)
    centre = src.pixels[:, 24, 32]
    assert torch.equal(out.pixels[:3, 5, 5], centre[:3])
    assert torch.equal(out.pixels[3], src.crop_to(out.bbox).pixels[3])  # alpha: not warped


# --- IDistort -------------------------------------------------------------------------------------

@settings(max_examples=30, deadline=None)
@given(st.integers(0, 2**31 - 1), st.floats(-3, 3), st.floats(0, 2), st.floats(-2, 2))
def test_idistort_impulse_offsets_in_y_up_pixels(seed, offset, sx, sy):
    rng = np.random.default_rng(seed)
    h, w = 9, 11
    px = rng.normal(size=(4, h, w)).astype(np.float32)
    px[0] = rng.integers(-3, 4, size=(h, w))  # u
    px[1] = rng.integers(-3, 4, size=(h, w))  # v
    img = Image(torch.from_numpy(px), RGBA, Box(0, 0, w, h), Format.of_size(w, h))
    out = compute_node(IDistort("D", uv="rgb", channels="rgba.blue,rgba.alpha", filter="impulse", uv_offset=offset,
                                uv_scale=(sx, sy)), input=img)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float64)
    col = np.floor(xx + 0.5 + (px[0] - offset) * sx).astype(int)
    row = np.floor(yy + 0.5 - (px[1] - offset) * sy).astype(int)
    inside = (col >= 0) & (col < w) & (row >= 0) & (row < h)
    want = px[2:, row.clip(0, h - 1), col.clip(0, w - 1)] * inside
    np.testing.assert_allclose(out.pixels.numpy()[2:], want, rtol=0, atol=0)
    np.testing.assert_array_equal(out.pixels.numpy()[:2], px[:2])  # uv not in channels: unchanged


def test_idistort_documented_example():
    """Pixel 51, 23 with u, v = -1, 5 comes from pixel 50, 28 (Foundry's example, y up)."""
    w, h = 64, 40
    px = np.zeros((4, h, w), np.float32)
    px[2, h - 1 - 28, 50] = 7.0  # blue marks pixel 50, 28
    px[0, h - 1 - 23, 51], px[1, h - 1 - 23, 51] = -1.0, 5.0
    img = Image(torch.from_numpy(px), RGBA, Box(0, 0, w, h), Format.of_size(w, h))
    out = compute_node(IDistort("D", uv="rgb", filter="impulse"), input=img)
    assert out.pixels[2, h - 1 - 23, 51] == 7.0


def test_idistort_mask_blends_with_the_input():
    img = smooth()
    img.pixels[0] = 2.0
    img.pixels[1] = 0.0
    mask = Image(torch.full((4, 48, 64), 0.25), RGBA, Box(0, 0, 64, 48), img.format)
    node = IDistort("D", uv="rgb", channels="rgba.blue", filter="impulse", maskChannel="rgba.alpha")
    full = compute_node(IDistort("D", uv="rgb", channels="rgba.blue", filter="impulse"), input=img)
    half = compute_node(node, input=img, mask=mask)
    want = img.pixels[2] + (full.pixels[2] - img.pixels[2]) * 0.25
    torch.testing.assert_close(half.pixels[2], want)


# --- CornerPin2D ----------------------------------------------------------------------------------

@settings(max_examples=50, deadline=None)
@given(st.lists(st.tuples(st.floats(-50, 50), st.floats(-50, 50)), min_size=4, max_size=4))
def test_pin_matrix_takes_the_corners_to_their_targets(moves):
    """Through the enabled pairs: translation (1), similarity (2), affine (3), homography (4)."""
    src = [(0.0, 0.0), (100.0, 0.0), (100.0, 80.0), (0.0, 80.0)]
    dst = [(x + dx, y + dy) for (x, y), (dx, dy) in zip(src, moves)]
    for n in (1, 2, 3, 4):
        m = pin_matrix(src[:n], dst[:n])
        if n == 4 and np.array_equal(m, np.eye(3)) and dst != src:
            continue  # a degenerate target quad: no homography, the identity
        for (x, y), (tx, ty) in zip(src[:n], dst[:n]):
            p = m @ np.array([x, y, 1.0])
            assert np.allclose(p[:2] / p[2], (tx, ty), atol=1e-6), (n, m)
    m = pin_matrix(src[:2], dst[:2])
    assert np.isclose(m[0, 0], m[1, 1]) and np.isclose(m[0, 1], -m[1, 0])  # two pairs: a similarity


@pytest.mark.parametrize("to", [
    [(10, 5), (90, 0), (95, 70), (5, 60)],      # a perspective pin, magnifying everywhere
    [(-5, 3), (101, -2), (106, 80), (0, 85)],   # near-affine
])
def test_cornerpin_matches_oiio_warp(desk, to):
    h = desk.spec().full_height
    knobs = {"from1": (20, 10), "from2": (70, 10), "from3": (70, 50), "from4": (20, 50)}
    knobs.update({f"to{i + 1}": p for i, p in enumerate(to)})
    node = CornerPin2D("C", filter="cubic", **knobs)
    img = to_image(desk)
    out = compute_node(node, input=img)
    f = flip_y(h)
    m = f @ node.nuke_matrix() @ f
    b = out.bbox
    ref = IBA.warp(desk, tuple(float(v) for v in m.T.flatten()), filtername="cubic",
                   roi=ROI(b.x0, b.x1, b.y0, b.y1, 0, 1, 0, 4))
    peak = float(np.abs(pixels(desk)).max())
    assert np.abs(out.pixels.numpy() - pixels(ref)).max() <= 2e-4 * peak


@pytest.mark.parametrize("ours, theirs", [("cubic", "cubic"), ("lanczos6", "lanczos3")])
def test_cornerpin_minifying_widens_the_kernel_as_oiio_warp(desk, ours, theirs):
    """An affine pin (corner 4 off) shrinking the crop to 40%: the kernel widens by 2.5 along each
    source axis, as OpenImageIO's warp does for the same matrix."""
    knobs = dict(from1=(0, 0), from2=(96, 0), from3=(96, 64), to1=(10, 20), to2=(48.4, 20), to3=(48.4, 45.6),
                 enable4=False)
    node = CornerPin2D("C", filter=ours, **knobs)
    out = compute_node(node, input=to_image(desk))
    f = flip_y(desk.spec().full_height)
    m = f @ node.nuke_matrix() @ f
    b = out.bbox
    ref = IBA.warp(desk, tuple(float(v) for v in m.T.flatten()), filtername=theirs,
                   roi=ROI(b.x0, b.x1, b.y0, b.y1, 0, 1, 0, 4))
    peak = float(np.abs(pixels(desk)).max())
    assert np.abs(out.pixels.numpy() - pixels(ref)).max() <= 2e-4 * peak


def test_cornerpin_defaults_are_the_identity_and_invert_undoes():
    img = smooth(1920 // 16, 1080 // 16)
    node = CornerPin2D("C", filter="impulse", from2=(120, 0), from3=(120, 67.5), from4=(0, 67.5),
                       to2=(120, 0), to3=(120, 67.5), to4=(0, 67.5))
    assert torch.equal(compute_node(node, input=img).pixels, img.pixels)
    shift = dict(to1=(3, 2), enable2=False, enable3=False, enable4=False)
    moved = compute_node(CornerPin2D("C", filter="impulse", **shift), input=img)
    assert moved.bbox == Box(3, -2, img.format.width + 3, img.format.height - 2)  # 2 up is 2 rows fewer
    back = compute_node(CornerPin2D("C", filter="impulse", invert=True, **shift), input=moved)
    assert torch.equal(back.crop_to(img.bbox).pixels[:, 2:, :-3], img.pixels[:, 2:, :-3])


def test_cornerpin_animated_corner_and_empty_window():
    g = ng.Graph()
    src = g.add("Constant", "Src", format="32x24", color=(1, 0.5, 0.25, 1))
    pin = g.add("CornerPin2D", "Pin", filter="impulse", enable2=False, enable3=False, enable4=False,
                to1=[Curve([Key(1, 0.0, "linear"), Key(11, 10.0, "linear")]), 0.0])
    g.connect(src, pin, "input")
    assert g.evaluate(pin, 1).bbox == Box(0, 0, 32, 24)
    assert g.evaluate(pin, 6).bbox == Box(5, 0, 37, 24)
    assert g.evaluator.hash(pin, 1) != g.evaluator.hash(pin, 6)
    empty = Image(torch.zeros((4, 0, 0)), RGBA, Box(5, 5, 5, 5), Format.of_size(32, 24))
    for dtype in (torch.float32, torch.float16):
        out = compute_node(CornerPin2D("C", to1=(3, 3)), input=empty.to(dtype=dtype))
        assert out.bbox.empty and out.pixels.dtype == dtype
        out = compute_node(STMap("S", uv="rgb"), src=smooth().to(dtype=dtype), stmap=empty.to(dtype=dtype))
        assert out.bbox.empty and out.pixels.dtype == dtype


def test_half_precision_close_to_float():
    img = smooth()
    img.pixels[0] = 1.5
    img.pixels[1] = -0.75
    for node in (IDistort("D", uv="rgb", channels="rgba.blue"), CornerPin2D("C", to1=(3.3, 1.7), to3=(1900, 1000))):
        full = compute_node(node, input=img)
        half = compute_node(node, input=img.to(dtype=torch.float16), dtype=torch.float16)
        assert half.pixels.dtype == torch.float16
        torch.testing.assert_close(half.pixels.float(), full.pixels, rtol=4e-3, atol=4e-3)


# --- Nuke scripts -----------------------------------------------------------------------------------

NK = """Root {
 format "32 24 0 0 32 24 1 tiny"
}
ColorBars {
 inputs 0
 name Bars
}
Expression {
 expr0 "(x + 0.5) / width"
 expr1 "1 - (y + 0.5) / height"
 name Flip
}
ColorBars {
 inputs 0
 name Src
}
STMap {
 inputs 2
 uv rgb
 blur -rgba.alpha
 maskChannel -rgba.alpha
 filter Impulse
 name STMap1
}
"""


def test_nk_stmap_reads_and_renders():
    g = read_nk(NK).graph
    node = g.node("STMap1")
    assert node.type_name == "STMap" and node.knobs.uv == "rgb" and node.knobs.filter == "impulse"
    assert node.knobs.maskChannel == "none"
    sources = g.sources_of(node)
    assert sources["src"].name == "Src" and sources["stmap"].name == "Flip"
    out = g.evaluate(node, 1)
    bars = g.evaluate(g.node("Src"), 1)
    # a map that flips upside down: row r comes from row h - 1 - r
    assert torch.equal(out.pixels[:3], bars.pixels[:3].flip(1))


# --- GPU ------------------------------------------------------------------------------------------

@pytest.mark.gpu
@pytest.mark.parametrize("make", [
    lambda: (STMap("S", uv="rgb"), {"src": smooth(), "stmap": uv_image(np.full((48, 64), 0.3),
                                                                    np.linspace(0, 1, 64)[None].repeat(48, 0),
                                                                    Format.of_size(64, 48))}),
    lambda: (IDistort("D", uv="rgb", channels="rgba.blue", uv_scale=2.5), {"input": smooth()}),
    lambda: (CornerPin2D("C", to1=(3, 2), to3=(1500, 900), filter="lanczos6"), {"input": smooth()}),
], ids=["STMap", "IDistort", "CornerPin2D"])
def test_gpu_matches_cpu(make):
    node, images = make()
    cpu = compute_node(node, **images)
    gpu = compute_node(node, device="cuda", **{k: v.to("cuda") for k, v in images.items()})
    assert gpu.pixels.device.type == "cuda" and gpu.bbox == cpu.bbox
    torch.testing.assert_close(gpu.pixels.cpu(), cpu.pixels, rtol=1e-5, atol=1e-5)
