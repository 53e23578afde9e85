"""Nuke's curve-driven colour nodes: ColorCorrect, HueCorrect, ColorLookup.

Their lookup knobs (ColorCorrect ``lookup``, HueCorrect ``hue``, ColorLookup ``lut``) hold several
named Nuke curves. The value is a mapping name -> curve, saved as Nuke's curve text
(``{"master": "curve C x0 0 x0.5 0.7 1"}``); a script's braced list (``{master {curve C 0 1}
red {} ...}``) is read as well, an empty ``{}`` entry being that curve's default. A curve the
mapping leaves out has its default too. Each entry may be given as a :class:`~nodegraph.curve.Curve`,
its JSON form, its text, or a number (a constant curve).

Curves are applied to pixels through a table of 1024 samples per segment between keys (linear
between samples, exact at the keys and on linear segments; a cubic segment's error is below
1e-6 of its range for the curves these nodes use), with the curve's own extrapolation (a straight
line) outside the keys.
Everything computes in float32 (float64 kept) whatever the image's precision.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Annotated, Any

import torch
from pydantic import BeforeValidator

from nodegraph.curve import Curve
from nodegraph.errors import NodeGraphError
from nodegraph.evaluator import Context
from nodegraph.image import Image
from nodegraph.node import Input

from ._common import ChannelsKnob
from .color import _MASK_INPUT, ColorValue, _mask_weight, _MaskKnobs, _PerChannelOp, _rgb_to_hsv, _TripleOp, component
from .color_extra import luminance

T = torch.Tensor
SAMPLES = 1024

# --- named curve sets ------------------------------------------------------------------------------


def split_named(text: str) -> dict[str, str]:
    """A script's ``name {body} name {body}`` list (outer braces optional) as name -> body."""
    words: list[str] = []
    i, n = 0, len(text)
    body = text.strip()
    if body.startswith("{") and body.endswith("}") and _closing(body, 0) == len(body) - 1:
        text, i, n = body[1:-1], 0, len(body) - 2
    while i < n:
        if text[i].isspace():
            i += 1
            continue
        if text[i] == "{":
            end = _closing(text, i)
            words.append(text[i + 1:end])
            i = end + 1
        else:
            j = i
            while j < n and not text[j].isspace() and text[j] != "{":
                j += 1
            words.append(text[i:j])
            i = j
    if len(words) % 2:
        raise ValueError(f"expected pairs of curve name and curve, got {len(words)} words")
    return dict(zip(words[0::2], words[1::2]))


def _closing(text: str, start: int) -> int:
    depth = 0
    for i in range(start, len(text)):
        depth += {"{": 1, "}": -1}.get(text[i], 0)
        if depth == 0:
            return i
    raise ValueError("unbalanced braces in the curve list")


def curve_text(value: Any) -> str:
    """One curve entry as canonical Nuke text without braces (``curve C x0 0 1``)."""
    if isinstance(value, Curve):
        curve = value
    elif isinstance(value, dict):
        curve = Curve.from_json(value)
    elif isinstance(value, (int, float)) and not isinstance(value, bool):
        curve = Curve.parse(f"curve {float(value)!r}")
    elif isinstance(value, str):
        text = value.strip()
        if text.startswith("{") and text.endswith("}"):
            text = text[1:-1].strip()
        curve = Curve.parse(text)
    else:
        raise ValueError(f"a curve must be Nuke curve text, a Curve or a number, not {type(value).__name__}")
    return curve.to_nuke()[1:-1]


def _normalise(defaults: dict[str, str], expressions: dict[str, str], value: Any) -> dict[str, str]:
    if isinstance(value, str):
        value = split_named(value)
    if not isinstance(value, dict):
        raise ValueError(f"expected a mapping of curve names ({', '.join(defaults)}) to curves")
    out: dict[str, str] = {}
    for name, entry in value.items():
        if name not in defaults:
            raise ValueError(f"unknown curve {name!r}; the curves are {', '.join(defaults)}")
        if entry is None or (isinstance(entry, str) and entry.strip() in ("", "{}")):
            out[name] = defaults[name]
            continue
        if isinstance(entry, str) and name in expressions \
                and "".join(entry.strip().strip("{}").split()) == "".join(expressions[name].split()):
            out[name] = expressions[name]
            continue
        try:
            out[name] = curve_text(entry)
        except NodeGraphError as err:
            raise ValueError(f"curve {name!r}: {err.message}") from None
    return out


def curve_set(defaults: dict[str, str], expressions: dict[str, str] | None = None) -> Any:
    """The annotation of a knob holding the named curves ``defaults`` (name -> default text);
    ``expressions`` are the non-curve texts an entry may also hold (ColorCorrect's midtone)."""
    defaults = canonical(defaults, expressions)
    return Annotated[dict[str, str], BeforeValidator(lambda v: _normalise(defaults, expressions or {}, v))]


def canonical(defaults: dict[str, str], expressions: dict[str, str] | None = None) -> dict[str, str]:
    """Default curve texts in the form the knob stores them."""
    return {k: v if v == (expressions or {}).get(k) else curve_text(v) for k, v in defaults.items()}


def curves_text(value: dict[str, str]) -> str:
    """A curve set as a script writes it: ``{master {curve C x0 0 1} red {curve ...}}``."""
    return "{" + "\n ".join(f"{name} {{{text}}}" for name, text in value.items()) + "}"


@lru_cache(maxsize=512)
def _table(text: str) -> tuple[tuple[float, ...], tuple[tuple[float, ...], ...], float, float, float] | None:
    """(key xs, samples per segment, value at the last key, slope before, slope after) of a curve's
    text; None for no keys."""
    curve = Curve.parse(text)
    if len(curve) == 0:
        return None
    xs = tuple(k.x for k in curve.keys)
    segments = []
    for a, b in zip(xs, xs[1:]):  # the last sample just before the next key: a step lands on the key itself
        at = [a + (b - a) * i / (SAMPLES - 1) for i in range(SAMPLES - 1)] + [b - (b - a) * 1e-9]
        segments.append(tuple(curve(t) for t in at))
    if not segments:
        segments.append((curve(xs[0]),) * 2)
    return xs, tuple(segments), curve(xs[-1]), curve(xs[0]) - curve(xs[0] - 1), curve(xs[-1] + 1) - curve(xs[-1])


def apply_curve(text: str, x: T) -> T:
    """The curve of Nuke text ``text`` at every value of ``x``."""
    table = _table(text)
    if table is None:
        return torch.zeros_like(x)
    xs, segments, last, before, after = table
    lut = torch.tensor(segments, dtype=x.dtype, device=x.device)
    if len(xs) == 1:
        inside = lut[0, 0].expand_as(x)
    else:
        knots = torch.tensor(xs, dtype=x.dtype, device=x.device)
        seg = torch.bucketize(x.contiguous(), knots[1:-1], right=True)
        lo, hi = knots[seg], knots[seg + 1]
        pos = ((x - lo) / (hi - lo) * (SAMPLES - 1)).clamp(0, SAMPLES - 1)
        i0 = pos.floor().clamp(max=SAMPLES - 2)
        frac = pos - i0
        i0 = i0.long()
        inside = torch.lerp(lut[seg, i0], lut[seg, i0 + 1], frac)
    out = torch.where(x < xs[0], lut[0, 0] + before * (x - xs[0]), inside)
    return torch.where(x >= xs[-1], last + after * (x - xs[-1]), out)


def _mix_luminance(k: Any, before: T, after: T) -> T:
    if not k.enable_mix_luminance or k.mix_luminance == 0:
        return after
    return after + k.mix_luminance * (luminance(before, "Rec 709") - luminance(after, "Rec 709"))


class _LumaKnobs(_MaskKnobs):
    enable_mix_luminance: bool = True
    """Apply ``mix_luminance``."""
    mix_luminance: float = 0.0
    """How much of the input's luminance to restore: out + mix_luminance (Y(in) - Y(out)), Rec 709 Y."""


# --- ColorCorrect ----------------------------------------------------------------------------------

MIDTONE = "1-shadow-highlight"
LOOKUP_DEFAULTS = {"shadow": "curve 1 s0 x0.09 0 s0", "midtone": MIDTONE, "highlight": "curve x0.5 0 s0 x1 1 s0"}
RANGES = ("shadows", "midtones", "highlights")
CONTRAST_PIVOT = 0.18


def correct(rgb: T, sat: tuple[float, ...], contrast: tuple[float, ...], gamma: tuple[float, ...],
            gain: tuple[float, ...], offset: tuple[float, ...]) -> T:
    """One range's correction of ``[3, ...]`` values, per channel r, g, b: saturation about Rec 709
    luma, contrast about 0.18, gamma, gain, offset (contrast and gamma leave values <= 0 alone)."""
    shape = (3,) + (1,) * (rgb.dim() - 1)
    t = lambda v: torch.tensor(v, dtype=rgb.dtype, device=rgb.device).view(shape)  # noqa: E731
    y = luminance(rgb, "Rec 709")
    v = y + t(sat) * (rgb - y)
    if any(c != 1 for c in contrast):
        v = torch.where(v > 0, (v.clamp(min=0) / CONTRAST_PIVOT) ** t(contrast) * CONTRAST_PIVOT, v)
    if any(g != 1 for g in gamma):
        inv = t(tuple(1 / g if g > 0 else float("inf") for g in gamma))
        v = torch.where(v > 0, v.clamp(min=0) ** inv, v)
    return v * t(gain) + t(offset)


class ColorCorrect(_TripleOp):
    """Nuke's ColorCorrect: saturation, contrast, gamma, gain and offset for the whole image
    (master) and for shadows, midtones and highlights, blended by the ``lookup`` ranges.

    With Y = 0.2125 r + 0.7154 g + 0.0721 b of the input, the weights are s = shadow(Y),
    h = highlight(Y) and m = 1 - s - h (or the midtone curve when one is given); defaults: shadow
    falls from 1 at 0 to 0 at 0.09, highlight rises from 0 at 0.5 to 1 at 1 (flat ends). Each
    range's correction, per channel: v = Y + sat (x - Y); v = 0.18 (v / 0.18)^contrast and
    v = v^(1/gamma) where v > 0; v = v gain + offset, with the master's values combined into the
    range's (saturation, contrast, gamma and gain multiplied, offsets added: our reading, the docs
    give the order of the operations, not how master and range combine). out = s S(x) + m M(x) +
    h H(x); then ``mix_luminance``, mask and mix. ``test`` shows the ranges instead: shadows black,
    midtones 0.5, highlights 1. Works on each layer's red, green, blue together (alpha and the
    alpha component of the knobs are left alone). Nuke's script names ``shadows.gain`` etc. are
    ``shadows_gain`` here."""

    inputs = (Input("input", doc="Image to correct."), _MASK_INPUT)

    class Knobs(_LumaKnobs):
        channels: ChannelsKnob = "rgb"
        """Channels to correct, three of a layer at a time (red/green/blue); alpha is left alone."""
        lookup: curve_set(LOOKUP_DEFAULTS, {"midtone": MIDTONE}) = canonical(LOOKUP_DEFAULTS, {"midtone": MIDTONE})
        """The ranges: ``shadow`` and ``highlight`` curves of luminance, ``midtone`` 1-shadow-highlight or a curve."""
        test: bool = False
        """Show the ranges instead of the result: shadows black, midtones grey (0.5), highlights white."""
        saturation: ColorValue = 1.0
        """Saturation of every range (master) about Rec 709 luma: a number or (r, g, b, a)."""
        contrast: ColorValue = 1.0
        """Contrast of every range (master): 0.18 (x / 0.18)^contrast; a number or (r, g, b, a)."""
        gamma: ColorValue = 1.0
        """Gamma of every range (master): x^(1/gamma) above 0; a number or (r, g, b, a)."""
        gain: ColorValue = 1.0
        """Multiplier of every range (master): a number or (r, g, b, a)."""
        offset: ColorValue = 0.0
        """Added to every range (master) last: a number or (r, g, b, a)."""
        shadows_saturation: ColorValue = 1.0
        """Saturation of the shadows (Nuke's ``shadows.saturation``)."""
        shadows_contrast: ColorValue = 1.0
        """Contrast of the shadows (Nuke's ``shadows.contrast``)."""
        shadows_gamma: ColorValue = 1.0
        """Gamma of the shadows (Nuke's ``shadows.gamma``)."""
        shadows_gain: ColorValue = 1.0
        """Multiplier of the shadows (Nuke's ``shadows.gain``)."""
        shadows_offset: ColorValue = 0.0
        """Offset of the shadows (Nuke's ``shadows.offset``)."""
        midtones_saturation: ColorValue = 1.0
        """Saturation of the midtones (Nuke's ``midtones.saturation``)."""
        midtones_contrast: ColorValue = 1.0
        """Contrast of the midtones (Nuke's ``midtones.contrast``)."""
        midtones_gamma: ColorValue = 1.0
        """Gamma of the midtones (Nuke's ``midtones.gamma``)."""
        midtones_gain: ColorValue = 1.0
        """Multiplier of the midtones (Nuke's ``midtones.gain``)."""
        midtones_offset: ColorValue = 0.0
        """Offset of the midtones (Nuke's ``midtones.offset``)."""
        highlights_saturation: ColorValue = 1.0
        """Saturation of the highlights (Nuke's ``highlights.saturation``)."""
        highlights_contrast: ColorValue = 1.0
        """Contrast of the highlights (Nuke's ``highlights.contrast``)."""
        highlights_gamma: ColorValue = 1.0
        """Gamma of the highlights (Nuke's ``highlights.gamma``)."""
        highlights_gain: ColorValue = 1.0
        """Multiplier of the highlights (Nuke's ``highlights.gain``)."""
        highlights_offset: ColorValue = 0.0
        """Offset of the highlights (Nuke's ``highlights.offset``)."""

    def weight(self, ctx: Context, img: Image) -> T | float:
        return _mask_weight(self, ctx, img)

    def range_values(self, rng: str) -> list[tuple[float, ...]]:
        """(saturation, contrast, gamma, gain, offset) of a range, master combined, per r, g, b."""
        k = self.knobs
        out = []
        for op in ("saturation", "contrast", "gamma", "gain", "offset"):
            master, own = getattr(k, op), getattr(k, f"{rng}_{op}")
            if op == "offset":
                out.append(tuple(component(master, i) + component(own, i) for i in range(3)))
            else:
                out.append(tuple(component(master, i) * component(own, i) for i in range(3)))
        return out

    def weights(self, y: T) -> tuple[T, T, T]:
        """(shadow, midtone, highlight) weights of luminance ``y``."""
        lookup = {**canonical(LOOKUP_DEFAULTS, {"midtone": MIDTONE}), **self.knobs.lookup}
        s = apply_curve(lookup["shadow"], y)
        h = apply_curve(lookup["highlight"], y)
        m = 1 - s - h if lookup["midtone"] == MIDTONE else apply_curve(lookup["midtone"], y)
        return s, m, h

    def convert(self, rgb: T) -> T:
        s, m, h = self.weights(luminance(rgb, "Rec 709"))
        if self.knobs.test:
            return (0.5 * m + h).expand_as(rgb).clone()
        out = sum(w * correct(rgb, *self.range_values(rng)) for w, rng in zip((s, m, h), RANGES))
        return _mix_luminance(self.knobs, rgb, out)


# --- HueCorrect ------------------------------------------------------------------------------------

_FLAT = "curve 1 1 1 1 1 1 1"
HUE_DEFAULTS = {"sat": _FLAT, "lum": _FLAT, "red": _FLAT, "green": _FLAT, "blue": _FLAT, "r_sup": _FLAT,
                "g_sup": _FLAT, "b_sup": _FLAT, "sat_thrsh": "curve 0"}


class HueCorrect(_TripleOp):
    """Nuke's HueCorrect: curves of hue scale saturation, luminance and each channel, and suppress
    a channel where it exceeds the other two (spill).

    Hue runs from 0 to 6 on the curves' x axis (0 red, 1 yellow, 2 green, 3 cyan, 4 blue, 5
    magenta, 6 red again): H = 6 hue of the input's HSV, S its HSV saturation. Every curve is read
    at H, in this order (our choice where the docs only name the curves): suppression, per channel,
    r' = m + r_sup (r - m) where r > m = max(g, b) (g and b alike, all from the input); gains
    r'' = red r', g'' = green g', b'' = blue b'; saturation v = Y + sat (c'' - Y) with Y the Rec 709
    luma of (r'', g'', b''); luminance out = lum v. Pixels whose S is below ``sat_thrsh`` keep the
    input. Then ``mix_luminance``, mask and mix. Defaults: every curve 1 (no change), sat_thrsh 0."""

    inputs = (Input("input", doc="Image to correct."), _MASK_INPUT)

    class Knobs(_LumaKnobs):
        channels: ChannelsKnob = "rgb"
        """Channels to correct, three of a layer at a time (red/green/blue); alpha is left alone."""
        hue: curve_set(HUE_DEFAULTS) = canonical(HUE_DEFAULTS)
        """Curves of hue (x 0..6): sat, lum, red, green, blue, r_sup, g_sup, b_sup, sat_thrsh."""

    def weight(self, ctx: Context, img: Image) -> T | float:
        return _mask_weight(self, ctx, img)

    def convert(self, rgb: T) -> T:
        curves = {**canonical(HUE_DEFAULTS), **self.knobs.hue}
        hsv = _rgb_to_hsv(rgb)
        hue, sat = hsv[0] * 6, hsv[1]
        at = lambda name: apply_curve(curves[name], hue)  # noqa: E731
        r, g, b = rgb
        limits = (torch.maximum(g, b), torch.maximum(r, b), torch.maximum(r, g))
        out = []
        for c, limit, sup, gain in zip(rgb, limits, ("r_sup", "g_sup", "b_sup"), ("red", "green", "blue")):
            c2 = torch.where(c > limit, limit + at(sup) * (c - limit), c)
            out.append(c2 * at(gain))
        v = torch.stack(out)
        y = luminance(v, "Rec 709")
        v = (y + at("sat") * (v - y)) * at("lum")
        v = torch.where(sat < at("sat_thrsh"), rgb, v)
        return _mix_luminance(self.knobs, rgb, v)


# --- ColorLookup -----------------------------------------------------------------------------------

_IDENTITY = "curve C l 0 1"
LUT_DEFAULTS = {"master": _IDENTITY, "red": _IDENTITY, "green": _IDENTITY, "blue": _IDENTITY, "alpha": _IDENTITY}


class ColorLookup(_PerChannelOp):
    """Nuke's ColorLookup: curves of the input value. red, green and blue become
    channel_curve(master(x)); alpha becomes alpha_curve(x) (the master curve leaves alpha alone);
    other channels master(x). An untouched curve (``{}`` in a script) is the identity y = x over
    every value (linear beyond its keys at 0 and 1: our choice, so a default node changes nothing);
    a curve as written keeps its own extrapolation. ``range``, ``use_precomputed``, ``source`` and
    ``target`` are Nuke's lookup-table precision and curve-editing helpers: kept, no effect here
    (curves are always evaluated over every value)."""

    class Knobs(_MaskKnobs):
        channels: ChannelsKnob = "rgba"
        """Channels to change; others pass through."""
        lut: curve_set(LUT_DEFAULTS) = canonical(LUT_DEFAULTS)
        """The curves: master (red, green, blue and others), red, green, blue, alpha."""
        range: float = 1.0
        """Nuke's precomputed-table range (values above use the curves directly): no effect here."""
        use_precomputed: bool = True
        """Nuke's precomputed lookup table switch: no effect here (always exact)."""
        source: ColorValue = 0.0
        """Curve-editing helper (the colour "set RGB" maps from): no effect on pixels."""
        target: ColorValue = 0.0
        """Curve-editing helper (the colour "set RGB" maps to): no effect on pixels."""

    def op(self, x: T, index: int) -> T | None:
        curves = {**canonical(LUT_DEFAULTS), **self.knobs.lut}
        if index == 3:
            return apply_curve(curves["alpha"], x)
        v = apply_curve(curves["master"], x)
        return apply_curve(curves[("red", "green", "blue")[index]], v) if index < 3 else v


__all__ = ["ColorCorrect", "ColorLookup", "HueCorrect", "apply_curve", "correct", "curve_set", "curve_text",
           "curves_text", "split_named"]
