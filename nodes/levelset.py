"""LevelSet: the signed distance to where a channel crosses a threshold (Nuke's LevelSet)."""

from __future__ import annotations

import math

import torch

from nodegraph import channels as chans
from nodegraph.errors import ChannelError, KnobError
from nodegraph.evaluator import Context
from nodegraph.image import Image
from nodegraph.node import Input, Knobs, Node

from ._common import ChannelsKnob
from .copy import ChannelOrNone

T = torch.Tensor

#: Nuke's ``motion`` layer: the gradient's x and y go to its first two channels.
MOTION = ("forward.u", "forward.v")


def nearest_seed(seed: T) -> tuple[T, T, T]:
    """Euclidean distance from every pixel of a ``[H, W]`` bool mask to the nearest True pixel,
    and that pixel's row and column (``dist, row, col``; ``inf`` and -1 where the mask is empty).

    Jump flooding (Rong and Tan, 2006) in its 1+JFA form: a pass of step 1, then steps N/2, N/4
    ... 1, each pixel taking the nearest of the seeds its 8 neighbours at that step know. The
    result is exact for all but rare pixels, which get a seed a fraction of a pixel farther than
    the nearest; O(N log N), every pass a whole-image tensor operation."""
    h, w = seed.shape
    dev = seed.device
    ys = torch.arange(h, device=dev, dtype=torch.float32)[:, None].expand(h, w)
    xs = torch.arange(w, device=dev, dtype=torch.float32)[None, :].expand(h, w)
    sy = torch.where(seed, ys, torch.full_like(ys, -1.0))
    sx = torch.where(seed, xs, torch.full_like(xs, -1.0))
    best = torch.where(seed, torch.zeros_like(ys), torch.full_like(ys, math.inf))  # for an empty mask
    steps = [1]
    step = 1 << max(max(h, w) - 1, 1).bit_length() - 1
    while step >= 1:
        steps.append(step)
        step //= 2
    for step in steps:
        for dy in (-step, 0, step):
            for dx in (-step, 0, step):
                if (dy == 0 and dx == 0) or abs(dy) >= h or abs(dx) >= w:
                    continue
                cy, cx = _shifted(sy, dy, dx), _shifted(sx, dy, dx)
                d2 = ((cy - ys) ** 2 + (cx - xs) ** 2).masked_fill_(cy < 0, math.inf)
                better = d2 < best
                best = torch.where(better, d2, best)
                sy, sx = torch.where(better, cy, sy), torch.where(better, cx, sx)
    return best.sqrt(), sy.long(), sx.long()


def _shifted(a: T, dy: int, dx: int) -> T:
    """``a`` read at (row + dy, col + dx); -1 beyond the edges."""
    h, w = a.shape
    out = torch.full_like(a, -1.0)
    src = a[max(dy, 0):h + min(dy, 0), max(dx, 0):w + min(dx, 0)]
    out[max(-dy, 0):h - max(dy, 0), max(-dx, 0):w - max(dx, 0)] = src
    return out


def signed_distance(values: T, threshold: float) -> tuple[T, T, T]:
    """Nuke's level set of ``values`` ``[H, W]`` at ``threshold``: for each pixel the distance to
    the crossing, positive outside (value below the threshold), negative inside, and the vector
    (x right, y up) from the pixel to it. The crossing lies halfway between an inside pixel and
    its outside neighbour (so the nearest inside pixel is d + 1/2 away from an outside pixel).
    Without a crossing (all inside or all outside) every pixel is the window's diagonal away."""
    inside = values >= threshold
    h, w = values.shape
    to_in, iy, ix = nearest_seed(inside)
    to_out, oy, ox = nearest_seed(~inside)
    ys, xs = torch.meshgrid(torch.arange(h, device=values.device), torch.arange(w, device=values.device),
                            indexing="ij")
    far = math.hypot(h, w)
    d = torch.where(inside, -(to_out - 0.5), to_in - 0.5)
    ty, tx = torch.where(inside, oy, iy), torch.where(inside, ox, ix)
    none = torch.isinf(d)
    d = torch.where(none, torch.where(inside, -far, far), d)
    vx, vy = (tx - xs).double(), (ys - ty).double()  # rows run down, y runs up
    length = torch.sqrt(vx * vx + vy * vy)
    k = torch.where(length > 0, d.abs() / torch.where(length > 0, length, 1.0), 0.0)
    vx, vy = torch.where(none, 0.0, vx * k), torch.where(none, 0.0, vy * k)
    return d, torch.stack([vx, vy]), torch.stack([torch.where(none, ys, iy), torch.where(none, xs, ix)])


class LevelSet(Node):
    """Nuke's LevelSet: for each pixel, the distance to where ``channel`` crosses ``threshold``,
    written to ``output`` (positive outside, where the channel is below the threshold, negative
    inside), with the vector to that crossing (x, y up, its length the distance) written to the
    first two channels of ``gradient`` (Nuke's ``motion``: forward.u, forward.v).

    ``create_matte``: ``output`` is a matte instead, the level set thresholded at
    ``matte_limit`` (positive grows the matte by that many pixels, negative shrinks it), with a
    one-pixel antialiased edge: clamp(matte_limit - d + 1/2, 0, 1). ``extrapolated`` channels
    then take, outside the original matte, the colour of the nearest pixel inside it
    (``gradient_extrapolate``: continued as a ramp, c(q) + (c(q) - c(q')) |p - q|, q' one pixel
    further inside along the same line, bilinear).

    nodegraph's choices where Foundry's docs are silent: distances are exact Euclidean between
    pixel centres, the crossing halfway between an inside pixel and an outside neighbour (no
    sub-pixel position); the window is the input's data window joined with the format (the level
    set is defined everywhere; black outside the data window); with no crossing at all every
    pixel reads the window's diagonal; channels of ``gradient`` the input lacks are added."""

    category = "Filter"
    inputs = (Input("input", doc="The image whose channel defines the level set."),)

    class Knobs(Knobs):
        channel: ChannelOrNone = "rgba.alpha"
        """The channel whose threshold crossing the distance is measured to."""
        threshold: float = 0.5
        """The value of ``channel`` where the distance is 0."""
        output: ChannelOrNone = "rgba.alpha"
        """Channel the distance (or the matte) is written to; none: not written."""
        gradient: ChannelsKnob = "motion"
        """Channels the vector to the crossing goes to (x, y: the first two); none: not written."""
        create_matte: bool = False
        """Write a matte (the level set thresholded at matte_limit) instead of the distance."""
        matte_limit: float = 0.0
        """Distance the matte reaches: positive grows it (a dilate), negative shrinks it."""
        extrapolated: ChannelsKnob = "none"
        """With create_matte: channels whose edge colours are carried out as the matte grows."""
        gradient_extrapolate: bool = False
        """Extrapolate those colours as a ramp instead of copying the nearest edge pixel."""

    def _gradient_channels(self, img: Image) -> tuple[str, ...]:
        spec = self.knobs.gradient
        if spec == "motion" and "motion" not in chans.layers(img.channels):
            return MOTION
        try:
            return chans.expand(spec, img.channels)[:2]
        except ChannelError as err:
            raise KnobError(err.message, node=self.path, knob="gradient") from None

    def compute(self, ctx: Context) -> Image:
        img = ctx.input("input")
        k = self.knobs
        grad = self._gradient_channels(img)
        extra = () if not k.create_matte else self._extrapolated(img)
        box = img.bbox.union(img.format.display)
        if box.empty or (k.output == "none" and not grad and not extra):
            return img
        base = img.crop_to(box)
        work = torch.float64
        src = base.channel(k.channel).to(work) if k.channel in base.channels else torch.zeros(
            (box.height, box.width), device=img.device, dtype=work)
        d, vec, near = signed_distance(src, k.threshold)
        planes = {n: base.pixels[i] for i, n in enumerate(base.channels)}
        dtype = img.dtype
        for name in extra:
            planes[name] = self._extrapolate(base.channel(name).to(work), d, near).to(dtype)
        if k.output != "none":
            value = (k.matte_limit - d + 0.5).clamp(0, 1) if k.create_matte else d
            planes[k.output] = value.to(dtype)
        for name, comp in zip(grad, vec):
            planes[name] = comp.to(dtype)
        names = base.channels + tuple(n for n in planes if n not in base.channels)
        return Image(torch.stack([planes[n] for n in names]), names, box, img.format, dict(img.metadata))

    def _extrapolated(self, img: Image) -> tuple[str, ...]:
        try:
            return tuple(n for n in chans.expand(self.knobs.extrapolated, img.channels) if n in img.channels)
        except ChannelError as err:
            raise KnobError(err.message, node=self.path, knob="extrapolated") from None

    def _extrapolate(self, plane: T, d: T, near: T) -> T:
        """``plane`` outside the original matte (d > 0) from its nearest inside pixel."""
        h, w = plane.shape
        ny, nx = near[0], near[1]
        edge = plane[ny, nx]
        if self.knobs.gradient_extrapolate:
            ys, xs = torch.meshgrid(torch.arange(h, device=plane.device, dtype=plane.dtype),
                                    torch.arange(w, device=plane.device, dtype=plane.dtype), indexing="ij")
            dy, dx = ny.to(plane.dtype) - ys, nx.to(plane.dtype) - xs
            length = torch.sqrt(dx * dx + dy * dy)
            safe = torch.where(length > 0, length, 1.0)
            qy, qx = ny + dy / safe, nx + dx / safe  # one pixel further inside
            y0, x0 = qy.floor().clamp(0, h - 1), qx.floor().clamp(0, w - 1)
            y1, x1 = (y0 + 1).clamp(max=h - 1), (x0 + 1).clamp(max=w - 1)
            fy, fx = (qy - y0).clamp(0, 1), (qx - x0).clamp(0, 1)
            y0, x0, y1, x1 = (t.long() for t in (y0, x0, y1, x1))
            inner = ((1 - fy) * ((1 - fx) * plane[y0, x0] + fx * plane[y0, x1])
                     + fy * ((1 - fx) * plane[y1, x0] + fx * plane[y1, x1]))
            edge = edge + (edge - inner) * length
        return torch.where(d > 0, edge, plane)


__all__ = ["LevelSet", "nearest_seed", "signed_distance"]
