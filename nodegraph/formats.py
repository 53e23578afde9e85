"""Nuke's named image formats and parsing of format knob values."""

from __future__ import annotations

import re

from .errors import KnobError
from .image import Format

#: Nuke's built-in formats: name -> (width, height, pixel aspect).
FORMATS: dict[str, tuple[int, int, float]] = {
    "PC_Video": (640, 480, 1.0),
    "NTSC": (720, 486, 0.91),
    "PAL": (720, 576, 1.09),
    "NTSC_16:9": (720, 486, 1.21),
    "PAL_16:9": (720, 576, 1.46),
    "HD_720": (1280, 720, 1.0),
    "HD_1080": (1920, 1080, 1.0),
    "UHD_4K": (3840, 2160, 1.0),
    "1K_Super_35(full-ap)": (1024, 778, 1.0),
    "1K_Cinemascope": (914, 778, 2.0),
    "2K_Super_35(full-ap)": (2048, 1556, 1.0),
    "2K_Cinemascope": (1828, 1556, 2.0),
    "2K_DCP": (2048, 1080, 1.0),
    "4K_Super_35(full-ap)": (4096, 3112, 1.0),
    "4K_Cinemascope": (3656, 3112, 2.0),
    "4K_DCP": (4096, 2160, 1.0),
    "square_256": (256, 256, 1.0),
    "square_512": (512, 512, 1.0),
    "square_1K": (1024, 1024, 1.0),
    "square_2K": (2048, 2048, 1.0),
}

_SIZE = re.compile(r"^\s*(\d+)\s*[x ]\s*(\d+)(?:\s+([0-9.]+))?\s*$")


def parse_format(value: str, *, node: str | None = None, knob: str = "format") -> Format:
    """A Nuke format name (``HD_1080``) or ``"W H [aspect]"`` / ``"WxH"``."""
    if value in FORMATS:
        w, h, a = FORMATS[value]
        return Format.of_size(w, h, a, name=value)
    m = _SIZE.match(value)
    if m:
        w, h = int(m.group(1)), int(m.group(2))
        if w > 0 and h > 0:
            return Format.of_size(w, h, float(m.group(3) or 1.0))
    raise KnobError(f"unknown format {value!r}: use one of {', '.join(FORMATS)} or 'WIDTHxHEIGHT [aspect]'",
                    node=node, knob=knob)


def format_validator(value: str) -> str:
    """Pydantic validator for format knobs: accept only parseable formats.

    Raises ``ValueError`` (not ``KnobError``) so that pydantic reports it as a validation error
    with the knob's location, and the node then names itself and the knob in the ``KnobError``.
    """
    try:
        parse_format(value)
    except KnobError as err:
        raise ValueError(err.message) from None
    return value
