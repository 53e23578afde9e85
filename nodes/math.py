"""Per-channel arithmetic: Add, Multiply (Nuke's Math nodes), with Nuke's mask input and mix."""

from __future__ import annotations

from nodegraph.evaluator import Context
from nodegraph.image import Image
from nodegraph.node import Input, Knobs, Node

from ._common import ChannelsKnob, MixKnob, mask_weight, select_channels


class _Math(Node, abstract=True):
    category = "Color"
    inputs = (Input("input", doc="Image to change."),
              Input("mask", required=False, doc="Optional mask limiting where the change applies."))

    class Knobs(Knobs):
        channels: ChannelsKnob = "all"
        """Channels to change; others pass through."""
        value: float = 0.0
        """Operand."""
        mix: MixKnob = 1.0
        """Blend between the input (0) and the result (1)."""
        maskChannelInput: str = "rgba.alpha"
        """Channel of the optional mask input that limits the change (absent: black, no change)."""
        invert_mask: bool = False
        """Use one minus the mask channel."""

    def op(self, x, value: float):  # pragma: no cover - abstract
        raise NotImplementedError

    def compute(self, ctx: Context) -> Image:
        img = ctx.input("input")
        k = self.knobs
        names = select_channels(k.channels, img, self.name)
        idx = [img.index(n) for n in names if n in img.channels]
        if not idx:
            return img
        weight = mask_weight(ctx, k, img.bbox, device=img.device, dtype=img.dtype)  # mix, times the mask
        if len(idx) == len(img.channels):  # every channel: one whole-tensor op, no gather/scatter
            out = self.op(img.pixels, k.value)
            if not isinstance(weight, float) or weight != 1.0:
                out = img.pixels + (out - img.pixels) * weight
            return img.replace(pixels=out)
        pixels = img.pixels.clone()
        sel = pixels[idx]
        out = self.op(sel, k.value)
        if not isinstance(weight, float) or weight != 1.0:
            out = sel + (out - sel) * weight
        pixels[idx] = out
        return img.replace(pixels=pixels)


class Add(_Math):
    """Adds ``value`` to the selected channels."""

    def op(self, x, value: float):
        return x + value


class Multiply(_Math):
    """Multiplies the selected channels by ``value``."""

    class Knobs(_Math.Knobs):
        value: float = 1.0
        """Factor."""

    def op(self, x, value: float):
        return x * value
