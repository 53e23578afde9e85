"""The transfer curve between linear (HDR) pixel values and what the network sees.

Linear plates hold values far above 1 (speculars, light sources) and below 0 (grain, negative
lobes of resampling filters). An L1 loss on linear values is dominated by the brightest pixels,
so the network sees, predicts and is scored on ``encode(x) = sign(x) * log1p(|x|)``:

- defined on the whole real line, odd, monotonic and smooth (slope 1 at 0, so values in [0, 1]
  are barely changed: log1p(1) = 0.69), logarithmic for large magnitudes like the eye's
  response (a PU-style curve without a display-referred clamp);
- never clamps: ``decode(encode(x)) == x`` up to float rounding, for negatives, huge values,
  +-inf and NaN alike.

Round-trip precision: ``encode`` rounds its result to the tensor's dtype, and ``decode`` turns an
absolute error ``e`` of its argument ``y`` into a relative error of about ``e``; so a float32
round trip is exact to a relative ``(1 + |y|) * eps`` (``|y| <= 89`` for any finite float32),
i.e. a few eps for ordinary image values. (Within a rounding of float32's largest finite value,
about 3.4e38, the decoded value can overflow to inf; subnormals may flush to zero.)
"""

from __future__ import annotations

from typing import Callable

import torch

NAME = "slog1p"


def encode(x: torch.Tensor) -> torch.Tensor:
    """Linear values to the network's domain: ``sign(x) * log1p(|x|)``."""
    return torch.copysign(torch.log1p(x.abs()), x)


def decode(y: torch.Tensor) -> torch.Tensor:
    """The exact inverse of :func:`encode`: ``sign(y) * expm1(|y|)``."""
    return torch.copysign(torch.expm1(y.abs()), y)


def identity(x: torch.Tensor) -> torch.Tensor:
    return x


TRANSFERS: dict[str, tuple[Callable[[torch.Tensor], torch.Tensor], Callable[[torch.Tensor], torch.Tensor]]] = {
    NAME: (encode, decode),
    "linear": (identity, identity),
}


def get(name: str) -> tuple[Callable[[torch.Tensor], torch.Tensor], Callable[[torch.Tensor], torch.Tensor]]:
    """``(encode, decode)`` for a transfer name as stored in model files."""
    try:
        return TRANSFERS[name]
    except KeyError:
        raise ValueError(f"unknown transfer {name!r}; known: {sorted(TRANSFERS)}") from None
