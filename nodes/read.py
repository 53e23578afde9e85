"""Read: image files and sequences (EXR, PNG, JPEG, TIFF, DPX...) and movies into the comp."""

from __future__ import annotations

import os
import re
from functools import lru_cache
from typing import Literal

import torch

from nodegraph import color
from nodegraph.errors import ImageIOError, KnobError, NodeGraphError
from nodegraph.evaluator import Context
from nodegraph.filepath import file_knob_problems, node_file_path
from nodegraph.image import Image
from nodegraph.frames import Frame
from nodegraph.node import Knobs, Node

from ._common import colorspace_problems, color_config_id, to_working

from nodegraph.io import movie_info, read_image
from nodegraph.io.movie import is_movie_path
from nodegraph.io import sequence as seq

OnError = Literal["error", "black", "checkerboard", "nearest frame"]
_VIEW_TOKEN = re.compile(r"%[Vv]")
Outside = Literal["hold", "loop", "bounce", "black"]


@lru_cache(maxsize=256)
def _frames_on_disk(pattern: str, dir_mtime_ns: int) -> tuple[int, ...]:
    return tuple(seq.frames_on_disk(pattern))


def frames_on_disk(pattern: str) -> tuple[int, ...]:
    """Frames of a sequence present on disk (cached until the folder changes)."""
    folder = os.path.dirname(os.path.abspath(pattern)) or "."
    try:
        mtime = os.stat(folder).st_mtime_ns
    except OSError:
        return ()
    return _frames_on_disk(pattern, mtime)


class Read(Node):
    """Reads an image file, a frame sequence or a movie.

    Sequences use ``####`` / ``%04d`` / ``@`` padding. Integer files are converted from sRGB and
    float files are taken as linear (Nuke's defaults) unless ``colorspace`` says otherwise or
    ``raw`` is on. Frames outside ``first``-``last`` follow ``before`` / ``after``; frames that are
    missing or unreadable follow ``on_error``.
    """

    category = "Image"
    inputs = ()

    class Knobs(Knobs):
        file: str = ""
        """Path of the file, sequence pattern (plate.####.exr, plate.%04d.exr) or movie."""
        first: Frame | None = None
        """First frame of the clip; empty: detected from the files on disk (movies: 1)."""
        last: Frame | None = None
        """Last frame of the clip; empty: detected from the files on disk (movies: frame count)."""
        frame_mode: Literal["none", "start at", "offset"] = "none"
        """How `frame` shifts the clip in time: 'start at' puts the first frame at `frame`,
        'offset' adds `frame` to every frame number."""
        frame: Frame = 0
        """Frame number or offset used by `frame_mode`."""
        before: Outside = "hold"
        """What frames before the first give: hold the first, loop, bounce, or black."""
        after: Outside = "hold"
        """What frames after the last give: hold the last, loop, bounce, or black."""
        on_error: OnError = "error"
        """Missing or unreadable frames: raise an error, or give black, a checkerboard or the nearest frame."""
        colorspace: str = "default"
        """Colourspace of the file; 'default': sRGB for 8/16-bit integer files, linear for float files."""
        raw: bool = False
        """Skip colour conversion: pixels come in exactly as stored."""
        part: str = ""
        """EXR part to read by name (multi-part files); empty: the first part; '*': every part."""
        view: str = ""
        """View to read from a multi-view EXR (a `multiView` header or parts with a `view`
        attribute); empty: the file's default view. Also replaces %V (and %v, its first letter)
        in `file`, Nuke's per-view file names. Files without views serve every view."""

    def file_path(self, frame: int | None = None) -> str:
        """`file` as a path: its TCL evaluated at ``frame`` (``[frame]``, ``[value root.name]``...,
        see :mod:`nodegraph.filepath`; None: the root's first frame), relative paths resolved against
        the script's folder, and Nuke's view tokens filled in: %V the view name, %v its first letter."""
        f, view = node_file_path(self, frame), self.knobs.view
        return f.replace("%V", view).replace("%v", view[:1]) if view else f

    # --- clip range --------------------------------------------------------------------------
    def clip_range(self) -> tuple[int, int] | None:
        """(first, last) file frames of the clip, from knobs or disk; None for a single still."""
        k = self.knobs
        if not k.file:
            return None
        if k.first is not None and k.last is not None:
            return (k.first, k.last) if k.first <= k.last else (k.last, k.first)
        detected: tuple[int, int] | None = None
        if is_movie_path(self.file_path()):
            try:
                info = movie_info(self.file_path())
                detected = (1, max(1, int(info["frames"])))
            except NodeGraphError:
                detected = None
        elif seq.is_sequence(self.file_path()):
            frames = frames_on_disk(self.file_path())
            detected = (frames[0], frames[-1]) if frames else None
        if detected is None:
            if k.first is None and k.last is None:
                return None
            one = k.first if k.first is not None else k.last
            return (one, one)
        return (k.first if k.first is not None else detected[0], k.last if k.last is not None else detected[1])

    def _shift(self, clip: tuple[int, int]) -> int:
        k = self.knobs
        if k.frame_mode == "start at":
            return k.frame - clip[0]
        if k.frame_mode == "offset":
            return k.frame
        return 0

    def frame_range(self, ranges) -> tuple[int, int] | None:
        clip = self.clip_range()
        if clip is None:
            return None
        s = self._shift(clip)
        return (clip[0] + s, clip[1] + s)

    def file_frame(self, frame: int) -> int | None:
        """The frame of the file that output frame ``frame`` shows; None means black."""
        clip = self.clip_range()
        if clip is None:
            return frame
        f = frame - self._shift(clip)
        first, last = clip
        if first <= f <= last:
            return f
        mode = self.knobs.before if f < first else self.knobs.after
        n = last - first + 1
        if mode == "black":
            return None
        if mode == "hold" or n == 1:
            return first if f < first else last
        if mode == "loop":
            return first + (f - first) % n
        period = 2 * (n - 1)  # bounce
        p = (f - first) % period
        return first + (p if p < n else period - p)

    def path_for(self, file_frame: int) -> str:
        """The file of ``file_frame``: the knob's TCL evaluated at that frame, then its padding filled."""
        pattern = self.file_path(file_frame)
        return seq.frame_path(pattern, file_frame) if seq.is_sequence(pattern) else pattern

    # --- hashing and compute -----------------------------------------------------------------
    def needs(self, ctx: Context):
        return ()

    def hash_extra(self, ctx: Context) -> bytes:
        ff = self.file_frame(ctx.frame)
        if ff is None:
            return b"black"
        path = self.path_for(ff)
        try:
            st = os.stat(path)
            stamp = f"{st.st_size}:{st.st_mtime_ns}"
        except OSError:
            stamp = "missing"
            if self.knobs.on_error == "nearest frame" and seq.is_sequence(self.file_path()):
                stamp += f":{tuple(frames_on_disk(self.file_path()))}"
        # a single still is the same image at every frame: leave the frame out so frames share it
        timed = seq.is_sequence(self.file_path()) or is_movie_path(self.file_path())
        return f"{os.path.abspath(path)}|{ff if timed else ''}|{stamp}|{color_config_id()}".encode()

    def check(self) -> list[str]:
        problems = []
        if not self.knobs.file:
            problems.append("knob 'file' is empty")
        elif _VIEW_TOKEN.search(self.knobs.file) and not self.knobs.view:
            problems.append("knob 'file' names a view (%V or %v) but knob 'view' is empty")
        else:
            problems.extend(file_knob_problems(self))
        problems.extend(colorspace_problems(self.knobs))
        return problems

    def _load(self, path: str, file_frame: int, ctx: Context) -> Image:
        k = self.knobs
        kwargs = {}
        if is_movie_path(path):
            clip = self.clip_range() or (1, 1)
            kwargs["frame_index"] = file_frame - clip[0]
        if k.part:
            kwargs["part"] = k.part
        if k.view and not is_movie_path(path):
            kwargs["view"] = k.view
        img = read_image(path, dtype=ctx.dtype, **kwargs)
        if not k.raw:
            src = k.colorspace
            if src == "default":
                src = color.default_for_datatype(str(img.metadata.get("input/datatype", "float")))
            img = to_working(img, src)
        return img

    def compute(self, ctx: Context) -> Image:
        k = self.knobs
        if not k.file:
            raise KnobError("no file to read", node=self.name, knob="file")
        if _VIEW_TOKEN.search(k.file) and not k.view:
            raise KnobError("the file name has a view token (%V or %v) but no view is set",
                            node=self.name, knob="view")
        ff = self.file_frame(ctx.frame)
        if ff is None:
            return self._blank_like(ctx)
        path = self.path_for(ff)
        try:
            img = self._load(path, ff, ctx)
        except ImageIOError as err:
            err.with_context(node=self.name, frame=ctx.frame, path=path)
            if k.on_error == "error":
                raise
            if k.on_error == "nearest frame":
                near = self._nearest_readable(ff)
                if near is None:
                    raise
                img = self._load(self.path_for(near), near, ctx)
            else:
                img = self._blank_like(ctx, checker=k.on_error == "checkerboard", exclude=ff)
                img.metadata["nodegraph/error"] = str(err)
        return img.to(ctx.device, ctx.dtype)

    def _nearest_readable(self, ff: int) -> int | None:
        if not seq.is_sequence(self.file_path()):
            return None
        frames = [f for f in frames_on_disk(self.file_path()) if f != ff]
        return min(frames, key=lambda f: (abs(f - ff), f)) if frames else None

    def _blank_like(self, ctx: Context, *, checker: bool = False, exclude: int | None = None) -> Image:
        """Black (or a checkerboard) shaped like a readable frame of the clip (64x64 RGBA if none)."""
        from nodegraph.image import Format

        img = None
        candidates = []
        if seq.is_sequence(self.file_path()):
            candidates = [f for f in frames_on_disk(self.file_path()) if f != exclude][:1]
        elif exclude is None:
            candidates = [self.clip_range()[0] if self.clip_range() else ctx.frame]
        for ff in candidates:
            try:
                img = self._load(self.path_for(ff), ff, ctx)
                break
            except NodeGraphError:
                continue
        if img is None:
            img = Image.blank(Format.of_size(64, 64), ("rgba.red", "rgba.green", "rgba.blue", "rgba.alpha"))
        img = img.replace(pixels=torch.zeros_like(img.pixels), metadata={})
        if checker:
            size = max(4, min(img.format.height, img.format.width) // 8)
            yy = torch.arange(img.bbox.y0, img.bbox.y1)[:, None] // size
            xx = torch.arange(img.bbox.x0, img.bbox.x1)[None, :] // size
            board = (((yy + xx) % 2) * 0.4 + 0.1).to(img.dtype)
            for i, n in enumerate(img.channels):
                img.pixels[i] = 1.0 if n == "rgba.alpha" else board
        return img.to(ctx.device, ctx.dtype)
