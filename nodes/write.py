"""Write: render frames to EXR, PNG, JPEG, TIFF, DPX files (atomically) or to a movie."""

from __future__ import annotations

import os
from typing import Iterator, Literal, Sequence

import torch

from nodegraph import channels as chans
from nodegraph.errors import ImageIOError, KnobError, NodeGraphError
from nodegraph.evaluator import Context, Evaluator
from nodegraph.filepath import file_knob_problems, node_file_path
from nodegraph.image import Image
from nodegraph.node import Input, Knobs, Node
from nodegraph.task import Task, TaskKind, TaskPlan, TaskResult, TaskRun, attempt

from nodegraph.io import write_image
from nodegraph.io.movie import is_movie_path
from nodegraph.io import sequence as seq

from ._common import colorspace_problems, ChannelsKnob, from_working

FileType = Literal["", "exr", "png", "jpeg", "tiff", "dpx", "mov", "mp4", "mxf"]
DataType = Literal["auto", "8 bit", "10 bit", "12 bit", "16 bit", "16 bit half", "32 bit float"]
Compression = Literal["none", "zip", "zips", "rle", "piz", "pxr24", "b44", "b44a", "dwaa", "dwab"]

_EXT = {".exr": "exr", ".png": "png", ".jpg": "jpeg", ".jpeg": "jpeg", ".tif": "tiff", ".tiff": "tiff",
        ".dpx": "dpx", ".mov": "mov", ".mp4": "mp4", ".mxf": "mxf"}
_INTEGER_DEPTHS = {"exr": (), "png": ("8 bit", "16 bit"), "jpeg": ("8 bit",), "tiff": ("8 bit", "16 bit", "32 bit float"),
                   "dpx": ("8 bit", "10 bit", "12 bit", "16 bit"), "mov": ("8 bit",), "mp4": ("8 bit",),
                   "mxf": ("8 bit",)}
_DEFAULT_DEPTH = {"exr": "16 bit half", "png": "8 bit", "jpeg": "8 bit", "tiff": "8 bit", "dpx": "10 bit",
                  "mov": "8 bit", "mp4": "8 bit", "mxf": "8 bit"}


class Write(Task, Node):
    """Writes its input to files when rendered (``nodegraph render``); a pass-through otherwise.

    Each frame is written to a temporary file and renamed into place, so an interrupted render
    never leaves a partial frame; a failed write (a full disk, a quota) fails that frame and
    publishes nothing, so ``--skip-existing`` renders it again. EXR keeps the data window, every selected layer and the
    metadata; integer formats are converted to `colorspace` (default sRGB) and quantised.
    """

    category = "Image"
    task_kind = TaskKind.WRITE
    inputs = (Input("input", doc="Image to write."),)

    class Knobs(Knobs):
        file: str = ""
        """Output path; frame sequences use ####, %04d or @ padding."""
        file_type: FileType = ""
        """File format; empty: from the file extension."""
        channels: ChannelsKnob = "rgb"
        """Channels to write: rgb, rgba, all, a layer, or a comma list of channels."""
        datatype: DataType = "auto"
        """Sample type: EXR '16 bit half' or '32 bit float'; integer formats 8/10/12/16 bit. auto: half for
        EXR, 10 bit for DPX, 8 bit otherwise."""
        compression: Compression = "zips"
        """EXR compression (Nuke's default is zips, 'Zip (1 scanline)')."""
        colorspace: str = "default"
        """Colourspace to write; 'default': linear for float files, sRGB for integer files."""
        raw: bool = False
        """Skip colour conversion."""
        create_directories: bool = False
        """Create missing folders of the output path."""
        fps: float = 24.0
        """Frame rate of movie files."""

    # --- helpers -----------------------------------------------------------------------------
    def passthrough(self, ctx: Context) -> str | None:
        return "input"

    def compute(self, ctx: Context) -> Image:
        return ctx.input("input")

    def resolved_type(self) -> str:
        k = self.knobs
        if k.file_type:
            return k.file_type
        ext = os.path.splitext(self.file_path())[1].lower()
        if ext not in _EXT:
            raise KnobError(f"cannot tell the file type from extension {ext!r}; set file_type to one of "
                            f"{', '.join(sorted(set(_EXT.values())))}", node=self.name, knob="file_type")
        return _EXT[ext]

    def resolved_datatype(self) -> str:
        ftype = self.resolved_type()
        dt = self.knobs.datatype
        if dt == "auto":
            return _DEFAULT_DEPTH[ftype]
        allowed = ("16 bit half", "32 bit float") if ftype == "exr" else _INTEGER_DEPTHS[ftype]
        if dt not in allowed:
            raise KnobError(f"{dt!r} is not available for {ftype}; choose {', '.join(allowed)}",
                            node=self.name, knob="datatype")
        return dt

    def check(self) -> list[str]:
        problems = []
        if not self.knobs.file:
            problems.append("knob 'file' is empty")
            return problems
        problems.extend(file_knob_problems(self))
        if problems:  # the file type comes from the expanded path
            return problems + colorspace_problems(self.knobs)
        try:
            self.resolved_datatype()
        except KnobError as err:
            problems.append(f"knob {err.knob!r}: {err.message}")
        problems.extend(colorspace_problems(self.knobs))
        return problems

    @property
    def is_movie(self) -> bool:
        return self.knobs.file_type in ("mov", "mp4", "mxf") or is_movie_path(self.file_path())

    def file_path(self, frame: int | None = None) -> str:
        """`file` as a path: its TCL evaluated at ``frame`` (``[frame]``, ``[value root.name]``...,
        see :mod:`nodegraph.filepath`; None: the root's first frame), relative paths resolved
        against the script's folder. Frame padding (####, %04d) is left in."""
        return node_file_path(self, frame)

    # --- the task ---------------------------------------------------------------------------
    def task_plan(self, frames: Sequence[int] | None = None) -> TaskPlan:
        """Frames asked for, or the input's frame range; a movie is encoded in order in one process,
        image files are independent per frame."""
        if frames is None:
            rng = self.graph.frame_range(self)
            top = self.graph.top
            if rng is None and "nuke" in top.metadata:  # a Nuke script renders the root's range
                rng = (int(top.root["first_frame"]), int(top.root["last_frame"]))
            if rng is None:
                raise NodeGraphError("no frame range: nothing upstream has one (e.g. only generators); "
                                     "pass --frames", node=self.path)
            frames = range(rng[0], rng[1] + 1)
        movie = self.is_movie
        return TaskPlan(self.path, self.task_kind, frames, in_order=movie,
                        outputs=(self.file_path(),) if movie else ())

    def frame_output(self, frame: int) -> str | None:
        return None if self.is_movie else self.output_path(frame)

    def run_task(self, run: TaskRun, frames: Sequence[int]) -> Iterator[TaskResult]:
        if self.is_movie:
            yield from self.write_movie(run.evaluator, list(frames), device=run.device, dtype=run.dtype)
            return
        for f in frames:
            yield attempt(self.path, f, lambda: self.write_frame(run.evaluator, f, device=run.device,
                                                                 dtype=run.dtype))

    def output_path(self, frame: int) -> str:
        if not self.knobs.file:
            raise KnobError("no output file", node=self.name, knob="file")
        path = self.file_path(frame)
        return seq.frame_path(path, frame) if seq.is_sequence(path) else path

    def prepare(self, img: Image) -> Image:
        """Select channels and convert colour for the file."""
        k = self.knobs
        ftype = self.resolved_type()
        names = chans.expand(k.channels, img.channels)
        if ftype != "exr":
            names = tuple(n for n in names if n in chans.RGBA) or names
        img = img.select(names, missing="black")
        if not k.raw:
            dst = k.colorspace
            if dst == "default":
                dst = "linear" if ftype == "exr" or self.resolved_datatype() == "32 bit float" else "sRGB"
            img = from_working(img, dst)
        return img

    def write_frame(self, evaluator: Evaluator, frame: int, *, device: str | torch.device | None = None,
                    dtype: torch.dtype | None = None) -> str:
        """Evaluate the input at ``frame`` and write it; returns the path written."""
        k = self.knobs
        path = self.output_path(frame)
        src = self.graph.sources_of(self).get("input")
        if src is None:
            raise NodeGraphError("input is not connected", node=self.path, frame=frame)
        img = evaluator.evaluate(src, frame, device=device, dtype=dtype)
        try:
            out = self.prepare(img.to("cpu", torch.float32))
            write_image(path, out, file_type=self.resolved_type(), datatype=_io_datatype(self.resolved_datatype()),
                        compression=k.compression, create_directories=k.create_directories)
        except NodeGraphError as err:
            raise err.with_context(node=self.path, frame=frame, path=path)
        return path


    def write_movie(self, evaluator: Evaluator, frames: list[int], *, device: str | torch.device | None = None,
                    dtype: torch.dtype | None = None) -> list[TaskResult]:
        """Encode ``frames`` in order into one movie; one result per frame.

        The movie appears only when every frame encoded: a failed frame aborts the whole file
        (a movie with a hole is not a usable output), and the remaining frames are reported failed.
        """
        from nodegraph.io import MovieWriter

        k = self.knobs
        path = self.file_path()  # one file for the whole movie: [frame] is the root's first frame
        src = self.graph.sources_of(self).get("input")
        results = []
        try:
            if src is None:
                raise NodeGraphError("input is not connected", node=self.path)
            with MovieWriter(path, k.fps, create_directories=k.create_directories) as writer:
                for f in sorted(frames):
                    try:
                        img = evaluator.evaluate(src, f, device=device, dtype=dtype)
                        writer.write(self.prepare(img.to("cpu", torch.float32)))
                    except NodeGraphError as err:
                        raise err.with_context(node=self.path, frame=f, path=path)
                    results.append(TaskResult(self.path, f, path, None))
        except NodeGraphError as err:
            failed_frame = err.frame
            results = [TaskResult(self.path, f, None, str(err) if f == failed_frame or failed_frame is None
                                  else f"movie {path!r} not written: frame {failed_frame} failed")
                       for f in sorted(frames)]
        return results


def _io_datatype(dt: str) -> str:
    return {"8 bit": "8", "10 bit": "10", "12 bit": "12", "16 bit": "16", "16 bit half": "half",
            "32 bit float": "float"}[dt]


__all__ = ["Write", "ImageIOError"]
