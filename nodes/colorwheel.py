"""ColorWheel: Nuke's colour wheel generator."""

from __future__ import annotations

import math

import torch
from pydantic import Field

from nodegraph import channels as chans
from nodegraph.evaluator import Context
from nodegraph.image import Image
from nodegraph.node import Knobs, Node

from ._common import ChannelsKnob, FormatKnob, format_of
from .generate import _channel_problem, _names
from .transform import Box4


def hsv_to_rgb(h: torch.Tensor, s: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """HSV (hue in turns, 0..1 wraps) to RGB, ``[3, H, W]``: the hexcone model (as Python's colorsys)."""
    h6 = torch.remainder(h, 1.0) * 6.0
    i = torch.floor(h6)
    f = h6 - i
    p, q, t = v * (1 - s), v * (1 - s * f), v * (1 - s * (1 - f))
    i = i.long() % 6
    r = torch.stack([v, q, p, p, t, v])
    g = torch.stack([t, v, v, q, p, p])
    b = torch.stack([p, p, t, v, v, q])
    pick = i[None]
    return torch.stack([r.gather(0, pick)[0], g.gather(0, pick)[0], b.gather(0, pick)[0]])


class ColorWheel(Node):
    """A colour wheel: hue goes round the wheel (red on the +x axis, counter-clockwise in Nuke's
    y-up image, ``rotate`` degrees added), saturation and value go linearly from the centre's to
    the edge's along the radius; the HSV colour then gets ``gamma`` as ``rgb ** (1 / gamma)``
    (0.45 by default, making the wheel's display-referred colours linear light). Alpha is 1 on the
    wheel and 0 outside, its edge antialiased over one pixel; outside, every channel is 0.

    The wheel fills the format's smaller side, centred (``fillFormat``), or the ``area`` box
    (x, y, r, t). Foundry documents the knobs, not the formulas: the hexcone HSV model, the
    direction of hue, the gamma as a power and the one-pixel edge are choices made here."""

    category = "Image"

    class Knobs(Knobs):
        format: FormatKnob = "HD_1080"
        """Output format."""
        channels: ChannelsKnob = "rgba"
        """Channels written (the others of rgba are black)."""
        centerSaturation: float = 0.0
        """HSV saturation at the centre."""
        edgeSaturation: float = 1.0
        """HSV saturation at the edge."""
        centerValue: float = 1.0
        """HSV value at the centre."""
        edgeValue: float = 1.0
        """HSV value at the edge."""
        gamma: float = Field(0.45, gt=0)
        """Gamma: the HSV colour is raised to 1 / gamma."""
        rotate: float = 0.0
        """Degrees added to the hue's angle (negative: clockwise)."""
        fillFormat: bool = True
        """Fill the format's smaller side, centred; off: use ``area``."""
        area: Box4 = (0.0, 0.0, 0.0, 0.0)
        """The wheel's box x, y, r, t when ``fillFormat`` is off."""

    def check(self) -> list[str]:
        problem = _channel_problem(self.knobs.channels)
        return [f"knob 'channels': {problem}"] if problem else []

    def compute(self, ctx: Context) -> Image:
        k = self.knobs
        names = set(_names(k.channels, self.name, "channels"))
        fmt = format_of(self.name, k.format)
        w, h = fmt.width, fmt.height
        if k.fillFormat:
            side = min(w, h)
            x0, y0, x1, y1 = (w - side) / 2, (h - side) / 2, (w + side) / 2, (h + side) / 2
        else:
            x0, y0, x1, y1 = k.area
        dtype = ctx.dtype if ctx.dtype == torch.float64 else torch.float32
        ys = torch.arange(h, device=ctx.device, dtype=dtype)[:, None] + 0.5
        xs = torch.arange(w, device=ctx.device, dtype=dtype)[None, :] + 0.5
        cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
        rx, ry = max(abs(x1 - x0) / 2, 1e-9), max(abs(y1 - y0) / 2, 1e-9)
        dx, dy = (xs - cx) / rx, (ys - cy) / ry
        radius = torch.sqrt(dx * dx + dy * dy).expand(h, w)
        hue = (torch.atan2(dy, dx) / (2 * math.pi) + k.rotate / 360.0).expand(h, w)
        t = radius.clamp(max=1.0)
        sat = k.centerSaturation + (k.edgeSaturation - k.centerSaturation) * t
        val = k.centerValue + (k.edgeValue - k.centerValue) * t
        rgb = hsv_to_rgb(hue, sat, val).clamp(min=0) ** (1.0 / k.gamma)
        # coverage: 1 inside, 0 outside, linear over the last pixel of the radius
        pixel = 1.0 / min(rx, ry)
        alpha = ((1.0 - radius) / pixel + 0.5).clamp(0.0, 1.0)
        pixels = torch.cat([rgb * alpha, alpha[None]]).to(ctx.dtype)
        keep = torch.tensor([c in names for c in chans.RGBA], device=ctx.device, dtype=pixels.dtype)
        return Image((pixels * keep[:, None, None]).contiguous(), chans.RGBA, fmt.display, fmt)
