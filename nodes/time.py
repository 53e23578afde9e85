"""Time nodes: TimeOffset, FrameHold, FrameRange.

They pull other frames of their input by declaring them in ``needs`` (so hashing, caching and
evaluation agree), and report the frame range they produce through ``frame_range``.
"""

from __future__ import annotations

from pydantic import AliasChoices, Field

from nodegraph.evaluator import Context
from nodegraph.image import Image
from nodegraph.frames import Frame
from nodegraph.node import Input, Knobs, Node


def _input_range(ctx: Context, name: str = "input") -> tuple[int, int] | None:
    return ctx.input_range(name)


class TimeOffset(Node):
    """Shifts its input in time by ``time_offset`` frames, as Nuke's TimeOffset: output frame f
    shows input frame f - time_offset. With ``reverse_input`` the input clip plays backwards over
    its own range first (its last frame at its first), then the offset applies."""

    category = "Time"
    inputs = (Input("input", doc="Clip to shift in time."),)

    class Knobs(Knobs):
        time_offset: Frame = 0
        """Frames to move the clip by: positive values make it start later."""
        reverse_input: bool = False
        """Play the input backwards within its frame range (needs a known input range)."""

    def source_frame(self, frame: int, clip: tuple[int, int] | None) -> int:
        f = frame - self.knobs.time_offset
        if self.knobs.reverse_input and clip is not None:
            f = clip[0] + clip[1] - f
        return f

    def needs(self, ctx: Context):
        if "input" not in ctx.connected:
            return []
        clip = _input_range(ctx) if self.knobs.reverse_input else None
        return [("input", self.source_frame(ctx.frame, clip))]

    def compute(self, ctx: Context) -> Image:
        (_, frame), = self.needs(ctx)
        return ctx.input("input", frame)

    def frame_range(self, ranges):
        r = ranges.get("input")
        if r is None:
            return None
        return (r[0] + self.knobs.time_offset, r[1] + self.knobs.time_offset)


class FrameHold(Node):
    """Holds one frame of its input, as Nuke's FrameHold: every output frame shows ``firstFrame``;
    with ``increment`` n > 0 it holds every n-th frame counted from ``firstFrame`` (frame f shows
    firstFrame + floor((f - firstFrame) / n) * n). Held frames share one hash, so the input is
    computed once and every output frame comes from the cache."""

    category = "Time"
    inputs = (Input("input", doc="Clip to hold a frame of."),)

    class Knobs(Knobs):
        firstFrame: Frame = Field(1, validation_alias=AliasChoices("firstFrame", "first_frame"))
        """Frame to hold (Nuke 13+ name; Nuke 12's `first_frame` is accepted on load)."""
        increment: Frame = Field(0, ge=0)
        """Hold every n-th frame starting at firstFrame; 0 holds firstFrame for ever."""

    def held_frame(self, frame: int) -> int:
        k = self.knobs
        if k.increment <= 0:
            return k.firstFrame
        return k.firstFrame + ((frame - k.firstFrame) // k.increment) * k.increment

    def needs(self, ctx: Context):
        return [("input", self.held_frame(ctx.frame))] if "input" in ctx.connected else []

    def compute(self, ctx: Context) -> Image:
        return ctx.input("input", self.held_frame(ctx.frame))

    # frame_range: the input's range (the default), as Nuke's FrameHold does not change it.


class FrameRange(Node):
    """Sets the frame range its input reports, as Nuke's FrameRange: ``first_frame`` to
    ``last_frame``. Pixels are not changed, also outside the range (the node passes its input
    through and shares its hash); what uses the range (renders, the timeline) follows it."""

    category = "Time"
    inputs = (Input("input", doc="Clip whose frame range is set."),)

    class Knobs(Knobs):
        first_frame: Frame = 1
        """First frame of the range."""
        last_frame: Frame = 100
        """Last frame of the range."""

    def passthrough(self, ctx: Context) -> str | None:
        return "input"

    def compute(self, ctx: Context) -> Image:
        return ctx.input("input")

    def frame_range(self, ranges):
        k = self.knobs
        return (min(k.first_frame, k.last_frame), max(k.first_frame, k.last_frame))

    def check(self) -> list[str]:
        k = self.knobs
        if k.last_frame < k.first_frame:
            return [f"knob 'last_frame': {k.last_frame} is before first_frame {k.first_frame}"]
        return []


__all__ = ["FrameHold", "FrameRange", "TimeOffset"]
