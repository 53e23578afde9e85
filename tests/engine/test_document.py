"""JSON graph documents (nodegraph.document): round trips, errors with JSON paths, fuzzing."""

from __future__ import annotations

import copy
import json
import os

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import nodegraph as ng
from nodegraph import DocumentError, NodeGraphError
from nodegraph.document import CURRENT_VERSION

FMT = "64x32"


def sample_graph() -> ng.Graph:
    g = ng.Graph()
    c = g.add("Constant", "Bg", format=FMT, color=(0.25, 0.5, 0.75, 1.0))
    r = g.add("Ramp", format=FMT, type="smooth")
    m = g.add("Multiply", input=c, value=2.0, channels="rgb")
    d = g.add("Dot", input=m)
    s = g.add("Switch", which=1)
    g.connect(d, s, "0")
    g.connect(r, s, "1")
    g.add("Add", "Zeta", input=s, mix=0.5)
    g.metadata = {"shot": "sh010", "fps": 24}
    return g


# --- round trips --------------------------------------------------------------------------

def test_round_trip_equal(tmp_path):
    g = sample_graph()
    doc = g.to_dict()
    assert ng.Graph.from_dict(doc).to_dict() == doc
    assert ng.Graph.from_json(g.to_json()).to_dict() == doc
    path = tmp_path / "comp.json"
    g.save(path)
    assert ng.Graph.load(path).to_dict() == doc
    assert not [p for p in tmp_path.iterdir() if p.name != "comp.json"]  # no temp file left behind


def test_round_trip_keeps_knob_values_and_links():
    g2 = ng.Graph.from_json(sample_graph().to_json())
    assert g2["Bg"]["color"] == (0.25, 0.5, 0.75, 1.0)
    assert g2["Ramp1"]["type"] == "smooth"
    assert g2["Multiply1"]["channels"] == "rgb"
    assert g2["Switch1"]["which"] == 1
    assert g2.inputs_of("Switch1") == {"0": g2["Dot1"], "1": g2["Ramp1"]}
    assert g2.metadata == {"shot": "sh010", "fps": 24}
    assert g2.evaluator.hash("Zeta") == sample_graph().evaluator.hash("Zeta")


def test_only_non_default_knobs_saved():
    doc = sample_graph().to_dict()
    assert doc["nodegraph"] == CURRENT_VERSION
    assert doc["nodes"]["Multiply1"] == {"type": "Multiply", "knobs": {"channels": "rgb", "value": 2.0}}
    assert doc["nodes"]["Dot1"] == {"type": "Dot"}  # no knobs key at all
    assert doc["nodes"]["Zeta"]["knobs"] == {"mix": 0.5}
    assert doc["nodes"]["Bg"]["knobs"] == {"format": FMT, "color": [0.25, 0.5, 0.75, 1.0]}
    g = ng.Graph()
    g.add("Multiply", value=1.0, mix=1.0)  # explicitly set to the defaults
    assert g.to_dict()["nodes"]["Multiply1"] == {"type": "Multiply"}


def test_links_are_explicit_objects():
    links = sample_graph().to_dict()["links"]
    assert all(set(link) == {"from", "to", "input"} for link in links)
    assert {"from": "Dot1", "to": "Switch1", "input": "0"} in links
    assert {"from": "Ramp1", "to": "Switch1", "input": "1"} in links
    assert {"from": "Bg", "to": "Multiply1", "input": "input"} in links
    assert len(links) == 5


def test_node_order_kept():
    g = ng.Graph()
    for name in ["Zulu", "Alpha", "Mike", "Bravo"]:
        g.add("Constant", name)
    doc = g.to_dict()
    assert list(doc["nodes"]) == ["Zulu", "Alpha", "Mike", "Bravo"]
    text = g.to_json()
    assert list(json.loads(text)["nodes"]) == ["Zulu", "Alpha", "Mike", "Bravo"]
    assert [n.name for n in ng.Graph.from_json(text)] == ["Zulu", "Alpha", "Mike", "Bravo"]


def test_missing_optional_sections_default():
    g = ng.Graph.from_dict({"nodegraph": 1})
    assert len(g) == 0 and g.links() == [] and g.metadata == {}


# --- malformed documents ------------------------------------------------------------------------

def _valid():
    return copy.deepcopy(sample_graph().to_dict())


def _mut(fn):
    doc = _valid()
    fn(doc)
    return doc


@pytest.mark.parametrize("doc, json_path", [
    (_mut(lambda d: d["nodes"]["Bg"].__setitem__("type", 3)), "$.nodes.Bg.type"),
    (_mut(lambda d: d["nodes"]["Bg"].pop("type")), "$.nodes.Bg.type"),
    (_mut(lambda d: d["nodes"]["Bg"].__setitem__("type", "NoSuchNodeType")), "$.nodes.Bg.type"),
    (_mut(lambda d: d["links"][0].__setitem__("from", "Nobody")), "$.links[0].from"),
    (_mut(lambda d: d["links"][0].__setitem__("from", 7)), "$.links[0].from"),
    (_mut(lambda d: d["links"][1].__setitem__("to", "Nobody")), "$.links[1].to"),
    (_mut(lambda d: d["links"][0].__setitem__("input", "nosuch")), "$.links[0].input"),
    (_mut(lambda d: d["links"][0].__setitem__("extra", 1)), "$.links[0].extra"),
    (_mut(lambda d: d["links"].__setitem__(0, ["Bg", "Multiply1"])), "$.links[0]"),
    (_mut(lambda d: d["links"].append(dict(d["links"][0]))), "$.links[5]"),
    (_mut(lambda d: d["nodes"]["Zeta"]["knobs"].__setitem__("mix", 2.0)), "$.nodes.Zeta.knobs.mix"),
    (_mut(lambda d: d["nodes"]["Zeta"]["knobs"].__setitem__("mix", "half")), "$.nodes.Zeta.knobs.mix"),
    (_mut(lambda d: d["nodes"]["Zeta"]["knobs"].__setitem__("nosuch", 1)), "$.nodes.Zeta.knobs.nosuch"),
    (_mut(lambda d: d["nodes"]["Bg"]["knobs"].__setitem__("format", "bogus")), "$.nodes.Bg.knobs.format"),
    (_mut(lambda d: d["nodes"]["Bg"].__setitem__("knobs", [1])), "$.nodes.Bg.knobs"),
    (_mut(lambda d: d["nodes"]["Bg"].__setitem__("inputs", {})), "$.nodes.Bg.inputs"),
    (_mut(lambda d: d["nodes"].__setitem__("Bg", "Constant")), "$.nodes.Bg"),
    (_mut(lambda d: d["nodes"].__setitem__("9bad", {"type": "Dot"})), "$.nodes.9bad"),
    (_mut(lambda d: d.__setitem__("nodes", [])), "$.nodes"),
    (_mut(lambda d: d.__setitem__("links", {})), "$.links"),
    (_mut(lambda d: d.__setitem__("metadata", 3)), "$.metadata"),
    (_mut(lambda d: d.__setitem__("extra", 3)), "$.extra"),
    (_mut(lambda d: d.__setitem__("nodegraph", "1")), "$.nodegraph"),
    (_mut(lambda d: d.__setitem__("nodegraph", True)), "$.nodegraph"),
    (_mut(lambda d: d.pop("nodegraph")), "$.nodegraph"),
    (_mut(lambda d: d.__setitem__("nodegraph", 0)), "$.nodegraph"),
    ([], "$"),
    ("nodegraph", "$"),
])
def test_malformed_document_names_json_path(doc, json_path):
    with pytest.raises(DocumentError) as info:
        ng.Graph.from_dict(doc)
    assert info.value.json_path == json_path
    assert str(info.value).startswith(json_path + ":")


def test_newer_version_says_upgrade():
    with pytest.raises(DocumentError, match="newer") as info:
        ng.Graph.from_dict({"nodegraph": CURRENT_VERSION + 1, "nodes": {}})
    assert info.value.json_path == "$.nodegraph"


def test_several_problems_reported_together():
    doc = _valid()
    doc["nodes"]["Bg"]["type"] = "NoSuchNodeType"
    doc["nodes"]["Zeta"]["knobs"]["mix"] = 9
    with pytest.raises(DocumentError) as info:
        ng.Graph.from_dict(doc)
    paths = [p.json_path for p in info.value.problems]
    assert paths == ["$.nodes.Bg.type", "$.nodes.Zeta.knobs.mix"]


def test_invalid_json_text_and_missing_file(tmp_path):
    with pytest.raises(DocumentError, match="line 1"):
        ng.Graph.from_json('{"nodegraph": 1,')
    with pytest.raises(DocumentError, match="nested"):
        ng.Graph.from_json("[" * 100000)
    with pytest.raises(DocumentError) as info:
        ng.Graph.load(tmp_path / "missing.json")
    assert info.value.path.endswith("missing.json")
    bad = tmp_path / "bad.json"
    bad.write_bytes(b"\xff\xfe\x00garbage")
    with pytest.raises(DocumentError):
        ng.Graph.load(bad)


def test_migrations_run_in_order(monkeypatch):
    from nodegraph import document

    def v0_to_v1(doc):
        doc = dict(doc)
        doc["nodegraph"] = 1
        doc["nodes"] = {name: {"type": t} for name, t in doc.pop("old_nodes").items()}
        return doc

    monkeypatch.setitem(document.MIGRATIONS, 0, v0_to_v1)
    g = ng.Graph.from_dict({"nodegraph": 0, "old_nodes": {"D": "Dot"}})
    assert g["D"].type_name == "Dot"


# --- lenient loading keeps everything --------------------------------------------------------

def test_lenient_keeps_unknown_types_and_invalid_knobs_unchanged():
    doc = _valid()
    doc["nodes"]["Mystery"] = {"type": "FancyPluginNode", "knobs": {"strength": [1, {"a": None}], "mode": "x"}}
    doc["links"].append({"from": "Bg", "to": "Mystery", "input": "plate"})
    doc["nodes"]["Zeta"]["knobs"]["mix"] = 7.5
    doc["nodes"]["Zeta"]["knobs"]["nosuch"] = "kept"
    doc["nodes"]["Bg"]["knobs"]["format"] = "bogus"
    with pytest.raises(DocumentError):
        ng.Graph.from_dict(doc)
    g = ng.Graph.from_dict(copy.deepcopy(doc), strict=False)
    assert g.to_dict() == doc
    assert json.loads(g.to_json()) == doc
    assert ng.Graph.from_json(g.to_json(), strict=False).to_dict() == doc
    assert g["Zeta"].invalid_knobs["mix"][0] == 7.5
    assert {(i.kind, i.node, i.knob) for i in g.validate()} == {
        ("unknown_type", "Mystery", None), ("invalid_knob", "Zeta", "mix"),
        ("invalid_knob", "Zeta", "nosuch"), ("invalid_knob", "Bg", "format")}
    # fixing a knob removes it from the invalid set; the fixed value is saved instead
    g["Zeta"].set(mix=0.25)
    assert g.to_dict()["nodes"]["Zeta"]["knobs"] == {"mix": 0.25, "nosuch": "kept"}


def test_unknown_node_cannot_evaluate():
    g = ng.Graph.from_dict({"nodegraph": 1, "nodes": {"X": {"type": "FancyPluginNode"}}}, strict=False)
    with pytest.raises(NodeGraphError, match="FancyPluginNode"):
        g.evaluate("X")


# --- fuzzing -----------------------------------------------------------------------------------

json_scalars = st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8)
json_values = st.recursive(
    json_scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=20,
)
interesting_keys = st.sampled_from(
    ["nodegraph", "nodes", "links", "metadata", "type", "knobs", "from", "to", "input", "mix", "value",
     "format", "channels", "color", "which", "A", "B", "0", "1", "Bg", "Dot1", "Zeta", "Multiply1", ""])
interesting_values = st.sampled_from(
    [0, 1, 2, -1, True, None, "", "Dot", "Multiply", "Constant", "Switch", "NoSuch", "Bg", "Zeta", "input",
     "0", "rgba", "rgba.", "HD_720", "64x32", [], {}, [1, 2, 3, 4], {"type": "Dot"}, 1e308, 10**30])


def _paths(value, prefix=()):
    yield prefix
    if isinstance(value, dict):
        for k, v in value.items():
            yield from _paths(v, prefix + (k,))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            yield from _paths(v, prefix + (i,))


@st.composite
def mutated_documents(draw):
    doc = _valid()
    for _ in range(draw(st.integers(1, 3))):
        if draw(st.booleans()) and isinstance(doc, dict) and isinstance(doc.get("nodes"), dict) and doc["nodes"]:
            # a lenient load keeps most knob mutations: exercise the save-again path often
            entry = doc["nodes"][draw(st.sampled_from(sorted(doc["nodes"])))]
            if isinstance(entry, dict) and isinstance(entry.setdefault("knobs", {}), dict):
                entry["knobs"][draw(interesting_keys)] = copy.deepcopy(draw(interesting_values | json_values))
                continue
        paths = list(_paths(doc))
        path = draw(st.sampled_from(paths))
        op = draw(st.sampled_from(["replace", "delete", "add"]))
        new = copy.deepcopy(draw(interesting_values | json_values))  # sampled [] and {} are shared
        if not path:
            if op == "replace":
                doc = new
            continue
        parent = doc
        for p in path[:-1]:
            parent = parent[p]
        last = path[-1]
        if op == "replace":
            parent[last] = new
        elif op == "delete":
            del parent[last]
        elif isinstance(parent, dict):
            parent[draw(interesting_keys | st.text(max_size=6))] = new
        else:
            parent.insert(draw(st.integers(0, len(parent))), new)
    return doc


def _load_only_raises_family(doc):
    results = []
    for strict in (True, False):
        try:
            results.append(ng.Graph.from_dict(copy.deepcopy(doc), strict=strict))
        except NodeGraphError:
            pass
    return results


def _assert_lenient_round_trip(graphs):
    for g in graphs:
        doc = g.to_dict()
        again = ng.Graph.from_json(g.to_json(), strict=False)
        assert again.to_dict() == doc
        g.validate()  # never raises, whatever was loaded


# NODEGRAPH_FUZZ_EXAMPLES=5000 for a longer hunt; the default keeps the suite fast.
FUZZ = settings(max_examples=int(os.environ.get("NODEGRAPH_FUZZ_EXAMPLES", "150")), deadline=None,
                suppress_health_check=[HealthCheck.too_slow])


@FUZZ
@given(json_values)
def test_arbitrary_json_only_raises_nodegraph_errors(value):
    _assert_lenient_round_trip(_load_only_raises_family(value))
    try:
        ng.Graph.from_json(json.dumps(value))
    except NodeGraphError:
        pass


@FUZZ
@given(st.dictionaries(interesting_keys, interesting_values | json_values, max_size=5))
def test_arbitrary_top_level_objects_only_raise_nodegraph_errors(value):
    value = copy.deepcopy(value)
    value.setdefault("nodegraph", 1)
    _assert_lenient_round_trip(_load_only_raises_family(value))


@FUZZ
@given(mutated_documents())
def test_mutated_documents_only_raise_nodegraph_errors(doc):
    _assert_lenient_round_trip(_load_only_raises_family(doc))
    for strict in (True, False):
        try:
            ng.Graph.from_json(json.dumps(doc), strict=strict)
        except NodeGraphError:
            pass


@FUZZ
@given(st.text(max_size=200) | mutated_documents().map(json.dumps).flatmap(
    lambda s: st.integers(0, max(0, len(s) - 1)).map(lambda i: s[:i] + s[i + 1:])))
def test_arbitrary_text_only_raises_nodegraph_errors(text):
    for strict in (True, False):
        try:
            ng.Graph.from_json(text, strict=strict)
        except NodeGraphError:
            pass


@pytest.mark.parametrize("text", ["NaN", '{"nodegraph": NaN}', '{"nodegraph": 1, "metadata": {"x": Infinity}}',
                                  '{"nodegraph": 1, "metadata": {"x": [1e999]}}',
                                  '{"nodegraph": 1, "nodes": {"M": {"type": "Multiply", "knobs": {"value": NaN}}}}'])
def test_non_finite_numbers_are_not_json(text):
    # Python's json accepts NaN/Infinity, but such a graph could not be saved again
    for strict in (True, False):
        try:
            g = ng.Graph.from_json(text, strict=strict)
        except NodeGraphError:
            continue
        ng.Graph.from_json(g.to_json(), strict=False)


def test_non_finite_python_values_rejected_with_path():
    doc = _valid()
    doc["nodes"]["Zeta"]["knobs"]["value"] = float("nan")
    for strict in (True, False):
        with pytest.raises(DocumentError) as info:
            ng.Graph.from_dict(copy.deepcopy(doc), strict=strict)
        assert info.value.json_path == "$.nodes.Zeta.knobs.value"


def test_non_finite_knob_values_rejected_so_graphs_always_save():
    g = ng.Graph()
    with pytest.raises(ng.KnobError):
        g.add("Multiply", value=float("nan"))
    m = g.add("Multiply")
    with pytest.raises(ng.KnobError):
        m.set(value=float("inf"))
    g.metadata["bad"] = float("nan")
    with pytest.raises(DocumentError):
        g.to_json()


@pytest.mark.parametrize("text,json_path,key", [
    ('{"nodegraph": 1, "nodes": {"R": {"type": "Read"}, "R": {"type": "Write"}}}', "$.nodes.R", "R"),
    ('{"nodegraph": 1, "nodes": {"R": {"type": "Read", "knobs": {"file": "a.exr", "file": "b.exr"}}}}',
     "$.nodes.R.knobs.file", "file"),
    ('{"nodegraph": 1, "nodegraph": 1, "nodes": {}}', "$.nodegraph", "nodegraph"),
    ('{"nodegraph": 1, "nodes": {}, "links": [{"from": "a", "from": "b"}]}', "$.links[0].from", "from"),
    ('{"nodegraph": 1, "metadata": {"a.b": 1, "a.b": 2}}', "$.metadata.a.b", "a.b"),
])
def test_duplicate_keys_are_rejected_with_their_path(text, json_path, key):
    with pytest.raises(DocumentError) as info:
        ng.Graph.from_json(text)
    assert info.value.json_path == json_path
    assert f"key {key!r} appears twice" in str(info.value)


def test_every_duplicate_is_named(tmp_path):
    text = ('{"nodegraph": 1, "nodes": {"A": {"type": "Dot"}, "A": {"type": "Dot"}, '
            '"B": {"type": "Dot", "knobs": {}, "knobs": {}}}}')
    path = tmp_path / "dup.json"
    path.write_text(text)
    with pytest.raises(DocumentError, match=r"\$\.nodes\.A: key 'A' appears twice.*also duplicated: "
                                            r"\$\.nodes\.B\.knobs") as info:
        ng.Graph.load(path, strict=False)  # structural: lenient loading refuses it too
    assert info.value.path == str(path)


def test_huge_integers_are_a_document_error_naming_the_path():
    from nodegraph.document import MAX_INT_DIGITS

    for digits in (MAX_INT_DIGITS + 1, 5000, 100_000):
        text = '{"nodegraph": 1, "nodes": {"R": {"type": "Read", "knobs": {"first": -' + "9" * digits + '}}}}'
        with pytest.raises(DocumentError, match=f"integer of {digits:,} digits is too long") as info:
            ng.Graph.from_json(text)
        assert info.value.json_path == "$.nodes.R.knobs.first"
    ok = '{"nodegraph": 1, "metadata": {"n": ' + "9" * MAX_INT_DIGITS + '}}'
    assert ng.Graph.from_json(ok).metadata["n"] == int("9" * MAX_INT_DIGITS)


def test_save_is_atomic_through_the_engine_helper(tmp_path):
    """save() publishes through nodegraph.atomic: a killed writer's stale temp of the same document
    is cleaned up, nothing else is left, and a missing folder is a NodeGraphError naming the file."""
    import subprocess
    import sys

    from nodegraph import atomic

    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    stale = tmp_path / f".comp.json.tmp-{atomic._HOST}-{proc.pid}-0123abcd.json"
    stale.write_text("{partial")
    sample_graph().save(tmp_path / "comp.json")
    assert sorted(os.listdir(tmp_path)) == ["comp.json"]
    assert ng.Graph.load(tmp_path / "comp.json").to_dict() == sample_graph().to_dict()
    with pytest.raises(NodeGraphError, match="does not exist") as info:
        sample_graph().save(tmp_path / "nope" / "comp.json")
    assert info.value.path == str(tmp_path / "nope" / "comp.json")
