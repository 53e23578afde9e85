"""Nuke scripts (``.nk``, ``.gizmo``) into nodegraph graphs.

:func:`read_nk` turns the neutral tree of :mod:`nodegraph.nuke.script` into a
:class:`~nodegraph.graph.Graph`:

- a class nodegraph implements becomes that node, its knobs converted by the nodegraph knob's
  type (:mod:`nodegraph.nuke.values`), renamed and defaulted as Nuke does
  (:mod:`nodegraph.nuke.classes`);
- ``Group``/``Gizmo`` bodies become groups (``Input`` nodes ordered by ``number``), with their
  ``addUserKnob`` knobs as user knobs and link knobs; a gizmo class is found as ``NAME.gizmo`` in
  the script's folder, ``$NUKE_PATH`` and the ``gizmo_path`` given, and read as a group;
- a class nodegraph does not implement, or a node using something nodegraph cannot represent
  (an input it does not have), becomes a placeholder keeping its knobs and inputs verbatim;
  ``validate()`` lists it, and a render fails on it only when it is upstream of what is asked;
- every knob line is also kept verbatim in ``node.extras["nuke"]`` (with the value each mapped knob
  had when read), so :mod:`nodegraph.nuke.writer` writes back what it was given, changed only where
  the graph was changed.

Knob values that cannot be converted (TCL where a number is expected, an expression on a choice
knob) are kept as invalid knobs: ``validate()`` names node, knob and reason, and the script still
loads. Problems that the file itself has are :class:`~nodegraph.nuke.script.NkWarning` entries.
"""

from __future__ import annotations

import functools
import gc
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from nodegraph import animation
from nodegraph.errors import NodeGraphError
from nodegraph.graph import Graph
from nodegraph.group import Group, GroupInput
from nodegraph.node import Node, UnknownNode, registry
from nodegraph.nuke import classes as C
from nodegraph.nuke import values as V
from nodegraph.nuke.script import KnobLine, NkNode, NkScript, NkWarning, parse_script, read_script
from nodegraph.nuke.tcl import NkSyntaxError, Word, split_list

#: Root knobs that become ``graph.root`` settings.
ROOT_KNOBS = ("first_frame", "last_frame", "fps", "format")
#: Nuke's default root format (a new script's project format).
DEFAULT_ROOT_FORMAT = "HD_1080"
GROUP_LIKE = frozenset({"Group", "Gizmo", "LiveGroup"})
#: Deepest nesting of groups read (real scripts nest a handful; each level is a Python call).
MAX_GROUP_DEPTH = 64

#: addUserKnob type numbers (Nuke's knob type ids) nodegraph keeps as user knobs, and how.
USER_KNOB_TYPES: dict[str, str] = {"3": "int", "6": "bool", "7": "float", "8": "float", "12": "xy", "13": "xyz",
                                   "14": "wh", "15": "box", "18": "rgb", "19": "color", "1": "string", "2": "string",
                                   "4": "enum", "43": "string"}
LINK_KNOB = "41"


@dataclass
class NkImport:
    """What :func:`read_nk` made: the graph, the file's warnings and the classes kept as placeholders."""

    graph: Graph
    warnings: list[str] = field(default_factory=list)
    unsupported: dict[str, int] = field(default_factory=dict)  # Nuke class -> nodes kept as placeholders


def line_raw(kl: KnobLine) -> list[Any]:
    """A knob line as kept in ``extras["nuke"]["lines"]``: ``[name, value]`` or ``[name, value, rest]``
    (``value`` None for a knob written without one)."""
    row: list[Any] = [kl.name, kl.value.raw if kl.value is not None else None]
    if kl.extra:
        row.append(" ".join(w.raw for w in kl.extra))
    return row


def raw_word(raw: str) -> Word:
    """The Word of a kept raw value (re-read with the lexer)."""
    words = split_list(raw)
    if len(words) != 1:
        return Word(raw, "bare", 1, 1, raw)
    return words[0]


def gizmo_search_path(script: str | None, extra: list[str] | None = None) -> list[Path]:
    """Folders searched for ``NAME.gizmo``: ``extra``, the script's folder, then ``$NUKE_PATH``."""
    dirs = [Path(p) for p in (extra or [])]
    if script:
        dirs.append(Path(script).resolve().parent)
    dirs += [Path(p) for p in os.environ.get("NUKE_PATH", "").split(os.pathsep) if p]
    return dirs


class _Reader:
    def __init__(self, script: NkScript, source: str | None, gizmo_path: list[Path]) -> None:
        self.script = script
        self.source = source
        self.gizmo_path = gizmo_path
        self.out = NkImport(Graph())
        self.root_format = DEFAULT_ROOT_FORMAT
        self._gizmos: dict[str, NkScript | None] = {}
        self._pending: list[tuple[NkNode, dict[str, Any]]] = []  # user knobs to add to the node being read
        self._values: dict[int, tuple[list[KnobLine], dict[str, Word]]] = {}  # last value of each knob
        self._converted: dict[tuple[Any, ...], Any] = {}  # (class, knob, type, word) -> value (immutable)
        self._depth = 0
        self._expanding: list[str] = []  # gizmo classes being read, outermost first

    def warn(self, where: NkNode | None, message: str) -> None:
        at = f"line {where.line}: " if where is not None and where.line else ""
        self.out.warnings.append(at + message)

    # --- the script -------------------------------------------------------------------------------
    def run(self) -> NkImport:
        """Build the graph; the cyclic garbage collector pauses meanwhile (a large script makes
        hundreds of thousands of objects, nearly none of them garbage: its passes cost more than
        the import itself)."""
        collecting = gc.isenabled()
        gc.disable()
        try:
            return self._run()
        finally:
            if collecting:
                gc.enable()

    def _run(self) -> NkImport:
        graph = self.out.graph
        self.out.warnings.extend(str(w) for w in self.script.warnings)
        meta: dict[str, Any] = {}
        root = self.script.root
        if root is not None:
            meta["root"] = [line_raw(kl) for kl in root.lines]
            imported = {}
            for kl in root.lines:
                if kl.name in ROOT_KNOBS and kl.value is not None:
                    try:
                        value = self._root_value(kl.name, kl.value)
                    except (V.ValueProblem, NodeGraphError) as err:
                        self.warn(root, f"Root knob {kl.name}: {err}; Nuke's default kept")
                        continue
                    graph.root[kl.name] = value
                    imported[kl.name] = value
            if imported:
                meta["imported"] = imported
        if "format" not in graph.root:
            graph.root["format"] = DEFAULT_ROOT_FORMAT
        self.root_format = graph.root["format"]
        if self.script.version:
            meta["version"] = self.script.version
        if self.script.header:
            meta["header"] = list(self.script.header)
        if self.script.layout is not None:
            meta["layout"] = self.script.layout.raw
        if self.script.layers:
            meta["layers"] = [w.raw for w in self.script.layers]
        if self.script.other:
            meta["other"] = [[w.raw for w in cmd] for cmd in self.script.other]
        graph.metadata["nuke"] = meta  # (even empty: the graph was read from a script)
        self.build(self.script.nodes, graph)
        return self.out

    def _root_value(self, name: str, word: Word) -> Any:
        if name == "format":
            return V.format_value(word)
        if name == "fps":
            return float(V.number(word.text))
        return int(V.number(word.text, int))

    # --- nodes of one graph level -------------------------------------------------------------------
    def build(self, nodes: list[NkNode], graph: Graph) -> None:
        made: dict[int, Node] = {}
        for nk in nodes:
            node = self.node(nk, graph)
            if node is not None:
                made[id(nk)] = node
        for nk in nodes:
            node = made.get(id(nk))
            if node is None:
                continue
            slots = node.extras.get("nuke", {}).pop("_slots", None)
            for index, src in enumerate(nk.inputs):
                if src is None:
                    continue
                upstream = made.get(id(src))
                if upstream is None:
                    self.warn(nk, f"{node.name}: input {index} comes from outside its group; not connected")
                    continue
                name = slots[index] if slots is not None and index < len(slots) else str(index)
                if name is None:
                    continue
                try:
                    graph.connect(upstream, node, name)
                except NodeGraphError as err:
                    self.warn(nk, f"{node.name}: input {index} not connected: {err}")

    def node(self, nk: NkNode, graph: Graph) -> Node | None:
        cls = nk.cls
        written = nk.name
        name = node_name_of(written) if written else graph.unique_name(node_name_of(cls).rstrip("0123456789") or "Node")
        if name in graph:
            fresh = graph.unique_name(name.rstrip("0123456789") or "Node")
            self.warn(nk, f"a second node named {name!r} is renamed {fresh!r}")
            name = fresh
        lines = list(nk.lines)
        original = nk.clone_of
        if original is not None:  # a clone: the original's knobs, its own position and inputs
            lines = [kl for kl in original.lines if kl.name not in C.UI_KNOBS] + lines
        try:
            if cls in GROUP_LIKE and (nk.children is not None or cls == "Group"):
                node: Node = self.group(nk, name, cls, lines, nk.children or [])
            elif cls in C.UI_CLASSES:
                node = self.placeholder(nk, name, lines, ui_only=True)
            elif cls in registry and cls not in GROUP_LIKE and cls not in ("Input", "Output") or (
                    cls in ("Input", "Output") and graph.owner is not None):
                node = self.known(nk, name, lines)
            else:
                gizmo = self.find_gizmo(cls, nk)
                if gizmo is not None and cls in self._expanding:
                    raise _Placeholder(f"gizmo {cls} contains itself")
                if gizmo is not None:
                    self._expanding.append(cls)
                    try:
                        node = self.group(nk, name, cls, lines, gizmo.nodes[0].children or [], gizmo=gizmo)
                    finally:
                        self._expanding.pop()
                else:
                    node = self.placeholder(nk, name, lines)
        except _Placeholder as why:
            node = self.placeholder(nk, name, lines, reason=str(why))
        nuke = node.extras.setdefault("nuke", {})
        if not written:
            nuke["unnamed"] = name  # the script gave no name: this one was made up (not written back)
        elif written != name:
            nuke["name"] = written
            self.warn(nk, f"node name {written!r} is {name!r} in nodegraph (letters, digits and _ only)")
        if original is not None:
            nuke["clone_of"] = original.name
            nuke["lines"] = [line_raw(kl) for kl in nk.lines]
        if nk.has_inputs_line:
            nuke["inputs"] = [nk.input_count, nk.mask_inputs]
        graph.add_node(node)
        return node

    def placeholder(self, nk: NkNode, name: str, lines: list[KnobLine], *, ui_only: bool = False,
                    reason: str | None = None) -> Node:
        node = UnknownNode(name, nk.cls, {}, inputs=[str(i) for i in range(len(nk.inputs))])
        nuke: dict[str, Any] = {"class": nk.cls, "lines": [line_raw(kl) for kl in lines]}
        if ui_only:
            nuke["ui_only"] = True
        else:
            self.out.unsupported[nk.cls] = self.out.unsupported.get(nk.cls, 0) + 1
        if reason:
            nuke["placeholder"] = reason
            self.warn(nk, f"{name} ({nk.cls}) kept as a placeholder: {reason}")
        elif not ui_only and C.unsupported_reason(nk.cls):
            nuke["reason"] = C.unsupported_reason(nk.cls)
        if nk.children:
            nuke["children"] = _children_raw(nk)
        node.extras["nuke"] = nuke
        return node

    def known(self, nk: NkNode, name: str, lines: list[KnobLine]) -> Node:
        node = registry.get(nk.cls)(name)
        self.slots(nk, node)
        self.knobs(nk, node, lines)
        return node

    def slots(self, nk: NkNode, node: Node) -> None:
        specs = tuple(i.name for i in node.inputs)
        slots = C.input_names(specs, nk.input_count, nk.mask_inputs, nk.cls)
        for index, src in enumerate(nk.inputs):
            if src is not None and (index >= len(slots) or slots[index] is None):
                raise _Placeholder(f"input {index} is connected and nodegraph's {nk.cls} has no such input "
                                   f"(it has {', '.join(specs) or 'none'})")
        node.extras.setdefault("nuke", {})["_slots"] = slots

    # --- knobs ----------------------------------------------------------------------------------------
    def knobs(self, nk: NkNode, node: Node, lines: list[KnobLine], *, skip: frozenset[str] = frozenset()) -> None:
        cls = nk.cls
        kept: list[list[Any]] = []
        imported: dict[str, Any] = {}
        unmapped: list[str] = []
        seen: set[str] = set()
        for kl in lines:  # the user knobs first, in one go, so that the values below find them
            if kl.name == "addUserKnob":
                self.user_knob(nk, node, kl, lines)
        self.add_user_knobs(node)
        for kl in lines:
            kept.append(line_raw(kl))
            if kl.name in ("name", "addUserKnob"):
                continue
            if kl.name in C.UI_KNOBS or kl.name in skip or kl.value is None:
                continue
            knob = C.knob_name(cls, kl.name)
            if not node.has_knob(knob) or knob in getattr(node, "link_knobs", {}):
                if kl.name not in ("label",):
                    unmapped.append(kl.name)
                continue
            seen.add(knob)
            self.set_knob(nk, node, knob, kl.value)
        if cls == "Shuffle2" and "mappings" in seen and "mappings" not in node.invalid_knobs:
            node.set(mappings=_plain_sources(node))
        if seen:  # the value each knob was read as (the writer writes a line back as it was unless changed)
            now = node.knob_values()
            imported = {knob: now.get(knob) for knob in seen}
        for knob, value in C.NUKE_DEFAULTS.get(cls, {}).items():
            if knob not in seen and node.has_knob(knob):
                node.set(**{knob: value})
        if cls in C.ROOT_FORMAT_CLASSES and "format" not in seen and node.has_knob("format"):
            try:
                node.set(format=self.root_format)
            except NodeGraphError as err:
                self.warn(nk, f"{node.name}: root format {self.root_format!r}: {err}")
        nuke = node.extras.setdefault("nuke", {})
        if nk.cls != node.type_name:
            nuke["class"] = nk.cls
        nuke["lines"] = kept
        if imported:
            nuke["imported"] = imported
        if unmapped:
            self.warn(nk, f"{node.name} ({cls}): knobs nodegraph does not implement, kept for writing: "
                          f"{', '.join(dict.fromkeys(unmapped))}")

    def set_knob(self, nk: NkNode, node: Node, knob: str, word: Word) -> None:
        annotation = type(node.knobs).model_fields[knob].annotation
        key = (nk.cls, knob, annotation, word.kind, word.text)
        try:
            value = self._converted.get(key, _MISSING)
            if value is _MISSING:  # values repeat across a script (and its group copies): convert once
                value = self.convert(nk.cls, node, knob, word)
                if len(self._converted) > 65536:
                    self._converted.clear()
                self._converted[key] = value
            node.set(**{knob: value})
        except (V.ValueProblem, NodeGraphError) as err:
            msg = err.message if isinstance(err, NodeGraphError) else str(err)
            node.invalid_knobs[knob] = (word.raw, f"from the Nuke script: {msg}")
            self.warn(nk, f"{node.name}.{knob}: {msg}; kept as written")

    def convert(self, cls: str, node: Node, knob: str, word: Word) -> Any:
        """A script word as the value of the nodegraph knob ``knob`` of ``node``."""
        field = type(node.knobs).model_fields[knob]
        annotation = field.annotation
        special = _SPECIAL.get((cls, knob))
        if special is not None:
            return special(word)
        if (cls, knob) in C.MATRIX_KNOBS and word.kind == "brace":
            shape = animation.knob_shape(annotation)
            if shape is not None:
                return V.numeric(V.flatten_rows(word), shape)
        choices = V.literal_choices(annotation)
        if choices is not None:
            if word.kind == "brace" and word.text.strip().startswith("{"):  # animated: by choice index
                return V.numeric(word, animation.Shape(frozenset({1}), int, choices))
            return V.enum(word, choices)
        shape = animation.knob_shape(annotation)
        if shape is not None:
            return V.numeric(word, shape)
        if C.is_channel(cls, knob):
            return V.channels(word, single=True)
        if C.is_channel_set(cls, knob):
            return V.channels(word)
        if knob == "format":
            return V.format_value(word)
        return word.text  # text knobs (file paths keep their TCL), dicts and the rest as written

    def user_knob(self, nk: NkNode, node: Node, kl: KnobLine, lines: list[KnobLine] | None = None) -> None:
        """``addUserKnob {TYPE NAME [l LABEL] [t TOOLTIP] [M {choices}] [T TARGET] ...}``."""
        if kl.value is None or kl.value.kind != "brace":
            return
        parsed = _user_knob_words(kl.value.text)
        if parsed is None:
            return
        kind, name, flags = parsed
        if kind == LINK_KNOB and isinstance(node, Group) and "T" in flags:
            node.extras.setdefault("nuke", {}).setdefault("_links", []).append((name, flags["T"]))
            return
        our = USER_KNOB_TYPES.get(kind)
        if our is None or not name.isidentifier() or name.startswith("_") or node.has_knob(name):
            return
        spec: dict[str, Any] = {"label": flags.get("l", ""), "tooltip": flags.get("t", "")}
        if our == "enum":
            choices = _choices(flags.get("M", ""))
            if not choices:
                return
            spec["values"] = choices
        values: dict[str, Word] = {}
        if lines is not None:  # each knob's last value on these lines, found once per node
            cached = self._values.get(id(lines))
            if cached is None or cached[0] is not lines:
                cached = self._values[id(lines)] = (lines, {v.name: v.value for v in lines if v.value is not None})
            values = cached[1]
        value = values.get(name)
        if value is not None:  # Nuke has no default apart from the value: the script's value is both
            spec["default"] = _user_default(our, value, spec.get("values", ()))
        spec.update(name=name, type=our)
        self._pending.append((nk, spec))

    def add_user_knobs(self, node: Node) -> None:
        """Add the user knobs collected by :meth:`user_knob` to ``node`` (one knob model for all)."""
        pending, self._pending = self._pending, []
        specs = [spec for _nk, spec in pending if not node.has_knob(spec["name"])]
        try:
            node.add_knobs(specs)
            return
        except NodeGraphError:
            pass
        for nk, spec in pending:  # one of them is bad: add them one by one, naming the bad ones
            try:
                node.add_knobs([spec])
            except NodeGraphError as err:
                self.warn(nk, f"{node.name}: user knob {spec['name']!r} kept as written: {err}")

    # --- groups and gizmos ------------------------------------------------------------------------------
    def group(self, nk: NkNode, name: str, cls: str, lines: list[KnobLine], children: list[NkNode],
              gizmo: NkScript | None = None) -> Node:
        if self._depth >= MAX_GROUP_DEPTH:
            raise NkSyntaxError(f"groups nested more than {MAX_GROUP_DEPTH} deep (group {name!r}): not "
                                "supported", line=nk.line or None, column=nk.col or None, path=self.source)
        self._depth += 1
        try:
            group = Group(name)
            sub = gizmo.nodes[0] if gizmo is not None else None
            if sub is not None:  # the gizmo's own knobs (user knobs and their defaults) first
                for kl in sub.lines:
                    if kl.name == "addUserKnob":
                        self.user_knob(sub, group, kl, sub.lines)
            for kl in lines:  # user knobs before their values
                if kl.name == "addUserKnob":
                    self.user_knob(nk, group, kl, lines)
            pending, self._pending = self._pending, []
            self.build(children, group.subgraph)
            self._pending = pending
            self.add_user_knobs(group)
            if sub is not None:
                for kl in sub.lines:
                    if kl.name not in ("addUserKnob", "name") and kl.value is not None and group.has_knob(kl.name) \
                            and kl.name not in C.UI_KNOBS:
                        self.set_knob(sub, group, kl.name, kl.value)
            nuke = group.extras.setdefault("nuke", {})
            for link, target in nuke.pop("_links", []):
                try:
                    group.add_link(link, target)
                    group._link_target(link)
                except NodeGraphError as err:
                    group.link_knobs.pop(link, None)
                    self.warn(nk, f"{name}: link knob {link!r} -> {target!r} dropped: {err}")
            self.knobs(nk, group, [kl for kl in lines if kl.name != "addUserKnob"], skip=frozenset({"label"}))
            nuke["lines"] = [line_raw(kl) for kl in lines]
            nuke["class"] = cls
            if gizmo is not None:
                nuke["gizmo"] = True
            inputs = sorted((n for n in group.subgraph if isinstance(n, GroupInput)),
                            key=lambda n: (n.knobs.number, n.name))
            by_number = {n.knobs.number: n.name for n in inputs}
            width = max(len(nk.inputs), (max(by_number) + 1) if by_number else 0)
            slots = [by_number.get(i) for i in range(width)]
            for index, src in enumerate(nk.inputs):
                if src is not None and slots[index] is None:
                    self.warn(nk, f"{name}: input {index} is connected but the group has no Input number {index}")
            nuke["_slots"] = slots
            return group
        finally:
            self._depth -= 1

    def find_gizmo(self, cls: str, nk: NkNode) -> NkScript | None:
        if cls in self._gizmos:
            return self._gizmos[cls]
        found = None
        for folder in self.gizmo_path:
            path = folder / f"{cls}.gizmo"
            if path.is_file():
                try:
                    script = read_script(path)
                except NodeGraphError as err:
                    self.warn(nk, f"gizmo {cls} at {path}: {err}; kept as a placeholder")
                    break
                if script.nodes and script.nodes[0].cls in GROUP_LIKE:
                    found = script
                break
        self._gizmos[cls] = found
        return found


@functools.lru_cache(maxsize=4096)
def _user_knob_words(text: str) -> tuple[str, str, dict[str, str]] | None:
    """``TYPE NAME [flag value]...`` of an addUserKnob line (the same lines repeat across copies of
    a group: read once); None when it does not name a knob."""
    try:
        items = split_list(text)
    except NodeGraphError:
        return None
    if len(items) < 2:
        return None
    flags = {items[i].text: items[i + 1].text for i in range(2, len(items) - 1)
             if items[i].text in ("l", "t", "M", "T")}
    return items[0].text, items[1].text, flags


@functools.lru_cache(maxsize=4096)
def _choices(text: str) -> tuple[str, ...]:
    try:
        return tuple(w.text for w in split_list(text) if w.text)
    except NodeGraphError:
        return ()


_USER_SHAPES = {"float": (1, float), "int": (1, int), "bool": (1, bool), "xy": (2, float), "xyz": (3, float),
                "wh": (2, float), "box": (4, float), "rgb": (3, float), "color": (4, float)}


def _user_default(kind: str, word: Word, choices: tuple[str, ...]) -> Any:
    """A user knob's default from its value line when that is a plain value (else None)."""
    try:
        if kind in _USER_SHAPES:
            count, base = _USER_SHAPES[kind]
            value = V.numeric(word, animation.Shape(frozenset({count}), base))
            return None if animation.is_animated(value) else (list(value) if isinstance(value, tuple) else value)
        if kind == "enum":
            return V.enum(word, choices)
        return word.text
    except (V.ValueProblem, NodeGraphError):
        return None


def node_name_of(text: str) -> str:
    """A Nuke node name as a nodegraph one: characters other than letters, digits and _ become _."""
    name = re.sub(r"\W", "_", text, flags=re.ASCII) or "Node"
    return "_" + name if name[0].isdigit() else name


_MISSING = object()


class _Placeholder(Exception):
    """A node nodegraph implements, used in a way it cannot represent: keep it verbatim."""


def _children_raw(nk: NkNode) -> list[Any]:
    out = []
    for child in nk.children or []:
        out.append({"class": child.cls, "lines": [line_raw(kl) for kl in child.lines]})
    return out


# --- class-specific values ---------------------------------------------------------------------------------
def _from_input(word: Word) -> str:
    """Shuffle2 ``fromInput1 {{0} B}``: the input by index (0 = B, 1 = A) and name."""
    items = split_list(word.text) if word.kind == "brace" else [word]
    texts = [w.text.strip() for w in items]
    for t in reversed(texts):
        if t in ("A", "B"):
            return t
    if texts and texts[0] in ("0", "1"):
        return "B" if texts[0] == "0" else "A"
    raise V.ValueProblem(f"fromInput {word.raw!r} names neither A nor B")


def _mappings(word: Word) -> dict[str, str]:
    """Shuffle2 ``mappings "N src group index dst group index ..."``: per wire the source channel,
    its layer slot (0: in1, 1: in2, -1: a constant) and index, then the target channel, slot, index."""
    parts = word.text.split()
    if not parts or not parts[0].isdigit():
        raise V.ValueProblem(f"mappings {word.raw[:60]!r} do not start with a count")
    count = int(parts[0])
    rows = parts[1:]
    if len(rows) != 6 * count:
        raise V.ValueProblem(f"mappings say {count} wires but hold {len(rows)} words (6 per wire)")
    out: dict[str, str] = {}
    for i in range(count):
        src, group, _index, dst = rows[6 * i], rows[6 * i + 1], rows[6 * i + 2], rows[6 * i + 3]
        if src in ("black", "white") or group == "-1":
            out[dst] = src if src in ("black", "white") else "black"
        else:
            out[dst] = ("in2:" if group == "1" else "in1:") + src
    return out


def _plain_sources(node: Node) -> dict[str, str]:
    """Shuffle2 wires read as ``in1:ch``/``in2:ch`` written bare where the bare name means the same
    (``ch`` in layer in1; or in in2 and not in in1), as nodegraph writes them."""
    from nodegraph.nodes.shuffle import in_layer

    k = node.knobs
    out = {}
    for target, source in k.mappings.items():
        prefix, colon, channel = source.partition(":")
        if colon and prefix == "in1" and in_layer(channel, k.in1):
            source = channel
        elif colon and prefix == "in2" and in_layer(channel, k.in2) and not in_layer(channel, k.in1):
            source = channel
        out[target] = source
    return out


def _serialised_knobs(word: Word) -> dict[str, Any]:
    """Inference ``serialiseKnob {name:value;name:{"expression"};}``: the model's knob values."""
    out: dict[str, Any] = {}
    text = word.text
    for part in _split_top(text, ";"):
        if not part.strip():
            continue
        key, colon, value = part.partition(":")
        if not colon:
            raise V.ValueProblem(f"serialiseKnob entry {part[:40]!r} is not name:value")
        value = value.strip()
        if value.startswith("{"):
            inner = split_list(value)[0].text if split_list(value) else ""
            raise V.ValueProblem(f"serialiseKnob value of {key.strip()!r} is an expression ({inner[:40]!r}); "
                                 "Inference takes fixed values")
        try:
            out[key.strip()] = V.number(value)
        except V.ValueProblem:
            out[key.strip()] = value
    return out


def _split_top(text: str, sep: str) -> list[str]:
    parts, depth, start = [], 0, 0
    for i, ch in enumerate(text):
        if ch == "{":
            depth += 1
        elif ch == "}":
            depth -= 1
        elif ch == sep and depth == 0:
            parts.append(text[start:i])
            start = i + 1
    parts.append(text[start:])
    return parts


_SPECIAL = {
    ("Shuffle2", "fromInput1"): _from_input,
    ("Shuffle2", "fromInput2"): _from_input,
    ("Shuffle2", "mappings"): _mappings,
}
_SPECIAL[("Inference", "knobValues")] = _serialised_knobs


# --- entry points -------------------------------------------------------------------------------------------
def read_nk(text: str, *, source: str | None = None, gizmo_path: list[str] | None = None) -> NkImport:
    """Read a script's text into a graph (with warnings and the placeholder classes)."""
    script = parse_script(text, source=source)
    return _Reader(script, source, gizmo_search_path(source, gizmo_path)).run()


def read_nk_file(path: str | os.PathLike[str], *, gizmo_path: list[str] | None = None) -> NkImport:
    script = read_script(path)
    result = _Reader(script, str(path), gizmo_search_path(str(path), gizmo_path)).run()
    result.graph.path = os.path.abspath(path)
    return result


def load_nk(path: str | os.PathLike[str], *, gizmo_path: list[str] | None = None) -> Graph:
    """``Graph.load`` for ``.nk``/``.gizmo``: the graph; its ``warnings`` attribute lists the file's."""
    result = read_nk_file(path, gizmo_path=gizmo_path)
    result.graph.warnings = result.warnings  # type: ignore[attr-defined]
    return result.graph


__all__ = ["NkImport", "load_nk", "node_name_of", "read_nk", "read_nk_file"]
