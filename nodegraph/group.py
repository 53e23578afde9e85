"""Groups and gizmos: nodes that hold a subgraph.

A ``Group`` holds a :class:`~nodegraph.graph.Graph` (``group.subgraph``) with ``Input`` nodes,
ordered by their ``number`` knob as in Nuke, and one ``Output``. The group's inputs are named after
its Input nodes (``Input1``, ``plate``, ...). Evaluating a group evaluates its Output: Group, Output
and Input are pass-throughs, so the inner nodes are hashed, cached and computed like any other
(paths name them: ``Group1.Blur2``).

User knobs (Nuke's ``addUserKnob``) are added per group with :meth:`Node.add_knob`; inner knobs
read them through expressions (``parent.size``). A link knob (:meth:`Group.add_link`) exposes an
inner knob on the group: reading or setting ``group["size"]`` reads or sets ``Blur1.size``.

Gizmos are group definitions saved once (``nodegraph gizmo`` JSON files, see
:func:`save_gizmo`) and used by their name from any graph; they are found on a search path (the
``NODEGRAPH_GIZMO_PATH`` environment variable, then :data:`gizmo_path`). A gizmo instance is saved
in documents by name and version only, like Nuke saves a gizmo by class.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pydantic

from .atomic import atomic_write_text
from .errors import DocumentError, GraphError, KnobError, NodeGraphError
from .node import Input, Knobs, Node, registry

if TYPE_CHECKING:  # pragma: no cover
    from .evaluator import Context
    from .image import Image

#: Folders searched for gizmo files (``<Name>.gizmo.json``) after ``NODEGRAPH_GIZMO_PATH``.
gizmo_path: list[str] = []
GIZMO_FORMAT_KEY = "nodegraph_gizmo"
GIZMO_VERSION = 1

#: The hidden link from a group to its Output node (evaluation only; never saved or listed).
OUTPUT_LINK = "__output__"
#: The hidden link from an Input node to what feeds the group's matching input.
INPUT_LINK = "__input__"


class GroupInput(Node):
    """An input of the enclosing group; the group's inputs are ordered by ``number`` (as in Nuke)."""

    type_name = "Input"
    category = "Other"

    class Knobs(Knobs):
        number: int = pydantic.Field(default=0, ge=0, le=1000)
        """Position of this input among the group's inputs (0 first)."""

    def passthrough(self, ctx: "Context") -> str | None:
        return INPUT_LINK if INPUT_LINK in ctx.connected else None

    def compute(self, ctx: "Context") -> "Image":
        owner = self.graph.owner if self.graph is not None else None
        where = f"input {self.name!r} of group {owner.path!r}" if owner is not None else "an Input outside a group"
        raise GraphError(f"{where} is not connected", node=self.path)

    def frame_range(self, ranges: dict[str, tuple[int, int] | None]) -> tuple[int, int] | None:
        return ranges.get(INPUT_LINK)


class GroupOutput(Node):
    """The output of the enclosing group: what the group gives."""

    type_name = "Output"
    category = "Other"
    inputs = (Input("input", doc="What the group outputs."),)

    def passthrough(self, ctx: "Context") -> str | None:
        return "input"


class Group(Node):
    """A subgraph as one node: Input nodes feed it, its Output node is what it gives.

    Add nodes with ``group.subgraph.add(...)``; user knobs with :meth:`add_knob` (inner knobs read
    them as ``parent.NAME``), link knobs with :meth:`add_link`."""

    category = "Other"

    class Knobs(Knobs):
        label: str = ""
        """Free text shown with the group (does not affect pixels)."""

    def __init__(self, name: str, **knobs: Any) -> None:
        from .graph import Graph

        # each group gets its own class, so its user knobs and inputs are class-level as for any node
        self._own_class()
        type(self).inputs = ()
        self.subgraph = Graph()
        self.subgraph.owner = self
        self.link_knobs: dict[str, str] = {}
        self.gizmo: tuple[str, str] | None = None  # (name, version) of the gizmo definition it came from
        super().__init__(name, **knobs)

    # --- user and link knobs -------------------------------------------------------------------
    def add_link(self, name: str, target: str) -> "Group":
        """Expose the inner knob ``target`` (``"Blur1.size"``) on the group as ``name``."""
        node_path, _, knob = target.rpartition(".")
        if not node_path or not knob:
            raise KnobError(f"link target {target!r} must be NODE.KNOB", node=self.path, knob=name)
        if self.has_knob(name):
            raise KnobError("a knob with this name already exists", node=self.path, knob=name)
        self.link_knobs[name] = target
        self._knobs_changed()
        return self

    def _link_target(self, name: str) -> tuple[Node, str]:
        node_path, _, knob = self.link_knobs[name].rpartition(".")
        try:
            inner = self.subgraph.node(node_path)
        except GraphError:
            raise KnobError(f"link knob points at {self.link_knobs[name]!r}, which does not exist",
                            node=self.path, knob=name) from None
        if knob not in inner.knob_names():
            raise KnobError(f"link knob points at {self.link_knobs[name]!r}, which does not exist",
                            node=self.path, knob=name)
        return inner, knob

    def set(self, **values: Any) -> "Group":
        links = {k: values.pop(k) for k in list(values) if k in self.link_knobs}
        for name, value in links.items():
            inner, knob = self._link_target(name)
            inner.set(**{knob: value})
        super().set(**values)
        return self

    def has_knob(self, knob: str) -> bool:
        return knob in self.link_knobs or super().has_knob(knob)

    def value(self, knob: str, frame: float = 1) -> Any:
        if knob in self.link_knobs:
            inner, inner_knob = self._link_target(knob)
            return inner.value(inner_knob, frame)
        return super().value(knob, frame)

    def __getitem__(self, knob: str) -> Any:
        if knob in self.link_knobs:
            inner, inner_knob = self._link_target(knob)
            return inner[inner_knob]
        return super().__getitem__(knob)

    # --- structure -------------------------------------------------------------------------------
    def _subgraph_changed(self, node: Node | None = None) -> None:
        """Inner nodes changed: refresh the group's inputs (named after its Input nodes). ``node``:
        the node that changed (None: the subgraph's structure), only an Input can change them."""
        self._static_digest = None
        if node is not None and not isinstance(node, GroupInput):
            return
        found = sorted((n for n in self.subgraph if isinstance(n, GroupInput)),
                       key=lambda n: (n.knobs.number, n.name))
        specs = tuple(Input(n.name, required=False, doc=f"group input {n.knobs.number}") for n in found)
        if specs != type(self).inputs:
            type(self).inputs = specs
        self._static_digest = None

    def output_node(self) -> Node | None:
        outs = [n for n in self.subgraph if isinstance(n, GroupOutput)]
        return outs[0] if len(outs) == 1 else None

    def passthrough(self, ctx: "Context") -> str | None:
        if OUTPUT_LINK not in ctx.connected:
            outs = [n for n in self.subgraph if isinstance(n, GroupOutput)]
            raise GraphError("group has no Output node" if not outs else
                             f"group has {len(outs)} Output nodes; it needs exactly one", node=self.path)
        return OUTPUT_LINK

    def frame_range(self, ranges: dict[str, tuple[int, int] | None]) -> tuple[int, int] | None:
        return ranges.get(OUTPUT_LINK)

    def check(self) -> list[str]:
        problems = []
        outs = [n for n in self.subgraph if isinstance(n, GroupOutput)]
        if len(outs) != 1:
            problems.append("group has no Output node" if not outs else f"group has {len(outs)} Output nodes")
        saved = getattr(self, "saved_gizmo_version", None)
        if self.gizmo is not None and saved is not None and saved != self.gizmo[1]:
            problems.append(f"saved with gizmo {self.gizmo[0]} version {saved}, the gizmo path has version "
                            f"{self.gizmo[1]}")
        return problems

    # --- definitions (documents and gizmos) --------------------------------------------------------
    def definition(self) -> dict[str, Any]:
        """User knobs, link knobs and the subgraph as JSON data (what a gizmo file holds)."""
        from .document import graph_body

        out: dict[str, Any] = {}
        if self.user_knobs:
            out["user_knobs"] = [k.as_json() for k in self.user_knobs.values()]
        if self.link_knobs:
            out["link_knobs"] = dict(self.link_knobs)
        out["graph"] = graph_body(self.subgraph)
        return out


# --- gizmos ------------------------------------------------------------------------------------------

def _search_path() -> list[Path]:
    env = [p for p in os.environ.get("NODEGRAPH_GIZMO_PATH", "").split(os.pathsep) if p]
    return [Path(p) for p in env + list(gizmo_path)]


def find_gizmo(name: str) -> Path | None:
    """The first ``<name>.gizmo.json`` on the gizmo search path, or None."""
    if not name.isidentifier():
        return None
    for folder in _search_path():
        candidate = folder / f"{name}.gizmo.json"
        if candidate.is_file():
            return candidate
    return None


def save_gizmo(group: Group, path: str | os.PathLike[str], *, name: str, version: str = "1") -> Path:
    """Save ``group``'s definition as the gizmo ``name`` (file ``<name>.gizmo.json`` in a folder,
    or exactly ``path`` when it ends in ``.gizmo.json``)."""
    if not name.isidentifier() or name in registry:
        raise GraphError(f"gizmo name {name!r} must be an identifier that is not a node type")
    p = Path(path)
    if not p.name.endswith(".gizmo.json"):
        p = p / f"{name}.gizmo.json"
    doc = {GIZMO_FORMAT_KEY: GIZMO_VERSION, "name": name, "version": str(version), **group.definition()}
    atomic_write_text(p, json.dumps(doc, indent=2, allow_nan=False) + "\n", error=DocumentError)
    return p


def load_gizmo_definition(name: str) -> tuple[dict[str, Any], Path]:
    path = find_gizmo(name)
    if path is None:
        where = ", ".join(str(p) for p in _search_path()) or "nothing (set NODEGRAPH_GIZMO_PATH)"
        raise GraphError(f"unknown node type {name!r}: not a node type, and no {name}.gizmo.json on the "
                         f"gizmo path ({where})")
    from .document import read_json_text

    data = read_json_text(path)
    if not isinstance(data, dict) or data.get(GIZMO_FORMAT_KEY) != GIZMO_VERSION or data.get("name") != name:
        raise DocumentError(f"not a version {GIZMO_VERSION} gizmo file for {name!r}", path=str(path))
    return data, path


def instantiate_gizmo(name: str, node_name: str) -> Group:
    """A Group built from the gizmo definition ``name`` found on the gizmo path."""
    data, path = load_gizmo_definition(name)
    group = Group(node_name)
    try:
        problems = apply_definition(group, data, source=str(path))
    except NodeGraphError as err:
        raise err.with_context(path=str(path))
    if problems:
        raise DocumentError("; ".join(p.message for p in problems), json_path=problems[0].json_path,
                            path=str(path))
    group.gizmo = (name, str(data.get("version", "1")))
    return group


def apply_definition(group: Group, data: dict[str, Any], *, source: str | None, json_path: str = "$",
                     strict: bool = True) -> list[DocumentError]:
    """Fill ``group`` from definition data (user knobs, subgraph, link knobs); returns the semantic
    problems of the subgraph (unknown types, bad knob values) for the caller to report."""
    from .document import apply_user_knobs, load_body

    apply_user_knobs(group, data.get("user_knobs", []) or [], source=source, json_path=json_path)
    problems = load_body(group.subgraph, data.get("graph", {}), strict=strict, source=source,
                         json_path=f"{json_path}.graph")
    links = data.get("link_knobs", {}) or {}
    if not isinstance(links, dict):
        raise DocumentError("link_knobs must be an object", json_path=f"{json_path}.link_knobs", path=source)
    for name, target in links.items():
        try:
            group.add_link(name, target)
        except KnobError as err:
            raise DocumentError(err.message, json_path=f"{json_path}.link_knobs.{name}", path=source) from None
    return problems


__all__ = ["Group", "GroupInput", "GroupOutput", "apply_definition", "find_gizmo", "gizmo_path",
           "instantiate_gizmo", "save_gizmo"]
