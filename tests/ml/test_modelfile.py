"""The .cat model file: round trip with bit-identical outputs, no pickle, checksums, atomic writes,
and clear errors for files that are not ours (Nuke .cat, TorchScript, truncated, newer)."""

from __future__ import annotations

import io
import json
import os
import zipfile
from pathlib import Path

import pytest
import torch

from nodegraph.errors import NodeGraphError
from nodegraph.ml.modelfile import FORMAT_VERSION, ModelFileError, load_cat, read_cat_info, save_cat
from nodegraph.ml.network import NetworkConfig, build_network

CFG = NetworkConfig(4, 3, widths=(4, 8, 8), enc_blocks=(1, 1, 1), dec_blocks=(1, 1, 1))
RGBA = ["rgba.red", "rgba.green", "rgba.blue", "rgba.alpha"]


@pytest.fixture
def saved(tmp_path) -> tuple[Path, torch.nn.Module]:
    torch.manual_seed(3)
    net = build_network(CFG)
    with torch.no_grad():  # move away from the init so a broken load would show
        for p in net.parameters():
            p.add_(torch.randn_like(p) * 0.01)
    path = save_cat(tmp_path / "model.cat", net, config=CFG, channels_in=RGBA, channels_out=RGBA[:3],
                    model_id="shot010_paint", training={"steps": 10, "loss": 0.01})
    return path, net.eval()


def test_round_trip_bit_identical(saved):
    path, net = saved
    loaded = load_cat(path)
    assert not loaded.module.training and loaded.config == CFG
    x = torch.randn(1, 4, 33, 21)
    with torch.no_grad():
        assert torch.equal(loaded.module(x), net(x))
    meta = loaded.meta
    assert meta["format"] == "nodegraph.cat" and meta["format_version"] == FORMAT_VERSION
    assert meta["kind"] == "nodegraph-network" and meta["model_id"] == "shot010_paint"
    assert meta["channels_in"] == RGBA and loaded.channels_out == RGBA[:3]
    assert meta["output_scale"] == 1 and meta["knobs"] == [] and meta["transfer"] == "slog1p"
    assert meta["training"] == {"steps": 10, "loss": 0.01}
    assert read_cat_info(path) == meta


def test_compiled_module_saves_plain_keys(tmp_path):
    net = build_network(CFG)
    wrapped = torch.nn.Module()
    wrapped._orig_mod = net  # what torch.compile's wrapper looks like
    path = save_cat(tmp_path / "c.cat", wrapped, config=CFG, channels_in=RGBA, channels_out=RGBA[:3], model_id="m")
    load_cat(path)


def test_only_json_and_safetensors_no_pickle(saved):
    path, _ = saved
    with zipfile.ZipFile(path) as zf:
        assert sorted(zf.namelist()) == ["model.json", "weights.safetensors"]
        assert not any(b"pickle" in zf.read(n)[:64] for n in zf.namelist())
        json.loads(zf.read("model.json"))
    assert [p.name for p in path.parent.iterdir()] == ["model.cat"]


def rewrite(path: Path, **replace: bytes) -> None:
    with zipfile.ZipFile(path) as zf:
        entries = {n: zf.read(n) for n in zf.namelist()}
    entries.update(replace)
    with zipfile.ZipFile(path, "w") as zf:
        for n, data in entries.items():
            zf.writestr(n, data)


def test_checksum_tamper_detected(saved):
    path, _ = saved
    with zipfile.ZipFile(path) as zf:
        weights = bytearray(zf.read("weights.safetensors"))
    weights[-3] ^= 0x40
    rewrite(path, **{"weights.safetensors": bytes(weights)})
    with pytest.raises(ModelFileError, match="checksum") as err:
        load_cat(path)
    assert str(path) in str(err.value)


def test_newer_version_and_foreign_meta(saved):
    path, _ = saved
    meta = read_cat_info(path)
    rewrite(path, **{"model.json": json.dumps({**meta, "format_version": FORMAT_VERSION + 1}).encode()})
    with pytest.raises(ModelFileError, match="newer"):
        load_cat(path)
    rewrite(path, **{"model.json": json.dumps({**meta, "format": "other"}).encode()})
    with pytest.raises(ModelFileError, match="not a nodegraph model file"):
        read_cat_info(path)
    rewrite(path, **{"model.json": b"{not json"})
    with pytest.raises(ModelFileError, match="model.json"):
        read_cat_info(path)


def test_non_zip_looks_like_nuke_cat(tmp_path):
    path = tmp_path / "Nuke_CopyCat.cat"
    path.write_bytes(b"\x08\x01\x12\x07CatFile" + os.urandom(200))
    with pytest.raises(ModelFileError) as err:
        load_cat(path)
    msg = str(err.value)
    assert "Nuke" in msg and "CatFileCreator" in msg and ".pt" in msg and str(path) in msg
    assert isinstance(err.value, NodeGraphError)


def test_foreign_zip_and_torchscript(tmp_path):
    path = tmp_path / "foreign.cat"
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("readme.txt", "hello")
    with pytest.raises(ModelFileError, match="without model.json"):
        load_cat(path)
    ts = tmp_path / "model.pt"  # the layout of a TorchScript archive (never unpickled, so fake data)
    with zipfile.ZipFile(ts, "w") as zf:
        for name in ("model/data.pkl", "model/constants.pkl", "model/code/__torch__.py", "model/version"):
            zf.writestr(name, b"\x80\x02")
    with pytest.raises(ModelFileError, match="TorchScript"):
        load_cat(ts)


@pytest.mark.parametrize("keep", [0, 10, 200, -100])
def test_truncated(saved, keep):
    path, _ = saved
    data = path.read_bytes()
    path.write_bytes(data[:keep] if keep >= 0 else data[:keep])
    with pytest.raises(ModelFileError) as err:
        load_cat(path)
    assert str(path) in str(err.value)
    assert "Nuke" not in str(err.value)


def test_missing_file(tmp_path):
    with pytest.raises(ModelFileError, match="does not exist"):
        read_cat_info(tmp_path / "nope.cat")


def test_atomic_save_leaves_nothing_on_failure(saved, tmp_path, monkeypatch):
    path, net = saved
    before = path.read_bytes()
    import nodegraph.ml.modelfile as mf

    def boom(*a, **k):
        raise RuntimeError("disk full")

    monkeypatch.setattr(mf.os, "replace", boom)
    with pytest.raises(RuntimeError):
        save_cat(path, net, config=CFG, channels_in=RGBA, channels_out=RGBA[:3], model_id="x")
    assert [p.name for p in tmp_path.iterdir()] == ["model.cat"] and path.read_bytes() == before
    monkeypatch.undo()
    with pytest.raises(ModelFileError, match="channel"):
        save_cat(tmp_path / "bad.cat", net, config=CFG, channels_in=RGBA[:3], channels_out=RGBA[:3], model_id="x")
    assert not (tmp_path / "bad.cat").exists()


def test_loads_on_device_argument(saved):
    path, _ = saved
    loaded = load_cat(path, device="cpu")
    assert next(loaded.module.parameters()).device.type == "cpu"
    assert isinstance(io.BytesIO(path.read_bytes()).read(2), bytes)
