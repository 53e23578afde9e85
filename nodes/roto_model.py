"""The Roto/RotoPaint scene as pydantic models: layers holding Bezier shapes and paint strokes.

A Python user builds a scene with these classes and gives it to a Roto's ``curves`` knob (it is
stored there as Nuke's own text, see :mod:`nodegraph.nuke.roto_curves`); ``Roto.scene()`` gives the
parsed scene back. Every number that Nuke can animate is an :data:`Anim`: a plain float or a
:class:`nodegraph.curve.Curve` (Nuke's animation curve, evaluated at the frame).

Coordinates are Nuke's: pixels of the format, y up. A point's tangents are relative to the point,
as in Nuke's file (``left`` is the handle towards the previous point, ``right`` towards the next).
"""

from __future__ import annotations

import math
from typing import Annotated, Any, Literal, Union

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, PlainSerializer

from nodegraph.curve import Curve


def _anim(value: Any) -> float | Curve:
    if isinstance(value, Curve):
        return value
    if isinstance(value, dict):
        return Curve.from_json(value)
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"a roto value is a number or a Curve, not {value!r}")
    if not math.isfinite(value):
        raise ValueError(f"a roto value must be finite, not {value!r}")
    return float(value)


def _anim_json(value: float | Curve) -> Any:
    return value.to_json() if isinstance(value, Curve) else value


#: A number Nuke can animate: a float or a :class:`Curve` of frames.
Anim = Annotated[Any, BeforeValidator(_anim), PlainSerializer(_anim_json)]
XY = tuple[Anim, Anim]


def at(value: float | Curve, frame: float) -> float:
    """An :data:`Anim` at ``frame``."""
    return value(frame) if isinstance(value, Curve) else float(value)


def keys_of(value: Any) -> set[float]:
    """The key frames of every curve inside a value (model, tuple, curve)."""
    if isinstance(value, Curve):
        return {k.x for k in value.keys}
    if isinstance(value, BaseModel):
        return set().union(*(keys_of(getattr(value, f)) for f in type(value).model_fields))
    if isinstance(value, (tuple, list)):
        return set().union(*(keys_of(v) for v in value)) if value else set()
    return set()


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class Point(_Model):
    """One control point of a Bezier shape with its tangents and its feather point."""

    center: XY
    """The point (x, y), pixels, y up."""
    left: XY = (0.0, 0.0)
    """Tangent handle towards the previous point, relative to ``center``."""
    right: XY = (0.0, 0.0)
    """Tangent handle towards the next point, relative to ``center``."""
    feather: XY = (0.0, 0.0)
    """The feather point's offset from ``center`` (0, 0: no feather at this point)."""
    feather_left: XY | None = None
    """The feather point's left tangent (relative); None: the same as ``left``."""
    feather_right: XY | None = None
    """The feather point's right tangent (relative); None: the same as ``right``."""


class Transform(_Model):
    """A 2D transform about ``center``: skew (x by y), scale, rotate (degrees, counter-clockwise),
    then translate (Nuke's default SRT order; the skew is applied first, nodegraph's reading)."""

    translate: XY = (0.0, 0.0)
    rotate: Anim = 0.0
    scale: XY = (1.0, 1.0)
    skew: Anim = 0.0
    center: XY = (0.0, 0.0)

    def matrix(self, frame: float) -> tuple[tuple[float, float, float], tuple[float, float, float]]:
        """The 2x3 affine matrix at ``frame`` (acting on column vectors ``(x, y, 1)``)."""
        cx, cy = at(self.center[0], frame), at(self.center[1], frame)
        tx, ty = at(self.translate[0], frame), at(self.translate[1], frame)
        sx, sy = at(self.scale[0], frame), at(self.scale[1], frame)
        k = at(self.skew, frame)
        r = math.radians(at(self.rotate, frame))
        c, s = math.cos(r), math.sin(r)
        # R @ S @ K with K = [[1, k], [0, 1]]
        a, b = c * sx, -s * sy
        d, e = s * sx, c * sy
        m00, m01 = a, a * k + b
        m10, m11 = d, d * k + e
        ox = cx + tx - (m00 * cx + m01 * cy)
        oy = cy + ty - (m10 * cx + m11 * cy)
        return ((m00, m01, ox), (m10, m11, oy))


FalloffType = Literal["smooth", "linear", "smooth0", "smooth1"]
Lifetime = Literal["all frames", "start to frame", "single frame", "frame to end", "frame range"]


class _Item(_Model):
    name: str = "Bezier1"
    """The item's name (unique in the node, as Nuke's)."""
    transform: Transform = Transform()
    """The item's own transform (applied before its layers')."""
    visible: bool = True
    """Hidden items are not rendered."""
    lifetime_type: Lifetime = "all frames"
    """Frames the item renders on: all, up to ``lifetime_end``, only ``lifetime_start``, from
    ``lifetime_start``, or ``lifetime_start`` to ``lifetime_end``."""
    lifetime_start: float = 0.0
    lifetime_end: float = 0.0
    attributes: dict[str, str] = Field(default_factory=dict)
    """Nuke's attributes nodegraph does not use, as written (kept for information)."""

    def alive(self, frame: float) -> bool:
        t, a, b = self.lifetime_type, self.lifetime_start, self.lifetime_end
        if not self.visible:
            return False
        if t == "start to frame":
            return frame <= b
        if t == "single frame":
            return frame == a
        if t == "frame to end":
            return frame >= a
        if t == "frame range":
            return a <= frame <= b
        return True


class Shape(_Item):
    """A closed Bezier shape (Nuke's Bezier, Ellipse and Rectangle tools all make these)."""

    kind: Literal["shape"] = "shape"
    points: list[Point] = Field(default_factory=list)
    """The control points, in order round the shape."""
    color: tuple[Anim, Anim, Anim, Anim] = (1.0, 1.0, 1.0, 1.0)
    """The fill colour r, g, b, a (written to the output channels)."""
    opacity: Anim = 1.0
    """Scales the shape's coverage."""
    invert: bool = False
    """Fill outside the shape instead."""
    feather: XY = (0.0, 0.0)
    """Feather distance in pixels (x, y) added to every feather point along the outward normal
    (negative: inward)."""
    feather_falloff: Anim = 1.0
    """Exponent of the feather ramp (1: the falloff curve as is; larger: sharper towards the edge)."""
    falloff_type: FalloffType = "smooth"
    """Shape of the ramp across the feather band: smooth (3t^2 - 2t^3), linear, smooth0, smooth1."""


class Stroke(_Item):
    """A paint stroke (RotoPaint's brush, eraser, clone, ... tools): read and kept, not rendered."""

    kind: Literal["stroke"] = "stroke"
    tool: str = "brush"
    """The paint tool: brush, clone, or ``tool N`` for a tool number nodegraph does not name."""
    points: list[tuple[Anim, Anim, Anim]] = Field(default_factory=list)
    """The stroke's points (x, y, pressure)."""


class Layer(_Item):
    """A layer: items under one more transform, listed top first as in Nuke's curves panel (the
    last is drawn first, each next one over it)."""

    kind: Literal["layer"] = "layer"
    name: str = "Layer1"
    children: list[Annotated[Union[Shape, Stroke, "Layer"], Field(discriminator="kind")]] = Field(
        default_factory=list)
    """The layer's shapes, strokes and layers, top first."""


Layer.model_rebuild()

__all__ = ["Anim", "Layer", "Point", "Shape", "Stroke", "Transform", "at", "keys_of"]
