"""Running a model file over images: process-wide model cache, knob values, seamless tiling, OOM
fallback and frame batching. Used by the Inference node; usable on its own.

Tiling: a frame larger than the tile size runs as overlapping tiles. Along each axis tiles start
at multiples of ``tile - overlap`` (both multiples of the network's alignment, so pyramid and
stride grids line up with the untiled run), the last one clipped to the frame. In each overlap
the outer quarter on either side (the pixels closest to a tile's inner edge, whose receptive
field is cut by the tile border) gets weight 0, and the middle half is cross-faded linearly; the
weights are separable and sum to one, and the sum is normalised anyway. So a model whose
receptive-field radius is at most ``overlap / 4`` gives the untiled result up to float rounding.
Tiles of equal shape (from one frame or several) run as one batch when the model allows it.

Out of GPU memory: the batch is halved, then the tile, down to ``2 * overlap``; then the model is
run on the CPU with a warning naming the node.
"""

from __future__ import annotations

import math
import os
import threading
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import torch
import torch.nn.functional as F

from nodegraph.errors import ChannelError, KnobError, NodeGraphError
from nodegraph.io.guard import os_reason
from nodegraph.ml import modelfile as _modelfile
from nodegraph.ml import transfer as _transfer
from nodegraph.ml.network import ScaleRecurrentNet, space_to_depth

#: Tile side used on the CPU when ``tileSize`` is 0 (large: CPU memory is rarely the limit).
CPU_TILE = 2048
#: On CUDA, run CopyCat networks in their space-to-depth form (:func:`nodegraph.ml.network.space_to_depth`:
#: the same function, level 0 on wide convs; measured faster on Hopper tensor cores).
SPACE_TO_DEPTH = True
#: Guesses of peak working memory per tile pixel (float32) used by :func:`auto_tile`.
_BYTES_PER_PIXEL_NETWORK = 96  # x widths[0]
_BYTES_PER_PIXEL_OTHER = 4096

_OOM_ERRORS: tuple[type[BaseException], ...] = tuple(
    {getattr(torch.cuda, "OutOfMemoryError", RuntimeError), getattr(torch, "OutOfMemoryError", RuntimeError)}
    - {RuntimeError}) or (MemoryError,)


# --- model cache ----------------------------------------------------------------------------------

def _file_key(path: str | os.PathLike) -> tuple[str, int, int]:
    """(real path, size, mtime); any odd path (missing, a folder, a NUL byte, a name too long, a
    symlink loop, unreadable) is a :class:`~nodegraph.ml.modelfile.ModelFileError` naming it."""
    import stat as _stat

    p = Path(path)
    try:
        st = p.stat()
        real = str(p.resolve())
    except FileNotFoundError:
        raise _modelfile.ModelFileError("model file does not exist", path=str(path)) from None
    except ValueError:
        raise _modelfile.ModelFileError("the model file's path is not valid (it contains a NUL byte)",
                                        path=str(path)) from None
    except (OSError, RuntimeError) as exc:
        reason = os_reason(str(path), exc) if isinstance(exc, OSError) else str(exc)
        raise _modelfile.ModelFileError(reason, path=str(path)[:4096]) from None
    if _stat.S_ISDIR(st.st_mode):
        raise _modelfile.ModelFileError("the model file is a directory", path=str(path))
    if not _stat.S_ISREG(st.st_mode):
        raise _modelfile.ModelFileError("the model file is not a regular file", path=str(path))
    if not os.access(p, os.R_OK):
        raise _modelfile.ModelFileError("permission denied: the model file is not readable by this user",
                                        path=str(path))
    return (real, st.st_size, st.st_mtime_ns)


def file_signature(path: str | os.PathLike) -> bytes:
    """Path, size and mtime of a model file for node hashes; ``b"missing"`` if absent."""
    try:
        return repr(_file_key(path)).encode()
    except NodeGraphError:
        return b"missing:" + str(path).encode("utf-8", "surrogateescape")


def is_torchscript(module: Any) -> bool:
    return isinstance(module, (torch.jit.ScriptModule, torch.jit.RecursiveScriptModule))


class ModelCache:
    """Loaded models by (path, size, mtime, device, precision): each file is loaded once per process
    and stays on its device. ``loads`` counts actual loads (for tests)."""

    def __init__(self) -> None:
        self._models: dict[tuple, Any] = {}
        self._lock = threading.Lock()
        self.loads = 0

    def get(self, path: str | os.PathLike, device: torch.device, half: bool = False):
        device = torch.device(device)
        half = bool(half) and device.type == "cuda"
        key = _file_key(path) + (str(device), "half" if half else "float")
        with self._lock:
            model = self._models.get(key)
            if model is not None and model.meta.get("kind") == _modelfile.KIND_TORCHSCRIPT:
                _modelfile.check_trusted(Path(path))  # the opt-in may have been withdrawn since
            if model is None:
                model = _modelfile.load_cat(path, device=device)
                if half and is_torchscript(model.module):
                    model.module.half()
                elif device.type == "cuda" and not is_torchscript(model.module):
                    if SPACE_TO_DEPTH and isinstance(model.module, ScaleRecurrentNet):
                        model.module = space_to_depth(model.module).eval()
                    # NHWC is what cuDNN's tensor-core convolutions want; in half mode the weights
                    # are cast to bf16 once here instead of by autocast on every call
                    model.module.to(memory_format=torch.channels_last)
                    if half:
                        model.module.to(dtype=torch.bfloat16)
                # a newer version of the same file replaces the older one on this device
                for old in [k for k in self._models if k[0] == key[0] and k[3:] == key[3:]]:
                    del self._models[old]
                self._models[key] = model
                self.loads += 1
            return model

    def clear(self) -> None:
        with self._lock:
            self._models.clear()


#: The process-wide cache the Inference node uses.
model_cache = ModelCache()


# --- model properties read defensively (newer model files add keys) -------------------------------

def output_scale(model) -> int:
    scale = model.meta.get("output_scale", 1) or 1
    if int(scale) != scale or scale < 1:
        raise NodeGraphError(f"unsupported output_scale {scale!r} (a positive integer is expected)")
    return int(scale)


def alignment(model) -> int:
    """Tile origins and sizes are multiples of this (a nodegraph network's padding multiple)."""
    config = getattr(model, "config", None)
    value = getattr(config, "pad_multiple", None) or model.meta.get("pad_multiple", 1) or 1
    return max(1, int(value))


def supports_batch(model) -> bool:
    """nodegraph networks take any batch; other (TorchScript) models only if model.json says so."""
    if "supports_batch" in model.meta:
        return bool(model.meta["supports_batch"])
    return not is_torchscript(model.module)


def transfer_functions(model) -> tuple[Callable, Callable]:
    name = str(model.meta.get("transfer", "none"))
    if name in ("none", "linear", "identity"):
        return _transfer.identity, _transfer.identity
    return _transfer.get(name)


# --- custom knobs -------------------------------------------------------------------------------

def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def validate_knob_values(model, values: dict[str, Any], *, node: str | None = None) -> dict[str, Any]:
    """Every custom knob of ``model`` with its value (given, else default), checked against the
    knob's type, range and choices. Unknown names and bad values raise :class:`KnobError` naming
    the knob; a TorchScript module must already have an attribute of each knob's name."""
    specs = {str(k["name"]): k for k in model.meta.get("knobs", []) or []}
    unknown = [name for name in values if name not in specs]
    if unknown:
        raise KnobError(f"the model has no custom knob {unknown[0]!r}; its knobs: "
                        f"{', '.join(specs) or 'none'}", node=node, knob=f"knobValues.{unknown[0]}")
    out: dict[str, Any] = {}
    for name, spec in specs.items():
        where = f"knobValues.{name}"
        value = values.get(name, spec.get("default"))
        kind = str(spec.get("type", "float"))
        lo, hi = spec.get("min"), spec.get("max")
        if kind == "bool":
            if not isinstance(value, bool):
                raise KnobError(f"expected a bool, got {value!r}", node=node, knob=where)
        elif kind == "enum":
            choices = [str(c) for c in spec.get("choices", [])]
            if isinstance(value, int) and not isinstance(value, bool) and 0 <= value < len(choices):
                value = choices[value]
            if value not in choices:
                raise KnobError(f"expected one of {', '.join(choices)}, got {value!r}", node=node, knob=where)
        elif kind in ("int", "float", "xy", "xyz"):
            n = {"xy": 2, "xyz": 3}.get(kind)
            items = list(value) if n and isinstance(value, (list, tuple)) else [value]
            if (n and len(items) != n) or not all(_is_number(v) for v in items) or \
                    (kind == "int" and not all(isinstance(v, int) for v in items)):
                raise KnobError(f"expected {'an int' if kind == 'int' else 'a float' if kind == 'float' else f'{n} numbers'}"
                                f", got {value!r}", node=node, knob=where)
            for v in items:
                if (lo is not None and v < lo) or (hi is not None and v > hi):
                    raise KnobError(f"{v!r} is outside the range {lo}..{hi}", node=node, knob=where)
            items = [int(v) if kind == "int" else float(v) for v in items]
            value = items if n else items[0]
        else:
            raise KnobError(f"the model declares an unsupported knob type {kind!r}", node=node, knob=where)
        if is_torchscript(model.module) and not hasattr(model.module, name):
            raise KnobError("the TorchScript module has no attribute of this knob's name", node=node, knob=where)
        out[name] = value
    return out


def apply_knobs(module: Any, values: dict[str, Any], model=None) -> None:
    """Set knob values as module attributes (as Nuke does). Enum values become the choice index
    when the module's attribute is an int."""
    specs = {str(k["name"]): k for k in (model.meta.get("knobs", []) if model is not None else [])}
    for name, value in values.items():
        spec = specs.get(name, {})
        if spec.get("type") == "enum" and isinstance(getattr(module, name, None), int):
            value = [str(c) for c in spec.get("choices", [])].index(value)
        setattr(module, name, value)


# --- tiling ---------------------------------------------------------------------------------------

def _align_up(v: int, a: int) -> int:
    return -(-v // a) * a


def _align_down(v: int, a: int) -> int:
    return max(a, v // a * a)


def tile_spans(length: int, tile: int, overlap: int) -> list[tuple[int, int]]:
    """``[start, end)`` spans covering ``length``: starts at multiples of ``tile - overlap``."""
    if tile >= length:
        return [(0, length)]
    step = tile - overlap
    spans = [(0, tile)]
    while spans[-1][1] < length:
        start = spans[-1][0] + step
        spans.append((start, min(start + tile, length)))
    return spans


def _ramp(n: int, overlap: int, first: bool, last: bool, device: torch.device) -> torch.Tensor:
    """Weights along one axis of a tile of ``n`` output pixels; ``first``/``last``: edges at the
    frame border (no neighbour, weight 1 up to the edge)."""
    i = torch.arange(n, device=device, dtype=torch.float32)
    w = torch.ones(n, device=device)
    if overlap <= 0:
        return w
    guard = overlap // 4
    span = max(1, overlap - 2 * guard)
    if not first:
        w = torch.minimum(w, ((i - guard + 0.5) / span).clamp(0, 1))
    if not last:
        w = torch.minimum(w, ((n - 1 - i - guard + 0.5) / span).clamp(0, 1))
    return w


def run_tiled(fn: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor, *, tile: int, overlap: int,
              scale: int = 1, align: int = 1, max_batch: int = 1) -> torch.Tensor:
    """``fn`` over ``x`` ``[N, C, H, W]`` in blended tiles; ``tile <= 0``: whole frames.

    ``fn`` maps ``[n, C, h, w]`` to ``[n, Cout, h*scale, w*scale]``. Returns float32 on x's device.
    """
    n, _, h, w = x.shape
    max_batch = max(1, int(max_batch))
    if tile <= 0 or (h <= tile and w <= tile):
        outs = [fn(x[i:i + max_batch]).float() for i in range(0, n, max_batch)]
        return torch.cat(outs) if len(outs) > 1 else outs[0]
    tile = _align_up(max(tile, 2 * overlap + align), align)
    overlap = _align_up(overlap, align) if overlap else 0
    if tile - overlap < align:
        tile = overlap + align
    ys, xs = tile_spans(h, tile, overlap), tile_spans(w, tile, overlap)
    groups: dict[tuple[int, int], list[tuple[int, int, int, int, int]]] = {}
    for k in range(n):
        for yi, (y0, y1) in enumerate(ys):
            for xi, (x0, x1) in enumerate(xs):
                groups.setdefault((y1 - y0, x1 - x0), []).append((k, yi, xi, y0, x0))
    out = None
    wsum = torch.zeros(1, 1, h * scale, w * scale, device=x.device)
    weight_done: set[tuple[int, int]] = set()
    ov = overlap * scale
    for (th, tw), items in groups.items():
        for b in range(0, len(items), max_batch):
            chunk = items[b:b + max_batch]
            batch = torch.stack([x[k, :, y0:y0 + th, x0:x0 + tw] for k, _, _, y0, x0 in chunk])
            y = fn(batch).float()
            if out is None:
                out = torch.zeros(n, y.shape[1], h * scale, w * scale, device=x.device)
            for (k, yi, xi, y0, x0), yt in zip(chunk, y):
                wy = _ramp(th * scale, ov, yi == 0, yi == len(ys) - 1, x.device)
                wx = _ramp(tw * scale, ov, xi == 0, xi == len(xs) - 1, x.device)
                wt = wy[:, None] * wx[None, :]
                sl = (slice(y0 * scale, (y0 + th) * scale), slice(x0 * scale, (x0 + tw) * scale))
                out[(k, slice(None)) + sl] += yt * wt
                if (yi, xi) not in weight_done:
                    weight_done.add((yi, xi))
                    wsum[(0, 0) + sl] += wt
    assert out is not None
    return out / wsum.clamp_min(1e-12)


def auto_tile(model, device: torch.device, *, half: bool = False, align: int = 1) -> int:
    """Tile side from free GPU memory (a large default on the CPU)."""
    if torch.device(device).type != "cuda":
        return CPU_TILE
    free, _total = torch.cuda.mem_get_info(device)
    config = getattr(model, "config", None)
    widths = getattr(config, "widths", None)
    bpp = _BYTES_PER_PIXEL_NETWORK * widths[0] if widths else _BYTES_PER_PIXEL_OTHER
    if half:
        bpp //= 2
    side = int(math.sqrt(0.5 * free / bpp))
    return _align_down(min(max(side, 256), 4096), align)


def is_oom(err: BaseException) -> bool:
    return isinstance(err, _OOM_ERRORS)


def run_with_retries(fn: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor, *, tile: int, overlap: int,
                     scale: int = 1, align: int = 1, max_batch: int = 1,
                     fallback: Callable[[], Callable[[torch.Tensor], torch.Tensor]] | None = None,
                     cpu_tile: int = CPU_TILE, name: str | None = None) -> torch.Tensor:
    """:func:`run_tiled`, on out-of-memory halving the batch, then the tile (down to
    ``2 * overlap``); then ``fallback()`` (a CPU ``fn``) runs on the CPU with a warning.
    The result is on the CPU after a fallback."""
    if tile <= 0:
        tile = max(x.shape[-2:])
    min_tile = max(2 * overlap + align, align, 16)
    while True:
        try:
            return run_tiled(fn, x, tile=tile, overlap=overlap, scale=scale, align=align, max_batch=max_batch)
        except Exception as err:
            if not is_oom(err):
                raise
            if x.is_cuda:
                torch.cuda.empty_cache()
            if max_batch > 1:
                max_batch //= 2
                continue
            smaller = _align_down(min(tile, max(x.shape[-2:])) // 2, align)
            if smaller >= min_tile and smaller < tile:
                tile = smaller
                continue
            if fallback is None:
                raise NodeGraphError(f"out of memory even with {tile}px tiles", node=name) from err
            warnings.warn(f"{name or 'Inference'}: out of GPU memory even with {tile}px tiles; "
                          "running on the CPU", RuntimeWarning, stacklevel=2)
            return run_tiled(fallback(), x.cpu(), tile=cpu_tile, overlap=overlap, scale=scale, align=align,
                             max_batch=1)


# --- running a model ----------------------------------------------------------------------------

@dataclass
class InferenceSettings:
    """How to run a model: device, precision, tiling and custom knob values."""

    device: torch.device = field(default_factory=lambda: torch.device("cpu"))
    half: bool = False
    tile: int = 0
    overlap: int = 32
    knob_values: dict[str, Any] = field(default_factory=dict)
    name: str | None = None
    max_batch: int | None = None
    compile: bool = False


_COMPILED: dict[int, Any] = {}
_COMPILED_LOCK = threading.Lock()


def _compiled(module: Any) -> Any:
    """One ``torch.compile`` wrapper per loaded module (it recompiles per tile shape by itself)."""
    with _COMPILED_LOCK:
        fn = _COMPILED.get(id(module))
        if fn is None or fn[0] is not module:
            # NODEGRAPH_COMPILE_MODE picks a torch.compile mode (e.g. max-autotune-no-cudagraphs)
            mode = os.environ.get("NODEGRAPH_COMPILE_MODE") or None
            fn = (module, torch.compile(module, dynamic=False, mode=mode))
            _COMPILED[id(module)] = fn
        return fn[1]


def make_forward(model, settings: InferenceSettings, knobs: dict[str, Any]) -> Callable[[torch.Tensor], torch.Tensor]:
    """``[n, Cin, h, w]`` encoded float32 -> ``[n, Cout, h*s, w*s]`` float32, knobs set on each call."""
    module = model.module
    device = next((p.device for p in module.parameters()), None) if hasattr(module, "parameters") else None
    device = device or settings.device
    half = settings.half and device.type == "cuda"
    script = is_torchscript(module)
    batch_ok = supports_batch(model)
    pad_to = alignment(model) if script else 1  # nodegraph networks pad internally
    scale = output_scale(model)

    net = _compiled(module) if settings.compile and device.type == "cuda" and not script else module

    def forward(x: torch.Tensor) -> torch.Tensor:
        with torch.inference_mode():
            x = x.to(device)
            apply_knobs(module, knobs, model)
            if half and script:
                run = lambda t: module(t.half())  # noqa: E731
            elif half:
                def run(t):
                    return net(t.to(torch.bfloat16).contiguous(memory_format=torch.channels_last))
            elif device.type == "cuda":
                def run(t):
                    return net(t.contiguous(memory_format=torch.channels_last))
            else:
                run = module
            h, w = x.shape[-2:]
            ph, pw = (-h) % pad_to, (-w) % pad_to
            if ph or pw:
                inner = run
                run = lambda t: inner(F.pad(t, (0, pw, 0, ph), mode="replicate"))[..., :h * scale, :w * scale]  # noqa: E731
            if batch_ok or x.shape[0] == 1:
                return run(x).float()
            return torch.cat([run(x[i:i + 1]).float() for i in range(x.shape[0])])
    return forward


def infer_frames(path: str | os.PathLike, frames: Sequence[torch.Tensor] | torch.Tensor,
                 settings: InferenceSettings | None = None, *, cache: ModelCache | None = None) -> torch.Tensor:
    """Run the model in ``path`` on several frames at once: ``[N, Cin, H, W]`` (or a list of
    ``[Cin, H, W]``) raw linear values in the model's channel order -> ``[N, Cout, H*s, W*s]``
    decoded float32 on the frames' device. Tiles of all frames run in shared batches when the
    model supports batching."""
    settings = settings or InferenceSettings()
    cache = cache or model_cache
    x = frames if isinstance(frames, torch.Tensor) else torch.stack(list(frames))
    home = x.device
    model = cache.get(path, settings.device, settings.half)
    if x.shape[1] != len(model.channels_in):
        raise ChannelError(f"the model takes {len(model.channels_in)} channels, got {x.shape[1]}",
                           node=settings.name, path=str(path))
    knobs = validate_knob_values(model, settings.knob_values, node=settings.name)
    encode, decode = transfer_functions(model)
    align = alignment(model)
    tile = settings.tile or auto_tile(model, settings.device, half=settings.half, align=align)
    max_batch = settings.max_batch or (max(1, x.shape[0] * 4) if supports_batch(model) else 1)
    fn = make_forward(model, settings, knobs)
    def cpu_forward():
        cpu_model = cache.get(path, torch.device("cpu"), False)
        cpu_knobs = validate_knob_values(cpu_model, settings.knob_values, node=settings.name)
        return make_forward(cpu_model, InferenceSettings(device=torch.device("cpu")), cpu_knobs)
    fallback = cpu_forward if settings.device.type != "cpu" else None
    xin = encode(x.to(settings.device, torch.float32))
    y = run_with_retries(fn, xin, tile=tile, overlap=settings.overlap, scale=output_scale(model), align=align,
                         max_batch=max_batch, fallback=fallback, name=settings.name)
    return decode(y).to(home)


__all__ = ["CPU_TILE", "InferenceSettings", "ModelCache", "model_cache", "file_signature", "output_scale",
           "alignment", "supports_batch", "transfer_functions", "validate_knob_values", "apply_knobs",
           "tile_spans", "run_tiled", "auto_tile", "run_with_retries", "make_forward", "infer_frames"]
