"""Compare images and frame sequences per frame and channel: max abs, RMS and PSNR.

Used by ``nodegraph compare`` and :mod:`nodegraph.testing`. Rules:

- Channels are matched by name (``rgba.red``...); one missing on either side fails that frame.
- Data windows are compared over their union; pixels outside a side's window count as 0.
- NaN equals NaN; NaN (or an infinity) against anything else is a mismatch and fails the frame.
  ``max_abs`` and ``rms`` are taken over the pixels finite on both sides; mismatched non-finite
  pixels are counted in ``nonfinite`` and show as +Inf in difference images.
- PSNR is ``10 log10(peak^2 / MSE)`` with ``peak = 1.0`` (scene-linear 1.0, the usual display
  white); identical channels have infinite PSNR (``None`` in JSON).
- A channel fails when ``max_abs > atol`` or any non-finite mismatch; a frame fails when a channel
  fails, a channel is missing, the display windows differ, or an image cannot be produced.
- Files are compared as stored: no colour conversion.
"""

from __future__ import annotations

import math
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterable, Sequence

import torch

from . import channels as chans
from .errors import NodeGraphError
from .image import Image

if TYPE_CHECKING:  # pragma: no cover
    from .graph import Graph

#: Peak signal value of the PSNR.
PSNR_PEAK = 1.0


@dataclass
class ChannelStats:
    """Statistics of one channel of one frame."""

    channel: str
    max_abs: float = 0.0
    rms: float = 0.0
    psnr: float = math.inf
    nonfinite: int = 0
    """Pixels where one side is NaN/Inf and the other differs."""
    missing: str | None = None
    """``"A"`` or ``"B"``: the side that lacks the channel."""
    ok: bool = True

    def as_dict(self) -> dict[str, Any]:
        return {"channel": self.channel, "max_abs": _num(self.max_abs), "rms": _num(self.rms),
                "psnr": _num(self.psnr), "nonfinite": self.nonfinite, "missing": self.missing, "ok": self.ok}

    def describe(self) -> str:
        if self.missing:
            return f"{self.channel}: missing in {self.missing}"
        text = f"{self.channel}: max abs {self.max_abs:.6g}, RMS {self.rms:.6g}, PSNR {_psnr_text(self.psnr)}"
        if self.nonfinite:
            text += f", {self.nonfinite} NaN/Inf mismatch(es)"
        return text


@dataclass
class ImageComparison:
    """The comparison of two images: per-channel stats and frame-level problems."""

    channels: list[ChannelStats] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    atol: float = 0.0

    @property
    def ok(self) -> bool:
        return not self.problems and all(c.ok for c in self.channels)

    def __getitem__(self, channel: str) -> ChannelStats:
        for c in self.channels:
            if c.channel == channel:
                return c
        raise KeyError(channel)

    @property
    def max_abs(self) -> float:
        return max((c.max_abs for c in self.channels if not c.missing), default=0.0)

    def failures(self) -> list[str]:
        """One line per problem and per failing channel."""
        return list(self.problems) + [c.describe() for c in self.channels if not c.ok]


@dataclass
class FrameResult:
    """One frame of a sequence comparison."""

    frame: int
    comparison: ImageComparison | None = None
    error: str | None = None
    diff_path: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None and self.comparison is not None and self.comparison.ok

    def failures(self) -> list[str]:
        if self.error is not None:
            return [self.error]
        return self.comparison.failures() if self.comparison is not None else []

    def as_dict(self) -> dict[str, Any]:
        return {"frame": self.frame, "ok": self.ok, "error": self.error,
                "problems": self.comparison.problems if self.comparison else [],
                "channels": [c.as_dict() for c in self.comparison.channels] if self.comparison else [],
                "diff": self.diff_path}


@dataclass
class CompareResult:
    """A sequence comparison: one :class:`FrameResult` per frame."""

    a: str
    b: str
    frames: list[FrameResult] = field(default_factory=list)
    atol: float = 0.0

    @property
    def ok(self) -> bool:
        return all(f.ok for f in self.frames)

    @property
    def failed(self) -> list[FrameResult]:
        return [f for f in self.frames if not f.ok]

    def as_dict(self) -> dict[str, Any]:
        return {"a": self.a, "b": self.b, "tolerance": self.atol, "psnr_peak": PSNR_PEAK, "ok": self.ok,
                "frames_compared": len(self.frames), "frames_failed": [f.frame for f in self.failed],
                "frames": [f.as_dict() for f in self.frames]}

    def report(self, *, limit: int = 50) -> str:
        """A readable per-frame, per-channel account of what failed."""
        lines = [f"{len(self.failed)} of {len(self.frames)} frame(s) differ ({self.a} vs {self.b}, "
                 f"tolerance {self.atol:g}):"]
        for f in self.failed[:limit]:
            lines.append(f"  frame {f.frame}:")
            lines.extend(f"    {msg}" for msg in f.failures())
            if f.diff_path:
                lines.append(f"    difference image: {f.diff_path}")
        if len(self.failed) > limit:
            lines.append(f"  ... and {len(self.failed) - limit} more frame(s)")
        return "\n".join(lines)


def _num(x: float) -> float | None:
    return None if math.isinf(x) or math.isnan(x) else float(x)


def _psnr_text(p: float) -> str:
    return "inf" if math.isinf(p) and p > 0 else f"{p:.2f} dB"


# --- images -----------------------------------------------------------------------------------
def _planes(img: Image, names: Iterable[str], box) -> torch.Tensor:
    sub = img.select([n for n in names]).crop_to(box)
    return sub.pixels.detach().to("cpu", torch.float64)


def compare_images(a: Image, b: Image, *, channels: str | Iterable[str] | None = None,
                   atol: float = 0.0) -> ImageComparison:
    """Compare two images channel by channel (see the module docstring for the rules).

    ``channels``: ``None`` for every channel of either image, else a selection (``"rgba"``,
    ``"rgba.alpha,depth.Z"``, a list, a layer name) expanded against both images.
    """
    atol = float(atol)
    result = ImageComparison(atol=atol)
    names = resolve_channels(channels, a, b)
    if a.format.display != b.format.display:
        result.problems.append(f"display windows differ: A {tuple(a.format.display)}, B {tuple(b.format.display)}")
    box = a.bbox.union(b.bbox)
    common = [n for n in names if n in a.channels and n in b.channels]
    pa, pb = _planes(a, common, box), _planes(b, common, box)
    diff = _abs_diff(pa, pb)
    for name in names:
        if name not in common:
            side = "A" if name not in a.channels else "B"
            result.channels.append(ChannelStats(name, missing=side, ok=False))
            continue
        d = diff[common.index(name)]
        bad = torch.isinf(d)
        finite = d[~bad]
        max_abs = float(finite.max()) if finite.numel() else 0.0
        mse = float((finite * finite).mean()) if finite.numel() else 0.0
        psnr = math.inf if mse == 0 else 10 * math.log10(PSNR_PEAK ** 2 / mse)
        stats = ChannelStats(name, max_abs, math.sqrt(mse), psnr, int(bad.sum()))
        stats.ok = stats.max_abs <= atol and stats.nonfinite == 0
        result.channels.append(stats)
    return result


def _abs_diff(pa: torch.Tensor, pb: torch.Tensor) -> torch.Tensor:
    """``|a - b|``; 0 where equal (NaN == NaN, Inf == Inf), +Inf where a non-finite value differs."""
    same = (pa == pb) | (torch.isnan(pa) & torch.isnan(pb))
    d = (pa - pb).abs()
    d = torch.where(same, torch.zeros_like(d), d)
    return torch.where(~same & ~(torch.isfinite(pa) & torch.isfinite(pb)), torch.full_like(d, math.inf), d)


def resolve_channels(spec: str | Iterable[str] | None, a: Image, b: Image) -> list[str]:
    """Channel names to compare: both images' channels in order, or ``spec`` expanded against them."""
    available = list(dict.fromkeys([*a.channels, *b.channels]))
    if spec is None or spec == "all":
        return available
    try:
        return list(chans.expand(spec, available))
    except NodeGraphError as err:
        raise NodeGraphError(f"--channels {spec!r}: {err.message}") from None


def difference_image(a: Image, b: Image, channels: Iterable[str] | None = None) -> Image:
    """Per-channel ``|A - B|`` over the union of the data windows (channels both images have)."""
    names = [n for n in (channels if channels is not None else resolve_channels(None, a, b))
             if n in a.channels and n in b.channels]
    box = a.bbox.union(b.bbox)
    d = _abs_diff(_planes(a, names, box), _planes(b, names, box)).to(torch.float32)
    return Image(d, tuple(names), box, a.format, {})


# --- sources ---------------------------------------------------------------------------------
_GRAPH_SPEC = re.compile(r"^(?P<path>.+\.json):(?P<node>[^:/\\]+)$")


class Source:
    """Where one side's frames come from: a file / sequence pattern, or a node of a graph."""

    label: str

    def frames(self) -> list[int] | None:
        """Frames this source can give, or None when any frame will do (a still)."""
        raise NotImplementedError

    def image(self, frame: int) -> Image:
        raise NotImplementedError


class FileSource(Source):
    """A single image file or a frame sequence pattern (``plate.####.exr``, ``%04d``, ``@``)."""

    def __init__(self, pattern: str | os.PathLike[str]) -> None:
        from nodegraph.io import sequence

        self.pattern = str(pattern)
        self.label = self.pattern
        self._seq = sequence.is_sequence(self.pattern)

    def frames(self) -> list[int] | None:
        from nodegraph.io import sequence

        return sequence.frames_on_disk(self.pattern) if self._seq else None

    def image(self, frame: int) -> Image:
        from nodegraph.io import read_image, sequence

        return read_image(sequence.frame_path(self.pattern, frame) if self._seq else self.pattern)


class GraphSource(Source):
    """A node of a graph, evaluated per frame (on ``device``, float32)."""

    def __init__(self, graph: "Graph | str | os.PathLike[str]", node: str, *, device: str = "cpu") -> None:
        from .evaluator import Evaluator
        from .graph import Graph

        if not isinstance(graph, Graph):
            self.label = f"{graph}:{node}"
            graph = Graph.load(graph)
        else:
            self.label = f"<graph>:{getattr(node, 'name', node)}"
        self.graph = graph
        self.node = graph.node(node).name
        graph.check([self.node])
        self.device = device
        self.evaluator = Evaluator(graph, max_cache_bytes=512 * 2**20, admit_on_reuse=True)

    def frames(self) -> Sequence[int] | None:
        from .render import MAX_RENDER_FRAMES

        rng = self.graph.frame_range(self.node)
        if rng is not None and rng[1] - rng[0] >= MAX_RENDER_FRAMES:
            raise NodeGraphError(f"frame range {rng[0]}-{rng[1]} has {rng[1] - rng[0] + 1:,} frames, more than "
                                 f"a comparison covers ({MAX_RENDER_FRAMES:,}); pick frames with --frames",
                                 node=self.node)
        return None if rng is None else range(rng[0], rng[1] + 1)

    def image(self, frame: int) -> Image:
        return self.evaluator.evaluate(self.node, frame, device=self.device)


def open_source(spec: "str | os.PathLike[str] | Source") -> Source:
    """``GRAPH.json:NODE`` -> :class:`GraphSource`; anything else is a file or sequence pattern."""
    if isinstance(spec, Source):
        return spec
    m = _GRAPH_SPEC.match(str(spec))
    if m and not os.path.exists(str(spec)):
        return GraphSource(m.group("path"), m.group("node"))
    return FileSource(spec)


def default_frames(a: Source, b: Source) -> list[int]:
    """Every frame either side has on disk; else the graph's range; a pair of stills compares frame 1."""
    files = [s for s in (a, b) if isinstance(s, FileSource)]
    pools = [s.frames() for s in files if s.frames() is not None]
    if any(pools):
        return sorted(set().union(*pools))
    if any(isinstance(s, FileSource) and s._seq for s in (a, b)):
        raise NodeGraphError(f"no frames of {' or '.join(s.label for s in files if s._seq)} exist on disk")
    for s in (a, b):
        frames = s.frames()
        if frames:
            return frames
    return [1]


# --- sequences -------------------------------------------------------------------------------
def compare_sequences(a: "str | os.PathLike[str] | Source", b: "str | os.PathLike[str] | Source", *,
                      frames: "str | Iterable[int] | None" = None,
                      channels: str | Iterable[str] | None = None, atol: float = 0.0,
                      diff_dir: str | os.PathLike[str] | None = None,
                      on_frame: Any = None) -> CompareResult:
    """Compare two sources frame by frame; write ``diff_dir/diff.####.exr`` for each failing frame.

    A frame that cannot be read or evaluated (missing file, node error) is a failing frame with
    the error as its message; it never stops the comparison of the other frames.
    """
    from nodegraph.io import sequence

    src_a, src_b = open_source(a), open_source(b)
    frame_list = (sequence.parse_frame_range(frames) if frames is not None
                  else default_frames(src_a, src_b))
    if not frame_list:
        raise NodeGraphError("no frames to compare")
    result = CompareResult(src_a.label, src_b.label, atol=float(atol))
    for frame in frame_list:
        fr = _compare_frame(src_a, src_b, frame, channels, float(atol), diff_dir)
        result.frames.append(fr)
        if on_frame is not None:
            on_frame(fr)
    return result


def _compare_frame(a: Source, b: Source, frame: int, channels: Any, atol: float,
                   diff_dir: str | os.PathLike[str] | None) -> FrameResult:
    images = []
    for side, src in (("A", a), ("B", b)):
        try:
            images.append(src.image(frame))
        except NodeGraphError as err:
            return FrameResult(frame, error=f"{side}: {err}")
    cmp = compare_images(images[0], images[1], channels=channels, atol=atol)
    result = FrameResult(frame, cmp)
    if not result.ok and diff_dir is not None:
        from nodegraph.io import write_image

        path = Path(diff_dir) / f"diff.{frame:04d}.exr"
        diff = difference_image(images[0], images[1], [c.channel for c in cmp.channels if not c.missing])
        if diff.channels:
            write_image(path, diff, datatype="float", create_directories=True)
            result.diff_path = str(path)
    return result


__all__ = ["PSNR_PEAK", "ChannelStats", "CompareResult", "FileSource", "FrameResult", "GraphSource",
           "ImageComparison", "Source", "compare_images", "compare_sequences", "default_frames",
           "difference_image", "open_source", "resolve_channels"]
