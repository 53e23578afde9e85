"""Versioned JSON graph documents.

::

    {"nodegraph": 2,
     "root": {"first_frame": 1001, "last_frame": 1100, "fps": 24.0},
     "nodes": {"Read1": {"type": "Read", "knobs": {"file": "plate.####.exr"}},
               "Grade1": {"type": "Grade", "knobs": {"white": {"expression": "1 + frame / 100"},
                                                     "mix": {"curve": ...}}}, ...},
     "links": [{"from": "Read1", "to": "Merge1", "input": "B"}],
     "metadata": {}}

Animated knobs are saved in their JSON forms (:mod:`nodegraph.animation`). Version 1 (before
root settings and animated knobs) migrates forward unchanged. Only non-default knob values and
root settings are saved; links are explicit objects; node order is kept.
Structural problems raise :class:`DocumentError` naming the JSON path. Semantic ones (unknown
type, bad knob value) raise too when ``strict``; otherwise they are kept in the graph for
:meth:`Graph.validate` to report, and survive a save unchanged.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any, Callable

import pydantic

from .atomic import atomic_write_text
from .errors import DocumentError, GraphError, KnobError, NodeGraphError
from .frames import frame_problem
from .graph import ROOT_DEFAULTS, Graph
from .node import Node, UnknownNode, registry

FORMAT_KEY = "nodegraph"
_MISSING = object()
CURRENT_VERSION = 2


def _v1_to_v2(data: dict[str, Any]) -> dict[str, Any]:
    """Version 2 adds root settings and animated knob values; a version 1 document has neither."""
    return {**data, FORMAT_KEY: 2}


#: version -> function migrating a document of that version to version + 1.
MIGRATIONS: dict[int, Callable[[dict[str, Any]], dict[str, Any]]] = {1: _v1_to_v2}


def _node_entry(node: Any) -> dict[str, Any]:
    entry: dict[str, Any] = {"type": node.type_name}
    gizmo = getattr(node, "gizmo", None)
    if gizmo is not None:  # a gizmo instance: saved by name and version, its definition lives on the gizmo path
        entry["type"] = gizmo[0]
        entry["gizmo_version"] = gizmo[1]
    elif hasattr(node, "definition"):
        entry.update(node.definition())
    elif node.user_knobs:
        entry["user_knobs"] = [k.as_json() for k in node.user_knobs.values()]
    knobs = node.knob_values(only_changed=True)
    if knobs:
        entry["knobs"] = knobs
    if node.extras:
        entry["extras"] = node.extras
    return entry


def graph_body(graph: Graph) -> dict[str, Any]:
    """The ``nodes`` and ``links`` of a graph (a document's body, or a group's ``graph``)."""
    return {"nodes": {node.name: _node_entry(node) for node in graph},
            "links": [{"from": s, "to": d, "input": i} for s, d, i in graph.links()]}


def graph_to_dict(graph: Graph) -> dict[str, Any]:
    doc: dict[str, Any] = {FORMAT_KEY: CURRENT_VERSION}
    root = {k: v for k, v in graph.root.items() if ROOT_DEFAULTS.get(k, _MISSING) != v}
    if root:
        doc["root"] = root
    doc.update(graph_body(graph))
    if graph.metadata:
        doc["metadata"] = graph.metadata
    return doc


def dumps(graph: Graph, indent: int | None = 2) -> str:
    try:
        return json.dumps(graph_to_dict(graph), indent=indent, allow_nan=False)
    except (TypeError, ValueError) as err:  # metadata holding NaN or objects JSON cannot carry
        raise DocumentError(f"graph cannot be written as JSON: {err}") from None


def save(graph: Graph, path: str | os.PathLike[str]) -> None:
    """Write atomically and durably (:func:`nodegraph.atomic.atomic_write_text`)."""
    atomic_write_text(path, dumps(graph) + "\n", error=NodeGraphError)


def load(path: str | os.PathLike[str], *, strict: bool = True) -> Graph:
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise DocumentError("no such file", path=str(path)) from None
    except (OSError, UnicodeDecodeError) as err:
        raise DocumentError(f"cannot read graph document: {err}", path=str(path)) from None
    return loads(text, strict=strict, source=str(path))


def loads(text: str, *, strict: bool = True, source: str | None = None) -> Graph:
    try:
        data = decode_json(text, source=source)
    except json.JSONDecodeError as err:
        raise DocumentError(f"invalid JSON at line {err.lineno} column {err.colno}: {err.msg}", path=source) from None
    return graph_from_dict(data, strict=strict, source=source)


#: Longest integer a document may hold, in digits: far beyond any knob value (and a float's range),
#: far below Python's 4300-digit limit on parsing one.
MAX_INT_DIGITS = 300


def decode_json(text: str, *, source: str | None = None) -> Any:
    """``json.loads`` under the document rules, for documents and ``--set`` values alike.

    Raises ``json.JSONDecodeError`` for text that is no JSON, and :class:`DocumentError` naming
    the JSON path for JSON a document must not hold: NaN or infinite numbers (they could not be
    saved again), integers of more than :data:`MAX_INT_DIGITS` digits, and an object naming a key
    twice (Python's json would keep the last silently, losing a node).
    """
    try:
        data = json.loads(text, parse_constant=_reject_constant, parse_float=_parse_float, parse_int=_parse_int,
                          object_pairs_hook=_object)
    except _NonFinite as err:
        raise DocumentError(f"{err.args[0]} is not a JSON number (documents must be saveable again)",
                            path=source) from None
    except RecursionError:
        raise DocumentError("JSON nested too deeply", path=source) from None
    _check_values(data, source)
    return data


class _NonFinite(ValueError):
    pass


class _HugeInt:
    """Stands for an integer too long to parse, until the walk names its JSON path."""

    def __init__(self, digits: int) -> None:
        self.digits = digits


class _DuplicateKeys(dict):
    """An object that named some keys more than once (the last value kept), until the walk reports it."""

    duplicates: list[str]


def _object(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    obj = dict(pairs)
    if len(obj) == len(pairs):
        return obj
    seen: set[str] = set()
    dup = _DuplicateKeys(obj)
    dup.duplicates = []
    for key, _ in pairs:
        if key in seen and key not in dup.duplicates:
            dup.duplicates.append(key)
        seen.add(key)
    return dup


def _reject_constant(name: str) -> Any:
    raise _NonFinite(name)


def _parse_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):  # 1e999
        raise _NonFinite(text)
    return value


def _parse_int(text: str) -> int | _HugeInt:
    digits = len(text) - text.startswith("-")
    return _HugeInt(digits) if digits > MAX_INT_DIGITS else int(text)


def _check_values(data: Any, source: str | None) -> None:
    """Reject, naming the JSON path, what a document must not hold (see :func:`decode_json`);
    NaN and infinities also come from Python data, which could not be saved."""
    duplicates: list[tuple[str, str]] = []  # (JSON path, key)
    stack: list[tuple[Any, str]] = [(data, "$")]
    while stack:  # depth first, in document order
        value, jp = stack.pop()
        if isinstance(value, float) and not math.isfinite(value):
            raise DocumentError(f"{value} is not a JSON number", json_path=jp, path=source)
        if isinstance(value, _HugeInt):
            raise DocumentError(f"an integer of {value.digits:,} digits is too long (at most {MAX_INT_DIGITS})",
                                json_path=jp, path=source)
        if isinstance(value, _DuplicateKeys):
            duplicates += [(f"{jp}.{k}", k) for k in value.duplicates]
        if isinstance(value, dict):
            stack.extend(reversed([(v, f"{jp}.{k}") for k, v in value.items()]))
        elif isinstance(value, list):
            stack.extend(reversed([(v, f"{jp}[{i}]") for i, v in enumerate(value)]))
    if duplicates:
        (first, key), *more = duplicates
        also = (f" (also duplicated: {', '.join(jp for jp, _ in more[:20])}{' ...' if len(more) > 20 else ''})"
                if more else "")
        raise DocumentError(f"key {key!r} appears twice in its object; a JSON object names each key once "
                            f"(a JSON reader would keep only the last){also}", json_path=first, path=source)


def _type_name(value: Any) -> str:
    return {dict: "an object", list: "a list", str: "a string", bool: "a boolean", type(None): "null",
            int: "a number", float: "a number"}.get(type(value), type(value).__name__)


def _expect(value: Any, kind: type | tuple[type, ...], json_path: str, what: str, source: str | None) -> Any:
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise DocumentError(f"{what} must be {_type_name(kind() if isinstance(kind, type) else kind[0]())}, "
                            f"got {_type_name(value)}", json_path=json_path, path=source)
    return value


def migrate(data: dict[str, Any], source: str | None = None) -> dict[str, Any]:
    """Bring a document of any older version up to :data:`CURRENT_VERSION`."""
    version = data.get(FORMAT_KEY)
    if isinstance(version, bool) or not isinstance(version, int):
        raise DocumentError(f"missing or invalid format version (expected an integer under {FORMAT_KEY!r})",
                            json_path=f"$.{FORMAT_KEY}", path=source)
    if version > CURRENT_VERSION:
        raise DocumentError(f"document version {version} is newer than this nodegraph supports "
                            f"({CURRENT_VERSION}); upgrade nodegraph", json_path=f"$.{FORMAT_KEY}", path=source)
    while version < CURRENT_VERSION:
        step = MIGRATIONS.get(version)
        if step is None:
            raise DocumentError(f"no migration from document version {version}", json_path=f"$.{FORMAT_KEY}",
                                path=source)
        data = step(dict(data))
        version = data[FORMAT_KEY]
    return data


def load_body(graph: Graph, body: Any, *, strict: bool = True, source: str | None = None,
              json_path: str = "$") -> list[DocumentError]:
    """Add the ``nodes`` and ``links`` of a document body (or a group's ``graph``) to ``graph``;
    returns the semantic problems found (raised by the caller when ``strict``)."""
    _expect(body, dict, json_path, "a graph", source)
    unknown = sorted(set(body) - {"nodes", "links"})
    if unknown:
        raise DocumentError(f"unknown key {unknown[0]!r}", json_path=f"{json_path}.{unknown[0]}", path=source)
    nodes = _expect(body.get("nodes", {}), dict, f"{json_path}.nodes", "nodes", source)
    links = _expect(body.get("links", []), list, f"{json_path}.links", "links", source)
    problems: list[DocumentError] = []
    for name, entry in nodes.items():
        jp = f"{json_path}.nodes.{name}"
        _expect(entry, dict, jp, "a node", source)
        extra = sorted(set(entry) - {"type", "knobs", "user_knobs", "link_knobs", "graph", "gizmo_version",
                                     "extras"})
        if extra:
            raise DocumentError(f"unknown key {extra[0]!r}", json_path=f"{jp}.{extra[0]}", path=source)
        type_name = _expect(entry.get("type"), str, f"{jp}.type", "node type", source)
        knobs = _expect(entry.get("knobs", {}), dict, f"{jp}.knobs", "knobs", source)
        try:
            graph._check_new_name(name)
        except GraphError as err:
            raise DocumentError(err.message, json_path=jp, path=source) from None
        nuke = entry.get("extras", {}).get("nuke") if isinstance(entry.get("extras"), dict) else None
        if isinstance(nuke, dict) and (nuke.get("placeholder") or nuke.get("ui_only") or (
                nuke.get("class") == type_name and type_name not in registry)):
            node = None  # kept from a Nuke script as it was written (see nodegraph.nuke.reader)
        else:
            node = _new_node(name, type_name, entry, jp, strict=strict, source=source, problems=problems)
        if node is None:
            node = UnknownNode(name, type_name, knobs)
            node.extras = _expect(entry.get("extras", {}), dict, f"{jp}.extras", "extras", source)
            graph.add_node(node)
            continue
        node.extras = _expect(entry.get("extras", {}), dict, f"{jp}.extras", "extras", source)
        for knob, value in knobs.items():
            try:
                node.set(**{knob: value})
            except NodeGraphError as err:
                msg = err.message
                if strict:
                    problems.append(DocumentError(msg, json_path=f"{jp}.knobs.{knob}", path=source))
                node.invalid_knobs[knob] = (value, msg)
            except (pydantic.ValidationError, TypeError, ValueError) as err:  # pragma: no cover - defensive
                if strict:
                    problems.append(DocumentError(str(err), json_path=f"{jp}.knobs.{knob}", path=source))
                node.invalid_knobs[knob] = (value, str(err))
        graph.add_node(node)

    for i, link in enumerate(links):
        jp = f"{json_path}.links[{i}]"
        _expect(link, dict, jp, "a link", source)
        extra = sorted(set(link) - {"from", "to", "input"})
        if extra:
            raise DocumentError(f"unknown key {extra[0]!r}", json_path=f"{jp}.{extra[0]}", path=source)
        src = _expect(link.get("from"), str, f"{jp}.from", "link source", source)
        dst = _expect(link.get("to"), str, f"{jp}.to", "link target", source)
        inp = _expect(link.get("input"), str, f"{jp}.input", "link input", source)
        for key, ref in (("from", src), ("to", dst)):
            if ref not in graph:
                raise DocumentError(f"no node named {ref!r}", json_path=f"{jp}.{key}", path=source)
        if inp in graph.inputs_of(dst):
            raise DocumentError(f"input {inp!r} of {dst!r} is linked twice", json_path=jp, path=source)
        try:
            graph.connect(src, dst, inp)
        except GraphError as err:
            raise DocumentError(err.message, json_path=f"{jp}.input", path=source) from None

    return problems


def _new_node(name: str, type_name: str, entry: dict[str, Any], jp: str, *, strict: bool, source: str | None,
              problems: list[DocumentError]) -> Any:
    """A node of ``type_name``: a registered type (a Group with its definition), or a gizmo found on
    the gizmo path; None (after noting the problem) for an unknown type."""
    from .group import Group, apply_definition, find_gizmo, instantiate_gizmo

    if type_name in registry:
        node = registry.get(type_name)(name)
        if isinstance(node, Group):
            problems.extend(apply_definition(node, entry, source=source, json_path=jp, strict=strict))
        elif set(entry) & {"link_knobs", "graph"}:
            raise DocumentError(f"only groups hold a graph or link knobs, not {type_name}", json_path=jp,
                                path=source)
        else:
            apply_user_knobs(node, entry.get("user_knobs", []), source=source, json_path=jp)
        return node
    if find_gizmo(type_name) is not None:
        try:
            node = instantiate_gizmo(type_name, name)
        except DocumentError:
            raise
        except NodeGraphError as err:
            raise DocumentError(str(err), json_path=f"{jp}.type", path=source) from None
        saved = entry.get("gizmo_version")
        if saved is not None and str(saved) != node.gizmo[1]:
            node.saved_gizmo_version = str(saved)
        return node
    if strict:
        problems.append(DocumentError(f"unknown node type {type_name!r} (not a node type, and no gizmo of "
                                      "that name on the gizmo path)", json_path=f"{jp}.type", path=source))
    return None


def apply_user_knobs(node: Node, specs: Any, *, source: str | None, json_path: str) -> None:
    """Add the user knobs of a document entry (``[{"name": ..., "type": ...}, ...]``) to ``node``."""
    _expect(specs, list, f"{json_path}.user_knobs", "user knobs", source)
    for i, spec in enumerate(specs):
        if not isinstance(spec, dict) or "name" not in spec:
            raise DocumentError("a user knob is an object with a name", json_path=f"{json_path}.user_knobs[{i}]",
                                path=source)
        spec = dict(spec)
        try:
            node.add_knob(spec.pop("name"), **spec)
        except (KnobError, TypeError) as err:
            raise DocumentError(str(err), json_path=f"{json_path}.user_knobs[{i}]", path=source) from None


def read_json_text(path: str | os.PathLike[str]) -> Any:
    """A JSON file read under the document rules (for gizmo files)."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as err:
        raise DocumentError(f"cannot read: {err}", path=str(path)) from None
    try:
        return decode_json(text, source=str(path))
    except json.JSONDecodeError as err:
        raise DocumentError(f"invalid JSON at line {err.lineno} column {err.colno}: {err.msg}",
                            path=str(path)) from None


def graph_from_dict(data: Any, *, strict: bool = True, source: str | None = None) -> Graph:
    _expect(data, dict, "$", "document", source)
    _check_values(data, source)
    data = migrate(data, source)
    unknown = sorted(set(data) - {FORMAT_KEY, "root", "nodes", "links", "metadata"})
    if unknown:
        raise DocumentError(f"unknown key {unknown[0]!r}", json_path=f"$.{unknown[0]}", path=source)
    nodes = _expect(data.get("nodes", {}), dict, "$.nodes", "nodes", source)
    links = _expect(data.get("links", []), list, "$.links", "links", source)
    metadata = _expect(data.get("metadata", {}), dict, "$.metadata", "metadata", source)

    root = _expect(data.get("root", {}), dict, "$.root", "root settings", source)

    graph = Graph()
    graph.metadata = dict(metadata)
    for key, value in root.items():
        if key in ("first_frame", "last_frame"):
            _expect(value, int, f"$.root.{key}", key, source)
            if frame_problem(value):
                raise DocumentError(frame_problem(value), json_path=f"$.root.{key}", path=source)
        elif key == "fps":
            if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0:
                raise DocumentError("fps must be a positive number", json_path="$.root.fps", path=source)
        graph.root[key] = value
    problems = load_body(graph, {"nodes": nodes, "links": links}, strict=strict, source=source, json_path="$")
    if problems:
        if len(problems) == 1:
            raise problems[0]
        err = DocumentError("; ".join(str(p) for p in problems), json_path=problems[0].json_path, path=source)
        err.problems = problems  # type: ignore[attr-defined]
        raise err
    return graph
