"""Blur against OpenImageIO's convolve on a real HDR crop, and its kernels against their formulas.

Box and triangle blurs use OpenImageIO's own kernels (``make_kernel``): nodegraph's box and tent
of full width ``size`` sample the same weights for odd box sizes and any tent size. For the
Gaussian, Nuke's size is not OIIO's width (OIIO: sigma = width / 4, cut at 2 sigma; nodegraph:
sigma = size / 2.4 after the Nuke-compatible openfx-misc Blur, cut at 3 sigma), so the kernel is
built here from that formula and OpenImageIO does the convolution. Both sides sum float32
products in different orders: allowed difference 1e-6 times the image's peak (~95).
"""

from __future__ import annotations

import math
import os
from pathlib import Path

import numpy as np
import OpenImageIO as oiio
import pytest
import torch
from OpenImageIO import ROI, ImageBuf, ImageSpec
from OpenImageIO import ImageBufAlgo as IBA

import nodegraph as ng
from nodegraph import Format, Image
from nodegraph.channels import RGBA
from nodegraph.nodes.filter import Blur, blur_kernel
from nodegraph.testing import compute_node

DATA = Path(os.environ["NODEGRAPH_TEST_DATA"])  # found by tests/conftest.py


def run(img: Image, **knobs) -> Image:
    return compute_node(Blur("Blur1", **knobs), input=img)


@pytest.fixture(scope="module")
def desk():
    cut = IBA.cut(ImageBuf(str(DATA / "ScanLines" / "Desk.exr")), ROI(200, 296, 300, 364))
    buf = ImageBuf()
    buf.copy(cut, oiio.FLOAT)
    arr = buf.get_pixels(oiio.FLOAT)
    fmt = Format.of_size(96, 64)
    img = Image(torch.from_numpy(np.ascontiguousarray(arr.transpose(2, 0, 1))), RGBA, fmt.display, fmt)
    return buf, img


def oiio_blur(buf: ImageBuf, kernel: ImageBuf, r: int) -> np.ndarray:
    """Convolve with black outside, over the data window grown by ``r``.

    The source is padded with 2r of black so that OIIO's own edge rule (it wraps at the buffer's
    edge) never comes into play inside the compared window."""
    spec = buf.spec()
    padded = IBA.crop(buf, ROI(-2 * r, spec.width + 2 * r, -2 * r, spec.height + 2 * r, 0, 1, 0, spec.nchannels))
    out = IBA.convolve(padded, kernel, roi=ROI(-r, spec.width + r, -r, spec.height + r, 0, 1, 0, spec.nchannels))
    return out.get_pixels(oiio.FLOAT).transpose(2, 0, 1)


@pytest.mark.parametrize("kind, size, r", [("box", 3, 1), ("box", 7, 3), ("triangle", 5, 2), ("triangle", 6, 2)])
def test_box_and_triangle_match_oiio_kernels(desk, kind, size, r):
    buf, img = desk
    out = run(img, filter=kind, size=float(size), crop=False)
    # r: the last tap with a non-zero weight (a tent of width 6 is 0 at offset 3)
    assert tuple(out.bbox) == (-r, -r, 96 + r, 64 + r)  # grown by the kernel radius
    ref = oiio_blur(buf, IBA.make_kernel(kind, size, size), r)
    peak = float(img.pixels.abs().max())
    assert np.abs(out.pixels.numpy() - ref).max() <= 1e-6 * peak


def gaussian_kernel_image(size: float) -> tuple[ImageBuf, int]:
    sigma = size / 2.4
    r = math.ceil(3 * sigma)
    x = np.arange(-r, r + 1, dtype=np.float64)
    k = np.exp(-x * x / (2 * sigma * sigma))
    k /= k.sum()
    n = 2 * r + 1
    kb = ImageBuf(ImageSpec(n, n, 1, oiio.FLOAT))
    kb.set_pixels(ROI(0, n, 0, n, 0, 1, 0, 1), np.outer(k, k).astype(np.float32).reshape(n, n, 1))
    kb.set_origin(-r, -r)
    return kb, r


@pytest.mark.parametrize("size", [2.4, 5.0, 9.0])
def test_gaussian_matches_formula_through_oiio_convolve(desk, size):
    buf, img = desk
    kb, r = gaussian_kernel_image(size)
    out = run(img, size=size, crop=False)
    assert tuple(out.bbox) == (-r, -r, 96 + r, 64 + r)
    ref = oiio_blur(buf, kb, r)
    peak = float(img.pixels.abs().max())
    assert np.abs(out.pixels.numpy() - ref).max() <= 1e-6 * peak


def test_gaussian_kernel_by_hand():
    k = blur_kernel("gaussian", 12.0)  # sigma 5, cut at 15
    assert k.numel() == 31 and float(k.sum()) == pytest.approx(1.0)
    x = torch.arange(-15, 16, dtype=torch.float64)
    # variance: sigma^2 less what the 3-sigma cut removes (~2% for sigma 5)
    assert float((k * x * x).sum()) == pytest.approx(25.0, rel=0.03)
    assert float(k[15] / k[20]) == pytest.approx(math.exp(25 / 50))


def test_quadratic_and_fractional_box_kernels():
    assert blur_kernel("quadratic", 3.0).tolist() == pytest.approx([0.125, 0.75, 0.125])
    assert blur_kernel("box", 4.0).tolist() == pytest.approx([0.125, 0.25, 0.25, 0.25, 0.125])
    assert blur_kernel("triangle", 0.5).tolist() == [1.0]  # too small to reach a neighbour


def test_crop_to_format_channels_and_mix(desk):
    _, img = desk
    cropped = run(img, size=5.0)
    assert tuple(cropped.bbox) == (0, 0, 96, 64)  # crop on (default): clipped to the format
    full = run(img, size=5.0, crop=False)
    r = -full.bbox.x0
    assert torch.allclose(cropped.pixels, full.pixels[:, r:-r, r:-r])
    rgb = run(img, size=5.0, channels="rgb", crop=False)
    assert torch.equal(rgb.pixels[3, r:-r, r:-r], img.pixels[3])  # alpha untouched
    assert float(rgb.pixels[3, :r].abs().max()) == 0.0  # and black in the grown margin
    half = run(img, size=5.0, mix=0.5)
    assert torch.allclose(half.pixels, (img.pixels + cropped.pixels) / 2, atol=1e-5)


def test_size_per_axis_only_blurs_that_axis():
    fmt = Format.of_size(9, 9)
    px = torch.zeros(1, 9, 9)
    px[0, 4, 4] = 1.0
    out = run(Image(px, ("rgba.alpha",), fmt.display, fmt), size=(3.0, 0.0), filter="box", crop=False)
    assert tuple(out.bbox) == (-1, 0, 10, 9)
    assert out.pixels[0, 4, 4:7].tolist() == pytest.approx([1 / 3] * 3)
    assert float(out.pixels[0, 3].abs().max()) == 0.0


def test_zero_size_passes_through_and_shares_the_hash():
    g = ng.Graph()
    src = g.add("Constant", format="8x8", color=(1, 0, 0, 1))
    blur = g.add("Blur", input=src)
    assert g.evaluator.hash(blur) == g.evaluator.hash(src)
    blur.set(size=2.0)
    assert g.evaluator.hash(blur) != g.evaluator.hash(src)
    assert tuple(g.evaluate(blur).bbox) == (0, 0, 8, 8)


def test_blur_mask_input_blends_the_blur_by_the_mask_and_mix() -> None:
    """Nuke's Blur has a mask input (`Blur { inputs 1+1 }`): input + (blur - input) * mix * mask."""
    g = ng.Graph()
    board = g.add("CheckerBoard2", "Board", format="16 12 1", boxsize=2.0)
    matte = g.add("Ramp", "Matte", format="16 12 1", p0=(0.0, 0.0), p1=(16.0, 0.0), output="rgba")
    plain = g.add("Blur", "Plain", input=board, size=3.0)
    masked = g.add("Blur", "Masked", input=board, mask=matte, size=3.0, mix=0.8, invert_mask=True)
    a = g.evaluate(plain, 1)
    src = g.evaluate(board, 1).crop_to(a.bbox).pixels
    m = g.evaluate(matte, 1).crop_to(a.bbox).channel("rgba.alpha")
    want = src + (a.pixels - src) * 0.8 * (1 - m)
    got = g.evaluate(masked, 1)
    assert got.bbox == a.bbox
    assert torch.allclose(got.pixels, want, atol=1e-6)
