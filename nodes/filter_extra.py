"""More of Nuke's filter and layout nodes: Matrix (convolution), Dilate (Erode (fast)), Median,
Sharpen, Mirror, Mirror2, BlackOutside.

Outside its data window an image is black (nodegraph's rule), so a convolution reads black there
and its data window grows by the kernel's reach; Mirror flips pixels exactly (no resampling)
about the format's centre.
"""

from __future__ import annotations

import math
from typing import Annotated, Union

import torch
import torch.nn.functional as F
from pydantic import Field

from nodegraph.animation import WH
from nodegraph.evaluator import Context
from nodegraph.image import Box, Image
from nodegraph.node import Input, Knobs, Node

from ._common import ChannelsKnob, mask_weight, select_channels
from .color import _MASK_INPUT, _blend, _MaskKnobs, _work_dtype
from .filter import BlurFilter, SizeKnob, _conv_axis, blur_kernel

#: Largest ``width`` / ``height`` of a Matrix (the matrix knob takes any w x h up to it).
MAX_MATRIX_SIDE = 15
_SIZES = sorted({w * h for w in range(1, MAX_MATRIX_SIDE + 1) for h in range(1, MAX_MATRIX_SIDE + 1)})
#: A flat tuple of w x h numbers (fixed lengths, so each entry can hold a curve or an expression).
MatrixValues = Union[tuple(tuple[(float,) * n] for n in _SIZES)]  # type: ignore[misc]
MatrixSide = Annotated[int, Field(ge=1, le=MAX_MATRIX_SIDE)]


def kernel_of(values: tuple[float, ...], width: int, height: int, normalize: bool) -> torch.Tensor:
    """The ``height x width`` float64 kernel, top row first: the first ``width x height`` values row
    by row, missing ones 0; divided by its sum when ``normalize`` and the sum is not 0."""
    flat = torch.zeros(width * height, dtype=torch.float64)
    n = min(len(values), width * height)
    flat[:n] = torch.tensor(values[:n], dtype=torch.float64)
    k = flat.reshape(height, width)
    if normalize and k.sum() != 0:
        k = k / k.sum()
    return k


def _planes(img: Image, names: list[str], box: Box, dtype: torch.dtype) -> torch.Tensor:
    """The channels ``names`` of ``img`` over ``box`` (black outside its data window), in ``dtype``."""
    src = Image(img.pixels[[img.index(n) for n in names]], tuple(names), img.bbox, img.format)
    return src.crop_to(box).pixels.to(dtype)


def _apply_planes(ctx: Context, knobs, img: Image, names: list[str], out_box: Box, planes: torch.Tensor) -> Image:
    """``img`` re-windowed to ``out_box`` with the channels ``names`` replaced by ``planes``, mixed
    with the re-windowed input by ``mix`` times the mask (Nuke's mask knobs in ``knobs``)."""
    weight = mask_weight(ctx, knobs, out_box, device=img.device, dtype=planes.dtype)
    base = img.crop_to(out_box)
    pixels = base.pixels.clone()
    idx = [img.index(n) for n in names]
    before = pixels[idx].to(planes.dtype)
    pixels[idx] = _blend(before, planes, weight).to(pixels.dtype)
    return base.replace(pixels=pixels)


class Matrix(Node):
    """Nuke's Matrix: convolves the chosen channels with a user matrix of ``width`` x ``height``.

    out(x, y) = sum over the matrix of m[i][j] in(x + j - cx, y + i - cy), with row i = 0 the top
    row as typed (and as a .nk script lists it) over the pixels above, cx = width // 2 and
    cy = height // 2 (an even size shifts by half a pixel, as in Nuke): the matrix is laid over the
    image as it reads, not mirrored. ``normalize`` divides it by its sum (unless that is 0).
    ``matrix`` holds width x height numbers row by row; when width or height change without it,
    missing entries read 0 and extra ones are ignored. The data window grows by the matrix's reach
    (black outside the input's); nothing is clamped (Foundry's note that results are clipped to
    0-1 is about 8-bit viewing)."""

    category = "Filter"
    inputs = (Input("input", doc="Image to convolve."), _MASK_INPUT)

    class Knobs(_MaskKnobs):
        channels: ChannelsKnob = "all"
        """Channels to convolve; others pass through (black-padded to the new data window)."""
        width: MatrixSide = 3
        """Columns of the matrix (1 to 15)."""
        height: MatrixSide = 3
        """Rows of the matrix (1 to 15)."""
        matrix: MatrixValues = (0.0,) * 9
        """width x height weights row by row, the top row first (Nuke's default: all 0)."""
        normalize: bool = False
        """Divide the matrix by the sum of its entries (when that is not 0), keeping brightness."""

    def compute(self, ctx: Context) -> Image:
        img = ctx.input("input")
        k = self.knobs
        names = [n for n in select_channels(k.channels, img, self.name) if n in img.channels]
        if not names or img.bbox.empty:
            return img
        w, h = k.width, k.height
        cx, cy = w // 2, h // 2
        b = img.bbox
        out_box = Box(b.x0 - (w - 1 - cx), b.y0 - (h - 1 - cy), b.x1 + cx, b.y1 + cy)
        work = _work_dtype(img.dtype)
        padded = _planes(img, names, Box(out_box.x0 - cx, out_box.y0 - cy, out_box.x1 + (w - 1 - cx),
                                         out_box.y1 + (h - 1 - cy)), work)
        kernel = kernel_of(k.matrix, w, h, k.normalize).to(device=img.device, dtype=work)
        out = F.conv2d(padded[:, None], kernel[None, None])[:, 0]  # cross-correlation: not mirrored
        return _apply_planes(ctx, k, img, names, out_box, out)


# --- Dilate (Erode (fast)) and Median --------------------------------------------------------------

#: A size in pixels, one value or (x, y); Dilate's may be negative (erode).
SignedSize = Annotated[float | tuple[float, float], WH]


def _pair(v: SignedSize) -> tuple[float, float]:
    return (float(v), float(v)) if isinstance(v, (int, float)) else (float(v[0]), float(v[1]))


def _pool_axis(x: torch.Tensor, k: int, dim: int, is_max: bool) -> torch.Tensor:
    """Valid running max (or min) over windows of 2k + 1 along ``dim`` (1 or 2) of ``[C, H, W]``."""
    if k == 0:
        return x
    t = x.movedim(dim, -1)
    shape = t.shape
    flat = t.reshape(-1, 1, shape[-1])
    pooled = F.max_pool1d(flat if is_max else -flat, 2 * k + 1, stride=1)
    pooled = pooled if is_max else -pooled
    return pooled.reshape(*shape[:-1], pooled.shape[-1]).movedim(-1, dim)


def dilate_radius(size: float) -> int:
    """Whole pixels of a Dilate ``size``: |size| rounded to the nearest integer (halves up)."""
    return int(math.floor(abs(size) + 0.5))


def _minmax_axis(x: torch.Tensor, size: float, reach: int, dim: int) -> torch.Tensor:
    """Dilate (size > 0) or erode (size < 0) along ``dim``: the max (min) over 2n + 1 pixels,
    n = :func:`dilate_radius`; ``x`` carries ``reach`` extra pixels on both sides, which the result
    drops."""
    n = dilate_radius(size)
    return _pool_axis(x, n, dim, size > 0).narrow(dim, reach - n, x.shape[dim] - 2 * reach)


class Dilate(Node):
    """Nuke's Erode (fast) (script class ``Dilate``): a box min/max filter.

    Along each axis, a positive ``size`` s takes the maximum over the 2n + 1 pixels centred on each
    pixel (bright areas grow), a negative one the minimum (dark areas grow). Erode (fast) works in
    whole pixels only (an animated size jumps from one to the next); n is |s| rounded to the
    nearest integer, halves up (the rounding is not documented). x first, then y; the axes may
    differ in sign. Outside the data window is black, so growing reads black there; a dilating
    axis grows the data window by n."""

    category = "Filter"
    inputs = (Input("input", doc="Image or matte to dilate or erode."), _MASK_INPUT)

    class Knobs(_MaskKnobs):
        channels: ChannelsKnob = "all"
        """Channels to filter; others pass through (black-padded to a grown data window)."""
        size: SignedSize = 0.0
        """Pixels, one value or (x, y): positive dilates (max), negative erodes (min); whole pixels (rounded)."""

    def compute(self, ctx: Context) -> Image:
        img = ctx.input("input")
        k = self.knobs
        sx, sy = _pair(k.size)
        names = [n for n in select_channels(k.channels, img, self.name) if n in img.channels]
        rx, ry = dilate_radius(sx), dilate_radius(sy)
        if not names or img.bbox.empty or (rx == 0 and ry == 0):
            return img
        gx, gy = (rx if sx > 0 else 0), (ry if sy > 0 else 0)
        b = img.bbox
        out_box = Box(b.x0 - gx, b.y0 - gy, b.x1 + gx, b.y1 + gy)
        x = _planes(img, names, Box(out_box.x0 - rx, out_box.y0 - ry, out_box.x1 + rx, out_box.y1 + ry),
                    _work_dtype(img.dtype))
        out = _minmax_axis(_minmax_axis(x, sx, rx, 2), sy, ry, 1)
        return _apply_planes(ctx, k, img, names, out_box, out)


def median_window(size: float) -> int:
    """Median's window width for a ``size``: 2 floor(size / 2) + 1 (odd, centred; 3 gives 3)."""
    return 2 * int(math.floor(max(size, 0.0) / 2)) + 1


class Median(Node):
    """Nuke's Median: each pixel becomes the median of the window around it, per channel.

    The window is 2 floor(size / 2) + 1 pixels per axis (3 by default: 3x3; below 2, one pixel: no
    change), centred; outside the data window is black (nodegraph's rule), so pixels near its edge
    count black neighbours. The data window is unchanged. ``ignore_top_line`` is accepted and has no effect here (Nuke's
    documentation does not say what it changes)."""

    category = "Filter"
    inputs = (Input("input", doc="Image to filter."), _MASK_INPUT)

    class Knobs(_MaskKnobs):
        channels: ChannelsKnob = "all"
        """Channels to filter; others pass through."""
        size: SignedSize = 3.0
        """Window size in pixels, one value or (x, y): the window is 2 floor(size / 2) + 1 wide."""
        ignore_top_line: bool = True
        """Nuke's knob, accepted; it changes nothing here."""

    def compute(self, ctx: Context) -> Image:
        img = ctx.input("input")
        k = self.knobs
        sx, sy = _pair(k.size)
        kw, kh = median_window(sx), median_window(sy)
        names = [n for n in select_channels(k.channels, img, self.name) if n in img.channels]
        if not names or img.bbox.empty or (kw == 1 and kh == 1):
            return img
        b = img.bbox
        rx, ry = kw // 2, kh // 2
        x = _planes(img, names, Box(b.x0 - rx, b.y0 - ry, b.x1 + rx, b.y1 + ry), _work_dtype(img.dtype))
        windows = x.unfold(1, kh, 1).unfold(2, kw, 1)  # [C, H, W, kh, kw]
        out = windows.reshape(*windows.shape[:3], -1).median(dim=-1).values
        return _apply_planes(ctx, k, img, names, b, out)


class Sharpen(Node):
    """Nuke's Sharpen: an unsharp mask, out = x + amount (x - blur(x)).

    blur is Blur's filter of ``size`` pixels (same kernels: gaussian sigma = size / 2.4, box,
    triangle, quadratic). Outside the data window is black, so the result spreads (a dark halo
    beyond the edge) over the data window grown by the filter radius, clipped to the format with
    ``crop`` on (as Blur). ``minimum`` and ``maximum`` are Nuke's knobs, kept with the node but not
    applied (Foundry's documentation does not say how they limit the result); ``quality`` is
    ignored as in Blur."""

    category = "Filter"
    inputs = (Input("input", doc="Image to sharpen."), _MASK_INPUT)

    class Knobs(_MaskKnobs):
        channels: ChannelsKnob = "rgb"
        """Channels to sharpen; others pass through (black-padded to the grown data window)."""
        amount: float = 1.0
        """Strength: the blurred-away detail x - blur(x) is added this many times."""
        size: SizeKnob = 3.0
        """Size of the blur that separates the detail, one value or (x, y), in pixels."""
        filter: BlurFilter = "gaussian"
        """Blur kernel: box, triangle, quadratic or gaussian."""
        minimum: float = 0.0
        """Nuke's lower limit knob; kept, not applied (see the node's documentation)."""
        maximum: float = 1.0
        """Nuke's upper limit knob; kept, not applied (see the node's documentation)."""
        quality: int = Field(15, ge=0)
        """Nuke's speed/quality trade-off for large sizes; ignored: always full quality."""
        crop: bool = True
        """Clip the grown data window to the format."""

    def compute(self, ctx: Context) -> Image:
        img = ctx.input("input")
        k = self.knobs
        sx, sy = _pair(k.size)
        kx, ky = blur_kernel(k.filter, sx), blur_kernel(k.filter, sy)
        rx, ry = kx.numel() // 2, ky.numel() // 2
        names = [n for n in select_channels(k.channels, img, self.name) if n in img.channels]
        if not names or img.bbox.empty:
            return img
        b = img.bbox
        out_box = Box(b.x0 - rx, b.y0 - ry, b.x1 + rx, b.y1 + ry)
        if k.crop:
            out_box = out_box.intersect(img.format.display)
        if out_box.empty:
            return img.crop_to(out_box)
        padded = _planes(img, names, Box(out_box.x0 - rx, out_box.y0 - ry, out_box.x1 + rx, out_box.y1 + ry),
                         _work_dtype(img.dtype))
        blurred = _conv_axis(_conv_axis(padded, kx, 2), ky, 1)
        x = padded[:, ry:ry + out_box.height, rx:rx + out_box.width]
        return _apply_planes(ctx, k, img, names, out_box, x + (x - blurred) * k.amount)


def mirror(img: Image, horizontal: bool, vertical: bool) -> Image:
    """``img`` flipped left-right (``horizontal``) and/or top-bottom (``vertical``) about the
    centre of its format's display window; the data window is mirrored with it."""
    if not horizontal and not vertical:
        return img
    d, b = img.format.display, img.bbox
    x0, x1 = (d.x0 + d.x1 - b.x1, d.x0 + d.x1 - b.x0) if horizontal else (b.x0, b.x1)
    y0, y1 = (d.y0 + d.y1 - b.y1, d.y0 + d.y1 - b.y0) if vertical else (b.y0, b.y1)
    dims = [i for i, on in ((2, horizontal), (1, vertical)) if on]
    return img.replace(pixels=torch.flip(img.pixels, dims), bbox=Box(x0, y0, x1, y1))


class _Flip(Node, abstract=True):
    category = "Transform"
    inputs = (Input("input", doc="Image to flip."),)

    def axes(self) -> tuple[bool, bool]:  # pragma: no cover - abstract
        """(left-right, top-bottom)."""
        raise NotImplementedError

    def compute(self, ctx: Context) -> Image:
        return mirror(ctx.input("input"), *self.axes())


class Mirror(_Flip):
    """Nuke's Mirror: flips the image about the centre of its format, ``Horizontal`` (left-right)
    and/or ``Vertical`` (top-bottom); pixels move exactly, no filtering."""

    class Knobs(Knobs):
        Horizontal: bool = False
        """Flip left-right (about the format's vertical centre line)."""
        Vertical: bool = False
        """Flip top-bottom (about the format's horizontal centre line)."""

    def axes(self) -> tuple[bool, bool]:
        return self.knobs.Horizontal, self.knobs.Vertical


class Mirror2(_Flip):
    """Nuke's Mirror2 (the newer Mirror): ``flop`` flips left-right, ``flip`` top-bottom, about
    the centre of the format; pixels move exactly, no filtering."""

    class Knobs(Knobs):
        flip: bool = False
        """Flip top-bottom (about the format's horizontal centre line)."""
        flop: bool = False
        """Flip left-right (about the format's vertical centre line)."""

    def axes(self) -> tuple[bool, bool]:
        return self.knobs.flop, self.knobs.flip


class BlackOutside(Node):
    """Nuke's BlackOutside: what lies outside the format is cut away and a one-pixel black border
    is added around what remains, so that nodes which repeat edge pixels beyond the data window
    (Nuke's rule; nodegraph reads black there anyway) see black. The data window becomes
    (data window ∩ format) grown by 1 on each side; an empty intersection stays empty."""

    category = "Transform"
    inputs = (Input("input", doc="Image to confine to its format."),)

    def compute(self, ctx: Context) -> Image:
        img = ctx.input("input")
        inner = img.bbox.intersect(img.format.display)
        if inner.empty:
            return img.crop_to(inner)
        return img.crop_to(inner).crop_to(Box(inner.x0 - 1, inner.y0 - 1, inner.x1 + 1, inner.y1 + 1))


__all__ = ["BlackOutside", "Dilate", "Matrix", "Median", "Mirror", "Mirror2", "Sharpen", "kernel_of", "median_window", "mirror",
           "dilate_radius",
           "MAX_MATRIX_SIDE"]
