"""``.nk`` statements and Nuke's stack language, into a neutral tree (no nodegraph classes here).

A script is a list of TCL commands: ``Class {knobs}`` makes a node, ``push``/``set`` and ``[stack
N]`` move nodes on a stack, ``Group {...}`` ... ``end_group`` nest. Each node statement pops its
inputs from the stack and pushes the node; the *top* of the stack is input 0 (for Merge2: B, then
A, then the mask). Malformed files that real tools wrote (a knob with no value, a doubled
``inputs`` line, ``push`` of a name never set, too few entries on the stack, a missing
``end_group``) load with :class:`NkWarning` entries; text that cannot be a script raises
:class:`~nodegraph.nuke.tcl.NkSyntaxError` with the line and column.
"""

from __future__ import annotations

import gc
import os
import re
from dataclasses import dataclass, field

from nodegraph.errors import NodeGraphError
from nodegraph.nuke.tcl import NkSyntaxError, Word, iter_commands, normalize_newlines

#: Classes whose statement opens a body of child nodes closed by ``end_group``.
GROUP_CLASSES = frozenset({"Group", "Gizmo", "LiveGroup"})
#: Most inputs one node may declare (Nuke's widest nodes take a few hundred).
MAX_INPUTS = 65536

#: Top-level commands that are never node statements (in forms not understood: kept in ``other``).
_COMMANDS = frozenset({"set", "push", "end_group", "version", "define_window_layout_xml", "add_layer", "clone"})
_IDENT = re.compile(r"[^\W\d][\w.:\-]*")
_INPUTS = re.compile(r"(\d+)(?:\+(\d+))?")
_STACK = re.compile(r"\[stack\s+(\d+)\]")


@dataclass
class NkWarning:
    """Something malformed that Nuke (or a tool) wrote and that was loaded anyway."""

    line: int
    col: int
    message: str

    def __str__(self) -> str:
        return f"line {self.line}, column {self.col}: {self.message}"


@dataclass(slots=True)
class KnobLine:
    """One line of a node body, in file order (``addUserKnob`` lines included)."""

    name: str
    value: Word | None  # None: a knob name with no value (malformed but real; warned about)
    extra: list[Word]  # further words on the line, kept verbatim
    line: int
    col: int = 0


@dataclass(eq=False, slots=True)
class NkNode:
    """A node statement: its class as written, body lines and resolved inputs."""

    cls: str
    lines: list[KnobLine] = field(default_factory=list)  # every body line except 'inputs'
    inputs: list["NkNode | None"] = field(default_factory=list)  # input 0 first; None: not connected
    input_count: int = 1  # N of 'inputs N' / 'inputs N+M' (1 when the line is missing)
    mask_inputs: int = 0  # M of 'inputs N+M'
    children: list["NkNode"] | None = None  # group/gizmo bodies up to end_group
    clone_of: "NkNode | None" = None  # for 'clone $C {...}': the node it clones
    clone_id: str | None = None  # for 'clone nodeXXXX|Class|N ...': XXXX
    line: int = 0
    col: int = 0
    body: Word | None = None  # the braced body as written (None: a statement without one)
    has_inputs_line: bool = False  # whether the body had an 'inputs' line (else input_count is Nuke's default 1)

    def knob(self, name: str) -> Word | None:
        """The last value given to knob ``name``, or None."""
        for kl in reversed(self.lines):
            if kl.name == name:
                return kl.value
        return None

    @property
    def name(self) -> str | None:
        """The ``name`` knob's text."""
        word = self.knob("name")
        return word.text if word is not None else None

    def __repr__(self) -> str:  # never the inputs/children: a long chain would recurse deeply
        name = f" {self.name!r}" if self.name is not None else ""
        return f"<NkNode {self.cls}{name} line {self.line}>"


@dataclass
class NkScript:
    nodes: list[NkNode] = field(default_factory=list)  # top level, file order (Root excluded)
    root: NkNode | None = None  # the Root {...} block
    version: str | None = None  # "14.0 v6"
    header: list[str] = field(default_factory=list)  # leading comment lines ('#!...', '#write_info ...')
    layout: Word | None = None  # define_window_layout_xml value
    layers: list[Word] = field(default_factory=list)  # add_layer values, in order
    other: list[list[Word]] = field(default_factory=list)  # other top-level commands, verbatim
    warnings: list[NkWarning] = field(default_factory=list)
    ends_open: bool = False  # end_group missing at the end of the file (gizmo files and the like)
    comments: list[Word] = field(default_factory=list)  # comments after the first command
    names: dict[str, "NkNode | None"] = field(default_factory=dict)  # 'set NAME [stack N]' names

    def walk(self):
        """Every node, depth first in file order (group children after their group)."""
        todo = list(reversed(self.nodes))
        while todo:
            node = todo.pop()
            yield node
            if node.children:
                todo.extend(reversed(node.children))


class _Parser:
    def __init__(self, text: str, group_classes: frozenset[str]) -> None:
        self.text = text
        self.group_classes = group_classes
        self.script = NkScript()
        self.stack: list[NkNode | None] = []
        self.nodes = self.script.nodes
        self.open_groups: list[tuple[NkNode, list, list]] = []  # (group, outer stack, outer node list)
        self.started = False

    def warn(self, word: Word | NkNode, message: str) -> None:
        self.script.warnings.append(NkWarning(word.line, word.col, message))

    def fail(self, word: Word, message: str) -> NkSyntaxError:
        return NkSyntaxError(message, line=word.line, column=word.col)

    def run(self) -> NkScript:
        script = self.script
        for words in iter_commands(self.text, comments=True):
            head = words[0]
            if head.kind == "comment":
                if self.started:
                    script.comments.append(head)
                else:
                    script.header.append(head.raw)
                continue
            self.started = True
            self.command(head.text if head.kind == "bare" else None, head, words)
        if self.open_groups:
            script.ends_open = True
            self.warn(self.open_groups[-1][0], f"end_group missing for {len(self.open_groups)} group(s) at the end of the file")
            while self.open_groups:
                self.end_group()
        return script

    def command(self, verb: str | None, head: Word, words: list[Word]) -> None:
        script = self.script
        if verb == "push":
            self.push(head, words)
        elif verb == "set" and len(words) == 3 and words[2].kind == "bare" and _STACK.fullmatch(words[2].text):
            depth = int(_STACK.fullmatch(words[2].text).group(1))
            if depth >= len(self.stack):
                if words[1].text != "cut_paste_input":  # a pasted snippet: the selection is not in the file
                    self.warn(words[2], f"set {words[1].text}: the stack holds {len(self.stack)} entries")
                script.names[words[1].text] = None
            else:
                script.names[words[1].text] = self.stack[-1 - depth]
        elif verb == "end_group" and len(words) == 1:
            if self.open_groups:
                self.end_group()
            else:
                self.warn(head, "end_group without an open group")
        elif verb == "version" and len(words) >= 2:
            script.version = " ".join(w.text for w in words[1:])
        elif verb == "define_window_layout_xml" and len(words) == 2:
            script.layout = words[1]
        elif verb == "add_layer" and len(words) == 2:
            script.layers.append(words[1])
        elif verb == "clone" and len(words) >= 2:
            self.clone(head, words)
        elif verb == "Root" and len(words) <= 2:
            if script.root is not None:
                self.warn(head, "a second Root block (the last one is kept)")
            script.root = self.node("Root", head, words[1:], stack_effect=False)
        elif verb is None or not _IDENT.fullmatch(verb):
            raise self.fail(head, f"not a Nuke script: a command cannot start with {head.raw[:40]!r}")
        elif len(words) <= 2 and verb not in _COMMANDS:
            self.node(verb, head, words[1:])
        else:
            self.warn(head, f"unknown command {verb!r} kept as written")
            script.other.append(words)

    def push(self, head: Word, words: list[Word]) -> None:
        if len(words) != 2:
            self.warn(head, "push needs one argument; pushing nothing (0)")
            self.stack.append(None)
            return
        arg = words[1].text
        if arg == "0":
            self.stack.append(None)
        elif arg.startswith("$") and arg[1:] in self.script.names:
            self.stack.append(self.script.names[arg[1:]])
        else:
            self.warn(words[1], f"push of {arg!r}, a name never set; pushing nothing (0)")
            self.stack.append(None)

    def clone(self, head: Word, words: list[Word]) -> None:
        ref = words[1].text
        body = words[2:]
        if ref.startswith("$"):
            original = self.script.names.get(ref[1:])
            if original is None or len(body) > 1:
                self.warn(words[1], f"clone of {ref!r}, which names no node; kept as written")
                self.script.other.append(words)
                node = NkNode("", line=head.line, col=head.col)  # pops its inputs, pushes nothing real
                self.body(node, body[-1] if body and body[-1].kind == "brace" else None)
                self.take_inputs(node, head)
                self.stack.append(None)
                return
            node = self.node(original.cls, head, body)
            node.clone_of = original.clone_of or original
            return
        # clone node7f6100171d00|Write|21972 Write {...}
        parts = ref.split("|")
        cls = body[0].text if len(body) == 2 else (parts[1] if len(parts) > 1 else "")
        if len(body) > 2 or not _IDENT.fullmatch(cls):
            raise self.fail(words[1], f"a clone statement must read 'clone nodeID|Class|N Class {{...}}', not {ref[:60]!r}")
        node = self.node(cls, head, body[-1:])
        node.clone_id = parts[0][4:] if parts[0].startswith("node") else parts[0]

    def node(self, cls: str, head: Word, rest: list[Word], *, stack_effect: bool = True) -> NkNode:
        node = NkNode(cls, line=head.line, col=head.col)
        if rest and rest[0].kind != "brace":
            raise self.fail(rest[0], f"the body of a {cls} node must be a braced word")
        self.body(node, rest[0] if rest else None)
        if not stack_effect:
            return node
        self.take_inputs(node, head)
        self.nodes.append(node)
        if cls in self.group_classes:
            node.children = []
            self.open_groups.append((node, self.stack, self.nodes))
            self.stack = []
            self.nodes = node.children
        else:
            self.stack.append(node)
        return node

    def take_inputs(self, node: NkNode, head: Word) -> None:
        want = node.input_count + node.mask_inputs
        stack = self.stack
        # Without an 'inputs' line the node takes what is there (a gizmo file's Group, the first
        # node of a pasted snippet): an empty stack is the usual case, not a problem.
        if want > len(stack) and node.has_inputs_line:
            self.warn(head, f"{node.cls}: {want} input(s) but the stack holds {len(stack)}; "
                            "the missing ones are not connected")
        node.inputs = [stack.pop() if stack else None for _ in range(want)]

    def end_group(self) -> None:
        group, self.stack, self.nodes = self.open_groups.pop()
        self.stack.append(group)

    def body(self, node: NkNode, word: Word | None) -> None:
        node.body = word
        if word is None:
            return
        lines = node.lines
        seen_inputs = False
        for words in iter_commands(self.text, word.start + 1, word.end - 1, word.line, word.start - word.col + 1):
            name = words[0]  # a quoted name is real too ("Screen Matte" 0, from Keylight)
            if name.text == "inputs":
                if seen_inputs:
                    self.warn(name, "a doubled 'inputs' line (the last one is kept)")
                seen_inputs = True
                self.inputs_line(node, name, words)
                continue
            if len(words) == 1:
                self.warn(name, f"knob {name.text!r} has no value")
                lines.append(KnobLine(name.text, None, [], name.line, name.col))
            else:
                lines.append(KnobLine(name.text, words[1], words[2:], name.line, name.col))

    def inputs_line(self, node: NkNode, name: Word, words: list[Word]) -> None:
        if len(words) > 2 and len(words) % 2 == 0 and all(w.text == "inputs" for w in words[::2]):
            self.warn(name, "a doubled 'inputs' line (the last one is kept)")  # 'inputs 0 inputs 0', seen in real files
            words = words[-2:]
        m = _INPUTS.fullmatch(words[1].text) if len(words) == 2 else None
        if m is None:
            raise self.fail(words[-1], "'inputs' must be a count such as 2 or 1+1")
        count, masks = int(m.group(1)), int(m.group(2) or 0)
        if count + masks > MAX_INPUTS:
            raise self.fail(words[1], f"{count + masks} inputs: more than {MAX_INPUTS}")
        node.input_count, node.mask_inputs = count, masks
        node.has_inputs_line = True


def parse_script(text: str, *, source: str | None = None,
                 group_classes: frozenset[str] = GROUP_CLASSES) -> NkScript:
    """The tree of a ``.nk`` script (or gizmo) given as text; ``source`` names it in errors."""
    try:
        if text.startswith("\ufeff"):
            text = text[1:]
        nul = text.find("\0", 0, 1024)
        if nul >= 0:
            line = text.count("\n", 0, nul) + 1
            raise NkSyntaxError("not a Nuke script: binary data (a NUL byte)", line=line,
                                column=nul - text.rfind("\n", 0, nul))
        # The tree holds no reference cycles, and the collector's passes over a heap that grows by
        # millions of objects cost more than the parse itself (quadratic on a 50 MB script).
        collecting = gc.isenabled()
        gc.disable()
        try:
            return _Parser(normalize_newlines(text), group_classes).run()
        finally:
            if collecting:
                gc.enable()
    except NkSyntaxError as err:
        raise err.with_context(path=source) if source is not None else err


def read_script(path: str | os.PathLike) -> NkScript:
    """Read and parse a ``.nk``/``.gizmo`` file: UTF-8, falling back to latin-1 (old scripts)."""
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError as err:
        raise NodeGraphError(f"cannot read the script: {err.strerror or err}", path=os.fspath(path)) from None
    if data.startswith(b"\xef\xbb\xbf"):
        data = data[3:]
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        text = data.decode("latin-1")
    return parse_script(text, source=os.fspath(path))
