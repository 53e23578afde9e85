"""The documented keying tree, complete: a TorchScript model with CorridorKey's I/O contract and
knobs, packaged with `nodegraph cat create`, run by the Inference node inside the full tree."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import OpenImageIO as oiio
import pytest
import torch
from torch import nn
from typer.testing import CliRunner

from nodegraph.cli import app
from nodegraph.ml import infer
from nodegraph.render import render

EXAMPLE = Path(__file__).parents[2] / "examples" / "keying_tree.py"


class FakeCorridorKey(nn.Module):
    """CorridorKey's contract: [1, 4, H, W] plate (rgb) + hint (alpha) in; straight sRGB foreground
    (rgb) + linear alpha out. Knobs: despill_strength 0..10, gamma_input 0 = sRGB / 1 = Linear,
    refiner_strength 0..1. A simple, exactly known matting rule stands in for the network."""

    def __init__(self) -> None:
        super().__init__()
        self.despill_strength = 0.0
        self.gamma_input = 0
        self.refiner_strength = 1.0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        rgb, hint = x[:, :3], x[:, 3:4]
        if self.gamma_input == 1:  # linear plate: encode to sRGB-ish first (gamma 1/2.2)
            rgb = rgb.clamp(min=0.0) ** (1.0 / 2.2)
        r, g, b = rgb[:, 0:1], rgb[:, 1:2], rgb[:, 2:3]
        spill = (g - torch.maximum(r, b)).clamp(min=0.0)
        g = g - spill * (self.despill_strength / 10.0)
        screen = (spill / 0.05).clamp(0.0, 1.0)
        alpha = hint * (1.0 - self.refiner_strength * screen)
        return torch.cat([r, g, b, alpha], dim=1)


def _srgb_to_linear(v):
    return np.where(v <= 0.04045, v / 12.92, ((v + 0.055) / 1.055) ** 2.4)


def _expected(plate_px, hint_px, despill, refiner):
    r, g, b = (plate_px[..., i].astype(np.float64) for i in range(3))
    spill = np.clip(g - np.maximum(r, b), 0, None)
    g2 = g - spill * despill / 10
    alpha = hint_px * (1 - refiner * np.clip(spill / 0.05, 0, 1))
    return np.stack([r, g2, b], -1), alpha


@pytest.fixture(autouse=True)
def allow_torchscript(monkeypatch):
    """These tests load TorchScript models they made themselves: opt in explicitly."""
    monkeypatch.setenv("NODEGRAPH_ALLOW_TORCHSCRIPT", "1")


@pytest.fixture(scope="module")
def packaged(tmp_path_factory):
    root = tmp_path_factory.mktemp("corridorkey")
    pt = root / "CorridorKey.pt"
    torch.jit.script(FakeCorridorKey()).save(str(pt))
    cat = root / "CorridorKey.cat"
    res = CliRunner().invoke(app, [
        "cat", "create", "--torchscript", str(pt), "--channels-in", "rgba.red,rgba.green,rgba.blue,rgba.alpha",
        "--channels-out", "rgba.red,rgba.green,rgba.blue,rgba.alpha", "--model-id", "CorridorKey",
        "--output-scale", "1", "--knob", "despill_strength:float=0:0..10", "--knob", "gamma_input:enum=sRGB,Linear",
        "--knob", "refiner_strength:float=1:0..1", "-o", str(cat)])
    assert res.exit_code == 0, res.output
    spec = importlib.util.spec_from_file_location("keying_tree_example_ml", EXAMPLE)
    example = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(example)
    plate, hint = example.make_shot(root / "shot")
    return example, root, cat, plate, hint


@pytest.mark.parametrize("despill,refiner", [(0.0, 1.0), (10.0, 1.0), (5.0, 0.0)])
def test_full_tree_with_the_model(packaged, despill, refiner) -> None:
    example, root, cat, plate, hint = packaged
    infer.model_cache.clear()
    out = root / f"render_{despill}_{refiner}"
    graph = example.build(plate, hint, str(out), model=str(cat),
                          knob_values={"despill_strength": despill, "gamma_input": "sRGB",
                                       "refiner_strength": refiner})
    assert graph.validate() == []
    assert render(graph, frames=[3]).ok
    plate_px = oiio.ImageBuf(plate.replace("####", "0003")).get_pixels(oiio.FLOAT)[..., :3]
    hint_px = oiio.ImageBuf(hint.replace("####", "0003")).get_pixels(oiio.FLOAT)[..., 0]
    fg_srgb, alpha = _expected(plate_px, hint_px, despill, refiner)
    premult = _srgb_to_linear(fg_srgb) * alpha[..., None]
    bg = np.array(example.background(3))  # the background colour is animated: frame 3's own value
    comp = oiio.ImageBuf(str(out / "comp.0003.exr")).get_pixels(oiio.FLOAT)
    np.testing.assert_allclose(comp[..., :3], premult + bg[:3] * (1 - alpha[..., None]), atol=2e-3)
    np.testing.assert_allclose(comp[..., 3], alpha + bg[3] * (1 - alpha), atol=2e-3)
    passes = oiio.ImageBuf(str(out / "passes.0003.exr"))
    names = list(passes.spec().channelnames)
    px = passes.get_pixels(oiio.FLOAT)
    np.testing.assert_allclose(px[..., names.index("matte.A")], alpha, atol=2e-3)
    np.testing.assert_allclose(px[..., [names.index(f"FG.{c}") for c in "RGB"]], premult, atol=2e-3)


def test_knobs_change_the_result_and_bad_knobs_are_refused(packaged) -> None:
    example, root, cat, plate, hint = packaged
    import nodegraph as ng

    g = example.build(plate, hint, str(root / "k"), model=str(cat), knob_values={"despill_strength": 0})
    model = g["Model"]
    green = float(g.evaluate(model, 2).channel("rgba.green").sum())
    model.set(knobValues={"despill_strength": 10})
    assert float(g.evaluate(model, 2).channel("rgba.green").sum()) < green
    model.set(knobValues={"despill_strength": 11})  # outside 0..10
    with pytest.raises(ng.KnobError, match="despill_strength"):
        g.evaluate(model, 2)
    model.set(knobValues={"no_such_knob": 1})
    with pytest.raises(ng.KnobError, match="no_such_knob"):
        g.evaluate(model, 2)
