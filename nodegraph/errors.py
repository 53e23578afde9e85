"""The one exception family of nodegraph.

Every error a user can provoke (bad files, bad JSON, bad knob values, missing frames) is a
``NodeGraphError``. Runtime failures carry the node, knob, frame and file they concern, so a
farm log line is enough to find the problem.
"""

from __future__ import annotations

from typing import Any


class NodeGraphError(Exception):
    """Base class of every error nodegraph raises on purpose.

    ``node``, ``knob``, ``frame`` and ``path`` are optional context; they are folded into the
    message so that ``str(err)`` names them.
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
        if self.node is not None:
            where.append(f"node {self.node!r}" + (f" knob {self.knob!r}" if self.knob else ""))
        elif self.knob is not None:
            where.append(f"knob {self.knob!r}")
        if self.frame is not None:
            where.append(f"frame {self.frame}")
        if self.path is not None:
            where.append(f"file {self.path!r}")
        return f"{', '.join(where)}: {self.message}" if where else self.message

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
