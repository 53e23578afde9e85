"""Matrix (convolution), Mirror, Mirror2 and BlackOutside against independent references.

Matrix: OpenImageIO's ``convolve`` (its kernel's data window gives the offsets, so a kernel whose
origin is (-cx, -cy) is laid over the image as it reads: a correlation, as Nuke's Matrix) and a
plain numpy loop; the source is padded with black beyond the kernel's reach so that OIIO's edge
rule never matters. Dilate and Median: OpenImageIO's ``dilate`` / ``erode`` / ``median_filter``
on a black-padded copy, and a numpy reference for any size. Sharpen: x + amount (x - blur) with the
blur kernel written from Blur's formula here and convolved by OpenImageIO. Mirror: OpenImageIO's ``flop`` / ``flip``.
Hypothesis draws the matrices, sizes and data windows.
"""

from __future__ import annotations

import numpy as np
import OpenImageIO as oiio
import pytest
import torch
from hypothesis import example, given, settings
from hypothesis import strategies as st
from OpenImageIO import ImageBuf, ImageSpec, ROI
from OpenImageIO import ImageBufAlgo as IBA

import nodegraph as ng
from nodegraph import Box, Format, Image
from nodegraph.channels import RGBA
from nodegraph.expression import Expression
from nodegraph.nodes.filter_extra import BlackOutside, Dilate, Matrix, Median, Mirror, Mirror2, Sharpen, kernel_of
from nodegraph.testing import compute_node

FMT = Format.of_size(12, 8)
FAST = settings(max_examples=30, deadline=None)


def random_image(seed: int = 0, box: Box = FMT.display, channels=RGBA) -> Image:
    rng = np.random.default_rng(seed)
    px = torch.tensor(rng.uniform(-0.5, 2.0, (len(channels), box.height, box.width)), dtype=torch.float32)
    return Image(px, tuple(channels), box, FMT)


def run(cls, img: Image, mask: Image | None = None, **knobs) -> Image:
    node = cls("N1", **knobs)
    return compute_node(node, input=img, mask=mask) if "mask" in cls.input_names() else compute_node(node, input=img)


def padded_buf(img: Image, pad: int) -> ImageBuf:
    """``img`` with ``pad`` pixels of black around it, origin at the data window's corner - pad."""
    b = img.bbox
    arr = np.zeros((b.height + 2 * pad, b.width + 2 * pad, len(img.channels)), dtype=np.float32)
    arr[pad:pad + b.height, pad:pad + b.width] = img.pixels.numpy().transpose(1, 2, 0)
    buf = ImageBuf(ImageSpec(arr.shape[1], arr.shape[0], arr.shape[2], oiio.FLOAT))
    buf.set_pixels(ROI(0, arr.shape[1], 0, arr.shape[0], 0, 1, 0, arr.shape[2]), arr)
    buf.set_origin(b.x0 - pad, b.y0 - pad)
    return buf


def oiio_correlate(img: Image, kernel: np.ndarray, out_box: Box) -> np.ndarray:
    """OIIO convolve of ``img`` (black outside) with ``kernel`` (rows top first) centred at
    (w // 2, h // 2), over ``out_box``."""
    h, w = kernel.shape
    src = padded_buf(img, max(h, w) * 2)
    kb = ImageBuf(ImageSpec(w, h, 1, oiio.FLOAT))
    kb.set_pixels(ROI(0, w, 0, h, 0, 1, 0, 1), kernel.astype(np.float32).reshape(h, w, 1))
    kb.set_origin(-(w // 2), -(h // 2))
    out = IBA.convolve(src, kb, False,  # positional: the binding spells the keyword "normalze"
                       ROI(out_box.x0, out_box.x1, out_box.y0, out_box.y1, 0, 1, 0, len(img.channels)))
    return out.get_pixels(oiio.FLOAT).transpose(2, 0, 1).astype(np.float64)


def numpy_correlate(img: Image, kernel: np.ndarray) -> tuple[Box, np.ndarray]:
    """out(x, y) = sum m[i][j] in(x + j - cx, y + i - cy), written as loops over the kernel."""
    h, w = kernel.shape
    cx, cy = w // 2, h // 2
    b = img.bbox
    box = Box(b.x0 - (w - 1 - cx), b.y0 - (h - 1 - cy), b.x1 + cx, b.y1 + cy)
    src = img.pixels.double().numpy()
    out = np.zeros((src.shape[0], box.height, box.width))
    for i in range(h):
        for j in range(w):
            # in pixel (X, Y) reaches out pixel (X - j + cx, Y - i + cy)
            x0, y0 = b.x0 - j + cx - box.x0, b.y0 - i + cy - box.y0
            out[:, y0:y0 + b.height, x0:x0 + b.width] += kernel[i, j] * src
    return box, out


shapes = st.tuples(st.integers(1, 5), st.integers(1, 5))


@FAST
@given(shape=shapes, data=st.data(), seed=st.integers(0, 999))
def test_matrix_matches_numpy_and_oiio(shape, data, seed):
    w, h = shape
    m = data.draw(st.lists(st.floats(-2, 2, allow_nan=False), min_size=w * h, max_size=w * h))
    img = random_image(seed)
    out = run(Matrix, img, width=w, height=h, matrix=tuple(m))
    kernel = np.array(m).reshape(h, w)
    box, ref = numpy_correlate(img, kernel)
    assert out.bbox == box
    np.testing.assert_allclose(out.pixels.double().numpy(), ref, atol=1e-5)
    np.testing.assert_allclose(out.pixels.double().numpy(), oiio_correlate(img, kernel, box), atol=1e-5)


def test_matrix_orientation_top_row_weights_the_pixel_above():
    px = torch.zeros(1, 5, 5)
    px[0, 2, 2] = 1.0
    img = Image(px, ("rgba.red",), Box(0, 0, 5, 5), Format.of_size(5, 5))
    out = run(Matrix, img, matrix=(0, 1, 0, 0, 0, 0, 0, 0, 0))  # only the top-centre entry
    # out(x, y) = in(x, y - 1): the impulse shows one row further down (y down), i.e. the pixel
    # below the impulse reads it from above
    assert out.bbox == Box(-1, -1, 6, 6)
    assert float(out.crop_to(Box(0, 0, 5, 5)).pixels[0, 3, 2]) == 1.0
    assert float(out.pixels.sum()) == 1.0


def test_matrix_normalize_default_and_resized_matrix():
    img = random_image(2)
    ones = (1.0,) * 9
    norm = run(Matrix, img, matrix=ones, normalize=True)
    box, ref = numpy_correlate(img, np.full((3, 3), 1 / 9))
    np.testing.assert_allclose(norm.pixels.double().numpy(), ref, atol=1e-6)
    assert float(run(Matrix, img).pixels.abs().max()) == 0.0  # Nuke's default matrix: all zeros
    zero_sum = (0, -1, 0, -1, 4, -1, 0, -1, 0)  # sum 0: normalize leaves it alone
    torch.testing.assert_close(run(Matrix, img, matrix=zero_sum, normalize=True).pixels,
                               run(Matrix, img, matrix=zero_sum).pixels)
    # width 5 with 9 values: missing entries read 0
    k = kernel_of(tuple(float(v) for v in range(9)), 5, 3, False)
    assert k.tolist() == [[0, 1, 2, 3, 4], [5, 6, 7, 8, 0], [0, 0, 0, 0, 0]]


def test_matrix_channels_mask_and_mix():
    img = random_image(3)
    sharpen = (0, -1, 0, -1, 5, -1, 0, -1, 0)
    full = run(Matrix, img, matrix=sharpen)
    rgb = run(Matrix, img, matrix=sharpen, channels="rgb")
    assert torch.equal(rgb.pixels[:3], full.pixels[:3])
    assert torch.equal(rgb.crop_to(img.bbox).pixels[3], img.pixels[3])
    mask = Image(torch.full((1, 8, 12), 0.5), ("rgba.alpha",), FMT.display, FMT)
    masked = run(Matrix, img, mask=mask, matrix=sharpen, mix=0.5)
    before = img.crop_to(full.bbox).pixels
    inside = Box(0, 0, 12, 8)
    want = (before + (full.pixels - before) * 0.25).clone()
    want_outside = before.clone()  # the mask is black outside its data window
    got = masked.pixels
    sl = (slice(None), slice(1, 9), slice(1, 13))
    torch.testing.assert_close(got[sl], want[sl], atol=1e-6, rtol=0)
    assert masked.bbox.x0 == inside.x0 - 1
    torch.testing.assert_close(got[:, 0], want_outside[:, 0], atol=1e-6, rtol=0)


def test_matrix_animated_entries_and_half():
    g = ng.Graph()
    src = g.add("Ramp", "R", format="16x8", p0=(0, 0), p1=(16, 8), color=(1.5, 0.5, 0.25, 1.0))
    m = [0.0] * 9
    m[4] = Expression("frame")
    node = g.add("Matrix", "M", input=src, matrix=m)
    ramp = g.evaluate(src, 1)
    assert torch.allclose(g.evaluate(node, 3).crop_to(ramp.bbox).pixels, ramp.pixels * 3)
    assert g.evaluator.hash(node, 2) != g.evaluator.hash(node, 3)
    node.set(matrix=(0.1, 0.2, 0.1, 0.2, 0.5, 0.2, 0.1, 0.2, 0.1))
    full = g.evaluate(node, 1, dtype=torch.float32)
    half = g.evaluate(node, 1, dtype=torch.float16)
    assert half.pixels.dtype == torch.float16
    torch.testing.assert_close(half.pixels.float(), full.pixels, rtol=4e-3, atol=4e-3)


# --- Dilate (Erode (fast)) and Median ----------------------------------------------------------------

def oiio_region(buf: ImageBuf, box: Box) -> np.ndarray:
    cut = IBA.cut(buf, ROI(box.x0, box.x1, box.y0, box.y1, 0, 1, 0, buf.nchannels))
    return cut.get_pixels(oiio.FLOAT).transpose(2, 0, 1).astype(np.float64)


# OIIO centres a window of width 1 off by one (dilate(buf, 1, 3) reads x - 1 and x): widths >= 3 only;
# an axis of size 0 is covered by the numpy reference below
@pytest.mark.parametrize("sx, sy", [(1, 1), (2, 1), (1, 3), (-1, -1), (-2, -3), (3, 2)])
def test_dilate_and_erode_match_oiio(sx, sy):
    img = random_image(11, Box(1, 2, 11, 8))
    out = run(Dilate, img, size=(float(sx), float(sy)))
    grow_x, grow_y = max(sx, 0), max(sy, 0)
    b = img.bbox
    assert out.bbox == Box(b.x0 - grow_x, b.y0 - grow_y, b.x1 + grow_x, b.y1 + grow_y)
    buf = padded_buf(img, 8)
    op = IBA.dilate if sx >= 0 and sy >= 0 else IBA.erode
    ref = op(buf, 2 * abs(sx) + 1, 2 * abs(sy) + 1)
    np.testing.assert_array_equal(out.pixels.double().numpy(), oiio_region(ref, out.bbox))


@FAST
@given(sx=st.floats(-3.4, 3.4), sy=st.floats(-3.4, 3.4), seed=st.integers(0, 99))
@example(sx=0.0, sy=3.0, seed=1)
@example(sx=-2.0, sy=0.0, seed=2)
@example(sx=1.5, sy=-0.5, seed=3)
@example(sx=0.49, sy=-2.49, seed=4)
def test_dilate_rounds_sizes_to_whole_pixels(sx, sy, seed):
    img = random_image(seed, Box(0, 0, 7, 5))
    out = run(Dilate, img, size=(sx, sy))
    src = np.zeros((4, 5 + 16, 7 + 16))
    src[:, 8:13, 8:15] = img.pixels.double().numpy()

    def axis(a: np.ndarray, s: float, ax: int) -> np.ndarray:
        n = int(np.floor(abs(s) + 0.5))
        red = np.maximum if s > 0 else np.minimum
        acc = a.copy()
        for d in range(1, n + 1):
            acc = red(acc, red(np.roll(a, d, ax), np.roll(a, -d, ax)))
        return acc

    ref = axis(axis(src, sx, 2), sy, 1)
    b = out.bbox
    grow_x = int(np.floor(sx + 0.5)) if sx > 0 else 0
    grow_y = int(np.floor(sy + 0.5)) if sy > 0 else 0
    assert b == Box(-grow_x, -grow_y, 7 + grow_x, 5 + grow_y) or (b == img.bbox and grow_x == grow_y == 0)
    want = ref[:, 8 + b.y0:8 + b.y1, 8 + b.x0:8 + b.x1]
    np.testing.assert_allclose(out.pixels.double().numpy(), want, atol=1e-6)


def test_dilate_channels_mask_and_animated_size():
    img = random_image(12)
    alpha_only = run(Dilate, img, size=1.0, channels="alpha")
    assert torch.equal(alpha_only.crop_to(img.bbox).pixels[:3], img.pixels[:3])
    mask = Image(torch.zeros(1, 8, 12), ("rgba.alpha",), FMT.display, FMT)
    assert torch.equal(run(Dilate, img, mask=mask, size=-1.0).pixels, img.pixels)  # black mask: no effect
    g = ng.Graph()
    src = g.add("Ramp", "R", format="16x8", p0=(0, 0), p1=(16, 8), color=(1.5, 0.5, 0.25, 1.0))
    node = g.add("Dilate", "D", input=src, size=Expression("frame - 2"))
    assert g.evaluate(node, 2).bbox == g.evaluate(src, 2).bbox  # size 0 at frame 2
    assert g.evaluate(node, 4).bbox == Box(-2, -2, 18, 10)
    assert g.evaluate(node, 3.4).bbox == Box(-1, -1, 17, 9)  # 1.4 pixels: one whole pixel
    assert g.evaluate(node, 0).bbox == Box(0, 0, 16, 8)  # eroding keeps the data window


@pytest.mark.parametrize("size, width", [(3.0, 3), (5.0, 5), (4.0, 5), (2.0, 3), ((5.0, 3.0), (5, 3))])
def test_median_matches_oiio(size, width):
    img = random_image(13)
    out = run(Median, img, size=size)
    assert out.bbox == img.bbox
    w, h = width if isinstance(width, tuple) else (width, width)
    ref = IBA.median_filter(padded_buf(img, 6), w, h)
    np.testing.assert_array_equal(out.pixels.double().numpy(), oiio_region(ref, img.bbox))


def test_median_removes_an_outlier_and_mixes():
    img = Image(torch.full((1, 5, 5), 0.25), ("rgba.red",), Box(0, 0, 5, 5), Format.of_size(5, 5))
    img.pixels[0, 2, 2] = 100.0
    assert torch.equal(run(Median, img, size=1.0).pixels, img.pixels)  # a 1x1 window
    out = run(Median, img)
    assert float(out.pixels[0, 2, 2]) == 0.25
    half = run(Median, img, mix=0.5)
    assert float(half.pixels[0, 2, 2]) == pytest.approx(50.125)


# --- Sharpen ---------------------------------------------------------------------------------------

def gaussian_2d(size: float) -> np.ndarray:
    sigma = size / 2.4
    r = int(np.ceil(3 * sigma))
    x = np.arange(-r, r + 1, dtype=np.float64)
    k = np.exp(-x * x / (2 * sigma * sigma))
    k /= k.sum()
    return np.outer(k, k)


@pytest.mark.parametrize("size, amount, filt", [(3.0, 1.0, "gaussian"), (6.0, 0.5, "gaussian"), (3.0, 2.0, "box")])
def test_sharpen_is_an_unsharp_mask(size, amount, filt):
    img = random_image(14)
    out = run(Sharpen, img, size=size, amount=amount, filter=filt, channels="rgba", crop=False)
    kernel = gaussian_2d(size) if filt == "gaussian" else np.full((3, 3), 1 / 9)
    r = kernel.shape[0] // 2
    b = img.bbox
    assert out.bbox == Box(b.x0 - r, b.y0 - r, b.x1 + r, b.y1 + r)
    blurred = oiio_correlate(img, kernel, out.bbox)
    x = img.crop_to(out.bbox).pixels.double().numpy()
    np.testing.assert_allclose(out.pixels.double().numpy(), x + amount * (x - blurred), atol=1e-5)
    cropped = run(Sharpen, img, size=size, amount=amount, filter=filt, channels="rgba")
    assert cropped.bbox == FMT.display
    np.testing.assert_allclose(cropped.pixels.numpy(), out.crop_to(FMT.display).pixels.numpy())


def test_sharpen_defaults_channels_and_mix():
    img = random_image(15)
    out = run(Sharpen, img)
    assert torch.equal(out.pixels[3], img.pixels[3])  # rgb by default: alpha untouched
    flat = Image(torch.full((4, 16, 20), 0.5), RGBA, Box(-4, -4, 16, 12), FMT)
    assert torch.allclose(run(Sharpen, flat, amount=3.0).pixels, flat.crop_to(FMT.display).pixels)  # no detail
    half = run(Sharpen, img, mix=0.5)
    torch.testing.assert_close(half.pixels, (out.pixels + img.pixels) / 2, atol=1e-6, rtol=0)
    g = ng.Graph()
    src = g.add("CheckerBoard2", "C", format="16x8", boxsize=4)
    node = g.add("Sharpen", "S", input=src, amount=Expression("frame - 1"))
    assert torch.equal(g.evaluate(node, 1).pixels, g.evaluate(src, 1).pixels)  # amount 0 at frame 1
    assert not torch.equal(g.evaluate(node, 2).pixels, g.evaluate(src, 2).pixels)


# --- Mirror, Mirror2 -------------------------------------------------------------------------------

@pytest.mark.parametrize("h, v", [(True, False), (False, True), (True, True), (False, False)])
def test_mirror_matches_oiio_flip_and_flop(h, v):
    img = random_image(5)
    ref = padded_buf(img, 0)
    if h:
        ref = IBA.flop(ref)
    if v:
        ref = IBA.flip(ref)
    want = ref.get_pixels(oiio.FLOAT).transpose(2, 0, 1)
    for out in (run(Mirror, img, Horizontal=h, Vertical=v), run(Mirror2, img, flop=h, flip=v)):
        assert out.bbox == img.bbox
        np.testing.assert_array_equal(out.pixels.numpy(), want)


@FAST
@given(x0=st.integers(-4, 14), y0=st.integers(-4, 10), w=st.integers(0, 6), hgt=st.integers(0, 6),
       h=st.booleans(), v=st.booleans())
def test_mirror_moves_the_data_window_about_the_format_centre(x0, y0, w, hgt, h, v):
    img = random_image(1, Box(x0, y0, x0 + w, y0 + hgt))
    out = run(Mirror, img, Horizontal=h, Vertical=v)
    b = img.bbox
    assert out.bbox == Box(12 - b.x1 if h else b.x0, 8 - b.y1 if v else b.y0,
                           12 - b.x0 if h else b.x1, 8 - b.y0 if v else b.y1)
    if not b.empty:  # pixel (x, y) goes to (11 - x, 7 - y) on the flipped axes
        x, y = b.x0, b.y0
        xo, yo = (11 - x if h else x), (7 - y if v else y)
        assert torch.equal(out.pixels[:, yo - out.bbox.y0, xo - out.bbox.x0], img.pixels[:, 0, 0])
        twice = run(Mirror, out, Horizontal=h, Vertical=v)
        assert twice.bbox == img.bbox and torch.equal(twice.pixels, img.pixels)


# --- BlackOutside ----------------------------------------------------------------------------------

def test_blackoutside_cuts_to_the_format_and_adds_a_black_border():
    img = random_image(6, Box(-3, 2, 15, 6))
    out = run(BlackOutside, img)
    assert out.bbox == Box(-1, 1, 13, 7)
    inner = out.crop_to(Box(0, 2, 12, 6))
    assert torch.equal(inner.pixels, img.crop_to(Box(0, 2, 12, 6)).pixels)
    border = out.pixels.clone()
    border[:, 1:-1, 1:-1] = 0
    assert float(border.abs().max()) == 0.0
    inside = random_image(7, Box(2, 2, 5, 5))
    assert run(BlackOutside, inside).bbox == Box(1, 1, 6, 6)


# --- empty data windows and half precision -----------------------------------------------

@pytest.mark.parametrize("cls, knobs", [(Matrix, {"matrix": (1.0,) * 9}), (Mirror, {"Horizontal": True}),
                                        (Mirror2, {"flip": True}), (BlackOutside, {}), (Dilate, {"size": 1.6}),
                                        (Dilate, {"size": -2.0}), (Median, {}), (Sharpen, {"amount": 2.0})])
@pytest.mark.parametrize("box", [Box(4, 3, 4, 3), Box(4, 0, 4, 8), Box(20, 20, 20, 20)])
def test_empty_data_window(cls, knobs, box):
    empty = Image(torch.zeros(4, box.height, box.width), RGBA, box, FMT)
    out = run(cls, empty, **knobs)
    assert out.pixels.shape == (4, out.bbox.height, out.bbox.width)
    assert float(out.pixels.abs().sum()) == 0.0


@pytest.mark.parametrize("cls, knobs", [(Mirror, {"Horizontal": True, "Vertical": True}), (BlackOutside, {}),
                                        (Dilate, {"size": (2.0, -1.0)}), (Median, {"size": 5.0})])
def test_half_is_exact_for_pixel_moves_and_order_filters(cls, knobs):
    img = random_image(8)
    half = img.to(dtype=torch.float16)
    assert torch.equal(run(cls, half, **knobs).pixels, run(cls, img, **knobs).pixels.half())


@pytest.mark.gpu
@pytest.mark.parametrize("type_name, knobs", [
    ("Matrix", {"matrix": (0, -1, 0, -1, 5, -1, 0, -1, 0)}), ("Matrix", {"width": 5, "height": 2, "matrix": (1.0,) * 10,
                                                                         "normalize": True}),
    ("Dilate", {"size": (2.0, -1.0)}), ("Median", {"size": 5.0}), ("Sharpen", {"amount": 2.0, "size": 4.0}),
    ("Mirror", {"Horizontal": True, "Vertical": True}), ("Mirror2", {"flip": True}), ("BlackOutside", {}),
])
def test_gpu_matches_cpu(type_name, knobs):
    g = ng.Graph()
    src = g.add("Ramp", "R", format="16x8", p0=(0, 0), p1=(16, 8), color=(1.5, 0.5, -0.25, 1.0))
    node = g.add(type_name, "N", input=src, **knobs)
    if "mask" in node.input_names():
        g.connect(g.add("Ramp", "M", format="16x8", p0=(0, 0), p1=(16, 0), color=(1, 1, 1, 1)), node, "mask")
    cpu = g.evaluate(node, 1, device="cpu")
    gpu = g.evaluate(node, 1, device="cuda")
    assert gpu.device.type == "cuda" and gpu.bbox == cpu.bbox
    torch.testing.assert_close(gpu.pixels.cpu(), cpu.pixels, rtol=1e-4, atol=1e-4)
