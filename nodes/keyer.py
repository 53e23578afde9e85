"""Keyer: Nuke's simple keyer, a key measure per pixel shaped by a four-handle range.

The usual way to pull the rough alpha hint a matting model takes (luminance for a sky, a colour
difference for a green or blue screen). Nuke's reference guide names the knobs and operations but
publishes no formulas; the measures used here are the standard ones and are listed in
:data:`OPERATIONS` (and in ``nodegraph nodes Keyer``).
"""

from __future__ import annotations

from typing import Callable, Literal

import torch
from pydantic import field_validator

from nodegraph.errors import KnobError
from nodegraph.evaluator import Context
from nodegraph.image import Image
from nodegraph.node import Input, Knobs, Node

from ._common import ChannelsKnob, select_channels
from .premult import ChannelKnob

T = torch.Tensor

#: Rec.709 luminance weights (Nuke's default luminance math for scene-linear rgb).
REC709 = (0.2126, 0.7152, 0.0722)


def _screen(primary: int) -> Callable[[T, T, T], T]:
    def key(r: T, g: T, b: T) -> T:
        c = (r, g, b)
        others = [c[i] for i in range(3) if i != primary]
        return c[primary] - torch.maximum(*others)
    return key


def _saturation(r: T, g: T, b: T) -> T:
    hi = torch.maximum(torch.maximum(r, g), b)
    lo = torch.minimum(torch.minimum(r, g), b)
    return torch.where(hi > 0, (hi - lo) / torch.where(hi > 0, hi, torch.ones_like(hi)), torch.zeros_like(hi))


#: Key measure of each operation from the input layer's first three channels (r, g, b).
OPERATIONS: dict[str, Callable[[T, T, T], T]] = {
    "luminance key": lambda r, g, b: REC709[0] * r + REC709[1] * g + REC709[2] * b,
    "red keyer": lambda r, g, b: r,
    "green keyer": lambda r, g, b: g,
    "blue keyer": lambda r, g, b: b,
    "redscreen keyer": _screen(0),     # r - max(g, b)
    "greenscreen keyer": _screen(1),   # g - max(r, b)
    "bluescreen keyer": _screen(2),    # b - max(r, g)
    "saturation key": _saturation,     # HSV saturation (max - min) / max, 0 where max <= 0
    "max keyer": lambda r, g, b: torch.maximum(torch.maximum(r, g), b),
    "min keyer": lambda r, g, b: torch.minimum(torch.minimum(r, g), b),
}
Operation = Literal["luminance key", "red keyer", "green keyer", "blue keyer", "redscreen keyer",
                    "greenscreen keyer", "bluescreen keyer", "saturation key", "max keyer", "min keyer"]
_ONE_CHANNEL = {"red keyer": 0, "green keyer": 1, "blue keyer": 2}


def trapezoid(x: T, a: float, b: float, c: float, d: float) -> T:
    """Nuke's range curve: 0 below A, up to 1 at B, 1 until C, down to 0 at D.

    ``A == B`` is a hard step up at A; ``C == D`` means no upper fall-off (the default range
    ``(0, 1, 1, 1)`` keeps super-whites at 1). NaN stays NaN.
    """
    one, zero = torch.ones_like(x), torch.zeros_like(x)
    up = one if b <= a else ((x - a) / (b - a)).clamp(0, 1)
    out = torch.where(x < a, zero, torch.where(x < b, up, one))
    if d > c:
        out = torch.where(x <= c, out, ((d - x) / (d - c)).clamp(0, 1))
    return torch.where(torch.isnan(x), x, out)


class Keyer(Node):
    """Pulls a key from the input's luminance, one channel, a screen colour difference, saturation,
    or the max/min of its colour channels, shaped by the four-handle ``range``, into ``output``.

    Measures (r, g, b = the ``layer`` knob's first three channels): luminance key = Rec.709
    0.2126 r + 0.7152 g + 0.0722 b; red/green/blue keyer = that channel; greenscreen keyer =
    g - max(r, b) (bluescreen b - max(r, g), redscreen r - max(g, b)), so the screen keys white and
    ``invert`` gives a foreground matte; saturation key = (max - min) / max; max/min keyer.
    """

    category = "Keyer"
    inputs = (Input("input", doc="Image to key."),)

    class Knobs(Knobs):
        layer: ChannelsKnob = "rgb"
        """Layer to key from (Nuke's `input` knob, renamed: `input` names this node's input);
        its first three channels are read as red, green and blue."""
        output: ChannelKnob = "rgba.alpha"
        """Channel the key is written to (added to the image if absent)."""
        combine: Literal["replace", "intersect", "union"] = "replace"
        """How the key meets what `output` held: replace it, intersect (key * old) or union
        (key + old - key * old)."""
        invert: bool = False
        """Use one minus the key (after the range, before combining)."""
        operation: Operation = "luminance key"
        """Key measure: luminance key, red/green/blue keyer, redscreen/greenscreen/bluescreen keyer
        (colour difference, e.g. g - max(r, b)), saturation key, max keyer or min keyer."""
        range: tuple[float, float, float, float] = (0.0, 1.0, 1.0, 1.0)
        """A, B, C, D: key 0 below A, rising to 1 at B, 1 up to C, falling to 0 at D
        (C == D: no fall-off). Must be non-decreasing."""

        @field_validator("range")
        @classmethod
        def _ordered(cls, value: tuple[float, float, float, float]) -> tuple[float, float, float, float]:
            if any(value[i] > value[i + 1] for i in range(3)):
                raise ValueError(f"range handles must satisfy A <= B <= C <= D, got {tuple(value)}")
            return value

    def compute(self, ctx: Context) -> Image:
        img = ctx.input("input")
        k = self.knobs
        layer = select_channels(k.layer, img, self.name, knob="layer")
        layer = tuple(c for c in layer if c in img.channels)
        need = _ONE_CHANNEL.get(k.operation, 2) + 1
        if len(layer) < need:
            raise KnobError(f"{k.operation} needs {need} channel(s) of layer {k.layer!r}; the input has "
                            f"{', '.join(layer) or 'none of them'}", node=self.name, knob="layer")
        planes = [img.channel(layer[i]) for i in range(need)]
        if k.operation in _ONE_CHANNEL:
            measure = planes[-1]
        else:
            measure = OPERATIONS[k.operation](*planes)
        key = trapezoid(measure, *k.range)
        if k.invert:
            key = 1 - key
        if k.combine != "replace" and k.output in img.channels:
            old = img.channel(k.output)
            key = key * old if k.combine == "intersect" else key + old - key * old
        return img.with_channel(k.output, key)


__all__ = ["Keyer", "OPERATIONS", "REC709", "trapezoid"]
