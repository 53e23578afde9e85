"""ColorCorrect, HueCorrect and ColorLookup against formulas written again here in numpy.

The references evaluate every curve exactly, pixel by pixel, with ``Curve.evaluate`` (the nodes
use sampled tables on the image's device), take hue and saturation from Python's ``colorsys``
(independent of the library's HSV code) and write the corrections out in float64.
"""

from __future__ import annotations

import colorsys

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import nodegraph as ng
from nodegraph import Box, Format, Image, KnobError
from nodegraph.channels import RGBA
from nodegraph.curve import Curve, Key
from nodegraph.expression import Expression
from nodegraph.nodes.color_correct import ColorCorrect, ColorLookup, HueCorrect, apply_curve, split_named
from nodegraph.nuke.reader import read_nk
from nodegraph.testing import compute_node
from test_ocio_nodes import check_gpu, check_half_and_empty, ramp_graph  # shared helpers

FMT = Format.of_size(6, 4)
FAST = settings(max_examples=25, deadline=None)
W709 = np.array([0.2125, 0.7154, 0.0721])


def image(arr) -> Image:
    t = torch.tensor(np.asarray(arr, dtype=np.float32))
    return Image(t, RGBA, Box(0, 0, t.shape[2], t.shape[1]), FMT)


def random_image(seed: int = 0, lo: float = -0.1, hi: float = 1.6) -> Image:
    return image(np.random.default_rng(seed).uniform(lo, hi, (4, 4, 6)))


def run(node, img: Image, mask: Image | None = None) -> Image:
    return compute_node(node, input=img, mask=mask)


def np_of(img: Image) -> np.ndarray:
    return img.pixels.double().numpy()


def curve_at(text: str, values: np.ndarray) -> np.ndarray:
    c = Curve.parse(text)
    return np.vectorize(c.evaluate, otypes=[float])(values)


def luma(rgb: np.ndarray) -> np.ndarray:
    return np.einsum("i,i...->...", W709, rgb)


# --- curve sets ------------------------------------------------------------------------------------

def test_split_named_reads_the_script_forms():
    text = "master {curve C 0 x0.5 0.7 1}\n    red {}\n    green {}\n    blue {}\n    alpha {}"
    assert split_named(text) == {"master": "curve C 0 x0.5 0.7 1", "red": "", "green": "", "blue": "",
                                 "alpha": ""}
    assert split_named("{" + text + "}") == split_named(text)
    with pytest.raises(ValueError):
        split_named("master {curve 0 1} red")


def test_curve_knob_forms_and_errors():
    node = ColorLookup("L", lut="master {curve C 0 x0.5 0.7 1} red {} green {}")
    assert node.knobs.lut["master"] == "curve C x0 0 x0.5 0.7 1"
    assert node.knobs.lut["red"] == ColorLookup("D").knobs.lut["red"]  # {} is the default
    node.set(lut={"master": Curve([Key(0, 0.0, "linear"), Key(1, 2.0, "linear")]), "alpha": 0.5})
    assert node.knobs.lut == {"master": "curve L x0 0 2", "alpha": "curve x0 0.5"}
    node.set(lut={"blue": {"curve": [[0, 0, "linear"], [1, 0.5, "linear"]]}})
    assert node.knobs.lut == {"blue": "curve L x0 0 0.5"}
    for bad in ({"purple": "curve 0 1"}, {"red": "curve 0 x"}, "master"):
        with pytest.raises(KnobError) as err:
            node.set(lut=bad)
        assert err.value.knob == "lut"
    g = ng.Graph()
    g.add("ColorLookup", "L", lut={"master": "curve C 0 x0.5 0.7 1"})
    assert ng.Graph.from_json(g.to_json())["L"].knobs.lut == g["L"].knobs.lut


@FAST
@given(ys=st.lists(st.floats(-1, 2), min_size=2, max_size=6), interp=st.sampled_from(["smooth", "linear", "cubic"]),
       extrap=st.sampled_from(["constant", "linear"]))
def test_apply_curve_matches_exact_evaluation(ys, interp, extrap):
    curve = Curve([Key(i * 0.3, y, interp) for i, y in enumerate(ys)], extrapolation=extrap)
    text = curve.to_nuke()[1:-1]
    x = torch.linspace(-0.5, 0.3 * len(ys) + 0.5, 301, dtype=torch.float64)
    got = apply_curve(text, x).numpy()
    np.testing.assert_allclose(got, curve_at(text, x.numpy()), atol=2e-5 * (1 + max(map(abs, ys))))


# --- ColorCorrect ----------------------------------------------------------------------------------

SHADOW = "curve 1 s0 x0.09 0 s0"
HIGHLIGHT = "curve x0.5 0 s0 x1 1 s0"


def ref_correct(x, sat, con, gam, gain, off):
    col = lambda v: np.asarray(v, dtype=float).reshape(3, 1, 1)  # noqa: E731
    y = luma(x)
    v = y + col(sat) * (x - y)
    v = np.where(v > 0, 0.18 * (np.clip(v, 0, None) / 0.18) ** col(con), v)
    v = np.where(v > 0, np.clip(v, 0, None) ** (1 / col(gam)), v)
    return v * col(gain) + col(off)


def ref_color_correct(x, master, ranges, shadow=SHADOW, highlight=HIGHLIGHT, *, with_spread=False):
    """The blend of the three ranges' corrections by the shadow/highlight curves of luma; with
    ``with_spread`` also the sum of the ranges' absolute results (what an error in the weights scales)."""
    y = luma(x)
    s, h = curve_at(shadow, y), curve_at(highlight, y)
    weights = {"shadows": s, "midtones": 1 - s - h, "highlights": h}
    out, spread = 0, 0
    for rng, w in weights.items():
        own = ranges.get(rng, {})
        p = [np.full(3, master.get(op, d)) * np.full(3, own.get(op, d)) if op != "offset"
             else np.full(3, master.get(op, d)) + np.full(3, own.get(op, d))
             for op, d in (("saturation", 1.0), ("contrast", 1.0), ("gamma", 1.0), ("gain", 1.0), ("offset", 0.0))]
        branch = ref_correct(x, *p)
        out = out + w * branch
        spread = spread + np.abs(branch)
    return (out, spread) if with_spread else out


ops = st.fixed_dictionaries({}, optional={"saturation": st.floats(0, 2), "contrast": st.floats(0.5, 1.5),
                                          "gamma": st.floats(0.5, 2), "gain": st.floats(0, 2),
                                          "offset": st.floats(-0.2, 0.2)})


@FAST
@given(master=ops, shadows=ops, midtones=ops, highlights=ops, seed=st.integers(0, 2**16))
def test_color_correct_matches_the_formula(master, shadows, midtones, highlights, seed):
    img = random_image(seed)
    knobs = dict(master)
    for rng, values in (("shadows", shadows), ("midtones", midtones), ("highlights", highlights)):
        knobs.update({f"{rng}_{k}": v for k, v in values.items()})
    out = run(ColorCorrect("CC", **knobs), img)
    want, spread = ref_color_correct(np_of(img)[:3], master, {"shadows": shadows, "midtones": midtones,
                                                              "highlights": highlights}, with_spread=True)
    # the node reads the range curves from 1024-sample tables (their error is within 2e-5: the
    # apply_curve test above); with extreme knobs the ranges' results differ by orders of magnitude
    # (x^9 beside x^3), and that error in the weights scales with them
    tolerance = 2e-5 + 1e-4 * np.abs(want) + 2e-5 * spread
    assert (np.abs(np_of(out)[:3] - want) <= tolerance).all(), np.abs(np_of(out)[:3] - want).max()
    assert torch.equal(out.pixels[3], img.pixels[3])


def test_color_correct_per_channel_lookup_test_and_mix_luminance():
    img = random_image(3, 0.0, 1.2)
    x = np_of(img)[:3]
    out = run(ColorCorrect("CC", gain=(1.2, 1.0, 0.8, 1.0), highlights_gamma=(1.5, 1.0, 1.0, 1.0),
                           lookup="shadow {curve 1 s0 x0.3 0 s0} midtone {1-shadow-highlight} "
                                  "highlight {curve x0.4 0 s0 x0.9 1 s0}"), img)
    want = ref_color_correct(x, {"gain": [1.2, 1.0, 0.8]}, {"highlights": {"gamma": [1.5, 1.0, 1.0]}},
                             shadow="curve 1 s0 x0.3 0 s0", highlight="curve x0.4 0 s0 x0.9 1 s0")
    np.testing.assert_allclose(np_of(out)[:3], want, rtol=1e-4, atol=2e-5)
    test = run(ColorCorrect("CC", test=True), img)
    s, h = curve_at(SHADOW, luma(x)), curve_at(HIGHLIGHT, luma(x))
    np.testing.assert_allclose(np_of(test)[:3], np.broadcast_to(0.5 * (1 - s - h) + h, x.shape), atol=2e-5)
    kept = run(ColorCorrect("CC", gain=2.0, mix_luminance=1.0), img)
    np.testing.assert_allclose(luma(np_of(kept)[:3]), luma(x), atol=2e-5)
    off = run(ColorCorrect("CC", gain=2.0, mix_luminance=1.0, enable_mix_luminance=False), img)
    np.testing.assert_allclose(np_of(off)[:3], 2 * x, atol=2e-5)


def test_color_correct_midtone_curve_and_mask():
    img = random_image(4, 0.0, 1.0)
    mask = image(np.broadcast_to(np.linspace(0, 1, 6), (4, 4, 6)).copy())
    out = run(ColorCorrect("CC", midtones_gain=3.0, mix=0.5, lookup={"midtone": "curve 0.5"}), img, mask)
    x = np_of(img)[:3]
    y = luma(x)
    s, h = curve_at(SHADOW, y), curve_at(HIGHLIGHT, y)
    full = s * x + 0.5 * 3 * x + h * x
    w = 0.5 * np.linspace(0, 1, 6)
    np.testing.assert_allclose(np_of(out)[:3], x + (full - x) * w, rtol=1e-4, atol=2e-5)


# --- HueCorrect ------------------------------------------------------------------------------------

FLAT = "curve 1 1 1 1 1 1 1"


def ref_hue_correct(x, curves, mix_luminance=0.0):
    c = {k: FLAT for k in ("sat", "lum", "red", "green", "blue", "r_sup", "g_sup", "b_sup")}
    c["sat_thrsh"] = "curve 0"
    c.update(curves)
    hs = np.array([[colorsys.rgb_to_hsv(*x[:, i, j])[:2] for j in range(x.shape[2])] for i in range(x.shape[1])])
    hue, sat = hs[..., 0] * 6, hs[..., 1]
    at = lambda name: curve_at(c[name], hue)  # noqa: E731
    r, g, b = x
    out = []
    for ch, limit, sup, gain in ((r, np.maximum(g, b), "r_sup", "red"), (g, np.maximum(r, b), "g_sup", "green"),
                                 (b, np.maximum(r, g), "b_sup", "blue")):
        out.append(np.where(ch > limit, limit + at(sup) * (ch - limit), ch) * at(gain))
    v = np.stack(out)
    y = luma(v)
    v = (y + at("sat") * (v - y)) * at("lum")
    v = np.where(sat < at("sat_thrsh"), x, v)
    return v + mix_luminance * (luma(x) - luma(v))


hue_curve = st.lists(st.floats(0, 2), min_size=7, max_size=7).map(lambda ys: "curve " + " ".join(map(repr, ys)))


@FAST
@given(curves=st.dictionaries(st.sampled_from(["sat", "lum", "red", "green", "blue", "r_sup", "g_sup", "b_sup"]),
                              hue_curve, max_size=4), seed=st.integers(0, 2**16))
def test_hue_correct_matches_the_formula(curves, seed):
    img = random_image(seed, 0.0, 1.5)
    out = run(HueCorrect("H", hue=curves), img)
    np.testing.assert_allclose(np_of(out)[:3], ref_hue_correct(np_of(img)[:3], curves), rtol=1e-4, atol=3e-5)


def test_hue_correct_spill_threshold_and_mix_luminance():
    img = random_image(5, 0.0, 1.0)
    curves = {"g_sup": "curve 1 1 0 0 1 1 1", "sat_thrsh": "curve 0.3", "sat": "curve 0.5"}
    out = run(HueCorrect("H", hue=curves, mix_luminance=0.5), img)
    np.testing.assert_allclose(np_of(out)[:3], ref_hue_correct(np_of(img)[:3], curves, 0.5), rtol=1e-4, atol=3e-5)
    green = image(np.array([0.2, 0.9, 0.1, 1.0]).reshape(4, 1, 1).repeat(4, 1).repeat(6, 2))
    spill = run(HueCorrect("H", hue={"g_sup": "curve 0 0 0 0 0 0 0"}), green)
    assert np.allclose(np_of(spill)[:3, 0, 0], [0.2, 0.2, 0.1], atol=1e-6)  # green limited to max(r, b)


# --- ColorLookup -----------------------------------------------------------------------------------

@FAST
@given(ys=st.lists(st.floats(0, 1.5), min_size=2, max_size=5), seed=st.integers(0, 2**16))
def test_color_lookup_matches_the_curves(ys, seed):
    master = "curve C " + " ".join(f"x{i / (len(ys) - 1)!r} {y!r}" for i, y in enumerate(ys))
    red, alpha = "curve L 0 0.5", "curve 1 0"
    img = random_image(seed, -0.2, 1.4)
    out = run(ColorLookup("L", lut={"master": master, "red": red, "alpha": alpha}), img)
    x = np_of(img)
    m = curve_at(master, x[:3])
    np.testing.assert_allclose(np_of(out)[0], curve_at(red, m[0]), atol=3e-5)
    np.testing.assert_allclose(np_of(out)[1:3], m[1:3], atol=3e-5)
    np.testing.assert_allclose(np_of(out)[3], curve_at(alpha, x[3]), atol=3e-5)


def test_color_lookup_default_is_the_identity_beyond_0_and_1():
    img = random_image(6, -1.0, 3.0)
    np.testing.assert_allclose(np_of(run(ColorLookup("L"), img)), np_of(img), atol=1e-6)


# --- common behaviour -------------------------------------------------------------------------------

CASES = [
    ("ColorCorrect", {"saturation": 0.7, "shadows_gain": 1.4, "highlights_gamma": 1.3, "offset": 0.02}),
    ("HueCorrect", {"hue": {"sat": "curve 1 0.5 1 1.5 1 1 1", "r_sup": "curve 0.5"}}),
    ("ColorLookup", {"lut": {"master": "curve C 0 x0.5 0.7 1", "green": "curve L 0 0.8"}}),
]


@pytest.mark.parametrize("type_name, knobs", CASES)
def test_half_precision_and_empty_data_window(type_name, knobs):
    check_half_and_empty(type_name, knobs)


def test_animated_knobs_resolve_per_frame():
    g, cc = ramp_graph("ColorCorrect", gain=Curve([Key(1, 1.0, "linear"), Key(11, 2.0, "linear")]))
    src = g.evaluate(g["R"], 1).pixels
    torch.testing.assert_close(g.evaluate(cc, 11).pixels[:3], src[:3] * 2, atol=1e-5, rtol=1e-5)
    assert g.evaluator.hash(cc, 1) != g.evaluator.hash(cc, 11)
    g2, hc = ramp_graph("HueCorrect", hue={"lum": "curve 2"}, mix=Expression("frame == 1 ? 0 : 1"))
    torch.testing.assert_close(g2.evaluate(hc, 1).pixels, src)
    torch.testing.assert_close(g2.evaluate(hc, 2).pixels[:3], src[:3] * 2, atol=1e-5, rtol=1e-5)
    g3, cl = ramp_graph("ColorLookup", lut={"master": "curve L l 0 3"}, mix=Curve([Key(1, 0.0, "linear"), Key(3, 1.0, "linear")]))
    torch.testing.assert_close(g3.evaluate(cl, 2).pixels[:3], src[:3] * 2, atol=1e-5, rtol=1e-5)


@pytest.mark.gpu
@pytest.mark.parametrize("type_name, knobs", CASES)
def test_gpu_matches_cpu(type_name, knobs):
    check_gpu(type_name, knobs)


def test_read_from_a_nuke_script():
    script = """
Constant {
 inputs 0
 color {0.6 0.3 0.1 1}
 format "8 4 0 0 8 4 1 tiny"
 name C1
}
ColorCorrect {
 saturation 0.5
 gamma {1.2 1.1 1 1}
 lookup {shadow {curve 1 s0 x0.2 0 s0}
   midtone {1-shadow-highlight}
   highlight {curve x0.5 0 s0 x1 1 s0}}
 name ColorCorrect1
}
HueCorrect {
 hue {sat {curve 1 1 0.5 1 1 1 1}
   lum {}
   red {}
   green {}
   blue {}
   r_sup {}
   g_sup {}
   b_sup {}
   sat_thrsh {}}
 name HueCorrect1
}
ColorLookup {
 channels rgb
 lut {master {curve C 0 x0.5 0.7 1}
   red {}
   green {}
   blue {}
   alpha {}}
 name ColorLookup1
}
"""
    res = read_nk(script)
    g = res.graph
    assert g["ColorCorrect1"].knobs.lookup["shadow"] == "curve x0 1 s0 x0.2 0 s0"
    assert g["HueCorrect1"].knobs.hue["sat"] == "curve x0 1 1 0.5 1 1 1 1"
    x = np.array([0.6, 0.3, 0.1]).reshape(3, 1, 1)
    cc = ref_color_correct(x, {"saturation": 0.5, "gamma": [1.2, 1.1, 1.0]}, {}, shadow="curve 1 s0 x0.2 0 s0")
    hc = ref_hue_correct(cc, {"sat": "curve 1 1 0.5 1 1 1 1"})
    cl = curve_at("curve C 0 x0.5 0.7 1", hc)
    out = g.evaluate("ColorLookup1", 1)
    np.testing.assert_allclose(np_of(out)[:3, 0, 0], cl[:, 0, 0], rtol=1e-4, atol=3e-5)
    assert np.allclose(np_of(out)[3], 1.0)
