"""nodegraph graphs as Nuke scripts (``.nk``), laid out as Nuke saves them.

The script starts with the ``#!`` line, ``version``, the window layout, ``Root {...}`` and the
``add_layer`` lines; nodes follow in an order where every node comes after its inputs, each as
``Class { inputs N+M, knobs, name }``. Inputs travel on Nuke's stack: a node's inputs are pushed
last input first, so that input 0 is on top (``push $N1``, ``push 0`` for an empty one), and a node
that feeds anything but the statement right after it is named with ``set N1 [stack 0]``. Groups
write their body and ``end_group``; gizmo instances write their class and knobs only; clones of a
node with unchanged knobs are written as ``clone $C1 {...}``.

A node read from a script (:mod:`nodegraph.nuke.reader`) carries its knob lines verbatim in
``extras["nuke"]``: each is written back as it was unless the graph changed that knob since, then
it is written from the knob's value (:mod:`nodegraph.nuke.values`). Knobs set in Python are written
when they differ from Nuke's default.
"""

from __future__ import annotations

import json
import os
import re
from typing import Any

import networkx as nx

from nodegraph import animation
from nodegraph.atomic import atomic_write_text
from nodegraph.errors import NodeGraphError
from nodegraph.graph import ROOT_DEFAULTS, Graph
from nodegraph.group import Group, GroupInput
from nodegraph.node import Node, UnknownNode
from nodegraph.nuke import classes as C
from nodegraph.nuke import values as V
from nodegraph.nuke.reader import DEFAULT_ROOT_FORMAT, LINK_KNOB, ROOT_KNOBS, USER_KNOB_TYPES, node_name_of
from nodegraph.nuke.tcl import quote

DEFAULT_VERSION = "14.0 v5"
_USER_TYPE_IDS = {"int": "3", "bool": "6", "float": "7", "xy": "12", "xyz": "13", "wh": "14", "box": "15",
                  "rgb": "18", "color": "19", "string": "1", "enum": "4"}
assert set(USER_KNOB_TYPES.values()) >= set(_USER_TYPE_IDS)


class _Writer:
    def __init__(self, graph: Graph) -> None:
        self.graph = graph
        self.out: list[str] = []
        self.var = 0
        self.root_format = graph.root.get("format", DEFAULT_ROOT_FORMAT)

    # --- the script -------------------------------------------------------------------------------
    def run(self) -> str:
        meta = self.graph.metadata.get("nuke")
        read = isinstance(meta, dict)  # read from a script: write what it had, no more
        meta = meta if read else {}
        self.out.extend(meta.get("header", []) if read else ["#! nuke -nx"])
        if meta.get("version") or not read:
            self.out.append(f"version {meta.get('version') or DEFAULT_VERSION}")
        if meta.get("layout"):
            self.out.append(f"define_window_layout_xml {meta['layout']}")
        if not read or "root" in meta or self.root_changed(meta):
            self.root(meta)
        for layer in meta.get("layers", []):
            self.out.append(f"add_layer {layer}")
        for cmd in meta.get("other", []):
            self.out.append(" ".join(cmd))
        self.level(self.graph, 0)
        return "\n".join(self.out) + "\n"

    def root(self, meta: dict[str, Any]) -> None:
        rows = [list(r) for r in meta.get("root", [["inputs", "0"]])]
        imported = meta.get("imported", {})
        written = set()
        lines = []
        for row in rows:
            name = row[0]
            if name in ROOT_KNOBS:
                written.add(name)
                value = self.graph.root.get(name)
                if value is not None and value != imported.get(name, _MISSING):
                    row = [name, self.root_text(name, value)]
            lines.append(row)
        for name in ROOT_KNOBS:
            value = self.graph.root.get(name)
            default = DEFAULT_ROOT_FORMAT if name == "format" else ROOT_DEFAULTS.get(name)
            if name not in written and value is not None and value != default:
                lines.append([name, self.root_text(name, value)])
        if not any(r[0] == "inputs" for r in lines):
            lines.insert(0, ["inputs", "0"])
        self.out.append("Root {")
        self.out.extend(" " + _row_text(r) for r in lines)
        self.out.append("}")

    def root_changed(self, meta: dict[str, Any]) -> bool:
        imported = meta.get("imported", {})
        for name in ROOT_KNOBS:
            default = DEFAULT_ROOT_FORMAT if name == "format" else ROOT_DEFAULTS.get(name)
            if self.graph.root.get(name, default) != imported.get(name, default):
                return True
        return False

    def root_text(self, name: str, value: Any) -> str:
        if name == "format":
            return V.format_text(str(value))
        return V.numeric_text(value)

    # --- one graph level ------------------------------------------------------------------------------
    def level(self, graph: Graph, depth: int) -> None:
        pad = " " * depth
        order = {name: i for i, name in enumerate(graph.nodes)}
        g = graph.to_networkx()
        names = list(nx.lexicographical_topological_sort(g, key=lambda n: order.get(n, 0))) \
            if nx.is_directed_acyclic_graph(g) else list(graph.nodes)
        clone_targets = {n.extras.get("nuke", {}).get("clone_of") for n in graph if isinstance(n.extras.get("nuke"), dict)}
        plan = []  # (node, inputs line, what to push: bottom first)
        stack: list[str | None] = []  # the stack as Nuke will hold it while reading
        pushed: set[str] = set()
        for name in names:
            node = graph.node(name)
            slots, n_main, n_mask = self.slots(graph, node)
            sources = graph.inputs_of(node)
            wanted = [sources[s].name if s is not None and s in sources else None for s in slots]
            nuke = _nuke(node)
            line = f"{n_main}+{n_mask}" if n_mask else str(n_main)
            if nuke and "inputs" not in nuke and not n_mask and all(w is None for w in wanted[1:]):
                line, wanted = None, wanted[:1] or [None]  # as read: no 'inputs' line, one input
            elif not nuke and line == "1":
                line = None
            need = list(reversed(wanted))  # bottom to top: input 0 ends on top
            # what already lies on top of the stack (the nodes written just before) is not pushed again
            keep = max((m for m in range(len(need), 0, -1)
                        if len(stack) >= m and stack[-m:] == need[:m] and None not in need[:m]), default=0)
            pushes = need[keep:]
            pushed.update(p for p in pushes if p is not None)
            plan.append((node, line, pushes))
            stack.extend(pushes)
            if need:
                del stack[-len(need):]
            stack.append(name)
        variables: dict[str, str] = {}
        for node, line, pushes in plan:
            for src in pushes:
                self.out.append(pad + ("push 0" if src is None else f"push ${variables[src]}"))
            self.node(node, depth, line, clone_targets)
            if node.name in pushed:
                self.var += 1
                variables[node.name] = f"N{self.var:x}"
                self.out.append(pad + f"set {variables[node.name]} [stack 0]")

    def slots(self, graph: Graph, node: Node) -> tuple[list[str | None], int, int]:
        nuke = _nuke(node)
        connected = set(graph.inputs_of(node))
        if isinstance(node, UnknownNode):
            n = max((int(s) + 1 for s in connected if s.isdigit()), default=0)
            main, masks = (nuke.get("inputs") or [n, 0])[:2]
            total = max(n, main + masks)
            return [str(i) for i in range(total)], total - masks, masks
        saved_line = nuke.get("inputs")
        saved = saved_line[0] if saved_line else 0  # the count the script had
        if isinstance(node, Group):
            inputs = sorted((n for n in node.subgraph if isinstance(n, GroupInput)), key=lambda n: (n.knobs.number, n.name))
            by_number = {n.knobs.number: n.name for n in inputs}
            width = max(by_number) + 1 if by_number else 0
            if saved_line:  # the script's count, unless a connected input lies beyond it
                last = max((i for i in range(width) if by_number.get(i) in connected), default=-1)
                width = max(saved, last + 1)
            return [by_number.get(i) for i in range(width)], width, 0
        specs = tuple(i.name for i in node.inputs)
        return C.nuke_inputs(specs, connected, nuke.get("class") or node.type_name, saved)

    # --- one node -------------------------------------------------------------------------------------
    def node(self, node: Node, depth: int, inputs: str | None, clone_targets: set[Any]) -> None:
        pad = " " * depth
        nuke = _nuke(node)
        cls = nuke.get("class") or node.type_name
        clone_of = nuke.get("clone_of")
        original = node.graph.nodes.get(clone_of) if clone_of and node.graph is not None else None
        if original is not None and original.knob_values() == node.knob_values():
            head = f"clone $C{_var_name(original.name)} {{"
            lines = [list(r) for r in nuke.get("lines", [])]
        else:
            head = f"{cls} {{"
            lines = self.knob_lines(node, cls)
        name = nuke.get("name") if nuke.get("name") and _same(nuke["name"], node.name) else node.name
        body = [["inputs", inputs]] if inputs is not None else []
        named = False
        for row in lines:
            if row[0] == "name":
                if not named:
                    body.append(["name", _name_text(name)])
                named = True
            else:
                body.append(row)
        if not named and not head.startswith("clone ") and nuke.get("unnamed") != node.name:  # Nuke writes it before the closing position knobs
            at = next((i for i, r in enumerate(body) if r[0] in ("xpos", "ypos", "selected")), len(body))
            body.insert(at, ["name", _name_text(name)])
        self.out.append(pad + head)
        self.out.extend(pad + " " + _row_text(r) for r in body)
        self.out.append(pad + "}")
        if node.name in clone_targets:
            self.out.append(pad + f"set C{_var_name(node.name)} [stack 0]")
        if isinstance(node, Group) and not nuke.get("gizmo"):
            self.level(node.subgraph, depth + 1)
            self.out.append(pad + "end_group")

    def knob_lines(self, node: Node, cls: str) -> list[list[Any]]:
        nuke = _nuke(node)
        imported = nuke.get("imported", {})
        current = node.knob_values()
        rows: list[list[Any]] = []
        covered: set[str] = set()
        if isinstance(node, UnknownNode):
            return [list(r) for r in nuke.get("lines", [])]
        link_knobs = getattr(node, "link_knobs", {})
        for row in nuke.get("lines", []):
            name = row[0]
            if name == "addUserKnob":
                rows.append(list(row))
                item = _user_knob_name(row[1])
                if item:
                    covered.add(item)
                continue
            knob = C.knob_name(cls, name)
            if name in C.UI_KNOBS or row[1] is None or knob not in current or knob in link_knobs:
                rows.append(list(row))
                continue
            covered.add(knob)
            raw_invalid = node.invalid_knobs.get(knob)
            if raw_invalid is not None and raw_invalid[0] == row[1]:
                rows.append(list(row))
            elif knob in imported and _json_equal(imported[knob], current[knob]):
                rows.append(list(row))
            else:
                rows.append([name, self.knob_text(node, cls, knob)])
        for name, spec in node.user_knobs.items():
            if name not in covered:
                rows.append(["addUserKnob", _user_knob_spec(spec)])
        for name, target in link_knobs.items():
            if name not in covered:
                rows.append(["addUserKnob", "{" + f"{LINK_KNOB} {name} T {quote(target)}" + "}"])
        for knob, value in current.items():
            if knob in covered or knob in link_knobs:
                continue
            if isinstance(node, Group) and knob == "label":
                continue
            spec = node.user_knobs.get(knob)
            if spec is not None and spec.default is None and _json_equal(value, _json(spec.field()[1].default)):
                continue  # a user knob at its type's default: no value line (its value is its default)
            if spec is None and _json_equal(value, self.nuke_default_json(node, cls, knob)):
                continue
            rows.append([C.nuke_name(cls, knob), self.knob_text(node, cls, knob)])
        return rows

    def nuke_default_json(self, node: Node, cls: str, knob: str) -> Any:
        field = type(node.knobs).model_fields.get(knob)
        if field is None:
            return _MISSING
        if knob == "format" and cls in C.ROOT_FORMAT_CLASSES:
            return self.root_format
        ours = field.get_default(call_default_factory=True)
        value = C.nuke_default(cls, knob, ours)
        try:
            return type(node.knobs).model_validate({**node.knobs.model_dump(), knob: value}).model_dump(
                mode="json")[knob]
        except Exception:  # a default our model would not take: compare as given
            return value

    def knob_text(self, node: Node, cls: str, knob: str) -> str:
        """The script text of ``knob``'s current value."""
        invalid = node.invalid_knobs.get(knob)
        if invalid is not None:
            return str(invalid[0])
        anim = node.animated.get(knob)
        rows = C.MATRIX_KNOBS.get((cls, knob))
        if rows is not None:
            value = animation_value(anim) if anim is not None else getattr(node.knobs, knob)
            width = rows if isinstance(rows, int) else int(getattr(node.knobs, rows))
            items = list(value) if isinstance(value, (list, tuple)) else [value]
            if width > 0 and len(items) % width == 0:
                return "{" + " ".join("{" + " ".join(V.item_text(v) for v in items[i:i + width]) + "}"
                                      for i in range(0, len(items), width)) + "}"
        if anim is not None:
            return V.numeric_text(animation_value(anim))
        value = getattr(node.knobs, knob)
        field = type(node.knobs).model_fields[knob]
        if (cls, knob) in _SPECIAL_OUT:
            return _SPECIAL_OUT[(cls, knob)](value)
        if (cls, knob) in C.CURVE_SET_KNOBS and isinstance(value, dict):
            return "{" + "\n ".join(f"{quote(str(name))} {{{text}}}" for name, text in value.items()) + "}"
        if V.literal_choices(field.annotation) is not None:
            return quote(str(value))
        if animation.knob_shape(field.annotation) is not None:
            return V.numeric_text(value)
        if C.is_channel(cls, knob) or C.is_channel_set(cls, knob):
            return V.channels_text(str(value))
        if knob == "format":
            return V.format_text(str(value))
        if isinstance(value, (dict, list)):
            return quote(json.dumps(value))
        return quote(str(value))


_MISSING = object()


def animation_value(anim: Any) -> Any:
    """The value an Animated holds (a Curve/Expression, or a list of components)."""
    return anim.whole if anim.items is None else list(anim.items)


def _nuke(node: Node) -> dict[str, Any]:
    data = node.extras.get("nuke")
    return data if isinstance(data, dict) else {}


def _same(written: str, name: str) -> bool:
    """Whether ``name`` is what the reader made of the script's name ``written``."""
    return node_name_of(written) == name


def _var_name(name: str) -> str:
    return "".join(ch if ch.isalnum() else "_" for ch in name)


def _json(value: Any) -> Any:
    return list(value) if isinstance(value, tuple) else value


def _json_equal(a: Any, b: Any) -> bool:
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return len(a) == len(b) and all(_json_equal(x, y) for x, y in zip(a, b))
    if isinstance(a, (int, float)) and isinstance(b, (int, float)) and not isinstance(a, bool) \
            and not isinstance(b, bool):
        return float(a) == float(b)
    return a == b


#: A knob name that can be written back bare, braces and all (TCL ends a bare word only at
#: whitespace or ``;``; ``[ $ \\ "`` would be substituted, a leading ``{`` or ``#`` changes the word).
_BARE_NAME = re.compile(r'[^\s"\[\]$\\;{#][^\s"\[\]$\\;]*')


def _row_text(row: list[Any]) -> str:
    # a name read as a bare word goes back bare: a brace in it counts towards the node block's
    # balance exactly as in the file, where the rest of the line (written verbatim) may close it
    raw = str(row[0])
    name = raw if _BARE_NAME.fullmatch(raw) else quote(raw)
    if len(row) < 2 or row[1] is None:
        return name
    return " ".join([name] + [str(x) for x in row[1:] if x is not None])


def _name_text(name: str) -> str:
    return quote(name)


def _user_knob_name(raw: str | None) -> str | None:
    if not raw:
        return None
    from nodegraph.nuke.tcl import split_list

    try:
        outer = split_list(raw)
        items = split_list(outer[0].text) if outer else []
    except NodeGraphError:
        return None
    return items[1].text if len(items) > 1 else None


def _user_knob_spec(spec: Any) -> str:
    parts = [_USER_TYPE_IDS[spec.type], spec.name]
    if spec.label:
        parts += ["l", quote(spec.label)]
    if spec.tooltip:
        parts += ["t", quote(spec.tooltip)]
    if spec.type == "enum":
        parts += ["M", "{" + " ".join(quote(v) for v in spec.values) + "}"]
    return "{" + " ".join(parts) + "}"


def _from_input_text(value: str) -> str:
    return "{{0} B}" if value == "B" else "{{1} A}"


def _mappings_text(value: dict[str, str]) -> str:
    rows = [str(len(value))]
    for target, source in value.items():
        if source in ("black", "white"):
            rows += [source, "-1", "-1"]
        else:
            prefix, _, channel = source.rpartition(":")
            group = "1" if prefix == "in2" else "0"
            rows += [channel, group, str(_channel_index(channel))]
        rows += [target, "0", str(_channel_index(target))]
    return '"' + " ".join(rows) + '"'


def _channel_index(channel: str) -> int:
    comp = channel.rpartition(".")[2]
    return {"red": 0, "green": 1, "blue": 2, "alpha": 3, "x": 0, "y": 1, "z": 2, "w": 3, "u": 0, "v": 1}.get(comp, 0)


def _knob_values_text(value: dict[str, Any]) -> str:
    return "{" + "".join(f"{k}:{V.item_text(v) if isinstance(v, (int, float)) else v};" for k, v in value.items()) + "}"


_SPECIAL_OUT = {
    ("Shuffle2", "fromInput1"): _from_input_text,
    ("Shuffle2", "fromInput2"): _from_input_text,
    ("Shuffle2", "mappings"): _mappings_text,
    ("Inference", "knobValues"): _knob_values_text,
}


def dumps_nk(graph: Graph) -> str:
    """The graph as a Nuke script's text."""
    return _Writer(graph).run()


def save_nk(graph: Graph, path: str | os.PathLike[str]) -> None:
    """Write the graph as a Nuke script, atomically (a failed write leaves no partial file)."""
    atomic_write_text(path, dumps_nk(graph), error=NodeGraphError)


__all__ = ["dumps_nk", "save_nk"]
