"""nodegraph.testing: pass and fail with a per-frame, per-channel report; the shipped example runs."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest
import torch

import nodegraph as ng
from nodegraph.io import write_image
from nodegraph.node import Input, Node
from nodegraph.nodes.math import Multiply
from nodegraph.nodes.merge import Merge2
from nodegraph.nodes.time import TimeOffset
from nodegraph.testing import (ImagesContext, assert_frames_match, assert_images_match, compare_images,
                               compute_node)

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "test_shot_regression.py"


@pytest.fixture
def shot(tmp_path: Path) -> tuple[ng.Graph, str]:
    g = ng.Graph()
    bars = g.add("ColorBars", format="16x8")
    g.add("Multiply", name="Grade", input=bars, value=0.5, channels="rgb")
    for f in (1, 2, 3):
        write_image(tmp_path / "ref" / f"grade.{f:04d}.exr", g.evaluate("Grade", f), datatype="float",
                    create_directories=True)
    g.save(tmp_path / "comp.json")
    return g, str(tmp_path / "ref" / "grade.####.exr")


def test_matching_graph_passes_and_returns_stats(shot, tmp_path):
    g, ref = shot
    result = assert_frames_match(g, "Grade", ref)
    assert [f.frame for f in result.frames] == [1, 2, 3]
    assert result.frames[0].comparison["rgba.red"].max_abs == 0.0
    # a document path works too, with a frame subset and channels
    assert assert_frames_match(tmp_path / "comp.json", "Grade", ref, frames="2-3", channels="rgb").ok


def test_mismatch_raises_with_frames_and_channels(shot, tmp_path):
    g, ref = shot
    g.node("Grade").set(value=0.52)
    with pytest.raises(AssertionError) as failure:
        assert_frames_match(g, "Grade", ref, atol=1e-3, diff_dir=tmp_path / "diff")
    text = str(failure.value)
    assert "3 of 3 frame(s) differ" in text and "tolerance 0.001" in text
    assert "frame 1:" in text and "rgba.red: max abs" in text and "PSNR" in text
    assert "rgba.alpha" not in text  # alpha is unchanged, so it is not reported
    assert (tmp_path / "diff" / "diff.0002.exr").exists()
    assert assert_frames_match(g, "Grade", ref, atol=0.03)  # 0.02 * bar values <= 1 is within 0.03


def test_missing_channel_and_frame_are_reported(shot):
    g, ref = shot
    g.add("Keyer", name="Key", input=g.node("Grade"), output="matte.alpha")
    with pytest.raises(AssertionError, match="matte.alpha: missing in B"):
        assert_frames_match(g, "Key", ref)
    with pytest.raises(AssertionError, match=r"frame 4:\n\s+B: .*grade\.0004\.exr"):
        assert_frames_match(g, "Grade", ref, frames="3-4")


def test_image_helpers():
    fmt = ng.Format.of_size(2, 1)
    a = ng.Image(torch.tensor([[[0.0, 1.0]]]), ("rgba.red",), fmt.display, fmt)
    b = ng.Image(torch.tensor([[[0.0, 0.9]]]), ("rgba.red",), fmt.display, fmt)
    stats = compare_images(a, b)["rgba.red"]
    assert stats.max_abs == pytest.approx(0.1) and stats.rms == pytest.approx(np.sqrt(0.01 / 2))
    assert stats.psnr == pytest.approx(10 * np.log10(2 / 0.01), rel=1e-5)
    assert assert_images_match(a, b, atol=0.11).ok
    with pytest.raises(AssertionError, match=r"images differ .*\n\s+rgba\.red: max abs 0\.1"):
        assert_images_match(a, b, atol=0.05)


def test_shipped_example_passes(tmp_path):
    spec = importlib.util.spec_from_file_location("shot_regression_example", EXAMPLE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    doc = module.build_shot(tmp_path)
    module.test_comp_matches_its_reference(doc)
    module.test_a_changed_key_is_caught(doc)


class _Probe(Node):
    """Test node: records the context ``compute`` gets and returns its input."""

    type_name = "_TestComputeNodeProbe"
    inputs = (Input("input"), Input("mask", required=False))

    def compute(self, ctx):
        self.seen = ctx
        return ctx.input("input")


def _rgba(*values: float) -> ng.Image:
    fmt = ng.Format.of_size(2, 1)
    return ng.Image(torch.tensor(values, dtype=torch.float32)[:, None, None].expand(-1, 1, 2).clone(),
                    ng.channels.RGBA, fmt.display, fmt)


def test_compute_node_runs_a_node_on_given_images():
    img = _rgba(0.2, 0.4, 0.6, 0.5)
    out = compute_node(Multiply("Mul", value=2.0, channels="rgb"), input=img)
    assert out.pixels[:, 0, 0].tolist() == pytest.approx([0.4, 0.8, 1.2, 0.5])
    # several inputs by name; an optional input given as None is left unconnected
    plus = compute_node(Merge2("Merge1", operation="plus"), A=img, B=_rgba(1.0, 1.0, 1.0, 1.0), mask=None)
    assert plus.pixels[:, 0, 1].tolist() == pytest.approx([1.2, 1.4, 1.6, 1.5])


def test_compute_node_context_offers_what_nodes_use():
    img = _rgba(0.1, 0.2, 0.3, 1.0)
    probe = _Probe("P")
    assert compute_node(probe, frame=12, dtype=torch.float64, input=img) is img
    ctx = probe.seen
    assert isinstance(ctx, ImagesContext) and ctx.node is probe
    assert (ctx.frame, ctx.device, ctx.dtype) == (12, torch.device("cpu"), torch.float64)
    assert ctx.connected == {"input": None} and ctx.has_input("input") and not ctx.has_input("mask")
    assert ctx.input("input", frame=3) is img  # the same image at every frame
    assert ctx.input("mask") is None and ctx.input_range("input") is None
    other = ctx.at(20)
    assert (other.frame, other.node, other.dtype) == (20, probe, torch.float64) and other.input("input") is img
    assert probe.needs(ctx) == [("input", 12)]  # the default needs reads ctx.connected and ctx.frame
    with pytest.raises(ng.GraphError, match="no input 'matte'"):
        ctx.input("matte")
    with pytest.raises(ng.GraphError, match="no input 'imput'"):  # a misspelt input is not ignored
        compute_node(probe, imput=img)
    assert compute_node(probe, input=img, matte=None) is img  # None is "not connected", whatever the name


def test_images_context_drives_other_hooks():
    img = _rgba(0.1, 0.2, 0.3, 1.0)
    node = TimeOffset("T", time_offset=5)
    assert node.needs(ImagesContext(node, frame=10, input=img)) == [("input", 5)]
    assert node.needs(ImagesContext(node, frame=10)) == []
    assert compute_node(node, frame=10, input=img) is img
