"""Add and Multiply (Nuke's Math nodes): the formula per selected channel, mix, and the mask input
(as scripts connect it: `Multiply { inputs 1+1 }`)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import nodegraph as ng
from nodegraph.nuke.reader import read_nk


def _graph(value: float, mix: float, op: str, channels: str = "all", with_mask: bool = True):
    g = ng.Graph()
    board = g.add("CheckerBoard2", "Board", format="12 8 1", boxsize=3.0, color1=(0.9, -0.4, 2.0, 0.5))
    ramp = g.add("Ramp", "Matte", format="12 8 1", p0=(0.0, 0.0), p1=(12.0, 0.0), output="rgba")
    node = g.add(op, "M", input=board, value=value, mix=mix, channels=channels)
    if with_mask:
        g.connect(ramp, node, "mask")
    return g


@settings(max_examples=40, deadline=None)
@given(value=st.floats(-4, 4), mix=st.floats(0, 1), op=st.sampled_from(["Add", "Multiply"]),
       invert=st.booleans(), channels=st.sampled_from(["all", "rgb", "rgba.green", "alpha"]))
def test_formula_with_mix_and_mask(value: float, mix: float, op: str, invert: bool, channels: str) -> None:
    g = _graph(value, mix, op, channels)
    g.node("M").set(invert_mask=invert)
    src = g.evaluate("Board", 1)
    m = g.evaluate("Matte", 1).channel("rgba.alpha").numpy()
    w = mix * ((1 - m) if invert else m)
    x = src.pixels.numpy()
    done = x + value if op == "Add" else x * value
    want = x.copy()
    picked = {"all": range(4), "rgb": range(3), "rgba.green": [1], "alpha": [3]}[channels]
    for c in picked:
        want[c] = x[c] + (done[c] - x[c]) * w
    got = g.evaluate("M", 1)
    np.testing.assert_allclose(got.pixels.numpy(), want, rtol=1e-6, atol=1e-6)


def test_without_a_mask_mix_alone() -> None:
    g = _graph(2.0, 0.25, "Multiply", with_mask=False)
    x = g.evaluate("Board", 1).pixels
    assert torch.allclose(g.evaluate("M", 1).pixels, x + (x * 2.0 - x) * 0.25)


def test_a_script_connecting_the_mask_reads_and_renders() -> None:
    res = read_nk("""
Constant {
 inputs 0
 color {0.5 0.5 0.5 1}
 format "4 4 0 0 4 4 1"
 name Plate
}
Constant {
 inputs 0
 color {0 0 0 0.5}
 format "4 4 0 0 4 4 1"
 name Matte
}
set NM [stack 0]
push $NM
Multiply {
 inputs 0+1
 value 3
 name Mul
}
""")
    mul = res.graph.node("Mul")
    assert isinstance(mul, ng.Node) and mul.type_name == "Multiply"
    assert res.graph.inputs_of(mul) == {"mask": res.graph.node("Matte")}


@pytest.mark.parametrize("op", ["Add", "Multiply"])
def test_mask_input_order_in_scripts(op: str) -> None:
    text = f"""
Constant {{
 inputs 0
 color {{0 0 0 1}}
 format "4 4 0 0 4 4 1"
 name Matte
}}
Constant {{
 inputs 0
 color 0.5
 format "4 4 0 0 4 4 1"
 name Plate
}}
{op} {{
 inputs 1+1
 value 2
 name M
}}
"""
    g = read_nk(text).graph
    assert g.inputs_of("M") == {"input": g.node("Plate"), "mask": g.node("Matte")}
    got = g.evaluate("M", 1).pixels
    want = 2.5 if op == "Add" else 1.0
    assert torch.allclose(got[:3], torch.full((3, 4, 4), want))  # the matte's alpha is 1: full effect
