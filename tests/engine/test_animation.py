"""Knobs that change over time in the engine: curves and expressions on knobs and components,
resolved per frame, hashed per frame (computes counted, never timed), saved in documents."""

from __future__ import annotations

import typing

import pytest
import torch

import nodegraph as ng
from nodegraph import KnobError
from nodegraph.curve import Curve, Key
from nodegraph.expression import Expression


def linear(*points: tuple[float, float]) -> Curve:
    return Curve([Key(x, y, interpolation="linear") for x, y in points])


def steps(*points: tuple[float, float]) -> Curve:
    return Curve([Key(x, y, interpolation="constant") for x, y in points])


def comp() -> tuple[ng.Graph, ng.Node, ng.Node]:
    g = ng.Graph()
    src = g.add("Constant", "Src", color=(0.5, 0.5, 0.5, 1.0), format="64x32")
    grade = g.add("Grade", "Grade1", input=src)
    return g, src, grade


def ran(g: ng.Graph) -> dict[str, int]:
    return dict(g.evaluator.stats.ran)


def red(img: ng.Image) -> float:
    return float(img.pixels[0, 0, 0])


# --- values -------------------------------------------------------------------------------------

def test_whole_knob_curve_resolves_per_frame():
    g, _, grade = comp()
    grade.set(white=linear((1, 1.0), (11, 2.0)))
    assert grade.value("white", 1) == 1.0
    assert grade.value("white", 6) == pytest.approx(1.5)
    assert grade.value("white", 11) == 2.0
    assert red(g.evaluate(grade, 6)) == pytest.approx(0.75)


def test_component_list_mixes_numbers_curves_and_expressions():
    g = ng.Graph()
    t = g.add("Transform", "T1")
    t.set(translate=[linear((1, 0.0), (3, 10.0)), Expression("frame * 2")])
    assert t.value("translate", 2) == (5.0, 4.0)
    assert t.value("translate", 3) == (10.0, 6.0)
    assert t.knob_values(only_changed=True)["translate"][1] == {"expression": "frame * 2"}


def test_expression_reads_another_nodes_knob_and_component_and_time():
    g = ng.Graph()
    a = g.add("Transform", "T1", translate=[linear((1, 0.0), (11, 10.0)), 3.0])
    b = g.add("Transform", "T2")
    b.set(rotate=Expression("T1.translate.x * 2 + T1.translate.y"))
    assert b.value("rotate", 6) == pytest.approx(13.0)
    b.set(rotate=Expression("T1.translate.x(frame - 1)"))
    assert b.value("rotate", 6) == pytest.approx(4.0)
    # a whole-knob reference on a per-component knob takes the matching component
    b.set(translate=Expression("T1.translate + 1"))
    assert b.value("translate", 11) == (11.0, 4.0)
    assert a.value("translate", 11) == (10.0, 3.0)


def test_root_knobs_in_expressions():
    g = ng.Graph()
    g.root.update(first_frame=1001, last_frame=1100, fps=24.0)
    t = g.add("Transform", "T1")
    t.set(rotate=Expression("(frame - root.first_frame) / (root.last_frame - root.first_frame) * 360"))
    assert t.value("rotate", 1001) == 0.0
    assert t.value("rotate", 1100) == pytest.approx(360.0)


def test_int_and_bool_knobs_take_expressions():
    g = ng.Graph()
    b = g.add("Blur", "B1")
    b.set(quality=Expression("frame / 2"), crop=Expression("frame > 5"))
    assert b.value("quality", 7) == 3
    assert b.value("crop", 5) is False and b.value("crop", 6) is True


def test_text_knobs_cannot_animate():
    g = ng.Graph()
    m = g.add("Merge2", "M1")
    with pytest.raises(KnobError, match="not numeric") as info:
        m.set(Achannels=Expression("frame"))
    assert info.value.node == "M1" and info.value.knob == "Achannels"


def test_choice_knobs_animate_by_index_as_in_nuke():
    """Nuke scripts drive choice knobs with expressions (``operation {{parent.op}}``): the value is
    the index of the choice, rounded down and held to the first and last choice; an expression
    reading a choice knob gets its index."""
    g = ng.Graph()
    m = g.add("Merge2", "M1")
    choices = typing.get_args(type(m.knobs).model_fields["operation"].annotation)
    m.set(operation=Expression("frame"))
    assert m.value("operation", 0) == choices[0] and m.value("operation", 3) == choices[3]
    assert m.value("operation", 3.7) == choices[3]
    assert m.value("operation", -5) == choices[0] and m.value("operation", 500) == choices[-1]
    assert m.at_frame(2).knobs.operation == choices[2]
    other = g.add("Merge2", "M2", operation="plus")
    sw = g.add("Switch", "S", which=Expression("M2.operation"))
    assert sw.value("which", 1) == choices.index("plus")
    m.set(operation=Expression("M2.operation + 1"))
    assert m.value("operation", 1) == choices[choices.index("plus") + 1]
    del other


def test_wrong_component_count_is_rejected():
    g = ng.Graph()
    t = g.add("Transform", "T1")
    with pytest.raises(KnobError, match="3 components"):
        t.set(translate=[1.0, 2.0, Expression("frame")])


def test_setting_a_plain_value_removes_the_animation():
    g, _, grade = comp()
    grade.set(mix=Expression("frame / 10"))
    grade.set(mix=0.5)
    assert grade.value("mix", 3) == 0.5 and "mix" not in grade.animated


# --- errors -----------------------------------------------------------------------------------

def test_reference_cycle_is_reported_with_its_path():
    g = ng.Graph()
    a = g.add("Transform", "A", rotate=Expression("B.rotate + 1"))
    g.add("Transform", "B", rotate=Expression("A.rotate + 1"))
    with pytest.raises(KnobError, match="cycle") as info:
        a.value("rotate", 1)
    assert "A.rotate -> B.rotate -> A.rotate" in str(info.value)


def test_missing_node_or_knob_in_reference_names_it():
    g = ng.Graph()
    t = g.add("Transform", "T1", rotate=Expression("Nope.rotate"))
    with pytest.raises(KnobError, match="no node named 'Nope'") as info:
        t.value("rotate", 1)
    assert info.value.node == "T1" and info.value.knob == "rotate"
    t.set(rotate=Expression("T1.nothing"))
    with pytest.raises(KnobError, match="no knob 'nothing'"):
        t.value("rotate", 1)


def test_division_by_zero_at_render_names_node_knob_and_frame():
    g, _, grade = comp()
    grade.set(white=Expression("1 / (frame - 3)"))
    assert red(g.evaluate(grade, 4)) == pytest.approx(0.5)
    with pytest.raises(ng.NodeGraphError) as info:
        g.evaluate(grade, 3)
    err = info.value
    assert (err.node, err.knob, err.frame) == ("Grade1", "white", 3)


def test_value_out_of_a_knobs_range_at_a_frame_names_the_frame():
    g = ng.Graph()
    src = g.add("Constant", "Src", format="64x32")
    blur = g.add("Blur", "B1", input=src, size=linear((1, 2.0), (3, -2.0)))
    g.evaluate(blur, 1)
    with pytest.raises(KnobError) as info:
        g.evaluate(blur, 3)
    assert (info.value.node, info.value.knob, info.value.frame) == ("B1", "size", 3)


# --- hashing and caching per frame ---------------------------------------------------------------

def test_still_knobs_share_one_cache_entry_across_frames():
    g, _, grade = comp()
    grade.set(white=2.0)
    for f in range(1, 6):
        g.evaluate(grade, f)
    assert ran(g) == {"Src": 1, "Grade1": 1}


def test_animated_knob_recomputes_only_frames_whose_values_differ():
    g, _, grade = comp()
    grade.set(white=steps((1, 1.0), (4, 2.0)))  # 1.0 on frames 1-3, 2.0 from frame 4
    values = [red(g.evaluate(grade, f)) for f in range(1, 8)]
    assert values == [0.5] * 3 + [1.0] * 4
    assert ran(g) == {"Src": 1, "Grade1": 2}


def test_expression_referencing_another_knob_follows_its_changes():
    g, src, grade = comp()
    ctl = g.add("Transform", "Ctl", rotate=2.0)
    grade.set(white=Expression("Ctl.rotate"))
    assert red(g.evaluate(grade, 1)) == pytest.approx(1.0)
    g.evaluate(grade, 2)
    assert ran(g) == {"Src": 1, "Grade1": 1}  # the value does not depend on the frame
    ctl.set(rotate=4.0)
    assert red(g.evaluate(grade, 1)) == pytest.approx(2.0)
    assert ran(g) == {"Src": 1, "Grade1": 2}


def test_hash_at_a_frame_is_the_hash_of_the_resolved_values():
    g, _, grade = comp()
    grade.set(white=linear((1, 1.0), (3, 3.0)))
    h2 = g.evaluator.hash(grade, 2)
    grade.set(white=2.0)
    assert g.evaluator.hash(grade, 2) == h2
    assert g.evaluator.hash(grade, 3) == h2  # still: every frame alike


def test_animated_node_renders_per_frame_values(tmp_path):
    g, _, grade = comp()
    grade.set(white=linear((1, 1.0), (3, 3.0)))
    g.add("Write", "W", input=grade, file=str(tmp_path / "out.####.exr"))
    from nodegraph.render import render

    render(g, frames="1-3")
    from nodegraph.io import read_image

    got = [float(read_image(tmp_path / f"out.000{f}.exr").pixels[0, 0, 0]) for f in (1, 2, 3)]
    assert got == pytest.approx([0.5, 1.0, 1.5])


def test_batch_render_of_an_animated_node_uses_each_frames_values():
    g, _, grade = comp()
    grade.set(white=linear((1, 1.0), (3, 3.0)))
    imgs = g.evaluator.evaluate_batch(grade, [1, 2, 3])
    assert [red(i) for i in imgs] == pytest.approx([0.5, 1.0, 1.5])


# --- documents ------------------------------------------------------------------------------------

def test_json_round_trip_keeps_curves_and_expressions():
    g = ng.Graph()
    g.root.update(first_frame=1001, last_frame=1010)
    t = g.add("Transform", "T1", translate=[linear((1, 0.0), (3, 10.0)), Expression("frame * 2")],
              rotate=Curve.parse("{curve x1 0 x10 90}"))
    g2 = ng.Graph.from_json(g.to_json())
    t2 = g2["T1"]
    for f in (1, 2, 5, 10):
        assert t2.value("translate", f) == t.value("translate", f)
        assert t2.value("rotate", f) == pytest.approx(t.value("rotate", f))
    assert g2.root["first_frame"] == 1001
    assert g2.to_json() == g.to_json()


def test_document_with_bad_expression_names_node_and_knob():
    doc = {"nodegraph": 2, "nodes": {"T1": {"type": "Transform", "knobs": {"rotate": {"expression": "1 +"}}}}}
    with pytest.raises(ng.DocumentError) as info:
        ng.Graph.from_dict(doc)
    assert "$.nodes.T1.knobs.rotate" in str(info.value)


def test_evaluate_is_correct_on_both_devices_and_half():
    g, _, grade = comp()
    grade.set(white=linear((1, 1.0), (3, 3.0)))
    img = g.evaluate(grade, 2, dtype=torch.float16)
    assert img.dtype == torch.float16 and float(img.pixels[0, 0, 0]) == pytest.approx(1.0)


# --- validation -------------------------------------------------------------------------------------

def test_validate_reports_bad_references_and_reference_cycles():
    g = ng.Graph()
    g.add("Transform", "A", rotate=Expression("B.rotate + 1"))
    g.add("Transform", "B", rotate=Expression("A.rotate + 1"), skewX=Expression("Gone.rotate"),
          skewY=Expression("A.nothing + root.nope"))
    issues = g.validate()
    kinds = sorted((i.kind, i.node, i.knob) for i in issues)
    assert ("bad_reference", "B", "skewX") in kinds
    assert sum(1 for k in kinds if k == ("bad_reference", "B", "skewY")) == 2
    cycles = [i for i in issues if i.kind == "reference_cycle"]
    assert len(cycles) == 1 and set(cycles[0].cycle) == {"A.rotate", "B.rotate"}
    assert "Gone" in str(next(i for i in issues if i.knob == "skewX"))


def test_changes_to_root_or_referenced_knobs_are_seen_after_a_value_was_read():
    g = ng.Graph()
    t = g.add("Transform", "T1", rotate=Expression("root.fps * 2"))
    ctl = g.add("Transform", "Ctl", rotate=1.0)
    t.set(skewX=Expression("Ctl.rotate"))
    assert t.value("rotate", 1) == 48.0 and t.value("skewX", 1) == 1.0
    g.root["fps"] = 25.0
    ctl.set(rotate=3.0)
    assert t.value("rotate", 1) == 50.0 and t.value("skewX", 1) == 3.0


def test_a_very_deep_reference_chain_is_a_clean_error():
    g = ng.Graph()
    prev = g.add("Transform", "T0", rotate=1.0)
    for i in range(1, 600):
        prev = g.add("Transform", f"T{i}", rotate=Expression(f"T{i - 1}.rotate + 1"))
    with pytest.raises(KnobError, match="nested too deeply"):
        prev.value("rotate", 1)
    assert g["T50"].value("rotate", 1) == 51.0


def test_two_readings_of_a_dotted_name_take_the_one_that_names_a_knob():
    g = ng.Graph()
    g.add("Transform", "Ctrl", rotate=7.0)
    t = g.add("Transform", "T1", translate=(3.0, 4.0))
    t.set(skewX=Expression("translate.y"), skewY=Expression("Ctrl.rotate"))
    assert t.value("skewX", 1) == 4.0 and t.value("skewY", 1) == 7.0
    assert [i for i in g.validate() if i.kind != "missing_input"] == []


def test_bare_curve_in_an_expression_is_zero_without_keys():
    g = ng.Graph()
    t = g.add("Transform", "T1", rotate=Expression("curve + 2"))
    assert t.value("rotate", 5) == 2.0
    assert [i for i in g.validate() if i.kind != "missing_input"] == []
