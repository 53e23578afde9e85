"""Nuke's animation curves: keys, interpolation types, extrapolation, and the saved ``{curve ...}`` text.

A :class:`Curve` is an immutable, hashable value: a sorted tuple of :class:`Key` and an extrapolation.
``curve(frame)`` gives its value at any (float) frame; ``Curve.parse`` / ``to_nuke`` read and write
Nuke's text form; ``to_json`` / ``from_json`` the document form. Pure Python, no third-party imports.

Sources (read for facts; nothing copied):

* [PY] Foundry, Nuke Python API, ``nuke.AnimationKey`` (the ``interpolation``, ``extrapolation``,
  ``la``/``ra`` docs, unchanged from Nuke 7 to 16).
* [NDK] Foundry, NDK developer guide, "Curve serialisation format" (Nuke 7.0 to 15.0).
* Real ``{curve ...}`` values in public ``.nk`` scripts and gizmos (``/work/shared/data/nk``).

Evaluation
----------
Every key ``i`` has a left slope ``L[i]`` and a right slope ``R[i]``. Between keys ``i`` and ``i+1``
(``h = x[i+1] - x[i]``, ``d[i] = (y[i+1] - y[i]) / h``) the curve is the cubic Bezier with control points
``(x[i], y[i])``, ``(x[i] + ra*h/3, y[i] + R[i]*ra*h/3)``, ``(x[i+1] - la*h/3, y[i+1] - L[i+1]*la*h/3)``,
``(x[i+1], y[i+1])``, where ``ra`` is key ``i``'s right tangent length and ``la`` key ``i+1``'s left one
([PY] ``la``: "1.0 means 1/3 of the distance to the previous point ... legal values are 0 to 3").
With both lengths 1 (the default) the x of the Bezier is linear in its parameter, so the segment is
the cubic Hermite ``y = y0*h00(u) + h*R[i]*h10(u) + y1*h01(u) + h*L[i+1]*h11(u)``, ``u = (t - x[i]) / h``
([PY]: "the vertical interpolation a cubic function"); otherwise ``x(s) = t`` is solved for ``s``.
If key ``i`` is ``constant`` the segment is a step holding ``y[i]`` ([PY] CONSTANT: "equal to the y of
the point to the left").

Slopes per interpolation type ([PY] ``interpolation``):

* ``constant``: the segment after the key is a step. The key's own slopes are 0 (the docs are
  silent on the left slope a segment *into* a constant key uses; 0 is our choice: a flat arrival).
* ``linear``: "slopes point directly at the next key": ``L[i] = d[i-1]``, ``R[i] = d[i]``, so a
  segment between two linear keys is the straight line.
* ``catmull-rom``: "the slope at key n is set to the slope between the control points n-1 and n+1":
  ``L = R = (y[i+1] - y[i-1]) / (x[i+1] - x[i-1])``.
* ``smooth`` (Nuke's default): "same as CATMULL_ROM but the slopes are clamped so that the convex-hull
  property is preserved (meaning no part of the curve extends vertically outside the range of the
  keys on each side of it)". We read "convex hull" as the Bezier one: both handles stay within the
  y-range of their segment, i.e. the slope is 0 when ``y[i]`` is a local extremum or equals a
  neighbour (``d[i-1]*d[i] <= 0``), otherwise it keeps the Catmull-Rom sign and
  ``|m| <= 3*min(|d[i-1]|, |d[i]|)``. A segment between two smooth keys then never leaves the range
  of its two keys.
* ``cubic``: "the only cubic interpolation which makes the first and second derivatives continuous
  ... a different cubic interpolation is figured out for each set of adjacent points with the CUBIC
  type": one slope ``m[i]`` per cubic key from the tridiagonal system (second derivative continuous
  at key ``i``) ``R[i-1]/h[i-1] + 2*m[i]*(1/h[i-1] + 1/h[i]) + L[i+1]/h[i] = 3*(d[i-1]/h[i-1] + d[i]/h[i])``,
  where a neighbour's slope is an unknown when it is cubic too and fixed (moved right) otherwise. The second-derivative matching assumes tangent lengths of 1 (the Hermite
  form); a key whose other side is a step gets the end condition below.
* End keys: "for the smooth, CATMULL_ROM, and CUBIC interpolations, the first and last key have slopes
  calculated so that the second derivative is zero at them": ``2*R[0] + L[1] = 3*d[0]`` and
  ``R[n-2] + 2*L[n-1] = 3*d[n-2]``, solved together with the cubic system (two smooth keys therefore
  give a straight line). A smooth end key is then clamped to its segment's hull, ``R[0]`` between 0
  and ``3*d[0]`` (our reading of the smooth rule at an end; the clamp comes after the solve).
* ``horizontal``: slopes 0 on both sides (the curve editor's "horizontal" sets flat tangents).
* ``user``: one explicit slope used on both sides (tangent locked). ``break``: explicit, independent
  left and right slopes. [PY] USER_SET_SLOPE: "the slopes are fixed by the user and interpolation
  and extrapolation are ignored", so an explicit slope on an end key also sets the extrapolated line.

Extrapolation ([PY] ``extrapolation``): "constant: the left slope of the first point, and the right
slope of the last point, are set to zero. linear: the left slope of the first point is set equal to
its right slope ... the right slope of the last point is set equal to its left slope. If there is only
one point both slopes are set to zero." Before the first key the value is ``y[0] + L[0]*(t - x[0])``,
after the last ``y[n-1] + R[n-1]*(t - x[n-1])``. Nuke stores extrapolation per key and uses the first
key's before and the last key's after; here it is the curve's ``extrapolation``: ``"constant"``,
``"linear"`` or a ``(before, after)`` pair. A curve with no keys (``{curve}``) is 0 everywhere.

Text form ([NDK])
-----------------
``curve [i|I] key*`` with ``key = [K|L|S|R|C] [k|l] [x<frame>] <value> [s<left slope>] [t<right slope>]
[u<left length>] [v<right length>]``. The letters are Constant / Linear / Smooth / Catmull-Rom / Cubic
and constant / linear extrapolation; both kinds of flag stay in force for the following keys until the
next flag (real scripts write ``{curve K x1001 1}``, ``{curve L x1 0 x10 1}``). A value without ``x``
takes the next frame: 0 for the first key, first + 1 for the second, then the last two keys' step
continued ([NDK] pages for Nuke 12 to 15; the Nuke 7 page said the second "doubles the first", which real
scripts such as ``{curve x1001 2224 2224.85 ...}`` contradict). We always write the first key's ``x``. "If an l-slope is set and no r-slope then the l-slope should be
used for both" (``s`` alone = ``user``, ``s0`` alone = ``horizontal``, ``s`` and ``t`` = ``break``).
There are no letters for horizontal, user or break: Nuke saves them as slopes, and so do we. The
grammar gives no meaning to ``t`` without ``s``; we reject it. ``i``/``I`` (hidden / trace-only in the
curve editor) are accepted and not kept. Other expressions than ``curve`` belong to the expression
language and are rejected here.

JSON form
---------
``{"curve": [[x, y, "smooth"], [x, y, "break", {"left_slope": 2, "right_slope": -1}], ...],
"extrapolation": "constant"}``: one ``[x, y, interpolation]`` list per key, a fourth element holding only
the non-default extras (``left_slope``, ``right_slope``, ``left_length``, ``right_length``);
``extrapolation`` is ``"constant"``, ``"linear"`` or ``[before, after]``. Whole numbers are written
as JSON integers.
"""

from __future__ import annotations

import math
import re
from bisect import bisect_right
from dataclasses import dataclass
from typing import Any, Iterable

from nodegraph.errors import KnobError, safe_repr, shorten

__all__ = ["Curve", "CurveError", "Key", "INTERPOLATIONS", "EXTRAPOLATIONS"]

#: Interpolation types (Nuke's names, lower case; ``user`` is a key with an explicit slope).
INTERPOLATIONS = ("smooth", "linear", "constant", "cubic", "catmull-rom", "horizontal", "user", "break")
#: Extrapolation types (before the first and after the last key).
EXTRAPOLATIONS = ("constant", "linear")

_COMPUTED = frozenset({"smooth", "linear", "constant", "cubic", "catmull-rom"})
_LETTER_OF = {"constant": "K", "linear": "L", "smooth": "S", "catmull-rom": "R", "cubic": "C"}
_INTERP_OF = {v: k for k, v in _LETTER_OF.items()}
_EXTRAP_LETTER_OF = {"constant": "k", "linear": "l"}
_EXTRAP_OF = {v: k for k, v in _EXTRAP_LETTER_OF.items()}
_NUMBER = re.compile(r"[-+]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][-+]?\d+)?\Z")
_TOKEN = re.compile(r"[{}]|[^\s{}]+")

# Segment kinds, precomputed once per curve.
_STEP, _LINE, _HERMITE, _BEZIER = 0, 1, 2, 3


class CurveError(KnobError, ValueError):
    """A curve, a key or its text or JSON form is invalid.

    For text, ``token`` is the offending token and ``position`` its character offset in the text.
    """

    def __init__(self, message: str, *, token: str | None = None, position: int | None = None,
                 **context: Any) -> None:
        self.token = token
        self.position = position
        super().__init__(message, **context)


def _number(value: Any, what: str) -> float:
    if isinstance(value, (bool, str, bytes)):
        raise CurveError(f"{what} must be a number, not {safe_repr(value, 80)}")
    try:
        number = float(value)
    except (TypeError, ValueError, OverflowError) as err:
        raise CurveError(f"{what} must be a number, not {safe_repr(value, 80)}") from err
    if not math.isfinite(number):
        raise CurveError(f"{what} must be finite, not {number!r}")
    return number


@dataclass(frozen=True, slots=True)
class Key:
    """One key of a curve: value ``y`` at frame ``x``, and how the curve leaves and reaches it.

    ``interpolation`` is one of :data:`INTERPOLATIONS`. ``left_slope``/``right_slope`` are given only
    for the explicit types: ``user`` (one slope for both sides; give either), ``break`` (both), and
    ``horizontal`` (none, or 0). A ``user`` key with slope 0 is stored as ``horizontal``: both mean the
    same curve and Nuke writes both as ``s0``. ``left_length``/``right_length`` are Nuke's tangent
    lengths ``la``/``ra`` in [0, 3]; 1 is a plain cubic in x.
    """

    x: float
    y: float
    interpolation: str = "smooth"
    left_slope: float | None = None
    right_slope: float | None = None
    left_length: float = 1.0
    right_length: float = 1.0

    def __post_init__(self) -> None:
        put = object.__setattr__
        put(self, "x", _number(self.x, "key x (frame)"))
        put(self, "y", _number(self.y, "key y (value)"))
        kind = self.interpolation
        if kind not in INTERPOLATIONS:
            raise CurveError(f"unknown interpolation {safe_repr(kind, 80)}; expected one of {', '.join(INTERPOLATIONS)}")
        left = None if self.left_slope is None else _number(self.left_slope, "left_slope")
        right = None if self.right_slope is None else _number(self.right_slope, "right_slope")
        if kind in _COMPUTED:
            if left is not None or right is not None:
                raise CurveError(f"a {kind} key computes its slopes; use interpolation 'user' or 'break' "
                                 f"for explicit slopes (key at x={self.x:g})")
        elif kind == "horizontal":
            if (left or 0.0) != 0.0 or (right or 0.0) != 0.0:
                raise CurveError(f"a horizontal key has slope 0; use 'user' or 'break' (key at x={self.x:g})")
            left = right = None
        elif kind == "user":
            if left is None and right is None:
                raise CurveError(f"a user key needs a slope (left_slope) (key at x={self.x:g})")
            if left is not None and right is not None and left != right:
                raise CurveError(f"a user key has one slope for both sides; use 'break' for {left:g} and "
                                 f"{right:g} (key at x={self.x:g})")
            slope = left if left is not None else right
            if slope == 0.0:
                put(self, "interpolation", "horizontal")
                left = right = None
            else:
                left = right = slope
        else:  # break
            if left is None or right is None:
                raise CurveError(f"a break key needs both left_slope and right_slope (key at x={self.x:g})")
        put(self, "left_slope", left)
        put(self, "right_slope", right)
        for name in ("left_length", "right_length"):
            length = _number(getattr(self, name), name)
            if not 0.0 <= length <= 3.0:
                raise CurveError(f"{name} must be within [0, 3] (Nuke's legal range), not {length:g} "
                                 f"(key at x={self.x:g})")
            put(self, name, length)

    @property
    def slopes(self) -> tuple[float, float] | None:
        """The explicit (left, right) slopes, or None when the interpolation computes them."""
        if self.interpolation == "horizontal":
            return (0.0, 0.0)
        if self.left_slope is None:
            return None
        return (self.left_slope, self.right_slope)  # type: ignore[return-value]


def _key_from(item: Any) -> Key:
    if isinstance(item, Key):
        return item
    if isinstance(item, (tuple, list)) and 2 <= len(item) <= 3:
        return Key(*item)
    raise CurveError(f"a key is a Key or an (x, y[, interpolation]) pair, not {safe_repr(item, 80)}")


def _extrapolation(value: Any) -> tuple[str, str]:
    if isinstance(value, str):
        pair = (value, value)
    elif isinstance(value, (tuple, list)) and len(value) == 2:
        pair = (value[0], value[1])
    else:
        raise CurveError(f"extrapolation is 'constant', 'linear' or a (before, after) pair, not {safe_repr(value, 80)}")
    for side in pair:
        if side not in EXTRAPOLATIONS:
            raise CurveError(f"unknown extrapolation {safe_repr(side, 80)}; expected 'constant' or 'linear'")
    return pair  # type: ignore[return-value]


class Curve:
    """An animation curve: sorted keys and an extrapolation; an immutable value (equal, hashable by value).

    ``Curve([Key(1, 0), Key(100, 50, "linear")], extrapolation="linear")``; plain ``(x, y)`` or
    ``(x, y, interpolation)`` tuples are accepted for keys. Keys are sorted by frame; two keys on
    one frame are an error. ``curve(frame)`` evaluates (see the module docs for the maths).
    """

    __slots__ = ("keys", "extrapolation", "_xs", "_ys", "_segs", "_left", "_right", "_constant", "_hash")

    keys: tuple[Key, ...]
    extrapolation: str | tuple[str, str]

    def __init__(self, keys: Iterable[Any] = (), extrapolation: str | tuple[str, str] = "constant") -> None:
        if isinstance(keys, (str, bytes, Key)):
            raise CurveError("keys is a list of keys; use Curve.parse for text")
        ordered = sorted((_key_from(k) for k in keys), key=lambda k: k.x)
        for a, b in zip(ordered, ordered[1:]):
            if a.x == b.x:
                raise CurveError(f"two keys at frame {a.x:g}")
        before, after = _extrapolation(extrapolation)
        if len(ordered) < 2:
            # One key (or none) has no separate before and after; the text form cannot say both.
            after = before if ordered else "constant"
            before = after
        put = object.__setattr__
        put(self, "keys", tuple(ordered))
        put(self, "extrapolation", before if before == after else (before, after))
        self._prepare(before, after)

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError("a Curve is immutable; build a new one")

    # ------------------------------------------------------------------ value semantics
    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Curve):
            return NotImplemented
        return self.keys == other.keys and self.extrapolation == other.extrapolation

    def __hash__(self) -> int:
        return self._hash

    def __repr__(self) -> str:
        return f"Curve.parse({self.to_nuke()!r})"

    def __str__(self) -> str:
        return self.to_nuke()

    def __len__(self) -> int:
        return len(self.keys)

    def __reduce__(self) -> tuple[Any, ...]:
        return (Curve, (self.keys, self.extrapolation))

    @property
    def before(self) -> str:
        """Extrapolation before the first key."""
        return self.extrapolation if isinstance(self.extrapolation, str) else self.extrapolation[0]

    @property
    def after(self) -> str:
        """Extrapolation after the last key."""
        return self.extrapolation if isinstance(self.extrapolation, str) else self.extrapolation[1]

    # ------------------------------------------------------------------ evaluation
    def __call__(self, frame: float) -> float:
        return self.evaluate(frame)

    def evaluate(self, frame: float) -> float:
        """The value at ``frame`` (any finite real; between frames too)."""
        try:
            if isinstance(frame, (str, bytes)):
                raise TypeError("a string")
            t = float(frame)
        except (TypeError, ValueError) as err:
            raise CurveError(f"a frame must be a number, not {safe_repr(frame, 80)}") from err
        if not math.isfinite(t):
            raise CurveError(f"a frame must be finite, not {t!r}")
        xs = self._xs
        if not xs:
            return 0.0
        if t <= xs[0]:
            slope = self._left[0]
            return self._ys[0] if t == xs[0] or slope == 0.0 else self._ys[0] + slope * (t - xs[0])
        i = bisect_right(xs, t) - 1
        if i >= len(xs) - 1:
            slope = self._right[-1]
            return self._ys[-1] if slope == 0.0 else self._ys[-1] + slope * (t - xs[-1])
        kind, x0, h, y0, b, c, e, bez = self._segs[i]
        if kind == _STEP:
            return y0
        u = (t - x0) / h
        if kind == _LINE:
            return y0 + b * u
        if kind == _HERMITE:
            return y0 + u * (b + u * (c + u * e))
        return _bezier_y(bez, u)

    def is_constant(self) -> bool:
        """True when the curve has the same value at every frame: no keys, one key without an explicit
        slope, or keys of one value with every slope 0. Conservative: a slope that no segment uses (the
        side of a key facing a step) still counts, so a flat curve may answer False, never the reverse."""
        return self._constant

    # ------------------------------------------------------------------ precomputation
    def _prepare(self, before: str, after: str) -> None:
        put = object.__setattr__
        keys = self.keys
        xs = [k.x for k in keys]
        ys = [k.y for k in keys]
        left, right = _slopes(keys, xs, ys, before, after)
        segs = []
        for i in range(len(keys) - 1):
            k0, k1 = keys[i], keys[i + 1]
            x0, y0, y1 = xs[i], ys[i], ys[i + 1]
            h = xs[i + 1] - x0
            dy = y1 - y0
            m0, m1 = right[i], left[i + 1]
            if k0.interpolation == "constant":
                segs.append((_STEP, x0, h, y0, 0.0, 0.0, 0.0, None))
            elif k0.interpolation == "linear" and k1.interpolation == "linear" or (m0 * h == dy and m1 * h == dy):
                segs.append((_LINE, x0, h, y0, dy, 0.0, 0.0, None))
            elif k0.right_length == 1.0 and k1.left_length == 1.0:
                b = h * m0
                hm1 = h * m1
                segs.append((_HERMITE, x0, h, y0, b, 3.0 * dy - 2.0 * b - hm1, -2.0 * dy + b + hm1, None))
            else:
                ra, la = k0.right_length / 3.0, k1.left_length / 3.0
                bez = (ra, 1.0 - la, y0, y0 + m0 * ra * h, y1 - m1 * la * h, y1)
                segs.append((_BEZIER, x0, h, y0, 0.0, 0.0, 0.0, bez))
        for seg in segs:
            if not all(math.isfinite(v) for v in seg[1:7]) or (seg[7] and not all(map(math.isfinite, seg[7]))):
                raise CurveError(f"keys too far apart or slopes too steep to evaluate (segment from frame {seg[1]:g})")
        if not all(map(math.isfinite, left)) or not all(map(math.isfinite, right)):
            raise CurveError("slopes too steep to evaluate (values overflow)")
        flat = all(y == ys[0] for y in ys) and all(s == 0.0 for s in left) and all(s == 0.0 for s in right)
        put(self, "_xs", xs)
        put(self, "_ys", ys)
        put(self, "_left", left)
        put(self, "_right", right)
        put(self, "_segs", segs)
        put(self, "_constant", flat)
        put(self, "_hash", hash((self.keys, self.extrapolation)))

    # ------------------------------------------------------------------ Nuke text
    @classmethod
    def parse(cls, text: str) -> "Curve":
        """Read Nuke's text form: ``{curve x1 0 S x100 50}``, ``curve L x1 0 x10 1``, ``{{curve}}``."""
        if not isinstance(text, str):
            raise CurveError(f"curve text must be a string, not {type(text).__name__}")
        return _parse(text)

    @classmethod
    def parse_keys(cls, text: str) -> "Curve":
        """Read a key list alone, ``x1 0 L x10 1``: the keys Nuke saves after an expression that uses
        ``curve`` (``{"curve(frame*2)" x1 0 x2 1}``); splitting the expression off is the caller's part."""
        if not isinstance(text, str):
            raise CurveError(f"curve text must be a string, not {type(text).__name__}")
        return _parse(text, head=False)

    def to_nuke(self) -> str:
        """Nuke's text form, braces included: ``{curve x1 0 x100 50}``; ``Curve.parse`` reads it back equal."""
        parts = ["{curve"]
        interp, extrap = "smooth", "constant"
        n = len(self.keys)
        before, after = self.before, self.after
        recent: list[float] = []
        for i, key in enumerate(self.keys):
            want = before if i == 0 else (after if i == n - 1 else extrap)
            if want != extrap:
                parts.append(_EXTRAP_LETTER_OF[want])
                extrap = want
            if key.interpolation in _COMPUTED and key.interpolation != interp:
                parts.append(_LETTER_OF[key.interpolation])
                interp = key.interpolation
            if not recent or key.x != _next_frame(recent):  # the first key always names its frame
                parts.append("x" + _fmt(key.x))
            recent.append(key.x)
            parts.append(_fmt(key.y))
            if key.interpolation == "horizontal":
                parts.append("s0")
            elif key.interpolation == "user":
                parts.append("s" + _fmt(key.left_slope))  # type: ignore[arg-type]
            elif key.interpolation == "break":
                parts.append("s" + _fmt(key.left_slope))  # type: ignore[arg-type]
                parts.append("t" + _fmt(key.right_slope))  # type: ignore[arg-type]
            if key.left_length != 1.0:
                parts.append("u" + _fmt(key.left_length))
            if key.right_length != 1.0:
                parts.append("v" + _fmt(key.right_length))
        return " ".join(parts) + "}"

    # ------------------------------------------------------------------ JSON
    def to_json(self) -> dict[str, Any]:
        """``{"curve": [[x, y, interpolation(, extras)], ...], "extrapolation": ...}`` (see module docs)."""
        rows: list[list[Any]] = []
        for key in self.keys:
            row: list[Any] = [_json_number(key.x), _json_number(key.y), key.interpolation]
            extra = {}
            if key.interpolation in ("user", "break"):
                extra["left_slope"] = _json_number(key.left_slope)  # type: ignore[arg-type]
                extra["right_slope"] = _json_number(key.right_slope)  # type: ignore[arg-type]
            if key.left_length != 1.0:
                extra["left_length"] = _json_number(key.left_length)
            if key.right_length != 1.0:
                extra["right_length"] = _json_number(key.right_length)
            if extra:
                row.append(extra)
            rows.append(row)
        ex = self.extrapolation
        return {"curve": rows, "extrapolation": ex if isinstance(ex, str) else list(ex)}

    @classmethod
    def from_json(cls, data: Any) -> "Curve":
        """The inverse of :meth:`to_json`; a malformed document is a :class:`CurveError` naming where."""
        if not isinstance(data, dict) or "curve" not in data:
            raise CurveError(f'a curve document is an object with a "curve" list, not {safe_repr(data, 120)}')
        unknown = sorted(set(data) - {"curve", "extrapolation"})
        if unknown:
            raise CurveError(f"unknown field(s) in a curve document: {', '.join(map(repr, unknown))}")
        rows = data["curve"]
        if not isinstance(rows, list):
            raise CurveError(f'"curve" must be a list of keys, not {safe_repr(rows, 120)}')
        keys = []
        for i, row in enumerate(rows):
            where = f"curve[{i}]"
            if not isinstance(row, list) or not 2 <= len(row) <= 4:
                raise CurveError(f"{where}: a key is [x, y, interpolation(, extras)], not {safe_repr(row, 120)}")
            extra = row[3] if len(row) == 4 else {}
            if not isinstance(extra, dict):
                raise CurveError(f"{where}[3]: extras must be an object, not {safe_repr(extra, 120)}")
            bad = sorted(set(extra) - {"left_slope", "right_slope", "left_length", "right_length"})
            if bad:
                raise CurveError(f"{where}[3]: unknown field(s) {', '.join(map(repr, bad))}")
            interpolation = row[2] if len(row) >= 3 else "smooth"
            if not isinstance(interpolation, str):
                raise CurveError(f"{where}[2]: interpolation must be a string, not {safe_repr(interpolation, 80)}")
            try:
                keys.append(Key(row[0], row[1], interpolation, **extra))
            except CurveError as err:
                raise CurveError(f"{where}: {err.message}") from None
        return cls(keys, data.get("extrapolation", "constant"))


# ---------------------------------------------------------------------- slopes
def _slopes(keys: tuple[Key, ...], xs: list[float], ys: list[float], before: str, after: str
            ) -> tuple[list[float], list[float]]:
    """Left and right slope of every key (module docs); ``L[0]``/``R[-1]`` are the extrapolated lines."""
    n = len(keys)
    left = [0.0] * n
    right = [0.0] * n
    if n == 0:
        return left, right
    if n == 1:
        slopes = keys[0].slopes
        if slopes is not None:
            left[0], right[0] = slopes
        return left, right
    h = [xs[i + 1] - xs[i] for i in range(n - 1)]
    d = [(ys[i + 1] - ys[i]) / h[i] for i in range(n - 1)]
    step = [k.interpolation == "constant" for k in keys[:-1]]  # segment i holds y[i]
    unknown = [False] * n
    for i, key in enumerate(keys):
        kind = key.interpolation
        slopes = key.slopes
        if slopes is not None:
            left[i], right[i] = slopes
        elif kind == "constant":
            pass
        elif kind == "linear":
            if i > 0:
                left[i] = d[i - 1]
            if i < n - 1:
                right[i] = d[i]
        elif kind in ("smooth", "catmull-rom") and 0 < i < n - 1:
            m = (ys[i + 1] - ys[i - 1]) / (xs[i + 1] - xs[i - 1])
            if kind == "smooth":
                m = _clamp_smooth(m, d[i - 1], d[i])
            left[i] = right[i] = m
        else:  # cubic anywhere, smooth or catmull-rom at an end: the linear system below
            has_left = i > 0 and not step[i - 1]
            has_right = i < n - 1
            unknown[i] = has_left or has_right
    if any(unknown):
        _solve(unknown, left, right, h, d, step)
        for i in (0, n - 1):
            if unknown[i] and keys[i].interpolation == "smooth":
                secant = d[0] if i == 0 else d[n - 2]
                m = left[i]
                m = _clamp_smooth(m, secant, secant)
                left[i] = right[i] = m
    if keys[0].slopes is None:
        left[0] = right[0] if before == "linear" else 0.0
    if keys[-1].slopes is None:
        right[-1] = left[-1] if after == "linear" else 0.0
    return left, right


def _clamp_smooth(m: float, d_left: float, d_right: float) -> float:
    """Catmull-Rom slope ``m`` limited so both Bezier handles stay within their segments' y-ranges.

    At an end key ``d_left == d_right`` is its one secant, and the end condition may give ``m`` the
    opposite sign; that handle would leave the range too, so it is flattened.
    """
    if d_left * d_right <= 0.0 or m * d_left <= 0.0:
        return 0.0
    limit = 3.0 * min(abs(d_left), abs(d_right))
    return math.copysign(min(abs(m), limit), m)


def _solve(unknown: list[bool], left: list[float], right: list[float], h: list[float], d: list[float],
           step: list[bool]) -> None:
    """Solve the tridiagonal system for the keys marked ``unknown`` (C2 inside, natural at the ends)."""
    n = len(unknown)
    sub = [0.0] * n
    diag = [1.0] * n
    sup = [0.0] * n
    rhs = [0.0] * n
    for i in range(n):
        if not unknown[i]:
            continue
        has_left = i > 0 and not step[i - 1]
        has_right = i < n - 1
        a = c = 0.0
        if has_left and has_right:
            a, c = 1.0 / h[i - 1], 1.0 / h[i]
            diag[i] = 2.0 * (a + c)
            rhs[i] = 3.0 * (d[i - 1] * a + d[i] * c)
        elif has_right:
            c, diag[i], rhs[i] = 1.0, 2.0, 3.0 * d[i]
        else:
            a, diag[i], rhs[i] = 1.0, 2.0, 3.0 * d[i - 1]
        if a:
            if unknown[i - 1]:
                sub[i] = a
            else:
                rhs[i] -= a * right[i - 1]
        if c:
            if unknown[i + 1]:
                sup[i] = c
            else:
                rhs[i] -= c * left[i + 1]
    # Thomas algorithm; the matrix is diagonally dominant (rows of known keys are the identity).
    for i in range(1, n):
        if sub[i]:
            w = sub[i] / diag[i - 1]
            diag[i] -= w * sup[i - 1]
            rhs[i] -= w * rhs[i - 1]
    m = [0.0] * n
    for i in range(n - 1, -1, -1):
        m[i] = (rhs[i] - (sup[i] * m[i + 1] if i < n - 1 else 0.0)) / diag[i]
    for i in range(n):
        if unknown[i]:
            left[i] = right[i] = m[i]


def _bezier_y(bez: tuple[float, ...], u: float) -> float:
    """y of a weighted segment at ``u`` in [0, 1): solve x(s) = u (monotone for lengths in [0, 3]), then y(s)."""
    x1, x2, y0, y1, y2, y3 = bez
    lo, hi, s = 0.0, 1.0, u
    for _ in range(100):
        r = 1.0 - s
        x = 3.0 * r * s * (r * x1 + s * x2) + s * s * s
        if x == u:
            break
        if x < u:
            lo = s
        else:
            hi = s
        dx = 3.0 * (r * r * x1 + 2.0 * r * s * (x2 - x1) + s * s * (1.0 - x2))
        nxt = s - (x - u) / dx if dx > 0.0 else -1.0
        s = nxt if lo < nxt < hi else 0.5 * (lo + hi)
        if hi - lo < 1e-15:
            break
    r = 1.0 - s
    return r * r * r * y0 + 3.0 * r * s * (r * y1 + s * y2) + s * s * s * y3


# ---------------------------------------------------------------------- text helpers
def _next_frame(recent: list[float]) -> float:
    """The frame Nuke gives a key written without ``x`` ([NDK])."""
    if not recent:
        return 0.0
    if len(recent) == 1:
        return recent[0] + 1.0
    return recent[-1] + (recent[-1] - recent[-2])


def _fmt(value: float) -> str:
    if value == 0.0:
        return "0"
    if value.is_integer() and abs(value) < 1e15:
        return str(int(value))
    return repr(value)


def _json_number(value: float) -> float | int:
    return int(value) if value.is_integer() and abs(value) < 2.0 ** 53 else value


def _parse(text: str, head: bool = True) -> Curve:
    def fail(message: str, token: str | None = None, position: int | None = None) -> CurveError:
        where = f" at character {position}" if position is not None else ""
        quoted = f" {token!r}" if token is not None else ""
        return CurveError(f"{message}{quoted}{where} in curve text {shorten(text, 200)!r}",
                          token=token, position=position)

    tokens = [(m.group(), m.start()) for m in _TOKEN.finditer(text)]
    opened = 0
    while opened < len(tokens) and tokens[opened][0] == "{":
        opened += 1
    closed = 0
    while closed < len(tokens) - opened and tokens[len(tokens) - 1 - closed][0] == "}":
        closed += 1
    body = tokens[opened:len(tokens) - closed]
    if opened != closed:
        token, pos = tokens[-1] if tokens else ("", 0)
        raise fail("unbalanced braces", token, pos)
    for token, pos in body:
        if token in "{}":
            raise fail("unexpected brace", token, pos)
    items = body
    if head:
        if not body or body[0][0] != "curve":
            token, pos = body[0] if body else ("", len(text))
            raise fail("expected the curve keyword (expressions other than 'curve' are not curves), got", token, pos)
        items = body[1:]
        if items and items[0][0] in ("i", "I"):  # hidden / trace-only display flags
            items = items[1:]
    interp, extrap = "smooth", "constant"
    pending_x: tuple[float, str, int] | None = None
    flagged = False  # a flag was given that must be followed by a key
    raw: list[dict[str, Any]] = []
    recent: list[float] = []
    for token, pos in items:
        head, rest = token[0], token[1:]
        if token in _INTERP_OF or token in _EXTRAP_OF:
            if pending_x is not None:
                raise fail("flag between a frame and its value", token, pos)
            if token in _INTERP_OF:
                interp = _INTERP_OF[token]
            else:
                extrap = _EXTRAP_OF[token]
            flagged = True
        elif _NUMBER.match(token):
            if pending_x is not None:
                x = pending_x[0]
            else:
                x = _next_frame(recent)
            y = _text_number(token, pos, fail)
            recent.append(x)
            raw.append({"x": x, "y": y, "interp": interp, "extrap": extrap, "pos": pos})
            pending_x = None
            flagged = False
        elif head == "x" and _NUMBER.match(rest):
            if pending_x is not None:
                raise fail("frame without a value before", token, pos)
            pending_x = (_text_number(rest, pos, fail), token, pos)
        elif head in "stuv" and _NUMBER.match(rest):
            if not raw or pending_x is not None or flagged:
                raise fail("tangent data before any key value", token, pos)
            key = raw[-1]
            if head in key:
                raise fail("repeated tangent data for one key", token, pos)
            key[head] = (_text_number(rest, pos, fail), token, pos)
        else:
            raise fail("unknown token", token, pos)
    if pending_x is not None:
        raise fail("frame without a value", pending_x[1], pending_x[2])
    keys = []
    for key in raw:
        kwargs: dict[str, Any] = {}
        if "t" in key and "s" not in key:
            raise fail("right slope t without a left slope s", key["t"][1], key["t"][2])
        if "s" in key:
            if "t" in key:
                kwargs.update(interpolation="break", left_slope=key["s"][0], right_slope=key["t"][0])
            else:
                kwargs.update(interpolation="user", left_slope=key["s"][0])
        else:
            kwargs["interpolation"] = key["interp"]
        if "u" in key:
            kwargs["left_length"] = key["u"][0]
        if "v" in key:
            kwargs["right_length"] = key["v"][0]
        try:
            keys.append(Key(key["x"], key["y"], **kwargs))
        except CurveError as err:
            raise fail(f"{err.message}; the key", None, key["pos"]) from None
    extrapolation: str | tuple[str, str] = (raw[0]["extrap"], raw[-1]["extrap"]) if raw else "constant"
    try:
        return Curve(keys, extrapolation)
    except CurveError as err:
        raise fail(err.message) from None


def _text_number(token: str, pos: int, fail: Any) -> float:
    value = float(token)
    if not math.isfinite(value):
        raise fail("number out of range", token, pos)
    return value
