"""Roto and RotoPaint: Nuke's shape-drawing nodes (Bezier shapes with feather, animated points).

The shapes live in the ``curves`` knob as Nuke's own serialised text (kept verbatim, so a script
writes back as it was read); :mod:`nodegraph.nuke.roto_curves` reads and writes it, and a Python
user may give the knob a :class:`~nodegraph.nodes.roto_model.Layer` or a list of
:class:`~nodegraph.nodes.roto_model.Shape` instead (stored as Nuke's text). The node imports that
parser lazily: the knob *is* Nuke's format, so the node library reads it through the nuke layer.

Rendering at a frame, for each live shape from the bottom of Nuke's list to the top:

1. points, tangents and feather points at the frame (per-point curves), through the shape's
   transform then its layers' (pivot, translate, rotate, scale, skew), y up to y down;
2. the closed cubic Bezier outline and feather curve flattened adaptively (Wang's bound, 0.002 px);
3. coverage of the outline (non-zero winding; exact along x, 16 sub-scanlines per pixel row) as
   the opaque core. The feather band between the outline and the feather curve (per-point
   feather offsets plus the shape's feather distance along the normals) ramps from 1 at the core
   to 0 at the feather curve, shaped by the falloff type (smooth ``3t^2 - 2t^3`` by default) and
   raised to the feather falloff exponent. When the feather curve lies inside the outline (a
   negative feather), the feather curve bounds the core and the ramp runs out to the outline;
4. ``v = coverage`` (or ``1 - coverage`` inverted) ``* opacity``, composited over what is below
   in the output channels as the draw nodes do: ``out = colour * v + below * (1 - v)``.

The background input's other channels pass through; output channels it lacks start black.
``premultiply`` multiplies the channels it names by the shapes' combined alpha
(``1 - prod(1 - v)``). ``replace`` clears the output channels before drawing.

nodegraph's choices where Foundry's docs are silent (none checked against Nuke's pixels): the
order (the first item in the file is the top of Nuke's list, drawn last), the non-zero fill rule,
the feather geometry above, the transform order. Not done: motion blur (``motionblur`` kept and
ignored), blending modes other than over (no public script sets one), paint strokes: a live
stroke makes ``check()`` and the render fail with an error naming it (brush, eraser and clone
strokes are read, kept and written back, never dropped silently).
"""

from __future__ import annotations

import hashlib
import struct
from functools import lru_cache
from typing import Annotated, Any, Literal

import torch
from pydantic import BeforeValidator, Field

from nodegraph import channels as chans
from nodegraph.errors import KnobError, NodeGraphError
from nodegraph.evaluator import Context
from nodegraph.image import Box, Image
from nodegraph.node import Input, Knobs, Node

from . import roto_raster as R
from ._common import ChannelsKnob, FormatKnob, format_of, rgba_values
from .generate import _channel_problem, _names
from .roto_model import Layer, Shape, Stroke, at, keys_of
from .shuffle import assemble


def _curves_text(value: Any) -> Any:
    if isinstance(value, (Layer, Shape, Stroke, list, tuple)):
        from nodegraph.nuke.roto_curves import dump

        items = [value] if isinstance(value, (Shape, Stroke)) else value
        try:
            return dump(items if isinstance(items, Layer) else list(items))
        except NodeGraphError as err:
            raise ValueError(err.message) from None
    return value


#: Nuke's serialised shapes; a Layer or a list of shapes given from Python is stored as that text.
CurvesKnob = Annotated[str, BeforeValidator(_curves_text)]


@lru_cache(maxsize=64)
def parse_curves(text: str) -> Layer:
    """The scene of a ``curves`` text (cached: a knob's text is parsed once)."""
    from nodegraph.nuke.roto_curves import parse

    return parse(text)


Matrix = tuple[tuple[float, float, float], tuple[float, float, float]]
_IDENTITY: Matrix = ((1.0, 0.0, 0.0), (0.0, 1.0, 0.0))


def _compose(a: Matrix, b: Matrix) -> Matrix:
    """``a @ b`` for 2x3 affine matrices."""
    return tuple(tuple(a[r][0] * b[0][c] + a[r][1] * b[1][c] + (a[r][2] if c == 2 else 0.0)
                       for c in range(3)) for r in range(2))  # type: ignore[return-value]


def live_items(scene: Layer, frame: float) -> list[tuple[Shape | Stroke, Matrix]]:
    """Shapes and strokes alive at ``frame`` with their full matrices, in drawing order."""
    out: list[tuple[Shape | Stroke, Matrix]] = []

    def visit(layer: Layer, parent: Matrix) -> None:
        if not layer.alive(frame):
            return
        m = _compose(parent, layer.transform.matrix(frame))
        for child in reversed(layer.children):  # the top of Nuke's list is drawn last
            if isinstance(child, Layer):
                visit(child, m)
            elif child.alive(frame):
                out.append((child, _compose(m, child.transform.matrix(frame))))

    visit(scene, _IDENTITY)
    return out


def shape_polygons(shape: Shape, m: Matrix, frame: float, height: int, dev: torch.device
                   ) -> tuple[torch.Tensor, torch.Tensor] | None:
    """The outline and feather polylines (corresponding vertices, y down, float64) of a shape."""
    pts = shape.points
    if len(pts) < 2:
        return None
    rows = []
    for p in pts:
        c = [at(v, frame) for v in p.center]
        fc = [c[0] + at(p.feather[0], frame), c[1] + at(p.feather[1], frame)]
        fl, fr = p.feather_left or p.left, p.feather_right or p.right
        rows.append([c, [c[0] + at(p.left[0], frame), c[1] + at(p.left[1], frame)],
                     [c[0] + at(p.right[0], frame), c[1] + at(p.right[1], frame)],
                     fc, [fc[0] + at(fl[0], frame), fc[1] + at(fl[1], frame)],
                     [fc[0] + at(fr[0], frame), fc[1] + at(fr[1], frame)]])
    xy = torch.tensor(rows, dtype=torch.float64, device=dev)  # [N, 6, 2]
    mat = torch.tensor(m, dtype=torch.float64, device=dev)
    xy = xy @ mat[:, :2].T + mat[:, 2]
    xy = torch.stack([xy[..., 0], height - xy[..., 1]], -1)
    nxt = torch.roll(xy, -1, 0)
    main = torch.stack([xy[:, 0], xy[:, 2], nxt[:, 1], nxt[:, 0]], 1)
    feather = torch.stack([xy[:, 3], xy[:, 5], nxt[:, 4], nxt[:, 3]], 1)
    counts = torch.maximum(R.segment_counts(main), R.segment_counts(feather))
    outline, fpoly = R.sample(main, counts), R.sample(feather, counts)
    fx, fy = at(shape.feather[0], frame), at(shape.feather[1], frame)
    if fx or fy:
        n = R.vertex_normals(outline)
        fpoly = fpoly + n * torch.tensor([fx, fy], dtype=torch.float64, device=dev)  # outward for positive
    return outline, fpoly


def shape_alpha(shape: Shape, outline: torch.Tensor, fpoly: torch.Tensor, frame: float, box: Box,
                ) -> torch.Tensor:
    """The shape's ``v`` over ``box`` (coverage with feather, inverted, times opacity), float64."""
    h, w = box.height, box.width
    shift = torch.tensor([box.x0, box.y0], dtype=torch.float64, device=outline.device)
    inner, outer = outline - shift, fpoly - shift
    if abs(R.signed_area(outer)) < abs(R.signed_area(inner)):
        inner, outer = outer, inner
    v = R.coverage(inner, h, w)
    if not torch.equal(inner, outer):
        ramp = R.falloff(R.band(inner, outer, h, w), shape.falloff_type, at(shape.feather_falloff, frame))
        v = torch.maximum(v, ramp)
    if shape.invert:
        v = 1 - v
    return v * at(shape.opacity, frame)


def _poly_box(polys: list[torch.Tensor]) -> Box:
    allp = torch.cat(polys)
    lo, hi = allp.amin(0).floor(), allp.amax(0).ceil()
    return Box(int(lo[0]) - 1, int(lo[1]) - 1, int(hi[0]) + 1, int(hi[1]) + 1)


class Roto(Node):
    """Nuke's Roto: draws the closed Bezier shapes of its ``curves`` knob (with feather, opacity,
    invert, colour, lifetime, layer and shape transforms and per-point animation) into the
    ``output`` channels over its background. See the module docstring for the rendering rules."""

    category = "Draw"
    inputs = (Input("bg", required=False, doc="Background drawn over (black of `format` if unconnected)."),)

    class Knobs(Knobs):
        output: ChannelsKnob = "alpha"
        """Channels the shapes are drawn into (rgba channels take each shape's colour)."""
        premultiply: ChannelsKnob = "none"
        """Channels multiplied by the shapes' combined alpha after drawing (none: no change)."""
        cliptype: Literal["none", "bbox", "format", "union bbox+format", "intersect bbox+format"] = "bbox"
        """Output data window: the background's (bbox), the format, their union or intersection,
        or (none) also everything the shapes cover. Without a background, bbox is the format."""
        replace: bool = False
        """Clear the output channels of the background before drawing."""
        format: FormatKnob = "HD_1080"
        """Output format when the background is not connected (else the background's)."""
        motionblur: float = Field(0.0, ge=0)
        """Motion blur samples (kept from scripts; nodegraph does not render motion blur)."""
        curves: CurvesKnob = ""
        """The shapes, layers and strokes as Nuke's serialised text (from Python: a Layer or a list
        of Shape, stored as that text)."""

    def scene(self) -> Layer:
        """The ``curves`` knob as a pydantic scene (a KnobError naming node and knob if unreadable)."""
        try:
            return parse_curves(self.knobs.curves)
        except NodeGraphError as err:
            raise err.with_context(node=self.path, knob="curves")

    def check(self) -> list[str]:
        problems = []
        for knob in ("output", "premultiply"):
            problem = _channel_problem(getattr(self.knobs, knob))
            if problem:
                problems.append(f"knob '{knob}': {problem}")
        try:
            scene = parse_curves(self.knobs.curves)
        except NodeGraphError as err:
            return problems + [f"knob 'curves': {err.message}"]
        strokes = [s.name for s in _walk(scene) if isinstance(s, Stroke)]
        if strokes:
            problems.append(f"knob 'curves': paint strokes are not rendered (not implemented): "
                            f"{', '.join(strokes)}")
        return problems

    def hash_extra(self, ctx: Context) -> bytes:
        try:
            scene = self.scene()
        except NodeGraphError:
            return b""  # unreadable text: the render (and check) report it
        if not keys_of(scene) and all(i.lifetime_type == "all frames" for i in _walk(scene)):
            return b""
        return hashlib.blake2b(struct.pack("<d", float(ctx.frame)), digest_size=8).digest()

    def compute(self, ctx: Context) -> Image:
        k = self.knobs
        frame = float(ctx.frame)
        bg = ctx.input("bg") if ctx.has_input("bg") else None
        fmt = bg.format if bg is not None else format_of(self.name, k.format)
        items = live_items(self.scene(), frame)
        shapes = []
        for item, m in items:
            if isinstance(item, Stroke):
                raise KnobError(f"paint stroke {item.name!r} ({item.tool}) is not rendered: paint strokes are not "
                                "implemented (shapes are)", node=self.path, knob="curves", frame=int(frame))
            polys = shape_polygons(item, m, frame, fmt.height, ctx.device)
            if polys is not None:
                shapes.append((item, polys))
        box = self._box(bg, fmt, shapes)
        names = self._output(bg)
        dt = ctx.dtype
        base = (bg.to(ctx.device, dt).crop_to(box) if bg is not None else
                Image(torch.zeros((0, box.height, box.width), device=ctx.device, dtype=dt), (), box, fmt))
        work = torch.float64 if dt == torch.float64 else torch.float32
        zero = torch.zeros((box.height, box.width), device=ctx.device, dtype=work)
        planes = {n: zero.clone() if k.replace or n not in base.channels else base.channel(n).to(work).clone()
                  for n in names}
        clear = zero.clone()
        for shape, (outline, fpoly) in shapes:
            # a shape changes only its own box, unless inverted
            sub = box if shape.invert else _poly_box([outline, fpoly]).intersect(box)
            if sub.empty:
                continue
            v = shape_alpha(shape, outline, fpoly, frame, sub).to(work)
            win = (slice(sub.y0 - box.y0, sub.y1 - box.y0), slice(sub.x0 - box.x0, sub.x1 - box.x0))
            color = rgba_values(names, tuple(at(c, frame) for c in shape.color), default=at(shape.color[0], frame))
            for name, c in zip(names, color):
                planes[name][win] = c * v + planes[name][win] * (1 - v)
            clear[win] = clear[win] + v - clear[win] * v
        for name in self._named(k.premultiply, base):
            if name in planes:
                planes[name] = planes[name] * clear
            elif name in base.channels:
                planes[name] = base.channel(name).to(work) * clear
        return assemble(base, {n: p.to(dt) for n, p in planes.items()})

    def _named(self, spec: str, base: Image) -> tuple[str, ...]:
        if spec.strip() == "none":
            return ()
        try:
            return chans.expand(spec, base.channels)
        except NodeGraphError:
            return _names(spec, self.path, "premultiply")

    def _output(self, bg: Image | None) -> tuple[str, ...]:
        if bg is not None and _channel_problem(self.knobs.output):
            try:
                return chans.expand(self.knobs.output, bg.channels)
            except NodeGraphError:
                pass  # _names raises the KnobError naming the knob
        return _names(self.knobs.output, self.path, "output")

    def _box(self, bg: Image | None, fmt, shapes) -> Box:
        clip = self.knobs.cliptype
        own = bg.bbox if bg is not None else fmt.display
        if clip == "format":
            return fmt.display
        if clip == "union bbox+format":
            return own.union(fmt.display)
        if clip == "intersect bbox+format":
            return own.intersect(fmt.display)
        if clip == "none" and shapes:
            if any(s.invert for s, _ in shapes):
                return own.union(fmt.display)
            return own.union(_poly_box([p for _, pair in shapes for p in pair]))
        return own


class RotoPaint(Roto):
    """Nuke's RotoPaint: Roto's shapes (output rgba by default); its paint strokes (brush, eraser,
    clone...) are read and written back but not rendered: a live stroke is an error naming it."""

    type_name = "RotoPaint"

    class Knobs(Roto.Knobs):
        output: ChannelsKnob = "rgba"
        """Channels the shapes are drawn into (rgba channels take each shape's colour)."""


def _walk(layer: Layer):
    yield layer
    for child in layer.children:
        if isinstance(child, Layer):
            yield from _walk(child)
        else:
            yield child


__all__ = ["Roto", "RotoPaint", "live_items", "parse_curves", "shape_alpha", "shape_polygons"]
