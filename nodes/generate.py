"""Procedural sources: Constant, Checkerboard, Ramp, ColorBars."""

from __future__ import annotations

from typing import Literal

import torch
from pydantic import Field

from nodegraph import channels as chans
from nodegraph.errors import ChannelError, KnobError
from nodegraph.evaluator import Context
from nodegraph.image import Image
from nodegraph.node import Knobs, Node

from ._common import ChannelsKnob, Color4, FormatKnob, fill, format_of, rgba_values


def _names(spec: str, node: str, knob: str) -> tuple[str, ...]:
    """The channels a generator's channel knob names. A generator has no input to find a layer's
    channels in, so a bare layer other than rgba/rgb/alpha/depth is a KnobError naming the knob."""
    problem = _channel_problem(spec)
    if problem:
        raise KnobError(problem, node=node, knob=knob)
    return chans.expand(spec)


def _channel_problem(spec: str) -> str | None:
    try:
        chans.expand(spec)
    except ChannelError as err:
        shorthands = ", ".join(chans.LAYER_SHORTHANDS)
        return (f"{err.message.split(';')[0]}: a generator has no input to take a layer's channels from; "
                f"name them (diffuse.red,diffuse.green,diffuse.blue) or use {shorthands}")
    return None


class Constant(Node):
    """A full-frame constant colour, as Nuke's Constant."""

    category = "Image"

    class Knobs(Knobs):
        channels: ChannelsKnob = "rgba"
        """Channels to fill (rgba channels take `color`, others its red component)."""
        color: Color4 = (0.0, 0.0, 0.0, 0.0)
        """Colour as red, green, blue, alpha."""
        format: FormatKnob = "HD_1080"
        """Output format: a Nuke format name or 'WxH [aspect]'."""

    def check(self) -> list[str]:
        problem = _channel_problem(self.knobs.channels)
        return [f"knob 'channels': {problem}"] if problem else []

    def compute(self, ctx: Context) -> Image:
        k = self.knobs
        names = _names(k.channels, self.name, "channels")
        fmt = format_of(self.name, k.format)
        return fill(fmt, names, rgba_values(names, k.color, default=k.color[0]), ctx.device, ctx.dtype)


class Checkerboard(Node):
    """A checkerboard of square boxes with optional grid lines, as Nuke's CheckerBoard."""

    type_name = "CheckerBoard2"
    category = "Image"

    class Knobs(Knobs):
        format: FormatKnob = "HD_1080"
        """Output format."""
        boxsize: float = Field(64.0, gt=0)
        """Width and height of each box in pixels."""
        color0: Color4 = (0.1, 0.1, 0.1, 1.0)
        """Colour of the first box of even rows (counted from the bottom) and every other box after it."""
        color1: Color4 = (0.5, 0.5, 0.5, 1.0)
        """Colour of the other boxes of even rows."""
        color2: Color4 = (0.1, 0.1, 0.1, 1.0)
        """Colour of the boxes of odd rows diagonal to color0 boxes."""
        color3: Color4 = (0.5, 0.5, 0.5, 1.0)
        """Colour of the first box of odd rows and every other box after it."""
        linecolor: Color4 = (1.0, 1.0, 0.0, 1.0)
        """Colour of the lines between boxes."""
        linewidth: float = Field(0.0, ge=0)
        """Width of the lines between boxes in pixels (0: no lines)."""

    def compute(self, ctx: Context) -> Image:
        k = self.knobs
        fmt = format_of(self.name, k.format)
        w, h = fmt.width, fmt.height
        dev, dt = ctx.device, ctx.dtype
        # Nuke counts rows from the bottom (y up); tensor rows run top-down.
        x = torch.arange(w, device=dev, dtype=torch.float64) + 0.5
        y = (h - 1 - torch.arange(h, device=dev, dtype=torch.float64)) + 0.5
        bx = torch.floor(x / k.boxsize).long()
        by = torch.floor(y / k.boxsize).long()
        # rows alternate phase so that color0/color1 and color2/color3 form a checkerboard:
        # even rows run color0, color1, ...; odd rows run color3, color2, ...
        parity = (bx[None, :] + by[:, None]) % 2
        which = parity + 2 * (by % 2)[:, None]
        palette = torch.tensor([k.color0, k.color1, k.color2, k.color3], device=dev, dtype=dt)
        pixels = palette[which].permute(2, 0, 1).contiguous()
        if k.linewidth > 0:
            half = k.linewidth / 2
            dx = torch.remainder(x + half, k.boxsize) < k.linewidth
            dy = torch.remainder(y + half, k.boxsize) < k.linewidth
            line = (dy[:, None] | dx[None, :])
            pixels = torch.where(line[None], torch.tensor(k.linecolor, device=dev, dtype=dt).view(4, 1, 1), pixels)
        return Image(pixels, chans.RGBA, fmt.display, fmt)


class Ramp(Node):
    """A linear or smooth ramp between two points, as Nuke's Ramp (points are y-up)."""

    category = "Draw"

    class Knobs(Knobs):
        format: FormatKnob = "HD_1080"
        """Output format."""
        output: ChannelsKnob = "rgba"
        """Channels to draw into."""
        p0: tuple[float, float] = (0.0, 540.0)
        """Start point (x, y), y measured up from the bottom as in Nuke."""
        p1: tuple[float, float] = (1920.0, 540.0)
        """End point (x, y)."""
        type: Literal["linear", "smooth0", "smooth1", "smooth"] = "linear"
        """Interpolation: linear, or smoothed at the start, end or both."""
        color0: Color4 = (0.0, 0.0, 0.0, 0.0)
        """Colour at p0."""
        color: Color4 = (1.0, 1.0, 1.0, 1.0)
        """Colour at p1."""

    def check(self) -> list[str]:
        problem = _channel_problem(self.knobs.output)
        return [f"knob 'output': {problem}"] if problem else []

    def compute(self, ctx: Context) -> Image:
        k = self.knobs
        fmt = format_of(self.name, k.format)
        names = _names(k.output, self.name, "output")
        w, h = fmt.width, fmt.height
        x = torch.arange(w, device=ctx.device, dtype=torch.float64) + 0.5
        y = (h - torch.arange(h, device=ctx.device, dtype=torch.float64)) - 0.5
        dx, dy = k.p1[0] - k.p0[0], k.p1[1] - k.p0[1]
        length2 = dx * dx + dy * dy
        if length2 == 0:
            t = torch.zeros(h, w, device=ctx.device, dtype=torch.float64)
        else:
            t = ((x[None, :] - k.p0[0]) * dx + (y[:, None] - k.p0[1]) * dy) / length2
        t = t.clamp(0, 1)
        if k.type == "smooth0":  # flat at p0
            t = t * t
        elif k.type == "smooth1":  # flat at p1
            t = 1 - (1 - t) ** 2
        elif k.type == "smooth":
            t = t * t * (3 - 2 * t)
        c0 = torch.tensor(rgba_values(names, k.color0), device=ctx.device, dtype=torch.float64).view(-1, 1, 1)
        c1 = torch.tensor(rgba_values(names, k.color), device=ctx.device, dtype=torch.float64).view(-1, 1, 1)
        pixels = (c0 + (c1 - c0) * t[None]).to(ctx.dtype)
        return Image(pixels, names, fmt.display, fmt)


class ColorBars(Node):
    """SMPTE-style colour bars: white, yellow, cyan, green, magenta, red, blue, black."""

    category = "Image"

    class Knobs(Knobs):
        format: FormatKnob = "HD_1080"
        """Output format."""
        barintensity: float = Field(0.75, ge=0)
        """Intensity of the bars (0.75 for 75% bars)."""

    BARS = ((1, 1, 1), (1, 1, 0), (0, 1, 1), (0, 1, 0), (1, 0, 1), (1, 0, 0), (0, 0, 1), (0, 0, 0))

    def compute(self, ctx: Context) -> Image:
        k = self.knobs
        fmt = format_of(self.name, k.format)
        w, h = fmt.width, fmt.height
        idx = (torch.arange(w, device=ctx.device) * len(self.BARS)) // w
        palette = torch.tensor(self.BARS, device=ctx.device, dtype=ctx.dtype) * k.barintensity
        rgb = palette[idx].T[:, None, :].expand(3, h, w)
        alpha = torch.ones(1, h, w, device=ctx.device, dtype=ctx.dtype)
        return Image(torch.cat([rgb, alpha]).contiguous(), chans.RGBA, fmt.display, fmt)
