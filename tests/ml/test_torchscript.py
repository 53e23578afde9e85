"""TorchScript .cat files (cat create, the CatFileCreator node) and the export of nodegraph networks
for Nuke's Inference node (equality with nodegraph's own output, .nk snippet)."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import pytest
import torch

import nodegraph as ng
from nodegraph.errors import NodeGraphError
from nodegraph.ml import transfer
from nodegraph.ml.modelfile import ModelFileError, knob_attribute_value, load_cat, read_cat_info, save_cat
from nodegraph.ml.network import NetworkConfig, build_network
from nodegraph.ml.torchscript import (create_cat_from_torchscript, export_torchscript, knob_spec,
                                      parse_knob_spec)

RGBA = ["rgba.red", "rgba.green", "rgba.blue", "rgba.alpha"]
KNOBS = ["despill_strength:float=0:0..10", "gamma_input:enum=sRGB,Linear", "refiner_strength:float=1:0..1"]


class Keyer(torch.nn.Module):
    """CorridorKey's I/O: plate rgb + hint alpha in; straight sRGB foreground + linear alpha out."""

    def __init__(self) -> None:
        super().__init__()
        self.despill_strength = 0.0
        self.gamma_input = 0
        self.refiner_strength = 1.0
        self.conv = torch.nn.Conv2d(4, 4, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.conv(x)
        fg = torch.sigmoid(y[:, :3]) - 0.01 * self.despill_strength
        if self.gamma_input == 1:
            fg = fg * 0.5
        alpha = torch.sigmoid(y[:, 3:4]) * self.refiner_strength
        return torch.cat([fg, alpha], dim=1)


@pytest.fixture(autouse=True)
def allow_torchscript(monkeypatch):
    """These tests load TorchScript models they made themselves: opt in explicitly."""
    monkeypatch.setenv("NODEGRAPH_ALLOW_TORCHSCRIPT", "1")


@pytest.fixture
def keyer_pt(tmp_path) -> Path:
    torch.manual_seed(0)
    path = tmp_path / "CorridorKey.pt"
    torch.jit.script(Keyer()).save(str(path))
    return path


def make(keyer_pt, **kw):
    args = dict(channels_in=",".join(RGBA), channels_out=",".join(RGBA), model_id="CorridorKey", knobs=KNOBS)
    args.update(kw)
    return create_cat_from_torchscript(keyer_pt, **args)


def test_create_and_load_round_trip(keyer_pt):
    path = make(keyer_pt)
    assert path == keyer_pt.with_suffix(".cat")
    with zipfile.ZipFile(path) as zf:
        assert sorted(zf.namelist()) == ["model.json", "model.torchscript"]
        assert zf.read("model.torchscript") == keyer_pt.read_bytes()
    loaded = load_cat(path)
    assert loaded.kind == "torchscript" and loaded.transfer == "none" and loaded.config is None
    assert loaded.channels_in == RGBA and loaded.channels_out == RGBA and loaded.output_scale == 1
    assert loaded.knobs == [
        {"name": "despill_strength", "type": "float", "default": 0.0, "min": 0.0, "max": 10.0},
        {"name": "gamma_input", "type": "enum", "default": "sRGB", "choices": ["sRGB", "Linear"]},
        {"name": "refiner_strength", "type": "float", "default": 1.0, "min": 0.0, "max": 1.0},
    ]
    assert read_cat_info(path) == loaded.meta and len(loaded.meta["module_sha256"]) == 64
    x = torch.rand(2, 4, 8, 6)
    ref = torch.jit.load(str(keyer_pt))
    with torch.no_grad():
        assert torch.equal(loaded.module(x), ref(x))
        loaded.module.despill_strength = knob_attribute_value(loaded.knobs[0], 10)
        loaded.module.gamma_input = knob_attribute_value(loaded.knobs[1], "Linear")
        assert loaded.module.gamma_input == 1
        assert not torch.equal(loaded.module(x), ref(x))


def test_knob_specs():
    assert parse_knob_spec("gamma_input:enum=sRGB,Linear:Linear")["default"] == "Linear"
    assert parse_knob_spec("refine:bool=true") == {"name": "refine", "type": "bool", "default": True}
    assert parse_knob_spec("n:int=3:1..")["min"] == 1 and parse_knob_spec("n:int=3:1..")["max"] is None
    assert parse_knob_spec("p:xy=1,2")["default"] == [1.0, 2.0]
    assert parse_knob_spec("bare") == {"name": "bare", "type": "float", "default": 0.0, "min": None, "max": None}
    for spec in KNOBS + ["p:xyz=1,2,3:0..5", "refine:bool=false", "n:int=2:..4"]:
        assert parse_knob_spec(knob_spec(parse_knob_spec(spec))) == parse_knob_spec(spec)
    for bad, words in [("x:float=abc", "x:float=abc"), ("x:colour=1", "unknown type"),
                       ("x:float=20:0..10", "outside"), ("x:enum=", "choices"), ("1x:float", "attribute name"),
                       ("x:float=0:0-10", "MIN..MAX"), ("x:enum=a,b:c", "not one of")]:
        with pytest.raises(ValueError, match=words) as err:
            parse_knob_spec(bad)
        assert repr(bad) in str(err.value)


def test_rejects_bad_knobs_and_channels(keyer_pt, tmp_path):
    with pytest.raises(ModelFileError, match="'matte_gain' is not an attribute") as err:
        make(keyer_pt, knobs=KNOBS + ["matte_gain:float=1"])
    assert "despill_strength" in str(err.value)  # lists what the module has
    with pytest.raises(ModelFileError, match="does not fit"):
        make(keyer_pt, knobs=["gamma_input:float=0"])  # an int attribute
    with pytest.raises(ModelFileError, match="knob spec 'despill_strength:float=x'"):
        make(keyer_pt, knobs=["despill_strength:float=x"])
    with pytest.raises(ModelFileError, match="channels in.*layer.channel"):
        make(keyer_pt, channels_in="rgba.red,green")
    with pytest.raises(ModelFileError, match=r"expected \[1, 3, 64, 64\]"):
        make(keyer_pt, channels_out="rgb")
    assert make(keyer_pt, channels_out="rgb", verify=False, cat_file=tmp_path / "nv.cat").exists()
    with pytest.raises(ModelFileError, match="does not exist"):
        make(tmp_path / "missing.pt")
    fake = tmp_path / "state.pt"
    torch.save({"w": torch.zeros(2)}, fake)
    with pytest.raises(ModelFileError, match="not a TorchScript archive"):
        make(fake)
    assert not keyer_pt.with_suffix(".cat").exists()


def test_foreign_files_still_clear(keyer_pt, tmp_path):
    with pytest.raises(ModelFileError, match="TorchScript.*cat create"):
        load_cat(keyer_pt)  # the bare .pt is not a model file
    path = make(keyer_pt)
    with zipfile.ZipFile(path) as zf:
        entries = {n: zf.read(n) for n in zf.namelist()}
    data = bytearray(entries["model.torchscript"])
    data[len(data) // 2] ^= 1
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("model.json", entries["model.json"])
        zf.writestr("model.torchscript", bytes(data))
    with pytest.raises(ModelFileError, match="module checksum mismatch"):
        load_cat(path)
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("model.json", entries["model.json"])
    with pytest.raises(ModelFileError, match="no model.torchscript"):
        load_cat(path)
    meta = json.loads(entries["model.json"])
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("model.json", json.dumps({**meta, "kind": "onnx"}))
    with pytest.raises(ModelFileError, match="unsupported model kind 'onnx'"):
        read_cat_info(path)


def test_catfilecreator_node(keyer_pt, tmp_path):
    g = ng.Graph()
    node = g.add("CatFileCreator", torchScriptFile=str(keyer_pt), catFile=str(tmp_path / "k.cat"),
                 channelsIn="rgba", channelsOut="rgba", modelId="CorridorKey", knobs=KNOBS)
    assert load_cat(node.create()).knobs[1]["choices"] == ["sRGB", "Linear"]
    node.set(knobs="despill_strength:float=0:0..10; gamma_input:enum=sRGB,Linear")
    assert node.knobs.knobs == KNOBS[:2]
    with pytest.raises(NodeGraphError, match="knob spec 'x:nope'"):
        node.set(knobs=["x:nope"])
    node.set(knobs=["nothere"])
    with pytest.raises(NodeGraphError, match="nothere") as err:
        node.create()
    assert "CatFileCreator" in str(err.value)
    with pytest.raises(NodeGraphError, match="produces no image"):
        g.evaluate(node, 1)
    board = g.add("CheckerBoard2", format="16x8")
    node.connect(input=board) if hasattr(node, "connect") else g.connect(board, node, "input")
    assert torch.equal(g.evaluate(node, 1).pixels, g.evaluate(board, 1).pixels)


# --- export ----------------------------------------------------------------------------------------

@pytest.fixture(params=["4to3", "3to3-nolstm"])
def network_cat(request, tmp_path) -> Path:
    torch.manual_seed(1)
    if request.param == "4to3":
        cfg = NetworkConfig(4, 3, widths=(4, 8, 8), enc_blocks=(1, 1, 1), dec_blocks=(1, 1, 1))
    else:
        cfg = NetworkConfig(3, 3, widths=(4, 8, 8), enc_blocks=(1, 0, 1), dec_blocks=(1, 1, 0), lstm=False)
    net = build_network(cfg)
    with torch.no_grad():
        for p in net.parameters():
            p.add_(torch.randn_like(p) * 0.05)
    return save_cat(tmp_path / "shot010 paint.cat", net, config=cfg, channels_in=RGBA[:cfg.in_channels],
                    channels_out=RGBA[:3], model_id="shot010_paint",
                    knobs=[{"name": "strength", "type": "float", "default": 0.5, "min": 0, "max": 1}])


def test_export_matches_nodegraph(network_cat):
    pt, nk = export_torchscript(network_cat)
    assert pt == network_cat.with_suffix(".pt") and nk == network_cat.with_suffix(".nk")
    loaded = load_cat(network_cat)
    enc, dec = transfer.get(loaded.transfer)
    module = torch.jit.load(str(pt))
    assert module.strength == 0.5  # knobs as attributes
    g = torch.Generator().manual_seed(2)
    for h, w in [(37, 21), (32, 64), (5, 3)]:
        x = torch.randn(1, loaded.config.in_channels, h, w, generator=g) * 4
        with torch.no_grad():
            ours = dec(loaded.module(enc(x)))
            got = module(x)
        assert got.shape == ours.shape and got.dtype == torch.float32
        assert (got - ours).abs().max().item() <= 1e-5
    half = module.half()
    x = torch.rand(1, loaded.config.in_channels, 16, 24, generator=g)
    try:
        with torch.no_grad():
            got = half(x.half())
    except RuntimeError as exc:  # pragma: no cover - a CPU build without half convolutions
        pytest.skip(f"no half convolutions on this CPU: {exc}")
    assert got.dtype == torch.float16
    with torch.no_grad():
        ref = dec(loaded.module(enc(x)))
    torch.testing.assert_close(got.float(), ref, atol=3e-2, rtol=3e-2)


def test_nk_snippet(network_cat):
    _, nk = export_torchscript(network_cat)
    text = nk.read_text()
    assert "CatFileCreator {" in text and " inputs 0" in text
    assert f' torchScriptFile "{network_cat.with_suffix(".pt").resolve().as_posix()}"' in text
    assert ' catFile "' in text and '.nuke.cat"' in text
    assert ' channelsIn "rgba.red, rgba.green, rgba.blue' in text
    assert ' channelsOut "rgba.red, rgba.green, rgba.blue"' in text
    assert ' modelId "shot010_paint"' in text and " outputScale 1" in text
    assert " addUserKnob {7 strength l strength R 0 1}" in text and " strength 0.5" in text
    assert text.count("{") == text.count("}")


def test_export_refuses_torchscript_kind(keyer_pt):
    with pytest.raises(ModelFileError, match="only nodegraph networks"):
        export_torchscript(make(keyer_pt))
