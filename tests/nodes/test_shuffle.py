"""Shuffle (legacy) and Shuffle2 against OpenImageIO's channel shuffles on a real multi-layer EXR,
and against a per-pixel reference written here for random mappings and data windows."""

from __future__ import annotations

import json
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
from nodegraph.nodes.shuffle import Shuffle, Shuffle2
from nodegraph.testing import compute_node

DATA = Path(os.environ["NODEGRAPH_TEST_DATA"])  # found by tests/conftest.py
BEACH = DATA / "Beachball"
RGBA = chans.RGBA
FMT = Format.of_size(16, 12)


def shuffle(img: Image, **knobs) -> Image:
    return compute_node(Shuffle("Shuffle1", **knobs), input=img)


def shuffle2(B: Image, A: Image | None = None, **knobs) -> Image:
    return compute_node(Shuffle2("Shuffle1", **knobs), B=B, A=A)


def image(channels, box=(0, 0, 16, 12), seed=0, fmt=FMT) -> Image:
    box = Box(*box)
    g = torch.Generator().manual_seed(seed)
    pixels = torch.rand((len(channels), box.height, box.width), generator=g) * 4 - 1
    return Image(pixels, tuple(channels), box, fmt)


# --- OpenImageIO on a real multi-layer HDR image -------------------------------------------------

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
    """``result``'s ``names`` equal the OIIO buffer (whose channels are in that order)."""
    want = _to_image(buf, tuple(names))
    assert result.bbox == want.bbox
    got = result.select(names).pixels
    diff = (got - want.pixels).abs().max().item()
    assert diff <= 1e-5, diff


def test_beachball_has_the_layers_used_here(beach):
    _, _, img_b, img_a = beach
    for layer in ("rgba", "depth", "left", "disparityL", "forward.left"):
        assert layer in img_b.layers()
    assert img_a.bbox != img_b.bbox  # different data windows: the union is exercised


@pytest.mark.parametrize("knobs, order", [
    ({}, ("R", "G", "B", "A")),
    ({"red": "blue", "green": "alpha", "blue": "black", "alpha": "white"}, ("B", "A", 0.0, 1.0)),
    ({"red": "b", "green": "r", "blue": "0", "alpha": "1"}, ("B", "R", 0.0, 1.0)),  # Nuke's short forms
    ({"in": "left"}, ("left.R", "left.G", "left.B", "left.A")),
    ({"in": "depth", "green": "red", "blue": "white"}, ("Z", "Z", 1.0, 0.0)),  # depth has one channel
    ({"in2": "disparityL", "blue": "red2", "alpha": "green2"}, ("R", "G", "disparityL.x", "disparityL.y")),
    ({"in": "forward.left", "in2": "depth", "red": "green", "green": "red", "alpha": "red2"},
     ("forward.left.v", "forward.left.u", 0.0, "Z")),
])
def test_shuffle_against_openimageio(beach, knobs, order):
    b, _, img_b, _ = beach
    out = shuffle(img_b, **knobs)
    _same(out, oiio.ImageBufAlgo.channels(b, order, ("R", "G", "B", "A")), RGBA)
    assert out.channels == img_b.channels  # nothing added; the other 16 channels pass through
    others = [i for i, c in enumerate(img_b.channels) if c not in RGBA]
    assert torch.equal(out.pixels[others], img_b.pixels[others])


def test_shuffle_out_layer(beach):
    b, _, img_b, _ = beach
    out = shuffle(img_b, out="left", red="alpha", green="blue", blue="green", alpha="red")
    # left is red, green, blue, alpha, Z in Nuke's order: the fifth channel is left alone
    _same(out, oiio.ImageBufAlgo.channels(b, ("A", "B", "G", "R", "left.Z"), ("R", "G", "B", "A", "Z")),
          ("left.red", "left.green", "left.blue", "left.alpha", "left.Z"))
    assert torch.equal(out.channel("rgba.red"), img_b.channel("rgba.red"))
    new = shuffle(img_b, out="matte", red="alpha", green="white")  # a layer B lacks is created
    assert new.channels == img_b.channels + ("matte.red", "matte.green", "matte.blue", "matte.alpha")
    _same(new, oiio.ImageBufAlgo.channels(b, ("A", 1.0, "B", "A"), ("R", "G", "B", "A")),
          ("matte.red", "matte.green", "matte.blue", "matte.alpha"))
    depth = shuffle(img_b, out="depth", red="green")  # one channel: only the red knob applies
    assert torch.equal(depth.channel("depth.Z"), img_b.channel("rgba.green"))
    assert shuffle(img_b, out="none", red="black") is img_b


def test_shuffle2_against_openimageio(beach):
    b, a, img_b, img_a = beach
    knobs = dict(in2="depth", out2="disparityL", mappings={
        "rgba.red": "A:rgba.green",        # from input A
        "rgba.green": "depth.Z",           # bare: in in2's layer, read from fromInput2 (B)
        "rgba.blue": "left.red",           # bare, in neither layer: fromInput1 (B)
        "rgba.alpha": "white",
        "disparityL.x": "B:rgba.red",
        "mine.u": "A:left.Z",              # a new channel outside out1/out2
    })
    out = shuffle2(img_b, img_a, **knobs)
    union = oiio.union(a.roi, b.roi)
    bb, aa = oiio.ImageBufAlgo.crop(b, union), oiio.ImageBufAlgo.crop(a, union)
    want = oiio.ImageBufAlgo.channel_append(
        oiio.ImageBufAlgo.channels(aa, ("G", "left.Z")), oiio.ImageBufAlgo.channels(bb, ("Z", "left.R", 1.0, "R", 0.0)))
    _same(out, want, ("rgba.red", "mine.u", "rgba.green", "rgba.blue", "rgba.alpha", "disparityL.x",
                      "disparityL.y"))  # disparityL.y: in out2, not mapped, so black
    assert out.channels == img_b.channels + ("mine.u",)
    rest = [c for c in img_b.channels if c not in RGBA and not c.startswith("disparityL.")]
    _same(out, oiio.ImageBufAlgo.channels(bb, tuple(chans.to_file_name(c) for c in rest)), rest)
    assert out.format == img_b.format


def test_shuffle2_default_is_identity_and_ignores_a(beach):
    _, _, img_b, img_a = beach
    out = shuffle2(img_b, img_a)
    assert out.channels == img_b.channels and out.bbox == img_b.bbox  # A unused: B's window
    assert torch.equal(out.pixels, img_b.pixels)


# --- a per-pixel reference for random mappings ------------------------------------------------------

def ref_value(img: Image | None, channel: str, x: int, y: int) -> float:
    """One pixel of one channel; black outside the data window or when the channel is absent."""
    if img is None or channel not in img.channels:
        return 0.0
    b = img.bbox
    if not (b.x0 <= x < b.x1 and b.y0 <= y < b.y1):
        return 0.0
    return float(img.pixels[img.channels.index(channel), y - b.y0, x - b.x0])


def ref_shuffle2(B: Image, A: Image | None, k: dict) -> dict[str, np.ndarray]:
    """Output channels -> planes over the expected window, from the documented rules alone."""
    mappings = k.get("mappings", {c: c for c in RGBA})
    group = {"in1": k.get("fromInput1", "B"), "in2": k.get("fromInput2", "B")}

    def layer_has(layer: str, ch: str) -> bool:
        return ch.rpartition(".")[0] == layer or (layer in ("rgb", "alpha") and ch in chans.LAYER_SHORTHANDS[layer])

    resolved = {}
    for target, source in mappings.items():
        if source in ("black", "white"):
            resolved[target] = (None, 1.0 if source == "white" else 0.0)
            continue
        prefix, _, ch = source.rpartition(":")
        if not prefix:
            prefix = "in1" if layer_has(k.get("in1", "rgba"), ch) else "in2" if layer_has(k.get("in2", "none"), ch) \
                else "in1"
        resolved[target] = (group.get(prefix, prefix), ch)
    uses_a = any(src == "A" for src, _ in resolved.values())
    box = B.bbox.union(A.bbox) if uses_a and A is not None else B.bbox
    outs = {}
    for layer in (k.get("out1", "rgba"), k.get("out2", "none")):
        own = [c for c in B.channels if c.rpartition(".")[0] == layer]
        for c in own or chans.LAYER_SHORTHANDS.get(layer, ()):  # Nuke's built-in rgba, rgb, alpha, depth
            outs[c] = (None, 0.0)
    outs.update(resolved)
    planes = {}
    for c in set(B.channels) | set(outs):
        plane = np.zeros((box.height, box.width))
        for y in range(box.y0, box.y1):
            for x in range(box.x0, box.x1):
                if c in outs:
                    src, what = outs[c]
                    v = what if src is None else ref_value({"A": A, "B": B}[src], what, x, y)
                else:
                    v = ref_value(B, c, x, y)
                plane[y - box.y0, x - box.x0] = v
        planes[c] = plane
    return {"box": box, **planes}


B_CHANNELS = RGBA + ("depth.Z", "diffuse.red", "diffuse.green", "diffuse.blue")
A_CHANNELS = RGBA[:3] + ("diffuse.red", "other.x", "depth.Z")
ALL = sorted(set(B_CHANNELS + A_CHANNELS + ("rgba.missing",)))
windows = st.tuples(st.integers(-3, 6), st.integers(-3, 6), st.integers(1, 8), st.integers(1, 8)).map(
    lambda t: (t[0], t[1], t[0] + t[2], t[1] + t[3]))
sources = st.one_of(st.sampled_from(["black", "white"]),
                    st.tuples(st.sampled_from(["", "", "A:", "B:", "in1:", "in2:"]), st.sampled_from(ALL)).map("".join))
layers = st.sampled_from(["rgba", "rgb", "alpha", "depth", "diffuse", "other", "none", "newlayer"])


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(wb=windows, wa=windows, connect_a=st.booleans(),
       mappings=st.dictionaries(st.sampled_from(ALL + ["newlayer.red"]), sources, max_size=6),
       knobs=st.fixed_dictionaries({
           "fromInput1": st.sampled_from(["A", "B"]), "fromInput2": st.sampled_from(["A", "B"]),
           "in1": layers, "in2": layers}, optional={"out1": layers, "out2": layers}))
def test_shuffle2_random_mappings_against_reference(wb, wa, connect_a, mappings, knobs):
    B = image(B_CHANNELS, wb, seed=1)
    A = image(A_CHANNELS, wa, seed=2) if connect_a else None
    knobs = {**knobs, "mappings": mappings}
    out = shuffle2(B, A, **knobs)
    want = ref_shuffle2(B, A, knobs)
    assert out.bbox == want.pop("box")
    assert set(out.channels) == set(want)
    assert out.channels[:len(B.channels)] == B.channels
    for c, plane in want.items():
        np.testing.assert_allclose(out.channel(c).numpy(), plane, atol=1e-6, err_msg=c)


def ref_shuffle(img: Image, k: dict) -> dict[str, np.ndarray]:
    def layer(name):
        order = {"red": 0, "green": 1, "blue": 2, "alpha": 3, "x": 0, "y": 1, "z": 2, "w": 3, "u": 0, "v": 1}
        found = sorted((c for c in img.channels if c.rpartition(".")[0] == name),
                       key=lambda c: order.get(c.rpartition(".")[2], 99))
        return tuple(found) or chans.LAYER_SHORTHANDS.get(name, ())

    out = layer(k.get("out", "rgba"))
    if not out and k.get("out", "rgba") != "none":
        out = tuple(f"{k['out']}.{c}" for c in ("red", "green", "blue", "alpha"))
    planes = {c: img.channel(c).numpy() for c in img.channels}
    for i, target in enumerate(out[:4]):
        src = k.get(("red", "green", "blue", "alpha")[i], ("red", "green", "blue", "alpha")[i])
        if src in ("black", "white"):
            planes[target] = np.full(img.pixels.shape[1:], 1.0 if src == "white" else 0.0)
            continue
        chosen = layer(k.get("in2" if src.endswith("2") else "in", "none" if src.endswith("2") else "rgba"))
        pos = ("red", "green", "blue", "alpha").index(src.rstrip("2"))
        name = chosen[pos] if pos < len(chosen) else None
        planes[target] = img.channel(name).numpy() if name in img.channels else np.zeros(img.pixels.shape[1:])
    return planes


@settings(max_examples=60, deadline=None)
@given(knobs=st.fixed_dictionaries({}, optional={
    "in": layers.filter(lambda s: s != "none"), "in2": layers, "out": layers,
    **{c: st.sampled_from(["red", "green", "blue", "alpha", "black", "white", "red2", "green2", "blue2", "alpha2"])
       for c in ("red", "green", "blue", "alpha")}}))
def test_shuffle_random_knobs_against_reference(knobs):
    img = image(B_CHANNELS + ("other.x", "other.y"), (2, 1, 9, 7), seed=3)
    out = shuffle(img, **knobs)
    want = ref_shuffle(img, knobs)
    assert set(out.channels) == set(want) and out.bbox == img.bbox
    for c, plane in want.items():
        np.testing.assert_allclose(out.channel(c).numpy(), plane, atol=0, err_msg=c)


# --- each knob, in a graph -------------------------------------------------------------------------

class _ShufflePlate(Node):
    """Test source: emits ``IMAGES[key]``."""

    type_name = "_TestShufflePlate"
    IMAGES: dict[str, Image] = {}

    class Knobs(Knobs):
        key: str = ""
        """Which image."""

    def compute(self, ctx):
        return self.IMAGES[self.knobs.key]


def _graph():
    _ShufflePlate.IMAGES.update(b=image(B_CHANNELS, (0, 0, 10, 8), seed=4), a=image(A_CHANNELS, (4, 2, 16, 12), seed=5))
    g = ng.Graph()
    return g, g.add("_TestShufflePlate", "PlateB", key="b"), g.add("_TestShufflePlate", "PlateA", key="a")


def test_shuffle2_pulls_a_only_when_a_mapping_reads_it():
    g, b, a = _graph()
    s = g.add("Shuffle2", B=b, A=a)
    out = g.evaluate(s)
    assert g.evaluator.stats.ran["PlateA"] == 0 and out.bbox == Box(0, 0, 10, 8)
    s.set(fromInput1="A")  # bare rgba sources now read A
    out = g.evaluate(s)
    assert g.evaluator.stats.ran["PlateA"] == 1 and out.bbox == Box(0, 0, 16, 12)
    A = _ShufflePlate.IMAGES["a"].crop_to(out.bbox)
    assert torch.equal(out.channel("rgba.red"), A.channel("rgba.red"))
    assert not out.channel("rgba.alpha").any()  # A has no alpha: black


def test_shuffle2_knob_effects():
    B, A = image(B_CHANNELS, seed=6), image(A_CHANNELS, seed=7)
    zero = torch.zeros(B.pixels.shape[1:])
    out = shuffle2(B, A, mappings="none")  # out1 rgba stays in the output, unmapped: black
    assert out.channels == B.channels and all(not out.channel(c).any() for c in RGBA)
    assert torch.equal(out.channel("depth.Z"), B.channel("depth.Z"))
    out = shuffle2(B, A, fromInput2="A", in2="rgba",
                   mappings={"rgba.red": "in2:rgba.blue", "rgba.blue": "in1:rgba.red"})
    assert torch.equal(out.channel("rgba.red"), A.channel("rgba.blue"))
    assert torch.equal(out.channel("rgba.blue"), B.channel("rgba.red"))
    assert torch.equal(out.channel("rgba.green"), zero)
    out = shuffle2(B, A, in1="diffuse", fromInput2="A", in2="rgba", mappings={"rgba.red": "rgba.green"})
    assert torch.equal(out.channel("rgba.red"), A.channel("rgba.green"))  # bare, not in in1, in in2 -> A
    out = shuffle2(B, A, out1="diffuse", out2="depth", mappings={"diffuse.red": "white"})
    assert torch.equal(out.channel("diffuse.red"), torch.ones_like(zero))
    for c in ("diffuse.green", "diffuse.blue", "depth.Z"):
        assert torch.equal(out.channel(c), zero)
    assert torch.equal(out.channel("rgba.red"), B.channel("rgba.red"))  # rgba is no out layer now
    out = shuffle2(B, None, mappings={"rgba.red": "A:rgba.red", "rgba.green": "rgba.green", "rgba.blue": "B:nope.x",
                                      "rgba.alpha": "alpha.missing"})
    assert out.bbox == B.bbox and not out.channel("rgba.red").any() and not out.channel("rgba.blue").any()
    assert torch.equal(out.channel("rgba.green"), B.channel("rgba.green"))


def test_shuffle2_half_and_device_follow_b():
    B, A = image(B_CHANNELS, seed=8).to(dtype=torch.float16), image(A_CHANNELS, (3, 3, 20, 20), seed=9)
    out = shuffle2(B, A, mappings={"rgba.red": "A:diffuse.red"})
    assert out.dtype == torch.float16 and out.bbox == Box(0, 0, 20, 20)
    assert torch.equal(out.channel("rgba.red")[3:, 3:], A.channel("diffuse.red").half())
    assert not out.channel("rgba.red")[:3].any()


# --- knobs, documents, errors --------------------------------------------------------------------------

def test_in_knob_is_named_in_everywhere():
    g = ng.Graph()
    s = g.add("Shuffle", "S", **{"in": "depth"}, red="r", alpha=1)
    assert s["in"] == "depth" and s["red"] == "red" and s["alpha"] == "white"
    assert s.knob_values(only_changed=True) == {"in": "depth", "alpha": "white"}
    saved = json.loads(g.to_json())
    assert saved["nodes"]["S"]["knobs"] == {"in": "depth", "alpha": "white"}
    s.set(**{"in": "rgba"})
    assert ng.Graph.from_json(g.to_json())["S"]["in"] == "rgba"
    assert "in" in Shuffle.knob_names()


def test_mappings_round_trip_through_json():
    g = ng.Graph()
    m = {"rgba.alpha": "white", "rgba.red": "A:depth.Z", "mine.u": "in2:rgba.red"}
    g.add("Shuffle2", "S", mappings=m, in2="rgba")
    g2 = ng.Graph.from_json(g.to_json())
    assert g2["S"]["mappings"] == m and g2["S"].static_digest() == g["S"].static_digest()


@pytest.mark.parametrize("value, words", [
    ({"rgba.red": "C:rgba.red"}, "prefix 'C'"),
    ({"rgba.red": "rgba"}, "'black', 'white' or"),
    ({"rgba.red": "A:"}, "'black', 'white' or"),
    ({"rgba": "white"}, "target 'rgba'"),
    ({"white": "rgba.red"}, "target 'white'"),
    ({"A:rgba.red": "white"}, "target 'A:rgba.red'"),
    ({"rgba.red": "white", " rgba.red ": "black"}, "mapped twice"),
    ([["rgba.red", "rgba.red"]], "dict"),
    ("rgba", "dict"),
])
def test_bad_mappings_name_the_knob(value, words):
    with pytest.raises(KnobError, match="mappings") as err:
        Shuffle2("S1", mappings=value)
    assert words in str(err.value) and "'S1'" in str(err.value)
    node = Shuffle2("S2")
    with pytest.raises(KnobError, match="node 'S2' knob 'mappings'"):
        node.set(mappings=value)
    assert node["mappings"] == {c: c for c in RGBA}  # a failed set leaves the knob as it was


@pytest.mark.parametrize("knob, value", [
    ("in", "rgba,depth"), ("in", "all"), ("in", ""), ("out", "rgba depth"), ("red", "purple"), ("alpha", 2),
    ("in2", ".x"),
])
def test_bad_shuffle_knobs(knob, value):
    with pytest.raises(KnobError, match=f"knob '{knob}'"):
        Shuffle("S1", **{knob: value})


@pytest.mark.parametrize("knob, value", [("in1", "a,b"), ("out2", "all"), ("fromInput1", "C")])
def test_bad_shuffle2_knobs(knob, value):
    with pytest.raises(KnobError, match=f"knob '{knob}'"):
        Shuffle2("S1", **{knob: value})
