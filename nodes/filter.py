"""Blur: separable convolution with Nuke's Blur filters.

``size`` is the blur's extent in pixels, per axis:

- ``box``: the average over a window ``size`` pixels wide (fractional edges weighted by coverage);
- ``triangle``: a tent of full width ``size`` (weights 1 - 2|x|/size at the pixel offsets);
- ``quadratic``: a quadratic B-spline of full width ``size``;
- ``gaussian``: a Gaussian of standard deviation ``size / 2.4`` (the relation the Nuke-compatible
  open-source Blur of openfx-misc/Natron documents for Nuke's size knob), truncated at 3 sigma.

Kernels are sampled at integer pixel offsets and normalised to sum to one. Outside the input's
data window the image is black (nodegraph's rule), so blurred edges fade into black; the data
window grows by the kernel radius on each side, and with ``crop`` on (Nuke's default) it is then
clipped to the format. Nuke's ``quality`` (a downsample-blur-upsample shortcut for large sizes) is
accepted and ignored: every blur is computed at full resolution.
"""

from __future__ import annotations

import math
from typing import Annotated, Literal

import torch
import torch.nn.functional as F
from pydantic import AfterValidator, Field

from nodegraph.animation import WH
from nodegraph.evaluator import Context
from nodegraph.image import Box, Image
from nodegraph.node import Input, Knobs, Node

from ._common import ChannelsKnob, MixKnob, mask_weight, select_channels


def _non_negative(v):
    vals = (v,) if isinstance(v, (int, float)) else tuple(v)
    if any(x < 0 for x in vals):
        raise ValueError("size must not be negative")
    return v


SizeKnob = Annotated[float | tuple[float, float], AfterValidator(_non_negative), WH]
BlurFilter = Literal["box", "triangle", "quadratic", "gaussian"]

#: Gaussian standard deviation per unit of ``size``.
SIGMA_PER_SIZE = 1 / 2.4


def blur_kernel(kind: str, size: float) -> torch.Tensor:
    """The normalised 1D kernel (float64, odd length, centred) for a blur of ``size`` pixels."""
    if size <= 0:
        return torch.ones(1, dtype=torch.float64)
    if kind == "gaussian":
        sigma = size * SIGMA_PER_SIZE
        r = int(math.ceil(3 * sigma))
        x = torch.arange(-r, r + 1, dtype=torch.float64)
        w = torch.exp(-(x * x) / (2 * sigma * sigma))
    else:
        half = size / 2
        r = int(math.ceil(half + 0.5)) if kind == "box" else int(math.ceil(half))
        x = torch.arange(-r, r + 1, dtype=torch.float64)
        if kind == "box":  # coverage of pixel [x - 1/2, x + 1/2] by [-size/2, size/2]
            w = (torch.minimum(x + 0.5, torch.tensor(half, dtype=torch.float64))
                 - torch.maximum(x - 0.5, torch.tensor(-half, dtype=torch.float64))).clamp(min=0)
        elif kind == "triangle":
            w = (1 - x.abs() / half).clamp(min=0)
        else:  # quadratic B-spline on [-1.5, 1.5], stretched to [-size/2, size/2]
            t = x.abs() * (3 / size)
            w = torch.where(t < 0.5, 0.75 - t * t, torch.where(t < 1.5, 0.5 * (t - 1.5) ** 2, torch.zeros_like(t)))
    nz = torch.nonzero(w > 0).flatten()
    if nz.numel() == 0:
        return torch.ones(1, dtype=torch.float64)
    r = int(max(abs(int(nz[0]) - (w.numel() // 2)), abs(int(nz[-1]) - (w.numel() // 2))))
    c = w.numel() // 2
    w = w[c - r:c + r + 1]
    return w / w.sum()


def _conv_axis(x: torch.Tensor, k: torch.Tensor, dim: int) -> torch.Tensor:
    """Valid 1D convolution of ``[C, H, W]`` along ``dim`` (1 or 2) with a symmetric kernel."""
    if k.numel() == 1:
        return x * k[0].to(x.dtype)
    c, h, w = x.shape
    if dim == 2:
        out = F.conv1d(x.reshape(c * h, 1, w), k.to(device=x.device, dtype=x.dtype).view(1, 1, -1))
        return out.reshape(c, h, -1)
    t = x.permute(0, 2, 1).reshape(c * w, 1, h)
    out = F.conv1d(t, k.to(device=x.device, dtype=x.dtype).view(1, 1, -1))
    return out.reshape(c, w, -1).permute(0, 2, 1)


class Blur(Node):
    """Blurs the chosen channels with a box, triangle, quadratic or Gaussian filter of ``size``
    pixels (one value or x, y), as Nuke's Blur; the data window grows by the filter radius."""

    category = "Filter"
    inputs = (Input("input", doc="Image to blur."),
              Input("mask", required=False, doc="Optional mask limiting where the blur applies."))

    class Knobs(Knobs):
        channels: ChannelsKnob = "rgba"
        """Channels to blur; others pass through (padded with black to the new data window)."""
        size: SizeKnob = 0.0
        """Blur size in pixels, one value or (x, y); gaussian: sigma = size / 2.4."""
        filter: BlurFilter = "gaussian"
        """Kernel: box, triangle, quadratic or gaussian (see the module documentation)."""
        quality: int = Field(15, ge=0)
        """Nuke's speed/quality trade-off for large blurs; ignored: blurs are always full quality."""
        crop: bool = True
        """Clip the grown data window to the format."""
        mix: MixKnob = 1.0
        """Dissolve between the input (0) and the blur (1)."""
        maskChannelInput: str = "rgba.alpha"
        """Channel of the optional mask input that limits the blur (absent: black, no blur)."""
        invert_mask: bool = False
        """Use one minus the mask channel."""

    def _sizes(self) -> tuple[float, float]:
        s = self.knobs.size
        return (float(s), float(s)) if isinstance(s, (int, float)) else (float(s[0]), float(s[1]))

    def passthrough(self, ctx: Context) -> str | None:
        sx, sy = self._sizes()
        return "input" if (sx <= 0 and sy <= 0) or self.knobs.mix == 0 else None

    def compute(self, ctx: Context) -> Image:
        img = ctx.input("input")
        k = self.knobs
        sx, sy = self._sizes()
        kx, ky = blur_kernel(k.filter, sx), blur_kernel(k.filter, sy)
        rx, ry = kx.numel() // 2, ky.numel() // 2
        names = [n for n in select_channels(k.channels, img, self.name) if n in img.channels]
        if not names or (rx == 0 and ry == 0) or img.bbox.empty:
            return img
        b = img.bbox
        grown = Box(b.x0 - rx, b.y0 - ry, b.x1 + rx, b.y1 + ry)
        out_box = grown.intersect(img.format.display) if k.crop else grown
        if out_box.empty:
            return img.crop_to(out_box)
        idx = [img.index(n) for n in names]
        src = Image(img.pixels[idx], tuple(names), b, img.format)
        padded = src.crop_to(Box(out_box.x0 - rx, out_box.y0 - ry, out_box.x1 + rx, out_box.y1 + ry))
        work = padded.pixels if padded.dtype == torch.float64 else padded.pixels.float()
        blurred = _conv_axis(_conv_axis(work, kx, 2), ky, 1)
        base = img.crop_to(out_box)
        pixels = base.pixels.clone()
        sel = blurred.to(pixels.dtype)
        weight = mask_weight(ctx, k, out_box, device=pixels.device, dtype=pixels.dtype)  # mix times the mask
        if not isinstance(weight, float) or weight != 1.0:
            sel = pixels[idx] + (sel - pixels[idx]) * weight
        pixels[idx] = sel
        return base.replace(pixels=pixels)


__all__ = ["Blur", "blur_kernel", "SIGMA_PER_SIZE"]
