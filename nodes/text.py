"""Text and Text2: Nuke's text nodes, glyphs rasterised by FreeType through Pillow.

Both draw ``message`` into ``box`` (x, y, r, t; y up; a box of zero area is the whole format)
and composite it over the optional background as the draw nodes do (:class:`.draw.Shape`:
``color`` or a ``ramp``, ``opacity``, ``output`` channels, ``replace``, ``invert``, the mask
input). The old ``Text`` is the class of Nuke 6 scripts (``size``, ``font`` a file path); ``Text2``
the later one (``font_size`` times ``global_font_scale``, ``font`` as Nuke's font knob writes it:
``{ Family : Style : file : index }``).

Fonts. A font knob naming a file is read from that path (TCL expanded as file knobs are; relative
to the script's folder), else a file of that name among the fonts matplotlib ships; an empty knob,
or one naming a file that cannot be found (``[python nuke.defaultFontPathname()]``, a font of
another machine), gives the bundled font, DejaVu Sans (``matplotlib.get_data_path()``), the latter
with a warning naming node and file. A Text2 family ``DejaVu Sans`` with style Bold, Oblique or
Bold Oblique takes matplotlib's DejaVu file of that style.

The message is TCL, as Nuke evaluates it: ``[frame]``, ``[value KNOB]`` / ``[knob KNOB]``,
``[format ...]`` and the other forms file knobs support (:mod:`nodegraph.filepath`), and
``[metadata KEY]`` from the background's metadata (empty when absent). A command outside those
stays literal in the text, with a warning naming node and command.

Layout (Foundry documents the knobs, not the formulas; these are nodegraph's choices): lines
split at newlines, no word wrapping; the line step is the font's ascent + descent plus
``leading`` times the font size; ``kerning`` (and Text2's ``tracking``) add that fraction of the
font size between characters (the font's own pair kerning kept); Text2's ``font_width`` and
``font_height`` are percentages stretching the glyphs; ``baseline_shift`` moves the text up by
that many pixels. ``xjustify`` left/center/right place each line's advance width in the box;
justify spreads the words of every line but a paragraph's last (which is left) to fill the
width. ``yjustify`` top puts the first line's ascent at the box top, bottom the last line's
descent at the box bottom, center centres the block, baseline puts the last line's baseline on
the box bottom. The Transform knobs (``translate``, ``rotate``, ``scale``, ``skewX/Y``,
``center``, ``invert_matrix``) move the laid-out text as the Transform node moves an image: the
glyphs are rendered at the transform's magnification and resampled through Transform's
:func:`.transform.apply_affine` (a copy, with no filtering, when the transform is a whole-pixel
shift of the canvas). Coverage is FreeType's 8-bit antialiasing. ``cliptype``: clip to box zeroes
the text outside the box (pixel centres), clip to format and no clip both draw within the format
(the draw nodes' output window); ``invert`` draws one minus the coverage over the whole format. The draw nodes' rule for channels applies: rgba channels take
the colour's components, others its red.
"""

from __future__ import annotations

import copy
import functools
import math
import os
import warnings
from typing import Any, Literal

import numpy as np
import torch
from pydantic import Field

from nodegraph.errors import KnobError
from nodegraph.evaluator import Context
from nodegraph.filepath import expand_file_knob, has_tcl, node_lookup, resolve_relative, script_path_of
from nodegraph.image import Box, Format, Image

from ._common import WHKnob, XYKnob
from .draw import Shape
from .generate import Draw
from .transform import Box4, Transform, apply_affine, flip_y

XJustify = Literal["left", "center", "right", "justify"]
ClipType = Literal["no clip", "clip to box", "clip to format"]
#: Largest magnification the glyphs are rendered at (a bigger one is resampled up from it).
MAX_SUPERSAMPLE = 16.0


def font_dir() -> str:
    import matplotlib

    return os.path.join(matplotlib.get_data_path(), "fonts", "ttf")


def bundled_font() -> str:
    """The font used when none is given or found: DejaVu Sans, shipped with matplotlib."""
    return os.path.join(font_dir(), "DejaVuSans.ttf")


_DEJAVU_STYLES = {"book": "", "regular": "", "bold": "-Bold", "oblique": "-Oblique", "italic": "-Oblique",
                  "bold oblique": "-BoldOblique", "bold italic": "-BoldOblique"}


@functools.lru_cache(maxsize=64)
def load_font(path: str, size: float, index: int = 0):
    from PIL import ImageFont

    return ImageFont.truetype(path, size=max(size, 0.01), index=index)


def _warn(message: str) -> None:
    warnings.warn(message, stacklevel=3)


# --- the message ----------------------------------------------------------------------------------

def _segments(text: str) -> list[tuple[bool, str]]:
    """``(is_command, text)`` pieces: top-level ``[...]`` commands and the literal text between them."""
    out: list[tuple[bool, str]] = []
    i, start, n = 0, 0, len(text)
    while i < n:
        ch = text[i]
        if ch == "\\":
            i += 2
            continue
        if ch == "[":
            depth, j = 0, i
            while j < n:
                c = text[j]
                if c == "\\":
                    j += 2
                    continue
                depth += c == "["
                depth -= c == "]"
                if depth == 0:
                    break
                j += 1
            if j >= n:  # unbalanced: the rest is literal
                break
            if start < i:
                out.append((False, text[start:i]))
            out.append((True, text[i:j + 1]))
            i = start = j + 1
            continue
        i += 1
    if start < n:
        out.append((False, text[start:]))
    return out


def _unescape(text: str) -> str:
    out, i = [], 0
    while i < len(text):
        if text[i] == "\\" and i + 1 < len(text) and text[i + 1] in "[]{}$\"\\ ":
            out.append(text[i + 1])
            i += 2
            continue
        out.append(text[i])
        i += 1
    return "".join(out)


def expand_message(node, text: str, frame: int, metadata: dict[str, Any] | None, *, quiet: bool = False) -> str:
    """The message with its TCL evaluated (module docstring); ``metadata`` None (hashing) leaves
    ``[metadata ...]`` as a marker (the background's hash covers it)."""
    if not has_tcl(text):
        return text
    parts = []
    lookup = node_lookup(node, frame)
    script = script_path_of(node)
    for is_cmd, piece in _segments(text):
        if not is_cmd:
            parts.append(_unescape(piece))
            continue
        words = piece[1:-1].split(None, 1)
        name = words[0] if words else ""
        if name == "metadata":
            key = words[1].strip().strip("{}\"") if len(words) > 1 else ""
            if metadata is None:
                parts.append("\0metadata:" + key)
            else:
                value = metadata.get(key)
                if value is None and not quiet:
                    _warn(f"{node.path} ({node.type_name}): [metadata {key}]: the background has no such key")
                parts.append("" if value is None else str(value))
            continue
        command = "[value " + words[1] + "]" if name == "knob" and len(words) > 1 else piece
        try:
            parts.append(expand_file_knob(command, node=node.path, knob="message", frame=frame,
                                          script_path=script, lookup=lookup))
        except KnobError as err:
            if not quiet:
                _warn(f"{node.path} ({node.type_name}): message command {piece!r} kept as written: {err.message}")
            parts.append(piece)
    return "".join(parts)


# --- layout ---------------------------------------------------------------------------------------

def layout_lines(font, lines: list[str], box_w: float, box_h: float, xjustify: str, yjustify: str,
                 extra: float, line_step: float) -> list[tuple[float, float, str]]:
    """``(x, baseline_y, text)`` runs in canvas pixels (y down, origin the box's top-left corner)."""
    asc, desc = font.getmetrics()
    n = len(lines)
    if yjustify == "top":
        first = asc
    elif yjustify == "bottom":
        first = box_h - desc - (n - 1) * line_step
    elif yjustify == "center":
        first = (box_h - (n - 1) * line_step - asc - desc) / 2 + asc
    else:  # baseline: the last line's baseline on the box bottom
        first = box_h - (n - 1) * line_step

    def width(s: str) -> float:
        return font.getlength(s) + extra * max(len(s) - 1, 0) if s else 0.0

    runs: list[tuple[float, float, str]] = []
    for i, line in enumerate(lines):
        y = first + i * line_step
        words = line.split(" ")
        if xjustify == "justify" and i < n - 1 and len([w for w in words if w]) > 1:
            words = [w for w in words if w]
            gap = (box_w - sum(width(w) for w in words)) / (len(words) - 1)
            x = 0.0
            for w in words:
                runs.append((x, y, w))
                x += width(w) + gap
            continue
        w = width(line)
        x = {"right": box_w - w, "center": (box_w - w) / 2}.get(xjustify, 0.0)
        runs.append((x, y, line))
    if extra:  # spacing between characters: one run per character
        spaced = []
        for x, y, s in runs:
            for j, ch in enumerate(s):
                spaced.append((x + font.getlength(s[:j]) + extra * j, y, ch))
        runs = spaced
    return [r for r in runs if r[2].strip()]


# --- the nodes --------------------------------------------------------------------------------------

class _Text(Shape, abstract=True):
    """The text nodes' shared drawing (module docstring); subclasses give the font and its size."""

    class Knobs(Shape.Knobs):
        message: str = ""
        """The text (TCL: [frame], [value KNOB], [knob KNOB], [metadata KEY]...); newlines break lines."""
        font: str = ""
        """Font file (empty: the bundled DejaVu Sans)."""
        kerning: float = 0.0
        """Extra space between characters, as a fraction of the font size."""
        leading: float = 0.0
        """Extra space between lines, as a fraction of the font size."""
        xjustify: XJustify = "left"
        """Horizontal placement in the box: left, center, right, justify."""
        box: Box4 = (0.0, 0.0, 0.0, 0.0)
        """The text box x, y, r, t (y up); zero area: the whole format."""
        cliptype: ClipType = "clip to format"
        """Clip the text to the box, or draw it within the format (no clip, clip to format)."""
        translate: XYKnob = (0.0, 0.0)
        """Moves the text (y up), as Transform's translate."""
        rotate: float = 0.0
        """Rotates the text (degrees, counter-clockwise) about `center`."""
        scale: WHKnob = 1.0
        """Scales the text about `center`: one value or (x, y)."""
        skewX: float = 0.0
        """Horizontal skew about `center`."""
        skewY: float = 0.0
        """Vertical skew about `center`."""
        skew_order: Literal["XY", "YX"] = "XY"
        """Order of the skews (as Transform's)."""
        center: XYKnob = (0.0, 0.0)
        """Centre of rotation, scale and skew (y up)."""
        invert_matrix: bool = False
        """Apply the inverse of the transform."""

    # subclasses: the font's pixel size, width/height stretch, extra character spacing, shift
    def font_px(self) -> float:
        raise NotImplementedError

    def stretch(self) -> float:
        return 1.0

    def spacing(self) -> float:
        return self.knobs.kerning

    def shift(self) -> float:
        return 0.0

    def yjust(self) -> str:
        return self.knobs.yjustify

    # --- font -----------------------------------------------------------------------------------
    def font_file(self, frame: int, *, quiet: bool = False) -> tuple[str, int]:
        """The font file and face index the font knob names (module docstring: the fallbacks)."""
        text = self.knobs.font.strip()
        if text.startswith("{") and text.endswith("}"):
            text = text[1:-1].strip()
        if not text:
            return bundled_font(), 0
        family = style = ""
        index = 0
        if " : " in text or text.count(":") >= 2:
            fields = [f.strip() for f in text.split(":")]
            family, style = fields[0], fields[1] if len(fields) > 1 else ""
            path = fields[2] if len(fields) > 2 else ""
            if len(fields) > 3 and fields[3].lstrip("-").isdigit():
                index = int(fields[3])
        else:
            path = text
        wanted = path
        try:
            if has_tcl(path):
                path = expand_file_knob(path, node=self.path, knob="font", frame=frame, script_path=script_path_of(self),
                                        lookup=node_lookup(self, frame))
            path = resolve_relative(path, script_path_of(self))
        except KnobError:
            path = ""
        if path and os.path.isfile(path):
            return path, index
        for name in (os.path.basename(wanted),
                     f"DejaVuSans{_DEJAVU_STYLES.get(style.lower(), '')}.ttf" if family == "DejaVu Sans" else ""):
            if name and os.path.isfile(os.path.join(font_dir(), name)):
                return os.path.join(font_dir(), name), 0
        if not quiet:
            _warn(f"{self.path} ({self.type_name}): font {wanted or family!r} not found; using the bundled "
                  f"DejaVu Sans ({bundled_font()})")
        return bundled_font(), 0

    # --- evaluation -----------------------------------------------------------------------------
    def hash_extra(self, ctx: Context) -> bytes:
        path, index = self.font_file(ctx.frame, quiet=True)
        message = expand_message(self, self.knobs.message, ctx.frame, None, quiet=True)
        st = os.stat(path)
        return f"{message}\0{path}\0{index}\0{st.st_size}\0{st.st_mtime_ns}".encode()

    def compute(self, ctx: Context) -> Image:
        meta = ctx.input("input").metadata if ctx.has_input("input") else {}
        view = copy.copy(self)
        view._message = expand_message(self, self.knobs.message, ctx.frame, meta)
        view._font = self.font_file(ctx.frame)
        return Draw.compute(view, ctx)

    def nuke_matrix(self) -> np.ndarray:
        k = self.knobs
        return Transform("_", translate=k.translate, rotate=k.rotate, scale=k.scale, skewX=k.skewX, skewY=k.skewY,
                         skew_order=k.skew_order, center=k.center, invert_matrix=k.invert_matrix).nuke_matrix()

    def coverage(self, x: torch.Tensor, y: torch.Tensor, fmt: Format) -> torch.Tensor:
        k = self.knobs
        message = getattr(self, "_message", k.message)
        path, index = getattr(self, "_font", None) or self.font_file(1)
        size = self.font_px()
        zero = torch.zeros_like(x)
        bx0, by0, bx1, by1 = min(k.box[0], k.box[2]), min(k.box[1], k.box[3]), max(k.box[0], k.box[2]), \
            max(k.box[1], k.box[3])
        if bx1 <= bx0 or by1 <= by0:
            bx0, by0, bx1, by1 = 0.0, 0.0, float(fmt.width), float(fmt.height)
        if size <= 0 or not message.strip():
            return zero
        a = self.stretch()
        m_nuke = self.nuke_matrix()
        if abs(np.linalg.det(m_nuke[:2, :2])) < 1e-12:
            return zero
        sigma = float(np.linalg.svd(m_nuke[:2, :2] @ np.diag([a, 1.0]), compute_uv=False)[0])
        ks = min(max(1.0, sigma), MAX_SUPERSAMPLE)
        font = load_font(path, size * ks, index)
        bw, bh = (bx1 - bx0) * ks / a, (by1 - by0) * ks
        line_step = sum(font.getmetrics()) + k.leading * size * ks
        runs = layout_lines(font, message.split("\n"), bw, bh, k.xjustify, self.yjust(), self.spacing() * size * ks,
                            line_step)
        shift = self.shift() * ks
        runs = [(rx, ry - shift, s) for rx, ry, s in runs]
        # the canvas region (canvas pixels relative to the box's top-left corner)
        rects = [(rx + l, ry + t, rx + r, ry + b) for rx, ry, s in runs
                 for l, t, r, b in [font.getbbox(s, anchor="ls")]]
        if not rects:
            return zero
        left, top = min(r[0] for r in rects), min(r[1] for r in rects)
        right, bottom = max(r[2] for r in rects), max(r[3] for r in rects)
        pad = 2
        ox, oy = pad - math.floor(left), pad - math.floor(top)
        cw, ch = math.ceil(right) + ox + pad, math.ceil(bottom) + oy + pad
        if cw * ch > 64_000_000:
            raise KnobError(f"the text covers {cw} x {ch} pixels at its magnification; too large to draw",
                            node=self.path, knob="box")
        # canvas pixel -> layout (y up) -> output (y up) -> output pixels (y down)
        to_layout = np.array([[a / ks, 0.0, bx0 - ox * a / ks], [0.0, -1.0 / ks, by1 + oy / ks], [0.0, 0.0, 1.0]])
        m = flip_y(fmt.height) @ m_nuke @ to_layout
        dx = dy = 0.0
        if abs(m[0, 1]) < 1e-12 and abs(m[1, 0]) < 1e-12 and abs(m[0, 0] - 1) < 1e-9 and abs(m[1, 1] - 1) < 1e-9:
            dx, dy = m[0, 2] - math.floor(m[0, 2]), m[1, 2] - math.floor(m[1, 2])  # a whole-pixel copy
            m = m.copy()
            m[0, 2], m[1, 2] = math.floor(m[0, 2]), math.floor(m[1, 2])
        cov = self._draw(font, runs, cw, ch, ox + dx, oy + dy)
        if k.cliptype == "clip to box":
            cols = np.arange(cw) + 0.5 - ox - dx
            rows = np.arange(ch) + 0.5 - oy - dy
            inside = ((rows >= 0) & (rows <= bh))[:, None] & ((cols >= 0) & (cols <= bw))[None, :]
            cov = np.where(inside, cov, 0.0).astype(np.float32)
        src = Image(torch.from_numpy(cov)[None], ("rgba.alpha",), Box(0, 0, cw, ch), fmt)
        h, w = x.shape
        col0 = math.floor(float(x[0, 0]))
        row0 = fmt.height - math.ceil(float(y[0, 0]))
        out = apply_affine(src, m, Box(col0, row0, col0 + w, row0 + h), fmt, "cubic", True)
        return out.pixels[0].to(device=x.device, dtype=x.dtype).clamp(0, 1)

    @staticmethod
    def _draw(font, runs, cw: int, ch: int, ox: float, oy: float) -> np.ndarray:
        from PIL import Image as PILImage
        from PIL import ImageDraw

        canvas = PILImage.new("L", (cw, ch), 0)
        draw = ImageDraw.Draw(canvas)
        for rx, ry, s in runs:
            draw.text((rx + ox, ry + oy), s, font=font, fill=255, anchor="ls")
        return np.asarray(canvas, dtype=np.float32) / 255.0


class Text(_Text):
    """Nuke's old Text node (Nuke 6 scripts): ``message`` in the font file ``font`` at ``size``
    pixels, placed in ``box`` by ``xjustify``/``yjustify`` and moved by the Transform knobs
    (module docstring for the layout, fonts, TCL and nodegraph's choices). The default vertical
    placement is baseline (the last line's baseline on the box bottom)."""

    class Knobs(_Text.Knobs):
        size: float = Field(50.0, ge=0.0)
        """Font size in pixels."""
        yjustify: Literal["baseline", "top", "center", "bottom"] = "baseline"
        """Vertical placement in the box: baseline (the last line's on the bottom), top, center, bottom."""

    def font_px(self) -> float:
        return self.knobs.size


class Text2(_Text):
    """Nuke's Text2: ``message`` in ``font`` at ``font_size * global_font_scale`` pixels, placed in
    ``box`` by ``xjustify``/``yjustify`` and moved by the Transform knobs (module docstring for
    the layout, fonts, TCL and nodegraph's choices). Per-character animation (Text2's
    ``group_animations``) is not read."""

    class Knobs(_Text.Knobs):
        font_size: float = Field(100.0, ge=0.0)
        """Font size in pixels (before global_font_scale)."""
        global_font_scale: float = Field(1.0, ge=0.0)
        """Multiplies the font size."""
        font_width: float = Field(100.0, gt=0.0)
        """Glyph width in percent of the font size."""
        font_height: float = Field(100.0, gt=0.0)
        """Glyph height in percent of the font size."""
        tracking: float = 0.0
        """Extra space between characters, as a fraction of the font size (added to kerning)."""
        baseline_shift: float = 0.0
        """Moves the text up by this many pixels."""
        yjustify: Literal["top", "center", "bottom", "baseline"] = "top"
        """Vertical placement in the box: top, center, bottom, baseline (the last line's on the bottom)."""

    def font_px(self) -> float:
        k = self.knobs
        return k.font_size * k.global_font_scale * k.font_height / 100.0

    def stretch(self) -> float:
        return self.knobs.font_width / self.knobs.font_height

    def spacing(self) -> float:
        return self.knobs.kerning + self.knobs.tracking

    def shift(self) -> float:
        return self.knobs.baseline_shift


__all__ = ["Text", "Text2", "bundled_font", "expand_message", "layout_lines"]
