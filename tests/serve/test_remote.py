"""The RemoteInference node against a server on loopback: same result as the Inference node,
tiling for large frames, options, and clear errors without a server or model."""

from __future__ import annotations

import socket

import pytest
import torch

import nodegraph as ng
from nodegraph import channels as chans
from nodegraph.errors import ChannelError, KnobError, NodeGraphError
from nodegraph.image import Box, Format, Image
from nodegraph.ml.torchscript import create_cat_from_torchscript
from nodegraph.serve import ServerUnavailableError
from nodegraph.serve import client as serve_client
from nodegraph.testing import compute_node

from servekit import tiny_cat


@pytest.fixture(autouse=True)
def _fresh_info():
    serve_client._INFO.clear()
    yield
    serve_client._INFO.clear()


def image(c=4, h=40, w=56, seed=1, bbox=None, names=chans.RGBA):
    torch.manual_seed(seed)
    box = bbox or Box(0, 0, w, h)
    return Image(torch.rand(c, box.height, box.width) * 2, tuple(names[:c]), box, Format.of_size(w, h))


def remote(server, model, **knobs):
    host, port = server.address
    return ng.registry.get("RemoteInference")("Remote1", host=host, port=port, model=model, **knobs)


def inference(server, model, **knobs):
    return ng.registry.get("Inference")("Inference1", modelFile=str(server.catalog.get(model).path), **knobs)


def test_equals_local_inference_and_passes_other_channels(server):
    img = image(bbox=Box(3, 2, 51, 38))
    out = compute_node(remote(server, "Denoise"), input=img)
    expect = compute_node(inference(server, "Denoise"), input=img)
    assert out.channels == expect.channels == img.channels and out.bbox == img.bbox
    torch.testing.assert_close(out.pixels, expect.pixels, atol=1e-5, rtol=1e-5)
    assert torch.equal(out.channel("rgba.alpha"), img.channel("rgba.alpha"))
    assert (out.select(chans.RGB).pixels - img.select(chans.RGB).pixels).abs().max() > 1e-2


def test_matte_model_adds_its_channel(server):
    img = image()
    out = compute_node(remote(server, "Matte"), input=img)
    expect = compute_node(inference(server, "Matte"), input=img)
    assert out.channels == img.channels + ("matte.alpha",)
    torch.testing.assert_close(out.channel("matte.alpha"), expect.channel("matte.alpha"), atol=1e-5, rtol=1e-5)


def test_large_frames_are_tiled_and_match(server):
    img = image(h=300, w=420, seed=2)
    node = remote(server, "Denoise", maxMessageBytes=1 << 20, tileOverlap=32)
    before = server.stats["answered"]
    out = compute_node(node, input=img)
    requests = server.stats["answered"] - before
    expect = compute_node(inference(server, "Denoise"), input=img)
    assert requests > 2  # an info request, the scale probe and several tiles
    assert 3 * 300 * 420 * 4 > 1 << 20  # the frame alone is over the limit
    torch.testing.assert_close(out.pixels, expect.pixels, atol=2e-3, rtol=0)


def test_tiles_too_small_for_the_overlap(server):
    node = remote(server, "Denoise", maxMessageBytes=1 << 20, tileOverlap=400)
    with pytest.raises(KnobError, match="tileOverlap"):
        compute_node(node, input=image(h=600, w=600))


def test_knob_values_reach_a_torchscript_model(tmp_path, start_server, monkeypatch):
    monkeypatch.setenv("NODEGRAPH_ALLOW_TORCHSCRIPT", "1")

    class Gain(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.gain = 1.0
            self.mode = 0

        def forward(self, x):
            return x * self.gain + float(self.mode)

    folder = tmp_path / "m"
    folder.mkdir()
    torch.jit.script(Gain()).save(str(tmp_path / "gain.pt"))
    create_cat_from_torchscript(tmp_path / "gain.pt", folder / "Gain.cat", channels_in="rgb", channels_out="rgb",
                                model_id="gain", knobs=["gain:float=1:0..10", "mode:enum=zero,one"])
    server = start_server(folder)
    img = image()
    out = compute_node(remote(server, "Gain", knobValues={"gain": 2.5, "mode": "one"}), input=img)
    expect = compute_node(inference(server, "Gain", knobValues={"gain": 2.5, "mode": "one"}), input=img)
    torch.testing.assert_close(out.pixels, expect.pixels)
    torch.testing.assert_close(out.select(chans.RGB).pixels, img.select(chans.RGB).pixels * 2.5 + 1)
    with pytest.raises(NodeGraphError, match="gain"):
        compute_node(remote(server, "Gain", knobValues={"gain": 20.0}), input=img)  # the server's range check
    with pytest.raises(KnobError, match="no option 'nope'"):
        compute_node(remote(server, "Gain", knobValues={"nope": 1}), input=img)


def test_output_scale_of_the_server(tmp_path, start_server, monkeypatch):
    monkeypatch.setenv("NODEGRAPH_ALLOW_TORCHSCRIPT", "1")

    class Up(torch.nn.Module):
        def forward(self, x):
            return torch.nn.functional.interpolate(x, scale_factor=2.0, mode="nearest")

    folder = tmp_path / "m"
    folder.mkdir()
    torch.jit.script(Up()).save(str(tmp_path / "up.pt"))
    create_cat_from_torchscript(tmp_path / "up.pt", folder / "Up.cat", channels_in="rgb", channels_out="rgb",
                                model_id="up", output_scale=2)
    server = start_server(folder)
    img = image(bbox=Box(4, 2, 50, 40))
    out = compute_node(remote(server, "Up"), input=img)
    expect = compute_node(inference(server, "Up"), input=img)
    assert out.bbox == expect.bbox == Box(8, 4, 100, 80) and out.format == expect.format
    torch.testing.assert_close(out.pixels, expect.pixels)
    tiled = compute_node(remote(server, "Up", maxMessageBytes=1 << 20, tileOverlap=8), input=image(h=400, w=500))
    assert tiled.pixels.shape == (3, 800, 1000)
    torch.testing.assert_close(tiled.pixels, compute_node(inference(server, "Up"), input=image(h=400, w=500)).pixels)


def test_token_knob_or_environment(model_dir, start_server, monkeypatch):
    monkeypatch.delenv("NODEGRAPH_SERVE_TOKEN", raising=False)
    server = start_server(model_dir, token="tok")
    with pytest.raises(NodeGraphError, match="token"):
        compute_node(remote(server, "Matte"), input=image())
    out = compute_node(remote(server, "Matte", token="tok"), input=image())
    assert "matte.alpha" in out.channels
    monkeypatch.setenv("NODEGRAPH_SERVE_TOKEN", "tok")  # a farm's secret, kept out of the saved graph
    assert "matte.alpha" in compute_node(remote(server, "Matte"), input=image()).channels
    with pytest.raises(NodeGraphError, match="wrong token"):
        compute_node(remote(server, "Matte", token="other"), input=image())  # the knob wins


def test_no_server_is_a_clear_error():
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    node = ng.registry.get("RemoteInference")("Remote1", port=port, model="Denoise", timeout=5)
    with pytest.raises(ServerUnavailableError) as info:
        compute_node(node, input=image())
    text = str(info.value)
    assert "Remote1" in text and f"127.0.0.1:{port}" in text and "nodegraph serve" in text


def test_unknown_model_and_empty_model(server):
    with pytest.raises(NodeGraphError, match="no model named 'Nope'.*Denoise"):
        compute_node(remote(server, "Nope"), input=image())
    with pytest.raises(KnobError, match="model is empty"):
        compute_node(remote(server, ""), input=image())


def test_missing_channels(server):
    with pytest.raises(ChannelError, match="Shuffle"):
        compute_node(remote(server, "Denoise"), input=image(c=1, names=("depth.Z",)))


def test_empty_data_window(server):
    img = image(bbox=Box(5, 5, 5, 5))
    out = compute_node(remote(server, "Matte"), input=img)
    assert out.bbox == img.bbox and "matte.alpha" in out.channels


def test_in_a_graph_rendering_frames(server):
    host, port = server.address
    g = ng.Graph()
    c = g.add("Ramp", "R", format="64x48", p0=(0, 0), p1=(64, 48), color=(1.0, 0.5, 0.25, 1.0))
    g.add("RemoteInference", "Remote", input=c, host=host, port=port, model="Denoise")
    g.add("Inference", "Local", input=c, modelFile=str(server.catalog.get("Denoise").path))
    for frame in (1, 2):
        torch.testing.assert_close(g.evaluate("Remote", frame).pixels, g.evaluate("Local", frame).pixels,
                                   atol=1e-5, rtol=1e-5)
