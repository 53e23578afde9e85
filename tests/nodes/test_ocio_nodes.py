"""OCIOFileTransform, OCIOCDLTransform, OCIOLookTransform and OCIODisplay against independent references.

LUT files are written here with simple contents whose result numpy computes directly (a squared
1D LUT read through np.interp, a 3D LUT of an affine map, which trilinear and tetrahedral
interpolation reproduce exactly); the CDL, computed in torch, is checked against OCIO's own
CDLTransform processor; looks and displays run against a small config written here whose
colourspaces are plain powers, so the expected values are closed formulas.
"""

from __future__ import annotations

import os
import time

import numpy as np
import PyOpenColorIO as OCIO
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import nodegraph as ng
from nodegraph import Box, Format, Image, KnobError, color
from nodegraph.channels import RGBA
from nodegraph.curve import Curve, Key
from nodegraph.expression import Expression
from nodegraph.nodes.ocio import OCIOCDLTransform, OCIODisplay, OCIOFileTransform, OCIOLookTransform, cdl
from nodegraph.nuke.reader import read_nk
from nodegraph.testing import compute_node

FMT = Format.of_size(6, 4)
FAST = settings(max_examples=30, deadline=None)


def image(arr, box: Box | None = None) -> Image:
    t = torch.tensor(np.asarray(arr, dtype=np.float32))
    return Image(t, RGBA, box or Box(0, 0, t.shape[2], t.shape[1]), FMT)


def random_image(seed: int = 0, lo: float = 0.0, hi: float = 1.0) -> Image:
    return image(np.random.default_rng(seed).uniform(lo, hi, (4, 4, 6)))


def run(node, img: Image, mask: Image | None = None) -> Image:
    return compute_node(node, input=img, mask=mask)


def rgb_np(img: Image) -> np.ndarray:
    return img.pixels[:3].double().numpy()


# --- LUT files ---------------------------------------------------------------------------------------

def write_spi1d(path, values) -> str:
    body = "\n".join(f"{v:.9g}" for v in values)
    path.write_text(f"Version 1\nFrom 0.0 1.0\nLength {len(values)}\nComponents 1\n{{\n{body}\n}}\n")
    return str(path)


def write_cube_1d(path, values) -> str:
    body = "\n".join(f"{v:.9g} {v:.9g} {v:.9g}" for v in values)
    path.write_text(f"LUT_1D_SIZE {len(values)}\n{body}\n")
    return str(path)


M = np.array([[0.7, 0.2, 0.05], [0.1, 0.8, 0.1], [0.05, 0.15, 0.6]])
B = np.array([0.05, -0.02, 0.1])


def write_cube_3d(path, n: int = 5) -> str:
    grid = np.linspace(0, 1, n)
    lines = [f"LUT_3D_SIZE {n}"]
    for b in grid:  # red changes fastest
        for g in grid:
            for r in grid:
                out = M @ np.array([r, g, b]) + B
                lines.append(" ".join(f"{v:.9g}" for v in out))
    path.write_text("\n".join(lines) + "\n")
    return str(path)


def affine(rgb: np.ndarray) -> np.ndarray:
    return np.einsum("ij,j...->i...", M, rgb) + B[:, None, None]


SQUARES = [(i / 64) ** 2 for i in range(65)]


def test_spi1d_matches_numpy_interpolation(tmp_path):
    lut = write_spi1d(tmp_path / "sq.spi1d", SQUARES)
    img = random_image(1)
    out = run(OCIOFileTransform("F", file=lut), img)
    want = np.interp(rgb_np(img), np.linspace(0, 1, 65), SQUARES)
    np.testing.assert_allclose(rgb_np(out), want, atol=2e-6)
    assert torch.equal(out.pixels[3], img.pixels[3])  # alpha untouched


@pytest.mark.parametrize("interp", ["linear", "tetrahedral"])
def test_cube_3d_of_an_affine_map_is_exact(tmp_path, interp):
    lut = write_cube_3d(tmp_path / "affine.cube")
    img = random_image(2)
    out = run(OCIOFileTransform("F", file=lut, interpolation=interp), img)
    np.testing.assert_allclose(rgb_np(out), affine(rgb_np(img)), atol=2e-5)


@FAST
@given(seed=st.integers(0, 2**16))
def test_cube_1d_inverse_undoes_the_lut(tmp_path_factory, seed):
    lut = write_cube_1d(tmp_path_factory.mktemp("inv") / "sq.cube", SQUARES)
    img = random_image(seed, 0.01, 1.0)
    out = run(OCIOFileTransform("F", file=lut, direction="inverse"), img)
    want = np.interp(rgb_np(img), SQUARES, np.linspace(0, 1, 65))  # the piecewise-linear inverse
    np.testing.assert_allclose(rgb_np(out), want, atol=1e-4)


def test_working_space_wraps_the_lut(tmp_path):
    lut = write_spi1d(tmp_path / "sq.spi1d", SQUARES)
    img = random_image(3)
    out = run(OCIOFileTransform("F", file=lut, working_space="sRGB"), img)
    to = color.get_config().getProcessor(color.resolve("scene_linear"), color.resolve("sRGB")).getOptimizedCPUProcessor(OCIO.OPTIMIZATION_NONE)
    back = color.get_config().getProcessor(color.resolve("sRGB"), color.resolve("scene_linear")).getOptimizedCPUProcessor(OCIO.OPTIMIZATION_NONE)
    px = np.ascontiguousarray(img.pixels[:3].numpy().transpose(1, 2, 0))
    to.applyRGB(px)
    px = np.interp(np.clip(px, 0, 1), np.linspace(0, 1, 65), SQUARES).astype(np.float32)
    back.applyRGB(px)
    np.testing.assert_allclose(rgb_np(out), px.transpose(2, 0, 1), atol=1e-4)


def test_no_file_passes_through_and_missing_file_names_the_knob(tmp_path):
    g = ng.Graph()
    src = g.add("Ramp", "R", format="8x4", p0=(0, 0), p1=(8, 0))
    node = g.add("OCIOFileTransform", "F", input=src)
    assert torch.equal(g.evaluate(node, 1).pixels, g.evaluate(src, 1).pixels)
    missing = str(tmp_path / "nope.cube")
    node.set(file=missing)
    assert any("file" in p for p in node.check())
    with pytest.raises(KnobError) as err:
        g.evaluate(node, 1)
    assert err.value.knob == "file" and err.value.path == missing
    bad = tmp_path / "bad.cube"
    bad.write_text("this is not a LUT\n")
    node.set(file=str(bad))
    with pytest.raises(KnobError, match="file"):
        g.evaluate(node, 1)


def test_rewritten_file_changes_hash_and_pixels(tmp_path):
    path = tmp_path / "lut.spi1d"
    write_spi1d(path, SQUARES)
    g = ng.Graph()
    src = g.add("Constant", "C", format="4x2", color=(0.5, 0.5, 0.5, 1))
    node = g.add("OCIOFileTransform", "F", input=src, file=str(path))
    h1, v1 = g.evaluator.hash(node, 1), g.evaluate(node, 1).pixels[0, 0, 0].item()
    time.sleep(0.01)
    write_spi1d(path, [i / 64 for i in range(65)])
    os.utime(path, ns=(time.time_ns(), time.time_ns() + 10**9))
    h2, v2 = g.evaluator.hash(node, 1), g.evaluate(node, 1).pixels[0, 0, 0].item()
    assert h1 != h2 and v1 == pytest.approx(0.25, abs=1e-6) and v2 == pytest.approx(0.5, abs=1e-6)


def test_mask_and_mix(tmp_path):
    lut = write_spi1d(tmp_path / "sq.spi1d", SQUARES)
    img = random_image(4)
    mask = image(np.broadcast_to(np.linspace(0, 1, 6), (4, 4, 6)).copy())
    out = run(OCIOFileTransform("F", file=lut, mix=0.5), img, mask)
    x = rgb_np(img)
    full = np.interp(x, np.linspace(0, 1, 65), SQUARES)
    w = 0.5 * np.linspace(0, 1, 6)
    np.testing.assert_allclose(rgb_np(out), x + (full - x) * w, atol=2e-6)


# --- OCIOCDLTransform -----------------------------------------------------------------------------

def ocio_cdl(img: Image, slope, offset, power, sat, inverse=False) -> np.ndarray:
    t = OCIO.CDLTransform(slope=list(slope), offset=list(offset), power=list(power), sat=sat)
    t.setStyle(OCIO.CDL_NO_CLAMP)
    if inverse:
        t.setDirection(OCIO.TRANSFORM_DIR_INVERSE)
    proc = OCIO.GetCurrentConfig().getProcessor(t).getOptimizedCPUProcessor(OCIO.OPTIMIZATION_NONE)
    px = np.ascontiguousarray(img.pixels[:3].numpy().transpose(1, 2, 0))
    proc.applyRGB(px)
    return px.transpose(2, 0, 1).astype(np.float64)


c3 = st.tuples(*[st.floats(0.3, 2.0)] * 3)
off3 = st.tuples(*[st.floats(-0.2, 0.2)] * 3)


@FAST
@given(slope=c3, offset=off3, power=c3, sat=st.floats(0.2, 2.0), seed=st.integers(0, 2**16))
def test_cdl_matches_ocio_both_ways(slope, offset, power, sat, seed):
    img = random_image(seed, -0.2, 1.5)
    knobs = dict(slope=slope, offset=offset, power=power, saturation=sat)
    out = run(OCIOCDLTransform("C", **knobs), img)
    np.testing.assert_allclose(rgb_np(out), ocio_cdl(img, slope, offset, power, sat), rtol=1e-4, atol=1e-5)
    inv = run(OCIOCDLTransform("C", direction="inverse", **knobs), img)
    np.testing.assert_allclose(rgb_np(inv), ocio_cdl(img, slope, offset, power, sat, True), rtol=1e-3, atol=1e-4)
    back = cdl(out.pixels[:3].double(), slope, offset, power, sat, inverse=True)
    np.testing.assert_allclose(back.numpy(), rgb_np(img), atol=1e-4)


def test_cdl_identity_and_inverse_of_zero_names_the_knob():
    g = ng.Graph()
    src = g.add("Ramp", "R", format="8x4", p0=(0, 0), p1=(8, 0))
    node = g.add("OCIOCDLTransform", "C", input=src)
    torch.testing.assert_close(g.evaluate(node, 1).pixels, g.evaluate(src, 1).pixels, rtol=0, atol=1e-7)
    node.set(slope=(1.0, 0.0, 1.0), direction="inverse")
    assert any("slope" in p for p in node.check())
    with pytest.raises(KnobError) as err:
        g.evaluate(node, 1)
    assert err.value.knob == "slope"


CC = """<?xml version="1.0" encoding="UTF-8"?>
<ColorCorrectionCollection xmlns="urn:ASC:CDL:v1.01">
 <ColorCorrection id="shotA">
  <SOPNode><Slope>1.2 1.0 0.8</Slope><Offset>0.01 0.0 -0.01</Offset><Power>1.1 1.0 0.9</Power></SOPNode>
  <SatNode><Saturation>0.8</Saturation></SatNode>
 </ColorCorrection>
 <ColorCorrection id="shotB">
  <SOPNode><Slope>0.5 0.5 0.5</Slope><Offset>0 0 0</Offset><Power>1 1 1</Power></SOPNode>
  <SatNode><Saturation>1.0</Saturation></SatNode>
 </ColorCorrection>
</ColorCorrectionCollection>
"""


def test_cdl_read_from_a_ccc_file_by_id(tmp_path):
    path = tmp_path / "grades.ccc"
    path.write_text(CC)
    img = random_image(5)
    a = run(OCIOCDLTransform("C", read_from_file=True, file=str(path), cccid="shotA", slope=9.0), img)
    np.testing.assert_allclose(rgb_np(a), ocio_cdl(img, (1.2, 1.0, 0.8), (0.01, 0, -0.01), (1.1, 1, 0.9), 0.8),
                               rtol=1e-4, atol=1e-5)
    b = run(OCIOCDLTransform("C", read_from_file=True, file=str(path), cccid="shotB"), img)
    np.testing.assert_allclose(rgb_np(b), rgb_np(img) * 0.5, atol=1e-6)
    missing = OCIOCDLTransform("C", read_from_file=True, file=str(tmp_path / "none.cc"))
    assert missing.check()
    with pytest.raises(KnobError, match="file"):
        run(missing, img)


def test_cdl_in_a_working_space():
    img = random_image(6)
    out = run(OCIOCDLTransform("C", slope=(1.5, 1.0, 0.5), working_space="ACEScct"), img)
    to = color.processor("scene_linear", "ACEScct")
    back = color.processor("ACEScct", "scene_linear")
    px = np.ascontiguousarray(img.pixels[:3].numpy().transpose(1, 2, 0))
    to.applyRGB(px)
    px *= np.array([1.5, 1.0, 0.5], dtype=np.float32)
    back.applyRGB(px)
    np.testing.assert_allclose(rgb_np(out), px.transpose(2, 0, 1), rtol=1e-4, atol=1e-5)


# --- a small config of plain powers: looks and displays --------------------------------------------

CONFIG = """ocio_profile_version: 2
roles:
  scene_linear: lin
  default: lin
file_rules:
  - !<Rule> {name: Default, colorspace: lin}
displays:
  TestDisplay:
    - !<View> {name: Gamma, colorspace: g22}
    - !<View> {name: Raw, colorspace: lin}
  Other:
    - !<View> {name: Square, colorspace: sqrt}
active_displays: []
active_views: []
looks:
  - !<Look>
    name: warm
    process_space: sqrt
    transform: !<MatrixTransform> {matrix: [1.2, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0.8, 0, 0, 0, 0, 1]}
colorspaces:
  - !<ColorSpace>
    name: lin
  - !<ColorSpace>
    name: g22
    to_scene_reference: !<ExponentTransform> {value: [2.2, 2.2, 2.2, 1]}
  - !<ColorSpace>
    name: sqrt
    to_scene_reference: !<ExponentTransform> {value: [2, 2, 2, 1]}
"""


@pytest.fixture
def power_config(tmp_path, monkeypatch):
    path = tmp_path / "config.ocio"
    path.write_text(CONFIG)
    OCIO.Config.CreateFromFile(str(path)).validate()
    monkeypatch.setenv("OCIO", str(path))
    yield path
    monkeypatch.delenv("OCIO")
    color.get_config()


def test_look_matches_the_formula(power_config):
    img = random_image(7, 0.01, 1.0)
    x = rgb_np(img)
    scale = np.array([1.2, 1.0, 0.8])[:, None, None]
    out = run(OCIOLookTransform("L", look="warm"), img)  # lin -> sqrt, scale, -> lin: scale^2 x
    np.testing.assert_allclose(rgb_np(out), scale**2 * x, rtol=1e-5, atol=1e-6)
    to_g22 = run(OCIOLookTransform("L", look="warm", out_colorspace="g22"), img)
    np.testing.assert_allclose(rgb_np(to_g22), (scale**2 * x) ** (1 / 2.2), rtol=1e-4, atol=1e-5)
    inv = run(OCIOLookTransform("L", look="warm", direction="inverse"), out)
    np.testing.assert_allclose(rgb_np(inv), x, rtol=1e-4, atol=1e-5)
    minus = run(OCIOLookTransform("L", look="-warm"), img)
    np.testing.assert_allclose(rgb_np(minus), x / scale**2, rtol=1e-4, atol=1e-5)
    plain = run(OCIOLookTransform("L", in_colorspace="g22", out_colorspace="lin"), img)
    np.testing.assert_allclose(rgb_np(plain), x**2.2, rtol=1e-4, atol=1e-6)


def test_unknown_look_names_the_knob_or_is_ignored(power_config):
    img = random_image(8)
    node = OCIOLookTransform("L", look="cold")
    assert node.check() and "cold" in node.check()[0]
    with pytest.raises(KnobError) as err:
        run(node, img)
    assert err.value.knob == "look"
    node.set(ignore_errors=True)
    assert node.check() == [] and torch.equal(run(node, img).pixels, img.pixels)


def test_display_view_gain_and_gamma(power_config):
    img = random_image(9, 0.01, 1.0)
    x = rgb_np(img)
    out = run(OCIODisplay("D", gain=2.0, gamma=1.5), img)  # default display TestDisplay, view Gamma
    np.testing.assert_allclose(rgb_np(out), ((2 * x) ** (1 / 2.2)) ** (1 / 1.5), rtol=1e-4, atol=1e-5)
    raw = run(OCIODisplay("D", display="TestDisplay", view="Raw"), img)
    np.testing.assert_allclose(rgb_np(raw), x, atol=1e-6)
    other = run(OCIODisplay("D", display="Other", view="default", colorspace="g22"), img)
    np.testing.assert_allclose(rgb_np(other), np.sqrt(x**2.2), rtol=1e-4, atol=1e-5)
    assert torch.equal(out.pixels[3], img.pixels[3])


def test_display_unknown_names(power_config):
    img = random_image(10)
    for knobs, knob in (({"display": "Nope"}, "display"), ({"view": "Film"}, "view"), ({"gamma": 0.0}, "gamma")):
        node = OCIODisplay("D", **knobs)
        assert node.check()
        with pytest.raises(KnobError) as err:
            run(node, img)
        assert err.value.knob == knob


def test_builtin_config_display_matches_ocio():
    img = random_image(11)
    out = run(OCIODisplay("D"), img)
    config = color.get_config()
    display = config.getDefaultDisplay()
    t = OCIO.DisplayViewTransform(src=color.resolve("scene_linear"), display=display,
                                  view=config.getDefaultView(display))
    proc = config.getProcessor(t).getOptimizedCPUProcessor(OCIO.OPTIMIZATION_NONE)
    px = np.ascontiguousarray(img.pixels[:3].numpy().transpose(1, 2, 0))
    proc.applyRGB(px)
    np.testing.assert_allclose(rgb_np(out), px.transpose(2, 0, 1), rtol=1e-3, atol=1e-4)


# --- common behaviour -------------------------------------------------------------------------------

def _cases(tmp_path) -> list[tuple[str, dict]]:
    return [
        ("OCIOFileTransform", {"file": write_cube_3d(tmp_path / "a.cube")}),
        ("OCIOCDLTransform", {"slope": (1.2, 1.0, 0.8), "power": 1.3, "saturation": 0.7}),
        ("OCIOLookTransform", {"in_colorspace": "ACEScg", "out_colorspace": "ACEScct"}),
        ("OCIODisplay", {"gain": 1.5}),
    ]


def ramp_graph(type_name: str, **knobs):
    """A graph Ramp -> ``type_name`` (shared with test_color_correct)."""
    g = ng.Graph()
    src = g.add("Ramp", "R", format="16x8", p0=(0, 0), p1=(16, 8), color=(1.2, 0.6, 0.3, 1.0))
    return g, g.add(type_name, "N", input=src, **knobs)


def check_half_and_empty(type_name: str, knobs: dict) -> None:
    """float16 close to float32, and an empty data window computes to an empty image."""
    g, node = ramp_graph(type_name, **knobs)
    full = g.evaluate(node, 1, dtype=torch.float32)
    half = g.evaluate(node, 1, dtype=torch.float16)
    assert half.pixels.dtype == torch.float16 and half.bbox == full.bbox
    torch.testing.assert_close(half.pixels.float(), full.pixels, rtol=4e-3, atol=4e-3)
    empty = Image(torch.zeros(4, 0, 0), RGBA, Box(3, 2, 3, 2), FMT)
    out = compute_node(ng.registry.get(type_name)("N", **knobs), input=empty)
    assert out.bbox.empty and out.pixels.shape == (4, 0, 0)


def check_gpu(type_name: str, knobs: dict) -> None:
    """The same result on CUDA as on the CPU (with a graded mask where the node has one)."""
    g, node = ramp_graph(type_name, **knobs)
    if "mask" in ng.registry.get(type_name).input_names():
        mask = g.add("Ramp", "M", format="16x8", p0=(0, 0), p1=(16, 0), color=(1, 1, 1, 1))
        g.connect(mask, node, "mask")
    cpu = g.evaluate(node, 1, device="cpu")
    gpu = g.evaluate(node, 1, device="cuda")
    assert gpu.device.type == "cuda" and gpu.bbox == cpu.bbox
    torch.testing.assert_close(gpu.pixels.cpu(), cpu.pixels, rtol=1e-4, atol=1e-4)


def test_half_precision_and_empty_data_window(tmp_path):
    for type_name, knobs in _cases(tmp_path):
        check_half_and_empty(type_name, knobs)


def test_animated_knobs_resolve_per_frame():
    g, node = ramp_graph("OCIOCDLTransform", slope=Curve([Key(1, 1.0, "linear"), Key(11, 2.0, "linear")]))
    src = g.evaluate(g["R"], 1)
    assert torch.allclose(g.evaluate(node, 1).pixels, src.pixels)
    assert torch.allclose(g.evaluate(node, 11).pixels[:3], src.pixels[:3] * 2, atol=1e-6)
    g2, disp = ramp_graph("OCIODisplay", display="default", view="Raw", gain=Expression("frame"))
    raw = g2.evaluate(disp, 1).pixels
    assert g2.evaluator.hash(disp, 1) != g2.evaluator.hash(disp, 3)
    np.testing.assert_allclose(g2.evaluate(disp, 3).pixels[:3].numpy(), raw[:3].numpy() * 3, rtol=1e-4, atol=1e-5)


@pytest.mark.gpu
@pytest.mark.parametrize("index", range(4))
def test_gpu_matches_cpu(tmp_path, index):
    check_gpu(*_cases(tmp_path)[index])


def test_read_from_a_nuke_script(tmp_path):
    lut = write_cube_3d(tmp_path / "grade.cube")
    script = f"""
Constant {{
 inputs 0
 color {{0.2 0.4 0.6 1}}
 format "8 4 0 0 8 4 1 tiny"
 name C1
}}
OCIOFileTransform {{
 file {lut}
 interpolation tetrahedral
 working_space scene_linear
 name OCIOFileTransform1
}}
OCIOCDLTransform {{
 slope {{1.1 1 0.9}}
 saturation 0.5
 name OCIOCDLTransform1
}}
"""
    res = read_nk(script)
    g = res.graph
    ft = g["OCIOFileTransform1"]
    assert ft.knobs.file == lut and ft.knobs.interpolation == "tetrahedral"
    out = g.evaluate("OCIOCDLTransform1", 1)
    lut_out = affine(np.array([0.2, 0.4, 0.6])[:, None, None])
    want = ocio_cdl(image(np.concatenate([lut_out, [[[1.0]]]]).repeat(4, 1).repeat(8, 2)),
                    (1.1, 1, 0.9), (0, 0, 0), (1, 1, 1), 0.5)
    np.testing.assert_allclose(rgb_np(out), want, rtol=1e-4, atol=1e-5)
