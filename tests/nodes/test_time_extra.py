"""TimeClip, Retime, FrameBlend, AppendClip: frame mapping against references written as explicit
frame lists, pixels against numpy, frame ranges, animated knobs, half precision, empty windows,
caching by compute counters, a .nk script read and rendered, CPU/GPU parity."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings, strategies as st

import nodegraph as ng
from nodegraph import Format, Image, Knobs, Node
from nodegraph.curve import Curve, Key
from nodegraph.image import Box
from nodegraph.nuke.reader import read_nk
from test_time import shown  # the frame number an output frame shows (red at x = 0)

FMT = Format.of_size(6, 4)


class TimeExtraSource(Node):
    """A clip (test only) of frames ``first``..``last``: red holds the frame number plus x / 100,
    green the frame squared; ``empty`` gives every frame an empty data window."""

    class Knobs(Knobs):
        first: int = 1001
        """First frame."""
        last: int = 1010
        """Last frame."""
        empty: bool = False
        """Zero-area data window."""

    def compute(self, ctx):
        f = float(ctx.frame)
        if self.knobs.empty:
            return Image(torch.zeros((2, 0, 0), dtype=ctx.dtype), ("rgba.red", "rgba.green"), Box(2, 2, 2, 2), FMT)
        x = torch.arange(FMT.width, dtype=torch.float64) / 100
        red = (f + x).expand(FMT.height, FMT.width)
        green = torch.full((FMT.height, FMT.width), f * f / 1000, dtype=torch.float64)
        return Image(torch.stack([red, green]).to(ctx.dtype), ("rgba.red", "rgba.green"), FMT.display, FMT)

    def needs(self, ctx):
        return ()

    def hash_extra(self, ctx):
        return str(ctx.frame).encode()

    def frame_range(self, ranges):
        return (self.knobs.first, self.knobs.last)


def source_pixels(f: float) -> np.ndarray:
    x = np.arange(FMT.width) / 100
    red = np.broadcast_to(f + x, (FMT.height, FMT.width))
    return np.stack([red, np.full((FMT.height, FMT.width), f * f / 1000)])


@pytest.fixture
def g():
    graph = ng.Graph()
    graph.add("TimeExtraSource", "Src")
    return graph


# --- reference frame lists ---------------------------------------------------------------------

def ref_edge(t: int, first: int, last: int, mode: str) -> int | None:
    """Frame t brought into first..last by spelling out the frames shown (independent of wrap)."""
    clip = list(range(first, last + 1))
    if first <= t <= last:
        return t
    if mode == "black":
        return None
    if mode == "hold":
        return first if t < first else last
    if mode == "loop":
        return clip[(t - first) % len(clip)]
    cycle = clip + clip[-2:0:-1] if len(clip) > 1 else clip  # bounce: 1 2 3 2 | 1 2 3 2 ...
    return cycle[(t - first) % len(cycle)]


@settings(max_examples=200, deadline=None)
@given(t=st.integers(-50, 80), first=st.integers(-5, 10), n=st.integers(1, 12),
       mode=st.sampled_from(["hold", "loop", "bounce", "black"]))
def test_edge_modes_match_frame_lists(t, first, n, mode):
    from nodegraph.nodes.time_extra import wrap

    last = first + n - 1
    assert wrap(t, first, last, mode) == ref_edge(t, first, last, mode)


# --- TimeClip -----------------------------------------------------------------------------------

def test_timeclip_trims_and_holds_by_default(g):
    node = g.add("TimeClip", "TC", input=g["Src"], first=1003, last=1006)
    assert [shown(g, node, f) for f in (1000, 1003, 1005, 1006, 1009)] == [1003, 1003, 1005, 1006, 1006]
    assert g.frame_range(node) == (1003, 1006)


@pytest.mark.parametrize("mode", ["loop", "bounce"])
def test_timeclip_before_after_modes(g, mode):
    node = g.add("TimeClip", "TC", input=g["Src"], first=1002, last=1005, before=mode, after=mode)
    for f in range(990, 1020):
        assert shown(g, node, f) == ref_edge(f, 1002, 1005, mode), f


def test_timeclip_black_outside_has_an_empty_window(g):
    node = g.add("TimeClip", "TC", input=g["Src"], first=1002, last=1005, before="black", after="black")
    out = g.evaluate(node, 1001)
    assert out.bbox.empty and out.channels == ("rgba.red", "rgba.green") and out.format == FMT
    assert g.evaluate(node, 1006).bbox.empty and not g.evaluate(node, 1005).bbox.empty


def test_timeclip_start_at_slips_the_clip_and_its_range(g):
    node = g.add("TimeClip", "TC", input=g["Src"], first=1003, last=1007, frame_mode="start at", frame="1")
    assert [shown(g, node, f) for f in (1, 2, 5)] == [1003, 1004, 1007]
    assert g.frame_range(node) == (1, 5)
    node.set(reverse=True)
    assert [shown(g, node, f) for f in (1, 2, 5)] == [1007, 1006, 1003]


def test_timeclip_expression_frame(g):
    node = g.add("TimeClip", "TC", input=g["Src"], first=1001, last=1010, frame="frame*2 - 1001")
    assert [shown(g, node, f) for f in (1001, 1002, 1004)] == [1001, 1003, 1007]
    node.set(frame="1004")
    assert {shown(g, node, f) for f in (1001, 1005, 1009)} == {1004}
    node.set(frame="no_such_knob + 1")
    with pytest.raises(ng.KnobError) as err:
        g.evaluate(node, 1001)
    assert err.value.knob == "frame"


def test_timeclip_fades(g):
    node = g.add("TimeClip", "TC", input=g["Src"], first=1001, last=1010, fadeIn=3, fadeOut=1)
    for f, gain in [(1001, 1 / 4), (1002, 2 / 4), (1003, 3 / 4), (1004, 1.0), (1009, 1.0), (1010, 1 / 2)]:
        np.testing.assert_allclose(g.evaluate(node, f).pixels.numpy(), source_pixels(f) * gain, rtol=1e-6)


def test_timeclip_animated_first(g):
    node = g.add("TimeClip", "TC", input=g["Src"], last=1010,
                 first=Curve([Key(1001, 1001, "constant"), Key(1005, 1004, "constant")]))
    assert shown(g, node, 1002) == 1002 and shown(g, node, 1005) == 1005 and shown(g, node, 1003) == 1003
    node.set(first=Curve([Key(1001, 1003, "constant")]))
    assert shown(g, node, 1001) == 1003


# --- Retime -------------------------------------------------------------------------------------

def retime_reference(f: int, a: int, b: int, o1: int, speed: float) -> float:
    """Input frame for output f: a straight line through (o1, a) with slope speed, held at the ends."""
    o2 = o1 + (b - a) / speed
    g = min(max(f, o1), o2)
    return a + (g - o1) * speed


@settings(max_examples=60, deadline=None)
@given(f=st.integers(990, 1040), speed=st.sampled_from([0.25, 0.5, 1.0, 1.5, 2.0, 3.0]),
       o1=st.integers(995, 1005))
def test_retime_speed_blends_neighbours(f, speed, o1):
    g = ng.Graph()
    src = g.add("TimeExtraSource", "Src")
    node = g.add("Retime", "R", input=src, **{"input.first": 1001, "input.last": 1010, "output.first": o1,
                                              "speed": speed})
    t = retime_reference(f, 1001, 1010, o1, speed)
    lo = math.floor(t)
    w = t - lo
    want = source_pixels(lo) * (1 - w) + (source_pixels(lo + 1) * w if w > 0 else 0)
    np.testing.assert_allclose(g.evaluate(node, f).pixels.numpy(), want, rtol=1e-6, atol=1e-9)
    node.set(filter="none")
    assert shown(g, node, f) == math.floor(t + 0.5)


def test_retime_range_locks_reverse_and_black(g):
    node = g.add("Retime", "R", input=g["Src"], **{"input.first": 1001, "input.last": 1010, "output.first": 1,
                                                  "speed": 0.5})
    assert g.frame_range(node) == (1, 19)
    node.set(**{"output.last": 10, "output.first_lock": True, "output.last_lock": True})
    assert g.frame_range(node) == (1, 10) and shown(g, node, 10) == 1010 and shown(g, node, 1) == 1001
    node.set(reverse=True)
    assert shown(g, node, 1) == 1010 and shown(g, node, 10) == 1001
    node.set(before="black", after="black")
    assert g.evaluate(node, 0).bbox.empty and g.evaluate(node, 11).bbox.empty


def test_retime_reads_nuke_dotted_knobs():
    text = """Root { first_frame 1 last_frame 20 }
TimeExtraSource { name Src }
Retime {
 input.first 1001
 input.last 1010
 output.first 1
 speed 0.5
 filter none
 name Retime1
}
"""
    res = read_nk(text)
    g = res.graph
    assert not [w for w in res.warnings if "Retime1" in str(w)], res.warnings
    node = g["Retime1"]
    assert node["input.first"] == 1001 and node["speed"] == 0.5 and node["filter"] == "none"
    assert shown(g, node, 3) == 1002  # 1001 + 2 * 0.5


# --- FrameBlend ---------------------------------------------------------------------------------

@pytest.mark.parametrize("numframes", [1, 2, 5])
def test_frameblend_averages_a_centred_window(g, numframes):
    node = g.add("FrameBlend", "FB", input=g["Src"], numframes=numframes)
    frames = [1005 - numframes // 2 + i for i in range(numframes)]
    want = np.mean([source_pixels(f) for f in frames], axis=0)
    np.testing.assert_allclose(g.evaluate(node, 1005).pixels.numpy(), want, rtol=1e-6)


def test_frameblend_range_channels_mix_and_mask(g):
    node = g.add("FrameBlend", "FB", input=g["Src"], userange=True, startframe=1001, endframe=1004,
                 channels="rgba.green", mix=0.5)
    avg = np.mean([source_pixels(f) for f in range(1001, 1005)], axis=0)
    cur = source_pixels(1008)
    want = cur.copy()
    want[1] = cur[1] + (avg[1] - cur[1]) * 0.5
    np.testing.assert_allclose(g.evaluate(node, 1008).pixels.numpy(), want, rtol=1e-6)
    ramp = g.add("Ramp", "M", format="6x4", p0=(0, 0), p1=(6, 0))
    g.connect(ramp, node, "mask")
    m = g.evaluate(ramp, 1).channel("rgba.alpha").numpy()
    want[1] = cur[1] + (avg[1] - cur[1]) * 0.5 * m
    np.testing.assert_allclose(g.evaluate(node, 1008).pixels.numpy(), want, rtol=1e-5)


def test_frameblend_computes_each_input_frame_once(g):
    const = g.add("Constant", "C", format="6x4", color=(0.5, 0.25, 0, 1))
    node = g.add("FrameBlend", "FB", input=const, numframes=7)
    g.evaluate(node, 10)
    assert g.evaluator.stats.ran["C"] == 1  # seven frames of a still input hash alike
    np.testing.assert_allclose(g.evaluate(node, 10).channel("rgba.red").numpy(), 0.5, rtol=1e-6)


def test_frameblend_animated_numframes(g):
    node = g.add("FrameBlend", "FB", input=g["Src"],
                 numframes=Curve([Key(1001, 1, "constant"), Key(1006, 3, "constant")]))
    np.testing.assert_allclose(g.evaluate(node, 1003).pixels.numpy(), source_pixels(1003), rtol=1e-6)
    want = np.mean([source_pixels(f) for f in (1006, 1007, 1008)], axis=0)
    np.testing.assert_allclose(g.evaluate(node, 1007).pixels.numpy(), want, rtol=1e-6)


# --- AppendClip ---------------------------------------------------------------------------------

def test_appendclip_plays_clips_in_sequence_with_a_dissolve():
    g = ng.Graph()
    a = g.add("TimeExtraSource", "A", first=1001, last=1004)
    b = g.add("TimeExtraSource", "B", first=11, last=13)
    node = g.add("AppendClip", "AC", firstFrame=1)
    g.connect(a, node, "0")
    g.connect(b, node, "1")
    assert g.frame_range(node) == (1, 7)
    assert [shown(g, node, f) for f in range(0, 9)] == [1001, 1001, 1002, 1003, 1004, 11, 12, 13, 13]
    node.set(dissolve=2)
    assert g.frame_range(node) == (1, 5)
    # frames 3, 4 overlap: A's 1003, 1004 with B's 11, 12 at weights 1/3 and 2/3
    for f, (fa, wb, fb) in {3: (1003, 1 / 3, 11), 4: (1004, 2 / 3, 12)}.items():
        want = source_pixels(fa) * (1 - wb) + source_pixels(fb) * wb
        np.testing.assert_allclose(g.evaluate(node, f).pixels.numpy(), want, rtol=1e-6)
    assert shown(g, node, 5) == 13
    node.set(dissolve=0, fadeIn=1, fadeOut=1)
    np.testing.assert_allclose(g.evaluate(node, 1).pixels.numpy(), source_pixels(1001) / 2, rtol=1e-6)
    np.testing.assert_allclose(g.evaluate(node, 7).pixels.numpy(), source_pixels(13) / 2, rtol=1e-6)


def test_appendclip_input_without_range_never_ends():
    g = ng.Graph()
    c = g.add("Constant", "C", format="6x4")
    node = g.add("AppendClip", "AC")
    g.connect(c, node, "0")
    g.connect(g.add("TimeExtraSource", "B"), node, "1")
    assert g.frame_range(node) is None
    assert g.evaluate(node, 500).channels == g.evaluate(c, 1).channels


# --- common: half, empty windows, a .nk script, GPU ---------------------------------------------

SETTINGS = {
    "TimeClip": {"first": 1002, "last": 1008, "fadeIn": 2},
    "Retime": {"input.first": 1001, "input.last": 1010, "output.first": 1001, "speed": 0.75},
    "FrameBlend": {"numframes": 3},
    "AppendClip": {"dissolve": 1},
}


def _graph(type_name: str, empty: bool = False) -> tuple[ng.Graph, ng.Node]:
    g = ng.Graph()
    src = g.add("TimeExtraSource", "Src", empty=empty)
    node = g.add(type_name, "N", **SETTINGS[type_name])
    g.connect(src, node, node.inputs[0].name)
    if type_name == "AppendClip":
        g.connect(g.add("TimeExtraSource", "Src2", first=1, last=5, empty=empty), node, "1")
    return g, node


@pytest.mark.parametrize("type_name", list(SETTINGS))
def test_half_precision_and_empty_windows(type_name):
    g, node = _graph(type_name)
    for f in (1002, 1003, 1008):
        full = g.evaluate(node, f)
        half = g.evaluate(node, f, dtype=torch.float16)
        assert half.dtype == torch.float16
        torch.testing.assert_close(half.pixels.float(), full.pixels, rtol=2e-3, atol=2e-3)
    g, node = _graph(type_name, empty=True)
    for dtype in (torch.float32, torch.float16):
        out = g.evaluate(node, 1003, dtype=dtype)
        assert out.bbox.empty and out.dtype == dtype


def test_timeclip_and_frameblend_from_a_nuke_script():
    text = """Root { first_frame 1 last_frame 10 }
TimeExtraSource { name Src }
TimeClip {
 time ""
 first 1003
 last 1006
 before black
 after black
 frame_mode "start at"
 frame 1
 origfirst 1001
 origlast 1010
 origset true
 name TimeClip1
}
FrameBlend {
 numframes 3
 name FrameBlend1
}
"""
    res = read_nk(text)
    g = res.graph
    assert not [w for w in res.warnings if "TimeClip1" in str(w) or "FrameBlend1" in str(w)], res.warnings
    tc, fb = g["TimeClip1"], g["FrameBlend1"]
    assert tc["frame_mode"] == "start at" and tc["before"] == "black" and g.frame_range(tc) == (1, 4)
    assert [shown(g, tc, f) for f in (1, 4)] == [1003, 1006] and g.evaluate(tc, 5).bbox.empty
    # frame 2 averages TimeClip frames 1, 2, 3: input 1003, 1004, 1005
    want = np.mean([source_pixels(f) for f in (1003, 1004, 1005)], axis=0)
    np.testing.assert_allclose(g.evaluate(fb, 2).pixels.numpy(), want, rtol=1e-6)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.parametrize("type_name", list(SETTINGS))
def test_cuda_matches_cpu(type_name):
    g, node = _graph(type_name)
    for f in (1002, 1005):
        cpu = g.evaluate(node, f, device="cpu")
        gpu = g.evaluate(node, f, device="cuda")
        assert gpu.device.type == "cuda"
        torch.testing.assert_close(gpu.pixels.cpu(), cpu.pixels, rtol=1e-5, atol=1e-6)
