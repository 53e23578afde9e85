"""Lexer and parser of Nuke's expression language, producing a small immutable syntax tree.

Hand-written precedence climbing rather than a parser library: the language is small (one
expression, C's operators plus ``**``), and three of its rules depend on context that a grammar
file expresses poorly: ``.3`` is a component index after a name but a number elsewhere, a dotted
name is a knob reference whose reading (node path, knob, component) depends on its last part, and
``name(arg)`` is a function call or a knob at another frame depending on the name. It also adds
no dependency and reports every error with its exact column. Python's ``eval`` is never used.

Precedence, loosest first (C's order; ``**`` as in Python, right-associative and binding tighter
than a unary minus on its left, so ``-2**2`` is -4 and ``2**-1`` is 0.5)::

    ?:  (right-associative)   ||   &&   |   &   == !=   < <= > >=   + -   * / %   unary - + !   **

``|`` and ``&`` are bitwise on the integer parts of their operands (C on doubles converted to int),
which for the 0/1 results of comparisons is the logical or/and; real scripts write
``a == 0 | b != 0``. ``^`` is rejected with a hint (pow or ``**``): Nuke's docs give it no meaning.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass, field
from typing import Union

from nodegraph.errors import KnobError, shorten

#: Names that are a node path's first part, never a knob of this node.
PATH_WORDS = frozenset({"parent", "root", "this"})
#: Component names after a knob (colour r g b a, position x y z w, size w h, box x y r t, uv u v).
COMPONENT_NAMES = frozenset({"r", "g", "b", "a", "x", "y", "z", "w", "h", "t", "u", "v"})
#: The TCL commands inside ``[...]`` that are understood.
TCL_COMMANDS = ("value", "frame")
#: Names read as a format's size (width, height) where no knob of that name answers.
FORMAT_SIZES = frozenset({"width", "height"})
#: The Nuke release nodegraph answers for (``$nuke_version`` in expressions, as scripts test it:
#: 15.1v5 reads 15.105). Scripts guard features with ``$nuke_version > 13.2``; nodegraph reads
#: Nuke 15.1 scripts (Shuffle2, Cattery gizmos), so it reports that release.
NUKE_VERSION = (15, 1, 5)
#: TCL variables an expression may name, with their values.
TCL_VARIABLES = {"nuke_version": f"{NUKE_VERSION[0]}.{NUKE_VERSION[1]}{NUKE_VERSION[2]:02d}"}
#: Deepest nesting of parentheses, unary operators and calls the parser accepts.
MAX_NESTING = 100
#: Deepest syntax tree (a flat sum of n terms is n deep) that compiles and evaluates.
MAX_DEPTH = 250


class ExpressionError(KnobError):
    """An expression failed to parse or to evaluate.

    ``text`` is the expression, ``column`` the 1-based column of the problem (or None). The
    message shows the text with a caret under the column; the engine adds node, knob and frame
    with ``with_context``.
    """

    def __init__(self, message: str, text: str = "", column: int | None = None) -> None:
        self.text = text
        self.column = column
        self.reason = message
        shown = shorten(text, 400)
        if column is not None:
            where = f" at column {column}" if column <= len(text) else " at the end"
            full = f"{message}{where} in expression {shown!r}"
            if len(text) <= 400 and "\n" not in text:
                full += f"\n  {text}\n  {' ' * (column - 1)}^"
        else:
            full = f"{message} in expression {shown!r}"
        super().__init__(full)


@dataclass(frozen=True)
class Reference:
    """A knob named by an expression.

    ``path`` is the node path as written: ``()`` for a bare knob name of the same node,
    ``("this",)``, ``("parent",)``, ``("root",)``, ``("Grade1",)``, ``("Group1", "Blur2")``,
    ``("parent", "Transform1")``. ``component`` is a name (``"r"``, ``"x"``...), an index
    (``Node.matrix.3``) or None. ``timed`` is True when it is evaluated at a frame of its own
    (``Transform1.translate.x(frame-1)``). ``knob == "curve"`` with ``path == ()`` is Nuke's
    ``curve``: the animation keys stored with the expression itself.

    ``alternative`` is the second reading of a text that has two: ``Ctrl.x`` is this node's
    knob ``Ctrl`` component ``x`` (tried first, as Nuke looks up knobs of the node itself first),
    else node ``Ctrl`` knob ``x``; ``A.B.r`` likewise. An engine resolves ``ref`` and, when that
    names no knob, ``ref.alternative``.

    Paths are relative, as in Nuke (``nuke.knob``): unless a name starts with ``root``, its first
    word is looked up among the knobs of the current node, then among the nodes of the group
    holding it, then in each enclosing group up to the root. ``this`` is the current node and
    ``parent`` the group holding it; the engine does that search, this module only records the
    words.
    """

    path: tuple[str, ...]
    knob: str
    component: str | int | None = None
    timed: bool = False
    alternative: "Reference | None" = field(default=None, compare=True)

    def __str__(self) -> str:
        parts = list(self.path) + [self.knob]
        if self.component is not None:
            parts.append(str(self.component))
        return ".".join(parts) + ("(...)" if self.timed else "")


# --- syntax tree ---------------------------------------------------------------------------------

@dataclass(frozen=True)
class Num:
    value: float
    pos: int


@dataclass(frozen=True)
class Frame:
    """The frame: ``frame``, ``t``, ``[frame]``; or ``x``, which is the frame unless a variable
    ``x`` is given to ``evaluate`` (Nuke: frame, t and x are the frame in a knob expression)."""

    pos: int
    name: str = "frame"


@dataclass(frozen=True)
class Var:
    """A declared variable (per-pixel r, g, x, ``rgba.red``...): supplied to ``evaluate``."""

    name: str
    pos: int


@dataclass(frozen=True)
class Sample:
    """A declared variable read at another pixel: ``r(x + 1, y)`` (the Expression node's form)."""

    name: str
    x: "Node"
    y: "Node"
    pos: int


@dataclass(frozen=True)
class Name:
    """A bare name: a variable when one of that name is given to ``evaluate``, else a knob."""

    name: str
    pos: int
    ref: Reference


@dataclass(frozen=True)
class Ref:
    ref: Reference
    pos: int
    at: "Node | None" = None  # the frame expression of a timed reference


@dataclass(frozen=True)
class Unary:
    op: str
    operand: "Node"
    pos: int


@dataclass(frozen=True)
class Binary:
    op: str
    left: "Node"
    right: "Node"
    pos: int


@dataclass(frozen=True)
class Ternary:
    cond: "Node"
    then: "Node"
    other: "Node"
    pos: int


@dataclass(frozen=True)
class Call:
    name: str
    args: tuple["Node", ...]
    pos: int


Node = Union[Num, Frame, Var, Sample, Name, Ref, Unary, Binary, Ternary, Call]


# --- lexer ---------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Token:
    kind: str  # "num", "name", "op", "tcl", "end"
    text: str
    pos: int  # 0-based offset


_OPS = ("**", "<=", ">=", "==", "!=", "&&", "||", "+", "-", "*", "/", "%", "<", ">", "!", "?",
        ":", "(", ")", ",", ".", "|", "&")


_DIGITS = frozenset("0123456789")
_NAME_START = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ_")
_NAME_CHARS = _NAME_START | _DIGITS


def _digit(c: str) -> bool:
    return c in _DIGITS  # ASCII only: str.isdigit() accepts '²', which float() rejects


def _is_name(word: str) -> bool:
    return bool(word) and word[0] in _NAME_START and all(c in _NAME_CHARS for c in word)


def tokenize(text: str) -> list[Token]:
    tokens: list[Token] = []
    i, n = 0, len(text)
    while i < n:
        c = text[i]
        if c in " \t\r\n":
            i += 1
            continue
        start = i
        prev = tokens[-1] if tokens else None
        after_name = prev is not None and prev.kind == "name" and prev.pos + len(prev.text) == i
        after_dot = prev is not None and prev.kind == "op" and prev.text == "." and prev.pos + 1 == i
        if _digit(c) and after_dot:  # a component index: Node.matrix.3
            while i < n and _digit(text[i]):
                i += 1
            tokens.append(Token("num", text[start:i], start))
        elif _digit(c) or (c == "." and i + 1 < n and _digit(text[i + 1]) and not after_name):
            while i < n and _digit(text[i]):
                i += 1
            if i < n and text[i] == ".":
                i += 1
                while i < n and _digit(text[i]):
                    i += 1
            if i < n and text[i] in "eE":
                j = i + 1
                if j < n and text[j] in "+-":
                    j += 1
                if j < n and _digit(text[j]):
                    i = j
                    while i < n and _digit(text[i]):
                        i += 1
            if i < n and text[i] in _NAME_START:
                raise ExpressionError(f"malformed number {text[start:i + 1]!r}", text, start + 1)
            tokens.append(Token("num", text[start:i], start))
        elif c in _NAME_START:
            while i < n and text[i] in _NAME_CHARS:
                i += 1
            tokens.append(Token("name", text[start:i], start))
        elif c == "[":
            depth = 0
            while i < n:
                if text[i] == "[":
                    depth += 1
                elif text[i] == "]":
                    depth -= 1
                    if depth == 0:
                        break
                i += 1
            if i >= n:
                raise ExpressionError("unclosed '['", text, start + 1)
            i += 1
            tokens.append(Token("tcl", text[start:i], start))
        elif c == "$":
            j = i + 1
            while j < n and text[j] in _NAME_CHARS:
                j += 1
            value = TCL_VARIABLES.get(text[i + 1:j])
            if value is None:
                raise ExpressionError(f"TCL variables are not supported ({text[i:j]}; only "
                                      f"{', '.join('$' + v for v in TCL_VARIABLES)})", text, start + 1)
            tokens.append(Token("num", value, start))
            i = j
        elif c == "^":
            raise ExpressionError("'^' is not an operator of Nuke's expressions; write pow(a, b) or a ** b",
                                  text, start + 1)
        elif c == "=" and text[i:i + 2] != "==":
            raise ExpressionError("'=' is not an operator; did you mean '=='?", text, start + 1)
        else:
            for op in _OPS:
                if text.startswith(op, i):
                    tokens.append(Token("op", op, start))
                    i += len(op)
                    break
            else:
                raise ExpressionError(f"unexpected character {c!r}", text, start + 1)
    tokens.append(Token("end", "", n))
    return tokens


# --- parser --------------------------------------------------------------------------------------

_BINARY_LEVELS = (("||",), ("&&",), ("|",), ("&",), ("==", "!="), ("<", "<=", ">", ">="), ("+", "-"),
                  ("*", "/", "%"))
_PRECEDENCE = {op: level for level, ops in enumerate(_BINARY_LEVELS) for op in ops}


class Parser:
    """Recursive descent for primaries, precedence climbing for binary operators."""

    def __init__(self, text: str, functions: dict[str, tuple[int, int]], variables: frozenset[str]) -> None:
        self.text = text
        self.functions = functions  # name -> (least, most) arguments; most -1 = any
        self.variables = variables
        self.tokens = tokenize(text)
        self.i = 0
        self.depth = 0

    def error(self, message: str, pos: int) -> ExpressionError:
        return ExpressionError(message, self.text, pos + 1)

    @property
    def tok(self) -> Token:
        return self.tokens[self.i]

    def describe(self, tok: Token) -> str:
        return "the end of the expression" if tok.kind == "end" else repr(tok.text)

    def take(self, op: str) -> Token:
        tok = self.tok
        if tok.kind != "op" or tok.text != op:
            raise self.error(f"expected {op!r}, found {self.describe(tok)}", tok.pos)
        self.i += 1
        return tok

    def at_op(self, *ops: str) -> bool:
        return self.tok.kind == "op" and self.tok.text in ops

    def parse(self) -> Node:
        if self.tok.kind == "end":
            raise self.error("empty expression", 0)
        node = self.expression()
        if self.tok.kind != "end":
            raise self.error(f"unexpected {self.describe(self.tok)} after a complete expression", self.tok.pos)
        return node

    def expression(self) -> Node:
        self.depth += 1
        if self.depth > MAX_NESTING:
            raise self.error(f"expression nests more than {MAX_NESTING} levels deep", self.tok.pos)
        cond = self.binary(0)
        if self.at_op("?"):
            q = self.take("?")
            then = self.expression()
            self.take(":")
            other = self.expression()
            cond = Ternary(cond, then, other, q.pos)
        self.depth -= 1
        return cond

    def binary(self, least: int) -> Node:
        """Precedence climbing: operators of level >= ``least``, left-associative."""
        left = self.unary()
        while self.tok.kind == "op" and _PRECEDENCE.get(self.tok.text, -1) >= least:
            op = self.tok
            self.i += 1
            left = Binary(op.text, left, self.binary(_PRECEDENCE[op.text] + 1), op.pos)
        return left

    def unary(self) -> Node:
        if self.at_op("-", "+", "!"):
            op = self.tok
            self.i += 1
            self.depth += 1
            if self.depth > MAX_NESTING:
                raise self.error(f"expression nests more than {MAX_NESTING} levels deep", op.pos)
            operand = self.unary()
            self.depth -= 1
            return operand if op.text == "+" else Unary(op.text, operand, op.pos)
        base = self.primary()
        if self.at_op("**"):
            op = self.take("**")
            return Binary("**", base, self.unary(), op.pos)
        return base

    def primary(self) -> Node:
        tok = self.tok
        if tok.kind == "num":
            self.i += 1
            return Num(float(tok.text), tok.pos)
        if tok.kind == "op" and tok.text == "(":
            self.i += 1
            node = self.expression()
            self.take(")")
            return node
        if tok.kind == "name":
            return self.named()
        if tok.kind == "tcl":
            self.i += 1
            return self.tcl(tok)
        if tok.kind == "end":
            raise self.error("expected a value, found the end of the expression", tok.pos)
        raise self.error(f"expected a value, found {tok.text!r}", tok.pos)

    def arguments(self) -> tuple[list[Node], int]:
        open_ = self.take("(")
        args: list[Node] = []
        if not self.at_op(")"):
            args.append(self.expression())
            while self.at_op(","):
                self.i += 1
                args.append(self.expression())
        self.take(")")
        return args, open_.pos

    def named(self) -> Node:
        first = self.tok
        self.i += 1
        parts: list[str] = [first.text]
        while self.at_op(".") and self.tokens[self.i + 1].kind in ("name", "num"):
            nxt = self.tokens[self.i + 1]
            if nxt.kind == "num" and not all(_digit(c) for c in nxt.text):
                break
            parts.append(nxt.text)
            self.i += 2
        if self.at_op("."):
            raise self.error("expected a knob or component name after '.'", self.tok.pos + 1)
        dotted = ".".join(parts)
        call = self.at_op("(")
        if len(parts) == 1:
            name = parts[0]
            if call and name in self.functions:
                args, _ = self.arguments()
                return self.function(name, args, first.pos)
            if call and name in ("curve", "y"):
                return self.timed(Reference((), "curve"), first.pos)
            if call and name in self.variables:
                args, open_pos = self.arguments()
                if len(args) != 2:
                    raise self.error(f"variable {name!r} is read at another pixel as {name}(x, y); "
                                     f"got {len(args)} argument(s)", open_pos)
                return Sample(name, args[0], args[1], first.pos)
            if call:
                if name in ("frame", "t", "pi", "x"):
                    raise self.error(f"{name!r} is not a function", first.pos)
                close = difflib.get_close_matches(name, list(self.functions), n=1, cutoff=0.75)
                args, _ = self.arguments()
                if len(args) != 1 or close:
                    raise self.unknown_function(name, first.pos, close)
                return Ref(Reference((), name, None, True), first.pos, args[0])
            if name in self.variables:
                return Var(name, first.pos)
            if name in ("frame", "t"):
                return Frame(first.pos)
            if name == "x":
                return Frame(first.pos, "x")
            if name == "y":  # Nuke: the value of the knob's own keys (curve), unless given as a variable
                return Name("y", first.pos, Reference((), "curve"))
            if name == "pi":
                return Num(3.141592653589793, first.pos)
            if name == "curve":
                return Ref(Reference((), "curve"), first.pos)
            return Name(name, first.pos, Reference((), name))
        if dotted in self.variables and not call:
            return Var(dotted, first.pos)
        ref = self.reference(parts, first.pos)
        if call:
            return self.timed(ref, first.pos)
        return Ref(ref, first.pos)

    def timed(self, ref: Reference, pos: int) -> Ref:
        args, open_pos = self.arguments()
        if len(args) != 1:
            raise self.error(f"a knob reference takes one argument, the frame; {str(ref)!r} got {len(args)}", open_pos)
        alt = ref.alternative
        if alt is not None:
            alt = Reference(alt.path, alt.knob, alt.component, True)
        return Ref(Reference(ref.path, ref.knob, ref.component, True, alt), pos, args[0])

    def reference(self, parts: list[str], pos: int) -> Reference:
        last = parts[-1]
        component: str | int | None = None
        if all(_digit(c) for c in last):
            component = int(last)
        elif last in COMPONENT_NAMES:
            component = last
        if _digit(parts[0][0]):
            raise self.error("a node path cannot start with a number", pos)
        if component is None:
            return Reference(tuple(parts[:-1]), last)
        plain = Reference(tuple(parts[:-1]), last) if not isinstance(component, int) else None
        if len(parts) == 2:
            if parts[0] in PATH_WORDS:  # parent.x, root.x, this.x: the knob named x
                if isinstance(component, int):
                    raise self.error(f"{'.'.join(parts)!r} names no knob", pos)
                return Reference((parts[0],), last)
            return Reference((), parts[0], component, False, plain)
        return Reference(tuple(parts[:-2]), parts[-2], component, False, plain)

    def unknown_function(self, name: str, pos: int, close: list[str]) -> ExpressionError:
        hint = f"; did you mean {close[0]}?" if close else ""
        valid = ", ".join(sorted(self.functions, key=str.lower))
        return self.error(f"unknown function {name!r}{hint} (known functions: {valid})", pos)

    def function(self, name: str, args: list[Node], pos: int) -> Node:
        least, most = self.functions[name]
        if len(args) < least or (most >= 0 and len(args) > most):
            if least == most:
                want = f"{least}"
            elif most < 0:
                want = f"at least {least}"
            else:
                want = f"{least} to {most}"
            raise self.error(f"{name}() takes {want} argument(s), got {len(args)}", pos)
        if name == "pi":
            return Num(3.141592653589793, pos)
        return Call(name, tuple(args), pos)

    def tcl(self, tok: Token) -> Node:
        inner = tok.text[1:-1]
        words = inner.split()
        if not words:
            raise self.error("empty TCL command '[]'", tok.pos)
        command = words[0]
        if command == "frame" and len(words) == 1:
            return Frame(tok.pos)
        if command == "value" and len(words) == 2:
            path = words[1]
            parts = path.split(".")
            if _is_name(parts[0]) and all(_is_name(p) or (p and all(_digit(c) for c in p)) for p in parts[1:]):
                if len(parts) == 1:
                    return Name(parts[0], tok.pos, Reference((), parts[0]))
                return Ref(self.reference(parts, tok.pos), tok.pos)
            raise self.error(f"[value] needs a knob path such as Grade1.white, got {path!r}", tok.pos)
        if command in TCL_COMMANDS:
            usage = "[frame]" if command == "frame" else "[value NODE.KNOB]"
            raise self.error(f"unsupported form of TCL command {command!r}: only {usage} is understood", tok.pos)
        raise self.error(f"unsupported TCL command {command!r} (only [value NODE.KNOB] and [frame] are understood)",
                         tok.pos)


def children(node: Node) -> tuple[Node, ...]:
    """The direct subtrees of a node, left to right."""
    if isinstance(node, Unary):
        return (node.operand,)
    if isinstance(node, Binary):
        return (node.left, node.right)
    if isinstance(node, Ternary):
        return (node.cond, node.then, node.other)
    if isinstance(node, Call):
        return node.args
    if isinstance(node, Ref) and node.at is not None:
        return (node.at,)
    if isinstance(node, Sample):
        return (node.x, node.y)
    return ()


def walk(node: Node):
    """Every node of a tree, parents before children, left to right."""
    stack = [node]
    while stack:
        cur = stack.pop()
        yield cur
        stack.extend(reversed(children(cur)))
