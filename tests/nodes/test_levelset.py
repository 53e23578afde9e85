"""LevelSet against brute-force distances in numpy."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import given, settings, strategies as st

import nodegraph as ng
from nodegraph.image import Box, Format, Image
from nodegraph.nodes.levelset import LevelSet, nearest_seed, signed_distance
from nodegraph.nuke.reader import read_nk, read_nk_file
from nodegraph.testing import compute_node

DATA = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "nk"


def brute(mask: np.ndarray) -> np.ndarray:
    """Distance from each pixel centre to the nearest True pixel centre (inf without any)."""
    pts = np.argwhere(mask)
    h, w = mask.shape
    if not len(pts):
        return np.full((h, w), np.inf)
    yy, xx = np.mgrid[0:h, 0:w]
    return np.sqrt((yy[..., None] - pts[:, 0]) ** 2 + (xx[..., None] - pts[:, 1]) ** 2).min(-1)


@settings(max_examples=60, deadline=None)
@given(h=st.integers(1, 24), w=st.integers(1, 24), density=st.floats(0, 0.4), seed=st.integers(0, 10_000))
def test_nearest_seed_is_the_euclidean_distance(h, w, density, seed) -> None:
    mask = np.random.default_rng(seed).random((h, w)) < density
    dist, row, col = nearest_seed(torch.tensor(mask))
    want = brute(mask)
    np.testing.assert_allclose(dist.numpy(), want, atol=1e-4)
    if mask.any():  # the pixel named is a seed at that distance
        assert mask[row.numpy(), col.numpy()].all()
        yy, xx = np.mgrid[0:h, 0:w]
        np.testing.assert_allclose(np.hypot(row.numpy() - yy, col.numpy() - xx), want, atol=1e-4)


def test_signed_distance_sign_and_vectors() -> None:
    values = np.zeros((9, 11), np.float32)
    values[3:6, 4:7] = 1.0  # a 3x3 square
    d, vec, _ = signed_distance(torch.tensor(values, dtype=torch.float64), 0.5)
    inside = values >= 0.5
    want = np.where(inside, -(brute(~inside) - 0.5), brute(inside) - 0.5)
    np.testing.assert_allclose(d.numpy(), want, atol=1e-4)
    # the pixel left of the square's middle row points right (x+) half a pixel to the crossing
    assert vec[0, 4, 3].item() == pytest.approx(0.5) and vec[1, 4, 3].item() == pytest.approx(0.0)
    # the pixel above the square (row 2 is y-up above) points down (y-)
    assert vec[1, 2, 5].item() == pytest.approx(-0.5)
    np.testing.assert_allclose(np.hypot(vec[0].numpy(), vec[1].numpy()), np.abs(want), atol=1e-4)


def _image(alpha: np.ndarray, red: np.ndarray) -> Image:
    h, w = alpha.shape
    return Image(torch.tensor(np.stack([red, alpha]), dtype=torch.float32), ("rgba.red", "rgba.alpha"),
                 Box(0, 0, w, h), Format.of_size(w, h))


def test_matte_grows_and_extrapolates_edge_colours() -> None:
    alpha = np.zeros((12, 12), np.float32)
    alpha[4:8, 4:8] = 1
    red = np.tile(np.arange(12, dtype=np.float32), (12, 1)) * alpha  # a ramp inside the matte
    node = LevelSet("LS", create_matte=True, matte_limit=2.0, extrapolated="rgba.red", gradient="none")
    out = compute_node(node, input=_image(alpha, red))
    d = np.where(alpha > 0, -(brute(alpha == 0) - 0.5), brute(alpha > 0) - 0.5)
    np.testing.assert_allclose(out.channel("rgba.alpha").numpy(), np.clip(2.0 - d + 0.5, 0, 1), atol=1e-5)
    got = out.channel("rgba.red").numpy()
    assert got[5, 1] == 4 and got[5, 10] == 7 and got[5, 5] == 5  # nearest edge pixel's colour; inside kept
    node.set(gradient_extrapolate=True)
    got = compute_node(node, input=_image(alpha, red)).channel("rgba.red").numpy()
    assert got[5, 10] == pytest.approx(7 + 1 * 3) and got[5, 1] == pytest.approx(4 - 1 * 3)  # the ramp goes on
    node.set(matte_limit=-1.0)
    shrunk = compute_node(node, input=_image(alpha, red)).channel("rgba.alpha").numpy()
    assert shrunk.sum() == 4  # the 4x4 square loses a pixel on each side: 2x2


def test_outputs_channels_half_and_no_crossing() -> None:
    g = ng.Graph()
    r = g.add("Radial", format="24x16", area=(4, 4, 20, 12))
    node = g.add("LevelSet", input=r)
    out = g.evaluate(node, 1)
    assert out.channels[-2:] == ("forward.u", "forward.v") and out.bbox == Box(0, 0, 24, 16)
    half = g.evaluate(node, 1, dtype=torch.float16)
    torch.testing.assert_close(half.pixels.float(), out.pixels, atol=2e-2, rtol=2e-3)
    r.set(area=(0, 0, 0, 0))  # nothing crosses: the window's diagonal everywhere
    flat = g.evaluate(node, 1).channel("rgba.alpha")
    assert torch.allclose(flat, torch.full_like(flat, float(np.hypot(24, 16))))
    empty = g.add("Crop", input=r, box=(0, 0, 0, 0), crop=False)
    g.connect(empty, node, "input")
    assert torch.isfinite(g.evaluate(node, 1).pixels).all()


SCRIPT = """
Radial {
 inputs 0
 format "32 24 0 0 32 24 1 s"
 area {8 6 24 18}
 name Disc
}
LevelSet {
 create_matte true
 matte_limit 3
 extrapolated rgb
 name Initial_LevelSet
}
"""


def test_a_script_reads_and_renders() -> None:
    g = read_nk(SCRIPT).graph
    node = g.node("Initial_LevelSet")
    assert g.validate() == [] and node.knobs.create_matte and node.knobs.matte_limit == 3
    out = g.evaluate(node, 1)
    disc = g.evaluate("Disc", 1).channel("rgba.alpha")
    assert out.channel("rgba.alpha").sum() > disc.sum()  # grown


def test_the_public_script_keeps_its_levelset() -> None:
    path = DATA / ("colour-science+colour-nuke/colour_nuke/scripts/"
                   "panoramic_hdri_absolute_luminance_calibration_workflow_example.nk")
    if not path.exists():
        pytest.skip("public scripts not present")
    g = read_nk_file(path).graph
    node = next(n for n in g._all_nodes() if n.type_name == "LevelSet")
    assert (node.knobs.create_matte, node.knobs.matte_limit, node.knobs.extrapolated) == (True, 100.0, "rgb")


@pytest.mark.gpu
def test_gpu_matches_cpu() -> None:
    if not torch.cuda.is_available():
        pytest.skip("no CUDA device")
    g = read_nk(SCRIPT).graph
    cpu = g.evaluate("Initial_LevelSet", 1, device="cpu")
    gpu = g.evaluate("Initial_LevelSet", 1, device="cuda")
    torch.testing.assert_close(gpu.pixels.cpu(), cpu.pixels, atol=1e-4, rtol=1e-4)
