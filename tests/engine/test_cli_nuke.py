"""The command line takes Nuke's render conventions (-x, -F, -X, --cont, -m, --gpu, ranges after the
script) next to its own, and ``convert`` rewrites a graph from one file format to another."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

import nodegraph as ng
from nodegraph.cli import app, frame_union

runner = CliRunner()


def _graph(tmp_path: Path, *, writes: tuple[str, ...] = ("Write1",), value: object = 0.5) -> Path:
    """ColorBars -> Multiply -> one Write per name, each into out/NAME.####.exr."""
    g = ng.Graph()
    mult = g.add("Multiply", input=g.add("ColorBars", format="16x8"), value=value, channels="rgb")
    for name in writes:
        g.add("Write", name, input=mult, file=str(tmp_path / "out" / f"{name}.####.exr"), channels="rgba",
              create_directories=True)
    path = tmp_path / "comp.json"
    g.save(path)
    return path


def _written(tmp_path: Path) -> set[str]:
    return {p.name for p in (tmp_path / "out").glob("*.exr")} if (tmp_path / "out").exists() else set()


def _invoke(*args: object) -> object:
    return runner.invoke(app, [str(a) for a in args])


def test_nuke_command_line_renders_the_union_of_its_ranges(tmp_path: Path) -> None:
    """nuke -x -F 1-3 -F 7 -X Write1 comp.nk 10-14x2: -x ignored, -F repeated, a range after the script."""
    path = _graph(tmp_path)
    res = _invoke("render", "-x", "-F", "1-3", "-F", "7", "-F", "2", "-X", "Write1", path, "10-14x2")
    assert res.exit_code == 0, res.output
    assert "7 frame(s) written, 0 skipped, 0 failed" in res.output
    assert _written(tmp_path) == {f"Write1.{f:04d}.exr" for f in (1, 2, 3, 7, 10, 12, 14)}


def test_frame_union_keeps_the_first_order_and_each_frame_once() -> None:
    assert frame_union(["7", "1-3", "2", "10-14x2", "3 20"]) == [7, 1, 2, 3, 10, 12, 14, 20]
    assert frame_union([]) is None
    with pytest.raises(ng.NodeGraphError, match="frame range '1-x'"):
        frame_union(["1", "1-x"])


def test_write_names_from_x_and_write_options(tmp_path: Path) -> None:
    path = _graph(tmp_path, writes=("Write1", "Write2", "Beauty"))
    res = _invoke("render", path, "-X", "Write2", "-F", "1")
    assert res.exit_code == 0, res.output
    assert _written(tmp_path) == {"Write2.0001.exr"}
    res = _invoke("render", path, "-X", "Write1,Beauty", "-w", "Write2", "-F", "2")
    assert res.exit_code == 0, res.output
    assert _written(tmp_path) == {"Write2.0001.exr", "Write1.0002.exr", "Beauty.0002.exr", "Write2.0002.exr"}


def test_unknown_write_name_is_an_error_naming_it(tmp_path: Path) -> None:
    path = _graph(tmp_path)
    res = _invoke("render", "-X", "Wirte1", path, "-F", "1")
    assert res.exit_code == 1
    assert "'Wirte1'" in res.output and "Write1" in res.output  # the name asked for, and what there is
    assert _written(tmp_path) == set()


def test_cont_is_the_default_and_stop_on_error_stops_at_the_first_failure(tmp_path: Path) -> None:
    """sqrt(2 - frame): frames 1 and 2 render, 3 and 4 fail (a domain error stops the frame)."""
    path = _graph(tmp_path, value={"expression": "sqrt(2 - frame)"})
    for extra in ([], ["--cont"]):
        res = _invoke("render", path, "-F", "1-4", *extra)
        assert res.exit_code == 1, res.output
        assert "2 frame(s) written, 0 skipped, 2 failed" in res.output
        assert "Write1 frame 3" in res.output and "Write1 frame 4" in res.output
    for f in (1, 2):
        (tmp_path / "out" / f"Write1.{f:04d}.exr").unlink()
    res = _invoke("render", path, "-F", "1-4", "--stop-on-error")
    assert res.exit_code == 1, res.output
    assert "stopped at the first failed frame (--stop-on-error): 2 frame(s) written, 1 failed" in res.output
    assert "Write1 frame 3" in res.output and "Write1 frame 4" not in res.output
    assert _written(tmp_path) == {"Write1.0001.exr", "Write1.0002.exr"}
    res = _invoke("render", path, "--cont", "--stop-on-error")
    assert res.exit_code == 2 and "pick one" in res.output


def _spy_render(monkeypatch) -> list[dict]:
    """Record each render the command line starts: its options and torch's thread count then."""
    import nodegraph.render as render_mod

    calls: list[dict] = []
    real = render_mod.render

    def spy(*args, **kwargs):
        calls.append({**kwargs, "threads": torch.get_num_threads()})
        return real(*args, **kwargs)

    monkeypatch.setattr(render_mod, "render", spy)
    return calls


def test_threads_option_sets_torch_threads_for_the_render_only(tmp_path: Path, monkeypatch) -> None:
    path = _graph(tmp_path)
    calls = _spy_render(monkeypatch)
    before = torch.get_num_threads()
    res = _invoke("render", "-m", "1", path, "1-2")
    assert res.exit_code == 0, res.output
    assert [c["threads"] for c in calls] == [1] and torch.get_num_threads() == before
    res = _invoke("render", "-m", "2", "--workers", "2", path, "1-2")
    assert res.exit_code == 2 and "-m" in res.output and "--workers" in res.output


def test_gpu_falls_back_to_the_cpu_and_takes_nukes_index(tmp_path: Path, monkeypatch) -> None:
    """--gpu [N] uses the GPU when there is one, else the CPU, as Nuke's switch does; the index is
    the number right after --gpu, before the script."""
    path = _graph(tmp_path)
    calls = _spy_render(monkeypatch)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    res = _invoke("render", "--gpu", "0", path, "1-2")
    assert res.exit_code == 0, res.output
    assert "no CUDA device here, rendering on the CPU" in res.output and "2 frame(s) written" in res.output
    assert [c["device"] for c in calls] == ["cpu"]
    res = _invoke("render", "--gpu", "--device", "cpu", path, "1")
    assert res.exit_code == 2 and "--device" in res.output
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    res = _invoke("render", "--gpu", "3", path, "1")
    assert res.exit_code == 2 and "no GPU 3" in " ".join(res.output.split())
    assert len(calls) == 1  # refused before any render


def test_comma_range_after_the_script_is_refused_not_guessed(tmp_path: Path) -> None:
    path = _graph(tmp_path)
    res = _invoke("render", path, "1,5")
    assert res.exit_code == 2
    text = " ".join(res.output.split())
    assert "'1,5'" in text and "ambiguous" in text
    assert _written(tmp_path) == set()


def test_exit_codes(tmp_path: Path) -> None:
    """0 every frame written, 1 a failed frame or an unreadable graph, 2 a graph that does not validate."""
    assert _invoke("render", _graph(tmp_path), "1").exit_code == 0
    res = _invoke("render", tmp_path / "missing.json")
    assert res.exit_code == 1 and "missing.json" in res.output
    g = ng.Graph()
    g.add("Write", file=str(tmp_path / "x.####.exr"))  # no input
    g.save(tmp_path / "invalid.json")
    res = _invoke("render", tmp_path / "invalid.json", "1")
    assert res.exit_code == 2, res.output
    assert "Write1" in res.output


def _comp_with_links(tmp_path: Path) -> Path:
    g = ng.Graph()
    bars = g.add("ColorBars", format="32x16")
    grade = g.add("Grade", input=bars, white=[1.0, ng.Expression("1 + frame / 100"), 1.0, 1.0])
    merge = g.add("Merge2", A=grade, B=bars, operation="plus", mix=0.25)
    g.add("Write", input=merge, file="render/comp.####.exr", channels="rgba")
    path = tmp_path / "a.json"
    g.save(path)
    return path


def test_convert_json_to_json_keeps_knobs_and_links(tmp_path: Path) -> None:
    a = _comp_with_links(tmp_path)
    b = tmp_path / "b.json"
    res = _invoke("convert", a, b)
    assert res.exit_code == 0, res.output
    assert str(b) in res.stdout and "4 nodes" in res.stdout
    assert b.read_text() == a.read_text()
    doc = json.loads(b.read_text())
    assert doc["nodes"]["Merge1"]["knobs"] == {"operation": "plus", "mix": 0.25}
    assert {"from": "Grade1", "to": "Merge1", "input": "A"} in doc["links"]
    assert ng.Graph.load(b).to_dict() == ng.Graph.load(a).to_dict()
    res = _invoke("convert", a, b)  # B is replaced
    assert res.exit_code == 0, res.output
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []  # no temp file left


def test_convert_refuses_to_overwrite_its_input(tmp_path: Path) -> None:
    a = _comp_with_links(tmp_path)
    before = a.read_text()
    (tmp_path / "sub").mkdir()
    (tmp_path / "link.json").symlink_to(a)
    for target in (a, tmp_path / "sub" / ".." / "a.json", tmp_path / "link.json"):
        res = _invoke("convert", a, target)
        assert res.exit_code == 2, res.output
        assert "refusing to overwrite" in " ".join(res.output.split())
    assert a.read_text() == before


def test_convert_errors_name_the_file(tmp_path: Path) -> None:
    a = _comp_with_links(tmp_path)
    res = _invoke("convert", tmp_path / "nope.json", tmp_path / "b.json")
    assert res.exit_code == 1 and "nope.json" in res.output and "no such file" in res.output
    bad = tmp_path / "bad.json"
    bad.write_text('{"nodegraph": 1, "nodes": {"M": {"type": "Multiply", "knobs": {"mix": "lots"}}}}')
    res = _invoke("convert", bad, tmp_path / "b.json")
    assert res.exit_code == 1 and "bad.json" in res.output and "mix" in res.output
    res = _invoke("convert", a, tmp_path / "b.txt")
    assert res.exit_code == 2 and "b.txt" in res.output and ".nk" in res.output
    res = _invoke("convert", a, tmp_path / "no" / "dir" / "b.json")
    assert res.exit_code == 1 and "b.json" in res.output
    assert not (tmp_path / "b.json").exists() and not (tmp_path / "b.txt").exists()


def test_load_warnings_are_printed_and_capped(tmp_path: Path, monkeypatch) -> None:
    """A Nuke script's load warnings (the reader sets ``graph.warnings``) reach stderr, at most
    MAX_LOAD_WARNINGS lines and a count of the rest; the graph still converts and renders."""
    from nodegraph.cli import MAX_LOAD_WARNINGS

    real = ng.Graph.load.__func__

    def load(cls, path, **kwargs):
        graph = real(cls, path, **kwargs)
        graph.warnings = [f"Blur{i} (Blur): kept as a placeholder" for i in range(MAX_LOAD_WARNINGS + 3)]
        return graph

    monkeypatch.setattr(ng.Graph, "load", classmethod(load))
    a = _comp_with_links(tmp_path)
    res = _invoke("convert", a, tmp_path / "b.json")
    assert res.exit_code == 0, res.output
    assert "warning: Blur0 (Blur): kept as a placeholder" in res.output
    assert f"Blur{MAX_LOAD_WARNINGS - 1} " in res.output and f"Blur{MAX_LOAD_WARNINGS} " not in res.output
    assert f"... and 3 more from {a}" in res.output
    res = _invoke("render", _graph(tmp_path), "1")
    assert res.exit_code == 0 and "warning: Blur0" in res.output
