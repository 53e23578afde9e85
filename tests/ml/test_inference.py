"""The Inference node and nodegraph.ml.infer: model runs, channel contract, tiling, OOM, cache, knobs."""

from __future__ import annotations

import types
import warnings

import pytest
import torch
from torch import nn

import nodegraph as ng
from nodegraph import channels as chans
from nodegraph.errors import ChannelError, KnobError, NodeGraphError
from nodegraph.image import Box, Format, Image
from nodegraph.ml import infer
from nodegraph.ml import modelfile
from nodegraph.ml.modelfile import save_cat
from nodegraph.ml.network import NetworkConfig, build_network
from nodegraph.ml.transfer import decode, encode
from nodegraph.testing import compute_node

TINY = dict(size="small", widths=(4, 4, 4), enc_blocks=(1, 0, 0), dec_blocks=(0, 0, 1), scales=2)


def tiny_cat(path, cin=3, cout=3, knobs=(), seed=0):
    torch.manual_seed(seed)
    config = NetworkConfig(in_channels=cin, out_channels=cout, **TINY)
    net = build_network(config)
    with torch.no_grad():  # make the correction visible (the default head starts near zero)
        net.head.weight.mul_(50)
    names_in = list(chans.RGBA[:cin]) if cin <= 4 else [f"x.c{i}" for i in range(cin)]
    names_out = list(chans.RGBA[:cout]) if cout != 1 else ["matte.alpha"]
    return save_cat(path, net, config=config, channels_in=names_in, channels_out=names_out, model_id="tiny",
                    knobs=knobs)


def image(c=4, h=40, w=56, names=chans.RGBA, seed=1, bbox=None):
    torch.manual_seed(seed)
    box = bbox or Box(0, 0, w, h)
    return Image(torch.rand(c, box.height, box.width) * 2, tuple(names[:c]), box, Format.of_size(w, h))


@pytest.fixture(autouse=True)
def _fresh_cache():
    infer.model_cache.clear()
    yield
    infer.model_cache.clear()


def test_matches_direct_module_call_and_passes_other_channels(tmp_path):
    path = tiny_cat(tmp_path / "m.cat")
    img = image()
    out = compute_node(ng.registry.get("Inference")("Inference1", modelFile=str(path)), input=img)
    module = modelfile.load_cat(path).module
    with torch.no_grad():
        expect = decode(module(encode(img.select(chans.RGB).pixels[None])))[0]
    assert out.channels == img.channels
    torch.testing.assert_close(out.select(chans.RGB).pixels, expect, atol=1e-5, rtol=1e-5)
    assert torch.equal(out.channel("rgba.alpha"), img.channel("rgba.alpha"))
    assert (out.select(chans.RGB).pixels - img.select(chans.RGB).pixels).abs().max() > 1e-3  # it did something


def test_in_a_graph_with_hash_and_cache(tmp_path):
    path = tiny_cat(tmp_path / "m.cat")
    g = ng.Graph()
    c = g.add("Constant", "C", color=(0.2, 0.4, 0.6, 1.0), format="64x32")
    g.add("Inference", "Inf", input=c, modelFile=str(path))
    loads = infer.model_cache.loads
    a = g.evaluate("Inf", 1)
    h1 = g.evaluator.hash("Inf", 1)
    assert a.pixels.shape == (4, 32, 64)
    assert infer.model_cache.loads == loads + 1
    g.evaluate("Inf", 2)
    g["Inf"]["tileSize"] = 32
    g.evaluate("Inf", 1)
    assert infer.model_cache.loads == loads + 1  # loaded once per process, whatever the frame or tiling
    tiny_cat(path, seed=5)  # a new file at the same path: new hash, reloaded
    import os
    os.utime(path, ns=(1, 1))
    assert g.evaluator.hash("Inf", 1) != h1
    g.evaluate("Inf", 1)
    assert infer.model_cache.loads == loads + 2


def test_output_channels_and_matte_model(tmp_path):
    path = tiny_cat(tmp_path / "m.cat", cin=4, cout=1)
    img = image(bbox=Box(4, 2, 40, 30))
    out = compute_node(ng.registry.get("Inference")("I", modelFile=str(path)), input=img)
    assert out.channels == img.channels + ("matte.alpha",)
    assert out.bbox == img.bbox


def test_missing_channels_named(tmp_path):
    path = tiny_cat(tmp_path / "m.cat", cin=4)
    img = image(c=3)
    with pytest.raises(ChannelError) as exc:
        compute_node(ng.registry.get("Inference")("I", modelFile=str(path)), input=img)
    msg = str(exc.value)
    assert "rgba.alpha" in msg and "rgba.red, rgba.green, rgba.blue" in msg and exc.value.node == "I"


def test_empty_and_missing_model_file(tmp_path):
    node = ng.registry.get("Inference")("I")
    with pytest.raises(KnobError, match="modelFile"):
        compute_node(node, input=image())
    node.set(modelFile=str(tmp_path / "nope.cat"))
    with pytest.raises(NodeGraphError, match="does not exist"):
        compute_node(node, input=image())


class Scaled(nn.Module):
    """A 3x3 conv then a 2x nearest upscale: a model with output scale 2."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 3, 3, padding=1)

    def forward(self, x):
        return torch.nn.functional.interpolate(self.conv(x), scale_factor=2, mode="nearest")


def fake_model(module, cin=chans.RGB, cout=chans.RGB, **meta):
    base = {"channels_in": list(cin), "channels_out": list(cout), "transfer": "none", "knobs": []}
    base.update(meta)
    return modelfile.LoadedModel(module=module, config=None, meta=base)


def patch_loader(monkeypatch, model):
    calls = []

    def load(path, device="cpu"):
        calls.append((str(path), str(device)))
        return model
    monkeypatch.setattr(modelfile, "load_cat", load)
    return calls


def test_output_scale_scales_window_and_format(tmp_path, monkeypatch):
    (tmp_path / "s.cat").write_bytes(b"x")
    module = Scaled().eval()
    patch_loader(monkeypatch, fake_model(module, output_scale=2))
    img = image(bbox=Box(2, 4, 50, 36))
    out = compute_node(ng.registry.get("Inference")("I", modelFile=str(tmp_path / "s.cat"), tileSize=24,
                                                    tileOverlap=8), input=img)
    assert out.channels == chans.RGB
    assert out.bbox == Box(4, 8, 100, 72) and out.format.display == Box(0, 0, 112, 80)
    with torch.no_grad():
        expect = module(img.select(chans.RGB).pixels[None])[0]
    torch.testing.assert_close(out.pixels, expect, atol=1e-5, rtol=1e-5)


def test_tiling_equals_untiled_small_conv():
    torch.manual_seed(0)
    conv = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 2, 3, padding=1)).eval()
    x = torch.rand(2, 3, 90, 130)
    with torch.no_grad():
        whole = infer.run_tiled(conv, x, tile=0, overlap=0)
        tiled = infer.run_tiled(conv, x, tile=40, overlap=8, max_batch=3)
    assert tiled.shape == whole.shape
    torch.testing.assert_close(tiled, whole, atol=1e-5, rtol=1e-5)
    # without overlap the tile borders would show: the blend is what makes it seamless
    with torch.no_grad():
        seams = infer.run_tiled(conv, x, tile=40, overlap=0)
    assert (seams - whole).abs().max() > 1e-3


def test_tiling_equals_untiled_network(tmp_path):
    path = tiny_cat(tmp_path / "m.cat")
    img = image(h=70, w=100)
    node = ng.registry.get("Inference")("I", modelFile=str(path))
    whole = compute_node(node, input=img)
    node.set(tileSize=48, tileOverlap=32)
    tiled = compute_node(node, input=img)
    torch.testing.assert_close(tiled.pixels, whole.pixels, atol=2e-3, rtol=0)


def test_weights_sum_to_one():
    x = torch.ones(1, 1, 77, 101)
    y = infer.run_tiled(lambda t: t, x, tile=32, overlap=12)
    torch.testing.assert_close(y, x)


class OOMAbove(nn.Module):
    """Raises CUDA out-of-memory for tiles with more than ``limit`` pixels (or always)."""

    def __init__(self, limit=None):
        super().__init__()
        self.limit = limit
        self.sizes = []

    def forward(self, x):
        self.sizes.append(tuple(x.shape))
        if self.limit is None or x.shape[-1] * x.shape[-2] > self.limit:
            raise torch.cuda.OutOfMemoryError("CUDA out of memory (injected)")
        return x * 2


def test_oom_retries_with_smaller_tiles():
    fake = OOMAbove(limit=40 * 40)
    x = torch.rand(1, 3, 100, 120)
    y = infer.run_with_retries(fake, x, tile=0, overlap=8, max_batch=4)
    torch.testing.assert_close(y, x * 2)
    assert max(h * w for _, _, h, w in fake.sizes[-3:]) <= 40 * 40


def test_oom_falls_back_to_cpu_with_warning():
    x = torch.rand(1, 3, 64, 64)
    with pytest.warns(RuntimeWarning, match="Inference7.*CPU"):
        y = infer.run_with_retries(OOMAbove(limit=None), x, tile=64, overlap=8,
                                   fallback=lambda: (lambda t: t * 3), name="Inference7")
    torch.testing.assert_close(y, x * 3)
    with pytest.raises(NodeGraphError, match="out of memory"):
        infer.run_with_retries(OOMAbove(limit=None), x, tile=64, overlap=8)


def test_oom_in_node_retries(tmp_path, monkeypatch):
    (tmp_path / "f.cat").write_bytes(b"x")
    patch_loader(monkeypatch, fake_model(OOMAbove(limit=32 * 32), supports_batch=True))
    img = image(c=3, names=chans.RGB, h=50, w=70)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        out = compute_node(ng.registry.get("Inference")("I", modelFile=str(tmp_path / "f.cat"), tileOverlap=4),
                           input=img)
    torch.testing.assert_close(out.pixels, img.pixels * 2)


KNOBS = [
    {"name": "despill_strength", "type": "float", "default": 0.0, "min": 0, "max": 10},
    {"name": "gamma_input", "type": "enum", "default": "sRGB", "choices": ["sRGB", "Linear"]},
    {"name": "refine", "type": "bool", "default": True},
    {"name": "steps", "type": "int", "default": 1, "min": 1, "max": 4},
    {"name": "offset", "type": "xy", "default": [0, 0]},
]


class KnobModule(nn.Module):
    def __init__(self):
        super().__init__()
        self.despill_strength = 0.0
        self.gamma_input = 0
        self.seen = []

    def forward(self, x):
        self.seen.append((self.despill_strength, self.gamma_input, getattr(self, "refine", None)))
        return x + self.despill_strength


def test_knob_values_set_before_forward(tmp_path, monkeypatch):
    (tmp_path / "k.cat").write_bytes(b"x")
    module = KnobModule()
    patch_loader(monkeypatch, fake_model(module, knobs=KNOBS))
    img = image(c=3, names=chans.RGB)
    node = ng.registry.get("Inference")("I", modelFile=str(tmp_path / "k.cat"),
                                        knobValues={"despill_strength": 2.5, "gamma_input": "Linear"})
    out = compute_node(node, input=img)
    torch.testing.assert_close(out.pixels, img.pixels + 2.5)
    assert module.seen[-1] == (2.5, 1, True)  # enum -> index for an int attribute; defaults applied
    d1 = node.static_digest()
    node.set(knobValues='{"despill_strength": 3}')  # JSON text accepted too
    assert node.static_digest() != d1
    compute_node(node, input=img)
    assert module.seen[-1][0] == 3.0


@pytest.mark.parametrize("values, knob, match", [
    ({"nope": 1}, "knobValues.nope", "no custom knob"),
    ({"despill_strength": 11}, "knobValues.despill_strength", "outside the range"),
    ({"despill_strength": "a"}, "knobValues.despill_strength", "expected a float"),
    ({"gamma_input": "Log"}, "knobValues.gamma_input", "expected one of"),
    ({"refine": 1}, "knobValues.refine", "expected a bool"),
    ({"steps": 1.5}, "knobValues.steps", "expected an int"),
    ({"offset": [1]}, "knobValues.offset", "2 numbers"),
])
def test_knob_validation(tmp_path, monkeypatch, values, knob, match):
    (tmp_path / "k.cat").write_bytes(b"x")
    patch_loader(monkeypatch, fake_model(KnobModule(), knobs=KNOBS))
    node = ng.registry.get("Inference")("I", modelFile=str(tmp_path / "k.cat"), knobValues=values)
    with pytest.raises(KnobError, match=match) as exc:
        compute_node(node, input=image(c=3, names=chans.RGB))
    assert exc.value.knob == knob and exc.value.node == "I"


def test_knob_values_must_be_object():
    with pytest.raises(KnobError):
        ng.registry.get("Inference")("I", knobValues="[1, 2]")


def test_infer_frames_batches_tiles(tmp_path):
    path = tiny_cat(tmp_path / "m.cat")
    frames = [image(seed=s, w=100).select(chans.RGB).pixels for s in range(3)]
    calls = []
    model = infer.model_cache.get(path, torch.device("cpu"))
    original = model.module.forward
    model.module.forward = types.MethodType(lambda self, x: (calls.append(x.shape[0]), original(x))[1],
                                            model.module)
    y = infer.infer_frames(path, frames, infer.InferenceSettings(tile=32, overlap=24))
    assert max(calls) >= 3 and len(calls) < sum(calls)  # tiles of several frames share forwards
    with torch.no_grad():
        expect = decode(original(encode(torch.stack(frames))))
    torch.testing.assert_close(y, expect, atol=2e-3, rtol=0)


@pytest.mark.gpu
@pytest.mark.parametrize("half", [False, True])
def test_cuda_matches_cpu(tmp_path, half):
    path = tiny_cat(tmp_path / "m.cat")
    img = image(c=3, names=chans.RGB)
    cpu = compute_node(ng.registry.get("Inference")("Inf", modelFile=str(path)), input=img)
    node = ng.registry.get("Inference")("InfGPU", modelFile=str(path), halfPrecision=half)
    gpu = compute_node(node, input=img.to("cuda"), device="cuda")
    assert gpu.device.type == "cuda" and gpu.channels == cpu.channels
    # bf16 weights and activations in half mode; float32 convolutions on CUDA use TF32 tensor cores
    tol = 3e-2 if half else 5e-3
    torch.testing.assert_close(gpu.pixels.float().cpu(), cpu.pixels, rtol=tol, atol=tol)


def test_render_batches_inference_frames(tmp_path, monkeypatch):
    """A one-worker render hands Inference chunks of frames: one model call per chunk, the same
    pixels as frame-by-frame evaluation, every frame written."""
    from nodegraph.io import write_image
    from nodegraph.render import render

    path = tiny_cat(tmp_path / "m.cat")
    for f in range(1, 6):
        write_image(tmp_path / f"in.{f:04d}.exr", image(c=3, names=chans.RGB, seed=f), datatype="float")
    g = ng.Graph()
    read = g.add("Read", file=str(tmp_path / "in.####.exr"))
    inf = g.add("Inference", input=read, modelFile=str(path))
    g.add("Write", input=inf, file=str(tmp_path / "out.####.exr"), channels="rgb", datatype="32 bit float")
    calls = []
    original = infer.infer_frames

    def spy(p, x, *a, **k):
        calls.append(x.shape[0])
        return original(p, x, *a, **k)

    monkeypatch.setattr(infer, "infer_frames", spy)
    result = render(g, batch_frames=4)
    assert result.ok and len(result.written) == 5
    assert calls == [4, 1]  # frames 1-4 together, then frame 5
    calls.clear()
    single = ng.Graph.from_dict(g.to_dict())
    for f in (2, 5):
        expected = single.evaluate("Inference1", f)
        got = ng.Graph()
        back = got.evaluate(got.add("Read", file=str(tmp_path / f"out.{f:04d}.exr")), 1)
        torch.testing.assert_close(back.select(chans.RGB).pixels, expected.select(chans.RGB).pixels,
                                   rtol=1e-5, atol=1e-5)
