"""The .ost resume file: safetensors tensors plus a JSON structure, no pickle, exact round trips."""

from __future__ import annotations

import json
import struct

import pytest
import torch

from nodegraph.ml.state import STATE_VERSION, StateFileError, load_state, pack, save_state, unpack


def test_pack_unpack_round_trip():
    value = {"a": (1, 2.5, "x"), "b": [None, True], 3: {"t": torch.arange(4)}, "__odd": 1}
    tensors: dict = {}
    packed = pack(value, tensors, "p")
    json.dumps(packed)  # plain JSON
    out = unpack(json.loads(json.dumps(packed)), tensors)
    assert out["a"] == (1, 2.5, "x") and out["b"] == [None, True] and out["__odd"] == 1
    assert torch.equal(out[3]["t"], torch.arange(4))


def test_optimizer_and_rng_round_trip(tmp_path):
    model = torch.nn.Linear(3, 2)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3, betas=(0.9, 0.99))
    model(torch.randn(4, 3)).sum().backward()
    opt.step()
    gen = torch.Generator().manual_seed(5)
    path = tmp_path / "x.ost"
    save_state(path, {"step": 17, "model": dict(model.state_dict()), "optimizer": opt.state_dict(),
                      "rng": {"sampler": gen.get_state()}, "loss": float("nan")})
    state = load_state(path)
    assert state["step"] == 17
    model2 = torch.nn.Linear(3, 2)
    model2.load_state_dict(state["model"])
    opt2 = torch.optim.AdamW(model2.parameters(), lr=1e-3)
    opt2.load_state_dict(state["optimizer"])
    assert opt2.param_groups[0]["betas"] == (0.9, 0.99)
    for p1, p2 in zip(model.parameters(), model2.parameters()):
        s1, s2 = opt.state[p1], opt2.state[p2]
        assert torch.equal(s1["exp_avg"], s2["exp_avg"]) and torch.equal(s1["step"], s2["step"])
    gen2 = torch.Generator()
    gen2.set_state(state["rng"]["sampler"])
    assert torch.equal(torch.rand(3, generator=gen), torch.rand(3, generator=gen2))
    # a safetensors file: 8-byte header length, then a JSON header (never a pickle)
    raw = path.read_bytes()
    (n,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8:8 + n])
    assert json.loads(header["__metadata__"]["nodegraph.ost"])["version"] == STATE_VERSION
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


@pytest.mark.parametrize("content", [b"", b"garbage" * 10, b"\x80\x04\x95pickle"])
def test_bad_files_raise(tmp_path, content):
    path = tmp_path / "bad.ost"
    path.write_bytes(content)
    with pytest.raises(StateFileError, match="bad.ost"):
        load_state(path)


def test_missing_and_foreign_files(tmp_path):
    from safetensors.torch import save_file

    with pytest.raises(StateFileError, match="does not exist"):
        load_state(tmp_path / "none.ost")
    save_file({"a": torch.zeros(1)}, str(tmp_path / "other.ost"))
    with pytest.raises(StateFileError, match="not a nodegraph resume file"):
        load_state(tmp_path / "other.ost")
