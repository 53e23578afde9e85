"""EdgeDetect: the gradient magnitude of the image, as Nuke's EdgeDetect class (the node inside
Nuke's EdgeDetectWrapper; its pre-blur and post-erode are that wrapper's, not this class's).

The 3x3 gradient kernels are plain data (``KERNELS``) and ``edges`` a function a test can call
without a graph.
"""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F

from nodegraph.evaluator import Context
from nodegraph.image import Image
from nodegraph.node import Input, Knobs, Node

from ._common import ChannelsKnob, select_channels
from .copy import ChannelOrNone

#: Horizontal derivative kernels (rows top to bottom), scaled so a ramp of slope 1 gives 1; the
#: vertical kernel is the transpose.
KERNELS = {
    "simple": [[0, 0, 0], [-0.5, 0, 0.5], [0, 0, 0]],
    "sobel": [[-1 / 8, 0, 1 / 8], [-2 / 8, 0, 2 / 8], [-1 / 8, 0, 1 / 8]],
    "prewitt": [[-1 / 6, 0, 1 / 6], [-1 / 6, 0, 1 / 6], [-1 / 6, 0, 1 / 6]],
}


def edges(planes: torch.Tensor, method: str, threshold: float) -> torch.Tensor:
    """Gradient magnitude sqrt(gx^2 + gy^2) of ``[C, H, W]`` planes (black outside), zero where it
    is below ``threshold``; float32 (float64 stays float64)."""
    x = planes if planes.dtype == torch.float64 else planes.float()
    kx = torch.tensor(KERNELS[method], dtype=x.dtype, device=x.device)
    weight = torch.stack([kx, kx.T])[:, None]  # [2, 1, 3, 3]
    g = F.conv2d(x[:, None], weight, padding=1)  # cross-correlation: right minus left, below minus above
    mag = torch.sqrt(g[:, 0] ** 2 + g[:, 1] ** 2)
    return torch.where(mag < threshold, torch.zeros_like(mag), mag)


class EdgeDetect(Node):
    """Nuke's EdgeDetect: each of ``channels`` becomes its gradient magnitude
    sqrt(gx^2 + gy^2), gx and gy from the ``edgedetector``'s 3x3 kernel (simple: central
    differences; sobel: 1 2 1 weighted; prewitt: 1 1 1), values below ``threshold`` set to 0.
    With an ``output`` channel the channels keep their values and ``output`` receives the largest
    magnitude among them; ``maskedgedetect`` (a channel of the input) limits the effect:
    x + (edge - x) * clamp(mask, 0, 1).

    nodegraph's choices where the docs are silent: kernels are scaled so a ramp of slope 1 reads 1;
    pixels outside the data window are black (edges show at its border) and the data window stays
    the input's; a mask channel the image lacks reads black (no effect).
    """

    category = "Filter"
    inputs = (Input("input", doc="Image to find edges in."),)

    class Knobs(Knobs):
        edgedetector: Literal["simple", "sobel", "prewitt"] = "sobel"
        """Gradient kernel: simple, sobel or prewitt."""
        channels: ChannelsKnob = "all"
        """Channels whose edges are found."""
        threshold: float = 0.0
        """Magnitudes below this become 0."""
        output: ChannelOrNone = "none"
        """Channel receiving the largest magnitude ('none': the channels themselves are replaced)."""
        maskedgedetect: ChannelOrNone = "none"
        """Channel of the input limiting the effect ('none': everywhere)."""

    def compute(self, ctx: Context) -> Image:
        img = ctx.input("input")
        k = self.knobs
        names = [n for n in select_channels(k.channels, img, self.name) if n in img.channels]
        out_name = k.output.strip()
        if not names or img.bbox.empty:
            if out_name != "none" and out_name not in img.channels:
                return img.with_channel(out_name, torch.zeros(img.pixels.shape[1:]))
            return img
        idx = [img.index(n) for n in names]
        x = img.pixels[idx]
        e = edges(x, k.edgedetector, k.threshold)
        mask_name = k.maskedgedetect.strip()
        m = None
        if mask_name != "none":
            m = img.channel(mask_name).float().clamp(0, 1) if mask_name in img.channels else \
                torch.zeros(img.pixels.shape[1:], device=img.device)
        if out_name != "none":
            mag = e.max(dim=0).values
            if m is not None:
                before = img.channel(out_name).float() if out_name in img.channels else torch.zeros_like(mag)
                mag = before + (mag - before) * m
            return img.with_channel(out_name, mag)
        if m is not None:
            e = x.float() + (e - x.float()) * m
        pixels = img.pixels.clone()
        pixels[idx] = e.to(pixels.dtype)
        return img.replace(pixels=pixels)


__all__ = ["EdgeDetect", "KERNELS", "edges"]
