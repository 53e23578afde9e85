"""Pass-through and routing nodes: Dot, NoOp, Switch."""

from __future__ import annotations

from pydantic import Field

from nodegraph.evaluator import Context
from nodegraph.image import Image
from nodegraph.node import Input, Knobs, Node


class _PassThrough(Node, abstract=True):
    inputs = (Input("input", doc="Image passed through unchanged."),)

    def passthrough(self, ctx: Context) -> str | None:
        return "input"

    def compute(self, ctx: Context) -> Image:
        return ctx.input("input")


class Dot(_PassThrough):
    """A routing point: passes its input through unchanged (shares its hash: costs nothing)."""

    category = "Other"


class NoOp(_PassThrough):
    """Does nothing to its input; a place to hang user knobs and expressions in Nuke."""

    category = "Other"


#: Inputs Switch offers ("0".."255"); Nuke's Switch takes any number, real scripts connect 9 and more
#: (colour-nuke's colour_rendition_chart.nk switches between 66 colourspaces).
SWITCH_INPUTS = 256


class Switch(Node):
    """Passes one of its inputs through, chosen by ``which`` (only that input is pulled); inputs
    "0".."255" (Nuke's is unlimited)."""

    category = "Merge"
    inputs = tuple(Input(str(i), required=False, doc=f"Input {i}.") for i in range(SWITCH_INPUTS))

    class Knobs(Knobs):
        which: int = Field(0, ge=0)
        """Index of the input to pass through; values past the last connected input take the last."""

    def _choice(self, ctx: Context) -> str:
        connected = [i.name for i in self.inputs if i.name in ctx.connected]
        if not connected:
            from nodegraph.errors import GraphError

            raise GraphError("no input connected")
        wanted = str(self.knobs.which)
        if wanted in ctx.connected:
            return wanted
        return connected[-1] if self.knobs.which > int(connected[-1]) else connected[0]

    def passthrough(self, ctx: Context) -> str | None:
        return self._choice(ctx)

    def compute(self, ctx: Context) -> Image:
        return ctx.input(self._choice(ctx))

    def frame_range(self, ranges):
        for name, r in ranges.items():
            if r is not None and name == str(self.knobs.which):
                return r
        return super().frame_range(ranges)
