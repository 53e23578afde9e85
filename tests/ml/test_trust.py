"""TorchScript models run code: nodegraph loads one only after an explicit opt-in that no graph can
give itself (--allow-torchscript, NODEGRAPH_ALLOW_TORCHSCRIPT, NODEGRAPH_TRUSTED_MODEL_DIRS,
nodegraph.ml.trust.allow_torchscript()); without it nothing is loaded, and the error says how."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

import nodegraph as ng
from nodegraph.cli import app
from nodegraph.errors import NodeGraphError
from nodegraph.ml import infer, trust
from nodegraph.ml.modelfile import KIND, ModelFileError, UntrustedModelError, load_cat
from nodegraph.ml.torchscript import create_cat_from_torchscript, export_torchscript

RGB = "rgba.red,rgba.green,rgba.blue"


class Double(torch.nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * 2.0


@pytest.fixture(autouse=True)
def no_opt_in(monkeypatch):
    """Every test starts with no opt-in; whatever a test (or the CLI) sets is undone after it."""
    monkeypatch.delenv(trust.ENV_ALLOW, raising=False)
    monkeypatch.delenv(trust.ENV_FOLDERS, raising=False)
    infer.model_cache.clear()
    yield
    infer.model_cache.clear()


@pytest.fixture
def script_cat(tmp_path) -> Path:
    pt = tmp_path / "models" / "double.pt"
    pt.parent.mkdir()
    torch.jit.script(Double()).save(str(pt))
    return create_cat_from_torchscript(pt, channels_in=RGB, channels_out=RGB, model_id="double")


@pytest.fixture
def jit_calls(monkeypatch):
    """Records every torch.jit.load call (and still loads, so an allowed model works)."""
    calls = []
    real = torch.jit.load

    def recording(*args, **kwargs):
        calls.append(args)
        return real(*args, **kwargs)
    monkeypatch.setattr(torch.jit, "load", recording)
    return calls


def _graph(tmp_path: Path, model: Path) -> Path:
    g = ng.Graph()
    c = g.add("Constant", "C", color=(0.1, 0.2, 0.3, 1.0), format="16x8")
    inf = g.add("Inference", "Inf", input=c, modelFile=str(model))
    (tmp_path / "out").mkdir(exist_ok=True)
    g.add("Write", "W", input=inf, file=str(tmp_path / "out" / "o.####.exr"))
    path = tmp_path / "graph.json"
    g.save(path)
    return path


def test_load_without_opt_in_is_refused_before_jit_load(script_cat, jit_calls):
    with pytest.raises(UntrustedModelError) as exc:
        load_cat(script_cat)
    msg = str(exc.value)
    for how in ("--allow-torchscript", "NODEGRAPH_ALLOW_TORCHSCRIPT=1", "NODEGRAPH_TRUSTED_MODEL_DIRS",
                "nodegraph.ml.trust.allow_torchscript()", str(script_cat)):
        assert how in msg
    assert jit_calls == []
    trust.allow_torchscript()
    assert os.environ[trust.ENV_ALLOW] == "1"
    assert torch.equal(load_cat(script_cat).module(torch.ones(1, 3, 2, 2)), torch.full((1, 3, 2, 2), 2.0))
    assert len(jit_calls) == 1
    trust.allow_torchscript(False)
    with pytest.raises(UntrustedModelError):
        load_cat(script_cat)


def test_cli_render_needs_the_flag(tmp_path, script_cat, jit_calls):
    graph = _graph(tmp_path, script_cat)
    res = CliRunner().invoke(app, ["render", str(graph), "--frames", "1"])
    assert res.exit_code == 1, res.output
    text = " ".join(res.output.split())
    assert "--allow-torchscript" in text and "TorchScript" in text and "Inf" in text
    assert jit_calls == [] and not (tmp_path / "out" / "o.0001.exr").exists()
    res = CliRunner().invoke(app, ["render", str(graph), "--frames", "1", "--allow-torchscript"])
    assert res.exit_code == 0, res.output
    assert (tmp_path / "out" / "o.0001.exr").is_file() and len(jit_calls) == 1


def test_python_render_refused_and_opt_in_through_the_api(tmp_path, script_cat, jit_calls):
    from nodegraph.render import render

    graph = ng.Graph.load(_graph(tmp_path, script_cat))
    result = render(graph, frames="1")
    assert list(result.failed) == [("W", 1)] and "allow_torchscript()" in result.failed[("W", 1)]
    assert jit_calls == []
    trust.allow_torchscript()
    result = render(graph, frames="1")
    assert not result.failed and len(jit_calls) == 1


def test_a_graph_cannot_opt_itself_in(tmp_path, script_cat, jit_calls):
    doc = json.loads(_graph(tmp_path, script_cat).read_text())
    doc["nodes"]["Inf"]["knobs"]["allowTorchScript"] = True
    path = tmp_path / "sneaky.json"
    path.write_text(json.dumps(doc))
    with pytest.raises(NodeGraphError, match="allowTorchScript"):
        ng.Graph.load(path)
    assert not [k for k in ng.registry.get("Inference").Knobs.model_fields if "trust" in k.lower()
                or "allow" in k.lower()]
    assert jit_calls == []


def test_trusted_folder(tmp_path, script_cat, jit_calls, monkeypatch):
    monkeypatch.setenv(trust.ENV_FOLDERS, str(tmp_path / "elsewhere"))
    with pytest.raises(UntrustedModelError):
        load_cat(script_cat)
    trust.trust_model_folder(script_cat.parent)
    assert load_cat(script_cat).kind == "torchscript" and len(jit_calls) == 1
    # a link inside the trusted folder to a model outside it is judged by the model's real place
    outside = tmp_path / "outside"
    outside.mkdir()
    moved = outside / "m.cat"
    moved.write_bytes(script_cat.read_bytes())
    link = script_cat.parent / "link.cat"
    link.symlink_to(moved)
    with pytest.raises(UntrustedModelError):
        load_cat(link)
    assert len(jit_calls) == 1


def test_withdrawn_opt_in_applies_to_cached_models(tmp_path, script_cat, monkeypatch):
    monkeypatch.setenv(trust.ENV_ALLOW, "1")
    assert infer.model_cache.get(script_cat, torch.device("cpu")).kind == "torchscript"
    monkeypatch.setenv(trust.ENV_ALLOW, "0")
    with pytest.raises(UntrustedModelError):
        infer.model_cache.get(script_cat, torch.device("cpu"))


def test_checkpoint_and_export_never_run_torchscript(script_cat, jit_calls, monkeypatch):
    monkeypatch.setenv(trust.ENV_ALLOW, "1")  # even opted in: these places take nodegraph networks only
    with pytest.raises(ModelFileError, match="only nodegraph-network"):
        load_cat(script_cat, kinds=(KIND,))
    with pytest.raises(ModelFileError, match="only nodegraph networks can be exported"):
        export_torchscript(script_cat)
    assert jit_calls == []


def test_opt_in_reaches_spawned_workers(script_cat):
    """The API writes the environment, so render worker processes (spawned) see the same setting."""
    trust.allow_torchscript()
    code = "from nodegraph.ml import trust; print(trust.torchscript_allowed())"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "True"
