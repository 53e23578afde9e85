"""BlinkScript nodes as Nuke scripts write them: the public script's kernels, params, round trips."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

import nodegraph as ng
from nodegraph import channels as chans
from nodegraph.image import Box, Format, Image
from nodegraph.nuke.reader import read_nk, read_nk_file
from nodegraph.nuke.writer import dumps_nk
from nodegraph.testing import compute_node

NK = Path(__file__).resolve().parents[3] / "shared" / "data" / "nk"
LUT_APPLY = NK / "jedypod+nuke-config" / "ToolSets" / "nukepedia" / "color" / "LUTApply.nk"


def cms_pattern(res: int, fn) -> np.ndarray:
    """A CMSTestPattern-like image as the LUTApply kernel reads it: 7x7 blocks, entry
    r + g*res + b*res^2 left to right from the bottom row (Nuke's y up), holding fn(colour)."""
    blocks = 8
    rows = -(-res ** 3 // blocks)
    h, w = 7 * rows, 7 * blocks
    out = np.zeros((4, h, w), np.float32)
    for p in range(res ** 3):
        rgb = [p % res, (p // res) % res, p // (res * res)]
        top = h - 7 * (p // blocks + 1)
        left = 7 * (p % blocks)
        for c in range(3):
            out[c, top:top + 7, left:left + 7] = fn(rgb[c] / (res - 1))
    return out


def image(arr: np.ndarray) -> Image:
    c, h, w = arr.shape
    return Image(torch.from_numpy(arr), chans.RGBA, Box(0, 0, w, h), Format.of_size(w, h))


@pytest.mark.skipif(not LUT_APPLY.exists(), reason="public scripts not available")
def test_public_lut_apply_kernels_translate_and_apply_a_lut() -> None:
    res = read_nk_file(LUT_APPLY)
    g = res.graph
    blinks = [n for n in g.nodes.values() if n.type_name == "BlinkScript"]
    assert sorted(n.name for n in blinks) == ["BlinkScript1", "BlinkScript11"]
    assert "BlinkScript" not in res.unsupported
    for node in blinks:
        assert node.check() == []  # the kernel translates
        assert node.knobs.LUTApplyKernel_interpolation == 2  # define()'s default: the script sets none
        assert node.knobs.maxTileLines == 100
    issues = [str(i) for i in g.validate()]
    assert not any("BlinkScript1" in i and "kernel" in i for i in issues)
    # rendering the script's own node stops at its CMSTestPattern input (a class nodegraph lacks)
    with pytest.raises(ng.NodeGraphError, match="CMSTestPattern"):
        g.evaluate("BlinkScript1", 1)
    # the kernel itself, fed a pattern built here: a separable LUT is per-channel linear interpolation
    node = g.node("BlinkScript1")
    lut_res, fn = 4, (lambda c: c ** 2)
    pattern = cms_pattern(lut_res, fn)
    src = np.random.default_rng(0).uniform(0, 1, (4, 6, 10)).astype(np.float32)
    grid = np.linspace(0, 1, lut_res)
    for interpolation in (0, 1, 2):
        node.set(LUTApplyKernel_interpolation=interpolation)
        got = compute_node(node, **{"0": image(src), "1": image(pattern)}).pixels.double().numpy()
        if interpolation == 0:
            want = fn(np.round(src[:3].astype(np.float64) * (lut_res - 1)) / (lut_res - 1))
        else:
            want = np.stack([np.interp(src[c], grid, fn(grid)) for c in range(3)])
        np.testing.assert_allclose(got[:3], want, atol=1e-5)
        assert np.all(got[3] == 0)  # the kernel leaves dst's alpha unset


SCRIPT = r"""
Constant {
 inputs 0
 color {0.2 0.4 0.8 1}
 format "6 4 0 0 6 4 1"
 name C
}
BlinkScript {
 recompileCount 3
 ProgramGroup 1
 KernelDescription "2 \"TintKernel\" iterate pixelWise 0 2 \"src\" Read Point \"dst\" Write Point 2 \"Tint\" Float 4 AAAAAA== \"Amount\" Float 1 AAAAAA== 2 \"tint\" 4 1 \"amount\" 1 1 0"
 kernelSource "kernel TintKernel : ImageComputationKernel<ePixelWise>\n\{\n  Image<eRead, eAccessPoint, eEdgeClamped> src;\n  Image<eWrite> dst;\n  param:\n    float4 tint;\n    float amount;\n  void define() \{\n    defineParam(tint, \"Tint\", float4(1.0f));\n    defineParam(amount, \"Amount\", 0.5f);\n  \}\n  void process() \{\n    dst() = lerp(src(), src() * tint, amount);\n  \}\n\};\n"
 rebuild ""
 TintKernel_Tint {0 1 2 1}
 TintKernel_Amount {{curve x1 0 x11 1}}
 rebuild_finalise ""
 name BlinkScript1
}
"""


def test_script_params_animate_and_round_trip() -> None:
    res = read_nk(SCRIPT)
    g = res.graph
    node = g.node("BlinkScript1")
    assert node.knobs.TintKernel_Tint == (0.0, 1.0, 2.0, 1.0) and "TintKernel_Amount" in node.animated
    base = np.array([0.2, 0.4, 0.8, 1.0])
    tint = np.array([0.0, 1.0, 2.0, 1.0])
    for frame, amount in ((1, 0.0), (6, 0.5), (11, 1.0)):
        px = g.evaluate(node, frame).pixels.double().numpy()
        np.testing.assert_allclose(px[:, 2, 3], base + (base * tint - base) * amount, atol=1e-6)
    text = dumps_nk(g)
    assert "TintKernel_Tint {0 1 2 1}" in text and "addUserKnob" not in text
    again = read_nk(text).graph
    assert again.node("BlinkScript1").knob_values() == node.knob_values()
    torch.testing.assert_close(again.evaluate("BlinkScript1", 6).pixels, g.evaluate("BlinkScript1", 6).pixels)


def test_script_with_an_unsupported_kernel_names_it() -> None:
    text = SCRIPT.replace(r"dst() = lerp(src(), src() * tint, amount);", r"dst() = median(src());")
    g = read_nk(text).graph
    issues = [str(i) for i in g.validate()]
    assert any("BlinkScript1" in i and "kernel TintKernel line 13" in i and "'median' is not supported" in i
               for i in issues)
    with pytest.raises(ng.NodeGraphError, match=r"BlinkScript1.*kernel TintKernel line 13 col 13: 'median'"):
        g.evaluate("BlinkScript1", 1)
