"""Graph building, editing and validation (nodegraph.graph)."""

from __future__ import annotations

import pytest

import nodegraph as ng
from nodegraph import GraphError, Input, KnobError, Knobs, Node, ValidationError, registry


class GraphTestJoin2(Node):
    """Test-only node with two required inputs and one optional; type name ends in a digit."""

    type_name = "GraphTestJoin2"
    inputs = (Input("A"), Input("B"), Input("mask", required=False))

    class Knobs(Knobs):
        amount: float = 1.0
        """Test knob."""


FMT = "64x32"


def chain():
    g = ng.Graph()
    c = g.add("Constant", format=FMT, color=(1, 1, 1, 1))
    m = g.add("Multiply", input=c, value=2.0)
    return g, c, m


# --- building -----------------------------------------------------------------------------

def test_add_splits_builder_kwargs_into_inputs_and_knobs():
    g = ng.Graph()
    a = g.add("Constant", format=FMT)
    b = g.add("CheckerBoard2", format=FMT)
    j = g.add("GraphTestJoin2", A=a, B=b.name, amount=0.25)
    assert j["amount"] == 0.25
    assert g.inputs_of(j) == {"A": a, "B": b}
    assert g.links() == [(a.name, j.name, "A"), (b.name, j.name, "B")]
    assert g.outputs_of(a) == [(j, "A")]
    # None leaves an input open
    k = g.add("GraphTestJoin2", A=a, B=None)
    assert g.inputs_of(k) == {"A": a}


def test_add_by_class_and_explicit_name():
    g = ng.Graph()
    n = g.add(registry.get("Constant"), "Plate", format=FMT)
    assert n.name == "Plate" and g["Plate"] is n and "Plate" in g and n in g
    m = g.add("Constant", name="Other")
    assert m.name == "Other"
    assert len(g) == 2 and [x.name for x in g] == ["Plate", "Other"]


def test_auto_names_drop_trailing_digits_of_type():
    g = ng.Graph()
    names = [g.add("Multiply").name for _ in range(3)]
    assert names == ["Multiply1", "Multiply2", "Multiply3"]
    assert g.add("GraphTestJoin2").name == "GraphTestJoin1"
    assert g.add("GraphTestJoin2").name == "GraphTestJoin2"
    assert g.add("CheckerBoard2").name == "CheckerBoard1"
    # a freed name is reused, a taken one skipped
    g.remove("Multiply2")
    assert g.add("Multiply").name == "Multiply2"
    assert g.add("Multiply").name == "Multiply4"


@pytest.mark.skipif("Merge2" not in registry, reason="Merge2 not in the node library yet")
def test_auto_name_of_merge2_is_merge1():
    g = ng.Graph()
    assert g.add("Merge2").name == "Merge1"
    assert g.add("Merge2").name == "Merge2"


@pytest.mark.parametrize("bad", ["", "1abc", "a b", "a.b", "a-b"])
def test_invalid_and_duplicate_names(bad):
    g = ng.Graph()
    with pytest.raises(GraphError):
        g.add("Constant", bad)
    g.add("Constant", "Same")
    with pytest.raises(GraphError, match="exists"):
        g.add("Constant", "Same")
    assert len(g) == 1


def test_unknown_type_and_unknown_node():
    g = ng.Graph()
    with pytest.raises(GraphError, match="NoSuchType"):
        g.add("NoSuchType")
    with pytest.raises(GraphError, match="Missing"):
        g.node("Missing")
    other = ng.Graph().add("Constant")
    with pytest.raises(GraphError):
        g.node(other)


def test_connect_replaces_and_disconnect():
    g, c, m = chain()
    c2 = g.add("Constant", format=FMT)
    g.connect(c2, m, "input")
    assert g.inputs_of(m) == {"input": c2}
    assert g.outputs_of(c) == []
    g.disconnect(m, "input")
    assert g.inputs_of(m) == {}
    assert g.links() == []


def test_one_source_feeds_several_inputs_of_one_node():
    g = ng.Graph()
    a = g.add("Constant", format=FMT)
    j = g.add("GraphTestJoin2", A=a, B=a)
    assert g.inputs_of(j) == {"A": a, "B": a}
    g.disconnect(j, "A")
    assert g.inputs_of(j) == {"B": a}


def test_unknown_input_name_is_an_error():
    g, c, m = chain()
    with pytest.raises(GraphError, match="no input 'B'"):
        g.connect(c, m, "B")
    with pytest.raises(GraphError):
        g.connect(c, "NoSuchNode", "input")
    assert g.inputs_of(m) == {"input": c}


def test_remove_drops_links():
    g, c, m = chain()
    d = g.add("Dot", input=m)
    g.remove(m)
    assert m not in g and "Multiply1" not in g and m.graph is None
    assert g.inputs_of(d) == {}
    assert g.links() == []
    with pytest.raises(GraphError):
        g.remove(m)


def test_rename_links_follow():
    g = ng.Graph()
    a = g.add("Constant", format=FMT)
    j = g.add("GraphTestJoin2", A=a, B=a)
    d = g.add("Dot", input=j)
    g.rename(j, "Comp")
    assert j.name == "Comp" and g["Comp"] is j and "GraphTestJoin1" not in g
    assert g.inputs_of("Comp") == {"A": a, "B": a}
    assert g.inputs_of(d) == {"input": j}
    assert sorted(g.links()) == sorted([("Constant1", "Comp", "A"), ("Constant1", "Comp", "B"),
                                        ("Comp", "Dot1", "input")])
    g.rename(a, "Plate")
    assert g.inputs_of("Comp") == {"A": a, "B": a}
    with pytest.raises(GraphError):
        g.rename("Plate", "Dot1")
    with pytest.raises(GraphError):
        g.rename("Plate", "9lives")
    # the saved document follows the rename
    doc = g.to_dict()
    assert {"from": "Plate", "to": "Comp", "input": "A"} in doc["links"]
    assert set(doc["nodes"]) == {"Plate", "Comp", "Dot1"}


def test_upstream_downstream():
    g, c, m = chain()
    d = g.add("Dot", input=m)
    other = g.add("Constant", format=FMT)
    assert {n.name for n in g.upstream(d)} == {c.name, m.name, d.name}
    assert {n.name for n in g.downstream(c)} == {c.name, m.name, d.name}
    assert {n.name for n in g.upstream(other)} == {other.name}


# --- knobs --------------------------------------------------------------------------------------

@pytest.mark.parametrize("knob, value", [("mix", 2.0), ("mix", "lots"), ("value", "x"), ("channels", "")])
def test_invalid_knob_on_construction_names_node_and_knob(knob, value):
    g = ng.Graph()
    with pytest.raises(KnobError) as info:
        g.add("Multiply", "Mul", **{knob: value})
    assert info.value.node == "Mul" and info.value.knob == knob
    assert "Mul" in str(info.value) and knob in str(info.value)
    assert len(g) == 0


@pytest.mark.parametrize("knob, value", [("format", "bogus"), ("channels", "rgba.")])
def test_invalid_knob_from_validator_names_node_and_knob(knob, value):
    g = ng.Graph()
    with pytest.raises(KnobError) as info:
        g.add("Constant", "C", **{knob: value})
    assert (info.value.node, info.value.knob) == ("C", knob)
    c = g.add("Constant", "C")
    with pytest.raises(KnobError) as info:
        c.set(**{knob: value})
    assert (info.value.node, info.value.knob) == ("C", knob)


def test_invalid_knob_on_set_names_node_and_knob_and_keeps_value():
    g, c, m = chain()
    with pytest.raises(KnobError) as info:
        m.set(mix=-0.5)
    assert (info.value.node, info.value.knob) == ("Multiply1", "mix")
    assert m["mix"] == 1.0
    with pytest.raises(KnobError) as info:
        m["mix"] = "high"
    assert (info.value.node, info.value.knob) == ("Multiply1", "mix")
    with pytest.raises(KnobError) as info:
        m.set(nosuch=1)
    assert (info.value.node, info.value.knob) == ("Multiply1", "nosuch")
    assert "mix" in str(info.value)  # lists the knobs that exist
    with pytest.raises(KnobError):
        m["nosuch"]
    m.set(mix=0.5, value=3.0)
    assert (m["mix"], m["value"]) == (0.5, 3.0)


def test_unknown_knob_on_construction():
    with pytest.raises(KnobError) as info:
        ng.Graph().add("Multiply", "M", bogus=1)
    assert info.value.knob == "bogus" and info.value.node == "M"


def test_knob_changes_bump_graph_version():
    g, c, m = chain()
    v = g.version
    m.set(value=5.0)
    assert g.version > v
    v = g.version
    m.knobs.mix = 0.3
    assert g.version > v


# --- validation -----------------------------------------------------------------------------

def test_valid_graph_has_no_issues():
    g, c, m = chain()
    assert g.validate() == []
    g.check()


def test_missing_required_input():
    g = ng.Graph()
    a = g.add("Constant", format=FMT)
    j = g.add("GraphTestJoin2", A=a)
    issues = g.validate()
    assert [(i.kind, i.node, i.input) for i in issues] == [("missing_input", j.name, "B")]


def _three_cycle(g):
    a = g.add("Multiply", "A")
    b = g.add("Multiply", "B", input=a)
    c = g.add("Multiply", "C", input=b)
    g.connect(c, a, "input")
    return a, b, c


def test_cycle_reported_with_path():
    g = ng.Graph()
    _three_cycle(g)
    issues = g.validate()
    assert len(issues) == 1
    issue = issues[0]
    assert issue.kind == "cycle"
    assert issue.cycle == ("A", "B", "C")
    assert "A -> B -> C -> A" in issue.message
    assert issue.as_dict()["cycle"] == ["A", "B", "C"]


def test_self_loop_is_a_cycle():
    g = ng.Graph()
    n = g.add("Multiply", "Loop")
    g.connect(n, n, "input")
    assert [(i.kind, i.cycle) for i in g.validate()] == [("cycle", ("Loop",))]


def test_validate_reports_every_problem_at_once():
    doc = {
        "nodegraph": 1,
        "nodes": {
            "Mystery": {"type": "NoSuchNodeType", "knobs": {"x": 1}},
            "Lonely": {"type": "Multiply"},
            "BadKnob": {"type": "Constant", "knobs": {"format": FMT, "color": "red"}},
            "A": {"type": "Multiply"},
            "B": {"type": "Multiply"},
            "C": {"type": "Multiply"},
        },
        "links": [
            {"from": "BadKnob", "to": "Mystery", "input": "src"},
            {"from": "A", "to": "B", "input": "input"},
            {"from": "B", "to": "C", "input": "input"},
            {"from": "C", "to": "A", "input": "input"},
        ],
    }
    with pytest.raises(ng.DocumentError):
        ng.Graph.from_dict(doc)
    g = ng.Graph.from_dict(doc, strict=False)
    issues = g.validate()
    by_kind = {}
    for issue in issues:
        by_kind.setdefault(issue.kind, []).append(issue)
    assert sorted(by_kind) == ["cycle", "invalid_knob", "missing_input", "unknown_type"]
    assert [i.node for i in by_kind["unknown_type"]] == ["Mystery"]
    assert "NoSuchNodeType" in by_kind["unknown_type"][0].message
    assert [(i.node, i.input) for i in by_kind["missing_input"]] == [("Lonely", "input")]
    assert [(i.node, i.knob) for i in by_kind["invalid_knob"]] == [("BadKnob", "color")]
    assert [i.cycle for i in by_kind["cycle"]] == [("A", "B", "C")]
    assert len(issues) == 4
    # check() raises them all together, and can be narrowed to what a node depends on
    with pytest.raises(ValidationError) as info:
        g.check()
    assert len(info.value.issues) == 4
    assert "BadKnob.color" in str(info.value)
    with pytest.raises(ValidationError) as info:
        g.check(["Lonely"])
    assert [i.kind for i in info.value.issues] == ["missing_input"]


def test_fixing_problems_clears_issues():
    g = ng.Graph.from_dict({"nodegraph": 1, "nodes": {
        "C": {"type": "Constant", "knobs": {"color": [0, 0, 0], "format": FMT}},
        "M": {"type": "Multiply"}}}, strict=False)
    assert {i.kind for i in g.validate()} == {"invalid_knob", "missing_input"}
    g["C"].set(color=(0, 0, 0, 1))
    g.connect("C", "M", "input")
    assert g.validate() == []


def test_to_networkx_is_a_copy_with_attributes():
    g, c, m = chain()
    nxg = g.to_networkx()
    assert nxg.nodes[m.name]["type"] == "Multiply"
    assert nxg.nodes[m.name]["knobs"] == {"value": 2.0}
    nxg.remove_node(c.name)
    assert c in g
