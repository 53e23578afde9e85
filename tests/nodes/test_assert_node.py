"""Assert: its input when the expression holds, a KnobError naming node, frame and message when not."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

import nodegraph as ng
from nodegraph import KnobError
from nodegraph.curve import Curve, Key
from nodegraph.expression import Expression
from nodegraph.nuke.reader import read_nk_file

DATA = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "nk"
GIZMOS = ["manwhosoldthew+RIFE-for-Nuke/nuke/Cattery/RIFE/RIFE.gizmo",
          "rafaelperez+Segment-Anything-for-Nuke/nuke/Cattery/SegmentAnything/sam.gizmo",
          "ashok969+Depth-Anything-for-Nuke/nuke/Cattery/DepthAnythingV2/DepthAnythingV2.gizmo",
          "rafaelperez+ViTMatte-for-Nuke/nuke/Cattery/vitmatte/vitmatte.gizmo"]


def test_passes_the_input_through_or_fails_naming_node_frame_and_message() -> None:
    g = ng.Graph()
    c = g.add("CheckerBoard2", format="16x8")
    a = g.add("Assert", input=c, message="only frames 1-2")
    a.set(expression=Curve([Key(1, 1.0, "constant"), Key(3, 0.0, "constant")]))  # animated
    assert torch.equal(g.evaluate(a, 1).pixels, g.evaluate(c, 1).pixels)
    assert torch.equal(g.evaluate(a, 2, dtype=torch.float16).pixels, g.evaluate(c, 2, dtype=torch.float16).pixels)
    with pytest.raises(KnobError, match="only frames 1-2") as info:
        g.evaluate(a, 3)
    assert (info.value.node, info.value.knob, info.value.frame) == ("Assert1", "expression", 3)
    a.set(expression=Expression("width == 16 && height == 8"))
    assert g.evaluate(a, 3).bbox == g.evaluate(c, 3).bbox
    empty = g.add("Crop", input=c, box=(0, 0, 0, 0))
    g.connect(empty, a, "input")
    assert g.evaluate(a, 1).bbox.empty


@pytest.mark.parametrize("name", GIZMOS)
def test_the_public_cattery_asserts_hold(name: str) -> None:
    path = DATA / name
    if not path.exists():
        pytest.skip("public scripts not present")
    g = read_nk_file(path).graph
    asserts = [n for n in g._all_nodes() if n.type_name == "Assert" and "nuke_version" in str(n.knob_values())]
    assert asserts, "the gizmo has its version Assert"
    for node in asserts:
        assert node.value("expression", 1) == 1.0, node.path
    issues = [i for i in g.validate() if i.node and i.node.endswith(tuple(n.name for n in asserts))
              and i.knob == "expression"]
    assert issues == []
