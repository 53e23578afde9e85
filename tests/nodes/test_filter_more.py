"""Erode (blur), FilterErode, Defocus, VectorBlur and Position against independent references.

Erode and FilterErode (box, whole pixels): OpenImageIO's ``erode`` / ``dilate`` on a black-padded
copy, the blur after Erode as OIIO's ``convolve`` with a Gaussian written here from Blur's formula;
fractional sizes and the triangle element: a numpy loop over the element written from the
documented formula (hypothesis). Defocus: OIIO's ``convolve`` with ``make_kernel("disk")`` (pixel
centres inside a circle of diameter w), the disc's area against pi r^2. VectorBlur: a numpy
gather with hand-written bilinear sampling. Position: numpy slices and linear interpolation.
"""

from __future__ import annotations

import math

import numpy as np
import OpenImageIO as oiio
import pytest
import torch
from hypothesis import example, given, settings
from hypothesis import strategies as st
from OpenImageIO import ImageBuf, ImageSpec, ROI
from OpenImageIO import ImageBufAlgo as IBA

import nodegraph as ng
from nodegraph import Box, Image
from nodegraph.channels import RGBA
from nodegraph.expression import Expression
from nodegraph.nodes.edge import EdgeDetect
from nodegraph.nodes.filter_more import Defocus, EdgeDetectWrapper, Erode, FilterErode, Position, VectorBlur, disc_kernel
from nodegraph.nuke.reader import read_nk
from nodegraph.testing import compute_node

from test_filter_extra import FMT, oiio_region, padded_buf, random_image, run  # shared helpers
from test_ocio_nodes import check_gpu, check_half_and_empty  # shared helpers

FAST = settings(max_examples=25, deadline=None)


def kernel_buf(k: np.ndarray) -> ImageBuf:
    h, w = k.shape
    kb = ImageBuf(ImageSpec(w, h, 1, oiio.FLOAT))
    kb.set_pixels(ROI(0, w, 0, h, 0, 1, 0, 1), k.astype(np.float32).reshape(h, w, 1))
    kb.set_origin(-(w // 2), -(h // 2))
    return kb


def np_of(img: Image) -> np.ndarray:
    return img.pixels.double().numpy()


def on_box(img: Image, box: Box) -> np.ndarray:
    return np_of(img.crop_to(box))


# --- Erode (blur) ----------------------------------------------------------------------------------

@pytest.mark.parametrize("size", [-1.0, -2.0, 1.0, 3.0, (-2.0, -1.0), (2.0, 1.0)])
def test_erode_min_max_matches_oiio(size):
    img = random_image(3, Box(1, 2, 11, 8))
    out = run(Erode, img, size=size, channels="all")
    sx, sy = (size, size) if isinstance(size, float) else size
    buf = padded_buf(img, 8)
    op = IBA.erode if sx < 0 else IBA.dilate
    ref = op(buf, 2 * int(abs(sx)) + 1, 2 * int(abs(sy)) + 1)
    grow = (int(abs(sx)), int(abs(sy)))
    b = img.bbox
    assert out.bbox == Box(b.x0 - grow[0], b.y0 - grow[1], b.x1 + grow[0], b.y1 + grow[1])
    np.testing.assert_allclose(np_of(out), oiio_region(ref, out.bbox), atol=1e-6)


def gaussian_1d(size: float) -> np.ndarray:
    """Blur's gaussian: sigma = size / 2.4 sampled at whole offsets up to ceil(3 sigma), summing to 1."""
    sigma = size / 2.4
    r = math.ceil(3 * sigma)
    x = np.arange(-r, r + 1)
    w = np.exp(-x * x / (2 * sigma * sigma))
    return w / w.sum()


@pytest.mark.parametrize("size, blur", [(-1.0, 3.0), (2.0, 4.0), (0.0, 2.0)])
def test_erode_then_gaussian_blur_matches_oiio(size, blur):
    img = random_image(5, Box(0, 0, 10, 7), channels=("rgba.alpha",))
    out = run(Erode, img, size=size, blur=blur)
    buf = padded_buf(img, 12)
    n = 2 * int(abs(size)) + 1
    # OIIO centres a width-1 window off by one: size 0 is no min/max at all
    hard = (IBA.erode if size < 0 else IBA.dilate)(buf, n, n) if size else buf
    g = gaussian_1d(blur)
    ref = IBA.convolve(hard, kernel_buf(np.outer(g, g)), False)
    assert out.bbox.width == img.bbox.width + 2 * (len(g) // 2 + int(abs(size)))
    np.testing.assert_allclose(np_of(out), oiio_region(ref, out.bbox), atol=2e-6)


def test_erode_default_channels_alpha_mask_and_mix():
    img = random_image(6)
    out = run(Erode, img).crop_to(img.bbox)  # size -1: the alpha shrinks, colour untouched
    np.testing.assert_array_equal(np_of(out)[:3], np_of(img)[:3])
    assert np.all(np_of(out)[3] <= np_of(img)[3] + 1e-7)
    mask = Image(torch.zeros(1, 8, 12), ("rgba.alpha",), FMT.display, FMT)
    mask.pixels[0, :, 6:] = 1
    masked = run(Erode, img, mask=mask, mix=0.5).crop_to(img.bbox)
    full = np_of(out)
    np.testing.assert_allclose(np_of(masked)[3, :, :6], np_of(img)[3, :, :6])
    np.testing.assert_allclose(np_of(masked)[3, :, 6:], 0.5 * (np_of(img)[3, :, 6:] + full[3, :, 6:]), atol=1e-6)


# --- FilterErode ---------------------------------------------------------------------------------

def element(filt: str, r: float) -> np.ndarray:
    """The documented element: box coverage clamp(r + 1 - |j|, 0, 1); triangle 1 - |j| / (r + 1/2)."""
    n = math.ceil(r + 0.5)
    j = np.abs(np.arange(-n, n + 1))
    w = np.clip(r + 1 - j, 0, 1) if filt == "box" else np.clip(1 - j / (r + 0.5), 0, 1)
    reach = int(j[w > 0].max())
    return w[n - reach:n + reach + 1]


def np_morph(img: Image, filt: str, rx: float, ry: float, erode: bool) -> tuple[Box, np.ndarray]:
    wx, wy = element(filt, rx), element(filt, ry)
    nx, ny = len(wx) // 2, len(wy) // 2
    b = img.bbox
    box = Box(b.x0 - nx, b.y0 - ny, b.x1 + nx, b.y1 + ny)
    big = on_box(img, Box(box.x0 - nx, box.y0 - ny, box.x1 + nx, box.y1 + ny))
    out = np.zeros((big.shape[0], box.height, box.width))
    for y in range(box.height):
        for x in range(box.width):
            c = big[:, y + ny, x + nx]
            best = np.zeros_like(c)
            for i, a in enumerate(wy):
                for j, bb in enumerate(wx):
                    d = big[:, y + i, x + j] - c
                    best = np.minimum(best, a * bb * np.minimum(d, 0)) if erode else \
                        np.maximum(best, a * bb * np.maximum(d, 0))
            out[:, y, x] = c + best
    return box, out


@pytest.mark.parametrize("size", [1.0, 2.0, (1.0, 3.0), -1.0, (-3.0, -2.0)])
def test_filter_erode_box_whole_pixels_matches_oiio(size):
    img = random_image(7, Box(2, 1, 11, 7))
    out = run(FilterErode, img, size=size)
    sx, sy = (size, size) if isinstance(size, float) else size
    ref = (IBA.erode if sx > 0 else IBA.dilate)(padded_buf(img, 8), 2 * int(abs(sx)) + 1, 2 * int(abs(sy)) + 1)
    np.testing.assert_allclose(np_of(out), oiio_region(ref, out.bbox), atol=1e-6)


@FAST
@given(sx=st.floats(0, 2.6), sy=st.floats(0, 2.6), sign=st.sampled_from([1, -1]),
       filt=st.sampled_from(["box", "triangle"]), seed=st.integers(0, 99))
@example(sx=1.5, sy=0.25, sign=1, filt="box", seed=1)
@example(sx=0.7, sy=2.0, sign=-1, filt="triangle", seed=2)
def test_filter_erode_soft_element_matches_numpy(sx, sy, sign, filt, seed):
    img = random_image(seed, Box(0, 0, 6, 5))
    out = run(FilterErode, img, size=(sign * sx, sign * sy), filter=filt)
    if sx == 0 and sy == 0:
        assert out is img or torch.equal(out.pixels, img.pixels)
        return
    box, ref = np_morph(img, filt, sx, sy, sign > 0)
    assert out.bbox == box
    np.testing.assert_allclose(np_of(out), ref, atol=1e-5)


def test_filter_erode_rejects_opposite_signs():
    node = FilterErode("F", size=(1.0, -1.0))
    assert node.check()
    with pytest.raises(ng.NodeGraphError):
        compute_node(node, input=random_image())


# --- Defocus -----------------------------------------------------------------------------------------

@pytest.mark.parametrize("w", [3, 5, 7, 9])
@pytest.mark.parametrize("method", ["direct", "fourier"])
def test_defocus_matches_oiio_disk_convolution(w, method):
    img = random_image(9, Box(1, 1, 11, 7))
    out = run(Defocus, img, defocus=float(w), quality=1, method=method)
    k = IBA.make_kernel("disk", w, w, normalize=True)
    kk = k.get_pixels(oiio.FLOAT)[..., 0]
    r = w // 2
    b = img.bbox
    assert out.bbox == Box(b.x0 - r, b.y0 - r, b.x1 + r, b.y1 + r)
    ref = IBA.convolve(padded_buf(img, 2 * w), kernel_buf(kk), False)
    np.testing.assert_allclose(np_of(out), oiio_region(ref, out.bbox), atol=2e-5)


@FAST
@given(r=st.floats(1.0, 8.0))
def test_disc_area_and_aspect(r):
    k = disc_kernel(r, r, 32)
    # the centre pixel is wholly inside (r >= 1): dividing by it gives each pixel's covered area
    covered = (k / k[k.shape[0] // 2, k.shape[1] // 2]).sum().item()
    assert abs(covered - math.pi * r * r) < 0.01 * math.pi * r * r + 0.2
    wide = disc_kernel(2 * r, r, 4)
    assert wide.shape[1] > wide.shape[0] or r < 1.5


def test_defocus_ratio_scale_and_mask():
    node = Defocus("D", defocus=6.0, ratio=2.0, scale=(1.0, 0.5), quality=4)
    assert node.kernel().shape == (3, 13)  # rx = 3 * 2 = 6, ry = 3 * 0.5 = 1.5
    img = random_image(2)
    mask = Image(torch.zeros(1, 8, 12), ("rgba.alpha",), FMT.display, FMT)
    mask.pixels[0, 4:] = 1
    out = run(Defocus, img, mask=mask, defocus=3.0)
    full = run(Defocus, img, defocus=3.0)
    np.testing.assert_allclose(on_box(out, Box(0, 0, 12, 4)), on_box(img, Box(0, 0, 12, 4)))
    np.testing.assert_allclose(on_box(out, Box(0, 4, 12, 8)), on_box(full, Box(0, 4, 12, 8)), atol=1e-6)


# --- VectorBlur -------------------------------------------------------------------------------------

def np_bilinear(src: np.ndarray, x: float, y: float) -> np.ndarray:
    """src [C, H, W] at (x, y), pixel centres at i + 0.5, black outside."""
    fx, fy = x - 0.5, y - 0.5
    x0, y0 = math.floor(fx), math.floor(fy)
    tx, ty = fx - x0, fy - y0
    acc = np.zeros(src.shape[0])
    for yy, wy in ((y0, 1 - ty), (y0 + 1, ty)):
        for xx, wx in ((x0, 1 - tx), (x0 + 1, tx)):
            if 0 <= yy < src.shape[1] and 0 <= xx < src.shape[2]:
                acc += wy * wx * src[:, yy, xx]
    return acc


@FAST
@given(seed=st.integers(0, 99), cu=st.floats(-3, 3), cv=st.floats(-3, 3), scale=st.floats(0, 2),
       offset=st.sampled_from([-0.5, 0.0, -1.0]), method=st.sampled_from(["uniform", "gaussian"]))
def test_vector_blur_matches_numpy_gather(seed, cu, cv, scale, offset, method):
    rng = np.random.default_rng(seed)
    chans = ("rgba.red", "rgba.alpha", "forward.u", "forward.v")
    px = rng.uniform(0, 1, (4, 6, 7))
    px[2:] = rng.uniform(-2, 2, (2, 6, 7))
    img = Image(torch.tensor(px, dtype=torch.float32), chans, Box(0, 0, 7, 6), FMT)
    out = run(VectorBlur, img, channels="rgba", uv="forward", constant=(cu, cv), scale=scale, offset=offset,
              method=method)
    u = (px[2] + cu) * scale
    v = (px[3] + cv) * scale
    longest = np.sqrt(u * u + v * v).max() * max(abs(offset), abs(offset + 1))
    n = min(max(math.ceil(longest) + 1, 2), 256)
    f = np.arange(n) / (n - 1)
    w = np.ones(n) if method == "uniform" else np.exp(-0.5 * ((f - 0.5) / 0.3) ** 2)
    w = w / w.sum()
    ref = np.zeros((2, 6, 7))
    for y in range(6):
        for x in range(7):
            for fk, wk in zip(f, w):
                t = offset + fk
                ref[:, y, x] += wk * np_bilinear(px[:2], x + 0.5 + t * u[y, x], y + 0.5 - t * v[y, x])
    np.testing.assert_allclose(np_of(out)[:2], ref, atol=2e-5)
    np.testing.assert_array_equal(np_of(out)[2:], np_of(img)[2:])


def test_vector_blur_defaults_pass_through_and_grow_bbox():
    img = random_image(1)
    assert torch.equal(run(VectorBlur, img).pixels, img.pixels)  # channels none, uv none
    uv = Image(torch.ones(2, 8, 12) * 4, ("forward.u", "forward.v"), FMT.display, FMT)
    both = Image(torch.cat([img.pixels, uv.pixels]), RGBA + uv.channels, FMT.display, FMT)
    out = run(VectorBlur, both, channels="rgba", uv="forward", grow_bbox=(2.0, 1.0))
    assert out.bbox == Box(-2, -1, 14, 9)


# --- Position ----------------------------------------------------------------------------------------

@FAST
@given(tx=st.floats(-5, 5), ty=st.floats(-5, 5), seed=st.integers(0, 50))
@example(tx=2.0, ty=-3.0, seed=0)
def test_position_matches_numpy(tx, ty, seed):
    img = random_image(seed, Box(1, 2, 9, 7))
    out = run(Position, img, translate=(tx, ty))
    box = Box(-8, -8, 20, 16)
    src = on_box(img, box)
    ref = np.zeros_like(src)
    dx, dy = tx, -ty
    for y in range(box.height):
        for x in range(box.width):
            # out(p) = in(p - d), linear between the two whole neighbours on each axis
            ref[:, y, x] = np_bilinear(src, x + 0.5 - dx, y + 0.5 - dy)
    np.testing.assert_allclose(on_box(out, box), ref, atol=1e-5)
    if float(tx).is_integer() and float(ty).is_integer():
        assert out.bbox == Box(1 + int(tx), 2 - int(ty), 9 + int(tx), 7 - int(ty))
        assert torch.equal(out.pixels, img.pixels)


# --- EdgeDetectWrapper ----------------------------------------------------------------------------

def np_sobel(x: np.ndarray) -> np.ndarray:
    """Gradient magnitude of [C, H, W] (black outside): gx = (right - left) weighted 1 2 1 down the
    column, over 8; gy likewise with below - above."""
    p = np.pad(x, ((0, 0), (1, 1), (1, 1)))
    h, w = x.shape[1:]

    def at(dy, dx):
        return p[:, 1 + dy:1 + dy + h, 1 + dx:1 + dx + w]

    gx = (at(-1, 1) - at(-1, -1) + 2 * (at(0, 1) - at(0, -1)) + at(1, 1) - at(1, -1)) / 8
    gy = (at(1, -1) - at(-1, -1) + 2 * (at(1, 0) - at(-1, 0)) + at(1, 1) - at(-1, 1)) / 8
    return np.sqrt(gx * gx + gy * gy)


@pytest.mark.parametrize("blursize, erodesize", [(0.0, 0.0), (3.0, 0.0), (2.0, 1.0), (0.0, 2.0)])
def test_edge_detect_wrapper_blur_sobel_erode(blursize, erodesize):
    img = random_image(12, Box(2, 1, 10, 7))
    out = run(EdgeDetectWrapper, img, blursize=blursize, erodesize=erodesize)
    if blursize:
        g = gaussian_1d(blursize)
        r = len(g) // 2
        box = Box(img.bbox.x0 - r, img.bbox.y0 - r, img.bbox.x1 + r, img.bbox.y1 + r).intersect(FMT.display)
        blurred = oiio_region(IBA.convolve(padded_buf(img, 10), kernel_buf(np.outer(g, g)), False), box)
    else:
        box, blurred = img.bbox, np_of(img)
    edges = np_sobel(blurred)
    if erodesize:
        n = int(erodesize)
        src = Image(torch.tensor(edges, dtype=torch.float32), RGBA, box, FMT)
        box = Box(box.x0 - n, box.y0 - n, box.x1 + n, box.y1 + n)
        edges = oiio_region(IBA.dilate(padded_buf(src, 6), 2 * n + 1, 2 * n + 1), box)
    assert out.bbox == box
    np.testing.assert_allclose(np_of(out), edges, atol=2e-5)


def test_edge_detect_wrapper_defaults_equal_edge_detect_and_output_channel():
    img = random_image(13)
    torch.testing.assert_close(run(EdgeDetectWrapper, img).pixels, run(EdgeDetect, img).pixels)
    out = run(EdgeDetectWrapper, img, channels="rgb", output="rgba.alpha", erodesize=-1.0)
    ref = IBA.erode(padded_buf(Image(torch.tensor(np_sobel(np_of(img)[:3]).max(0, keepdims=True), dtype=torch.float32),
                                     ("rgba.alpha",), img.bbox, FMT), 4), 3, 3)
    np.testing.assert_allclose(np_of(out)[3], oiio_region(ref, img.bbox)[0], atol=2e-5)
    np.testing.assert_array_equal(np_of(out)[:3], np_of(img)[:3])


# --- animation, half, empty windows, .nk, GPU -------------------------------------------------------

def test_animated_knobs_change_per_frame():
    g = ng.Graph()
    src = g.add("Ramp", "R", format="16x8", p0=(0, 0), p1=(16, 8), color=(1.5, 0.5, 0.25, 1.0))
    pos = g.add("Position", "P", input=src, translate=(Expression("frame"), 0.0))
    assert g.evaluate(pos, 3).bbox == Box(3, 0, 19, 8)
    d = g.add("Defocus", "D", input=src, defocus=Expression("frame * 2"))
    assert g.evaluate(d, 1).bbox == Box(-1, -1, 17, 9) and g.evaluate(d, 2).bbox == Box(-2, -2, 18, 10)
    e = g.add("Erode", "E", input=src, size=Expression("-frame"), channels="all")
    assert g.evaluator.hash(e, 1) != g.evaluator.hash(e, 2)
    full = g.evaluate(src, 1)
    ref = IBA.erode(padded_buf(full, 6), 5, 5)
    eroded = g.evaluate(e, 2)
    assert eroded.bbox == Box(-2, -2, 18, 10)
    np.testing.assert_allclose(np_of(eroded), oiio_region(ref, eroded.bbox), atol=1e-6)


CASES = [(Erode, {"size": -2.0, "blur": 2.0}), (Erode, {"size": 1.5}), (FilterErode, {"size": 1.5}),
         (FilterErode, {"size": -2.0, "filter": "gaussian"}), (Defocus, {"defocus": 5.0}),
         (Defocus, {"defocus": 4.0, "method": "fourier"}),
         (VectorBlur, {"channels": "rgb", "uv": "rgba.blue,rgba.alpha", "grow_bbox": 2.0}),
         (Position, {"translate": (1.25, -2.5)}),
         (EdgeDetectWrapper, {"blursize": 2.0, "erodesize": 1.0, "edgedetector": "prewitt"})]


@pytest.mark.parametrize("cls, knobs", CASES)
def test_half_precision_and_empty_data_window(cls, knobs):
    check_half_and_empty(cls.type_name, knobs)
    for box in (Box(4, 0, 4, 8), Box(20, 20, 20, 20)):
        out = run(cls, Image(torch.zeros(4, box.height, box.width), RGBA, box, FMT), **knobs)
        assert out.bbox.empty and float(out.pixels.abs().sum()) == 0.0


NK = """
Constant {
 inputs 0
 channels rgba
 color {1 0.5 0.25 1}
 format "16 8 0 0 16 8 1 tiny"
 name Constant1
}
Rectangle {
 area {4 2 10 6}
 name Rectangle1
}
Erode {
 channels rgba
 size {{-frame}}
 name Erode1
}
FilterErode {
 size -1
 filter triangle
 name FilterErode1
}
Defocus {
 defocus 3
 quality 10
 name Defocus1
}
Position {
 translate {2 -1}
 name Position1
}
VectorBlur {
 channels rgba
 uv rgba
 offset 0
 name VectorBlur1
}
EdgeDetectWrapper {
 channels rgba
 blursize 2
 erodesize 1
 name EdgeDetectWrapper1
}
"""


def test_nk_script_reads_and_renders():
    res = read_nk(NK)
    g = res.graph
    assert g["FilterErode1"].knobs.filter == "triangle" and g["Position1"].knobs.translate == (2.0, -1.0)
    assert g["VectorBlur1"].knobs.offset == 0.0
    out = g.evaluate("Position1", 1)
    # manual chain: rectangle -> erode 1 -> filter erode -1 (triangle) -> defocus 3 -> shift
    src = g.evaluate("Rectangle1", 1)
    e = run(Erode, src, size=-1.0, channels="rgba")
    f = run(FilterErode, e, size=-1.0, filter="triangle")
    d = run(Defocus, f, defocus=3.0, quality=10)
    ref = run(Position, d, translate=(2.0, -1.0))
    assert out.bbox == ref.bbox
    torch.testing.assert_close(out.pixels, ref.pixels)
    vb = run(VectorBlur, ref, channels="rgba", uv="rgba", offset=0.0)
    torch.testing.assert_close(g.evaluate("VectorBlur1", 1).pixels, vb.pixels)
    assert not torch.equal(vb.pixels, ref.pixels)
    ed = run(EdgeDetectWrapper, g.evaluate("VectorBlur1", 1), channels="rgba", blursize=2.0, erodesize=1.0)
    torch.testing.assert_close(g.evaluate("EdgeDetectWrapper1", 1).pixels, ed.pixels)
    assert g.evaluate("VectorBlur1", 2).bbox == Box(out.bbox.x0 - 1, out.bbox.y0 - 1, out.bbox.x1 + 1, out.bbox.y1 + 1)


@pytest.mark.gpu
@pytest.mark.parametrize("cls, knobs", CASES)
def test_gpu_matches_cpu(cls, knobs):
    check_gpu(cls.type_name, knobs)


def test_nk_round_trip_keeps_knobs_and_pixels():
    from nodegraph.nuke.writer import dumps_nk

    g = read_nk(NK).graph
    g["VectorBlur1"].set(constant=(1.0, 2.0), scale=(2.0, 1.0), grow_bbox=3.0, method="gaussian")
    g["Defocus1"].set(scale=(1.0, 0.5), method="fourier", ratio=1.5)
    g["FilterErode1"].set(size=(-1.0, -2.0))
    text = dumps_nk(g)
    assert "constant {1 2}" in text and "method fourier" in text and "size {-1 -2}" in text
    g2 = read_nk(text).graph
    for name in ("FilterErode1", "Defocus1", "Position1", "VectorBlur1", "EdgeDetectWrapper1"):
        assert g2[name].knobs.model_dump() == g[name].knobs.model_dump()
    torch.testing.assert_close(g2.evaluate("VectorBlur1", 2).pixels, g.evaluate("VectorBlur1", 2).pixels)
