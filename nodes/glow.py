"""Glow: a blurred copy of the image's bright parts added back on top, as Nuke's Glow.

The arithmetic is a plain function (``glow_source``) a test can call without a graph; the blur is
Blur's (``blur_kernel``: box, triangle, quadratic, gaussian), so sizes mean what they mean there.
"""

from __future__ import annotations

from typing import Literal

import torch
from pydantic import Field

from nodegraph.evaluator import Context
from nodegraph.image import Box, Image
from nodegraph.node import Input, Knobs, Node

from ._common import ChannelsKnob, MixKnob, mask_weight, select_channels
from .color_extra import RGB
from .filter import SizeKnob, _conv_axis, blur_kernel

#: Rec.709 luminance weights, for ``saturation``.
LUMA = (0.2126, 0.7152, 0.0722)
_RGB = ("rgba.red", "rgba.green", "rgba.blue")


def glow_source(planes: torch.Tensor, names: list[str], tolerance: float, saturation: float,
                tint: tuple[float, float, float], brightness: float) -> torch.Tensor:
    """What glows, per channel before the blur: max(x - tolerance, 0); on r, g, b the saturation
    is scaled about the luminance (L + (c - L) * saturation, L from the three when all are
    selected) and each is multiplied by its ``tint`` component; everything by ``brightness``."""
    g = (planes - tolerance).clamp(min=0)
    idx = [names.index(c) for c in _RGB if c in names]
    if len(idx) == 3 and saturation != 1.0:
        lum = sum(w * g[i] for w, i in zip(LUMA, idx))
        for i in idx:
            g[i] = lum + (g[i] - lum) * saturation
    for c, t in zip(_RGB, tint):
        if c in names and t != 1.0:
            g[names.index(c)] = g[names.index(c)] * t
    return g * brightness


class Glow(Node):
    """Nuke's Glow: out = x + blur(glow_source(x)) on ``channels`` (just the blurred glow with
    ``effect_only``), then masked and mixed: x + (out - x) * mix * mask. glow_source keeps what is
    above ``tolerance`` (max(x - tolerance, 0)), scales its saturation about the Rec.709 luminance,
    multiplies r, g, b by ``tint`` and everything by ``brightness``; the blur is Blur's ``filter``
    of ``size`` pixels (one value or x, y). The data window grows by the blur radius (clipped to
    the format with ``crop``).

    nodegraph's choices where the docs are silent: the tolerance applies per channel; saturation
    needs all of r, g, b selected; ``quality`` (Nuke's downsampled blur for big sizes) is accepted
    and ignored (full resolution always); the ``W`` width channel (a per-pixel size) is not offered.
    """

    category = "Filter"
    inputs = (Input("input", doc="Image to glow."), Input("mask", required=False, doc="Where to glow."))

    class Knobs(Knobs):
        channels: ChannelsKnob = "rgba"
        """Channels that glow; others pass through."""
        tint: RGB = (1.0, 1.0, 1.0)
        """Colour the glow of r, g, b is multiplied by."""
        tolerance: float = 0.0
        """Only what is above this value glows."""
        brightness: float = 1.0
        """Gain of the glow."""
        saturation: float = 1.0
        """Saturation of the glow (0: grey, 1: unchanged)."""
        effect_only: bool = False
        """Output only the glow, not the image with it added."""
        size: SizeKnob = 15.0
        """Blur size in pixels of the glow, one value or (x, y)."""
        filter: Literal["box", "triangle", "quadratic", "gaussian"] = "gaussian"
        """Blur filter (as Blur's)."""
        quality: int = Field(15, ge=0)
        """Nuke's speed/quality trade-off for large sizes; ignored."""
        crop: bool = True
        """Clip the grown data window to the format."""
        maskChannelInput: str = "rgba.alpha"
        """Channel of the mask input limiting the glow."""
        invert_mask: bool = False
        """Use one minus the mask."""
        mix: MixKnob = 1.0
        """Dissolve between the input (0) and the result (1)."""

    def compute(self, ctx: Context) -> Image:
        img = ctx.input("input")
        k = self.knobs
        s = k.size
        sx, sy = (float(s), float(s)) if isinstance(s, (int, float)) else (float(s[0]), float(s[1]))
        kx, ky = blur_kernel(k.filter, sx), blur_kernel(k.filter, sy)
        rx, ry = kx.numel() // 2, ky.numel() // 2
        names = [n for n in select_channels(k.channels, img, self.name) if n in img.channels]
        b = img.bbox
        grown = Box(b.x0 - rx, b.y0 - ry, b.x1 + rx, b.y1 + ry) if not b.empty else b
        out_box = grown.intersect(img.format.display) if k.crop else grown
        base = img.crop_to(out_box)
        if not names or out_box.empty:
            return base
        idx = [img.index(n) for n in names]
        src = img.pixels[idx].float()
        glow = glow_source(src, names, k.tolerance, k.saturation, k.tint, k.brightness)
        padded = Image(glow, tuple(names), b, img.format).crop_to(
            Box(out_box.x0 - rx, out_box.y0 - ry, out_box.x1 + rx, out_box.y1 + ry))
        blurred = _conv_axis(_conv_axis(padded.pixels, kx, 2), ky, 1)
        x = base.pixels[idx].float()
        result = blurred if k.effect_only else x + blurred
        w = mask_weight(ctx, k, out_box, device=img.device, dtype=torch.float32)
        pixels = base.pixels.clone()
        pixels[idx] = (x + (result - x) * w).to(pixels.dtype)
        return base.replace(pixels=pixels)


__all__ = ["Glow", "glow_source", "LUMA"]
