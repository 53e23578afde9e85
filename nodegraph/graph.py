"""The node graph: plain data over a networkx multigraph, with a builder API.

Nodes are keyed by name; an edge ``src -> dst`` keyed by the input name of ``dst`` it feeds.
One source may feed several inputs (A and B of the same Merge), each input takes one source.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterator

import networkx as nx
import torch

from . import animation
from .errors import GraphError, ValidationError
from .node import Node, UnknownNode, default_node_name, registry
from .task import TaskKind, is_task

if TYPE_CHECKING:  # pragma: no cover
    from .evaluator import Evaluator
    from .image import Image

NodeRef = "Node | str"

#: Nuke's Root defaults for the settings expressions can read.
ROOT_DEFAULTS: dict[str, Any] = {"first_frame": 1, "last_frame": 100, "fps": 24.0}


@dataclass(frozen=True)
class Issue:
    """One problem found by :meth:`Graph.validate`."""

    kind: str  # unknown_type | missing_input | invalid_knob | cycle | bad_link | node_check
    message: str
    node: str | None = None
    knob: str | None = None
    input: str | None = None
    cycle: tuple[str, ...] = field(default_factory=tuple)

    def __str__(self) -> str:
        where = f"{self.node}" if self.node else "graph"
        if self.knob:
            where += f".{self.knob}"
        if self.input:
            where += f" input {self.input!r}"
        return f"[{self.kind}] {where}: {self.message}"

    def as_dict(self) -> dict[str, Any]:
        d = {"kind": self.kind, "message": self.message, "node": self.node, "knob": self.knob,
             "input": self.input}
        if self.cycle:
            d["cycle"] = list(self.cycle)
        return d


class RootSettings(dict):
    """The graph's root settings; any change counts as a change of the graph (values are re-resolved)."""

    def __init__(self, graph: "Graph", values: dict[str, Any]) -> None:
        super().__init__(values)
        self._graph = graph

    def _changed(self) -> None:
        self._graph._touched(None)

    def __setitem__(self, key: str, value: Any) -> None:
        super().__setitem__(key, value)
        self._changed()

    def __delitem__(self, key: str) -> None:
        super().__delitem__(key)
        self._changed()

    def update(self, *args: Any, **kwargs: Any) -> None:
        super().update(*args, **kwargs)
        self._changed()

    def pop(self, *args: Any) -> Any:
        value = super().pop(*args)
        self._changed()
        return value

    def setdefault(self, key: str, default: Any = None) -> Any:
        value = super().setdefault(key, default)
        self._changed()
        return value

    def clear(self) -> None:
        super().clear()
        self._changed()


class Graph:
    """A compositing graph: add nodes, connect them, validate, evaluate, save and load."""

    def __init__(self) -> None:
        self._g = nx.MultiDiGraph()
        self._nodes: dict[str, Node] = {}
        self._inputs_cache: dict[str, dict[str, Node]] = {}
        self.metadata: dict[str, Any] = {}
        #: Script-wide settings expressions read as ``root.first_frame``, ``root.last_frame``, ``root.fps``.
        self.root: dict[str, Any] = RootSettings(self, ROOT_DEFAULTS)
        self._values: dict[tuple[str, str, float], Any] = {}  # resolved animated knobs, this version
        self._evaluator: Evaluator | None = None
        self.version = 0  # bumped on every structural or knob change
        #: The Group node this graph is the subgraph of (None for a top-level graph).
        self.owner: Node | None = None
        #: The file this graph was loaded from or last saved to (absolute), else None: Nuke's
        #: ``root.name``; relative file paths in Read/Write resolve against its folder.
        self.path: str | None = None

    # --- nodes ------------------------------------------------------------------------------
    def add(self, type_name: str | type[Node], name: str | None = None, /, **kwargs: Any) -> Node:
        """Add a node: ``g.add("Merge2", A=fg, B=bg, operation="over")``.

        Keyword arguments naming an input connect it (a node or a node name; ``None`` leaves it
        open); the others are knob values. ``name`` defaults to Nuke's ``Merge1``, ``Merge2``...
        """
        name = kwargs.pop("name", name)
        if isinstance(type_name, str) and type_name not in registry:
            from .group import find_gizmo, instantiate_gizmo

            if find_gizmo(type_name) is not None:  # a gizmo on the gizmo path
                node = instantiate_gizmo(type_name, name or self.unique_name(default_node_name(type_name)))
                self._check_new_name(node.name)
                self._insert(node)
                inputs = {k: kwargs.pop(k) for k in list(kwargs) if k in node.input_names()}
                node.set(**kwargs)
                for input_name, src in inputs.items():
                    if src is not None:
                        self.connect(src, node, input_name)
                return node
        cls = registry.get(type_name) if isinstance(type_name, str) else type_name
        inputs = {k: kwargs.pop(k) for k in list(kwargs) if k in cls.input_names()}
        if name is None:
            name = self.unique_name(default_node_name(cls.type_name))
        self._check_new_name(name)
        node = cls(name, **kwargs)
        self._insert(node)
        for input_name, src in inputs.items():
            if src is not None:
                self.connect(src, node, input_name)
        return node

    def add_node(self, node: Node) -> Node:
        """Insert an already constructed node (used by the document loader)."""
        self._check_new_name(node.name)
        self._insert(node)
        return node

    def _insert(self, node: Node) -> None:
        if node.graph is not None and node.graph is not self:
            raise GraphError("node already belongs to another graph", node=node.name)
        node.graph = self
        self._nodes[node.name] = node
        self._g.add_node(node.name)
        self._touched(node)

    def _check_new_name(self, name: str) -> None:
        if not isinstance(name, str) or not name or not name.replace("_", "a").isalnum() or name[0].isdigit():
            raise GraphError(f"invalid node name {name!r}: use letters, digits and _, not starting with a digit")
        if name in self._nodes:
            raise GraphError("a node with this name already exists", node=name)

    def unique_name(self, prefix: str) -> str:
        i = 1
        while f"{prefix}{i}" in self._nodes:
            i += 1
        return f"{prefix}{i}"

    @property
    def top(self) -> "Graph":
        """The top-level graph this (sub)graph belongs to."""
        g = self
        while g.owner is not None and g.owner.graph is not None:
            g = g.owner.graph
        return g

    def node(self, ref: Node | str) -> Node:
        """A node by name, by path into groups (``"Group1.Blur2"``), or checked to be in this graph."""
        if isinstance(ref, Node):
            g = ref.graph
            while g is not None and g is not self:
                g = g.owner.graph if g.owner is not None else None
            if g is None or ref.graph._nodes.get(ref.name) is not ref:
                raise GraphError("node is not part of this graph", node=ref.name)
            return ref
        found = self._nodes.get(ref)
        if found is not None:
            return found
        if isinstance(ref, str) and "." in ref:
            head, _, rest = ref.partition(".")
            outer = self._nodes.get(head)
            sub = getattr(outer, "subgraph", None)
            if sub is not None:
                try:
                    return sub.node(rest)
                except GraphError:
                    pass
        raise GraphError(f"no node named {ref!r}; nodes: {', '.join(self._nodes) or 'none'}") from None

    __getitem__ = node

    def __contains__(self, ref: object) -> bool:
        name = ref.name if isinstance(ref, Node) else ref
        return isinstance(name, str) and name in self._nodes and (
            not isinstance(ref, Node) or self._nodes[name] is ref)

    def __iter__(self) -> Iterator[Node]:
        return iter(list(self._nodes.values()))

    def __len__(self) -> int:
        return len(self._nodes)

    @property
    def nodes(self) -> dict[str, Node]:
        return dict(self._nodes)

    def remove(self, ref: Node | str) -> None:
        node = self.node(ref)
        self._g.remove_node(node.name)
        del self._nodes[node.name]
        node.graph = None
        self._touched(None)

    def rename(self, ref: Node | str, new_name: str) -> Node:
        node = self.node(ref)
        if new_name == node.name:
            return node
        self._check_new_name(new_name)
        nx.relabel_nodes(self._g, {node.name: new_name}, copy=False)
        old = node.name
        node.name = new_name
        self._nodes = {(new_name if k == old else k): v for k, v in self._nodes.items()}
        self._touched(None)
        return node

    # --- links ------------------------------------------------------------------------------
    def connect(self, src: Node | str, dst: Node | str, input: str) -> None:
        """Feed ``src`` into ``dst``'s input ``input``, replacing what was connected there."""
        s, d = self.node(src), self.node(dst)
        d.input_spec(input)  # raises for an unknown input name
        self.disconnect(d, input)
        self._g.add_edge(s.name, d.name, key=input)
        self._touched(d)

    def disconnect(self, dst: Node | str, input: str) -> None:
        d = self.node(dst)
        for src, keys in list(self._g.pred[d.name].items()):  # this node's links only (not every edge)
            if input in keys:
                self._g.remove_edge(src, d.name, key=input)
        self._touched(d)

    def inputs_of(self, ref: Node | str) -> dict[str, Node]:
        """Connected inputs of a node, ``{input name: source node}`` in declaration order."""
        name = ref.name if isinstance(ref, Node) else ref
        cached = self._inputs_cache.get(name)
        if cached is None:
            node = self.node(ref)
            found = {key: self._nodes[src] for src, _, key in self._g.in_edges(name, keys=True)}
            order = [i.name for i in node.inputs]
            cached = {k: found[k] for k in sorted(found, key=lambda k: order.index(k) if k in order else 99)}
            self._inputs_cache[name] = cached
        return cached

    def sources_of(self, node: Node) -> dict[str, Node]:
        """What feeds ``node`` when it is evaluated: its connected inputs, plus a group's link to
        its Output and an Input node's link to what feeds the group's matching input. Links from
        an Input whose group input is unconnected are left out, so the consumer sees an
        unconnected input (as in Nuke)."""
        key = "\0" + node.name
        cached = self._inputs_cache.get(key)
        if cached is not None:
            return cached
        from .group import INPUT_LINK, OUTPUT_LINK, Group, GroupInput

        found = dict(self.inputs_of(node.name))
        if self.owner is not None:
            outer = self.owner.graph.inputs_of(self.owner) if self.owner.graph is not None else {}
            for inp, src in list(found.items()):
                if isinstance(src, GroupInput) and src.graph is self and src.name not in outer:
                    del found[inp]
            if isinstance(node, GroupInput) and node.name in outer:
                found[INPUT_LINK] = outer[node.name]
        if isinstance(node, Group):
            out = node.output_node()
            if out is not None:
                found[OUTPUT_LINK] = out
        self._inputs_cache[key] = found
        return found

    def outputs_of(self, ref: Node | str) -> list[tuple[Node, str]]:
        """``(node, input name)`` pairs fed by this node."""
        node = self.node(ref)
        return [(self._nodes[dst], key) for _, dst, key in self._g.out_edges(node.name, keys=True)]

    def links(self) -> list[tuple[str, str, str]]:
        """All links as ``(from, to, input)``, in node order."""
        out = []
        for name in self._nodes:
            out.extend((src.name, name, inp) for inp, src in self.inputs_of(name).items())
        return out

    def upstream(self, ref: Node | str) -> list[Node]:
        """Every node ``ref`` depends on, itself included."""
        node = self.node(ref)
        return [self._nodes[n] for n in nx.ancestors(self._g, node.name) | {node.name}]

    def downstream(self, ref: Node | str) -> list[Node]:
        node = self.node(ref)
        return [self._nodes[n] for n in nx.descendants(self._g, node.name) | {node.name}]

    def _touched(self, node: Node | None) -> None:
        self._inputs_cache.clear()
        self._values.clear()
        self.version += 1
        owner = self.owner
        if owner is not None:  # a change inside a group is a change of the group
            owner._subgraph_changed(node)
            if owner.graph is not None:
                owner.graph._touched(owner)
        # what feeds a group's Input nodes lives in this graph: drop their cached links too
        for n in (self._nodes.values() if node is None else (node,)):
            sub = getattr(n, "subgraph", None)
            if sub is not None:
                sub._inputs_cache.clear()

    def to_networkx(self) -> nx.MultiDiGraph:
        """A copy of the link structure, nodes carrying ``type`` and ``knobs`` attributes."""
        g = self._g.copy()
        for name, node in self._nodes.items():
            g.nodes[name].update(type=node.type_name, knobs=node.knob_values(only_changed=True))
        return g

    # --- validation --------------------------------------------------------------------------
    def validate(self) -> list[Issue]:
        """Every problem at once: unknown types, missing required inputs, bad knobs, cycles, bad
        expression references and reference cycles, inside groups too (issues name the path)."""
        issues = self._structure_issues()
        issues.extend(self._reference_issues())
        return issues

    def _structure_issues(self) -> list[Issue]:
        issues: list[Issue] = []
        for node in self._nodes.values():
            path = node.path
            if isinstance(node, UnknownNode):
                if not node.ui_only:
                    issues.append(Issue("unknown_type", node.problem(), node=path))
                continue
            connected = self.inputs_of(node)
            for spec in node.inputs:
                if spec.required and spec.name not in connected:
                    issues.append(Issue("missing_input", "required input is not connected", node=path,
                                        input=spec.name))
            for knob, (raw, msg) in node.invalid_knobs.items():
                issues.append(Issue("invalid_knob", f"{msg} (got {raw!r})", node=path, knob=knob))
            for msg in node.check():
                issues.append(Issue("node_check", msg, node=path))
            sub = getattr(node, "subgraph", None)
            if sub is not None:
                issues.extend(sub._structure_issues())
        prefix = f"{self.owner.path}." if self.owner is not None else ""
        for cycle in _cycles(self._g):
            cycle = [prefix + c for c in cycle]
            issues.append(Issue("cycle", "cycle: " + " -> ".join(cycle + [cycle[0]]), node=cycle[0],
                                cycle=tuple(cycle)))
        return issues

    def _all_nodes(self) -> Iterator[Node]:
        for node in self._nodes.values():
            yield node
            sub = getattr(node, "subgraph", None)
            if sub is not None:
                yield from sub._all_nodes()

    def _reference_issues(self) -> list[Issue]:
        """Expressions naming a missing node, knob or root setting, and cycles between knobs."""
        issues: list[Issue] = []
        links = nx.DiGraph()
        root = self.top.root
        for node in self._all_nodes():
            for knob, anim in node.animated.items():
                for _, expr in anim.expressions():
                    for ref in expr.references():
                        if getattr(ref, "alternative", None) is not None and node._reference_target(ref) is None:
                            ref = ref.alternative
                        path = tuple(ref.path)
                        if path == () and ref.knob == "curve":
                            continue
                        where = ".".join(path + (ref.knob,))
                        if path == ("root",):
                            if ref.knob not in root:
                                issues.append(Issue("bad_reference", f"{expr.text!r}: the root has no knob "
                                                    f"{ref.knob!r}", node=node.path, knob=knob))
                            continue
                        target = node.knob_owner(ref.knob) if path == () else node.reference_node(path)
                        if target is None and path[0] == "parent":
                            issues.append(Issue("bad_reference", f"{expr.text!r}: 'parent' is only defined "
                                                "inside a group", node=node.path, knob=knob))
                            continue
                        if target is None:
                            issues.append(Issue("bad_reference", f"{expr.text!r}: no node named {'.'.join(path)!r}",
                                                node=node.path, knob=knob))
                        elif not target.has_knob(ref.knob):
                            issues.append(Issue("bad_reference", f"{expr.text!r}: {where!r} is not a knob of "
                                                f"{target.type_name}", node=node.path, knob=knob))
                        else:
                            problem = animation.component_problem(ref.component,
                                                                  animation.knob_kind(type(target.knobs), ref.knob))
                            if problem is not None:
                                issues.append(Issue("bad_reference", f"{expr.text!r}: {where!r} {problem}",
                                                    node=node.path, knob=knob))
                            links.add_edge(f"{node.path}.{knob}", f"{target.path}.{ref.knob}")
        for cycle in _cycles(nx.MultiDiGraph(links)):
            first = cycle[0].rsplit(".", 1)
            issues.append(Issue("reference_cycle", "expression reference cycle: " + " -> ".join(cycle + [cycle[0]]),
                                node=first[0], knob=first[1], cycle=tuple(cycle)))
        return issues

    def check(self, nodes: list[Node | str] | None = None) -> None:
        """Raise :class:`ValidationError` listing every issue (of ``nodes``' upstream if given).
        Nodes inside a group are checked from the top graph: what feeds the group feeds them."""
        if nodes is not None and self.owner is not None:
            return self.top.check([self.node(ref) for ref in nodes])
        issues = self.validate()
        if nodes is not None:
            # a node inside a group counts by its top-level group
            tops = [self.node(ref).path.split(".")[0] for ref in nodes]
            keep = {n.name for ref in tops for n in self.upstream(ref)}
            def upstream(name: str | None) -> bool:  # issues inside a group count for the group
                return name is not None and name.split(".")[0] in keep

            issues = [i for i in issues if upstream(i.node) or any(upstream(c) for c in i.cycle)]
        if issues:
            raise ValidationError(issues)

    # --- evaluation ---------------------------------------------------------------------------
    @property
    def evaluator(self) -> "Evaluator":
        if self._evaluator is None:
            from .evaluator import Evaluator

            self._evaluator = Evaluator(self)
        return self._evaluator

    @evaluator.setter
    def evaluator(self, value: "Evaluator") -> None:
        self._evaluator = value

    def evaluate(self, ref: Node | str, frame: int = 1, *, device: str | torch.device | None = None,
                 dtype: torch.dtype | None = None) -> "Image":
        """Compute one frame of a node (pulling only what it needs, cached by hash)."""
        return self.evaluator.evaluate(ref, frame, device=device, dtype=dtype)

    def frame_range(self, ref: Node | str) -> tuple[int, int] | None:
        """The node's frame range from its inputs (Reads know theirs; generators have none)."""
        return self.evaluator.frame_range(ref)

    def tasks(self, kind: TaskKind | str | None = None) -> list[Node]:
        """Nodes with side effects (:mod:`nodegraph.task`), of ``kind`` when given, in graph order,
        inside groups too."""
        return [n for n in self._all_nodes() if is_task(n, kind)]

    def outputs(self) -> list[Node]:
        """The ``write`` tasks (Write nodes) that ``render`` runs, in graph order, inside groups too."""
        return self.tasks("write")

    # --- documents -----------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        from .document import graph_to_dict

        return graph_to_dict(self)

    @classmethod
    def from_dict(cls, data: Any, *, strict: bool = True, source: str | None = None) -> "Graph":
        from .document import graph_from_dict

        return graph_from_dict(data, strict=strict, source=source)

    def to_json(self, indent: int = 2) -> str:
        from .document import dumps

        return dumps(self, indent=indent)

    @classmethod
    def from_json(cls, text: str, *, strict: bool = True, source: str | None = None) -> "Graph":
        from .document import loads

        return loads(text, strict=strict, source=source)

    def save(self, path: str | Path) -> None:
        """Save as a nodegraph JSON document, or as a Nuke script when ``path`` ends in ``.nk``."""
        if is_nuke_path(path):
            from .nuke.writer import save_nk

            save_nk(self, path)
        else:
            from .document import save

            save(self, path)
        self.path = os.path.abspath(path)

    @classmethod
    def load(cls, path: str | Path, *, strict: bool = True) -> "Graph":
        """Load a nodegraph JSON document, or a Nuke script (``.nk``, ``.gizmo``) by its suffix."""
        if is_nuke_path(path):
            from .nuke.reader import load_nk

            graph = load_nk(path)
        else:
            from .document import load

            graph = load(path, strict=strict)
        graph.path = os.path.abspath(path)
        return graph

    def __repr__(self) -> str:
        return f"<Graph {len(self._nodes)} nodes, {self._g.number_of_edges()} links>"


def is_nuke_path(path: str | os.PathLike[str]) -> bool:
    """True for a Nuke script or gizmo file name (``.nk``, ``.nknc``, ``.gizmo``), by suffix."""
    return str(path).lower().endswith((".nk", ".nknc", ".gizmo"))


def _cycles(g: nx.MultiDiGraph) -> list[list[str]]:
    """One representative cycle per strongly connected component (self-loops included)."""
    out = []
    for comp in nx.strongly_connected_components(g):
        if len(comp) == 1:
            (n,) = comp
            if not g.has_edge(n, n):
                continue
            out.append([n])
            continue
        sub = g.subgraph(comp)
        cycle = nx.find_cycle(sub, source=sorted(comp)[0])
        out.append([edge[0] for edge in cycle])
    return sorted(out)
