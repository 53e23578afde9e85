"""BlinkScript: kernels of each form translated to torch, against numpy formulas written here."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import nodegraph as ng
from nodegraph import channels as chans
from nodegraph.expression import Expression
from nodegraph.errors import NodeGraphError
from nodegraph.image import Box, Format, Image
from nodegraph.nodes.blink import BlinkScript
from nodegraph.nodes import blink_eval
from nodegraph.nodes.blink_parse import BlinkUnsupported
from nodegraph.testing import compute_node

FMT = Format.of_size(12, 9)


def image(arr: np.ndarray, box: Box | None = None, fmt: Format = FMT, names=chans.RGBA) -> Image:
    c, h, w = arr.shape
    box = box or Box(0, 0, w, h)
    return Image(torch.from_numpy(np.ascontiguousarray(arr, dtype=np.float32)), names, box, fmt)


def rand(seed: int, h: int = 9, w: int = 12, lo: float = 0.0, hi: float = 1.0) -> np.ndarray:
    return np.random.default_rng(seed).uniform(lo, hi, (4, h, w)).astype(np.float32)


def run(source: str, *images: Image | None, dtype=torch.float32, **params) -> Image:
    node = BlinkScript("BlinkScript1", kernelSource=source, **params)
    return compute_node(node, dtype=dtype, **{str(i): img for i, img in enumerate(images)})


def out(img: Image) -> np.ndarray:
    return img.pixels.double().numpy()


SATURATION = """
kernel SaturationKernel : ImageComputationKernel<ePixelWise>
{
  Image<eRead, eAccessPoint, eEdgeClamped> src;
  Image<eWrite> dst;
  param:
    float saturation;
  local:
    float3 weights;
  void define() {
    defineParam(saturation, "saturation", 1.2f);
  }
  void init() {
    weights = float3(0.2126f, 0.7152f, 0.0722f);
  }
  void process() {
    SampleType(src) p = src();
    float3 rgb(p.x, p.y, p.z);
    float luma = dot(rgb, weights);
    float3 result = lerp(float3(luma), rgb, saturation);
    dst() = float4(result.x, result.y, result.z, p.w);
  }
};
"""


@settings(max_examples=15, deadline=None)
@given(sat=st.floats(-2, 4), seed=st.integers(0, 2**16))
def test_pixelwise_saturation(sat: float, seed: int) -> None:
    a = rand(seed)
    got = out(run(SATURATION, image(a), SaturationKernel_saturation=sat))
    luma = 0.2126 * a[0] + 0.7152 * a[1] + 0.0722 * a[2]
    want = a.astype(np.float64).copy()
    want[:3] = luma + (a[:3] - luma) * sat
    np.testing.assert_allclose(got, want, atol=1e-5)


def test_default_kernel_is_an_invert_with_nukes_knob() -> None:
    node = BlinkScript("B")
    assert node.knobs.InvertKernel_Multiply == 1.0 and node.check() == []
    a = rand(1)
    got = out(compute_node(node.set(InvertKernel_Multiply=0.5), **{"0": image(a)}))
    np.testing.assert_allclose(got[:3], (1 - a[:3]) * 0.5, atol=1e-6)
    np.testing.assert_allclose(got[3], a[3], atol=0)


GAIN = """
kernel GammaGain : ImageComputationKernel<eComponentWise>
{
  Image<eRead> src;
  Image<eWrite> dst;
  param:
    float gain;
    float gamma;
  void define() { defineParam(gain, "Gain", 1.0f); defineParam(gamma, "Gamma", 1.0f); }
  void process() {
    dst() = pow(max(src() * gain, 0.0f), 1.0f / gamma);
  }
};
"""


@settings(max_examples=15, deadline=None)
@given(gain=st.floats(0, 4), gamma=st.floats(0.2, 3), seed=st.integers(0, 2**16))
def test_componentwise_gain_gamma(gain: float, gamma: float, seed: int) -> None:
    a = rand(seed, lo=-0.5, hi=1.5)
    got = out(run(GAIN, image(a), GammaGain_Gain=gain, GammaGain_Gamma=gamma))
    want = np.maximum(a.astype(np.float64) * gain, 0) ** (1 / gamma)
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)


BOX = """
// box blur: a ranged 2D read, loops with bounds known for the frame
kernel BoxBlur : ImageComputationKernel<ePixelWise>
{
  Image<eRead, eAccessRanged2D, eEdgeClamped> src;
  Image<eWrite, eAccessPoint> dst;
  param:
    int radius;
  local:
    int count;
  void define() { defineParam(radius, "Radius", 2); }
  void init() {
    src.setRange(-radius, -radius, radius, radius);
    count = (2 * radius + 1) * (2 * radius + 1);
  }
  void process() {
    float4 sum = 0.0f;
    for (int j = -radius; j <= radius; j++) {
      for (int i = -radius; i <= radius; ++i)
        sum += src(i, j);
    }
    dst() = sum / float(count);
  }
};
"""


def box_mean(a: np.ndarray, r: int, mode: str = "edge") -> np.ndarray:
    p = np.pad(a.astype(np.float64), ((0, 0), (r, r), (r, r)), mode=mode)
    h, w = a.shape[1:]
    acc = sum(p[:, r + j:r + j + h, r + i:r + i + w] for j in range(-r, r + 1) for i in range(-r, r + 1))
    return acc / (2 * r + 1) ** 2


@settings(max_examples=12, deadline=None)
@given(r=st.integers(0, 3), seed=st.integers(0, 2**16), x0=st.integers(-3, 3), y0=st.integers(-3, 3))
def test_ranged_box_blur_with_clamped_edges(r: int, seed: int, x0: int, y0: int) -> None:
    a = rand(seed, 7, 10)
    got = run(BOX, image(a, Box(x0, y0, x0 + 10, y0 + 7)), BoxBlur_Radius=r)
    assert got.bbox == (x0, y0, x0 + 10, y0 + 7)
    np.testing.assert_allclose(out(got), box_mean(a, r), atol=1e-5)


HBLUR = """
kernel HBlur : ImageComputationKernel<ePixelWise>
{
  Image<eRead, eAccessRanged1D, eEdgeConstant> src;
  Image<eWrite> dst;
  param:
    int size;
  void define() { defineParam(size, "size", 1); }
  void init() { src.setAxis(eX); src.setRange(-size, size); }
  void process() {
    SampleType(src) total(0.0f);
    int i = -size;
    while (i <= size) { total += src(i); i += 1; }
    dst() = total / (2 * size + 1);
  }
};
"""


def test_ranged_1d_with_constant_edges() -> None:
    a = rand(3)
    got = out(run(HBLUR, image(a), HBlur_size=2))
    p = np.pad(a.astype(np.float64), ((0, 0), (0, 0), (2, 2)))
    want = sum(p[:, :, 2 + i:2 + i + 12] for i in range(-2, 3)) / 5
    np.testing.assert_allclose(got, want, atol=1e-6)


UP = """
kernel Up : ImageComputationKernel<ePixelWise>
{
  Image<eRead, eAccessRanged2D, eEdgeClamped> src;
  Image<eWrite> dst;
  void init() { src.setRange(0, 0, 0, 1); }
  void process(int2 pos) {
    float4 above = src(0, 1);
    dst() = float4(above.x, pos.x, pos.y, 0);
  }
};
"""


def test_nuke_coordinates_are_y_up() -> None:
    a = rand(4)
    got = out(run(UP, image(a)))
    want_above = np.concatenate([a[0, :1], a[0, :-1]])  # y + 1 is the row above (clamped at the top)
    np.testing.assert_allclose(got[0], want_above, atol=0)
    np.testing.assert_array_equal(got[1], np.tile(np.arange(12), (9, 1)))
    np.testing.assert_array_equal(got[2], np.tile(np.arange(8, -1, -1)[:, None], (1, 12)))


FLIP = """
kernel Flop : ImageComputationKernel<ePixelWise>
{
  Image<eRead, eAccessRandom, eEdgeClamped> src;
  Image<eRead, eAccessRandom, eEdgeConstant> other;
  Image<eWrite> dst;
  param:
    float2 shift;
  void process(int2 pos) {
    int mirrored = src.bounds.x2 - 1 - (pos.x - src.bounds.x1);
    float4 a = src(mirrored, pos.y);
    float4 b = bilinear(other, pos.x + shift.x, pos.y + shift.y);
    dst() = float4(a.x, b.y, src(pos.x + 100, pos.y, 2), other(pos.x - 1, pos.y).w);
  }
};
"""


def bilinear(a: np.ndarray, fx: float, fy: float) -> np.ndarray:
    """a (y down) sampled at x + fx, y_up + fy with zero outside (numpy, Blink's pixel convention)."""
    h, w = a.shape
    p = np.pad(a.astype(np.float64), 2)
    out_ = np.zeros_like(p)
    ix, iy = int(np.floor(fx)), int(np.floor(fy))
    tx, ty = fx - ix, fy - iy

    def at(dx: int, dy: int) -> np.ndarray:  # value at (x + dx, y_up + dy): row - dy
        return np.roll(np.roll(p, -dx, axis=1), dy, axis=0)

    out_ = (at(ix, iy) * (1 - tx) + at(ix + 1, iy) * tx) * (1 - ty) + \
        (at(ix, iy + 1) * (1 - tx) + at(ix + 1, iy + 1) * tx) * ty
    return out_[2:2 + h, 2:2 + w]


@pytest.mark.parametrize("shift", [(0.5, 0.25), (-0.75, 0.5), (1.0, 0.0)])
def test_random_access_bilinear_and_edges(shift) -> None:
    a, b = rand(5), rand(6)
    got = out(run(FLIP, image(a), image(b), Flop_shift=shift))
    np.testing.assert_allclose(got[0], a[0, :, ::-1], atol=0)
    np.testing.assert_allclose(got[1], bilinear(b[1], *shift), atol=1e-5)
    np.testing.assert_allclose(got[2], np.repeat(a[2, :, -1:], 12, axis=1), atol=0)  # clamped far right
    np.testing.assert_allclose(got[3], np.pad(b[3], ((0, 0), (1, 0)))[:, :12], atol=0)  # 0 left of x=0


MANDEL = """
#define LIMIT 4.0f
// iterations until |z| > 2, per pixel: a loop whose length differs between pixels
int escape(float2 c, int most) {
  float2 z = float2(0.0f);
  for (int n = 0; n < most; n++) {
    if (dot(z, z) > LIMIT)
      return n;
    z = float2(z.x * z.x - z.y * z.y, 2.0f * z.x * z.y) + c;
  }
  return most;
}

kernel Escape : ImageComputationKernel<ePixelWise>
{
  Image<eRead> src;
  Image<eWrite> dst;
  param:
    int most;
    float scale;
  void define() { defineParam(most, "iterations", 20); defineParam(scale, "scale", 0.25f); }
  void process(int2 pos) {
    float2 c = float2(pos.x - 8, pos.y - 4) * scale;
    int n = escape(c, most);
    int odd = 0;
    int k = 0;
    do {
      k++;
      if (k % 2 == 0) continue;
      odd += 1;
      if (odd >= 3) break;
    } while (k < n);
    bool inside = n == most;
    dst() = float4(n, inside ? 1.0f : 0.0f, odd, (float)(n / 3) + (n % 3) * 0.1f);
  }
};
"""


def escape_oracle(x: int, y: int, most: int, scale: float) -> list[float]:
    c = complex(np.float32((x - 8) * scale), np.float32((y - 4) * scale))
    z, n = 0j, most
    for i in range(most):
        if abs(z) ** 2 > 4:
            n = i
            break
        z = z * z + c
    odd = k = 0
    while True:
        k += 1
        if k % 2 == 0:
            if not k < n:
                break
            continue
        odd += 1
        if odd >= 3 or not k < n:
            break
    return [n, float(n == most), odd, n // 3 + (n % 3) * 0.1]


def test_loops_with_per_pixel_lengths_break_continue_and_returns() -> None:
    got = out(run(MANDEL, image(rand(7, 9, 16), fmt=Format.of_size(16, 9)), Escape_iterations=15))
    for row in range(9):
        for x in range(16):
            want = escape_oracle(x, 8 - row, 15, 0.25)
            np.testing.assert_allclose(got[:, row, x], want, atol=1e-5, err_msg=f"x={x} row={row}")


LOOKUP = """
float pick(float4 v, int i) {
  if (i == 0) return v.x;
  else if (i == 1) return v.y;
  return i == 2 ? v.z : v.w;
}
kernel Lookup : ImageComputationKernel<ePixelWise>
{
  Image<eRead> src;
  Image<eWrite> dst;
  void process() {
    const float table[4] = {0.5f, 1.5f, 2.5f, 3.5f};
    float4 p = src();
    int i = int(clamp(p.x * 4.0f, 0.0f, 3.0f));
    int3 v = int3(-7, 7, 9);
    int cnt[3];
    cnt[i % 3] = 5;
    float4 r;
    r.x = table[i];
    r.y = pick(p, i);
    r.z = v.x / 2 + v.y % 3 * 10 + (-7 % 3) * 100 + int(-2.7f) * 1000 + round(-2.5f) * 10000;
    r.w = cnt[0] + cnt[1] * 2 + cnt[2] * 4;
    dst() = r;
  }
};
"""


def test_arrays_functions_and_int_arithmetic() -> None:
    a = rand(8)
    got = out(run(LOOKUP, image(a)))
    i = np.clip(a[0] * 4, 0, 3).astype(int)
    np.testing.assert_allclose(got[0], np.array([0.5, 1.5, 2.5, 3.5])[i], atol=0)
    np.testing.assert_allclose(got[1], np.take_along_axis(a, i[None], 0)[0], atol=0)
    # C: -7/2 == -3, 7%3 == 1, -7%3 == -1, int(-2.7) == -2, round(-2.5) == -3
    assert np.all(got[2] == -3 + 10 - 100 - 2000 - 30000)
    np.testing.assert_array_equal(got[3], np.array([5, 10, 20])[i % 3])


@pytest.mark.parametrize("dtype", [torch.float16, torch.float64])
def test_precisions(dtype) -> None:
    a = rand(9)
    got = run(SATURATION, image(a).to(dtype=dtype), dtype=dtype, SaturationKernel_saturation=0.5)
    assert got.dtype == dtype
    ref = out(run(SATURATION, image(a), SaturationKernel_saturation=0.5))
    np.testing.assert_allclose(out(got), ref, atol=2e-3 if dtype == torch.float16 else 1e-6)


def test_empty_data_window_and_extra_channels() -> None:
    empty = Image(torch.zeros(4, 0, 0), chans.RGBA, Box(3, 3, 3, 3), FMT)
    got = run(BOX, empty)
    assert got.bbox == (3, 3, 3, 3) and got.pixels.shape == (4, 0, 0)
    a = rand(10)
    depth = np.random.default_rng(1).uniform(0, 9, (1, 9, 12)).astype(np.float32)
    img = image(np.concatenate([a, depth]), names=chans.RGBA + ("depth.Z",))
    res = run(SATURATION, img, SaturationKernel_saturation=0.0)
    assert res.channels == chans.RGBA + ("depth.Z",)
    np.testing.assert_array_equal(res.channel("depth.Z").numpy(), depth[0])


def test_no_input_uses_the_format_knob() -> None:
    src = "kernel K : ImageComputationKernel<ePixelWise> { Image<eWrite> dst; " \
          "void process(int2 pos) { dst() = float4(pos.x, pos.y, 1, 1); } };"
    got = compute_node(BlinkScript("B", kernelSource=src, format="5x3"))
    assert got.bbox == (0, 0, 5, 3)
    np.testing.assert_array_equal(got.pixels[1].numpy(), [[2] * 5, [1] * 5, [0] * 5])


def test_animated_param() -> None:
    g = ng.Graph()
    c = g.add("Constant", format="4x3", color=(0.25, 0.5, 1.0, 1.0))
    b = g.add("BlinkScript", kernelSource=GAIN, **{"0": c})
    b.set(GammaGain_Gain=Expression("frame / 2"))
    for frame in (1, 2, 6):
        px = g.evaluate(b, frame).pixels
        torch.testing.assert_close(px[:, 0, 0], torch.tensor([0.25, 0.5, 1.0, 1.0]) * frame / 2)


def test_param_knobs_follow_the_kernel() -> None:
    node = BlinkScript("B")
    node.set(kernelSource=SATURATION)
    assert node.has_knob("SaturationKernel_saturation") and not node.has_knob("InvertKernel_Multiply")
    assert node.knobs.SaturationKernel_saturation == pytest.approx(1.2)
    node.set(SaturationKernel_saturation=0.3)
    node.set(kernelSource="kernel Broken : ImageComputationKernel<ePixelWise> { reduce(); ")
    assert node.knobs.SaturationKernel_saturation == pytest.approx(0.3)  # Nuke keeps the compiled kernel's knobs
    assert "unsupported kernel" in node.check()[0]
    node.set(kernelSource=SATURATION.replace("1.2f", "2.0f"))
    assert node.knobs.SaturationKernel_saturation == pytest.approx(0.3)  # same param: value kept
    knobs = BlinkScript("C", kernelSource=FLIP, Flop_shift=(1.0, 2.0)).knobs
    assert knobs.Flop_shift == (1.0, 2.0)


def test_json_round_trip_with_params() -> None:
    g = ng.Graph()
    c = g.add("Constant", format="4x3", color=(0.5, 0.5, 0.5, 1))
    b = g.add("BlinkScript", "B", kernelSource=BOX, BoxBlur_Radius=3, **{"0": c})
    b.set(kernelSource=HBLUR)  # a second kernel: its knobs replace the first's
    b.set(HBlur_size=Expression("frame"))
    g2 = ng.Graph.from_json(g.to_json())
    assert g2["B"].knob_values() == b.knob_values() and g2["B"].static_digest() == b.static_digest()
    torch.testing.assert_close(g2.evaluate("B", 2).pixels, g.evaluate("B", 2).pixels)


UNSUPPORTED = [
    ("reduce(src, 1);", "line 6 col 20: 'reduce' is not supported"),
    ("float4x4 m;", "line 6 col 20: type 'float4x4' is not supported"),
    ("switch (1) { }", "line 6 col 20: 'switch' is not supported"),
    ("int k = 0; while (true) { k++; }", "more than 50 iterations"),
    ("dst() = src.kComps;", "image member 'kComps' is not supported"),
    ("dst() = float4(undefinedName);", "'undefinedName' is not declared"),
]


@pytest.mark.parametrize("body, message", UNSUPPORTED)
def test_unsupported_constructs_name_kernel_line_and_column(body: str, message: str, monkeypatch) -> None:
    monkeypatch.setattr(blink_eval, "MAX_ITERATIONS", 50)  # the bound itself, reached quickly
    source = ("\nkernel SaturationKernel : ImageComputationKernel<ePixelWise>\n{\n"
              "  Image<eRead> src;\n  Image<eWrite> dst;\n  void process() { " + body + " }\n};\n")
    if "iterations" in message:
        source = source.replace("while (true)", "while (k >= 0)")
    with pytest.raises(BlinkUnsupported) as info:
        run(source, image(rand(0, 2, 2), fmt=Format.of_size(2, 2)))
    text = str(info.value)
    assert "node 'BlinkScript1'" in text and "kernel SaturationKernel" in text and message.split(": ")[-1] in text
    if message.startswith("line"):
        assert message.split(": ")[0] in text


@pytest.mark.parametrize("source, message", [
    ("kernel R : ImageReductionKernel<eReduce> { };", "'ImageReductionKernel' kernels are not supported"),
    ("#define SQ(x) ((x)*(x))\nkernel K : ImageComputationKernel<ePixelWise> { };", "function-like macro"),
    ("#include \"x.h\"\nkernel K : ImageComputationKernel<ePixelWise> { };", "'#include' is not supported"),
    ("float f(float x) { return f(x); }\nkernel K : ImageComputationKernel<ePixelWise> { Image<eRead> src; "
     "Image<eWrite> dst; void process() { dst() = f(1.0f); } };", "recursion"),
    ("kernel K : ImageComputationKernel<ePixelWise> { Image<eRead> src; };", "0 output images"),
    ("float x = 1;", "no 'kernel Name"),
])
def test_unsupported_kernels(source: str, message: str) -> None:
    node = BlinkScript("BlinkScript1", kernelSource=source)
    with pytest.raises(NodeGraphError, match="BlinkScript1") as info:
        compute_node(node, **{"0": image(rand(0, 2, 2), fmt=Format.of_size(2, 2))})
    assert message in str(info.value)
    assert "recursion" in message or node.check() and message in node.check()[0]


def test_validate_reports_an_unsupported_kernel() -> None:
    g = ng.Graph()
    g.add("BlinkScript", "B", kernelSource=SATURATION.replace("dot(rgb, weights)", "median(rgb)"))
    issues = [str(i) for i in g.validate()]
    assert any("'median' is not supported" in i and "SaturationKernel line" in i for i in issues)


@pytest.mark.gpu
def test_gpu_matches_cpu() -> None:
    if not torch.cuda.is_available():
        pytest.skip("no CUDA device")
    a = image(rand(11, 9, 16), fmt=Format.of_size(16, 9))
    for source, params in ((BOX, {"BoxBlur_Radius": 2}), (MANDEL, {}), (FLIP, {"Flop_shift": (0.5, 0.5)}),
                           (LOOKUP, {}), (GAIN, {"GammaGain_Gain": 2.0})):
        node = BlinkScript("B", kernelSource=source, **params)
        cpu = compute_node(node, **{"0": a, "1": a})
        gpu = compute_node(node, device="cuda", **{"0": a.to("cuda"), "1": a.to("cuda")})
        assert gpu.device.type == "cuda"
        torch.testing.assert_close(gpu.pixels.cpu(), cpu.pixels, rtol=1e-4, atol=1e-4)
