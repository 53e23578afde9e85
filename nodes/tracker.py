"""Tracker4: Nuke's 2D tracker, applying the transform its knobs give (the tracking itself, finding
features in pixels, is not done: scripts carry the solved tracks).

The ``tracks`` knob holds Nuke's table as the script writes it, kept verbatim (so a script writes
back unchanged)::

    tracks { { 1 31 N }                       # header: 31 columns, N rows
     { { 5 1 20 enable e 1 } { 3 1 75 name name 1 } { 2 1 58 track_x track_x 1 } ... }  # columns
     { { {curve K x1 1} "track 1" {curve x1 100 101 ...} {curve x1 50 ...} ... } ... } } # rows

Columns are found by name (``enable``, ``name``, ``track_x``, ``track_y``, ``offset_x``,
``offset_y``, ``T``, ``R``, ``S``); the others (error, pattern and search boxes, keyframe data)
are read past. A cell is a number, a quoted word, a ``{curve ...}`` (``{curve}``: no keys) or an
expression.

The transform at frame ``t`` is a match-move matrix ``M(t)`` in Nuke's y-up pixel space, then:
``none`` passes the input through, ``match-move`` applies ``M``, ``stabilize`` applies
``M^-1``, ``remove jitter`` applies ``S M^-1`` and ``add jitter`` ``M S^-1``, where ``S(t)`` is
the transform of the parameters averaged over ``jitter_period`` frames centred on ``t`` (the
slow motion kept; only the jitter removed or added). ``invert_matrix`` inverts the result.

``M(t)``: when the script has the Transform tab's ``translate/rotate/scale/skew/center`` (Nuke
saves them, animated, after solving; any of them not at its default, or animated), it is the
Transform node's matrix of those values, ``T(center + translate) R Skew S T(-center)``.
Otherwise it is solved from the enabled tracks, as Foundry documents (one track gives a
translation; two or more translation, rotation and scale), by least squares between each
track's position at ``reference_frame`` (``P``) and at ``t`` (``Q``), a position being
``track + offset``:

- translate: the mean of ``Q - P`` over the tracks with ``T``; ``center``: the mean of their
  ``P`` (so the reference frame is the identity);
- rotate: over the tracks with ``R`` (two or more), the angle minimising
  ``sum |Q' - R P'|^2`` of the centred points: ``atan2(sum P' x Q', sum P' . Q')``;
- scale: over the tracks with ``S`` (two or more), ``sum Q' . R P' / sum |P'|^2`` (uniform).

A track is enabled at ``t`` when its ``enable`` cell is non-zero there; a track whose x or y has
no keys is skipped. No usable track (or none with ``T``) gives the identity with a warning naming
the node. ``smoothT``/``smoothR``/``smoothS`` average translate / rotate / scale over
``2 n + 1`` frames centred on ``t`` before the modes above. nodegraph's choices where Foundry's
documentation is silent: the averaging windows (a plain mean of the parameters, rounded frame
counts), the positions as track + offset, the scale as least squares with the rotation found,
``clamp`` as clamping the result to the range of the input's values (the filter's overshoot), and
motion blur as ``max(2, ceil(8 * motionblur))`` transforms spread evenly over the shutter
(``shutter`` frames, starting per ``shutteroffset``), averaged.

The pixels are resampled by the Transform node's code (:func:`.transform.apply_affine`), so a
Tracker and a Transform given the same values give the same pixels. The table is parsed with
nodegraph's TCL lexer (:mod:`nodegraph.nuke.tcl`), a pure word splitter without dependencies.
"""

from __future__ import annotations

import functools
import math
import warnings
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import torch
from pydantic import Field

from nodegraph.curve import Curve
from nodegraph.errors import KnobError, NodeGraphError
from nodegraph.evaluator import Context
from nodegraph.expression import Expression
from nodegraph.image import Image
from nodegraph.node import Input, Node
from nodegraph.nuke.tcl import split_list

from .transform import Transform, _pair, apply_affine, bbox_of, flip_y

TransformMode = Literal["none", "stabilize", "match-move", "remove jitter", "add jitter"]
#: The table columns nodegraph reads.
COLUMNS = ("enable", "name", "track_x", "track_y", "offset_x", "offset_y", "T", "R", "S")
#: The Transform tab's knobs that, saved by Nuke, give the solved transform directly.
SOLVED_KNOBS = ("translate", "rotate", "scale", "skewX", "skewY", "center")


class TableError(ValueError):
    """A ``tracks`` table that cannot be read (the caller names node and knob)."""


@dataclass(frozen=True)
class Track:
    """One row of the table: each cell a number, a Curve, an Expression, or None (no value)."""

    name: str
    cells: dict[str, Any]

    def keyed(self) -> bool:
        """Whether x and y have values (a ``{curve}`` without keys has none)."""
        return all(_has_value(self.cells.get(c)) for c in ("track_x", "track_y"))


def _has_value(cell: Any) -> bool:
    return cell is not None and not (isinstance(cell, Curve) and len(cell) == 0)


def _cell(text: str, kind: str) -> Any:
    body = text.strip()
    if kind != "brace":
        try:
            return float(body)
        except ValueError:
            return body
    if not body:
        return None
    if body.split(None, 1)[0] == "curve":
        try:
            return Curve.parse(body)
        except NodeGraphError as err:
            raise TableError(f"curve {body[:60]!r}: {err.message}") from None
    try:
        return float(body)
    except ValueError:
        pass
    try:
        return Expression(body.strip('"'))
    except NodeGraphError as err:
        raise TableError(f"cell {body[:60]!r}: {err.message}") from None


@functools.lru_cache(maxsize=64)
def parse_tracks(text: str) -> tuple[Track, ...]:
    """The rows of a ``tracks`` table (see the module docstring); empty text: no tracks."""
    if not text.strip():
        return ()
    try:
        parts = split_list(text)
    except NodeGraphError as err:
        raise TableError(f"not a TCL list: {err.message}") from None
    if len(parts) == 1 and parts[0].kind == "brace":  # the knob's value written with its braces
        return parse_tracks(parts[0].text)
    if len(parts) != 3:
        raise TableError(f"a table is {{header}} {{columns}} {{rows}}; found {len(parts)} part(s)")
    try:
        columns = [split_list(c.text) for c in split_list(parts[1].text)]
        names = [c[3].text if len(c) > 3 else "" for c in columns]
        rows = [split_list(r.text) for r in split_list(parts[2].text)]
    except NodeGraphError as err:
        raise TableError(err.message) from None
    for need in ("track_x", "track_y"):
        if need not in names:
            raise TableError(f"the table has no {need} column (columns: {', '.join(names[:12])}...)")
    out = []
    for i, row in enumerate(rows):
        if len(row) != len(names):
            raise TableError(f"row {i + 1} has {len(row)} cells for {len(names)} columns")
        cells = {n: _cell(w.text, w.kind) for n, w in zip(names, row) if n in COLUMNS}
        name = cells.pop("name", None)
        out.append(Track(str(name) if name is not None else f"track {i + 1}", cells))
    return tuple(out)


# --- the solve ------------------------------------------------------------------------------------

def solve_similarity(p: np.ndarray, q: np.ndarray, use_t: np.ndarray, use_r: np.ndarray,
                     use_s: np.ndarray) -> tuple[float, float, float, float, float, float]:
    """``(tx, ty, rotate_degrees, scale, cx, cy)`` of the least-squares similarity taking points ``p``
    to ``q`` (``[N, 2]``), each component from the tracks flagged for it (see the module docstring)."""
    if not use_t.any():
        return 0.0, 0.0, 0.0, 1.0, 0.0, 0.0
    c = p[use_t].mean(axis=0)
    t = q[use_t].mean(axis=0) - c
    angle = 0.0
    if use_r.sum() >= 2:
        pc = p[use_r] - p[use_r].mean(axis=0)
        qc = q[use_r] - q[use_r].mean(axis=0)
        cross = float((pc[:, 0] * qc[:, 1] - pc[:, 1] * qc[:, 0]).sum())
        dot = float((pc * qc).sum())
        angle = math.atan2(cross, dot) if (cross or dot) else 0.0
    scale = 1.0
    if use_s.sum() >= 2:
        pc = p[use_s] - p[use_s].mean(axis=0)
        qc = q[use_s] - q[use_s].mean(axis=0)
        co, si = math.cos(angle), math.sin(angle)
        rp = np.stack([co * pc[:, 0] - si * pc[:, 1], si * pc[:, 0] + co * pc[:, 1]], axis=1)
        denom = float((pc * pc).sum())
        if denom > 0:
            scale = float((qc * rp).sum()) / denom
    return float(t[0]), float(t[1]), math.degrees(angle), scale, float(c[0]), float(c[1])


#: Parameters of a transform: tx, ty, rotate, sx, sy, skewX, skewY, cx, cy.
Params = tuple[float, float, float, float, float, float, float, float, float]


class Tracker4(Node):
    """Nuke's Tracker4, applying the transform its knobs give (module docstring: the table, the
    solve, the modes and nodegraph's choices)."""

    category = "Transform"
    inputs = (Input("input", doc="Image to transform."),)

    class Knobs(Transform.Knobs):
        """Transform's knobs (translate, rotate, scale, skew, center, invert_matrix, filter,
        black_outside: the solved transform Nuke saves, and the resampling), then the tracker's."""

        tracks: str = ""
        """The tracks table as Nuke writes it (enable, name, track_x/y, offset_x/y, T, R, S, ...)."""
        transform: TransformMode = "none"
        """What the tracks do to the input: none, stabilize, match-move, remove jitter, add jitter."""
        reference_frame: float = 1.0
        """The frame where the transform is the identity (tracks are compared with it)."""
        jitter_period: float = Field(10.0, ge=1.0)
        """Frames averaged to find the slow motion kept by remove/add jitter."""
        smoothT: float = Field(0.0, ge=0.0)
        """Average translate over 2n+1 frames."""
        smoothR: float = Field(0.0, ge=0.0)
        """Average rotate over 2n+1 frames."""
        smoothS: float = Field(0.0, ge=0.0)
        """Average scale over 2n+1 frames."""
        clamp: bool = False
        """Clamp the result to the range of the input's values (removes the filter's overshoot)."""
        black_outside: bool = True
        """Pixels sampled outside the input's data window are black; off: edge pixels repeat."""
        motionblur: float = Field(0.0, ge=0.0)
        """Motion blur quality: 0 off; samples = max(2, ceil(8 * motionblur)) over the shutter."""
        shutter: float = Field(0.5, ge=0.0)
        """Shutter length in frames."""
        shutteroffset: Literal["start", "centred", "end", "custom"] = "centred"
        """Where the shutter opens relative to the frame."""
        shuttercustomoffset: float = 0.0
        """Shutter opening (frames from the frame) for shutteroffset custom."""

    # --- knobs at other frames ------------------------------------------------------------------
    def at_frame(self, frame: float) -> "Node":
        view = super().at_frame(frame)
        if view is not self:
            view._origin = getattr(self, "_origin", self)  # for values at other frames
        return view

    def _source(self) -> "Node":
        return getattr(self, "_origin", self)

    def _knob(self, knob: str, frame: float) -> Any:
        return self._source().value(knob, frame)

    def _solved_knobs(self) -> bool:
        src = self._source()
        defaults = type(self.knobs).model_fields
        return any(knob in src.animated or getattr(src.knobs, knob) != defaults[knob].default
                   for knob in SOLVED_KNOBS)

    def _cell_value(self, cell: Any, frame: float) -> float:
        if isinstance(cell, Curve):
            return cell.evaluate(frame)
        if isinstance(cell, Expression):
            src = self._source()
            return float(cell.evaluate(frame, lambda ref, f: src._lookup(ref, f, None)))
        if isinstance(cell, float):
            return cell
        raise TableError(f"cell {cell!r} is not a number")

    def _tracks(self, frame: float | None = None) -> tuple[Track, ...]:
        try:
            return parse_tracks(self.knobs.tracks)
        except TableError as err:
            raise KnobError(str(err), node=self.path, knob="tracks",
                            frame=None if frame is None else int(frame)) from None

    def params(self, frame: float) -> Params:
        """The match-move parameters at ``frame`` (before smoothing)."""
        if self._solved_knobs():
            tx, ty = self._knob("translate", frame)
            sx, sy = _pair(self._knob("scale", frame))
            cx, cy = self._knob("center", frame)
            return (tx, ty, self._knob("rotate", frame), sx, sy, self._knob("skewX", frame),
                    self._knob("skewY", frame), cx, cy)
        tracks = [t for t in self._tracks(frame) if t.keyed()]
        ref = float(self.knobs.reference_frame)
        rows = []
        try:
            for tr in tracks:
                c = tr.cells
                if "enable" in c and not self._cell_value(c["enable"], frame):
                    continue

                def pos(f: float, c=c) -> tuple[float, float]:
                    ox = self._cell_value(c["offset_x"], f) if _has_value(c.get("offset_x")) else 0.0
                    oy = self._cell_value(c["offset_y"], f) if _has_value(c.get("offset_y")) else 0.0
                    return self._cell_value(c["track_x"], f) + ox, self._cell_value(c["track_y"], f) + oy

                flags = [bool(self._cell_value(c[k], frame)) if _has_value(c.get(k)) else k == "T"
                         for k in ("T", "R", "S")]
                rows.append((pos(ref), pos(frame), *flags))
        except TableError as err:
            raise KnobError(str(err), node=self.path, knob="tracks", frame=int(frame)) from None
        if not rows or not any(r[2] for r in rows):
            warnings.warn(f"{self.path} (Tracker4): no enabled track with keys and T at frame {frame:g}; "
                          "the transform is the identity (nodegraph does not track pixels)", stacklevel=2)
            return (0.0, 0.0, 0.0, 1.0, 1.0, 0.0, 0.0, 0.0, 0.0)
        p = np.array([r[0] for r in rows], float)
        q = np.array([r[1] for r in rows], float)
        flags = np.array([r[2:] for r in rows], bool)
        tx, ty, rot, s, cx, cy = solve_similarity(p, q, flags[:, 0], flags[:, 1], flags[:, 2])
        return (tx, ty, rot, s, s, 0.0, 0.0, cx, cy)

    def _smoothed(self, frame: float, half: dict[int, float]) -> Params:
        """Parameters averaged per group over windows ``frame +- half[group]`` (groups: 0 translate,
        1 rotate, 2 scale; the rest are taken at ``frame``)."""
        base = list(self.params(frame))
        groups = {0: (0, 1), 1: (2,), 2: (3, 4)}
        for g, n in half.items():
            n = int(round(n))
            if n <= 0:
                continue
            window = [self.params(frame + d) for d in range(-n, n + 1)]
            for i in groups[g]:
                base[i] = float(np.mean([w[i] for w in window]))
        return tuple(base)  # type: ignore[return-value]

    def _matrix_of(self, p: Params) -> np.ndarray:
        """The y-up matrix of parameters (the Transform node's own formula)."""
        k = self.knobs
        scratch = Transform("_", translate=(p[0], p[1]), rotate=p[2], scale=(p[3], p[4]), skewX=p[5],
                            skewY=p[6], skew_order=k.skew_order, center=(p[7], p[8]))
        return scratch.nuke_matrix()

    def matrix(self, frame: float) -> np.ndarray:
        """The final y-up matrix applied at ``frame`` (mode, smoothing and invert_matrix included)."""
        k = self.knobs
        if k.transform == "none":
            return np.eye(3)
        smooth = {0: k.smoothT, 1: k.smoothR, 2: k.smoothS}
        m = self._matrix_of(self._smoothed(frame, smooth))
        if k.transform == "match-move":
            out = m
        elif k.transform == "stabilize":
            out = _inverse(m)
        else:
            half = (k.jitter_period - 1) / 2
            slow = self._matrix_of(self._smoothed(frame, {g: max(smooth[g], half) for g in smooth}))
            out = slow @ _inverse(m) if k.transform == "remove jitter" else m @ _inverse(slow)
        return _inverse(out) if k.invert_matrix else out

    def _shutter_frames(self, frame: float) -> list[float]:
        k = self.knobs
        if k.motionblur <= 0 or k.shutter <= 0:
            return [float(frame)]
        n = max(2, math.ceil(8 * k.motionblur))
        start = {"start": 0.0, "centred": -k.shutter / 2, "end": -k.shutter,
                 "custom": k.shuttercustomoffset}[k.shutteroffset]
        return [frame + start + k.shutter * i / (n - 1) for i in range(n)]

    # --- evaluation ------------------------------------------------------------------------------
    def check(self) -> list[str]:
        try:
            parse_tracks(self.knobs.tracks)
        except TableError as err:
            return [f"knob 'tracks': {err}"]
        return []

    def passthrough(self, ctx: Context) -> str | None:
        return "input" if self.knobs.transform == "none" and not self.knobs.invert_matrix else None

    def hash_extra(self, ctx: Context) -> bytes:
        # the transform reads knobs and tracks at other frames: hash the matrices themselves
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            mats = [self.matrix(f) for f in self._shutter_frames(ctx.frame)]
        return np.round(np.stack(mats), 9).tobytes()

    def compute(self, ctx: Context) -> Image:
        img = ctx.input("input")
        k = self.knobs
        if self.passthrough(ctx) is not None:  # transform none: the input, unfiltered
            return img
        f = flip_y(img.format.height)
        outs = []
        for fr in self._shutter_frames(ctx.frame):
            m = f @ self.matrix(fr) @ f
            if abs(np.linalg.det(m[:2, :2])) < 1e-12:
                raise KnobError("the transform has zero area (scale 0?)", node=self.path, frame=ctx.frame)
            outs.append((m, bbox_of(m, img.bbox)))
        box = outs[0][1]
        for _, b in outs[1:]:
            box = box.union(b)
        acc = None
        for m, _ in outs:
            one = apply_affine(img, m, box, img.format, k.filter, k.black_outside).pixels
            acc = one.to(torch.float32 if one.dtype == torch.float16 else one.dtype) if acc is None else acc + one
        pixels = acc / len(outs)
        if k.clamp and img.pixels.numel():
            pixels = pixels.clamp(float(img.pixels.min()), float(img.pixels.max()))
        return Image(pixels.to(img.dtype), img.channels, box, img.format, dict(img.metadata))


def _inverse(m: np.ndarray) -> np.ndarray:
    if abs(np.linalg.det(m[:2, :2])) < 1e-12:
        return np.zeros((3, 3))
    return np.linalg.inv(m)


__all__ = ["Tracker4", "parse_tracks", "solve_similarity"]
