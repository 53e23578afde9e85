"""Inference: apply a model file (a CopyCat network or a packaged TorchScript model) to images."""

from __future__ import annotations

import json
from typing import Annotated, Any

import torch
from pydantic import BeforeValidator, Field

from nodegraph.errors import ChannelError, KnobError, NodeGraphError
from nodegraph.evaluator import Context
from nodegraph.image import Box, Format, Image
from nodegraph.node import Input, Knobs, Node


def _knob_values_validator(value: Any) -> Any:
    if isinstance(value, str):  # a JSON object given as text (command line, Nuke-style knob strings)
        text = value.strip() or "{}"
        try:
            value = json.loads(text)
        except ValueError as exc:
            raise ValueError(f"knobValues is not a JSON object: {exc}") from None
    if not isinstance(value, dict):
        raise ValueError(f"knobValues must be a JSON object {{knob name: value}}, not {value!r}")
    return value


#: Custom knob values of the model, ``{"despill_strength": 2.5, "gamma_input": "Linear"}``.
KnobValuesKnob = Annotated[dict[str, Any], BeforeValidator(_knob_values_validator)]


class Inference(Node):
    """Applies the model in `modelFile` to `input`: CopyCat's ``.cat`` files or packaged TorchScript.

    The input must carry the model's channels-in. The output carries its channels-out at the
    input's size times the model's output scale (data window and format scaled); at scale 1 the
    input's other channels pass through. Custom knob values (``knobValues``) are checked against
    the model's knobs when it is loaded and set as attributes of the module before each forward,
    as Nuke does. Frames larger than ``tileSize`` run as overlapping, seamlessly blended tiles;
    out of GPU memory the tiles shrink, then the CPU takes over with a warning. Models are loaded
    once per process and kept on their device. A TorchScript model runs code, so it loads only after
    an explicit opt-in (``--allow-torchscript``, ``NODEGRAPH_ALLOW_TORCHSCRIPT=1``, a trusted folder
    in ``NODEGRAPH_TRUSTED_MODEL_DIRS``; see :mod:`nodegraph.ml.trust`); nothing in a graph can opt in.
    """

    category = "ML"
    inputs = (Input("input", doc="The images to process (e.g. the plate)."),)

    class Knobs(Knobs):
        modelFile: str = ""
        """The model file (.cat) to apply, e.g. CopyCat's NAME.cat."""
        useGPUIfAvailable: bool = True
        """Run on the render's GPU when it has one; off: always on the CPU."""
        halfPrecision: bool = False
        """Run in half precision on the GPU (float16 for TorchScript, bfloat16 for CopyCat networks); float32 on the CPU."""
        tileSize: Annotated[int, Field(ge=0)] = 0
        """Side of the square tiles large frames are cut into; 0: automatic (from free GPU memory; large on the CPU)."""
        tileOverlap: Annotated[int, Field(ge=0)] = 32
        """Overlap of neighbouring tiles in pixels; results are seamless when the model's receptive-field radius is at most a quarter of it."""
        compile: bool = False
        """CUDA only: torch.compile the network once per process and tile shape (the first frame pays
        tens of seconds; long renders run faster). Ignored on the CPU and for TorchScript models."""
        knobValues: KnobValuesKnob = Field(default_factory=dict)
        """The model's custom knob values as a JSON object {knob name: value}; unset knobs take the model's defaults."""

    # --- hashing ------------------------------------------------------------------------
    def hash_extra(self, ctx: Context) -> bytes:
        from nodegraph.ml.infer import file_signature

        return file_signature(self.knobs.modelFile) if self.knobs.modelFile else b""

    # --- evaluation ---------------------------------------------------------------------
    def _device(self, ctx: Context) -> torch.device:
        dev = torch.device(ctx.device)
        return dev if self.knobs.useGPUIfAvailable else torch.device("cpu")

    def settings(self, ctx: Context):
        from nodegraph.ml.infer import InferenceSettings

        return InferenceSettings(device=self._device(ctx), half=self.knobs.halfPrecision,
                                 tile=self.knobs.tileSize, overlap=self.knobs.tileOverlap,
                                 knob_values=dict(self.knobs.knobValues), name=self.name,
                                 compile=self.knobs.compile)

    batchable = True

    def compute(self, ctx: Context) -> Image:
        return self.compute_batch([ctx])[0]

    def compute_batch(self, ctxs: list[Context]) -> list[Image]:
        """Frames of equal size run through the model together (tiles of all of them batched)."""
        prepared = [self._prepare(ctx) for ctx in ctxs]
        outputs: list[Image | None] = [None] * len(ctxs)
        groups: dict[tuple, list[int]] = {}
        for i, (img, _model, _settings) in enumerate(prepared):
            key = (tuple(img.bbox), img.device, str(prepared[i][2]))
            groups.setdefault(key, []).append(i)
        from nodegraph.ml import infer

        for idx in groups.values():
            img, model, settings = prepared[idx[0]]
            if img.bbox.empty:
                for i in idx:
                    outputs[i] = self._finish(prepared[i][0], model,
                                              torch.zeros(len(model.channels_out), 0, 0))
                continue
            x = torch.stack([prepared[i][0].select(model.channels_in).pixels for i in idx])
            y = infer.infer_frames(self.knobs.modelFile, x, settings)
            for j, i in enumerate(idx):
                outputs[i] = self._finish(prepared[i][0], model, y[j])
        return outputs  # type: ignore[return-value]

    def _prepare(self, ctx: Context):
        from nodegraph.ml import infer

        if not self.knobs.modelFile:
            raise KnobError("modelFile is empty: set it to a model file (.cat)", node=self.name, knob="modelFile")
        img = ctx.input("input")
        settings = self.settings(ctx)
        try:
            model = infer.model_cache.get(self.knobs.modelFile, settings.device, settings.half)
        except NodeGraphError as err:
            raise err.with_context(node=self.name, knob="modelFile", frame=ctx.frame, path=self.knobs.modelFile)
        cin = model.channels_in
        missing = [c for c in cin if c not in img.channels]
        if missing:
            raise ChannelError(f"the model needs channels {', '.join(cin)}; the input lacks {', '.join(missing)} "
                               f"(it has {', '.join(img.channels) or 'no channels'}); add a Shuffle before Inference",
                               node=self.name, frame=ctx.frame, path=self.knobs.modelFile)
        infer.validate_knob_values(model, settings.knob_values, node=self.name)
        return img, model, settings

    def _finish(self, img: Image, model, y: torch.Tensor) -> Image:
        from nodegraph.ml import infer

        cout = model.channels_out
        scale = infer.output_scale(model)
        if img.bbox.empty:
            y = torch.zeros(len(cout), img.bbox.height * scale, img.bbox.width * scale)
        pixels = y.to(img.device, img.dtype)
        if scale == 1:
            out = img
            for name, plane in zip(cout, pixels):
                out = out.with_channel(name, plane)
            return out
        b, d = img.bbox, img.format.display
        fmt = Format(Box(d.x0 * scale, d.y0 * scale, d.x1 * scale, d.y1 * scale), img.format.pixel_aspect)
        return Image(pixels, tuple(cout), Box(b.x0 * scale, b.y0 * scale, b.x1 * scale, b.y1 * scale), fmt,
                     dict(img.metadata))


__all__ = ["Inference"]
