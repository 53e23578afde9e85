"""read_exr / write_exr against OpenImageIO as the independent reader, on the OpenEXR sample images."""

from __future__ import annotations

import os

from pathlib import Path

import numpy as np
import OpenImageIO as oiio
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from nodegraph import channels as chans
from nodegraph.errors import ImageIOError, MissingFrameError
from nodegraph.image import Box, Format, Image
from nodegraph.io.exr import COMPRESSIONS, exr_info, read_exr, write_exr

DATA = Path(os.environ["NODEGRAPH_TEST_DATA"])  # found by tests/conftest.py


def data_file(rel: str) -> Path:
    p = DATA / rel
    assert p.exists(), f"sample image {p} is missing (see tests/conftest.py)"
    return p


def oiio_read(path, subimage: int = 0, fmt: str | None = None):
    """Pixels [H, W, C] in the file's own type (or ``fmt``), the spec, read independently by OIIO."""
    inp = oiio.ImageInput.open(str(path))
    assert inp is not None, oiio.geterror()
    try:
        assert inp.seek_subimage(subimage, 0)
        spec = inp.spec()
        arr = inp.read_image(subimage, 0, 0, spec.nchannels, fmt or spec.format)
        assert arr is not None, inp.geterror()
        if arr.ndim == 2:
            arr = arr[:, :, None]
        return np.asarray(arr), spec
    finally:
        inp.close()


def oiio_subimage_names(path) -> list[str]:
    inp = oiio.ImageInput.open(str(path))
    names = []
    i = 0
    while inp.seek_subimage(i, 0):
        names.append(inp.spec().get_string_attribute("name"))
        i += 1
    inp.close()
    return names


def assert_matches_oiio(image: Image, path, subimage: int = 0) -> None:
    """Every channel equals OIIO's half/float read bit for bit; windows agree."""
    arr, spec = oiio_read(path, subimage)
    assert tuple(image.bbox) == (spec.x, spec.y, spec.x + spec.width, spec.y + spec.height)
    display = image.format.display
    assert tuple(display) == (spec.full_x, spec.full_y, spec.full_x + spec.full_width, spec.full_y + spec.full_height)
    names = [chans.from_file_name(n) for n in spec.channelnames]
    assert sorted(names) == sorted(image.channels)
    for i, name in enumerate(names):
        ours = image.channel(name).numpy()
        theirs = arr[..., i].astype(ours.dtype)
        assert np.array_equal(ours.view(np.uint16 if ours.dtype == np.float16 else np.uint32),
                              theirs.view(np.uint16 if ours.dtype == np.float16 else np.uint32)), name


@pytest.mark.parametrize("rel", ["DisplayWindow/t01.exr", "DisplayWindow/t02.exr", "DisplayWindow/t03.exr",
                                 "DisplayWindow/t04.exr", "ScanLines/Carrots.exr", "Tiles/GoldenGate.exr",
                                 "TestImages/BrightRingsNanInf.exr", "TestImages/AllHalfValues.exr"])
def test_half_read_matches_oiio_bitwise(rel):
    path = data_file(rel)
    image = read_exr(path, dtype=torch.float16)
    assert image.dtype == torch.float16
    assert_matches_oiio(image, path)
    assert image.metadata["input/datatype"] == "half"


def test_float32_default_is_exact_widening():
    path = data_file("TestImages/AllHalfValues.exr")
    half = read_exr(path, dtype=torch.float16).pixels.numpy()
    full = read_exr(path).pixels
    assert full.dtype == torch.float32
    widened = half.astype(np.float32)
    assert np.array_equal(full.numpy().view(np.uint32), widened.view(np.uint32))


def test_display_window_differs_from_data_window():
    info = {rel: read_exr(data_file(f"DisplayWindow/{rel}")) for rel in ("t01.exr", "t02.exr", "t03.exr")}
    assert tuple(info["t01.exr"].format.display) == tuple(info["t01.exr"].bbox) == (0, 0, 400, 300)
    assert tuple(info["t02.exr"].format.display) == (1, 1, 401, 301)
    assert info["t03.exr"].format.width == 370 and info["t03.exr"].bbox.width == 400


def test_nan_inf_positions_preserved():
    path = data_file("TestImages/BrightRingsNanInf.exr")
    image = read_exr(path)
    arr, spec = oiio_read(path, fmt="float")
    for i, name in enumerate(spec.channelnames):
        ours = image.channel(chans.from_file_name(name)).numpy()
        assert np.array_equal(np.isnan(ours), np.isnan(arr[..., i]))
        assert np.array_equal(np.isinf(ours) & (ours > 0), np.isposinf(arr[..., i]))
    assert np.isnan(image.pixels.numpy()).any() and np.isinf(image.pixels.numpy()).any()


def test_all_half_values_round_trip_bitwise(tmp_path):
    src = data_file("TestImages/AllHalfValues.exr")
    image = read_exr(src)  # float32: NaN payloads must survive half -> float -> half
    out = tmp_path / "all.exr"
    write_exr(out, image, datatype="half", compression="piz")
    original = read_exr(src, dtype=torch.float16).pixels.numpy().view(np.uint16)
    again = read_exr(out, dtype=torch.float16).pixels.numpy().view(np.uint16)
    assert np.array_equal(original, again)


def test_multipart_by_name_and_index():
    path = data_file("Beachball/multipart.0001.exr")
    names = oiio_subimage_names(path)
    assert len(names) == 10
    first = read_exr(path, dtype=torch.float16)
    assert first.metadata["exr/part"] == names[0]
    for index in (1, 4, 7):
        by_name = read_exr(path, part=names[index], dtype=torch.float16)
        assert_matches_oiio(by_name, path, subimage=index)
        by_index = read_exr(path, part=index, dtype=torch.float16)
        assert torch.equal(by_name.pixels, by_index.pixels) and by_name.channels == by_index.channels


def test_multipart_unknown_part_lists_names():
    path = data_file("Beachball/multipart.0001.exr")
    with pytest.raises(ImageIOError) as err:
        read_exr(path, part="nope")
    assert "rgba_left" in str(err.value) and str(path) in str(err.value)


def test_multipart_merge_prefixes_clashing_channels():
    path = data_file("Beachball/multipart.0001.exr")
    merged = read_exr(path, part="*")
    assert "rgba_left.red" in merged.channels and "rgba_right.red" in merged.channels
    assert "rgba.red" not in merged.channels
    assert "disparityL.x" in merged.channels  # unique names keep their own layer
    left = read_exr(path, part="rgba_left")
    inter = left.bbox
    crop = merged.crop_to(inter)
    assert torch.equal(crop.channel("rgba_left.red"), left.channel("rgba.red"))
    assert merged.bbox == merged.bbox.union(left.bbox)


def test_singlepart_layers_are_mapped():
    # a multiView file (right, left): the default view's channels only, the other view's apart
    image = read_exr(data_file("Beachball/singlepart.0001.exr"))
    assert image.channels[:4] == chans.RGBA
    assert "depth.Z" in image.channels and not any(c.startswith("left.") for c in image.channels)
    everything = read_exr(data_file("Beachball/singlepart.0001.exr"), part="*")
    assert "left.red" in everything.channels and "rgba.red" in everything.channels


def test_channel_selection():
    image = read_exr(data_file("Beachball/singlepart.0001.exr"), channels="rgba,depth")
    assert image.channels == (*chans.RGBA, "depth.Z")


def test_tiled_file_info():
    info = exr_info(data_file("Tiles/GoldenGate.exr"))
    part = info["parts"][0]
    assert part["storage"] == "tiled" and part["tiles"]["size"] == (128, 128)
    assert {c["type"] for c in part["channels"]} == {"half"}
    assert part["attributes"]["exr/owner"].startswith("Copyright")


def _image(c=4, box=Box(3, 5, 40, 30), display=Box(0, 0, 48, 36), seed=0, dtype=torch.float32):
    """Smooth ramps (lossy codecs stay close) plus fine noise (lossless codecs must keep it)."""
    g = torch.Generator().manual_seed(seed)
    yy, xx = torch.meshgrid(torch.linspace(0, 1, box.height), torch.linspace(0, 1, box.width), indexing="ij")
    ramps = torch.stack([(xx * (i + 1) + yy * (c - i)) / (c + 1) for i in range(c)])
    pixels = (ramps + torch.rand((c, box.height, box.width), generator=g) * 1e-3).to(dtype)
    names = [*chans.RGBA, "depth.Z", "diffuse.red", "forward.u"][:c]
    return Image(pixels, tuple(names), box, Format(display, 2.0), {"exr/owner": "me", "exr/comments": "x"})


@pytest.mark.parametrize("compression", sorted(COMPRESSIONS))
@pytest.mark.parametrize("datatype", ["half", "float"])
def test_round_trip_every_compression(tmp_path, compression, datatype):
    image = _image(c=6)
    out = tmp_path / f"{compression}.exr"
    write_exr(out, image, datatype=datatype, compression=compression)
    back = read_exr(out)
    expected = image.pixels.half().float() if datatype == "half" else image.pixels
    lossy = compression in {"b44", "b44a", "dwaa", "dwab"} or (compression == "pxr24" and datatype == "float")
    if lossy:
        assert (back.pixels - expected).abs().mean() < 0.01
    else:
        assert torch.equal(back.pixels, expected)
    assert back.channels == image.channels and back.bbox == image.bbox
    assert back.format.display == image.format.display and back.format.pixel_aspect == 2.0
    assert back.metadata["exr/owner"] == "me"
    assert exr_info(out)["parts"][0]["compression"] == compression
    assert_matches_oiio(read_exr(out, dtype=torch.float16 if datatype == "half" else torch.float32), out)


def test_tiled_write_round_trip(tmp_path):
    image = _image()
    out = tmp_path / "tiled.exr"
    write_exr(out, image, tiled=True, tile_size=(16, 8), datatype="float")
    assert exr_info(out)["parts"][0]["storage"] == "tiled"
    assert torch.equal(read_exr(out).pixels, image.pixels)


def test_uint_channel_round_trip(tmp_path):
    ids = torch.arange(0, 2**32, 2**32 // 96, dtype=torch.float64)[:96].reshape(1, 8, 12)
    image = Image(ids, ("other.id",), Box(0, 0, 12, 8), Format.of_size(12, 8))
    out = tmp_path / "ids.exr"
    write_exr(out, image, datatype={"other.id": "uint"})
    back = read_exr(out, dtype=torch.float64)
    assert back.channels == ("other.id",) and torch.equal(back.pixels, ids)
    assert back.metadata["input/datatype"] == "uint32"
    assert exr_info(out)["parts"][0]["channels"][0]["type"] == "uint32"


def test_metadata_round_trip(tmp_path):
    src = read_exr(data_file("Tiles/GoldenGate.exr"))
    out = tmp_path / "gg.exr"
    write_exr(out, src, metadata={"nodegraph/graph": "comp.json", "frame": 1001, "matrix": np.eye(4).tolist()})
    back = read_exr(out)
    for key, value in src.metadata.items():
        if key.startswith("exr/"):
            assert back.metadata[key] == value, key
    assert back.metadata["exr/nodegraph/graph"] == "comp.json"
    assert back.metadata["exr/frame"] == 1001
    assert back.metadata["exr/matrix"] == np.eye(4).tolist()


def test_bad_compression_and_datatype(tmp_path):
    with pytest.raises(ImageIOError, match="dwab"):
        write_exr(tmp_path / "x.exr", _image(), compression="zippy")
    with pytest.raises(ImageIOError, match="half"):
        write_exr(tmp_path / "x.exr", _image(), datatype="double")
    assert not list(tmp_path.iterdir())


def test_missing_file():
    with pytest.raises(MissingFrameError):
        read_exr("/nonexistent/frame.0001.exr")


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(c=st.integers(1, 5), x0=st.integers(-20, 20), y0=st.integers(-20, 20), w=st.integers(1, 17),
       h=st.integers(1, 17), datatype=st.sampled_from(["half", "float"]), seed=st.integers(0, 2**16))
def test_random_images_round_trip(tmp_path, c, x0, y0, w, h, datatype, seed):
    box = Box(x0, y0, x0 + w, y0 + h)
    g = torch.Generator().manual_seed(seed)
    pixels = torch.randn((c, h, w), generator=g) * 100
    image = Image(pixels, tuple([*chans.RGBA, "depth.Z"][:c]), box, Format.of_size(32, 24))
    out = tmp_path / "h.exr"
    write_exr(out, image, datatype=datatype)
    back = read_exr(out)
    assert back.bbox == box and back.channels == image.channels
    assert torch.equal(back.pixels, pixels.half().float() if datatype == "half" else pixels)


def test_has_nan_matches_numpy_on_every_half_value() -> None:
    from nodegraph.io.exr import has_nan

    every = np.arange(65536, dtype=np.uint32).astype(np.uint16).view(np.float16)
    for value in every[np.isnan(every)][::97]:
        assert has_nan(np.array([1.0, value, 2.0], dtype=np.float16))
    assert not has_nan(every[~np.isnan(every)])
    assert has_nan(np.array([0.0, np.nan], dtype=np.float32)) and not has_nan(np.array([np.inf], dtype=np.float32))
