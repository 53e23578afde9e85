"""Merge2: combine an A image with a B image using one of Nuke's merge operations.

Formulas follow the operation table of Nuke's Merge node (A, B: colour channels; a, b: the
alphas of A and B). The alpha channel goes through the same formula with A=a, B=b, as Nuke does
when "alpha masking" is off (so ``plus`` adds alphas, ``over`` gives a+b(1-a)).

Where the table gives no formula or leaves a division undefined, nodegraph decides, so that no
operation ever produces Inf or NaN from finite inputs:

- a division by zero inside a formula gives 0 (divide, geometric, conjoint/disjoint factors);
- ``color-dodge`` is B/(1-A) and ``color-burn`` 1-(1-B)/A where the divisor is positive, and B
  unchanged elsewhere (so a black A leaves B as it is);
- ``overlay`` and ``hard-light`` use the usual continuous halves 2AB and 1-2(1-A)(1-B);
- ``soft-light`` is B(2A+B(1-AB)) where AB<1, else 2AB ("image B gets lit up").
"""

from __future__ import annotations

from typing import Callable, Literal

import torch

from nodegraph import channels as chans
from nodegraph.errors import ChannelError, KnobError
from nodegraph.evaluator import Context
from nodegraph.image import Box, Image
from nodegraph.node import Input, Knobs, Node

from ._common import ChannelsKnob, MixKnob, mask_weight

T = torch.Tensor


def _div0(x: T, y: T) -> T:
    """x / y, 0 where y == 0."""
    zero = y == 0
    return torch.where(zero, torch.zeros_like(x), x / torch.where(zero, torch.ones_like(y), y))


def _screen(A: T, B: T, a: T, b: T) -> T:
    return torch.where((A <= 1) | (B <= 1), A + B - A * B, torch.maximum(A, B))


def _hard_light(A: T, B: T) -> T:
    return torch.where(A < 0.5, 2 * A * B, 1 - 2 * (1 - A) * (1 - B))


def _multiply(A: T, B: T, a: T, b: T) -> T:
    return torch.where((A < 0) & (B < 0), A, A * B)


def _divide(A: T, B: T, a: T, b: T) -> T:
    return torch.where((A < 0) & (B < 0), torch.zeros_like(A), _div0(A, B))


def _color_dodge(A: T, B: T, a: T, b: T) -> T:
    d = 1 - A
    return torch.where(d > 0, B / torch.where(d > 0, d, torch.ones_like(d)), B)


def _color_burn(A: T, B: T, a: T, b: T) -> T:
    return torch.where(A > 0, 1 - (1 - B) / torch.where(A > 0, A, torch.ones_like(A)), B)


def _soft_light(A: T, B: T, a: T, b: T) -> T:
    ab = A * B
    return torch.where(ab < 1, B * (2 * A + B * (1 - ab)), 2 * ab)


def _conjoint_over(A: T, B: T, a: T, b: T) -> T:
    return torch.where(a < b, A + B * (1 - _div0(a, b)), A)


def _disjoint_over(A: T, B: T, a: T, b: T) -> T:
    return torch.where(a + b < 1, A + B, A + B * _div0(1 - a, b))


Op = Callable[[T, T, T, T], T]

#: Nuke's merge operations: f(A, B, a, b).
OPERATIONS: dict[str, Op] = {
    "atop": lambda A, B, a, b: A * b + B * (1 - a),
    "average": lambda A, B, a, b: (A + B) / 2,
    "color-burn": _color_burn,
    "color-dodge": _color_dodge,
    "conjoint-over": _conjoint_over,
    "copy": lambda A, B, a, b: A,
    "difference": lambda A, B, a, b: (A - B).abs(),
    "disjoint-over": _disjoint_over,
    "divide": _divide,
    "exclusion": lambda A, B, a, b: A + B - 2 * A * B,
    "from": lambda A, B, a, b: B - A,
    "geometric": lambda A, B, a, b: _div0(2 * A * B, A + B),
    "hard-light": lambda A, B, a, b: _hard_light(A, B),
    "hypot": lambda A, B, a, b: torch.sqrt(A * A + B * B),
    "in": lambda A, B, a, b: A * b,
    "mask": lambda A, B, a, b: B * a,
    "matte": lambda A, B, a, b: A * a + B * (1 - a),
    "max": lambda A, B, a, b: torch.maximum(A, B),
    "min": lambda A, B, a, b: torch.minimum(A, B),
    "minus": lambda A, B, a, b: A - B,
    "multiply": _multiply,
    "out": lambda A, B, a, b: A * (1 - b),
    "over": lambda A, B, a, b: A + B * (1 - a),
    "overlay": lambda A, B, a, b: _hard_light(B, A),
    "plus": lambda A, B, a, b: A + B,
    "screen": _screen,
    "soft-light": _soft_light,
    "stencil": lambda A, B, a, b: B * (1 - a),
    "under": lambda A, B, a, b: A * (1 - b) + B,
    "xor": lambda A, B, a, b: A * (1 - b) + B * (1 - a),
}

Operation = Literal[
    "atop", "average", "color-burn", "color-dodge", "conjoint-over", "copy", "difference",
    "disjoint-over", "divide", "exclusion", "from", "geometric", "hard-light", "hypot", "in", "mask",
    "matte", "max", "min", "minus", "multiply", "out", "over", "overlay", "plus", "screen",
    "soft-light", "stencil", "under", "xor",
]

ALPHA = "rgba.alpha"


def _component(name: str) -> str:
    return name.rpartition(".")[2]


class Merge2(Node):
    """Layers input A onto input B with one of Nuke's merge operations (default A over B).

    Channels missing on an input count as black. The output carries B's channels plus the
    merged ones, over the data window chosen by ``bbox``, in B's format.
    """

    type_name = "Merge2"
    category = "Merge"
    inputs = (
        Input("B", doc="Background: the image A is merged onto; its other channels pass through."),
        Input("A", doc="Foreground."),
        Input("mask", required=False, doc="Optional mask limiting where the merge applies."),
    )

    class Knobs(Knobs):
        operation: Operation = "over"
        """Merge algorithm, e.g. over: A+B(1-a), plus: A+B, multiply: AB (Nuke's operation names)."""
        Achannels: ChannelsKnob = "rgba"
        """Channels of A to merge; absent ones count as black."""
        Bchannels: ChannelsKnob = "rgba"
        """Channels of B to merge with; absent ones count as black."""
        output: ChannelsKnob = "rgba"
        """Channels the result is written to; B's other channels pass through."""
        also_merge: ChannelsKnob = "none"
        """More channels to merge A with B by the same name ('all', a layer, a list or 'none')."""
        maskChannelInput: ChannelsKnob = "rgba.alpha"
        """Channel of the mask input that limits the merge (absent: black)."""
        invert_mask: bool = False
        """Use one minus the mask channel."""
        mix: MixKnob = 1.0
        """Dissolve between B (0) and the full merge (1)."""
        bbox: Literal["union", "intersection", "A", "B"] = "union"
        """Output data window: union or intersection of the inputs' windows, or A's or B's."""

    # --- channel selection ----------------------------------------------------------------
    def _expand(self, knob: str, avail: tuple[str, ...]) -> tuple[str, ...]:
        """Expand a channel knob; Nuke's layer shorthands always give all their channels."""
        spec = getattr(self.knobs, knob)
        out: list[str] = []
        for item in (s.strip() for s in spec.split(",")):
            if item in chans.LAYER_SHORTHANDS:
                found = chans.LAYER_SHORTHANDS[item]
            else:
                try:
                    found = chans.expand(item, avail)
                except ChannelError as err:  # an unknown layer: the knob's fault
                    raise KnobError(err.message, node=self.name, knob=knob) from None
            out.extend(c for c in found if c not in out)
        return tuple(out)

    @staticmethod
    def _pick(selected: tuple[str, ...], target: str, position: int) -> str | None:
        """The selected channel paired with output ``target``: same component, else same position."""
        comp = _component(target)
        for c in selected:
            if _component(c) == comp:
                return c
        return selected[position] if position < len(selected) else None

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
        img_a = ctx.input("A").to(img_b.device, img_b.dtype)
        box = self._out_box(img_a, img_b)
        img_a, img_b = img_a.crop_to(box), img_b.crop_to(box)
        avail = img_b.channels + tuple(c for c in img_a.channels if c not in img_b.channels)

        a_sel = self._expand("Achannels", avail)
        b_sel = self._expand("Bchannels", avail)
        targets = self._expand("output", avail)
        # output channel -> (A channel, B channel)
        pairs: dict[str, tuple[str | None, str | None]] = {
            t: (self._pick(a_sel, t, i), self._pick(b_sel, t, i)) for i, t in enumerate(targets)
        }
        for c in self._expand("also_merge", avail):
            pairs.setdefault(c, (c, c))

        work = img_b.dtype if img_b.dtype.itemsize >= 4 else torch.float32
        zeros = torch.zeros((box.height, box.width), device=img_b.device, dtype=work)

        def plane(img: Image, name: str | None) -> T:
            if name is None or name not in img.channels:
                return zeros
            return img.channel(name).to(work)

        a, b = plane(img_a, ALPHA), plane(img_b, ALPHA)
        op = OPERATIONS[k.operation]

        weight = mask_weight(ctx, k, box, device=img_b.device, dtype=work)

        names = list(img_b.channels)
        planes = {n: img_b.pixels[i] for i, n in enumerate(names)}
        for target, (ca, cb) in pairs.items():
            pa, pb = plane(img_a, ca), plane(img_b, cb)
            merged = op(pa, pb, a, b)
            base = plane(img_b, target)
            if not (isinstance(weight, float) and weight == 1.0):
                merged = base + (merged - base) * weight
            if target not in planes:
                names.append(target)
            planes[target] = merged.to(img_b.dtype)
        pixels = torch.stack([planes[n] for n in names]) if names else img_b.pixels
        return Image(pixels, tuple(names), box, img_b.format, dict(img_b.metadata))


__all__ = ["Merge2", "OPERATIONS"]
