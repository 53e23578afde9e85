"""Copy: replace channels of input B with channels of input A, as Nuke's Copy node does.

Up to four single channels (``from0``..``from3`` of A into ``to0``..``to3`` of B) plus a whole
channel set (``channels``, Nuke's "Layer Copy") of A into the same channels of B; ``mix`` and an
optional mask blend between B and the copy. A channel A lacks copies as black (see
``shuffle.py`` for the rules shared with Shuffle).
"""

from __future__ import annotations

from typing import Annotated, Literal

import torch
from pydantic import AfterValidator

from nodegraph import channels as chans
from nodegraph.errors import ChannelError, KnobError
from nodegraph.evaluator import Context
from nodegraph.image import Box, Image
from nodegraph.node import Input, Knobs, Node

from ._common import ChannelsKnob, MixKnob, mask_weight
from .shuffle import assemble


def _channel_or_none(value: str) -> str:
    value = value.strip()
    if value == "none":
        return value
    try:
        chans.split(value)
    except ChannelError as err:  # pydantic only turns ValueError into a located knob error
        raise ValueError(f"{err.message}; or 'none'") from None
    return value


#: One channel (``rgba.alpha``, ``depth.Z``) or ``none``.
ChannelOrNone = Annotated[str, AfterValidator(_channel_or_none)]


class Copy(Node):
    """Replaces channels of B with channels of A: ``fromN`` of A goes to ``toN`` of B, and the
    ``channels`` set of A to the same channels of B. B's other channels pass through; the format
    is B's and the data window is chosen by ``bbox`` (B's by default).
    """

    type_name = "Copy"
    category = "Channel"
    inputs = (
        Input("B", doc="Input 0: the image whose channels are replaced; the rest passes through."),
        Input("A", doc="Input 1: the image channels are copied from."),
        Input("mask", required=False, doc="Optional mask: A is copied where it is white, B kept where black."),
    )

    class Knobs(Knobs):
        from0: ChannelOrNone = "rgba.alpha"
        """Channel of A copied into to0 ('none' to skip)."""
        to0: ChannelOrNone = "rgba.alpha"
        """Channel of B that from0 replaces (added if B lacks it; 'none' to skip)."""
        from1: ChannelOrNone = "none"
        """Channel of A copied into to1 ('none' to skip)."""
        to1: ChannelOrNone = "none"
        """Channel of B that from1 replaces (added if B lacks it; 'none' to skip)."""
        from2: ChannelOrNone = "none"
        """Channel of A copied into to2 ('none' to skip)."""
        to2: ChannelOrNone = "none"
        """Channel of B that from2 replaces (added if B lacks it; 'none' to skip)."""
        from3: ChannelOrNone = "none"
        """Channel of A copied into to3 ('none' to skip)."""
        to3: ChannelOrNone = "none"
        """Channel of B that from3 replaces (added if B lacks it; 'none' to skip)."""
        channels: ChannelsKnob = "none"
        """Layer copy: these channels of A replace the same channels of B ('all', a layer, a list, 'none')."""
        maskChannelInput: ChannelsKnob = "rgba.alpha"
        """Channel of the mask input that limits the copy (absent: black, so nothing is copied)."""
        invert_mask: bool = False
        """Use one minus the mask channel."""
        mix: MixKnob = 1.0
        """Dissolve between B (0) and the full copy (1)."""
        bbox: Literal["B", "A", "union", "intersection"] = "B"
        """Output data window: B's, A's, or the union or intersection of both."""

    def _pairs_from_knobs(self) -> list[tuple[str, str]]:
        k = self.knobs
        pairs = [(getattr(k, f"from{i}"), getattr(k, f"to{i}")) for i in range(4)]
        return [(src, dst) for src, dst in pairs if src != "none" and dst != "none"]

    def _copies_nothing(self) -> bool:
        return not self._pairs_from_knobs() and all(s.strip() == "none" for s in self.knobs.channels.split(","))

    def needs(self, ctx: Context):
        skip_a = self._copies_nothing() and self.knobs.bbox == "B"
        return [(name, ctx.frame) for name in ctx.connected if not (skip_a and name == "A")]

    def _out_box(self, a: Image, b: Image) -> Box:
        mode = self.knobs.bbox
        if mode == "union":
            return a.bbox.union(b.bbox)
        if mode == "intersection":
            return a.bbox.intersect(b.bbox)
        return a.bbox if mode == "A" else b.bbox

    def compute(self, ctx: Context) -> Image:
        k = self.knobs
        img_b = ctx.input("B")
        pairs = self._pairs_from_knobs()
        if self._copies_nothing() and k.bbox == "B":
            return img_b
        img_a = ctx.input("A").to(img_b.device, img_b.dtype)
        avail = img_a.channels + tuple(c for c in img_b.channels if c not in img_a.channels)
        layer: list[str] = []
        for item in (s.strip() for s in k.channels.split(",")):
            try:  # 'all' is every channel of A; a layer only B has copies as black
                found = img_a.channels if item == "all" else chans.expand(item, avail)
            except ChannelError as err:
                raise KnobError(f"{err.message} (A has {', '.join(img_a.channels) or 'no channels'})",
                                node=self.name, knob="channels") from None
            layer.extend(c for c in found if c not in layer)
        # later entries win when two copy into one channel: from0..from3, then the layer copy
        wanted = {dst: src for src, dst in pairs}
        wanted.update({c: c for c in layer})

        box = self._out_box(img_a, img_b)
        img_a, img_b = img_a.crop_to(box), img_b.crop_to(box)
        zeros = torch.zeros((box.height, box.width), device=img_b.device, dtype=img_b.dtype)

        weight = mask_weight(ctx, k, box, device=img_b.device, dtype=img_b.dtype)

        planes: dict[str, torch.Tensor] = {}
        for dst, src in wanted.items():
            value = img_a.channel(src) if src in img_a.channels else zeros
            if not (isinstance(weight, float) and weight == 1.0):
                base = img_b.channel(dst) if dst in img_b.channels else zeros
                value = base + (value - base) * weight
            planes[dst] = value
        return assemble(img_b, planes)


__all__ = ["Copy"]
