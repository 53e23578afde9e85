"""ColorWheel against Python's colorsys, pixel by pixel, and as a script writes it."""

from __future__ import annotations

import colorsys
import math

import numpy as np
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import nodegraph as ng
from nodegraph.nuke.reader import read_nk


def reference(w: int, h: int, box, cs, es, cv, ev, gamma, rotate) -> np.ndarray:
    x0, y0, x1, y1 = box
    cx, cy, rx, ry = (x0 + x1) / 2, (y0 + y1) / 2, abs(x1 - x0) / 2, abs(y1 - y0) / 2
    out = np.zeros((4, h, w))
    for j in range(h):
        for i in range(w):
            dx, dy = (i + 0.5 - cx) / rx, (j + 0.5 - cy) / ry
            r = math.hypot(dx, dy)
            t = min(r, 1.0)
            hue = (math.atan2(dy, dx) / (2 * math.pi) + rotate / 360.0) % 1.0
            rgb = colorsys.hsv_to_rgb(hue, cs + (es - cs) * t, cv + (ev - cv) * t)
            a = min(max((1.0 - r) * min(rx, ry) + 0.5, 0.0), 1.0)
            out[:3, j, i] = [max(c, 0.0) ** (1.0 / gamma) * a for c in rgb]
            out[3, j, i] = a
    return out


@settings(max_examples=25, deadline=None)
@given(cs=st.floats(0, 1), es=st.floats(0, 1), cv=st.floats(0, 1), ev=st.floats(0.1, 1),
       gamma=st.floats(0.2, 2.5), rotate=st.floats(-360, 360), fill=st.booleans())
def test_matches_colorsys(cs, es, cv, ev, gamma, rotate, fill) -> None:
    g = ng.Graph()
    wheel = g.add("ColorWheel", "W", format="24 16 1", centerSaturation=cs, edgeSaturation=es, centerValue=cv,
                  edgeValue=ev, gamma=gamma, rotate=rotate, fillFormat=fill, area=(2.0, 1.0, 20.0, 13.0))
    box = (4.0, 0.0, 20.0, 16.0) if fill else (2.0, 1.0, 20.0, 13.0)
    got = g.evaluate(wheel, 1).pixels.double().numpy()
    np.testing.assert_allclose(got, reference(24, 16, box, cs, es, cv, ev, gamma, rotate), atol=2e-5)


def test_red_is_on_the_x_axis_and_outside_is_black() -> None:
    g = ng.Graph()
    px = g.evaluate(g.add("ColorWheel", "W", format="33 33 1", gamma=1.0), 1).pixels
    right = px[:, 16, 31]  # near the edge on +x: saturated red
    assert right[0] > 0.9 and right[1] < 0.1 and right[2] < 0.1 and right[3] == 1
    up = px[:, 31, 16]  # +y (Nuke's y is up): a quarter turn, hue 0.25: yellow-green
    assert up[1] > 0.9 and up[2] < 0.1
    assert torch.equal(px[:, 0, 0], torch.zeros(4))


def test_channels_and_a_script() -> None:
    res = read_nk("""
ColorWheel {
 inputs 0
 format "16 16 0 0 16 16 1"
 channels rgb
 gamma 1
 name Wheel
}
""")
    px = res.graph.evaluate("Wheel", 1).pixels
    assert res.unsupported == {} and torch.equal(px[3], torch.zeros(16, 16))  # alpha not written
    assert px[:3].max() > 0.9
