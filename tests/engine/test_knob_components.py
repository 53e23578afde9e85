"""Component names in knob references follow the knob's kind, as in Nuke: a box's ``r`` and ``t``
are its right and top edges, a colour's ``r`` is red, a size's ``w`` and ``h`` its width and height."""

from __future__ import annotations

from pathlib import Path

import pytest

import nodegraph as ng
from nodegraph import animation
from nodegraph.animation import BOX, COLOUR, UV, WH, XY, XYZ, knob_components
from nodegraph.expression import Expression
from nodegraph.nuke.reader import read_nk
from nodegraph.nuke.writer import dumps_nk


def test_box_components_are_its_edges_and_colour_components_its_channels() -> None:
    g = ng.Graph()
    g.add("Crop", "Crop1", box=(10.0, 20.0, 300.0, 400.0))
    g.add("Grade", "Grade1", white=(0.1, 0.2, 0.3, 0.4))
    probe = g.add("Transform", "Probe")
    for text, want in (("Crop1.box.x", 10.0), ("Crop1.box.y", 20.0), ("Crop1.box.r", 300.0), ("Crop1.box.t", 400.0),
                       ("Crop1.box.3", 400.0), ("Crop1.box.r - Crop1.box.x", 290.0),
                       ("Grade1.white.r", 0.1), ("Grade1.white.g", 0.2), ("Grade1.white.b", 0.3),
                       ("Grade1.white.a", 0.4), ("Grade1.white.0", 0.1)):
        probe.set(rotate=Expression(text))
        assert probe.value("rotate", 1) == pytest.approx(want), text


def test_size_position_and_uv_components() -> None:
    g = ng.Graph()
    g.add("Transform", "T1", translate=(5.0, 6.0), scale=(2.0, 3.0), center=(7.0, 8.0))
    g.add("VectorBlur", "VB", constant=(0.25, 0.75))
    g.add("Blur", "B1", size=(4.0, 9.0))
    probe = g.add("Transform", "Probe")
    for text, want in (("T1.translate.x", 5.0), ("T1.translate.y", 6.0), ("T1.scale.w", 2.0), ("T1.scale.h", 3.0),
                       ("T1.center.y", 8.0), ("VB.constant.u", 0.25), ("VB.constant.v", 0.75),
                       ("B1.size.w", 4.0), ("B1.size.h", 9.0)):
        probe.set(rotate=Expression(text))
        assert probe.value("rotate", 1) == pytest.approx(want), text
    g["T1"].set(scale=1.5)  # one value for both: every component reads it
    probe.set(rotate=Expression("T1.scale.h"))
    assert probe.value("rotate", 1) == pytest.approx(1.5)


def test_a_knobs_own_box_edges_in_a_text_node() -> None:
    """Nuke's colour_rendition_chart.nk centres its titles with ``center {{box.r/2} {box.t}}``."""
    g = ng.Graph()
    t = g.add("Text", "Title", box=(0.0, 0.0, 3583.0, 1262.5),
              center=(Expression("box.r / 2"), Expression("box.t")))
    assert t.value("center", 1) == (1791.5, 1262.5)
    r = g.add("Rectangle", "R", area=(Expression("Title.box.r / 4"), 0.0, Expression("Title.box.r"), 10.0))
    assert r.value("area", 1) == (895.75, 0.0, 3583.0, 10.0)


@pytest.mark.parametrize("text, kind, names", [
    ("Crop1.box.w", "box", "x, y, r, t"),
    ("Crop1.box.a", "box", "x, y, r, t"),
    ("Grade1.white.x", "colour", "r, g, b, a"),
    ("T1.translate.z", "position", "x, y"),
    ("T1.scale.z", "width/height", "w, h"),
])
def test_a_name_the_knobs_kind_lacks_is_an_error_naming_node_knob_and_names(text: str, kind: str, names: str) -> None:
    g = ng.Graph()
    g.add("Crop", "Crop1", box=(10.0, 20.0, 300.0, 400.0))
    g.add("Grade", "Grade1", white=(0.1, 0.2, 0.3, 0.4))
    g.add("Transform", "T1", translate=(5.0, 6.0), scale=(2.0, 3.0))
    probe = g.add("Transform", "Probe", rotate=Expression(text))
    with pytest.raises(ng.KnobError) as info:
        probe.value("rotate", 1)
    message = str(info.value)
    assert f"a {kind} knob" in message and names in message and text.rsplit(".", 1)[0] in message
    assert info.value.node == "Probe" and info.value.knob == "rotate"
    assert any(i.kind == "bad_reference" and i.node == "Probe" for i in g.validate())


def test_knobs_without_a_kind_keep_the_generic_names() -> None:
    g = ng.Graph()
    g.add("Reformat", "Ref", scale=(2.0, 4.0))  # an Array_Knob in Nuke: no names of its own
    probe = g.add("Transform", "Probe", rotate=Expression("Ref.scale.x + Ref.scale.y"))
    assert probe.value("rotate", 1) == pytest.approx(6.0)
    assert Expression("K.v.t").evaluate(1, lambda ref, f: (1.0, 2.0, 3.0, 4.0)) == 4.0  # a resolver's tuple
    assert Expression("K.v.h").evaluate(1, lambda ref, f: (1.0, 2.0)) == 2.0


def test_user_knobs_take_their_kinds_names() -> None:
    g = ng.Graph()
    ctrl = g.add("NoOp", "Ctrl")
    ctrl.add_knob("pos", "xy", (1.0, 2.0))
    ctrl.add_knob("size", "wh", (3.0, 4.0))
    ctrl.add_knob("area", "box", (5.0, 6.0, 7.0, 8.0))
    ctrl.add_knob("tint", "color", (0.1, 0.2, 0.3, 0.4))
    probe = g.add("Transform", "Probe")
    for text, want in (("Ctrl.pos.y", 2.0), ("Ctrl.size.w", 3.0), ("Ctrl.size.h", 4.0), ("Ctrl.area.r", 7.0),
                       ("Ctrl.area.t", 8.0), ("Ctrl.tint.a", 0.4)):
        probe.set(rotate=Expression(text))
        assert probe.value("rotate", 1) == pytest.approx(want), text
    probe.set(rotate=Expression("Ctrl.area.a"))
    with pytest.raises(ng.KnobError, match="x, y, r, t"):
        probe.value("rotate", 1)


SCRIPT = """
NoOp {
 name Ctrl
 addUserKnob {20 User}
 addUserKnob {14 size}
 size {3 4}
 addUserKnob {15 area}
 area {1 2 30 40}
}
Crop {
 box {{Ctrl.area.x} {Ctrl.area.y} {Ctrl.area.r} {"Ctrl.size.h * 10"}}
 name Crop1
}
"""


def test_script_user_knobs_of_width_height_and_box_kind_read_and_write_back() -> None:
    g = read_nk(SCRIPT).graph
    ctrl = g.node("Ctrl")
    assert ctrl.user_knobs["size"].type == "wh" and ctrl.user_knobs["area"].type == "box"
    assert g.node("Crop1").value("box", 1) == (1.0, 2.0, 30.0, 40.0)
    text = dumps_nk(g)
    assert "addUserKnob {14 size}" in text and "addUserKnob {15 area}" in text
    assert read_nk(text).graph.node("Crop1").value("box", 1) == (1.0, 2.0, 30.0, 40.0)


def test_knob_components_reads_markers_in_and_around_unions() -> None:
    from typing import Annotated

    assert knob_components(Annotated[float | tuple[float, float], WH]) is WH
    assert knob_components(float | Annotated[tuple[float, float], UV]) is UV
    assert knob_components(tuple[float, float]) is None
    assert BOX.index("t") == 3 and COLOUR.index("alpha") == 3 and XY.index("z") is None and XYZ.index("z") == 2
    assert animation.component_of((1.0, 2.0, 3.0, 4.0), "r", None, "K.box", BOX) == 3.0
    assert animation.component_of((1.0, 2.0, 3.0, 4.0), "r", None, "K.white", COLOUR) == 1.0


#: Knob types Nuke gives each class's knobs (``NAME TYPE DEFAULT`` lines), where the shared data has them.
KNOB_DEFAULTS = Path(__file__).resolve().parents[3] / "shared" / "data" / "nk-knob-defaults"
KIND_OF_NUKE_TYPE = {"Color_Knob": COLOUR, "AColor_Knob": COLOUR, "XY_Knob": XY, "XYZ_Knob": XYZ, "WH_Knob": WH,
                     "BBox_Knob": BOX, "UV_Knob": UV}


@pytest.mark.skipif(not KNOB_DEFAULTS.is_dir(), reason="../shared/data/nk-knob-defaults is not here")
def test_every_tuple_knob_of_a_nuke_class_names_its_components_as_nuke_does() -> None:
    checked, wrong = 0, []
    for type_name in ng.registry.types():
        cls = ng.registry.get(type_name)
        table = KNOB_DEFAULTS / f"{type_name}.txt"
        if not cls.__module__.startswith("nodegraph.nodes.") or not table.is_file():
            continue
        nuke_types = dict(line.split()[:2] for line in table.read_text().splitlines() if len(line.split()) >= 2)
        for name, field in cls.Knobs.model_fields.items():
            shape = animation.knob_shape(field.annotation)
            want = KIND_OF_NUKE_TYPE.get(nuke_types.get(name, ""))
            if shape is None or max(shape.counts) < 2 or want is None:
                continue
            checked += 1
            if knob_components(field) is not want:
                wrong.append(f"{type_name}.{name} ({nuke_types[name]})")
    assert checked >= 90 and wrong == []


def test_a_size_knob_also_reads_x_and_y_as_width_and_height() -> None:
    g = ng.Graph()
    g.add("Transform", "T1", scale=(2.0, 3.0))
    probe = g.add("Transform", "Probe", rotate=Expression("T1.scale.x * 10 + T1.scale.y"))
    assert probe.value("rotate", 1) == pytest.approx(23.0)
