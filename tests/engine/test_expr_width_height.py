"""Nuke's width and height in knob expressions, and the $nuke_version TCL variable."""

from __future__ import annotations

import pytest

import nodegraph as ng
from nodegraph import KnobError, NodeGraphError
from nodegraph.expr_parse import NUKE_VERSION
from nodegraph.expression import Expression
from nodegraph.nuke.reader import read_nk


def test_bare_width_and_height_are_the_input_format() -> None:
    g = ng.Graph()
    c = g.add("Constant", format="640x480", color=(1, 1, 1, 1))
    crop = g.add("Crop", input=c, box=(0, 0, Expression("width / 2"), Expression("height")))
    assert g.validate() == []
    assert crop.value("box", 1) == (0.0, 0.0, 320.0, 480.0)
    img = g.evaluate(crop, 1)
    assert (img.bbox.width, img.bbox.height) == (320, 480)
    c.set(format="100x50")  # a change upstream changes the value (and the hash)
    assert crop.value("box", 1) == (0.0, 0.0, 50.0, 50.0)


def test_unconnected_reads_the_root_format_and_root_width() -> None:
    g = ng.Graph()
    g.root["format"] = "200x100"
    r = g.add("Rectangle", format="64x64", area=(0, 0, Expression("width"), Expression("root.height / 4")))
    assert r.value("area", 1) == (0.0, 0.0, 200.0, 25.0)
    bare = ng.Graph()
    t = bare.add("Transform", translate=(Expression("width"), Expression("height")))
    assert t.value("translate", 1) == (1920.0, 1080.0)  # Nuke's default root format, HD_1080


def test_node_width_and_input_width() -> None:
    g = ng.Graph()
    small = g.add("Constant", "Small", format="64x32")
    big = g.add("Constant", "Big", format="300x200")
    m = g.add("Merge2", B=big, A=small)
    t = g.add("Transform", input=m)
    t.set(translate=(Expression("Small.width + input.width"), Expression("input1.height")))
    assert g.validate() == []
    assert t.value("translate", 1) == (64.0 + 300.0, 1080.0)  # a Transform has no input 1: the root format
    t.set(translate=(Expression(f"{m.name}.width"), 0.0))
    assert t.value("translate", 1) == (300.0, 0.0)  # Merge2 puts out B's format
    t.set(translate=(Expression("width"), Expression("this.height")))
    assert t.value("translate", 1) == (300.0, 200.0)


def test_a_knob_named_width_comes_first() -> None:
    g = ng.Graph()
    c = g.add("Constant", format="64x32")
    grp = g.add("Group")
    grp.add_knob("width", "float", 7.0)
    inner = grp.subgraph.add("Transform", translate=(Expression("width"), Expression("parent.width")))
    assert inner.value("translate", 1) == (7.0, 7.0)
    assert c.name


def test_animated_and_errors_name_node_knob_and_frame() -> None:
    g = ng.Graph()
    c = g.add("Constant", format="10x10")
    t = g.add("Transform", input=c, translate=(Expression("width * frame"), 0.0))
    assert t.value("translate", 3) == (30.0, 0.0)
    t.set(translate=(Expression("Nope.width"), 0.0))
    with pytest.raises(NodeGraphError) as info:
        g.evaluate(t, 2)
    assert info.value.node == "Transform1" and info.value.knob == "translate" and info.value.frame == 2
    assert "Nope" in str(info.value)


def test_a_size_that_needs_itself_is_a_cycle_error() -> None:
    g = ng.Graph()
    c = g.add("Constant", format="10x10")
    crop = g.add("Crop", input=c)
    after = g.add("Reformat", "After", input=crop, type="scale", scale=2.0)
    crop.set(box=(0, 0, Expression("After.width"), 10.0))
    with pytest.raises(KnobError, match="cycle|depends on itself") as info:
        g.evaluate(after, 1)
    assert info.value.node == "Crop1" and info.value.knob == "box" and info.value.frame == 1


def test_nuke_version() -> None:
    major, minor, release = NUKE_VERSION
    assert Expression("$nuke_version").evaluate(1) == pytest.approx(major + minor / 10 + release / 1000)
    for guard in ("$nuke_version > 13.2", "$nuke_version > 13.208", "$nuke_version > 14.1"):
        assert Expression(guard).evaluate(1) == 1.0  # the guards of the public Cattery gizmos
    with pytest.raises(KnobError, match=r"\$foo"):
        Expression("$foo > 1")


SCRIPT = r"""
Root {
 format "256 128 0 0 256 128 1 square"
}
Constant {
 format "256 128 0 0 256 128 1 c"
 color {1 0.5 0.25 1}
 name C
}
Crop {
 box {0 0 {width} {height/2}}
 crop false
 name Crop1
}
Assert {
 expression {{"\$nuke_version > 13.2 && width == 256"}}
 message "needs 256 wide"
 name Assert1
}
"""


def test_a_script_using_width_renders() -> None:
    g = read_nk(SCRIPT).graph
    assert g.validate() == []
    img = g.evaluate("Assert1", 1)
    assert (img.bbox.width, img.bbox.height) == (256, 64)
    g.node("C").set(format="100x100")
    with pytest.raises(KnobError, match="needs 256 wide") as info:
        g.evaluate("Assert1", 1)
    assert info.value.node == "Assert1" and info.value.frame == 1
