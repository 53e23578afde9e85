"""Groups and gizmos: subgraphs with Input/Output nodes, user and link knobs, paths, documents."""

from __future__ import annotations

import json

import pytest
import torch

import nodegraph as ng
from nodegraph import DocumentError, GraphError, KnobError
from nodegraph.expression import Expression
from nodegraph.group import Group, save_gizmo

FMT = "64x48"


def source(g: ng.Graph, name: str = "Src") -> ng.Node:
    return g.add("CheckerBoard2", name, format=FMT, boxsize=8)


def soft_blur(g: ng.Graph, name: str = "Soft", size: float = 3.0) -> Group:
    """A group: Input -> Blur (size = parent.size) -> Output, with a user knob ``size``."""
    grp = g.add("Group", name)
    grp.add_knob("size", "float", 1.0, tooltip="blur size")
    grp.set(size=size)
    inp = grp.subgraph.add("Input", "Input1")
    blur = grp.subgraph.add("Blur", "Blur1", input=inp, size=Expression("parent.size"))
    grp.subgraph.add("Output", "Output1", input=blur)
    return grp


def ran(g: ng.Graph) -> dict[str, int]:
    return dict(g.evaluator.stats.ran)


def test_group_gives_what_its_inner_nodes_compute():
    g = ng.Graph()
    src = source(g)
    grp = soft_blur(g, size=3.0)
    g.connect(src, grp, "Input1")
    flat = g.add("Blur", "Flat", input=src, size=3.0)
    got, want = g.evaluate(grp, 1), g.evaluate(flat, 1)
    assert torch.equal(got.pixels, want.pixels) and got.bbox == want.bbox
    # the inner Blur at size 3 over the same source is the same computation: the same hash
    assert g.evaluator.hash(grp, 1) == g.evaluator.hash(flat, 1)


def test_inner_nodes_are_cached_and_named_by_path():
    g = ng.Graph()
    src = source(g)
    grp = soft_blur(g)
    g.connect(src, grp, "Input1")
    g.evaluator = ng.Evaluator(g)
    g.evaluate(grp, 1)
    assert ran(g) == {"Src": 1, "Soft.Blur1": 1}
    g.evaluate(grp, 2)
    assert ran(g) == {"Src": 1, "Soft.Blur1": 1}
    grp.set(size=5.0)  # a user knob read by an inner expression: only the inner blur recomputes
    g.evaluate(grp, 1)
    assert ran(g) == {"Src": 1, "Soft.Blur1": 2}
    assert g.node("Soft.Blur1").value("size", 1) == 5.0
    assert g.node("Soft.Blur1").path == "Soft.Blur1"


def test_inputs_are_ordered_by_number_and_named_after_input_nodes():
    g = ng.Graph()
    grp = g.add("Group", "G")
    grp.subgraph.add("Input", "fg", number=1)
    grp.subgraph.add("Input", "bg", number=0)
    assert grp.input_names() == ["bg", "fg"]
    assert [i.name for i in ng.registry.get("Group").inputs] == []  # other groups are unaffected


def test_unconnected_group_input_reads_as_unconnected_inside():
    g = ng.Graph()
    src = source(g)
    grp = g.add("Group", "G")
    img = grp.subgraph.add("Input", "Img", number=0)
    mask = grp.subgraph.add("Input", "Mask", number=1)
    grade = grp.subgraph.add("Grade", "Grade1", input=img, mask=mask, white=2.0)
    grp.subgraph.add("Output", "Output1", input=grade)
    g.connect(src, grp, "Img")
    plain = g.add("Grade", "Plain", input=src, white=2.0)
    # Mask is open outside: inside, Grade1's mask reads as unconnected (graded everywhere), as in Nuke
    assert torch.equal(g.evaluate(grp, 1).pixels, g.evaluate(plain, 1).pixels)
    zero = g.add("Constant", "Zero", color=(0.0, 0.0, 0.0, 0.0), format=FMT)
    g.connect(zero, grp, "Mask")
    assert torch.equal(g.evaluate(grp, 1).pixels, g.evaluate(src, 1).pixels)


def test_nested_groups_and_parent_chains():
    g = ng.Graph()
    src = source(g)
    outer = g.add("Group", "Outer")
    outer.add_knob("amount", "float", 2.0)
    oin = outer.subgraph.add("Input", "Input1")
    inner = soft_blur(outer.subgraph, "Inner")
    inner.set(size=Expression("parent.amount * 2"))
    outer.subgraph.connect(oin, inner, "Input1")
    outer.subgraph.add("Output", "Output1", input=inner)
    g.connect(src, outer, "Input1")
    blur = g.node("Outer.Inner.Blur1")
    assert blur.path == "Outer.Inner.Blur1" and blur.value("size", 1) == 4.0
    flat = g.add("Blur", "Flat", input=src, size=4.0)
    assert torch.equal(g.evaluate(outer, 1).pixels, g.evaluate(flat, 1).pixels)
    outer.set(amount=0.5)
    assert blur.value("size", 1) == 1.0


def test_link_knob_exposes_an_inner_knob():
    g = ng.Graph()
    src = source(g)
    grp = g.add("Group", "G")
    inp = grp.subgraph.add("Input", "Input1")
    blur = grp.subgraph.add("Blur", "Blur1", input=inp)
    grp.subgraph.add("Output", "Output1", input=blur)
    grp.add_link("size", "Blur1.size")
    g.connect(src, grp, "Input1")
    grp.set(size=2.5)
    assert blur.knobs.size == 2.5 and grp["size"] == 2.5 and grp.value("size", 7) == 2.5
    with pytest.raises(KnobError):
        grp.add_link("bad", "Nope")


def test_validate_names_full_paths():
    g = ng.Graph()
    grp = g.add("Group", "G")
    grp.subgraph.add("Blur", "Blur2")  # required input open, and no Output
    grp.subgraph.add("Grade", "Grade1", white=Expression("Missing.white"))
    issues = {(i.kind, i.node) for i in g.validate()}
    assert ("missing_input", "G.Blur2") in issues
    assert ("node_check", "G") in issues
    assert ("bad_reference", "G.Grade1") in issues
    with pytest.raises(GraphError, match="no Output"):
        g.evaluate(grp, 1)


def test_json_round_trip_of_nested_groups():
    g = ng.Graph()
    src = source(g)
    outer = g.add("Group", "Outer")
    outer.add_knob("amount", "float", 2.0)
    outer.add_knob("mode", "enum", values=("soft", "hard"))
    oin = outer.subgraph.add("Input", "Input1")
    inner = soft_blur(outer.subgraph, "Inner")
    inner.set(size=Expression("parent.amount * 2"))
    outer.subgraph.connect(oin, inner, "Input1")
    outer.subgraph.add("Output", "Output1", input=inner)
    outer.add_link("inner_size", "Inner.size")
    g.connect(src, outer, "Input1")
    text = g.to_json()
    g2 = ng.Graph.from_json(text)
    assert g2.to_json() == text
    assert torch.equal(g2.evaluate("Outer", 1).pixels, g.evaluate(outer, 1).pixels)
    assert g2.node("Outer").knobs.mode == "soft"
    doc = json.loads(text)
    assert doc["nodes"]["Outer"]["graph"]["nodes"]["Inner"]["type"] == "Group"


def test_document_errors_inside_groups_name_the_json_path():
    doc = {"nodegraph": 2, "nodes": {"G": {"type": "Group", "graph": {"nodes": {
        "B": {"type": "Blur", "knobs": {"size": "big"}}}}}}}
    with pytest.raises(DocumentError, match=r"\$\.nodes\.G\.graph\.nodes\.B\.knobs\.size"):
        ng.Graph.from_dict(doc)
    doc = {"nodegraph": 2, "nodes": {"B": {"type": "Blur", "graph": {}}}}
    with pytest.raises(DocumentError, match="only groups"):
        ng.Graph.from_dict(doc)


def test_gizmo_saved_once_used_by_name(tmp_path, monkeypatch):
    g = ng.Graph()
    grp = soft_blur(g)
    path = save_gizmo(grp, tmp_path, name="SoftBlur", version="2")
    assert path.name == "SoftBlur.gizmo.json"
    monkeypatch.setenv("NODEGRAPH_GIZMO_PATH", str(tmp_path))
    comp = ng.Graph()
    src = source(comp)
    giz = comp.add("SoftBlur", "SB", Input1=src, size=4.0)
    flat = comp.add("Blur", "Flat", input=src, size=4.0)
    assert torch.equal(comp.evaluate(giz, 1).pixels, comp.evaluate(flat, 1).pixels)
    doc = comp.to_dict()
    assert doc["nodes"]["SB"] == {"type": "SoftBlur", "gizmo_version": "2", "knobs": {"size": 4.0}}
    again = ng.Graph.from_dict(doc)
    assert torch.equal(again.evaluate("SB", 1).pixels, comp.evaluate(giz, 1).pixels)
    assert again.validate() == []
    # a newer definition on the path: loads, and validate says the versions differ
    save_gizmo(grp, tmp_path, name="SoftBlur", version="3")
    issues = ng.Graph.from_dict(doc).validate()
    assert [i.kind for i in issues] == ["node_check"] and "version 2" in issues[0].message
    monkeypatch.setenv("NODEGRAPH_GIZMO_PATH", str(tmp_path / "elsewhere"))
    with pytest.raises(DocumentError, match="unknown node type 'SoftBlur'"):
        ng.Graph.from_dict(doc)


def test_render_through_a_group(tmp_path):
    g = ng.Graph()
    src = source(g)
    grp = soft_blur(g, size=2.0)
    g.connect(src, grp, "Input1")
    g.add("Write", "W", input=grp, file=str(tmp_path / "out.####.exr"))
    from nodegraph.render import render

    result = render(g, frames="1-2")
    assert result.ok and len(result.written) == 2


def test_user_knob_errors():
    g = ng.Graph()
    grp = g.add("Group", "G")
    with pytest.raises(KnobError, match="already exists"):
        grp.add_knob("label")
    with pytest.raises(KnobError):
        grp.add_knob("not an identifier")
    with pytest.raises(KnobError):
        grp.add_knob("choice", "enum")
    grp.add_knob("gain", "float", 1.0, minimum=0.0, maximum=4.0)
    with pytest.raises(KnobError):
        grp.set(gain=5.0)


def test_render_runs_a_write_inside_a_group(tmp_path):
    g = ng.Graph()
    src = source(g)
    grp = soft_blur(g, size=2.0)
    g.connect(src, grp, "Input1")
    blur = g.node("Soft.Blur1")
    grp.subgraph.add("Write", "W", input=blur, file=str(tmp_path / "inner.####.exr"))
    assert [n.path for n in g.outputs()] == ["Soft.W"]
    from nodegraph.io import read_image
    from nodegraph.render import render

    result = render(g, frames="1-2")
    assert result.ok and [(n, f) for n, f, _ in result.written] == [("Soft.W", 1), ("Soft.W", 2)]
    flat = g.add("Blur", "Flat", input=src, size=2.0)
    got = read_image(tmp_path / "inner.0001.exr")
    want = g.evaluate(flat, 1)
    assert got.channels == want.channels[:len(got.channels)]
    assert torch.allclose(got.pixels, want.pixels[:len(got.channels)].to(got.pixels.dtype), atol=1e-3)
    result = render(g, writes=["Soft.W"], frames="3")
    assert result.ok and result.written[0][0] == "Soft.W"
