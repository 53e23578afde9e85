"""More of Nuke's colour nodes: Saturation, ColorMatrix, Gamma, EXPTool (Exposure), Log2Lin.

Every node here has Nuke's class name, knob names and defaults, the optional ``mask`` input and
the ``mix`` / ``maskChannelInput`` / ``invert_mask`` knobs, and computes in float32 (float64 kept)
whatever the image's precision. Formulas are in each node's docstring; where Foundry's documentation
gives none, the docstring says which choice was made.
"""

from __future__ import annotations

import math
from typing import Annotated, Literal

import numpy as np
import torch

from nodegraph.animation import COLOUR
from nodegraph.errors import KnobError
from nodegraph.evaluator import Context
from nodegraph.image import Image
from nodegraph.node import Input

from ._common import ChannelsKnob
from .color import _MASK_INPUT, ColorValue, _mask_weight, _MaskKnobs, _PerChannelOp, _TripleOp, component

T = torch.Tensor

# --- Saturation ----------------------------------------------------------------------------------

#: Luminance weights of Saturation's ``mode`` (Nuke's "luminance math"): r, g, b.
LUMA_WEIGHTS: dict[str, tuple[float, float, float]] = {
    "Rec 709": (0.2125, 0.7154, 0.0721),
    "Ccir 601": (0.299, 0.587, 0.114),
}
LumaMode = Literal["Rec 709", "Ccir 601", "Average", "Maximum"]


def luminance(rgb: T, mode: str) -> T:
    """Luminance of ``[3, ...]`` values by Saturation's ``mode``."""
    if mode == "Average":
        return rgb.mean(0)
    if mode == "Maximum":
        return rgb.amax(0)
    wr, wg, wb = LUMA_WEIGHTS[mode]
    return rgb[0] * wr + rgb[1] * wg + rgb[2] * wb


class Saturation(_TripleOp):
    """Nuke's Saturation: each pixel moves away from (or towards) its grey of the same luminance.

    y = luminance(r, g, b); out = y + saturation (c - y) for c in r, g, b (0 gives grey, values
    above 1 oversaturate; nothing is clamped). ``mode`` picks the luminance: Rec 709
    (0.2125 r + 0.7154 g + 0.0721 b, the rounding of the Rec.709 weights Nuke's luminance maths has
    long used; the docs give no numbers), Ccir 601 (0.299, 0.587, 0.114), Average ((r+g+b)/3) or
    Maximum (max(r, g, b)). Each selected layer's first three channels are one colour (a missing
    one reads 0 and is not written); alpha is untouched."""

    inputs = (Input("input", doc="Image to (de)saturate."), _MASK_INPUT)

    class Knobs(_MaskKnobs):
        channels: ChannelsKnob = "rgb"
        """Channels to change, three of a layer at a time (red/green/blue); alpha is left alone."""
        saturation: float = 1.0
        """Saturation factor: 0 is grey, 1 leaves the colour, above 1 oversaturates."""
        mode: LumaMode = "Rec 709"
        """Luminance math: Rec 709, Ccir 601, Average or Maximum of r, g, b."""

    def weight(self, ctx: Context, img: Image) -> T | float:
        return _mask_weight(self, ctx, img)

    def convert(self, rgb: T) -> T:
        y = luminance(rgb, self.knobs.mode)
        return y + (rgb - y) * self.knobs.saturation


# --- ColorMatrix ---------------------------------------------------------------------------------

IDENTITY3 = (1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0)
Matrix3 = tuple[float, float, float, float, float, float, float, float, float]


class ColorMatrix(_TripleOp):
    """Nuke's ColorMatrix: each colour is multiplied by a 3x3 matrix.

    ``matrix`` holds the rows top to bottom (as a .nk script writes them): out_r = m0 r + m1 g + m2 b,
    out_g = m3 r + m4 g + m5 b, out_b = m6 r + m7 g + m8 b. ``invert`` multiplies by the inverse
    instead (a singular matrix is then an error naming the knob ``matrix``)."""

    inputs = (Input("input", doc="Image to transform."), _MASK_INPUT)

    class Knobs(_MaskKnobs):
        channels: ChannelsKnob = "rgb"
        """Channels to change, three of a layer at a time (red/green/blue); alpha is left alone."""
        matrix: Matrix3 = IDENTITY3
        """The 3x3 matrix, row by row (9 numbers): row i gives output channel i from r, g, b."""
        invert: bool = False
        """Use the inverse of ``matrix`` (undoes the same ColorMatrix)."""

    def check(self) -> list[str]:
        if self.knobs.invert and abs(np.linalg.det(self._array())) < 1e-12:
            return ["knob 'matrix': the matrix is singular and cannot be inverted"]
        return []

    def _array(self) -> np.ndarray:
        return np.array(self.knobs.matrix, dtype=np.float64).reshape(3, 3)

    def weight(self, ctx: Context, img: Image) -> T | float:
        return _mask_weight(self, ctx, img)

    def convert(self, rgb: T) -> T:
        m = self._array()
        if self.knobs.invert:
            if abs(np.linalg.det(m)) < 1e-12:
                raise KnobError("the matrix is singular and cannot be inverted (invert is on)",
                                node=self.path, knob="matrix")
            m = np.linalg.inv(m)
        return torch.einsum("ij,j...->i...", torch.as_tensor(m, dtype=rgb.dtype, device=rgb.device), rgb)


# --- Gamma -----------------------------------------------------------------------------------


class Gamma(_PerChannelOp):
    """Nuke's Gamma (a Math node): out = x^(1/value) where x > 0; zero and negative values pass
    unchanged. ``value`` may be one number or r, g, b, a (channels past alpha use the alpha entry).
    Not documented by Foundry and chosen here: a value of 0 takes the limit (1/0 = infinity: 0
    below 1, 1 at 1, infinity above); a negative value is a plain negative power."""

    class Knobs(_MaskKnobs):
        channels: ChannelsKnob = "all"
        """Channels to change; others pass through."""
        value: ColorValue = 1.0
        """Gamma: a number or (r, g, b, a); 1 changes nothing, above 1 brightens."""

    def op(self, x: T, index: int) -> T | None:
        g = component(self.knobs.value, min(index, 3))
        if g == 1.0:
            return x
        inv = 1.0 / g if g != 0 else math.inf
        return torch.where(x > 0, x.clamp(min=0) ** inv, x)


# --- EXPTool (Exposure) ------------------------------------------------------------------------

ExposureMode = Literal["Stops", "Lights", "Densities", "Cineon"]
#: Negative density per unit of each ``mode`` (a 0.6 gamma negative: one stop is 0.6 log10(2)).
DENSITY_PER_UNIT = {"Stops": 0.6 * math.log10(2.0), "Lights": 0.025, "Densities": 1.0, "Cineon": 0.002}
#: Negative gamma and density per Cineon code value of the conversions.
NEG_GAMMA, DENSITY_PER_CODE = 0.6, 0.002


def exposure_density(mode: str, amount: float) -> float:
    """The negative density change of ``amount`` in ``mode``."""
    return DENSITY_PER_UNIT[mode] * amount


class EXPTool(_PerChannelOp):
    """Nuke's Exposure node (script class ``EXPTool``): an exposure change per channel.

    ``red``, ``green`` and ``blue`` are amounts in ``mode`` units, each turned into a density change
    d of a 0.6-gamma negative: Stops d = 0.6 log10(2) per stop; Lights (printer lights)
    d = 0.025 per light; Densities d itself; Cineon d = 0.002 per 10-bit code value. With
    ``colorspace`` Linear, out = (x - blackpoint) 10^(d / 0.6) (one stop doubles); with Cineon
    (raw Cineon log data) the same change is an offset: out = x - blackpoint + d / 0.002 / 1023,
    which Log2Lin with ``ignore_black`` turns into exactly the Linear result. The docs give the
    units, not these numbers: 0.025 density per printer light is the usual lab convention (about
    7 lights a stop). Alpha and channels other than red/green/blue are left unchanged."""

    class Knobs(_MaskKnobs):
        channels: ChannelsKnob = "rgb"
        """Channels to change (red, green and blue take their own amount; others pass through)."""
        mode: ExposureMode = "Densities"
        """Units of red/green/blue ("Adjust in"): Stops, Lights (printer lights), Densities, Cineon (code values)."""
        colorspace: Literal["Cineon", "Linear"] = "Linear"  # Nuke's order: the default is item 1
        """Linear: a multiplication; Cineon: the data is raw Cineon log and the change an offset."""
        gang: bool = True
        """Nuke's UI link of the three sliders; the script stores red, green and blue anyway."""
        red: float = 0.0
        """Exposure change of red, in ``mode`` units."""
        green: float = 0.0
        """Exposure change of green, in ``mode`` units."""
        blue: float = 0.0
        """Exposure change of blue, in ``mode`` units."""
        blackpoint: ColorValue = 0.0
        """Value that becomes 0 (subtracted before the change): a number or (r, g, b, a)."""

    def op(self, x: T, index: int) -> T | None:
        if index > 2:
            return None
        k = self.knobs
        d = exposure_density(k.mode, (k.red, k.green, k.blue)[index])
        bp = component(k.blackpoint, index)
        if k.colorspace == "Linear":
            return (x - bp) * 10 ** (d / NEG_GAMMA)
        return x - bp + d / DENSITY_PER_CODE / 1023


# --- Log2Lin ---------------------------------------------------------------------------------

#: An RGB colour, one value or (r, g, b) (Nuke's Color_Knob).
Color3 = Annotated[float | tuple[float, float, float], COLOUR]
#: An RGB colour of three values (Nuke's Color_Knob).
RGB = Annotated[tuple[float, float, float], COLOUR]


def _rgb_component(value: Color3, index: int) -> float:
    return float(value) if isinstance(value, (int, float)) else float(value[min(index, 2)])


def cineon_offset(black: float, white: float, gamma: float) -> float:
    """The linear value of the black code before it is subtracted: 10^((black - white) 0.002 / gamma)."""
    return 10 ** ((black - white) * DENSITY_PER_CODE / gamma)


def log_to_lin(x: T, black: float, white: float, gamma: float, ignore_black: bool = False) -> T:
    """Cineon code values (0..1 for 0..1023) to linear: black code -> 0, white code -> 1."""
    off = 0.0 if ignore_black else cineon_offset(black, white, gamma)
    return (10 ** ((x * 1023 - white) * (DENSITY_PER_CODE / gamma)) - off) / (1 - off)


def lin_to_log(x: T, black: float, white: float, gamma: float, ignore_black: bool = False) -> T:
    """Inverse of :func:`log_to_lin`; the log argument is floored at 1e-10 (below black)."""
    off = 0.0 if ignore_black else cineon_offset(black, white, gamma)
    arg = (x * (1 - off) + off).clamp(min=1e-10)
    return (white + torch.log10(arg) * (gamma / DENSITY_PER_CODE)) / 1023


class Log2Lin(_PerChannelOp):
    """Nuke's Log2Lin: Kodak's Cineon conversion with adjustable black, white and gamma.

    Codes are 10-bit values scaled to 0..1 (code = 1023 x). With o = 10^((black - white) 0.002 /
    gamma) (0 when ``ignore_black``): log2lin gives (10^((1023 x - white) 0.002 / gamma) - o) / (1 - o),
    so code ``black`` becomes 0 and code ``white`` 1; lin2log is its inverse,
    (white + log10(x (1 - o) + o) gamma / 0.002) / 1023, with the log argument floored at 1e-10 where
    it is not positive (not invertible there). Defaults 95 / 685 / 0.6 are Nuke's Cineon colourspace.
    Knobs may be one number or r, g, b (alpha and other channels use the blue entry)."""

    class Knobs(_MaskKnobs):
        channels: ChannelsKnob = "rgb"
        """Channels to convert; others pass through."""
        operation: Literal["log2lin", "lin2log"] = "log2lin"
        """log2lin: Cineon codes to linear; lin2log: linear to Cineon codes."""
        black: Color3 = 95.0
        """Code value (0..1023) of black: a number or (r, g, b)."""
        white: Color3 = 685.0
        """Code value (0..1023) of white (linear 1): a number or (r, g, b)."""
        gamma: Color3 = 0.6
        """Negative gamma of the film (density per log exposure): a number or (r, g, b)."""
        ignore_black: bool = False
        """Do not subtract the black offset (Nuke's "ignore"): linear = 10^((code - white) 0.002 / gamma)."""

    def check(self) -> list[str]:
        problems = []
        for i in range(3):
            g = _rgb_component(self.knobs.gamma, i)
            b, w = _rgb_component(self.knobs.black, i), _rgb_component(self.knobs.white, i)
            if g == 0:
                problems.append("knob 'gamma': must not be 0")
            elif b == w and not self.knobs.ignore_black:
                problems.append("knob 'white': black and white codes must differ")
        return sorted(set(problems))

    def op(self, x: T, index: int) -> T | None:
        k = self.knobs
        black, white, gamma = (_rgb_component(v, index) for v in (k.black, k.white, k.gamma))
        if gamma == 0:
            raise KnobError("gamma must not be 0", node=self.path, knob="gamma")
        if black == white and not k.ignore_black:
            raise KnobError("black and white codes must differ", node=self.path, knob="white")
        if k.operation == "log2lin":
            return log_to_lin(x, black, white, gamma, k.ignore_black)
        return lin_to_log(x, black, white, gamma, k.ignore_black)


__all__ = ["ColorMatrix", "EXPTool", "Gamma", "Log2Lin", "Saturation", "LUMA_WEIGHTS", "luminance",
           "log_to_lin", "lin_to_log", "cineon_offset", "exposure_density"]
