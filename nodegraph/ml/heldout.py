"""Held-out quality while CopyCat trains: frames it never trains on, scored as training goes.

A run scores held-out frames when the node's ``validationFrames`` names some (frames of `input`
and `groundTruth` outside the data set), or else when the `preview` input is connected and
`groundTruth` has the preview frame (and that frame is not trained on). Every
``validationInterval`` steps (0: at each checkpoint) and at the last step, the network, in evaluation mode, is applied to
each whole held-out frame and scored against its ground truth:

- ``psnr``: PSNR in dB of display values (each channel clipped to 0..1; colour channels through the
  sRGB transfer function, as an artist looks at them; matte channels as they are), the mean over
  the held-out frames of each frame's PSNR (a perfect frame counts as :data:`PSNR_CAP`);
- ``iou``: for mattes (every output channel an alpha or mask channel, or a single output channel),
  intersection over union of ``> 0.5`` in the prediction and in the ground truth, the frames
  pooled (two empty masks count as 1);
- ``l1``: mean absolute difference in linear values.

:class:`Monitor` keeps the history, the best score (PSNR) and its step, and decides early stopping:
with ``earlyStop`` on, a run stops after ``earlyStopPatience`` scores in a row that do not beat
the best by more than ``earlyStopMinDelta`` dB. The trainer then writes ``<name>.cat`` from the
best weights (``<name>.best.cat``, written at each new best).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable

import torch

from nodegraph.errors import KnobError

if TYPE_CHECKING:  # pragma: no cover
    from nodegraph.graph import Graph
    from nodegraph.node import Node

#: PSNR given to a frame predicted exactly (keeps means finite).
PSNR_CAP = 100.0
#: A matte pixel is "in" above this value (prediction and ground truth alike).
IOU_THRESHOLD = 0.5


def srgb(x: torch.Tensor) -> torch.Tensor:
    """The sRGB transfer function (IEC 61966-2-1) of values clipped to 0..1, on any device."""
    x = x.clamp(0, 1)
    return torch.where(x <= 0.0031308, 12.92 * x, 1.055 * x.clamp(min=0.0031308) ** (1 / 2.4) - 0.055)


def is_matte(channels: tuple[str, ...]) -> bool:
    """Whether output channels are a matte: one channel, or only alpha/mask channels."""
    if len(channels) == 1:
        return True
    return all(c.rsplit(".", 1)[-1] in ("alpha", "a", "mask") or c.split(".", 1)[0] == "mask" for c in channels)


def display(linear: torch.Tensor, matte: bool) -> torch.Tensor:
    """``[..., C, H, W]`` linear values as display values in 0..1 (see the module docstring)."""
    return linear.clamp(0, 1) if matte else srgb(linear)


def psnr(a: torch.Tensor, b: torch.Tensor, peak: float = 1.0) -> float:
    """PSNR in dB of two tensors of the same shape (:data:`PSNR_CAP` when they are equal)."""
    mse = float(((a.float() - b.float()) ** 2).mean())
    if mse <= 0:
        return PSNR_CAP
    return min(PSNR_CAP, 10 * math.log10(peak * peak / mse))


def iou(pred: torch.Tensor, truth: torch.Tensor, threshold: float = IOU_THRESHOLD) -> float:
    """Intersection over union of ``> threshold`` masks (1.0 when both are empty)."""
    p, t = pred > threshold, truth > threshold
    union = int((p | t).sum())
    return 1.0 if union == 0 else int((p & t).sum()) / union


@dataclass
class HeldOut:
    """Held-out pairs: encoded inputs and linear ground truths, one frame each (sizes may differ)."""

    frames: list[int]
    inputs: list[torch.Tensor]  # [Cin, H, W] encoded, on the host
    truths: list[torch.Tensor]  # [Cout, H, W] linear, on the host
    matte: bool
    source: str  # "validationFrames" or "preview"

    def score(self, predict: Callable[[torch.Tensor], torch.Tensor]) -> dict[str, float]:
        """Scores of ``predict`` (encoded ``[1, Cin, H, W]`` -> encoded output) on every frame."""
        from .transfer import decode

        psnrs, l1s, inter, union = [], [], 0, 0
        for x, truth in zip(self.inputs, self.truths):
            out = decode(predict(x[None]).float())[0].to(truth.device)
            psnrs.append(psnr(display(out, self.matte), display(truth, self.matte)))
            l1s.append(float((out - truth).abs().mean()))
            if self.matte:
                p, t = out > IOU_THRESHOLD, truth > IOU_THRESHOLD
                inter += int((p & t).sum())
                union += int((p | t).sum())
        scores = {"psnr": sum(psnrs) / len(psnrs), "l1": sum(l1s) / len(l1s)}
        if self.matte:
            scores["iou"] = 1.0 if union == 0 else inter / union
        return scores


def _frame_list(text: str, node: "Node") -> list[int]:
    from nodegraph.errors import NodeGraphError
    from nodegraph.io.sequence import parse_frame_range

    try:
        return parse_frame_range(text)
    except NodeGraphError as err:
        raise KnobError(err.message, node=node.name, knob="validationFrames") from None


def build_heldout(graph: "Graph", node: "Node", train_frames: list[int], *, channels_in: str, channels_out: str,
                  device: torch.device, preview: torch.Tensor | None, preview_frame: int | None,
                  warn: Callable[[str], None]) -> HeldOut | None:
    """The held-out pairs of a run (see the module docstring), or None when there are none.

    ``validationFrames`` that are also training frames, or that an input lacks, are errors naming
    the knob and the frames; a preview frame without ground truth (or trained on) is a warning.
    """
    from .dataset import DataSetError, build_dataset, pull_pair

    text = node.knobs.validationFrames.strip()
    if text:
        frames = _frame_list(text, node)
        both = sorted(set(frames) & set(train_frames))
        if both:
            raise KnobError(f"frame(s) {', '.join(map(str, both[:20]))} are training frames too; held-out "
                            "frames must not be trained on", node=node.name, knob="validationFrames")
        # the data set's own checks: every missing frame named, channels and sizes consistent
        try:
            held = build_dataset(graph, node, frames, channels_in=channels_in, channels_out=channels_out,
                                 device=device, keep_on=torch.device("cpu"))
        except DataSetError as err:
            if err.knob == "frames":  # the frames named are this knob's
                err.knob = "validationFrames"
                err.message = err.message.replace("set 'frames'", "set 'validationFrames'")
                err.args = (err._render(),)
            raise
        from .transfer import decode

        return HeldOut(list(frames), list(held.x), [decode(y) for y in held.y], is_matte(held.channels_out),
                       "validationFrames")
    if preview is None or preview_frame is None:
        return None
    if preview_frame in train_frames:
        warn(f"the preview frame {preview_frame} is a training frame: it is not scored as held out "
             "(set validationFrames to score held-out quality)")
        return None
    truth_range = graph.frame_range(graph.inputs_of(node)["groundTruth"])
    if truth_range is not None and not truth_range[0] <= preview_frame <= truth_range[1]:
        return None  # no ground truth there: the preview is only shown
    _, truth = pull_pair(graph, node, preview_frame, channels_in=channels_in, channels_out=channels_out,
                         device=device)
    if tuple(truth.pixels.shape[-2:]) != tuple(preview.shape[-2:]):
        warn(f"the preview frame {preview_frame} is {preview.shape[-1]}x{preview.shape[-2]} but groundTruth "
             f"there is {truth.pixels.shape[-1]}x{truth.pixels.shape[-2]}: it is not scored")
        return None
    return HeldOut([preview_frame], [preview], [truth.pixels.float().cpu()], is_matte(truth.channels), "preview")


@dataclass
class Monitor:
    """Held-out scores over a run, the best one, and the early-stopping decision."""

    heldout: HeldOut
    interval: int  # steps between scores
    early_stop: bool = False
    patience: int = 5
    min_delta: float = 0.0
    history: list[dict[str, float]] = field(default_factory=list)
    best: float = -math.inf
    best_step: int | None = None
    stale: int = 0  # scores since the best

    def due(self, step: int) -> bool:
        return self.interval > 0 and step % self.interval == 0

    def record(self, step: int, elapsed: float, scores: dict[str, float]) -> bool:
        """Add a score; True when it is a new best (by more than ``min_delta`` dB)."""
        self.history.append({"step": step, "elapsed_s": round(elapsed, 3), **scores})
        if scores["psnr"] > self.best + self.min_delta or self.best_step is None:
            self.best, self.best_step, self.stale = scores["psnr"], step, 0
            return True
        self.stale += 1
        return False

    @property
    def should_stop(self) -> bool:
        return self.early_stop and self.stale >= self.patience

    def spread(self) -> float | None:
        """Standard deviation of the step-to-step change of held-out PSNR over the second half of
        the run (where the curve has flattened): how noisy the curve is between scores."""
        values = [h["psnr"] for h in self.history[len(self.history) // 2:]]
        steps = [b - a for a, b in zip(values, values[1:])]
        if len(steps) < 2:
            return None
        mean = sum(steps) / len(steps)
        return math.sqrt(sum((s - mean) ** 2 for s in steps) / (len(steps) - 1))

    def state(self) -> dict[str, Any]:
        return {"history": list(self.history), "best": self.best if self.best_step is not None else None,
                "best_step": self.best_step, "frames": list(self.heldout.frames)}

    def restore(self, saved: dict[str, Any] | None, up_to_step: int) -> None:
        """Continue a resumed run's record (scores after the saved step are dropped); the patience
        count starts again, so a run resumed after an early stop trains on until it stalls again."""
        if not saved or list(saved.get("frames", [])) != list(self.heldout.frames):
            return
        self.history = [h for h in saved.get("history", []) if h.get("step", 0) <= up_to_step]
        if saved.get("best_step") is not None and saved["best_step"] <= up_to_step:
            self.best, self.best_step = float(saved["best"]), int(saved["best_step"])


__all__ = ["HeldOut", "IOU_THRESHOLD", "Monitor", "PSNR_CAP", "build_heldout", "display", "iou", "is_matte",
           "psnr", "srgb"]
