"""What a training run shows: the summary TSV, the loss graph, TensorBoard, contact sheets, previews.

- ``<name>.summary``: tab-separated, one header line ``step  loss  learning_rate  elapsed_s
  seconds_per_step  heldout_psnr  heldout_iou``, then one line per logged step (loss averaged over
  the steps since the last line). ``elapsed_s`` is wall time since the run first started (resumes
  included). The held-out columns (:mod:`nodegraph.ml.heldout`) are empty on lines without a
  held-out score (and ``heldout_iou`` for outputs that are not mattes); files of earlier versions,
  without them, are still read.
- ``<name>.loss.png``: the loss over steps on a log scale, raw and smoothed (exponential moving
  average of the log), like the Graphs tab of Nuke's CopyCat; with held-out scores a second panel
  shows held-out PSNR (and IoU) over the same steps; matplotlib (Agg) imported only when drawn.
- ``tensorboard/``: ``loss`` and ``learning_rate`` scalars, ``heldout/psnr``, ``heldout/l1`` and
  ``heldout/iou``, and the contact sheets.
- ``contactsheet.<step>.png``: rows of random crops, columns input / ground truth / output,
  converted to sRGB for viewing; ``preview.<step>.png``: the network applied to the preview frame.
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Sequence

import torch

from nodegraph.atomic import atomic_output

SUMMARY_HEADER = ("step", "loss", "learning_rate", "elapsed_s", "seconds_per_step", "heldout_psnr", "heldout_iou")
#: Columns of summaries written before held-out scores existed.
_OLD_COLUMNS = 5
#: A summary row: step, loss, learning rate, elapsed s, s per step, held-out PSNR and IoU (NaN: none).
Row = tuple[int, float, float, float, float, float, float]
#: Pixels of grey between the cells of a contact sheet (and around it).
SHEET_GAP = 4


class Summary:
    """The ``.summary`` TSV: rewritten atomically when a run starts or resumes, then appended to.

    Lines are appended at each :meth:`flush` (checkpoints, contact sheets, the end); a reader
    may ignore a torn last line after a crash, and a resume drops every line after the last
    saved step anyway.
    """

    def __init__(self, path: str | os.PathLike[str], rows: list[tuple] | None = None) -> None:
        self.path = Path(path)
        self.rows: list[Row] = list(rows or [])
        self._written = 0
        self._rewrite()

    @classmethod
    def resume(cls, path: str | os.PathLike[str], up_to_step: int) -> "Summary":
        """Earlier lines up to ``up_to_step`` (the last saved step); later ones are dropped."""
        rows = [r for r in read_summary(path) if r[0] <= up_to_step] if Path(path).is_file() else []
        return cls(path, rows)

    def add(self, step: int, loss: float, lr: float, elapsed: float, per_step: float,
            heldout: dict[str, float] | None = None) -> None:
        held = heldout or {}
        self.rows.append((int(step), float(loss), float(lr), float(elapsed), float(per_step),
                          float(held.get("psnr", math.nan)), float(held.get("iou", math.nan))))

    @staticmethod
    def _line(row: tuple) -> str:
        s, l, lr, e, p, hp, hi = row
        held = "\t".join("" if math.isnan(v) else f"{v:.6g}" for v in (hp, hi))
        return f"{s}\t{l:.8g}\t{lr:.8g}\t{e:.3f}\t{p:.6f}\t{held}\n"

    def _rewrite(self) -> None:
        text = "\t".join(SUMMARY_HEADER) + "\n" + "".join(self._line(r) for r in self.rows)
        with atomic_output(self.path) as tmp:
            tmp.write_text(text)
        self._written = len(self.rows)

    def flush(self) -> None:
        if self._written < len(self.rows):
            with open(self.path, "a") as f:
                f.write("".join(self._line(r) for r in self.rows[self._written:]))
                f.flush()
                os.fsync(f.fileno())
            self._written = len(self.rows)


def read_summary(path: str | os.PathLike[str]) -> list[Row]:
    """Rows of a ``.summary`` file as ``(step, loss, learning_rate, elapsed_s, seconds_per_step,
    heldout_psnr, heldout_iou)`` (NaN where a held-out column is empty or absent); a torn or
    malformed line (a crash while appending) is skipped."""
    rows = []
    for line in Path(path).read_text().splitlines()[1:]:
        parts = line.split("\t")
        if len(parts) not in (_OLD_COLUMNS, len(SUMMARY_HEADER)):
            continue
        parts += [""] * (len(SUMMARY_HEADER) - len(parts))
        try:
            rows.append((int(parts[0]), *(float(p) for p in parts[1:_OLD_COLUMNS]),
                         *(float(p) if p else math.nan for p in parts[_OLD_COLUMNS:])))
        except ValueError:
            continue
    return rows


def smooth(values: Sequence[float], weight: float | None = None) -> list[float]:
    """Exponential moving average of log(values) with TensorBoard's debiasing (smoothing in the
    log domain is what looks right on a log axis); ``weight`` defaults from the number of points."""
    if weight is None:
        weight = min(0.95, max(0.0, 1 - 20 / max(1, len(values))))
    out, last, norm = [], 0.0, 0.0
    for v in values:
        last = weight * last + (1 - weight) * math.log(v)
        norm = weight * norm + (1 - weight)
        out.append(math.exp(last / norm) if norm else v)
    return out


def plot_loss(summary_path: str | os.PathLike[str], png_path: str | os.PathLike[str], *, title: str = "") -> None:
    """Draw the loss graph PNG from the summary file (log-scale y, raw and smoothed)."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    from matplotlib.figure import Figure

    rows = read_summary(summary_path)
    held = [(r[0], r[5], r[6]) for r in rows if math.isfinite(r[5])]
    fig = Figure(figsize=(8, 7.5 if held else 4.5), dpi=100)
    ax = fig.add_subplot(2, 1, 1) if held else fig.add_subplot()
    steps = [r[0] for r in rows if r[1] > 0 and math.isfinite(r[1])]
    loss = [r[1] for r in rows if r[1] > 0 and math.isfinite(r[1])]
    if steps:
        ax.plot(steps, loss, color="#9ecae1", linewidth=0.8, label="loss")
        ax.plot(steps, smooth(loss), color="#08519c", linewidth=1.6,
                label="smoothed")
        ax.set_yscale("log")
        ax.legend(loc="upper right")
    ax.set_xlabel("step")
    ax.set_ylabel("loss")
    ax.set_title(title)
    ax.grid(True, which="both", alpha=0.3)
    if held:
        hx = fig.add_subplot(2, 1, 2, sharex=ax)
        hx.plot([h[0] for h in held], [h[1] for h in held], color="#d94801", marker="o", markersize=3,
                label="held-out PSNR")
        best = max(held, key=lambda h: h[1])
        hx.axvline(best[0], color="#d94801", alpha=0.3, linestyle="--", label=f"best {best[1]:.2f} dB")
        hx.set_ylabel("held-out PSNR (dB)")
        hx.set_xlabel("step")
        hx.grid(True, alpha=0.3)
        lines, labels = hx.get_legend_handles_labels()
        ious = [h for h in held if math.isfinite(h[2])]
        if ious:
            ix = hx.twinx()
            ix.plot([h[0] for h in ious], [h[2] for h in ious], color="#238b45", marker="s", markersize=3,
                    label="held-out IoU")
            ix.set_ylabel("held-out IoU")
            more = ix.get_legend_handles_labels()
            lines, labels = lines + more[0], labels + more[1]
        hx.legend(lines, labels, loc="lower right")
    fig.tight_layout()
    with atomic_output(png_path) as tmp:
        fig.savefig(str(tmp), format="png")


class Board:
    """TensorBoard event files in ``<dataDirectory>/tensorboard`` (events after ``start_step`` purged)."""

    def __init__(self, log_dir: str | os.PathLike[str], start_step: int) -> None:
        from torch.utils.tensorboard import SummaryWriter

        self.writer = SummaryWriter(log_dir=str(log_dir), purge_step=start_step)

    def scalars(self, step: int, loss: float, lr: float) -> None:
        self.writer.add_scalar("loss", loss, step)
        self.writer.add_scalar("learning_rate", lr, step)

    def heldout(self, step: int, scores: dict[str, float]) -> None:
        for name, value in scores.items():
            self.writer.add_scalar(f"heldout/{name}", value, step)

    def image(self, tag: str, rgb: torch.Tensor, step: int) -> None:
        self.writer.add_image(tag, rgb.clamp(0, 1), step, dataformats="CHW")

    def close(self) -> None:
        self.writer.flush()
        self.writer.close()


# --- images --------------------------------------------------------------------------------------
def to_display(encoded_or_linear: torch.Tensor) -> torch.Tensor:
    """``[C, H, W]`` linear values -> ``[3, H, W]`` sRGB for viewing: one channel as grey, two padded
    with black, more than three cut to the first three."""
    from nodegraph import color

    t = encoded_or_linear.detach().float().cpu()
    c = t.shape[0]
    if c == 1:
        t = t.expand(3, -1, -1)
    elif c == 2:
        t = torch.cat([t, torch.zeros_like(t[:1])])
    else:
        t = t[:3]
    t = torch.nan_to_num(t.contiguous(), nan=0.0, posinf=1.0, neginf=0.0)
    return color.convert(t, "linear", "sRGB").clamp(0, 1)


def contact_sheet(rows: Sequence[Sequence[torch.Tensor]], gap: int = SHEET_GAP) -> torch.Tensor:
    """Grid of ``[3, h, w]`` display images (rows of columns) on mid grey, ``gap`` pixels apart."""
    h = max(c.shape[-2] for r in rows for c in r)
    w = max(c.shape[-1] for r in rows for c in r)
    ncol = max(len(r) for r in rows)
    sheet = torch.full((3, gap + len(rows) * (h + gap), gap + ncol * (w + gap)), 0.18)
    for i, row in enumerate(rows):
        for j, cell in enumerate(row):
            y, x = gap + i * (h + gap), gap + j * (w + gap)
            sheet[:, y:y + cell.shape[-2], x:x + cell.shape[-1]] = cell
    return sheet


def write_png(path: str | os.PathLike[str], rgb: torch.Tensor) -> None:
    """Write display-referred ``[3, H, W]`` values as an 8-bit PNG, atomically."""
    from nodegraph import channels as chans
    from nodegraph.image import Box, Format, Image
    from nodegraph.io import write_image

    _, h, w = rgb.shape
    img = Image(rgb.float().contiguous(), chans.RGB, Box(0, 0, w, h), Format.of_size(w, h))
    write_image(str(path), img, datatype="8")


__all__ = ["Board", "Row", "SHEET_GAP", "SUMMARY_HEADER", "Summary", "contact_sheet", "plot_loss", "read_summary",
           "smooth", "to_display", "write_png"]
