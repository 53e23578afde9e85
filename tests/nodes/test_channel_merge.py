"""ChannelMerge against numpy formulas written from Foundry's operation table."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings, strategies as st

import nodegraph as ng
from nodegraph.image import Box, Format, Image
from nodegraph.nuke.reader import read_nk
from nodegraph.nuke.writer import dumps_nk
from nodegraph.testing import compute_node
from nodegraph.nodes.channel_merge import OPERATIONS


def oracle(op: str, A: np.ndarray, B: np.ndarray) -> np.ndarray:
    with np.errstate(divide="ignore", invalid="ignore"):
        table = {
            "absminus": np.abs(A - B), "b if not a": np.where(A != 0, A, B),
            "divide": np.where((A < 0) & (B < 0), 0.0, np.where(B == 0, 0.0, A / np.where(B == 0, 1, B))),
            "from": B - A, "in": A * B, "max": np.maximum(A, B), "min": np.minimum(A, B), "minus": A - B,
            "multiply": np.where((A < 0) & (B < 0), A, A * B), "out": A * (1 - B), "plus": A + B,
            "stencil": B * (1 - A), "union": A + B - A * B, "xor": A + B - 2 * A * B,
        }
    return table[op]


def image(data: np.ndarray, channels=("rgba.red", "rgba.alpha")) -> Image:
    h, w = data.shape[1:]
    return Image(torch.tensor(data, dtype=torch.float32), channels, Box(0, 0, w, h), Format.of_size(w, h))


def merge(**knobs):
    from nodegraph.nodes.channel_merge import ChannelMerge

    return ChannelMerge("ChannelMerge1", **knobs)


def test_operations_are_foundrys_list_with_union_at_index_12() -> None:
    names = list(OPERATIONS)
    assert names == sorted(names) and names[12] == "union" and len(names) == 14


values = st.lists(st.floats(-2, 2, width=32), min_size=12, max_size=12)


@settings(max_examples=40, deadline=None)
@given(op=st.sampled_from(sorted(OPERATIONS)), a=values, b=values, mix=st.floats(0, 1))
def test_matches_the_formula(op: str, a: list[float], b: list[float], mix: float) -> None:
    A = np.array(a, dtype=np.float32).reshape(2, 2, 3)
    B = np.array(b, dtype=np.float32).reshape(2, 2, 3)
    out = compute_node(merge(operation=op, mix=mix), A=image(A), B=image(B))
    want = B[1] + (oracle(op, A[1], B[1]) - B[1]) * mix
    np.testing.assert_allclose(out.channel("rgba.alpha").numpy(), want, rtol=1e-5, atol=1e-5)
    np.testing.assert_array_equal(out.channel("rgba.red").numpy(), B[0])  # other channels are B's


def test_channels_no_a_input_new_output_and_mask() -> None:
    rng = np.random.default_rng(1)
    B = rng.random((2, 4, 5), dtype=np.float32)
    node = merge(A="rgba.red", B="rgba.alpha", output="depth.Z", operation="minus")
    out = compute_node(node, B=image(B))  # no A input: both channels from B
    assert out.channels == ("rgba.red", "rgba.alpha", "depth.Z")
    np.testing.assert_allclose(out.channel("depth.Z").numpy(), B[0] - B[1], atol=1e-6)
    node.set(A="-rgba.alpha")  # a switched-off channel reads as none: black
    assert node.knobs.A == "none"
    np.testing.assert_allclose(compute_node(node, B=image(B)).channel("depth.Z").numpy(), -B[1], atol=1e-6)
    mask = image(np.stack([B[0], np.full((4, 5), 0.25, np.float32)]))
    node.set(A="rgba.red", output="rgba.alpha", operation="plus", mix=0.5)
    got = compute_node(node, B=image(B), A=image(B), mask=mask).channel("rgba.alpha").numpy()
    np.testing.assert_allclose(got, B[1] + B[0] * 0.25 * 0.5, atol=1e-6)
    node.set(invert_mask=True)
    got = compute_node(node, B=image(B), A=image(B), mask=mask).channel("rgba.alpha").numpy()
    np.testing.assert_allclose(got, B[1] + B[0] * 0.75 * 0.5, atol=1e-6)

def test_half_precision_and_empty_windows() -> None:
    g = ng.Graph()
    a = g.add("Ramp", format="16x8")
    b = g.add("CheckerBoard2", format="16x8")
    node = g.add("ChannelMerge", A=a, B=b, operation="xor")
    full = g.evaluate(node, 1)
    half = g.evaluate(node, 1, dtype=torch.float16)
    assert half.dtype == torch.float16
    torch.testing.assert_close(half.pixels.float(), full.pixels, atol=2e-3, rtol=2e-3)
    node.set(bbox="intersection")
    crop = g.add("Crop", input=a, box=(0, 0, 0, 0))
    g.connect(crop, node, "A")
    assert g.evaluate(node, 1).bbox.empty


SCRIPT = """
Constant {
 inputs 0
 color {0 0 0 0.5}
 format "8 8 0 0 8 8 1 s"
 name CleanScreen
}
Constant {
 inputs 0
 color {0 0 0 0.25}
 format "8 8 0 0 8 8 1 s"
 name PlateScreen
}
ChannelMerge {
 inputs 2
 operation divide
 name NormalizeScreen
}
"""


def test_script_input_order_b_first() -> None:
    """``inputs 2`` takes the top of the stack (PlateScreen, pushed last) as input 0 = B and
    CleanScreen as input 1 = A, as for Merge2 (see the node's docstring for the evidence)."""
    g = read_nk(SCRIPT).graph
    node = g.node("NormalizeScreen")
    src = g.sources_of(node)
    assert src["B"].name == "PlateScreen" and src["A"].name == "CleanScreen"
    out = g.evaluate(node, 1)
    np.testing.assert_allclose(out.channel("rgba.alpha").numpy(), 0.5 / 0.25)
    again = read_nk(dumps_nk(g)).graph
    assert again.sources_of(again.node("NormalizeScreen"))["B"].name == "PlateScreen"
    assert again.node("NormalizeScreen").knobs.operation == "divide"


@pytest.mark.gpu
def test_gpu_matches_cpu() -> None:
    if not torch.cuda.is_available():
        pytest.skip("no CUDA device")
    g = ng.Graph()
    node = g.add("ChannelMerge", A=g.add("Ramp", format="32x16"), B=g.add("CheckerBoard2", format="32x16"),
                 operation="divide")
    cpu = g.evaluate(node, 1, device="cpu")
    gpu = g.evaluate(node, 1, device="cuda")
    torch.testing.assert_close(gpu.pixels.cpu(), cpu.pixels, atol=1e-5, rtol=1e-5)
