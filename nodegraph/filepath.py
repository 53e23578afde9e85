"""File knobs as Nuke evaluates them: the TCL in a path, and relative paths.

A Nuke ``file`` knob holds TCL: ``[file dirname [value root.name]]/plates/x.%04d.exr`` reads the
plates next to the script, ``render.[format %04d [frame]].exr`` names a file per frame. Scripts
imported into nodegraph keep that text verbatim (so they write back unchanged); Read and Write
expand it here when they read or write a frame.

Supported, and nothing else (anything else is a :class:`~nodegraph.errors.KnobError` naming the
node, the knob, the text and what is not supported):

- ``[frame]``; ``[format SPEC ARG...]`` with printf specs (``%04d``, ``%s``, ``%.2f``...);
- ``[value root.name]`` (the script's path), ``[value root.KNOB]``, ``[value KNOB]`` /
  ``[value this.KNOB]`` (this node), ``[value NODE.KNOB]``, ``[value parent.KNOB]``;
- ``[file dirname|tail|rootname|extension PATH]`` and ``[file join A B...]``, with TCL's rules;
- ``[getenv NAME]`` and ``$env(NAME)``: environment variables (unset is an error: a path that lost
  its root would read or write somewhere else);
- ``[python EXPR]`` / ``[python {EXPR}]`` for a fixed set of expressions real scripts use, matched
  as text and **never run**: ``nuke.script_directory()``, ``nuke.root().name()`` (also
  ``nuke.root()['name'].value()``), ``os.path.dirname(...)`` / ``os.path.basename(...)`` of the
  root name, ``nuke.frame()``, ``os.environ['X']``, ``os.environ.get('X')``, ``os.getenv('X')``;
- backslash before ``[ ] { } $ " \\`` or a space gives that character; any other backslash is kept
  (Windows paths). A ``$`` not followed by ``env(`` is kept too: ``$F4`` is a frame token
  (:mod:`nodegraph.io.sequence`), and ``%04d``/``####`` padding is left for the sequence code.

The evaluator is hand-written: no maintained TCL interpreter for Python evaluates these forms
without running code (``tkinter.Tcl`` would run ``[exec ...]`` from any script a user opens),
and the engine may not import ``nodegraph.nuke`` (a layer above the node library, which calls
this). Parsing is cached per text and checks every command up front, so ``Graph.validate()``
reports an unsupported form before a render starts.

A relative result resolves against the folder of the script the graph came from
(``graph.top.path``, Nuke's ``root.name``); a graph that was never loaded or saved keeps paths
relative to the current directory.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from functools import lru_cache
from typing import TYPE_CHECKING, Any, Callable, Mapping, Union

from nodegraph.errors import KnobError, NodeGraphError, safe_repr

if TYPE_CHECKING:
    from nodegraph.node import Node

#: Deepest nesting of ``[...]`` accepted (real scripts nest two or three deep).
MAX_DEPTH = 32
#: Widest ``format`` field accepted (``%0999999999d`` would build a gigabyte string).
MAX_WIDTH = 256

SUPPORTED = ("[frame], [format ...], [value ...], [file dirname|tail|rootname|extension|join ...], "
             "[getenv NAME], $env(NAME), [python ...] for nuke.script_directory() and the root name")
_FILE_OPS = {"dirname": 1, "tail": 1, "rootname": 1, "extension": 1, "join": None}
_ESCAPABLE = frozenset("[]{}$\"\\ ")
_ENV = re.compile(r"\$env\(([A-Za-z_][A-Za-z0-9_]*)\)")
_FORMAT_SPEC = re.compile(r"%([-+ 0#]*)(\d*)(?:\.(\d+))?([diouxXeEfgGsc%])")

# --- the python forms, matched as text ---------------------------------------------------------
_Q = r"""(?:'([A-Za-z_][A-Za-z0-9_]*)'|"([A-Za-z_][A-Za-z0-9_]*)")"""
_ROOT_NAME = r"""nuke\.root\(\)(?:\.name\(\)|\[(?:'name'|"name")\]\.value\(\)|\.knob\((?:'name'|"name")\)\.value\(\))"""
_PYTHON_FORMS: tuple[tuple[re.Pattern, str], ...] = tuple((re.compile(p + r"\Z"), kind) for p, kind in (
    (r"nuke\.script_directory\(\)", "script_dir"),
    (_ROOT_NAME, "script"),
    (r"os\.path\.dirname\(" + _ROOT_NAME + r"\)", "script_dir"),
    (r"os\.path\.basename\(" + _ROOT_NAME + r"\)", "script_tail"),
    (r"nuke\.frame\(\)", "frame"),
    (r"os\.environ\[" + _Q + r"\]", "env"),
    (r"os\.environ\.get\(" + _Q + r"\)", "env"),
    (r"os\.getenv\(" + _Q + r"\)", "env"),
))


# --- the parsed form ---------------------------------------------------------------------------
@dataclass(frozen=True)
class Env:
    """``$env(NAME)``."""

    name: str


@dataclass(frozen=True)
class Command:
    """``[name arg...]``: each argument is a sequence of parts (substitutions kept)."""

    name: str
    args: tuple[tuple["Part", ...], ...]
    python: tuple[str, str, str] | None = None  # (kind, env name, source) of a recognised [python ...]


Part = Union[str, Env, Command]


class _Unsupported(Exception):
    """A form outside the supported set; the caller names node, knob and text."""


def _literal(parts: tuple[Part, ...]) -> str | None:
    """The text of a word without substitutions, else None."""
    if all(isinstance(p, str) for p in parts):
        return "".join(parts)  # type: ignore[arg-type]
    return None


@lru_cache(maxsize=8)
def _specials(stop: str) -> re.Pattern:
    """What :meth:`_Parser.parts` must look at: a backslash, ``[``, ``$env(`` and ``stop``."""
    return re.compile(r"\\|\[|\$env\(" + (f"|[{re.escape(stop)}]" if stop else ""))


class _Parser:
    """Recursive descent over one knob text; recursion is bounded by :data:`MAX_DEPTH`."""

    def __init__(self, text: str) -> None:
        self.s = text
        self.i = 0

    def parts(self, stop: str, depth: int) -> tuple[Part, ...]:
        """Text up to (not including) a character of ``stop`` or the end, with substitutions."""
        s, out, buf = self.s, [], []
        special = _specials(stop)
        while self.i < len(s):
            m = special.search(s, self.i)
            if m is None:
                buf.append(s[self.i:])
                self.i = len(s)
                break
            if m.start() > self.i:
                buf.append(s[self.i:m.start()])
                self.i = m.start()
            c = s[self.i]
            if c in stop:
                break
            if c == "\\":
                nxt = s[self.i + 1:self.i + 2]
                if nxt in _ESCAPABLE and nxt:
                    buf.append(nxt)
                    self.i += 2
                else:
                    buf.append(c)
                    self.i += 1
            elif c == "[":
                if buf:
                    out.append("".join(buf))
                    buf = []
                self.i += 1
                out.append(self.command(depth + 1))
            elif c == "$" and (m := _ENV.match(s, self.i)):
                if buf:
                    out.append("".join(buf))
                    buf = []
                out.append(Env(m.group(1)))
                self.i = m.end()
            elif c == "$" and s.startswith("$env(", self.i):
                raise _Unsupported("'$env(' must be followed by a variable name and ')'")
            else:
                buf.append(c)
                self.i += 1
        if buf:
            out.append("".join(buf))
        return tuple(out)

    def balanced(self, closer: str, opens: str, closes: str, what: str) -> str:
        """Text up to the ``closer`` outside any nesting of ``opens``/``closes`` (backslash escapes
        skipped); the closer is consumed. ``what`` names the opening for the error."""
        s, start, level = self.s, self.i, 0
        while self.i < len(s):
            c = s[self.i]
            if c == "\\":
                self.i += 2
                continue
            self.i += 1
            if c == closer and level <= 0:
                return s[start:self.i - 1]
            if c in opens:
                level += 1
            elif c in closes:
                level -= 1
        raise _Unsupported(f"{what} is never closed")

    def command(self, depth: int) -> Command:
        """The command after a ``[`` up to its ``]``."""
        if depth > MAX_DEPTH:
            raise _Unsupported(f"commands nested deeper than {MAX_DEPTH}")
        s = self.s
        words: list[tuple[Part, ...]] = []
        while True:
            while self.i < len(s) and s[self.i] in " \t":
                self.i += 1
            if self.i >= len(s):
                raise _Unsupported("an opening bracket '[' is never closed")
            c = s[self.i]
            if c == "]":
                self.i += 1
                break
            if c in "\n;":
                raise _Unsupported("several commands inside one [...]")
            if len(words) == 1 and words[0] == ("python",):
                return _python(self.python_source())
            if c == "{":
                self.i += 1
                words.append((self.balanced("}", "{", "}", "an opening brace '{'"),))
            elif c == '"':
                self.i += 1
                words.append(self.parts('"', depth))
                if self.i >= len(s):
                    raise _Unsupported('a quote \'"\' is never closed')
                self.i += 1
            else:
                words.append(self.parts(" \t\n;]", depth))
                continue
            if self.i < len(s) and s[self.i] not in " \t]":
                raise _Unsupported(f"extra characters after a closing {'brace' if c == '{' else 'quote'}")
        return _checked(words)

    def python_source(self) -> str:
        """The text of a ``[python ...]`` up to its ``]``, taken as written (its brackets are
        Python's subscripts, not TCL commands); one braced word loses its braces."""
        text = self.balanced("]", "[{", "]}", "an opening bracket '['").strip()
        return text[1:-1] if text.startswith("{") and text.endswith("}") else text


def _unsupported(what: str) -> _Unsupported:
    return _Unsupported(f"{what} is not supported in file paths (supported: {SUPPORTED})")


def _python(source: str) -> Command:
    """A ``[python ...]`` matched against the known expressions; never run."""
    expr = re.sub(r"\s+", "", source)
    for rx, kind in _PYTHON_FORMS:
        m = rx.match(expr)
        if m:
            return Command("python", (), (kind, next((g for g in m.groups() if g), ""), source))
    raise _Unsupported(f"the python expression {source!r} is not supported in file paths (nodegraph never "
                       "runs Python; it recognises nuke.script_directory(), nuke.root().name(), "
                       "os.path.dirname/basename of it, nuke.frame() and os.environ/os.getenv of a name)")


def _checked(words: list[tuple[Part, ...]]) -> Command:
    """``words`` as a :class:`Command`, or :class:`_Unsupported` saying what is not supported."""
    if not words:
        raise _Unsupported("an empty command []")
    name = _literal(words[0])
    if name is None:
        raise _Unsupported("a command name made by substitution is not supported")
    args = tuple(words[1:])
    n = len(args)
    if name == "frame":
        if n:
            raise _Unsupported("[frame] takes no arguments")
    elif name in ("value", "getenv"):
        if n != 1:
            raise _Unsupported(f"[{name} ...] takes one argument")
    elif name == "file":
        op = _literal(args[0]) if n else None
        if op not in _FILE_OPS:
            raise _unsupported(f"the TCL command 'file {op}'" if op else "'file' without a literal subcommand")
        want = _FILE_OPS[op]
        if (want is not None and n - 1 != want) or n < 2:
            raise _Unsupported(f"[file {op} ...] takes {want or 'one or more'} path argument(s)")
    elif name == "format":
        if not n:
            raise _Unsupported("[format] needs a format string")
    else:
        raise _unsupported(f"the TCL command {name!r}")
    return Command(name, args)


@lru_cache(maxsize=1024)
def _parse(text: str) -> tuple[Part, ...]:
    parser = _Parser(text)
    return parser.parts("", 0)


def has_tcl(text: str) -> bool:
    """Whether ``text`` holds anything the evaluator would change (``[``, ``\\``, ``$env(``)."""
    return "[" in text or "\\" in text or "$env(" in text


# --- evaluation --------------------------------------------------------------------------------
def tcl_string(value: Any) -> str:
    """A knob value as TCL's ``[value]`` gives it: whole floats without ``.0``, lists space-joined."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, (list, tuple)):
        return " ".join(tcl_string(v) for v in value)
    return str(value)


def _last_element(path: str) -> tuple[str, str]:
    """TCL's split of a path into its folder part and last element (trailing slashes ignored)."""
    stripped = path.rstrip("/") or path[:1]
    head, _, tail = stripped.rpartition("/")
    return head, tail


def _file_op(op: str, paths: list[str]) -> str:
    if op == "join":
        return os.path.join(*paths)
    path = paths[0]
    head, tail = _last_element(path)
    if op == "tail":
        return "" if path.rstrip("/") == "" else tail
    if op == "dirname":
        if "/" not in path.rstrip("/") or path.rstrip("/") == "":
            return "/" if path.startswith("/") else "."
        return head.rstrip("/") or "/"
    dot = tail.rfind(".")
    if op == "extension":
        return "" if dot < 0 else tail[dot:]
    return path if dot < 0 else path[:len(path) - len(tail) + dot]  # rootname


def _format(spec: str, args: list[str]) -> str:
    out, pos, used = [], 0, 0
    for m in _FORMAT_SPEC.finditer(spec):
        out.append(spec[pos:m.start()])
        pos = m.end()
        flags, width, prec, conv = m.groups()
        if conv == "%":
            out.append("%")
            continue
        if int(width or 0) > MAX_WIDTH or int(prec or 0) > MAX_WIDTH:
            raise _Unsupported(f"a format field wider than {MAX_WIDTH}")
        if used >= len(args):
            raise _Unsupported(f"[format {spec!r}] has more fields than arguments")
        arg = args[used]
        used += 1
        try:
            if conv in "diouxXc":
                v: Any = int(arg, 0) if arg.strip().lower().startswith(("0x", "-0x")) else int(arg)
                conv = "d" if conv in "iu" else conv
            elif conv in "eEfgG":
                v = float(arg)
            else:
                v = arg
            out.append(("%" + flags + width + ("." + prec if prec is not None else "") + conv) % v)
        except (ValueError, TypeError, OverflowError):
            raise _Unsupported(f"[format {spec!r}]: {arg!r} is not a number for %{conv}") from None
    if "%" in spec[pos:]:
        raise _Unsupported(f"[format {spec!r}]: a conversion it does not know")
    out.append(spec[pos:])
    return "".join(out)


@dataclass
class _Scope:
    frame: int | None
    script_path: str | None
    lookup: Callable[[str], Any] | None
    environ: Mapping[str, str]

    def script(self, what: str) -> str:
        if self.script_path is None:
            raise _Unsupported(f"{what} needs the script's path, and this graph was not loaded from or saved "
                               "to a file")
        return self.script_path

    def env(self, name: str) -> str:
        value = self.environ.get(name)
        if value is None:
            raise _Unsupported(f"the environment variable {name!r} is not set")
        return value

    def words(self, parts: tuple[Part, ...]) -> str:
        return "".join(p if isinstance(p, str) else self.env(p.name) if isinstance(p, Env) else self.run(p)
                       for p in parts)

    def run(self, cmd: Command) -> str:
        args = [self.words(a) for a in cmd.args]
        name = cmd.name
        if name == "frame" or cmd.python is not None and cmd.python[0] == "frame":
            if self.frame is None:
                raise _Unsupported("[frame] needs a frame, and none is being read or written")
            return str(self.frame)
        if cmd.python is not None:
            kind, env, source = cmd.python
            if kind == "env":
                return self.env(env)
            script = self.script(f"[python {source}]")
            return {"script": script, "script_dir": os.path.dirname(script),
                    "script_tail": os.path.basename(script)}[kind]
        if name == "value":
            ref = args[0]
            if ref == "root.name":
                return self.script("[value root.name]")
            if self.lookup is None:
                raise _Unsupported(f"[value {ref}] needs a node to look the knob up from")
            try:
                return tcl_string(self.lookup(ref))
            except NodeGraphError as err:
                raise _Unsupported(f"[value {ref}]: {err.message}") from None
        if name == "getenv":
            return self.env(args[0])
        if name == "file":
            return _file_op(args[0], args[1:])
        return _format(args[0], args[1:])  # format: the only one left after _checked


def _error(text: str, node: str | None, knob: str, reason: str) -> KnobError:
    return KnobError(f"file path {safe_repr(text, 1000)}: {reason}", node=node, knob=knob)


def parse_file_knob(text: str, *, node: str | None = None, knob: str = "file") -> tuple[Part, ...]:
    """The parts of a file knob's text; a :class:`KnobError` for any form outside the supported set."""
    try:
        return _parse(text)
    except _Unsupported as err:
        raise _error(text, node, knob, str(err)) from None
    except RecursionError:  # MAX_DEPTH keeps well under the limit; a deep caller stack might not
        raise _error(text, node, knob, "commands nested too deeply") from None


def expand_file_knob(text: str, *, node: str | None = None, knob: str = "file", frame: int | None = None,
                     script_path: str | None = None, lookup: Callable[[str], Any] | None = None,
                     environ: Mapping[str, str] | None = None) -> str:
    """``text`` with its TCL evaluated (see the module docstring); relative paths stay relative.

    ``frame``: what ``[frame]`` gives (None: ``[frame]`` is an error). ``script_path``: what
    ``[value root.name]`` gives (None: an error). ``lookup(ref)``: the value of ``[value ref]``
    for any other ``ref`` (``root.first_frame``, ``Read1.file``, ``first``), raising a
    :class:`~nodegraph.errors.NodeGraphError` when there is none. ``environ``: the environment
    (default ``os.environ``). Every failure is a :class:`KnobError` naming ``node`` and ``knob``.
    """
    if not has_tcl(text):
        return text
    parts = parse_file_knob(text, node=node, knob=knob)
    scope = _Scope(frame, script_path, lookup, os.environ if environ is None else environ)
    try:
        return scope.words(parts)
    except _Unsupported as err:
        raise _error(text, node, knob, str(err)) from None


def resolve_relative(path: str, script_path: str | None) -> str:
    """``path`` joined to the folder of ``script_path`` when relative (unchanged without a script)."""
    if not path or script_path is None or os.path.isabs(path):
        return path
    return os.path.join(os.path.dirname(script_path), path)


# --- nodes -------------------------------------------------------------------------------------
def script_path_of(node: "Node") -> str | None:
    """The file the node's top-level graph was loaded from or saved to (Nuke's ``root.name``)."""
    graph = node.graph.top if node.graph is not None else None
    return getattr(graph, "path", None)


def node_lookup(node: "Node", frame: int | None) -> Callable[[str], Any]:
    """``[value ref]`` seen from ``node``: ``root.KNOB``, ``KNOB``/``this.KNOB``, ``NODE.KNOB``, ``parent.KNOB``."""
    at = 1 if frame is None else frame

    def lookup(ref: str) -> Any:
        path, _, knob = ref.rpartition(".")
        if path == "root":
            root = node.graph.top.root if node.graph is not None else {}
            if knob not in root:
                raise KnobError(f"the root has no knob {knob!r}")
            return root[knob]
        target = node.reference_node(tuple(path.split(".")) if path else ())
        if target is None:
            raise KnobError("'parent' is only defined inside a group" if path.split(".")[0] == "parent"
                            else f"no node named {path!r}")
        if not target.has_knob(knob):
            raise KnobError(f"{target.type_name} {target.name!r} has no knob {knob!r}")
        return target.value(knob, at)

    return lookup


def default_frame(node: "Node") -> int:
    """The frame a path is expanded at when no frame is being read or written: the root's first."""
    root = node.graph.top.root if node.graph is not None else {}
    try:
        return int(root.get("first_frame", 1))
    except (TypeError, ValueError):
        return 1


def node_file_path(node: "Node", frame: int | None = None, knob: str = "file") -> str:
    """The path a node's file knob names at ``frame`` (default: :func:`default_frame`): its TCL
    expanded and, when relative, resolved against the script's folder."""
    text = getattr(node.knobs, knob)
    script = script_path_of(node)
    if frame is None:
        frame = default_frame(node)
    path = expand_file_knob(text, node=node.path, knob=knob, frame=frame, script_path=script,
                            lookup=node_lookup(node, frame)) if has_tcl(text) else text
    return resolve_relative(path, script)


def file_knob_problems(node: "Node", knob: str = "file") -> list[str]:
    """What ``Graph.validate()`` reports about a node's file knob: its TCL, expanded once."""
    try:
        node_file_path(node, knob=knob)
    except KnobError as err:
        return [f"knob {knob!r}: {err.message}"]
    return []


__all__ = ["expand_file_knob", "parse_file_knob", "resolve_relative", "node_file_path", "file_knob_problems",
           "has_tcl", "tcl_string", "SUPPORTED"]
