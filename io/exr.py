"""OpenEXR reading and writing through the ``OpenEXR`` (3.x) python bindings.

Pixels come back as ``[C, H, W]`` tensors over the data window; the display window, pixel
aspect and header attributes are kept. Half <-> float conversions go through numpy, whose
casts keep NaN payloads bit for bit (torch's do not).

Metadata: header attributes other than the structural ones (channels, compression, windows,
line order, tiles, type, name, chunkCount, preview, pixelAspectRatio) go into
``Image.metadata`` as ``"exr/<attribute>"`` with JSON-friendly values (arrays become lists,
chromaticities a list of 8 floats, unknown attribute types their ``str``). ``write_exr`` writes
every ``"exr/*"`` key back (and the plain keys of its ``metadata`` argument). The reader also
sets ``"input/filename"``, ``"input/datatype"`` (widest sample type: uint32, half or float),
``"exr/part"`` (the part name, when the file names its parts).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import OpenEXR
import torch

from nodegraph import channels as chans
from nodegraph.errors import ImageIOError
from nodegraph.image import Box, Format, Image

from . import exr_views
from .atomic import memory_output
from .exr_yc import luminance_chroma_to_rgb
from .guard import check_decode_size, check_readable

COMPRESSIONS: dict[str, Any] = {
    "none": OpenEXR.NO_COMPRESSION,
    "rle": OpenEXR.RLE_COMPRESSION,
    "zips": OpenEXR.ZIPS_COMPRESSION,
    "zip": OpenEXR.ZIP_COMPRESSION,
    "piz": OpenEXR.PIZ_COMPRESSION,
    "pxr24": OpenEXR.PXR24_COMPRESSION,
    "b44": OpenEXR.B44_COMPRESSION,
    "b44a": OpenEXR.B44A_COMPRESSION,
    "dwaa": OpenEXR.DWAA_COMPRESSION,
    "dwab": OpenEXR.DWAB_COMPRESSION,
}
_COMPRESSION_NAMES = {v: k for k, v in COMPRESSIONS.items()}
DATATYPES = {"half": np.float16, "float": np.float32, "uint": np.uint32}
_TYPE_NAMES = {np.dtype(np.float16): "half", np.dtype(np.float32): "float", np.dtype(np.uint32): "uint32"}

# Attributes the image model carries itself (or that only make sense for the file as written).
STRUCTURAL = frozenset({
    "channels", "compression", "dataWindow", "displayWindow", "lineOrder", "tiles", "type", "name",
    "chunkCount", "preview", "pixelAspectRatio", "version",
})


def _open(path: str, *, header_only: bool, head: Any = None) -> Any:
    """Open with the bindings, turning every failure mode into :class:`ImageIOError`.

    The bindings do not raise for truncated pixel data: they print a warning and drop the part,
    so the part count is checked against a header-only read (``head``, when already made).
    A full read decodes every part, so callers check :func:`_check_size` first.
    """
    if head is None:
        check_readable(path)
    try:
        if head is None:
            if not OpenEXR.isOpenExrFile(path):
                raise ImageIOError("not an OpenEXR file (bad magic number)", path=path)
            head = OpenEXR.File(path, header_only=True)
        if header_only:
            return head
        full = OpenEXR.File(path, separate_channels=True)
    except ImageIOError:
        raise
    except Exception as exc:  # the bindings raise RuntimeError, IndexError, ...
        raise ImageIOError(f"cannot read OpenEXR file: {exc}", path=path) from exc
    if len(full.parts) != len(head.parts) or not head.parts:
        raise ImageIOError("OpenEXR file is truncated or corrupt (pixel data unreadable)", path=path)
    return full


def _check_size(path: str, head: Any, indices: list[int], dtype: torch.dtype) -> None:
    """Refuse, from the headers alone, a file whose decode would exceed the image size limit.

    The bindings decode every part (each sample up to 4 bytes; header-only reads do not know
    the sample types), then the chosen parts are copied into one ``dtype`` tensor.
    """
    native, declared = 0, []
    for p in head.parts:
        box = _window(p.header["dataWindow"])
        w, h = max(0, box.width), max(0, box.height)
        channels = p.header.get("channels") or []
        native += sum(4 * -(-w // max(1, int(c.xSampling))) * -(-h // max(1, int(c.ySampling))) for c in channels)
        declared.append(f"{w}x{h} pixels, {len(channels)} channel(s)")
    boxes = [_window(head.parts[i].header["dataWindow"]) for i in indices]
    bbox = boxes[0]
    for b in boxes[1:]:
        bbox = bbox.union(b)
    count = sum(len(head.parts[i].header.get("channels") or []) for i in indices)
    out = max(0, bbox.width) * max(0, bbox.height) * count * torch.empty((), dtype=dtype).element_size()
    text = declared[0] if len(declared) == 1 else f"{len(declared)} parts ({'; '.join(declared[:3])}" + \
        (", ...)" if len(declared) > 3 else ")")
    check_decode_size(path, native + out, text)


def _window(value: Any) -> Box:
    lo, hi = value
    return Box.from_inclusive(int(lo[0]), int(lo[1]), int(hi[0]), int(hi[1]))


def _json_value(value: Any) -> Any:
    """A header/attribute value as JSON data (numpy arrays to lists, unknown types to text)."""
    if isinstance(value, (str, bool, int, float)) or value is None:
        return value
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, (list, tuple)):
        return [_json_value(v) for v in value]
    return str(value)


def _attributes(header: Mapping[str, Any]) -> dict[str, Any]:
    return {f"exr/{k}": _json_value(v) for k, v in header.items() if k not in STRUCTURAL}


def _part_names(f: Any) -> list[str]:
    return [p.name() or f"part{i}" for i, p in enumerate(f.parts)]


def _fill_plane(out: torch.Tensor, ch: Any, box: Box, bbox: Box) -> None:
    """Convert one channel into its slot of the preallocated ``out`` plane ``[H, W]``.

    Subsampled (luminance/chroma) channels are upsampled by repetition. torch converts fast but
    rewrites NaN payloads in half <-> float casts; numpy keeps them, so planes holding NaN go
    through numpy (bit-exact), the rest through torch.
    """
    px = np.asarray(ch.pixels)
    xs, ys = int(ch.xSampling), int(ch.ySampling)
    if xs != 1 or ys != 1:
        px = np.repeat(np.repeat(px, ys, axis=0), xs, axis=1)[: box.height, : box.width]
    target = out[box.y0 - bbox.y0: box.y1 - bbox.y0, box.x0 - bbox.x0: box.x1 - bbox.x0]
    if px.dtype == np.uint32:
        target.copy_(torch.from_numpy(px.astype(np.float64)))
        return
    src = torch.from_numpy(np.ascontiguousarray(px))
    if out.dtype in _NP_FLOAT and px.dtype != _NP_FLOAT[out.dtype] and has_nan(px):
        target.copy_(torch.from_numpy(px.astype(_NP_FLOAT[out.dtype])))
    else:
        target.copy_(src)


def has_nan(a: np.ndarray) -> bool:
    """Whether a float array holds any NaN (half: by bit pattern, numpy's half isnan is slow)."""
    if a.dtype == np.float16:
        return bool(((a.view(np.uint16) & 0x7FFF) > 0x7C00).any())
    return bool(np.isnan(a).any())


_NP_FLOAT = {torch.float16: np.float16, torch.float32: np.float32, torch.float64: np.float64}


def read_exr(path: str | os.PathLike[str], *, part: str | int | None = None,
             channels: Any = None, dtype: torch.dtype = torch.float32, view: str | None = None) -> Image:
    """Read one part (``None``: the first flat one; a name or index) or every flat part merged
    (``"*"``), as seen from one view.

    ``channels`` (a :func:`nodegraph.channels.expand` spec) limits what is returned. When
    parts are merged, a channel name present in several parts is prefixed with the part name
    in every one of them (``rgba_left.red``), and the data windows are united.

    ``view`` (multi-view files, see :mod:`.exr_views`; empty: the default view, or with ``"*"``
    every view) picks the parts and channels of that view, named without the view (``right.R``
    reads as ``rgba.red``).
    Luminance/chroma channels read as RGB (:mod:`.exr_yc`). Deep parts are refused by name;
    ``"*"`` skips them and lists them in ``metadata["nodegraph/skipped_deep_parts"]``.
    """
    path = str(path)
    head = _open(path, header_only=True)
    headers = [p.header for p in head.parts]
    names = _part_names(head)
    views = exr_views.file_views(headers)
    chosen_view = exr_views.resolve_view(views, view, path)
    if part == "*" and not view:
        chosen_view = None  # every part and channel of every view, named as in the file
    indices, skipped = exr_views.choose_parts(headers, names, part, chosen_view, bool(view), path)
    _check_size(path, head, indices, dtype)
    f = _open(path, header_only=False, head=head)
    first = f.parts[indices[0]].header
    display = _window(first["displayWindow"])
    fmt = Format(display, float(first.get("pixelAspectRatio", 1.0)))

    per_part = []
    counts: dict[str, int] = {}
    for i in indices:
        p = f.parts[i]
        box = _window(p.header["dataWindow"])
        seen = exr_views.view_channels(p.header, list(p.channels), chosen_view)
        part_planes = luminance_chroma_to_rgb({short: p.channels[fname] for fname, short in seen.items()}, p.header)
        mapped = {fname: chans.from_file_name(fname) for fname in part_planes}
        per_part.append((i, part_planes, box, mapped))
        for nuke in mapped.values():
            counts[nuke] = counts.get(nuke, 0) + 1

    bbox = per_part[0][2]
    for _, _, box, _ in per_part[1:]:
        bbox = bbox.union(box)
    planes: dict[str, tuple[Any, Box]] = {}
    types: set[str] = set()
    for i, part_planes, box, mapped in per_part:
        for fname, ch in part_planes.items():
            nuke = mapped[fname]
            if counts[nuke] > 1:
                nuke = chans.from_file_name(f"{names[i]}.{fname}")
            types.add(_TYPE_NAMES.get(np.asarray(ch.pixels).dtype, "float"))
            planes[nuke] = (ch, box)

    order = sorted(planes, key=chans.sort_key)
    if channels is not None:
        order = list(chans.expand(channels, order))
        missing = [c for c in order if c not in planes]
        if missing:
            raise ImageIOError(f"channels {', '.join(missing)} not in file; it has {', '.join(sorted(planes))}",
                               path=path)
    # one allocation for the whole image; parts with smaller data windows leave zeros around them
    alloc = torch.zeros if any(planes[c][1] != bbox for c in order) else torch.empty
    pixels = alloc((len(order), bbox.height, bbox.width), dtype=dtype)
    for k, name in enumerate(order):
        ch, box = planes[name]
        _fill_plane(pixels[k], ch, box, bbox)

    metadata: dict[str, Any] = {}
    for i, *_ in per_part:
        for k, v in _attributes(f.parts[i].header).items():
            metadata.setdefault(k, v)
    metadata["input/filename"] = path
    metadata["input/datatype"] = next(t for t in ("float", "half", "uint32") if t in types) if types else "half"
    if len(indices) == 1 and f.parts[indices[0]].name():
        metadata["exr/part"] = f.parts[indices[0]].name()
    if chosen_view is not None:
        # the image holds one view: a file written from it names only that view
        metadata["exr/multiView"] = [chosen_view]
        metadata["input/view"] = chosen_view
    if skipped:
        metadata["nodegraph/skipped_deep_parts"] = skipped
    return Image(pixels, tuple(order), bbox, fmt, metadata)


_PIXEL_TYPES = {0: "uint32", 1: "half", 2: "float"}
_MULTIPART = 0x1000


def _channel_types(path: str, count: int) -> list[dict[str, str]]:
    """Sample type of each channel of each part, parsed from the headers' ``channels`` attribute
    (the bindings only learn sample types by decoding pixels)."""
    def cstring(f: Any) -> bytes:
        out = bytearray()
        while (c := f.read(1)) not in (b"", b"\0"):
            out += c
            if len(out) > 256:
                raise ValueError("name too long")
        if c == b"":
            raise ValueError("header ends early")
        return bytes(out)

    types: list[dict[str, str]] = []
    try:
        with open(path, "rb") as f:
            flags = int.from_bytes(f.read(8)[4:], "little")
            while len(types) < count:
                part: dict[str, str] = {}
                while name := cstring(f):
                    kind, size = cstring(f), int.from_bytes(f.read(4), "little", signed=True)
                    if not 0 <= size < (1 << 26):
                        raise ValueError(f"attribute {name!r} has size {size}")
                    value = f.read(size)
                    if name == b"channels" and kind == b"chlist":
                        at = 0
                        while at < len(value) and value[at]:
                            end = value.index(b"\0", at)
                            ptype = int.from_bytes(value[end + 1: end + 5], "little")
                            part[value[at:end].decode("utf-8", "replace")] = _PIXEL_TYPES.get(ptype, f"type {ptype}")
                            at = end + 17  # type, pLinear, 3 reserved, xSampling, ySampling
                types.append(part)
                if not flags & _MULTIPART:
                    break
    except (OSError, ValueError) as exc:
        raise ImageIOError(f"cannot read OpenEXR header: {exc}", path=path) from None
    return types + [{}] * (count - len(types))


def exr_info(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Structure of every part: windows, channels with sample types, attributes (for ``probe``).

    Multi-view files also list ``views`` (default first) and ``default_view``, each part its
    ``view`` (multi-part files) and each channel its view (single-part ``multiView`` files; None
    for channels shared by every view). Deep parts say ``"deep": true`` (they cannot be read).
    Reads headers only, never pixels, so it is instant (and safe) on any file whatever size it
    declares; a truncated pixel area shows only when the file is read.
    """
    path = str(path)
    f = _open(path, header_only=True)
    types = _channel_types(path, len(f.parts))
    views = exr_views.file_views([p.header for p in f.parts])
    parts = []
    for i, p in enumerate(f.parts):
        h = p.header
        listed = [str(v) for v in h.get("multiView") or []]
        entry: dict[str, Any] = {
            "index": i,
            "name": p.name() or None,
            "storage": "tiled" if "tiles" in h else "scanline",
            "deep": exr_views.is_deep(h),
            "compression": _COMPRESSION_NAMES.get(h.get("compression"), str(h.get("compression"))),
            "data_window": tuple(_window(h["dataWindow"])),
            "display_window": tuple(_window(h["displayWindow"])),
            "pixel_aspect": float(h.get("pixelAspectRatio", 1.0)),
            "channels": [
                {"name": chans.from_file_name(c.name), "file_name": c.name,
                 "type": types[i].get(c.name, "unknown"), "sampling": (c.xSampling, c.ySampling)}
                | ({"view": exr_views.channel_view(c.name, listed)[0]} if listed else {})
                for c in h.get("channels") or []
            ],
            "attributes": _attributes(h),
        }
        if views:
            entry["view"] = h.get("view") or None
        if "tiles" in h:
            t = h["tiles"]
            entry["tiles"] = {"size": (t.xSize, t.ySize), "mode": str(t.mode).rsplit(".", 1)[-1]}
        parts.append(entry)
    info: dict[str, Any] = {"path": path, "format": "openexr"}
    if views:
        info.update(views=views, default_view=views[0])
    info["parts"] = parts
    return info


def _exr_attribute(name: str, value: Any) -> Any:
    """A JSON-ish metadata value as something the bindings write, or None to skip it."""
    if isinstance(value, (bool, np.bool_)):
        return int(value)
    if isinstance(value, (str, int, float)):
        return value
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, (list, tuple, np.ndarray)):
        if name == "chromaticities" and len(value) == 8:
            return tuple(float(v) for v in value)
        if all(isinstance(v, str) for v in value):
            return list(value)
        try:
            arr = np.asarray(value)
        except Exception:
            return None
        if arr.dtype.kind in "iu" and arr.shape in {(2,), (3,)}:
            return arr.astype(np.int32)
        if arr.dtype.kind in "iuf" and arr.shape in {(2,), (3,), (3, 3), (4, 4)}:
            return arr.astype(np.float64 if arr.ndim == 2 else np.float32)
        if arr.dtype.kind in "iuf" and arr.ndim == 1:
            return [float(v) for v in arr]
    return None


def _header_attributes(image_meta: Mapping[str, Any], extra: Mapping[str, Any] | None) -> dict[str, Any]:
    out: dict[str, Any] = {}
    items = [(k[4:], v) for k, v in image_meta.items() if k.startswith("exr/") and k != "exr/part"]
    items += [(k[4:] if k.startswith("exr/") else k, v) for k, v in (extra or {}).items()]
    for name, value in items:
        if not name or name in STRUCTURAL:
            continue
        converted = _exr_attribute(name, value)
        if converted is not None:
            out[name] = converted
    return out


def compression_value(name: str, path: str | None = None) -> Any:
    key = str(name).lower()
    if key not in COMPRESSIONS:
        raise ImageIOError(f"unknown EXR compression {name!r}; valid: {', '.join(COMPRESSIONS)}", path=path)
    return COMPRESSIONS[key]


def write_exr(path: str | os.PathLike[str], image: Image, *, datatype: str | Mapping[str, str] = "half",
              compression: str = "zip", metadata: Mapping[str, Any] | None = None, tiled: bool = False,
              tile_size: tuple[int, int] = (64, 64), create_directories: bool = False) -> None:
    """Write a single-part EXR atomically, keeping data window, display window and pixel aspect.

    ``datatype`` is ``"half"``, ``"float"`` or ``"uint"`` for every channel, or a mapping from
    channel name to one of those (channels not named default to half).
    """
    path = str(path)
    comp = compression_value(compression, path)
    if isinstance(datatype, str):
        per_channel: Mapping[str, str] = {}
        default = datatype
    else:
        per_channel, default = datatype, "half"
    for t in [default, *per_channel.values()]:
        if t not in DATATYPES:
            raise ImageIOError(f"unknown EXR datatype {t!r}; valid: {', '.join(DATATYPES)}", path=path)
    if not image.channels:
        raise ImageIOError("cannot write an image without channels", path=path)

    box, pixels = image.bbox, image.pixels.detach().cpu()
    if box.empty:  # EXR cannot store an empty data window; write one black pixel like Nuke
        box = Box(box.x0, box.y0, box.x0 + 1, box.y0 + 1)
        pixels = torch.zeros((len(image.channels), 1, 1), dtype=pixels.dtype)
    arr = pixels.numpy() if pixels.dtype != torch.bfloat16 else pixels.float().numpy()

    file_channels: dict[str, np.ndarray] = {}
    for i, name in enumerate(image.channels):
        target = DATATYPES[per_channel.get(name, default)]
        plane = arr[i]
        if target is np.uint32:
            plane = np.clip(np.nan_to_num(plane.astype(np.float64)), 0, 2**32 - 1).round()
        elif target is np.float16 and plane.dtype == np.float32:
            # torch's float->half is several times faster than numpy's and identical for non-NaN
            # values; NaN payloads only survive numpy's cast, so planes with NaN take that path
            if not has_nan(plane):
                plane = torch.from_numpy(np.ascontiguousarray(plane)).half().numpy()
        file_channels[chans.to_file_name(name)] = np.ascontiguousarray(plane.astype(target, copy=False))
    if len(file_channels) != len(image.channels):
        raise ImageIOError(f"channel names collide in the file: {image.channels}", path=path)

    header: dict[str, Any] = _header_attributes(image.metadata, metadata)
    header.update({
        "compression": comp,
        "type": OpenEXR.tiledimage if tiled else OpenEXR.scanlineimage,
        "dataWindow": (np.array(box.inclusive()[:2], np.int32), np.array(box.inclusive()[2:], np.int32)),
        "displayWindow": (np.array(image.format.display.inclusive()[:2], np.int32),
                          np.array(image.format.display.inclusive()[2:], np.int32)),
        "pixelAspectRatio": float(image.format.pixel_aspect),
    })
    if tiled:
        tiles = OpenEXR.TileDescription()
        tiles.xSize, tiles.ySize = int(tile_size[0]), int(tile_size[1])
        header["tiles"] = tiles
    # encoded into memory, then copied to disk with checked writes (the library's last buffered
    # write is flushed by a destructor that cannot report a full disk)
    with memory_output(path, create_directories=create_directories) as target:
        try:
            # File() replaces the arrays in the dict it is given with Channel objects.
            OpenEXR.File(header, dict(file_channels)).write(target)
        except Exception as exc:
            raise ImageIOError(f"cannot write OpenEXR file: {exc}", path=path) from exc


def is_exr_path(path: str | os.PathLike[str]) -> bool:
    return Path(path).suffix.lower() in {".exr", ".sxr", ".mxr"}
