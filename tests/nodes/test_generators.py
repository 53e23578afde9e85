"""Procedural sources against values computed independently in the test."""

from __future__ import annotations

import pytest
import torch

import nodegraph as ng


def test_checkerboard_alternates_in_both_directions() -> None:
    g = ng.Graph()
    n = g.add("CheckerBoard2", format="64x32", boxsize=16)
    img = g.evaluate(n, 1)
    red = img.channel("rgba.red")
    # Nuke counts rows from the bottom; the bottom-left box is color0 (0.1)
    assert red[-1, 0] == pytest.approx(0.1)
    assert red[-1, 16] == pytest.approx(0.5)
    assert red[-17, 0] == pytest.approx(0.5)
    assert red[-17, 16] == pytest.approx(0.1)
    assert float(img.channel("rgba.alpha").min()) == 1.0


def test_checkerboard_lines() -> None:
    g = ng.Graph()
    img = g.evaluate(g.add("CheckerBoard2", format="64x64", boxsize=32, linewidth=2), 1)
    assert img.pixels[:3, 10, 31].tolist() == pytest.approx([1.0, 1.0, 0.0])  # a vertical line at x=32
    assert img.pixels[0, 10, 10] == pytest.approx(0.5) or img.pixels[0, 10, 10] == pytest.approx(0.1)


def test_constant_fills_channels_and_format() -> None:
    g = ng.Graph()
    img = g.evaluate(g.add("Constant", color=(0.25, 0.5, 0.75, 1.0), format="PAL"), 1)
    assert (img.format.width, img.format.height, img.format.pixel_aspect) == (720, 576, pytest.approx(1.09))
    assert img.pixels[:, 100, 100].tolist() == pytest.approx([0.25, 0.5, 0.75, 1.0])


def test_ramp_linear_matches_formula() -> None:
    g = ng.Graph()
    img = g.evaluate(g.add("Ramp", format="100x10", p0=(0, 5), p1=(100, 5), color0=(0, 0, 0, 0),
                           color=(1, 2, 3, 1)), 1)
    x = torch.arange(100) + 0.5
    torch.testing.assert_close(img.channel("rgba.green")[3], (2 * x / 100).float())


def test_colorbars_order_and_intensity() -> None:
    g = ng.Graph()
    img = g.evaluate(g.add("ColorBars", format="80x4", barintensity=0.5), 1)
    expected = [(1, 1, 1), (1, 1, 0), (0, 1, 1), (0, 1, 0), (1, 0, 1), (1, 0, 0), (0, 0, 1), (0, 0, 0)]
    for i, rgb in enumerate(expected):
        assert img.pixels[:3, 0, i * 10 + 5].tolist() == pytest.approx([0.5 * c for c in rgb])
