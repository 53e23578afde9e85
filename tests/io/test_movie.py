"""Movies: frame-accurate random access, checked on movies whose frames encode their own index."""

from __future__ import annotations

import random
from fractions import Fraction

import av
import numpy as np
import pytest
import torch

from nodegraph import channels as chans
from nodegraph.errors import ImageIOError, MissingFrameError
from nodegraph.image import Box, Format, Image
from nodegraph.io import movie
from nodegraph.io.movie import MovieWriter, movie_info, read_movie_frame

W, H, N = 64, 48, 30
CELL = 8


def cell(i: int) -> tuple[int, int]:
    """Top-left corner of frame i's bright block."""
    return (i % (W // CELL)) * CELL, (i // (W // CELL)) * CELL


def frame_array(i: int) -> np.ndarray:
    a = np.full((H, W, 3), 40, np.uint8)
    x, y = cell(i)
    a[y:y + CELL, x:x + CELL] = 235
    return a


def which_frame(pixels: torch.Tensor) -> int:
    g = pixels[1]
    return max(range(N), key=lambda i: g[cell(i)[1]:cell(i)[1] + CELL, cell(i)[0]:cell(i)[0] + CELL].mean().item())


def encode_with_pyav(path, codec, pix_fmt, options):
    """The test movie, made with PyAV directly (not with MovieWriter)."""
    with av.open(str(path), "w") as container:
        stream = container.add_stream(codec, rate=Fraction(24), options=options)
        stream.width, stream.height, stream.pix_fmt = W, H, pix_fmt
        for i in range(N):
            frame = av.VideoFrame.from_ndarray(frame_array(i), format="rgb24")
            frame.pts = i
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode(None):
            container.mux(packet)


@pytest.fixture(autouse=True)
def _close_readers():
    yield
    movie.close_all()


@pytest.mark.parametrize("ext, codec, pix_fmt, options", [
    ("mp4", "libx264", "yuv420p", {"g": "8", "bf": "3"}),  # long GOP with B-frames
    ("mov", "mpeg4", "yuv420p", {"g": "6", "bf": "2"}),
    ("mxf", "mpeg2video", "yuv422p", {"g": "5"}),
])
def test_random_access_is_frame_accurate(tmp_path, ext, codec, pix_fmt, options):
    if codec not in av.codecs_available:
        pytest.skip(f"{codec} not in this PyAV build")
    path = tmp_path / f"index.{ext}"
    encode_with_pyav(path, codec, pix_fmt, options)
    info = movie_info(path)
    assert info["frames"] == N and info["width"] == W and info["height"] == H and info["fps"] == 24.0
    order = list(range(N)) + random.Random(7).sample(range(N), N) + [N - 1, 0, N - 1, 3, 2, 1]
    for i in order:
        image = read_movie_frame(path, i)
        assert which_frame(image.pixels) == i, f"asked for frame {i}"
    assert image.channels == chans.RGB and image.bbox == Box(0, 0, W, H)
    assert image.metadata["input/datatype"] == "uint8"


def test_out_of_range_frame(tmp_path):
    path = tmp_path / "short.mp4"
    encode_with_pyav(path, "mpeg4", "yuv420p", {})
    with pytest.raises(MissingFrameError, match="outside"):
        read_movie_frame(path, N)


def test_reader_is_cached(tmp_path):
    path = tmp_path / "c.mp4"
    encode_with_pyav(path, "mpeg4", "yuv420p", {})
    read_movie_frame(path, 0)
    reader = next(iter(movie._cache.values()))
    read_movie_frame(path, 1)
    assert next(iter(movie._cache.values())) is reader and len(movie._cache) == 1


def index_image(i: int) -> Image:
    pixels = torch.from_numpy(np.moveaxis(frame_array(i), -1, 0).astype(np.float32) / 255)
    return Image(pixels, chans.RGB, Box(0, 0, W, H), Format.of_size(W, H))


@pytest.mark.parametrize("ext, codec", [("mov", None), ("mp4", None), ("mp4", "mpeg4"), ("mxf", None)])
def test_writer_round_trip(tmp_path, ext, codec):
    path = tmp_path / f"out.{ext}"
    with MovieWriter(path, 25, codec=codec) as writer:
        for i in range(N):
            writer.write(index_image(i))
    assert [p.name for p in tmp_path.iterdir()] == [path.name]
    info = movie_info(path)
    assert info["frames"] == N and info["fps"] == 25.0
    for i in random.Random(1).sample(range(N), 10):
        image = read_movie_frame(path, i)
        assert which_frame(image.pixels) == i
    grey = read_movie_frame(path, 0).pixels[:, -1, -1]  # background 40/255
    assert torch.allclose(grey, torch.full((3,), 40 / 255), atol=3 / 255)


def test_prores_is_10_bit(tmp_path):
    path = tmp_path / "p.mov"
    with MovieWriter(path, 24) as writer:
        writer.write(index_image(0))
    assert movie_info(path)["codec"] == "prores"
    assert read_movie_frame(path, 0).metadata["input/datatype"] == "uint16"


def test_writer_aborts_on_exception(tmp_path):
    path = tmp_path / "abort.mp4"
    with pytest.raises(RuntimeError):
        with MovieWriter(path, 24, codec="mpeg4") as writer:
            writer.write(index_image(0))
            raise RuntimeError("render failed")
    assert list(tmp_path.iterdir()) == []


def test_writer_rejects_size_change(tmp_path):
    path = tmp_path / "size.mp4"
    with pytest.raises(ImageIOError, match="32x16"):
        with MovieWriter(path, 24, codec="mpeg4") as writer:
            writer.write(index_image(0))
            writer.write(Image.blank(Format.of_size(32, 16), chans.RGB))
    assert list(tmp_path.iterdir()) == []


def test_writer_unknown_codec(tmp_path):
    with pytest.raises(ImageIOError, match="not available"):
        MovieWriter(tmp_path / "x.mov", 24, codec="nonesuch")
