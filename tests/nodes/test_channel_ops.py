"""ShuffleCopy, Remove, AddChannels, CopyBBox, Keymix and Dissolve against numpy formulas and
channel lists written here (hypothesis over random pixels, windows and knob values), the knob
forms of public .nk scripts, animated knobs, half precision and empty data windows."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import nodegraph as ng
from nodegraph import Box, Image
from nodegraph.curve import Curve, Key
from nodegraph.nodes.blend import Dissolve, Keymix
from nodegraph.nodes.channel_ops import AddChannels, CopyBBox, Remove, ShuffleCopy
from nodegraph.testing import compute_node

from test_expression_node import RGBA, image, source  # same test images and graph source


def window(img: Image, box: Box, name: str) -> np.ndarray:
    """``img``'s channel ``name`` over ``box`` (0 outside its window or when absent), as numpy."""
    out = np.zeros((box.height, box.width))
    if name in img.channels:
        b = img.bbox
        x0, y0, x1, y1 = max(b.x0, box.x0), max(b.y0, box.y0), min(b.x1, box.x1), min(b.y1, box.y1)
        if x1 > x0 and y1 > y0:
            out[y0 - box.y0:y1 - box.y0, x0 - box.x0:x1 - box.x0] = \
                img.channel(name).double().numpy()[y0 - b.y0:y1 - b.y0, x0 - b.x0:x1 - b.x0]
    return out


def close(got: torch.Tensor, want: np.ndarray, tol: float = 1e-6) -> None:
    np.testing.assert_allclose(got.double().numpy(), want, rtol=tol, atol=tol)


boxes = st.tuples(st.integers(-3, 8), st.integers(-3, 6), st.integers(1, 8), st.integers(1, 7)).map(
    lambda t: Box(t[0], t[1], t[0] + t[2], t[1] + t[3]))


# --- ShuffleCopy ------------------------------------------------------------------------------------

def test_shuffle_copy_defaults_copy_a_alpha_into_b_rgb():
    b, a = image(RGBA + ("depth.Z",), seed=1), image(seed=2)
    out = compute_node(ShuffleCopy("S"), B=b, A=a)
    assert out.channels == b.channels
    for name in RGBA[:3] + ("depth.Z",):
        assert torch.equal(out.channel(name), b.channel(name))
    assert torch.equal(out.channel("rgba.alpha"), a.channel("rgba.alpha"))


def test_shuffle_copy_public_script_forms():
    b, a = image(seed=1), image(seed=2)
    # NST_Vector2ToSTMap: computed UVs (A) into a motion layer of the plate (B)
    out = compute_node(ShuffleCopy("S", **{"in2": "none", "red": "red", "green": "green", "alpha": "black",
                                           "out": "motion"}), B=b, A=a)
    assert out.channels == RGBA + ("motion.red", "motion.green", "motion.blue", "motion.alpha")
    assert torch.equal(out.channel("motion.red"), a.channel("rgba.red"))
    assert torch.equal(out.channel("motion.green"), a.channel("rgba.green"))
    assert torch.all(out.channel("motion.blue") == 0) and torch.all(out.channel("motion.alpha") == 0)
    # Tangent_Space_Normals_Previewer: A's rgba into a tangent layer, B's alpha kept
    out = compute_node(ShuffleCopy("S", alpha="alpha2", black="red", white="green", red2="blue", green2="alpha",
                                   out2="tangent"), B=b, A=a)
    for src, dst in zip(RGBA, ("tangent.red", "tangent.green", "tangent.blue", "tangent.alpha")):
        assert torch.equal(out.channel(dst), a.channel(src))
    for name in RGBA:
        assert torch.equal(out.channel(name), b.channel(name))


SOURCES = ["red", "green", "blue", "alpha", "red2", "green2", "blue2", "alpha2", "black", "white"]


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.sampled_from(SOURCES), min_size=8, max_size=8), boxes, boxes,
       st.sampled_from(["rgba", "depth", "diffuse"]), st.sampled_from(["none", "rgba", "diffuse", "other"]))
def test_shuffle_copy_matches_reference(sources, box_b, box_a, layer_in, out2):
    b = image(RGBA + ("diffuse.red", "diffuse.green"), box=box_b, seed=3)
    a = image(RGBA + ("depth.Z", "diffuse.blue"), box=box_a, seed=4)
    knobs = dict(zip(("red", "green", "blue", "alpha", "black", "white", "red2", "green2"), sources))
    node = ShuffleCopy("S", **knobs, **{"in": layer_in, "in2": "rgba", "out": "rgba", "out2": out2})
    out = compute_node(node, B=b, A=a)
    reads_a = any(s in ("red", "green", "blue", "alpha") for s in sources[:4]) or (
        out2 != "none" and any(s in ("red", "green", "blue", "alpha") for s in sources[4:]))
    box = b.bbox.union(a.bbox) if reads_a else b.bbox
    assert out.bbox == box
    in_layer = {"rgba": RGBA, "depth": ("depth.Z",), "diffuse": ("diffuse.blue",)}[layer_in]
    want = {c: window(b, box, c) for c in b.channels}
    out2_channels = {"none": (), "rgba": RGBA, "diffuse": ("diffuse.red", "diffuse.green"),
                     "other": ("other.red", "other.green", "other.blue", "other.alpha")}[out2]
    for targets, picks in ((RGBA, sources[:4]), (out2_channels, sources[4:])):
        for target, src in zip(targets, picks):
            if src in ("black", "white"):
                want[target] = np.full((box.height, box.width), 1.0 if src == "white" else 0.0)
                continue
            pos = ["red", "green", "blue", "alpha"].index(src.rstrip("2"))
            img, layer = (b, RGBA) if src.endswith("2") else (a, in_layer)
            want[target] = window(img, box, layer[pos]) if pos < len(layer) else np.zeros((box.height, box.width))
    assert set(out.channels) == set(want)
    for name, value in want.items():
        close(out.channel(name), value)


def test_shuffle_copy_without_a_reads_black():
    b = image(seed=1)
    g = ng.Graph()
    node = g.add("ShuffleCopy", "S", B=source(g, "B", b))
    out = g.evaluate(node, 1)
    assert torch.all(out.channel("rgba.alpha") == 0) and torch.equal(out.channel("rgba.red"), b.channel("rgba.red"))


# --- Remove -----------------------------------------------------------------------------------------

def test_remove_and_keep():
    img = image(RGBA + ("depth.Z", "diffuse.red", "diffuse.green"))
    assert compute_node(Remove("R"), input=img).channels == ()  # Nuke's default: channels all
    out = compute_node(Remove("R", channels="rgb", channels2="diffuse", channels4="matte"), input=img)
    assert out.channels == ("rgba.alpha", "depth.Z") and torch.equal(out.channel("depth.Z"), img.channel("depth.Z"))
    out = compute_node(Remove("R", operation="keep", channels="alpha", channels3="diffuse.green,forward.u"), input=img)
    assert out.channels == ("rgba.alpha", "diffuse.green") and out.bbox == img.bbox
    assert torch.equal(out.pixels, img.pixels[[3, 6]])
    empty = image(box=(4, 4, 4, 9))
    assert compute_node(Remove("R", channels="rgb"), input=empty).channels == ("rgba.alpha",)


# --- AddChannels ------------------------------------------------------------------------------------

def test_add_channels_fills_new_channels_with_color_by_place():
    img = image(RGBA[:3])
    out = compute_node(AddChannels("A", channels="rgba", channels2="depth", channels3="matte.garbage,matte.x",
                                   channels4="diffuse", color=(0.1, 0.2, 0.3, 0.4)), input=img)
    assert out.channels == RGBA[:3] + ("rgba.alpha", "depth.Z", "matte.garbage", "matte.x", "diffuse.red",
                                       "diffuse.green", "diffuse.blue", "diffuse.alpha")
    want = {"rgba.alpha": 0.4, "depth.Z": 0.1, "matte.garbage": 0.1, "matte.x": 0.1, "diffuse.red": 0.1,
            "diffuse.green": 0.2, "diffuse.blue": 0.3, "diffuse.alpha": 0.4}
    for name, value in want.items():
        assert torch.allclose(out.channel(name), torch.tensor(value)), name
    assert torch.equal(out.pixels[:3], img.pixels)  # present channels pass through
    assert compute_node(AddChannels("A"), input=img) is img  # nothing to add


def test_add_channels_animated_color_half_and_empty():
    g = ng.Graph()
    img = image(RGBA[:3])
    node = g.add("AddChannels", "A", input=source(g, "S", img), channels="alpha",
                 color=[0.0, 0.0, 0.0, Curve([Key(1, 0.0, "linear"), Key(5, 1.0, "linear")])])
    assert torch.allclose(g.evaluate(node, 3).channel("rgba.alpha"), torch.tensor(0.5))
    half = g.evaluate(node, 2, dtype=torch.float16)
    assert half.dtype == torch.float16 and torch.allclose(half.channel("rgba.alpha").float(), torch.tensor(0.25))
    out = compute_node(AddChannels("A", channels="depth"), input=image(box=(2, 2, 2, 5)))
    assert out.channels == RGBA + ("depth.Z",) and out.pixels.shape == (5, 3, 0)


# --- CopyBBox ---------------------------------------------------------------------------------------

@settings(max_examples=25, deadline=None)
@given(boxes, boxes)
def test_copy_bbox_matches_reference(box_b, box_a):
    b, a = image(box=box_b, seed=5), image(("rgba.red",), box=box_a, seed=6)
    out = compute_node(CopyBBox("C"), B=b, A=a)
    assert out.bbox == box_a and out.channels == RGBA and out.format == b.format
    for name in RGBA:
        close(out.channel(name), window(b, box_a, name))


# --- Keymix -----------------------------------------------------------------------------------------

@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(boxes, boxes, boxes, st.floats(0, 1), st.booleans(), st.sampled_from(["union", "B", "A"]),
       st.sampled_from(["all", "rgb", "rgba.alpha,depth.Z"]))
def test_keymix_matches_reference(box_b, box_a, box_m, mix, invert, bbox, channels):
    b, a = image(box=box_b, seed=7), image(RGBA + ("depth.Z",), box=box_a, seed=8)
    mask = image(("rgba.alpha",), box=box_m, seed=9)
    out = compute_node(Keymix("K", mix=mix, invertMask=invert, bbox=bbox, channels=channels), B=b, A=a, mask=mask)
    box = {"union": a.bbox.union(b.bbox), "B": b.bbox, "A": a.bbox}[bbox]
    m = np.clip(window(mask, box, "rgba.alpha"), 0, 1)
    m = (1 - m if invert else m) * mix
    chosen = {"all": RGBA + ("depth.Z",), "rgb": RGBA[:3], "rgba.alpha,depth.Z": ("rgba.alpha", "depth.Z")}[channels]
    assert out.bbox == box and out.channels == RGBA + (("depth.Z",) if "depth.Z" in chosen else ())
    for name in out.channels:
        B = window(b, box, name)
        want = B + (window(a, box, name) - B) * m if name in chosen else B
        close(out.channel(name), want, 1e-5)


def test_keymix_mask_unconnected_none_and_animated_mix():
    b, a = image(seed=1), image(seed=2)
    assert torch.equal(compute_node(Keymix("K"), B=b, A=a).pixels, b.pixels)  # no mask: black, so B
    out = compute_node(Keymix("K", maskChannel="none", mix=0.25), B=b, A=a)
    close(out.pixels, (b.pixels + (a.pixels - b.pixels) * 0.25).double().numpy(), 1e-6)
    g = ng.Graph()
    node = g.add("Keymix", "K", B=source(g, "B", b), A=source(g, "A", a), maskChannel="none",
                 mix=Curve([Key(1, 0.0, "linear"), Key(3, 1.0, "linear")]))
    close(g.evaluate(node, 2).pixels, ((a.pixels + b.pixels) / 2).double().numpy(), 1e-6)
    half = g.evaluate(node, 2, dtype=torch.float16)
    torch.testing.assert_close(half.pixels.float(), (a.pixels + b.pixels) / 2, rtol=4e-3, atol=4e-3)


# --- Dissolve ---------------------------------------------------------------------------------------

@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.floats(-1, 4), boxes, boxes, boxes, st.sampled_from(["all", "rgb", "rgba.alpha"]))
def test_dissolve_matches_reference(which, box0, box1, box2, channels):
    imgs = [image(box=box0, seed=10), image(box=box1, seed=11), image(RGBA + ("depth.Z",), box=box2, seed=12)]
    out = compute_node(Dissolve("D", which=which, channels=channels), **{str(i): img for i, img in enumerate(imgs)})
    w = min(max(which, 0.0), 2.0)
    i = int(np.floor(w))
    f = w - i
    if f == 0:
        assert out is imgs[i] or torch.equal(out.pixels, imgs[i].pixels)
        return
    lo, hi = imgs[i], imgs[i + 1]
    box = lo.bbox.union(hi.bbox)
    chosen = {"all": lo.channels + tuple(c for c in hi.channels if c not in lo.channels), "rgb": RGBA[:3],
              "rgba.alpha": ("rgba.alpha",)}[channels]
    assert out.bbox == box and out.channels == lo.channels + tuple(c for c in chosen if c not in lo.channels)
    for name in out.channels:
        L = window(lo, box, name)
        close(out.channel(name), L + (window(hi, box, name) - L) * f if name in chosen else L, 1e-5)


def test_dissolve_animated_which_pulls_only_what_it_shows():
    g = ng.Graph()
    a, b = image(seed=1), image(seed=2)
    node = g.add("Dissolve", "D", **{"0": source(g, "A", a), "1": source(g, "B", b)},
                 which=Curve([Key(1, 0.0, "linear"), Key(5, 1.0, "linear")]))
    assert torch.equal(g.evaluate(node, 1).pixels, a.pixels)
    assert g.evaluator.stats.ran["B"] == 0  # which 0: input 1 is not pulled
    close(g.evaluate(node, 2).pixels, (a.pixels * 0.75 + b.pixels * 0.25).double().numpy(), 1e-6)
    assert torch.equal(g.evaluate(node, 9).pixels, b.pixels)
    # an unconnected input in between reads black (no data)
    g.connect(source(g, "C", image(seed=3)), node, "3")
    node.set(which=1.5)
    out = g.evaluate(node, 1)
    close(out.pixels, (b.pixels * 0.5).double().numpy(), 1e-6)
    node.set(which=2.0)
    assert g.evaluate(node, 1).bbox.empty and g.evaluate(node, 1).channels == RGBA


def test_blend_nodes_on_empty_windows_in_half():
    empty, full = image(box=(3, 3, 3, 8)), image(seed=4)
    for dtype in (torch.float32, torch.float16):
        e, f = empty.to(dtype=dtype), full.to(dtype=dtype)
        out = compute_node(Keymix("K", maskChannel="none", mix=0.5), B=e, A=f, dtype=dtype)
        torch.testing.assert_close(out.pixels.float(), f.pixels.float() * 0.5, rtol=4e-3, atol=4e-3)
        out = compute_node(Dissolve("D", which=0.5), **{"0": e, "1": e}, dtype=dtype)
        assert out.bbox.empty and out.channels == RGBA
        assert compute_node(CopyBBox("C"), B=f, A=e).pixels.numel() == 0


@pytest.mark.gpu
def test_cuda_matches_cpu():
    g = ng.Graph()
    b, a = source(g, "B", image(RGBA + ("depth.Z",), seed=1)), source(g, "A", image(seed=2, box=(2, 1, 12, 9)))
    m = source(g, "M", image(("rgba.alpha",), seed=3, box=(0, 2, 9, 10)))
    nodes = [
        g.add("ShuffleCopy", "S", B=b, A=a, red="alpha", green="white", out2="depth", black="blue"),
        g.add("Remove", "R", input=b, operation="keep", channels="rgb", channels2="depth"),
        g.add("AddChannels", "AC", input=a, channels="depth", channels2="matte", color=(0.5, 1, 2, 3)),
        g.add("CopyBBox", "C", B=b, A=a),
        g.add("Keymix", "K", B=b, A=a, mask=m, mix=0.7, invertMask=True),
        g.add("Dissolve", "D", **{"0": b, "1": a}, which=0.3, channels="rgb"),
    ]
    for node in nodes:
        cpu = g.evaluate(node, 1, device="cpu")
        gpu = g.evaluate(node, 1, device="cuda")
        assert gpu.device.type == "cuda" and gpu.channels == cpu.channels and gpu.bbox == cpu.bbox
        torch.testing.assert_close(gpu.pixels.cpu(), cpu.pixels, rtol=1e-4, atol=1e-4)


def test_shuffle_copy_refuses_what_is_not_a_layer_name():
    with pytest.raises(ng.KnobError) as err:
        ShuffleCopy("S", out="{{{parent.UV_Channel.in}}}")  # a TCL link a script may hold
    assert err.value.knob == "out"
    assert ShuffleCopy("S", out="forward.left", in2="none").knobs.out == "forward.left"
