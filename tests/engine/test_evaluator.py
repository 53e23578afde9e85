"""Pull evaluation, Merkle hashing and caching (nodegraph.evaluator, nodegraph.cache).

Caching is proven by counting computes (``stats.ran`` / ``stats.cached``), never by timing.
"""

from __future__ import annotations


import pytest
import torch

import nodegraph as ng
from nodegraph import (Context, EvaluationError, Format, GraphError, Image, ImageCache, Input, Knobs, Node,
                       NodeGraphError)

FMT = "64x32"
IMG_BYTES = 4 * 32 * 64 * 4  # one float32 RGBA 64x32 image


# --- test-only node types ----------------------------------------------------------------------

class EvalTestBoom(Node):
    """Test-only: its compute fails with a plain Python exception."""

    inputs = (Input("input", required=False),)

    def compute(self, ctx: Context) -> Image:
        raise ZeroDivisionError("kaboom")


class EvalTestNotAnImage(Node):
    """Test-only: compute returns something that is not an Image."""

    def compute(self, ctx: Context) -> Image:
        return torch.zeros(1)  # type: ignore[return-value]


class EvalTestFrame(Node):
    """Test-only source whose pixels are the frame number (so its hash includes the frame)."""

    class Knobs(Knobs):
        scale: float = 1.0
        """Multiplies the frame number."""

    def hash_extra(self, ctx: Context) -> bytes:
        return str(ctx.frame).encode()

    def compute(self, ctx: Context) -> Image:
        fmt = Format.of_size(64, 32)
        return Image.blank(fmt, ("rgba.red",), device=ctx.device, dtype=ctx.dtype, value=ctx.frame * self.knobs.scale)


class EvalTestPrevFrame(Node):
    """Test-only: outputs its input one frame earlier, declared in ``needs``."""

    inputs = (Input("input"),)

    def needs(self, ctx: Context):
        return [("input", ctx.frame - 1)]

    def compute(self, ctx: Context) -> Image:
        return ctx.input("input", ctx.frame - 1)


class EvalTestDeclaredNext(Node):
    """Test-only: pulls the next frame of its input, declared in ``needs``."""

    inputs = (Input("input"),)

    def needs(self, ctx: Context):
        return [("input", ctx.frame + 1)]

    def compute(self, ctx: Context) -> Image:
        return ctx.input("input", ctx.frame + 1)


class EvalTestUndeclared(Node):
    """Test-only: pulls the next frame of its input without declaring it in ``needs``."""

    inputs = (Input("input"),)

    def needs(self, ctx: Context):
        return []

    def hash_extra(self, ctx: Context) -> bytes:
        return str(ctx.frame).encode()

    def compute(self, ctx: Context) -> Image:
        return ctx.input("input", ctx.frame + 1)


class EvalTestSum(Node):
    """Test-only: A + B, pixel by pixel."""

    inputs = (Input("A"), Input("B"))

    def compute(self, ctx: Context) -> Image:
        a, b = ctx.input("A"), ctx.input("B")
        return a.replace(pixels=a.pixels + b.pixels)


def constant(g, name=None, value=1.0):
    return g.add("Constant", name, format=FMT, color=(value, value, value, value))


def two_branches():
    """C -> M1 -> M2 -> S.A ; K -> A1 -> S.B ; S is the root."""
    g = ng.Graph()
    c = constant(g, "C", 1.0)
    m1 = g.add("Multiply", "M1", input=c, value=2.0)
    m2 = g.add("Multiply", "M2", input=m1, value=3.0)
    k = constant(g, "K", 0.5)
    a1 = g.add("Add", "A1", input=k, value=1.0)
    s = g.add("EvalTestSum", "S", A=m2, B=a1)
    return g, s


def ran(g) -> dict[str, int]:
    return {k: v for k, v in g.evaluator.stats.ran.items() if v}


def cached(g) -> dict[str, int]:
    return {k: v for k, v in g.evaluator.stats.cached.items() if v}


# --- caching -------------------------------------------------------------------------------------

def test_first_evaluate_computes_each_node_once_and_values_are_right():
    g, s = two_branches()
    img = g.evaluate(s, 1)
    assert ran(g) == {"C": 1, "M1": 1, "M2": 1, "K": 1, "A1": 1, "S": 1}
    assert cached(g) == {}
    assert torch.allclose(img.pixels, torch.full((4, 32, 64), 1 * 2 * 3 + 0.5 + 1.0))


def test_second_evaluate_of_same_frame_computes_nothing():
    g, s = two_branches()
    first = g.evaluate(s, 1)
    g.evaluator.stats.reset()
    second = g.evaluate(s, 1)
    assert ran(g) == {}
    assert cached(g) == {"S": 1}
    assert torch.equal(first.pixels, second.pixels)


def test_frame_independent_nodes_share_cache_across_frames():
    g, s = two_branches()
    g.evaluate(s, 1)
    g.evaluator.stats.reset()
    g.evaluate(s, 2)  # no node here varies with the frame
    assert ran(g) == {}


def test_knob_change_recomputes_exactly_downstream():
    g, s = two_branches()
    g.evaluate(s, 1)
    g.evaluator.stats.reset()
    g["M1"].set(value=4.0)
    img = g.evaluate(s, 1)
    assert ran(g) == {"M1": 1, "M2": 1, "S": 1}
    assert cached(g) == {"C": 1, "A1": 1}  # upstream and the other branch served from cache
    assert torch.allclose(img.pixels, torch.full((4, 32, 64), 1 * 4 * 3 + 0.5 + 1.0))


def test_knob_change_through_attribute_also_invalidates():
    g, s = two_branches()
    g.evaluate(s, 1)
    g.evaluator.stats.reset()
    g["K"].knobs.color = (2.0, 2.0, 2.0, 2.0)
    g.evaluate(s, 1)
    assert ran(g) == {"K": 1, "A1": 1, "S": 1}


def test_relinking_recomputes_downstream_only():
    g, s = two_branches()
    g.evaluate(s, 1)
    g.evaluator.stats.reset()
    g.connect("C", "S", "B")
    img = g.evaluate(s, 1)
    assert ran(g) == {"S": 1}
    assert torch.allclose(img.pixels, torch.full((4, 32, 64), 6.0 + 1.0))


def test_unrelated_change_recomputes_nothing():
    g, s = two_branches()
    down = g.add("Multiply", "Down", input=s)
    other = constant(g, "Other", 0.0)
    g.evaluate(s, 1)
    g.evaluator.stats.reset()
    down.set(value=10.0)
    other.set(color=(1, 0, 0, 1))
    g.add("Add", "New", input="M2")
    g.evaluate(s, 1)
    assert ran(g) == {}


def test_renaming_does_not_invalidate():
    g, s = two_branches()
    h = g.evaluator.hash(s)
    g.rename("M1", "Times2")
    assert g.evaluator.hash(s) == h
    g.evaluate(s)
    g.evaluator.stats.reset()
    g.rename("S", "Sum")
    g.evaluate("Sum")
    assert ran(g) == {}


def test_hash_depends_on_knobs_inputs_and_input_names():
    g, s = two_branches()
    h = g.evaluator.hash(s)
    g["C"].set(color=(1, 1, 1, 0.5))
    assert g.evaluator.hash(s) != h
    g["C"].set(color=(1, 1, 1, 1))
    assert g.evaluator.hash(s) == h
    # swapping A and B changes the result's hash (input names are part of it)
    g.connect("A1", "S", "A")
    g.connect("M2", "S", "B")
    assert g.evaluator.hash(s) != h


def test_same_structure_same_hash_across_graphs_and_dots():
    g1, _ = two_branches()
    g2, _ = two_branches()
    # put a Dot and a NoOp between M1 and M2 in the second graph
    dot = g2.add("Dot", input="M1")
    noop = g2.add("NoOp", input=dot)
    g2.connect(noop, "M2", "input")
    assert g1.evaluator.hash("S") == g2.evaluator.hash("S")


def test_dot_and_noop_share_input_hash_and_never_run():
    g, s = two_branches()
    dot = g.add("Dot", input=s)
    noop = g.add("NoOp", input=dot)
    assert g.evaluator.hash(dot) == g.evaluator.hash(s)
    assert g.evaluator.hash(noop) == g.evaluator.hash(s)
    out = g.evaluate(noop)
    assert "Dot1" not in ran(g) and "NoOp1" not in ran(g)
    assert ran(g)["S"] == 1
    g.evaluator.stats.reset()
    assert torch.equal(g.evaluate(s).pixels, out.pixels)
    assert ran(g) == {}
    # a node downstream of a Dot is cached like one downstream of its input
    m = g.add("Multiply", input=noop, value=1.0)
    g.evaluate(m)
    assert ran(g) == {"Multiply1": 1}
    assert g.evaluator.stats.ran["Dot1"] == 0 and g.evaluator.stats.cached["Dot1"] == 0


def test_unconnected_dot_is_an_error_naming_it():
    g = ng.Graph()
    g.add("Dot", "Lonely")
    with pytest.raises(GraphError) as info:
        g.evaluate("Lonely")
    assert info.value.node == "Lonely"


def test_switch_pulls_only_chosen_input():
    g = ng.Graph()
    c0 = constant(g, "C0", 0.25)
    b0 = g.add("Multiply", "B0", input=c0, value=2.0)
    c1 = constant(g, "C1", 0.75)
    b1 = g.add("Multiply", "B1", input=c1, value=2.0)
    sw = g.add("Switch", "Sw", which=1)
    g.connect(b0, sw, "0")
    g.connect(b1, sw, "1")
    img = g.evaluate(sw)
    assert torch.allclose(img.pixels, torch.full((4, 32, 64), 1.5))
    stats = g.evaluator.stats
    assert stats.ran["C0"] == 0 and stats.ran["B0"] == 0
    assert ran(g) == {"C1": 1, "B1": 1}
    assert g.evaluator.hash(sw) == g.evaluator.hash(b1)
    # switching back pulls branch 0 only
    stats.reset()
    sw.set(which=0)
    img = g.evaluate(sw)
    assert torch.allclose(img.pixels, torch.full((4, 32, 64), 0.5))
    assert ran(g) == {"C0": 1, "B0": 1}


def test_diamond_computes_shared_input_once_even_without_cache():
    g = ng.Graph()
    prev = constant(g, "C", 1.0)
    for i in range(6):
        a = g.add("Multiply", input=prev, value=1.0)
        b = g.add("Add", input=prev, value=0.0)
        prev = g.add("EvalTestSum", A=a, B=b)
    g.evaluator = ng.Evaluator(g, max_cache_bytes=0)
    img = g.evaluate(prev)
    assert torch.allclose(img.pixels, torch.full((4, 32, 64), 2.0 ** 6))
    assert g.evaluator.stats.ran["C"] == 1
    assert set(ran(g).values()) == {1} and len(ran(g)) == 1 + 6 * 3
    assert len(g.evaluator.cache) == 0


# --- memory bound -------------------------------------------------------------------------------

def test_small_cache_evicts_least_recently_used():
    g = ng.Graph()
    c = constant(g, "C")
    m = g.add("Multiply", "M", input=c, value=2.0)
    g.evaluator = ng.Evaluator(g, max_cache_bytes=IMG_BYTES + IMG_BYTES // 2)  # room for one image
    g.evaluate(m)
    cache = g.evaluator.cache
    assert len(cache) == 1 and cache.nbytes == IMG_BYTES <= cache.max_bytes
    g.evaluator.stats.reset()
    g.evaluate(m)
    assert ran(g) == {}  # M, the most recent, stayed
    g.evaluate(c)
    assert ran(g) == {"C": 1}  # C was evicted
    g.evaluator.stats.reset()
    g.evaluate(m)
    assert ran(g) == {"M": 1} and cached(g) == {"C": 1}  # and now M was


def test_image_bigger_than_budget_is_not_stored():
    g = ng.Graph()
    c = constant(g, "C")
    g.evaluator = ng.Evaluator(g, max_cache_bytes=IMG_BYTES - 1)
    g.evaluate(c)
    assert len(g.evaluator.cache) == 0 and g.evaluator.cache.nbytes == 0
    g.evaluate(c)
    assert g.evaluator.stats.ran["C"] == 2


def test_image_cache_lru_accounting():
    fmt = Format.of_size(8, 8)
    imgs = {k: Image.blank(fmt, ("rgba.red",)) for k in "abcd"}
    size = imgs["a"].nbytes
    cache = ImageCache(3 * size)
    for k in "abc":
        cache.put(k, imgs[k])
    assert cache.get("a") is imgs["a"]  # a is now most recent
    cache.put("d", imgs["d"])
    assert "b" not in cache and all(k in cache for k in "acd")
    assert cache.nbytes == 3 * size and len(cache) == 3
    cache.put("a", imgs["a"])  # replacing does not double count
    assert cache.nbytes == 3 * size
    assert cache.get("b") is None
    assert (cache.hits, cache.misses) == (1, 1)
    cache.clear()
    assert len(cache) == 0 and cache.nbytes == 0
    off = ImageCache(0)
    off.put("a", imgs["a"])
    assert len(off) == 0


# --- structure and errors -------------------------------------------------------------------------

def test_deep_chain_without_recursion_error():
    g = ng.Graph()
    prev = constant(g, "C", 0.0)
    for _ in range(300):
        prev = g.add("Add", input=prev, value=1.0)
    img = g.evaluate(prev)
    assert torch.allclose(img.pixels, torch.full((4, 32, 64), 300.0))
    assert sum(g.evaluator.stats.ran.values()) == 301
    assert len(g.evaluator.hash(prev)) == 32
    assert g.frame_range(prev) is None


def test_cycle_at_evaluation_raises_graph_error():
    g = ng.Graph()
    a = g.add("Multiply", "A")
    b = g.add("Multiply", "B", input=a)
    c = g.add("Multiply", "C", input=b)
    g.connect(c, a, "input")
    with pytest.raises(GraphError, match="cycle"):
        g.evaluate(c)
    with pytest.raises(GraphError, match="cycle"):
        g.evaluator.hash(a)
    with pytest.raises(GraphError, match="cycle"):
        g.frame_range(a)


def test_python_exception_becomes_evaluation_error_naming_node_and_frame():
    g = ng.Graph()
    c = constant(g, "C")
    boom = g.add("EvalTestBoom", "Bomb", input=c)
    after = g.add("Multiply", input=boom)
    with pytest.raises(EvaluationError) as info:
        g.evaluate(after, 12)
    err = info.value
    assert err.node == "Bomb" and err.frame == 12
    assert "Bomb" in str(err) and "12" in str(err) and "kaboom" in str(err)
    assert isinstance(err.__cause__, ZeroDivisionError)
    assert g.evaluator.stats.ran["Multiply1"] == 0


def test_compute_returning_non_image_is_an_evaluation_error():
    g = ng.Graph()
    g.add("EvalTestNotAnImage", "Bad")
    with pytest.raises(EvaluationError, match="not an Image") as info:
        g.evaluate("Bad", 3)
    assert (info.value.node, info.value.frame) == ("Bad", 3)


def test_nodegraph_error_in_compute_gets_node_and_frame():
    g = ng.Graph()
    c = constant(g, "C")
    m = g.add("Multiply", "M", input=c, channels="specular")  # no such layer in the image
    with pytest.raises(NodeGraphError) as info:
        g.evaluate(m, 5)
    assert info.value.node == "M" and info.value.frame == 5


# --- time ------------------------------------------------------------------------------------------

def test_node_pulling_previous_frame():
    g = ng.Graph()
    src = g.add("EvalTestFrame", "Src")
    prev = g.add("EvalTestPrevFrame", "Prev", input=src)
    img = g.evaluate(prev, 10)
    assert torch.all(img.pixels == 9)
    assert ran(g) == {"Src": 1, "Prev": 1}
    # frame 9 of the source was computed and cached: pulling it directly computes nothing
    g.evaluator.stats.reset()
    g.evaluate(src, 9)
    assert ran(g) == {}
    # Prev at 10 is the source at 9, so its hash follows the source's frame
    ev = g.evaluator
    assert ev.hash(prev, 10) != ev.hash(prev, 11)
    assert ev.hash(prev, 10) == ev.hash(prev, 10)
    g.evaluator.stats.reset()
    g.evaluate(prev, 11)
    assert ran(g) == {"Src": 1, "Prev": 1}
    # a change upstream invalidates every frame
    h = ev.hash(prev, 10)
    src.set(scale=2.0)
    assert ev.hash(prev, 10) != h
    assert torch.all(g.evaluate(prev, 10).pixels == 18)


def test_undeclared_pull_is_an_error_naming_node_input_and_frame():
    # Before: served on demand, outside the hash; after an upstream change the cache gave the old
    # image. Now the pull itself fails, naming node, input and frame.
    g = ng.Graph()
    src = g.add("EvalTestFrame", "Src")
    nxt = g.add("EvalTestUndeclared", "Next", input=src)
    with pytest.raises(EvaluationError) as info:
        g.evaluate(nxt, 4)
    err = info.value
    assert err.node == "Next" and err.frame == 4
    assert "'input' at frame 5" in str(err) and "needs()" in str(err)
    assert ran(g) == {}


def test_declared_pull_of_another_frame_follows_upstream_changes():
    g = ng.Graph()
    src = g.add("EvalTestFrame", "Src")
    nxt = g.add("EvalTestDeclaredNext", "Next", input=src)
    assert torch.all(g.evaluate(nxt, 4).pixels == 5)
    src.set(scale=3.0)
    assert torch.all(g.evaluate(nxt, 4).pixels == 15), "an upstream change must not be served stale"
    # only the declared frame was pulled
    assert ran(g) == {"Src": 2, "Next": 2}


# --- precision and device ------------------------------------------------------------------------

def test_half_precision_evaluate_returns_half():
    g, s = two_branches()
    img = g.evaluate(s, 1, dtype=torch.float16)
    assert img.dtype == torch.float16
    assert torch.allclose(img.pixels.float(), torch.full((4, 32, 64), 7.5))
    # float32 and half results are cached separately
    g.evaluator.stats.reset()
    img32 = g.evaluate(s, 1)
    assert img32.dtype == torch.float32
    assert ran(g) == {"C": 1, "M1": 1, "M2": 1, "K": 1, "A1": 1, "S": 1}
    g.evaluator.stats.reset()
    assert g.evaluate(s, 1, dtype=torch.float16).dtype == torch.float16
    assert ran(g) == {}


def test_evaluator_converts_node_output_to_requested_precision():
    g = ng.Graph()
    g.add("EvalTestFrame", "Src")
    img = g.evaluate("Src", 3, dtype=torch.float16)
    assert img.dtype == torch.float16 and torch.all(img.pixels == 3)


def test_cuda_requested_without_cuda_is_a_clear_error():
    if torch.cuda.is_available():
        pytest.skip("has CUDA")
    g, s = two_branches()
    with pytest.raises(NodeGraphError, match="CUDA"):
        g.evaluate(s, device="cuda")


@pytest.mark.gpu
def test_evaluate_on_cuda_stays_on_device():
    g, s = two_branches()
    img = g.evaluate(s, 1, device="cuda")
    assert img.device.type == "cuda"
    assert torch.allclose(img.pixels.cpu(), torch.full((4, 32, 64), 7.5))
    half = g.evaluate(s, 1, device="cuda", dtype=torch.float16)
    assert half.device.type == "cuda" and half.dtype == torch.float16
    g.evaluator.stats.reset()
    g.evaluate(s, 1, device="cuda")
    assert ran(g) == {}


def test_unconnected_required_input_is_a_graph_error_naming_it():
    g = ng.Graph()
    m = g.add("Merge2", "M")
    g.add("Constant", "C", format="8x8")
    g.connect("C", m, "B")
    with pytest.raises(GraphError, match="required input 'A' is not connected") as info:
        g.evaluate(m, 3)
    assert info.value.node == "M" and info.value.frame == 3
