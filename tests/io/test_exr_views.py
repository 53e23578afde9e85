"""Multi-view EXRs (single-part ``multiView`` and multi-part ``view``) and deep parts, with files
built here by the OpenEXR bindings; the Read node's ``view`` knob and ``nodegraph info``."""

from __future__ import annotations

import json

import numpy as np
import OpenEXR
import pytest
from typer.testing import CliRunner

import nodegraph as ng
from nodegraph.cli import app
from nodegraph.errors import ImageIOError, KnobError, NodeGraphError
from nodegraph.io.exr import exr_info, read_exr

H, W = 4, 6


def plane(value: float, dtype=np.float16) -> np.ndarray:
    return np.full((H, W), value, dtype)


def write_single(path, views: list[str] | None, channels: dict[str, float]) -> None:
    header = {"compression": OpenEXR.ZIP_COMPRESSION, "type": OpenEXR.scanlineimage}
    if views:
        header["multiView"] = views
    OpenEXR.File(header, {n: plane(v) for n, v in channels.items()}).write(str(path))


def deep_channel(seed: int) -> np.ndarray:
    out = np.empty((H, W), dtype=object)
    for y in range(H):
        for x in range(W):
            out[y, x] = np.arange((x + y + seed) % 3, dtype=np.float32) + 1
    return out


@pytest.fixture
def stereo_parts(tmp_path):
    """Multi-part, OpenEXR 2 "Stereo" style: flat RGB per view, a deep part, a shared part."""
    def flat(name, view, value):
        header = {"type": OpenEXR.scanlineimage, "compression": OpenEXR.ZIP_COMPRESSION}
        if view:
            header["view"] = view
        return OpenEXR.Part(header, {"R": plane(value), "G": plane(value), "B": plane(value)}, name)

    deep = OpenEXR.Part({"type": OpenEXR.deepscanline, "compression": OpenEXR.ZIPS_COMPRESSION, "view": "left"},
                        {"A": deep_channel(0), "Z": deep_channel(0)}, "deep_left")
    path = tmp_path / "stereo.exr"
    OpenEXR.File([deep, flat("rgba_left", "left", 0.25), flat("rgba_right", "right", 0.75),
                  flat("matte", None, 0.5)]).write(str(path))
    return path


# --- single part, multiView ---------------------------------------------------------------------

def test_single_part_views_read_one_view_named_as_nuke_names_it(tmp_path):
    path = tmp_path / "mv.exr"
    write_single(path, ["left", "right"], {
        "R": 0.1, "G": 0.2, "B": 0.3, "right.R": 0.4, "right.G": 0.5, "right.B": 0.6,
        "lighting.left.R": 1.0, "lighting.right.R": 2.0, "background.data": 7.0})
    left = read_exr(path)
    assert left.metadata["input/view"] == "left" and left.metadata["exr/multiView"] == ["left"]
    assert set(left.channels) == {"rgba.red", "rgba.green", "rgba.blue", "lighting.red", "background.data"}
    assert left.channel("rgba.blue").unique().tolist() == [pytest.approx(0.3, abs=1e-3)]
    assert left.channel("lighting.red").unique().tolist() == [1.0]
    right = read_exr(path, view="right")
    assert set(right.channels) == set(left.channels)
    assert right.channel("rgba.red").unique().tolist() == [pytest.approx(0.4, abs=1e-3)]
    assert right.channel("lighting.red").unique().tolist() == [2.0]
    assert right.channel("background.data").unique().tolist() == [7.0]  # in no view: shared
    everything = read_exr(path, part="*")
    assert {"rgba.red", "right.red", "lighting.left.red", "lighting.right.red"} <= set(everything.channels)


def test_single_part_luminance_views_read_as_grey(tmp_path):
    path = tmp_path / "ymv.exr"
    write_single(path, ["left", "right"], {"Y": 0.25, "right.Y": 0.75})
    for view, value in (("", 0.25), ("left", 0.25), ("right", 0.75)):
        image = read_exr(path, view=view)
        assert image.channels == ("rgba.red", "rgba.green", "rgba.blue")
        assert image.pixels.unique().tolist() == [value]


def test_unknown_view_lists_the_views(tmp_path):
    path = tmp_path / "mv.exr"
    write_single(path, ["left", "right"], {"R": 0.1, "right.R": 0.4})
    with pytest.raises(ImageIOError) as err:
        read_exr(path, view="centre")
    assert "'centre'" in str(err.value) and "left, right" in str(err.value) and str(path) in str(err.value)


def test_file_without_views_serves_every_view(tmp_path):
    path = tmp_path / "mono.exr"
    write_single(path, None, {"R": 0.5, "G": 0.5, "B": 0.5})
    image = read_exr(path, view="right")
    assert image.channels == ("rgba.red", "rgba.green", "rgba.blue") and "input/view" not in image.metadata


def test_info_lists_views(tmp_path):
    path = tmp_path / "mv.exr"
    write_single(path, ["right", "left"], {"R": 0.1, "left.R": 0.4, "background.data": 1.0})
    info = exr_info(path)
    assert info["views"] == ["right", "left"] and info["default_view"] == "right"
    views = {c["file_name"]: c["view"] for c in info["parts"][0]["channels"]}
    assert views == {"R": "right", "left.R": "left", "background.data": None}
    res = CliRunner().invoke(app, ["info", str(path)])
    assert res.exit_code == 0, res.output
    assert "views" in res.output and "right" in res.output and "default_view: right" in res.output


# --- multi part, per-part views, deep parts -----------------------------------------------------

def test_multi_part_default_view_skips_the_deep_part(stereo_parts):
    image = read_exr(stereo_parts)  # default: the first part's view (left); its first flat part
    assert image.metadata["exr/part"] == "rgba_left" and image.metadata["input/view"] == "left"
    assert image.pixels.unique().tolist() == [0.25]
    right = read_exr(stereo_parts, view="right")
    assert right.metadata["exr/part"] == "rgba_right" and right.pixels.unique().tolist() == [0.75]
    info = exr_info(stereo_parts)
    assert info["views"] == ["left", "right"]
    assert [(p["name"], p["view"], p["deep"]) for p in info["parts"]] == [
        ("deep_left", "left", True), ("rgba_left", "left", False), ("rgba_right", "right", False),
        ("matte", None, False)]


def test_asking_for_a_deep_part_names_it_and_lists_the_flat_parts(stereo_parts):
    for part in ("deep_left", 0, "0"):
        with pytest.raises(ImageIOError) as err:
            read_exr(stereo_parts, part=part)
        text = str(err.value)
        assert "'deep_left'" in text and "deep data is not supported" in text
        assert "rgba_left, rgba_right, matte" in text and str(stereo_parts) in text


def test_every_part_of_a_view_skips_deep_parts_and_says_so(stereo_parts):
    image = read_exr(stereo_parts, part="*", view="left")
    assert image.metadata["nodegraph/skipped_deep_parts"] == ["deep_left"]
    # rgba_left and the view-less matte part both have R, G, B: prefixed by part name
    assert set(image.channels) == {f"{p}.{c}" for p in ("rgba_left", "matte") for c in ("red", "green", "blue")}


def test_part_of_another_view_is_refused_when_a_view_is_asked(stereo_parts):
    assert read_exr(stereo_parts, part="rgba_right").pixels.unique().tolist() == [0.75]
    with pytest.raises(ImageIOError, match="'rgba_right' belongs to view 'right', not 'left'"):
        read_exr(stereo_parts, part="rgba_right", view="left")


def test_file_of_deep_parts_only(tmp_path):
    path = tmp_path / "deep.exr"
    OpenEXR.File([OpenEXR.Part({"type": OpenEXR.deepscanline, "compression": OpenEXR.ZIPS_COMPRESSION},
                               {"Z": deep_channel(0)}, "depth")]).write(str(path))
    with pytest.raises(ImageIOError, match=r"part 'depth' holds deep data; deep data is not supported \(flat parts: none\)"):
        read_exr(path)


# --- the Read node ------------------------------------------------------------------------------

def test_read_view_knob(stereo_parts):
    g = ng.Graph()
    node = g.add("Read", file=str(stereo_parts), view="right")
    assert g.evaluate(node, 1).channel("rgba.red").unique().tolist() == [0.75]
    node.knobs.view = ""
    assert g.evaluate(node, 1).channel("rgba.red").unique().tolist() == [0.25]
    node.knobs.part = "deep_left"
    with pytest.raises(ImageIOError) as err:
        g.evaluate(node, 1)
    assert "deep_left" in str(err.value) and "Read1" in str(err.value)


def test_read_fills_view_tokens_in_the_file_name(tmp_path):
    for view, value in (("left", 0.25), ("right", 0.75)):
        write_single(tmp_path / f"plate_{view}.{view[0]}.exr", None, {"R": value, "G": value, "B": value})
    g = ng.Graph()
    node = g.add("Read", file=str(tmp_path / "plate_%V.%v.exr"), view="right")
    assert g.evaluate(node, 1).channel("rgba.red").unique().tolist() == [0.75]
    node.knobs.view = "left"
    assert g.evaluate(node, 1).channel("rgba.red").unique().tolist() == [0.25]
    node.knobs.view = ""
    assert any("%V" in p for p in node.check())
    with pytest.raises(KnobError, match="view"):
        g.evaluate(node, 1)


def test_read_view_knob_is_an_error_not_a_crash_for_unknown_views(tmp_path):
    path = tmp_path / "mv.exr"
    write_single(path, ["left", "right"], {"R": 0.1, "right.R": 0.4})
    g = ng.Graph()
    node = g.add("Read", file=str(path), view="centre")
    with pytest.raises(NodeGraphError, match="left, right"):
        g.evaluate(node, 1)
    node.knobs.on_error = "black"
    assert g.evaluate(node, 1).metadata["nodegraph/error"]
