"""Rendering: frame ranges, parallel workers, failures named per frame, skip-existing, atomicity."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import OpenImageIO as oiio
import pytest
import torch

import nodegraph as ng
from nodegraph.image import Format, Image
from nodegraph.io import write_image
from nodegraph.render import render


def _write_sequence(folder: Path, frames: range) -> str:
    fmt = Format.of_size(24, 12)
    for f in frames:
        pix = torch.full((4, 12, 24), f / 100.0)
        write_image(folder / f"src.{f:04d}.exr", Image(pix, ("rgba.red", "rgba.green", "rgba.blue", "rgba.alpha"),
                                                       fmt.display, fmt), datatype="float")
    return str(folder / "src.####.exr")


def _comp(tmp_path: Path, src: str) -> ng.Graph:
    g = ng.Graph()
    r = g.add("Read", file=src)
    m = g.add("Multiply", input=r, value=2.0, channels="rgb")
    g.add("Write", name="Out", input=m, file=str(tmp_path / "out" / "o.####.exr"), channels="rgba",
          datatype="32 bit float", create_directories=True)
    return g


def _red(path: str) -> float:
    return float(oiio.ImageBuf(path).get_pixels(oiio.FLOAT)[..., 0].mean())


@pytest.mark.parametrize("workers,processes", [(1, False), (2, False), (2, True)])
def test_render_range_from_reads(tmp_path: Path, workers: int, processes: bool) -> None:
    g = _comp(tmp_path, _write_sequence(tmp_path, range(1, 6)))
    result = render(g, workers=workers, processes=processes)
    assert result.ok
    assert sorted(f for _, f, _ in result.written) == [1, 2, 3, 4, 5]
    for f in range(1, 6):
        assert _red(str(tmp_path / "out" / f"o.{f:04d}.exr")) == pytest.approx(2 * f / 100)
    assert not [p for p in os.listdir(tmp_path / "out") if p.startswith(".")]  # no temp files left


def test_render_failures_named_per_frame_and_others_written(tmp_path: Path) -> None:
    src = _write_sequence(tmp_path, range(1, 6))
    (tmp_path / "src.0002.exr").write_bytes(b"garbage")
    os.remove(tmp_path / "src.0004.exr")
    g = _comp(tmp_path, src)
    g["Read1"].set(first=1, last=5)
    result = render(g, workers=2)  # threads
    assert set(result.failed) == {("Out", 2), ("Out", 4)}
    for p in os.listdir(tmp_path / "out"):
        os.remove(tmp_path / "out" / p)
    result = render(g, workers=2, processes=True)
    assert set(result.failed) == {("Out", 2), ("Out", 4)}
    assert "src.0002.exr" in result.failed[("Out", 2)] and "src.0004.exr" in result.failed[("Out", 4)]
    assert sorted(os.listdir(tmp_path / "out")) == ["o.0001.exr", "o.0003.exr", "o.0005.exr"]
    with pytest.raises(ng.RenderError):
        result.raise_for_failures()


def test_skip_existing_resumes(tmp_path: Path) -> None:
    g = _comp(tmp_path, _write_sequence(tmp_path, range(1, 5)))
    first = render(g, frames=[1, 2])
    assert first.ok
    result = render(g, skip_existing=True)
    assert sorted(f for _, f, _ in result.skipped) == [1, 2]
    assert sorted(f for _, f, _ in result.written) == [3, 4]


def test_render_frames_spec_and_write_selection(tmp_path: Path) -> None:
    g = _comp(tmp_path, _write_sequence(tmp_path, range(1, 8)))
    g.add("Write", name="Other", input=g["Read1"], file=str(tmp_path / "other.####.exr"))
    result = render(g, frames="1-7x3", writes=["Out"])
    assert sorted((n, f) for n, f, _ in result.written) == [("Out", 1), ("Out", 4), ("Out", 7)]
    with pytest.raises(ng.NodeGraphError, match="not an output"):
        render(g, writes=["Read1"])


def test_invalid_graph_is_refused_before_rendering(tmp_path: Path) -> None:
    g = ng.Graph()
    g.add("Write", file=str(tmp_path / "x.exr"))
    with pytest.raises(ng.ValidationError) as info:
        render(g, frames=[1])
    assert any(i.kind == "missing_input" for i in info.value.issues)
    assert not (tmp_path / "x.exr").exists()


def test_generators_need_explicit_frames(tmp_path: Path) -> None:
    g = ng.Graph()
    g.add("Write", input=g.add("ColorBars", format="16x8"), file=str(tmp_path / "bars.####.png"))
    with pytest.raises(ng.NodeGraphError, match="--frames"):
        render(g)
    assert render(g, frames="1-2").ok
    img = oiio.ImageBuf(str(tmp_path / "bars.0001.png")).get_pixels(oiio.UINT8)
    assert img.shape == (8, 16, 3)
    assert np.array_equal(img[0, 0], [225, 225, 225])  # 75% white bar, sRGB-encoded: 255*srgb(0.75)


@pytest.mark.gpu
def test_render_on_cuda(tmp_path: Path) -> None:
    g = _comp(tmp_path, _write_sequence(tmp_path, range(1, 3)))
    assert render(g, device="cuda").ok
    assert _red(str(tmp_path / "out" / "o.0002.exr")) == pytest.approx(0.04)


def test_render_cache_keeps_shared_images_only(tmp_path: Path) -> None:
    """A still read by every frame is read twice at most; per-frame results are never stored."""
    src = _write_sequence(tmp_path, range(1, 7))
    write_image(tmp_path / "still.exr", Image(torch.full((4, 12, 24), 0.5), ("rgba.red", "rgba.green", "rgba.blue",
                                              "rgba.alpha"), Format.of_size(24, 12).display,
                                              Format.of_size(24, 12)), datatype="float")
    g = ng.Graph()
    seq = g.add("Read", file=src)
    still = g.add("Read", name="Still", file=str(tmp_path / "still.exr"))
    plus = g.add("Merge2", A=seq, B=still, operation="plus")
    g.add("Write", input=plus, file=str(tmp_path / "o.####.exr"))
    import nodegraph.render as render_mod

    seen = {}
    original = render_mod.Evaluator

    class Spy(original):  # keep a handle on the evaluator render makes
        def __init__(self, *a, **k):
            super().__init__(*a, **k)
            seen["ev"] = self

    render_mod.Evaluator = Spy
    try:
        assert render(g).ok
    finally:
        render_mod.Evaluator = original
    ev = seen["ev"]
    assert ev.stats.ran["Still"] == 2 and ev.stats.cached["Still"] == 4
    assert ev.stats.ran["Read1"] == 6 and ev.stats.ran["Merge1"] == 6
    assert len(ev.cache) == 1  # only the still
