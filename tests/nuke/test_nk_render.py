"""Imported .nk comps render exactly as the same graphs built in Python; `nodegraph render X.nk`."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import OpenEXR
import OpenImageIO as oiio
import pytest
import torch
from typer.testing import CliRunner

import nodegraph as ng
from nodegraph.cli import app
from nodegraph.nuke.reader import read_nk

from test_nk_reader import expand

FRAMES = (1, 4, 9)


def same_pixels(a: ng.Graph, b: ng.Graph, node: str, frames=FRAMES) -> None:
    for frame in frames:
        x, y = a.evaluate(node, frame), b.evaluate(node, frame)
        assert x.channels == y.channels and x.bbox == y.bbox and x.format == y.format, (node, frame)
        assert torch.equal(x.pixels, y.pixels), (node, frame)


def imported(text: str) -> ng.Graph:
    res = read_nk(expand(text))
    assert [str(i) for i in res.graph.validate()] == []
    return res.graph


HEAD = """
Root {
 inputs 0
 first_frame 1
 last_frame 10
 format "48 32 0 0 48 32 1 small"
}
Constant { inputs 0 color {0.2 0.3 0.4 1} name Bg }
set NB [stack 0]
CheckerBoard2 { inputs 0 boxsize 6 name Fg }
set NF [stack 0]
"""


def python_head() -> ng.Graph:
    g = ng.Graph()
    g.root.update(first_frame=1, last_frame=10, format="48 32 1")
    g.add("Constant", "Bg", color=(0.2, 0.3, 0.4, 1.0), format="48 32 1")
    g.add("CheckerBoard2", "Fg", boxsize=6.0, format="48 32 1")
    return g


@pytest.mark.parametrize("operation", ["over", "plus", "multiply", "screen", "difference", "stencil", "max",
                                       "disjoint-over", "soft-light"])
def test_merge2_operations(operation: str) -> None:
    nk = imported(HEAD + f"""
        push $NF
        push $NB
        Merge2 {{ inputs 2 operation {operation} mix 0.8 name M }}
    """)  # input 0 (B) is the top of the stack: Bg
    g = python_head()
    g.add("Merge2", "M", B=g.node("Bg"), A=g.node("Fg"), operation=operation, mix=0.8)
    same_pixels(nk, g, "M")


def test_merge2_mask_input_and_default_operation() -> None:
    nk = imported(HEAD + """
        Ramp { inputs 0 p0 {0 0} p1 {48 0} name Matte }
        push $NF
        push $NB
        Merge2 { inputs 2+1 name M }
    """)
    g = python_head()
    ramp = g.add("Ramp", "Matte", p0=(0.0, 0.0), p1=(48.0, 0.0), format="48 32 1")
    g.add("Merge2", "M", B=g.node("Bg"), A=g.node("Fg"), mask=ramp)
    same_pixels(nk, g, "M")


def test_grade_and_transform_with_animated_knobs() -> None:
    nk = imported(HEAD + """
        push $NF
        Grade {
         white {{curve x1 1 x9 2.5}}
         gamma {1 {curve x1 1 L x9 0.6} 1 1}
         mix {{frame/10}}
         name G
        }
        Transform {
         translate {{curve x1 0 x9 16} {"frame * 0.5"}}
         rotate {{curve x1 0 K x5 30 x9 45}}
         center {24 16}
         name T
        }
    """)
    g = python_head()
    gr = g.add("Grade", "G", input=g.node("Fg"), white=ng.Curve.parse("{curve x1 1 x9 2.5}"),
               gamma=[1.0, ng.Curve.parse("{curve x1 1 L x9 0.6}"), 1.0, 1.0], mix=ng.Expression("frame/10"))
    g.add("Transform", "T", input=gr, translate=[ng.Curve.parse("{curve x1 0 x9 16}"), ng.Expression("frame * 0.5")],
          rotate=ng.Curve.parse("{curve x1 0 K x5 30 x9 45}"), center=(24.0, 16.0))
    same_pixels(nk, g, "T")
    assert nk.node("T").value("rotate", 7) == 30.0  # constant interpolation after key 5


def test_group_with_user_knobs_driving_inner_nodes() -> None:
    nk = imported(HEAD + """
        push $NF
        Group {
         name Soft
         addUserKnob {20 User}
         addUserKnob {7 size l Size R 0 50}
         size 3
         addUserKnob {7 amount}
         amount 0.5
        }
         Input { inputs 0 name In }
         Blur { size {{parent.size}} name Blur1 }
         Multiply { value {{parent.amount * 2}} name Mul }
         Output { name Output1 }
        end_group
    """)
    g = python_head()
    grp = g.add("Group", "Soft")
    grp.add_knob("size", "float", 3.0)
    grp.add_knob("amount", "float", 0.5)
    inp = grp.subgraph.add("Input", "In")
    blur = grp.subgraph.add("Blur", "Blur1", input=inp, size=ng.Expression("parent.size"))
    mul = grp.subgraph.add("Multiply", "Mul", input=blur, value=ng.Expression("parent.amount * 2"))
    grp.subgraph.add("Output", "Output1", input=mul)
    g.connect("Fg", grp, "In")
    same_pixels(nk, g, "Soft", frames=(1,))
    nk.node("Soft").set(size=6.0)
    g.node("Soft").set(size=6.0)
    same_pixels(nk, g, "Soft", frames=(1,))


def test_shuffle2_mappings_and_copy() -> None:
    nk = imported(HEAD + """
        push $NF
        push $NB
        Shuffle2 {
         inputs 2
         fromInput1 {{0} B}
         fromInput2 {{1} A}
         in2 rgba
         mappings "4 rgba.blue 0 2 rgba.red 0 0 rgba.green 1 1 rgba.green 0 1 rgba.red 0 0 rgba.blue 0 2 white -1 -1 rgba.alpha 0 3"
         name S
        }
        set NS [stack 0]
        push $NF
        push $NS
        Copy { inputs 2 from0 rgba.red to0 rgba.alpha name Cp }
    """)
    g = python_head()
    s = g.add("Shuffle2", "S", B=g.node("Bg"), A=g.node("Fg"), fromInput2="A", in2="rgba",
              mappings={"rgba.red": "in1:rgba.blue", "rgba.green": "in2:rgba.green", "rgba.blue": "in1:rgba.red",
                        "rgba.alpha": "white"})
    g.add("Copy", "Cp", B=s, A=g.node("Fg"), from0="rgba.red", to0="rgba.alpha")
    same_pixels(nk, g, "S", frames=(1,))
    same_pixels(nk, g, "Cp", frames=(1,))


def test_time_nodes() -> None:
    nk = imported(HEAD + """
        push $NF
        Transform { translate {{frame} 0} name Moving }
        FrameHold { first_frame 4 name Hold }
        push $NF
        Transform { translate {{frame} 0} name Moving2 }
        TimeOffset { time_offset 2 name Off }
    """)
    g = python_head()
    mv = g.add("Transform", "Moving", input=g.node("Fg"), translate=[ng.Expression("frame"), 0.0])
    g.add("FrameHold", "Hold", input=mv, firstFrame=4)
    mv2 = g.add("Transform", "Moving2", input=g.node("Fg"), translate=[ng.Expression("frame"), 0.0])
    g.add("TimeOffset", "Off", input=mv2, time_offset=2)
    same_pixels(nk, g, "Hold")
    same_pixels(nk, g, "Off")


def _exr(path: Path, value: float) -> None:
    px = np.full((8, 12, 4), value, np.float32)
    px[..., 3] = 1
    header = {"compression": OpenEXR.ZIP_COMPRESSION, "type": OpenEXR.scanlineimage}
    channels = {c: px[..., i].copy() for i, c in enumerate("RGBA")}
    with OpenEXR.File(header, channels) as f:
        f.write(str(path))


def test_read_relative_to_the_script_and_write_via_the_cli(tmp_path: Path) -> None:
    (tmp_path / "plates").mkdir()
    for f in (1, 2, 3):
        _exr(tmp_path / "plates" / f"plate.{f:04d}.exr", 0.1 * f)
    script = tmp_path / "shot.nk"
    script.write_text(expand("""
        Root { inputs 0 first_frame 1 last_frame 3 }
        Read { inputs 0 file plates/plate.####.exr first 1 last 3 name Plate }
        Grade { white 2 name G }
        Write { file "[file dirname [value root.name]]/out/result.####.exr" file_type exr create_directories true name Out }
    """))
    res = CliRunner().invoke(app, ["render", "-x", "-F", "1-3", str(script)])
    assert res.exit_code == 0, res.output
    written = sorted(p.name for p in (tmp_path / "out").iterdir()) if (tmp_path / "out").exists() else []
    assert written == ["result.0001.exr", "result.0002.exr", "result.0003.exr"], res.output
    pixels = oiio.ImageBuf(str(tmp_path / "out" / "result.0002.exr")).get_pixels(oiio.FLOAT)
    assert np.allclose(pixels[..., 0], 0.4, atol=1e-3)  # plate frame 2 (0.2) times white 2, as half
    g = ng.Graph()
    g.add("Read", "Plate", file=str(tmp_path / "plates" / "plate.####.exr"), first=1, last=3)
    g.add("Grade", "G", input=g.node("Plate"), white=2.0)
    same_pixels(ng.Graph.load(script), g, "G", frames=(1, 2, 3))


def test_render_names_an_unsupported_node_only_when_it_is_upstream(tmp_path: Path) -> None:
    script = tmp_path / "comp.nk"
    script.write_text(expand("""
        Root { inputs 0 first_frame 1 last_frame 1 format "8 8 0 0 8 8 1" }
        Constant { inputs 0 name C }
        set N1 [stack 0]
        ZDefocus2 { name ZD }
        Write { file zd.####.exr name W1 }
        push $N1
        Write { file ok.####.exr name W2 }
    """))
    runner = CliRunner()
    res = runner.invoke(app, ["render", str(script), "-X", "W2"])  # generators only: the root's range
    assert res.exit_code == 0, res.output
    assert (tmp_path / "ok.0001.exr").exists()
    res = runner.invoke(app, ["render", str(script), "-X", "W1"])
    assert res.exit_code != 0 and "ZDefocus2" in res.output
    assert not (tmp_path / "zd.0001.exr").exists()


def test_process_workers_resolve_paths_against_the_script(tmp_path: Path, monkeypatch) -> None:
    """Worker processes load the graph from a document: they get its path too, so relative files
    land beside the script, not in the workers' current folder."""
    script = tmp_path / "shots" / "comp.nk"
    script.parent.mkdir()
    script.write_text(expand("""
        Root { inputs 0 first_frame 1 last_frame 2 format "8 8 0 0 8 8 1" }
        Constant { inputs 0 color 0.5 name C }
        Write { file renders/c.####.exr create_directories true name W }
    """))
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    res = CliRunner().invoke(app, ["render", str(script), "-j", "2", "--processes"])
    assert res.exit_code == 0, res.output
    assert sorted(p.name for p in (script.parent / "renders").iterdir()) == ["c.0001.exr", "c.0002.exr"]
    assert list(elsewhere.iterdir()) == []
