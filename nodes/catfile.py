"""CatFileCreator: package a TorchScript module as a ``.cat`` model file (as Nuke's node of the name)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Iterator, Sequence

from pydantic import AfterValidator, BeforeValidator, Field

from nodegraph.errors import GraphError, NodeGraphError
from nodegraph.evaluator import Context
from nodegraph.image import Image
from nodegraph.node import Input, Knobs, Node
from nodegraph.task import Task, TaskKind, TaskPlan, TaskResult, TaskRun

from ._common import ChannelsKnob


def _spec_list(value):
    if isinstance(value, str):  # one spec, or several separated by newlines or semicolons
        return [s.strip() for s in value.replace(";", "\n").splitlines() if s.strip()]
    return value


def _specs_validator(value: list[str]) -> list[str]:
    from nodegraph.ml.modelfile import check_knobs
    from nodegraph.ml.torchscript import parse_knob_spec

    check_knobs(parse_knob_spec(s) for s in value)  # ValueError names the spec
    return [s.strip() for s in value]


#: Custom knob specs ``NAME[:TYPE[=DEFAULT][:EXTRA]]`` (see :mod:`nodegraph.ml.torchscript`).
KnobSpecs = Annotated[list[str], BeforeValidator(_spec_list), AfterValidator(_specs_validator)]


class CatFileCreator(Task, Node):
    """Packages a TorchScript module (.pt) as a .cat model file for the Inference node.

    Making the file is a side effect and runs only when asked for: ``node.create()`` (or
    ``nodegraph cat create``). The optional `input` is passed through unchanged so the node can
    sit in a tree; pulled with nothing connected it raises a clear error (it makes no image). The
    file holds TorchScript, which runs code: an Inference node loads it only after an explicit
    opt-in (:mod:`nodegraph.ml.trust`); creating it does not grant one.
    """

    category = "ML"
    task_kind = TaskKind.CREATE
    inputs = (Input("input", required=False, doc="Passed through unchanged (optional)."),)

    class Knobs(Knobs):
        torchScriptFile: str = ""
        """The TorchScript module to package (torch.jit.script/trace(...).save)."""
        catFile: str = ""
        """The .cat file to write; empty: torchScriptFile with the suffix .cat."""
        channelsIn: ChannelsKnob = "rgba.red,rgba.green,rgba.blue"
        """Channels the module takes, in order (Nuke names, comma-separated; rgba/rgb expand)."""
        channelsOut: ChannelsKnob = "rgba.red,rgba.green,rgba.blue"
        """Channels the module outputs, in order."""
        modelId: str = ""
        """The model's id (empty: the TorchScript file's name without suffix)."""
        outputScale: Annotated[int, Field(ge=1)] = 1
        """Output size / input size (1 for same-size models, 2 for a 2x upscaler)."""
        knobs: KnobSpecs = []
        """Custom knobs, one spec each: NAME[:TYPE[=DEFAULT][:EXTRA]], e.g. despill_strength:float=0:0..10,
        gamma_input:enum=sRGB,Linear; each must be an attribute of the module."""

    def passthrough(self, ctx: Context) -> str | None:
        return "input" if ctx.has_input("input") else None

    def compute(self, ctx: Context) -> Image:
        if not ctx.has_input("input"):
            raise GraphError("CatFileCreator makes a .cat file with create() and produces no image; "
                             "connect its input to pass an image through", node=self.name)
        return ctx.input("input")

    # --- the task ---------------------------------------------------------------------------
    def cat_path(self) -> Path:
        """The file :meth:`create` writes."""
        k = self.knobs
        if not k.torchScriptFile:
            raise NodeGraphError("torchScriptFile is empty", node=self.name, knob="torchScriptFile")
        return Path(k.catFile) if k.catFile else Path(k.torchScriptFile).with_suffix(".cat")

    def task_plan(self, frames: Sequence[int] | None = None) -> TaskPlan:
        """One .cat file, whatever the frames: a frame-independent task."""
        return TaskPlan(self.path, self.task_kind, (), in_order=True, outputs=(str(self.cat_path()),))

    def run_task(self, run: TaskRun, frames: Sequence[int]) -> Iterator[TaskResult]:
        """Write the .cat file (``run.options``: ``verify``, default True)."""
        yield TaskResult(self.path, None, str(self.create(verify=run.options.get("verify", True))), None)

    def create(self, *, verify: bool = True) -> Path:
        """Write the .cat file from the knobs; returns its path."""
        from nodegraph.ml.torchscript import create_cat_from_torchscript

        k = self.knobs
        target = self.cat_path()  # names an empty torchScriptFile
        try:
            return create_cat_from_torchscript(
                k.torchScriptFile, target, channels_in=k.channelsIn, channels_out=k.channelsOut,
                model_id=k.modelId or Path(k.torchScriptFile).stem, output_scale=k.outputScale, knobs=k.knobs,
                verify=verify)
        except NodeGraphError as err:
            raise err.with_context(node=self.name) from None


__all__ = ["CatFileCreator"]
