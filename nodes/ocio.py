"""OpenColorIO nodes: OCIOFileTransform, OCIOCDLTransform, OCIOLookTransform, OCIODisplay.

Nuke's class names, knob names and defaults. Each runs OpenColorIO's own processor (the installed
``PyOpenColorIO``) against the active config (``$OCIO``, else OCIO's built-in studio config, the
one :mod:`nodegraph.color` and OCIOColorSpace use), on the CPU in float32 whatever the image's
device and precision; the CDL's arithmetic is short enough to run in torch on the image's device.

Each converts the first three channels of every selected layer together (alpha is left alone),
with Nuke's optional ``mask`` input and ``mix``. Choices where Nuke's documentation is silent:

- ``working_space`` (OCIOFileTransform, OCIOCDLTransform) is the colourspace the transform is
  applied in: the pixels (in the config's ``scene_linear``) are converted to it, transformed and
  converted back; its default here is the ``scene_linear`` role (Nuke's is the config's first space).
- ``direction`` ``inverse`` is OCIO's inverse of the whole transform (for a look: read as
  ``out_colorspace``, look undone, written as ``in_colorspace``).
- A knob naming something the active config lacks (a look, a display, a view) is accepted when set,
  reported by ``check()`` and raised as a KnobError naming the knob when a frame is computed: a
  script made with another studio's config still loads.
- Processors are cached per config, knob values and, for files, path, size and mtime (a changed
  LUT file is read again and changes the node's hash).
"""

from __future__ import annotations

import os
import re
from functools import lru_cache
from typing import Any, Literal

import numpy as np
import PyOpenColorIO as OCIO
import torch

from nodegraph import color
from nodegraph.errors import KnobError, NodeGraphError
from nodegraph.evaluator import Context
from nodegraph.image import Image
from nodegraph.node import Input, Knobs

from ._common import ChannelsKnob
from .color import _MASK_INPUT, OCIOName, _mask_weight, _MaskKnobs, _TripleOp
from .color_extra import Color3

T = torch.Tensor
Direction = Literal["forward", "inverse"]
_DIRECTION = {"forward": OCIO.TRANSFORM_DIR_FORWARD, "inverse": OCIO.TRANSFORM_DIR_INVERSE}
_INTERP = {"nearest": OCIO.INTERP_NEAREST, "linear": OCIO.INTERP_LINEAR,
           "tetrahedral": OCIO.INTERP_TETRAHEDRAL, "best": OCIO.INTERP_BEST}
#: Rec.709 luma weights of the ASC CDL saturation (as OCIO's CDLTransform).
CDL_LUMA = (0.2126, 0.7152, 0.0722)


def apply_processor(proc: OCIO.CPUProcessor, rgb: T) -> T:
    """Run an OCIO CPU processor on ``[3, ...]`` values; same device and dtype back."""
    if rgb.numel() == 0:
        return rgb
    packed = np.ascontiguousarray(rgb.detach().to("cpu", torch.float32).movedim(0, -1).numpy())
    proc.applyRGB(packed)
    return torch.from_numpy(packed).movedim(-1, 0).to(device=rgb.device, dtype=rgb.dtype)


def file_stamp(path: str) -> str:
    """``size:mtime`` of a file, or ``missing``."""
    try:
        st = os.stat(path)
    except OSError:
        return "missing"
    return f"{st.st_size}:{st.st_mtime_ns}"


def _config_id() -> str:
    return color.get_config().getCacheID()


@lru_cache(maxsize=64)
def _cpu(config_id: str, key: tuple, build) -> OCIO.CPUProcessor:  # noqa: ARG001 - config_id keys the cache
    return color.get_config().getProcessor(build(*key)).getOptimizedCPUProcessor(color.PRECISE)


def _processor(build, *key: Any) -> OCIO.CPUProcessor:
    """The cached CPU processor of the transform ``build(*key)`` in the active config."""
    return _cpu(_config_id(), key, build)


def _working(working: str, inner: OCIO.Transform) -> OCIO.Transform:
    """``inner`` applied in colourspace ``working`` (scene_linear -> working -> inner -> back)."""
    space = color.resolve(working)
    linear = color.resolve("scene_linear")
    if space == linear:
        return inner
    return OCIO.GroupTransform([OCIO.ColorSpaceTransform(linear, space), inner,
                                OCIO.ColorSpaceTransform(space, linear)])


class _OCIOOp(_TripleOp, abstract=True):
    """An OCIO transform of each selected layer's rgb, with mask and mix."""

    inputs = (Input("input", doc="Image to transform."), _MASK_INPUT)

    def hash_extra(self, ctx: Context) -> bytes:
        return _config_id().encode()

    def identity(self) -> bool:
        """True when the knobs make the transform an identity (computed as a copy of the input)."""
        return False

    def compute(self, ctx: Context) -> Image:
        img = ctx.input("input")
        if img.pixels.numel() == 0 or self.identity():  # nothing to transform: no file or config is read
            return img
        try:
            return super().compute(ctx)
        except KnobError as err:
            if err.knob == "channels" and "channels" not in self.knob_names():
                raise KnobError(err.message, node=self.path, knob=self.channel_knob) from None
            raise

    channel_knob = "channels"

    def weight(self, ctx: Context, img: Image) -> T | float:
        return _mask_weight(self, ctx, img)

    def _fail(self, err: Exception, knob: str, path: str | None = None) -> KnobError:
        msg = err.message if isinstance(err, NodeGraphError) else str(err)
        return KnobError(msg, node=self.path, knob=knob, **({"path": path} if path else {}))

    def _names_ok(self, *knobs: str) -> None:
        for knob in knobs:
            try:
                color.resolve(getattr(self.knobs, knob))
            except NodeGraphError as err:
                raise self._fail(err, knob) from None


# --- OCIOFileTransform -----------------------------------------------------------------------------


def _file_transform(path: str, stamp: str, cccid: str, direction: str, interp: str, working: str):
    del stamp  # part of the cache key only
    inner = OCIO.FileTransform(src=path, cccId=cccid, interpolation=_INTERP[interp],
                               direction=_DIRECTION[direction])
    return _working(working, inner)


#: The stamp each LUT path was last read with.
_READ_STAMPS: dict[str, str] = {}


class OCIOFileTransform(_OCIOOp):
    """Nuke's OCIOFileTransform: applies a LUT or transform file read by OpenColorIO's FileTransform
    (``.cube``, ``.spi1d``, ``.spi3d``, ``.3dl``, ``.csp``, ``.clf``/``.ctf``, ``.cc``/``.ccc``/``.cdl``
    with ``cccid``... every format OCIO reads) in ``working_space``. No file: the input passes through.
    A file that is missing or unreadable is a KnobError naming ``file`` and the path."""

    class Knobs(_MaskKnobs):
        channels: ChannelsKnob = "rgb"
        """Channels to transform, three of a layer at a time (red/green/blue); alpha is left alone."""
        file: str = ""
        """The LUT or transform file (an absolute path, or relative to the working directory); empty: no change."""
        cccid: str = ""
        """The id of the correction to use in a .ccc/.cdl file (or its index); empty: the first."""
        direction: Direction = "forward"
        """forward applies the file's transform, inverse its inverse (where OCIO can invert it)."""
        interpolation: Literal["nearest", "linear", "tetrahedral", "best"] = "linear"
        """How LUT entries are interpolated: nearest, linear (trilinear for 3D LUTs), tetrahedral, best."""
        working_space: OCIOName = "scene_linear"
        """Colourspace the file's transform is applied in (converted to and back from scene_linear)."""

    def identity(self) -> bool:
        return not self.knobs.file.strip()

    def _path(self) -> str:
        return os.path.abspath(os.path.expanduser(self.knobs.file.strip()))

    def hash_extra(self, ctx: Context) -> bytes:
        stamp = file_stamp(self._path()) if self.knobs.file.strip() else ""
        return (_config_id() + "|" + stamp).encode()

    def check(self) -> list[str]:
        if self.knobs.file.strip() and not os.path.isfile(self._path()):
            return [f"knob 'file': no such file {self._path()!r}"]
        return []

    def convert(self, rgb: T) -> T:
        k = self.knobs
        if not k.file.strip():
            return rgb
        path = self._path()
        stamp = file_stamp(path)
        if stamp == "missing":
            raise KnobError(f"no such LUT file {path!r}", node=self.path, knob="file", path=path)
        self._names_ok("working_space")
        if _READ_STAMPS.setdefault(path, stamp) != stamp:  # OCIO keeps files it read by path: read it afresh
            OCIO.ClearAllCaches()
            color.get_config().clearProcessorCache()
            _READ_STAMPS[path] = stamp
        try:
            proc = _processor(_file_transform, path, stamp, k.cccid, k.direction, k.interpolation, k.working_space)
        except OCIO.Exception as err:
            raise self._fail(err, "file", path) from None
        return apply_processor(proc, rgb)


# --- OCIOCDLTransform ------------------------------------------------------------------------------

def _rgb(value: Color3) -> tuple[float, float, float]:
    return (float(value),) * 3 if isinstance(value, (int, float)) else tuple(float(v) for v in value)


def cdl(rgb: T, slope: Color3, offset: Color3, power: Color3, saturation: float, inverse: bool = False) -> T:
    """The ASC CDL of ``[3, ...]`` values as OCIO's ``CDL_NO_CLAMP`` style computes it.

    forward: v = x slope + offset; v = v^power where v > 0 (else v); out = y + sat (v - y) with
    y = 0.2126 r + 0.7152 g + 0.0722 b. inverse: the same steps undone in reverse order."""
    shape = (3,) + (1,) * (rgb.dim() - 1)
    t = lambda v: torch.tensor(_rgb(v), dtype=rgb.dtype, device=rgb.device).view(shape)  # noqa: E731
    w = torch.tensor(CDL_LUMA, dtype=rgb.dtype, device=rgb.device).view(shape)
    s, o, p = t(slope), t(offset), t(power)
    if not inverse:
        v = rgb * s + o
        v = torch.where(v > 0, v.clamp(min=0) ** p, v)
        y = (v * w).sum(0, keepdim=True)
        return y + saturation * (v - y)
    y = (rgb * w).sum(0, keepdim=True)
    v = y + (rgb - y) / saturation
    v = torch.where(v > 0, v.clamp(min=0) ** (1 / p), v)
    return (v - o) / s


@lru_cache(maxsize=32)
def _cdl_file(path: str, stamp: str, cccid: str) -> tuple[tuple[float, ...], ...]:
    del stamp
    t = OCIO.CDLTransform.CreateFromFile(path, cccid)
    return tuple(t.getSlope()), tuple(t.getOffset()), tuple(t.getPower()), (t.getSat(),)


class OCIOCDLTransform(_OCIOOp):
    """Nuke's OCIOCDLTransform: the ASC Color Decision List (slope, offset, power, saturation) as
    OpenColorIO applies it (style ``CDL_NO_CLAMP``: nothing is clamped, power leaves values <= 0
    unchanged): v = x slope + offset, v = v^power where v > 0, out = y + saturation (v - y) with Rec.709
    luma y = 0.2126 r + 0.7152 g + 0.0722 b; ``inverse`` undoes it. Computed in torch on the image's
    device (checked against OCIO's CDLTransform); only a ``working_space`` other than scene_linear
    goes through OCIO's CPU processor. With ``read_from_file`` the four values come from ``file``
    (.cc, .ccc or .cdl; ``cccid`` picks a correction) instead of the knobs (with no ``file``: the knobs)."""

    class Knobs(_MaskKnobs):
        channels: ChannelsKnob = "rgb"
        """Channels to grade, three of a layer at a time (red/green/blue); alpha is left alone."""
        slope: Color3 = 1.0
        """Multiplier (ASC slope): a number or (r, g, b)."""
        offset: Color3 = 0.0
        """Added after the slope (ASC offset): a number or (r, g, b)."""
        power: Color3 = 1.0
        """Exponent applied to positive values after slope and offset (ASC power): a number or (r, g, b)."""
        saturation: float = 1.0
        """ASC saturation about Rec.709 luma: 0 is grey, 1 no change."""
        direction: Direction = "forward"
        """forward applies the CDL, inverse undoes it."""
        working_space: OCIOName = "scene_linear"
        """Colourspace the CDL is applied in (converted to and back from scene_linear)."""
        read_from_file: bool = False
        """Take slope, offset, power and saturation from ``file`` instead of the knobs."""
        file: str = ""
        """A .cc, .ccc or .cdl file read when ``read_from_file`` is on."""
        cccid: str = ""
        """The id (or index) of the correction in a .ccc/.cdl file; empty: the first."""

    def _path(self) -> str:
        return os.path.abspath(os.path.expanduser(self.knobs.file.strip()))

    def _from_file(self) -> bool:
        return self.knobs.read_from_file and bool(self.knobs.file.strip())

    def hash_extra(self, ctx: Context) -> bytes:
        stamp = file_stamp(self._path()) if self._from_file() else ""
        return (_config_id() + "|" + stamp).encode()

    def check(self) -> list[str]:
        k = self.knobs
        problems = []
        if self._from_file() and not os.path.isfile(self._path()):
            problems.append(f"knob 'file': no such file {self._path()!r}")
        if k.direction == "inverse" and not self._from_file():
            if 0.0 in _rgb(k.slope):
                problems.append("knob 'slope': 0 cannot be inverted")
            if 0.0 in _rgb(k.power):
                problems.append("knob 'power': 0 cannot be inverted")
            if k.saturation == 0.0:
                problems.append("knob 'saturation': 0 cannot be inverted")
        return problems

    def values(self) -> tuple[Color3, Color3, Color3, float]:
        """(slope, offset, power, saturation) in effect: the knobs, or the file's."""
        k = self.knobs
        if not self._from_file():
            return k.slope, k.offset, k.power, k.saturation
        path = self._path()
        stamp = file_stamp(path)
        if stamp == "missing":
            raise KnobError(f"no such CDL file {path!r}", node=self.path, knob="file", path=path)
        try:
            s, o, p, (sat,) = _cdl_file(path, stamp, k.cccid)
        except OCIO.Exception as err:
            raise self._fail(err, "file", path) from None
        return s, o, p, sat

    def convert(self, rgb: T) -> T:
        k = self.knobs
        s, o, p, sat = self.values()
        if k.direction == "inverse":
            for knob, bad in (("slope", 0.0 in _rgb(s)), ("power", 0.0 in _rgb(p)), ("saturation", sat == 0.0)):
                if bad:
                    raise KnobError(f"{knob} 0 cannot be inverted (direction is inverse)", node=self.path,
                                    knob=knob)
        self._names_ok("working_space")
        space, linear = color.resolve(k.working_space), color.resolve("scene_linear")
        if space != linear:
            rgb = color.convert(rgb, linear, space)
        out = cdl(rgb, s, o, p, sat, inverse=k.direction == "inverse")
        return color.convert(out, space, linear) if space != linear else out


# --- OCIOLookTransform -----------------------------------------------------------------------------


def look_names(look: str) -> list[str]:
    """The look names of an OCIO look string (``"a, +b, -c"``; ``|`` separates fallbacks)."""
    return [n.strip().lstrip("+-").strip() for n in re.split(r"[,:|]", look) if n.strip().lstrip("+-").strip()]


def _look_transform(src: str, dst: str, look: str, direction: str):
    return OCIO.LookTransform(src, dst, look, False, _DIRECTION[direction])


class OCIOLookTransform(_OCIOOp):
    """Nuke's OCIOLookTransform: converts from ``in_colorspace`` to ``out_colorspace`` through the
    active config's ``look`` (OCIO's LookTransform: to the look's process space, the look, then to
    ``out_colorspace``). ``look`` is OCIO's look string: names separated by commas, ``-name`` for
    a look's inverse. Empty look: a plain colourspace conversion. ``inverse`` is OCIO's inverse of
    the whole transform. With ``ignore_errors`` an unknown look or a failing transform passes the
    input through instead of failing."""

    class Knobs(_MaskKnobs):
        channels: ChannelsKnob = "rgb"
        """Channels to transform, three of a layer at a time (red/green/blue); alpha is left alone."""
        in_colorspace: OCIOName = "scene_linear"
        """Colourspace of the input: a name, alias or role of the active OCIO config."""
        look: str = ""
        """The look(s) to apply, by name in the active config: ``a, b``; ``-a`` for an inverse."""
        direction: Direction = "forward"
        """forward applies the look transform, inverse its OCIO inverse."""
        out_colorspace: OCIOName = "scene_linear"
        """Colourspace of the result: a name, alias or role of the active OCIO config."""
        ignore_errors: bool = False
        """Pass the input through when the look is unknown or the transform fails, instead of failing."""

    def _unknown(self) -> list[str]:
        config = color.get_config()
        return [n for n in look_names(self.knobs.look) if config.getLook(n) is None]

    def check(self) -> list[str]:
        unknown = self._unknown()
        if unknown and not self.knobs.ignore_errors:
            return [f"knob 'look': unknown look(s) {', '.join(map(repr, unknown))} in OCIO config; "
                    f"valid: {', '.join(color.get_config().getLookNames()) or 'none'}"]
        return []

    def convert(self, rgb: T) -> T:
        k = self.knobs
        self._names_ok("in_colorspace", "out_colorspace")
        unknown = self._unknown()
        if unknown:
            if k.ignore_errors:
                return rgb
            raise KnobError(self.check()[0].split(": ", 1)[1], node=self.path, knob="look")
        try:
            proc = _processor(_look_transform, color.resolve(k.in_colorspace), color.resolve(k.out_colorspace),
                              k.look.strip(), k.direction)
        except OCIO.Exception as err:
            if k.ignore_errors:
                return rgb
            raise self._fail(err, "look") from None
        return apply_processor(proc, rgb)


# --- OCIODisplay -----------------------------------------------------------------------------------


def _display_transform(src: str, display: str, view: str, gain: float, gamma: float):
    pipe = OCIO.LegacyViewingPipeline()
    pipe.setDisplayViewTransform(OCIO.DisplayViewTransform(src=src, display=display, view=view))
    if gain != 1.0:
        pipe.setLinearCC(OCIO.MatrixTransform.Scale([gain, gain, gain, 1.0]))
    if gamma != 1.0:
        pipe.setDisplayCC(OCIO.ExponentTransform([1.0 / gamma] * 3 + [1.0]))
    return pipe


@lru_cache(maxsize=32)
def _display_cpu(config_id: str, key: tuple) -> OCIO.CPUProcessor:  # noqa: ARG001
    return _display_transform(*key).getProcessor(color.get_config()).getOptimizedCPUProcessor(color.PRECISE)


class OCIODisplay(_OCIOOp):
    """Nuke's OCIODisplay: the active config's display/view transform from ``colorspace`` (OCIO's
    viewing pipeline): ``gain`` multiplies the scene-linear values first, then the ``view`` of
    ``display`` is applied, then ``gamma`` gives display^(1/gamma) (OCIO's ExponentTransform,
    negatives clamped to 0). ``display`` and ``view`` ``default`` are the config's default display
    and that display's default view. Nuke's viewer-only ``channel_selector`` and the context
    ``key``/``value`` pairs are not implemented."""

    inputs = (Input("input", doc="Image to transform."),)
    channel_knob = "layer"

    class Knobs(Knobs):
        layer: ChannelsKnob = "rgb"
        """Channels to transform, three of a layer at a time (red/green/blue); alpha is left alone."""
        colorspace: OCIOName = "scene_linear"
        """Colourspace of the input: a name, alias or role of the active OCIO config."""
        display: str = "default"
        """A display of the active config (``default``: the config's default display)."""
        view: str = "default"
        """A view of ``display`` (``default``: the display's default view)."""
        gain: float = 1.0
        """Exposure multiplier applied in scene linear before the view transform."""
        gamma: float = 1.0
        """Gamma applied to the display values: display^(1/gamma); must be above 0."""

        @property
        def channels(self) -> str:  # the name the shared three-channel base reads
            return self.layer

    def weight(self, ctx: Context, img: Image) -> T | float:
        return 1.0

    def display_view(self) -> tuple[str, str]:
        """(display, view) resolved against the active config; unknown names raise a KnobError."""
        config = color.get_config()
        display = self.knobs.display.strip()
        displays = list(config.getDisplays())
        if display.lower() == "default":
            display = config.getDefaultDisplay()
        elif display not in displays:
            raise KnobError(f"unknown display {display!r} in OCIO config; valid: {', '.join(displays)}",
                            node=self.path, knob="display")
        view = self.knobs.view.strip()
        views = list(config.getViews(display))
        if view.lower() == "default":
            view = config.getDefaultView(display)
        elif view not in views:
            raise KnobError(f"unknown view {view!r} of display {display!r}; valid: {', '.join(views)}",
                            node=self.path, knob="view")
        return display, view

    def check(self) -> list[str]:
        problems = []
        try:
            self.display_view()
        except KnobError as err:
            problems.append(f"knob {err.knob!r}: {err.message}")
        if self.knobs.gamma <= 0:
            problems.append("knob 'gamma': must be above 0")
        return problems

    def convert(self, rgb: T) -> T:
        k = self.knobs
        self._names_ok("colorspace")
        display, view = self.display_view()
        if k.gamma <= 0:
            raise KnobError("gamma must be above 0", node=self.path, knob="gamma")
        key = (color.resolve(k.colorspace), display, view, float(k.gain), float(k.gamma))
        try:
            proc = _display_cpu(_config_id(), key)
        except OCIO.Exception as err:
            raise self._fail(err, "view") from None
        return apply_processor(proc, rgb)


__all__ = ["OCIOCDLTransform", "OCIODisplay", "OCIOFileTransform", "OCIOLookTransform", "apply_processor", "cdl",
           "look_names"]
