"""The image model (nodegraph.image) and channel naming (nodegraph.channels)."""

from __future__ import annotations

import pytest
import torch
from hypothesis import example, given
from hypothesis import strategies as st

from nodegraph import channels as chans
from nodegraph import Box, ChannelError, Format, Image, NodeGraphError

FMT = Format.of_size(64, 32)


def ramp_image(channels=chans.RGBA, bbox=Box(0, 0, 64, 32), fmt=FMT, dtype=torch.float32) -> Image:
    """An image whose every pixel value is distinct: c * 10000 + y * 100 + x over the bbox."""
    c, h, w = len(channels), bbox.height, bbox.width
    cc = torch.arange(c).view(c, 1, 1) * 10000
    yy = torch.arange(h).view(1, h, 1) * 100
    xx = torch.arange(w).view(1, 1, w)
    return Image((cc + yy + xx).to(dtype), tuple(channels), bbox, fmt)


# --- construction --------------------------------------------------------------------------

def test_construction_accepts_matching_shape():
    img = Image(torch.zeros(2, 5, 7), ("rgba.red", "depth.Z"), Box(3, 4, 10, 9), FMT)
    assert img.bbox == Box(3, 4, 10, 9)
    assert img.channels == ("rgba.red", "depth.Z")
    assert img.nbytes == 2 * 5 * 7 * 4


@pytest.mark.parametrize("shape", [(4, 32, 63), (4, 31, 64), (4, 64, 32)])
def test_construction_rejects_shape_not_matching_bbox(shape):
    with pytest.raises(NodeGraphError, match="data window"):
        Image(torch.zeros(shape), chans.RGBA, FMT.display, FMT)


def test_construction_rejects_wrong_rank():
    with pytest.raises(NodeGraphError, match=r"\[C, H, W\]"):
        Image(torch.zeros(32, 64), chans.RGBA, FMT.display, FMT)


@pytest.mark.parametrize("n", [3, 5])
def test_construction_rejects_channel_count_mismatch(n):
    with pytest.raises(NodeGraphError, match="channel names"):
        Image(torch.zeros(n, 32, 64), chans.RGBA, FMT.display, FMT)


def test_construction_rejects_duplicate_channel_names():
    with pytest.raises(ChannelError, match="duplicate"):
        Image(torch.zeros(2, 32, 64), ("rgba.red", "rgba.red"), FMT.display, FMT)


def test_blank_fills_value_in_format_and_dtype():
    img = Image.blank(FMT, ("rgba.alpha",), dtype=torch.float16, value=0.5)
    assert img.pixels.shape == (1, 32, 64)
    assert img.dtype == torch.float16
    assert torch.all(img.pixels == 0.5)
    assert img.bbox == FMT.display


def test_box_geometry():
    a, b = Box(0, 0, 10, 10), Box(5, 5, 20, 8)
    assert a.union(b) == Box(0, 0, 20, 10)
    assert a.intersect(b) == Box(5, 5, 10, 8)
    assert a.intersect(Box(20, 20, 30, 30)).empty
    assert Box(2, 2, 2, 9).union(a) == a
    assert Box.from_inclusive(0, 0, 63, 31) == Box(0, 0, 64, 32)
    assert Box(0, 0, 64, 32).inclusive() == (0, 0, 63, 31)


# --- channel access and derivation ------------------------------------------------------------

def test_channel_and_missing_channel_error_lists_present():
    img = ramp_image()
    assert torch.equal(img.channel("rgba.blue"), img.pixels[2])
    with pytest.raises(ChannelError, match="rgba.red"):
        img.channel("depth.Z")


def test_select_reorders_and_keeps_values():
    img = ramp_image()
    out = img.select(["rgba.alpha", "rgba.red"])
    assert out.channels == ("rgba.alpha", "rgba.red")
    assert torch.equal(out.pixels[0], img.pixels[3])
    assert torch.equal(out.pixels[1], img.pixels[0])
    assert out.bbox == img.bbox and out.format == img.format


def test_select_missing_raises_by_default():
    with pytest.raises(ChannelError):
        ramp_image().select(["rgba.red", "depth.Z"])


def test_select_missing_black_fills_zero():
    img = ramp_image(dtype=torch.float16)
    out = img.select(["depth.Z", "rgba.green"], missing="black")
    assert out.channels == ("depth.Z", "rgba.green")
    assert out.dtype == torch.float16
    assert torch.all(out.pixels[0] == 0)
    assert torch.equal(out.pixels[1], img.pixels[1])


def test_select_nothing_gives_empty_image():
    out = ramp_image().select([], missing="black")
    assert out.channels == () and out.pixels.shape == (0, 32, 64)


def test_with_channel_replaces_without_touching_original():
    img = ramp_image()
    before = img.pixels.clone()
    plane = torch.full((32, 64), 7.0)
    out = img.with_channel("rgba.green", plane)
    assert out.channels == img.channels
    assert torch.all(out.channel("rgba.green") == 7)
    assert torch.equal(out.channel("rgba.red"), img.channel("rgba.red"))
    assert torch.equal(img.pixels, before)


def test_with_channel_appends_and_converts_dtype():
    img = ramp_image(dtype=torch.float16)
    out = img.with_channel("depth.Z", torch.ones(32, 64, dtype=torch.float64))
    assert out.channels == chans.RGBA + ("depth.Z",)
    assert out.dtype == torch.float16
    assert torch.all(out.channel("depth.Z") == 1)


def test_crop_to_with_data_window_not_display_window():
    # data window (10,4)-(30,20) inside a 64x32 display window
    box = Box(10, 4, 30, 20)
    img = ramp_image(bbox=box)
    target = Box(0, 0, 64, 32)
    out = img.crop_to(target)
    assert out.bbox == target and out.pixels.shape == (4, 32, 64)
    expected = torch.zeros(4, 32, 64)
    expected[:, 4:20, 10:30] = img.pixels
    assert torch.equal(out.pixels, expected)
    # outside the old bbox is zero, inside pixel (x, y) keeps its value
    assert out.pixels[:, :4].abs().sum() == 0 and out.pixels[:, :, 30:].abs().sum() == 0
    assert out.pixels[1, 4 + 3, 10 + 5] == img.pixels[1, 3, 5]


def test_crop_to_partial_overlap_and_outside_display():
    img = ramp_image(bbox=Box(0, 0, 64, 32))
    target = Box(60, -2, 70, 3)  # extends right of and above the data window
    out = img.crop_to(target)
    assert out.pixels.shape == (4, 5, 10)
    for y in range(-2, 3):
        for x in range(60, 70):
            inside = 0 <= x < 64 and 0 <= y < 32
            want = img.pixels[:, y, x] if inside else torch.zeros(4)
            assert torch.equal(out.pixels[:, y + 2, x - 60], want)


def test_crop_to_disjoint_is_all_zero_and_same_box_is_identity():
    img = ramp_image(bbox=Box(0, 0, 8, 8))
    out = img.crop_to(Box(20, 20, 24, 22))
    assert out.pixels.shape == (4, 2, 4) and out.pixels.abs().sum() == 0
    assert img.crop_to(Box(0, 0, 8, 8)) is img


def test_to_half_keeps_half_and_values():
    img = ramp_image(channels=("rgba.red",), bbox=Box(0, 0, 8, 4))
    half = img.to(dtype=torch.float16)
    assert half.dtype == torch.float16
    assert torch.equal(half.pixels.float(), img.pixels)
    assert half.select(["rgba.red"]).dtype == torch.float16
    assert half.crop_to(Box(0, 0, 16, 16)).dtype == torch.float16
    assert half.to(device="cpu").dtype == torch.float16
    assert img.to(dtype=torch.float32) is img


def test_replace_validates():
    img = ramp_image()
    with pytest.raises(NodeGraphError):
        img.replace(bbox=Box(0, 0, 10, 10))


# --- channel naming ---------------------------------------------------------------------------

@pytest.mark.parametrize("file_name, nuke_name", [
    ("R", "rgba.red"), ("G", "rgba.green"), ("B", "rgba.blue"), ("A", "rgba.alpha"),
    ("Z", "depth.Z"),
    ("diffuse.R", "diffuse.red"), ("diffuse.A", "diffuse.alpha"),
    ("forward.u", "forward.u"), ("depth.Z", "depth.Z"),
    ("matte.alpha", "matte.alpha"),
    ("Y", "other.Y"), ("id", "other.id"),
    ("a.b.R", "a.b.red"),
])
def test_channel_name_mapping_both_ways(file_name, nuke_name):
    assert chans.from_file_name(file_name) == nuke_name
    assert chans.from_file_name(chans.to_file_name(nuke_name)) == nuke_name


@pytest.mark.parametrize("nuke_name, file_name", [
    ("rgba.red", "R"), ("rgba.alpha", "A"), ("depth.Z", "Z"), ("diffuse.red", "diffuse.R"),
    ("diffuse.blue", "diffuse.B"), ("forward.u", "forward.u"), ("other.Y", "Y"),
])
def test_to_file_name(nuke_name, file_name):
    assert chans.to_file_name(nuke_name) == file_name


def test_split_rejects_names_without_layer():
    assert chans.split("diffuse.red") == ("diffuse", "red")
    assert chans.split("a.b.c") == ("a.b", "c")
    for bad in ("red", ".red", "rgba.", ""):
        with pytest.raises(ChannelError):
            chans.split(bad)


_token = st.one_of(
    st.sampled_from(["R", "G", "B", "A", "Z", "u", "v", "X", "Y", "red", "alpha", "rgba", "depth", "other",
                     "diffuse", "forward"]),
    st.text(alphabet="abcdefghijkRGBAZxyz0123456789_", min_size=1, max_size=6),
)
file_names = st.lists(_token, min_size=1, max_size=3).map(".".join)


@given(file_names)
@example("other.Z")
@example("other.R")
@example("rgba.Z")
def test_round_trip_of_names_nodegraph_produces(file_name):
    nuke = chans.from_file_name(file_name)
    layer, comp = chans.split(nuke)  # always in layer.channel form
    assert layer and comp
    assert chans.from_file_name(chans.to_file_name(nuke)) == nuke


def test_other_layer_named_like_depth_round_trips():
    # a file channel "other.Z" must not come back as depth.Z
    nuke = chans.from_file_name("other.Z")
    assert chans.from_file_name(chans.to_file_name(nuke)) == nuke


# --- channel selections ---------------------------------------------------------------------

AVAIL = ("rgba.red", "rgba.green", "rgba.blue", "rgba.alpha", "depth.Z", "diffuse.red", "diffuse.green",
         "diffuse.blue", "forward.u", "forward.v")


def test_expand_shorthands_without_available():
    assert chans.expand("rgba") == chans.RGBA
    assert chans.expand("rgb") == chans.RGB
    assert chans.expand("alpha") == ("rgba.alpha",)
    assert chans.expand("depth") == ("depth.Z",)
    assert chans.expand("none") == ()


def test_expand_layers_channels_lists_and_all():
    assert chans.expand("diffuse", AVAIL) == ("diffuse.red", "diffuse.green", "diffuse.blue")
    assert chans.expand("forward,alpha", AVAIL) == ("forward.u", "forward.v", "rgba.alpha")
    assert chans.expand(["rgba.red", "depth.Z"], AVAIL) == ("rgba.red", "depth.Z")
    assert chans.expand("all", AVAIL) == AVAIL
    # duplicates collapse, first position wins
    assert chans.expand("rgba.alpha, rgba", AVAIL) == ("rgba.alpha", "rgba.red", "rgba.green", "rgba.blue")


def test_expand_unknown_layer_lists_present_layers():
    with pytest.raises(ChannelError) as info:
        chans.expand("specular", AVAIL)
    msg = str(info.value)
    assert "specular" in msg
    for layer in ("rgba", "depth", "diffuse", "forward"):
        assert layer in msg
    with pytest.raises(ChannelError):
        chans.expand("diffuse")


def test_layers_and_sort_key():
    assert chans.layers(AVAIL) == ["rgba", "depth", "diffuse", "forward"]
    shuffled = ["diffuse.blue", "rgba.alpha", "diffuse.red", "rgba.red", "depth.Z", "rgba.green"]
    assert sorted(shuffled, key=chans.sort_key) == [
        "rgba.red", "rgba.green", "rgba.alpha", "depth.Z", "diffuse.red", "diffuse.blue"]
