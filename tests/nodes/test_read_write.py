"""Read and Write nodes on real files: sequences, ranges, errors, colour, atomic writes."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import OpenImageIO as oiio
import pytest
import torch

import nodegraph as ng
from nodegraph.image import Box, Format, Image
from nodegraph.io import write_image

DATA = Path(os.environ["NODEGRAPH_TEST_DATA"])  # found by tests/conftest.py


def _frame_image(value: float, fmt: Format = Format.of_size(32, 16)) -> Image:
    pixels = torch.full((4, fmt.height, fmt.width), value)
    pixels[3] = 1.0
    return Image(pixels, ("rgba.red", "rgba.green", "rgba.blue", "rgba.alpha"), fmt.display, fmt)


@pytest.fixture()
def sequence(tmp_path: Path) -> str:
    """Frames 11..15 whose red channel equals the frame number / 100."""
    for f in range(11, 16):
        write_image(tmp_path / f"plate.{f:04d}.exr", _frame_image(f / 100), datatype="float")
    return str(tmp_path / "plate.####.exr")


def _red(img: Image) -> float:
    return float(img.channel("rgba.red").mean())


def test_sequence_range_detected_and_frames_read(sequence: str) -> None:
    g = ng.Graph()
    r = g.add("Read", file=sequence)
    assert g.frame_range(r) == (11, 15)
    for f in range(11, 16):
        assert _red(g.evaluate(r, f)) == pytest.approx(f / 100)


def test_printf_padding_reads_same_files(sequence: str) -> None:
    g = ng.Graph()
    r = g.add("Read", file=sequence.replace("####", "%04d"))
    assert g.frame_range(r) == (11, 15)
    assert _red(g.evaluate(r, 13)) == pytest.approx(0.13)


@pytest.mark.parametrize("mode,frame,expected", [
    ("hold", 5, 11), ("hold", 30, 15), ("loop", 16, 11), ("loop", 10, 15), ("bounce", 16, 14), ("bounce", 19, 11),
])
def test_before_after(sequence: str, mode: str, frame: int, expected: int) -> None:
    g = ng.Graph()
    r = g.add("Read", file=sequence, before=mode, after=mode)
    assert _red(g.evaluate(r, frame)) == pytest.approx(expected / 100)


def test_outside_black(sequence: str) -> None:
    g = ng.Graph()
    r = g.add("Read", file=sequence, after="black")
    img = g.evaluate(r, 20)
    assert float(img.pixels.abs().max()) == 0.0
    assert img.format.width == 32


def test_frame_mode_start_at_and_offset(sequence: str) -> None:
    g = ng.Graph()
    start = g.add("Read", file=sequence, frame_mode="start at", frame=1001)
    assert g.frame_range(start) == (1001, 1005)
    assert _red(g.evaluate(start, 1002)) == pytest.approx(0.12)
    off = g.add("Read", file=sequence, frame_mode="offset", frame=-10)
    assert g.frame_range(off) == (1, 5)
    assert _red(g.evaluate(off, 3)) == pytest.approx(0.13)


def test_missing_frame_errors_and_fallbacks(sequence: str) -> None:
    os.remove(sequence.replace("####", "0013"))
    g = ng.Graph()
    r = g.add("Read", file=sequence, first=11, last=15)
    with pytest.raises(ng.MissingFrameError) as info:
        g.evaluate(r, 13)
    msg = str(info.value)
    assert "Read1" in msg and "13" in msg and "plate.0013.exr" in msg
    r.set(on_error="black")
    assert float(g.evaluate(r, 13).pixels.abs().max()) == 0.0
    r.set(on_error="nearest frame")
    assert _red(g.evaluate(r, 13)) == pytest.approx(0.12)
    r.set(on_error="checkerboard")
    board = g.evaluate(r, 13)
    assert float(board.channel("rgba.alpha").min()) == 1.0
    assert len(torch.unique(board.channel("rgba.red"))) == 2


def test_corrupt_file_names_node_frame_and_file(tmp_path: Path) -> None:
    bad = tmp_path / "bad.0001.exr"
    bad.write_bytes(b"\x76\x2f\x31\x01" + os.urandom(200))
    g = ng.Graph()
    r = g.add("Read", file=str(tmp_path / "bad.####.exr"))
    with pytest.raises(ng.ImageIOError) as info:
        g.evaluate(r, 1)
    assert "Read1" in str(info.value) and "bad.0001.exr" in str(info.value) and "frame 1" in str(info.value)


def test_data_window_kept_through_read_and_write(tmp_path: Path) -> None:
    src = DATA / "DisplayWindow" / "t01.exr"
    g = ng.Graph()
    r = g.add("Read", file=str(src))
    img = g.evaluate(r, 1)
    spec = oiio.ImageInput.open(str(src)).spec()
    assert tuple(img.bbox) == (spec.x, spec.y, spec.x + spec.width, spec.y + spec.height)
    assert tuple(img.format.display) == (spec.full_x, spec.full_y, spec.full_x + spec.full_width,
                                         spec.full_y + spec.full_height)
    out = tmp_path / "out.exr"
    w = g.add("Write", input=r, file=str(out), channels="all", datatype="32 bit float")
    w.write_frame(g.evaluator, 1)
    back = oiio.ImageBuf(str(out))
    assert (back.spec().x, back.spec().y, back.spec().width) == (spec.x, spec.y, spec.width)
    ref = oiio.ImageBuf(str(src)).get_pixels(oiio.FLOAT)
    np.testing.assert_array_equal(back.get_pixels(oiio.FLOAT), ref)


def test_png_write_is_srgb_and_read_back_linear(tmp_path: Path) -> None:
    g = ng.Graph()
    c = g.add("Constant", color=(0.18, 0.5, 1.0, 1.0), format="16x8")
    w = g.add("Write", input=c, file=str(tmp_path / "c.####.png"), channels="rgb", datatype="16 bit")
    w.write_frame(g.evaluator, 7)
    path = tmp_path / "c.0007.png"
    stored = oiio.ImageBuf(str(path)).get_pixels(oiio.FLOAT)[0, 0, :3]

    def srgb(x: float) -> float:  # the sRGB encoding formula, written independently
        return 12.92 * x if x <= 0.0031308 else 1.055 * x ** (1 / 2.4) - 0.055

    np.testing.assert_allclose(stored, [srgb(0.18), srgb(0.5), srgb(1.0)], atol=1 / 65535)
    r = g.add("Read", file=str(path))
    back = g.evaluate(r, 1)
    np.testing.assert_allclose(back.pixels[:3, 0, 0].numpy(), [0.18, 0.5, 1.0], atol=2e-4)
    raw = g.add("Read", file=str(path), raw=True)
    np.testing.assert_allclose(g.evaluate(raw, 1).pixels[:3, 0, 0].numpy(), stored, atol=1e-6)


def test_write_multilayer_exr_keeps_layers_and_metadata(tmp_path: Path) -> None:
    fmt = Format.of_size(8, 4)
    names = ("rgba.red", "rgba.green", "rgba.blue", "rgba.alpha", "depth.Z", "diffuse.red")
    pix = torch.arange(6 * 4 * 8, dtype=torch.float32).reshape(6, 4, 8) / 7
    src = tmp_path / "multi.exr"
    write_image(src, Image(pix, names, Box(0, 0, 8, 4), fmt, {"exr/comment": "hello"}), datatype="float")
    g = ng.Graph()
    r = g.add("Read", file=str(src))
    out = tmp_path / "out.exr"
    g.add("Write", input=r, file=str(out), channels="all", datatype="32 bit float").write_frame(g.evaluator, 1)
    back = ng.Graph()
    img = back.evaluate(back.add("Read", file=str(out)), 1)
    assert set(img.channels) == set(names)
    for n in names:
        torch.testing.assert_close(img.channel(n), pix[names.index(n)], rtol=0, atol=0)
    assert any("hello" == v for v in img.metadata.values())


def test_failed_write_leaves_no_file(tmp_path: Path) -> None:
    g = ng.Graph()
    c = g.add("Constant", format="8x8")
    w = g.add("Write", input=c, file=str(tmp_path / "missing_dir" / "x.exr"))
    with pytest.raises(ng.NodeGraphError) as info:
        w.write_frame(g.evaluator, 1)
    assert "Write1" in str(info.value)
    assert not (tmp_path / "missing_dir").exists()
    w.set(create_directories=True)
    w.write_frame(g.evaluator, 1)
    assert os.listdir(tmp_path / "missing_dir") == ["x.exr"]


def test_write_datatype_checked_against_format() -> None:
    g = ng.Graph()
    w = g.add("Write", input=g.add("Constant"), file="x.png", datatype="16 bit half")
    issues = g.validate()
    assert any(i.node == w.name and "datatype" in i.message for i in issues)


def test_read_hash_changes_when_file_changes(sequence: str) -> None:
    g = ng.Graph()
    r = g.add("Read", file=sequence)
    h1 = g.evaluator.hash(r, 12)
    assert g.evaluator.hash(r, 13) != h1
    path = sequence.replace("####", "0012")
    write_image(path, _frame_image(0.5), datatype="float")
    os.utime(path, ns=(1, 1))
    assert g.evaluator.hash(r, 12) != h1
    assert _red(g.evaluate(r, 12)) == pytest.approx(0.5)


def test_movie_write_then_read_frame_accurate(tmp_path: Path) -> None:
    g = ng.Graph()
    src = g.add("Read", file=str(tmp_path / "frames.####.exr"))
    for f in range(1, 9):
        write_image(tmp_path / f"frames.{f:04d}.exr", _frame_image(f / 10, Format.of_size(64, 32)), datatype="float")
    g.add("Write", input=src, file=str(tmp_path / "out.mov"), raw=True)
    from nodegraph.render import render

    result = render(g)
    assert result.ok and len(result.written) == 8
    h = ng.Graph()
    mov = h.add("Read", file=str(tmp_path / "out.mov"), raw=True)
    assert h.frame_range(mov) == (1, 8)
    for f in (6, 2, 8, 1):
        assert _red(h.evaluate(mov, f)) == pytest.approx(f / 10, abs=0.01)
