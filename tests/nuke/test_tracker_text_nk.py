"""Tracker4, Text and Text2 as scripts write them: read, rendered, written back verbatim; and the
public script that uses the old Text class."""

from __future__ import annotations

import math
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch

import nodegraph as ng
from nodegraph.nuke.reader import read_nk, read_nk_file
from nodegraph.nuke.writer import dumps_nk

COLUMNS = ("{ 5 1 20 enable e 1 } \n{ 3 1 75 name name 1 } \n{ 2 1 58 track_x track_x 1 } \n"
           "{ 2 1 58 track_y track_y 1 } \n{ 2 1 63 offset_x offset_x 1 } \n{ 2 1 63 offset_y offset_y 1 } \n"
           "{ 4 1 27 T T 1 } \n{ 4 1 27 R R 1 } \n{ 4 1 27 S S 1 } \n{ 2 0 45 error error 1 } \n"
           + "".join(f"{{ 1 1 0 {n} {n} 1 }} \n" for n in (
               "error_min", "error_max", "pattern_x", "pattern_y", "pattern_r", "pattern_t", "search_x", "search_y",
               "search_r", "search_t"))
           + "".join(f"{{ 2 1 0 {n} {n} 1 }} \n" for n in (
               "key_track", "key_search_x", "key_search_y", "key_search_r", "key_search_t", "key_track_x",
               "key_track_y", "key_track_r", "key_track_t", "key_centre_offset_x", "key_centre_offset_y")))


def row(name: str, xs: list[float], ys: list[float]) -> str:
    return (" { {curve K x1001 1} \"%s\" {curve x1001 %s} {curve x1001 %s} {curve K x1001 0} {curve K x1001 0} "
            "1 1 1 {curve x1001 0 0.0007} 0 0.0007 -32 -32 32 32 -22 -22 22 22 {curve} {curve x1001 576} "
            "{curve x1001 146} {curve x1001 683} {curve x1001 253} {curve x1001 598} {curve x1001 168} "
            "{curve x1001 661} {curve x1001 231} {curve x1001 31.5} {curve x1001 31.5}  } "
            % (name, " ".join(map(str, xs)), " ".join(map(str, ys))))


def tracker_script() -> tuple[str, str]:
    # two tracks turning by 10 degrees a frame about their midpoint (40, 24) from frame 1001
    pts = [(20.0, 24.0), (60.0, 24.0)]
    rows = []
    for i, (x, y) in enumerate(pts):
        xs, ys = [], []
        for f in range(3):
            a = math.radians(10 * f)
            xs.append(round(40 + math.cos(a) * (x - 40), 6))
            ys.append(round(24 + math.sin(a) * (x - 40), 6))
        rows.append(row(f"track {i + 1}", xs, ys))
    tracker = ("Tracker4 {\n tracks { { 1 31 2 } \n{ " + COLUMNS + "} \n{ \n" + "\n".join(rows) + "\n} \n}\n"
               " transform stabilize\n reference_frame 1001\n name Tracker1\n selected true\n xpos 0\n ypos 40\n}\n")
    head = ('Constant {\n inputs 0\n color {0.5 0.25 0.1 1}\n format "64 48 0 0 64 48 1 tiny"\n name C\n}\n'
            'CheckerBoard2 {\n inputs 0\n format "64 48 0 0 64 48 1 tiny"\n boxsize 8\n name Board\n}\n')
    return head + tracker, tracker


def test_a_tracker_script_reads_renders_and_writes_back_verbatim() -> None:
    text, tracker = tracker_script()
    res = read_nk(text)
    assert res.unsupported == {} and not [w for w in res.warnings if "Tracker1" in w]
    g = res.graph
    node = g.node("Tracker1")
    ref = g.add("Transform", input=g.node("Board"), rotate=20.0, center=(40.0, 24.0), invert_matrix=True)
    torch.testing.assert_close(g.evaluate("Tracker1", 1003).pixels, g.evaluate(ref, 1003).pixels, atol=1e-4, rtol=0)
    assert torch.equal(g.evaluate("Tracker1", 1001).pixels, g.evaluate("Board", 1001).pixels)
    g.remove(ref)
    assert tracker in dumps_nk(g)
    node.set(transform="match-move")
    assert " transform match-move\n" in dumps_nk(g)


def test_text_scripts_read_and_render() -> None:
    res = read_nk('''
Constant {
 inputs 0
 color {0 0 0 1}
 format "200 80 0 0 200 80 1 small"
 name C
}
Text2 {
 font_size 30
 message "f[frame]"
 font "{{ DejaVu Sans : Bold : DejaVuSans-Bold.ttf : 0 }}"
 box {0 0 200 80}
 xjustify center
 yjustify center
 color {1 0 0 1}
 name T2
}
push $cut_paste_input
Text {
 inputs 0
 message "old"
 font /no/such/font.ttf
 size 20
 box {10 10 190 70}
 name T1
}
''')
    assert res.unsupported == {}
    g = res.graph
    assert g.node("T2").font_file(1)[0].endswith("DejaVuSans-Bold.ttf")
    img = g.evaluate("T2", 7)
    red, green = img.channel("rgba.red"), img.channel("rgba.green")
    assert float(red.max()) > 0.99 and float(green.max()) == 0.0
    ys, xs = np.nonzero(red.numpy() > 0.5)
    assert abs((xs.min() + xs.max()) / 2 - 100) < 4 and abs((ys.min() + ys.max()) / 2 - 40) < 6  # centred
    with pytest.warns(UserWarning, match="T1.*/no/such/font.ttf"):
        old = g.evaluate("T1", 1)
    assert old.format.width == 1920 and float(old.channel("rgba.alpha").max()) > 0.99  # the root format
    assert '"{{ DejaVu Sans : Bold : DejaVuSans-Bold.ttf : 0 }}"' in dumps_nk(g) or \
        "{{ DejaVu Sans : Bold : DejaVuSans-Bold.ttf : 0 }}" in dumps_nk(g)


CHART = Path(__file__).resolve().parents[3] / "shared/data/nk/colour-science+colour-nuke/colour_nuke/scripts/" \
    "colour_rendition_chart.nk"


@pytest.mark.skipif(not CHART.is_file(), reason="the public scripts are not here")
def test_the_public_script_text_nodes_render() -> None:
    res = read_nk_file(CHART)
    assert "Text" not in res.unsupported
    g = res.graph
    texts = []

    def walk(graph):
        for n in graph:
            if n.type_name == "Text":
                texts.append(n)
            if getattr(n, "subgraph", None) is not None:
                walk(n.subgraph)

    walk(g)
    assert len(texts) == 98
    g.node("Colour_Rendition_Chart").set(label_opacity_Floating_Point_Slider=1.0)  # 0 as saved: labels hidden
    group = "Colour_Rendition_Chart.ColorChecker24_After_November_2014.Group24"
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        index = g.evaluate(f"{group}.index_Text", 1)
        name = g.evaluate(f"{group}.name_Text", 1)
    assert any("defaultFontPathname" in str(w.message) for w in caught)  # Nuke's font: the bundled one
    below = name.channel("rgba.red").numpy()
    index_ink = np.abs(index.channel("rgba.red").numpy() - below) > 0.5  # index_Text draws over name_Text
    name_ink = below > below.min() + 0.5  # white label over the dark patch
    for ink, rows in ((index_ink, (150, 330)), (name_ink, (0, 120))):  # "24" centred large; the name low
        ys, xs = np.nonzero(ink)
        assert len(ys) > 500
        top, bottom = 512 - ys.max() - 1, 512 - ys.min()
        assert rows[0] <= top and bottom <= rows[1] + 160, (top, bottom)
        assert abs((xs.min() + xs.max()) / 2 - 256) < 12  # xjustify center


@pytest.mark.skipif(not CHART.is_file(), reason="the public scripts are not here")
def test_the_public_script_titles_centre_on_their_box_edges() -> None:
    """The titles' ``center {{box.r/2} {box.t}}`` reads the box's right and top edges (a box knob's
    r and t), and the chart they caption (a Switch of 66 colourspaces) renders beneath them."""
    res = read_nk_file(CHART)
    assert res.unsupported == {}
    g = res.graph
    titles = ("Colour_Rendition_Chart.ColorChecker24_After_November_2014_title_Text",
              "Colour_Rendition_Chart.ColorChecker2005_title_Text")
    title = g.node(titles[0])
    below = title.graph.sources_of(title)["input"]
    with pytest.warns(UserWarning, match="defaultFontPathname"):  # Nuke's default font: the bundled one
        for path in titles:  # the box's size reads the chart's size, rendering its labels
            assert g.node(path).value("box", 1) == (0.0, 0.0, 3583.0, 1262.5)
            assert g.node(path).value("center", 1) == (1791.5, 1262.5)
        out = g.evaluate(titles[0], 1)
        under = g.evaluate(below.path, 1)
    assert (out.format.width, out.format.height) == (3583, 2525)
    ink = np.abs(out.crop_to(out.bbox).channel("rgba.red").numpy()
                 - under.crop_to(out.bbox).channel("rgba.red").numpy()) > 0.05
    ys, xs = np.nonzero(ink)
    assert len(ys) > 5000
    assert abs((xs.min() + xs.max()) / 2 - 1791.5) < 20  # xjustify center on box.r / 2
    assert out.bbox.height - ys.min() < 56 + 60  # in the band the chart's Transform (translate 0 56) left
