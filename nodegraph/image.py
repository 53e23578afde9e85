"""The image model: a tensor over a data window, a format, channel names and metadata.

Coordinates follow OpenEXR: integer pixel coordinates, x to the right, y *down*, row 0 of the
tensor is the top row of the data window. Boxes are half-open ``[x0, x1) x [y0, y1)``. Nodes
whose Nuke knobs are y-up (Crop, Transform) convert with the format height.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Iterable, NamedTuple

import torch

from . import channels as chans
from .errors import ChannelError, NodeGraphError


class Box(NamedTuple):
    """Half-open pixel box ``[x0, x1) x [y0, y1)`` in y-down pixel coordinates."""

    x0: int
    y0: int
    x1: int
    y1: int

    @property
    def width(self) -> int:
        return max(0, self.x1 - self.x0)

    @property
    def height(self) -> int:
        return max(0, self.y1 - self.y0)

    @property
    def empty(self) -> bool:
        return self.width == 0 or self.height == 0

    def union(self, other: "Box") -> "Box":
        if self.empty:
            return other
        if other.empty:
            return self
        return Box(min(self.x0, other.x0), min(self.y0, other.y0), max(self.x1, other.x1), max(self.y1, other.y1))

    def intersect(self, other: "Box") -> "Box":
        b = Box(max(self.x0, other.x0), max(self.y0, other.y0), min(self.x1, other.x1), min(self.y1, other.y1))
        return b if not b.empty else Box(b.x0, b.y0, b.x0, b.y0)

    @classmethod
    def from_inclusive(cls, xmin: int, ymin: int, xmax: int, ymax: int) -> "Box":
        """From OpenEXR's inclusive ``(min, max)`` window."""
        return cls(int(xmin), int(ymin), int(xmax) + 1, int(ymax) + 1)

    def inclusive(self) -> tuple[int, int, int, int]:
        return (self.x0, self.y0, self.x1 - 1, self.y1 - 1)


@dataclass(frozen=True)
class Format:
    """The display window and pixel aspect ratio; ``name`` is Nuke's format name if known."""

    display: Box
    pixel_aspect: float = 1.0
    name: str | None = None

    @classmethod
    def of_size(cls, width: int, height: int, pixel_aspect: float = 1.0, name: str | None = None) -> "Format":
        return cls(Box(0, 0, int(width), int(height)), float(pixel_aspect), name)

    @property
    def width(self) -> int:
        return self.display.width

    @property
    def height(self) -> int:
        return self.display.height


@dataclass(eq=False)
class Image:
    """Pixels ``[C, H, W]`` over ``bbox`` (the data window), in ``format``, named ``channels``.

    Tensors stay on their device. float32 by default; half is kept when a caller asks for it.
    Images are treated as immutable: operations return new images and may share tensors.
    """

    pixels: torch.Tensor
    channels: tuple[str, ...]
    bbox: Box
    format: Format
    metadata: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.channels = tuple(self.channels)
        self.bbox = Box(*self.bbox)
        if self.pixels.ndim != 3:
            raise NodeGraphError(f"image pixels must be [C, H, W], got shape {tuple(self.pixels.shape)}")
        c, h, w = self.pixels.shape
        if c != len(self.channels):
            raise NodeGraphError(f"image has {c} planes but {len(self.channels)} channel names")
        if len(set(self.channels)) != len(self.channels):
            raise ChannelError(f"duplicate channel names in {self.channels}")
        if (h, w) != (self.bbox.height, self.bbox.width):
            raise NodeGraphError(f"pixels {w}x{h} do not match data window {tuple(self.bbox)}")

    # --- construction -------------------------------------------------------------------
    @classmethod
    def blank(
        cls,
        fmt: Format,
        channels: Iterable[str] = chans.RGBA,
        bbox: Box | None = None,
        *,
        device: torch.device | str | None = None,
        dtype: torch.dtype = torch.float32,
        value: float = 0.0,
    ) -> "Image":
        box = fmt.display if bbox is None else Box(*bbox)
        names = tuple(channels)
        pixels = torch.full((len(names), box.height, box.width), float(value), device=device, dtype=dtype)
        return cls(pixels, names, box, fmt)

    # --- properties ---------------------------------------------------------------------
    @property
    def device(self) -> torch.device:
        return self.pixels.device

    @property
    def dtype(self) -> torch.dtype:
        return self.pixels.dtype

    @property
    def nbytes(self) -> int:
        return self.pixels.numel() * self.pixels.element_size()

    def layers(self) -> list[str]:
        return chans.layers(self.channels)

    def has(self, name: str) -> bool:
        return name in self.channels

    def index(self, name: str) -> int:
        try:
            return self.channels.index(name)
        except ValueError:
            raise ChannelError(
                f"channel {name!r} not present; image has {', '.join(self.channels) or 'no channels'}"
            ) from None

    def channel(self, name: str) -> torch.Tensor:
        """The ``[H, W]`` plane of one channel."""
        return self.pixels[self.index(name)]

    # --- derivation ---------------------------------------------------------------------
    def replace(self, **changes: Any) -> "Image":
        """A new image with some fields changed; shares everything else (tensors included)."""
        pixels = changes.get("pixels", self.pixels)
        if (len(changes) == 1 and "pixels" in changes and pixels.ndim == 3
                and pixels.shape == self.pixels.shape):
            # hot path of every pixel-only node: nothing structural changed, skip re-validation
            out = object.__new__(Image)
            out.__dict__.update(self.__dict__)
            out.pixels = pixels
            return out
        values = dict(pixels=pixels, channels=self.channels, bbox=self.bbox, format=self.format,
                      metadata=self.metadata)
        values.update(changes)
        return Image(**values)

    def select(self, names: Iterable[str], *, missing: str = "error") -> "Image":
        """An image of just ``names`` in that order; ``missing="black"`` fills absent ones with 0."""
        names = tuple(names)
        if names == self.channels:
            return self
        if missing == "black":
            planes = [self.pixels[self.channels.index(n)] if n in self.channels
                      else torch.zeros(self.pixels.shape[1:], device=self.device, dtype=self.dtype) for n in names]
            pixels = torch.stack(planes) if planes else self.pixels[:0]
        else:
            idx = [self.index(n) for n in names]
            pixels = self.pixels[idx] if idx != list(range(len(self.channels))) else self.pixels
        return self.replace(pixels=pixels, channels=names)

    def with_channel(self, name: str, plane: torch.Tensor) -> "Image":
        """Set (or append) one channel plane ``[H, W]``."""
        plane = plane.to(device=self.device, dtype=self.dtype)
        if name in self.channels:
            pixels = self.pixels.clone()
            pixels[self.channels.index(name)] = plane
            return self.replace(pixels=pixels)
        return self.replace(pixels=torch.cat([self.pixels, plane[None]]), channels=self.channels + (name,))

    def to(self, device: torch.device | str | None = None, dtype: torch.dtype | None = None) -> "Image":
        pixels = self.pixels.to(device=device if device is not None else self.device,
                                dtype=dtype if dtype is not None else self.dtype)
        return self if pixels is self.pixels else self.replace(pixels=pixels)

    def crop_to(self, box: Box) -> "Image":
        """Re-window to ``box``: pixels outside the old data window become 0, outside ``box`` are cut."""
        box = Box(*box)
        if box == self.bbox:
            return self
        out = torch.zeros((len(self.channels), box.height, box.width), device=self.device, dtype=self.dtype)
        inter = self.bbox.intersect(box)
        if not inter.empty:
            out[:, inter.y0 - box.y0:inter.y1 - box.y0, inter.x0 - box.x0:inter.x1 - box.x0] = \
                self.pixels[:, inter.y0 - self.bbox.y0:inter.y1 - self.bbox.y0,
                            inter.x0 - self.bbox.x0:inter.x1 - self.bbox.x0]
        return self.replace(pixels=out, bbox=box)

    def __repr__(self) -> str:
        return (f"Image({len(self.channels)}ch {', '.join(self.channels)}; bbox={tuple(self.bbox)}; "
                f"format={self.format.width}x{self.format.height}; {str(self.dtype).replace('torch.', '')} "
                f"on {self.device})")
