"""Expression and MergeExpression: per-pixel formulas in Nuke's expression language.

Both nodes evaluate up to four temporary variables (``temp_name0 = temp_expr0`` ...) and then up to
four rows (``channel0 = expr0`` ...) over whole images at once: the parsed expression runs as
tensor operations (:meth:`nodegraph.expression.Expression.evaluate_pixels`), never per pixel in
Python, in float32 ("all math is done with 32-bit floating point numbers", as Foundry's docs say)
and the result is stored in the image's precision.

Per-pixel variables, after Foundry's documentation of the two nodes:

- a channel by its full name (``rgba.red``, ``depth.Z``, ``matte.garbage``) and the short names
  ``r g b a`` (rgba) and ``z`` (depth.Z); a channel the image lacks reads 0;
- ``x``, ``y``: the pixel's integer coordinates in Nuke's y-up space (the bottom row of the format
  is y = 0; the pixel's centre is x + 0.5, y + 0.5); ``width``, ``height``: the format's size;
  ``cx``, ``cy``: centred coordinates (-1 .. 1 across the width at the pixel centres; cy in the same
  units, scaled by the pixel aspect, so that cx = cy is 45 degrees);
- ``frame`` / ``t``; knobs of any node (``Grade1.white.r``, ``Blur1.size(frame - 1)``), resolved
  as one number per frame; user knobs of the node itself by their bare name;
- a channel read at another pixel: ``r(x + 1, y)``, by a short name (``r g b a z``, ``Ar``..``Bz``;
  the engine's parser reads ``depth.Z(x, y)`` as a knob at another frame, so dotted names cannot be
  sampled); nearest pixel (the coordinates are floored), 0 outside the data window;
- MergeExpression: ``Ar Ag Ab Aa Az`` and ``Br Bg Bb Ba Bz``, ``A`` or ``B`` before a full channel
  name (``Bmatte.garbage``, also written ``B.matte.garbage``); bare names read B.

Where the docs are silent or disagree with public scripts, nodegraph chooses:

- a blank row (``exprN`` empty) leaves its channels as they are. Foundry's page says "a blank
  expression is the same as zero", but public scripts rely on blank rows being ignored (an
  "invert green" node setting only ``expr1 -g``); a blank temporary expression reads 0;
- a channel set naming a layer the image lacks creates ``layer.red/green/blue/alpha`` (nodegraph has
  no global layer table; the same rule as Shuffle); ``all`` means the image's channels;
- when two rows write one channel the later row wins; every row reads the input, not another
  row's result; a temporary variable can use the ones before it;
- ``mix`` and the mask blend each written channel: out = in + (expr - in) * mix * mask;
- Expression keeps its input's data window; MergeExpression's is the union of A's and B's, in
  B's format; the channels are B's plus those the rows create;
- knob references are resolved at the frame being computed and their values enter the node's
  hash, so a change upstream of a referenced knob recomputes the node.
"""

from __future__ import annotations

import json
import re
from typing import Annotated, Any, Callable

import torch
from pydantic import AfterValidator, BeforeValidator, Field, create_model

from nodegraph import channels as chans
from nodegraph.errors import KnobError, NodeGraphError
from nodegraph.evaluator import Context
from nodegraph.expression import Expression as ParsedExpression
from nodegraph.expression import ExpressionError
from nodegraph.image import Box, Image
from nodegraph.node import Input, Knobs, Node

from ._common import ChannelsKnob, MixKnob, mask_weight
from .shuffle import assemble, output_layer_channels

T = torch.Tensor

#: Short channel names of the Expression node.
SHORT_NAMES = {"r": "rgba.red", "g": "rgba.green", "b": "rgba.blue", "a": "rgba.alpha", "z": "depth.Z"}
#: Variables every pixel has besides channels.
COORDINATES = ("x", "y", "cx", "cy", "width", "height")
_ROWS = range(4)
#: Names parsed as variables when a knob is set (so that ``r(x + 1, y)`` reads as a sample).
_KNOWN = frozenset(SHORT_NAMES) | frozenset(COORDINATES) | frozenset(p + s for p in "AB" for s in SHORT_NAMES)
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")


def _expression_text(value: str) -> str:
    if value.strip():
        try:
            ParsedExpression(value, _KNOWN)
        except ExpressionError as err:  # pydantic only turns ValueError into a located knob error
            raise ValueError(str(err)) from None
    return value


def _temp_name(value: str) -> str:
    value = value.strip()
    if value and not _NAME.match(value):
        raise ValueError(f"{value!r} is not a variable name (letters, digits and _, not starting with a digit)")
    return value


def _nuke_channel_text(value: Any) -> Any:
    """Nuke's text of a channel set (``{rgba.red -rgba.green -rgba.blue none}``, as written in .nk
    scripts and read by Nuke's Python) as a comma list: ``-`` marks a channel switched off."""
    if isinstance(value, str) and (value.strip().startswith("{") or len(value.split()) > 1):
        on = [w for w in value.strip().strip("{}").split() if not w.startswith("-") and w != "none"]
        return ",".join(on) or "none"
    return value


#: A row's channel set: as ChannelsKnob, also taking Nuke's space-separated 4-slot text.
RowChannels = Annotated[ChannelsKnob, BeforeValidator(_nuke_channel_text)]
#: An expression's text ('' for none), checked by parsing it.
ExpressionText = Annotated[str, AfterValidator(_expression_text)]
#: A temporary variable's name ('' for none).
TempName = Annotated[str, AfterValidator(_temp_name)]

_ROW_CHANNELS = ("rgba.red", "rgba.green", "rgba.blue", "rgba.alpha")


def _row_fields(inputs_doc: str) -> dict[str, Any]:
    fields: dict[str, Any] = {}
    for i in _ROWS:
        fields[f"temp_name{i}"] = (TempName, Field("", description=(
            f"Name of temporary variable {i}, usable in the later temporary expressions and in expr0..3 "
            "('' for none).")))
        fields[f"temp_expr{i}"] = (ExpressionText, Field("", description=(
            f"Per-pixel expression giving temp_name{i} (blank: 0).")))
    for i in _ROWS:
        fields[f"channel{i}"] = (RowChannels, Field(_ROW_CHANNELS[i], description=(
            f"Channels expr{i} is written to (a channel, a layer, a comma list, 'all' or 'none'); a layer "
            "the image lacks is created as layer.red/green/blue/alpha.")))
        fields[f"expr{i}"] = (ExpressionText, Field("", description=(
            f"Per-pixel expression written to channel{i} ({inputs_doc}); blank leaves the channels as they are.")))
    fields["maskChannelInput"] = (ChannelsKnob, Field("rgba.alpha", description=(
        "Channel of the mask input that limits the effect (absent: black).")))
    fields["invert_mask"] = (bool, Field(False, description="Use one minus the mask channel."))
    fields["mix"] = (MixKnob, Field(1.0, description="Dissolve between the input (0) and the full effect (1)."))
    return fields


_ExpressionKnobs = create_model("_ExpressionKnobs", __base__=Knobs,
                                **_row_fields("channels by name, r g b a z, x y cx cy width height, frame, knobs"))
_MergeExpressionKnobs = create_model("_MergeExpressionKnobs", __base__=Knobs, **_row_fields(
    "Ar..Aa, Br..Ba, A/B before a channel name, bare names read B, x y cx cy width height, frame, knobs"))


def targets(spec: str, channels: tuple[str, ...]) -> tuple[str, ...]:
    """The channels a row writes: its set expanded against ``channels`` (missing layers created)."""
    out: list[str] = []
    for item in (s.strip() for s in spec.split(",")):
        if item == "none" or not item:
            continue
        if item == "all":
            found = channels
        elif "." in item:
            found = (item,)
        else:  # Nuke's built-in sets are whole (rgba writes alpha too); other layers as Shuffle's
            found = chans.LAYER_SHORTHANDS.get(item) or output_layer_channels(item, channels)
        out.extend(c for c in found if c not in out)
    return tuple(out)


def coordinates(img: Image) -> dict[str, Any]:
    """x, y (Nuke's y-up pixel coordinates), cx, cy, width and height over ``img``'s window, broadcastable."""
    box, dev = img.bbox, img.device
    fmt_width, fmt_height, aspect = img.format.width, img.format.height, img.format.pixel_aspect
    x = torch.arange(box.x0, box.x1, dtype=torch.float32, device=dev).view(1, -1)
    y = (fmt_height - 1 - torch.arange(box.y0, box.y1, dtype=torch.float32, device=dev)).view(-1, 1)
    half = max(fmt_width, 1) / 2.0
    return {"x": x, "y": y, "cx": (x + 0.5 - half) / half, "cy": (y + 0.5 - fmt_height / 2.0) / (half * aspect),
            "width": float(fmt_width), "height": float(fmt_height)}


def sample_plane(plane: T, box: Box, fmt_height: int, xs: Any, ys: Any, shape: tuple[int, int]) -> T:
    """``plane`` (over ``box``) read at Nuke coordinates ``xs``, ``ys``: nearest pixel, 0 outside."""
    xs = torch.as_tensor(xs, dtype=torch.float32, device=plane.device)
    ys = torch.as_tensor(ys, dtype=torch.float32, device=plane.device)
    xs, ys = (torch.broadcast_to(v, shape) for v in (xs, ys))
    h, w = plane.shape
    # bounded before the integer conversion: nan and inf land outside and read 0
    col = torch.nan_to_num(torch.floor(xs) - box.x0, nan=-1.0).clamp(-1, w)
    row = torch.nan_to_num((fmt_height - 1 - torch.floor(ys)) - box.y0, nan=-1.0).clamp(-1, h)
    col, row = col.long(), row.long()
    inside = (col >= 0) & (col < w) & (row >= 0) & (row < h)
    if h == 0 or w == 0:
        return torch.zeros(shape, dtype=torch.float32, device=plane.device)
    got = plane.float()[row.clamp(0, h - 1), col.clamp(0, w - 1)]
    return torch.where(inside, got, torch.zeros_like(got))


class _PixelExpressions(Node, abstract=True):
    """Shared evaluation of the temp/row knobs of Expression and MergeExpression."""

    def _temps(self) -> list[tuple[int, str, str]]:
        k = self.knobs
        return [(i, getattr(k, f"temp_name{i}"), getattr(k, f"temp_expr{i}")) for i in _ROWS
                if getattr(k, f"temp_name{i}")]

    def _rows(self) -> list[tuple[int, str, str]]:
        k = self.knobs
        return [(i, getattr(k, f"channel{i}"), getattr(k, f"expr{i}")) for i in _ROWS
                if getattr(k, f"expr{i}").strip() and getattr(k, f"channel{i}").strip() != "none"]

    def _resolver(self, record: list | None = None) -> Callable[[Any, float], Any]:
        def resolve(ref, frame):
            if record is None:
                return self._lookup(ref, frame, None)
            try:
                value = self._lookup(ref, frame, None)
            except NodeGraphError as err:  # the compute will say it; the hash only needs to differ
                record.append([str(ref), float(frame), "error", err.message])
                return 0.0
            record.append([str(ref), float(frame), repr(value)])
            return value
        return resolve

    def _run(self, frame: float, variables: dict[str, Any], sample, resolve) -> dict[int, Any]:
        """Temporaries into ``variables``, then each row's value by row index."""
        for i, name, text in self._temps():
            value = self._one(text, frame, variables, sample, resolve, f"temp_expr{i}") if text.strip() else 0.0
            variables[name] = value
        return {i: self._one(text, frame, variables, sample, resolve, f"expr{i}") for i, _, text in self._rows()}

    def _one(self, text: str, frame: float, variables: dict[str, Any], sample, resolve, knob: str) -> Any:
        try:
            parsed = ParsedExpression(text, variables)
            return parsed.evaluate_pixels(frame, resolve, variables, sample)
        except KnobError as err:
            raise err.with_context(node=self.path, knob=knob)

    def _variable_names(self) -> tuple[str, ...]:
        return tuple(SHORT_NAMES) + COORDINATES

    def hash_extra(self, ctx: Context) -> bytes:
        """The values of the knobs the expressions read at this frame (not part of the knob digest)."""
        if not self._rows():
            return b""
        record: list = []
        zero = torch.zeros(1)
        variables: dict[str, Any] = {n: zero for n in self._variable_names()}
        try:
            self._run(float(ctx.frame), variables, lambda name, xs, ys: zero, self._resolver(record))
        except NodeGraphError as err:
            record.append(["error", err.message])
        texts = [text for _, _, text in self._temps() if text.strip()] + [text for _, _, text in self._rows()]
        if any(ParsedExpression(text, _KNOWN).uses_time() for text in texts):
            record.append(["frame", ctx.frame])  # frame, t or [frame]: every frame differs
        return json.dumps(record, default=str).encode() if record else b""

    def _apply(self, ctx: Context, base: Image, variables: dict[str, Any], sample) -> Image:
        """Evaluate over ``base``'s window and write the rows into it, blended by mix and mask."""
        box = base.bbox
        rows = self._rows()
        written = {i: targets(spec, base.channels) for i, spec, _ in rows}
        if not any(written.values()):
            return base
        shape = (box.height, box.width)
        if box.empty:
            values: dict[int, Any] = {i: 0.0 for i in written}
        else:
            values = self._run(float(ctx.frame), variables, sample, self._resolver())
        weight = mask_weight(ctx, self.knobs, box, device=base.device, dtype=torch.float32)
        planes: dict[str, T] = {}
        for i, _, _ in rows:
            value = torch.broadcast_to(torch.as_tensor(values[i], dtype=torch.float32, device=base.device), shape)
            for name in written[i]:
                if isinstance(weight, float) and weight == 1.0:
                    planes[name] = value
                    continue
                old = base.channel(name).float() if name in base.channels else torch.zeros(shape, device=base.device)
                planes[name] = old + (value - old) * weight
        return assemble(base, planes)


def channel_variables(images: dict[str, Image], shape: tuple[int, int]) -> tuple[dict[str, Any], dict[str, tuple[Image, str]]]:
    """Variables for the channels of ``images`` by prefix ('' for Expression; 'A', 'B', 'A.', 'B.' and
    '' for MergeExpression): float32 planes, and where each name reads from (for ``r(x, y)``)."""
    zero = None
    variables: dict[str, Any] = {}
    where: dict[str, tuple[Image, str]] = {}
    for prefix, img in images.items():
        names = {prefix + c: c for c in img.channels + tuple(SHORT_NAMES.values())}  # built-ins read 0 if absent
        if not prefix.endswith("."):
            names.update({prefix + s: c for s, c in SHORT_NAMES.items()})
        for name, channel in names.items():
            if channel in img.channels:
                variables[name] = img.channel(channel).float()
            else:
                if zero is None:
                    zero = torch.zeros((), device=img.device)
                variables[name] = zero
            where[name] = (img, channel)
    return variables, where


def sampler(where: dict[str, tuple[Image, str]], shape: tuple[int, int]):
    """``sample(name, xs, ys)`` for the ``r(x, y)`` form over the images of ``where``."""
    def sample(name: str, xs: Any, ys: Any) -> T:
        if name not in where:
            raise ExpressionError(f"{name}(x, y): only channels can be read at other pixels")
        img, channel = where[name]
        if channel not in img.channels:
            return torch.zeros(shape, device=img.device)
        return sample_plane(img.channel(channel), img.bbox, img.format.height, xs, ys, shape)
    return sample


class Expression(_PixelExpressions):
    """Nuke's Expression: writes per-pixel expressions of the input's channels, the pixel
    coordinates, the frame and knobs into channel sets (``channelN = exprN``), after up to four
    temporary variables (``temp_nameN = temp_exprN``). out = in + (expr - in) * mix * mask.
    See the module docstring for the variables and for the choices where Nuke's docs are silent.
    """

    type_name = "Expression"
    category = "Color"
    inputs = (
        Input("input", doc="Image the expressions read and write."),
        Input("mask", required=False, doc="Optional mask limiting where the expressions apply."),
    )
    Knobs = _ExpressionKnobs

    def compute(self, ctx: Context) -> Image:
        img = ctx.input("input")
        if not self._rows():
            return img
        box = img.bbox
        shape = (box.height, box.width)
        variables, where = channel_variables({"": img}, shape)
        variables.update(coordinates(img))
        return self._apply(ctx, img, variables, sampler(where, shape))


class MergeExpression(_PixelExpressions):
    """Nuke's MergeExpression: the Expression node over two inputs. ``Ar``..``Aa`` read A, ``Br``..``Ba``
    (and bare names) read B, ``A``/``B`` before a channel name read other layers; the rows write
    into B. out = B + (expr - B) * mix * mask, over the union of the data windows, in B's format.
    """

    type_name = "MergeExpression"
    category = "Merge"
    inputs = (
        Input("B", doc="Input 0: the image written to; bare channel names and B.. read it."),
        Input("A", doc="Input 1: the second image, read as A.. (Ar, Ag, Ab, Aa, Adepth.Z)."),
        Input("mask", required=False, doc="Optional mask limiting where the expressions apply."),
    )
    Knobs = _MergeExpressionKnobs

    def _variable_names(self) -> tuple[str, ...]:
        return super()._variable_names() + tuple(p + s for p in "AB" for s in SHORT_NAMES)

    def compute(self, ctx: Context) -> Image:
        img_b = ctx.input("B")
        if not self._rows():
            return img_b
        img_a = ctx.input("A").to(img_b.device, img_b.dtype)
        box = img_a.bbox.union(img_b.bbox)
        img_a, img_b = img_a.crop_to(box), img_b.crop_to(box)
        shape = (box.height, box.width)
        images = {"A": img_a, "A.": img_a, "B": img_b, "B.": img_b, "": img_b}
        variables, where = channel_variables(images, shape)
        variables.update(coordinates(img_b))
        return self._apply(ctx, img_b, variables, sampler(where, shape))


__all__ = ["Expression", "MergeExpression", "SHORT_NAMES"]
