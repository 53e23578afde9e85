"""Crop, Reformat, Transform against OpenImageIO (crop, resample, resize, warp) on real HDR
samples, plus hand-computed checks of Nuke's y-up coordinates.

Tolerances. Crop and impulse resampling copy pixels: they must match exactly. Filtered resizes
and warps compute the same sums as OpenImageIO, but OpenImageIO places each tap in float32
(``src = (x + 0.5) / dst_w * src_w``), so a weight carries ~1e-6 relative error, times the values
under it: the allowed difference is a small multiple of float32 precision times the image's peak
(these HDR crops reach ~95), 5e-6 * peak for resize and 2e-5 * peak for warp (its coordinates go
through a float32 3x3 inverse matrix first).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import OpenImageIO as oiio
import pytest
import torch
from OpenImageIO import ROI, ImageBuf
from OpenImageIO import ImageBufAlgo as IBA

from nodegraph import Box, Format, Image
from nodegraph.channels import RGBA
from nodegraph.nodes.transform import Crop, Reformat, Transform, filter_weight, flip_y
from nodegraph.testing import compute_node

DATA = Path(os.environ["NODEGRAPH_TEST_DATA"])  # found by tests/conftest.py


def run(cls, img: Image, **knobs) -> Image:
    return compute_node(cls("N1", **knobs), input=img)


def to_image(buf: ImageBuf) -> Image:
    spec = buf.spec()
    arr = buf.get_pixels(oiio.FLOAT)
    box = Box(spec.x, spec.y, spec.x + spec.width, spec.y + spec.height)
    fmt = Format(Box(spec.full_x, spec.full_y, spec.full_x + spec.full_width, spec.full_y + spec.full_height))
    return Image(torch.from_numpy(np.ascontiguousarray(arr.transpose(2, 0, 1))), RGBA[:spec.nchannels], box, fmt)


def pixels(buf: ImageBuf) -> np.ndarray:
    return buf.get_pixels(oiio.FLOAT).transpose(2, 0, 1)


@pytest.fixture(scope="module")
def desk() -> ImageBuf:
    """A 96x64 float crop of a real HDR scan (values up to ~95), origin at 0,0."""
    cut = IBA.cut(ImageBuf(str(DATA / "ScanLines" / "Desk.exr")), ROI(200, 296, 300, 364))
    buf = ImageBuf()
    buf.copy(cut, oiio.FLOAT)
    return buf


# --- Crop ---------------------------------------------------------------------------------------

def test_crop_matches_oiio_crop_with_y_up_box():
    buf = ImageBuf(str(DATA / "ScanLines" / "Desk.exr"))
    img = to_image(buf)
    h = img.format.height  # 874
    out = run(Crop, img, box=(100, 200, 300, 350))
    # Nuke's y-up box (y 200..350) is rows h-350 .. h-200 from the top
    ref = IBA.crop(buf, ROI(100, 300, h - 350, h - 200))
    assert tuple(out.bbox) == (100, h - 350, 300, h - 200)
    assert np.abs(out.pixels.numpy() - pixels(ref)).max() == 0.0
    assert out.format == img.format


def test_crop_reformat_and_intersect():
    buf = ImageBuf(str(DATA / "ScanLines" / "Desk.exr"))
    img = to_image(buf)
    h = img.format.height
    out = run(Crop, img, box=(100, 200, 300, 350), reformat=True)
    assert (out.format.width, out.format.height) == (200, 150)
    assert tuple(out.bbox) == (0, 0, 200, 150)  # the box's bottom-left corner is the new origin
    ref = IBA.crop(buf, ROI(100, 300, h - 350, h - 200))
    assert np.abs(out.pixels.numpy() - pixels(ref)).max() == 0.0
    # a box larger than the image: padded with black unless intersect
    big = run(Crop, img, box=(-10, -20, 700, 900))
    assert tuple(big.bbox) == (-10, h - 900, 700, h + 20)
    assert float(big.pixels[:, :, :10].abs().max()) == 0.0
    assert tuple(run(Crop, img, box=(-10, -20, 700, 900), intersect=True).bbox) == tuple(img.bbox)


def test_crop_fractional_edges_and_softness():
    fmt = Format.of_size(20, 10)
    ones = Image(torch.ones(1, 10, 20), ("rgba.alpha",), fmt.display, fmt)
    out = run(Crop, ones, box=(2.5, 1.0, 10.0, 8.25))
    assert tuple(out.bbox) == (2, 10 - 9, 10, 10 - 1)  # rounded outward, y-up -> y-down
    a = out.pixels[0]
    assert float(a[3, 0]) == 0.5  # left column half covered
    assert float(a[0, 3]) == 0.25  # top row (y 8..9 up) a quarter covered
    assert float(a[0, 0]) == 0.125
    assert float(a[4, 4]) == 1.0
    hard = run(Crop, ones, box=(2.5, 1.0, 10.0, 8.25), crop=False)
    assert float(hard.pixels.min()) == 1.0  # black outside off: no edge fading
    soft = run(Crop, ones, box=(0, 0, 20, 10), softness=4).pixels[0, 5]
    assert float(soft[10]) == 1.0 and 0 < float(soft[0]) < float(soft[1]) < float(soft[2]) < 1.0
    assert torch.allclose(soft, soft.flip(0))


# --- Reformat -----------------------------------------------------------------------------------

@pytest.mark.parametrize("size", [(40, 27), (150, 100), (30, 64)])
def test_reformat_impulse_matches_oiio_resample(desk, size):
    out = run(Reformat, to_image(desk), format=f"{size[0]}x{size[1]}", resize="distort", filter="impulse")
    ref = IBA.resample(desk, interpolate=False, roi=ROI(0, size[0], 0, size[1], 0, 1, 0, 4))
    assert tuple(out.bbox) == (0, 0) + size
    assert np.abs(out.pixels.numpy() - pixels(ref)).max() <= 1e-5


# nodegraph filter -> OpenImageIO filter with the same kernel
SAME_KERNEL = [("cubic", "cubic"), ("keys", "keys"), ("simon", "simon"), ("rifman", "rifman"),
               ("mitchell", "mitchell"), ("parzen", "bspline"), ("lanczos6", "nuke-lanczos6")]


@pytest.mark.parametrize("size", [(40, 27), (150, 100), (30, 64)], ids=["down", "up", "mixed"])
@pytest.mark.parametrize("ours, theirs", SAME_KERNEL + [("sinc4", "sinc")], ids=[s[0] for s in SAME_KERNEL] + ["sinc4"])
def test_reformat_filters_match_oiio_resize(desk, ours, theirs, size):
    if ours == "sinc4" and size != (40, 27):
        pytest.skip("OIIO's sinc keeps its frequency in output pixels when magnifying; Nuke's sinc4 is "
                    "a fixed radius-2 interpolator, so they agree only when minifying")
    # OIIO resize repeats edge pixels outside the image: black_outside off does the same
    out = run(Reformat, to_image(desk), format=f"{size[0]}x{size[1]}", resize="distort", filter=ours,
              black_outside=False)
    ref = pixels(IBA.resize(desk, filtername=theirs, roi=ROI(0, size[0], 0, size[1], 0, 1, 0, 4)))
    peak = float(np.abs(pixels(desk)).max())
    assert np.abs(out.pixels.numpy() - ref).max() <= 5e-6 * peak


def test_reformat_black_outside_only_changes_the_edges(desk):
    img = to_image(desk)
    black = run(Reformat, img, format="48x32", resize="distort", filter="lanczos6").pixels
    clamp = run(Reformat, img, format="48x32", resize="distort", filter="lanczos6", black_outside=False).pixels
    assert torch.equal(black[:, 3:-3, 3:-3], clamp[:, 3:-3, 3:-3])
    assert not torch.equal(black[:, 0], clamp[:, 0])


def test_filter_kernels():
    x = torch.tensor([0.0, 0.5, 1.0, 1.5, 2.0, 2.5], dtype=torch.float64)
    keys = filter_weight("keys", x)  # Catmull-Rom
    assert keys.tolist() == pytest.approx([1.0, 0.5625, 0.0, -0.0625, 0.0, 0.0])
    assert filter_weight("cubic", x).tolist() == pytest.approx([1.0, 0.5, 0.0, 0.0, 0.0, 0.0])
    assert filter_weight("parzen", x)[0] == pytest.approx(2 / 3)
    assert filter_weight("mitchell", x)[0] == pytest.approx(8 / 9)
    l4 = filter_weight("lanczos4", torch.tensor([0.0, 1.0, 1.5, 2.0], dtype=torch.float64))
    assert l4.tolist() == pytest.approx([1.0, 0.0, np.sinc(1.5) * np.sinc(0.75), 0.0], abs=1e-12)


def fmt_image(w: int, h: int, pixel_aspect: float = 1.0) -> Image:
    fmt = Format.of_size(w, h, pixel_aspect)
    ramp = torch.arange(w * h, dtype=torch.float32).reshape(1, h, w)
    return Image(ramp, ("rgba.red",), fmt.display, fmt)


@pytest.mark.parametrize("mode, center, box", [
    ("width", True, (0, 25, 100, 75)),      # scale 0.5, centred vertically
    ("width", False, (0, 50, 100, 100)),    # bottom-left corners meet: y-up 0..50 is rows 50..100
    ("height", True, (-50, 0, 150, 100)),   # scale 1, cut to the format
    ("fit", True, (0, 25, 100, 75)),
    ("fill", True, (-50, 0, 150, 100)),     # pbb keeps what lies outside the format
    ("distort", True, (0, 0, 100, 100)),
    ("none", True, (-50, 0, 150, 100)),     # pixels 1:1, centred
])
def test_reformat_resize_modes(mode, center, box):
    out = run(Reformat, fmt_image(200, 100), format="100x100", resize=mode, center=center, filter="impulse",
              pbb=True)
    assert tuple(out.bbox) == box
    assert (out.format.width, out.format.height) == (100, 100)


def test_reformat_pixel_aspect_width_mode():
    # 200 square pixels to 100 pixels of aspect 2: the same picture width, so the rows stay 1:1
    out = run(Reformat, fmt_image(200, 100), format="100x100 2", filter="impulse", pbb=True)
    assert tuple(out.bbox) == (0, 0, 100, 100)
    # 100 pixels of aspect 2 (a picture 200 wide) to 200 square pixels: x doubles, y stays
    out = run(Reformat, fmt_image(100, 100, 2.0), format="200x300", filter="impulse")
    assert tuple(out.bbox) == (0, 100, 200, 200)


def test_reformat_types():
    img = fmt_image(200, 100)
    assert tuple(run(Reformat, img, type="scale", scale=0.5).format.display) == (0, 0, 100, 50)
    assert tuple(run(Reformat, img, type="scale", scale=(2, 1)).format.display) == (0, 0, 400, 100)
    assert tuple(run(Reformat, img, type="to box", box_width=50).format.display) == (0, 0, 50, 25)
    fixed = run(Reformat, img, type="to box", box_width=50, box_height=40, box_fixed=True)
    assert tuple(fixed.format.display) == (0, 0, 50, 40)
    assert run(Reformat, img, format="HD_720").format.name == "HD_720"


def test_reformat_flip_flop_turn_are_exact():
    img = fmt_image(6, 4)
    p = img.pixels[0]
    same = dict(format="6x4", filter="impulse")
    assert torch.equal(run(Reformat, img, flop=True, **same).pixels[0], p.flip(1))
    assert torch.equal(run(Reformat, img, flip=True, **same).pixels[0], p.flip(0))
    turned = run(Reformat, img, format="4x6", turn=True, filter="impulse")
    # counter-clockwise: the right column (top to bottom) becomes the top row (left to right)
    assert torch.equal(turned.pixels[0], p.flip(1).t())
    assert torch.equal(turned.pixels[0, 0], p[:, -1])


# --- Transform ----------------------------------------------------------------------------------

def dot_image(w: int, h: int, x: int, y_up: int) -> Image:
    fmt = Format.of_size(w, h)
    px = torch.zeros(1, h, w)
    px[0, h - 1 - y_up, x] = 1.0  # pixel (x, y) counted from the bottom
    return Image(px, ("rgba.alpha",), fmt.display, fmt)


def dot_at(img: Image) -> tuple[int, int]:
    """Nuke (x, y-up) pixel of the brightest pixel."""
    idx = int(img.pixels[0].argmax())
    row, col = divmod(idx, img.bbox.width)
    y_down = row + img.bbox.y0
    return col + img.bbox.x0, img.format.height - 1 - y_down


@pytest.mark.parametrize("filt", ["impulse", "cubic", "keys"])
def test_translate_moves_a_dot_up_in_y(filt):
    img = dot_image(32, 24, 10, 5)
    out = run(Transform, img, translate=(3, 2), filter=filt)
    assert dot_at(out) == (13, 7)  # +y moves up, as in Nuke
    assert float(out.pixels.max()) == pytest.approx(1.0)
    assert tuple(out.bbox) == (3, -2, 35, 22)  # the data window moves too (y-down)


def test_rotate_is_counter_clockwise_about_center():
    img = dot_image(32, 24, 20, 5)
    out = run(Transform, img, rotate=90, center=(10.5, 5.5), filter="impulse")
    assert dot_at(out) == (10, 15)  # (20.5, 5.5) turned a quarter left about (10.5, 5.5)
    out = run(Transform, img, rotate=-90, center=(10.5, 5.5), filter="impulse")
    assert dot_at(out) == (10, -5)


def test_scale_about_origin_keeps_bottom_left():
    out = run(Transform, fmt_image(96, 64), scale=0.5, filter="impulse")
    assert tuple(out.bbox) == (0, 32, 48, 64)
    out = run(Transform, fmt_image(96, 64), scale=(2, 0.5), center=(48, 32), filter="impulse")
    assert tuple(out.bbox) == (-48, 16, 144, 48)


def test_invert_matrix_undoes_the_transform():
    img = fmt_image(16, 8)
    knobs = dict(translate=(5, -3), filter="impulse")
    back = run(Transform, run(Transform, img, **knobs), invert_matrix=True, **knobs)
    assert tuple(back.bbox) == tuple(img.bbox) and torch.equal(back.pixels, img.pixels)


def test_skew_matches_nuke_order():
    t = Transform("T", skewX=0.5, skewY=0.25)
    m = t.nuke_matrix()
    np.testing.assert_allclose(m[:2, :2], [[1 + 0.125, 0.5], [0.25, 1.0]])  # SkewX @ SkewY
    t.set(skew_order="YX")
    np.testing.assert_allclose(t.nuke_matrix()[:2, :2], [[1.0, 0.5], [0.25, 1.125]])


WARPS = [dict(rotate=30, center=(48, 32)),
         dict(rotate=-75, scale=0.4, center=(40, 20), translate=(3.3, -2)),  # minified: wider kernel
         dict(rotate=10, scale=(2.0, 1.5), skewX=0.2),
         dict(translate=(0.5, 0.25))]


@pytest.mark.parametrize("knobs", WARPS, ids=["rotate", "minify", "skew", "subpixel"])
@pytest.mark.parametrize("ours, theirs", [("cubic", "cubic"), ("keys", "keys"), ("mitchell", "mitchell"),
                                          ("lanczos6", "lanczos3"), ("parzen", "bspline")])
def test_transform_matches_oiio_warp(desk, knobs, ours, theirs):
    node = Transform("T", filter=ours, **knobs)
    out = compute_node(node, input=to_image(desk))
    f = flip_y(desk.spec().full_height)
    m = f @ node.nuke_matrix() @ f  # the same map in OIIO's y-down pixels (Imath: row vectors)
    b = out.bbox
    ref = IBA.warp(desk, tuple(float(v) for v in m.T.flatten()), filtername=theirs,
                   roi=ROI(b.x0, b.x1, b.y0, b.y1, 0, 1, 0, 4))
    peak = float(np.abs(pixels(desk)).max())
    assert np.abs(out.pixels.numpy() - pixels(ref)).max() <= 2e-5 * peak


def test_transform_data_window_is_the_transformed_box():
    out = run(Transform, fmt_image(10, 10), rotate=45, center=(5, 5), filter="impulse")
    r = 5 * np.sqrt(2)
    assert tuple(out.bbox) == (int(np.floor(5 - r)), int(np.floor(5 - r)), int(np.ceil(5 + r)), int(np.ceil(5 + r)))
