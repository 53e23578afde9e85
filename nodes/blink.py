"""BlinkScript: Nuke's kernel node, its Blink kernel translated to torch operations."""

from __future__ import annotations

import json
from typing import Any

import pydantic
import torch
from pydantic import Field

from nodegraph import channels as chans
from nodegraph.errors import NodeGraphError
from nodegraph.evaluator import Context
from nodegraph.image import Box, Format, Image
from nodegraph.node import Input, Knobs, Node

from ._common import FormatKnob, format_of
from .blink_eval import ParamSpec, Plane, param_specs, run_kernel
from .blink_parse import BlinkUnsupported, ImageDecl, Kernel, parse_kernel

#: Inputs offered ("0".."7"): the kernel's ``Image<eRead>`` declarations in order, as Nuke numbers them.
BLINK_INPUTS = 8

#: The kernel a new BlinkScript holds (Nuke's is an invert with a "Multiply" param, knob
#: ``InvertKernel_Multiply``; this one is written here to do the same).
DEFAULT_KERNEL = """\
kernel InvertKernel : ImageComputationKernel<ePixelWise>
{
  Image<eRead, eAccessPoint, eEdgeClamped> src;
  Image<eWrite> dst;

  param:
    float multiply;

  void define() {
    defineParam(multiply, "Multiply", 1.0f);
  }

  // rgb inverted and scaled, alpha kept
  void process() {
    SampleType(src) in = src();
    float3 rgb = (float3(1.0f) - float3(in.x, in.y, in.z)) * multiply;
    dst() = float4(rgb.x, rgb.y, rgb.z, in.w);
  }
};
"""


class _BlinkKnobs(Knobs):
    kernelSource: str = DEFAULT_KERNEL
    """The Blink kernel (Blink's C++ subset). Its params become knobs named ``<KernelName>_<label>``."""
    KernelDescription: str = ""
    """Nuke's compiled summary of the kernel (kept as written; nodegraph reads ``kernelSource``)."""
    kernelSourceFile: str = ""
    """File the kernel was loaded from in Nuke (not read: the script's ``kernelSource`` is the kernel)."""
    recompileCount: int = 0
    """How often Nuke recompiled the kernel (kept as written)."""
    ProgramGroup: int = 1
    """Nuke's kernel tab (kept as written)."""
    useGPUIfAvailable: bool = True
    """Nuke: run on the GPU if there is one. nodegraph runs on the render's device either way."""
    vectorize: bool = True
    """Nuke: vectorise on the CPU (no effect: nodegraph always evaluates all pixels at once)."""
    maxTileLines: int = 10
    """Nuke's tile height in percent of the image (no effect here)."""
    maxGPUMemory: float = 50.0
    """Nuke's GPU memory limit in percent (no effect here)."""
    specifiedFormat: bool = False
    """Output ``format`` (its whole area) instead of the first input's format and data window."""
    format: FormatKnob = "HD_1080"
    """Output format with ``specifiedFormat`` (and when nothing is connected to input 0)."""
    protectKernelWhenPublishing: bool = False
    """Nuke: hide the source when published (kept as written)."""
    rebuild: str = ""
    """Nuke's rebuild marker (kept as written)."""
    rebuild_finalise: str = ""
    """Nuke's rebuild marker (kept as written)."""


_STATIC = frozenset(_BlinkKnobs.model_fields)
_MODELS: dict[str, type[Knobs]] = {}


def _annotation(spec: ParamSpec) -> Any:
    scalar = {"float": float, "int": int, "bool": bool}[spec.base]
    return scalar if spec.n == 1 else tuple[(scalar,) * spec.n]  # type: ignore[misc]


def param_fields(kernel: Kernel, specs: list[ParamSpec]) -> dict[str, tuple[Any, Any]]:
    """Knob fields of a kernel's params: Nuke names them ``<KernelName>_<label>``."""
    return {f"{kernel.name}_{s.label}": (_annotation(s), Field(
        s.default, description=f"Kernel param '{s.name}' ({s.base}{'' if s.n == 1 else s.n}) of "
                               f"{kernel.name}, labelled {s.label!r}.")) for s in specs}


def knob_model(fields: dict[str, tuple[Any, Any]], extra: dict[str, tuple[Any, Any]] | None = None) -> type[Knobs]:
    """The BlinkScript knob model with these param fields (and user knobs), shared by equal kernels."""
    extra = extra or {}
    key = json.dumps([[k, repr(v[0]), repr(v[1].default)] for k, v in {**fields, **extra}.items()])
    model = _MODELS.get(key)
    if model is None:
        model = pydantic.create_model("BlinkScriptKnobs", __base__=_BlinkKnobs, **fields, **extra)
        if len(_MODELS) > 512:
            _MODELS.clear()
        _MODELS[key] = model
    return model


def _default_model() -> type[Knobs]:
    kernel = parse_kernel(DEFAULT_KERNEL)
    return knob_model(param_fields(kernel, param_specs(kernel)))


def image_plane(img: Image | None, decl: ImageDecl | None = None) -> Plane | None:
    """An input image as a kernel reads it: its rgba (absent channels black) and Nuke bounds (y up)."""
    if img is None:
        return None
    pixels = img.select(chans.RGBA, missing="black").pixels
    height = img.format.height
    box = img.bbox
    decl = decl or ImageDecl("src", "eRead", "eAccessPoint", "eEdgeClamped", 0)
    return Plane(decl, pixels, box.x0, height - box.y1, box.x1, height - box.y0)


class BlinkScript(Node):
    """Runs a Blink kernel (Nuke's BlinkScript) by translating it to torch operations over all
    pixels at once; kernels using what the translator lacks raise an "unsupported kernel" error
    naming kernel, construct, line and column.

    Translated: ``ImageComputationKernel<ePixelWise|eComponentWise>``; images with eAccessPoint,
    eAccessRanged1D/2D (``setRange``, ``setAxis``) and eAccessRandom, edges eEdgeClamped,
    eEdgeConstant (0 outside) and eEdgeNone (read as clamped); ``param:`` and ``local:``,
    ``define()`` with ``defineParam``, ``init()``, ``process()`` / ``process(int2 pos)``; float,
    int, bool and their 2-4 vectors, local arrays, helper functions, if/else, loops (at most
    65536 iterations each), the usual maths functions, ``bilinear``, object-like ``#define``.

    Inputs "0".."7" are the kernel's ``Image<eRead>`` images in declaration order; each is read as
    its rgba (absent channels black, an unconnected input as an empty image). The output is the
    first input's format and data window (``specifiedFormat``: the ``format`` knob's whole area)
    with rgba set from the kernel's ``dst`` and the first input's other channels passed through.
    Kernel params are knobs ``<KernelName>_<label>`` (``define()``'s label, else the param's name),
    rebuilt when ``kernelSource`` changes and compiles: while a source does not compile, the last
    compiled kernel's knobs stay, as in Nuke. Arithmetic is float32 (float64 for a float64 render),
    the result cast to the render's precision."""

    category = "Other"
    inputs = tuple(Input(str(i), required=False, doc=f"The kernel's input image {i} (its {i + 1}th Image<eRead>).")
                   for i in range(BLINK_INPUTS))
    Knobs = _default_model()

    def __init__(self, name: str, **knobs: Any) -> None:
        self._synced = DEFAULT_KERNEL
        later = {k: knobs.pop(k) for k in list(knobs) if k not in _STATIC}
        super().__init__(name, **knobs)
        self._sync()
        if later:
            self.set(**later)

    # --- param knobs follow the kernel ------------------------------------------------------------
    def _knobs_changed(self) -> None:
        super()._knobs_changed()
        if getattr(self, "_synced", None) is not None and self.knobs.kernelSource != self._synced:
            self._sync()

    def _sync(self) -> None:
        source = self.knobs.kernelSource
        if source == self._synced:
            return
        self._synced = source
        try:
            kernel = parse_kernel(source)
            fields = param_fields(kernel, param_specs(kernel))
        except NodeGraphError:
            return  # the last compiled kernel's knobs stay
        user = {spec.name: spec.field() for spec in self.user_knobs.values() if spec.name not in fields}
        model = knob_model(fields, user)
        if model is type(self.knobs):
            return
        values = self.knobs.model_dump()
        keep = {k: v for k, v in values.items() if k in _STATIC or k in user}
        for key, value in values.items():  # a param of the same name and type keeps its value
            if key in fields and key not in keep and model.model_fields[key].annotation == \
                    type(self.knobs).model_fields.get(key, model.model_fields[key]).annotation:
                keep[key] = value
        self._own_class()
        cls = type(self)
        cls.Knobs = model
        cls._base_knobs = knob_model(fields)
        try:
            self.knobs = model(**keep)
        except pydantic.ValidationError:
            self.knobs = model(**{k: v for k, v in keep.items() if k in _STATIC})
        self.knobs._owner = self
        for key in [k for k in self.animated if k not in model.model_fields]:
            del self.animated[key]
        self.invalid_knobs = {k: v for k, v in self.invalid_knobs.items() if k in model.model_fields}
        super()._knobs_changed()

    # --- checks and compute -------------------------------------------------------------------------
    def kernel(self) -> Kernel:
        """The parsed kernel; :class:`BlinkUnsupported` (naming this node) if it cannot be translated."""
        try:
            kernel = parse_kernel(self.knobs.kernelSource)
            param_specs(kernel)
        except BlinkUnsupported as err:
            raise err.with_context(node=self.path, knob="kernelSource")
        return kernel

    def check(self) -> list[str]:
        try:
            self.kernel()
        except NodeGraphError as err:
            return [f"unsupported kernel: {err.message}"]
        return []

    def compute(self, ctx: Context) -> Image:
        k = self.knobs
        try:
            kernel = self.kernel()
        except NodeGraphError as err:
            raise err.with_context(frame=ctx.frame)
        reads = [d for d in kernel.images if d.mode == "eRead"]
        images = [ctx.input(str(i)) if ctx.has_input(str(i)) else None for i in range(len(reads))]
        first = ctx.input("0") if ctx.has_input("0") else None
        if k.specifiedFormat or first is None:
            fmt = format_of(self.name, k.format)
            box = fmt.display
        else:
            fmt, box = first.format, first.bbox
        fdt = torch.float64 if ctx.dtype == torch.float64 else torch.float32
        specs = {s.name: s for s in param_specs(kernel)}
        params = {}
        for name, spec in specs.items():
            knob = f"{kernel.name}_{spec.label}"
            params[name] = getattr(k, knob) if self.has_knob(knob) else spec.default
        planes = [image_plane(img.to(ctx.device) if img is not None else None, d) for img, d in zip(images, reads)]
        out = Plane(reads[0] if reads else ImageDecl("dst", "eWrite", "eAccessPoint", "eEdgeNone", 0),
                    torch.zeros((4, 0, 0), device=ctx.device), box.x0, fmt.height - box.y1, box.x1,
                    fmt.height - box.y0)
        if box.empty:
            rgba = torch.zeros((4, box.height, box.width), dtype=ctx.dtype, device=ctx.device)
        else:
            try:
                rgba = run_kernel(kernel, params=params, inputs=planes, out=out, device=ctx.device, fdt=fdt)
            except NodeGraphError as err:
                raise err.with_context(node=self.path, knob="kernelSource", frame=ctx.frame)
            rgba = rgba.to(ctx.dtype)
        return _compose(rgba, first, fmt, box, ctx)


def _compose(rgba: torch.Tensor, first: Image | None, fmt: Format, box: Box, ctx: Context) -> Image:
    """The kernel's rgba over ``box`` with the first input's other channels passed through."""
    out = Image(rgba, chans.RGBA, box, fmt)
    if first is None:
        return out
    others = [c for c in first.channels if c not in chans.RGBA]
    if not others:
        return out
    rest = first.select(others).to(ctx.device, ctx.dtype).crop_to(box)
    names = tuple(chans.RGBA) + tuple(others)
    return Image(torch.cat([rgba, rest.pixels]), names, box, fmt)
