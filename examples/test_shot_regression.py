"""Putting a shot under regression test with ``nodegraph.testing``.

Copy this into a shot's test folder. Here the whole shot is generated in a temporary folder so
that the example runs anywhere: a green-screen plate, the comp that keys it over a checkerboard,
and the approved reference frames. In a studio the plate and the references are files on disk
(the references are renders someone approved) and only the two tests below are needed.

    pytest examples/test_shot_regression.py
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

import nodegraph as ng
from nodegraph.channels import RGBA
from nodegraph.io import write_image
from nodegraph.render import render
from nodegraph.testing import assert_frames_match

FRAMES = range(1001, 1004)


def build_shot(folder: Path) -> Path:
    """Write plate frames, the comp document and its approved reference frames; returns the document."""
    fmt = ng.Format.of_size(48, 32)
    for f in FRAMES:  # a grey square moving across a green screen
        rgba = np.empty((4, 32, 48), np.float32)
        rgba[:] = np.array([0.1, 0.8, 0.15, 1.0], np.float32)[:, None, None]
        x = 4 + 8 * (f - FRAMES[0])
        rgba[:3, 8:24, x:x + 16] = 0.45
        write_image(folder / "plate" / f"plate.{f}.exr", ng.Image(torch.from_numpy(rgba), RGBA, fmt.display, fmt),
                    datatype="half", create_directories=True)

    g = ng.Graph()
    plate = g.add("Read", name="Plate", file=str(folder / "plate" / "plate.####.exr"))
    key = g.add("Keyer", name="Key", input=plate, operation="greenscreen keyer", range=(0.05, 0.4, 1, 1),
                invert=True)
    fg = g.add("Premult", name="Premult", input=key)
    bg = g.add("CheckerBoard2", name="Background", format="48x32", boxsize=8)
    comp = g.add("Merge2", name="Comp", A=fg, B=bg, operation="over")
    g.add("Write", name="Approved", input=comp, file=str(folder / "ref" / "comp.####.exr"),
          channels="rgba", datatype="32 bit float", create_directories=True)
    doc = folder / "comp.json"
    g.save(doc)
    render(g)  # stands in for the renders a supervisor approved
    return doc


@pytest.fixture
def shot(tmp_path: Path) -> Path:
    return build_shot(tmp_path)


def test_comp_matches_its_reference(shot: Path) -> None:
    assert_frames_match(shot, "Comp", shot.parent / "ref" / "comp.####.exr", atol=1e-4, channels="rgba")


def test_a_changed_key_is_caught(shot: Path) -> None:
    graph = ng.Graph.load(shot)
    graph.node("Key").set(range=(0.05, 0.9, 1, 1))  # a softer key: edges and the screen change
    with pytest.raises(AssertionError, match=r"frame 1001:\n.*rgba\.") as failure:
        assert_frames_match(graph, "Comp", shot.parent / "ref" / "comp.####.exr", atol=1e-4,
                            diff_dir=shot.parent / "diff")
    assert "3 of 3 frame(s) differ" in str(failure.value)
    assert (shot.parent / "diff" / "diff.1001.exr").exists()  # |graph - reference| to look at
