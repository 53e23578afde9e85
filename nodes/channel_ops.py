"""ShuffleCopy, Remove, AddChannels and CopyBBox: channel bookkeeping nodes of Nuke.

Channel sets here are forgiving, as Nuke's are: a layer or channel an image does not carry is
simply not there to remove or keep (no error), and AddChannels creates it. ``all`` is the image's
channels, ``none`` nothing; ``rgba``, ``rgb``, ``alpha`` and ``depth`` are Nuke's built-in sets.
"""

from __future__ import annotations

import re
from typing import Annotated, Literal

from pydantic import AfterValidator, Field, create_model

from nodegraph import channels as chans
from nodegraph.evaluator import Context
from nodegraph.image import Image
from nodegraph.node import Input, Knobs, Node

from ._common import ChannelsKnob, Color4
from .expression import targets
from .shuffle import LayerKnob, ShuffleSource, assemble, constant_plane, layer_channels, output_layer_channels


def present(spec: str, channels: tuple[str, ...]) -> tuple[str, ...]:
    """The channels of ``channels`` a channel set names, in the image's order; unknown names: none."""
    wanted: set[str] = set()
    for item in (s.strip() for s in spec.split(",")):
        if item == "all":
            return channels
        if item == "none" or not item:
            continue
        if "." in item:
            wanted.add(item)
        elif item in chans.LAYER_SHORTHANDS and not any(c.rpartition(".")[0] == item for c in channels):
            wanted.update(chans.LAYER_SHORTHANDS[item])
        else:
            wanted.update(c for c in channels if c.rpartition(".")[0] == item)
    return tuple(c for c in channels if c in wanted)


# --- ShuffleCopy ------------------------------------------------------------------------------------

_POSITION = {"red": 0, "green": 1, "blue": 2, "alpha": 3}
#: The out layer's four knobs, then out2's (Nuke's names: out2's are called black, white, red2, green2).
OUT_KNOBS = ("red", "green", "blue", "alpha")
OUT2_KNOBS = ("black", "white", "red2", "green2")
_SOURCES = "red, green, blue, alpha (of in, from A), red2..alpha2 (of in2, from B), black or white"

def _plain_layer(value: str) -> str:
    if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z0-9_]+)*", value):
        raise ValueError(f"{value!r} is not a layer name (letters, digits, _ and '.')")
    return value


#: A layer name as Shuffle's, and nothing else (a TCL link such as {{{parent.X.in}}} is refused).
PlainLayer = Annotated[LayerKnob, AfterValidator(_plain_layer)]

_ShuffleCopyKnobs = create_model(
    "_ShuffleCopyKnobs", __base__=Knobs,
    **{"in": (PlainLayer, Field("rgba", description="Layer of input A (input 1) that the sources red, green, "
                                                  "blue and alpha read (its channels in Nuke's order).")),
       "in2": (PlainLayer, Field("rgba", description="Layer of input B (input 0) that the sources red2, green2, "
                                                    "blue2 and alpha2 read.")),
       "out": (PlainLayer, Field("rgba", description="Layer written by red, green, blue and alpha (its 1st..4th "
                                                    "channels; a new layer gets .red .green .blue .alpha).")),
       "out2": (PlainLayer, Field("none", description="Second layer written, by black, white, red2 and green2.")),
       **{knob: (ShuffleSource, Field(default, description=f"Source of the {what} channel of {layer}: {_SOURCES}."))
          for layer, knobs, defaults in (("out", OUT_KNOBS, ("red2", "green2", "blue2", "alpha")),
                                         ("out2", OUT2_KNOBS, ("red2", "green2", "blue2", "alpha")))
          for knob, default, what in zip(knobs, defaults, ("1st", "2nd", "3rd", "4th"))}},
)


class ShuffleCopy(Node):
    """Nuke's classic ShuffleCopy: B (input 0) with the channels of the ``out`` and ``out2`` layers
    replaced, one by one, by a channel of A's ``in`` layer (red, green, blue, alpha), of B's ``in2``
    layer (red2..alpha2), black or white. B's other channels pass through.

    The defaults copy A's alpha into B's rgb, as in Nuke (rgb from in2, alpha from in). Input order
    and defaults follow public scripts: input 0 passes through and feeds in2, input 1 feeds in.
    Where Nuke's docs are silent nodegraph chooses: an unconnected A reads black; the data window is
    B's, joined with A's when a written channel reads A; out2's four knobs default like out's; when
    out and out2 name the same channel, out2 wins.
    """

    type_name = "ShuffleCopy"
    category = "Channel"
    inputs = (
        Input("B", doc="Input 0: the image written to, whose other channels pass through; in2 reads it."),
        Input("A", required=False, doc="Input 1: the image the in layer reads (black if unconnected)."),
    )
    Knobs = _ShuffleCopyKnobs

    def _wiring(self, channels: tuple[str, ...]) -> dict[str, str]:
        """Output channel -> source, for the out and out2 layers over ``channels``."""
        k = self.knobs
        wanted: dict[str, str] = {}
        for layer, knobs in ((k.out, OUT_KNOBS), (k.out2, OUT2_KNOBS)):
            for target, knob in zip(output_layer_channels(layer, channels)[:4], knobs):
                wanted[target] = getattr(k, knob)
        return wanted

    def _reads_a(self) -> bool:
        k = self.knobs
        used = [getattr(k, n) for n in OUT_KNOBS if k.out != "none"] + [getattr(k, n) for n in OUT2_KNOBS
                                                                       if k.out2 != "none"]
        return any(s in _POSITION for s in used)

    def needs(self, ctx: Context):
        return [(name, ctx.frame) for name in ("B", "A") if name in ctx.connected
                and (name == "B" or self._reads_a())]

    def compute(self, ctx: Context) -> Image:
        img_b = ctx.input("B")
        img_a = ctx.input("A") if self._reads_a() and ctx.has_input("A") else None
        if img_a is not None:
            box = img_b.bbox.union(img_a.bbox)
            img_a, img_b = img_a.to(img_b.device, img_b.dtype).crop_to(box), img_b.crop_to(box)
        layers = {"": layer_channels(getattr(self.knobs, "in"), img_a.channels if img_a is not None else ()),
                  "2": layer_channels(self.knobs.in2, img_b.channels)}
        planes = {}
        for target, source in self._wiring(img_b.channels).items():
            if source in ("black", "white"):
                planes[target] = constant_plane(img_b, 0.0 if source == "black" else 1.0)
                continue
            img, layer = (img_b, layers["2"]) if source.endswith("2") else (img_a, layers[""])
            pos = _POSITION[source.rstrip("2")]
            name = layer[pos] if pos < len(layer) else None
            found = img is not None and name in img.channels
            planes[target] = img.channel(name) if found else constant_plane(img_b, 0.0)
        return assemble(img_b, planes)


# --- Remove and AddChannels ------------------------------------------------------------------------

class _MoreChannelSets(Knobs):
    channels2: ChannelsKnob = "none"
    """More channels, as channels."""
    channels3: ChannelsKnob = "none"
    """More channels, as channels."""
    channels4: ChannelsKnob = "none"
    """More channels, as channels."""


def _sets(k: _MoreChannelSets) -> tuple[str, str, str, str]:
    return (k.channels, k.channels2, k.channels3, k.channels4)  # type: ignore[attr-defined]


class Remove(Node):
    """Nuke's Remove: drops the channels named by ``channels``..``channels4`` (operation remove) or
    every other channel (operation keep). A named channel the image lacks is ignored. Data window,
    format and the order of the remaining channels are the input's."""

    type_name = "Remove"
    category = "Channel"
    inputs = (Input("input", doc="Image whose channels are removed."),)

    class Knobs(_MoreChannelSets):
        operation: Literal["remove", "keep"] = "remove"
        """remove: drop the channels below; keep: keep them and drop every other channel."""
        channels: ChannelsKnob = "all"
        """Channels to remove or keep ('all', a layer, a channel, a comma list, 'none')."""

    def compute(self, ctx: Context) -> Image:
        img = ctx.input("input")
        k = self.knobs
        named: set[str] = set()
        for spec in _sets(k):
            named.update(present(spec, img.channels))
        keep = [c for c in img.channels if (c in named) == (k.operation == "keep")]
        return img.select(keep)


# --- AddChannels ------------------------------------------------------------------------------------

class AddChannels(Node):
    """Nuke's AddChannels: adds the channels of ``channels``..``channels4`` that the input lacks,
    filled with ``color`` (a channel takes the component of its place in its layer: red, x, u the
    1st; green, y, v the 2nd; blue, z the 3rd; alpha, w the 4th; other names their position among
    the layer's new channels, the 4th beyond). Channels the input has pass through unchanged, as in
    the NDK's AddChannels. A layer the input lacks is created as layer.red/green/blue/alpha (nodegraph
    has no global layer table); 'all' adds nothing. The data window is the input's."""

    type_name = "AddChannels"
    category = "Channel"
    inputs = (Input("input", doc="Image the channels are added to."),)

    class Knobs(_MoreChannelSets):
        channels: ChannelsKnob = "none"
        """Channels to add ('none', a layer, a channel, a comma list)."""
        color: Color4 = (0.0, 0.0, 0.0, 0.0)
        """Value of the new channels, by their place in their layer (r, g, b, a)."""

    def compute(self, ctx: Context) -> Image:
        img = ctx.input("input")
        k = self.knobs
        new: list[str] = []
        for spec in _sets(k):
            new.extend(c for c in targets(spec, img.channels) if c not in img.channels and c not in new)
        if not new:
            return img
        planes = {}
        for name in new:
            place = chans.sort_key(name)[2]
            if place > 3:
                layer = name.rpartition(".")[0]
                place = min(3, [c for c in new if c.rpartition(".")[0] == layer].index(name))
            planes[name] = constant_plane(img, k.color[place])
        return assemble(img, planes)


# --- CopyBBox ---------------------------------------------------------------------------------------

class CopyBBox(Node):
    """Nuke's CopyBBox: B's pixels and channels over A's data window (B is cut where it reaches
    beyond it and black where A's reaches beyond B's). Only A's data window is used."""

    type_name = "CopyBBox"
    category = "Merge"
    inputs = (
        Input("B", doc="Input 0: the image whose data window is replaced."),
        Input("A", doc="Input 1: the image whose data window is copied."),
    )

    def compute(self, ctx: Context) -> Image:
        img_b = ctx.input("B")
        return img_b.crop_to(ctx.input("A").bbox)


__all__ = ["AddChannels", "CopyBBox", "Remove", "ShuffleCopy", "present", "OUT_KNOBS", "OUT2_KNOBS"]
