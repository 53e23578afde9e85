"""CopyCat's data set: input / ground-truth frame pairs pulled through the evaluator, and crops.

The frames are evaluated like any other pull (so the inputs can be any comp), cut to the display
window, reduced to the chosen channels, encoded with :func:`nodegraph.ml.transfer.encode` and
kept in memory as ``[N, C, H, W]`` tensors: on the GPU when they fit comfortably, else on the host.

Crops are not uniform: crop centres are drawn from a mixture of an importance map (where input
and ground truth differ, in encoded values) and a uniform distribution, so a matte or a repair
that touches a small part of the frame still gets most of the steps. Each crop is randomly
flipped and rotated by a multiple of 90 degrees.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import torch
import torch.nn.functional as F

from nodegraph import channels as chans
from nodegraph.errors import ChannelError, KnobError, MissingFrameError, NodeGraphError

if TYPE_CHECKING:  # pragma: no cover
    from nodegraph.graph import Graph
    from nodegraph.image import Image
    from nodegraph.node import Node

#: Importance maps are kept at 1/CELL resolution; a centre is a cell, then a pixel inside it.
CELL = 8
#: Share of crops drawn uniformly (the rest follow the importance map).
UNIFORM_SHARE = 0.4


class DataSetError(NodeGraphError):
    """The data set cannot be built: missing frames, channels or inputs, mismatched sizes."""


@dataclass
class DataSet:
    """Encoded frame pairs and the crop sampler over them."""

    frames: list[int]
    channels_in: tuple[str, ...]
    channels_out: tuple[str, ...]
    x: torch.Tensor  # [N, Cin, H, W] encoded input
    y: torch.Tensor  # [N, Cout, H, W] encoded ground truth
    hashes: list[list[str]] = field(default_factory=list)  # per frame: [input hash, ground-truth hash]
    weights: torch.Tensor | None = None  # [N * h * w] crop-centre probabilities over cells

    @property
    def size(self) -> int:
        return len(self.frames)

    @property
    def width(self) -> int:
        return int(self.x.shape[-1])

    @property
    def height(self) -> int:
        return int(self.x.shape[-2])

    @property
    def nbytes(self) -> int:
        return self.x.numel() * self.x.element_size() + self.y.numel() * self.y.element_size()

    def describe(self) -> dict[str, Any]:
        """What the resume file records to recognise this data set again."""
        return {"frames": list(self.frames), "channels_in": list(self.channels_in),
                "channels_out": list(self.channels_out), "width": self.width, "height": self.height,
                "hashes": [list(h) for h in self.hashes]}

    def to(self, device: torch.device) -> "DataSet":
        self.x = self.x.to(device)
        self.y = self.y.to(device)
        return self

    # --- sampling ---------------------------------------------------------------------------
    def build_importance(self, crop: int) -> None:
        """Crop-centre probabilities: |encode(in) - encode(gt)| smoothed over about a crop, mixed
        with uniform. When input and output channel counts differ, the ground truth's local
        contrast stands in for the difference (edges of a matte are what needs learning)."""
        with torch.no_grad():
            x = self.x.float().cpu()
            y = self.y.float().cpu()
            if x.shape[1] == y.shape[1]:
                diff = (x - y).abs().mean(1, keepdim=True)
            else:
                gy = F.pad(y, (1, 1, 1, 1), mode="replicate")
                diff = ((gy[..., 1:-1, 2:] - gy[..., 1:-1, :-2]).abs()
                        + (gy[..., 2:, 1:-1] - gy[..., :-2, 1:-1]).abs()).mean(1, keepdim=True)
            cells = F.avg_pool2d(diff, CELL, ceil_mode=True)
            k = max(1, crop // (2 * CELL)) | 1
            cells = F.avg_pool2d(cells, k, stride=1, padding=k // 2, count_include_pad=False)
            imp = cells.flatten().clamp_min(0)
            n = imp.numel()
            total = float(imp.sum())
            uniform = torch.full((n,), 1.0 / n)
            self.weights = uniform if total <= 0 or not torch.isfinite(imp).all() else (
                UNIFORM_SHARE * uniform + (1 - UNIFORM_SHARE) * imp / total)
            self._cells = (int(cells.shape[-2]), int(cells.shape[-1]))

    def cdf(self, device: torch.device) -> torch.Tensor:
        """Cumulative crop-centre probabilities (float64) on ``device``, kept per device."""
        cache = self.__dict__.setdefault("_cdf", {})
        key = str(device)
        if key not in cache:
            cache[key] = torch.cumsum(self.weights.double(), 0).to(device)
        return cache[key]

    def sample(self, batch: int, crop: int, gen: torch.Generator, *, augment: bool = True
               ) -> tuple[torch.Tensor, torch.Tensor]:
        """A batch of random crops ``([B, Cin, crop, crop], [B, Cout, crop, crop])``, same device as the data.

        Everything is drawn on the generator's device and cut out with one gather per tensor, so on
        the GPU no value comes back to the host (no sync) and the launch count does not grow with
        the batch. A crop centre is a cell drawn by the importance map (inverse CDF) plus a uniform
        pixel inside it; the crop is clamped inside the frame and transformed by one of the 8
        symmetries of the square (:func:`_augment`'s numbering). On CUDA the crops come back in
        channels_last layout."""
        if self.weights is None:
            self.build_importance(crop)
        ch, cw = self._cells
        gdev, dev = gen.device, self.x.device
        cdf = self.cdf(gdev)
        u = torch.rand(batch, generator=gen, device=gdev, dtype=torch.float64) * cdf[-1]
        idx = torch.searchsorted(cdf, u, right=True).clamp_(max=cdf.numel() - 1)
        jy = torch.randint(0, CELL, (batch,), generator=gen, device=gdev)
        jx = torch.randint(0, CELL, (batch,), generator=gen, device=gdev)
        ops = torch.randint(0, 8, (batch,), generator=gen, device=gdev) if augment \
            else torch.zeros(batch, dtype=torch.long, device=gdev)
        idx, jy, jx, ops = (t.to(dev, non_blocking=True) for t in (idx, jy, jx, ops))
        frame = idx // (ch * cw)
        cell = idx % (ch * cw)
        y0 = ((cell // cw) * CELL + jy - crop // 2).clamp(0, self.height - crop)
        x0 = ((cell % cw) * CELL + jx - crop // 2).clamp(0, self.width - crop)
        rows, cols = _symmetry_grid(ops, crop)
        f = frame.view(-1, 1, 1)
        rows = rows + y0.view(-1, 1, 1)
        cols = cols + x0.view(-1, 1, 1)
        # advanced indices around a slice: [B, crop, crop, C], i.e. channels_last once permuted
        xs = self.x[f, :, rows, cols].permute(0, 3, 1, 2)
        ys = self.y[f, :, rows, cols].permute(0, 3, 1, 2)
        if dev.type != "cuda":
            xs, ys = xs.contiguous(), ys.contiguous()
        return xs, ys


def _symmetry_grid(ops: torch.Tensor, n: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Source row and column ``[B, n, n]`` of every output pixel of an ``n x n`` crop transformed by
    ``ops`` (:func:`_augment`: flip the columns if ``op >= 4``, then ``op % 4`` quarter turns)."""
    r = torch.arange(n, device=ops.device)
    i, j = r.view(1, n, 1), r.view(1, 1, n)
    k = (ops % 4).view(-1, 1, 1)
    # torch.rot90 by k: out[i, j] = t[i, j], t[j, n-1-i], t[n-1-i, n-1-j], t[n-1-j, i]
    rows = torch.where(k == 0, i, torch.where(k == 1, j, torch.where(k == 2, n - 1 - i, n - 1 - j)))
    cols = torch.where(k == 0, j, torch.where(k == 1, n - 1 - i, torch.where(k == 2, n - 1 - j, i)))
    cols = torch.where((ops >= 4).view(-1, 1, 1), n - 1 - cols, cols)
    return rows, cols


def _augment(t: torch.Tensor, op: int) -> torch.Tensor:
    """One of the 8 symmetries of the square: rotation by ``op % 4`` quarter turns, flip if ``op >= 4``."""
    if op >= 4:
        t = t.flip(-1)
    return torch.rot90(t, op % 4, dims=(-2, -1)) if op % 4 else t


# --- building ------------------------------------------------------------------------------------
def default_frames(graph: "Graph", node: "Node") -> list[int]:
    """Every frame where both inputs exist: the overlap of their frame ranges."""
    inputs = graph.inputs_of(node)
    ranges = {name: graph.frame_range(inputs[name]) for name in ("input", "groundTruth")}
    known = [r for r in ranges.values() if r is not None]
    if not known:
        raise KnobError("neither input has a frame range (generators only); set 'frames', e.g. '1-10'",
                        node=node.name, knob="frames")
    first = max(r[0] for r in known)
    last = min(r[1] for r in known)
    if first > last:
        raise DataSetError(f"the inputs share no frames: input {_rng(ranges['input'])}, "
                           f"groundTruth {_rng(ranges['groundTruth'])}", node=node.name)
    return list(range(first, last + 1))


def _rng(r: tuple[int, int] | None) -> str:
    return "any frame" if r is None else f"{r[0]}-{r[1]}"


def _frames_text(frames: list[int]) -> str:
    return ", ".join(str(f) for f in frames[:20]) + (f" and {len(frames) - 20} more" if len(frames) > 20 else "")


def _pick(img: "Image", spec: str, node: str, knob: str, input_name: str, frame: int) -> "Image":
    try:
        # shorthands (rgb, rgba, alpha) and channel names are taken literally, so "rgba" on an rgb
        # image is an error rather than silently 3 channels; other layers and "all" come from the image
        try:
            names = chans.expand(spec)
        except ChannelError:
            names = ()
        if not names:
            names = chans.expand(spec, img.channels)
    except ChannelError as err:
        raise KnobError(f"{err.message} (in input {input_name!r})", node=node, knob=knob, frame=frame) from None
    missing = [n for n in names if n not in img.channels]
    if missing or not names:
        what = ", ".join(missing) if missing else repr(spec)
        raise KnobError(f"input {input_name!r} does not carry {what}; it has "
                        f"{', '.join(img.channels) or 'no channels'} ({len(img.channels)} channel(s))",
                        node=node, knob=knob, frame=frame)
    return img.select(names)


def pull_pair(graph: "Graph", node: "Node", frame: int, *, channels_in: str, channels_out: str,
              device: torch.device) -> tuple["Image", "Image"]:
    """Input and ground truth of one frame, cut to the display window and to the chosen channels."""
    inputs = graph.inputs_of(node)
    ev = graph.evaluator
    a = ev.evaluate(inputs["input"], frame, device=device, dtype=torch.float32)
    b = ev.evaluate(inputs["groundTruth"], frame, device=device, dtype=torch.float32)
    a = _pick(a, channels_in, node.name, "channelsIn", "input", frame)
    b = _pick(b, channels_out, node.name, "channelsOut", "groundTruth", frame)
    a = a.crop_to(a.format.display)
    b = b.crop_to(b.format.display)
    if (a.bbox.width, a.bbox.height) != (b.bbox.width, b.bbox.height):
        raise DataSetError(f"input is {a.bbox.width}x{a.bbox.height} but groundTruth is "
                           f"{b.bbox.width}x{b.bbox.height}; both must have the same format",
                           node=node.name, frame=frame)
    return a, b


def build_dataset(graph: "Graph", node: "Node", frames: list[int], *, channels_in: str, channels_out: str,
                  device: torch.device, keep_on: torch.device) -> DataSet:
    """Pull every frame pair, check them all, and stack them encoded on ``keep_on``.

    Every missing frame is collected before failing, so one error lists them all.
    """
    from .transfer import encode

    inputs = graph.inputs_of(node)
    ranges = {name: graph.frame_range(inputs[name]) for name in ("input", "groundTruth")}
    missing: dict[str, list[int]] = {"input": [], "groundTruth": []}
    for name, r in ranges.items():
        if r is not None:
            missing[name] = [f for f in frames if not r[0] <= f <= r[1]]
    pairs: list[tuple[Any, Any]] = []
    for f in frames:
        if any(f in m for m in missing.values()):
            continue
        try:
            pairs.append(pull_pair(graph, node, f, channels_in=channels_in, channels_out=channels_out, device=device))
        except MissingFrameError as err:
            # name which side is missing: try each input on its own
            for name in ("input", "groundTruth"):
                try:
                    graph.evaluator.evaluate(inputs[name], f, device=device)
                except MissingFrameError:
                    missing[name].append(f)
            if not any(f in m for m in missing.values()):
                raise err.with_context(node=node.name, frame=f)
    problems = [f"input {name!r} has no frame(s) {_frames_text(sorted(m))}" for name, m in missing.items() if m]
    if problems:
        raise DataSetError("; ".join(problems) + " (set 'frames' to frames where both inputs exist)",
                           node=node.name, knob="frames")
    sizes = {(a.bbox.width, a.bbox.height) for a, _ in pairs}
    if len(sizes) > 1:
        raise DataSetError(f"frames differ in size ({', '.join(f'{w}x{h}' for w, h in sorted(sizes))}); "
                           "every frame of the data set must have the same format", node=node.name)
    for knob, which in (("channelsIn", 0), ("channelsOut", 1)):
        names = {p[which].channels for p in pairs}
        if len(names) > 1:
            raise KnobError(f"frames carry different channels: {' vs '.join(', '.join(n) for n in names)}",
                            node=node.name, knob=knob)
    with torch.no_grad():
        x = torch.stack([encode(a.pixels.float()) for a, _ in pairs]).to(keep_on)
        y = torch.stack([encode(b.pixels.float()) for _, b in pairs]).to(keep_on)
    hashes = [[graph.evaluator.hash(inputs["input"], f), graph.evaluator.hash(inputs["groundTruth"], f)]
              for f in frames]
    return DataSet(list(frames), pairs[0][0].channels, pairs[0][1].channels, x, y, hashes)


__all__ = ["DataSet", "DataSetError", "build_dataset", "default_frames", "pull_pair"]
