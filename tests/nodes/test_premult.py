"""Premult and Unpremult: formulas, round trips, Nuke's alpha-0 rule, invert, and OpenImageIO."""

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
from nodegraph.nodes.premult import Premult, Unpremult
from nodegraph.testing import compute_node

DATA = Path(os.environ["NODEGRAPH_TEST_DATA"])  # found by tests/conftest.py
FMT = Format.of_size(8, 8)


def run(cls, img: Image, **knobs) -> Image:
    return compute_node(cls("N1", **knobs), input=img)


def image(pixels, channels=RGBA, origin=(0, 0)) -> Image:
    t = torch.as_tensor(np.asarray(pixels, dtype=np.float64))
    return Image(t, tuple(channels), Box(origin[0], origin[1], origin[0] + t.shape[2], origin[1] + t.shape[1]), FMT)


def test_premult_multiplies_rgb_only():
    px = np.array([[[2.0]], [[-0.5]], [[4.0]], [[0.25]]])
    out = run(Premult, image(px)).pixels[:, 0, 0].tolist()
    assert out == [0.5, -0.125, 1.0, 0.25]


def test_unpremult_divides_and_leaves_alpha_zero_alone():
    px = np.array([[[0.5, 0.3]], [[-0.125, 0.2]], [[1.0, -0.1]], [[0.25, 0.0]]])
    out = run(Unpremult, image(px)).pixels.numpy()
    np.testing.assert_allclose(out[:, 0, 0], [2.0, -0.5, 4.0, 0.25])
    np.testing.assert_array_equal(out[:, 0, 1], px[:, 0, 1])  # alpha 0: unchanged, no Inf/NaN


def test_invert_uses_one_minus_alpha():
    px = np.array([[[0.8, 0.4]], [[0.6, 0.2]], [[0.4, 0.7]], [[0.75, 1.0]]])
    out = run(Premult, image(px), invert=True).pixels.numpy()
    np.testing.assert_allclose(out[:3], px[:3] * (1 - px[3]))
    out = run(Unpremult, image(px), invert=True).pixels.numpy()
    np.testing.assert_allclose(out[:3, 0, 0], px[:3, 0, 0] / 0.25)
    np.testing.assert_array_equal(out[:, 0, 1], px[:, 0, 1])  # 1 - alpha == 0: unchanged


def test_channels_and_alpha_knobs():
    names = RGBA + ("depth.Z", "matte.alpha")
    px = np.arange(1.0, 7.0).reshape(6, 1, 1)
    out = run(Premult, image(px, names), channels="all", alpha="matte.alpha").pixels[:, 0, 0].tolist()
    assert out == [6.0, 12.0, 18.0, 24.0, 30.0, 6.0]  # the alpha channel itself is never changed
    out = run(Premult, image(px, names), channels="depth").pixels[:, 0, 0].tolist()
    assert out == [1.0, 2.0, 3.0, 4.0, 20.0, 6.0]


def test_missing_alpha_is_a_clear_knob_error():
    img = image(np.ones((3, 2, 2)), RGBA[:3])
    for cls in (Premult, Unpremult):
        with pytest.raises(KnobError) as err:
            run(cls, img)
        assert err.value.node == "N1" and err.value.knob == "alpha"
        assert "rgba.alpha" in str(err.value) and "N1" in str(err.value)


def test_alpha_knob_must_name_one_channel():
    with pytest.raises(KnobError, match="alpha"):
        Premult("N1", alpha="alpha")


def test_missing_colour_channels_are_skipped():
    img = image(np.full((2, 1, 1), 0.5), ("rgba.red", "rgba.alpha"))
    assert run(Premult, img).pixels[:, 0, 0].tolist() == [0.25, 0.5]


finite = st.floats(-4, 4).map(lambda x: round(x, 5))
alpha = st.one_of(st.sampled_from([0.0, 1.0]), st.floats(-1, 2).map(lambda x: round(x, 5)))
pixels = st.lists(st.tuples(finite, finite, finite, alpha), min_size=4, max_size=4).map(
    lambda p: np.array(p, dtype=np.float64).T.reshape(4, 2, 2))


@settings(max_examples=200, deadline=None)
@given(px=pixels, invert=st.booleans())
def test_round_trips(px, invert):
    img = image(px)
    back = run(Premult, run(Unpremult, img, invert=invert), invert=invert).pixels.numpy()
    # premult(unpremult(x)) == x everywhere (alpha 0 pixels: 0 * x, as in Nuke)
    al = 1 - px[3] if invert else px[3]
    want = np.where(al == 0, px * al, px)
    want[3] = px[3]
    np.testing.assert_allclose(back, want, rtol=1e-12, atol=1e-12)
    there = run(Unpremult, run(Premult, img, invert=invert), invert=invert).pixels.numpy()
    keep = al != 0
    np.testing.assert_allclose(there[:, keep], px[:, keep], rtol=1e-12, atol=1e-12)
    assert np.isfinite(there).all()


def test_in_a_graph_keeps_dtype():
    g = Graph()
    c = g.add("Constant", color=(0.5, 0.5, 0.5, 0.5), format="4x4")
    p = g.add("Premult", input=c)
    u = g.add("Unpremult", input=p)
    assert g.evaluate(p).pixels[:, 0, 0].tolist() == [0.25, 0.25, 0.25, 0.5]
    out = g.evaluate(u, dtype=torch.float16)
    assert out.dtype == torch.float16 and out.pixels[:, 0, 0].tolist() == [0.5, 0.5, 0.5, 0.5]


import OpenImageIO as oiio  # noqa: E402


@pytest.fixture(scope="module")
def beach():
    path = DATA / "Beachball" / "singlepart.0001.exr"
    assert path.exists(), f"sample image {path} is missing (see tests/conftest.py)"
    buf = oiio.ImageBufAlgo.channels(oiio.ImageBuf(str(path)), ("R", "G", "B", "A"))
    spec = buf.spec()
    spec.set_format(oiio.FLOAT)
    f = oiio.ImageBuf(spec)
    oiio.ImageBufAlgo.copy(f, buf, oiio.FLOAT)
    return f


def _to_image(buf) -> Image:
    s = buf.spec()
    px = np.asarray(buf.get_pixels(oiio.FLOAT), dtype=np.float32).transpose(2, 0, 1).copy()
    fmt = Format(Box(s.full_x, s.full_y, s.full_x + s.full_width, s.full_y + s.full_height))
    return Image(torch.from_numpy(px), RGBA, Box(s.x, s.y, s.x + s.width, s.y + s.height), fmt)


@pytest.mark.parametrize("cls,fn", [(Premult, "premult"), (Unpremult, "unpremult")])
def test_against_openimageio(beach, cls, fn):
    img = _to_image(beach)
    assert (img.channel("rgba.alpha") == 0).any()
    want = _to_image(getattr(oiio.ImageBufAlgo, fn)(beach))
    got = run(cls, img)
    assert got.bbox == want.bbox
    assert (got.pixels - want.pixels).abs().max().item() <= 1e-5
