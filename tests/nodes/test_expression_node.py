"""Expression and MergeExpression against numpy formulas written here (hypothesis over random
pixels), plus Nuke's coordinates, channel sets, temporaries, other layers, knob references at a
frame (and in the hash), animated mix, masks, half precision and empty data windows."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import nodegraph as ng
from nodegraph import Box, Format, Image, KnobError
from nodegraph.curve import Curve, Key
from nodegraph.evaluator import Context
from nodegraph.nodes.expression import Expression, MergeExpression
from nodegraph.testing import compute_node

FMT = Format.of_size(12, 10)
RGBA = ("rgba.red", "rgba.green", "rgba.blue", "rgba.alpha")
_IMAGES: dict[str, Image] = {}


class ExprNodeTestSource(ng.Node):
    """Test-only: serves the image registered under its ``key`` in this module."""

    class Knobs(ng.Knobs):
        key: str = ""
        """Which image."""

    def compute(self, ctx: Context) -> Image:
        return _IMAGES[self.knobs.key].to(ctx.device, ctx.dtype)


def image(channels=RGBA, box=(0, 0, 12, 10), seed=0, fmt=FMT) -> Image:
    box = Box(*box)
    g = torch.Generator().manual_seed(seed)
    px = torch.rand((len(channels), box.height, box.width), generator=g, dtype=torch.float64) * 3 - 1
    return Image(px.float(), tuple(channels), box, fmt)


def source(g: ng.Graph, name: str, img: Image) -> ng.Node:
    _IMAGES[f"{id(g)}.{name}"] = img
    return g.add("ExprNodeTestSource", name, key=f"{id(g)}.{name}")


def np_of(img: Image, name: str) -> np.ndarray:
    return img.channel(name).double().numpy()


def nuke_xy(img: Image) -> tuple[np.ndarray, np.ndarray]:
    """Nuke's pixel coordinates (y up from the bottom of the format) over the data window."""
    b = img.bbox
    xs, ys = np.meshgrid(np.arange(b.x0, b.x1), np.arange(b.y0, b.y1))
    return xs.astype(np.float64), (img.format.height - 1 - ys).astype(np.float64)


def close(got: torch.Tensor, want: np.ndarray, tol: float = 1e-5) -> None:
    np.testing.assert_allclose(got.double().numpy(), want, rtol=tol, atol=tol)


# --- Expression -------------------------------------------------------------------------------------

def test_defaults_leave_the_image_as_it_is():
    img = image()
    out = compute_node(Expression("E"), input=img)
    assert out.channels == img.channels and torch.equal(out.pixels, img.pixels)
    assert Expression("E").knobs.channel0 == "rgba.red" and Expression("E").knobs.expr3 == ""


pixel_values = st.floats(-4, 4, allow_nan=False, width=32)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(pixel_values, min_size=4 * 6, max_size=4 * 6), st.integers(-3, 3), st.integers(-3, 3))
def test_rows_match_numpy(values, ox, oy):
    box = Box(2 + ox, 3 + oy, 5 + ox, 5 + oy)  # 3x2 somewhere in (or partly outside) the format
    img = Image(torch.tensor(values).view(4, 2, 3), RGBA, box, FMT)
    node = Expression("E", expr0="r * g + b", expr1="clamp(a, -0.5, 0.5) - x / width",
                      expr2="r > g ? sqrt(abs(b)) : y * height", expr3="max(r, g, b) + cx * cy + frame")
    out = compute_node(node, input=img, frame=7)
    r, g, b, a = (np_of(img, c) for c in RGBA)
    x, y = nuke_xy(img)
    cx, cy = (x + 0.5 - 6) / 6, (y + 0.5 - 5) / 6
    close(out.channel("rgba.red"), r * g + b)
    close(out.channel("rgba.green"), np.clip(a, -0.5, 0.5) - x / 12)
    close(out.channel("rgba.blue"), np.where(r > g, np.sqrt(np.abs(b)), y * 10))
    close(out.channel("rgba.alpha"), np.maximum(np.maximum(r, g), b) + cx * cy + 7)
    assert out.bbox == box and out.channels == RGBA


# Random expressions over the per-pixel variables, each paired with the same formula in numpy
# (float32, element-wise): the expression node must agree with numpy on every pixel.
_LEAVES = st.sampled_from(["r", "g", "b", "a", "x", "y", "cx", "width", "0.5", "2", "frame"])
_UNARY = {"abs": np.abs, "sin": np.sin, "cos": np.cos, "floor": np.floor, "-": np.negative}
_BINARY = {"+": np.add, "-": np.subtract, "*": np.multiply, "min": np.minimum, "max": np.maximum}


def _tree(children):
    unary = st.tuples(st.sampled_from(sorted(_UNARY)), children)
    binary = st.tuples(st.sampled_from(sorted(_BINARY)), children, children)
    compare = st.tuples(st.sampled_from(["<", ">=", "=="]), children, children, children, children)
    return unary | binary | compare


_EXPRESSIONS = st.recursive(_LEAVES, _tree, max_leaves=8)


def _text(tree) -> str:
    if isinstance(tree, str):
        return tree
    op, *args = tree
    if len(args) == 4:  # (a op b) ? c : d
        return f"({_text(args[0])} {op} {_text(args[1])} ? {_text(args[2])} : {_text(args[3])})"
    if op in ("min", "max") or (len(args) == 1 and op != "-"):
        return f"{op}({', '.join(_text(a) for a in args)})"
    if len(args) == 1:
        return f"(-{_text(args[0])})"
    return f"({_text(args[0])} {op} {_text(args[1])})"


def _numpy(tree, env: dict[str, np.ndarray]) -> np.ndarray:
    if isinstance(tree, str):
        return env[tree] if tree in env else np.float32(float(tree))
    op, *args = tree
    vals = [_numpy(a, env) for a in args]
    if len(vals) == 4:
        cmp = {"<": np.less, ">=": np.greater_equal, "==": np.equal}[op](vals[0], vals[1])
        return np.where(cmp, vals[2], vals[3]).astype(np.float32)
    fn = _UNARY[op] if len(vals) == 1 else _BINARY[op]
    return fn(*vals).astype(np.float32)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_EXPRESSIONS, st.integers(0, 10_000))
def test_random_expressions_match_numpy(tree, seed):
    img = image(box=(1, 2, 7, 6), seed=seed)
    out = compute_node(Expression("E", expr0=_text(tree)), input=img, frame=3)
    x, y = nuke_xy(img)
    env = {n: img.channel(c).numpy() for n, c in zip("rgba", RGBA)}
    env.update(x=x.astype(np.float32), y=y.astype(np.float32), cx=((x + 0.5 - 6) / 6).astype(np.float32),
               width=np.float32(12), frame=np.float32(3))
    want = np.broadcast_to(_numpy(tree, env), (4, 6)).astype(np.float64)
    np.testing.assert_allclose(out.channel("rgba.red").double().numpy(), want, rtol=1e-5, atol=1e-5,
                               err_msg=_text(tree))


def test_nuke_coordinates_are_y_up_from_the_bottom_of_the_format():
    img = image(box=(0, 0, 12, 10))
    out = compute_node(Expression("E", expr0="x", expr1="y", expr2="(r + x + 0.5) / width"), input=img)
    assert out.channel("rgba.red")[0, 5] == 5 and out.channel("rgba.green")[0, 0] == 9  # top row: y = 9
    assert out.channel("rgba.green")[9, 0] == 0
    close(out.channel("rgba.blue"), (np_of(img, "rgba.red") + nuke_xy(img)[0] + 0.5) / 12)


def test_channel_sets_later_rows_win_and_new_layers():
    img = image()
    node = Expression("E", channel0="rgba", expr0="1", channel1="rgba.green", expr1="2",
                      channel2="none", expr2="3", channel3="matte", expr3="4")
    out = compute_node(node, input=img)
    assert out.channels == RGBA + ("matte.red", "matte.green", "matte.blue", "matte.alpha")
    for name, value in zip(out.channels, (1, 2, 1, 1, 4, 4, 4, 4)):
        assert torch.all(out.channel(name) == value), name
    # 'all' is the image's channels; a row reads the input, not the rows before it
    out = compute_node(Expression("E", channel0="all", expr0="r + 1", channel1="rgba.red", expr1="r * 10"), input=img)
    close(out.channel("rgba.red"), np_of(img, "rgba.red") * 10)
    close(out.channel("rgba.alpha"), np_of(img, "rgba.red") + 1)


def test_temporaries_chain_and_blank_temporary_is_zero():
    img = image()
    node = Expression("E", temp_name0="s", temp_expr0="r + g", temp_name1="t2", temp_expr1="s * 2",
                      temp_name2="z0", expr0="t2 + z0", expr1="s")
    out = compute_node(node, input=img)
    r, g = np_of(img, "rgba.red"), np_of(img, "rgba.green")
    close(out.channel("rgba.red"), (r + g) * 2)
    close(out.channel("rgba.green"), r + g)


def test_other_layers_short_z_and_absent_channels_read_zero():
    img = image(RGBA + ("depth.Z", "matte.garbage"))
    out = compute_node(Expression("E", expr0="depth.Z + z", expr1="matte.garbage * 2"), input=img)
    close(out.channel("rgba.red"), 2 * np_of(img, "depth.Z"))
    close(out.channel("rgba.green"), 2 * np_of(img, "matte.garbage"))
    with pytest.raises(KnobError) as err:  # forward.u: not a channel here, so a knob reference
        compute_node(Expression("E", expr2="forward.u + 1"), input=image())
    assert err.value.knob == "expr2" and err.value.node == "E"
    out = compute_node(Expression("E", expr0="z + depth.Z + 1"), input=image())  # built-in layer: 0
    assert torch.all(out.channel("rgba.red") == 1)


def test_reading_another_pixel_is_nearest_and_black_outside():
    img = image(box=(1, 2, 9, 8))
    out = compute_node(Expression("E", expr0="r(x + 1, y)", expr1="g(x, y - 1.5)"), input=img)
    r, g = np_of(img, "rgba.red"), np_of(img, "rgba.green")
    want_r = np.zeros_like(r)
    want_r[:, :-1] = r[:, 1:]
    close(out.channel("rgba.red"), want_r)
    want_g = np.zeros_like(g)  # y - 1.5 floors to two rows down in Nuke: two rows further in the tensor
    want_g[:-2] = g[2:]
    close(out.channel("rgba.green"), want_g)


def test_bad_expressions_and_references_name_node_and_knob():
    with pytest.raises(KnobError) as err:
        Expression("E", expr1="r +")
    assert err.value.knob == "expr1"
    with pytest.raises(KnobError):
        Expression("E", temp_name0="2x")
    g = ng.Graph()
    src = source(g, "S", image())
    node = g.add("Expression", "E", input=src, expr3="Nope.size * r")
    with pytest.raises(KnobError) as err:
        g.evaluate(node, 1)
    assert err.value.node == "E" and err.value.knob == "expr3" and "Nope" in str(err.value)


def test_knob_references_resolve_per_frame_and_enter_the_hash():
    g = ng.Graph()
    img = image()
    src = source(g, "S", img)
    grade = g.add("Grade", "Grade1", white=Curve([Key(1, 1.0, "linear"), Key(11, 3.0, "linear")]))
    node = g.add("Expression", "E", input=src, expr0="r * Grade1.white", expr1="Grade1.white(frame - 1)",
                 expr2="gain", temp_name0="w", temp_expr0="Grade1.white.g")
    node.add_knob("gain", "float", 0.25)
    out = g.evaluate(node, 6)
    close(out.channel("rgba.red"), np_of(img, "rgba.red") * 2.0)
    assert torch.allclose(out.channel("rgba.green"), torch.tensor(1.8))
    assert torch.all(out.channel("rgba.blue") == 0.25)
    # the referenced knob's value is in the hash: a change recomputes, no change reuses the cache
    before = g.evaluator.hash(node, 6)
    g.evaluate(node, 6)
    assert g.evaluator.stats.ran["E"] == 1
    grade.set(white=5.0)
    assert g.evaluator.hash(node, 6) != before
    assert torch.all(g.evaluate(node, 6).channel("rgba.red") == 5 * img.channel("rgba.red"))
    assert g.evaluator.stats.ran["E"] == 2
    node.set(gain=0.5)
    assert torch.all(g.evaluate(node, 6).channel("rgba.blue") == 0.5)


def test_frame_in_an_expression_makes_each_frame_its_own():
    g = ng.Graph()
    node = g.add("Expression", "E", input=source(g, "S", image()), expr0="frame", expr1="r")
    assert g.evaluator.hash(node, 1) != g.evaluator.hash(node, 2)
    assert torch.all(g.evaluate(node, 1).channel("rgba.red") == 1)
    assert torch.all(g.evaluate(node, 2).channel("rgba.red") == 2)
    node.set(expr0="r * 2", temp_name0="f", temp_expr0="t")  # a temporary's use of time counts too
    assert g.evaluator.hash(node, 1) != g.evaluator.hash(node, 2)
    node.set(temp_expr0="1")  # nothing depends on the frame: one cache entry
    assert g.evaluator.hash(node, 1) == g.evaluator.hash(node, 2)


def test_animated_mix_and_mask():
    g = ng.Graph()
    img, matte = image(), image(seed=3)
    src, msk = source(g, "S", img), source(g, "M", matte)
    node = g.add("Expression", "E", input=src, expr0="1", mix=Curve([Key(1, 0.0, "linear"), Key(5, 1.0, "linear")]))
    r = np_of(img, "rgba.red")
    close(g.evaluate(node, 1).channel("rgba.red"), r)
    close(g.evaluate(node, 2).channel("rgba.red"), r + (1 - r) * 0.25)
    node.set(mix=ng.Expression("frame == 3 ? 0.5 : 1"))
    close(g.evaluate(node, 3).channel("rgba.red"), r + (1 - r) * 0.5)
    g.connect(msk, node, "mask")
    node.set(mix=1.0, invert_mask=True)
    m = 1 - np_of(matte, "rgba.alpha")
    close(g.evaluate(node, 3).channel("rgba.red"), r + (1 - r) * m)


def test_half_precision_close_to_float():
    img = image()
    node = Expression("E", expr0="r * g + sin(b)", expr1="x / width", expr2="pow(abs(a), 0.5)")
    full = compute_node(node, input=img)
    half = compute_node(node, input=img.to(dtype=torch.float16), dtype=torch.float16)
    assert half.dtype == torch.float16 and half.channels == full.channels
    torch.testing.assert_close(half.pixels.float(), full.pixels, rtol=4e-3, atol=4e-3)


@pytest.mark.parametrize("box", [(3, 3, 3, 3), (0, 4, 12, 4), (5, 0, 5, 10)])
def test_empty_data_window(box):
    img = image(box=box)
    for dtype in (torch.float32, torch.float16):
        out = compute_node(Expression("E", expr0="r(x + 1, y) + noise(x, y)", channel1="depth", expr1="x"),
                           input=img.to(dtype=dtype), dtype=dtype)
        assert out.bbox == Box(*box) and out.pixels.numel() == 0 and "depth.Z" in out.channels
        out = compute_node(MergeExpression("M", expr0="Ar"), B=img.to(dtype=dtype), A=img.to(dtype=dtype))
        assert out.bbox.empty and out.channels == RGBA


# --- MergeExpression ------------------------------------------------------------------------------

@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.integers(0, 1000), st.integers(-4, 4), st.integers(-4, 4), st.floats(0, 1))
def test_merge_expression_matches_numpy(seed, dx, dy, mix):
    b = image(RGBA + ("matte.garbage",), box=(1, 1, 8, 7), seed=seed)
    a = image(RGBA + ("depth.Z",), box=(1 + dx, 1 + dy, 8 + dx, 7 + dy), seed=seed + 1)
    node = MergeExpression("M", expr0="Ar - r", expr1="abs(Ag - Bg) + Adepth.Z", expr2="Ab * Bb + B.matte.garbage",
                           expr3="Aa > Ba ? Aa : Bmatte.garbage", mix=mix)
    out = compute_node(node, B=b, A=a)
    box = a.bbox.union(b.bbox)
    A, B = a.crop_to(box), b.crop_to(box)
    Ar, Ag, Ab, Aa, Az = (np_of(A, c) for c in RGBA + ("depth.Z",))
    Br, Bg, Bb, Ba, Bm = (np_of(B, c) for c in RGBA + ("matte.garbage",))
    want = {"rgba.red": Ar - Br, "rgba.green": np.abs(Ag - Bg) + Az, "rgba.blue": Ab * Bb + Bm,
            "rgba.alpha": np.where(Aa > Ba, Aa, Bm)}
    assert out.bbox == box and out.channels == B.channels and out.format == b.format
    for name, value in want.items():
        base = np_of(B, name)
        close(out.channel(name), base + (value - base) * mix, 1e-5)
    close(out.channel("matte.garbage"), Bm)


def test_merge_expression_inputs_in_a_graph_and_public_script_form():
    g = ng.Graph()
    original, blurred = image(seed=1), image(seed=2)
    b, a = source(g, "Orig", original), source(g, "Blur", blurred)
    lap = g.add("MergeExpression", "Laplacian", B=b, A=a, channel0="rgba", expr0="max(Ar-r,Ag-g,Ab-b)")
    out = g.evaluate(lap, 1)
    A = [np_of(blurred, c) for c in RGBA[:3]]
    B = [np_of(original, c) for c in RGBA[:3]]
    want = np.maximum(np.maximum(A[0] - B[0], A[1] - B[1]), A[2] - B[2])
    for name in RGBA:
        close(out.channel(name), want)


@pytest.mark.gpu
def test_cuda_matches_cpu():
    g = ng.Graph()
    b, a = source(g, "B", image(RGBA + ("depth.Z",), seed=1)), source(g, "A", image(seed=2, box=(2, 1, 12, 9)))
    g.add("Grade", "Grade1", white=1.5)
    nodes = [
        g.add("Expression", "E", input=b, temp_name0="n", temp_expr0="noise(x / 3, y / 3) + random(r, g)",
              expr0="n * Grade1.white + z", expr1="r(x + 1, y - 1)", expr2="cx * cy + frame / width",
              channel3="matte", expr3="fBm(x / 4, y / 4, 0, 3, 2, 0.5)", mask=a, mix=0.75),
        g.add("MergeExpression", "M", B=b, A=a, expr0="Ar * Br + Adepth.Z", expr1="Ag(x, y + 1) + A.rgba.green",
              expr2="turbulence(x / 5, y / 5, Ab, 2, 2, 0.5)", expr3="Aa > Ba ? 1 : 0"),
    ]
    for node in nodes:
        cpu = g.evaluate(node, 3, device="cpu")
        gpu = g.evaluate(node, 3, device="cuda")
        assert gpu.device.type == "cuda" and gpu.channels == cpu.channels and gpu.bbox == cpu.bbox
        torch.testing.assert_close(gpu.pixels.cpu(), cpu.pixels, rtol=1e-4, atol=1e-4)


def test_channel_sets_in_nukes_text_form():
    node = Expression("E", channel1="{rgba.red rgba.green -rgba.blue none}", channel2="-rgba.red -rgba.green -rgba.blue none",
                      channel3="{none none none -rgba.alpha}")
    assert (node.knobs.channel1, node.knobs.channel2, node.knobs.channel3) == ("rgba.red,rgba.green", "none", "none")


def test_a_public_script_form_read_and_rendered():
    """The Vector2ToSTMap idiom of a public gizmo: UVs from vectors, blue and alpha rows switched off."""
    from nodegraph.nuke.reader import read_nk

    script = """
CheckerBoard2 {
 inputs 0
 format "12 10 0 0 12 10 1 tiny"
 name Board
}
Expression {
 expr0 (r+x+0.5)/width
 expr1 (g+y+0.5)/height
 channel2 {-rgba.red -rgba.green -rgba.blue none}
 channel3 {none none none -rgba.alpha}
 name Vectors_to_UV
}
"""
    g = read_nk(script).graph
    src, out = g.evaluate("Board", 1), g.evaluate("Vectors_to_UV", 1)
    x, y = nuke_xy(src)
    close(out.channel("rgba.red"), (np_of(src, "rgba.red") + x + 0.5) / 12)
    close(out.channel("rgba.green"), (np_of(src, "rgba.green") + y + 0.5) / 10)
    assert torch.equal(out.pixels[2:], src.pixels[2:])
