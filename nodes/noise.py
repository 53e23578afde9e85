"""Noise: Nuke's fBm / turbulence noise generator, a draw node (:class:`.generate.Draw`) whose
coverage is the noise, built on the expression language's noise (:mod:`nodegraph.expr_noise`)."""

from __future__ import annotations

import copy
import math
from typing import Literal

import numpy as np
import torch
from pydantic import Field, create_model

from nodegraph import expr_noise

from .draw import Shape
from .transform import ScaleKnob, Transform, _pair

_TRANSFORM_KNOBS = ("translate", "rotate", "scale", "skewX", "skewY", "skew_order", "center", "invert_matrix")


class Noise(Shape):
    """Nuke's Noise, a draw node whose coverage is Perlin fractal noise. At a pixel centre ``p``
    (y up), ``q = M^-1 p`` with M the transform knobs' matrix (as Transform's, about ``center``),
    and the noise is read at ``P = Ry(yrotate) Rx(xrotate) (q.x / size_x, q.y / size_y, zoffset)``
    (the rotations tilt the lattice so that animating zoffset does not slide along its axes)::

        fBm:         f = sum_{i < n} gain^i noise(lacunarity^i P);   v = clamp(0.5 + 0.5 f, 0, 1)
        turbulence:  f = sum_{i < n} gain^i |noise(lacunarity^i P)|; v = clamp(f, 0, 1)
        coverage = v ^ gamma

    ``n`` is ``octaves``, less with ``nyquist`` the octaves finer than two pixels (``lacunarity^i``
    beyond half the smallest noise size in pixels); the first octave is always kept.

    Foundry documents the knobs (Nuke's NDK has the Noise example: Perlin noise, fBm and
    turbulence, these knob names and defaults), not the normalisation: the mapping of f to 0..1,
    ``gamma`` as a power and the octave cut are nodegraph's choices, and ``noise`` is
    :mod:`nodegraph.expr_noise`'s (the values differ from Nuke's, the character is the same).
    ``center`` defaults to the origin: Nuke fills in the centre of the format when the node is made.
    """

    class Knobs(Shape.Knobs):
        type: Literal["fBm", "turbulence"] = "fBm"
        """fBm (fractional Brownian motion) or turbulence (the same with absolute noise values)."""
        size: ScaleKnob = 350.0
        """Size of the lowest frequency's features in pixels: one value or (x, y)."""
        zoffset: float = 0.0
        """Position through the 3-D noise: animate it to make the noise change over time."""
        octaves: int = Field(10, ge=0, le=expr_noise.MAX_OCTAVES)
        """Number of noise layers summed, each finer by lacunarity and weaker by gain."""
        nyquist: bool = True
        """Leave out octaves finer than two pixels (no aliasing)."""
        lacunarity: float = 2.0
        """Frequency ratio between successive octaves."""
        gain: float = 0.5
        """Amplitude ratio between successive octaves."""
        gamma: float = Field(0.5, gt=0)
        """The noise value is raised to this power."""
        xrotate: float = 30.0
        """Rotation of the noise space about its x axis, degrees."""
        yrotate: float = 30.0
        """Rotation of the noise space about its y axis, degrees."""

    #: translate, rotate, scale, skewX, skewY, skew_order, center, invert_matrix: Transform's knobs
    Knobs = create_model("Knobs", __base__=Knobs, __module__=__name__,
                         **{n: (f.annotation, copy.copy(f)) for n, f in Transform.Knobs.model_fields.items()
                            if n in _TRANSFORM_KNOBS})

    def octave_count(self, m: np.ndarray) -> int:
        """``octaves``, less those finer than two pixels with ``nyquist``."""
        k = self.knobs
        if not k.nyquist or k.lacunarity <= 1 or k.octaves <= 1:
            return k.octaves
        sx, sy = _pair(k.size)
        stretch = float(np.linalg.svd(m[:2, :2], compute_uv=False).min()) if np.isfinite(m).all() else 0.0
        finest = min(abs(sx), abs(sy)) * stretch / 2  # the lowest octave's size over two, in pixels
        if finest <= 1:
            return 1
        return max(1, min(k.octaves, 1 + math.floor(math.log(finest) / math.log(k.lacunarity) + 1e-9)))

    def coverage(self, x, y, fmt):
        k = self.knobs
        m = Transform.nuke_matrix(self)  # the same knobs as Transform's, the same matrix
        if abs(np.linalg.det(m[:2, :2])) < 1e-12:
            return torch.zeros_like(x)
        inv = np.linalg.inv(m)
        qx = inv[0, 0] * x + inv[0, 1] * y + inv[0, 2]
        qy = inv[1, 0] * x + inv[1, 1] * y + inv[1, 2]
        sx, sy = _pair(k.size)
        px = qx / sx if sx else torch.zeros_like(qx)
        py = qy / sy if sy else torch.zeros_like(qy)
        ax, ay = math.radians(k.xrotate), math.radians(k.yrotate)
        # Rx then Ry of (px, py, z)
        y1 = py * math.cos(ax) - k.zoffset * math.sin(ax)
        z1 = py * math.sin(ax) + k.zoffset * math.cos(ax)
        x2 = px * math.cos(ay) + z1 * math.sin(ay)
        z2 = -px * math.sin(ay) + z1 * math.cos(ay)
        n = self.octave_count(m)
        if k.type == "fBm":
            v = 0.5 + 0.5 * expr_noise.fbm(x2, y1, z2, n, k.lacunarity, k.gain)
        else:
            v = expr_noise.turbulence(x2, y1, z2, n, k.lacunarity, k.gain)
        v = torch.as_tensor(v, dtype=x.dtype, device=x.device).expand_as(x)
        return v.clamp(0, 1) ** k.gamma


__all__ = ["Noise"]
