"""Keyer: every operation and the range curve against formulas written out here, per pixel."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from nodegraph import Box, Format, Graph, Image, KnobError
from nodegraph.channels import RGBA
from nodegraph.io import read_image
from nodegraph.nodes.keyer import Keyer
from nodegraph.testing import compute_node

DATA = Path(os.environ["NODEGRAPH_TEST_DATA"])  # found by tests/conftest.py
FMT = Format.of_size(8, 8)


def run(img: Image, **knobs) -> Image:
    return compute_node(Keyer("K1", **knobs), input=img)


def image(pixels, channels=RGBA) -> Image:
    t = torch.as_tensor(np.asarray(pixels, dtype=np.float64))
    return Image(t, tuple(channels), Box(0, 0, t.shape[2], t.shape[1]), FMT)


# --- independent reference ------------------------------------------------------------------
def measure(op: str, r: float, g: float, b: float) -> float:
    if op == "luminance key":
        return 0.2126 * r + 0.7152 * g + 0.0722 * b
    if op == "red keyer":
        return r
    if op == "green keyer":
        return g
    if op == "blue keyer":
        return b
    if op == "redscreen keyer":
        return r - max(g, b)
    if op == "greenscreen keyer":
        return g - max(r, b)
    if op == "bluescreen keyer":
        return b - max(r, g)
    if op == "saturation key":
        hi, lo = max(r, g, b), min(r, g, b)
        return (hi - lo) / hi if hi > 0 else 0.0
    if op == "max keyer":
        return max(r, g, b)
    if op == "min keyer":
        return min(r, g, b)
    raise AssertionError(op)


def shape(x: float, a: float, b: float, c: float, d: float) -> float:
    if x < a:
        return 0.0
    if x < b:
        return (x - a) / (b - a)
    if x <= c or c == d:
        return 1.0
    if x < d:
        return (d - x) / (d - c)
    return 0.0


OPS = ["luminance key", "red keyer", "green keyer", "blue keyer", "redscreen keyer", "greenscreen keyer",
       "bluescreen keyer", "saturation key", "max keyer", "min keyer"]
values = st.floats(-2, 4, allow_nan=False, width=32)
handles = st.lists(st.floats(-1, 2, allow_nan=False, width=32), min_size=4, max_size=4).map(sorted)


@settings(max_examples=150, deadline=None)
@given(op=st.sampled_from(OPS), rgb=st.lists(st.tuples(values, values, values), min_size=1, max_size=6),
       rng=handles, invert=st.booleans())
def test_operations_and_range_match_the_formulas(op, rgb, rng, invert):
    px = np.array([[[p[i] for p in rgb]] for i in range(3)] + [[[0.5] * len(rgb)]])
    out = run(image(px), operation=op, range=tuple(rng), invert=invert)
    got = out.channel("rgba.alpha")[0].numpy()
    want = [shape(measure(op, *p), *rng) for p in rgb]
    if invert:
        want = [1 - w for w in want]
    np.testing.assert_allclose(got, want, rtol=1e-9, atol=1e-9)
    np.testing.assert_array_equal(out.pixels[:3].numpy(), px[:3])  # colour untouched


def test_default_is_a_luminance_key_clamped_to_0_1():
    px = np.array([[[0.0, 0.5, 2.0, -1.0]], [[0.0, 0.5, 2.0, -1.0]], [[0.0, 0.5, 2.0, -1.0]], [[9, 9, 9, 9]]])
    out = run(image(px)).channel("rgba.alpha")[0].tolist()
    assert out == pytest.approx([0.0, 0.5, 1.0, 0.0])  # super-whites stay 1 (C == D: no fall-off)


def test_hard_step_and_upper_falloff():
    x = [0.1, 0.2, 0.3, 0.5, 0.7, 0.8, 0.9]
    px = np.array([[x], [x], [x], [[0.0] * len(x)]])
    out = run(image(px), operation="max keyer", range=(0.2, 0.2, 0.5, 0.8)).channel("rgba.alpha")[0]
    assert out.tolist() == pytest.approx([0.0, 1.0, 1.0, 1.0, 1 / 3, 0.0, 0.0])


@pytest.mark.parametrize("combine, expected", [("replace", 0.5), ("intersect", 0.5 * 0.4),
                                               ("union", 0.5 + 0.4 - 0.5 * 0.4)])
def test_combine_with_existing_output(combine, expected):
    px = np.array([[[0.5]], [[0.5]], [[0.5]], [[0.4]]])
    out = run(image(px), combine=combine)
    assert float(out.channel("rgba.alpha")[0, 0]) == pytest.approx(expected)


def test_output_channel_is_added_when_absent_and_other_layer_keyed():
    names = ("rgba.red", "rgba.green", "rgba.blue", "diffuse.red", "diffuse.green", "diffuse.blue")
    px = np.array([[[0.0]], [[0.0]], [[0.0]], [[0.1]], [[0.9]], [[0.2]]])
    out = run(image(px, names), layer="diffuse", operation="greenscreen keyer", output="matte.alpha")
    assert out.channels == names + ("matte.alpha",)
    assert float(out.channel("matte.alpha")[0, 0]) == pytest.approx(0.7)


def test_missing_layer_channels_and_bad_range_are_knob_errors():
    img = image(np.zeros((1, 2, 2)), ("rgba.alpha",))
    with pytest.raises(KnobError, match="layer"):
        run(img)
    with pytest.raises(KnobError, match="layer"):
        run(image(np.zeros((1, 2, 2)), ("rgba.red",)), layer="diffuse")
    assert float(run(image(np.ones((1, 1, 1)) * 0.3, ("rgba.red",)), operation="red keyer")
                 .channel("rgba.alpha")[0, 0]) == pytest.approx(0.3)
    with pytest.raises(KnobError, match="range"):
        Keyer("K1", range=(0.5, 0.2, 1, 1))
    with pytest.raises(KnobError, match="operation"):
        Keyer("K1", operation="chroma key")


def test_in_a_graph_on_a_real_exr_against_numpy():
    path = DATA / "Beachball" / "singlepart.0001.exr"
    src = read_image(path)
    g = Graph()
    read = g.add("Read", file=str(path), raw=True)
    key = g.add("Keyer", input=read, operation="luminance key", range=(0.05, 0.4, 0.8, 1.5))
    out = g.evaluate(key, 1)
    r, gr, b = (src.channel(n).double().numpy() for n in ("rgba.red", "rgba.green", "rgba.blue"))
    lum = 0.2126 * r + 0.7152 * gr + 0.0722 * b
    want = np.select([lum < 0.05, lum < 0.4, lum <= 0.8, lum < 1.5],
                     [0.0, (lum - 0.05) / 0.35, 1.0, (1.5 - lum) / 0.7], 0.0)
    np.testing.assert_allclose(out.channel("rgba.alpha").numpy(), want, atol=1e-5)
    assert out.bbox == src.bbox
