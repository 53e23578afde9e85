"""Knob types and helpers shared by the node library."""

from __future__ import annotations

from typing import Annotated

import torch
from pydantic import AfterValidator, Field

from nodegraph import channels as chans
from nodegraph.animation import COLOUR, WH, XY
from nodegraph.errors import ChannelError, KnobError
from nodegraph.formats import format_validator, parse_format
from nodegraph.image import Box, Format, Image


def _channels_validator(value: str) -> str:
    value = value.strip()
    if not value:
        raise ValueError("channel selection is empty; use a layer (rgba, rgb, alpha, diffuse...), "
                         "a channel (rgba.red), a comma list, 'all' or 'none'")
    for item in value.split(","):
        item = item.strip()
        if "." in item:
            try:
                chans.split(item)
            except ChannelError as err:  # pydantic only turns ValueError into a located knob error
                raise ValueError(err.message) from None
    return value


#: A channel selection knob: ``rgba``, ``rgb``, ``alpha``, ``all``, ``none``, a layer, ``rgba.red,depth.Z``.
ChannelsKnob = Annotated[str, AfterValidator(_channels_validator)]
#: A format knob: a Nuke format name or ``"WxH [aspect]"``.
FormatKnob = Annotated[str, AfterValidator(format_validator)]
#: An RGBA colour (Nuke's AColor_Knob: ``color.r`` ... ``color.a`` in expressions).
Color4 = Annotated[tuple[float, float, float, float], COLOUR]
#: A position x, y in pixels (Nuke's XY_Knob: ``translate.x``, ``translate.y``).
XYKnob = Annotated[tuple[float, float], XY]
#: A size, one value or (w, h) (Nuke's WH_Knob: ``scale.w``, ``scale.h``).
WHKnob = Annotated[float | tuple[float, float], WH]

MixKnob = Annotated[float, Field(ge=0.0, le=1.0)]


def format_of(node_name: str, value: str) -> Format:
    return parse_format(value, node=node_name)


def fill(fmt: Format, names: tuple[str, ...], values: list[float], device: torch.device,
         dtype: torch.dtype) -> Image:
    """A full-frame image with one constant per channel."""
    box = fmt.display
    vals = torch.tensor(values, device=device, dtype=dtype).view(-1, 1, 1)
    pixels = vals.expand(len(names), box.height, box.width).contiguous()
    return Image(pixels, names, box, fmt)


def rgba_values(names: tuple[str, ...], color: tuple[float, ...], default: float = 0.0) -> list[float]:
    """Per-channel values: rgba channels take the colour's components, others ``default``."""
    index = {"rgba.red": 0, "rgba.green": 1, "rgba.blue": 2, "rgba.alpha": 3}
    return [float(color[index[n]]) if n in index else default for n in names]


def select_channels(spec: str, img: Image, node: str, knob: str = "channels") -> tuple[str, ...]:
    """Expand a channel knob against an image; unknown layers name the node and knob."""
    try:
        return chans.expand(spec, img.channels)
    except ChannelError as err:  # only a layer the image lacks is the knob's fault
        raise KnobError(err.message, node=node, knob=knob) from None


def to_working(img: Image, src: str) -> Image:
    """Convert an image's rgb from colourspace ``src`` to the working space (scene linear)."""
    from nodegraph import color

    return _convert(img, src, "linear", color)


def from_working(img: Image, dst: str) -> Image:
    """Convert an image's rgb from the working space to colourspace ``dst``."""
    from nodegraph import color

    return _convert(img, "linear", dst, color)


def _convert(img: Image, src: str, dst: str, color) -> Image:
    idx = [img.channels.index(n) for n in chans.RGB if n in img.channels]
    if not idx or color.resolve(src) == color.resolve(dst):
        return img
    pixels = img.pixels.clone()
    pixels[idx] = color.convert(img.pixels[idx], src, dst)
    return img.replace(pixels=pixels)


def color_config_id() -> str:
    from nodegraph import color

    return color.get_config().getCacheID()


def colorspace_problems(knobs) -> list[str]:
    """A validate() message if a ``colorspace`` knob names no colourspace of the active config."""
    from nodegraph import color
    from nodegraph.errors import NodeGraphError

    if knobs.raw or knobs.colorspace == "default":
        return []
    try:
        color.resolve(knobs.colorspace)
    except NodeGraphError as err:
        return [f"knob 'colorspace': {err.message}"]
    return []


def mask_weight(ctx, knobs, box: Box, *, device: torch.device, dtype: torch.dtype) -> torch.Tensor | float:
    """Nuke's mask and mix: ``mix`` times the mask input's ``maskChannelInput`` over ``box``
    (one minus it with ``invert_mask``); a channel the mask lacks reads black; with no mask
    input connected, just ``mix``."""
    if not ctx.has_input("mask"):
        return knobs.mix
    mask = ctx.input("mask").to(device, dtype).crop_to(box)
    name = knobs.maskChannelInput.split(",")[0].strip()
    if name in mask.channels:
        m = mask.channel(name)
    else:
        m = torch.zeros((box.height, box.width), device=device, dtype=dtype)
    if knobs.invert_mask:
        m = 1 - m
    return m * knobs.mix
