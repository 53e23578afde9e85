"""Bad files never crash the process: missing, empty, garbage, truncated -> ImageIOError naming the file.
Atomic writes leave nothing behind when they fail."""

from __future__ import annotations

import os
import subprocess
import sys
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from nodegraph import channels as chans
from nodegraph.errors import ImageIOError, MissingFrameError, NodeGraphError
from nodegraph.image import Box, Format, Image
from nodegraph.io import atomic_output, movie, probe, read_image, write_image
from nodegraph.io.exr import write_exr

DATA = Path(os.environ["NODEGRAPH_TEST_DATA"])  # found by tests/conftest.py
EXTENSIONS = ["exr", "png", "jpg", "tif", "dpx", "mov", "mp4", "mxf"]


def sample(rel: str) -> Path:
    p = DATA / rel
    assert p.exists(), f"sample image {p} is missing (see tests/conftest.py)"
    return p


def assert_io_error(path, fn=read_image) -> ImageIOError:
    with pytest.raises(ImageIOError) as err:
        fn(path)
    assert str(path) in str(err.value)
    return err.value


@pytest.fixture(autouse=True)
def _close_movies():
    yield
    movie.close_all()


@pytest.mark.parametrize("ext", EXTENSIONS)
def test_missing_file(tmp_path, ext):
    err = assert_io_error(tmp_path / f"nope.{ext}")
    assert isinstance(err, MissingFrameError)


@pytest.mark.parametrize("ext", EXTENSIONS)
def test_empty_file(tmp_path, ext):
    path = tmp_path / f"empty.{ext}"
    path.touch()
    assert_io_error(path)
    assert_io_error(path, probe)


@pytest.mark.parametrize("ext", EXTENSIONS)
def test_garbage_file(tmp_path, ext):
    path = tmp_path / f"garbage.{ext}"
    path.write_bytes(os.urandom(4096))
    assert_io_error(path)


def test_directory_is_not_an_image(tmp_path):
    (tmp_path / "dir.exr").mkdir()
    assert_io_error(tmp_path / "dir.exr")


@pytest.mark.parametrize("rel", ["DisplayWindow/t01.exr", "Tiles/GoldenGate.exr", "Beachball/multipart.0001.exr"])
def test_truncated_exr(tmp_path, rel):
    data = sample(rel).read_bytes()
    for cut in (4, 8, 100, 400, len(data) // 3, len(data) // 2, len(data) - 500, len(data) - 1):
        path = tmp_path / f"cut{cut}.exr"
        path.write_bytes(data[:cut])
        assert_io_error(path)


def _written(tmp_path, ext) -> bytes:
    image = Image(torch.rand((3, 40, 50)), chans.RGB, Box(0, 0, 50, 40), Format.of_size(50, 40))
    path = tmp_path / f"src.{ext}"
    write_image(path, image)
    return path.read_bytes()


@pytest.mark.parametrize("ext", ["png", "jpg", "tif"])
def test_truncated_stills(tmp_path, ext):
    data = _written(tmp_path, ext)
    for cut in (4, 30, len(data) // 2, len(data) - 20):
        path = tmp_path / f"cut{cut}.{ext}"
        path.write_bytes(data[:cut])
        assert_io_error(path)


def test_truncated_movie(tmp_path):
    src = tmp_path / "src.mp4"
    with av.open(str(src), "w") as c:
        s = c.add_stream("mpeg4", rate=Fraction(24))
        s.width, s.height, s.pix_fmt = 32, 32, "yuv420p"
        for i in range(5):
            for p in s.encode(av.VideoFrame.from_ndarray(np.full((32, 32, 3), i * 40, np.uint8), format="rgb24")):
                c.mux(p)
        for p in s.encode(None):
            c.mux(p)
    data = src.read_bytes()
    for cut in (8, 40, len(data) // 2):
        path = tmp_path / f"cut{cut}.mp4"
        path.write_bytes(data[:cut])
        assert_io_error(path)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.binary(max_size=2048), ext=st.sampled_from(EXTENSIONS), magic=st.booleans())
def test_arbitrary_bytes_only_raise_nodegraph_errors(tmp_path, data, ext, magic):
    prefixes = {"exr": b"\x76\x2f\x31\x01\x02\x00\x00\x00", "png": b"\x89PNG\r\n\x1a\n", "jpg": b"\xff\xd8\xff",
                "tif": b"II*\x00", "dpx": b"SDPX"}
    path = tmp_path / f"fuzz.{ext}"
    path.write_bytes((prefixes.get(ext, b"") if magic else b"") + data)
    try:
        read_image(path)
    except NodeGraphError as err:
        assert str(path) in str(err)


def test_corrupted_exr_bytes_in_subprocess(tmp_path):
    """Random byte flips in real EXRs (compressed data included): the child must exit cleanly."""
    script = f"""
import random, sys
from nodegraph.io import read_image
from nodegraph.errors import NodeGraphError
rng = random.Random(5)
for src in {[str(sample(r)) for r in ("DisplayWindow/t01.exr", "TestImages/stripes.exr")]!r}:
    data = open(src, "rb").read()
    for i in range(40):
        b = bytearray(data)
        for _ in range(rng.randint(1, 16)):
            b[rng.randrange(len(b))] = rng.randrange(256)
        open({str(tmp_path / "flip.exr")!r}, "wb").write(b)
        try:
            read_image({str(tmp_path / "flip.exr")!r})
        except NodeGraphError:
            pass
print("done")
"""
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip().endswith("done")


def test_atomic_output_failure_leaves_nothing(tmp_path):
    target = tmp_path / "out.exr"
    with pytest.raises(RuntimeError):
        with atomic_output(target) as tmp:
            assert tmp.parent == tmp_path and tmp.suffix == ".exr" and tmp.name.startswith(".out.exr.tmp-")
            tmp.write_bytes(b"partial")
            raise RuntimeError("killed mid-write")
    assert list(tmp_path.iterdir()) == []


def test_atomic_output_keeps_previous_file_on_failure(tmp_path):
    target = tmp_path / "out.png"
    target.write_bytes(b"old")
    with pytest.raises(KeyboardInterrupt):
        with atomic_output(target) as tmp:
            tmp.write_bytes(b"new")
            raise KeyboardInterrupt
    assert target.read_bytes() == b"old" and len(list(tmp_path.iterdir())) == 1
    with atomic_output(target) as tmp:
        tmp.write_bytes(b"new")
    assert target.read_bytes() == b"new" and len(list(tmp_path.iterdir())) == 1


def test_atomic_output_directories(tmp_path):
    with pytest.raises(ImageIOError, match="does not exist"):
        with atomic_output(tmp_path / "a" / "b.exr"):
            pass
    with atomic_output(tmp_path / "a" / "b.exr", create_directories=True) as tmp:
        tmp.write_bytes(b"x")
    assert (tmp_path / "a" / "b.exr").read_bytes() == b"x"


def test_writer_failure_mid_write_leaves_nothing(tmp_path, monkeypatch):
    import OpenEXR

    def boom(self, path):
        Path(path).write_bytes(b"half a file")
        raise RuntimeError("disk full")

    monkeypatch.setattr(OpenEXR.File, "write", boom)
    image = Image.blank(Format.of_size(8, 8))
    with pytest.raises(ImageIOError, match="disk full"):
        write_exr(tmp_path / "f.exr", image)
    assert list(tmp_path.iterdir()) == []
