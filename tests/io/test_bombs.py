"""Decompression bombs: small files that declare huge images are refused from their headers,
before anything is decoded or allocated; ``probe`` (``nodegraph info``) reads headers only;
8/16-bit files decode straight to float32 (exact, no float64 copy); the limit can be raised."""

from __future__ import annotations

import json
import os
import struct
import subprocess
import sys
import textwrap
import tracemalloc
import zlib
from pathlib import Path

import numpy as np
import OpenImageIO as oiio
import pytest
import torch

from nodegraph import channels as chans
from nodegraph.errors import ImageIOError
from nodegraph.image import Box, Format, Image
from nodegraph.io import MovieWriter, guard, movie, probe, read_image, set_max_image_bytes, write_image
from nodegraph.io.exr import read_exr

DATA = Path(os.environ["NODEGRAPH_TEST_DATA"])  # found by tests/conftest.py
HUGE = 30000


@pytest.fixture(autouse=True)
def _default_limit(monkeypatch):
    monkeypatch.delenv(guard.ENV_MAX_IMAGE_BYTES, raising=False)
    set_max_image_bytes(None)
    yield
    set_max_image_bytes(None)
    movie.close_all()


# --- bomb files: real headers declaring 30000x30000, a few KB of data --------------------------
def png_bomb(path: Path, w: int = HUGE, h: int = HUGE) -> Path:
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    rows = zlib.compress(b"\0" * (1 + 3 * w) * 8)
    # 1.5 MB of an ancillary chunk: OIIO itself rejects headers claiming > ~2600x their file size
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0))
                     + chunk(b"zzZz", bytes(1_500_000)) + chunk(b"IDAT", rows) + chunk(b"IEND", b""))
    return path


def _small(path: Path, **options) -> bytes:
    img = Image(torch.rand((3, 16, 16)), chans.RGB, Box(0, 0, 16, 16), Format.of_size(16, 16))
    write_image(path, img, **options)
    return path.read_bytes()


def jpeg_bomb(path: Path) -> Path:
    data = bytearray(_small(path))
    sof = data.index(b"\xff\xc0")  # baseline frame header: FFC0, length, precision, height, width
    data[sof + 5: sof + 9] = struct.pack(">HH", HUGE, HUGE)
    comment = b"\xff\xfe" + struct.pack(">H", 65535) + bytes(65533)  # padding past OIIO's own ratio check
    data[2:2] = comment * 16
    path.write_bytes(bytes(data))
    return path


def tiff_bomb(path: Path) -> Path:
    data = bytearray(_small(path))
    assert data[:4] == b"II*\x00"
    ifd = struct.unpack_from("<I", data, 4)[0]
    for i in range(struct.unpack_from("<H", data, ifd)[0]):
        entry = ifd + 2 + 12 * i
        tag = struct.unpack_from("<H", data, entry)[0]
        if tag in (256, 257):  # ImageWidth, ImageLength -> LONG 30000
            struct.pack_into("<HHII", data, entry, tag, 4, 1, HUGE)
    path.write_bytes(bytes(data) + bytes(1_500_000))  # trailing padding past OIIO's own ratio check
    return path


def exr_bomb(path: Path) -> Path:
    data = bytearray(_small(path))
    for name in (b"dataWindow", b"displayWindow"):
        at = data.index(name + b"\0box2i\0") + len(name) + 7 + 4  # past name, type, size
        struct.pack_into("<iiii", data, at, 0, 0, HUGE - 1, HUGE - 1)
    path.write_bytes(bytes(data))
    return path


BOMBS = {"png": png_bomb, "jpg": jpeg_bomb, "tif": tiff_bomb, "exr": exr_bomb}

_SCRIPT = textwrap.dedent("""
    import json, resource, sys, tracemalloc
    from nodegraph.errors import ImageIOError
    from nodegraph.io import probe, read_image
    with open("/proc/self/status") as f:
        vm = next(int(l.split()[1]) * 1024 for l in f if l.startswith("VmSize:"))
    resource.setrlimit(resource.RLIMIT_AS, (vm + (1 << 30), resource.RLIM_INFINITY))  # 1 GiB of headroom
    out = {}
    for path in sys.argv[1:]:
        tracemalloc.start()
        try:
            info = probe(path)
            out[path + ":probe"] = info.get("data_window") or info["parts"][0]["data_window"]
        except Exception as err:
            out[path + ":probe"] = type(err).__name__ + ": " + str(err)
        out[path + ":probe_peak"] = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        try:
            read_image(path)
            out[path] = "decoded"
        except ImageIOError as err:
            out[path] = str(err)
        except BaseException as err:
            out[path] = type(err).__name__ + ": " + str(err)
    print(json.dumps(out))
""")


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="uses /proc and RLIMIT_AS")
def test_bombs_are_refused_from_headers_and_probed_without_decoding(tmp_path):
    """In a process that cannot allocate more than 1 GiB: each read is refused with the declared
    size, the limit and how to raise it; each probe answers from the header alone."""
    paths = [str(make(tmp_path / f"bomb.{ext}")) for ext, make in BOMBS.items()]
    assert all(os.path.getsize(p) < 2_000_000 for p in paths)
    env = dict(os.environ, **{guard.ENV_MAX_IMAGE_BYTES: "2G"})
    proc = subprocess.run([sys.executable, "-c", _SCRIPT, *paths], capture_output=True, text=True, timeout=120,
                          env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    for p in paths:
        assert out[p + ":probe"] == [0, 0, HUGE, HUGE], out[p + ":probe"]
        assert out[p + ":probe_peak"] < 8 << 20, (p, out[p + ":probe_peak"])
        msg = out[p]
        assert msg.startswith(f"file {p!r}: image too large to decode"), msg
        assert f"{HUGE}x{HUGE} pixels" in msg and "limit is 2.0 GiB" in msg, msg
        assert guard.ENV_MAX_IMAGE_BYTES in msg and "set_max_image_bytes" in msg, msg


def test_default_limit_is_half_the_available_memory(monkeypatch):
    monkeypatch.setattr(guard, "available_memory", lambda: 16 << 30)
    assert guard.max_image_bytes() == (8 << 30, "half the available memory")
    monkeypatch.setattr(guard, "available_memory", lambda: 1 << 20)
    assert guard.max_image_bytes()[0] == 256 << 20  # never below 256 MiB


def test_real_available_memory_is_plausible():
    avail = guard.available_memory()
    assert 64 << 20 < avail < 1 << 50


def test_png_bomb_under_default_limit(tmp_path, monkeypatch):
    """30000x30000 RGB needs 13.5 GB as uint8 + float32: over half of 16 GiB available."""
    monkeypatch.setattr(guard, "available_memory", lambda: 16 << 30)
    path = png_bomb(tmp_path / "b.png")
    with pytest.raises(ImageIOError, match=r"30000x30000 pixels, 3 channel\(s\), which needs 12\.6 GiB.*"
                                           r"limit is 8\.0 GiB \(half the available memory\)"):
        read_image(path)


def test_limit_from_environment_and_python(tmp_path, monkeypatch):
    path = tmp_path / "small.png"
    _small(path)  # 16x16 RGB: 16*16*3*(1+4) = 3840 bytes to decode
    monkeypatch.setenv(guard.ENV_MAX_IMAGE_BYTES, "3000")
    with pytest.raises(ImageIOError) as err:
        read_image(path)
    assert str(path) in str(err.value) and "16x16 pixels" in str(err.value)
    assert "limit is 2.9 KiB (set by NODEGRAPH_MAX_IMAGE_BYTES)" in str(err.value)
    set_max_image_bytes(3840)  # the Python setting wins over the environment
    assert read_image(path).pixels.shape == (3, 16, 16)
    set_max_image_bytes(None)
    monkeypatch.setenv(guard.ENV_MAX_IMAGE_BYTES, "1K")
    with pytest.raises(ImageIOError, match="1.0 KiB"):
        read_image(path)
    monkeypatch.setenv(guard.ENV_MAX_IMAGE_BYTES, "lots")
    with pytest.raises(ImageIOError, match="NODEGRAPH_MAX_IMAGE_BYTES: not a size"):
        read_image(path)
    with pytest.raises(ValueError):
        set_max_image_bytes(0)


@pytest.mark.parametrize("text, expected", [("8000", 8000), ("8G", 8 << 30), ("512MiB", 512 << 20),
                                            ("1.5k", 1536), (" 2 T ", 2 << 40)])
def test_parse_size(text, expected):
    assert guard.parse_size(text) == expected


def test_exr_limit_counts_every_part_the_bindings_decode(monkeypatch):
    """The bindings decode all parts even when one is asked for, so the check counts them all."""
    path = DATA / "Beachball" / "multipart.0001.exr"
    info = probe(path)
    set_max_image_bytes(10 << 20)
    with pytest.raises(ImageIOError, match=r"10 parts") as err:
        read_exr(path, part=1)
    assert str(path) in str(err.value)
    set_max_image_bytes(None)
    assert read_exr(path, part=1).bbox.width > 0 and len(info["parts"]) == 10


def test_exr_probe_reads_headers_only(tmp_path, monkeypatch):
    """``probe`` never touches pixel data: it works on a file whose pixel data is garbage."""
    src = (DATA / "ScanLines" / "Desk.exr").read_bytes()
    path = tmp_path / "garbage_pixels.exr"
    path.write_bytes(src[: len(src) // 2] + bytes(len(src) - len(src) // 2))
    info = probe(path)
    assert info["parts"][0]["channels"][0]["type"] == "half"
    with pytest.raises(ImageIOError):
        read_image(path)


def test_movie_frames_are_checked(tmp_path):
    path = tmp_path / "m.mp4"
    with MovieWriter(path, 24) as w:
        w.write(Image.blank(Format.of_size(64, 48)))
    set_max_image_bytes(10_000)
    assert probe(path)["width"] == 64
    with pytest.raises(ImageIOError, match="64x48 pixel frames"):
        read_image(path, frame_index=0)
    set_max_image_bytes(None)
    assert read_image(path, frame_index=0).pixels.shape == (3, 48, 64)


# --- 8/16-bit decoding: float32 straight from the samples -------------------------------------
def _oiio_write(path: Path, arr: np.ndarray, fmt, **attrs) -> None:
    out = oiio.ImageOutput.create(str(path))
    spec = oiio.ImageSpec(arr.shape[1], arr.shape[0], arr.shape[2], fmt)
    for k, v in attrs.items():
        spec.attribute(k, v)
    assert out.open(str(path), spec) and out.write_image(arr), out.geterror()
    out.close()


@pytest.mark.parametrize("np_type, fmt", [(np.uint8, oiio.UINT8), (np.uint16, oiio.UINT16)])
def test_every_integer_value_decodes_exactly(tmp_path, np_type, fmt):
    top = np.iinfo(np_type).max
    values = np.arange(top + 1, dtype=np.uint32).astype(np_type)
    side = 256 if top > 255 else 16
    arr = np.stack([values.reshape(side, -1)] * 3, axis=-1)
    path = tmp_path / "all.png"
    _oiio_write(path, np.ascontiguousarray(arr), fmt)
    got = read_image(path).pixels
    oracle = torch.from_numpy((values.astype(np.float64) / top).astype(np.float32).reshape(side, -1))
    assert got.dtype == torch.float32 and all(torch.equal(got[c], oracle) for c in range(3))


@pytest.mark.parametrize("bits", [10, 12])
def test_dpx_10_and_12_bit_values_decode_exactly(tmp_path, bits):
    top = 2**bits - 1
    values = np.arange(top + 1, dtype=np.float64)
    side = 32 if bits == 10 else 64  # side * side == top + 1: every code value once
    img = Image(torch.from_numpy(np.stack([values.reshape(side, side) / top] * 3).astype(np.float32)), chans.RGB,
                Box(0, 0, side, side), Format.of_size(side, side))
    path = tmp_path / "v.dpx"
    write_image(path, img, datatype=str(bits))
    got = read_image(path).pixels
    assert torch.equal(got, img.pixels)  # float64 v/top rounded to float32, for every code value


def test_16_bit_decode_allocates_no_float64(tmp_path):
    """Peak memory of a 16-bit read: the samples (2 bytes) and the float32 result (4 bytes), no
    float64 copy (8 bytes) and no reordered copy of the samples."""
    h, w, c = 256, 512, 4
    arr = np.random.default_rng(0).integers(0, 65536, (h, w, c), dtype=np.uint16)
    path = tmp_path / "deep.png"
    _oiio_write(path, arr, oiio.UINT16)
    read_image(path)  # warm up imports and caches
    tracemalloc.start()
    img = read_image(path)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    n = h * w * c
    assert img.pixels.dtype == torch.float32 and img.pixels.shape == (c, h, w)
    assert peak < n * (2 + 4) + (256 << 10), peak


def test_exr_probe_channel_types_match_oiio(tmp_path):
    """Sample types parsed from the headers agree with OpenImageIO's reading of the same files."""
    from nodegraph.io.exr import write_exr

    mixed = tmp_path / "mixed.exr"
    img = Image(torch.rand((3, 8, 8)), chans.RGB, Box(0, 0, 8, 8), Format.of_size(8, 8))
    write_exr(mixed, img, datatype={"rgba.red": "float", "rgba.green": "uint", "rgba.blue": "half"})
    files = [mixed, DATA / "Beachball" / "multipart.0001.exr", DATA / "TestImages" / "WideFloatRange.exr",
             DATA / "LuminanceChroma" / "Garden.exr", DATA / "Tiles" / "GoldenGate.exr"]
    for path in files:
        info = probe(path)
        inp = oiio.ImageInput.open(str(path))
        for i, part in enumerate(info["parts"]):
            assert i == 0 or inp.seek_subimage(i, 0)
            spec = inp.spec()
            fmts = [str(f) for f in spec.channelformats] or [str(spec.format)] * spec.nchannels
            expected = {n: {"uint": "uint32"}.get(t, t) for n, t in zip(spec.channelnames, fmts)}
            assert {c["file_name"]: c["type"] for c in part["channels"]} == expected, path
        inp.close()
    types = {c["file_name"]: c["type"] for c in probe(mixed)["parts"][0]["channels"]}
    assert types == {"R": "float", "G": "uint32", "B": "half"}
