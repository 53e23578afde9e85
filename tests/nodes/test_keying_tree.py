"""The documented keying tree (examples/keying_tree.py) end to end, checked pixel by pixel."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import numpy as np
import OpenImageIO as oiio
import pytest

import nodegraph as ng
from nodegraph.render import render

EXAMPLE = Path(__file__).parents[2] / "examples" / "keying_tree.py"


def _example():
    spec = importlib.util.spec_from_file_location("keying_tree_example", EXAMPLE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _srgb_to_linear(v: np.ndarray) -> np.ndarray:  # IEC 61966-2-1, written independently
    return np.where(v <= 0.04045, v / 12.92, ((v + 0.055) / 1.055) ** 2.4)


@pytest.fixture(scope="module")
def rendered(tmp_path_factory):
    k = _example()
    root = tmp_path_factory.mktemp("keying")
    plate, hint = k.make_shot(root / "shot")
    graph = k.build(plate, hint, str(root / "render"))
    result = render(graph, frames=[4])
    assert result.ok, result.failed
    return k, root


def _pixels(path: Path) -> tuple[np.ndarray, list[str]]:
    buf = oiio.ImageBuf(str(path))
    return buf.get_pixels(oiio.FLOAT), list(buf.spec().channelnames)


def test_background_where_the_key_is_empty(rendered) -> None:
    k, root = rendered
    comp, names = _pixels(root / "render" / "comp.0004.exr")
    assert names == ["R", "G", "B", "A"]
    np.testing.assert_allclose(comp[5, 5], k.background(4), atol=1e-3)  # half-float output
    # the background's colour is animated: frame 4 is not the first frame's colour
    assert np.abs(comp[5, 5, :3] - np.array(k.BACKGROUND[:3])).max() > 0.01


def test_subject_is_linearised_premultiplied_and_over(rendered) -> None:
    k, root = rendered
    comp, _ = _pixels(root / "render" / "comp.0004.exr")
    plate, _ = _pixels(root / "shot" / "plate.0004.png")
    hint, _ = _pixels(root / "shot" / "hint.0004.exr")
    y, x = 297, 480  # inside the subject at frame 4
    assert hint[y, x, 0] == pytest.approx(1.0)
    # the greenscreen key is g - max(r, b) of the sRGB values; inverted, then intersected with the hint
    r, g, b = plate[y, x, :3]
    screen = np.clip((g - max(r, b)) / 0.05, 0, 1)
    alpha = (1 - screen) * hint[y, x, 0]
    fg = _srgb_to_linear(plate[y, x, :3])
    expected = fg * alpha + np.array(k.background(4)[:3]) * (1 - alpha)
    np.testing.assert_allclose(comp[y, x, :3], expected, rtol=2e-3, atol=1e-3)
    assert comp[y, x, 3] == pytest.approx(alpha + k.background(4)[3] * (1 - alpha), abs=1e-3)


def test_passes_exr_holds_comp_foreground_and_matte(rendered) -> None:
    _, root = rendered
    passes, names = _pixels(root / "render" / "passes.0004.exr")
    comp, _ = _pixels(root / "render" / "comp.0004.exr")
    assert set(names) == {"R", "G", "B", "A", "FG.R", "FG.G", "FG.B", "matte.A"}
    col = {n: i for i, n in enumerate(names)}
    np.testing.assert_array_equal(passes[..., [col[c] for c in "RGBA"]], comp)
    # the premultiplied foreground and its alpha, taken before the merge
    fg = passes[..., [col["FG.R"], col["FG.G"], col["FG.B"]]]
    matte = passes[..., col["matte.A"]]
    assert float(matte.max()) == pytest.approx(1.0) and float(matte[5, 5]) == 0.0
    assert np.all(fg[matte == 0] == 0)
    inside = matte > 0.999
    np.testing.assert_allclose(comp[..., :3][inside], fg[inside], atol=2e-3)


def test_saved_example_graph_matches_the_script() -> None:
    k = _example()
    saved = json.loads((EXAMPLE.parent / "keying_tree.json").read_text())
    assert saved == k.build("shot/plate.####.png", "shot/hint.####.exr", "render").to_dict()
    graph = ng.Graph.from_dict(saved)
    assert [i for i in graph.validate()] == []
