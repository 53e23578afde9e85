"""Frame numbers are capped (frame knobs, --frames) and renders never list a huge range."""

from __future__ import annotations

import json
import tracemalloc
from pathlib import Path

import pytest
from typer.testing import CliRunner

import nodegraph as ng
from nodegraph.cli import app
from nodegraph.frames import MAX_FRAME
from nodegraph.render import MAX_RENDER_FRAMES, render

runner = CliRunner()


def _read_doc(tmp_path: Path, **knobs) -> Path:
    doc = {"nodegraph": 1,
           "nodes": {"R": {"type": "Read", "knobs": {"file": str(tmp_path / "in.####.exr"), **knobs}},
                     "W": {"type": "Write", "knobs": {"file": str(tmp_path / "out.####.exr")}}},
           "links": [{"from": "R", "to": "W", "input": "input"}]}
    path = tmp_path / "g.json"
    path.write_text(json.dumps(doc))
    return path


@pytest.mark.parametrize("knob,value", [("last", 1e18), ("first", -1e30), ("last", MAX_FRAME + 1),
                                        ("frame", -(10 ** 30))])
def test_out_of_range_frame_knobs_in_a_document(tmp_path: Path, knob: str, value) -> None:
    path = _read_doc(tmp_path, **({"first": 1, "last": 10} | {knob: value}))
    res = runner.invoke(app, ["render", str(path)])
    assert isinstance(res.exception, SystemExit) and res.exit_code == 1, res.output
    assert f"$.nodes.R.knobs.{knob}" in res.output and "frame numbers lie within +-1,000,000,000" in res.output
    with pytest.raises(ng.DocumentError, match=f"knobs.{knob}: out of range"):
        ng.Graph.load(path)
    loose = ng.Graph.load(path, strict=False)  # kept for validate to report
    assert [(i.node, i.knob) for i in loose.validate() if i.kind == "invalid_knob"] == [("R", knob)]


@pytest.mark.parametrize("type_name,knob", [("TimeOffset", "time_offset"), ("FrameHold", "firstFrame"),
                                            ("FrameHold", "increment"), ("FrameRange", "first_frame"),
                                            ("FrameRange", "last_frame"), ("Read", "first"), ("Read", "last"),
                                            ("Read", "frame")])
def test_every_frame_knob_is_capped(type_name: str, knob: str) -> None:
    node = ng.Graph().add(type_name)
    node.set(**{knob: MAX_FRAME})
    for bad in (MAX_FRAME + 1, 1e18, -1e30, float(10 ** 300)):
        with pytest.raises(ng.KnobError, match=f"knob '{knob}': out of range") as info:
            node.set(**{knob: bad})
        assert info.value.node == node.name and info.value.knob == knob
    with pytest.raises(ng.KnobError, match="out of range"):
        ng.Graph().add(type_name, **{knob: 2 * MAX_FRAME})


def test_set_override_out_of_range_and_huge_integer(tmp_path: Path) -> None:
    path = _read_doc(tmp_path, first=1, last=3)
    res = runner.invoke(app, ["render", str(path), "--set", "R.last=1e18"])
    assert isinstance(res.exception, SystemExit) and res.exit_code == 1, res.output
    assert "node 'R' knob 'last': out of range" in res.output
    res = runner.invoke(app, ["render", str(path), "--set", "R.last=" + "9" * 5000])
    assert isinstance(res.exception, SystemExit) and res.exit_code == 1, res.output
    assert "node 'R' knob 'last'" in res.output and "integer of 5,000 digits is too long" in res.output


def test_frames_option_is_capped(tmp_path: Path) -> None:
    path = _read_doc(tmp_path, first=1, last=3)
    for spec in ("1-2,2000000000", "-1000000001"):
        res = runner.invoke(app, ["render", str(path), "--frames", spec])
        assert isinstance(res.exception, SystemExit) and res.exit_code == 1, res.output
        assert "frame numbers lie within +-1,000,000,000" in res.output
    res = runner.invoke(app, ["compare", str(tmp_path / "a.exr"), str(tmp_path / "b.exr"), "--frames",
                              "3000000000"])
    assert isinstance(res.exception, SystemExit) and res.exit_code == 2, res.output
    assert "frame numbers lie within" in res.output


def test_huge_valid_range_is_refused_before_any_frame(tmp_path: Path) -> None:
    """Read with last 1e9 (a valid frame): the render names the Write and the limit, runs nothing."""
    path = _read_doc(tmp_path, first=1, last=1e9)
    res = runner.invoke(app, ["render", str(path)])
    assert isinstance(res.exception, SystemExit) and res.exit_code == 1, res.output
    assert "node 'W': frame range 1-1000000000 has 1,000,000,000 frames" in res.output
    assert f"({MAX_RENDER_FRAMES:,})" in res.output and "--frames" in res.output
    assert not list(tmp_path.glob("out.*"))


def test_huge_range_with_frames_renders_those(tmp_path: Path) -> None:
    g = ng.Graph()
    bars = g.add("ColorBars", format="8x4")
    held = g.add("FrameRange", input=bars, first_frame=-MAX_FRAME, last_frame=MAX_FRAME)
    g.add("Write", input=held, file=str(tmp_path / "o.####.exr"))
    result = render(g, frames=f"{MAX_FRAME - 1}-{MAX_FRAME}")
    assert result.ok and sorted(f for _, f, _ in result.written) == [MAX_FRAME - 1, MAX_FRAME]


class _Stop(Exception):
    pass


@pytest.mark.parametrize("workers,processes", [(1, False), (2, False)])
def test_render_generates_jobs_lazily(tmp_path: Path, workers: int, processes: bool) -> None:
    """A range of five million frames: stopping after three frames, the render has allocated a few
    megabytes (jobs are generated and at most 2 x workers frames are in flight), not a list or a
    future per frame (hundreds of megabytes)."""
    g = ng.Graph()
    bars = g.add("ColorBars", format="8x4")
    rng = g.add("FrameRange", input=bars, first_frame=1, last_frame=5_000_000)
    g.add("Write", input=rng, file=str(tmp_path / "o.####.exr"))
    seen = []
    totals = []

    def on_progress(node, frame, path, error):
        seen.append(frame)
        if len(seen) == 3:
            raise _Stop

    tracemalloc.start()
    try:
        with pytest.raises(_Stop):
            render(g, workers=workers, processes=processes, on_progress=on_progress, on_start=totals.append)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert totals == [5_000_000]
    assert peak < 50 * 2**20, f"peak {peak / 2**20:.0f} MiB"


def test_compare_refuses_a_huge_graph_range(tmp_path: Path) -> None:
    path = _read_doc(tmp_path, first=1, last=1e9)
    res = runner.invoke(app, ["compare", f"{path}:R", f"{path}:R"])
    assert isinstance(res.exception, SystemExit) and res.exit_code == 2, res.output
    assert "node 'R': frame range 1-1000000000 has 1,000,000,000 frames" in res.output


def test_duplicate_node_names_are_a_cli_error(tmp_path: Path) -> None:
    path = tmp_path / "dup.json"
    path.write_text('{"nodegraph": 1, "nodes": {"W": {"type": "Write"}, "W": {"type": "Dot"}}}')
    for command in ("render", "validate"):
        res = runner.invoke(app, [command, str(path)])
        assert isinstance(res.exception, SystemExit) and res.exit_code == 1, res.output
        assert "$.nodes.W: key 'W' appears twice" in res.output


def test_root_frame_range_is_capped() -> None:
    text = '{"nodegraph": 2, "root": {"first_frame": 1, "last_frame": 1000000000000000000}, "nodes": {}}'
    with pytest.raises(ng.DocumentError, match="out of range: frame numbers lie within") as info:
        ng.Graph.from_json(text)
    assert info.value.json_path == "$.root.last_frame"
