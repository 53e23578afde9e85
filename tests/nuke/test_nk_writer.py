"""nodegraph.nuke.writer: graphs as .nk scripts; round trips both ways."""

from __future__ import annotations

from pathlib import Path

import pytest

import nodegraph as ng
from nodegraph.document import graph_to_dict
from nodegraph.nuke.reader import read_nk
from nodegraph.nuke.script import parse_script
from nodegraph.nuke.writer import dumps_nk

from test_nk_reader import expand


def _strip(doc: dict) -> dict:
    """A document without what only a .nk script carries (extras, script metadata)."""
    def clean(body: dict) -> dict:
        nodes = {}
        for name, entry in body["nodes"].items():
            entry = {k: v for k, v in entry.items() if k != "extras"}
            if "graph" in entry:
                entry["graph"] = clean(entry["graph"])
            nodes[name] = entry
        return {"nodes": nodes, "links": sorted(body["links"], key=lambda l: (l["to"], l["input"]))}

    out = clean(doc)
    out["root"] = {k: v for k, v in doc.get("root", {}).items() if k != "format"}
    return out


def python_comp() -> ng.Graph:
    g = ng.Graph()
    g.root.update(first_frame=1, last_frame=20, fps=25.0)
    plate = g.add("ColorBars", "Plate", format="32 16 1")
    fg = g.add("CheckerBoard2", "Fg", format="32 16 1", boxsize=4.0)
    grade = g.add("Grade", "Grade1", input=fg, white=ng.Curve([(1, 1.0), (20, 2.0)]),
                  gamma=[1.0, ng.Expression("1 + frame/100"), 1.0, 1.0], mix=ng.Expression("clamp(frame/10, 0, 1)"))
    xf = g.add("Transform", "Move", input=grade, translate=[ng.Curve([(1, 0.0), (20, 8.0)]), 2.0], rotate=10.0,
               center=(16.0, 8.0), filter="keys")
    merge = g.add("Merge2", "Over", B=plate, A=xf, operation="screen", mix=0.75)
    sh = g.add("Shuffle2", "Swap", B=merge, mappings={"rgba.red": "rgba.blue", "rgba.blue": "rgba.red",
                                                      "rgba.green": "rgba.green", "rgba.alpha": "white"})
    cp = g.add("Copy", "CopyA", B=sh, A=plate, from0="rgba.red", to0="rgba.alpha")
    hold = g.add("FrameHold", "Hold", input=cp, firstFrame=5)
    off = g.add("TimeOffset", "Off", input=hold, time_offset=3)
    grp = g.add("Group", "Soft", label="")
    grp.add_knob("size", "float", 2.0, label="Size")
    grp.add_knob("mode", "enum", values=("soft", "hard"))
    inp = grp.subgraph.add("Input", "img")
    blur = grp.subgraph.add("Blur", "Blur1", input=inp, size=ng.Expression("parent.size"))
    grp.subgraph.add("Output", "Output1", input=blur)
    grp.add_link("blur_filter", "Blur1.filter")
    g.connect(off, grp, "img")
    sw = g.add("Switch", "Sw", which=1)
    g.connect(plate, sw, "0")
    g.connect(grp, sw, "1")
    g.add("Write", "Out", input=sw, file="out/comp.####.exr", channels="rgba")
    return g


def test_a_python_graph_written_and_read_back_is_the_same_graph() -> None:
    g = python_comp()
    text = dumps_nk(g)
    assert text.startswith("#! nuke -nx\nversion ")
    script = parse_script(text)
    assert script.warnings == []
    back = read_nk(text).graph
    assert _strip(graph_to_dict(back)) == _strip(graph_to_dict(g))
    assert back.node("Soft").link_knobs == {"blur_filter": "Blur1.filter"}
    for frame in (1, 7, 20):
        for node in ("Over", "Soft", "Sw"):
            assert back.node("Grade1").value("white", frame) == g.node("Grade1").value("white", frame)
            a, b = g.evaluate(node, frame), back.evaluate(node, frame)
            assert a.channels == b.channels and a.bbox == b.bbox
            assert (a.pixels == b.pixels).all(), (node, frame)


def test_layout_of_a_written_script() -> None:
    text = dumps_nk(python_comp())
    lines = text.splitlines()
    assert lines[0].startswith("#!") and lines[1].startswith("version ") and lines[2] == "Root {"
    assert " last_frame 20" in lines and " fps 25" in lines  # first_frame 1 is Nuke's default: not written
    assert "Merge2 {" in lines and " inputs 2" in lines and " operation screen" in lines
    assert "Group {" in lines and "end_group" in lines
    assert any(line.startswith(" addUserKnob {7 size") for line in lines)
    assert any(line.startswith(" addUserKnob {41 blur_filter") for line in lines)
    assert " white {{curve x1 1 x20 2}}" in lines
    assert " mix {{\"clamp(frame/10, 0, 1)\"}}" in lines


SCRIPT = """
#! /usr/local/Nuke14.0v5/nuke -nx
version 14.0 v5
define_window_layout_xml {<?xml version="1.0" encoding="UTF-8"?>
<layout version="1.0"/>
}
Root {
 inputs 0
 name /shots/a/comp.nk
 frame 1001
 first_frame 1001
 last_frame 1010
 format "64 32 0 0 64 32 1 tiny"
 proxy_type scale
 colorManagement Nuke
}
Constant {
 inputs 0
 color {0.1 0.2 0.3 1}
 name Bg
 tile_color 0xff0000ff
 xpos -40
 ypos -200
}
set N1 [stack 0]
CheckerBoard2 {
 inputs 0
 boxsize 8
 name Fg
 xpos 100
 ypos -200
}
Grade {
 white {{curve x1001 1 x1010 3}}
 unpremult -rgba.alpha
 name Grade1
 selected true
 xpos 100
 ypos -120
}
push $N1
Merge2 {
 inputs 2
 operation multiply
 bbox B
 name Merge1
 xpos -40
 ypos -40
}
VectorBlur2 {
 uv forward
 scale 3
 name VB
}
Viewer {
 frame_range 1001-1010
 name Viewer1
 xpos -40
 ypos 100
}
"""


def test_a_script_read_and_written_back_is_unchanged_line_for_line() -> None:
    res = read_nk(SCRIPT)
    text = dumps_nk(res.graph)
    assert text == SCRIPT.lstrip("\n")
    again = read_nk(text).graph
    assert graph_to_dict(again) == graph_to_dict(res.graph)


def test_changed_knobs_are_written_from_the_graph_the_rest_verbatim() -> None:
    g = read_nk(SCRIPT).graph
    g.node("Merge1").set(operation="plus")
    g.node("Grade1").set(white=2.5)
    g.root["last_frame"] = 1020
    text = dumps_nk(g)
    assert " operation plus" in text and " operation multiply" not in text
    assert " white 2.5" in text and "curve x1001" not in text
    assert " last_frame 1020" in text
    assert " tile_color 0xff0000ff" in text and " uv forward" in text and "colorManagement Nuke" in text
    back = read_nk(text).graph
    assert back.node("Merge1").knobs.operation == "plus" and back.root["last_frame"] == 1020


def test_a_new_knob_value_is_written_when_it_differs_from_nukes_default() -> None:
    g = read_nk(SCRIPT).graph
    g.node("Merge1").set(mix=0.5)
    text = dumps_nk(g)
    assert " mix 0.5" in text
    assert "black_outside" not in text  # defaults are not written


def test_reformat_black_outside_default_round_trips() -> None:
    g = ng.Graph()
    c = g.add("Constant", "C", format="8x8")
    g.add("Reformat", "R", input=c, format="16x16")  # nodegraph's default black_outside=True
    back = read_nk(dumps_nk(g)).graph
    assert back.node("R").knobs.black_outside is True  # written, since Nuke's default is False


def test_save_and_load_by_suffix_and_atomic_failure(tmp_path: Path) -> None:
    g = python_comp()
    path = tmp_path / "comp.nk"
    g.save(path)
    assert g.path == str(path.resolve())
    back = ng.Graph.load(path)
    assert back.path == str(path.resolve())
    assert _strip(graph_to_dict(back)) == _strip(graph_to_dict(g))
    with pytest.raises(ng.NodeGraphError):
        g.save(tmp_path / "missing" / "comp.nk")
    assert not (tmp_path / "missing").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["comp.nk"]


def test_convert_nk_to_json_and_back(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from nodegraph.cli import app

    src = tmp_path / "a.nk"
    src.write_text(expand(SCRIPT))
    runner = CliRunner()
    res = runner.invoke(app, ["convert", str(src), str(tmp_path / "b.json")])
    assert res.exit_code == 0, res.output
    res = runner.invoke(app, ["convert", str(tmp_path / "b.json"), str(tmp_path / "c.nk")])
    assert res.exit_code == 0, res.output
    a, c = ng.Graph.load(src), ng.Graph.load(tmp_path / "c.nk")
    assert graph_to_dict(a) == graph_to_dict(c)
    assert "VectorBlur2 {" in (tmp_path / "c.nk").read_text()
