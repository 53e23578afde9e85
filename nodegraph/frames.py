"""Frame numbers: the one limit every frame knob, frame range and ``--frames`` shares.

A document can say ``"last": 1e18``; without a limit that reaches the render loop as a range of
a quintillion frames. Frame knobs use :data:`Frame` (checked on construction, on ``set`` and on
load, so the error names node and knob), and renders cover at most
:data:`~nodegraph.render.MAX_RENDER_FRAMES` frames per output node.
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import AfterValidator, BeforeValidator

#: Frame numbers (frame knobs, ``--frames``) lie within +-MAX_FRAME: far beyond any shot (a day of
#: 60 fps timecode is 5.2 million frames), yet small enough for frame arithmetic and file names.
MAX_FRAME = 1_000_000_000


def frame_problem(value: Any) -> str | None:
    """Why ``value`` is not a usable frame number (None when it is, or when it is no number at all:
    the knob's type check reports those)."""
    if isinstance(value, (int, float)) and not isinstance(value, bool) and not -MAX_FRAME <= value <= MAX_FRAME:
        return f"out of range: frame numbers lie within +-{MAX_FRAME:,}"
    return None


def _check_frame(value: Any) -> Any:
    problem = frame_problem(value)
    if problem:
        raise ValueError(problem)
    return value


#: The type of a frame-number knob (a frame, an offset or a count of frames): an int within
#: +-MAX_FRAME. Checked before conversion too, so ``-1e30`` gets this message, not pydantic's.
Frame = Annotated[int, BeforeValidator(_check_frame), AfterValidator(_check_frame)]

__all__ = ["MAX_FRAME", "Frame", "frame_problem"]
