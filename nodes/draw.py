"""Radial and Rectangle: Nuke's draw nodes of those names (the drawing arithmetic, background,
mask and knobs they share are :class:`.generate.Draw`'s).

Both fill their shape with ``color``, or with ``ramp`` other than none a gradient from ``color0``
at ``p0`` to ``color`` at ``p1`` (positions y up, shaped as Ramp's ``type``).
"""

from __future__ import annotations

import math
from typing import Literal

import torch
from pydantic import Field

from ._common import Color4, WHKnob, XYKnob, rgba_values
from .generate import Draw, RampType, ramp_t
from .transform import Box4, _coverage


class Shape(Draw, abstract=True):
    """A draw node filled with a colour or a two-point gradient."""

    class Knobs(Draw.Knobs):
        color: Color4 = (1.0, 1.0, 1.0, 1.0)
        """Fill colour (at p1 when `ramp` is not none)."""
        ramp: Literal["none"] | RampType = "none"
        """Fill with a gradient from color0 at p0 to color at p1: none, linear, smooth0, smooth1, smooth."""
        color0: Color4 = (0.0, 0.0, 0.0, 0.0)
        """Gradient colour at p0."""
        p0: XYKnob = (100.0, 100.0)
        """Gradient start (x, y; y up)."""
        p1: XYKnob = (100.0, 400.0)
        """Gradient end (x, y; y up). Nuke's first component; the second is nodegraph's choice."""

    def paint(self, x, y, v, names):
        k = self.knobs
        c1 = torch.tensor(rgba_values(names, k.color, default=k.color[0]), device=v.device,
                          dtype=v.dtype).view(-1, 1, 1)
        if k.ramp == "none":
            return c1 * v[None]
        c0 = torch.tensor(rgba_values(names, k.color0, default=k.color0[0]), device=v.device,
                          dtype=v.dtype).view(-1, 1, 1)
        t = ramp_t(x, y, k.p0, k.p1, k.ramp)[None]
        return (c0 + (c1 - c0) * t) * v[None]


def _box(area: Box4) -> tuple[float, float, float, float]:
    x, y, r, t = area
    return min(x, r), min(y, t), max(x, r), max(y, t)


class Radial(Shape):
    """Nuke's Radial: an ellipse filling ``area`` (x, y, r, t; y up). With ``d`` the distance from
    the centre in units of the radii (1 on the ellipse), the coverage is 1 inside
    ``d <= 1 - softness``, 0 outside the ellipse, and between them falls with
    ``s = (1 - d) / softness`` as a smoothstep ``s * s * (3 - 2 s)``, or linearly with ``plinear``.

    nodegraph's choices where the docs are silent: the coverage is taken at pixel centres (no
    edge antialiasing beyond the softness); softness is held to 0..1. The defaults are those Nuke
    writes against: area 0 0 0 0 (Nuke fills it from the format when the node is made).
    """

    class Knobs(Shape.Knobs):
        area: Box4 = (0.0, 0.0, 0.0, 0.0)
        """Box the ellipse fills: x, y, r, t in pixels, y up."""
        softness: float = 1.0
        """Width of the falloff as a fraction of the radius (0: a hard edge; 1: from the centre)."""
        plinear: bool = False
        """Fall off linearly instead of along a smooth curve."""

    def coverage(self, x, y, fmt):
        k = self.knobs
        x0, y0, x1, y1 = _box(k.area)
        rx, ry = (x1 - x0) / 2, (y1 - y0) / 2
        if rx <= 0 or ry <= 0:
            return torch.zeros_like(x)
        d = torch.sqrt(((x - (x0 + rx)) / rx) ** 2 + ((y - (y0 + ry)) / ry) ** 2)
        soft = min(max(k.softness, 0.0), 1.0)
        if soft == 0:
            return (d < 1).to(x.dtype)
        s = ((1 - d) / soft).clamp(0, 1)
        return s if k.plinear else s * s * (3 - 2 * s)


class Rectangle(Shape):
    """Nuke's Rectangle: fills ``area`` (x, y, r, t; y up); a pixel on a fractional edge is covered
    by the fraction of its area inside, and ``softness`` (x, y) fades the coverage to 0 over that
    many pixels inward from each edge along a smoothstep.

    nodegraph's choices where the docs are silent: the softness ramps inward from the edges (as
    Crop's); the defaults are those Nuke writes against (area 0 0 0 0: Nuke fills it from the format
    when the node is made, softness 0).
    """

    class Knobs(Shape.Knobs):
        area: Box4 = (0.0, 0.0, 0.0, 0.0)
        """The rectangle: x, y, r, t in pixels, y up."""
        softness: WHKnob = Field(0.0)
        """Fade-in width from the edges in pixels: one value or (w, h)."""

    def coverage(self, x, y, fmt):
        k = self.knobs
        x0, y0, x1, y1 = _box(k.area)
        sx, sy = (k.softness, k.softness) if isinstance(k.softness, (int, float)) else k.softness
        h, w = x.shape
        col0 = math.floor(float(x[0, 0]))
        row0 = fmt.height - math.ceil(float(y[0, 0]))
        cx = _coverage(w, col0, x0, x1, max(sx, 0.0), x.device, x.dtype)
        cy = _coverage(h, row0, fmt.height - y1, fmt.height - y0, max(sy, 0.0), x.device, x.dtype)
        return cy[:, None] * cx[None, :]


__all__ = ["Radial", "Rectangle"]
