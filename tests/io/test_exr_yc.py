"""Luminance/chroma EXRs read as RGB: files built here with the OpenEXR bindings.

Oracles: the documented formulas (Y = yw . RGB with yw from the chromaticities, RY = (R-Y)/Y,
BY = (B-Y)/Y) applied in float64 to known RGB, published luminance weights, and, where a C++
compiler and OpenEXR's headers are installed, OpenEXR's own ``RgbaInputFile`` (a small helper
compiled here) compared bit for bit. The Python bindings expose no RGBA conversion.
"""

from __future__ import annotations

import shutil
import subprocess

import numpy as np
import OpenEXR
import pytest
import torch

from nodegraph.io.exr import read_exr
from nodegraph.io.exr_yc import luminance_weights

ACES_AP0 = (0.7347, 0.2653, 0.0, 1.0, 0.0001, -0.077, 0.32168, 0.33767)
REC709 = (0.64, 0.33, 0.30, 0.60, 0.15, 0.06, 0.3127, 0.3290)


def stored(samples: np.ndarray, full: tuple[int, int]) -> np.ndarray:
    """An array the bindings write as the subsampled channel ``samples``.

    The bindings (3.5) insist every channel has the image's shape and write the first
    ``samples.size`` values of it; the read-back check in :func:`write_exr_channels` fails the
    test if a later version behaves differently.
    """
    out = np.zeros(full, samples.dtype)
    out.flat[: samples.size] = samples.ravel()
    return out


def write_exr_channels(path, channels: dict[str, tuple[np.ndarray, int]], header: dict | None = None,
                       origin: tuple[int, int] = (0, 0)) -> None:
    """Write ``{name: (stored samples, sampling)}`` as one scanline part; check the samples."""
    full = next(a.shape for a, s in channels.values() if s == 1)
    x0, y0 = origin
    h = {"compression": OpenEXR.ZIP_COMPRESSION, "type": OpenEXR.scanlineimage,
         "dataWindow": (np.array([x0, y0], np.int32), np.array([x0 + full[1] - 1, y0 + full[0] - 1], np.int32)),
         "displayWindow": (np.array([0, 0], np.int32), np.array([x0 + full[1] - 1, y0 + full[0] - 1], np.int32))}
    h.update(header or {})
    chans = {n: OpenEXR.Channel(stored(a, full), s, s) if s != 1 else OpenEXR.Channel(a)
             for n, (a, s) in channels.items()}
    OpenEXR.File(h, chans).write(str(path))
    back = OpenEXR.File(str(path), separate_channels=True).parts[0].channels
    for n, (a, _) in channels.items():
        assert np.array_equal(np.asarray(back[n].pixels), a), f"bindings stored {n} differently"


def to_yc(rgb: np.ndarray, chromaticities) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The documented forward formulas in float64: Y, RY, BY of RGB ``[3, H, W]``."""
    yw = np.asarray(luminance_weights(chromaticities), np.float64)
    y = np.tensordot(yw, rgb, axes=1)
    return y, (rgb[0] - y) / y, (rgb[2] - y) / y


def test_luminance_weights_match_published_values():
    assert np.allclose(luminance_weights(None), (0.2126, 0.7152, 0.0722), atol=2e-4)  # Rec. 709 / sRGB
    assert np.allclose(luminance_weights(ACES_AP0), (0.3439664498, 0.7281660966, -0.0721325464), atol=1e-6)


@pytest.mark.parametrize("chroma", [None, REC709, ACES_AP0])
def test_full_resolution_chroma_gives_back_rgb(tmp_path, chroma):
    rng = np.random.default_rng(1)
    rgb = rng.uniform(0.05, 2.0, (3, 6, 10))
    y, ry, by = to_yc(rgb, chroma)
    path = tmp_path / "yc.exr"
    write_exr_channels(path, {"Y": (y.astype(np.float32), 1), "RY": (ry.astype(np.float32), 1),
                              "BY": (by.astype(np.float32), 1)},
                       {"chromaticities": chroma} if chroma else None)
    image = read_exr(path)
    assert image.channels == ("rgba.red", "rgba.green", "rgba.blue")
    # half intermediates (as OpenEXR's RGBA interface): a few half ulps
    assert np.allclose(image.pixels.numpy(), rgb, rtol=4e-3, atol=1e-4)


def test_subsampled_chroma_of_flat_colour_regions(tmp_path):
    """Constant chroma reconstructs to itself (the filter's weights sum to 1), so a shaded image
    of one colour per half reads back as that colour times the shading."""
    h, w = 16, 64
    left = (np.arange(w) < 32)[None, None, :]
    colour = np.where(left, np.array([0.6, 0.3, 0.1])[:, None, None], np.array([0.1, 0.4, 0.8])[:, None, None])
    shade = np.linspace(0.2, 3.0, h)[None, :, None]
    rgb = colour * shade
    y, ry, by = to_yc(rgb, ACES_AP0)
    path = tmp_path / "sub.exr"
    write_exr_channels(path, {"Y": (y.astype(np.float16), 1), "RY": (ry[::2, ::2].astype(np.float16), 2),
                              "BY": (by[::2, ::2].astype(np.float16), 2),
                              "A": (np.full((h, w), 0.5, np.float16), 1)}, {"chromaticities": ACES_AP0})
    image = read_exr(path)
    assert image.channels == ("rgba.red", "rgba.green", "rgba.blue", "rgba.alpha")
    assert image.metadata["input/datatype"] == "half"
    ours = image.pixels.numpy()
    # away from the colour edge (filter reach: 13 pixels) the colour is exact up to half rounding
    assert np.allclose(ours[:3, :, :16], rgb[:, :, :16], rtol=5e-3)
    assert np.allclose(ours[:3, :, -16:], rgb[:, :, -16:], rtol=5e-3)
    assert not np.allclose(ours[:3, :, 28:36], rgb[:, :, 28:36], rtol=5e-3)  # the edge is filtered
    assert np.all(ours[3] == 0.5)
    assert np.all(ours[:3] >= 0)  # ringing at the edge is desaturated, never negative


def test_zero_chroma_is_exact_grey(tmp_path):
    y = np.random.default_rng(2).uniform(0, 4, (8, 8)).astype(np.float16)
    zero = np.zeros((4, 4), np.float16)
    path = tmp_path / "grey.exr"
    write_exr_channels(path, {"Y": (y, 1), "RY": (zero, 2), "BY": (zero, 2)})
    image = read_exr(path, dtype=torch.float16)
    for c in range(3):
        assert np.array_equal(image.pixels[c].numpy().view(np.uint16), y.view(np.uint16))


@pytest.mark.parametrize("dtype", [np.float16, np.float32])
def test_luminance_only_is_grey_at_file_precision(tmp_path, dtype):
    y = np.random.default_rng(3).uniform(0, 4, (5, 7)).astype(dtype)
    path = tmp_path / "y.exr"
    write_exr_channels(path, {"Y": (y, 1)})
    image = read_exr(path, dtype=torch.float32)
    assert image.channels == ("rgba.red", "rgba.green", "rgba.blue")
    assert image.metadata["input/datatype"] == ("half" if dtype == np.float16 else "float")
    for c in range(3):
        assert np.array_equal(image.pixels[c].numpy(), y.astype(np.float32))


def test_layers_convert_but_a_layer_y_alone_does_not(tmp_path):
    rng = np.random.default_rng(4)
    rgb = rng.uniform(0.1, 1.0, (3, 4, 4))
    y, ry, by = to_yc(rgb, None)
    p = rng.uniform(-1, 1, (3, 4, 4)).astype(np.float32)
    path = tmp_path / "layers.exr"
    write_exr_channels(path, {"R": (rgb[0].astype(np.float32), 1), "G": (rgb[1].astype(np.float32), 1),
                              "B": (rgb[2].astype(np.float32), 1),
                              "diffuse.Y": (y.astype(np.float32), 1), "diffuse.RY": (ry.astype(np.float32), 1),
                              "diffuse.BY": (by.astype(np.float32), 1),
                              "P.X": (p[0], 1), "P.Y": (p[1], 1), "P.Z": (p[2], 1)})
    image = read_exr(path)
    assert {"diffuse.red", "diffuse.green", "diffuse.blue", "P.X", "P.Y", "P.Z"} <= set(image.channels)
    assert not any(c.endswith((".RY", ".BY")) for c in image.channels)
    assert np.array_equal(image.channel("P.Y").numpy(), p[1])
    for i, comp in enumerate(("red", "green", "blue")):
        assert np.allclose(image.channel(f"diffuse.{comp}").numpy(), rgb[i], rtol=4e-3)


# --- OpenEXR's own RgbaInputFile, where it can be built ----------------------------------------

HELPER = r"""
#include <ImfRgbaFile.h>
#include <ImfArray.h>
#include <cstdio>
#include <cstdint>
int main(int argc, char** argv) {
    Imf::RgbaInputFile in(argv[1]);
    Imath::Box2i dw = in.dataWindow();
    int w = dw.max.x - dw.min.x + 1, h = dw.max.y - dw.min.y + 1;
    Imf::Array2D<Imf::Rgba> px(h, w);
    in.setFrameBuffer(&px[0][0] - dw.min.x - dw.min.y * w, 1, w);
    in.readPixels(dw.min.y, dw.max.y);
    FILE* out = std::fopen(argv[2], "wb");
    for (int y = 0; y < h; ++y)
        for (int x = 0; x < w; ++x) {
            uint16_t v[4] = {px[y][x].r.bits(), px[y][x].g.bits(), px[y][x].b.bits(), px[y][x].a.bits()};
            std::fwrite(v, 2, 4, out);
        }
    return std::fclose(out);
}
"""


@pytest.fixture(scope="module")
def rgba_input_file(tmp_path_factory):
    """Path of a program that reads an EXR through OpenEXR's RgbaInputFile and dumps RGBA halves."""
    if not (shutil.which("g++") and shutil.which("pkg-config")):
        pytest.skip("needs g++ and pkg-config (with OpenEXR's headers: libopenexr-dev)")
    flags = subprocess.run(["pkg-config", "--cflags", "--libs", "OpenEXR"], capture_output=True, text=True)
    if flags.returncode:
        pytest.skip("OpenEXR's C++ headers are not installed (libopenexr-dev)")
    folder = tmp_path_factory.mktemp("rgba")
    (folder / "dump.cpp").write_text(HELPER)
    subprocess.run(["g++", "-O1", "-o", str(folder / "dump"), str(folder / "dump.cpp"), *flags.stdout.split()],
                   check=True)
    return folder / "dump"


@pytest.mark.parametrize("size,origin,chroma,spread,seed", [
    ((8, 12), (0, 0), None, 0.3, 0),
    ((40, 60), (0, 0), ACES_AP0, 0.3, 1),
    ((64, 64), (0, 0), REC709, 2.0, 2),      # strong chroma: ringing, saturation fix
    ((2, 2), (0, 0), None, 0.5, 3),
    ((30, 4), (0, 0), None, 1.5, 4),
    ((20, 30), (4, -6), None, 1.0, 5),       # data window away from the origin
])
def test_matches_openexr_rgba_interface_bit_for_bit(tmp_path, rgba_input_file, size, origin, chroma, spread, seed):
    h, w = size
    rng = np.random.default_rng(seed)
    y = rng.uniform(0, 2, (h, w)).astype(np.float16)
    ry = rng.uniform(-spread, spread, (h // 2, w // 2)).astype(np.float16)
    by = rng.uniform(-spread, spread, (h // 2, w // 2)).astype(np.float16)
    ry[0, 0] = by[0, 0] = 0
    path = tmp_path / "yc.exr"
    write_exr_channels(path, {"Y": (y, 1), "RY": (ry, 2), "BY": (by, 2), "A": (np.full((h, w), 0.25, np.float16), 1)},
                       {"chromaticities": chroma} if chroma else None, origin=origin)
    subprocess.run([str(rgba_input_file), str(path), str(tmp_path / "ref.raw")], check=True)
    ref = np.fromfile(tmp_path / "ref.raw", np.uint16).reshape(h, w, 4)
    ours = read_exr(path, dtype=torch.float16).pixels.numpy().view(np.uint16)
    for c in range(4):
        assert np.array_equal(ours[c], ref[..., c]), f"channel {c}: {np.count_nonzero(ours[c] != ref[..., c])} differ"
