"""Versioned JSON graph documents.

::

    {"nodegraph": 1,
     "nodes": {"Read1": {"type": "Read", "knobs": {"file": "plate.####.exr"}}, ...},
     "links": [{"from": "Read1", "to": "Merge1", "input": "B"}],
     "metadata": {}}

Only non-default knob values are saved; links are explicit objects; node order is kept.
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

from .errors import DocumentError, GraphError, NodeGraphError
from .graph import Graph
from .node import UnknownNode, registry

FORMAT_KEY = "nodegraph"
CURRENT_VERSION = 1

#: version -> function migrating a document of that version to version + 1.
MIGRATIONS: dict[int, Callable[[dict[str, Any]], dict[str, Any]]] = {}


def graph_to_dict(graph: Graph) -> dict[str, Any]:
    nodes = {}
    for node in graph:
        entry: dict[str, Any] = {"type": node.type_name}
        knobs = node.knob_values(only_changed=True)
        if knobs:
            entry["knobs"] = knobs
        nodes[node.name] = entry
    doc: dict[str, Any] = {
        FORMAT_KEY: CURRENT_VERSION,
        "nodes": nodes,
        "links": [{"from": s, "to": d, "input": i} for s, d, i in graph.links()],
    }
    if graph.metadata:
        doc["metadata"] = graph.metadata
    return doc


def dumps(graph: Graph, indent: int | None = 2) -> str:
    try:
        return json.dumps(graph_to_dict(graph), indent=indent, allow_nan=False)
    except (TypeError, ValueError) as err:  # metadata holding NaN or objects JSON cannot carry
        raise DocumentError(f"graph cannot be written as JSON: {err}") from None


def save(graph: Graph, path: str | os.PathLike[str]) -> None:
    """Write atomically: a temporary file in the same folder, then a rename."""
    path = Path(path)
    text = dumps(graph)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        tmp.write_text(text + "\n", encoding="utf-8")
        os.replace(tmp, path)
    except OSError as err:
        raise NodeGraphError(f"cannot write graph document: {err.strerror or err}", path=str(path)) from None
    finally:
        if tmp.exists():
            tmp.unlink()


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
        data = json.loads(text, parse_constant=_reject_constant, parse_float=_parse_float)
    except _NonFinite as err:
        raise DocumentError(f"{err.args[0]} is not a JSON number (documents must be saveable again)",
                            path=source) from None
    except json.JSONDecodeError as err:
        raise DocumentError(f"invalid JSON at line {err.lineno} column {err.colno}: {err.msg}", path=source) from None
    except RecursionError:
        raise DocumentError("JSON nested too deeply", path=source) from None
    return graph_from_dict(data, strict=strict, source=source)


class _NonFinite(ValueError):
    pass


def _reject_constant(name: str) -> Any:
    raise _NonFinite(name)


def _parse_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):  # 1e999
        raise _NonFinite(text)
    return value


def _check_finite(data: Any, source: str | None) -> None:
    """NaN and infinities load from Python data but could not be saved: reject them up front."""
    stack: list[tuple[Any, str]] = [(data, "$")]
    while stack:
        value, jp = stack.pop()
        if isinstance(value, float) and not math.isfinite(value):
            raise DocumentError(f"{value} is not a JSON number", json_path=jp, path=source)
        if isinstance(value, dict):
            stack.extend((v, f"{jp}.{k}") for k, v in value.items())
        elif isinstance(value, list):
            stack.extend((v, f"{jp}[{i}]") for i, v in enumerate(value))


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


def graph_from_dict(data: Any, *, strict: bool = True, source: str | None = None) -> Graph:
    _expect(data, dict, "$", "document", source)
    _check_finite(data, source)
    data = migrate(data, source)
    unknown = sorted(set(data) - {FORMAT_KEY, "nodes", "links", "metadata"})
    if unknown:
        raise DocumentError(f"unknown key {unknown[0]!r}", json_path=f"$.{unknown[0]}", path=source)
    nodes = _expect(data.get("nodes", {}), dict, "$.nodes", "nodes", source)
    links = _expect(data.get("links", []), list, "$.links", "links", source)
    metadata = _expect(data.get("metadata", {}), dict, "$.metadata", "metadata", source)

    graph = Graph()
    graph.metadata = dict(metadata)
    problems: list[DocumentError] = []
    for name, entry in nodes.items():
        jp = f"$.nodes.{name}"
        _expect(entry, dict, jp, "a node", source)
        extra = sorted(set(entry) - {"type", "knobs"})
        if extra:
            raise DocumentError(f"unknown key {extra[0]!r}", json_path=f"{jp}.{extra[0]}", path=source)
        type_name = _expect(entry.get("type"), str, f"{jp}.type", "node type", source)
        knobs = _expect(entry.get("knobs", {}), dict, f"{jp}.knobs", "knobs", source)
        try:
            graph._check_new_name(name)
        except GraphError as err:
            raise DocumentError(err.message, json_path=jp, path=source) from None
        if type_name not in registry:
            if strict:
                problems.append(DocumentError(f"unknown node type {type_name!r}", json_path=f"{jp}.type", path=source))
            graph.add_node(UnknownNode(name, type_name, knobs))
            continue
        cls = registry.get(type_name)
        node = cls(name)
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
        jp = f"$.links[{i}]"
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

    if problems:
        if len(problems) == 1:
            raise problems[0]
        err = DocumentError("; ".join(str(p) for p in problems), json_path=problems[0].json_path, path=source)
        err.problems = problems  # type: ignore[attr-defined]
        raise err
    return graph
