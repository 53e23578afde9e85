"""Premult and Unpremult: multiply or divide colour channels by an alpha channel, as in Nuke."""

from __future__ import annotations

from typing import Annotated

import torch
from pydantic import AfterValidator

from nodegraph import channels as chans
from nodegraph.errors import ChannelError, KnobError
from nodegraph.evaluator import Context
from nodegraph.image import Image
from nodegraph.node import Input, Knobs, Node

from ._common import ChannelsKnob, select_channels


def _one_channel(value: str) -> str:
    try:
        chans.split(value.strip())
    except ChannelError as err:  # pydantic only turns ValueError into a located knob error
        raise ValueError(err.message) from None
    return value.strip()


#: One channel in Nuke's ``layer.channel`` form.
ChannelKnob = Annotated[str, AfterValidator(_one_channel)]


class _AlphaOp(Node, abstract=True):
    category = "Merge"
    inputs = (Input("input", doc="Image whose channels are multiplied or divided by its alpha."),)

    class Knobs(Knobs):
        channels: ChannelsKnob = "rgb"
        """Channels to change (the alpha channel itself is never changed); absent ones are skipped."""
        alpha: ChannelKnob = "rgba.alpha"
        """Channel to multiply or divide by."""
        invert: bool = False
        """Use one minus the alpha channel."""

    def apply(self, x: torch.Tensor, alpha: torch.Tensor) -> torch.Tensor:  # pragma: no cover
        raise NotImplementedError

    def compute(self, ctx: Context) -> Image:
        img = ctx.input("input")
        k = self.knobs
        if k.alpha not in img.channels:
            raise KnobError(f"alpha channel {k.alpha!r} not in the input; it has "
                            f"{', '.join(img.channels) or 'no channels'}", node=self.name, knob="alpha")
        names = select_channels(k.channels, img, self.name)
        idx = [img.index(n) for n in names if n in img.channels and n != k.alpha]
        if not idx:
            return img
        alpha = img.channel(k.alpha)
        if k.invert:
            alpha = 1 - alpha
        pixels = img.pixels.clone()
        if idx == list(range(idx[0], idx[0] + len(idx))):  # a contiguous run (rgb of rgba): in place, no gather
            view = pixels[idx[0]:idx[0] + len(idx)]
            view.copy_(self.apply(view, alpha[None]))
        else:
            pixels[idx] = self.apply(pixels[idx], alpha[None])
        return img.replace(pixels=pixels)


class Premult(_AlphaOp):
    """Multiplies the chosen channels by alpha (straight colour to premultiplied)."""

    def apply(self, x: torch.Tensor, alpha: torch.Tensor) -> torch.Tensor:
        return x * alpha

    def compute(self, ctx: Context) -> Image:
        img = ctx.input("input")
        k = self.knobs
        if k.alpha in img.channels and not k.invert:
            names = select_channels(k.channels, img, self.name)
            idx = [img.index(n) for n in names if n in img.channels and n != k.alpha]
            if idx and idx == list(range(idx[0], idx[0] + len(idx))):
                # the common case (rgb of rgba): one multiply straight into the output, no clone
                pixels = img.pixels.clone() if len(idx) + 1 < len(img.channels) else torch.empty_like(img.pixels)
                a = img.index(k.alpha)
                pixels[a] = img.pixels[a]
                torch.mul(img.pixels[idx[0]:idx[0] + len(idx)], img.pixels[a][None],
                          out=pixels[idx[0]:idx[0] + len(idx)])
                return img.replace(pixels=pixels)
        return super().compute(ctx)


class Unpremult(_AlphaOp):
    """Divides the chosen channels by alpha; pixels whose alpha is 0 are left unchanged, as in Nuke."""

    def apply(self, x: torch.Tensor, alpha: torch.Tensor) -> torch.Tensor:
        zero = alpha == 0
        return torch.where(zero, x, x / torch.where(zero, torch.ones_like(alpha), alpha))


__all__ = ["Premult", "Unpremult"]
