"""Still images other than EXR (PNG, JPEG, TIFF, DPX, ...) through OpenImageIO.

Integer samples become float 0..1 (``v / (2**bits - 1)``, divided in float32 straight into the
result: exact for 8/10/12/16-bit values, no float64 copy). The declared size is checked against
the image size limit (:mod:`.guard`) before any pixel is decoded.

Writers encode into a memory file (:func:`.atomic.memory_output`) and check every result OIIO
gives, including the error text of calls that return success (libpng reports short writes only
there); the bytes reach disk through checked writes, so a full disk is an ``ImageIOError`` naming
the file and leaves nothing behind.

``metadata["input/datatype"]`` records the file's sample type so the Read node can pick Nuke's
default colourspace; ``"input/filetype"`` the OIIO format name (``dpx`` reads default to log in
Nuke); other file attributes keep OIIO's names (``Orientation``, ``tiff:Compression``, ...).
"""

from __future__ import annotations

import errno
import os
from collections.abc import Mapping
from typing import Any

import numpy as np
import OpenImageIO as oiio
import torch

from nodegraph import channels as chans
from nodegraph.errors import ImageIOError
from nodegraph.image import Box, Format, Image

from .atomic import file_size_limit, memory_output
from .exr import _json_value
from .guard import check_decode_size, check_readable

_INT_TYPES = {"uint8": np.uint8, "uint16": np.uint16, "uint32": np.uint32, "int8": np.int8,
              "int16": np.int16, "int32": np.int32}
_SAMPLE_BYTES = {**{k: np.dtype(v).itemsize for k, v in _INT_TYPES.items()}, "half": 2, "float": 4, "double": 8}

#: Write datatypes: name -> (OIIO type, numpy type, bits per sample if not the type's own).
DATATYPES: dict[str, tuple[Any, Any, int | None]] = {
    "8": (oiio.UINT8, np.uint8, None),
    "10": (oiio.UINT16, np.uint16, 10),
    "12": (oiio.UINT16, np.uint16, 12),
    "16": (oiio.UINT16, np.uint16, None),
    "half": (oiio.HALF, np.float16, None),
    "float": (oiio.FLOAT, np.float32, None),
}
_ALIASES = {"8 bit": "8", "uint8": "8", "10 bit": "10", "12 bit": "12", "16 bit": "16", "uint16": "16",
            "16 bit half": "half", "float16": "half", "32 bit float": "float", "float32": "float", "32f": "float"}

# Read alpha files as stored: OIIO would otherwise premultiply unassociated-alpha files (PNG).
_READ_CONFIG = oiio.ImageSpec()
_READ_CONFIG.attribute("oiio:UnassociatedAlpha", 1)

_EXR_ONLY_COMPRESSIONS = {"zips", "piz", "pxr24", "b44", "b44a", "dwaa", "dwab"}

#: Descriptive attributes carried from ``Image.metadata`` into written files.
_DESCRIPTIVE = ("ImageDescription", "Artist", "Copyright", "DateTime", "Software", "DocumentName")


def _fail(path: str, what: str, detail: str | None = None) -> ImageIOError:
    detail = (detail if detail is not None else oiio.geterror()).strip()
    return ImageIOError(f"{what}: {detail}" if detail else what, path=path)


def _to_float(arr: np.ndarray, sources: list[int], dtype: torch.dtype, bits: int = 0) -> torch.Tensor:
    """``arr`` ``[H, W, C]`` as ``[len(sources), H, W]`` floats; integers scaled to 0..1 (signed: -1..1,
    like OIIO), divided in float32 (as exact as float64 then float32, for every 8..16-bit value)."""
    kind = str(arr.dtype)
    out_np = {torch.float16: np.float16, torch.float64: np.float64}.get(dtype, np.float32)
    work = np.float64 if out_np is np.float64 else np.float32
    out = np.empty((len(sources),) + arr.shape[:2], dtype=work)
    for k, src in enumerate(sources):
        plane = arr[:, :, src]
        if kind == "uint16" and bits in (10, 12):  # OIIO widens 10/12-bit by bit replication
            np.divide(plane >> (16 - bits), work(2**bits - 1), out=out[k], dtype=work)
        elif kind in _INT_TYPES:
            np.divide(plane, work(np.iinfo(arr.dtype).max), out=out[k], dtype=work)
        else:
            out[k] = plane
    if out_np is not work:
        out = out.astype(out_np)
    tensor = torch.from_numpy(out)
    return tensor if tensor.dtype == dtype else tensor.to(dtype)


def _channel_names(names: tuple[str, ...]) -> tuple[tuple[str, ...], list[int]]:
    """Nuke channel names, and which file channel feeds each (greyscale feeds red, green, blue)."""
    if names in {("Y",), ("Y", "A")}:
        return chans.RGB + (("rgba.alpha",) if len(names) == 2 else ()), [0, 0, 0] + ([1] if len(names) == 2 else [])
    mapped = [chans.from_file_name(n) for n in names]
    if len(set(mapped)) != len(mapped):  # unnamed channels ("channel3") may collide
        mapped = [m if mapped.count(m) == 1 else f"other.{n}{i}" for i, (m, n) in enumerate(zip(mapped, names))]
    return tuple(mapped), list(range(len(names)))


def read_still(path: str | os.PathLike[str], *, dtype: torch.dtype = torch.float32, subimage: int = 0) -> Image:
    """Read one subimage (TIFF page) of any file OpenImageIO reads, as float ``[C, H, W]``."""
    path = str(path)
    check_readable(path)
    inp = oiio.ImageInput.open(path, _READ_CONFIG)
    if inp is None:
        raise _fail(path, "cannot open image")
    try:
        if subimage and not inp.seek_subimage(subimage, 0):
            raise _fail(path, f"no subimage {subimage}")
        spec = inp.spec()
        native = str(spec.format) if not spec.channelformats else "float"
        fmt = native if native in _INT_TYPES or native in {"half", "float", "double"} else "float"
        pixels = spec.width * spec.height * max(1, spec.depth)
        out_size = torch.empty((), dtype=dtype).element_size()
        check_decode_size(path, pixels * spec.nchannels * (_SAMPLE_BYTES[fmt] + out_size),
                          f"{spec.width}x{spec.height} pixels" + (f"x{spec.depth}" if spec.depth > 1 else "")
                          + f", {spec.nchannels} channel(s)")
        arr = inp.read_image(subimage, 0, 0, spec.nchannels, fmt)
        err = inp.geterror()
        if arr is None or err:
            raise _fail(path, "cannot read pixels (corrupt or truncated file?)", err or None)
        if arr.ndim == 4:  # volume images: keep the first slice
            arr = arr[0]
        if arr.ndim == 2:
            arr = arr[:, :, None]
        names, sources = _channel_names(tuple(spec.channelnames))
        bits = spec.get_int_attribute("oiio:BitsPerSample", 0)
        data = _to_float(arr, sources, dtype, bits)
        del arr
        metadata: dict[str, Any] = {a.name: _json_value(a.value) for a in spec.extra_attribs}
        metadata["input/filename"] = path
        metadata["input/datatype"] = str(spec.format) if not spec.channelformats else "float"
        metadata["input/filetype"] = inp.format_name()
        if bits:
            metadata["input/bitsperchannel"] = bits
        bbox = Box(spec.x, spec.y, spec.x + spec.width, spec.y + spec.height)
        display = Box(spec.full_x, spec.full_y, spec.full_x + spec.full_width, spec.full_y + spec.full_height)
        aspect = spec.get_float_attribute("PixelAspectRatio", 1.0) or 1.0
        return Image(data, names, bbox, Format(display, float(aspect)), metadata)
    except ImageIOError:
        raise
    except Exception as exc:
        raise ImageIOError(f"cannot read image: {exc}", path=path) from exc
    finally:
        inp.close()


def datatype_key(datatype: str | int, path: str | None = None) -> str:
    key = _ALIASES.get(str(datatype).lower(), str(datatype).lower())
    if key not in DATATYPES:
        raise ImageIOError(f"unknown datatype {datatype!r}; valid: {', '.join(DATATYPES)}", path=path)
    return key


def _quantise(arr: np.ndarray, np_type: Any, bits: int | None = None) -> np.ndarray:
    """Clamp to 0..1 and round to nearest; 10/12-bit values are bit-replicated into uint16."""
    top = float(2**bits - 1) if bits else float(np.iinfo(np_type).max)
    q = np.round(np.clip(np.nan_to_num(arr.astype(np.float64), nan=0.0), 0.0, 1.0) * top).astype(np_type)
    if bits:
        q = (q << (16 - bits)) | (q >> (2 * bits - 16))
    return q


def write_still(path: str | os.PathLike[str], image: Image, *, datatype: str | int = "8",
                metadata: Mapping[str, Any] | None = None, compression: str | None = None,
                quality: int | None = None, file_type: str | None = None,
                create_directories: bool = False) -> None:
    """Write through OpenImageIO (format from ``file_type`` or the extension), atomically.

    Integer types clamp to 0..1 and round to nearest; NaN becomes 0. Formats without data
    windows (PNG, JPEG, ...) get the display window, padded with black.
    """
    path = str(path)
    key = datatype_key(datatype, path)
    oiio_type, np_type, bits = DATATYPES[key]
    if not image.channels:
        raise ImageIOError("cannot write an image without channels", path=path)
    out = oiio.ImageOutput.create(file_type or path)
    if out is None:
        raise _fail(path, f"no image writer for file type {file_type!r}" if file_type
                    else "no image writer for this file extension")
    if not out.supports("displaywindow") or not out.supports("origin"):
        image = image.crop_to(image.format.display)
    names = [chans.to_file_name(c) for c in image.channels]
    box, display = image.bbox, image.format.display
    spec = oiio.ImageSpec(box.width, box.height, len(names), oiio_type)
    spec.x, spec.y = box.x0, box.y0
    spec.full_x, spec.full_y, spec.full_width, spec.full_height = display.x0, display.y0, display.width, display.height
    spec.channelnames = tuple(names)
    if "A" in names:
        spec.alpha_channel = names.index("A")
    spec.attribute("oiio:UnassociatedAlpha", 1)  # write values as given, never un-premultiply
    if image.format.pixel_aspect != 1.0:
        spec.attribute("PixelAspectRatio", float(image.format.pixel_aspect))
    if bits:
        spec.attribute("oiio:BitsPerSample", int(bits))
    if compression in _EXR_ONLY_COMPRESSIONS:  # a Write node's EXR setting means nothing here
        compression = None
    if quality is not None:
        compression = f"{compression or 'jpeg'}:{int(quality)}"
    if compression:
        spec.attribute("compression", str(compression))
    extra = {k: image.metadata[k] for k in _DESCRIPTIVE if k in image.metadata}
    extra.update(metadata or {})
    for k, v in extra.items():
        if isinstance(v, (str, int, float)) and not isinstance(v, bool):
            spec.attribute(str(k), v)
    arr = np.moveaxis(image.pixels.detach().cpu().float().numpy(), 0, -1)
    arr = _quantise(arr, np_type, bits) if np_type in (np.uint8, np.uint16) else \
        np.ascontiguousarray(arr.astype(np_type if np_type is not None else np.float32))
    fmt = out.format_name()
    in_memory = fmt in MEMORY_FORMATS
    _check_file_size_limit(path, fmt, arr.nbytes)
    with memory_output(path, create_directories=create_directories, in_memory=in_memory) as target:
        _encode(out, path, target, spec, np.ascontiguousarray(arr))
        if fmt == "dpx":
            _set_dpx_file_name(target, path)


#: OIIO formats verified to encode into a memory file exactly as into a disk file
#: (tests/io/test_full_disk.py); others (jpeg2000 writes nothing there) write their temp file directly.
MEMORY_FORMATS = frozenset({"png", "jpeg", "tiff", "dpx", "bmp", "targa", "openexr", "sgi", "hdr", "pnm",
                            "webp", "jpegxl", "gif", "fits", "iff", "rla"})
#: Formats whose library cannot survive a failed write: libjpeg ends the process, libwebp loops.
_EXIT_ON_WRITE_ERROR = frozenset({"jpeg", "webp"})
#: Error text OIIO reports for files it wrote correctly (libtiff and an empty Exif directory).
_BENIGN_ERRORS = ("failed TIFFWriteCustomDirectory() of the Exif data",)


def _errors(out: Any) -> str:
    """OIIO's pending error text for ``out`` (and the global one), minus known benign lines."""
    text = "\n".join(t for t in (out.geterror(), oiio.geterror()) if t)
    lines = [ln for ln in text.splitlines() if ln.strip() and ln.strip() not in _BENIGN_ERRORS]
    if len(lines) > 3:  # a short write repeats for every buffer: the first ones say it all
        lines = lines[:3] + [f"... ({len(lines) - 3} more)"]
    return "\n".join(lines)


def _encode(out: Any, path: str, target: str, spec: Any, arr: np.ndarray) -> None:
    """open / write_image / close, every result and every error message checked."""
    stage = "open image for writing"
    oiio.geterror()  # drop any earlier message of this thread: only this encode's errors count
    try:
        ok = out.open(target, spec)
        if ok:
            stage = "write image"
            ok = out.write_image(arr)
        err = _errors(out)
        if ok and not err:
            stage = "finish image"
            ok = out.close()
            err = _errors(out)
    finally:
        out.close()  # a second close is a no-op; after a failure it releases the file
    if not ok or err:
        raise _fail(path, f"cannot {stage}", err or "the image library reported a failure")


def _set_dpx_file_name(target: str, path: str) -> None:
    """DPX headers hold the file name OIIO was given (a temp or memory file's): store the real one."""
    field = os.path.basename(path).encode("utf-8", "replace")[:99].ljust(100, b"\0")
    fd = os.open(target, os.O_WRONLY)
    try:
        if os.pwrite(fd, field, 36) != len(field):  # generic file header: file name at offset 36
            raise OSError(errno.EIO, "short write")
    finally:
        os.close(fd)


def _check_file_size_limit(path: str, fmt: str, raw_bytes: int) -> None:
    """Refuse up front what a process file-size limit (``ulimit -f``) would make fatal.

    A memory file obeys ``RLIMIT_FSIZE`` like any file; for libjpeg/libwebp a failed write ends
    (or hangs) the process, so the limit must clear a conservative bound of the encoded size.
    Other formats report the failure and need no bound.
    """
    if fmt not in _EXIT_ON_WRITE_ERROR:
        return
    soft, bound = file_size_limit(), 8 * raw_bytes + (1 << 20)
    if soft is not None and soft < bound:
        raise ImageIOError(f"the process's file-size limit (ulimit -f) of {soft} bytes may be too small for this "
                           f"{fmt} file (up to {bound} bytes), and the {fmt} library cannot survive a failed write; "
                           "raise the limit or write another format", path=path)
