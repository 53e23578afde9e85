"""Copy against OpenImageIO (crop, channels, channel_append) on real multi-layer EXRs with different
data windows, and against a per-pixel reference written here for random copies, windows and mixes."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import OpenImageIO as oiio
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import nodegraph as ng
from nodegraph import Box, Format, Image, KnobError
from nodegraph import channels as chans
from nodegraph.node import Knobs, Node
from nodegraph.nodes.copy import Copy
from nodegraph.testing import compute_node

DATA = Path(os.environ["NODEGRAPH_TEST_DATA"])  # found by tests/conftest.py
BEACH = DATA / "Beachball"
RGBA = chans.RGBA
FMT = Format.of_size(16, 12)


def copy(B: Image, A: Image, mask: Image | None = None, **knobs) -> Image:
    return compute_node(Copy("Copy1", **knobs), B=B, A=A, mask=mask)


def image(channels, box=(0, 0, 16, 12), seed=0) -> Image:
    box = Box(*box)
    g = torch.Generator().manual_seed(seed)
    return Image(torch.rand((len(channels), box.height, box.width), generator=g) * 4 - 1, tuple(channels), box, FMT)


# --- OpenImageIO on real HDR images ---------------------------------------------------------------

def _read(name: str):
    assert (BEACH / name).exists(), f"sample images missing under {BEACH} (see tests/conftest.py)"
    return oiio.ImageBuf(str(BEACH / name))


def _to_image(buf, names=None) -> Image:
    s = buf.spec()
    px = np.asarray(buf.get_pixels(oiio.FLOAT), dtype=np.float32)  # [H, W, C]
    fmt = Format(Box(s.full_x, s.full_y, s.full_x + s.full_width, s.full_y + s.full_height))
    names = names or tuple(chans.from_file_name(n) for n in s.channelnames)
    return Image(torch.from_numpy(px.transpose(2, 0, 1).copy()), names, Box(s.x, s.y, s.x + s.width, s.y + s.height),
                 fmt)


@pytest.fixture(scope="module")
def beach():
    # real HDR pixels, cut to overlapping windows of their own (fast, and still different windows)
    b = oiio.ImageBufAlgo.crop(_read("singlepart.0001.exr"), oiio.ROI(700, 1100, 300, 640))
    a = oiio.ImageBufAlgo.crop(_read("singlepart.0002.exr"), oiio.ROI(800, 1250, 400, 760))
    return b, a, _to_image(b), _to_image(a)


def _same(result: Image, buf, names) -> None:
    want = _to_image(buf, tuple(names))
    assert result.bbox == want.bbox
    diff = (result.select(names).pixels - want.pixels).abs().max().item()
    assert diff <= 1e-5, diff


def _roi(mode, a, b):
    return {"B": b.roi, "A": a.roi, "union": oiio.union(a.roi, b.roi),
            "intersection": oiio.intersection(a.roi, b.roi)}[mode]


@pytest.mark.parametrize("mode", ["B", "A", "union", "intersection"])
def test_default_copies_alpha_of_a_into_b(beach, mode):
    b, a, img_b, img_a = beach
    assert img_a.bbox != img_b.bbox
    out = copy(img_b, img_a, bbox=mode)
    roi = _roi(mode, a, b)
    bb, aa = oiio.ImageBufAlgo.crop(b, roi), oiio.ImageBufAlgo.crop(a, roi)
    want = oiio.ImageBufAlgo.channel_append(oiio.ImageBufAlgo.channels(bb, ("R", "G", "B")),
                                            oiio.ImageBufAlgo.channels(aa, ("A",)))
    _same(out, want, RGBA)
    assert out.channels == img_b.channels and out.format == img_b.format
    rest = [c for c in img_b.channels if c not in RGBA]
    _same(out, oiio.ImageBufAlgo.channels(bb, tuple(chans.to_file_name(c) for c in rest)), rest)


def test_four_copies_and_a_layer_copy(beach):
    b, a, img_b, img_a = beach
    out = copy(img_b, img_a, from0="depth.Z", to0="rgba.red", from1="rgba.red", to1="depth.Z",
               from2="left.alpha", to2="extra.mask", from3="disparityR.y", to3="rgba.alpha",
               channels="disparityL", bbox="union")
    roi = _roi("union", a, b)
    bb, aa = oiio.ImageBufAlgo.crop(b, roi), oiio.ImageBufAlgo.crop(a, roi)
    want = oiio.ImageBufAlgo.channel_append(
        oiio.ImageBufAlgo.channels(aa, ("Z", "R", "left.A", "disparityR.y", "disparityL.x", "disparityL.y")),
        oiio.ImageBufAlgo.channels(bb, ("G", "B", "left.R")))
    _same(out, want, ("rgba.red", "depth.Z", "extra.mask", "rgba.alpha", "disparityL.x", "disparityL.y",
                      "rgba.green", "rgba.blue", "left.red"))
    assert out.channels == img_b.channels + ("extra.mask",)


def test_layer_copy_all_is_every_channel_of_a(beach):
    _, _, img_b, img_a = beach
    out = copy(img_b, img_a, from0="none", channels="all")
    A = img_a.crop_to(img_b.bbox)
    assert torch.equal(out.select(img_a.channels).pixels, A.pixels)


# --- a per-pixel reference for random copies ----------------------------------------------------------

def ref_value(img: Image | None, channel: str, x: int, y: int) -> float:
    if img is None or channel not in img.channels:
        return 0.0
    b = img.bbox
    if not (b.x0 <= x < b.x1 and b.y0 <= y < b.y1):
        return 0.0
    return float(img.pixels[img.channels.index(channel), y - b.y0, x - b.x0])


def ref_copy(B: Image, A: Image, mask: Image | None, k: dict) -> dict:
    box = {"B": B.bbox, "A": A.bbox, "union": A.bbox.union(B.bbox),
           "intersection": A.bbox.intersect(B.bbox)}[k.get("bbox", "B")]
    pairs = {}
    for i in range(4):
        default = "rgba.alpha" if i == 0 else "none"
        src, dst = k.get(f"from{i}", default), k.get(f"to{i}", default)
        if src != "none" and dst != "none":
            pairs[dst] = src
    layer = k.get("channels", "none")
    for c in (A.channels if layer == "all" else [c for c in A.channels + B.channels if c.rpartition(".")[0] == layer]):
        pairs[c] = c
    mix = k.get("mix", 1.0)
    out = {"box": box}
    for c in dict.fromkeys(B.channels + tuple(pairs)):
        plane = np.zeros((box.height, box.width))
        for y in range(box.y0, box.y1):
            for x in range(box.x0, box.x1):
                b = ref_value(B, c, x, y)
                if c in pairs:
                    w = mix
                    if mask is not None:
                        m = ref_value(mask, k.get("maskChannelInput", "rgba.alpha"), x, y)
                        w *= (1 - m) if k.get("invert_mask", False) else m
                    b = b + (ref_value(A, pairs[c], x, y) - b) * w
                plane[y - box.y0, x - box.x0] = b
        out[c] = plane
    return out


B_CHANNELS = RGBA + ("depth.Z", "diffuse.red", "diffuse.green")
A_CHANNELS = ("rgba.red", "rgba.alpha", "diffuse.red", "other.x", "depth.Z")
ALL = sorted(set(B_CHANNELS + A_CHANNELS + ("nope.q",)))
windows = st.tuples(st.integers(-3, 6), st.integers(-3, 6), st.integers(1, 8), st.integers(1, 8)).map(
    lambda t: (t[0], t[1], t[0] + t[2], t[1] + t[3]))
channel_or_none = st.sampled_from(ALL + ["none"])


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(wb=windows, wa=windows, wm=windows, use_mask=st.booleans(),
       knobs=st.fixed_dictionaries({}, optional={
           **{f"{side}{i}": channel_or_none for side in ("from", "to") for i in range(4)},
           "channels": st.sampled_from(["none", "all", "diffuse", "depth", "other"]),
           "bbox": st.sampled_from(["B", "A", "union", "intersection"]),
           "mix": st.sampled_from([0.0, 0.25, 1.0]),
           "maskChannelInput": st.sampled_from(["rgba.alpha", "rgba.red", "nope.q"]),
           "invert_mask": st.booleans()}))
def test_random_copies_against_reference(wb, wa, wm, use_mask, knobs):
    B, A = image(B_CHANNELS, wb, seed=1), image(A_CHANNELS, wa, seed=2)
    mask = image(("rgba.red", "rgba.alpha"), wm, seed=3).replace(
        pixels=torch.rand((2, wm[3] - wm[1], wm[2] - wm[0]), generator=torch.Generator().manual_seed(4))) \
        if use_mask else None
    out = copy(B, A, mask, **knobs)
    want = ref_copy(B, A, mask, knobs)
    box = want.pop("box")
    assert out.bbox == box or (out is B and box == B.bbox)
    assert set(out.channels) == set(want) and out.channels[:len(B.channels)] == B.channels
    for c, plane in want.items():
        np.testing.assert_allclose(out.channel(c).numpy(), plane, atol=1e-6, err_msg=c)


# --- each knob, in a graph; errors -------------------------------------------------------------------

class _CopyPlate(Node):
    """Test source: emits ``IMAGES[key]``."""

    type_name = "_TestCopyPlate"
    IMAGES: dict[str, Image] = {}

    class Knobs(Knobs):
        key: str = ""
        """Which image."""

    def compute(self, ctx):
        return self.IMAGES[self.knobs.key]


def test_a_is_pulled_only_when_something_reads_it():
    _CopyPlate.IMAGES.update(b=image(B_CHANNELS, (0, 0, 10, 8), seed=5), a=image(A_CHANNELS, (4, 2, 16, 12), seed=6))
    g = ng.Graph()
    b, a = g.add("_TestCopyPlate", "PlateB", key="b"), g.add("_TestCopyPlate", "PlateA", key="a")
    c = g.add("Copy", B=b, A=a, from0="none")
    assert g.evaluate(c) is _CopyPlate.IMAGES["b"] and g.evaluator.stats.ran["PlateA"] == 0
    c.set(bbox="union")  # nothing copied, but the window still follows the knob
    assert g.evaluate(c).bbox == Box(0, 0, 16, 12) and g.evaluator.stats.ran["PlateA"] == 1
    c.set(from0="rgba.alpha", bbox="B")
    out = g.evaluate(c)
    want = _CopyPlate.IMAGES["a"].crop_to(Box(0, 0, 10, 8))
    assert torch.equal(out.channel("rgba.alpha"), want.channel("rgba.alpha"))


def test_mix_and_mask():
    B, A = image(B_CHANNELS, seed=7), image(A_CHANNELS, seed=8)
    out = copy(B, A, mix=0.25)
    assert torch.allclose(out.channel("rgba.alpha"), B.channel("rgba.alpha") * 0.75 + A.channel("rgba.alpha") * 0.25)
    mask = image(("rgba.alpha",)).replace(pixels=torch.rand((1, 12, 16), generator=torch.Generator().manual_seed(1)))
    m = mask.channel("rgba.alpha")
    out = copy(B, A, mask, mix=0.5, invert_mask=True)
    want = B.channel("rgba.alpha") + (A.channel("rgba.alpha") - B.channel("rgba.alpha")) * (1 - m) * 0.5
    assert torch.allclose(out.channel("rgba.alpha"), want)
    assert torch.equal(copy(B, A, mask, maskChannelInput="rgba.red").pixels, B.pixels)  # absent mask channel: black


def test_missing_channel_of_a_copies_black():
    B, A = image(B_CHANNELS, seed=10), image(A_CHANNELS, seed=11)
    out = copy(B, A, from0="rgba.green", to0="rgba.red", channels="diffuse")
    assert not out.channel("rgba.red").any() and not out.channel("diffuse.green").any()
    assert torch.equal(out.channel("diffuse.red"), A.channel("diffuse.red"))


def test_half_follows_b():
    B, A = image(B_CHANNELS, seed=12).to(dtype=torch.float16), image(A_CHANNELS, seed=13)
    out = copy(B, A)
    assert out.dtype == torch.float16 and torch.equal(out.channel("rgba.alpha"), A.channel("rgba.alpha").half())


@pytest.mark.parametrize("knob, value", [
    ("from0", "alpha"), ("to3", "rgba."), ("from1", ""), ("bbox", "both"), ("mix", 2.0), ("channels", ""),
])
def test_bad_knobs_name_node_and_knob(knob, value):
    with pytest.raises(KnobError, match=f"node 'C1' knob '{knob}'"):
        Copy("C1", **{knob: value})


def test_unknown_layer_copy_names_the_knob_and_what_exists():
    B, A = image(B_CHANNELS, seed=14), image(A_CHANNELS, seed=15)
    with pytest.raises(KnobError, match="knob 'channels'") as err:
        copy(B, A, channels="specular")
    assert "specular" in str(err.value) and "other.x" in str(err.value)
