"""Spatial nodes: Crop, Reformat, Transform, and the resampling filters they share.

Coordinates. Nuke's knobs are y-up with the origin at the bottom-left corner of the format;
nodegraph images are y-down (OpenEXR). A point converts as ``y_exr = format.height - y_nuke``, so
a matrix ``A`` written in Nuke's space becomes ``F @ A @ F`` with ``F = (x, H - y)``. Pixel
centres sit at half-integers in both spaces.

Filters are Nuke's (``DD::Image::Filter``): impulse, cubic, keys, simon, rifman, mitchell, parzen,
notch, lanczos4, lanczos6, sinc4. The cubics are Mitchell-Netravali (B, C) splines: cubic (0, 0),
keys (0, 1/2: Catmull-Rom), simon (0, 3/4), rifman (0, 1), mitchell (1/3, 1/3), parzen (1, 0:
cubic B-spline), notch (3/2, -1/4), the values the Nuke-compatible openfx-supportext filters use.
Nuke names lanczos and sinc by full width: lanczos4 has 2 lobes (radius 2), lanczos6 3 lobes
(radius 3, OpenImageIO's "lanczos3", which it also calls "nuke-lanczos6"), sinc4 a sinc truncated
at radius 2 (OpenImageIO's "sinc" at its default width 4). When an axis is minified by ``s < 1``
the kernel is stretched by ``1/s`` so that it low-passes the source (support grows with it);
weights are normalised to sum to one. Impulse takes the source pixel under the sample point.
"""

from __future__ import annotations

import math
from typing import Annotated, Literal

import numpy as np
import torch
from pydantic import BeforeValidator, Field

from nodegraph.animation import BOX
from nodegraph.evaluator import Context
from nodegraph.image import Box, Format, Image
from nodegraph.node import Input, Knobs, Node

from ._common import FormatKnob, WHKnob, XYKnob, format_of

FilterName = Literal["impulse", "cubic", "keys", "simon", "rifman", "mitchell", "parzen", "notch",
                     "lanczos4", "lanczos6", "sinc4"]
#: A filter knob; Nuke's scripts capitalise the names (``Lanczos6``), both spellings are accepted.
FilterKnob = Annotated[FilterName, BeforeValidator(lambda v: v.lower() if isinstance(v, str) else v)]

_BC = {"cubic": (0.0, 0.0), "keys": (0.0, 0.5), "simon": (0.0, 0.75), "rifman": (0.0, 1.0),
       "mitchell": (1 / 3, 1 / 3), "parzen": (1.0, 0.0), "notch": (1.5, -0.25)}


def _bc_cubic(x: torch.Tensor, b: float, c: float) -> torch.Tensor:
    x = x.abs()
    x2, x3 = x * x, x * x * x
    near = ((12 - 9 * b - 6 * c) * x3 + (-18 + 12 * b + 6 * c) * x2 + (6 - 2 * b)) / 6
    far = ((-b - 6 * c) * x3 + (6 * b + 30 * c) * x2 + (-12 * b - 48 * c) * x + (8 * b + 24 * c)) / 6
    return torch.where(x < 1, near, torch.where(x < 2, far, torch.zeros_like(x)))


def _sinc(x: torch.Tensor) -> torch.Tensor:
    return torch.sinc(x)  # sin(pi x) / (pi x)


def filter_radius(name: str) -> float:
    """Support radius of a filter at scale 1, in pixels (0 for impulse)."""
    if name == "impulse":
        return 0.0
    if name == "lanczos6":
        return 3.0
    return 2.0


def filter_weight(name: str, x: torch.Tensor) -> torch.Tensor:
    """The filter's kernel at offsets ``x`` (pixels, scale 1)."""
    if name in _BC:
        return _bc_cubic(x, *_BC[name])
    a = filter_radius(name)
    inside = x.abs() < a
    if name in ("lanczos4", "lanczos6"):
        return torch.where(inside, _sinc(x) * _sinc(x / a), torch.zeros_like(x))
    if name == "sinc4":
        return torch.where(x.abs() <= a, _sinc(x), torch.zeros_like(x))
    raise ValueError(f"no kernel for filter {name!r}")


# --- resampling -------------------------------------------------------------------------------

def _axis_taps(n_out: int, out0: int, scale: float, offset: float, src0: int, src_n: int, filt: str,
               black: bool, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """Source indices and weights ``[n_out, taps]`` for ``x_out = scale * x_src + offset`` on one axis."""
    centre = torch.arange(n_out, device=device, dtype=torch.float64) + (out0 + 0.5)
    u = (centre - offset) / scale  # source position of each output pixel centre (absolute)
    if filt == "impulse":
        idx = torch.floor(u).long()[:, None]
        w = torch.ones(idx.shape, device=device, dtype=torch.float64)
    else:
        stretch = max(1.0, 1.0 / abs(scale))
        support = filter_radius(filt) * stretch
        taps = int(math.ceil(2 * support)) + 2
        start = torch.floor(u - support).long()
        idx = start[:, None] + torch.arange(taps, device=device)[None, :]
        w = filter_weight(filt, (idx.to(torch.float64) + 0.5 - u[:, None]) / stretch)
        total = w.sum(dim=1, keepdim=True)
        w = torch.where(total != 0, w / torch.where(total != 0, total, torch.ones_like(total)), torch.zeros_like(w))
    rel = idx - src0
    outside = (rel < 0) | (rel >= src_n)
    if black:
        w = torch.where(outside, torch.zeros_like(w), w)
    rel = rel.clamp(0, max(src_n - 1, 0))
    return rel, w


def _resample_axis(pixels: torch.Tensor, dim: int, idx: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    """Weighted gather along ``dim`` (1: rows/y, 2: columns/x) of a ``[C, H, W]`` tensor."""
    work = pixels if pixels.dtype in (torch.float32, torch.float64) else pixels.float()
    wt = w.to(work.dtype)
    out = None
    for t in range(idx.shape[1]):
        col = wt[:, t]
        if not bool((col != 0).any()):
            continue
        taken = work.index_select(dim, idx[:, t])
        term = taken * (col.view(1, -1, 1) if dim == 1 else col.view(1, 1, -1))
        out = term if out is None else out + term
    if out is None:
        shape = list(work.shape)
        shape[dim] = idx.shape[0]
        out = torch.zeros(shape, device=work.device, dtype=work.dtype)
    return out.to(pixels.dtype)


def _separable(img: Image, sx: float, tx: float, sy: float, ty: float, out_box: Box, fmt: Format,
               filt: str, black: bool) -> Image:
    src = img.bbox
    dev = img.device
    if src.empty or out_box.empty:
        return Image(torch.zeros((len(img.channels), out_box.height, out_box.width), device=dev, dtype=img.dtype),
                     img.channels, out_box, fmt, dict(img.metadata))
    ix, wx = _axis_taps(out_box.width, out_box.x0, sx, tx, src.x0, src.width, filt, black, dev)
    iy, wy = _axis_taps(out_box.height, out_box.y0, sy, ty, src.y0, src.height, filt, black, dev)
    # resample the axis that shrinks the tensor most first: less work for the second pass
    if out_box.width * src.height <= src.width * out_box.height:
        pix = _resample_axis(_resample_axis(img.pixels, 2, ix, wx), 1, iy, wy)
    else:
        pix = _resample_axis(_resample_axis(img.pixels, 1, iy, wy), 2, ix, wx)
    return Image(pix, img.channels, out_box, fmt, dict(img.metadata))


def _general(img: Image, inv: np.ndarray, out_box: Box, fmt: Format, filt: str, black: bool) -> Image:
    """Any affine map: each output pixel centre maps through ``inv`` to a source point, sampled with
    a 2D separable kernel stretched along the source axes by the map's minification (isotropic per
    axis, as OpenImageIO's warp does)."""
    src = img.bbox
    dev = img.device
    c = len(img.channels)
    if src.empty or out_box.empty or c == 0:  # nothing to sample (reshape(0, -1) is ambiguous)
        return Image(torch.zeros((c, out_box.height, out_box.width), device=dev, dtype=img.dtype),
                     img.channels, out_box, fmt, dict(img.metadata))
    f64 = torch.float64
    ys = torch.arange(out_box.height, device=dev, dtype=f64) + (out_box.y0 + 0.5)
    xs = torch.arange(out_box.width, device=dev, dtype=f64) + (out_box.x0 + 0.5)
    yy, xx = torch.meshgrid(ys, xs, indexing="ij")
    u = (inv[0, 0] * xx + inv[0, 1] * yy + inv[0, 2]).reshape(-1)
    v = (inv[1, 0] * xx + inv[1, 1] * yy + inv[1, 2]).reshape(-1)
    work = img.pixels if img.dtype in (torch.float32, torch.float64) else img.pixels.float()
    flat = work.reshape(c, -1)
    n = u.shape[0]

    def fetch(i: torch.Tensor, j: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        ri, rj = i - src.x0, j - src.y0
        inside = (ri >= 0) & (ri < src.width) & (rj >= 0) & (rj < src.height)
        ri = ri.clamp(0, src.width - 1)
        rj = rj.clamp(0, src.height - 1)
        return flat[:, rj * src.width + ri], inside

    if filt == "impulse":
        vals, inside = fetch(torch.floor(u).long(), torch.floor(v).long())
        if black:
            vals = vals * inside.to(vals.dtype)
        out = vals
    else:
        ds = max(1.0, abs(inv[0, 0]), abs(inv[0, 1]))
        dt = max(1.0, abs(inv[1, 0]), abs(inv[1, 1]))
        rad = filter_radius(filt)
        tx_n, ty_n = int(math.ceil(2 * rad * ds)) + 2, int(math.ceil(2 * rad * dt)) + 2
        i0 = torch.floor(u - rad * ds).long()
        j0 = torch.floor(v - rad * dt).long()
        wxs = [filter_weight(filt, ((i0 + a).to(f64) + 0.5 - u) / ds) for a in range(tx_n)]
        wys = [filter_weight(filt, ((j0 + b).to(f64) + 0.5 - v) / dt) for b in range(ty_n)]
        acc = torch.zeros((c, n), device=dev, dtype=work.dtype)
        total = torch.zeros(n, device=dev, dtype=f64)
        for b in range(ty_n):
            for a in range(tx_n):
                w = wxs[a] * wys[b]
                total += w
                if not bool((w != 0).any()):
                    continue
                vals, inside = fetch(i0 + a, j0 + b)
                if black:
                    w = w * inside.to(f64)
                acc += vals * w.to(work.dtype)
        nz = total != 0
        out = torch.where(nz, acc / torch.where(nz, total, torch.ones_like(total)).to(work.dtype),
                          torch.zeros_like(acc))
    pix = out.reshape(c, out_box.height, out_box.width).to(img.dtype)
    return Image(pix, img.channels, out_box, fmt, dict(img.metadata))


def flip_y(height: float) -> np.ndarray:
    """The involution between Nuke's y-up and nodegraph's y-down coordinates of a format."""
    return np.array([[1.0, 0.0, 0.0], [0.0, -1.0, float(height)], [0.0, 0.0, 1.0]])


def bbox_of(m: np.ndarray, box: Box) -> Box:
    """Integer box covering ``box`` (pixel edges) mapped through the affine ``m``."""
    corners = np.array([[box.x0, box.x0, box.x1, box.x1], [box.y0, box.y1, box.y0, box.y1], [1, 1, 1, 1]], float)
    p = m @ corners
    eps = 1e-9  # integer corners must stay integer after float round-off
    return Box(int(math.floor(p[0].min() + eps)), int(math.floor(p[1].min() + eps)),
               int(math.ceil(p[0].max() - eps)), int(math.ceil(p[1].max() - eps)))


def apply_affine(img: Image, m: np.ndarray, out_box: Box, fmt: Format, filt: str, black: bool) -> Image:
    """Resample ``img`` through the y-down affine map ``m`` (source -> output) over ``out_box``."""
    if abs(np.linalg.det(m[:2, :2])) < 1e-12:
        return Image(torch.zeros((len(img.channels), out_box.height, out_box.width), device=img.device,
                                 dtype=img.dtype), img.channels, out_box, fmt, dict(img.metadata))
    if m[0, 1] == 0 and m[1, 0] == 0:
        return _separable(img, m[0, 0], m[0, 2], m[1, 1], m[1, 2], out_box, fmt, filt, black)
    if m[0, 0] == 0 and m[1, 1] == 0:  # a quarter turn: transpose the pixels, then it is separable
        b = img.bbox
        turned = Image(img.pixels.transpose(1, 2), img.channels, Box(b.y0, b.x0, b.y1, b.x1), img.format,
                       img.metadata)
        swap = np.array([[0.0, 1.0, 0.0], [1.0, 0.0, 0.0], [0.0, 0.0, 1.0]])
        mt = m @ swap
        return _separable(turned, mt[0, 0], mt[0, 2], mt[1, 1], mt[1, 2], out_box, fmt, filt, black)
    return _general(img, np.linalg.inv(m), out_box, fmt, filt, black)


# --- Crop ---------------------------------------------------------------------------------------

#: A box x, y, r, t (Nuke's BBox_Knob: ``box.x``, ``box.y``, ``box.r``, ``box.t`` in expressions).
Box4 = Annotated[tuple[float, float, float, float], BOX]


def _coverage(n: int, start: int, lo: float, hi: float, soft: float, device, dtype) -> torch.Tensor:
    """Per-pixel weight along one axis: pixel area inside [lo, hi], times a smoothstep ramp of
    width ``soft`` running inward from each edge."""
    p0 = torch.arange(n, device=device, dtype=torch.float64) + start
    cov = (torch.minimum(p0 + 1, torch.tensor(hi, dtype=torch.float64, device=device))
           - torch.maximum(p0, torch.tensor(lo, dtype=torch.float64, device=device))).clamp(0, 1)
    if soft > 0:
        centre = p0 + 0.5
        t = (torch.minimum(centre - lo, hi - centre) / soft).clamp(0, 1)
        cov = cov * t * t * (3 - 2 * t)
    return cov.to(dtype)


class Crop(Node):
    """Cuts the image to a box, as Nuke's Crop: the data window becomes the box (intersected with
    the input's when ``intersect``); with ``crop`` on, pixels outside the box are black and
    fractional box edges cover their pixels partially; ``reformat`` makes the box the new format."""

    category = "Transform"
    inputs = (Input("input", doc="Image to crop."),)

    class Knobs(Knobs):
        box: Box4 = (0.0, 0.0, 1920.0, 1080.0)
        """Crop box x, y, r, t in Nuke's y-up pixel coordinates (origin: bottom-left of the format).
        Nuke fills in the input format when the node is made; the default is HD_1080's."""
        softness: float = Field(0.0, ge=0.0)
        """Fade to black over this many pixels inward from the box edges (smoothstep ramp)."""
        reformat: bool = False
        """Make the box the output format: the box's bottom-left corner becomes the origin."""
        intersect: bool = False
        """Intersect the box with the input's data window instead of padding it with black."""
        crop: bool = True
        """Black outside: pixels outside the box are black and box edges antialiased. Off: edge pixels
        keep their full value and softness is not applied (outside the data window is black in
        nodegraph either way; Nuke would repeat the edge pixels there)."""

    def compute(self, ctx: Context) -> Image:
        img = ctx.input("input")
        k = self.knobs
        h = img.format.height
        x, y, r, t = k.box
        lo_x, hi_x = min(x, r), max(x, r)
        lo_yu, hi_yu = min(y, t), max(y, t)
        lo_y, hi_y = h - hi_yu, h - lo_yu  # y-down edges
        box = Box(math.floor(lo_x), math.floor(lo_y), math.ceil(hi_x), math.ceil(hi_y))
        if k.intersect:
            box = box.intersect(img.bbox)
        out = img.crop_to(box)
        if k.crop and not box.empty:
            cx = _coverage(box.width, box.x0, lo_x, hi_x, k.softness, img.device, img.dtype)
            cy = _coverage(box.height, box.y0, lo_y, hi_y, k.softness, img.device, img.dtype)
            if bool((cx != 1).any()) or bool((cy != 1).any()):
                out = out.replace(pixels=out.pixels * cy.view(1, -1, 1) * cx.view(1, 1, -1))
        if k.reformat:
            fx, fy = math.floor(lo_x), math.floor(lo_yu)
            fw, fh = math.ceil(hi_x) - fx, math.ceil(hi_yu) - fy
            shift_y = -(h - math.ceil(hi_yu))  # y-down shift so the box top lands on row 0
            b = out.bbox
            fmt = Format.of_size(max(fw, 1), max(fh, 1), img.format.pixel_aspect)
            out = Image(out.pixels, out.channels, Box(b.x0 - fx, b.y0 + shift_y, b.x1 - fx, b.y1 + shift_y),
                        fmt, dict(out.metadata))
        return out

    def check(self) -> list[str]:
        x, y, r, t = self.knobs.box
        return ["knob 'box': zero area (r == x or t == y)"] if r == x or t == y else []


# --- Reformat -------------------------------------------------------------------------------------

#: One value or two (Reformat's scale and Noise's size: Nuke Array_Knobs without component names).
ScaleKnob = float | tuple[float, float]


def _pair(v: ScaleKnob) -> tuple[float, float]:
    return (float(v), float(v)) if isinstance(v, (int, float)) else (float(v[0]), float(v[1]))


class Reformat(Node):
    """Resizes the image to another format, as Nuke's Reformat: to a named format, to a box, or by
    a scale; ``resize`` says how the input fits the output, ``center`` centres it (else the
    bottom-left corners meet), ``flip``/``flop``/``turn`` reorient it first, ``filter`` resamples."""

    category = "Transform"
    inputs = (Input("input", doc="Image to reformat."),)

    class Knobs(Knobs):
        type: Literal["to format", "to box", "scale"] = "to format"
        """How the output format is chosen: a named format, a box size, or a scale of the input's."""
        format: FormatKnob = "HD_1080"
        """Output format for type 'to format': a Nuke format name or 'WxH [aspect]'."""
        box_width: int = Field(200, gt=0)
        """Output width for type 'to box'."""
        box_height: int = Field(200, gt=0)
        """Output height for type 'to box' when `box_fixed` is on."""
        box_fixed: bool = False
        """'to box': use box_height; off: the height follows the input's aspect ratio."""
        box_pixel_aspect: float = Field(1.0, gt=0)
        """Pixel aspect of the output for type 'to box'."""
        scale: ScaleKnob = 1.0
        """Scale of the input format for type 'scale': one value or (x, y)."""
        resize: Literal["none", "width", "height", "fit", "fill", "distort"] = "width"
        """Fit: none (pixels 1:1), width or height (match that side, keep the aspect), fit (all of the
        input visible), fill (output covered), distort (both sides match)."""
        center: bool = True
        """Centre the input in the output; off: the bottom-left corners coincide."""
        flip: bool = False
        """Mirror upside down (before resizing)."""
        flop: bool = False
        """Mirror left-right (before resizing)."""
        turn: bool = False
        """Turn 90 degrees counter-clockwise (before resizing; swaps width and height)."""
        filter: FilterKnob = "cubic"
        """Resampling filter (Nuke's names); the kernel widens when minifying."""
        black_outside: bool = True
        """Pixels sampled outside the input's data window are black; off: edge pixels repeat."""
        pbb: bool = False
        """Preserve bounding box: keep data outside the output format instead of cutting it."""

    def output_format(self, src: Format) -> Format:
        k = self.knobs
        if k.type == "to format":
            return format_of(self.name, k.format)
        if k.type == "to box":
            w = k.box_width
            if k.box_fixed:
                h = k.box_height
            else:  # keep the input's picture aspect
                iw, ih = (src.height, src.width) if k.turn else (src.width, src.height)
                h = max(1, round(w * k.box_pixel_aspect * ih / (iw * src.pixel_aspect)))
            return Format.of_size(w, h, k.box_pixel_aspect)
        sx, sy = _pair(k.scale)
        return Format.of_size(max(1, round(src.width * sx)), max(1, round(src.height * sy)), src.pixel_aspect)

    def matrix(self, src: Format, dst: Format) -> np.ndarray:
        """The y-down map from input pixel coordinates to output pixel coordinates."""
        k = self.knobs
        w_in, h_in = float(src.width), float(src.height)
        orient = np.eye(3)  # Nuke space (y-up)
        if k.turn:  # counter-clockwise quarter turn, kept in the positive quadrant
            orient = np.array([[0.0, -1.0, h_in], [1.0, 0.0, 0.0], [0.0, 0.0, 1.0]]) @ orient
            w_in, h_in = h_in, w_in
        if k.flip:
            orient = np.array([[1.0, 0.0, 0.0], [0.0, -1.0, h_in], [0.0, 0.0, 1.0]]) @ orient
        if k.flop:
            orient = np.array([[-1.0, 0.0, w_in], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]]) @ orient
        pa_in, pa_out = src.pixel_aspect, dst.pixel_aspect
        w_out, h_out = float(dst.width), float(dst.height)
        s_w = w_out * pa_out / (w_in * pa_in)  # uniform (square-pixel) scale matching the widths
        s_h = h_out / h_in
        mode = k.resize
        if mode == "distort":
            sx, sy = w_out / w_in, h_out / h_in
        elif mode == "none":
            sx = sy = 1.0
        else:
            s = {"width": s_w, "height": s_h, "fit": min(s_w, s_h), "fill": max(s_w, s_h)}[mode]
            sx, sy = s * pa_in / pa_out, s
        if k.center:
            tx, ty = (w_out - sx * w_in) / 2, (h_out - sy * h_in) / 2
        else:
            tx = ty = 0.0
        fit = np.array([[sx, 0.0, tx], [0.0, sy, ty], [0.0, 0.0, 1.0]])
        return flip_y(dst.height) @ fit @ orient @ flip_y(src.height)

    def compute(self, ctx: Context) -> Image:
        img = ctx.input("input")
        k = self.knobs
        dst = self.output_format(img.format)
        m = self.matrix(img.format, dst)
        box = bbox_of(m, img.bbox)
        if not k.pbb:
            box = box.intersect(dst.display)
        return apply_affine(img, m, box, dst, k.filter, k.black_outside)


# --- Transform ------------------------------------------------------------------------------------

class Transform(Node):
    """Translates, rotates, scales and skews the image about ``center``, as Nuke's Transform, in
    Nuke's y-up pixel space: the matrix is T(center + translate) R(rotate) Skew S(scale) T(-center),
    rotation counter-clockwise in degrees. The data window becomes the transformed one."""

    category = "Transform"
    inputs = (Input("input", doc="Image to transform."),)

    class Knobs(Knobs):
        translate: XYKnob = (0.0, 0.0)
        """Translation x, y in pixels (y up)."""
        rotate: float = 0.0
        """Rotation in degrees, counter-clockwise, about `center`."""
        scale: WHKnob = 1.0
        """Scale about `center`: one value or (x, y)."""
        skewX: float = 0.0
        """Horizontal skew: x moves by skewX times y (relative to `center`)."""
        skewY: float = 0.0
        """Vertical skew: y moves by skewY times x (relative to `center`)."""
        skew_order: Literal["XY", "YX"] = "XY"
        """Order of the skews: XY applies skewY first, then skewX (matrix SkewX @ SkewY)."""
        center: XYKnob = (0.0, 0.0)
        """Centre of rotation, scale and skew (y-up pixels). Nuke fills in the centre of the format
        when the node is made; here it must be given (default: the origin)."""
        invert_matrix: bool = False
        """Apply the inverse of the transform."""
        filter: FilterKnob = "cubic"
        """Resampling filter (Nuke's names); the kernel widens along axes that are minified."""
        black_outside: bool = True
        """Pixels sampled outside the input's data window are black; off: edge pixels repeat."""

    def nuke_matrix(self) -> np.ndarray:
        """The forward matrix in Nuke's y-up pixel space."""
        k = self.knobs
        cx, cy = k.center
        tx, ty = k.translate
        sx, sy = _pair(k.scale)
        a = math.radians(k.rotate)
        c, s = math.cos(a), math.sin(a)

        def t(x: float, y: float) -> np.ndarray:
            return np.array([[1.0, 0.0, x], [0.0, 1.0, y], [0.0, 0.0, 1.0]])

        rot = np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])
        kx = np.array([[1.0, k.skewX, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]])
        ky = np.array([[1.0, 0.0, 0.0], [k.skewY, 1.0, 0.0], [0.0, 0.0, 1.0]])
        skew = kx @ ky if k.skew_order == "XY" else ky @ kx
        m = t(cx + tx, cy + ty) @ rot @ skew @ np.diag([sx, sy, 1.0]) @ t(-cx, -cy)
        if k.invert_matrix:
            if abs(np.linalg.det(m[:2, :2])) < 1e-12:
                return np.zeros((3, 3))
            m = np.linalg.inv(m)
        return m

    def compute(self, ctx: Context) -> Image:
        img = ctx.input("input")
        k = self.knobs
        f = flip_y(img.format.height)
        m = f @ self.nuke_matrix() @ f
        if abs(np.linalg.det(m[:2, :2])) < 1e-12:  # scale 0: nothing left
            box = Box(0, 0, 0, 0)
            return Image(img.pixels[:, :0, :0], img.channels, box, img.format, dict(img.metadata))
        return apply_affine(img, m, bbox_of(m, img.bbox), img.format, k.filter, k.black_outside)


__all__ = ["Crop", "Reformat", "Transform", "apply_affine", "bbox_of", "filter_weight", "filter_radius",
           "flip_y"]
