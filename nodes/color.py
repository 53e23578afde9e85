"""Colour nodes: Colorspace, OCIOColorSpace, Grade, Clamp, Invert.

``Colorspace`` converts with Nuke's own formulas (not OCIO): each ``colorspace_in`` is decoded to
linear light in ``primary_in`` RGB, re-expressed in ``primary_out`` RGB (Bradford-adapted when the
white points differ) and encoded to ``colorspace_out``. Transfer functions and their sources:

- ``sRGB``: IEC 61966-2-1 (12.92x below 0.0031308, else 1.055 x^(1/2.4) - 0.055); the linear segment
  extends to every negative value, the power segment above 1 (as OCIO's ExponentWithLinear).
- ``rec709``: ITU-R BT.709 OETF as Nuke's built-in LUT writes it: 4.5x below 0.018, else
  1.099 x^0.45 - 0.099 (same extension as sRGB).
- ``Gamma1.8`` ... ``Gamma2.6``: x^(1/g); negative values pass unchanged (OCIO's ``pass_thru``).
- ``Cineon``: Kodak's printing-density log as Nuke converts it: black code 95, white code 685,
  0.002 density per code value, negative gamma 0.6; log = (685 + 300 log10(x (1-o) + o)) / 1023
  with o = 10^((95-685) 0.002/0.6). Below x = -o/(1-o) the log is undefined: the log argument
  is floored at 1e-10 there (the only place a curve here is not invertible).
- ``AlexaV3LogC``: ARRI LogC3 at EI 800 (ARRI "ALEXA Log C curve" white paper: cut 0.010591,
  a 5.555556, b 0.052272, c 0.247190, d 0.385537, e 5.367655, f 0.092809), linear below cut.
- ``SLog3``: Sony S-Log3 technical summary (420 + 261.5 log10((x+0.01)/0.19)) / 1023 at and above
  0.01125, the straight line through code 95 at 0 below.
- ``ACEScct``: Academy S-2016-001; decoding gives 65504 (half max) from log2(65504) upward,
  as the spec says.

Colour models work on the linear RGB of the primaries: ``HSV`` / ``HSL`` (hue 0..1),
``YPbPr`` and ``YCbCr`` (Rec.601 luma 0.299/0.587/0.114, full range; Cb/Cr centred on 0.5),
``CIE-XYZ`` (matrix from the primaries' chromaticities and white) and ``CIE-Yxy``.
"""

from __future__ import annotations

import math
from functools import lru_cache
from typing import Annotated, Any, Callable, Literal

import numpy as np
import torch
from pydantic import AfterValidator, model_validator

from nodegraph.animation import COLOUR
from nodegraph.errors import KnobError, NodeGraphError
from nodegraph.evaluator import Context
from nodegraph.image import Image
from nodegraph.node import Input, Knobs, Node

from ._common import ChannelsKnob, MixKnob, mask_weight, select_channels

T = torch.Tensor

# --- transfer functions: (to linear, from linear) ---------------------------------------------


def _srgb_to_lin(v: T) -> T:
    # in-place on the clamped copy: one temporary instead of four on a 2K plate
    hi = v.clamp(min=0.04045).add_(0.055).div_(1.055).pow_(2.4)
    return hi.where(v > 0.04045, v / 12.92)


def _lin_to_srgb(x: T) -> T:
    hi = x.clamp(min=0.0031308).pow_(1 / 2.4).mul_(1.055).sub_(0.055)
    return hi.where(x > 0.0031308, x * 12.92)


_R709_BREAK = 4.5 * 0.018


def _rec709_to_lin(v: T) -> T:
    return torch.where(v < _R709_BREAK, v / 4.5, ((v.clamp(min=_R709_BREAK) + 0.099) / 1.099) ** (1 / 0.45))


def _lin_to_rec709(x: T) -> T:
    return torch.where(x < 0.018, x * 4.5, 1.099 * x.clamp(min=0.018) ** 0.45 - 0.099)


def _gamma(g: float) -> tuple[Callable[[T], T], Callable[[T], T]]:
    def decode(v: T) -> T:
        return torch.where(v < 0, v, v.clamp(min=0) ** g)

    def encode(x: T) -> T:
        return torch.where(x < 0, x, x.clamp(min=0) ** (1 / g))

    return decode, encode


_CIN_OFFSET = 10 ** ((95 - 685) * 0.002 / 0.6)


def _cineon_to_lin(v: T) -> T:
    return (10 ** ((v * 1023 - 685) * 0.002 / 0.6) - _CIN_OFFSET) / (1 - _CIN_OFFSET)


def _lin_to_cineon(x: T) -> T:
    arg = (x * (1 - _CIN_OFFSET) + _CIN_OFFSET).clamp(min=1e-10)
    return (685 + torch.log10(arg) * (0.6 / 0.002)) / 1023


_LC_CUT, _LC_A, _LC_B, _LC_C, _LC_D, _LC_E, _LC_F = 0.010591, 5.555556, 0.052272, 0.247190, 0.385537, 5.367655, 0.092809


def _logc_to_lin(v: T) -> T:
    log = (10 ** ((v - _LC_D) / _LC_C) - _LC_B) / _LC_A
    return torch.where(v > _LC_E * _LC_CUT + _LC_F, log, (v - _LC_F) / _LC_E)


def _lin_to_logc(x: T) -> T:
    log = _LC_C * torch.log10((_LC_A * x + _LC_B).clamp(min=1e-30)) + _LC_D
    return torch.where(x > _LC_CUT, log, _LC_E * x + _LC_F)


_SL3_BREAK = 171.2102946929 / 1023


def _slog3_to_lin(v: T) -> T:
    log = 10 ** ((v * 1023 - 420) / 261.5) * 0.19 - 0.01
    return torch.where(v >= _SL3_BREAK, log, (v * 1023 - 95) * 0.01125 / (171.2102946929 - 95))


def _lin_to_slog3(x: T) -> T:
    log = (420 + torch.log10(((x + 0.01) / 0.19).clamp(min=1e-30)) * 261.5) / 1023
    return torch.where(x >= 0.01125, log, (x * (171.2102946929 - 95) / 0.01125 + 95) / 1023)


_CCT_A, _CCT_B = 10.5402377416545, 0.0729055341958355
_CCT_Y_BREAK = 0.155251141552511
_CCT_Y_MAX = (math.log2(65504) + 9.72) / 17.52


def _acescct_to_lin(v: T) -> T:
    log = torch.where(v < _CCT_Y_MAX, 2 ** (v * 17.52 - 9.72), torch.full_like(v, 65504.0))
    return torch.where(v <= _CCT_Y_BREAK, (v - _CCT_B) / _CCT_A, log)


def _lin_to_acescct(x: T) -> T:
    return torch.where(x <= 0.0078125, _CCT_A * x + _CCT_B,
                       (torch.log2(x.clamp(min=0.0078125)) + 9.72) / 17.52)


def _identity(x: T) -> T:
    return x


TRANSFERS: dict[str, tuple[Callable[[T], T], Callable[[T], T]]] = {
    "linear": (_identity, _identity),
    "sRGB": (_srgb_to_lin, _lin_to_srgb),
    "rec709": (_rec709_to_lin, _lin_to_rec709),
    "Gamma1.8": _gamma(1.8),
    "Gamma2.2": _gamma(2.2),
    "Gamma2.4": _gamma(2.4),
    "Gamma2.6": _gamma(2.6),
    "Cineon": (_cineon_to_lin, _lin_to_cineon),
    "AlexaV3LogC": (_logc_to_lin, _lin_to_logc),
    "SLog3": (_slog3_to_lin, _lin_to_slog3),
    "ACEScct": (_acescct_to_lin, _lin_to_acescct),
}

# --- colour models: (to linear RGB, from linear RGB) on [3, ...] tensors -------------------------


def _safe_div(a: T, b: T) -> T:
    zero = b == 0
    return torch.where(zero, torch.zeros_like(a), a / torch.where(zero, torch.ones_like(b), b))


def _hue(rgb: T, mx: T, c: T) -> T:
    r, g, b = rgb
    h = torch.where(mx == r, torch.remainder(_safe_div(g - b, c), 6),
                    torch.where(mx == g, _safe_div(b - r, c) + 2, _safe_div(r - g, c) + 4))
    h = h / 6
    h = torch.where(h >= 1, h - 1, h)  # remainder(-tiny, 6) rounds to 6
    return torch.where(c == 0, torch.zeros_like(h), h)


def _from_hue(h: T, c: T, m: T) -> T:
    h6 = torch.remainder(h, 1.0) * 6
    x = c * (1 - (torch.remainder(h6, 2) - 1).abs())
    z = torch.zeros_like(c)
    sector = torch.floor(h6).clamp(0, 5)
    table = [(c, x, z), (x, c, z), (z, c, x), (z, x, c), (x, z, c), (c, z, x)]
    out = [torch.zeros_like(c) for _ in range(3)]
    for i, comps in enumerate(table):
        sel = sector == i
        out = [torch.where(sel, comp, o) for comp, o in zip(comps, out)]
    return torch.stack(out) + m


def _rgb_to_hsv(rgb: T) -> T:
    mx, mn = rgb.amax(0), rgb.amin(0)
    c = mx - mn
    return torch.stack([_hue(rgb, mx, c), _safe_div(c, mx), mx])


def _hsv_to_rgb(hsv: T) -> T:
    h, s, v = hsv
    c = v * s
    return _from_hue(h, c, v - c)


def _rgb_to_hsl(rgb: T) -> T:
    mx, mn = rgb.amax(0), rgb.amin(0)
    c = mx - mn
    light = (mx + mn) / 2
    # c / (1 - |2L - 1|), written as c / (max + min) or c / (2 - max - min) to keep precision near 0
    return torch.stack([_hue(rgb, mx, c), _safe_div(c, torch.where(light <= 0.5, mx + mn, 2 - mx - mn)), light])


def _hsl_to_rgb(hsl: T) -> T:
    h, s, light = hsl
    c = (1 - (2 * light - 1).abs()) * s
    return _from_hue(h, c, light - c / 2)


_KR, _KB = 0.299, 0.114  # Rec.601 luma


def _rgb_to_ypbpr(rgb: T, centre: float = 0.0) -> T:
    r, g, b = rgb
    y = _KR * r + (1 - _KR - _KB) * g + _KB * b
    return torch.stack([y, (b - y) / (2 * (1 - _KB)) + centre, (r - y) / (2 * (1 - _KR)) + centre])


def _ypbpr_to_rgb(ypp: T, centre: float = 0.0) -> T:
    y, pb, pr = ypp
    r = y + 2 * (1 - _KR) * (pr - centre)
    b = y + 2 * (1 - _KB) * (pb - centre)
    g = (y - _KR * r - _KB * b) / (1 - _KR - _KB)
    return torch.stack([r, g, b])


#: Colour models computed from linear RGB alone: name -> (to linear RGB, from linear RGB).
#: CIE-XYZ and CIE-Yxy also need the primaries and are handled in :func:`to_linear` / :func:`from_linear`.
MODELS: dict[str, tuple[Callable[[T], T], Callable[[T], T]]] = {
    "HSV": (_hsv_to_rgb, _rgb_to_hsv),
    "HSL": (_hsl_to_rgb, _rgb_to_hsl),
    "YPbPr": (_ypbpr_to_rgb, _rgb_to_ypbpr),
    "YCbCr": (lambda v: _ypbpr_to_rgb(v, 0.5), lambda x: _rgb_to_ypbpr(x, 0.5)),
}

# --- primaries -------------------------------------------------------------------------------

D65 = (0.3127, 0.3290)
ACES_WHITE = (0.32168, 0.33767)

#: RGB primaries: (red, green, blue, white) CIE 1931 xy chromaticities.
PRIMARIES: dict[str, tuple[tuple[float, float], ...]] = {
    "sRGB": ((0.64, 0.33), (0.30, 0.60), (0.15, 0.06), D65),
    "rec709": ((0.64, 0.33), (0.30, 0.60), (0.15, 0.06), D65),
    "Rec2020": ((0.708, 0.292), (0.170, 0.797), (0.131, 0.046), D65),
    "P3-D65": ((0.680, 0.320), (0.265, 0.690), (0.150, 0.060), D65),
    "ACES": ((0.7347, 0.2653), (0.0, 1.0), (0.0001, -0.0770), ACES_WHITE),
    "ACEScg": ((0.713, 0.293), (0.165, 0.830), (0.128, 0.044), ACES_WHITE),
    "AlexaWideGamut": ((0.6840, 0.3130), (0.2210, 0.8480), (0.0861, -0.1020), D65),
    "SGamut3": ((0.730, 0.280), (0.140, 0.855), (0.100, -0.050), D65),
}

_BRADFORD = np.array([[0.8951, 0.2664, -0.1614], [-0.7502, 1.7135, 0.0367], [0.0389, -0.0685, 1.0296]])


def _xyz(xy: tuple[float, float]) -> np.ndarray:
    x, y = xy
    return np.array([x / y, 1.0, (1 - x - y) / y])


@lru_cache(maxsize=None)
def rgb_to_xyz_matrix(primaries: str) -> np.ndarray:
    """The 3x3 linear RGB -> CIE XYZ matrix (Y of white = 1) of a primaries name."""
    r, g, b, w = PRIMARIES[primaries]
    p = np.stack([_xyz(r), _xyz(g), _xyz(b)], axis=1)
    return p * np.linalg.solve(p, _xyz(w))[None, :]


@lru_cache(maxsize=None)
def rgb_to_rgb_matrix(src: str, dst: str) -> np.ndarray:
    """Linear ``src`` RGB -> ``dst`` RGB; Bradford chromatic adaptation when the whites differ."""
    m = rgb_to_xyz_matrix(src)
    ws, wd = PRIMARIES[src][3], PRIMARIES[dst][3]
    if ws != wd:
        cone_s, cone_d = _BRADFORD @ _xyz(ws), _BRADFORD @ _xyz(wd)
        m = np.linalg.inv(_BRADFORD) @ np.diag(cone_d / cone_s) @ _BRADFORD @ m
    return np.linalg.inv(rgb_to_xyz_matrix(dst)) @ m


def _apply(matrix: np.ndarray, rgb: T) -> T:
    m = torch.as_tensor(matrix, dtype=rgb.dtype, device=rgb.device)
    return torch.einsum("ij,j...->i...", m, rgb)


def _xyz_to_yxy(xyz: T, white: tuple[float, float]) -> T:
    s = xyz.sum(0)
    zero = s == 0
    d = torch.where(zero, torch.ones_like(s), s)
    x = torch.where(zero, torch.full_like(s, white[0]), xyz[0] / d)
    y = torch.where(zero, torch.full_like(s, white[1]), xyz[1] / d)
    return torch.stack([xyz[1], x, y])


def _yxy_to_xyz(yxy: T) -> T:
    big_y, x, y = yxy
    scale = _safe_div(big_y, y)
    return torch.stack([x * scale, big_y, (1 - x - y) * scale])


ColorspaceName = Literal[
    "linear", "sRGB", "rec709", "Gamma1.8", "Gamma2.2", "Gamma2.4", "Gamma2.6", "Cineon", "AlexaV3LogC",
    "SLog3", "ACEScct", "HSV", "HSL", "YPbPr", "YCbCr", "CIE-XYZ", "CIE-Yxy",
]
PrimaryName = Literal["sRGB", "rec709", "Rec2020", "P3-D65", "ACES", "ACEScg", "AlexaWideGamut", "SGamut3"]


def to_linear(rgb: T, space: str, primaries: str = "sRGB") -> T:
    """``[3, ...]`` values in Nuke colourspace ``space`` -> linear RGB in ``primaries``."""
    if space in TRANSFERS:
        return TRANSFERS[space][0](rgb)
    if space == "CIE-XYZ":
        return _apply(np.linalg.inv(rgb_to_xyz_matrix(primaries)), rgb)
    if space == "CIE-Yxy":
        return _apply(np.linalg.inv(rgb_to_xyz_matrix(primaries)), _yxy_to_xyz(rgb))
    return MODELS[space][0](rgb)


def from_linear(rgb: T, space: str, primaries: str = "sRGB") -> T:
    """Linear RGB in ``primaries`` -> ``[3, ...]`` values in Nuke colourspace ``space``."""
    if space in TRANSFERS:
        return TRANSFERS[space][1](rgb)
    if space == "CIE-XYZ":
        return _apply(rgb_to_xyz_matrix(primaries), rgb)
    if space == "CIE-Yxy":
        return _xyz_to_yxy(_apply(rgb_to_xyz_matrix(primaries), rgb), PRIMARIES[primaries][3])
    return MODELS[space][1](rgb)


def convert(rgb: T, space_in: str, space_out: str, primary_in: str = "sRGB", primary_out: str = "sRGB") -> T:
    """Nuke's Colorspace conversion of ``[3, ...]`` values."""
    if space_in == space_out and primary_in == primary_out:
        return rgb
    lin = to_linear(rgb, space_in, primary_in)
    if primary_in != primary_out:
        lin = _apply(rgb_to_rgb_matrix(primary_in, primary_out), lin)
    return from_linear(lin, space_out, primary_out)


# --- shared node plumbing --------------------------------------------------------------------

_COMPONENT_INDEX = {"red": 0, "green": 1, "blue": 2, "alpha": 3, "x": 0, "y": 1, "z": 2, "w": 3, "u": 0, "v": 1}


def colour_index(name: str, channels: tuple[str, ...]) -> int:
    """Nuke's colourIndex: 0..3 for red/green/blue/alpha (x/y/z/w, u/v), else position in the layer."""
    layer, _, comp = name.rpartition(".")
    if comp in _COMPONENT_INDEX:
        return _COMPONENT_INDEX[comp]
    return [c for c in channels if c.rpartition(".")[0] == layer].index(name)


def _work_dtype(dtype: torch.dtype) -> torch.dtype:
    return dtype if dtype in (torch.float32, torch.float64) else torch.float32


def _mask_weight(node: Node, ctx: Context, img: Image) -> T | float:
    """``mix`` times the mask over the image's data window, in the working precision."""
    return mask_weight(ctx, node.knobs, img.bbox, device=img.device, dtype=_work_dtype(img.dtype))


def _blend(before: T, after: T, weight: T | float) -> T:
    if isinstance(weight, float) and weight == 1.0:
        return after
    return before + (after - before) * weight


class _MaskKnobs(Knobs):
    maskChannelInput: str = "rgba.alpha"
    """Channel of the optional mask input that limits the effect (absent: black, no effect)."""
    invert_mask: bool = False
    """Use one minus the mask channel."""
    mix: MixKnob = 1.0
    """Dissolve between the input (0) and the full effect (1)."""


_MASK_INPUT = Input("mask", required=False, doc="Optional mask limiting where the effect applies.")


class _PerChannelOp(Node, abstract=True):
    """A pixel operation applied to each selected channel independently, with mix and mask."""

    category = "Color"
    inputs = (Input("input", doc="Image to change."), _MASK_INPUT)

    def op(self, x: T, index: int) -> T | None:  # pragma: no cover - abstract
        """The new values of a plane of colour index ``index`` (None: leave it unchanged)."""
        raise NotImplementedError

    def compute(self, ctx: Context) -> Image:
        img = ctx.input("input")
        names = [n for n in select_channels(self.knobs.channels, img, self.name) if n in img.channels]
        if not names:
            return img
        work = _work_dtype(img.dtype)
        weight = _mask_weight(self, ctx, img)
        pixels = img.pixels.clone()
        for name in names:
            i = img.index(name)
            x = img.pixels[i].to(work)
            out = self.op(x, colour_index(name, img.channels))
            if out is not None:
                pixels[i] = _blend(x, out, weight).to(img.dtype)
        return img.replace(pixels=pixels)


# --- per-channel (scalar or RGBA) knob values ------------------------------------------------

ColorValue = Annotated[float | tuple[float, float, float, float], COLOUR]


def component(value: ColorValue, index: int) -> float:
    """The value of a scalar-or-RGBA knob for colour index ``index`` (0..3)."""
    return float(value) if isinstance(value, (int, float)) else float(value[index])


# --- nodes ----------------------------------------------------------------------------------


class Grade(_PerChannelOp):
    """Nuke's Grade: a linear ramp followed by a gamma, per channel.

    A = multiply (white - black) / (whitepoint - blackpoint) (10000 when the points coincide),
    B = add + black - A blackpoint, out = gamma(clamp(A x + B)). As in Nuke's Grade (NDK
    example source), gamma leaves negative values alone, applies x^(1/gamma) on [0, 1) and
    continues linearly above 1 as 1 + (x - 1)/gamma; a gamma <= 0 gives 0 below 0 and +inf above 1.
    ``reverse`` undoes the grade (inverse gamma, inverse ramp, then clamps). Knob names are Nuke's
    script names: ``black`` (lift), ``white`` (gain), ``add`` (offset); the UI labels are accepted
    as aliases when constructing or setting.
    """

    ALIASES = {"lift": "black", "gain": "white", "offset": "add"}

    class Knobs(_MaskKnobs):
        channels: ChannelsKnob = "rgb"
        """Channels to grade; others pass through. Colour index 0..3 picks each knob's component."""
        blackpoint: ColorValue = 0.0
        """Input value that becomes ``black`` (lift): a number or (r, g, b, a)."""
        whitepoint: ColorValue = 1.0
        """Input value that becomes ``white`` (gain): a number or (r, g, b, a)."""
        black: ColorValue = 0.0
        """Lift: what ``blackpoint`` turns into (Nuke label "lift"); a number or (r, g, b, a)."""
        white: ColorValue = 1.0
        """Gain: what ``whitepoint`` turns into (Nuke label "gain"); a number or (r, g, b, a)."""
        multiply: ColorValue = 1.0
        """Constant the ramp is multiplied by; a number or (r, g, b, a)."""
        add: ColorValue = 0.0
        """Offset added after the ramp, raising black and white alike (Nuke label "offset")."""
        gamma: ColorValue = 1.0
        """Gamma applied to the result: x^(1/gamma) on [0, 1), linear continuation above 1."""
        reverse: bool = False
        """Invert the math, undoing the same grade: inverse gamma then inverse ramp."""
        black_clamp: bool = True
        """Output below 0 becomes 0."""
        white_clamp: bool = False
        """Output above 1 becomes 1."""

        @model_validator(mode="before")
        @classmethod
        def _aliases(cls, data: Any) -> Any:
            if isinstance(data, dict):
                data = dict(data)
                for alias, name in Grade.ALIASES.items():
                    if alias in data:
                        if name in data:
                            raise ValueError(f"give either {alias!r} or {name!r}, not both")
                        data[name] = data.pop(alias)
            return data

    def set(self, **values: Any) -> "Grade":
        return super().set(**{self.ALIASES.get(k, k): v for k, v in values.items()})

    def coefficients(self, index: int) -> tuple[float, float, float]:
        """(A, B, gamma) of Nuke's Grade for colour index 0..3."""
        k = self.knobs
        c = lambda v: component(v, index)  # noqa: E731
        span = c(k.whitepoint) - c(k.blackpoint)
        a = (c(k.white) - c(k.black)) / span if span else 10000.0
        a *= c(k.multiply)
        b = c(k.add) + c(k.black) - c(k.blackpoint) * a
        return a, b, c(k.gamma)

    def op(self, x: T, index: int) -> T | None:
        if index > 3:
            return None
        a, b, g = self.coefficients(index)
        k = self.knobs
        if not k.reverse:
            v = x * a + b if (a != 1 or b) else x
            if k.white_clamp:
                v = v.clamp(max=1.0)
            if k.black_clamp:
                v = v.clamp(min=0.0)
            return _grade_gamma(v, 1 / g if g > 0 else g, forward=True)
        v = _grade_gamma(x, g, forward=False)
        if a != 1 or b:
            ia = 1 / a if a else 1.0
            v = v * ia - b * ia
        if k.black_clamp:  # Nuke's reverse applies only one clamp, black first
            v = v.clamp(min=0.0)
        elif k.white_clamp:
            v = v.clamp(max=1.0)
        return v


def _grade_gamma(v: T, exponent: float, *, forward: bool) -> T:
    """Nuke's Grade gamma step with exponent ``exponent`` (1/gamma forward, gamma in reverse)."""
    if exponent <= 0:
        if forward:
            return torch.where(v < 0, torch.zeros_like(v), torch.where(v > 1, torch.full_like(v, math.inf), v))
        return (v > 0).to(v.dtype)
    if exponent == 1:
        return v
    powered = v.clamp(0, 1) ** exponent
    out = torch.where(v < 1, powered, 1 + (v - 1) * exponent)
    return torch.where(v <= 0, v, out)


class Clamp(_PerChannelOp):
    """Nuke's Clamp: values below ``minimum`` / above ``maximum`` are clamped, or replaced by
    ``MinClampTo`` / ``MaxClampTo`` when those are enabled. Both tests use the input value."""

    class Knobs(_MaskKnobs):
        channels: ChannelsKnob = "rgba"
        """Channels to clamp; others pass through."""
        minimum: ColorValue = 0.0
        """Lower limit: a number or (r, g, b, a)."""
        minimum_enable: bool = True
        """Clamp values below ``minimum``."""
        maximum: ColorValue = 1.0
        """Upper limit: a number or (r, g, b, a)."""
        maximum_enable: bool = True
        """Clamp values above ``maximum``."""
        MinClampTo: ColorValue = 0.0
        """Value given to pixels below ``minimum`` when ``MinClampTo_enable`` is on."""
        MinClampTo_enable: bool = False
        """Replace values below ``minimum`` by ``MinClampTo`` instead of ``minimum``."""
        MaxClampTo: ColorValue = 1.0
        """Value given to pixels above ``maximum`` when ``MaxClampTo_enable`` is on."""
        MaxClampTo_enable: bool = False
        """Replace values above ``maximum`` by ``MaxClampTo`` instead of ``maximum``."""

    def op(self, x: T, index: int) -> T | None:
        k = self.knobs
        i = min(index, 3)
        out = x
        if k.minimum_enable:
            lo = component(k.minimum, i)
            to = component(k.MinClampTo, i) if k.MinClampTo_enable else lo
            out = torch.where(x < lo, torch.full_like(x, to), out)
        if k.maximum_enable:
            hi = component(k.maximum, i)
            to = component(k.MaxClampTo, i) if k.MaxClampTo_enable else hi
            out = torch.where(x > hi, torch.full_like(x, to), out)
        return out


class Invert(_PerChannelOp):
    """Nuke's Invert: each selected channel becomes 1 - value (no clamping)."""

    class Knobs(_MaskKnobs):
        channels: ChannelsKnob = "rgb"
        """Channels to invert; others pass through."""

    def op(self, x: T, index: int) -> T | None:
        return 1 - x


def _triples(names: list[str], channels: tuple[str, ...]) -> dict[str, list[str | None]]:
    """Selected channels grouped by layer as [c0, c1, c2] by colour index (alpha and others skipped)."""
    out: dict[str, list[str | None]] = {}
    for name in names:
        idx = colour_index(name, channels)
        if idx < 3:
            out.setdefault(name.rpartition(".")[0], [None, None, None])[idx] = name
    return out


class _TripleOp(Node, abstract=True):
    """Converts each selected layer's first three channels together (absent ones read as 0)."""

    category = "Color"

    def convert(self, rgb: T) -> T:  # pragma: no cover - abstract
        raise NotImplementedError

    def weight(self, ctx: Context, img: Image) -> T | float:
        return 1.0

    def compute(self, ctx: Context) -> Image:
        img = ctx.input("input")
        names = [n for n in select_channels(self.knobs.channels, img, self.name) if n in img.channels]
        groups = _triples(names, img.channels)
        if not groups:
            return img
        work = _work_dtype(img.dtype)
        weight = self.weight(ctx, img)
        done = {img.index(n) for triple in groups.values() for n in triple if n is not None}
        pixels = torch.empty_like(img.pixels)
        for i in range(len(img.channels)):  # untouched channels: copied once, converted ones written below
            if i not in done:
                pixels[i] = img.pixels[i]
        for triple in groups.values():
            idx = [img.index(n) if n else None for n in triple]
            if None not in idx and idx[1] == idx[0] + 1 and idx[2] == idx[0] + 2 and img.dtype == work:
                rgb = img.pixels[idx[0]:idx[0] + 3]  # a view: no gather copy for the usual rgba layout
            else:
                zero = torch.zeros(img.pixels.shape[1:], device=img.device, dtype=work)
                rgb = torch.stack([img.pixels[i].to(work) if i is not None else zero for i in idx])
            out = _blend(rgb, self.convert(rgb), weight)
            for j, i in enumerate(idx):
                if i is not None:
                    pixels[i] = out[j]
        return img.replace(pixels=pixels)


class Colorspace(_TripleOp):
    """Nuke's Colorspace: converts between transfer functions, colour models and primaries with
    Nuke's built-in formulas (see the module documentation for every formula and its source)."""

    inputs = (Input("input", doc="Image to convert."),)

    class Knobs(Knobs):
        channels: ChannelsKnob = "rgb"
        """Channels to convert, three of a layer at a time (red/green/blue); alpha is left alone."""
        colorspace_in: ColorspaceName = "linear"
        """Colourspace (transfer function or colour model) the input is in."""
        primary_in: PrimaryName = "sRGB"
        """RGB primaries of the input's linear light (sRGB and rec709 are the same)."""
        colorspace_out: ColorspaceName = "linear"
        """Colourspace (transfer function or colour model) to convert to."""
        primary_out: PrimaryName = "sRGB"
        """RGB primaries of the output; different white points are Bradford-adapted."""

    def passthrough(self, ctx: Context) -> str | None:
        k = self.knobs
        same = k.colorspace_in == k.colorspace_out and k.primary_in == k.primary_out
        return "input" if same else None

    def convert(self, rgb: T) -> T:
        k = self.knobs
        return convert(rgb, k.colorspace_in, k.colorspace_out, k.primary_in, k.primary_out)


def _ocio_name(value: str) -> str:
    from nodegraph import color

    try:
        color.resolve(value)
    except NodeGraphError as err:
        raise ValueError(err.message) from None
    return value.strip()


#: A colourspace name of the active OCIO config (name, alias, role, or one of Nuke's names).
OCIOName = Annotated[str, AfterValidator(_ocio_name)]


class OCIOColorSpace(_TripleOp):
    """Nuke's OCIOColorSpace: converts with OpenColorIO between colourspaces of the active config
    (``$OCIO``, else OCIO's built-in studio config). Names are checked against that config."""

    inputs = (Input("input", doc="Image to convert."), _MASK_INPUT)

    class Knobs(_MaskKnobs):
        channels: ChannelsKnob = "rgb"
        """Channels to convert, three of a layer at a time (red/green/blue); alpha is left alone."""
        in_colorspace: OCIOName = "scene_linear"
        """Colourspace of the input: a name, alias or role of the active OCIO config."""
        out_colorspace: OCIOName = "scene_linear"
        """Colourspace to convert to: a name, alias or role of the active OCIO config."""

    def hash_extra(self, ctx: Context) -> bytes:
        from nodegraph import color

        return color.get_config().getCacheID().encode()

    def check(self) -> list[str]:
        problems = []
        for knob in ("in_colorspace", "out_colorspace"):
            try:
                _ocio_name(getattr(self.knobs, knob))
            except ValueError as err:
                problems.append(f"knob {knob!r}: {err}")
        return problems

    def weight(self, ctx: Context, img: Image) -> T | float:
        return _mask_weight(self, ctx, img)

    def convert(self, rgb: T) -> T:
        from nodegraph import color

        k = self.knobs
        for knob in ("in_colorspace", "out_colorspace"):  # the config may have changed since the knob was set
            try:
                color.resolve(getattr(k, knob))
            except NodeGraphError as err:
                raise KnobError(err.message, node=self.name, knob=knob) from None
        return color.convert(rgb, k.in_colorspace, k.out_colorspace)


__all__ = ["Clamp", "Colorspace", "Grade", "Invert", "OCIOColorSpace", "convert", "to_linear", "from_linear",
           "rgb_to_xyz_matrix", "rgb_to_rgb_matrix", "TRANSFERS", "PRIMARIES"]
