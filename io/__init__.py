"""File formats: EXR (OpenEXR), stills (OpenImageIO), movies (PyAV), sequences (fileseq).

The entry points dispatch by extension: ``.exr`` to :mod:`.exr`, movie containers to
:mod:`.movie`, anything else to OpenImageIO (:mod:`.stills`). Every failure is a
:class:`~nodegraph.errors.ImageIOError` naming the file (``MissingFrameError`` when absent).
Readers check the size a file declares against :func:`max_image_bytes` before decoding
(``NODEGRAPH_MAX_IMAGE_BYTES`` or :func:`set_max_image_bytes` raise it); writers never publish
a partial file, even on a full disk.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import OpenImageIO as oiio
import torch

from nodegraph import channels as chans
from nodegraph.errors import ImageIOError, NodeGraphError
from nodegraph.image import Image

from . import exr, movie, stills
from .atomic import atomic_output
from .exr import exr_info, read_exr, write_exr
from .guard import ENV_MAX_IMAGE_BYTES, check_readable, max_image_bytes, set_max_image_bytes
from .movie import MovieWriter, movie_info, read_movie_frame
from .sequence import frame_path, frames_on_disk, is_sequence, nearest_frame, parse_frame_range
from .stills import read_still, write_still

__all__ = [
    "read_image", "write_image", "probe", "file_types", "atomic_output", "read_exr", "write_exr",
    "exr_info", "read_still", "write_still", "movie_info", "read_movie_frame", "MovieWriter",
    "is_sequence", "frame_path", "frames_on_disk", "parse_frame_range", "nearest_frame",
    "max_image_bytes", "set_max_image_bytes", "ENV_MAX_IMAGE_BYTES",
]


def _kind(path: str, file_type: str | None = None) -> str:
    ext = (file_type or Path(path).suffix.lstrip(".")).lower()
    if ext in {"exr", "sxr", "mxr", "openexr"}:
        return "exr"
    if f".{ext}" in movie.MOVIE_EXTENSIONS:
        return "movie"
    return "still"


def read_image(path: str | os.PathLike[str], *, frame_index: int | None = None, part: str | int | None = None,
               dtype: torch.dtype = torch.float32, channels: Any = None, view: str | None = None) -> Image:
    """Read one image: an EXR part, a still, or frame ``frame_index`` (0-based) of a movie.

    ``view`` picks a view of a multi-view EXR (empty: its default view); other files have one
    view, which serves every view."""
    path = str(path)
    kind = _kind(path)
    if kind == "exr":
        return read_exr(path, part=part, channels=channels, dtype=dtype, view=view)
    if kind == "movie":
        return read_movie_frame(path, 0 if frame_index is None else int(frame_index), dtype=dtype)
    image = read_still(path, dtype=dtype)
    if channels is None:
        return image
    try:
        return image.select(chans.expand(channels, image.channels))
    except NodeGraphError as exc:
        raise ImageIOError(exc.message, path=path) from None


def write_image(path: str | os.PathLike[str], image: Image, *, file_type: str | None = None,
                **options: Any) -> None:
    """Write a still atomically: EXR via OpenEXR (``datatype``, ``compression``, ``metadata``,
    ``tiled``), anything else via OpenImageIO (``datatype``, ``compression``, ``quality``).
    Movies are written frame by frame with :class:`MovieWriter`."""
    path = str(path)
    kind = _kind(path, file_type)
    if kind == "exr":
        write_exr(path, image, **options)
    elif kind == "movie":
        raise ImageIOError("movies are written with MovieWriter, one frame at a time", path=path)
    else:
        write_still(path, image, file_type=file_type, **options)


def probe(path: str | os.PathLike[str]) -> dict[str, Any]:
    """What a file holds, from its headers only, never decoding pixels (for ``nodegraph info``)."""
    path = str(path)
    kind = _kind(path)
    if kind == "exr":
        return exr_info(path)
    if kind == "movie":
        return movie_info(path)
    check_readable(path)
    inp = oiio.ImageInput.open(path)
    if inp is None:
        raise ImageIOError(f"cannot open image: {oiio.geterror()}", path=path)
    try:
        spec = inp.spec()
        formats = [str(f) for f in spec.channelformats] or [str(spec.format)] * spec.nchannels
        return {
            "path": path, "format": inp.format_name(),
            "data_window": (spec.x, spec.y, spec.x + spec.width, spec.y + spec.height),
            "display_window": (spec.full_x, spec.full_y, spec.full_x + spec.full_width,
                               spec.full_y + spec.full_height),
            "pixel_aspect": spec.get_float_attribute("PixelAspectRatio", 1.0) or 1.0,
            "channels": [{"name": n, "type": t} for n, t in zip(spec.channelnames, formats)],
            "metadata": {a.name: stills._json_value(a.value) for a in spec.extra_attribs},
        }
    finally:
        inp.close()


def file_types() -> list[str]:
    """Extensions ``write_image`` (or ``MovieWriter``) can write."""
    out = {"exr"}
    for entry in oiio.get_string_attribute("extension_list").split(";"):
        fmt, _, exts = entry.partition(":")
        if fmt in {"null", "term", "openexr"} or not exts:
            continue
        if oiio.ImageOutput.create(f"x.{exts.split(',')[0]}") is not None:
            out.update(exts.split(","))
        else:
            oiio.geterror()  # clear it, or OIIO complains at exit
    out.update(e.lstrip(".") for e in movie.DEFAULT_CODECS)
    return sorted(out)
