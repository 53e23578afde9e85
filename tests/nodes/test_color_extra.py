"""Saturation, ColorMatrix, Gamma, EXPTool (Exposure) and Log2Lin against independent references.

References: the formulas written out again here in numpy (float64), OpenImageIO's ImageBufAlgo
where it has the operation (``pow`` for Gamma, ``colormatrixtransform`` for ColorMatrix), Kodak's
Cineon conversion as nodegraph's Colorspace node implements it (a separate implementation with
fixed constants) and round trips with hypothesis over random data.
"""

from __future__ import annotations

import math

import numpy as np
import OpenImageIO as oiio
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from OpenImageIO import ImageBuf, ImageSpec, ROI
from OpenImageIO import ImageBufAlgo as IBA

import nodegraph as ng
from nodegraph import Box, Format, Image, KnobError
from nodegraph.channels import RGBA
from nodegraph.curve import Curve, Key
from nodegraph.expression import Expression
from nodegraph.nodes.color_extra import ColorMatrix, EXPTool, Gamma, Log2Lin, Saturation
from nodegraph.testing import compute_node

FMT = Format.of_size(6, 4)
FAST = settings(max_examples=40, deadline=None)
values = st.floats(-2.0, 4.0, allow_nan=False, width=32)


def image(arr, channels=RGBA, box: Box | None = None) -> Image:
    t = torch.tensor(np.asarray(arr, dtype=np.float32))
    return Image(t, tuple(channels), box or Box(0, 0, t.shape[2], t.shape[1]), FMT)


def random_image(seed: int = 0, lo: float = -0.5, hi: float = 2.0) -> Image:
    rng = np.random.default_rng(seed)
    return image(rng.uniform(lo, hi, (4, 4, 6)))


def run(cls, img: Image, mask: Image | None = None, **knobs) -> Image:
    return compute_node(cls("N1", **knobs), input=img, mask=mask)


def np_of(img: Image) -> np.ndarray:
    return img.pixels.double().numpy()


def to_oiio(img: Image) -> ImageBuf:
    arr = img.pixels.numpy().transpose(1, 2, 0)
    buf = ImageBuf(ImageSpec(arr.shape[1], arr.shape[0], arr.shape[2], oiio.FLOAT))
    buf.set_pixels(ROI(0, arr.shape[1], 0, arr.shape[0], 0, 1, 0, arr.shape[2]), np.ascontiguousarray(arr))
    return buf


def from_oiio(buf: ImageBuf) -> np.ndarray:
    return buf.get_pixels(oiio.FLOAT).transpose(2, 0, 1).astype(np.float64)


# --- Saturation ------------------------------------------------------------------------------------

def ref_luma(rgb: np.ndarray, mode: str) -> np.ndarray:
    r, g, b = rgb
    return {
        "Rec 709": 0.2125 * r + 0.7154 * g + 0.0721 * b,
        "Ccir 601": 0.299 * r + 0.587 * g + 0.114 * b,
        "Average": (r + g + b) / 3,
        "Maximum": np.maximum(np.maximum(r, g), b),
    }[mode]


@pytest.mark.parametrize("mode", ["Rec 709", "Ccir 601", "Average", "Maximum"])
@FAST
@given(s=st.floats(-1.0, 4.0, allow_nan=False), seed=st.integers(0, 2**16))
def test_saturation_matches_the_formula(mode, s, seed):
    img = random_image(seed)
    out = np_of(run(Saturation, img, saturation=s, mode=mode))
    src = np_of(img)
    y = ref_luma(src[:3], mode)
    np.testing.assert_allclose(out[:3], y + s * (src[:3] - y), rtol=1e-5, atol=1e-5)
    np.testing.assert_array_equal(out[3], src[3])  # alpha untouched


def test_saturation_zero_is_grey_and_one_is_identity():
    img = random_image(3, 0.0, 1.0)
    grey = np_of(run(Saturation, img, saturation=0.0))
    assert np.allclose(grey[0], grey[1], atol=1e-6) and np.allclose(grey[1], grey[2], atol=1e-6)
    assert torch.allclose(run(Saturation, img).pixels, img.pixels, atol=1e-6)


def test_saturation_mask_mix_and_other_layers():
    img = random_image(4)
    mask = image(np.broadcast_to(np.linspace(0, 1, 6, dtype=np.float32), (1, 4, 6)), ("rgba.alpha",))
    full = np_of(run(Saturation, img, saturation=0.0))
    out = np_of(run(Saturation, img, mask=mask, saturation=0.0, mix=0.5))
    w = 0.5 * np.linspace(0, 1, 6)
    np.testing.assert_allclose(out[:3], np_of(img)[:3] + (full[:3] - np_of(img)[:3]) * w, atol=1e-6)
    # a layer of its own: forward.u/v are one colour with a missing third channel reading 0
    two = image(np.stack([np.full((4, 6), 1.0), np.full((4, 6), 0.0)]), ("forward.u", "forward.v"))
    out2 = np_of(run(Saturation, two, channels="forward", saturation=0.0, mode="Average"))
    np.testing.assert_allclose(out2, np.full((2, 4, 6), 1 / 3), atol=1e-6)


# --- ColorMatrix -------------------------------------------------------------------------------------

matrices = st.lists(st.floats(-2.0, 2.0, allow_nan=False), min_size=9, max_size=9)


@FAST
@given(m=matrices, seed=st.integers(0, 2**16))
def test_colormatrix_matches_numpy_and_oiio(m, seed):
    img = random_image(seed)
    out = np_of(run(ColorMatrix, img, matrix=tuple(m)))
    mat = np.array(m).reshape(3, 3)
    src = np_of(img)
    np.testing.assert_allclose(out[:3], np.einsum("ij,jhw->ihw", mat, src[:3]), rtol=1e-5, atol=1e-5)
    np.testing.assert_array_equal(out[3], src[3])
    # OIIO's colormatrixtransform multiplies row vectors by a 4x4 matrix: ours is its transpose
    m44 = np.eye(4)
    m44[:3, :3] = mat.T
    ref = from_oiio(IBA.colormatrixtransform(to_oiio(img), tuple(m44.flatten().tolist()), unpremult=False))
    np.testing.assert_allclose(out[:3], ref[:3], rtol=1e-5, atol=1e-5)


@FAST
@given(m=matrices, seed=st.integers(0, 2**16))
def test_colormatrix_invert_undoes_it(m, seed):
    mat = np.array(m).reshape(3, 3)
    if abs(np.linalg.det(mat)) < 0.05:
        return
    img = random_image(seed)
    there = run(ColorMatrix, img, matrix=tuple(m))
    back = run(ColorMatrix, there, matrix=tuple(m), invert=True)
    scale = max(1.0, float(np.abs(np.linalg.inv(mat)).sum()) * 4)
    np.testing.assert_allclose(np_of(back), np_of(img), atol=1e-5 * scale)


def test_colormatrix_singular_inverse_names_the_knob():
    node = ColorMatrix("CM", matrix=(1, 0, 0, 0, 1, 0, 0, 0, 0), invert=True)
    assert node.check() == ["knob 'matrix': the matrix is singular and cannot be inverted"]
    with pytest.raises(KnobError) as err:
        compute_node(node, input=random_image())
    assert err.value.knob == "matrix"
    assert ColorMatrix("CM2", matrix=(1, 0, 0, 0, 1, 0, 0, 0, 0)).check() == []


# --- Gamma ------------------------------------------------------------------------------------------

@pytest.mark.parametrize("g", [0.5, 1.0, 2.2, 3.0])
def test_gamma_matches_oiio_pow_on_positive_values(g):
    img = random_image(7, 0.0, 2.0)
    out = np_of(run(Gamma, img, value=g))
    ref = from_oiio(IBA.pow(to_oiio(img), 1.0 / g))
    np.testing.assert_allclose(out, ref, rtol=1e-5, atol=1e-6)


@FAST
@given(v=st.tuples(*[st.floats(0.1, 5.0)] * 4), seed=st.integers(0, 2**16))
def test_gamma_per_channel_and_negatives(v, seed):
    img = random_image(seed, -1.0, 2.0)
    src = np_of(img)
    out = np_of(run(Gamma, img, value=v))
    for i in range(4):
        x = src[i]
        want = np.where(x > 0, np.abs(x) ** (1 / v[i]), x)
        np.testing.assert_allclose(out[i], want, rtol=2e-5, atol=1e-6)


def test_gamma_zero_is_the_limit_and_channels_select():
    img = image(np.array([0.5, 1.0, 2.0, -1.0], dtype=np.float32)[:, None, None] * np.ones((4, 4, 6)))
    out = np_of(run(Gamma, img, value=0.0))
    assert out[0].max() == 0 and out[1].min() == 1 and np.isinf(out[2]).all() and (out[3] == -1).all()
    only_red = np_of(run(Gamma, img, value=2.0, channels="rgba.red"))
    assert np.allclose(only_red[0], math.sqrt(0.5)) and np.array_equal(only_red[1:], np_of(img)[1:])


# --- EXPTool ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("mode, amount", [("Stops", 1.0), ("Stops", -2.5), ("Densities", 0.6 * math.log10(2)),
                                          ("Lights", 7.224719895), ("Cineon", 90.30899870)])
def test_exposure_one_stop_doubles(mode, amount):
    img = random_image(1, 0.0, 1.0)
    out = np_of(run(EXPTool, img, mode=mode, red=amount, green=amount, blue=amount))
    stops = amount if mode == "Stops" else 1.0
    np.testing.assert_allclose(out[:3], np_of(img)[:3] * 2 ** stops, rtol=1e-5)
    np.testing.assert_array_equal(out[3], np_of(img)[3])


@FAST
@given(r=st.floats(-3, 3), g=st.floats(-3, 3), b=st.floats(-3, 3), bp=st.floats(-0.2, 0.2), seed=st.integers(0, 99))
def test_exposure_stops_per_channel_with_blackpoint(r, g, b, bp, seed):
    img = random_image(seed)
    out = np_of(run(EXPTool, img, mode="Stops", red=r, green=g, blue=b, blackpoint=bp))
    src = np_of(img)
    for i, s in enumerate((r, g, b)):
        np.testing.assert_allclose(out[i], (src[i] - np.float32(bp)) * 2.0 ** s, rtol=2e-5, atol=1e-6)


@pytest.mark.parametrize("mode, amount", [("Stops", 1.5), ("Lights", -6.0), ("Densities", 0.1), ("Cineon", 40.0)])
def test_exposure_on_cineon_data_matches_linear_through_log2lin_ignore(mode, amount):
    """Foundry: with gamma 0.6 and ``ignore`` on in Log2Lin, the Cineon result matches Linear exactly."""
    lin = random_image(2, 0.05, 1.5)
    log = run(Log2Lin, lin, operation="lin2log", ignore_black=True)
    graded_log = run(EXPTool, log, colorspace="Cineon", mode=mode, red=amount, green=amount, blue=amount)
    back = np_of(run(Log2Lin, graded_log, ignore_black=True))
    want = np_of(run(EXPTool, lin, mode=mode, red=amount, green=amount, blue=amount))
    np.testing.assert_allclose(back[:3], want[:3], rtol=5e-5)


# --- Log2Lin ----------------------------------------------------------------------------------------

def ref_log2lin(c: np.ndarray, black: float, white: float, gamma: float) -> np.ndarray:
    off = 10 ** ((black - white) * 0.002 / gamma)
    return (10 ** ((c * 1023 - white) * 0.002 / gamma) - off) / (1 - off)


def test_log2lin_defaults_match_the_cineon_colorspace():
    img = random_image(5, 0.0, 1.0)
    g_lin = run(Log2Lin, img)
    cs = compute_node(ng.registry.get("Colorspace")("C", colorspace_in="Cineon"), input=img)
    np.testing.assert_allclose(np_of(g_lin)[:3], np_of(cs)[:3], rtol=1e-5, atol=1e-6)
    lin = random_image(6, 0.0, 4.0)
    to_log = run(Log2Lin, lin, operation="lin2log")
    cs_log = compute_node(ng.registry.get("Colorspace")("C", colorspace_out="Cineon"), input=lin)
    np.testing.assert_allclose(np_of(to_log)[:3], np_of(cs_log)[:3], rtol=1e-5, atol=1e-6)


@FAST
@given(black=st.floats(0, 300), span=st.floats(200, 900), gamma=st.floats(0.3, 1.5), seed=st.integers(0, 99))
def test_log2lin_formula_points_and_round_trip(black, span, gamma, seed):
    white = black + span
    img = random_image(seed, 0.0, 1.0)
    lin = run(Log2Lin, img, black=black, white=white, gamma=gamma)
    np.testing.assert_allclose(np_of(lin)[:3], ref_log2lin(np_of(img)[:3], black, white, gamma), rtol=2e-4, atol=1e-5)
    ends = image(np.array([black, white, 0, 0], dtype=np.float32)[:, None, None] / 1023 * np.ones((4, 1, 1)))
    e = np_of(run(Log2Lin, ends, black=black, white=white, gamma=gamma))
    assert e[0, 0, 0] == pytest.approx(0.0, abs=1e-4) and e[1, 0, 0] == pytest.approx(1.0, rel=1e-4)
    back = run(Log2Lin, lin, operation="lin2log", black=black, white=white, gamma=gamma)
    np.testing.assert_allclose(np_of(back)[:3], np_of(img)[:3], atol=2e-4)


def test_log2lin_per_channel_values_and_bad_values():
    img = random_image(8, 0.0, 1.0)
    out = np_of(run(Log2Lin, img, channels="rgba", black=(95, 64, 0), white=(685, 681, 1023), gamma=(0.6, 0.89, 1.0)))
    src = np_of(img)
    for i, (b, w, g) in enumerate([(95, 685, 0.6), (64, 681, 0.89), (0, 1023, 1.0), (0, 1023, 1.0)]):
        np.testing.assert_allclose(out[i], ref_log2lin(src[i], b, w, g), rtol=2e-5, atol=1e-6)
    bad = Log2Lin("L", gamma=0.0)
    assert bad.check() == ["knob 'gamma': must not be 0"]
    with pytest.raises(KnobError) as err:
        compute_node(bad, input=img)
    assert err.value.knob == "gamma"


# --- shared: animation, half precision, empty data windows -------------------------------------------

CASES = [
    ("Saturation", {"saturation": 0.3}),
    ("ColorMatrix", {"matrix": (0.5, 0.2, 0.1, 0.0, 1.2, 0.0, 0.3, 0.0, 0.9)}),
    ("Gamma", {"value": 2.2}),
    ("EXPTool", {"mode": "Stops", "red": 1.0, "green": -0.5, "blue": 0.25}),
    ("Log2Lin", {"operation": "lin2log"}),
]


def _graph(type_name: str, **knobs):
    g = ng.Graph()
    src = g.add("Ramp", "R", format="16x8", p0=(0, 0), p1=(16, 8), color=(1.5, 0.5, 0.25, 1.0))
    return g, g.add(type_name, "N", input=src, **knobs)


@pytest.mark.parametrize("type_name, knobs", CASES)
def test_half_precision_is_close_to_float(type_name, knobs):
    g, node = _graph(type_name, **knobs)
    full = g.evaluate(node, 1, dtype=torch.float32)
    half = g.evaluate(node, 1, dtype=torch.float16)
    assert half.pixels.dtype == torch.float16 and half.bbox == full.bbox
    torch.testing.assert_close(half.pixels.float(), full.pixels, rtol=4e-3, atol=4e-3)


@pytest.mark.parametrize("type_name, knobs", CASES)
def test_empty_data_window(type_name, knobs):
    empty = Image(torch.zeros(4, 0, 0), RGBA, Box(3, 2, 3, 2), FMT)
    out = compute_node(ng.registry.get(type_name)("N", **knobs), input=empty)
    assert out.bbox.empty and out.pixels.shape == (4, 0, 0)


def test_animated_knobs_resolve_per_frame():
    g, sat = _graph("Saturation", saturation=Curve([Key(1, 0.0, "linear"), Key(11, 1.0, "linear")]))
    at1, at11 = g.evaluate(sat, 1), g.evaluate(sat, 11)
    assert torch.allclose(at1.pixels[0], at1.pixels[1], atol=1e-6)  # grey at frame 1
    assert not torch.allclose(at11.pixels[0], at11.pixels[1])
    g2, exp = _graph("EXPTool", mode="Stops", red=Expression("frame - 1"))
    src = g2.evaluate(g2["R"], 1)
    assert torch.allclose(g2.evaluate(exp, 3).pixels[0], src.pixels[0] * 4)
    g3, cm = _graph("ColorMatrix", matrix=[Expression("frame"), 0, 0, 0, 1, 0, 0, 0, 1])
    assert torch.allclose(g3.evaluate(cm, 2).pixels[0], src.pixels[0] * 2)
    assert g3.evaluator.hash(cm, 2) != g3.evaluator.hash(cm, 3)


@pytest.mark.gpu
@pytest.mark.parametrize("type_name, knobs", CASES + [("Log2Lin", {}), ("EXPTool", {"colorspace": "Cineon", "red": 5.0})])
def test_gpu_matches_cpu(type_name, knobs):
    g, node = _graph(type_name, **knobs)
    mask = g.add("Ramp", "M", format="16x8", p0=(0, 0), p1=(16, 0), color=(1, 1, 1, 1))
    g.connect(mask, node, "mask")
    cpu = g.evaluate(node, 1, device="cpu")
    gpu = g.evaluate(node, 1, device="cuda")
    assert gpu.device.type == "cuda" and gpu.bbox == cpu.bbox
    torch.testing.assert_close(gpu.pixels.cpu(), cpu.pixels, rtol=1e-4, atol=1e-4)
