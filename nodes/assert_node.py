"""Assert: stops a render with a message when an expression is false (Nuke's Assert)."""

from __future__ import annotations

from nodegraph.errors import KnobError
from nodegraph.evaluator import Context
from nodegraph.image import Image
from nodegraph.node import Input, Knobs, Node


class Assert(Node):
    """Nuke's Assert: its image is its input's, unless ``expression`` is false (0) at the frame
    being rendered: then the render fails with ``message`` (a KnobError naming the node, the knob
    ``expression`` and the frame).

    ``expression`` is a number knob, usually an expression (``{{"$nuke_version > 13.2"}}``,
    ``{{"width == 1024 && height == 1024"}}``). Nuke's TCL variable ``$nuke_version`` reads
    :data:`nodegraph.expr_parse.NUKE_VERSION` (15.1v5, as 15.105), so the version guards of public
    gizmos (13.2, 13.2v8, 14.1 or higher) pass; ``width`` and ``height`` are the input's format.

    nodegraph's choices: the check runs when the frame is computed, so a frame served from the
    cache was checked when it was made (its hash holds the expression's value at that frame); the
    image is handed on unchanged (the same tensor, no copy); a NaN counts as false."""

    category = "Other"
    inputs = (Input("input", doc="The image handed on when the assertion holds."),)

    class Knobs(Knobs):
        expression: float = 1.0
        """The condition, true when not 0 (usually an expression); false stops the render."""
        message: str = ""
        """What the error says when ``expression`` is false."""

    def compute(self, ctx: Context) -> Image:
        value = self.knobs.expression
        if value != 0 and value == value:
            return ctx.input("input")
        said = self.knobs.message or "(no message)"
        raise KnobError(f"Assert failed: {said} (expression is {value:g})", node=self.path, knob="expression",
                        frame=ctx.frame)


__all__ = ["Assert"]
