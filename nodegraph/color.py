"""Colour space conversion through OpenColorIO, understanding Nuke's colourspace names.

The config is ``$OCIO`` when set, else OCIO's built-in ``studio-config-latest``; it is cached
and re-read when ``$OCIO`` changes. Names resolve in this order: a colourspace, alias or role of
the config (``ACEScg``, ``lin_srgb``, ``scene_linear``), then Nuke's default-config names
(``linear``, ``sRGB``, ``rec709``, ``Gamma1.8``...) mapped to their equivalents in the config.
"""

from __future__ import annotations

import os
import threading
from functools import lru_cache

import numpy as np
import PyOpenColorIO as ocio
import torch

from .errors import KnobError

BUILTIN_CONFIG = "studio-config-latest"

#: Nuke's names -> candidate names in the active config (first one present wins).
NUKE_NAMES: dict[str, tuple[str, ...]] = {
    "linear": ("Linear Rec.709 (sRGB)", "lin_rec709", "Utility - Linear - sRGB", "scene_linear"),
    "sRGB": ("sRGB Encoded Rec.709 (sRGB)", "srgb_tx", "Utility - sRGB - Texture", "sRGB - Texture"),
    "rec709": ("Camera Rec.709", "rec709_camera", "Utility - Rec.709 - Camera"),
    "Gamma1.8": ("Gamma 1.8 Encoded Rec.709", "g18_rec709"),
    "Gamma2.2": ("Gamma 2.2 Encoded Rec.709", "g22_rec709"),
    "Gamma2.4": ("Gamma 2.4 Encoded Rec.709", "g24_rec709"),
    "Gamma2.6": ("Gamma 2.6 Encoded Rec.709", "g26_rec709"),
    "raw": ("Raw", "data", "Utility - Raw"),
}
_NUKE_LOWER = {k.lower(): k for k in NUKE_NAMES}

_lock = threading.Lock()
_config_state: tuple[str | None, ocio.Config] | None = None


def get_config() -> ocio.Config:
    """The active OCIO config: ``$OCIO`` if set, else the built-in studio config."""
    global _config_state
    env = os.environ.get("OCIO") or None
    with _lock:
        if _config_state is None or _config_state[0] != env:
            try:
                config = ocio.Config.CreateFromFile(env) if env else ocio.Config.CreateFromBuiltinConfig(BUILTIN_CONFIG)
            except Exception as exc:
                raise KnobError(f"cannot load OCIO config {env or BUILTIN_CONFIG!r}: {exc}", path=env) from exc
            _config_state = (env, config)
            _processor.cache_clear()
        return _config_state[1]


def _lookup(config: ocio.Config, name: str) -> str | None:
    cs = config.getColorSpace(name)  # handles names, aliases and roles, case-insensitively
    return cs.getName() if cs is not None else None


def nuke_names(config: ocio.Config | None = None) -> list[str]:
    """Nuke colourspace names that resolve in ``config``."""
    config = config or get_config()
    return [n for n, candidates in NUKE_NAMES.items() if any(_lookup(config, c) for c in candidates)]


def valid_names(config: ocio.Config | None = None) -> list[str]:
    """Every name :func:`resolve` accepts, minus aliases: Nuke names then the config's spaces."""
    config = config or get_config()
    return nuke_names(config) + list(config.getColorSpaceNames())


def resolve(name: str) -> str:
    """The config's colourspace name for ``name``; unknown names raise :class:`KnobError`."""
    config = get_config()
    if not isinstance(name, str) or not name.strip():
        raise KnobError(f"colourspace must be a non-empty name, got {name!r}")
    name = name.strip()
    found = _lookup(config, name)
    if found:
        return found
    nuke = _NUKE_LOWER.get(name.lower())
    for candidate in NUKE_NAMES.get(nuke, ()) if nuke else ():
        found = _lookup(config, candidate)
        if found:
            return found
    raise KnobError(f"unknown colourspace {name!r} in OCIO config {config.getName()!r}; "
                    f"valid: {', '.join(valid_names(config))}")


#: OCIO's default optimisations minus the fast pow/log/exp approximations (errors ~2e-5).
PRECISE = ocio.OptimizationFlags(int(ocio.OPTIMIZATION_DEFAULT) & ~int(ocio.OPTIMIZATION_FAST_LOG_EXP_POW))


@lru_cache(maxsize=64)
def _processor(src: str, dst: str) -> ocio.CPUProcessor:
    return get_config().getProcessor(src, dst).getOptimizedCPUProcessor(PRECISE)


def processor(src: str, dst: str) -> ocio.CPUProcessor:
    """Cached OCIO CPU processor from ``src`` to ``dst`` (any names :func:`resolve` accepts)."""
    get_config()  # refresh the cache first if $OCIO changed
    return _processor(resolve(src), resolve(dst))


def convert(pixels: torch.Tensor, src: str, dst: str) -> torch.Tensor:
    """Convert the first three planes of ``[C, H, W]`` pixels; other planes pass unchanged.

    A single plane is treated as grey (R=G=B). The result keeps the input's device and dtype;
    OCIO runs on the CPU in float32.
    """
    if pixels.ndim != 3:
        raise KnobError(f"convert expects [C, H, W] pixels, got shape {tuple(pixels.shape)}")
    s, d = resolve(src), resolve(dst)
    if s == d or pixels.shape[0] == 0 or pixels.numel() == 0:
        return pixels
    cpu = _processor(s, d)
    n = min(3, pixels.shape[0])
    rgb = pixels[:n].detach().to("cpu", torch.float32)
    if n < 3:
        rgb = torch.cat([rgb, rgb[-1:].expand(3 - n, -1, -1)])
    packed = np.ascontiguousarray(rgb.permute(1, 2, 0).numpy())
    cpu.applyRGB(packed)
    out = torch.from_numpy(packed).permute(2, 0, 1)[:n].to(device=pixels.device, dtype=pixels.dtype)
    if pixels.shape[0] == n:
        return out.contiguous()
    return torch.cat([out, pixels[n:]])


def default_for_datatype(datatype: str) -> str:
    """Nuke's default file colourspace: ``sRGB`` for 8/16-bit integer files, ``linear`` for float."""
    key = str(datatype).lower()
    if key in {"uint8", "uint16", "int8", "int16", "8", "16", "10", "12", "8 bit", "16 bit"}:
        return "sRGB"
    return "linear"
