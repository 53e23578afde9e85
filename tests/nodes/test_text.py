"""Text and Text2: ink inside the justified box, justification against the font's own metrics
(Pillow's FreeType advance widths and ascent/descent) with hypothesis, colour and opacity against
the over formula, orientation, transforms, TCL in the message, fonts, animation, half, empty."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import ImageFont

import nodegraph as ng
from nodegraph.nodes.text import bundled_font

W, H = 240, 120


def ink(img: ng.Image, channel: str = "rgba.alpha", level: float = 0.05) -> tuple[int, int, int, int] | None:
    """Ink bounding box x0, y0, x1, y1 in Nuke's y-up pixel coordinates (edges), or None."""
    a = img.channel(channel).float().numpy()
    ys, xs = np.nonzero(a > level)
    if not len(xs):
        return None
    b = img.bbox
    x0, x1 = b.x0 + xs.min(), b.x0 + xs.max() + 1
    top_row, bottom_row = b.y0 + ys.min(), b.y0 + ys.max() + 1
    h = img.format.height
    return int(x0), int(h - bottom_row), int(x1), int(h - top_row)


def text(g: ng.Graph, cls: str = "Text2", **knobs) -> ng.Node:
    base = {"format": f"{W}x{H}", "message": "Hxq", "box": (20.0, 10.0, 220.0, 110.0)}
    if cls == "Text2":
        base["font_size"] = 30.0
    else:
        base["size"] = 30.0
    base.update(knobs)
    return g.add(cls, **base)


def test_ink_stays_inside_its_justified_box() -> None:
    g = ng.Graph()
    for xj in ("left", "center", "right"):
        for yj in ("top", "center", "bottom"):
            box = ink(g.evaluate(text(g, xjustify=xj, yjustify=yj, cliptype="no clip"), 1))
            assert box is not None
            assert 20 - 1 <= box[0] and box[2] <= 220 + 1 and 10 - 1 <= box[1] and box[3] <= 110 + 1, (xj, yj, box)


@settings(max_examples=8, deadline=None)
@given(size=st.floats(12, 48), width=st.integers(120, 230), height=st.integers(60, 118),
       message=st.sampled_from(["Hxq", "Wg", "a b c"]))
def test_justification_moves_the_ink_by_the_font_metrics(size, width, height, message) -> None:
    font = ImageFont.truetype(bundled_font(), size=size)
    advance = font.getlength(message)
    asc, desc = font.getmetrics()
    g = ng.Graph()
    box = (5.0, 1.0, 5.0 + width, 1.0 + height)
    got = {(xj, yj): ink(g.evaluate(text(g, message=message, font_size=size, box=box, xjustify=xj, yjustify=yj), 1))
           for xj in ("left", "center", "right") for yj in ("top", "bottom")}
    left, right, centre = got["left", "top"], got["right", "top"], got["center", "top"]
    assert abs((right[0] - left[0]) - (width - advance)) <= 1.01
    assert abs((centre[0] - left[0]) - (width - advance) / 2) <= 1.01
    bottom = got["left", "bottom"]
    assert abs((left[1] - bottom[1]) - (height - asc - desc)) <= 1.01  # y up: top minus bottom placement


def test_colour_and_opacity_follow_the_over_formula() -> None:
    g = ng.Graph()
    bg = g.add("Constant", format=f"{W}x{H}", color=(0.2, 0.3, 0.4, 0.5))
    plain = g.evaluate(text(g, input=bg, color=(1.0, 1.0, 1.0, 1.0)), 1)
    cov = (plain.channel("rgba.red").double() - 0.2) / 0.8  # coverage, from the white text
    node = text(g, input=bg, color=(0.9, 0.1, 0.5, 1.0), opacity=0.6)
    out = g.evaluate(node, 1)
    w = cov * 0.6
    for name, c, b in (("rgba.red", 0.9, 0.2), ("rgba.green", 0.1, 0.3), ("rgba.blue", 0.5, 0.4),
                       ("rgba.alpha", 1.0, 0.5)):
        want = b * (1 - w) + c * w
        torch.testing.assert_close(out.channel(name).double(), want, atol=1e-5, rtol=0)
    assert float(cov.max()) > 0.99 and float(cov.min()) >= 0


def test_first_line_is_at_the_top_and_lines_step_down() -> None:
    g = ng.Graph()
    img = g.evaluate(text(g, message="WWWWWW\ni", box=(0.0, 0.0, float(W), float(H))), 1)
    a = img.channel("rgba.alpha").numpy() > 0.05
    widths = a.sum(axis=1)
    wide_row = int(np.argmax(widths))  # a row through the Ws
    narrow_rows = [r for r in range(H) if 0 < widths[r] < 8]
    assert narrow_rows and wide_row < min(narrow_rows)  # tensor rows run down: the Ws are above


def test_whole_pixel_translate_is_a_copy_and_rotation_turns_the_ink() -> None:
    g = ng.Graph()
    base = g.evaluate(text(g), 1)
    moved = g.evaluate(text(g, translate=(7.0, -3.0)), 1)
    torch.testing.assert_close(moved.pixels[:, 3 + 0:, 7:], base.pixels[:, :-3, :-7])
    b = ink(base)
    cx, cy = (b[0] + b[2]) / 2, (b[1] + b[3]) / 2
    turned = ink(g.evaluate(text(g, rotate=90.0, center=(cx, cy)), 1))
    assert abs((turned[2] - turned[0]) - (b[3] - b[1])) <= 2 and abs((turned[3] - turned[1]) - (b[2] - b[0])) <= 2
    big = ink(g.evaluate(text(g, scale=2.0, center=(float(b[0]), float(b[1]))), 1))
    assert abs((big[2] - big[0]) - 2 * (b[2] - b[0])) <= 3


def test_message_tcl() -> None:
    g = ng.Graph()
    ref = text(g, message="12")
    node = text(g, "Text", message="[frame]", size=30.0, yjustify="top")
    frame12 = g.evaluate(node, 12)
    node2 = text(g, "Text", message="12", size=30.0, yjustify="top")
    assert torch.equal(frame12.pixels, g.evaluate(node2, 12).pixels)
    ref.set(message="[value font_size]")
    other = text(g, message="30")
    assert torch.equal(g.evaluate(ref, 1).pixels, g.evaluate(other, 1).pixels)
    with pytest.warns(UserWarning, match=r"\[clock seconds\]"):
        lit = g.evaluate(text(g, "Text", message="a [clock seconds]"), 1)
    assert ink(lit) is not None


def test_metadata_and_escapes_in_the_message() -> None:
    from nodegraph.nodes.text import expand_message

    g = ng.Graph()
    node = text(g, "Text", message="[metadata input/filename]")
    assert expand_message(node, "[metadata input/filename] x", 1, {"input/filename": "a.exr"}) == "a.exr x"
    assert expand_message(node, r"\[frame] [frame]", 4, {}) == "[frame] 4"
    assert expand_message(node, "[knob size]", 1, {}) == "30"
    with pytest.warns(UserWarning, match="no such key"):
        assert expand_message(node, "<[metadata nope]>", 1, {}) == "<>"


def test_missing_font_falls_back_with_a_warning_naming_node_and_file() -> None:
    g = ng.Graph()
    good = g.evaluate(text(g, "Text"), 1)
    node = text(g, "Text", font="/no/such/font.ttf")
    with pytest.warns(UserWarning, match=r"Text\d.*/no/such/font\.ttf"):
        out = g.evaluate(node, 1)
    assert torch.equal(out.pixels, good.pixels)
    bold = text(g, font="{ DejaVu Sans : Bold : DejaVuSans-Bold.ttf : 0 }")
    assert bold.font_file(1)[0].endswith("DejaVuSans-Bold.ttf")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        heavy = g.evaluate(bold, 1).channel("rgba.alpha").sum()
    assert float(heavy) > float(good.channel("rgba.alpha").sum())


def test_animated_size_half_and_empty() -> None:
    g = ng.Graph()
    node = text(g, font_size=ng.Curve.parse("curve x1 10 x10 40"))
    small, large = ink(g.evaluate(node, 1)), ink(g.evaluate(node, 10))
    assert (large[3] - large[1]) > 3 * (small[3] - small[1]) * 0.8
    full = g.evaluate(node, 10)
    half = g.evaluate(node, 10, dtype=torch.float16)
    assert half.dtype == torch.float16
    torch.testing.assert_close(half.pixels.float(), full.pixels, atol=2e-3, rtol=0)
    bg = g.add("Constant", format=f"{W}x{H}", color=(0.1, 0.2, 0.3, 0.4))
    empty_text = g.evaluate(text(g, input=bg, message=""), 1)
    assert torch.equal(empty_text.pixels, g.evaluate(bg, 1).pixels)
    crop = g.add("Crop", input=bg, box=(10, 10, 10, 40))
    out = g.evaluate(text(g, input=crop), 1)
    assert ink(out) is not None  # the text is drawn even where the background has no data


def test_clip_to_box_and_invert() -> None:
    g = ng.Graph()
    clipped = ink(g.evaluate(text(g, message="WWWWWWWWWW", box=(20.0, 10.0, 80.0, 110.0), cliptype="clip to box"), 1))
    assert clipped[2] <= 81
    plain = g.evaluate(text(g), 1).channel("rgba.alpha")
    inverted = g.evaluate(text(g, invert=True), 1).channel("rgba.alpha")
    torch.testing.assert_close(inverted, 1 - plain)


@pytest.mark.gpu
def test_gpu_matches_cpu() -> None:
    g = ng.Graph()
    node = text(g, rotate=12.0, center=(120.0, 60.0))
    cpu, gpu = g.evaluate(node, 1, device="cpu"), g.evaluate(node, 1, device="cuda")
    torch.testing.assert_close(gpu.pixels.cpu(), cpu.pixels, atol=1e-4, rtol=1e-4)
