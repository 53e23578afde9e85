"""`nodegraph cat create / info / export-torchscript` from the command line."""

from __future__ import annotations

import json

import torch
from typer.testing import CliRunner

from nodegraph.cli import app
from nodegraph.ml.modelfile import load_cat, save_cat
from nodegraph.ml.network import NetworkConfig, build_network


class Keyer(torch.nn.Module):
    """4 channels in and out, with CorridorKey's knob attributes."""

    def __init__(self) -> None:
        super().__init__()
        self.despill_strength = 0.0
        self.gamma_input = 0
        self.refiner_strength = 1.0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.refiner_strength - 0.01 * self.despill_strength + float(self.gamma_input)


runner = CliRunner()
RGBA = "rgba.red,rgba.green,rgba.blue,rgba.alpha"


def test_cat_create_and_info(tmp_path, monkeypatch):
    monkeypatch.setenv("NODEGRAPH_ALLOW_TORCHSCRIPT", "1")  # load_cat below runs the module: opt in
    pt = tmp_path / "CorridorKey.pt"
    torch.jit.script(Keyer()).save(str(pt))
    out = tmp_path / "ck.cat"
    args = ["cat", "create", "--torchscript", str(pt), "--channels-in", RGBA, "--channels-out", RGBA,
            "--model-id", "CorridorKey", "--output-scale", "1", "--knob", "despill_strength:float=0:0..10",
            "--knob", "gamma_input:enum=sRGB,Linear:Linear", "--knob", "refiner_strength:float=1:0..1", "-o", str(out)]
    res = runner.invoke(app, args)
    assert res.exit_code == 0, res.output
    assert str(out) in res.output and load_cat(out).knobs[1]["default"] == "Linear"
    res = runner.invoke(app, ["cat", "info", str(out)])
    assert res.exit_code == 0
    for text in ("model id: CorridorKey", "kind: torchscript", "channels in: rgba.red, rgba.green",
                 "despill_strength:float=0:0..10", "gamma_input:enum=sRGB,Linear:Linear", "module sha256"):
        assert text in res.output
    res = runner.invoke(app, ["cat", "info", str(out), "--json"])
    assert json.loads(res.output)["channels_out"] == RGBA.split(",")
    bad = runner.invoke(app, args[:-2] + ["--knob", "matte:float", "-o", str(tmp_path / "bad.cat")])
    assert bad.exit_code == 1 and "'matte' is not an attribute" in bad.output
    assert not (tmp_path / "bad.cat").exists()
    spec = runner.invoke(app, args[:-2] + ["--knob", "matte:float=1:1..0", "-o", str(tmp_path / "bad.cat")])
    assert spec.exit_code == 1 and "matte:float=1:1..0" in spec.output
    res = runner.invoke(app, ["cat", "info", str(pt)])
    assert res.exit_code == 1 and "TorchScript" in res.output


def test_cat_export_torchscript(tmp_path):
    cfg = NetworkConfig(3, 3, widths=(4, 8, 8), enc_blocks=(1, 1, 1), dec_blocks=(1, 1, 1))
    cat = save_cat(tmp_path / "m.cat", build_network(cfg), config=cfg, channels_in=RGBA.split(",")[:3],
                   channels_out=RGBA.split(",")[:3], model_id="m")
    res = runner.invoke(app, ["cat", "export-torchscript", str(cat), "-o", str(tmp_path / "out" / "M.pt")])
    assert res.exit_code == 0, res.output
    assert (tmp_path / "out" / "M.pt").exists() and (tmp_path / "out" / "M.nk").exists()
    assert torch.jit.load(str(tmp_path / "out" / "M.pt"))(torch.rand(1, 3, 8, 8)).shape == (1, 3, 8, 8)
    res = runner.invoke(app, ["cat", "info", str(cat)])
    assert "kind: nodegraph-network" in res.output and "network: in_channels=3" in res.output
