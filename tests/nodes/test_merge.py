"""Merge2 against Nuke's documented merge formulas, written again here per pixel, and OpenImageIO."""

from __future__ import annotations

import os

import math
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from nodegraph import Box, Format, Graph, Image, KnobError
from nodegraph.channels import RGBA
from nodegraph.nodes.merge import Merge2
from nodegraph.testing import compute_node

DATA = Path(os.environ["NODEGRAPH_TEST_DATA"])  # found by tests/conftest.py
FMT = Format.of_size(16, 12)


def merge(A: Image, B: Image, mask: Image | None = None, **knobs) -> Image:
    return compute_node(Merge2("Merge1", **knobs), A=A, B=B, mask=mask, dtype=torch.float64)


def image(pixels, channels=RGBA, origin=(0, 0), fmt=FMT) -> Image:
    t = torch.as_tensor(np.asarray(pixels, dtype=np.float64))
    box = Box(origin[0], origin[1], origin[0] + t.shape[2], origin[1] + t.shape[1])
    return Image(t, tuple(channels), box, fmt)


# --- Nuke's operation table, one pixel at a time --------------------------------------------
# (A, B: the colour values; a, b: the alphas). Where a formula divides by zero the result is 0,
# nodegraph's documented convention; the other conventions are spelled out per operation.

def _q(x: float, y: float) -> float:
    return 0.0 if y == 0 else x / y


def ref(op: str, A: float, B: float, a: float, b: float) -> float:
    if op == "atop":
        return A * b + B * (1 - a)
    if op == "average":
        return (A + B) / 2
    if op == "color-burn":  # darken B towards A; B where A <= 0
        return 1 - (1 - B) / A if A > 0 else B
    if op == "color-dodge":  # brighten B towards A; B where A >= 1
        return B / (1 - A) if A < 1 else B
    if op == "conjoint-over":  # A+B(1-a/b), A if a>b
        return A + B * (1 - _q(a, b)) if a < b else A
    if op == "copy":
        return A
    if op == "difference":
        return abs(A - B)
    if op == "disjoint-over":  # A+B(1-a)/b, A+B if a+b<1
        return A + B if a + b < 1 else A + B * _q(1 - a, b)
    if op == "divide":  # A/B, 0 if A<0 and B<0
        return 0.0 if (A < 0 and B < 0) else _q(A, B)
    if op == "exclusion":
        return A + B - 2 * A * B
    if op == "from":
        return B - A
    if op == "geometric":
        return _q(2 * A * B, A + B)
    if op == "hard-light":  # multiply if A<.5, screen if A>.5
        return 2 * A * B if A < 0.5 else 1 - 2 * (1 - A) * (1 - B)
    if op == "hypot":
        return math.sqrt(A * A + B * B)
    if op == "in":
        return A * b
    if op == "mask":
        return B * a
    if op == "matte":
        return A * a + B * (1 - a)
    if op == "max":
        return max(A, B)
    if op == "min":
        return min(A, B)
    if op == "minus":
        return A - B
    if op == "multiply":  # AB, A if A<0 and B<0
        return A if (A < 0 and B < 0) else A * B
    if op == "out":
        return A * (1 - b)
    if op == "over":
        return A + B * (1 - a)
    if op == "overlay":  # multiply if B<.5, screen if B>.5
        return 2 * A * B if B < 0.5 else 1 - 2 * (1 - A) * (1 - B)
    if op == "plus":
        return A + B
    if op == "screen":  # A+B-AB if A or B <= 1, otherwise max(A,B)
        return A + B - A * B if (A <= 1 or B <= 1) else max(A, B)
    if op == "soft-light":  # B(2A+B(1-AB)) if AB<1, 2AB otherwise
        return B * (2 * A + B * (1 - A * B)) if A * B < 1 else 2 * A * B
    if op == "stencil":
        return B * (1 - a)
    if op == "under":
        return A * (1 - b) + B
    if op == "xor":
        return A * (1 - b) + B * (1 - a)
    raise AssertionError(op)


OPS = sorted(Merge2.Knobs.model_fields["operation"].annotation.__args__)


def ref_image(op: str, A: np.ndarray, B: np.ndarray) -> np.ndarray:
    """[4, H, W] RGBA reference; the alpha goes through the same formula with A=a, B=b."""
    out = np.empty_like(B)
    for y in range(B.shape[1]):
        for x in range(B.shape[2]):
            a, b = A[3, y, x], B[3, y, x]
            for c in range(4):
                out[c, y, x] = ref(op, float(A[c, y, x]), float(B[c, y, x]), float(a), float(b))
    return out


def test_every_nuke_operation_is_offered():
    assert set(OPS) == {
        "over", "under", "plus", "minus", "from", "multiply", "screen", "overlay", "hard-light",
        "soft-light", "color-dodge", "color-burn", "in", "out", "atop", "xor", "mask", "stencil", "matte",
        "difference", "exclusion", "divide", "min", "max", "average", "geometric", "hypot", "copy",
        "conjoint-over", "disjoint-over"}


# rounded so that divisors are never so tiny that a quotient overflows
values = st.one_of(st.sampled_from([0.0, 1.0, 0.5, -1.0, 2.0]), st.floats(-3, 4).map(lambda x: round(x, 4)))
alphas = st.one_of(st.sampled_from([0.0, 1.0]), st.floats(-0.5, 1.5).map(lambda x: round(x, 4)))
pixel = st.tuples(values, values, values, alphas)
planes = st.lists(pixel, min_size=6, max_size=6).map(lambda px: np.array(px, dtype=np.float64).T.reshape(4, 2, 3))


@pytest.mark.parametrize("op", OPS)
@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(A=planes, B=planes)
def test_operation_matches_nuke_formula(op, A, B):
    out = merge(image(A), image(B), operation=op)
    assert out.channels == RGBA
    got = out.pixels.numpy()
    assert np.isfinite(got).all()
    np.testing.assert_allclose(got, ref_image(op, A, B), rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("op", OPS)
def test_edge_alphas_and_values(op):
    # every combination of a few awkward values, alphas exactly 0 and 1 included
    vals = [-1.0, 0.0, 0.25, 0.5, 1.0, 3.0]
    al = [0.0, 0.3, 1.0]
    combos = [(A, B, a, b) for A in vals for B in vals for a in al for b in al]
    n = len(combos)
    Ap = np.zeros((4, 1, n)); Bp = np.zeros((4, 1, n))
    for i, (A, B, a, b) in enumerate(combos):
        Ap[:3, 0, i] = A; Ap[3, 0, i] = a
        Bp[:3, 0, i] = B; Bp[3, 0, i] = b
    got = merge(image(Ap), image(Bp), operation=op).pixels.numpy()
    assert np.isfinite(got).all()
    np.testing.assert_allclose(got, ref_image(op, Ap, Bp), rtol=1e-12, atol=1e-12)


def test_documented_examples():
    # a few hand-checked numbers straight from Nuke's table
    A = image(np.array([0.5, 0.2, 2.0, 0.5]).reshape(4, 1, 1))
    B = image(np.array([0.4, 0.8, 3.0, 0.75]).reshape(4, 1, 1))
    px = lambda op: merge(A, B, operation=op).pixels[:, 0, 0].tolist()  # noqa: E731
    assert px("over") == pytest.approx([0.7, 0.6, 3.5, 0.875])
    assert px("plus") == pytest.approx([0.9, 1.0, 5.0, 1.25])
    assert px("conjoint-over") == pytest.approx([0.5 + 0.4 / 3, 0.2 + 0.8 / 3, 2 + 1.0, 0.75])
    assert px("disjoint-over") == pytest.approx([0.5 + 0.4 * 0.5 / 0.75, 0.2 + 0.8 * 0.5 / 0.75, 2 + 2.0, 1.0])
    assert px("screen")[2] == pytest.approx(3.0)  # both > 1: max(A, B)


def test_divide_and_multiply_negative_rules():
    A = image(np.array([-2.0, 3.0, -1.0, 0.0]).reshape(4, 1, 1))
    B = image(np.array([-4.0, 0.0, 2.0, 0.0]).reshape(4, 1, 1))
    assert merge(A, B, operation="divide").pixels[:, 0, 0].tolist() == [0.0, 0.0, -0.5, 0.0]
    assert merge(A, B, operation="multiply").pixels[:, 0, 0].tolist() == [-2.0, 0.0, -2.0, 0.0]


# --- data windows ---------------------------------------------------------------------------

def _windowed():
    rng = np.random.default_rng(1)
    A = image(rng.uniform(0, 1, (4, 3, 4)), origin=(2, 1))   # [2,6) x [1,4)
    B = image(rng.uniform(0, 1, (4, 4, 3)), origin=(4, 2))   # [4,7) x [2,6)
    return A, B


def _full(img: Image, box: Box) -> np.ndarray:
    return img.crop_to(box).pixels.numpy()


@pytest.mark.parametrize("mode,expected", [
    ("union", Box(2, 1, 7, 6)), ("intersection", Box(4, 2, 6, 4)), ("A", Box(2, 1, 6, 4)), ("B", Box(4, 2, 7, 6))])
@pytest.mark.parametrize("op", ["over", "plus", "multiply", "under"])
def test_bbox_modes(mode, expected, op):
    A, B = _windowed()
    out = merge(A, B, operation=op, bbox=mode)
    assert out.bbox == expected
    assert out.format == B.format
    want = ref_image(op, _full(A, expected), _full(B, expected))  # zeros outside each window
    np.testing.assert_allclose(out.pixels.numpy(), want, rtol=1e-12, atol=1e-12)


def test_output_format_and_metadata_are_bs():
    A, B = _windowed()
    A = A.replace(format=Format.of_size(99, 77), metadata={"from": "A"})
    B = B.replace(metadata={"from": "B"})
    out = merge(A, B)
    assert out.format == FMT and out.metadata == {"from": "B"}


def test_disjoint_windows_intersection_is_empty():
    A = image(np.ones((4, 2, 2)), origin=(0, 0))
    B = image(np.ones((4, 2, 2)), origin=(5, 5))
    out = merge(A, B, bbox="intersection")
    assert out.bbox.empty and out.pixels.shape[0] == 4


# --- mix and mask ---------------------------------------------------------------------------

def test_mix():
    rng = np.random.default_rng(2)
    A, B = rng.uniform(-1, 2, (2, 4, 3, 3))
    out = merge(image(A), image(B), operation="plus", mix=0.25).pixels.numpy()
    np.testing.assert_allclose(out, B + ((A + B) - B) * 0.25)
    assert np.array_equal(merge(image(A), image(B), mix=0.0).pixels.numpy(), B)


@pytest.mark.parametrize("invert", [False, True])
def test_mask_limits_merge(invert):
    rng = np.random.default_rng(3)
    A, B = rng.uniform(0, 1, (2, 4, 3, 4))
    m = rng.uniform(0, 1, (1, 2, 2))
    mask = image(m, channels=("matte.alpha",), origin=(1, 1))  # smaller than A and B
    out = merge(image(A), image(B), mask, operation="over", mix=0.5,
                maskChannelInput="matte.alpha", invert_mask=invert).pixels.numpy()
    mfull = np.zeros((3, 4))
    mfull[1:3, 1:3] = m[0]
    if invert:
        mfull = 1 - mfull
    merged = ref_image("over", A, B)
    np.testing.assert_allclose(out, B + (merged - B) * mfull * 0.5, rtol=1e-12)


def test_mask_missing_channel_counts_as_black():
    A, B = np.full((2, 4, 2, 2), 0.5)
    mask = image(np.ones((1, 2, 2)), channels=("matte.alpha",))
    out = merge(image(A), image(B), mask).pixels.numpy()  # default maskChannelInput rgba.alpha: absent
    assert np.array_equal(out, B)


# --- channels -------------------------------------------------------------------------------

def test_missing_channels_count_as_black():
    rng = np.random.default_rng(4)
    A = rng.uniform(0, 1, (3, 2, 2))          # rgb only: a = 0
    B = rng.uniform(0, 1, (4, 2, 2))
    out = merge(image(A, RGBA[:3]), image(B), operation="over")
    A4 = np.concatenate([A, np.zeros((1, 2, 2))])
    assert out.channels == RGBA
    np.testing.assert_allclose(out.pixels.numpy(), ref_image("over", A4, B))
    # B without alpha: b = 0 ("in" gives black), and the merged alpha is added to B's channels
    out = merge(image(B), image(A, RGBA[:3]), operation="in")
    assert out.channels == RGBA
    np.testing.assert_allclose(out.pixels.numpy(), np.zeros((4, 2, 2)))


def test_output_keeps_b_channels_and_adds_merged_ones():
    rng = np.random.default_rng(5)
    A = rng.uniform(0, 1, (5, 2, 2))
    B = rng.uniform(0, 1, (5, 2, 2))
    img_a = image(A, RGBA + ("diffuse.red",))
    img_b = image(B, RGBA[:3] + ("depth.Z", "rgba.alpha"))
    out = merge(img_a, img_b, operation="plus")
    assert out.channels == ("rgba.red", "rgba.green", "rgba.blue", "depth.Z", "rgba.alpha")
    np.testing.assert_allclose(out.channel("depth.Z").numpy(), B[3])       # passes through
    np.testing.assert_allclose(out.channel("rgba.alpha").numpy(), A[3] + B[4])
    assert "diffuse.red" not in out.channels                              # A's extras do not


def test_output_and_also_merge_knobs():
    rng = np.random.default_rng(6)
    A = rng.uniform(0, 1, (5, 2, 2))
    B = rng.uniform(0, 1, (5, 2, 2))
    names = RGBA + ("depth.Z",)
    out = merge(image(A, names), image(B, names), operation="plus", output="alpha")
    np.testing.assert_allclose(out.pixels.numpy()[:3], B[:3])
    np.testing.assert_allclose(out.pixels.numpy()[3:], np.stack([A[3] + B[3], B[4]]))
    out = merge(image(A, names), image(B, names), operation="max", also_merge="depth")
    np.testing.assert_allclose(out.pixels.numpy(), np.maximum(A, B))
    # merge another layer of A into B's rgba
    layer = ("diffuse.red", "diffuse.green", "diffuse.blue")
    out = merge(image(A[:3], layer), image(B[:4]), operation="plus", Achannels="diffuse", output="rgb")
    np.testing.assert_allclose(out.pixels.numpy(), np.concatenate([A[:3] + B[:3], B[3:4]]))


def test_unknown_layer_is_a_knob_error():
    A, B = _windowed()
    with pytest.raises(KnobError, match="Achannels"):
        merge(A, B, Achannels="nosuchlayer")
    with pytest.raises(KnobError):
        Merge2("Merge1", operation="burn")


# --- device and dtype, through the engine --------------------------------------------------

def test_dtype_kept_float32_and_half():
    rng = np.random.default_rng(7)
    A, B = rng.uniform(0, 1, (2, 4, 2, 2))
    for dt in (torch.float32, torch.float16):
        a = image(A).to(dtype=dt)
        b = image(B).to(dtype=dt)
        out = merge(a, b, operation="divide")
        assert out.dtype == dt
        np.testing.assert_allclose(out.pixels.double().numpy(), ref_image("divide", a.pixels.double().numpy(),
                                   b.pixels.double().numpy()), rtol=2e-3 if dt == torch.float16 else 1e-6)


def test_in_a_graph():
    g = Graph()
    fg = g.add("Constant", color=(0.2, 0.4, 0.6, 0.5), format="8x6")
    bg = g.add("Constant", color=(1.0, 1.0, 1.0, 1.0), format="8x6")
    m = g.add("Merge2", A=fg, B=bg, operation="over")
    out = g.evaluate(m)
    assert out.channels == RGBA and out.bbox == Box(0, 0, 8, 6)
    assert out.pixels[:, 0, 0].tolist() == pytest.approx([0.7, 0.9, 1.1, 1.0])


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_stays_on_gpu():
    A, B = _windowed()
    out = merge(A.to("cuda"), B.to("cuda"), operation="over")
    assert out.device.type == "cuda"
    np.testing.assert_allclose(out.pixels.cpu().numpy(), merge(A, B).pixels.numpy())


# --- OpenImageIO on a real HDR image -------------------------------------------------------

import OpenImageIO as oiio  # noqa: E402
BEACH = DATA / "Beachball"


def _read(name: str):
    buf = oiio.ImageBuf(str(BEACH / name))
    buf = oiio.ImageBufAlgo.channels(buf, ("R", "G", "B", "A"))
    spec = buf.spec()
    spec.set_format(oiio.FLOAT)  # compute in float, as nodegraph does
    rgba = oiio.ImageBuf(spec)
    oiio.ImageBufAlgo.copy(rgba, buf, oiio.FLOAT)
    return rgba


def _to_image(buf) -> Image:
    s = buf.spec()
    px = np.asarray(buf.get_pixels(oiio.FLOAT), dtype=np.float32)  # [H, W, C]
    fmt = Format(Box(s.full_x, s.full_y, s.full_x + s.full_width, s.full_y + s.full_height))
    return Image(torch.from_numpy(px.transpose(2, 0, 1).copy()), RGBA, Box(s.x, s.y, s.x + s.width, s.y + s.height), fmt)


@pytest.fixture(scope="module")
def beach():
    assert (BEACH / "singlepart.0001.exr").exists(), f"sample images missing under {BEACH} (see tests/conftest.py)"
    a, b = _read("singlepart.0002.exr"), _read("singlepart.0001.exr")
    return a, b, _to_image(a), _to_image(b)


def _same(result: Image, buf) -> None:
    want = _to_image(buf)
    assert result.bbox == want.bbox
    diff = (result.pixels - want.pixels).abs().max().item()
    assert diff <= 1e-5, diff


@pytest.mark.parametrize("op,fn", [
    ("over", lambda a, b: oiio.ImageBufAlgo.over(a, b)),
    ("plus", lambda a, b: oiio.ImageBufAlgo.add(a, b)),
    ("minus", lambda a, b: oiio.ImageBufAlgo.sub(a, b)),
    ("difference", lambda a, b: oiio.ImageBufAlgo.absdiff(a, b)),
    ("min", lambda a, b: oiio.ImageBufAlgo.min(a, b)),
    ("max", lambda a, b: oiio.ImageBufAlgo.max(a, b)),
])
def test_against_openimageio_union_windows(beach, op, fn):
    a, b, img_a, img_b = beach
    assert img_a.bbox != img_b.bbox  # different data windows: the union is exercised
    _same(merge(img_a, img_b, operation=op), fn(a, b))


@pytest.mark.parametrize("op,fn", [
    ("multiply", lambda a, b: oiio.ImageBufAlgo.mul(a, b)),
    ("divide", lambda a, b: oiio.ImageBufAlgo.div(a, b)),
])
def test_against_openimageio_same_window(beach, op, fn):
    # OIIO's mul/div have no Nuke sign rule (A if A<0 and B<0; 0 if A<0 and B<0): make B >= 0
    a, _, img_a, _ = beach
    b = oiio.ImageBufAlgo.abs(oiio.ImageBufAlgo.circular_shift(a, 17, 9))
    _same(merge(img_a, _to_image(b), operation=op), fn(a, b))
