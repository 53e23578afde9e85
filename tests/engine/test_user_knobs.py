"""User knobs on any node (Nuke's addUserKnob on a NoOp, a Grade...), extras kept with a node, and
expressions that carry animation keys of their own (``curve`` inside the expression)."""

from __future__ import annotations

import pytest

import nodegraph as ng
from nodegraph.document import dumps, loads


def test_a_user_knob_on_a_plain_node_drives_another_node_through_an_expression() -> None:
    g = ng.Graph()
    ctrl = g.add("NoOp", "Controls")
    ctrl.add_knob("gain", "float", 2.0, label="Gain", minimum=0, maximum=10)
    ctrl.add_knob("tint", "rgb", (1.0, 0.5, 0.25))
    g.add("Grade", "Grade1", multiply=ng.Expression("Controls.gain * Controls.tint.g"))
    assert g["Grade1"].value("multiply", 1) == pytest.approx(1.0)
    ctrl.set(gain=4.0)
    assert g["Grade1"].value("multiply", 1) == pytest.approx(2.0)
    assert [i.kind for i in g.validate()] == ["missing_input", "missing_input"]  # no bad_reference
    g["Grade1"].set(multiply=ng.Expression("Controls.gains"))
    assert [i.kind for i in g.validate() if i.node == "Grade1"] == ["missing_input", "bad_reference"]
    with pytest.raises(ng.KnobError, match="gain"):
        ctrl.set(gain=11.0)  # outside the knob's own range
    with pytest.raises(ng.KnobError, match="already exists"):
        ctrl.add_knob("gain")
    with pytest.raises(ng.KnobError, match="already exists"):
        g["Grade1"].add_knob("multiply")


def test_user_knobs_belong_to_one_instance() -> None:
    g = ng.Graph()
    a, b = g.add("NoOp", "A"), g.add("NoOp", "B")
    a.add_knob("size", "int", 3)
    assert a["size"] == 3 and "size" not in b.knob_names() and "size" not in ng.registry.get("NoOp").knob_names()
    assert type(a).type_name == "NoOp" and isinstance(a, ng.registry.get("NoOp"))


def test_user_knobs_and_extras_survive_a_document_round_trip() -> None:
    g = ng.Graph()
    ctrl = g.add("NoOp", "Controls")
    ctrl.add_knob("mode", "enum", values=("fast", "best"))
    ctrl.add_knob("amount", "float", 0.5)
    ctrl.set(mode="best", amount=ng.Curve.parse("{curve x1 0 x10 1}"))
    ctrl.extras["nuke"] = {"lines": [["xpos", "-537"], ["tile_color", "0xff0000ff"]]}
    back = loads(dumps(g))
    node = back["Controls"]
    assert list(node.user_knobs) == ["mode", "amount"]
    assert node["mode"] == "best" and node.value("amount", 10) == pytest.approx(1.0)
    assert node.extras == ctrl.extras
    assert dumps(back) == dumps(g)


def test_a_document_user_knob_that_is_malformed_names_its_place() -> None:
    doc = '{"nodegraph": 2, "nodes": {"N": {"type": "NoOp", "user_knobs": [{"name": "x", "type": "vector"}]}}}'
    with pytest.raises(ng.DocumentError, match=r"nodes\.N\.user_knobs\[0\]"):
        loads(doc)


def test_an_expression_reads_its_own_keys_as_curve() -> None:
    keys = ng.Curve.parse("{curve L x1 0 x11 10}")
    g = ng.Graph()
    g.add("Grade", "G", multiply=ng.Expression("curve * 2 + 1", keys=keys))
    assert g["G"].value("multiply", 6) == pytest.approx(11.0)
    assert g["G"].value("multiply", 11) == pytest.approx(21.0)
    g.add("Grade", "H", multiply=ng.Expression("curve + 1"))  # no keys: curve reads 0, as in Nuke
    assert g["H"].value("multiply", 6) == pytest.approx(1.0)
    saved = g["G"].knob_values()["multiply"]
    assert saved == {"expression": "curve * 2 + 1", "keys": keys.to_json()}
    assert loads(dumps(g))["G"].value("multiply", 6) == pytest.approx(11.0)
    assert ng.Expression("curve", keys=keys) != ng.Expression("curve")
    with pytest.raises(ng.KnobError, match="Curve"):
        ng.Expression("curve", keys=[1, 2])


def test_disable_on_any_node_passes_the_first_input_through_and_can_be_animated() -> None:
    g = ng.Graph()
    src = g.add("Constant", color=(0.5, 0.5, 0.5, 1.0), format="64 32")
    grade = g.add("Grade", input=src, multiply=2.0)
    assert g.evaluate(grade, 1).pixels[0].max().item() == pytest.approx(1.0)
    grade.set(disable=True)
    assert g.evaluator.hash(grade, 1) == g.evaluator.hash(src, 1)
    assert g.evaluate(grade, 1).pixels[0].max().item() == pytest.approx(0.5)
    grade.set(disable=ng.Expression("frame > 5"))
    assert g.evaluate(grade, 5).pixels[0].max().item() == pytest.approx(1.0)
    assert g.evaluate(grade, 6).pixels[0].max().item() == pytest.approx(0.5)
    assert loads(dumps(g))[grade.name].value("disable", 6) is True
    src.set(disable=True)  # nothing to pass through: a clear error, not black pixels from nowhere
    with pytest.raises(ng.GraphError, match="disabled and has no first input"):
        g.evaluate(src, 1)


def test_a_bare_name_reads_the_enclosing_groups_knob_when_the_node_has_none() -> None:
    """Nuke resolves a knob name in an expression on the node first, then on the groups around it
    (public gizmos rely on it: ``disable {{generate_wrap_only}}`` inside the group holding it)."""
    g = ng.Graph()
    grp = g.add("Group", "Wrap")
    grp.add_knob("amount", "float", 3.0)
    inner = grp.subgraph.add("Group", "Inner")
    blur = inner.subgraph.add("Blur", "B", size=ng.Expression("amount * 2"))
    mul = inner.subgraph.add("Multiply", "M", value=ng.Expression("value_of_nobody"))
    assert blur.value("size", 1) == 6.0  # found two groups up
    inner.add_knob("amount", "float", 0.5)
    assert blur.value("size", 1) == 1.0  # the nearest group wins
    blur.set(size=ng.Expression("size + 1"))  # its own knob first: a cycle, named as one
    issues = [str(i) for i in g.validate()]
    assert any("value_of_nobody" in i for i in issues) and any("cycle" in i for i in issues)
    with pytest.raises(ng.KnobError, match="value_of_nobody"):
        mul.value("value", 1)
