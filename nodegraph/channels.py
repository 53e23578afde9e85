"""Channel naming in Nuke's ``layer.channel`` form and its mapping to file channel names.

Nuke names every channel ``layer.channel``: ``rgba.red``, ``rgba.alpha``, ``depth.Z``,
``diffuse.red``. Files name them differently: EXR uses ``R``, ``G``, ``B``, ``A``, ``Z`` and
``layer.R``. The mapping is lossless both ways for the names nodegraph produces.
"""

from __future__ import annotations

from collections.abc import Iterable
from functools import lru_cache

from .errors import ChannelError

# EXR short component names -> Nuke component names.
_COMPONENT_TO_NUKE = {"R": "red", "G": "green", "B": "blue", "A": "alpha"}
_COMPONENT_FROM_NUKE = {v: k for k, v in _COMPONENT_TO_NUKE.items()}

RGBA = ("rgba.red", "rgba.green", "rgba.blue", "rgba.alpha")
RGB = RGBA[:3]

#: Nuke layer names accepted as shorthands wherever a channel list is asked for.
LAYER_SHORTHANDS = {
    "rgba": RGBA,
    "rgb": RGB,
    "alpha": ("rgba.alpha",),
    "depth": ("depth.Z",),
}

# Nuke sorts channels inside a layer in this order; other names sort alphabetically after them.
_ORDER = {"red": 0, "green": 1, "blue": 2, "alpha": 3, "x": 0, "y": 1, "z": 2, "w": 3, "u": 0, "v": 1}


def from_file_name(name: str) -> str:
    """Map a file channel name (EXR style) to Nuke's ``layer.channel`` name.

    ``R`` -> ``rgba.red``; ``Z`` -> ``depth.Z``; ``diffuse.R`` -> ``diffuse.red``;
    ``forward.u`` stays; a bare name other than R/G/B/A/Z goes to the ``other`` layer.
    """
    if "." in name:
        layer, _, comp = name.rpartition(".")
        return f"{layer}.{_COMPONENT_TO_NUKE.get(comp, comp)}"
    if name in _COMPONENT_TO_NUKE:
        return f"rgba.{_COMPONENT_TO_NUKE[name]}"
    if name == "Z":
        return "depth.Z"
    return f"other.{name}"


def to_file_name(name: str) -> str:
    """Inverse of :func:`from_file_name`: ``rgba.red`` -> ``R``, ``diffuse.red`` -> ``diffuse.R``."""
    layer, comp = split(name)
    short = _COMPONENT_FROM_NUKE.get(comp, comp)
    if layer == "rgba" and comp in _COMPONENT_FROM_NUKE:
        return short
    if layer == "depth" and comp == "Z":
        return "Z"
    if layer == "other" and from_file_name(comp) == name:  # not "other.Z": a bare "Z" reads back as depth.Z
        return comp
    return f"{layer}.{short}"


def split(name: str) -> tuple[str, str]:
    """``"diffuse.red"`` -> ``("diffuse", "red")``; a name without a layer is an error."""
    layer, dot, comp = name.rpartition(".")
    if not dot or not layer or not comp:
        raise ChannelError(f"channel name {name!r} is not in Nuke's layer.channel form")
    return layer, comp


def sort_key(name: str) -> tuple[str, int, str]:
    layer, _, comp = name.rpartition(".")
    return (layer != "rgba", layer, _ORDER.get(comp, 99), comp)


def expand(spec: str | Iterable[str], available: Iterable[str] | None = None) -> tuple[str, ...]:
    """Expand a channel selection into channel names (see :func:`_expand`); cached for strings."""
    avail = tuple(available) if available is not None else None
    if isinstance(spec, str):
        return _expand_cached(spec, avail)
    return _expand(spec, avail)


@lru_cache(maxsize=4096)
def _expand_cached(spec: str, available: tuple[str, ...] | None) -> tuple[str, ...]:
    return _expand(spec, available)


def _expand(spec: str | Iterable[str], available: Iterable[str] | None = None) -> tuple[str, ...]:
    """Expand a channel selection into channel names.

    ``spec`` is ``"all"``, a layer (``"rgba"``, ``"diffuse"``), a channel (``"rgba.red"``), or a
    list/comma-separated string of those. Layers other than the shorthands are looked up in
    ``available``. Unknown layers raise :class:`ChannelError` listing what exists.
    """
    avail = tuple(available) if available is not None else ()
    items = [s.strip() for s in spec.split(",")] if isinstance(spec, str) else list(spec)
    out: list[str] = []
    for item in items:
        if not item or item == "none":
            continue
        if item == "all":
            found: tuple[str, ...] = avail
        elif "." in item:
            found = (item,)
        elif item in LAYER_SHORTHANDS and (available is None or item not in layers(avail)):
            found = LAYER_SHORTHANDS[item]
        else:
            found = tuple(c for c in avail if c.rpartition(".")[0] == item)
            if not found:
                raise ChannelError(f"no layer {item!r}; layers present: {', '.join(layers(avail)) or 'none'}")
        out.extend(c for c in found if c not in out)
    return tuple(out)


def layers(channels: Iterable[str]) -> list[str]:
    """Layer names in first-seen order."""
    seen: list[str] = []
    for c in channels:
        layer = c.rpartition(".")[0]
        if layer not in seen:
            seen.append(layer)
    return seen
