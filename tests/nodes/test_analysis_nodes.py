"""CurveTool (its image is its input; its baked analysis results drive other nodes) and PostageStamp."""

from __future__ import annotations

import torch

from nodegraph.nuke.reader import read_nk

SCRIPT = """
Constant {
 inputs 0
 color {0.5 0.25 1 1}
 format "4 4 0 0 4 4 1"
 name C
}
CurveTool {
 avgframes 1
 ROI {0 0 {Input.width} {Input.height}}
 autocropdata {1 1 3 3}
 intensitydata {{curve x1 5 x3 10} 2 {curve x1 4} 1}
 name average_CurveTool
}
Multiply {
 value {{1/average_CurveTool.intensitydata}}
 name Norm
}
PostageStamp {
 name Stamp
 postage_stamp true
}
"""


def test_curvetool_results_drive_expressions_and_its_image_is_its_input() -> None:
    res = read_nk(SCRIPT)
    g = res.graph
    assert [str(i) for i in g.validate()] == [] and res.unsupported == {}
    ct = g.node("average_CurveTool")
    assert ct.value("intensitydata", 2) == (7.5, 2.0, 4.0, 1.0)  # a smooth curve between two keys, mid-way
    assert ct.knobs.ROI == "0 0 {Input.width} {Input.height}"  # kept as written (the TCL list inside the braces)
    src = g.evaluate("C", 1).pixels
    assert g.evaluator.hash(ct, 1) == g.evaluator.hash(g.node("C"), 1)  # shares its input's hash
    for frame, factor in ((1, 1 / 5), (3, 1 / 10)):
        got = g.evaluate("Stamp", frame).pixels
        assert torch.allclose(got, src * factor)  # Multiply reads intensitydata's first component
    assert g.evaluator.hash(g.node("Stamp"), 1) == g.evaluator.hash(g.node("Norm"), 1)
