"""Keymix and Dissolve: blends between inputs, as Nuke's nodes of those names.

Keymix follows the NDK's Keymix example (inputs B, A, mask; channels, maskChannel, invertMask,
mix, bbox union / B / A); Dissolve follows Foundry's reference page (inputs 0..N; which,
channels). Arithmetic runs in float32 for half images.
"""

from __future__ import annotations

import math
from typing import Literal

import torch

from nodegraph.evaluator import Context
from nodegraph.image import Box, Image
from nodegraph.node import Input, Knobs, Node

from ._common import ChannelsKnob, MixKnob
from .channel_ops import present
from .copy import ChannelOrNone
from .shuffle import assemble

T = torch.Tensor


def mask_plane(ctx: Context, channel: str, invert: bool, box: Box, device: torch.device) -> T | None:
    """The mask input's ``channel`` over ``box`` in float32 clamped to 0..1 (one minus it with
    ``invert``); an unconnected mask or a channel it lacks reads black; None for channel 'none'."""
    if channel.strip() == "none":
        return None
    mask = ctx.input("mask") if ctx.has_input("mask") else None
    if mask is not None and channel in mask.channels:
        m = mask.to(device).crop_to(box).channel(channel).float().clamp(0, 1)
    else:
        m = torch.zeros((box.height, box.width), device=device)
    return 1 - m if invert else m


def _plane(img: Image, name: str) -> T:
    if name in img.channels:
        return img.channel(name).float()
    return torch.zeros(img.pixels.shape[1:], device=img.device)


class Keymix(Node):
    """Nuke's Keymix: copies the ``channels`` of A onto B where the mask is white,
    out = B + (A - B) * m * mix, m the mask input's ``maskChannel`` (one minus it with
    ``invertMask``). Channels of B outside ``channels`` pass through; selected channels only A has
    are added (B reads 0 there), as the NDK example does. The data window is chosen by ``bbox``.

    nodegraph's choices where the docs are silent: the mask is clamped to 0..1; an unconnected mask
    is black (the result is B), and maskChannel 'none' means no mask (A everywhere, times mix).
    """

    type_name = "Keymix"
    category = "Merge"
    inputs = (
        Input("B", doc="Input 0: the background, kept where the mask is black."),
        Input("A", doc="Input 1: the image copied where the mask is white."),
        Input("mask", required=False, doc="The mask (black if unconnected)."),
    )

    class Knobs(Knobs):
        channels: ChannelsKnob = "all"
        """Channels of A copied onto B ('all', a layer, a channel, a comma list, 'none')."""
        maskChannel: ChannelOrNone = "rgba.alpha"
        """Channel of the mask input that says where A is copied ('none': everywhere)."""
        invertMask: bool = False
        """Use one minus the mask channel."""
        mix: MixKnob = 1.0
        """Dissolve between B (0) and the full keymix (1)."""
        bbox: Literal["union", "B", "A"] = "union"
        """Output data window: the union of A's and B's, B's or A's."""

    def compute(self, ctx: Context) -> Image:
        k = self.knobs
        img_b = ctx.input("B")
        img_a = ctx.input("A").to(img_b.device, img_b.dtype)
        box = {"union": img_a.bbox.union(img_b.bbox), "B": img_b.bbox, "A": img_a.bbox}[k.bbox]
        img_a, img_b = img_a.crop_to(box), img_b.crop_to(box)
        m = mask_plane(ctx, k.maskChannel, k.invertMask, box, img_b.device)
        weight = k.mix if m is None else m * k.mix
        planes = {}
        for name in present(k.channels, img_a.channels):
            b = _plane(img_b, name)
            planes[name] = b + (_plane(img_a, name) - b) * weight
        return assemble(img_b, planes)


#: Inputs Dissolve offers ("0".."7"); Nuke allows more.
DISSOLVE_INPUTS = 8


class Dissolve(Node):
    """Nuke's Dissolve: a weighted average of two of its inputs, chosen by ``which``: an integer
    shows that input, a fraction between two mixes the nearest inputs,
    out = in_i * (1 - f) + in_(i+1) * f with i = floor(which), f = which - i, on ``channels``.
    With the mask input connected the dissolve is limited to where the mask (its
    ``maskChannelInput``, one minus it with ``invert_mask``) is white: out = in0 + (D - in0) * m,
    D the dissolve above, in0 input 0 (Nuke shows a masked node's first input where the mask is
    black); an empty mask window reads black. Nuke's inject and fringe are not offered.

    nodegraph's choices where the docs are silent: ``which`` is clamped to 0..the last connected
    input; an unconnected input in between reads black (no data); channels outside ``channels`` and
    the format come from in_i; the data window is in_i's for a whole ``which`` and the union of
    both otherwise.
    """

    type_name = "Dissolve"
    category = "Merge"
    inputs = tuple(Input(str(i), required=i == 0, doc=f"Input {i}.") for i in range(DISSOLVE_INPUTS)) + (
        Input("mask", required=False, doc="Where the dissolve applies (input 0 elsewhere)."),)

    class Knobs(Knobs):
        which: float = 0.0
        """Input shown: 0 input 0, 1 input 1, 0.25 a quarter of the way from input 0 to input 1."""
        channels: ChannelsKnob = "all"
        """Channels dissolved; the others come from the lower input."""
        maskChannelInput: ChannelOrNone = "rgba.alpha"
        """Channel of the mask input limiting the dissolve ('none': no mask)."""
        invert_mask: bool = False
        """Use one minus the mask channel."""

    def _pair(self, ctx: Context) -> tuple[int, float]:
        last = max((int(n) for n in ctx.connected if n.isdigit()), default=0)
        which = min(max(self.knobs.which, 0.0), float(last))
        i = math.floor(which)
        return i, which - i

    def needs(self, ctx: Context):
        i, f = self._pair(ctx)
        wanted = [str(i)] + ([str(i + 1)] if f > 0 else [])
        if not any(n in ctx.connected for n in wanted) or self._masked(ctx):
            wanted.append("0")  # for the format of the black it shows, or what the mask keeps
        if self._masked(ctx):
            wanted.append("mask")
        return [(n, ctx.frame) for n in dict.fromkeys(wanted) if n in ctx.connected]

    def _masked(self, ctx: Context) -> bool:
        return "mask" in ctx.connected and self.knobs.maskChannelInput.strip() != "none"

    def compute(self, ctx: Context) -> Image:
        out = self._dissolve(ctx)
        if not self._masked(ctx):
            return out
        base = ctx.input("0").to(out.device, out.dtype)
        box = out.bbox.union(base.bbox)
        out, base = out.crop_to(box), base.crop_to(box)
        m = mask_plane(ctx, self.knobs.maskChannelInput, self.knobs.invert_mask, box, out.device)
        names = out.channels + tuple(c for c in base.channels if c not in out.channels)
        planes = {}
        for name in names:
            b = _plane(base, name)
            planes[name] = b + (_plane(out, name) - b) * m
        return assemble(out, planes)

    def _dissolve(self, ctx: Context) -> Image:
        i, f = self._pair(ctx)
        lo = ctx.input(str(i)) if ctx.has_input(str(i)) else None
        hi = ctx.input(str(i + 1)) if f > 0 and ctx.has_input(str(i + 1)) else None
        ref = lo if lo is not None else hi if hi is not None else ctx.input("0")
        if lo is None:  # black: the reference's channels and format, no data
            lo = ref.replace(pixels=ref.pixels[:, :0, :0], bbox=Box(0, 0, 0, 0))
        if f == 0:
            return lo
        if hi is None:
            hi = lo.replace(pixels=lo.pixels[:, :0, :0], bbox=Box(0, 0, 0, 0))
        hi = hi.to(lo.device, lo.dtype)
        box = lo.bbox.union(hi.bbox)
        lo, hi = lo.crop_to(box), hi.crop_to(box)
        planes = {}
        for name in present(self.knobs.channels, lo.channels + tuple(c for c in hi.channels if c not in lo.channels)):
            a = _plane(lo, name)
            planes[name] = a + (_plane(hi, name) - a) * f
        return assemble(lo, planes)


__all__ = ["Dissolve", "Keymix", "mask_plane"]
