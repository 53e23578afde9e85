"""Conformance that computes: every registered library node is evaluated on the CPU.

Parametrised over the node registry at collection time, like ``test_conformance.py`` (types added
to the library are picked up without editing this file; types defined by test modules are not
part of the library). For each node type:

1. default knobs on a standard image (a CheckerBoard2 and a Ramp fed as in ``test_gpu_parity``,
   and the other way round): the result is an Image whose tensor matches its data window and
   channel names, on the requested device and dtype, finite where the inputs are; with a mask
   input (graded, or empty: then the input comes through);
2. inputs with an empty data window (zero-area boxes; all inputs, or one among full ones): no
   crash, an Image comes back, in float32 and float16;
3. half precision: float16 pixels close to the float32 result;
4. pass-through: whenever ``passthrough(ctx)`` names an input (defaults, identity values such as
   ``mix=0``, still or animated), the node's hash is that input's hash, the evaluator gives its
   pixels and so does ``compute``; ``mix=0`` computes the input whatever else is set;
5. every knob changes the hash at a frame, still and animated: a curve or an expression whose
   value at a frame is the different value (or the default) hashes at that frame like the still
   value (or the default); every candidate value computes or fails as a KnobError naming the knob.
"""

from __future__ import annotations

import functools
import itertools
from typing import Any

import pytest
import torch

import nodegraph as ng
from nodegraph import KnobError, NodeGraphError
from nodegraph import channels as chans
from nodegraph.animation import knob_shape
from nodegraph.curve import Curve, Key
from nodegraph.evaluator import Context
from nodegraph.expression import Expression
from nodegraph.image import Box, Format, Image

from test_conformance import NODE_TYPES, knob_candidates, different_value  # same registry view, same values

W, H = 32, 24
FMT = f"{W}x{H}"
#: What a ``format`` knob is set to (its default is HD_1080, 2 Mpixel per plane: too slow for a
#: suite computing every node several times); different from FMT so that Reformat really resamples.
OUT_FORMAT = "40x30"
#: Nodes whose output size is set by knobs other than ``format``: kept as small as OUT_FORMAT
#: (ContactSheet's default sheet is 3072x2048 with 32 inputs: seconds per evaluation).
SMALL_OUTPUT: dict[str, dict[str, int]] = {"ContactSheet": {"width": 40, "height": 30}}
CPU = torch.device("cpu")

# Not computed here, each with its own tests:
EXCLUDED = {
    # file and model nodes: they need files on disk or trained models (tests/nodes/test_read_write.py,
    # tests/ml/); Write and CatFileCreator are side-effect tasks run explicitly, not pulled
    "Read", "Write", "CopyCat", "CatFileCreator", "Inference",
    # RemoteInference needs an ML server to talk to (tests/serve/test_remote.py starts one)
    "RemoteInference",
    # a group's Input only means something inside a group, fed by the group's input (an Input on
    # its own raises "not connected" by design); it is covered through the Group and Output cases
    # below, which evaluate a group Input -> Blur -> Output, and in tests/engine/test_group.py
    "Input",
}
TYPES = sorted(t for t in NODE_TYPES if t not in EXCLUDED)
#: Every node's own knobs; ``disable``, which every node has from the base, has its own test below.
KNOBS = [(t, k) for t in TYPES for k in NODE_TYPES[t].knob_names() if k != "disable"]

# (type, knob): knobs that legitimately leave the hash at a frame unchanged, with the reason.
HASH_NEUTRAL_KNOBS = {
    # a Group is a pass-through to its Output: its hash is its inner nodes' (a label draws nothing)
    ("Group", "label"): "a group's label does not affect pixels; the group shares its Output's hash",
    # FrameRange sets the clip's range (frame_range) and passes every frame through untouched
    ("FrameRange", "first_frame"): "a pass-through: the range is not part of any frame's pixels",
    ("FrameRange", "last_frame"): "a pass-through: the range is not part of any frame's pixels",
    # CurveTool's image is its input: its knobs hold analysis results other nodes read
    **{("CurveTool", k): "a pass-through: analysis results, read by other nodes' expressions"
       for k in ("operation", "ROI", "avgframes", "intensitydata", "autocropdata", "maxlumapixdata",
                 "maxlumapixvalue", "minlumapixdata", "minlumapixvalue")},
}

# Types whose defaults or identity values are pass-throughs: the pass-through test must find one.
KNOWN_PASSTHROUGH = {"Blur", "Colorspace", "CurveTool", "Dot", "FrameRange", "Group", "NoOp", "Output", "PostageStamp",
                     "Switch", "Tracker4"}

# Types that legitimately give non-finite pixels from finite inputs with default knobs: none.
NON_FINITE_OK: dict[str, str] = {}

# Half precision: float16 vs float32 results. Inputs are rounded to half at the source (relative
# step 2^-11, 0.001 absolute near 2.0, the ramp's largest value) and a node adds a few roundings.
HALF_TOL = dict(rtol=4e-3, atol=4e-3)
HALF_TOL_EXCEPTIONS: dict[str, dict[str, float]] = {
    # a sample position is u times the width: half's rounding of the map moves it by up to 0.03
    # pixels, which across the checkerboard's hard edges changes a cubic sample by up to 0.005
    "STMap": dict(rtol=4e-3, atol=1e-2),
}
# (type, knob) whose different value makes the maths ill-conditioned on the swapped feed, where
# half's rounding of the inputs (not the node) is amplified beyond HALF_TOL (checked on the
# standard feed only):
HALF_ILL_CONDITIONED = {
    ("Grade", "blackpoint"): "blackpoint 1 equals whitepoint: the gain 1/(whitepoint-blackpoint) is unbounded",
    ("Unpremult", "invert"): "divides by 1 - alpha, which the ramp brings near 0 (values of 100 and more)",
}


# --- a test-only source with an empty data window -------------------------------------------------

class ConformanceEmptySource(ng.Node):
    """Test-only source: RGBA of a 32x24 format whose data window ``box`` has zero area."""

    type_name = "ConformanceEmptySource"

    class Knobs(ng.Knobs):
        box: tuple[int, int, int, int] = (8, 6, 8, 6)
        """The (empty) data window, x0 y0 x1 y1."""

    def compute(self, ctx: Context) -> Image:
        box = Box(*self.knobs.box)
        pixels = torch.zeros((4, box.height, box.width), device=ctx.device, dtype=ctx.dtype)
        return Image(pixels, chans.RGBA, box, Format.of_size(W, H))


EMPTY_BOXES = {"point": (8, 6, 8, 6), "column": (8, 0, 8, H), "row": (0, 6, W, 6)}


class ConformanceChannelsSource(ng.Node):
    """Test-only source: a full 32x24 image of the channels ``names`` (comma list; empty: none),
    values spread over [-0.5, 1.5] so that alphas reach 0."""

    type_name = "ConformanceChannelsSource"

    class Knobs(ng.Knobs):
        names: str = "rgba.red,rgba.green,rgba.blue"
        """The channels, in order."""

    def compute(self, ctx: Context) -> Image:
        names = tuple(n for n in self.knobs.names.split(",") if n)
        ramp = torch.linspace(-0.5, 1.5, len(names) * H * W, device=ctx.device, dtype=torch.float64)
        pixels = ramp.reshape(len(names), H, W).to(ctx.dtype)
        return Image(pixels, names, Box(0, 0, W, H), Format.of_size(W, H))


CHANNEL_SETS = {
    "rgb": "rgba.red,rgba.green,rgba.blue",
    "alpha": "rgba.alpha",
    "layers": "rgba.red,rgba.green,rgba.blue,rgba.alpha,depth.Z,forward.u,forward.v",
    "depth": "depth.Z",
    "none": "",
}


# --- graphs ---------------------------------------------------------------------------------------

def _group(g: ng.Graph) -> ng.Group:
    """A tiny group: Input1 -> Blur (size from the user knob ``size``) -> Output1."""
    grp = g.add("Group", "G")
    grp.add_knob("size", "float", 2.0)
    inp = grp.subgraph.add("Input", "Input1")
    blur = grp.subgraph.add("Blur", "Blur1", input=inp, size=Expression("parent.size"))
    grp.subgraph.add("Output", "Output1", input=blur)
    return grp


def build(type_name: str, *, empty: tuple[int, int, int, int] | None = None, all_inputs: bool = False,
          swapped: bool = False, mask: str | None = None) -> tuple[ng.Graph, ng.Node, dict[str, ng.Node]]:
    """A graph feeding ``type_name`` as test_gpu_parity does: a CheckerBoard2 into the even inputs,
    a Ramp (negative blue, zero alpha at one corner) into the odd ones (the other way round with
    ``swapped``); the mask and optional inputs other than A / 0 open, every non-mask input
    connected with ``all_inputs``. ``empty``: every input gets that empty data window instead.
    ``mask``: "ramp" or "empty" feeds the mask input. A ``format`` knob is set to OUT_FORMAT.
    Returns the graph, the node under test and what feeds each connected input."""
    g = ng.Graph()
    board = g.add("CheckerBoard2", "Board", format=FMT, boxsize=4, color1=(0.9, 0.4, 0.2, 0.5))
    ramp = g.add("Ramp", "Ramp", format=FMT, p0=(0, 0), p1=(W, H), color=(2.0, 0.5, -0.25, 1.0))
    void = g.add("ConformanceEmptySource", "Empty", box=empty or EMPTY_BOXES["point"])
    if empty is not None:
        board = ramp = void
    if swapped:
        board, ramp = ramp, board
    if type_name in ("Group", "Output"):
        host = _group(g)
        node = host if type_name == "Group" else host.subgraph.node("Output1")
    else:
        host = node = g.add(type_name, "Probe")
        if node.has_knob("format"):
            node.set(format=OUT_FORMAT)
        node.set(**SMALL_OUTPUT.get(type_name, {}))
    feeds = {}
    for i, spec in enumerate(type(host).inputs):
        if spec.name == "mask":
            if mask is not None:
                g.connect(void if mask == "empty" else g.node("Ramp"), host, "mask")
            continue
        if not all_inputs and not spec.required and spec.name not in ("A", "0", "Input1"):
            continue
        feeds[spec.name] = board if i % 2 == 0 else ramp
        g.connect(feeds[spec.name], host, spec.name)
    return g, node, feeds


def context(g: ng.Graph, node: ng.Node, frame: int = 1, dtype: torch.dtype = torch.float32) -> Context:
    view = node.at_frame(frame)
    return Context(g.evaluator, view, frame, CPU, dtype, node.graph.sources_of(node))


def passthrough_of(g: ng.Graph, node: ng.Node) -> str | None:
    return node.at_frame(1).passthrough(context(g, node))


def assert_image(img: Any, dtype: torch.dtype, what: str) -> None:
    assert isinstance(img, Image), f"{what}: got {type(img).__name__}, not an Image"
    b = img.bbox
    assert isinstance(b, Box), f"{what}: data window {b!r} is not a Box"
    assert tuple(img.pixels.shape) == (len(img.channels), b.height, b.width), (
        f"{what}: pixels {tuple(img.pixels.shape)} do not match {len(img.channels)} channels over {tuple(b)}")
    assert len(set(img.channels)) == len(img.channels), f"{what}: duplicate channels {img.channels}"
    assert img.pixels.device.type == "cpu", f"{what}: pixels on {img.pixels.device}"
    assert img.pixels.dtype == dtype, f"{what}: pixels are {img.pixels.dtype}, asked for {dtype}"
    assert isinstance(img.format, Format)


# --- 1. defaults on a standard image --------------------------------------------------------------

def _assert_finite(img: Image, what: str) -> None:
    bad = (~torch.isfinite(img.pixels)).sum().item()
    assert bad == 0, f"{what}: {bad} non-finite pixels from finite inputs"


@pytest.mark.parametrize("feeds", ["standard", "swapped"])
@pytest.mark.parametrize("type_name", TYPES)
def test_computes_with_defaults(type_name: str, feeds: str) -> None:
    """Swapped: the ramp (negative values, zero alpha) into the first input (Unpremult, Keyer...)."""
    g, node, _ = build(type_name, swapped=feeds == "swapped")
    img = g.evaluate(node, 1, device="cpu", dtype=torch.float32)
    assert_image(img, torch.float32, type_name)
    assert not img.bbox.empty, f"{type_name}: an empty result from a full image with default knobs"
    if type_name not in NON_FINITE_OK:
        _assert_finite(img, f"{type_name} with default knobs")


@pytest.mark.parametrize("type_name", TYPES)
def test_still_knobs_share_one_cache_entry_across_frames(type_name: str) -> None:
    """The generators feeding the node do not change over time, nor do its knobs: one hash and
    one compute for frames 1, 2, 3 (and for frame 1001 and -3, which hash the same)."""
    g, node, _ = build(type_name, all_inputs=True)
    assert len({g.evaluator.hash(node, f) for f in (1, 2, 3, 1001, -3)}) == 1
    images = [g.evaluate(node, f) for f in (1, 2, 3)]
    ran = dict(g.evaluator.stats.ran)  # a pass-through is not computed itself: what it passes is
    assert set(ran.values()) == {1} and (node.path in ran) == (passthrough_of(g, node) is None), ran
    assert all(img.pixels is images[0].pixels for img in images)


WITH_MASK = [t for t in TYPES if "mask" in NODE_TYPES[t].input_names()]


@pytest.mark.parametrize("mask", ["ramp", "empty"])
@pytest.mark.parametrize("type_name", WITH_MASK)
def test_computes_with_a_mask(type_name: str, mask: str) -> None:
    """A mask input, graded (the ramp's alpha: 0 to 1) or with an empty data window (reads black)."""
    g, node, feeds = build(type_name, mask=mask)
    for dtype in (torch.float32, torch.float16):
        img = g.evaluate(node, 1, device="cpu", dtype=dtype)
        assert_image(img, dtype, f"{type_name} with a {mask} mask")
        _assert_finite(img, f"{type_name} with a {mask} mask")
    if mask == "empty":  # no mask anywhere: the input comes through unchanged where it is
        # the first input (B, input, STMap's src); a draw node over no background draws nothing
        first = feeds.get("B", feeds.get("input", next(iter(feeds.values()), None)))
        if first is None:
            assert not bool(img.pixels.any()), f"{type_name}: drew through an empty mask"
            return
        want = g.evaluate(first, 1)
        union = img.bbox.union(want.bbox)
        torch.testing.assert_close(img.to(dtype=torch.float32).crop_to(union).pixels,
                                   want.crop_to(union).pixels, **HALF_TOL)


# --- 2. empty data windows ------------------------------------------------------------------------

# types with image inputs (generators have none to empty)
WITH_INPUTS = [t for t in TYPES if build(t)[2]]


@pytest.mark.parametrize("empty", list(EMPTY_BOXES), ids=list(EMPTY_BOXES))
@pytest.mark.parametrize("type_name", WITH_INPUTS)
def test_empty_input_data_window(type_name: str, empty: str) -> None:
    """Defaults, and for a node that passes through at defaults the setting that makes it
    compute (a Blur of size 1 over nothing)."""
    g, node, feeds = build(type_name, empty=EMPTY_BOXES[empty])
    assert g.evaluate(feeds[next(iter(feeds))], 1).bbox.empty  # the source really is empty
    for setting in [{}, _live_base(type_name)]:
        node.set(**setting)
        for dtype in (torch.float32, torch.float16):
            img = g.evaluate(node, 1, device="cpu", dtype=dtype)
            assert_image(img, dtype, f"{type_name} {setting} over an empty {empty}")
            _assert_finite(img, f"{type_name} {setting} over an empty {empty}")


REQUIRED = [t for t in TYPES if any(i.required for i in NODE_TYPES[t].inputs) and t != "Output"]


@pytest.mark.parametrize("type_name", REQUIRED)
def test_unconnected_required_input_is_not_blamed_on_a_knob(type_name: str) -> None:
    """Evaluating a node whose required inputs are open fails typed, naming the node, and never as
    a KnobError (the colour nodes once reported "knob 'channels': 'NoneType' object has no
    attribute 'channels'"). validate() reports the open input before a render."""
    g = ng.Graph()
    node = g.add(type_name, "Probe")
    assert any(i.kind == "missing_input" and i.node == "Probe" for i in g.validate())
    with pytest.raises(NodeGraphError) as caught:
        g.evaluate(node, 1)
    assert not isinstance(caught.value, KnobError), f"{type_name}: {caught.value}"
    assert caught.value.node == "Probe"


@pytest.mark.parametrize("channels", list(CHANNEL_SETS))
@pytest.mark.parametrize("type_name", WITH_INPUTS)
def test_inputs_with_other_channel_sets(type_name: str, channels: str) -> None:
    """Inputs without alpha, alpha only, extra layers, depth only, no channels at all: defaults and
    each knob's different value compute an Image or fail as a KnobError naming a knob of the node
    (Transform once crashed rotating an image with no channels)."""
    cls = NODE_TYPES[type_name]
    g, node, feeds = build(type_name, all_inputs=True)
    src = g.add("ConformanceChannelsSource", "Chans", names=CHANNEL_SETS[channels])
    host = g.node("G") if type_name == "Output" else node
    for name in feeds:
        g.connect(src, host, name)
    live = _live_base(type_name)
    settings = [{}, live] + [{**live, k: different_value(cls, k)} for k in cls.knob_names()]
    original = {k: getattr(node.knobs, k) for k in cls.knob_names()}
    for setting in settings:
        node.set(**original).set(**setting)
        for dtype in (torch.float32, torch.float16):
            where = f"{type_name} {setting} over {channels} ({dtype})"
            try:
                img = g.evaluate(node, 1, dtype=dtype)
            except KnobError as err:
                assert err.knob in cls.knob_names() and err.node == node.path, f"{where}: {err}"
                continue
            assert_image(img, dtype, where)


MULTI_INPUT = [t for t in WITH_INPUTS if len(build(t, all_inputs=True)[2]) > 1]


@pytest.mark.parametrize("type_name", MULTI_INPUT)
def test_one_empty_input_among_full_ones(type_name: str) -> None:
    """Each input in turn empty, the others full (Merge2's A empty over a full B and the reverse)."""
    g, node, feeds = build(type_name, all_inputs=True)
    host = g.node("G") if type_name == "Output" else node
    for name in feeds:
        for other, src in feeds.items():
            g.connect(src, host, other)
        g.connect(g.node("Empty"), host, name)
        img = g.evaluate(node, 1, device="cpu")
        assert_image(img, torch.float32, f"{type_name} with {name} empty")
        _assert_finite(img, f"{type_name} with {name} empty")


def test_empty_source_is_empty_and_an_image() -> None:
    g = ng.Graph()
    for name, box in EMPTY_BOXES.items():
        img = g.evaluate(g.add("ConformanceEmptySource", name, box=box), 1)
        assert img.bbox == Box(*box) and img.bbox.empty and img.pixels.numel() == 0


# --- 3. half precision ----------------------------------------------------------------------------

@pytest.mark.parametrize("type_name", TYPES)
def test_half_precision_close_to_float(type_name: str) -> None:
    """Defaults, and for a node that passes through at defaults the setting that makes it compute."""
    g, node, _ = build(type_name, swapped=True)  # the ramp first: values up to 2, negative ones
    for setting in [{}, _live_base(type_name)]:
        node.set(**setting)
        full = g.evaluate(node, 1, device="cpu", dtype=torch.float32)
        half = g.evaluate(node, 1, device="cpu", dtype=torch.float16)
        assert_image(half, torch.float16, f"{type_name} {setting} in half")
        assert half.channels == full.channels and half.bbox == full.bbox
        tol = HALF_TOL_EXCEPTIONS.get(type_name, HALF_TOL)
        torch.testing.assert_close(half.pixels.float(), full.pixels, **tol,
                                   msg=lambda m: f"{type_name} {setting} in half: {m}")



@pytest.mark.parametrize("type_name, knob", KNOBS, ids=[f"{t}.{k}" for t, k in KNOBS])
def test_half_precision_with_each_knob_changed(type_name: str, knob: str) -> None:
    """Each knob at its different value (on the setting that makes a pass-through compute):
    float16 close to float32 over both feeds."""
    cls = NODE_TYPES[type_name]
    for swapped in (False, True):
        if swapped and (type_name, knob) in HALF_ILL_CONDITIONED:
            continue  # the standard feed still checks it
        g, node, _ = build(type_name, swapped=swapped)
        node.set(**{k: v for k, v in _live_base(type_name).items() if k != knob})
        node.set(**{knob: different_value(cls, knob)})
        where = f"{type_name} {knob}={getattr(node.knobs, knob)!r}{' swapped' if swapped else ''} in half"
        try:
            full = g.evaluate(node, 1, device="cpu", dtype=torch.float32)
        except KnobError as err:  # a value that only works on other images
            assert err.knob == knob, err
            continue
        half = g.evaluate(node, 1, device="cpu", dtype=torch.float16)
        assert_image(half, torch.float16, where)
        assert half.channels == full.channels and half.bbox == full.bbox, where
        torch.testing.assert_close(half.pixels.float(), full.pixels, **HALF_TOL_EXCEPTIONS.get(type_name, HALF_TOL),
                                   msg=lambda m: f"{where}: {m}")

# --- 4. pass-through ------------------------------------------------------------------------------

def _identity_values(cls: type[ng.Node], knob: str) -> list[Any]:
    """Values of ``knob`` that often make a node an identity: 0 and 1 (per component too), both
    booleans, every choice of a Literal, and the test_conformance candidates."""
    default = cls.Knobs.model_fields[knob].get_default(call_default_factory=True)
    out: list[Any] = [0, 0.0, 1, 1.0, False, True]
    if isinstance(default, (tuple, list)):
        out += [type(default)([v] * len(default)) for v in (0, 0.0, 1, 1.0)]
    return out + knob_candidates(cls, knob)


def _settings(type_name: str) -> list[dict[str, Any]]:
    cls = NODE_TYPES[type_name]
    one = [{}] + [{k: v} for k in cls.knob_names() if k != "disable" for v in _identity_values(cls, k)]
    live = _live_base(type_name)
    return one + ([{**live, **s} for s in one] if live else [])


@functools.cache
def _live_base(type_name: str) -> dict[str, Any]:
    """One knob change that makes a node that passes through at defaults compute ({} if none is)."""
    g, node, _ = build(type_name, all_inputs=True)
    if passthrough_of(g, node) is None:
        return {}
    cls = NODE_TYPES[type_name]
    original = {k: getattr(node.knobs, k) for k in cls.knob_names()}
    for knob in cls.knob_names():
        for value in knob_candidates(cls, knob) if knob != "disable" else ():
            try:
                node.set(**original).set(**{knob: value})
                if passthrough_of(g, node) is None:
                    return {knob: value}
            except NodeGraphError:
                continue
    return {}


def _numeric(annotation: Any) -> bool:
    """A knob that takes numbers (choice knobs animate too, by index, but hold names)."""
    shape = knob_shape(annotation)
    return shape is not None and not shape.choices


@pytest.mark.parametrize("type_name", TYPES)
def test_passthrough_shares_the_input_hash_and_pixels(type_name: str) -> None:
    fired = []
    seen = set()
    g, node, feeds = build(type_name, all_inputs=True)
    original = {k: getattr(node.knobs, k) for k in NODE_TYPES[type_name].knob_names()}
    for setting in _settings(type_name):
        key = repr(sorted(setting.items()))
        if key in seen:
            continue
        seen.add(key)
        try:
            node.set(**original).set(**setting)
            through = passthrough_of(g, node)
        except NodeGraphError:  # a value the node refuses
            continue
        if through is None:
            continue
        fired.append(setting)
        where = f"{type_name} {setting}: passthrough -> {through!r}"
        src = node.graph.sources_of(node)[through]
        assert g.evaluator.hash(node, 1) == g.evaluator.hash(src, 1), where
        want = g.evaluate(src, 1)
        got = g.evaluate(node, 1)
        assert got.channels == want.channels and got.bbox == want.bbox and torch.equal(got.pixels, want.pixels), where
        # the same setting reached by animation (numeric knobs): a pass-through at frame 1 only
        numeric = [k for k in setting if _numeric(type(node.knobs).model_fields[k].annotation)]
        if numeric and len(numeric) == len(setting):
            resolved = {k: getattr(node.knobs, k) for k in numeric}
            node.set(**{k: curve_between(v, original[k]) for k, v in resolved.items()})
            assert passthrough_of(g, node) == through, f"{where}, animated"
            assert g.evaluator.hash(node, 1) == g.evaluator.hash(src, 1), f"{where}, animated"
            node.set(**resolved)
        # what the node would compute agrees with what the evaluator serves in its place
        if type_name not in ("Group", "Output"):  # their pass-through is the engine's wiring
            try:
                out = node.at_frame(1).compute(context(g, node))
            except KnobError:  # a value that only works on other images (a layer these lack)
                continue
            _assert_same_pixels(out, want, where)
    assert bool(fired) == (type_name in KNOWN_PASSTHROUGH), (
        f"{type_name}: pass-through settings found: {fired or 'none'}; update KNOWN_PASSTHROUGH if intended")


def _assert_same_pixels(got: Image, want: Image, where: str) -> None:
    """The same channels and the same pixels (black outside a data window, compared over both)."""
    assert got.channels == want.channels, f"{where}: channels {got.channels} != {want.channels}"
    union = got.bbox.union(want.bbox)
    torch.testing.assert_close(got.crop_to(union).pixels, want.crop_to(union).pixels, rtol=0, atol=1e-6,
                               msg=lambda m: f"{where}: differs from the input: {m}")


MIXED = [(t, k) for t in TYPES if "mix" in NODE_TYPES[t].knob_names()
         for k in NODE_TYPES[t].knob_names() if k != "mix"]


@pytest.mark.parametrize("type_name, knob", MIXED, ids=[f"{t}.{k}" for t, k in MIXED])
def test_mix_zero_computes_the_input(type_name: str, knob: str) -> None:
    """mix=0 is an identity whatever else is set (each knob changed in turn), declared as a
    pass-through or not: the result is the input's (B for two-input nodes) pixels."""
    cls = NODE_TYPES[type_name]
    g, node, feeds = build(type_name, all_inputs=True)
    node.set(**{knob: different_value(cls, knob)}, mix=0.0)
    try:
        got = g.evaluate(node, 1)
    except KnobError as err:  # a value that only works on other images (a layer these lack)
        assert err.knob == knob, err
        return
    want = g.evaluate(feeds.get("B", feeds.get("input")), 1)
    _assert_same_pixels(got, want, f"{type_name} {knob}={node.knobs.model_dump()[knob]!r} mix=0")


# --- 5. every knob changes the hash at a frame, still and animated ---------------------------------



def _components(value: Any) -> list[float] | float:
    return [float(v) for v in value] if isinstance(value, (tuple, list)) else float(value)


def curve_between(at_1: Any, at_11: Any) -> Any:
    """A linear curve (one per component of a tuple knob) through ``at_1`` at frame 1 and
    ``at_11`` at frame 11."""
    def one(a: float, b: float) -> Curve:
        return Curve([Key(1, a, "linear"), Key(11, b, "linear")])

    a, b = _components(at_1), _components(at_11)
    return [one(x, y) for x, y in zip(a, b)] if isinstance(a, list) else one(a, b)


def expression_between(at_1: Any, at_11: Any) -> Any:
    """An expression (one per component) giving ``at_1`` at frame 1 and ``at_11`` elsewhere."""
    def one(a: float, b: float) -> Expression:
        return Expression(f"frame == 1 ? {a!r} : {b!r}")

    a, b = _components(at_1), _components(at_11)
    return [one(x, y) for x, y in zip(a, b)] if isinstance(a, list) else one(a, b)


@pytest.mark.parametrize("type_name, knob", KNOBS, ids=[f"{t}.{k}" for t, k in KNOBS])
def test_every_knob_changes_the_hash_at_a_frame(type_name: str, knob: str) -> None:
    cls = NODE_TYPES[type_name]
    value = different_value(cls, knob)
    base = {k: v for k, v in _live_base(type_name).items() if k != knob}
    g, node, _ = build(type_name, all_inputs=True)
    node.set(**base)
    default = getattr(node.knobs, knob)

    def hash_at(frame: int, knob_value: Any) -> str:
        node.set(**{knob: knob_value})
        return g.evaluator.hash(node, frame)

    h_default = {f: hash_at(f, default) for f in (1, 11)}
    h_still = {f: hash_at(f, value) for f in (1, 11)}
    still = getattr(node.knobs, knob)  # the validated value (tuples, floats)
    if (type_name, knob) in HASH_NEUTRAL_KNOBS:
        assert h_still == h_default  # keep the list honest: drop the entry when it starts to matter
        return
    assert h_still[1] != h_default[1], f"{type_name}.{knob}={value!r} left the hash at frame 1 unchanged"

    shape = knob_shape(cls.Knobs.model_fields[knob].annotation)
    if shape is None or shape.choices:
        return  # not numeric: cannot hold a curve (choices animate by index: tests/engine/test_animation.py)
    pairs = [(still, default, h_still, h_default)]
    if not isinstance(still, tuple) and not isinstance(default, tuple):
        # a knob that also takes a tuple (a colour or an x, y size): animated per component too
        for n in sorted(c for c in shape.counts if c > 1):
            s_n, d_n = (still,) * n, (default,) * n
            pairs.append((s_n, d_n, {f: hash_at(f, s_n) for f in (1, 11)}, {f: hash_at(f, d_n) for f in (1, 11)}))
    for (a, b, h_a, h_b), animate in itertools.product(pairs, (curve_between, expression_between)):
        how = f"{type_name}.{knob} as {animate.__name__}"
        # the resolved value at each frame is what is hashed: the still value's hash at frame 1,
        # the default's at frame 11, and the other way round
        assert hash_at(1, animate(a, b)) == h_a[1], f"{how}({a!r}, {b!r}) at frame 1"
        assert node.value(knob, 1) == a and node.value(knob, 11) == b
        assert hash_at(11, animate(a, b)) == h_b[11], f"{how}({a!r}, {b!r}) at frame 11"
        assert hash_at(1, animate(b, a)) == h_b[1], f"{how}({b!r}, {a!r}) at frame 1"
        assert hash_at(11, animate(b, a)) == h_a[11], f"{how}({b!r}, {a!r}) at frame 11"
    node.set(**{knob: curve_between(still, default)})  # and it computes at both frames
    for frame in (1, 11):
        try:
            assert_image(g.evaluate(node, frame), torch.float32, f"{type_name}.{knob} animated, frame {frame}")
        except KnobError as err:  # a value that only works on other images
            assert err.knob == knob, err



@pytest.mark.parametrize("type_name, knob", KNOBS, ids=[f"{t}.{k}" for t, k in KNOBS])
def test_every_knob_value_computes_or_fails_naming_the_knob(type_name: str, knob: str) -> None:
    """Each valid value of the test_conformance candidates computes on the standard image, or
    fails as a KnobError naming this knob (a layer the image lacks); a generator, having no
    input, reports such a value in check() (so validate() finds it before a render). Numbers
    beyond 10 (other than the default's) are left out: a scale of 1001 makes a 32000x24000 image."""
    cls = NODE_TYPES[type_name]
    g, node, _ = build(type_name, all_inputs=True)
    node.set(**{k: v for k, v in _live_base(type_name).items() if k != knob})
    tried = set()
    default = getattr(node.knobs, knob)
    default = default if isinstance(default, (tuple, list)) else (default,)
    for value in knob_candidates(cls, knob):
        try:
            node.set(**{knob: value})
        except KnobError:
            continue
        numbers = getattr(node.knobs, knob)
        numbers = numbers if isinstance(numbers, (tuple, list)) else (numbers,)
        if any(isinstance(v, (int, float)) and abs(v) > 10 and v not in default for v in numbers):
            continue
        resolved = repr(getattr(node.knobs, knob))
        if resolved in tried:
            continue
        tried.add(resolved)
        where = f"{type_name}.{knob}={resolved}"
        try:
            assert_image(g.evaluate(node, 1), torch.float32, where)
        except KnobError as err:
            assert err.knob == knob and err.node == node.path, f"{where}: {err} (names another knob or node)"
            if not build(type_name)[2]:
                assert any(f"'{knob}'" in m for m in node.check()), f"{where}: check() misses: {err}"
    assert tried

def test_animated_knob_changes_only_frames_whose_value_differs() -> None:
    """The curve machinery the knob test relies on: resolved values per frame enter the hash."""
    g, node, _ = build("Grade", all_inputs=True)
    node.set(multiply=Curve([Key(1, 1.0, "constant"), Key(5, 2.0, "constant")]))
    hashes = [g.evaluator.hash(node, f) for f in range(1, 7)]
    assert len(set(hashes[:4])) == 1 and len(set(hashes[4:])) == 1 and hashes[0] != hashes[4]


@pytest.mark.parametrize("type_name", TYPES)
def test_disable_passes_the_first_input_through_or_names_why_it_cannot(type_name: str) -> None:
    """Nuke's ``disable``, on every node: the first input passes through (same hash, same pixels);
    a node whose first input is not connected (a generator) says so instead of making pixels up."""
    g, node, feeds = build(type_name)
    node.set(disable=True)
    first = type(node).inputs[0].name if type(node).inputs else None
    if type_name == "Output":  # the group's Output passes its input through anyway
        first = "input"
    if first is not None and first in node.graph.sources_of(node):
        src = node.graph.sources_of(node)[first]
        assert g.evaluator.hash(node, 1) == g.evaluator.hash(src, 1), type_name
        _assert_same_pixels(g.evaluate(node, 1), g.evaluate(src, 1), f"{type_name} disabled")
    else:
        with pytest.raises(ng.GraphError, match="disabled and has no first input"):
            g.evaluate(node, 1)
