"""The command line: render, validate, nodes, info, demo (run in-process through typer)."""

from __future__ import annotations

import os

import json
from pathlib import Path

import OpenImageIO as oiio
import pytest
from typer.testing import CliRunner

import nodegraph as ng
from nodegraph.cli import app

runner = CliRunner()
DATA = Path(os.environ["NODEGRAPH_TEST_DATA"])  # found by tests/conftest.py


def _graph(tmp_path: Path) -> Path:
    g = ng.Graph()
    bars = g.add("ColorBars", format="32x16")
    mult = g.add("Multiply", input=bars, value=0.5, channels="rgb")
    g.add("Write", input=mult, file=str(tmp_path / "out" / "bars.####.exr"), channels="rgba",
          datatype="32 bit float", create_directories=True)
    path = tmp_path / "graph.json"
    g.save(path)
    return path


def test_render_with_overrides(tmp_path: Path) -> None:
    path = _graph(tmp_path)
    res = runner.invoke(app, ["render", str(path), "--frames", "1-3", "--set", "Multiply1.value=0.25"])
    assert res.exit_code == 0, res.output
    assert "3 frame(s) written" in res.output
    px = oiio.ImageBuf(str(tmp_path / "out" / "bars.0002.exr")).get_pixels(oiio.FLOAT)
    assert px[0, 0, 0] == pytest.approx(0.75 * 0.25)


def test_render_bad_override_and_failures_exit_nonzero(tmp_path: Path) -> None:
    path = _graph(tmp_path)
    res = runner.invoke(app, ["render", str(path), "--frames", "1", "--set", "Multiply1.mix=7"])
    assert res.exit_code == 1
    assert "Multiply1" in res.output and "mix" in res.output
    doc = json.loads(path.read_text())
    doc["nodes"]["Write1"]["knobs"]["file"] = str(tmp_path / "nodir" / "x.####.exr")
    doc["nodes"]["Write1"]["knobs"].pop("create_directories")
    path.write_text(json.dumps(doc))
    res = runner.invoke(app, ["render", str(path), "--frames", "1-2"])
    assert res.exit_code == 1
    assert "Write1 frame 1" in res.output and "Write1 frame 2" in res.output


def test_validate_lists_every_problem(tmp_path: Path) -> None:
    doc = {"nodegraph": 1,
           "nodes": {"A": {"type": "NoSuchNode"}, "M": {"type": "Multiply", "knobs": {"mix": 3}},
                     "W": {"type": "Write"}, "D1": {"type": "Dot"}, "D2": {"type": "Dot"}},
           "links": [{"from": "D1", "to": "D2", "input": "input"}, {"from": "D2", "to": "D1", "input": "input"}]}
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(doc))
    res = runner.invoke(app, ["validate", str(path), "--json"])
    assert res.exit_code == 1
    kinds = {(i["kind"], i["node"]) for i in json.loads(res.stdout)}
    assert ("unknown_type", "A") in kinds and ("invalid_knob", "M") in kinds
    assert ("missing_input", "W") in kinds and ("missing_input", "M") in kinds
    assert any(k == "cycle" for k, _ in kinds)
    ok = runner.invoke(app, ["validate", str(_graph(tmp_path))])
    assert ok.exit_code == 0 and "OK" in ok.output


def test_malformed_document_names_json_path(tmp_path: Path) -> None:
    path = tmp_path / "m.json"
    path.write_text(json.dumps({"nodegraph": 1, "nodes": {"R": {"type": "Read"}}, "links": [{"from": "X"}]}))
    res = runner.invoke(app, ["render", str(path)])
    assert res.exit_code == 1
    assert "$.links[0]" in res.output


def test_nodes_and_node_docs() -> None:
    res = runner.invoke(app, ["nodes"])
    assert res.exit_code == 0
    for t in ("Read", "Write", "Merge2", "Constant"):
        assert t in res.stdout
    res = runner.invoke(app, ["nodes", "Write"])
    assert res.exit_code == 0
    for knob in ("file", "file_type", "channels", "datatype", "compression", "colorspace", "create_directories"):
        assert knob in res.stdout
    assert runner.invoke(app, ["nodes", "Nope"]).exit_code == 1


def test_info_reports_windows_and_channels() -> None:
    res = runner.invoke(app, ["info", str(DATA / "DisplayWindow" / "t01.exr"), "--json"])
    assert res.exit_code == 0
    data = json.loads(res.stdout)
    spec = oiio.ImageInput.open(str(DATA / "DisplayWindow" / "t01.exr")).spec()
    part = data["parts"][0]
    assert part["data_window"] == [spec.x, spec.y, spec.x + spec.width, spec.y + spec.height]
    assert {c["name"] for c in part["channels"]} >= {"rgba.red", "rgba.green", "rgba.blue"}
    bad = runner.invoke(app, ["info", "/nonexistent/file.exr"])
    assert bad.exit_code == 1 and "/nonexistent/file.exr" in bad.output


def test_demo_renders_exr_and_png(tmp_path: Path) -> None:
    res = runner.invoke(app, ["demo", str(tmp_path / "demo"), "--workers", "1", "--ml-steps", "12"])
    assert res.exit_code == 0, res.output
    render_dir = tmp_path / "demo" / "render"
    exrs = sorted(render_dir.glob("comp.*.exr"))
    pngs = sorted(render_dir.glob("comp_srgb.*.png"))
    assert len(exrs) == len(pngs) == 12
    comp = oiio.ImageBuf(str(exrs[5])).get_pixels(oiio.FLOAT)
    assert comp.shape[2] == 4 and comp[..., 3].max() == pytest.approx(1.0, abs=1e-3)  # the element is there
    assert str(render_dir) in res.stdout
    # the CopyCat trained on 3 frames and the Inference node applied it to all 12
    assert (tmp_path / "demo" / "copycat" / "LearnLook.cat").exists()
    ml = sorted(render_dir.glob("ml_look.*.exr"))
    assert len(ml) == 12
    look = oiio.ImageBuf(str(ml[3]))
    assert (look.spec().width, look.spec().height) == (320, 180)
    assert "LearnLook" in res.stdout
    again = runner.invoke(app, ["render", str(tmp_path / "demo" / "comp.json"), "--skip-existing"])
    assert again.exit_code == 0 and "36 skipped" in again.output
