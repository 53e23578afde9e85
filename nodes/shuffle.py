"""Shuffle2 and the legacy Shuffle: rearrange channels, within an image or between two, as in Nuke.

Rules shared by both nodes and by Copy (``copy.py``), following Nuke:

- A channel the source image does not carry reads as black (Nuke's engine hands out zeros for
  channels an input lacks, e.g. NDK's AddChannels "created and filled with black").
- Channels the node does not write pass through from the B (first) input unchanged.
- A layer knob names a layer of the image (``diffuse``, ``depth``, ``forward.left``) or one of
  Nuke's built-in ones (``rgba``, ``rgb``, ``alpha``, ``depth``). Its channels are the image's
  channels of that layer in Nuke's order (red, green, blue, alpha; x, y, z, w; u, v; others after,
  in the image's order). nodegraph has no global layer table, so a layer the image lacks has no
  known channels: read from, it is black; written to, Shuffle creates ``LAYER.red/green/blue/alpha``
  and Shuffle2 creates the channels its mappings name.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

import torch
from pydantic import AfterValidator, BeforeValidator, Field, create_model

from nodegraph import channels as chans
from nodegraph.errors import ChannelError
from nodegraph.evaluator import Context
from nodegraph.image import Box, Image
from nodegraph.node import Input, Knobs, Node

# --- layers -----------------------------------------------------------------------------------


def _layer_validator(value: str) -> str:
    value = value.strip()
    if not value or "," in value or any(c.isspace() for c in value) or value == "all":
        raise ValueError("expected one layer name (rgba, rgb, alpha, depth, diffuse, ...) or 'none'")
    if value.startswith(".") or value.endswith("."):
        raise ValueError(f"{value!r} is not a layer name")
    return value


#: One layer: ``rgba``, ``depth``, ``diffuse``, ``forward.left``, or ``none``.
LayerKnob = Annotated[str, AfterValidator(_layer_validator)]


def layer_of(channel: str) -> str:
    return channel.rpartition(".")[0]


# Nuke's order inside a layer; case-sensitive on purpose (``channels.sort_key`` lowercases, which
# would put ``left.Z`` between ``left.green`` and ``left.blue``). Other names keep the image's order.
_IN_LAYER_ORDER = {"red": 0, "green": 1, "blue": 2, "alpha": 3, "x": 0, "y": 1, "z": 2, "w": 3, "u": 0, "v": 1}


def layer_channels(layer: str, channels: tuple[str, ...]) -> tuple[str, ...]:
    """Channels of ``layer`` among ``channels`` in Nuke's order; else a built-in layer's; else ()."""
    if layer == "none":
        return ()
    found = [c for c in channels if layer_of(c) == layer]
    if found:
        return tuple(sorted(found, key=lambda c: _IN_LAYER_ORDER.get(c.rpartition(".")[2], 99)))
    return chans.LAYER_SHORTHANDS.get(layer, ())


def in_layer(channel: str, layer: str) -> bool:
    """Whether ``channel`` belongs to ``layer`` by name (``rgb`` and ``alpha`` hold rgba's)."""
    if layer == "none":
        return False
    return layer_of(channel) == layer or channel in chans.LAYER_SHORTHANDS.get(layer, ())


def output_layer_channels(layer: str, channels: tuple[str, ...]) -> tuple[str, ...]:
    """Channels an output layer is written to: as :func:`layer_channels`, new layers get r, g, b, a."""
    found = layer_channels(layer, channels)
    if found or layer == "none":
        return found
    return tuple(f"{layer}.{c}" for c in ("red", "green", "blue", "alpha"))


def assemble(base: Image, planes: dict[str, torch.Tensor]) -> Image:
    """``base`` with ``planes`` replacing (or appended after) its channels, same window and format."""
    names = list(base.channels) + [n for n in planes if n not in base.channels]
    stack = [planes[n] if n in planes else base.pixels[i] for i, n in enumerate(names)]
    pixels = torch.stack(stack).to(base.dtype) if stack else base.pixels
    return Image(pixels, tuple(names), base.bbox, base.format, dict(base.metadata))


def constant_plane(like: Image, value: float) -> torch.Tensor:
    h, w = like.pixels.shape[1:]
    return torch.full((h, w), float(value), device=like.device, dtype=like.dtype)


# --- legacy Shuffle --------------------------------------------------------------------------------

_SOURCE_ALIASES = {"r": "red", "g": "green", "b": "blue", "a": "alpha", "0": "black", "1": "white",
                   "r2": "red2", "g2": "green2", "b2": "blue2", "a2": "alpha2"}
_POSITIONS = {"red": 0, "green": 1, "blue": 2, "alpha": 3}


def _source_alias(value: Any) -> Any:
    if isinstance(value, bool):
        return value
    if isinstance(value, int) and value in (0, 1):
        value = str(value)
    if isinstance(value, str):
        value = value.strip()
        return _SOURCE_ALIASES.get(value, value)
    return value


#: Where one output channel of the legacy Shuffle comes from.
ShuffleSource = Annotated[
    Literal["red", "green", "blue", "alpha", "black", "white", "red2", "green2", "blue2", "alpha2"],
    BeforeValidator(_source_alias),
]

# ``in`` is Nuke's knob name and a Python keyword: the field is created by name so that the knob
# is ``in`` everywhere (documents, ``node.set(**{"in": ...})``, ``node["in"]``) with no alias.
_ShuffleInKnobs = create_model(
    "_ShuffleInKnobs", __base__=Knobs,
    **{"in": (LayerKnob, Field("rgba", description="Layer the red, green, blue and alpha sources read from "
                                                    "(its channels in Nuke's order); a layer the input "
                                                    "lacks reads as black."))},
)


class Shuffle(Node):
    """Nuke's classic Shuffle: fills the ``out`` layer's first four channels, one by one, from the
    ``in`` layer's channels (by position), the ``in2`` layer's, or black or white.

    The other channels of the input pass through. The out layer's channels are added if the input
    lacks them (a layer the input has no channels of is created as ``out.red``..``out.alpha``).
    """

    type_name = "Shuffle"
    category = "Channel"
    inputs = (Input("input", doc="Image whose channels are rearranged."),)

    class Knobs(_ShuffleInKnobs):
        in2: LayerKnob = "none"
        """Second layer to read from, through the sources red2, green2, blue2, alpha2."""
        out: LayerKnob = "rgba"
        """Layer written: its 1st..4th channels take the red, green, blue and alpha sources."""
        red: ShuffleSource = "red"
        """Source of the out layer's 1st channel (red, green, blue, alpha, red2..alpha2, black, white)."""
        green: ShuffleSource = "green"
        """Source of the out layer's 2nd channel (red, green, blue, alpha, red2..alpha2, black, white)."""
        blue: ShuffleSource = "blue"
        """Source of the out layer's 3rd channel (red, green, blue, alpha, red2..alpha2, black, white)."""
        alpha: ShuffleSource = "alpha"
        """Source of the out layer's 4th channel (red, green, blue, alpha, red2..alpha2, black, white)."""

    def compute(self, ctx: Context) -> Image:
        img = ctx.input("input")
        k = self.knobs
        targets = output_layer_channels(k.out, img.channels)[:4]
        if not targets:
            return img
        layers = {"": layer_channels(getattr(k, "in"), img.channels),
                  "2": layer_channels(k.in2, img.channels)}
        wanted: dict[str, str | float] = {}
        for target, source in zip(targets, (k.red, k.green, k.blue, k.alpha)):
            if source in ("black", "white"):
                wanted[target] = 0.0 if source == "black" else 1.0
                continue
            layer = layers["2" if source.endswith("2") else ""]
            pos = _POSITIONS[source.rstrip("2")]
            wanted[target] = layer[pos] if pos < len(layer) else 0.0
        if all(src == t and t in img.channels for t, src in wanted.items()):
            return img  # an identity shuffle: nothing to copy
        planes = {t: (img.channel(src) if src in img.channels else constant_plane(img, 0.0))
                  if isinstance(src, str) else constant_plane(img, src)
                  for t, src in wanted.items()}
        return assemble(img, planes)


# --- Shuffle2 -------------------------------------------------------------------------------------

_PREFIXES = ("A", "B", "in1", "in2")
_DEFAULT_MAPPINGS = {c: c for c in chans.RGBA}


def parse_source(source: str) -> tuple[str | None, str]:
    """``"A:rgba.red"`` -> ``("A", "rgba.red")``; ``"white"`` -> ``(None, "white")``; raises ValueError."""
    if source in ("black", "white"):
        return None, source
    prefix, colon, channel = source.partition(":")
    if not colon:
        prefix, channel = None, source
    elif prefix not in _PREFIXES:
        raise ValueError(f"source {source!r}: prefix {prefix!r} is not one of A:, B:, in1:, in2:")
    try:
        chans.split(channel)
    except ChannelError:
        raise ValueError(f"source {source!r} is not 'black', 'white' or [A:|B:|in1:|in2:]layer.channel") from None
    return prefix, channel


def _mappings_before(value: Any) -> Any:
    if value is None or (isinstance(value, str) and value.strip() == "none"):
        return {}
    return value


def _mappings_validator(value: dict[str, str]) -> dict[str, str]:
    out: dict[str, str] = {}
    for target, source in value.items():
        target, source = target.strip(), source.strip()
        if ":" in target or target in ("black", "white"):
            raise ValueError(f"target {target!r} must be an output channel (layer.channel)")
        try:
            chans.split(target)
        except ChannelError:
            raise ValueError(f"target {target!r} is not an output channel in layer.channel form") from None
        if target in out:
            raise ValueError(f"target {target!r} is mapped twice")
        parse_source(source)
        out[target] = source
    return out


#: ``{output channel: source}``, see ``Shuffle2.Knobs.mappings``.
MappingsKnob = Annotated[dict[str, str], BeforeValidator(_mappings_before), AfterValidator(_mappings_validator)]


class Shuffle2(Node):
    """Nuke's Shuffle (class Shuffle2): routes any channel of the ``in1``/``in2`` layers, taken from
    input B or A, or a constant black or white, to any channel of the ``out1``/``out2`` layers.

    Channels of ``out1``/``out2`` that no mapping feeds are black; every other channel of B passes
    through. The data window is B's, joined with A's when a mapping reads from A; the format is B's.
    """

    type_name = "Shuffle2"
    category = "Channel"
    inputs = (
        Input("B", doc="Input 0: the image whose other channels pass through."),
        Input("A", required=False, doc="Input 1: a second image to take channels from (black if unconnected)."),
    )

    class Knobs(Knobs):
        fromInput1: Literal["B", "A"] = "B"
        """Input the in1 layer is read from: B (input 0) or A (input 1)."""
        in1: LayerKnob = "rgba"
        """First input layer; unqualified mapping sources of this layer read from fromInput1."""
        fromInput2: Literal["B", "A"] = "B"
        """Input the in2 layer is read from: B (input 0) or A (input 1)."""
        in2: LayerKnob = "none"
        """Second input layer; unqualified mapping sources of this layer (not in in1) read from fromInput2."""
        out1: LayerKnob = "rgba"
        """First output layer: its channels take their mapped sources, black where none is mapped."""
        out2: LayerKnob = "none"
        """Second output layer, like out1."""
        mappings: MappingsKnob = Field(default_factory=lambda: dict(_DEFAULT_MAPPINGS))
        """Nuke's wires, as {output channel: source}, e.g. {"rgba.alpha": "white", "rgba.red": "A:depth.Z"}.
        A source is 'black', 'white' or a channel: 'B:ch' or 'A:ch' from that input, 'in1:ch' or
        'in2:ch' from that layer's input (fromInput1/2), a bare 'ch' from in1's input if ch is in
        layer in1, else in2's if in in2, else fromInput1's. Absent channels read black. An output
        channel may be outside out1/out2 (it is added). 'none' or {} maps nothing. Default: rgba
        to rgba, unchanged."""

    # --- which input each mapping reads (knobs only, so that ``needs`` can skip unused inputs) ---
    def _sources(self) -> dict[str, tuple[str | None, str]]:
        """Output channel -> (input name or None for a constant, channel or 'black'/'white')."""
        k = self.knobs
        group = {"in1": k.fromInput1, "in2": k.fromInput2}
        out: dict[str, tuple[str | None, str]] = {}
        for target, source in k.mappings.items():
            prefix, channel = parse_source(source)
            if prefix is None and channel in ("black", "white"):
                out[target] = (None, channel)
                continue
            if prefix is None:
                prefix = "in1" if in_layer(channel, k.in1) else "in2" if in_layer(channel, k.in2) else "in1"
            out[target] = (group.get(prefix, prefix), channel)
        return out

    def needs(self, ctx: Context):
        used = {"B"} | {src for src, _ in self._sources().values() if src is not None}
        return [(name, ctx.frame) for name in ("B", "A") if name in used and name in ctx.connected]

    def compute(self, ctx: Context) -> Image:
        k = self.knobs
        img_b = ctx.input("B")
        sources = self._sources()
        img_a = ctx.input("A") if any(src == "A" for src, _ in sources.values()) else None
        box: Box = img_b.bbox
        if img_a is not None:
            img_a = img_a.to(img_b.device, img_b.dtype)
            box = box.union(img_a.bbox)
            img_a = img_a.crop_to(box)
        img_b = img_b.crop_to(box)
        images = {"B": img_b, "A": img_a}

        # An output layer B lacks (and not built in) has no known channel list: only its mapped
        # channels are created.
        targets = list(dict.fromkeys(layer_channels(k.out1, img_b.channels) + layer_channels(k.out2, img_b.channels)
                                     + tuple(sources)))

        planes: dict[str, torch.Tensor] = {}
        for target in targets:
            src, channel = sources.get(target, (None, "black"))
            if src is None:
                planes[target] = constant_plane(img_b, 1.0 if channel == "white" else 0.0)
                continue
            img = images[src]
            planes[target] = img.channel(channel) if img is not None and channel in img.channels \
                else constant_plane(img_b, 0.0)
        return assemble(img_b, planes)


__all__ = ["Shuffle", "Shuffle2", "LayerKnob", "layer_channels", "output_layer_channels", "assemble"]
