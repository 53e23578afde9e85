"""Still more of Nuke's filters: Erode (blur), FilterErode (Erode (filter)), Defocus, VectorBlur,
Position and EdgeDetectWrapper (the EdgeDetect of Nuke's menu: a pre-blur, EdgeDetect, a post-erode).

Outside its data window an image is black (nodegraph's rule). The per-pixel maths lives in plain
functions (``morph``, ``structuring_element``, ``disc_kernel``, ``convolve_disc``, ``vector_blur``,
``shift``) that tests call without a graph; the classes add Nuke's knobs, channels and mask/mix.
"""

from __future__ import annotations

import math
from typing import Annotated, Literal

import torch
import torch.nn.functional as F
from pydantic import Field

from nodegraph import channels as chans
from nodegraph.animation import UV
from nodegraph.errors import ChannelError, KnobError
from nodegraph.evaluator import Context
from nodegraph.image import Box, Image
from nodegraph.node import Input, Knobs, Node

from ._common import ChannelsKnob, WHKnob, XYKnob, select_channels
from .color import _MASK_INPUT, _MaskKnobs, _work_dtype
from .copy import ChannelOrNone
from .filter import BlurFilter, SizeKnob, _conv_axis, blur_kernel
from .edge import EdgeDetect
from .filter_extra import SignedSize, _apply_planes, _minmax_axis, _pair, _planes, dilate_radius
from .warp import UVKnob

T = torch.Tensor


# --- Erode (blur) and Erode (filter) ---------------------------------------------------------------

def structuring_element(filt: str, radius: float) -> T:
    """1D weights (float64, odd length, peak 1) of a soft structuring element reaching ``radius``
    pixels: Blur's ``filt`` kernel of size 2 radius + 1 divided by its centre value. For ``box``
    the weights are the coverage of each pixel by [-radius - 1/2, radius + 1/2]: 1 inside, the
    fractional part of ``radius`` at the edge (radius 1.5 gives 0.5 1 1 1 0.5)."""
    k = blur_kernel(filt, 2 * abs(radius) + 1)
    return k / k[k.numel() // 2]


def morph(x: T, wx: T, wy: T, erode: bool) -> T:
    """Grey-scale erosion (``erode``) or dilation of ``[C, H, W]`` planes by the separable soft
    element ``wy[i] * wx[j]``: out = x + min over (i, j) of w_ij min(0, x(i, j) - x) (erode), with
    max and max(0, .) for dilate; at full weight a plain min (max) over the element. ``x`` carries
    len(w) // 2 extra pixels on each side, which the result drops."""
    ry, rx = wy.numel() // 2, wx.numel() // 2
    h, w = x.shape[1] - 2 * ry, x.shape[2] - 2 * rx
    centre = x[:, ry:ry + h, rx:rx + w]
    acc = torch.zeros_like(centre)
    for i in range(wy.numel()):
        for j in range(wx.numel()):
            wt = float(wy[i] * wx[j])
            if wt <= 0:
                continue
            d = x[:, i:i + h, j:j + w] - centre
            acc = torch.minimum(acc, wt * d.clamp(max=0)) if erode else torch.maximum(acc, wt * d.clamp(min=0))
    return centre + acc


def _morph_image(img: Image, names: list[str], sizes: tuple[float, float], filt: str, erode: bool) -> tuple[Box, T]:
    """The data window and planes of ``names`` eroded / dilated by radii ``sizes`` (x, y)."""
    wx, wy = structuring_element(filt, sizes[0]), structuring_element(filt, sizes[1])
    rx, ry = wx.numel() // 2, wy.numel() // 2
    b = img.bbox
    out_box = Box(b.x0 - rx, b.y0 - ry, b.x1 + rx, b.y1 + ry)  # black outside: a negative pixel erodes it too
    x = _planes(img, names, Box(out_box.x0 - rx, out_box.y0 - ry, out_box.x1 + rx, out_box.y1 + ry),
                _work_dtype(img.dtype))
    return out_box, morph(x, wx, wy, erode)


class Erode(Node):
    """Nuke's Erode (blur): a hard min/max of the matte, then a blur.

    With r = |size| (per axis), a negative ``size`` erodes: out = min over the box of radius r
    (pixels within r of the centre along each axis, the outermost ring weighted by the fraction
    of r: see :func:`structuring_element` with ``box``), a positive one dilates with the max.
    The result is then blurred by Blur's Gaussian of size ``blur`` (sigma = blur / 2.4).

    nodegraph's choices where the docs are silent: the sign (negative erodes, as Erode (fast);
    Nuke's default -1 shrinks the matte), the fractional ring, the Gaussian for ``blur``, and
    ``quality`` accepted and ignored (full resolution always). The data window grows by ceil(r)
    (eroding too: black outside takes the min of a negative neighbour) and by the blur radius."""

    category = "Filter"
    inputs = (Input("input", doc="Matte (or image) to erode or dilate."), _MASK_INPUT)

    class Knobs(_MaskKnobs):
        channels: ChannelsKnob = "alpha"
        """Channels to filter; others pass through (black-padded to a grown data window)."""
        size: SignedSize = -1.0
        """Pixels, one value or (x, y): negative erodes (min), positive dilates (max)."""
        blur: float = Field(0.0, ge=0.0)
        """Size of the Gaussian blur applied after the min/max (Blur's size: sigma = blur / 2.4)."""
        quality: int = Field(15, ge=0)
        """Nuke's speed/quality trade-off; ignored: always full quality."""

    def compute(self, ctx: Context) -> Image:
        img = ctx.input("input")
        k = self.knobs
        sx, sy = _pair(k.size)
        names = [n for n in select_channels(k.channels, img, self.name) if n in img.channels]
        if not names or img.bbox.empty or (sx == 0 and sy == 0 and k.blur <= 0):
            return img
        # each axis erodes or dilates by its own sign: x first, then y
        box, planes = img.bbox, None
        work = img
        for axis, s in ((0, sx), (1, sy)):
            if s == 0:
                continue
            sizes = (abs(s), 0.0) if axis == 0 else (0.0, abs(s))
            box, planes = _morph_image(work, names, sizes, "box", s < 0)
            work = Image(planes, tuple(names), box, img.format)
        if planes is None:
            planes = _planes(img, names, box, _work_dtype(img.dtype))
        kern = blur_kernel("gaussian", k.blur)
        r = kern.numel() // 2
        if r:
            src = Image(planes, tuple(names), box, img.format)
            box = Box(box.x0 - r, box.y0 - r, box.x1 + r, box.y1 + r)
            padded = src.crop_to(Box(box.x0 - r, box.y0 - r, box.x1 + r, box.y1 + r)).pixels
            planes = _conv_axis(_conv_axis(padded, kern, 2), kern, 1)
        return _apply_planes(ctx, k, img, names, box, planes)


class FilterErode(Node):
    """Nuke's Erode (filter) (script class ``FilterErode``): grey-scale erosion or dilation by a
    soft structuring element shaped by ``filter``.

    With r = |size| per axis and w the separable element of :func:`structuring_element` (Blur's
    ``filter`` kernel of size 2r + 1, peak 1), out = x + min over offsets of w min(0, x' - x) for a
    positive ``size`` (erode: a plain min where w = 1, the box filter's fractional edge ring
    pulled only part of the way) and x + max of w max(0, x' - x) for a negative one (dilate).

    nodegraph's choices where the docs are silent: the element, and the sign (positive erodes:
    Nuke's default 1 is an erosion). The data window grows by the element's reach (eroding too:
    black outside takes the min of a negative neighbour)."""

    category = "Filter"
    inputs = (Input("input", doc="Matte (or image) to erode or dilate."), _MASK_INPUT)

    class Knobs(_MaskKnobs):
        channels: ChannelsKnob = "all"
        """Channels to filter; others pass through (black-padded to a grown data window)."""
        size: SignedSize = 1.0
        """Pixels, one value or (x, y): positive erodes (min), negative dilates (max); same sign on both axes."""
        filter: BlurFilter = "box"
        """Shape of the structuring element: box, triangle, quadratic or gaussian (Blur's kernels)."""

    def check(self) -> list[str]:
        sx, sy = _pair(self.knobs.size)
        return ["knob 'size': x and y must not have opposite signs"] if sx * sy < 0 else []

    def compute(self, ctx: Context) -> Image:
        img = ctx.input("input")
        k = self.knobs
        sx, sy = _pair(k.size)
        if sx * sy < 0:
            raise KnobError("x and y must not have opposite signs", node=self.path, knob="size")
        names = [n for n in select_channels(k.channels, img, self.name) if n in img.channels]
        if not names or img.bbox.empty or (sx == 0 and sy == 0):
            return img
        box, planes = _morph_image(img, names, (abs(sx), abs(sy)), k.filter, sx > 0 or sy > 0)
        return _apply_planes(ctx, k, img, names, box, planes)


# --- Defocus -----------------------------------------------------------------------------------------

def disc_kernel(rx: float, ry: float, samples: int) -> T:
    """The normalised float64 kernel ``[2 Ry + 1, 2 Rx + 1]`` (R = ceil(r - 1/2)) of an ellipse
    with radii ``rx``, ``ry`` centred on the middle pixel: each weight is the share of a
    ``samples`` x ``samples`` grid of points inside the pixel that fall inside the ellipse
    (x / rx)^2 + (y / ry)^2 <= 1."""
    rx, ry = max(rx, 1e-9), max(ry, 1e-9)
    Rx, Ry = max(0, math.ceil(rx - 0.5)), max(0, math.ceil(ry - 0.5))
    n = max(1, int(samples))
    sub = (torch.arange(n, dtype=torch.float64) + 0.5) / n - 0.5
    xs = (torch.arange(-Rx, Rx + 1, dtype=torch.float64)[:, None] + sub).reshape(-1)
    ys = (torch.arange(-Ry, Ry + 1, dtype=torch.float64)[:, None] + sub).reshape(-1)
    inside = ((xs[None, :] / rx) ** 2 + (ys[:, None] / ry) ** 2 <= 1).to(torch.float64)
    k = inside.reshape(2 * Ry + 1, n, 2 * Rx + 1, n).sum(dim=(1, 3))
    if k.sum() == 0:
        k[Ry, Rx] = 1
    return k / k.sum()


def convolve_disc(padded: T, kernel: T, method: str) -> T:
    """Valid 2D convolution of ``[C, H, W]`` with a symmetric ``kernel``: directly, or through the
    FFT (``method`` fourier); the two agree to rounding."""
    kernel = kernel.to(device=padded.device, dtype=padded.dtype)
    kh, kw = kernel.shape
    if method != "fourier":
        return F.conv2d(padded[:, None], kernel[None, None])[:, 0]
    h, w = padded.shape[1:]
    spec = torch.fft.rfft2(padded, s=(h, w)) * torch.fft.rfft2(kernel, s=(h, w))
    full = torch.fft.irfft2(spec, s=(h, w))  # circular; the valid part does not wrap
    return full[:, kh - 1:, kw - 1:]


class Defocus(Node):
    """Nuke's Defocus: convolution with a uniform disc, the bokeh of a round lens.

    The disc is an ellipse with radii rx = defocus / 2 * ratio * scale_x and
    ry = defocus / 2 * scale_y (``defocus`` its diameter in pixels), weights the share of each
    pixel inside it (:func:`disc_kernel`, a ``quality`` x ``quality`` grid of points per pixel,
    1 to 32), normalised to sum to 1; out = in (*) disc over the data window grown by the disc's
    reach (black outside). ``method`` picks direct or FFT convolution, the same result.

    nodegraph's choices where the docs are silent: defocus as a diameter, the meaning of ratio
    (x stretch) and scale (multiplies), quality as the sample grid and the method names."""

    category = "Filter"
    inputs = (Input("input", doc="Image to defocus."), _MASK_INPUT)

    class Knobs(_MaskKnobs):
        channels: ChannelsKnob = "rgba"
        """Channels to defocus; others pass through (black-padded to the grown data window)."""
        defocus: float = Field(1.0, ge=0.0)
        """Diameter of the disc in pixels."""
        ratio: float = Field(1.0, gt=0.0)
        """Horizontal aspect of the disc: its x radius is multiplied by this."""
        scale: SizeKnob = 1.0
        """Multiplies the disc's size, one value or (x, y)."""
        quality: int = Field(20, ge=0)
        """Samples per pixel side used to anti-alias the disc's edge (clamped to 1..32)."""
        method: Literal["direct", "fourier"] = "direct"
        """How the convolution is computed: direct or through the FFT (same result)."""

    def kernel(self) -> T:
        k = self.knobs
        sx, sy = _pair(k.scale)
        return disc_kernel(k.defocus / 2 * k.ratio * sx, k.defocus / 2 * sy, min(max(k.quality, 1), 32))

    def compute(self, ctx: Context) -> Image:
        img = ctx.input("input")
        k = self.knobs
        names = [n for n in select_channels(k.channels, img, self.name) if n in img.channels]
        if not names or img.bbox.empty or k.defocus == 0:
            return img
        kern = self.kernel()
        ry, rx = kern.shape[0] // 2, kern.shape[1] // 2
        b = img.bbox
        box = Box(b.x0 - rx, b.y0 - ry, b.x1 + rx, b.y1 + ry)
        padded = _planes(img, names, Box(box.x0 - rx, box.y0 - ry, box.x1 + rx, box.y1 + ry), _work_dtype(img.dtype))
        return _apply_planes(ctx, k, img, names, box, convolve_disc(padded, kern, k.method))


# --- VectorBlur --------------------------------------------------------------------------------------

def bilinear(planes: T, x: T, y: T) -> T:
    """``planes`` ``[C, H, W]`` (black outside) at continuous positions ``x, y`` (pixel units of
    the planes, y down, centres at i + 1/2), bilinear: ``[C, *x.shape]``."""
    c, h, w = planes.shape
    gx = x / w * 2 - 1
    gy = y / h * 2 - 1
    grid = torch.stack([gx, gy], dim=-1).reshape(1, -1, 1, 2).to(planes.dtype)
    out = F.grid_sample(planes[None], grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    return out.reshape(c, *x.shape)


def vector_blur(planes: T, u: T, v: T, offset: float, samples: int, method: str) -> T:
    """Each pixel averages ``planes`` along its own vector: out(p) = sum_k w_k in(p + t_k (u, -v))
    with t_k = offset + k / (samples - 1), k = 0 .. samples - 1 (``u, v`` in pixels, v up),
    bilinear, black outside; w uniform, or (method gaussian) exp(-((k / (samples - 1) - 1/2) / 0.3)^2 / 2)
    normalised. ``planes``, ``u``, ``v`` share one window."""
    h, w = u.shape
    yy, xx = torch.meshgrid(torch.arange(h, device=u.device, dtype=u.dtype) + 0.5,
                            torch.arange(w, device=u.device, dtype=u.dtype) + 0.5, indexing="ij")
    n = max(int(samples), 2)
    frac = torch.arange(n, dtype=torch.float64) / (n - 1)
    wts = torch.ones(n, dtype=torch.float64) if method == "uniform" else torch.exp(-0.5 * ((frac - 0.5) / 0.3) ** 2)
    wts = wts / wts.sum()
    acc = torch.zeros_like(planes)
    for f, wt in zip(frac.tolist(), wts.tolist()):
        t = offset + f
        acc = acc + wt * bilinear(planes, xx + t * u, yy - t * v)
    return acc


class VectorBlur(Node):
    """Nuke's VectorBlur: motion blur along per-pixel vectors read from the ``uv`` channels.

    The vector of a pixel is ((u + constant_u) scale_x, (v + constant_v) scale_y) in pixels (v up);
    the pixel averages the input along the segment from offset to offset + 1 times its vector
    (offset -0.5, the default, centres the streak on the pixel): :func:`vector_blur`, with one
    sample per pixel of the longest vector (at least 2, at most 256), bilinear, black outside.
    ``method`` uniform weights the samples equally, gaussian favours the middle of the streak.
    The data window grows by ``grow_bbox`` (x, y) pixels.

    nodegraph's choices where the docs are silent: the gather along each pixel's own vector, the
    sample count, the method names; ``alpha`` and ``test`` are Nuke's knobs, kept, not applied."""

    category = "Filter"
    inputs = (Input("input", doc="Image to blur, with the motion vectors."), _MASK_INPUT)

    class Knobs(_MaskKnobs):
        channels: ChannelsKnob = "none"
        """Channels to blur (Nuke's default: none); others pass through."""
        uv: UVKnob = "none"
        """Layer (or two channels) holding the u, v motion vectors in pixels; none: no blur."""
        constant: Annotated[tuple[float, float], UV] = (0.0, 0.0)
        """Added to u and v (camera motion)."""
        scale: WHKnob = 1.0
        """Multiplies the vectors (one value or w, h): the shutter."""
        offset: float = -0.5
        """Start of the streak in units of the vector: -0.5 centres it, 0 blurs forward."""
        grow_bbox: WHKnob = 0.0
        """Pixels added to each side of the data window (w, h), for streaks leaving it."""
        method: Literal["uniform", "gaussian"] = "uniform"
        """Sample weights along the streak: uniform or gaussian (centre-weighted)."""
        alpha: ChannelOrNone = "none"
        """Nuke's alpha knob; kept, not applied."""
        test: bool = False
        """Nuke's test knob; kept, not applied."""

    def compute(self, ctx: Context) -> Image:
        img = ctx.input("input")
        k = self.knobs
        names = [n for n in select_channels(k.channels, img, self.name) if n in img.channels]
        if not names or k.uv == "none" or img.bbox.empty:
            return img
        try:
            uv = [n for n in chans.expand(k.uv, img.channels)][:2]
        except ChannelError as err:
            raise KnobError(err.message, node=self.path, knob="uv") from None
        gx, gy = (math.ceil(max(g, 0)) for g in _pair(k.grow_bbox))
        b = img.bbox
        box = Box(b.x0 - gx, b.y0 - gy, b.x1 + gx, b.y1 + gy)
        work = _work_dtype(img.dtype)
        sx, sy = _pair(k.scale)
        base = img.crop_to(box)
        zero = torch.zeros((box.height, box.width), device=img.device, dtype=work)
        u = ((base.channel(uv[0]).to(work) if uv else zero) + k.constant[0]) * sx
        v = ((base.channel(uv[1]).to(work) if len(uv) > 1 else zero) + k.constant[1]) * sy
        return _apply_planes(ctx, k, img, names, box, blur_along(img, names, box, u, v, k.offset, k.method))


def blur_along(img: Image, names: list[str], box: Box, u: T, v: T, offset: float, method: str) -> T:
    """The channels ``names`` of ``img`` over ``box`` blurred along the vectors ``u, v`` (pixels,
    v up, over ``box``) by :func:`vector_blur`, with one sample per pixel of the longest streak
    (at least 2, at most 256)."""
    longest = float(torch.sqrt(u * u + v * v).max()) * max(abs(offset), abs(offset + 1)) if u.numel() else 0.0
    samples = min(max(math.ceil(longest) + 1, 2), 256)
    return vector_blur(_planes(img, names, box, u.dtype), u, v, offset, samples, method)


# --- Position ----------------------------------------------------------------------------------------

def shift(img: Image, tx: float, ty: float) -> Image:
    """``img`` moved by (tx, ty) pixels (ty up): whole pixels move the data window exactly; a
    fractional part f along an axis gives out = (1 - f) in(p - n) + f in(p - n - 1) (linear
    interpolation) and widens the window by one pixel on that axis."""
    dx, dy = float(tx), -float(ty)  # y-down rows
    ix, iy = math.floor(dx), math.floor(dy)
    fx, fy = dx - ix, dy - iy
    b = img.bbox
    out = img.replace(bbox=Box(b.x0 + ix, b.y0 + iy, b.x1 + ix, b.y1 + iy))
    if out.bbox.empty or (fx == 0 and fy == 0):
        return out
    work = _work_dtype(img.dtype)
    px = out.pixels.to(work)
    if fx:
        px = (1 - fx) * F.pad(px, (0, 1)) + fx * F.pad(px, (1, 0))
    if fy:
        px = (1 - fy) * F.pad(px, (0, 0, 0, 1)) + fy * F.pad(px, (0, 0, 1, 0))
    nb = out.bbox
    return img.replace(pixels=px.to(img.dtype), bbox=Box(nb.x0, nb.y0, nb.x1 + (1 if fx else 0), nb.y1 + (1 if fy else 0)))


class Position(Node):
    """Nuke's Position: moves the image by ``translate`` (x, y up) pixels, all channels.

    Whole pixels move the data window with no filtering; a fractional part is linear
    interpolation between the two neighbouring whole moves (:func:`shift`), widening the data
    window by one pixel on that axis (nodegraph's choice: the docs do not name a filter)."""

    category = "Transform"
    inputs = (Input("input", doc="Image to move."),)

    class Knobs(Knobs):
        translate: XYKnob = (0.0, 0.0)
        """Offset in pixels, x right and y up."""

    def compute(self, ctx: Context) -> Image:
        return shift(ctx.input("input"), *self.knobs.translate)


# --- EdgeDetectWrapper ---------------------------------------------------------------------------------

class _Fed:
    """A context whose ``input`` is a given image (the other inputs and the rest come from ``ctx``)."""

    def __init__(self, ctx: Context, img: Image):
        self._ctx, self._img = ctx, img

    def input(self, name: str, frame: int | None = None) -> Image:
        return self._img if name == "input" else self._ctx.input(name, frame)

    def has_input(self, name: str) -> bool:
        return name == "input" or self._ctx.has_input(name)

    def __getattr__(self, attr):
        return getattr(self._ctx, attr)


def pre_blur(img: Image, names: list[str], size: tuple[float, float]) -> Image:
    """``img`` with the channels ``names`` blurred by Blur's Gaussian of ``size`` (x, y), the data
    window grown by the kernel radius and clipped to the format (Blur's crop)."""
    kx, ky = blur_kernel("gaussian", size[0]), blur_kernel("gaussian", size[1])
    rx, ry = kx.numel() // 2, ky.numel() // 2
    if not names or img.bbox.empty or (rx == 0 and ry == 0):
        return img
    b = img.bbox
    box = Box(b.x0 - rx, b.y0 - ry, b.x1 + rx, b.y1 + ry).intersect(img.format.display)
    if box.empty:
        return img.crop_to(box)
    padded = _planes(img, names, Box(box.x0 - rx, box.y0 - ry, box.x1 + rx, box.y1 + ry), _work_dtype(img.dtype))
    out = img.crop_to(box)
    pixels = out.pixels.clone()
    pixels[[img.index(n) for n in names]] = _conv_axis(_conv_axis(padded, kx, 2), ky, 1).to(pixels.dtype)
    return out.replace(pixels=pixels)


class EdgeDetectWrapper(EdgeDetect):
    """Nuke's EdgeDetect as its menu makes it (script class ``EdgeDetectWrapper``): a blur of the
    ``channels`` by ``blursize`` (Blur's Gaussian, sigma = blursize / 2.4, window clipped to the
    format), then :class:`EdgeDetect` with the same knobs, then an Erode (fast) of ``erodesize``
    whole pixels on the result (the ``output`` channel when one is set, else the channels).

    nodegraph's choices where the docs are silent: the Gaussian, and erodesize following Erode
    (fast)'s sign (positive thickens the edges: max; negative thins them: min), rounded to whole
    pixels; ``maskedgedetect`` is read after the blur (blurred only if among the channels);
    ``blurquality`` is accepted and ignored (always full resolution)."""

    type_name = "EdgeDetectWrapper"

    class Knobs(EdgeDetect.Knobs):
        blursize: WHKnob = 0.0
        """Size of the Gaussian blur before the edge detection (Blur's size), one value or (w, h)."""
        blurquality: int = Field(15, ge=0)
        """Nuke's speed/quality trade-off for the blur; ignored: always full quality."""
        erodesize: float = 0.0
        """Erode (fast) after the detection, whole pixels: positive thickens the edges, negative thins them."""

    def compute(self, ctx: Context) -> Image:
        img = ctx.input("input")
        k = self.knobs
        names = [n for n in select_channels(k.channels, img, self.name) if n in img.channels]
        blurred = pre_blur(img, names, _pair(k.blursize))
        out = super().compute(_Fed(ctx, blurred))
        n = dilate_radius(k.erodesize)
        targets = [k.output.strip()] if k.output.strip() != "none" else names
        targets = [t for t in targets if t in out.channels]
        if n == 0 or not targets or out.bbox.empty:
            return out
        g = n if k.erodesize > 0 else 0
        b = out.bbox
        box = Box(b.x0 - g, b.y0 - g, b.x1 + g, b.y1 + g)
        x = _planes(out, targets, Box(box.x0 - n, box.y0 - n, box.x1 + n, box.y1 + n), _work_dtype(out.dtype))
        planes = _minmax_axis(_minmax_axis(x, k.erodesize, n, 2), k.erodesize, n, 1)
        grown = out.crop_to(box)
        pixels = grown.pixels.clone()
        pixels[[out.index(t) for t in targets]] = planes.to(pixels.dtype)
        return grown.replace(pixels=pixels)


__all__ = ["Defocus", "EdgeDetectWrapper", "Erode", "FilterErode", "Position", "VectorBlur", "bilinear", "blur_along", "convolve_disc", "disc_kernel",
           "morph", "pre_blur", "shift", "structuring_element", "vector_blur"]
