"""Warps that move each pixel on its own: STMap, IDistort and CornerPin2D, as Nuke's nodes.

Each output pixel centre maps to a source position, and the source is sampled there with one of
Nuke's filters (:mod:`.transform`): the separable kernel at scale 1 over the taps around the
position, weights normalised to sum to one; impulse takes the pixel under the position. Where a
tap falls outside the source's data window it reads black (its weight still counts, so edges
fade), or with ``black_outside`` off the nearest edge pixel.

Where the map minifies, the kernel widens along each source axis by the map's local rate of
change (``max(1, |du/dx|, |du/dy|)`` for u, likewise v, from central differences of the sample
positions; at most 4, which bounds the taps at 16 a side), as Transform's affine path and OpenImageIO's warp do, so a pin that
shrinks a plate low-passes it instead of aliasing. nodegraph's choices where Foundry's docs are
silent: that width rule; blur channels (``blur``, ``blur_scale``) and ``premultiplied`` are not
offered.
"""

from __future__ import annotations

import math
from typing import Annotated

import numpy as np
import torch
from pydantic import AfterValidator

from nodegraph import channels as chans
from nodegraph.errors import ChannelError, KnobError
from nodegraph.evaluator import Context
from nodegraph.image import Box, Image
from nodegraph.node import Input, Knobs, Node

from ._common import ChannelsKnob, WHKnob, XYKnob
from .blend import mask_plane
from .channel_ops import present
from .copy import ChannelOrNone
from .shuffle import assemble
from .transform import FilterKnob, filter_radius, filter_weight, flip_y

T = torch.Tensor


#: The widest a kernel grows where a warp minifies (a seam in a map would blur without bound).
MAX_STRETCH = 4.0


def stretch_of(u: T, v: T) -> tuple[T, T]:
    """Per-pixel kernel widths along the source axes for sample positions ``u, v`` ``[H, W]``:
    ``max(1, |du/dx|, |du/dy|)`` and the same for v, by central differences, at most MAX_STRETCH."""
    def rate(p: T) -> T:
        out = torch.zeros_like(p)
        for dim in (0, 1):
            if p.shape[dim] > 1:
                out = torch.maximum(out, torch.gradient(p, dim=dim)[0].abs())
        return out.nan_to_num(nan=MAX_STRETCH, posinf=MAX_STRETCH).clamp(1.0, MAX_STRETCH)
    return rate(u), rate(v)


def sample(img: Image, u: T, v: T, filt: str, black: bool = True, stretch: tuple[T, T] | None = None) -> T:
    """``img``'s pixels at source positions ``u, v`` (y-down pixel coordinates of the format, pixel
    centres at half-integers; float64 ``[H, W]``): ``[C, H, W]`` in float32 (float64 stays).
    ``stretch``: per-pixel kernel widths along u and v (:func:`stretch_of`; default 1)."""
    src = img.bbox
    c = len(img.channels)
    shape = tuple(u.shape)
    work = img.pixels if img.dtype == torch.float64 else img.pixels.float()
    if c == 0 or src.empty or u.numel() == 0:
        return torch.zeros((c, *shape), device=u.device, dtype=work.dtype)
    flat = work.reshape(c, -1)
    u, v = u.reshape(-1), v.reshape(-1)
    su, sv = (None, None) if stretch is None else (stretch[0].reshape(-1), stretch[1].reshape(-1))

    def taps(pos: T, scale: T | None, lo: int, n: int) -> tuple[list[T], list[T], list[T]]:
        """Per tap: index into the window (clamped), weight, and whether it is inside."""
        if filt == "impulse":
            idx = [torch.floor(pos).long()]
            weights = [torch.ones_like(pos)]
        else:
            widest = 1.0 if scale is None else float(scale.max())
            reach = int(math.ceil(filter_radius(filt) * widest - 1e-6))
            first = torch.floor(pos - 0.5).long() - (reach - 1)
            idx = [first + k for k in range(2 * reach)]
            weights = [filter_weight(filt, (i.to(pos.dtype) + 0.5 - pos) if scale is None
                                     else (i.to(pos.dtype) + 0.5 - pos) / scale) for i in idx]
        rel = [i - lo for i in idx]
        inside = [(r >= 0) & (r < n) for r in rel]
        return [r.clamp(0, n - 1) for r in rel], weights, inside

    ix, wx, in_x = taps(u, su, src.x0, src.width)
    iy, wy, in_y = taps(v, sv, src.y0, src.height)
    acc = torch.zeros((c, u.shape[0]), device=u.device, dtype=work.dtype)
    total = torch.zeros_like(u)
    for j, w_row, ok_row in zip(iy, wy, in_y):
        for i, w_col, ok_col in zip(ix, wx, in_x):
            w = w_row * w_col
            total += w
            if black:
                w = w * (ok_row & ok_col).to(w.dtype)
            acc += flat[:, j * src.width + i] * w.to(work.dtype)
    nz = total != 0
    out = torch.where(nz, acc / torch.where(nz, total, torch.ones_like(total)).to(work.dtype),
                      torch.zeros_like(acc))
    return out.reshape(c, *shape)


def _centres(box: Box, device: torch.device) -> tuple[T, T]:
    """y-down pixel-centre coordinates ``(x, y)`` of ``box``, float64 ``[H, W]``."""
    ys = torch.arange(box.height, device=device, dtype=torch.float64) + (box.y0 + 0.5)
    xs = torch.arange(box.width, device=device, dtype=torch.float64) + (box.x0 + 0.5)
    yy, xx = torch.meshgrid(ys, xs, indexing="ij")
    return xx, yy


def _warped(src: Image, spec: str, u: T, v: T, box: Box, filt: str, black: bool, mask: T | None) -> Image:
    """``src``'s channels in ``spec`` sampled at ``u, v`` over ``box`` (the others cropped to it),
    blended with the unwarped source by ``mask`` where one is given."""
    base = src.crop_to(box)
    names = present(spec, src.channels)
    if not names:
        return base
    picked = Image(src.pixels[[src.channels.index(n) for n in names]], names, src.bbox, src.format)
    moved = sample(picked, u, v, filt, black, stretch_of(u, v))
    planes = {}
    for k, name in enumerate(names):
        plane = moved[k]
        if mask is not None:
            still = base.channel(name).to(plane.dtype)
            plane = still + (plane - still) * mask.to(plane.dtype)
        planes[name] = plane
    return assemble(base, planes)


def _uv_channels(spec: str, img: Image, node: str) -> tuple[str | None, str | None]:
    """The u and v channels a ``uv`` knob names in ``img`` (a layer's first two channels; a single
    channel gives u only)."""
    try:
        names = chans.expand(spec, img.channels)
    except ChannelError as err:
        raise KnobError(err.message, node=node, knob="uv") from None
    names = tuple(names) + (None, None)
    return names[0], names[1]


def _plane(img: Image, name: str | None, box: Box) -> T:
    if name is None or name not in img.channels:
        return torch.zeros((box.height, box.width), device=img.device, dtype=torch.float64)
    return img.crop_to(box).channel(name).to(torch.float64)


UVKnob = Annotated[str, AfterValidator(lambda v: "none" if v.strip().startswith("-") else v.strip() or "none")]


class _Warp(Node, abstract=True):
    def _mask(self, ctx: Context, box: Box, device: torch.device) -> T | None:
        if not ctx.has_input("mask"):
            return None
        return mask_plane(ctx, self.knobs.maskChannel, self.knobs.invert_mask, box, device)


class STMap(_Warp):
    """Nuke's STMap: each output pixel takes the source pixel its ``uv`` channels point at, as
    fractions of the source format with 0, 0 its bottom-left corner and 1, 1 its top-right:
    ``src(u * width, v * height)`` in Nuke's y-up pixels (``height - v * height`` y-down).

    nodegraph's choices where the docs are silent: the output has the stmap input's data window
    and format and the source's channels (those outside ``channels`` are copied unwarped); a
    ``uv`` naming one channel uses it for u with v = 0; ``uv`` none passes the source through; a
    mask blends the warped result with the unwarped source at the same pixel.
    """

    category = "Transform"
    inputs = (
        Input("src", doc="Input 0: the image that is warped."),
        Input("stmap", doc="Input 1: the map whose uv channels say where each pixel comes from."),
        Input("mask", required=False, doc="Where the warp applies (see maskChannel)."),
    )

    class Knobs(Knobs):
        channels: ChannelsKnob = "all"
        """Channels of src that are warped."""
        uv: UVKnob = "none"
        """Channels of the stmap input holding u and v (a layer: its first two channels; none: no warp)."""
        filter: FilterKnob = "cubic"
        """Resampling filter (Nuke's names)."""
        maskChannel: ChannelOrNone = "none"
        """Channel of the mask input limiting the warp (none: no mask)."""
        invert_mask: bool = False
        """Use one minus the mask channel."""

    def needs(self, ctx: Context):
        wanted = ["src"] if self.knobs.uv == "none" else [n for n in ctx.connected]
        return [(n, ctx.frame) for n in wanted if n in ctx.connected]

    def compute(self, ctx: Context) -> Image:
        k = self.knobs
        src = ctx.input("src")
        if k.uv == "none":
            return src
        stmap = ctx.input("stmap").to(src.device)
        u_name, v_name = _uv_channels(k.uv, stmap, self.path)
        box = stmap.bbox
        fmt = src.format
        u = _plane(stmap, u_name, box) * fmt.width
        v = (1.0 - _plane(stmap, v_name, box)) * fmt.height
        out = _warped(src, k.channels, u, v, box, k.filter, True, self._mask(ctx, box, src.device))
        return out.replace(format=stmap.format).to(dtype=src.dtype)


class IDistort(_Warp):
    """Nuke's IDistort: each pixel takes the input pixel its ``uv`` channels offset it to, in
    pixels: from ``(x + (u - uv_offset) * uv_scale_x, y + (v - uv_offset) * uv_scale_y)`` in Nuke's
    y-up pixels (pixel 51, 23 with u, v = -1, 5 comes from 50, 28).

    nodegraph's choices where the docs are silent: the data window stays the input's; channels
    outside ``channels`` pass unwarped; a mask blends the warped result with the input.
    """

    category = "Transform"
    inputs = (
        Input("input", doc="The image to warp, with the uv channels."),
        Input("mask", required=False, doc="Where the warp applies (see maskChannel)."),
    )

    class Knobs(Knobs):
        channels: ChannelsKnob = "all"
        """Channels that are warped."""
        uv: UVKnob = "none"
        """Channels holding the u and v offsets in pixels (none: no warp)."""
        uv_offset: float = 0.0
        """Subtracted from u and v first (a centre for renderers that cannot write negatives)."""
        uv_scale: WHKnob = 1.0
        """Multiplies u and v (one value or w, h)."""
        filter: FilterKnob = "cubic"
        """Resampling filter (Nuke's names)."""
        maskChannel: ChannelOrNone = "none"
        """Channel of the mask input limiting the warp (none: no mask)."""
        invert_mask: bool = False
        """Use one minus the mask channel."""

    def compute(self, ctx: Context) -> Image:
        k = self.knobs
        img = ctx.input("input")
        if k.uv == "none":
            return img
        u_name, v_name = _uv_channels(k.uv, img, self.path)
        box = img.bbox
        sx, sy = (k.uv_scale, k.uv_scale) if isinstance(k.uv_scale, (int, float)) else k.uv_scale
        xx, yy = _centres(box, img.device)
        u = xx + (_plane(img, u_name, box) - k.uv_offset) * sx
        v = yy - (_plane(img, v_name, box) - k.uv_offset) * sy  # y-up offsets, y-down rows
        out = _warped(img, k.channels, u, v, box, k.filter, True, self._mask(ctx, box, img.device))
        return out.to(dtype=img.dtype)


# --- CornerPin2D ----------------------------------------------------------------------------------

Point = XYKnob


def pin_matrix(src: list[Point], dst: list[Point]) -> np.ndarray:
    """The 3x3 map taking the points ``src`` to ``dst``: a translation for one pair, a similarity
    (rotation, uniform scale, translation) for two, an affine map for three, a homography for
    four; the identity for none or when the points are degenerate."""
    n = len(src)
    s = np.asarray(src, float).reshape(n, 2)
    d = np.asarray(dst, float).reshape(n, 2)
    eye = np.eye(3)
    if n == 0:
        return eye
    if n == 1:
        return np.array([[1.0, 0.0, d[0, 0] - s[0, 0]], [0.0, 1.0, d[0, 1] - s[0, 1]], [0.0, 0.0, 1.0]])
    if n == 2:
        a = complex(*(s[1] - s[0]))
        if a == 0:
            return pin_matrix(src[:1], dst[:1])
        z = complex(*(d[1] - d[0])) / a  # rotation and scale as one complex factor
        m = np.array([[z.real, -z.imag, 0.0], [z.imag, z.real, 0.0], [0.0, 0.0, 1.0]])
        m[:2, 2] = d[0] - m[:2, :2] @ s[0]
        return m
    rows, rhs = [], []
    for (x, y), (X, Y) in zip(s, d):
        if n == 3:
            rows += [[x, y, 1, 0, 0, 0], [0, 0, 0, x, y, 1]]
        else:
            rows += [[x, y, 1, 0, 0, 0, -X * x, -X * y], [0, 0, 0, x, y, 1, -Y * x, -Y * y]]
        rhs += [X, Y]
    a = np.array(rows, float)
    if abs(np.linalg.det(a)) < 1e-12 * max(1.0, np.abs(a).max()) ** a.shape[0]:
        return eye
    p = np.linalg.solve(a, np.array(rhs, float))
    return np.array([[p[0], p[1], p[2]], [p[3], p[4], p[5]], [0.0, 0.0, 1.0] if n == 3 else [p[6], p[7], 1.0]])


class CornerPin2D(Node):
    """Nuke's CornerPin2D: moves the corners ``from1..from4`` of the input to ``to1..to4`` (Nuke's
    y-up pixels; 1 bottom-left, 2 bottom-right, 3 top-right, 4 top-left by Nuke's convention) by
    the homography between the two quadrilaterals; with fewer corners enabled, the map is the
    affine (3), similarity (2) or translation (1) through the enabled ones; ``invert`` applies the
    inverse. Output pixel ``p`` takes the input at ``M^-1 p``.

    nodegraph's choices where the docs are silent: Nuke fills the corners from the input format
    when the node is made, the defaults here are HD_1080's; the data window is the input's mapped
    through the pin (corners behind the camera of a perspective pin give the format), kept within
    the format grown by its size on each side; motion blur, the extra matrix and ``clamp`` are not offered.
    """

    category = "Transform"
    inputs = (Input("input", doc="The image to pin."),)

    class Knobs(Knobs):
        to1: Point = (0.0, 0.0)
        """Where corner 1 goes (x, y, y up)."""
        to2: Point = (1920.0, 0.0)
        """Where corner 2 goes."""
        to3: Point = (1920.0, 1080.0)
        """Where corner 3 goes."""
        to4: Point = (0.0, 1080.0)
        """Where corner 4 goes."""
        enable1: bool = True
        """Use corner 1."""
        enable2: bool = True
        """Use corner 2."""
        enable3: bool = True
        """Use corner 3."""
        enable4: bool = True
        """Use corner 4."""
        from1: Point = (0.0, 0.0)
        """Corner 1 of the input (x, y, y up)."""
        from2: Point = (1920.0, 0.0)
        """Corner 2 of the input."""
        from3: Point = (1920.0, 1080.0)
        """Corner 3 of the input."""
        from4: Point = (0.0, 1080.0)
        """Corner 4 of the input."""
        invert: bool = False
        """Apply the inverse map (to -> from)."""
        filter: FilterKnob = "cubic"
        """Resampling filter (Nuke's names)."""
        black_outside: bool = True
        """Outside the input's data window is black; off: edge pixels repeat."""

    def nuke_matrix(self) -> np.ndarray:
        """The forward map in Nuke's y-up pixel space."""
        k = self.knobs
        on = [i for i in (1, 2, 3, 4) if getattr(k, f"enable{i}")]
        m = pin_matrix([getattr(k, f"from{i}") for i in on], [getattr(k, f"to{i}") for i in on])
        if k.invert:
            m = np.linalg.inv(m) if abs(np.linalg.det(m)) > 1e-12 else np.zeros((3, 3))
        return m

    def compute(self, ctx: Context) -> Image:
        img = ctx.input("input")
        k = self.knobs
        fmt = img.format
        f = flip_y(fmt.height)
        m = f @ self.nuke_matrix() @ f
        c = len(img.channels)
        grown = Box(-fmt.width, -fmt.height, 2 * fmt.width, 2 * fmt.height)
        if abs(np.linalg.det(m)) < 1e-12 or img.bbox.empty:
            return Image(torch.zeros((c, 0, 0), device=img.device, dtype=img.dtype), img.channels,
                         Box(0, 0, 0, 0), fmt, dict(img.metadata))
        b = img.bbox
        corners = m @ np.array([[b.x0, b.x1, b.x1, b.x0], [b.y0, b.y0, b.y1, b.y1], [1, 1, 1, 1]], float)
        if (corners[2] <= 1e-9).any():
            box = fmt.display
        else:
            p = corners[:2] / corners[2]
            box = Box(math.floor(p[0].min() + 1e-9), math.floor(p[1].min() + 1e-9),
                      math.ceil(p[0].max() - 1e-9), math.ceil(p[1].max() - 1e-9))
        box = box.intersect(grown)
        inv = np.linalg.inv(m)
        xx, yy = _centres(box, img.device)
        w = inv[2, 0] * xx + inv[2, 1] * yy + inv[2, 2]
        w = torch.where(w.abs() < 1e-12, torch.full_like(w, 1e-12), w)
        u = (inv[0, 0] * xx + inv[0, 1] * yy + inv[0, 2]) / w
        v = (inv[1, 0] * xx + inv[1, 1] * yy + inv[1, 2]) / w
        behind = w <= 0  # points mapping from behind the pin's horizon read black
        su, sv = stretch_of(u, v)
        one = torch.ones_like(su)
        stretch = (torch.where(behind, one, su), torch.where(behind, one, sv))
        u = torch.where(behind, torch.full_like(u, -1e9), u)
        pix = sample(img, u, v, k.filter, k.black_outside, stretch)
        if not k.black_outside:
            pix = pix * (~behind).to(pix.dtype)
        return Image(pix.to(img.dtype), img.channels, box, fmt, dict(img.metadata))


__all__ = ["CornerPin2D", "IDistort", "STMap", "pin_matrix", "sample", "stretch_of"]
