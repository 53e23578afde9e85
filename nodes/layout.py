"""ContactSheet: its inputs (or frames of input 0) laid out in a grid, as Nuke's ContactSheet.

The cell geometry is a plain function (``cell_boxes``) a test can call without a graph; each
input is resized into its cell by ``resize`` (area average or bilinear).
"""

from __future__ import annotations

from typing import Literal

import numpy as np
import torch
import torch.nn.functional as F
from pydantic import Field

from nodegraph.evaluator import Context
from nodegraph.image import Box, Format, Image
from nodegraph.node import Input, Knobs, Node


#: Inputs ContactSheet offers ("0".."31"; public scripts connect 24); Nuke's takes any number.
SHEET_INPUTS = 32


def cell_boxes(width: int, height: int, rows: int, columns: int, gap: float, roworder: str,
               colorder: str) -> list[tuple[float, float, float, float]]:
    """Cell rectangles (x0, y0, x1, y1 in y-down pixels) in input order: cells of
    ((width - gap (columns + 1)) / columns) x ((height - gap (rows + 1)) / rows) with ``gap`` around
    and between them, filled row by row from the top (TopBottom) or bottom (BottomTop), each row
    from the left (LeftRight) or right (RightLeft)."""
    cw = (width - gap * (columns + 1)) / columns
    ch = (height - gap * (rows + 1)) / rows
    out = []
    for i in range(rows * columns):
        r, c = divmod(i, columns)
        if colorder == "RightLeft":
            c = columns - 1 - c
        if roworder == "BottomTop":
            r = rows - 1 - r
        x0 = gap + c * (cw + gap)
        y0 = gap + r * (ch + gap)
        out.append((x0, y0, x0 + cw, y0 + ch))
    return out


def fit_in_cell(w: int, h: int, cell: tuple[float, float, float, float], center: bool
                ) -> tuple[int, int, int, int] | None:
    """Where a w x h format goes in ``cell``: (x, y, width, height) in whole y-down pixels, scaled
    uniformly by min(cell w / w, cell h / h) (sizes rounded, at least 1), at the cell's bottom-left
    corner or its middle (positions rounded down); None for an empty cell or format."""
    x0, y0, x1, y1 = cell
    if w <= 0 or h <= 0 or x1 - x0 < 1 or y1 - y0 < 1:
        return None
    s = min((x1 - x0) / w, (y1 - y0) / h)
    pw, ph = max(1, round(s * w)), max(1, round(s * h))
    if center:
        return int(np.floor(x0 + (x1 - x0 - pw) / 2)), int(np.floor(y0 + (y1 - y0 - ph) / 2)), pw, ph
    return int(np.floor(x0)), int(np.floor(y1 - ph)), pw, ph


def resize(pixels: torch.Tensor, width: int, height: int) -> torch.Tensor:
    """``[C, H, W]`` float pixels resized to ``width`` x ``height``: an area average where an axis
    shrinks by a whole factor, else bilinear (pixel centres aligned, edges clamped; antialiased when
    shrinking)."""
    c, h, w = pixels.shape
    if (h, w) == (height, width):
        return pixels
    if c == 0 or h == 0 or w == 0:
        return pixels.new_zeros((c, height, width))
    x = pixels[None]
    if h % height == 0 and w % width == 0:
        return F.avg_pool2d(x, (h // height, w // width))[0]
    shrink = height < h or width < w
    return F.interpolate(x, size=(height, width), mode="bilinear", align_corners=False, antialias=shrink)[0]


class ContactSheet(Node):
    """Nuke's ContactSheet: an image of ``width`` x ``height`` with ``rows`` x ``columns`` cells
    separated (and surrounded) by ``gap`` pixels; input i goes to cell i in ``roworder`` /
    ``colorder`` (TopBottom, LeftRight: reading order). Each input's format is scaled uniformly to
    fit its cell (s = min(cell width / format width, cell height / format height)) and placed in the
    cell's bottom-left corner (Nuke's origin), or its middle with ``center``. With ``splitinputs``
    the cells show successive frames of input 0 instead: cell i shows frame ``startframe`` + i
    (``startframe`` -1: the frame being rendered), up to ``endframe`` (-1: no limit).

    nodegraph's choices where the docs are silent: the aspect ratio is kept (letterboxed in the
    cell), its size and place rounded to whole pixels; resizing averages areas for whole-factor
    reductions and is bilinear otherwise (antialiased when shrinking);
    the output channels are the union of the inputs' (in the first's order, black where an input
    lacks one); inputs beyond rows x columns are not shown; the data window is the union of the
    placed images (the sheet is black elsewhere).
    """

    category = "Merge"
    inputs = tuple(Input(str(i), required=i == 0, doc=f"Image for cell {i}.") for i in range(SHEET_INPUTS))

    class Knobs(Knobs):
        width: int = Field(3072, ge=1)
        """Width of the sheet in pixels."""
        height: int = Field(2048, ge=1)
        """Height of the sheet in pixels."""
        rows: int = Field(3, ge=1)
        """Number of rows of cells."""
        columns: int = Field(4, ge=1)
        """Number of columns of cells."""
        gap: float = Field(0.0, ge=0)
        """Pixels between cells and around them."""
        roworder: Literal["BottomTop", "TopBottom"] = "TopBottom"
        """Whether the first row is at the top (TopBottom) or the bottom."""
        colorder: Literal["LeftRight", "RightLeft"] = "LeftRight"
        """Whether each row fills from the left (LeftRight) or the right."""
        center: bool = False
        """Centre each image in its cell (else its bottom-left corner)."""
        splitinputs: bool = False
        """Show frames of input 0 (startframe onwards) instead of one frame of each input."""
        startframe: int = -1
        """First frame shown with splitinputs (-1: the current frame)."""
        endframe: int = -1
        """Last frame shown with splitinputs (-1: as many as there are cells)."""

    def _sources(self, ctx: Context) -> list[tuple[str, int] | None]:
        """What each cell shows: (input, frame) or None."""
        k = self.knobs
        n = k.rows * k.columns
        if k.splitinputs:
            if "0" not in ctx.connected:
                return [None] * n
            start = ctx.frame if k.startframe == -1 else k.startframe
            return [("0", start + i) if k.endframe == -1 or start + i <= k.endframe else None for i in range(n)]
        return [(str(i), ctx.frame) if str(i) in ctx.connected else None for i in range(n)]

    def needs(self, ctx: Context):
        wanted = list(dict.fromkeys(s for s in self._sources(ctx) if s is not None))
        if not wanted and "0" in ctx.connected:  # nothing shown: input 0 gives the channels
            wanted.append(("0", ctx.frame))
        return wanted

    def compute(self, ctx: Context) -> Image:
        k = self.knobs
        fmt = Format.of_size(k.width, k.height)
        sources = self._sources(ctx)
        images = [ctx.input(*s) if s is not None else None for s in sources]
        shown = [img for img in images if img is not None]
        ref = shown[0] if shown else ctx.input("0")
        chans = list(ref.channels)
        for img in shown[1:]:
            chans += [c for c in img.channels if c not in chans]
        dev, dtype = ref.device, ref.dtype
        cells = cell_boxes(k.width, k.height, k.rows, k.columns, k.gap, k.roworder, k.colorder)
        placed = []
        for img, cell in zip(images, cells):
            if img is None or img.bbox.intersect(img.format.display).empty:  # nothing to show
                continue
            place = fit_in_cell(img.format.width, img.format.height, cell, k.center)
            if place is not None:
                px, py, pw, ph = place
                box = Box(px, py, px + pw, py + ph).intersect(fmt.display)
                if not box.empty:
                    placed.append((img, place, box))
        window = Box(0, 0, 0, 0)
        for _, _, box in placed:
            window = window.union(box)
        # the data window is the union of the placed images: the sheet is black elsewhere
        sheet = torch.zeros((len(chans), window.height, window.width), device=dev, dtype=dtype)
        for img, (px, py, pw, ph), box in placed:
            src = img.to(dev).crop_to(img.format.display).pixels
            src = src if src.dtype == torch.float64 else src.float()
            part = resize(src, pw, ph)[:, box.y0 - py:box.y1 - py, box.x0 - px:box.x1 - px].to(dtype)
            for i, c in enumerate(chans):
                if c in img.channels:
                    sheet[i, box.y0 - window.y0:box.y1 - window.y0, box.x0 - window.x0:box.x1 - window.x0] = \
                        part[img.channels.index(c)]
        return Image(sheet, tuple(chans), window, fmt, dict(ref.metadata))


__all__ = ["ContactSheet", "cell_boxes"]
