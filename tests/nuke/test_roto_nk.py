"""Roto/RotoPaint from .nk scripts: the curves parser on the public scripts, rendering their nodes,
the writer keeping ``curves`` verbatim, and the parser's errors."""

from __future__ import annotations

import functools
import math
from pathlib import Path

import numpy as np
import pytest

import nodegraph as ng
from nodegraph.nuke import roto_curves as rc
from nodegraph.nuke.reader import read_nk, read_nk_file
from nodegraph.nuke.writer import dumps_nk
from nodegraph.nodes.roto_model import Shape, Stroke

NK = Path(__file__).resolve().parents[3] / "shared" / "data" / "nk"
PUBLIC = [
    "CreativeLyons+NukeSurvivalToolkit_publicRelease/NukeSurvivalToolkit/nk_files/kill_nan.nk",
    "CreativeLyons+NukeSurvivalToolkit_publicRelease/NukeSurvivalToolkit/nk_files/create_inf.nk",
    "rasheedgm+nukery/tests/files/test_file.nk",
    "colour-science+colour-nuke/colour_nuke/scripts/"
    "panoramic_hdri_absolute_luminance_calibration_workflow_example.nk",
]

SNIPPET = r"""
Root {
 inputs 0
 format "200 100 0 0 200 100 1 small"
}
Roto {
 inputs 0
 output alpha
 curves {{{v x3f99999a}
  {f 0}
  {n
   {layer Root
    {f 2097152}
    {t x42c80000 x42480000}
    {a pt1x 0 pt1y 0}
    {curvegroup Bezier1 512 bezier
     {{cc
       {f 8192}
       {px {1 x41200000}
        {0 0}
        {{x41a00000 x42200000} x41a00000}
        {0 0}
        {0 0}
        {x42a00000 x41a00000}
        {0 0}
        {0 0}
        {x42a00000 x42700000}
        {0 0}
        {0 0}
        {{x41a00000 x42200000} x42700000}
        {0 0}}}     idem}
     {tx 1 x42480000 x42480000}
     {a osw x41200000 osf 0 str 1 tt x40800000}}}}}}
 toolbox {selectAll {
  { selectAll str 1 ssx 1 ssy 1 sf 1 }
} }
 lifetime_type "all frames"
 name Roto1
}
"""


@functools.lru_cache(maxsize=1)
def _script_nodes():
    out = []
    for rel in PUBLIC:
        path = NK / rel
        if not path.exists():
            continue
        res = read_nk_file(path)
        out += [(rel, res, node) for node in res.graph.nodes.values() if node.type_name in ("Roto", "RotoPaint")]
    return out


def test_public_scripts_roto_nodes_parse_and_render():
    if not NK.exists():
        pytest.skip("public scripts not available")
    seen = 0
    for rel, res, node in _script_nodes():
        seen += 1
        assert not res.unsupported.get(node.type_name), rel
        scene = node.scene()
        items = [c for c in scene.children]
        assert items, (rel, node.name)
        # the text written back from the scene reads as the same scene
        assert rc.parse(rc.dump(scene)) == scene
        # render the node alone (its upstream is not the point here), at a frame where it is live
        g = ng.Graph()
        alone = g.add(node.type_name, node.name, **{k: v for k, v in node.knob_values().items()
                                                     if k in ("curves", "output", "format", "cliptype")})
        strokes = [i for i in items if isinstance(i, Stroke)]
        if strokes:
            with pytest.raises(ng.NodeGraphError, match=strokes[0].name):
                g.evaluate(alone, int(strokes[0].lifetime_start) or 1)
        frame = 1
        img = g.evaluate(alone, frame)
        a = img.channel("rgba.alpha").numpy()
        assert img.bbox == img.format.display
        assert a.min() >= 0 and a.max() <= 1
        for shape in (i for i in items if isinstance(i, Shape)):
            for p in shape.points:  # the shapes lie inside the format
                x = p.center[0](frame) if callable(p.center[0]) else p.center[0]
                y = p.center[1](frame) if callable(p.center[1]) else p.center[1]
                assert 0 <= x <= img.format.width and 0 <= y <= img.format.height, (rel, shape.name)
    assert seen == 6  # 1 Roto and 5 RotoPaint


def test_public_inverted_ellipse_masks_outside():
    for rel, _, node in _script_nodes():
        if node.name != "LightColourSample_RotoPaint":
            continue
        g = ng.Graph()
        bg = g.add("Constant", format=node.knobs.format, color=(0.5, 0.5, 0.5, 1.0))
        alone = g.add("RotoPaint", "P", bg=bg, curves=node.knobs.curves)
        img = g.evaluate(alone, 1)
        h = img.format.height
        red = img.channel("rgba.red").numpy()
        # colour 0 alpha 0 inverted: black outside the small ellipse round (695, 349), the plate inside
        assert red[0, 0] == 0 and red[h - 350, 695] == pytest.approx(0.5)
        return
    pytest.skip("public scripts not available")


def test_snippet_reads_renders_and_animates():
    res = read_nk(SNIPPET)
    g = res.graph
    assert [str(i) for i in g.validate()] == []
    node = g["Roto1"]
    assert node.knobs.format.startswith("200") or "small" in node.knobs.format
    # the left edge moves from x 20 (frame 1) to x 40 (frame 10): area 60 * 40 -> 40 * 40
    a1 = g.evaluate(node, 1).channel("rgba.alpha").numpy()
    a10 = g.evaluate(node, 10).channel("rgba.alpha").numpy()
    assert a1.sum() == pytest.approx(60 * 40, abs=0.5) and a10.sum() == pytest.approx(40 * 40, abs=0.5)
    mid = g.evaluate(node, 4).channel("rgba.alpha").numpy().sum()
    assert 40 * 40 < mid < 60 * 40


def test_snippet_round_trip_keeps_curves_verbatim(tmp_path):
    res = read_nk(SNIPPET)
    text = dumps_nk(res.graph)
    start = SNIPPET.index(" curves {")
    original = SNIPPET[start:SNIPPET.index(" toolbox")]
    assert original in text
    again = read_nk(text).graph
    assert again["Roto1"].knobs.curves == res.graph["Roto1"].knobs.curves
    path = tmp_path / "roto.nk"
    path.write_text(text)
    loaded = ng.Graph.load(str(path))
    np.testing.assert_array_equal(loaded.evaluate("Roto1", 1).pixels.numpy(),
                                  res.graph.evaluate("Roto1", 1).pixels.numpy())


def test_python_shapes_write_a_script_nuke_can_read_back():
    from nodegraph.nodes.roto_model import Point

    g = ng.Graph()
    shape = Shape(name="Box", points=[Point(center=(10, 10)), Point(center=(50, 10)), Point(center=(50, 30)),
                                      Point(center=(10, 30))], opacity=0.5)
    g.add("Roto", "R", format="64x48", curves=[shape])
    back = read_nk(dumps_nk(g)).graph
    assert back["R"].scene().children[0] == shape
    assert back.evaluate("R", 1).channel("rgba.alpha").sum() == pytest.approx(400)


def test_hex_floats_and_numbers():
    assert rc.number("x44800000") == 1024.0 and rc.number("xc0000000") == -2.0 and rc.number("0.5") == 0.5
    assert rc.hexfloat(1024.0) == "x44800000" and rc.hexfloat(0.0) == "0"
    assert rc.number(rc.hexfloat(math.pi)) == pytest.approx(math.pi, rel=1e-7)


@pytest.mark.parametrize("text, message", [
    ("{{v x3f99999a} {f 0} {n {layer Root {curvegroup B 512 bspline {{cc {f 0} {px 1 {0 0} {1 1} {0 0}}} idem}}}}}",
     "bspline"),
    ("{{v x3f99999a} {f 0} {n {layer Root {curvegroup B 512 bezier {{cc {f 0} {px 1 {0 0} {1 1}}} idem}}}}}",
     "whole points"),
    ("{{v x3f99999a} {f 0} {n {layer Root {curvegroup B 512 bezier {{cc {f 0} {px {1 2} {0 0} {{1 2 3} 1} {0 0}}}"
     " idem}}}}}", "3 values for 2 keys"),
    ("{{v x3f99999a} {f 0} {n {layer Root", "unbalanced"),
    ("{{v x3f99999a} {f 0} {n {layer Root {curvegroup B 512 bezier {{cc {f 0} {px 1 {0 0} {xzz 1} {0 0}}} idem}}}}}",
     "not a number"),
    ("AddMode 0 1 0 7 Bezier1 AnimTree: \"\" {", "Nuke 6"),
    ("{" * 200 + "}" * 200, "nested"),
])
def test_bad_text_is_a_clear_error(text, message):
    with pytest.raises(ng.NodeGraphError, match=message):
        rc.parse(text)
