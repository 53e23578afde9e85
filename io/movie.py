"""Movie files (.mov, .mp4, .mxf, .avi, .mkv) through PyAV: frame-accurate reads, atomic writes.

Frame ``index`` (0-based) means the index-th frame in presentation order. On first use a file's
packets are demuxed (not decoded) to list every frame's pts and the keyframes; a read seeks to
the keyframe before the target and decodes forward to the exact pts, or keeps decoding from
the previous read when the target lies ahead in the same GOP. Open readers are cached per
process (keyed by path, size and mtime) so sequential reads do not reopen the file.
"""

from __future__ import annotations

import bisect
import os
import threading
from collections import OrderedDict
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np
import torch

from nodegraph import channels as chans
from nodegraph.errors import ImageIOError, MissingFrameError
from nodegraph.image import Box, Format, Image

from .atomic import atomic_output, os_message
from .guard import check_decode_size, check_readable

MOVIE_EXTENSIONS = {".mov", ".mp4", ".m4v", ".mxf", ".avi", ".mkv", ".webm"}
#: Default codec and pixel format per container extension.
DEFAULT_CODECS = {".mov": ("prores_ks", "yuv422p10le"), ".mp4": ("libx264", "yuv420p"),
                  ".m4v": ("libx264", "yuv420p"), ".mxf": ("mpeg2video", "yuv422p"),
                  ".avi": ("mjpeg", "yuvj444p"), ".mkv": ("ffv1", "yuv444p"), ".webm": ("libvpx-vp9", "yuv420p")}
_SWS_SPACES = {1: "itu709", 5: "itu601", 6: "itu601", 7: "smpte240m"}
_CACHE_SIZE = 8



def _av(path: str | None = None) -> Any:
    """PyAV, imported on first use so that stills-only work never pays for (or needs) FFmpeg."""
    try:
        import av
    except ImportError as exc:  # pragma: no cover - av is a declared dependency
        raise ImageIOError(f"movie support needs PyAV (pip install av): {exc}", path=path) from None
    return av


def _src_colorspace(frame: Any) -> str:
    return _SWS_SPACES.get(int(frame.colorspace), "itu709" if frame.height >= 720 else "itu601")


class _Reader:
    """One open container plus its frame index and decoding position. Not thread safe alone."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.lock = threading.Lock()
        try:
            av = _av(path)
            self.container = av.open(path)
            if not self.container.streams.video:
                raise ImageIOError("movie has no video stream", path=path)
            self.stream = self.container.streams.video[0]
            cc = self.stream.codec_context
            if cc is None:
                raise ImageIOError("movie's video codec is unknown or unsupported", path=path)
            self.stream.thread_type = "AUTO"
            pts: list[int] = []
            keys: list[int] = []
            for packet in self.container.demux(self.stream):
                stamp = packet.pts if packet.pts is not None else packet.dts
                if packet.size == 0 or stamp is None:
                    continue
                pts.append(stamp)
                if packet.is_keyframe:
                    keys.append(stamp)
            if not pts:
                raise ImageIOError("movie has no video frames", path=path)
            self.high_bit_depth = any(tag in (cc.pix_fmt or "") for tag in ("10", "12", "16"))
            self.pts = sorted(pts)
            self.keys = sorted(keys) or self.pts[:1]
            self.info()  # fails here, not later, on streams without sizes or rates
        except ImageIOError:
            self.close()
            raise
        except Exception as exc:
            self.close()
            raise ImageIOError(f"cannot open movie: {exc}", path=path) from exc
        self.position: int | None = None  # pts of the last decoded frame
        self._frames: Any = None

    def info(self) -> dict[str, Any]:
        s, cc = self.stream, self.stream.codec_context
        rate = s.average_rate or s.guessed_rate or s.base_rate
        return {"path": self.path, "format": "movie", "container": self.container.format.name,
                "frames": len(self.pts), "fps": float(rate) if rate else None,
                "fps_fraction": (rate.numerator, rate.denominator) if rate else None,
                "width": cc.width, "height": cc.height, "codec": cc.name, "pixel_format": cc.pix_fmt,
                "pixel_aspect": float(s.sample_aspect_ratio) if s.sample_aspect_ratio else 1.0}

    def _decode_to(self, target: int) -> Any:
        for frame in self._frames:
            stamp = frame.pts if frame.pts is not None else frame.dts
            self.position = stamp
            if stamp is None or stamp < target:
                continue
            return frame if stamp == target else None
        return None

    def frame(self, index: int) -> Any:
        target = self.pts[index]
        key = self.keys[max(0, bisect.bisect_right(self.keys, target) - 1)]
        if self._frames is not None and self.position is not None and key <= self.position < target:
            found = self._decode_to(target)
            if found is not None:
                return found
        for seek_to in (key, None):  # a second try decodes from the very start
            if seek_to is None:
                self.container.seek(0, backward=True, any_frame=False, stream=self.stream)
            else:
                self.container.seek(seek_to, backward=True, any_frame=False, stream=self.stream)
            self._frames = self.container.decode(self.stream)
            found = self._decode_to(target)
            if found is not None:
                return found
        raise ImageIOError(f"could not decode frame index {index} (pts {target})", path=self.path)

    def close(self) -> None:
        container = getattr(self, "container", None)
        if container is not None:
            container.close()


_cache: OrderedDict[tuple[str, int, int], _Reader] = OrderedDict()
_cache_lock = threading.Lock()
_cache_pid = os.getpid()


def _reader(path: str) -> _Reader:
    global _cache_pid
    check_readable(path, "movie")
    st = os.stat(path)
    key = (os.path.abspath(path), st.st_size, st.st_mtime_ns)
    with _cache_lock:
        if _cache_pid != os.getpid():  # forked: containers are not shareable across processes
            _cache.clear()
            _cache_pid = os.getpid()
        reader = _cache.get(key)
        if reader is not None:
            _cache.move_to_end(key)
            return reader
    reader = _Reader(path)
    with _cache_lock:
        _cache[key] = reader
        while len(_cache) > _CACHE_SIZE:
            _, old = _cache.popitem(last=False)
            with old.lock:
                old.close()
    return reader


def close_all() -> None:
    """Close every cached reader (tests, or before a file is rewritten in place)."""
    with _cache_lock:
        readers = list(_cache.values())
        _cache.clear()
    for r in readers:
        with r.lock:
            r.close()


def movie_info(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Frame count, fps, width, height, codec, pixel format and container of the first video stream."""
    reader = _reader(str(path))
    with reader.lock:
        return reader.info()


def read_movie_frame(path: str | os.PathLike[str], index: int, *, dtype: torch.dtype = torch.float32) -> Image:
    """Frame ``index`` (0-based, presentation order) as an RGB image, values 0..1."""
    path = str(path)
    reader = _reader(path)
    with reader.lock:
        count = len(reader.pts)
        if not 0 <= index < count:
            raise MissingFrameError(f"frame index {index} outside the movie's {count} frames (0..{count - 1})",
                                    path=path)
        w, h = reader.stream.codec_context.width or 0, reader.stream.codec_context.height or 0
        # decoded frame, RGB copy (8 or 16 bit) and the float result
        check_decode_size(path, w * h * (4 + 3 * (2 if reader.high_bit_depth else 1) + 3 * 4),
                          f"{w}x{h} pixel frames")
        try:
            frame = reader.frame(index)
            fmt = "rgb48le" if reader.high_bit_depth else "rgb24"
            rgb = frame.reformat(format=fmt, src_colorspace=_src_colorspace(frame)).to_ndarray()
            info = reader.info()
        except ImageIOError:
            raise
        except Exception as exc:
            raise ImageIOError(f"cannot decode frame index {index}: {exc}", path=path) from exc
    scale = 65535.0 if rgb.dtype == np.uint16 else 255.0
    pixels = torch.from_numpy(np.ascontiguousarray(np.moveaxis(rgb.astype(np.float32) / np.float32(scale), -1, 0)))
    h, w = pixels.shape[1:]
    metadata = {"input/filename": path, "input/frame_index": index, "input/datatype": str(rgb.dtype),
                "input/filetype": "movie", "movie/codec": info["codec"], "movie/fps": info["fps"],
                "movie/pixel_format": info["pixel_format"]}
    return Image(pixels.to(dtype), chans.RGB, Box(0, 0, w, h), Format.of_size(w, h, info["pixel_aspect"]), metadata)


class MovieWriter:
    """Encode images into a movie; the file appears at ``path`` only when :meth:`close` succeeds.

    Use as a context manager: an exception inside the block aborts and removes the temp file.
    ``codec``/``pixel_format`` default by extension (mov: ProRes 422 10-bit, mp4: H.264,
    mxf: MPEG-2). Pixels are clamped to 0..1 and encoded with the Rec.709 matrix.
    """

    def __init__(self, path: str | os.PathLike[str], fps: float | Fraction = 24, *, codec: str | None = None,
                 pixel_format: str | None = None, bit_rate: int | None = None,
                 options: dict[str, str] | None = None, create_directories: bool = False) -> None:
        self.path = str(path)
        ext = Path(self.path).suffix.lower()
        if ext not in DEFAULT_CODECS:
            raise ImageIOError(f"unknown movie extension {ext!r}; valid: {', '.join(sorted(DEFAULT_CODECS))}",
                               path=self.path)
        default_codec, default_pix = DEFAULT_CODECS[ext]
        self.codec = codec or default_codec
        av = _av(self.path)
        if self.codec not in av.codecs_available:
            raise ImageIOError(f"codec {self.codec!r} is not available in this PyAV build", path=self.path)
        self.pixel_format = pixel_format or (default_pix if codec in (None, default_codec) else None)
        self.fps = Fraction(fps).limit_denominator(1001)
        self.bit_rate, self.options = bit_rate, dict(options or {})
        # temp file next to the target (stale ones of killed writers removed), fsync, rename
        self._output: Any = atomic_output(self.path, create_directories=create_directories)
        self.tmp = self._output.__enter__()
        self.stream: Any = None
        self.frames = 0
        self.closed = False
        try:
            self.container = av.open(str(self.tmp), "w")
        except Exception as exc:
            self.abort()
            raise self._error("cannot create movie", exc) from exc

    def _error(self, what: str, exc: BaseException) -> ImageIOError:
        return ImageIOError(f"{what}: {os_message(exc) if isinstance(exc, OSError) else exc}", path=self.path)

    def _open_stream(self, width: int, height: int) -> None:
        s = self.container.add_stream(self.codec, rate=self.fps, options=self.options)
        s.width, s.height = width, height
        if self.pixel_format:
            s.pix_fmt = self.pixel_format
        elif s.codec_context.codec.video_formats:
            s.pix_fmt = s.codec_context.codec.video_formats[0].name
        if self.bit_rate:
            s.bit_rate = int(self.bit_rate)
        for attr, value in (("colorspace", 1), ("color_primaries", 1), ("color_trc", 1)):
            try:
                setattr(s.codec_context, attr, value)
            except Exception:  # not settable in every PyAV version
                pass
        self.stream = s

    def write(self, image: Image) -> None:
        """Append one frame (cropped/padded to its display window, RGB; missing channels are black)."""
        if self.closed:
            raise ImageIOError("movie writer is closed", path=self.path)
        try:
            image = image.crop_to(image.format.display).select(chans.RGB, missing="black")
            rgb = image.pixels.detach().cpu().float().clamp(0, 1).nan_to_num(0.0)
            w, h = image.format.width, image.format.height
            if self.stream is None:
                self._open_stream(w, h)
            elif (w, h) != (self.stream.width, self.stream.height):
                raise ImageIOError(f"frame {self.frames} is {w}x{h}, the movie is "
                                   f"{self.stream.width}x{self.stream.height}", path=self.path)
            deep = any(tag in (self.stream.pix_fmt or "") for tag in ("10", "12", "16"))
            if deep:
                arr = (rgb * 65535).round().to(torch.int32).permute(1, 2, 0).numpy().astype(np.uint16)
                frame = _av(self.path).VideoFrame.from_ndarray(np.ascontiguousarray(arr), format="rgb48le")
            else:
                arr = (rgb * 255).round().to(torch.uint8).permute(1, 2, 0).contiguous().numpy()
                frame = _av(self.path).VideoFrame.from_ndarray(arr, format="rgb24")
            frame = frame.reformat(format=self.stream.pix_fmt, dst_colorspace="itu709")
            frame.pts = self.frames
            for packet in self.stream.encode(frame):
                self.container.mux(packet)
            self.frames += 1
        except ImageIOError:
            raise
        except Exception as exc:  # the encoder or the disk failed: the movie cannot be finished
            self.abort()
            raise self._error(f"cannot encode frame {self.frames}", exc) from exc

    add = write

    def close(self) -> None:
        """Flush the encoder and move the finished file into place (fsynced; any failure of the
        encoder, the disk or the rename removes the temp file and raises ``ImageIOError``)."""
        if self.closed:
            return
        try:
            if self.stream is None:
                raise ImageIOError("no frames were written", path=self.path)
            for packet in self.stream.encode(None):
                self.container.mux(packet)
            self.closed = True
            self.container.close()
        except BaseException as exc:
            self.abort()
            if isinstance(exc, ImageIOError) or not isinstance(exc, Exception):
                raise
            raise self._error("cannot finish movie", exc) from exc
        output, self._output = self._output, None
        output.__exit__(None, None, None)  # fsync, rename, fsync folder; OSError -> ImageIOError

    def abort(self) -> None:
        """Drop everything written so far; nothing appears at ``path``."""
        if not self.closed:
            self.closed = True
            container = getattr(self, "container", None)
            if container is not None:
                try:
                    container.close()
                except Exception:
                    pass
        output, self._output = self._output, None
        if output is not None:  # leaving atomic_output with an exception removes the temp file
            try:
                output.__exit__(RuntimeError, RuntimeError("movie aborted"), None)
            except Exception:
                pass

    def __enter__(self) -> "MovieWriter":
        return self

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        if exc_type is not None:
            self.abort()
        else:
            self.close()


def is_movie_path(path: str | os.PathLike[str]) -> bool:
    return Path(path).suffix.lower() in MOVIE_EXTENSIONS
