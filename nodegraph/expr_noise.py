"""Nuke's ``random``, ``noise``, ``fBm`` and ``turbulence``, for Python floats and torch tensors.

Foundry documents what these return, not how, so the algorithms here are our own choices:

- ``noise(x, y, z)``: Ken Perlin's improved gradient noise (2002): quintic fade
  ``6t^5 - 15t^4 + 10t^3``, trilinear blend of the dot products of the offsets with one of twelve
  cube-edge gradients (16 slots, four repeated). Signed, within -1..1, zero at every integer
  lattice point (as Foundry's docs say of Nuke's). Missing arguments are 0.
- ``random(x, y, z)``: value noise in 0..1: a hashed value in [0, 1) at each integer lattice
  point, blended between them with the same quintic fade, so ``random(frame)`` jumps from frame
  to frame while ``random(frame / 10)`` wanders smoothly, as Nuke's does; the same arguments
  always give the same value.
- ``fBm(x, y, z, octaves, lacunarity, gain)``: the sum over ``i < octaves`` of
  ``gain**i * noise(lacunarity**i * (x, y, z))`` (Foundry's documented definition);
  ``turbulence`` is the same with ``abs(noise(...))``. ``octaves`` is truncated to an integer and
  capped at 32.

Instead of Perlin's permutation table, the lattice is hashed with the ``lowbias32`` integer mixer
(multipliers 0x7FEB352D and 0x846CA68B, shifts 16/15/16), seeded per axis, on the low 32 bits
of the lattice coordinate. The same code serves floats and tensors: Python ints and int64
tensors agree on the low 32 bits of every product, so both backends give identical values.
"""

from __future__ import annotations

import math

import torch

_M = 0xFFFFFFFF
_SEEDS = (0x9E3779B9, 0x85EBCA6B, 0xC2B2AE35)
# improved noise gradients, indexed by hash & 15: (gx, gy, gz)
_GRADIENTS = ((1, 1, 0), (-1, 1, 0), (1, -1, 0), (-1, -1, 0), (1, 0, 1), (-1, 0, 1), (1, 0, -1), (-1, 0, -1),
              (0, 1, 1), (0, -1, 1), (0, 1, -1), (0, -1, -1), (1, 1, 0), (0, -1, 1), (-1, 1, 0), (0, -1, -1))
_GRAD_X = tuple(float(g[0]) for g in _GRADIENTS)
_GRAD_Y = tuple(float(g[1]) for g in _GRADIENTS)
_GRAD_Z = tuple(float(g[2]) for g in _GRADIENTS)
MAX_OCTAVES = 32


def _mix(h):
    h = h ^ (h >> 16)
    h = (h * 0x7FEB352D) & _M
    h = h ^ (h >> 15)
    h = (h * 0x846CA68B) & _M
    return h ^ (h >> 16)


def _seeds(like):
    # a tensor xor with a Python int above 2**31 takes a slow path (20x); 0-d tensors do not
    if isinstance(like, torch.Tensor):
        return tuple(torch.tensor(s, dtype=torch.int64, device=like.device) for s in _SEEDS)
    return _SEEDS


def _hash(ix, iy, iz):
    seeds = _seeds(ix)
    h = _mix((ix & _M) ^ seeds[0])
    h = _mix(h ^ (iy & _M) ^ seeds[1])
    return _mix(h ^ (iz & _M) ^ seeds[2])


def _fade(t):
    return t * t * t * (t * (t * 6.0 - 15.0) + 10.0)


class _Scalar:
    @staticmethod
    def to_float(h, like):
        return float(h)

    @staticmethod
    def split(v):
        f = math.floor(v)
        return int(f), v - f

    @staticmethod
    def grad(h, x, y, z):
        k = h & 15
        return _GRAD_X[k] * x + _GRAD_Y[k] * y + _GRAD_Z[k] * z


class _Tensor:
    @staticmethod
    def to_float(h, like):
        return h.to(like.dtype)

    @staticmethod
    def split(v):
        f = torch.floor(v)
        return f.to(torch.int64), v - f

    @staticmethod
    def grad(h, x, y, z):
        k = h & 15
        table = torch.tensor((_GRAD_X, _GRAD_Y, _GRAD_Z), dtype=x.dtype, device=x.device)
        return table[0][k] * x + table[1][k] * y + table[2][k] * z


def _backend(*values):
    for v in values:
        if isinstance(v, torch.Tensor):
            return _Tensor
    return _Scalar


def _as_tensors(values):
    tensors = [v for v in values if isinstance(v, torch.Tensor)]
    if not tensors:
        return [float(v) for v in values]
    dtype = torch.float64 if any(t.dtype == torch.float64 for t in tensors) else torch.float32
    device = tensors[0].device
    out = [torch.as_tensor(v, dtype=dtype, device=device) for v in values]
    shape = torch.broadcast_shapes(*(t.shape for t in out))
    return [t.expand(shape) for t in out]


def _lerp(t, a, b):
    return a + t * (b - a)


def _corners(x, y, z, value):
    """Trilinear quintic blend of ``value(hash, fx, fy, fz, B)`` over the 8 lattice corners.

    The hash of a corner is :func:`_hash`; its x and xy stages are shared between the corners
    that have them in common (14 mixes instead of 24).
    """
    B = _backend(x, y, z)
    x, y, z = _as_tensors((x, y, z))
    ix, fx = B.split(x)
    iy, fy = B.split(y)
    iz, fz = B.split(z)
    u, v, w = _fade(fx), _fade(fy), _fade(fz)
    seeds = _seeds(ix)
    hx = [_mix(((ix + d) & _M) ^ seeds[0]) for d in (0, 1)]
    hz = [((iz + d) & _M) ^ seeds[2] for d in (0, 1)]
    blended = []
    for dy in (0, 1):
        ys = ((iy + dy) & _M) ^ seeds[1]
        hxy = [_mix(h ^ ys) for h in hx]
        row = []
        for dz in (0, 1):
            c0 = value(_mix(hxy[0] ^ hz[dz]), fx, fy - dy, fz - dz, B)
            c1 = value(_mix(hxy[1] ^ hz[dz]), fx - 1.0, fy - dy, fz - dz, B)
            row.append(_lerp(u, c0, c1))
        blended.append(row)
    return _lerp(w, _lerp(v, blended[0][0], blended[1][0]), _lerp(v, blended[0][1], blended[1][1]))


def _gradient_corner(h, fx, fy, fz, B):
    return B.grad(h, fx, fy, fz)


def _value_corner(h, fx, fy, fz, B):
    return B.to_float(h, fx) * (1.0 / 4294967296.0)


def _noise1(x):
    """1-D gradient noise: a gradient in -1..1 per integer, doubled to span -1..1 (the 3-D
    noise along an axis would be flat wherever both gradients lie across that axis)."""
    B = _backend(x)
    (x,) = _as_tensors((x,))
    ix, fx = B.split(x)
    g0 = B.to_float(_hash(ix, 0, 0) & 0xFFFF, fx) * (2.0 / 65535.0) - 1.0
    g1 = B.to_float(_hash(ix + 1, 0, 0) & 0xFFFF, fx) * (2.0 / 65535.0) - 1.0
    return 2.0 * _lerp(_fade(fx), g0 * fx, g1 * (fx - 1.0))


def noise(x, y=None, z=None):
    """Improved Perlin gradient noise in -1..1; 0 at integer lattice points.

    One argument is 1-D gradient noise; two are the z = 0 slice of the 3-D noise. The 3-D blend
    can reach about 1.04 in rare spots; it is clamped to the documented -1..1.
    """
    if y is None and z is None:
        return _noise1(x)
    n = _corners(x, 0.0 if y is None else y, 0.0 if z is None else z, _gradient_corner)
    if isinstance(n, torch.Tensor):
        return n.clamp(-1.0, 1.0)
    return -1.0 if n < -1.0 else 1.0 if n > 1.0 else n


def random(x, y=0.0, z=0.0):
    """Smooth value noise in 0..1; deterministic in its arguments."""
    return _corners(x, y, z, _value_corner)


def _octaves(octaves):
    if isinstance(octaves, torch.Tensor):
        octaves = float(octaves.max()) if octaves.numel() else 0.0
    if octaves != octaves:  # nan
        return 0
    return max(0, min(MAX_OCTAVES, int(octaves)))


def _fractal(x, y, z, octaves, lacunarity, gain, absolute):
    count = _octaves(octaves)
    per_pixel = isinstance(octaves, torch.Tensor)
    total = 0.0
    scale, weight = 1.0, 1.0
    for i in range(count):
        n = noise(x * scale, y * scale, z * scale)
        term = weight * (abs(n) if absolute else n)
        if per_pixel:  # octaves differ per pixel: octave i counts where octaves >= i + 1
            term = term * (octaves >= i + 1).to(octaves.dtype if octaves.is_floating_point() else torch.float32)
        total = total + term
        scale = scale * lacunarity
        weight = weight * gain
    return total


def fbm(x, y, z, octaves, lacunarity, gain):
    """Fractional Brownian motion: ``sum gain**i * noise(lacunarity**i * p)`` for ``i < octaves``."""
    return _fractal(x, y, z, octaves, lacunarity, gain, False)


def turbulence(x, y, z, octaves, lacunarity, gain):
    """Like :func:`fbm` with the absolute value of each octave's noise."""
    return _fractal(x, y, z, octaves, lacunarity, gain, True)
