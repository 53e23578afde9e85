"""Conformance of every registered node type, parametrised over the registry at collection time.

Every node type constructs with default knobs, documents itself and each knob, survives a JSON
round trip, and changes its digest when any knob changes. Written generically: node types added
to the library are picked up without editing this file.
"""

from __future__ import annotations

import json
import sys
import typing
from pathlib import Path
from typing import Any

import pytest

import nodegraph as ng
from nodegraph import KnobError, registry

TESTS_DIR = Path(__file__).resolve().parents[1]


def _defined_in_tests(cls: type) -> bool:
    """Node types that test modules define for themselves are not part of the library."""
    module = sys.modules.get(cls.__module__)
    file = getattr(module, "__file__", None)
    return bool(file) and TESTS_DIR in Path(file).resolve().parents


NODE_TYPES = {name: cls for name, cls in registry.types().items() if not _defined_in_tests(cls)}
TYPE_NAMES = sorted(NODE_TYPES)
KNOBS = [(name, knob) for name in TYPE_NAMES for knob in NODE_TYPES[name].knob_names()]

# Plausible values for string knobs: channel selections, formats, files, colourspaces, modes.
STRING_CANDIDATES = [
    "rgb", "alpha", "rgba", "rgba.red", "rgba.alpha", "depth", "all", "none", "HD_720", "square_256",
    "64x32", "x.exr", "x.####.exr", "x.%04d.exr", "x.png", "x.mov", "model.pt", "linear", "sRGB",
    "scene_linear", "Linear Rec.709 (sRGB)", "ACES - ACEScg", "ACEScg", "rec709", "Raw", "data", "over",
    "plus", "A", "B", "1", "x", "other",
]
NUMBER_CANDIDATES = [1, 2, 0, 0.5, 0.25, 0.75, 10, 100, 1001, -1]


def test_registry_is_not_empty():
    assert TYPE_NAMES, "no node types registered"
    assert {"Constant", "Dot"} <= set(TYPE_NAMES)


def _literal_choices(annotation: Any) -> list[Any]:
    """Values of every ``Literal`` inside an annotation (through Optional, Annotated, unions)."""
    out: list[Any] = []
    if typing.get_origin(annotation) is typing.Literal:
        return list(typing.get_args(annotation))
    for arg in typing.get_args(annotation):
        out.extend(_literal_choices(arg))
    return out


def _scalar_alternatives(value: Any) -> list[Any]:
    if isinstance(value, bool):
        return [not value]
    if isinstance(value, int):
        return [value + 1, value - 1, 1, 0]
    if isinstance(value, float):
        return [value + 1.0, value - 1.0, value + 0.5, value - 0.5, value / 2, 0.5, 0.25, 1.0, 0.0]
    if isinstance(value, str):
        return STRING_CANDIDATES
    if value is None:
        return NUMBER_CANDIDATES + STRING_CANDIDATES + [True]
    if isinstance(value, dict):
        return [{"x": 1}, {}]
    return []


def knob_candidates(cls: type[ng.Node], knob: str) -> list[Any]:
    field = cls.Knobs.model_fields[knob]
    default = field.get_default(call_default_factory=True)
    out: list[Any] = [c for c in _literal_choices(field.annotation) if c != default]
    if isinstance(default, (tuple, list)):
        for i, element in enumerate(default):
            for alt in _scalar_alternatives(element):
                changed = list(default)
                changed[i] = alt
                out.append(type(default)(changed))
    else:
        out.extend(_scalar_alternatives(default))
    out.extend(NUMBER_CANDIDATES + [True, False] + STRING_CANDIDATES)
    return out


def different_value(cls: type[ng.Node], knob: str) -> Any:
    """A valid value of ``knob`` different from its default, or fail naming the knob."""
    base = cls("Probe").knob_values()[knob]
    for candidate in knob_candidates(cls, knob):
        node = cls("Probe")
        try:
            node.set(**{knob: candidate})
        except KnobError:
            continue
        if node.knob_values()[knob] != base:
            return candidate
    pytest.fail(f"{cls.type_name}.{knob}: found no valid value different from the default {base!r}; "
                "extend STRING_CANDIDATES/NUMBER_CANDIDATES in this test")


# --- per type -----------------------------------------------------------------------------------

@pytest.mark.parametrize("type_name", TYPE_NAMES)
def test_constructs_with_defaults(type_name):
    cls = NODE_TYPES[type_name]
    assert cls.type_name == type_name
    node = cls("Probe")
    values = node.knob_values()
    assert set(values) == set(cls.knob_names())
    json.dumps(values, allow_nan=False)  # defaults are plain JSON
    assert node.knob_values(only_changed=True) == {}
    assert node.check() == [] or all(isinstance(m, str) for m in node.check())
    g = ng.Graph()
    added = g.add(type_name)
    assert added.type_name == type_name and added.name in g
    assert len({i.name for i in cls.inputs}) == len(cls.inputs)


@pytest.mark.parametrize("type_name", TYPE_NAMES)
def test_has_docstring(type_name):
    cls = NODE_TYPES[type_name]
    doc = cls.__dict__.get("__doc__")
    assert doc and doc.strip(), f"{type_name} ({cls.__module__}.{cls.__qualname__}) has no docstring"


@pytest.mark.parametrize("type_name", TYPE_NAMES)
def test_json_round_trip_defaults(type_name):
    g = ng.Graph()
    node = g.add(type_name, "Probe")
    g2 = ng.Graph.from_json(g.to_json())
    # a Group is specialised per instance (its user knobs and inputs): compare by registered type
    assert isinstance(g2["Probe"], NODE_TYPES[type_name]) and g2["Probe"].type_name == node.type_name
    assert g2["Probe"].knob_values() == node.knob_values()
    assert g2["Probe"].static_digest() == node.static_digest()


@pytest.mark.parametrize("type_name", TYPE_NAMES)
def test_json_round_trip_with_every_knob_changed(type_name):
    cls = NODE_TYPES[type_name]
    g = ng.Graph()
    node = g.add(type_name, "Probe")
    for knob in cls.knob_names():
        node.set(**{knob: different_value(cls, knob)})
    assert node.invalid_knobs == {}
    text = g.to_json()
    g2 = ng.Graph.from_json(text)  # strict: every saved value validates again
    assert g2["Probe"].knob_values() == node.knob_values()
    assert g2["Probe"].static_digest() == node.static_digest()
    assert g2.to_json() == text


# --- per knob -------------------------------------------------------------------------------------

@pytest.mark.parametrize("type_name, knob", KNOBS, ids=[f"{t}.{k}" for t, k in KNOBS])
def test_knob_has_description(type_name, knob):
    field = NODE_TYPES[type_name].Knobs.model_fields[knob]
    assert field.description and field.description.strip(), (
        f"{type_name}.{knob} has no docstring (write one under the field)")


@pytest.mark.parametrize("type_name, knob", KNOBS, ids=[f"{t}.{k}" for t, k in KNOBS])
def test_changing_knob_changes_digest(type_name, knob):
    cls = NODE_TYPES[type_name]
    value = different_value(cls, knob)
    node = cls("Probe")
    before = node.static_digest()
    node.set(**{knob: value})
    assert node.static_digest() != before, f"{type_name}.{knob}={value!r} left the digest unchanged"
