"""Tensor kernels of the Roto nodes: Bezier flattening, anti-aliased polygon coverage, feather band.

All coordinates here are pixels of the output tensor: x right, y *down*, pixel ``(r, c)`` covering
``[c, c+1) x [r, r+1)``. Pure functions of tensors, callable without a graph.

- :func:`segment_counts` flattens cubic Bezier segments adaptively: each segment gets
  ``n = ceil(sqrt(3/4 * M / tol))`` equal steps (Wang's bound, ``M`` the largest second difference
  of its control points), so the polyline is within ``tol`` pixels of the curve.
- :func:`coverage` is the fraction of each pixel inside a polygon by the non-zero winding rule:
  ``sub`` sub-scanlines per pixel row, and along each sub-scanline the exact covered length
  (a crossing inside a pixel adds the part of the pixel to its right), i.e. analytic
  horizontally and ``sub``-times supersampled vertically. Winding counts above one are clamped to
  one (non-zero rule; Nuke's rule for self-overlapping shapes could not be checked against Nuke).
- :func:`band` rasterises the feather band: the quads between corresponding points of the inner
  and outer polylines, split into triangles carrying 1 on the inner side and 0 on the outer,
  interpolated linearly (barycentric) and sampled at pixel centres; overlapping triangles keep the
  largest value.
"""

from __future__ import annotations

import torch

#: Flattening tolerance in pixels.
TOLERANCE = 0.002
#: Sub-scanlines per pixel row in :func:`coverage`.
SUBSAMPLES = 16
_CHUNK = 1 << 22


def segment_counts(ctrl: torch.Tensor, tol: float = TOLERANCE) -> torch.Tensor:
    """Steps per cubic segment, ``ctrl`` ``[S, 4, 2]`` (start, handle, handle, end)."""
    d1 = ctrl[:, 0] - 2 * ctrl[:, 1] + ctrl[:, 2]
    d2 = ctrl[:, 1] - 2 * ctrl[:, 2] + ctrl[:, 3]
    m = torch.maximum(d1.norm(dim=1), d2.norm(dim=1))
    return torch.ceil(torch.sqrt(0.75 * m / tol)).clamp(1, 4096).long()


def sample(ctrl: torch.Tensor, counts: torch.Tensor) -> torch.Tensor:
    """The points at ``t = k / n``, ``k < n``, of each segment, in order: a closed polyline ``[N, 2]``."""
    seg = torch.repeat_interleave(torch.arange(len(ctrl), device=ctrl.device), counts)
    start = torch.cumsum(counts, 0) - counts
    k = torch.arange(int(counts.sum()), device=ctrl.device) - start[seg]
    t = (k.to(ctrl.dtype) / counts[seg].to(ctrl.dtype))[:, None]
    u = 1 - t
    c = ctrl[seg]
    return u ** 3 * c[:, 0] + 3 * u * u * t * c[:, 1] + 3 * u * t * t * c[:, 2] + t ** 3 * c[:, 3]


def signed_area(poly: torch.Tensor) -> float:
    """Shoelace area (positive for counter-clockwise in y-down pixels, i.e. clockwise on screen)."""
    q = poly.roll(-1, 0)
    return float((poly[:, 0] * q[:, 1] - q[:, 0] * poly[:, 1]).sum() / 2)


def coverage(poly: torch.Tensor, h: int, w: int, sub: int = SUBSAMPLES) -> torch.Tensor:
    """Non-zero coverage ``[h, w]`` of the closed polygon ``poly`` ``[N, 2]`` (see the module docs)."""
    dt = poly.dtype
    out = torch.zeros((h, w), device=poly.device, dtype=dt)
    if len(poly) < 3 or h == 0 or w == 0:
        return out
    p0, p1 = poly, poly.roll(-1, 0)
    y0, y1 = p0[:, 1] * sub, p1[:, 1] * sub
    lo, hi = torch.minimum(y0, y1), torch.maximum(y0, y1)
    j0 = torch.ceil(lo - 0.5).clamp(0, h * sub).long()
    j1 = torch.ceil(hi - 0.5).clamp(0, h * sub).long()
    n = (j1 - j0).clamp(min=0)
    total = int(n.sum())
    if total == 0:
        return out
    edge = torch.repeat_interleave(torch.arange(len(poly), device=poly.device), n)
    j = j0[edge] + torch.arange(total, device=poly.device) - (torch.cumsum(n, 0) - n)[edge]
    yc = (j.to(dt) + 0.5) / sub
    a, b = p0[edge], p1[edge]
    x = a[:, 0] + (yc - a[:, 1]) * (b[:, 0] - a[:, 0]) / (b[:, 1] - a[:, 1])
    d = torch.sign(b[:, 1] - a[:, 1])
    xc = x.clamp(0, w)
    ix = torch.floor(xc).long()
    frac = xc - ix
    stride = w + 2
    rows = max(1, _CHUNK // (sub * stride))
    for r0 in range(0, h, rows):
        r1 = min(h, r0 + rows)
        pick = (j >= r0 * sub) & (j < r1 * sub)
        if not bool(pick.any()):
            continue
        # float32 sums: a row's running winding is a sum of +-1 and fractions, exact enough
        acc = torch.zeros(((r1 - r0) * sub * stride,), device=poly.device, dtype=torch.float32)
        base = (j[pick] - r0 * sub) * stride + ix[pick]
        acc.index_add_(0, base, (d[pick] * (1 - frac[pick])).float())
        acc.index_add_(0, base + 1, (d[pick] * frac[pick]).float())
        wind = acc.view(-1, stride)[:, :w].cumsum(1)
        out[r0:r1] = wind.abs_().clamp_(max=1).view(r1 - r0, sub, w).mean(1).to(dt)
    # float32 round-off of the running sums: snap within 1e-5 of 0 and 1 (whole pixels exact)
    out[out < 1e-5] = 0
    out[out > 1 - 1e-5] = 1
    return out


def band(inner: torch.Tensor, outer: torch.Tensor, h: int, w: int) -> torch.Tensor:
    """The feather ramp ``[h, w]`` between corresponding closed polylines (see the module docs)."""
    dt = inner.dtype
    out = torch.zeros((h * w,), device=inner.device, dtype=dt)
    if len(inner) < 2 or h == 0 or w == 0:
        return out.view(h, w)
    i1, o1 = inner.roll(-1, 0), outer.roll(-1, 0)
    one = torch.ones(len(inner), device=inner.device, dtype=dt)
    zero = torch.zeros_like(one)
    tri = torch.cat([torch.stack([inner, i1, o1], 1), torch.stack([inner, o1, outer], 1)])
    val = torch.cat([torch.stack([one, one, zero], 1), torch.stack([one, zero, zero], 1)])
    e1, e2 = tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0]
    den = e1[:, 0] * e2[:, 1] - e1[:, 1] * e2[:, 0]
    c0 = torch.ceil(tri[..., 0].amin(1) - 0.5).clamp(0, w).long()
    c1 = (torch.floor(tri[..., 0].amax(1) - 0.5) + 1).clamp(0, w).long()
    r0 = torch.ceil(tri[..., 1].amin(1) - 0.5).clamp(0, h).long()
    r1 = (torch.floor(tri[..., 1].amax(1) - 0.5) + 1).clamp(0, h).long()
    nx, ny = (c1 - c0).clamp(min=0), (r1 - r0).clamp(min=0)
    keep = (den.abs() > 1e-12) & (nx > 0) & (ny > 0)
    tri, val, den, c0, r0, nx, ny = (t[keep] for t in (tri, val, den, c0, r0, nx, ny))
    counts = nx * ny
    ends = torch.cumsum(counts, 0)
    start = 0
    while start < len(tri):  # triangles in batches of at most _CHUNK samples
        limit = (ends[start - 1] if start else 0) + _CHUNK
        stop = max(start + 1, int(torch.searchsorted(ends, limit, right=True)))
        sl = slice(start, stop)
        cnt = counts[sl]
        idx = torch.repeat_interleave(torch.arange(stop - start, device=inner.device), cnt)
        k = torch.arange(int(cnt.sum()), device=inner.device) - (torch.cumsum(cnt, 0) - cnt)[idx]
        col = c0[sl][idx] + k % nx[sl][idx]
        row = r0[sl][idx] + torch.div(k, nx[sl][idx], rounding_mode="floor")
        t = tri[sl][idx]
        px, py = col.to(dt) + 0.5 - t[:, 0, 0], row.to(dt) + 0.5 - t[:, 0, 1]
        e1s, e2s = t[:, 1] - t[:, 0], t[:, 2] - t[:, 0]
        dd = den[sl][idx]
        l1 = (px * e2s[:, 1] - py * e2s[:, 0]) / dd
        l2 = (e1s[:, 0] * py - e1s[:, 1] * px) / dd
        l0 = 1 - l1 - l2
        inside = (l0 >= -1e-9) & (l1 >= -1e-9) & (l2 >= -1e-9)
        v = val[sl][idx]
        value = (l0 * v[:, 0] + l1 * v[:, 1] + l2 * v[:, 2]).clamp(0, 1)
        value = torch.where(inside, value, torch.zeros_like(value))
        out.scatter_reduce_(0, row * w + col, value, reduce="amax")
        start = stop
    return out.view(h, w)


def falloff(t: torch.Tensor, kind: str, exponent: float) -> torch.Tensor:
    """The feather ramp ``t`` (1 at the shape, 0 at the feather edge) shaped as Ramp's types:
    smooth ``3t^2 - 2t^3`` (flat at both ends), linear ``t``, smooth0 ``t^2`` (flat at the feather
    edge), smooth1 ``1 - (1-t)^2`` (flat at the shape); then raised to ``exponent`` (the feather
    falloff, 1 by default)."""
    if kind == "smooth":
        t = t * t * (3 - 2 * t)
    elif kind == "smooth0":
        t = t * t
    elif kind == "smooth1":
        t = 1 - (1 - t) ** 2
    return t if exponent == 1 else t.clamp(min=0) ** exponent


def vertex_normals(poly: torch.Tensor) -> torch.Tensor:
    """Unit normals at the vertices of a closed polyline (the mean of the two edges' normals),
    pointing to the polygon's outside."""
    e_next = poly.roll(-1, 0) - poly
    e_prev = poly - poly.roll(1, 0)
    def unit(v: torch.Tensor) -> torch.Tensor:
        return v / v.norm(dim=1, keepdim=True).clamp(min=1e-12)
    t = unit(unit(e_next) + unit(e_prev))
    n = torch.stack([t[:, 1], -t[:, 0]], 1)
    return n if signed_area(poly) >= 0 else -n


__all__ = ["SUBSAMPLES", "TOLERANCE", "band", "coverage", "falloff", "sample", "segment_counts", "signed_area",
           "vertex_normals"]
