"""RemoteInference: apply a model that an ML server runs (``nodegraph serve`` on a GPU machine)."""

from __future__ import annotations

import math
import os
import types
from typing import Annotated

import torch
from pydantic import Field

from nodegraph.errors import ChannelError, KnobError, NodeGraphError
from nodegraph.evaluator import Context
from nodegraph.image import Image
from nodegraph.node import Input, Knobs, Node

from .inference import Inference, KnobValuesKnob

#: Tile origins and sizes are multiples of this, so a network's pyramid grid lines up with the
#: untiled run (nodegraph networks pad to 2^(scales+1): 16 for the default 3 scales, 64 for 5).
TILE_ALIGN = 64
#: Bytes a request carries besides its pixels (model name, options), kept free under the limit.
_MESSAGE_OVERHEAD = 64 * 1024


class RemoteInference(Node):
    """Sends `input` to a model on an ML server and returns its result, as Inference would locally.

    For farm nodes without a GPU: one machine runs ``nodegraph serve --models DIR`` and renders
    elsewhere point this node at it. The server speaks Foundry's ML-Server protocol, so this node
    also talks to Foundry's own server. The input must carry the model's channels-in; the output
    carries its channels-out (at scale 1 the input's other channels pass through). Frames whose
    pixels would not fit ``maxMessageBytes`` are sent as overlapping tiles, blended seamlessly as
    Inference blends its tiles. The hash covers the knobs only: a model retrained on the server
    under the same name is not noticed by the cache.
    """

    category = "ML"
    inputs = (Input("input", doc="The images to process (e.g. the plate)."),)

    class Knobs(Knobs):
        host: str = "127.0.0.1"
        """Address of the machine running the ML server (`nodegraph serve`)."""
        port: Annotated[int, Field(ge=1, le=65535)] = 55555
        """TCP port of the ML server (55555 is ML-Server's default)."""
        model: str = ""
        """Name of the model on the server, as `nodegraph serve` lists it (the .cat file's name without .cat)."""
        token: str = ""
        """The server's shared token, if it was started with --token; empty: $NODEGRAPH_SERVE_TOKEN if set (keeps it out of saved graphs)."""
        knobValues: KnobValuesKnob = Field(default_factory=dict)
        """The model's custom knob values as a JSON object {knob name: value}; unset knobs take the model's defaults."""
        timeout: Annotated[float, Field(gt=0)] = 600.0
        """Seconds to wait for the server's answer to one request before failing the frame."""
        maxMessageBytes: Annotated[int, Field(ge=1 << 20)] = 64 << 20
        """Largest request sent: frames whose pixels need more are sent as tiles (float32: 4 bytes per pixel and channel)."""
        tileOverlap: Annotated[int, Field(ge=0)] = 32
        """Overlap of neighbouring tiles in pixels when a frame is tiled (see Inference's tileOverlap)."""

    def compute(self, ctx: Context) -> Image:
        from nodegraph.serve import client
        from nodegraph.serve.protocol import spec_channels

        k = self.knobs
        if not k.model:
            raise KnobError("model is empty: set it to the name of a model the server lists", node=self.name,
                            knob="model")
        img = ctx.input("input")
        try:
            served = client.find_model(k.host, k.port, k.model, timeout=k.timeout)
            if len(served.inputs) != 1 or len(served.outputs) < 1:
                raise NodeGraphError(f"model {k.model!r} takes {len(served.inputs)} images; RemoteInference "
                                     "sends one")
            cin, cout = spec_channels(served.inputs[0]), spec_channels(served.outputs[0])
            try:
                token = k.token or os.environ.get("NODEGRAPH_SERVE_TOKEN", "")
                request = client.request_model(served, dict(k.knobValues), token)
            except KeyError as err:
                raise KnobError(f"model {k.model!r} has no option {err.args[0]!r}", node=self.name,
                                knob=f"knobValues.{err.args[0]}") from None
            except ValueError as err:
                raise KnobError(str(err), node=self.name, knob="knobValues") from None
            missing = [c for c in cin if c not in img.channels]
            if missing:
                raise ChannelError(f"the model needs channels {', '.join(cin)}; the input lacks "
                                   f"{', '.join(missing)}; add a Shuffle before RemoteInference")
            if img.bbox.empty:
                return _assemble(img, cout, 1, torch.zeros(len(cout), 0, 0))
            x = img.select(cin).pixels.to("cpu", torch.float32)
            y, scale = self._run(client, request, x, len(cout))
        except NodeGraphError as err:
            raise err.with_context(node=self.name, frame=ctx.frame)
        return _assemble(img, cout, scale, y.to(img.device, img.dtype))

    def _run(self, client, request, x: torch.Tensor, cout: int) -> tuple[torch.Tensor, int]:
        """The model's output for ``x`` ``[C, H, W]`` and its scale: one request, or tiles of at
        most ``maxMessageBytes`` (for the input and for the output) blended as Inference does."""
        from nodegraph.ml.infer import run_tiled

        k = self.knobs
        c, h, w = x.shape
        budget = max(1, k.maxMessageBytes - _MESSAGE_OVERHEAD) // 4
        call = lambda t: client.infer(k.host, k.port, request, t, timeout=k.timeout)  # noqa: E731
        if c * h * w <= budget and cout * h * w <= budget:
            y = call(x)
            return y, _scale(y, h, w)
        probe = call(torch.zeros(c, TILE_ALIGN, TILE_ALIGN))  # the scale, before cutting the tiles
        scale = _scale(probe, TILE_ALIGN, TILE_ALIGN)
        side = int(math.sqrt(budget / max(c, cout * scale * scale))) // TILE_ALIGN * TILE_ALIGN
        if side < 2 * k.tileOverlap + TILE_ALIGN:
            raise KnobError(f"maxMessageBytes {k.maxMessageBytes:,} leaves tiles of {side} pixels, less than "
                            f"twice tileOverlap plus {TILE_ALIGN}: raise it or lower tileOverlap",
                            node=self.name, knob="maxMessageBytes")
        fn = lambda batch: torch.stack([call(t) for t in batch])  # noqa: E731
        y = run_tiled(fn, x[None], tile=side, overlap=k.tileOverlap, scale=scale, align=TILE_ALIGN)
        return y[0], scale


def _scale(y: torch.Tensor, h: int, w: int) -> int:
    """The integer factor from an input of ``h x w`` to ``y``'s size (ProtocolError if there is none)."""
    from nodegraph.serve.protocol import ProtocolError

    sy, sx = y.shape[-2] / h, y.shape[-1] / w
    if sy != sx or sy < 1 or sy != int(sy):
        raise ProtocolError(f"the server answered a {w}x{h} image with {y.shape[-1]}x{y.shape[-2]}, not a whole "
                            "multiple of it")
    return int(sy)


def _assemble(img: Image, cout: tuple[str, ...], scale: int, y: torch.Tensor) -> Image:
    """The output image, built as the Inference node builds its own: ``y``'s channels replace or
    join the input's at scale 1; at another scale an image of ``y`` alone over the scaled windows."""
    model = types.SimpleNamespace(channels_out=list(cout), meta={"output_scale": scale})
    return Inference._finish(None, img, model, y)  # type: ignore[arg-type]  # it reads model, not self


__all__ = ["RemoteInference"]
