"""Read and Write with Nuke's TCL in their file knobs, and relative paths against the script's folder."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

import nodegraph as ng
from nodegraph.errors import KnobError, ValidationError
from nodegraph.image import Format, Image
from nodegraph.io import read_image, write_image
from nodegraph.render import render

PLATES = "[file dirname [value root.name]]/plates/x.%04d.exr"


def _frame_image(value: float, fmt: Format = Format.of_size(16, 8)) -> Image:
    pixels = torch.full((4, fmt.height, fmt.width), value)
    pixels[3] = 1.0
    return Image(pixels, ("rgba.red", "rgba.green", "rgba.blue", "rgba.alpha"), fmt.display, fmt)


def _plates(folder: Path, frames: range, scale: float = 0.01) -> None:
    """EXR frames whose red channel is frame * scale."""
    (folder / "plates").mkdir(parents=True, exist_ok=True)
    for f in frames:
        write_image(folder / "plates" / f"x.{f:04d}.exr", _frame_image(f * scale), datatype="float")


def _red(img: Image) -> float:
    return float(img.channel("rgba.red").mean())


@pytest.fixture()
def elsewhere(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The current directory is an unrelated empty folder: nothing may resolve against it by chance."""
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    monkeypatch.chdir(cwd)
    return cwd


def test_read_beside_the_script(tmp_path: Path, elsewhere: Path) -> None:
    shot = tmp_path / "shot"
    _plates(shot, range(1, 4))
    g = ng.Graph()
    g.path = str(shot / "comp.nk")
    r = g.add("Read", file=PLATES)
    assert g.validate() == []
    assert r.knobs.file == PLATES  # kept verbatim, so the script writes back unchanged
    assert g.frame_range(r) == (1, 3)
    for f in (1, 2, 3):
        assert _red(g.evaluate(r, f)) == pytest.approx(f / 100)


def test_relative_read_resolves_against_the_script_folder(tmp_path: Path, elsewhere: Path) -> None:
    shot = tmp_path / "shot"
    _plates(shot, range(1, 3))
    g = ng.Graph()
    g.path = str(shot / "comp.nk")
    r = g.add("Read", file="plates/x.####.exr")
    assert g.frame_range(r) == (1, 2)
    assert _red(g.evaluate(r, 2)) == pytest.approx(0.02)


def test_relative_read_without_a_script_path_uses_the_current_directory(elsewhere: Path) -> None:
    _plates(elsewhere, range(5, 7))
    g = ng.Graph()
    r = g.add("Read", file="plates/x.####.exr")
    assert _red(g.evaluate(r, 6)) == pytest.approx(0.06)


def test_hash_follows_the_expanded_path(tmp_path: Path, elsewhere: Path) -> None:
    """Same knob text, another script folder: other files, so another hash and other pixels."""
    a, b = tmp_path / "a", tmp_path / "b"
    _plates(a, range(1, 3), scale=0.01)
    _plates(b, range(1, 3), scale=0.1)
    g = ng.Graph()
    g.path = str(a / "comp.nk")
    r = g.add("Read", file=PLATES)
    ev = g.evaluator
    h_a = ev.hash(r, 2)
    assert _red(g.evaluate(r, 2)) == pytest.approx(0.02)
    g.path = str(b / "comp.nk")
    assert ev.hash(r, 2) != h_a
    assert _red(g.evaluate(r, 2)) == pytest.approx(0.2)
    g.path = str(a / "comp.nk")
    assert ev.hash(r, 2) == h_a


def test_hash_follows_a_knob_the_path_reads(tmp_path: Path) -> None:
    _plates(tmp_path / "v1", range(1, 2), scale=0.01)
    _plates(tmp_path / "v2", range(1, 2), scale=0.1)
    g = ng.Graph()
    ctrl = g.add("Read", "Ctrl", file=str(tmp_path / "v1"))
    r = g.add("Read", file="[value Ctrl.file]/plates/x.%04d.exr")
    h1 = g.evaluator.hash(r, 1)
    assert _red(g.evaluate(r, 1)) == pytest.approx(0.01)
    ctrl.set(file=str(tmp_path / "v2"))
    assert g.evaluator.hash(r, 1) != h1
    assert _red(g.evaluate(r, 1)) == pytest.approx(0.1)


def test_read_with_environment_and_python_forms(tmp_path: Path, elsewhere: Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    _plates(tmp_path, range(1, 2))
    monkeypatch.setenv("NODEGRAPH_TEST_SHOT", str(tmp_path))
    g = ng.Graph()
    g.path = str(tmp_path / "comp.nk")
    for text in ("$env(NODEGRAPH_TEST_SHOT)/plates/x.####.exr", "[getenv NODEGRAPH_TEST_SHOT]/plates/x.####.exr",
                 "[python {nuke.script_directory()}]/plates/x.%04d.exr",
                 "[python os.path.dirname(nuke.root().name())]/plates/x.%04d.exr"):
        r = g.add("Read", file=text)
        assert g.frame_range(r) == (1, 1), text
        assert _red(g.evaluate(r, 1)) == pytest.approx(0.01), text


def test_write_with_frame_in_its_name(tmp_path: Path, elsewhere: Path) -> None:
    g = ng.Graph()
    g.path = str(tmp_path / "comp.nk")
    c = g.add("Constant", color=[0.25, 0.5, 0.75, 1.0])
    w = g.add("Write", input=c, file="out/render.[frame].exr", create_directories=True)
    w2 = g.add("Write", input=c, file="[file dirname [value root.name]]/out/pad.[format %04d [frame]].exr")
    result = render(g, frames=[1, 2, 10])
    result.raise_for_failures()
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == [
        "pad.0001.exr", "pad.0002.exr", "pad.0010.exr", "render.1.exr", "render.10.exr", "render.2.exr"]
    assert w.output_path(10) == str(tmp_path / "out" / "render.10.exr")
    assert w2.output_path(3) == str(tmp_path / "out" / "pad.0003.exr")
    img = read_image(tmp_path / "out" / "render.2.exr")
    assert float(img.channel("rgba.green").mean()) == pytest.approx(0.5)
    assert not list(elsewhere.iterdir())


def test_write_padding_after_tcl(tmp_path: Path) -> None:
    """TCL first, then the frame token: a padding token built by TCL counts too."""
    g = ng.Graph()
    g.path = str(tmp_path / "comp.nk")
    w = g.add("Write", input=g.add("Constant"), file="[file rootname [value root.name]].####.exr")
    assert w.output_path(7) == str(tmp_path / "comp.0007.exr")
    assert w.resolved_type() == "exr"


@pytest.mark.parametrize("node_type", ["Read", "Write"])
@pytest.mark.parametrize("text,says", [
    ("[lindex {a b} 0]/x.####.exr", "the TCL command 'lindex' is not supported"),
    ("[python nuke.thisNode().name()].exr", "the python expression 'nuke.thisNode().name()' is not supported"),
    ("[file dirname [value root.name]]/x.####.exr", "not loaded from or saved to a file"),
    ("[value Nowhere.file]/x.exr", "no node named 'Nowhere'"),
])
def test_errors_name_node_and_knob(tmp_path: Path, node_type: str, text: str, says: str) -> None:
    g = ng.Graph()
    if node_type == "Read":
        node = g.add("Read", "Plate", file=text, first=1, last=1)
        g.add("Write", "Out", input=node, file=str(tmp_path / "o.####.exr"))
    else:
        node = g.add("Write", "Out", input=g.add("Constant"), file=text)
    issues = [i for i in g.validate() if i.node == node.name]
    assert len(issues) == 1, issues
    assert "knob 'file'" in issues[0].message and says in issues[0].message and repr(text) in issues[0].message
    with pytest.raises(ValidationError):
        render(g, frames=[1])
    with pytest.raises(KnobError) as info:  # at render time too, when not validated first
        if node_type == "Read":
            g.evaluate(node, 1)
        else:
            node.output_path(1)
    assert info.value.node == node.name and info.value.knob == "file"
    assert says in info.value.message and repr(text) in info.value.message
