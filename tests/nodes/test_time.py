"""TimeOffset, FrameHold, FrameRange: frame mapping computed by hand, frame ranges, and caching
proved with compute counters."""

from __future__ import annotations

import pytest
import torch

import nodegraph as ng
from nodegraph import Format, Image, Knobs, Node

FMT = Format.of_size(4, 2)


class TimeTestSource(Node):
    """A clip whose every pixel holds its frame number; frames 1001-1010 (test only)."""

    class Knobs(Knobs):
        pass

    def compute(self, ctx):
        return Image(torch.full((1, 2, 4), float(ctx.frame)), ("rgba.red",), FMT.display, FMT)

    def needs(self, ctx):
        return ()

    def hash_extra(self, ctx):
        return str(ctx.frame).encode()

    def frame_range(self, ranges):
        return (1001, 1010)


def shown(g: ng.Graph, node, frame: int) -> int:
    return int(g.evaluate(node, frame).pixels[0, 0, 0])


@pytest.fixture
def g():
    graph = ng.Graph()
    graph.add("TimeTestSource", "Src")
    return graph


def test_time_offset_shifts_frames_and_range(g):
    node = g.add("TimeOffset", "Off", input=g["Src"], time_offset=5)
    assert [shown(g, node, f) for f in (1006, 1010, 1015)] == [1001, 1005, 1010]
    assert g.frame_range(node) == (1006, 1015)
    node.set(time_offset=-3)
    assert shown(g, node, 1001) == 1004
    assert g.frame_range(node) == (998, 1007)


def test_time_offset_reverse_input(g):
    node = g.add("TimeOffset", "Off", input=g["Src"], reverse_input=True)
    # reversed over the input's own range 1001-1010: the last frame plays first
    assert [shown(g, node, f) for f in (1001, 1002, 1010)] == [1010, 1009, 1001]
    assert g.frame_range(node) == (1001, 1010)
    node.set(time_offset=10)  # reverse first, then shift: frame 1011 shows the last input frame
    assert [shown(g, node, f) for f in (1011, 1020)] == [1010, 1001]
    assert g.frame_range(node) == (1011, 1020)


def test_time_offset_declares_the_frame_it_pulls(g):
    node = g.add("TimeOffset", "Off", input=g["Src"], time_offset=2)
    ev = g.evaluator
    # a node's hash depends on the input frame it needs: Off@1005 hashes like Src@1003 does
    assert ev.hash(node, 1005) != ev.hash(node, 1006)
    ev.stats.reset()
    g.evaluate(node, 1005)
    g.evaluate(g["Src"], 1003)  # already computed for Off@1005
    assert ev.stats.ran["Src"] == 1 and ev.stats.cached["Src"] == 1


def test_frame_hold_computes_its_input_once(g):
    hold = g.add("FrameHold", "Hold", input=g["Src"], firstFrame=1003)
    g.evaluator.stats.reset()
    values = [shown(g, hold, f) for f in range(1001, 1011)]
    assert values == [1003] * 10
    stats = g.evaluator.stats
    assert stats.ran["Src"] == 1  # the held frame is read once ...
    assert stats.ran["Hold"] == 1  # ... and every output frame after the first is a cache hit
    assert stats.cached["Hold"] == 9
    assert g.frame_range(hold) == (1001, 1010)  # FrameHold keeps its input's range


def test_frame_hold_increment(g):
    hold = g.add("FrameHold", "Hold", input=g["Src"], firstFrame=1002, increment=3)
    expected = {1001: 999, 1002: 1002, 1004: 1002, 1005: 1005, 1007: 1005, 1008: 1008, 1010: 1008}
    for frame, held in expected.items():
        assert hold.held_frame(frame) == held
    g.evaluator.stats.reset()
    for f in range(1002, 1011):
        g.evaluate(hold, f)
    assert g.evaluator.stats.ran["Src"] == 3  # 1002, 1005, 1008
    assert shown(g, hold, 1007) == 1005


def test_frame_hold_accepts_nuke12_knob_name():
    node = ng.registry.get("FrameHold")("Hold", first_frame=7)
    assert node["firstFrame"] == 7


def test_frame_range_sets_range_and_passes_pixels(g):
    fr = g.add("FrameRange", "FR", input=g["Src"], first_frame=1003, last_frame=1005)
    assert g.frame_range(fr) == (1003, 1005)
    # pixels pass through unchanged, inside and outside the range, sharing the input's hash
    assert shown(g, fr, 1004) == 1004 and shown(g, fr, 1009) == 1009
    assert g.evaluator.hash(fr, 1009) == g.evaluator.hash(g["Src"], 1009)
    fr.set(last_frame=1000)
    assert fr.check()


def test_time_nodes_compose(g):
    off = g.add("TimeOffset", "Off", input=g["Src"], time_offset=100)
    hold = g.add("FrameHold", "Hold", input=off, firstFrame=1105)
    assert shown(g, hold, 1) == 1005
    fr = g.add("FrameRange", "FR", input=off, first_frame=1101, last_frame=1102)
    assert g.frame_range(fr) == (1101, 1102) and shown(g, fr, 1102) == 1002
