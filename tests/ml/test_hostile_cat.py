"""Hostile and odd model files: every size a .cat declares is bounded before anything is allocated,
and the error names the limit; extra zip entries are refused; odd Inference modelFile paths are
typed errors naming node, knob and file; model files are written with the process umask."""

from __future__ import annotations

import hashlib
import json
import os
import stat
import struct
import zipfile
from pathlib import Path

import pytest
import torch
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from safetensors.torch import save
from typer.testing import CliRunner

import nodegraph as ng
from nodegraph.cli import app
from nodegraph.errors import NodeGraphError
from nodegraph.ml import infer, modelfile, trust
from nodegraph.ml.modelfile import ModelFileError, ModelLimitError, load_cat, read_cat_info, save_cat
from nodegraph.ml.network import NetworkConfig, build_network
from nodegraph.testing import compute_node

TINY = dict(size="small", widths=(4, 4, 4), enc_blocks=(1, 0, 0), dec_blocks=(0, 0, 1), scales=2)
RGB = ["rgba.red", "rgba.green", "rgba.blue"]


@pytest.fixture(autouse=True)
def _fresh_cache():
    infer.model_cache.clear()
    yield
    infer.model_cache.clear()


@pytest.fixture
def good(tmp_path) -> Path:
    config = NetworkConfig(3, 3, **TINY)
    return save_cat(tmp_path / "good.cat", build_network(config), config=config, channels_in=RGB,
                    channels_out=RGB, model_id="tiny")


def entries(path: Path) -> dict[str, bytes]:
    with zipfile.ZipFile(path) as zf:
        return {n: zf.read(n) for n in zf.namelist()}


def rezip(path: Path, items: list[tuple[str, bytes]], deflate: tuple[str, ...] = ("model.json",)) -> Path:
    with zipfile.ZipFile(path, "w") as zf:
        for name, data in items:
            zf.writestr(name, data, compress_type=zipfile.ZIP_DEFLATED if name in deflate else zipfile.ZIP_STORED)
    return path


def with_meta(path: Path, out: Path, weights: bytes | None = None, **changes) -> Path:
    e = entries(path)
    meta = json.loads(e["model.json"])
    meta.update(changes)
    w = e["weights.safetensors"] if weights is None else weights
    meta["weights_sha256"] = hashlib.sha256(w).hexdigest()
    return rezip(out, [("model.json", json.dumps(meta).encode()), ("weights.safetensors", w)])


def test_model_json_bomb_in_cat_info(good, tmp_path):
    e = entries(good)
    meta = json.loads(e["model.json"])
    bomb = json.dumps({**meta, "description": " " * (4 << 20)}).encode()  # 4 MB of spaces: ~4 KB deflated
    path = rezip(tmp_path / "bomb.cat", [("model.json", bomb), ("weights.safetensors", e["weights.safetensors"])])
    assert path.stat().st_size < 100_000
    with pytest.raises(ModelLimitError, match="MAX_META_BYTES"):
        read_cat_info(path)
    res = CliRunner().invoke(app, ["cat", "info", str(path)])
    assert res.exit_code == 1 and "MAX_META_BYTES" in " ".join(res.output.split())


def test_lying_zip_header_is_read_with_a_cap(good, tmp_path):
    """model.json's central-directory size patched to 100 bytes: the reader trusts neither header."""
    e = entries(good)
    meta = json.loads(e["model.json"])
    big = json.dumps({**meta, "description": "x" * 300_000}).encode()
    path = rezip(tmp_path / "lie.cat", [("model.json", big), ("weights.safetensors", e["weights.safetensors"])])
    data = bytearray(path.read_bytes())
    for sig, offset in ((b"PK\x01\x02", 24), (b"PK\x03\x04", 22)):  # uncompressed size fields
        at = data.find(sig)
        data[at + offset:at + offset + 4] = struct.pack("<I", 100)
    path.write_bytes(bytes(data))
    with pytest.raises(ModelFileError, match="model.json"):
        read_cat_info(path)


def test_weights_bomb_is_refused_before_decompression(good, tmp_path):
    zeros = bytes(50 << 20)  # 50 MB of zeros deflate to ~50 KB
    path = tmp_path / "wbomb.cat"
    e = entries(good)
    meta = {**json.loads(e["model.json"]), "weights_sha256": hashlib.sha256(zeros).hexdigest()}
    rezip(path, [("model.json", json.dumps(meta).encode()), ("weights.safetensors", zeros)],
          deflate=("model.json", "weights.safetensors"))
    assert path.stat().st_size < 1 << 20
    with pytest.raises(ModelLimitError, match="size of the network"):
        load_cat(path)
    # in a render: a typed error naming node, knob and file
    node = ng.registry.get("Inference")("Inf", modelFile=str(path))
    img = ng.registry.get("Constant")("C", color=(0.1, 0.2, 0.3, 1.0), format="8x8")
    with pytest.raises(ModelLimitError) as exc:
        compute_node(node, input=compute_node(img))
    assert exc.value.node == "Inf" and exc.value.knob == "modelFile" and exc.value.path == str(path)


def test_compression_ratio_limit(tmp_path):
    config = NetworkConfig(3, 3, **{**TINY, "widths": (16, 16, 16)})
    wide = save_cat(tmp_path / "wide.cat", build_network(config), config=config, channels_in=RGB,
                    channels_out=RGB, model_id="wide")
    e = entries(wide)
    w = e["weights.safetensors"]
    n = int.from_bytes(w[:8], "little")
    zeroed = w[:8 + n] + bytes(len(w) - 8 - n)  # the same tensors, all zero: compresses > 100x
    meta = {**json.loads(e["model.json"]), "weights_sha256": hashlib.sha256(zeroed).hexdigest()}
    path = rezip(tmp_path / "ratio.cat", [("model.json", json.dumps(meta).encode()), ("weights.safetensors", zeroed)],
                 deflate=("model.json", "weights.safetensors"))
    with pytest.raises(ModelLimitError, match="MAX_COMPRESSION_RATIO"):
        load_cat(path)


@pytest.mark.parametrize("network,limit", [
    ({"scales": 1_000_000}, "MAX_SCALES"),
    ({"widths": [1_000_000, 4, 4]}, "MAX_WIDTH"),
    ({"enc_blocks": [10_000, 1, 1]}, "MAX_BLOCKS"),
    ({"kernel": 1001}, "MAX_KERNEL"),
    ({"widths": [4096, 4096, 4096], "enc_blocks": [8, 8, 8], "dec_blocks": [8, 8, 8]}, "MAX_PARAMETERS"),
    ({"scales": 1e400}, "out of range"),
])
def test_huge_network_claims(good, tmp_path, network, limit):
    e = entries(good)
    meta = json.loads(e["model.json"])
    path = with_meta(good, tmp_path / "huge.cat", network={**meta["network"], **network})
    with pytest.raises(ModelFileError, match=limit):
        load_cat(path)
    if limit != "MAX_PARAMETERS":  # a described network out of bounds: even cat info says so
        res = CliRunner().invoke(app, ["cat", "info", str(path)])
        assert res.exit_code == 1 and "invalid network description" in " ".join(res.output.split())


@pytest.mark.parametrize("change,limit", [
    ({"channels_in": ["x.c"] * 5000}, "MAX_CHANNELS"),
    ({"output_scale": 100_000}, "MAX_OUTPUT_SCALE"),
    ({"knobs": [{"name": f"k{i}", "type": "bool", "default": True} for i in range(1000)]}, "MAX_KNOBS"),
])
def test_metadata_limits(good, tmp_path, change, limit):
    with pytest.raises(ModelLimitError, match=limit):
        read_cat_info(with_meta(good, tmp_path / "m.cat", **change))


@pytest.mark.parametrize("change", [{"channels_in": "rgb"}, {"channels_out": [1, 2, 3]}, {"model_id": 5},
                                    {"knobs": "none"}, {"network": [1, 2]}, {"output_scale": 2.5}])
def test_wrong_metadata_types(good, tmp_path, change):
    with pytest.raises(ModelFileError):
        load_cat(with_meta(good, tmp_path / "t.cat", **change))


def test_extra_and_duplicate_entries(good, tmp_path):
    e = entries(good)
    items = [("model.json", e["model.json"]), ("weights.safetensors", e["weights.safetensors"])]
    extra = rezip(tmp_path / "extra.cat", items + [("payload.py", b"print('hi')")])
    with pytest.raises(ModelFileError, match="exactly two entries.*payload.py"):
        read_cat_info(extra)
    with pytest.warns(UserWarning, match="Duplicate name"):
        dup = rezip(tmp_path / "dup.cat", items + [("weights.safetensors", e["weights.safetensors"])])
    with pytest.raises(ModelFileError, match="exactly two entries"):
        load_cat(dup)
    both = rezip(tmp_path / "both.cat", items + [("model.torchscript", b"x")])
    with pytest.raises(ModelFileError, match="exactly two entries"):
        load_cat(both)


def test_tensors_must_be_the_networks(good, tmp_path):
    state = {k: v.clone() for k, v in build_network(NetworkConfig(3, 3, **TINY)).state_dict().items()}
    first = next(iter(state))
    cases = {"an extra tensor": {**state, "evil": torch.zeros(4)},
             "a wrong shape": {**state, first: torch.zeros(state[first].numel())},
             "a missing tensor": {k: v for k, v in state.items() if k != first}}
    for name, tensors in cases.items():
        with pytest.raises(ModelFileError, match="do not fit|more than|holds more"):
            load_cat(with_meta(good, tmp_path / "w.cat", weights=save(tensors)))
    padded = save({**state, "pad": torch.zeros(1 << 20)})  # 4 MB more than the network needs
    with pytest.raises(ModelLimitError, match="size of the network"):
        load_cat(with_meta(good, tmp_path / "p.cat", weights=padded))


class Double(torch.nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * 2.0


@pytest.fixture
def double_pt(tmp_path) -> Path:
    pt = tmp_path / "d.pt"
    torch.jit.script(Double()).save(str(pt))
    return pt


def test_torchscript_entry_size_limit(double_pt, monkeypatch):
    from nodegraph.ml.torchscript import create_cat_from_torchscript

    cat = create_cat_from_torchscript(double_pt, channels_in=RGB, channels_out=RGB, model_id="d")
    monkeypatch.setenv(trust.ENV_ALLOW, "1")
    monkeypatch.setenv(modelfile.ENV_MAX_MODEL_BYTES, "100")
    calls = []
    monkeypatch.setattr(torch.jit, "load", lambda *a, **k: calls.append(a))
    with pytest.raises(ModelLimitError, match="NODEGRAPH_MAX_MODEL_BYTES"):
        load_cat(cat)
    assert calls == []


@settings(max_examples=int(os.environ.get("NODEGRAPH_FUZZ_EXAMPLES", "60")), deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.tuples(st.floats(0, 1, exclude_max=True), st.integers(1, 255)), min_size=1, max_size=4))
@example(flips=[(0.00390625, 1)])  # found by hypothesis: a zlib.error inside the deflated model.json
def test_mutated_cat_bytes_only_give_model_file_errors(good, tmp_path_factory, flips):
    data = bytearray(good.read_bytes())
    for where, xor in flips:
        data[int(where * len(data))] ^= xor
    path = tmp_path_factory.mktemp("fuzz") / "m.cat"
    path.write_bytes(bytes(data))
    try:
        load_cat(path)
    except ModelFileError as err:
        assert err.path == str(path)


# --- odd modelFile paths in the Inference node --------------------------------------------------------

def _odd_paths(tmp_path: Path) -> dict[str, str]:
    folder = tmp_path / "a_folder.cat"
    folder.mkdir()
    loop = tmp_path / "loop.cat"
    loop.symlink_to(loop)
    return {"a directory": str(folder), "a NUL byte": str(tmp_path / "bad\0name.cat"),
            "a name too long": str(tmp_path / ("x" * 5000 + ".cat")), "missing": str(tmp_path / "nope.cat"),
            "a symlink loop": str(loop), "below a file": str(Path(__file__) / "m.cat")}


@pytest.mark.parametrize("case", ["a directory", "a NUL byte", "a name too long", "missing", "a symlink loop",
                                  "below a file"])
def test_odd_model_file_paths_are_typed(tmp_path, case):
    path = _odd_paths(tmp_path)[case]
    g = ng.Graph()
    c = g.add("Constant", "C", color=(0.1, 0.2, 0.3, 1.0), format="8x8")
    g.add("Inference", "Inf", input=c, modelFile=path)
    with pytest.raises(NodeGraphError) as exc:  # the hash (file signature) and the load both
        g.evaluate("Inf", 1)
    err = exc.value
    assert isinstance(err, ModelFileError), repr(err)
    assert err.node == "Inf" and err.knob == "modelFile" and err.path is not None


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads any file")
def test_unreadable_model_file(good):
    good.chmod(0)
    try:
        node = ng.registry.get("Inference")("Inf", modelFile=str(good))
        img = compute_node(ng.registry.get("Constant")("C", format="8x8"))
        with pytest.raises(ModelFileError, match="permission denied") as exc:
            compute_node(node, input=img)
        assert exc.value.knob == "modelFile"
    finally:
        good.chmod(0o644)


def test_model_files_honour_the_umask(tmp_path, double_pt):
    from nodegraph.ml.torchscript import create_cat_from_torchscript, export_torchscript

    pt = double_pt
    old = os.umask(0o022)
    try:
        config = NetworkConfig(3, 3, **TINY)
        files = [save_cat(tmp_path / "n.cat", build_network(config), config=config, channels_in=RGB,
                          channels_out=RGB, model_id="n"),
                 create_cat_from_torchscript(pt, tmp_path / "d.cat", channels_in=RGB, channels_out=RGB, model_id="d"),
                 *export_torchscript(tmp_path / "n.cat", tmp_path / "out" / "n.pt")]
    finally:
        os.umask(old)
    modes = {p.name: oct(stat.S_IMODE(p.stat().st_mode)) for p in files}
    assert set(modes.values()) == {"0o644"}, modes
