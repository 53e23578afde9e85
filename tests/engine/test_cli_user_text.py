"""The command line prints user text exactly as written: rich markup (``[/user]``, ``[bold]``) and
emoji codes (``:cat:``) in paths, knob values, node types, channel names and file metadata never
crash a command, vanish, or restyle the output. Also: --device typos and over-long values."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import OpenImageIO as oiio
import pytest
from typer.testing import CliRunner

import nodegraph as ng
from nodegraph.cli import app

runner = CliRunner()

# "[/user]" closes a tag never opened (rich raised MarkupError); "[bold]" and "[int]" are tags
# rich would swallow; ":cat:" an emoji code it would replace.
HOSTILE = "[/user] [bold]x[/bold] [int] :cat:"
NAME = "[bold]x[int] :cat:"  # the same, fit for a file name (no "/"; the folder holds "[/user]")


def _bracket_dir(tmp_path: Path) -> Path:
    """A folder whose path holds ``[/user]``: a folder ``[`` holding a folder ``user]``."""
    folder = tmp_path / "[" / "user]"
    folder.mkdir(parents=True)
    assert "[/user]" in str(folder)
    return folder


def _tcl_literal(text: str) -> str:
    """``text`` as a file knob that means it literally (Nuke's TCL: brackets escaped)."""
    return text.replace("\\", "\\\\").replace("[", "\\[").replace("]", "\\]")


def _ok(res, *codes: int) -> None:
    """The command ended through its own exit, never an exception (a MarkupError exits 1 too)."""
    assert res.exception is None or isinstance(res.exception, SystemExit), repr(res.exception)
    assert res.exit_code in codes, res.output


def _write_exr(path: Path, value: float, *, layer: str = "", metadata: dict[str, str] | None = None) -> None:
    names = [f"{layer}.{c}" if layer else c for c in "RGB"]
    spec = oiio.ImageSpec(4, 2, 3, oiio.FLOAT)
    spec.channelnames = tuple(names)
    for key, val in (metadata or {}).items():
        spec.attribute(key, val)
    out = oiio.ImageOutput.create(str(path))
    assert out.open(str(path), spec)
    assert out.write_image(np.full((2, 4, 3), value, dtype=np.float32))
    out.close()


def test_render_failure_lines_and_summary_keep_brackets(tmp_path: Path) -> None:
    """A failing Write whose path holds [/user] no longer aborts the render: the other Write still
    runs and the summary names both, with the paths as written."""
    folder = _bracket_dir(tmp_path)
    g = ng.Graph()
    bars = g.add("ColorBars", format="8x4")
    # file knobs hold TCL as in Nuke: a literal bracket is escaped
    g.add("Write", "Broken", input=bars, file=_tcl_literal(str(folder / "missing" / "a.####.exr")))
    g.add("Write", "Good", input=bars, file=_tcl_literal(str(folder / f"{NAME}.####.exr")))
    path = tmp_path / "g.json"
    g.save(path)
    res = runner.invoke(app, ["render", str(path), "--frames", "1-2"])
    _ok(res, 1)
    assert "2 frame(s) written, 0 skipped, 2 failed" in res.output
    assert "failed Broken frame 1" in res.output and "Broken frame 2" in res.output
    assert str(folder / "missing") in res.output
    assert sorted(p.name for p in folder.glob("*.exr")) == [f"{NAME}.0001.exr", f"{NAME}.0002.exr"]


def test_render_error_and_set_value_keep_brackets(tmp_path: Path) -> None:
    g = ng.Graph()
    g.add("Write", input=g.add("ColorBars", format="8x4"), file=str(tmp_path / "o.####.exr"))
    path = tmp_path / "g.json"
    g.save(path)
    res = runner.invoke(app, ["render", str(path), "--frames", "1", "--set", f"Write1.datatype={HOSTILE}"])
    _ok(res, 1)
    assert "error:" in res.output and HOSTILE in res.output
    missing = _bracket_dir(tmp_path) / "nope.json"
    res = runner.invoke(app, ["render", str(missing)])
    _ok(res, 1)
    assert str(missing) in res.output


def test_validate_prints_every_tag_and_type(tmp_path: Path) -> None:
    doc = {"nodegraph": 1,
           "nodes": {"A": {"type": HOSTILE}, "W": {"type": "Write"},
                     "D1": {"type": "Dot"}, "D2": {"type": "Dot"}},
           "links": [{"from": "D1", "to": "D2", "input": "input"}, {"from": "D2", "to": "D1", "input": "input"}]}
    path = _bracket_dir(tmp_path) / "bad.json"
    path.write_text(json.dumps(doc))
    res = runner.invoke(app, ["validate", str(path)])
    _ok(res, 1)
    lines = res.stdout.splitlines()
    assert any(line.startswith("[unknown_type] A: ") and repr(HOSTILE) in line for line in lines), res.stdout
    assert any(line.startswith("[missing_input] W input 'input'") for line in lines)
    assert any(line.startswith("[cycle] ") for line in lines)
    ok = tmp_path / "[" / "user]" / "ok.json"
    ng.Graph().save(ok)
    res = runner.invoke(app, ["validate", str(ok)])
    _ok(res, 0)
    assert f"{ok}: OK (0 nodes)" in res.stdout


def test_info_prints_metadata_and_path_as_written(tmp_path: Path) -> None:
    exr = _bracket_dir(tmp_path) / "meta.exr"
    _write_exr(exr, 0.5, metadata={"comment": HOSTILE, "owner": "[/user]"})
    res = runner.invoke(app, ["info", str(exr)])
    _ok(res, 0)
    assert HOSTILE in res.stdout and "[/user]" in res.stdout
    assert "🐱" not in res.stdout
    res = runner.invoke(app, ["info", str(exr.with_name("gone.exr"))])
    _ok(res, 1)
    assert str(exr.with_name("gone.exr")) in res.output


def test_compare_table_and_errors_keep_brackets(tmp_path: Path) -> None:
    folder = _bracket_dir(tmp_path)
    _write_exr(folder / "a.exr", 0.5, layer="[/x]")
    _write_exr(folder / "b.exr", 0.75, layer="[/x]")
    res = runner.invoke(app, ["compare", str(folder / "a.exr"), str(folder / "b.exr")])
    _ok(res, 1)
    assert "[/x].red" in res.stdout and "FAIL" in res.stdout
    assert "0 of 1 frame(s) match" in res.output
    res = runner.invoke(app, ["compare", str(folder / "a.####.exr"), str(folder / "b.exr")])
    _ok(res, 2)
    assert str(folder / "a.####.exr") in res.output


def test_nodes_shows_docs_with_brackets() -> None:
    """Knob docs such as "'WxH [aspect]'" lost "[aspect]", read as a markup tag."""
    res = runner.invoke(app, ["nodes", "Constant"])
    _ok(res, 0)
    assert "'WxH [aspect]'" in " ".join(res.stdout.split())
    res = runner.invoke(app, ["nodes", HOSTILE])
    _ok(res, 1)
    assert HOSTILE in res.output


@pytest.mark.parametrize("args", [
    ["train", "{d}/g.json"],
    ["cat", "info", "{d}/m.cat"],
    ["cat", "export-torchscript", "{d}/m.cat"],
    ["cat", "create", "--torchscript", "{d}/m.pt", "--channels-in", "rgba.red", "--channels-out", "rgba.red",
     "--model-id", "[/id]"],
])
def test_other_commands_print_bracket_paths_in_errors(tmp_path: Path, args: list[str]) -> None:
    folder = _bracket_dir(tmp_path)
    res = runner.invoke(app, [a.format(d=folder) for a in args])
    _ok(res, 1, 2)
    assert str(folder) in res.output


def test_demo_prints_its_bracket_directory(tmp_path: Path) -> None:
    from rich.console import Console

    from nodegraph.demo import _printer

    console = Console(record=True, width=60)
    _printer(console)(f"building in {HOSTILE}")
    assert f"building in {HOSTILE}" in console.export_text()


def test_train_event_printer_keeps_brackets(tmp_path: Path) -> None:
    """A CopyCat whose data directory holds [/user]: plan, checkpoint and model path print as written."""
    folder = _bracket_dir(tmp_path)
    g = ng.Graph()
    src = g.add("Constant", color=(0.2, 0.4, 0.6, 1.0), format="16x16")
    gt = g.add("Multiply", input=src, value=0.5, channels="rgb")
    g.add("CopyCat", input=src, groundTruth=gt, dataDirectory=str(folder / "cc"), frames="1", cropSize=16,
          modelSize="small", batchSizeType="manual", batchSize=1, checkpointInterval=2, imageInterval=0,
          channelsIn="rgb", channelsOut="rgb", useGPUIfAvailable=False)
    path = tmp_path / "train.json"
    g.save(path)
    res = runner.invoke(app, ["train", str(path), "--steps", "2", "--device", "cpu"])
    _ok(res, 0)
    assert str(folder / "cc") in res.stdout  # the model path, on stdout
    assert "CopyCat1" in res.output and "trained 2 step(s)" in res.output


@pytest.mark.parametrize("command", [["render", "{g}"], ["train", "{g}"], ["demo", "{d}"]])
def test_unknown_device_is_a_usage_error_listing_devices(tmp_path: Path, command: list[str]) -> None:
    ng.Graph().save(tmp_path / "g.json")
    args = [a.format(g=tmp_path / "g.json", d=tmp_path / "demo") for a in command]
    res = runner.invoke(app, [*args, "--device", "tpu"])
    _ok(res, 2)
    text = " ".join(res.output.split())
    assert "'tpu'" in text and "cpu, cuda, cuda:N" in text and "auto" in text
    assert not (tmp_path / "demo").exists()


def test_unknown_device_from_the_api_is_typed() -> None:
    from nodegraph.render import render

    g = ng.Graph()
    g.add("Write", input=g.add("ColorBars", format="8x4"), file="never.####.exr")
    with pytest.raises(ng.NodeGraphError, match="unknown device 'tpu'; use cpu, cuda"):
        render(g, frames="1", device="tpu")


def test_ten_million_character_path_gives_a_short_error() -> None:
    long_path = "/x" * 5_000_000
    res = runner.invoke(app, ["info", long_path + ".exr"])
    _ok(res, 1)
    assert len(res.output) < 20_000
    assert "10,000,004 characters" in res.output


def test_render_with_a_ten_million_character_output_path(tmp_path: Path) -> None:
    g = ng.Graph()
    g.add("Write", input=g.add("ColorBars", format="8x4"), file=str(tmp_path / ("p" * 10_000_000 + ".####.exr")))
    g.save(tmp_path / "long.json")
    res = runner.invoke(app, ["render", str(tmp_path / "long.json"), "--frames", "1-2"])
    _ok(res, 1)
    assert "0 frame(s) written, 0 skipped, 2 failed" in res.output
    assert len(res.output) < 100_000  # each of the two frames' messages is bounded, the path shortened
    assert " characters) ... " in res.output
