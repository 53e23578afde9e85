"""The one exception family of nodegraph.

Every error a user can provoke (bad files, bad JSON, bad knob values, missing frames) is a
``NodeGraphError``. Runtime failures carry the node, knob, frame and file they concern, so a
farm log line is enough to find the problem.
"""

from __future__ import annotations

from typing import Any

#: Longest node or knob name, path, and line of a message shown in full by ``str(err)``; longer
#: ones keep their head and tail around a note of their length (a path can be 4096 bytes on Linux).
NAME_LIMIT = 256
PATH_LIMIT = 4096
LINE_LIMIT = 8192
#: Most lines of a message shown (a render of many failed frames, a graph with many problems).
LINES_LIMIT = 500


def shorten(text: str, limit: int = LINE_LIMIT) -> str:
    """``text`` itself, or its head and tail around ``... (N characters) ...`` when over ``limit``.

    A user can hand nodegraph a ten-million-character path or knob value; its error message must
    still be quick to print and fit a log line.
    """
    if len(text) <= limit:
        return text
    note = f" ... ({len(text):,} characters) ... "
    keep = max(0, limit - len(note))
    head = keep * 2 // 3
    return text[:head] + note + text[len(text) - (keep - head):]


def shorten_lines(text: str, line_limit: int = LINE_LIMIT, lines_limit: int = LINES_LIMIT) -> str:
    """:func:`shorten` each line, and keep at most ``lines_limit`` lines (noting how many were left out)."""
    if len(text) <= line_limit and text.count("\n") < lines_limit:
        return text
    lines = text.split("\n", lines_limit)
    more = ""
    if len(lines) > lines_limit:
        rest = lines.pop()
        more = f"\n... ({rest.count(chr(10)) + 1:,} more line(s))"
    return "\n".join(shorten(line, line_limit) for line in lines) + more


def safe_repr(value: Any, limit: int = LINE_LIMIT) -> str:
    """``repr(value)`` shortened; never raises (an int of more than 4300 digits has no repr)."""
    if isinstance(value, int) and not isinstance(value, bool) and value.bit_length() > 13_000:  # ~3900 digits
        return f"<an integer of about {int(value.bit_length() * 0.30103):,} digits>"
    if isinstance(value, str):  # shorten first: the note of the length stays outside the quotes' escapes
        return repr(shorten(value, max(40, limit - 2)))
    try:
        return shorten(repr(value), limit)
    except Exception:  # a repr that fails must not hide the error being reported
        return f"<{type(value).__name__}>"


class NodeGraphError(Exception):
    """Base class of every error nodegraph raises on purpose.

    ``node``, ``knob``, ``frame`` and ``path`` are optional context; they are folded into the
    message so that ``str(err)`` names them. The attributes keep the full values; ``str(err)``
    shortens over-long ones (see :func:`shorten`), so printing any error is quick.
    """

    def __init__(
        self,
        message: str,
        *,
        node: str | None = None,
        knob: str | None = None,
        frame: int | None = None,
        path: str | None = None,
    ) -> None:
        self.message = message
        self.node = node
        self.knob = knob
        self.frame = frame
        self.path = str(path) if path is not None else None
        super().__init__(self._render())

    def _render(self) -> str:
        where = []
        knob = f"knob {safe_repr(self.knob, NAME_LIMIT)}" if self.knob is not None else ""
        if self.node is not None:
            where.append(f"node {safe_repr(self.node, NAME_LIMIT)}" + (f" {knob}" if self.knob else ""))
        elif self.knob is not None:
            where.append(knob)
        if self.frame is not None:
            where.append(f"frame {safe_repr(self.frame, NAME_LIMIT)}")
        if self.path is not None:
            where.append(f"file {safe_repr(self.path, PATH_LIMIT)}")
        message = shorten_lines(str(self.message))
        return f"{', '.join(where)}: {message}" if where else message

    def with_context(self, **context: Any) -> "NodeGraphError":
        """Fill in context fields that are still unset, keeping the original message."""
        for key in ("node", "knob", "frame", "path"):
            if getattr(self, key) is None and context.get(key) is not None:
                setattr(self, key, str(context[key]) if key == "path" else context[key])
        self.args = (self._render(),)
        return self


class KnobError(NodeGraphError):
    """A knob value failed validation, or the knob does not exist."""


class GraphError(NodeGraphError):
    """A structural problem: unknown node, bad connection, cycle, duplicate name."""


class ValidationError(GraphError):
    """``Graph.validate()`` found problems; ``issues`` lists every one of them."""

    def __init__(self, issues: list[Any]) -> None:
        self.issues = list(issues)
        lines = "\n".join(f"  - {issue}" for issue in self.issues)
        super().__init__(f"graph has {len(self.issues)} problem(s):\n{lines}")


class DocumentError(NodeGraphError):
    """A graph document (JSON) is malformed; ``json_path`` points at the problem."""

    def __init__(self, message: str, *, json_path: str = "$", path: str | None = None) -> None:
        self.json_path = json_path
        super().__init__(f"{json_path}: {message}", path=path)


class ImageIOError(NodeGraphError):
    """A file could not be read or written: missing, corrupt, truncated, unsupported."""


class MissingFrameError(ImageIOError):
    """A frame of a sequence does not exist on disk."""


class ChannelError(NodeGraphError):
    """A channel or layer was asked for that the image does not carry."""


class EvaluationError(NodeGraphError):
    """A node failed while computing a frame (wraps the original exception)."""


class RenderError(NodeGraphError):
    """One or more frames of a render failed; ``failures`` maps (write node, frame) to errors."""

    def __init__(self, failures: dict[tuple[str, int], str]) -> None:
        self.failures = dict(failures)
        lines = "\n".join(f"  {node} frame {frame}: {msg}" for (node, frame), msg in sorted(self.failures.items()))
        super().__init__(f"{len(self.failures)} frame(s) failed:\n{lines}")
