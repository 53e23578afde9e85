"""ChannelMerge: merge one channel of A with one channel of B into an output channel (Nuke's node)."""

from __future__ import annotations

from typing import Annotated, Callable, Literal

import torch
from pydantic import BeforeValidator

from nodegraph.evaluator import Context
from nodegraph.image import Box, Image
from nodegraph.node import Input, Knobs, Node

from ._common import MixKnob, mask_weight
from .copy import ChannelOrNone
from .merge import _div0

T = torch.Tensor

#: One channel or none; Nuke's ``-rgba.alpha`` (a channel switched off) reads as none.
Channel = Annotated[ChannelOrNone, BeforeValidator(lambda v: "none" if isinstance(v, str) and v.strip()
                                                   .startswith("-") else v)]


def _divide(A: T, B: T) -> T:
    return torch.where((A < 0) & (B < 0), torch.zeros_like(A), _div0(A, B))


def _multiply(A: T, B: T) -> T:
    return torch.where((A < 0) & (B < 0), A, A * B)


#: Foundry's table for ChannelMerge, f(A, B) on the two channels (B plays the part of the
#: "alpha of B" in in/out, A the "alpha of A" in stencil), in the order of Nuke's menu: the
#: enumeration index of the default ``union`` is 12, as Nuke's knob table has it.
OPERATIONS: dict[str, Callable[[T, T], T]] = {
    "absminus": lambda A, B: (A - B).abs(),
    "b if not a": lambda A, B: torch.where(A != 0, A, B),
    "divide": _divide,
    "from": lambda A, B: B - A,
    "in": lambda A, B: A * B,
    "max": torch.maximum,
    "min": torch.minimum,
    "minus": lambda A, B: A - B,
    "multiply": _multiply,
    "out": lambda A, B: A * (1 - B),
    "plus": lambda A, B: A + B,
    "stencil": lambda A, B: B * (1 - A),
    "union": lambda A, B: A + B - A * B,
    "xor": lambda A, B: A + B - 2 * A * B,
}

Operation = Literal["absminus", "b if not a", "divide", "from", "in", "max", "min", "minus", "multiply", "out",
                    "plus", "stencil", "union", "xor"]


class ChannelMerge(Node):
    """Nuke's ChannelMerge: merges channel ``A`` of input A with channel ``B`` of input B by
    ``operation`` and writes the result to ``output``; every other channel is B's, unchanged.
    With no A input both channels come from B. A channel an input lacks reads black.

    Operations (Foundry's table, A and B the two channels): absminus |A-B|, b if not a A?A:B,
    divide A/B (0 where both are negative; 0 where B is 0, nodegraph's choice as for Merge2),
    from B-A, in AB, max, min, minus A-B, multiply AB (A where both are negative), out A(1-B),
    plus A+B, stencil B(1-A), union A+B-AB (the default), xor A+B-2AB. ``mix`` and the mask blend
    the result with B's ``output`` channel.

    Input order in scripts: ``inputs 2`` lists B first (input 0), then A (input 1), as for Merge2
    and Copy. Foundry's docs do not say; the public NST_apeScreenClean gizmo shows it: its
    ChannelMerge ``NormalizeScreen`` (operation divide) has the clean plate's screen matte as
    input 0 and the plate's as input 1, and normalising the plate by the clean plate (plate /
    clean: 1 on the screen, 0 on the foreground, which its next Merge2 ``mask`` uses as a matte)
    is A / B only with input 1 as A; the other way round divides by the foreground's zeros.

    nodegraph's choices: ``bbox`` (Nuke's knob, not described) chooses the data window as Merge2's
    does (union default); an ``output`` B lacks is added to the image."""

    category = "Merge"
    inputs = (
        Input("B", doc="The image whose channel B is merged; all its other channels pass through."),
        Input("A", required=False, doc="The image holding channel A (optional: B's when unconnected)."),
        Input("mask", required=False, doc="Optional mask limiting where the merge applies."),
    )

    class Knobs(Knobs):
        A: Channel = "rgba.alpha"
        """The channel of input A to merge (of input B when A is unconnected); none reads black."""
        operation: Operation = "union"
        """How A and B combine: union A+B-AB, plus, minus, multiply, in, out, stencil, ... (see above)."""
        B: Channel = "rgba.alpha"
        """The channel of input B to merge; none reads black."""
        output: Channel = "rgba.alpha"
        """The channel the result is written to (none: the image is B's unchanged)."""
        maskChannelInput: ChannelOrNone = "rgba.alpha"
        """Channel of the mask input that limits the merge (absent: black)."""
        invert_mask: bool = False
        """Use one minus the mask channel."""
        mix: MixKnob = 1.0
        """Dissolve between B's output channel (0) and the merge (1)."""
        bbox: Literal["union", "intersection", "A", "B"] = "union"
        """Output data window: union or intersection of the inputs' windows, or A's or B's."""

    def compute(self, ctx: Context) -> Image:
        k = self.knobs
        img_b = ctx.input("B")
        if k.output == "none":
            return img_b
        img_a = ctx.input("A").to(img_b.device, img_b.dtype) if ctx.has_input("A") else img_b
        mode = k.bbox
        box: Box = (img_a.bbox.union(img_b.bbox) if mode == "union" else img_a.bbox.intersect(img_b.bbox)
                    if mode == "intersection" else img_a.bbox if mode == "A" else img_b.bbox)
        img_a, img_b = img_a.crop_to(box), img_b.crop_to(box)
        work = img_b.dtype if img_b.dtype.itemsize >= 4 else torch.float32

        def plane(img: Image, name: str) -> T:
            if name not in img.channels:
                return torch.zeros((box.height, box.width), device=img_b.device, dtype=work)
            return img.channel(name).to(work)

        merged = OPERATIONS[k.operation](plane(img_a, k.A), plane(img_b, k.B))
        weight = mask_weight(ctx, k, box, device=img_b.device, dtype=work)
        if not (isinstance(weight, float) and weight == 1.0):
            base = plane(img_b, k.output)
            merged = base + (merged - base) * weight
        names = img_b.channels if k.output in img_b.channels else img_b.channels + (k.output,)
        pixels = torch.cat([img_b.pixels, merged[None].to(img_b.dtype)]) if len(names) > len(img_b.channels) \
            else img_b.pixels.clone()
        pixels[names.index(k.output)] = merged.to(img_b.dtype)
        return Image(pixels, names, box, img_b.format, dict(img_b.metadata))


__all__ = ["ChannelMerge", "OPERATIONS"]
