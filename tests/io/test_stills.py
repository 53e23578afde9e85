"""read_still / write_still: integer quantisation, windows, channel naming, checked through OIIO directly."""

from __future__ import annotations

import numpy as np
import OpenImageIO as oiio
import pytest
import torch

from nodegraph import channels as chans
from nodegraph.errors import ImageIOError
from nodegraph.image import Box, Format, Image
from nodegraph.io import probe, read_image, write_image
from nodegraph.io.stills import read_still, write_still


def oiio_pixels(path) -> tuple[np.ndarray, oiio.ImageSpec]:
    config = oiio.ImageSpec()
    config.attribute("oiio:UnassociatedAlpha", 1)  # raw stored values, no premultiplication
    inp = oiio.ImageInput.open(str(path), config)
    assert inp is not None, oiio.geterror()
    spec = inp.spec()
    arr = inp.read_image(0, 0, 0, spec.nchannels, spec.format)
    inp.close()
    return np.asarray(arr), spec


def ramp_image(c=4, w=37, h=23, box=None, display=None) -> Image:
    g = torch.Generator().manual_seed(1)
    box = box or Box(0, 0, w, h)
    pixels = torch.rand((c, box.height, box.width), generator=g) * 1.2 - 0.1  # some out of 0..1
    return Image(pixels, chans.RGBA[:c], box, Format(display or box))


@pytest.mark.parametrize("ext", ["png", "tif", "dpx"])
@pytest.mark.parametrize("bits, np_type", [("8", np.uint8), ("16", np.uint16)])
def test_integer_write_matches_quantisation(tmp_path, ext, bits, np_type):
    image = ramp_image()
    path = tmp_path / f"img.{ext}"
    write_still(path, image, datatype=bits)
    arr, spec = oiio_pixels(path)
    assert arr.dtype == np_type and spec.channelnames == ("R", "G", "B", "A")
    top = np.iinfo(np_type).max
    expected = np.round(np.clip(image.pixels.numpy().astype(np.float64), 0, 1) * top).astype(np_type)
    assert np.array_equal(np.moveaxis(arr, -1, 0), expected)
    back = read_still(path)
    assert back.channels == chans.RGBA and back.metadata["input/datatype"] == np.dtype(np_type).name
    assert torch.equal(back.pixels, torch.from_numpy((expected / float(top)).astype(np.float32)))


def test_jpeg_is_rgb_and_close(tmp_path):
    image = ramp_image(c=3)
    image = image.replace(pixels=torch.full_like(image.pixels, 0.5))
    path = tmp_path / "img.jpg"
    write_still(path, image, quality=95)
    back = read_still(path)
    arr, spec = oiio_pixels(path)
    assert spec.format == "uint8" and back.channels == chans.RGB
    assert torch.equal(back.pixels, torch.from_numpy(np.moveaxis(arr, -1, 0) / np.float32(255)))
    assert (back.pixels - 0.5).abs().max() < 3 / 255


def test_float_tiff_round_trip_exact(tmp_path):
    image = ramp_image()
    path = tmp_path / "f.tif"
    write_still(path, image, datatype="float")
    back = read_still(path)
    assert back.metadata["input/datatype"] == "float"
    assert torch.equal(back.pixels, image.pixels)


def test_dpx_keeps_data_and_display_window(tmp_path):
    image = ramp_image(c=3, box=Box(4, 6, 30, 20), display=Box(0, 0, 40, 30))
    path = tmp_path / "w.dpx"
    write_still(path, image, datatype="10")
    back = read_still(path)
    assert back.bbox == image.bbox and back.format.display == image.format.display
    assert back.metadata["input/bitsperchannel"] == 10
    expected = torch.round(image.pixels.clamp(0, 1) * 1023) / 1023
    assert torch.allclose(back.pixels, expected, atol=1e-6)


def test_png_without_data_window_gets_display_window(tmp_path):
    image = ramp_image(c=4, box=Box(4, 6, 30, 20), display=Box(0, 0, 40, 30))
    path = tmp_path / "w.png"
    write_still(path, image)
    back = read_still(path)
    assert back.bbox == Box(0, 0, 40, 30)
    assert torch.all(back.pixels[:, :6] == 0)  # outside the old data window is black


def test_greyscale_feeds_rgb(tmp_path):
    path = tmp_path / "grey.png"
    spec = oiio.ImageSpec(8, 4, 1, oiio.UINT8)
    out = oiio.ImageOutput.create(str(path))
    out.open(str(path), spec)
    out.write_image(np.arange(32, dtype=np.uint8).reshape(4, 8, 1) * 8)
    out.close()
    image = read_still(path)
    assert image.channels == chans.RGB
    assert torch.equal(image.pixels[0], image.pixels[2])
    assert image.pixels[0, 3, 7].item() == pytest.approx(31 * 8 / 255)


def test_dispatch_and_probe(tmp_path):
    image = ramp_image(c=3)
    path = tmp_path / "d.tif"
    write_image(path, image, datatype="16")
    assert read_image(path).channels == chans.RGB
    info = probe(path)
    assert info["format"] == "tiff" and [c["type"] for c in info["channels"]] == ["uint16"] * 3
    assert read_image(path, channels="rgba.green").channels == ("rgba.green",)


def test_half_read_dtype(tmp_path):
    path = tmp_path / "h.tif"
    write_still(path, ramp_image(), datatype="16")
    assert read_still(path, dtype=torch.float16).dtype == torch.float16


def test_bad_datatype_and_extension(tmp_path):
    with pytest.raises(ImageIOError, match="valid"):
        write_still(tmp_path / "x.png", ramp_image(), datatype="7")
    with pytest.raises(ImageIOError, match="no image writer"):
        write_still(tmp_path / "x.unknownext", ramp_image())
    assert not list(tmp_path.iterdir())
