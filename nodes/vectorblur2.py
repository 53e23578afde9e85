"""VectorBlur2: Nuke's current motion-vector blur (the menu's VectorBlur; ``VectorBlur2`` in scripts)."""

from __future__ import annotations

from typing import Literal

import torch

from nodegraph import channels as chans
from nodegraph.errors import ChannelError, KnobError
from nodegraph.evaluator import Context
from nodegraph.image import Image
from nodegraph.node import Input, Node

from ._common import ChannelsKnob, select_channels
from .color import _MASK_INPUT, _MaskKnobs, _work_dtype
from .filter_extra import _apply_planes, _pair
from .filter_more import blur_along
from .warp import UVKnob

#: The motion-vector preset whose vectors are Nuke's own (pixels, v up): no conversion.
NUKE_PRESET = "Nuke Scanline Render"


class VectorBlur2(Node):
    """Nuke's VectorBlur (class ``VectorBlur2``): motion blur along per-pixel vectors read from
    the ``uv`` channels, the sampling of the old VectorBlur (:func:`~nodegraph.nodes.filter_more.blur_along`).

    The vector of a pixel is ((u + uv_offset_u) scale, (v + uv_offset_v) scale) in pixels (v up):
    ``uv_offset`` re-centres vectors stored in 0..1 (-0.5, as Unreal's exports need) and adds
    camera motion, ``scale`` turns normalised vectors into pixels (``{{input.width}}``). Each
    pixel averages the input along its vector from ``offset`` to ``offset`` + 1 times it (-0.5
    centres the streak), bilinear, black outside, uniform or gaussian (centre-weighted) weights by
    ``blur_type``. ``output uvs`` shows the vectors used (written to the ``uv`` channels) instead
    of the blur. Each pixel gathers along its own vector, so the data window stays the input's
    (black is read beyond it).

    From Foundry's docs: channels (default none), uv, mv_presets, output, uv offset. Where they
    are silent (nodegraph's choices): ``blur_type`` defaults to gaussian (a public script writes
    ``blur_type uniform``, which Nuke saves only when it is not the default), ``offset`` -0.5 as in
    the old VectorBlur; ``mv_presets`` other than Nuke Scanline Render carry renderer scales and
    offsets the docs do not give: they are refused with a KnobError (set ``uv_offset``/``scale``
    instead); ``soft_lines`` is kept, not applied."""

    category = "Filter"
    inputs = (Input("input", doc="Image to blur, with the motion vectors."), _MASK_INPUT)

    class Knobs(_MaskKnobs):
        channels: ChannelsKnob = "none"
        """Channels to blur (Nuke's default: none); others pass through."""
        uv: UVKnob = "none"
        """Layer (or two channels) holding the u, v motion vectors; none: no blur."""
        mv_presets: str = NUKE_PRESET
        """Renderer the vectors come from; only Nuke Scanline Render (no conversion) is known."""
        output: Literal["result", "uvs"] = "result"
        """result: the blurred image; uvs: the vectors used, in the uv channels."""
        uv_offset: float | tuple[float, float] = 0.0
        """Added to u and v (one value or u, v) before scaling: re-centring, camera motion."""
        scale: float = 1.0
        """Multiplies the vectors: the shutter, or the image width for normalised vectors."""
        offset: float = -0.5
        """Start of the streak in units of the vector: -0.5 centres it, 0 blurs forward."""
        blur_type: Literal["uniform", "gaussian"] = "gaussian"
        """Sample weights along the streak: uniform, or gaussian (centre-weighted)."""
        soft_lines: bool = False
        """Nuke's soft lines switch; kept, not applied."""

    def check(self) -> list[str]:
        if self.knobs.mv_presets != NUKE_PRESET:
            return [f"knob 'mv_presets': {self.knobs.mv_presets!r}: only {NUKE_PRESET!r} vectors are known"]
        return []

    def compute(self, ctx: Context) -> Image:
        img = ctx.input("input")
        k = self.knobs
        if k.mv_presets != NUKE_PRESET:
            raise KnobError(f"preset {k.mv_presets!r}: its renderer's vector scale and offset are not known to "
                            f"nodegraph; use {NUKE_PRESET!r} with uv_offset and scale", node=self.path,
                            knob="mv_presets")
        if k.uv == "none" or img.bbox.empty:
            return img
        try:
            uv = list(chans.expand(k.uv, img.channels))[:2]
        except ChannelError as err:
            raise KnobError(err.message, node=self.path, knob="uv") from None
        work = _work_dtype(img.dtype)
        ou, ov = _pair(k.uv_offset)

        zero = torch.zeros((img.bbox.height, img.bbox.width), device=img.device, dtype=work)
        have = [img.channel(n).to(work) if n in img.channels else zero for n in uv] + [zero, zero]
        u, v = (have[0] + ou) * k.scale, (have[1] + ov) * k.scale  # a channel the image lacks reads 0
        if k.output == "uvs":
            shown = [n for n in uv if n in img.channels]
            planes = torch.stack([u, v][:len(uv)])[[uv.index(n) for n in shown]]
            return _apply_planes(ctx, k, img, shown, img.bbox, planes)
        names = [n for n in select_channels(k.channels, img, self.name) if n in img.channels]
        if not names:
            return img
        return _apply_planes(ctx, k, img, names, img.bbox, blur_along(img, names, img.bbox, u, v, k.offset,
                                                                       k.blur_type))

__all__ = ["VectorBlur2"]
