"""Luminance/chroma ("YC") EXR channels to RGB, the way OpenEXR's RGBA interface reads them.

An EXR written in YC mode stores luminance ``Y`` at full resolution and two chroma channels
``RY = (R - Y) / Y`` and ``BY = (B - Y) / Y``, usually subsampled 2x2, where
``Y = yw . (R, G, B)`` with weights ``yw`` derived from the file's ``chromaticities`` (Rec. 709
primaries and D65 white when the header has none). Reading them back as RGB follows the steps
OpenEXR documents for its ``RgbaInputFile`` (ImfRgbaYca.h), so a file reads here as it does in
any application built on that interface:

1. chroma reconstruction: samples sit on even columns of even rows; the missing columns, then the
   missing rows, are filled by the 14-tap windowed-sinc filter of :data:`RECONSTRUCT_TAPS`
   (taps at odd distances 1, 3, ... 13), the sample grid extended by repeating its edge samples;
2. ``R = (RY + 1) Y``, ``B = (BY + 1) Y``, ``G = (Y - yw_r R - yw_b B) / yw_g``, with zero
   chroma giving exactly ``R = G = B = Y`` (so grey images round-trip losslessly);
3. "fix saturation": a pixel more saturated than the mean of its four diagonal neighbours by
   the documented margin is desaturated, keeping its luminance, to undo filter ringing.

Every intermediate is stored as half, as the interface's ``Rgba`` buffers are, and arithmetic
runs in float32 in the same order, so results are meant to match the library bit for bit.
Chroma that is not subsampled skips steps 1 and 3 (OpenEXR's interface refuses such files; the
plain formulas are the only sensible reading). A ``Y`` channel without chroma is grey:
``R = G = B = Y``, kept at the file's precision.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

#: Rec. 709 primaries and D65 white (x, y pairs for red, green, blue, white): OpenEXR's default.
REC709 = (0.64, 0.33, 0.30, 0.60, 0.15, 0.06, 0.3127, 0.3290)

#: Reconstruction filter weights for neighbours at distance 1, 3, 5, ... 13 (both sides).
RECONSTRUCT_TAPS = (0.627123, -0.186077, 0.087929, -0.043159, 0.019597, -0.007540, 0.002128)

_F32 = np.float32


def luminance_weights(chromaticities: Sequence[float] | None) -> np.ndarray:
    """``yw``: the Y row of the RGB->XYZ matrix of these chromaticities (white Y = 1), normalised.

    The matrix columns are each primary's xyz scaled so that RGB (1, 1, 1) gives the white
    point's XYZ; ``yw[i]`` is primary i's Y. Computed in float64, returned as float32.
    """
    rx, ry, gx, gy, bx, by, wx, wy = (float(v) for v in (chromaticities or REC709))
    xyz = np.array([[rx / ry, gx / gy, bx / by],
                    [1.0, 1.0, 1.0],
                    [(1 - rx - ry) / ry, (1 - gx - gy) / gy, (1 - bx - by) / by]])
    white = np.array([wx / wy, 1.0, (1 - wx - wy) / wy])
    scale = np.linalg.solve(xyz, white)
    return (scale / scale.sum()).astype(_F32)


def _filtered(samples: list[np.ndarray]) -> np.ndarray:
    """Sum of the 14 taps in the library's order (farthest-left first), float32, rounded to half.

    ``samples`` holds the 14 neighbour arrays from left/top (distance 13) to right/bottom.
    """
    weights = RECONSTRUCT_TAPS[::-1] + RECONSTRUCT_TAPS
    acc = samples[0].astype(_F32) * _F32(weights[0])
    for s, w in zip(samples[1:], weights[1:]):
        acc = acc + s.astype(_F32) * _F32(w)
    return acc.astype(np.float16)


def _upsample_columns(sub: np.ndarray, width: int) -> np.ndarray:
    """Rows of chroma samples (on even columns) to full ``width``: odd columns filtered."""
    cols = sub.shape[1]
    out = np.empty((sub.shape[0], width), np.float16)
    out[:, 0::2] = sub[:, : (width + 1) // 2]
    k = np.arange(width // 2)  # odd column 2k+1 lies between samples k and k+1
    taps = [sub[:, np.clip(k + d, 0, cols - 1)] for d in range(-6, 8)]
    out[:, 1::2] = _filtered(taps)
    return out


def _row_chroma(rows: np.ndarray, virtual: np.ndarray) -> np.ndarray:
    """Full-resolution chroma of ``virtual`` row indices (may lie outside the image).

    ``rows`` holds the column-filtered chroma rows (image rows 0, 2, 4, ...). Even rows are
    those rows (index clamped to the grid); odd rows are filtered from the 14 sample rows
    around them, the grid extended by repeating its first and last rows.
    """
    count = rows.shape[0]
    out = np.empty((len(virtual), rows.shape[1]), np.float16)
    even = virtual % 2 == 0
    out[even] = rows[np.clip(virtual[even] // 2, 0, count - 1)]
    odd = virtual[~even]
    if len(odd):
        base = (odd - 13) // 2
        out[~even] = _filtered([rows[np.clip(base + t, 0, count - 1)] for t in range(14)])
    return out


def _to_rgb(y: np.ndarray, ry: np.ndarray, by: np.ndarray, yw: np.ndarray) -> np.ndarray:
    """YCA -> RGB as ``[3, H, W]`` half; zero chroma gives R = G = B = Y exactly."""
    yf = y.astype(_F32)
    r = (ry.astype(_F32) + _F32(1)) * yf
    b = (by.astype(_F32) + _F32(1)) * yf
    g = (yf - r * yw[0] - b * yw[2]) / yw[1]
    grey = (ry == 0) & (by == 0)
    out = np.stack([np.where(grey, y, r.astype(np.float16)), np.where(grey, y, g.astype(np.float16)),
                    np.where(grey, y, b.astype(np.float16))])
    return out.astype(np.float16)


def _saturation(rgb: np.ndarray) -> np.ndarray:
    hi = rgb.max(axis=0).astype(_F32)
    lo = rgb.min(axis=0).astype(_F32)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(hi > 0, _F32(1) - lo / hi, _F32(0)).astype(_F32)


def _fix_saturation(rgb: np.ndarray, above: np.ndarray, below: np.ndarray, yw: np.ndarray) -> np.ndarray:
    """Desaturate pixels far more saturated than their diagonal neighbours (rows above/below
    the image are given; columns repeat at the edges), keeping luminance."""
    def diagonal_sum(s: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        padded = np.concatenate([s[:, :1], s, s[:, -1:]], axis=1)
        return padded[:, :-2], padded[:, 2:]

    up = _saturation(np.concatenate([above[:, None], rgb[:, :-1]], axis=1))
    down = _saturation(np.concatenate([rgb[:, 1:], below[:, None]], axis=1))
    a0, a2 = diagonal_sum(up)
    b0, b2 = diagonal_sum(down)
    s_mean = np.minimum(_F32(1), _F32(0.25) * (((a0 + a2) + b0) + b2))
    s = _saturation(rgb)
    s_max = np.minimum(_F32(1), _F32(1) - (_F32(1) - s_mean) * _F32(0.25))
    fix = (s > s_mean) & (s > s_max)
    if not fix.any():
        return rgb
    inp = rgb[:, fix].astype(_F32)
    f = s_max[fix] / s[fix]
    hi = inp.max(axis=0)
    out = np.maximum(hi - (hi - inp) * f, _F32(0)).astype(np.float16)
    y_in = inp[0] * yw[0] + inp[1] * yw[1] + inp[2] * yw[2]
    of = out.astype(_F32)
    y_out = of[0] * yw[0] + of[1] * yw[1] + of[2] * yw[2]
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = y_in / y_out
    out = np.where(y_out > 0, (of * ratio).astype(np.float16), out)
    result = rgb.copy()
    result[:, fix] = out
    return result


def yc_to_rgb(y: np.ndarray, ry: np.ndarray | None, by: np.ndarray | None, sampling: tuple[int, int],
              chromaticities: Sequence[float] | None = None) -> np.ndarray:
    """RGB ``[3, H, W]`` (half) from luminance ``y`` ``[H, W]`` and chroma planes as stored.

    ``ry`` / ``by`` hold the stored samples (``[ceil(H/ys), ceil(W/xs)]``); a missing one reads
    as zero chroma. ``sampling`` is the chroma's (x, y) subsampling: (2, 2) is reconstructed as
    OpenEXR does; (1, 1) is used as is; other rates are repeated to full size.
    """
    h, w = y.shape
    yh = y.astype(np.float16)
    shape = ry.shape if ry is not None else by.shape  # type: ignore[union-attr]
    ry = np.zeros(shape, np.float16) if ry is None else ry.astype(np.float16)
    by = np.zeros(shape, np.float16) if by is None else by.astype(np.float16)
    yw = luminance_weights(chromaticities)
    if sampling == (1, 1):
        return _to_rgb(yh, ry, by, yw)
    if sampling != (2, 2):
        xs, ys = sampling
        full = [np.repeat(np.repeat(c, ys, axis=0), xs, axis=1)[:h, :w] for c in (ry, by)]
        return _to_rgb(yh, full[0], full[1], yw)
    rows = np.arange(-1, h + 1)  # one extra row each side feeds the saturation fix
    chroma = [_row_chroma(_upsample_columns(c, w), rows) for c in (ry, by)]
    # rows outside the image take the luminance of the row the library reads for them
    y_ext = yh[np.concatenate([[0], np.arange(h), [max(h - 2, 0)]])]
    rgb = _to_rgb(y_ext, chroma[0], chroma[1], yw)
    return _fix_saturation(rgb[:, 1:-1], rgb[:, 0], rgb[:, -1], yw)


def grey_from_luminance(y: np.ndarray) -> np.ndarray:
    """``[3, H, W]``: a luminance-only image as grey RGB (R = G = B = Y, precision kept)."""
    return np.stack([y, y, y])


class Plane:
    """A full-resolution plane made by the reader (luminance/chroma converted to RGB)."""

    xSampling = ySampling = 1

    def __init__(self, pixels: np.ndarray):
        self.pixels = pixels


def luminance_chroma_to_rgb(planes: dict[str, Any], header: Mapping[str, Any]) -> dict[str, Any]:
    """File channels (name -> channel with ``pixels`` and sampling) with luminance/chroma
    channels (``Y``, ``RY``, ``BY``, per layer) replaced by ``R``, ``G``, ``B`` planes.

    A layer with ``Y`` and chroma but no ``R``/``G``/``B`` is converted with the part's
    chromaticities (:func:`yc_to_rgb`); a bare ``Y`` without chroma or RGB becomes grey RGB.
    A layer's ``Y`` alone (``P.Y`` of ``P.X P.Y P.Z``) is left as it is.
    """
    out = dict(planes)
    for name in [n for n in planes if n == "Y" or n.endswith(".Y")]:
        prefix = name[:-1]
        if any(prefix + c in planes for c in ("R", "G", "B")):
            continue
        y = planes[name]
        if (int(y.xSampling), int(y.ySampling)) != (1, 1):
            continue
        ry, by = planes.get(prefix + "RY"), planes.get(prefix + "BY")
        if ry is None and by is None:
            if prefix:
                continue
            rgb = grey_from_luminance(np.asarray(y.pixels))
        else:
            c = ry if ry is not None else by
            rgb = yc_to_rgb(np.asarray(y.pixels), None if ry is None else np.asarray(ry.pixels),
                            None if by is None else np.asarray(by.pixels),
                            (int(c.xSampling), int(c.ySampling)), header.get("chromaticities"))
        for key in (name, prefix + "RY", prefix + "BY"):
            out.pop(key, None)
        for comp, plane in zip("RGB", rgb):
            out[prefix + comp] = Plane(plane)
    return out
