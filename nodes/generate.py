"""Procedural sources: Constant, Checkerboard, Ramp, ColorBars, and the base of Nuke's draw nodes.

Draw nodes (Nuke's DrawIop: Ramp here, Radial and Rectangle in :mod:`.draw`, Noise in
:mod:`.noise`) compute a coverage ``v`` in 0..1 at each pixel centre (Nuke's y-up pixels) and a
colour ``fill``, and draw over their optional background input (black of ``format`` when
unconnected), in the ``output`` channels::

    v' = 1 - v with invert;   drawn = bg * (1 - v') + fill * v'   (replace: fill * v')
    out = bg + (drawn - bg) * opacity * mask

Foundry documents the knobs, not this arithmetic: the over-style blend, the clamp of the mask to
0..1 and the data window (the format: Nuke's default "clip to format") are nodegraph's choices.
The other channels of the background pass through; ``output`` channels it lacks start black.
"""

from __future__ import annotations

from typing import Literal

import torch
from pydantic import Field

from nodegraph import channels as chans
from nodegraph.errors import ChannelError, KnobError
from nodegraph.evaluator import Context
from nodegraph.image import Image
from nodegraph.node import Input, Knobs, Node

from ._common import ChannelsKnob, Color4, FormatKnob, XYKnob, fill, format_of, rgba_values
from .blend import mask_plane
from .copy import ChannelOrNone
from .shuffle import assemble


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


RampType = Literal["linear", "smooth0", "smooth1", "smooth"]


def ramp_t(x: torch.Tensor, y: torch.Tensor, p0: tuple[float, float], p1: tuple[float, float],
           kind: str) -> torch.Tensor:
    """Position along the ramp from ``p0`` (0) to ``p1`` (1) of the points ``x, y`` (y up),
    clamped, then shaped: linear, smooth0 (flat at p0), smooth1 (flat at p1), smooth (both)."""
    dx, dy = p1[0] - p0[0], p1[1] - p0[1]
    length2 = dx * dx + dy * dy
    if length2 == 0:
        return torch.zeros_like(x + y)
    t = (((x - p0[0]) * dx + (y - p0[1]) * dy) / length2).clamp(0, 1)
    if kind == "smooth0":
        return t * t
    if kind == "smooth1":
        return 1 - (1 - t) ** 2
    if kind == "smooth":
        return t * t * (3 - 2 * t)
    return t


class Draw(Node, abstract=True):
    """Base of the draw nodes (see the module docstring): subclasses give ``coverage`` and,
    optionally, ``paint`` (the fill times the coverage)."""

    category = "Draw"
    inputs = (
        Input("input", required=False, doc="Input 0: the background drawn over (black of `format` if unconnected)."),
        Input("mask", required=False, doc="Limits the drawing to where its maskChannelInput is white."),
    )

    class Knobs(Knobs):
        output: ChannelsKnob = "rgba"
        """Channels drawn into (rgba channels take the colour's components, others its red)."""
        replace: bool = False
        """Clear the output channels of the background before drawing (fill * coverage)."""
        invert: bool = False
        """Draw one minus the coverage (outside the shape)."""
        opacity: float = 1.0
        """Scales the drawing's effect (0: the background unchanged)."""
        maskChannelInput: ChannelOrNone = "rgba.alpha"
        """Channel of the mask input limiting the drawing (none: no mask)."""
        invert_mask: bool = False
        """Use one minus the mask channel."""
        format: FormatKnob = "HD_1080"
        """Output format when the background input is not connected (else the background's)."""

    def check(self) -> list[str]:
        problem = _channel_problem(self.knobs.output)
        return [f"knob 'output': {problem}"] if problem else []

    def coverage(self, x: torch.Tensor, y: torch.Tensor, fmt) -> torch.Tensor:
        raise NotImplementedError

    def paint(self, x: torch.Tensor, y: torch.Tensor, v: torch.Tensor, names: tuple[str, ...]) -> torch.Tensor:
        """``[C, H, W]`` fill times coverage; default: ``color``."""
        color = torch.tensor(rgba_values(names, self.knobs.color, default=self.knobs.color[0]),
                             device=v.device, dtype=v.dtype).view(-1, 1, 1)
        return color * v[None]

    def _output(self, bg: Image | None) -> tuple[str, ...]:
        """The output channels: rgba, rgb, alpha... in full (made if the background lacks them), a
        bare layer as the background has it."""
        if bg is not None and _channel_problem(self.knobs.output):
            try:
                return chans.expand(self.knobs.output, bg.channels)
            except ChannelError:
                pass
        return _names(self.knobs.output, self.path, "output")

    def compute(self, ctx: Context) -> Image:
        k = self.knobs
        bg = ctx.input("input") if ctx.has_input("input") else None
        fmt = bg.format if bg is not None else format_of(self.name, k.format)
        names = self._output(bg)
        box = fmt.display
        dev = ctx.device
        f64 = torch.float64
        x = (torch.arange(box.width, device=dev, dtype=f64) + (box.x0 + 0.5))[None, :]
        y = (fmt.height - (torch.arange(box.height, device=dev, dtype=f64) + (box.y0 + 0.5)))[:, None]
        x, y = torch.broadcast_tensors(x, y)
        v = self.coverage(x, y, fmt).clamp(0, 1)
        if k.invert:
            v = 1 - v
        painted = self.paint(x, y, v, names)
        if bg is not None:
            base = bg.to(dev, ctx.dtype).crop_to(box)
        else:
            base = Image(torch.zeros((0, box.height, box.width), device=dev, dtype=ctx.dtype), (), box, fmt)
        m = mask_plane(ctx, k.maskChannelInput, k.invert_mask, box, dev) if ctx.has_input("mask") else None
        weight = k.opacity if m is None else m.to(f64) * k.opacity
        planes = {}
        for i, name in enumerate(names):
            b = base.channel(name).to(f64) if name in base.channels else torch.zeros_like(v)
            drawn = painted[i] if k.replace else b * (1 - v) + painted[i]
            planes[name] = b + (drawn - b) * weight
        return assemble(base, planes)


class Ramp(Draw):
    """A linear or smooth ramp between two points, as Nuke's Ramp (points are y-up), drawn over
    its optional background as the draw nodes are (module docstring) with coverage ``t``, the
    position from p0 (0) to p1 (1): ``out = (bg + color0) * (1 - t) + color * t`` at opacity 1.
    ``color0`` is nodegraph's addition (Nuke's Ramp has only ``color``; its default, transparent
    black, gives Nuke's ramp)."""

    class Knobs(Draw.Knobs):
        p0: XYKnob = (0.0, 540.0)
        """Start point (x, y), y measured up from the bottom as in Nuke."""
        p1: XYKnob = (1920.0, 540.0)
        """End point (x, y)."""
        type: RampType = "linear"
        """Interpolation: linear, or smoothed at the start, end or both."""
        color0: Color4 = (0.0, 0.0, 0.0, 0.0)
        """Colour added at p0 (nodegraph's addition; Nuke's ramp starts from the background)."""
        color: Color4 = (1.0, 1.0, 1.0, 1.0)
        """Colour at p1."""

    def coverage(self, x, y, fmt):
        return ramp_t(x, y, self.knobs.p0, self.knobs.p1, self.knobs.type)

    def paint(self, x, y, v, names):
        k = self.knobs
        c0 = torch.tensor(rgba_values(names, k.color0), device=v.device, dtype=v.dtype).view(-1, 1, 1)
        c1 = torch.tensor(rgba_values(names, k.color), device=v.device, dtype=v.dtype).view(-1, 1, 1)
        return c1 * v[None] + c0 * (1 - v[None])


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
