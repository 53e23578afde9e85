"""VectorBlur2 against a numpy gather written from its docstring."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings, strategies as st

import nodegraph as ng
from nodegraph import KnobError
from nodegraph.image import Box, Format, Image
from nodegraph.nodes.vectorblur2 import VectorBlur2
from nodegraph.nuke.reader import read_nk
from nodegraph.testing import compute_node

CH = ("rgba.red", "forward.u", "forward.v")


def image(red: np.ndarray, u: float, v: float) -> Image:
    h, w = red.shape
    px = np.stack([red, np.full_like(red, u), np.full_like(red, v)]).astype(np.float32)
    return Image(torch.tensor(px), CH, Box(0, 0, w, h), Format.of_size(w, h))


def shifted(red: np.ndarray, dx: int, dy: int) -> np.ndarray:
    """red read at (x + dx, y + dy) (rows down), black outside."""
    h, w = red.shape
    out = np.zeros_like(red)
    ys, xs = np.mgrid[0:h, 0:w]
    sx, sy = xs + dx, ys + dy
    ok = (sx >= 0) & (sx < w) & (sy >= 0) & (sy < h)
    out[ok] = red[sy[ok], sx[ok]]
    return out


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 1000), vec=st.sampled_from([(0, 0), (2, 0), (-2, 0), (0, 2), (0, -2)]),
       uv_offset=st.sampled_from([0.0, 0.5, -0.5]), scale=st.sampled_from([1.0, 2.0, 4.0]))
def test_uniform_streak_is_the_mean_of_the_two_ends(seed, vec, uv_offset, scale) -> None:
    """A vector of 2 pixels (after uv_offset and scale) with offset -0.5 makes 2 samples (one per
    pixel of the longer half of the streak, at least 2) at t = -1/2 and +1/2: pixel reads one
    pixel either way along it (v up, so +v reads the row above first)."""
    red = np.random.default_rng(seed).random((6, 7)).astype(np.float32)
    vx, vy = vec
    node = VectorBlur2("VB", channels="rgba.red", uv="forward", uv_offset=uv_offset, scale=scale,
                       blur_type="uniform")
    out = compute_node(node, input=image(red, vx / scale - uv_offset, vy / scale - uv_offset))
    hx, hy = vx // 2, vy // 2
    want = (shifted(red, -hx, hy) + shifted(red, hx, -hy)) / 2
    np.testing.assert_allclose(out.crop_to(Box(0, 0, 7, 6)).channel("rgba.red").numpy(), want, atol=1e-5)


def test_output_uvs_presets_and_half() -> None:
    red = np.ones((4, 5), np.float32)
    node = VectorBlur2("VB", channels="rgba.red", uv="forward", uv_offset=(-0.5, 0.25), scale=4.0, output="uvs")
    out = compute_node(node, input=image(red, 0.5, 0.25))
    np.testing.assert_allclose(out.channel("forward.u").numpy(), 0.0)
    np.testing.assert_allclose(out.channel("forward.v").numpy(), 2.0)
    node.set(mv_presets="PRMan", output="result")
    assert any("mv_presets" in m for m in node.check())
    with pytest.raises(KnobError) as info:
        compute_node(node, input=image(red, 0, 0))
    assert info.value.knob == "mv_presets"
    g = ng.Graph()
    board = g.add("CheckerBoard2", format="16x8")
    vb = g.add("VectorBlur2", input=board, channels="rgba", uv="rgba.red,rgba.green", scale=2.0)
    full = g.evaluate(vb, 1)
    half = g.evaluate(vb, 1, dtype=torch.float16)
    torch.testing.assert_close(half.pixels.float(), full.pixels, atol=3e-3, rtol=3e-3)


SCRIPT = """
CheckerBoard2 {
 inputs 0
 format "64 32 0 0 64 32 1 s"
 name Board
}
VectorBlur2 {
 channels rgba
 uv rgba
 uv_offset -0.5
 blur_type uniform
 scale {{input.width/32}}
 soft_lines true
 name Unreal_VectorBlur
}
"""


def test_a_script_reads_and_renders() -> None:
    g = read_nk(SCRIPT).graph
    node = g.node("Unreal_VectorBlur")
    assert g.validate() == []
    assert node.value("scale", 1) == 2.0 and node.knobs.blur_type == "uniform" and node.knobs.soft_lines
    img = g.evaluate(node, 1)
    assert img.channels[:4] == ("rgba.red", "rgba.green", "rgba.blue", "rgba.alpha")
    assert torch.isfinite(img.pixels).all()


@pytest.mark.gpu
def test_gpu_matches_cpu() -> None:
    if not torch.cuda.is_available():
        pytest.skip("no CUDA device")
    g = read_nk(SCRIPT).graph
    cpu = g.evaluate("Unreal_VectorBlur", 1, device="cpu")
    gpu = g.evaluate("Unreal_VectorBlur", 1, device="cuda")
    torch.testing.assert_close(gpu.pixels.cpu(), cpu.pixels, atol=1e-4, rtol=1e-4)
