"""Machine-learning nodes: CopyCat (train a network on a few frame pairs of a shot)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Iterator, Literal, Sequence

from pydantic import AfterValidator, Field

from nodegraph.errors import NodeGraphError
from nodegraph.evaluator import Context
from nodegraph.frames import Frame
from nodegraph.image import Image
from nodegraph.node import Input, Knobs, Node
from nodegraph.task import Task, TaskKind, TaskPlan, TaskResult, TaskRun

from ._common import ChannelsKnob


def _frames_validator(value: str) -> str:
    value = value.strip()
    if value:
        from nodegraph.io.sequence import parse_frame_range

        try:
            parse_frame_range(value)
        except NodeGraphError as err:  # pydantic only turns ValueError into a located knob error
            raise ValueError(err.message) from None
    return value


#: A frame list: ``1001-1010``, ``1,5,9``, ``1-100x10``; empty for the default.
FramesKnob = Annotated[str, AfterValidator(_frames_validator)]


class CopyCat(Task, Node):
    """Trains a network to turn `input` into `groundTruth` from a few frame pairs of a shot.

    Training is a side effect and runs only when asked for (``nodegraph train GRAPH --node
    NAME`` or ``nodegraph.ml.train.train(graph, NAME)``); evaluating the node passes `input`
    through unchanged. The data directory receives ``NAME.<step>.cat`` checkpoints, ``NAME.cat``
    (the model the Inference node loads), ``NAME.ost`` (to resume), ``NAME.summary`` and
    ``NAME.loss.png``, TensorBoard logs, contact sheets and previews; with held-out frames
    (``validationFrames``, or a preview frame that has ground truth) also held-out PSNR/IoU over
    time, ``NAME.best.cat`` and, with ``earlyStop``, an early stop when they stop improving
    (:mod:`nodegraph.ml.heldout`). A loss that becomes NaN or
    infinite stops training (``TrainingDiverged``) with the last good checkpoint and resume file
    kept; resume from them at a lower learning rate (``--resume --learning-rate LR``).
    """

    category = "ML"
    task_kind = TaskKind.TRAIN
    inputs = (
        Input("input", doc="The source images (e.g. the plate)."),
        Input("groundTruth", doc="What the network should turn the input into, on the same frames."),
        Input("preview", required=False, doc="A frame outside the data set to show the network's result on."),
    )

    class Knobs(Knobs):
        dataDirectory: str = ""
        """Folder for checkpoints, the model, the resume file, the summary, graphs and contact sheets."""
        epochs: Annotated[int, Field(ge=1)] = 10000
        """Passes over the data set: Total Steps = epochs x (data set size) / (batch size)."""
        modelSize: Literal["small", "medium", "large"] = "medium"
        """Network size: small (fastest), medium (about 7M weights), large (most capacity)."""
        batchSizeType: Literal["auto", "manual"] = "auto"
        """auto: from free GPU memory (a small fixed value on the CPU); manual: batchSize."""
        batchSize: Annotated[int, Field(ge=1)] = 4
        """Crops per step when batchSizeType is manual; at most the data set size."""
        cropSize: Annotated[int, Field(ge=8)] = 256
        """Side of the square random crops the network trains on, in pixels."""
        checkpointInterval: Annotated[int, Field(ge=1)] = 1000
        """Steps between checkpoints (NAME.<step>.cat, the resume file, preview and loss graph)."""
        imageInterval: Annotated[int, Field(ge=0)] = 100
        """Steps between contact sheets (contactsheet.<step>.png); 0 for none."""
        initialWeights: Literal["none", "checkpoint"] = "none"
        """Start from random weights, or from the model in checkpointFile."""
        checkpointFile: str = ""
        """A .cat file to start from when initialWeights is 'checkpoint'."""
        useGPUIfAvailable: bool = True
        """Train on the GPU when one is available (a device given to train() or the CLI wins)."""
        frames: FramesKnob = ""
        """Frames of the data set (e.g. 1001,1010,1020-1022); empty: every frame where both inputs exist."""
        channelsIn: ChannelsKnob = "rgb"
        """Channels of `input` the network sees (rgb, rgba, a layer, or a comma list)."""
        channelsOut: ChannelsKnob = "rgb"
        """Channels of `groundTruth` the network predicts (e.g. alpha for a matte)."""
        learningRate: Annotated[float, Field(gt=0)] = 1e-3
        """Peak learning rate of AdamW (after a short warm-up)."""
        lrSchedule: Literal["cosine", "step", "constant"] = "cosine"
        """Learning-rate decay over the run: cosine, step (halves every quarter) or constant."""
        seed: int = 0
        """Random seed for the initial weights and the crop sampling."""
        previewFrame: Frame | None = None
        """Frame of the `preview` input to show; empty: the first frame of its range."""
        validationFrames: FramesKnob = ""
        """Held-out frames of `input`/`groundTruth` (never trained on) scored during training (PSNR, IoU
        for mattes) in the summary, the loss graph and TensorBoard; empty: the preview frame when
        `groundTruth` has it."""
        validationInterval: Annotated[int, Field(ge=0)] = 0
        """Steps between held-out scores; 0: at every checkpoint."""
        earlyStop: bool = False
        """Stop when held-out PSNR has not improved for earlyStopPatience scores; NAME.cat is then the best."""
        earlyStopPatience: Annotated[int, Field(ge=1)] = 5
        """Held-out scores in a row without a new best before an early stop."""
        earlyStopMinDelta: Annotated[float, Field(ge=0)] = 0.05
        """Improvement in dB of held-out PSNR that counts as a new best."""

    def passthrough(self, ctx: Context) -> str | None:
        return "input"

    def compute(self, ctx: Context) -> Image:
        return ctx.input("input")

    # --- the task ---------------------------------------------------------------------------
    def task_plan(self, frames: Sequence[int] | None = None) -> TaskPlan:
        """The data set's frames (``frames``, or the knob's, or every frame both inputs have);
        training steps follow each other, so the task runs whole, in one process."""
        from nodegraph.ml.train import training_frames

        self._in_graph()
        frames = list(frames) if frames is not None else training_frames(self.graph, self)
        model = Path(self.knobs.dataDirectory).expanduser() / f"{self.name}.cat"
        return TaskPlan(self.path, self.task_kind, frames, in_order=True, outputs=(str(model),))

    def run_task(self, run: TaskRun, frames: Sequence[int]) -> Iterator[TaskResult]:
        """Train on ``frames``; ``run.options`` are :func:`~nodegraph.ml.train.train`'s (epochs,
        steps, resume, compile, on_event, ...). Yields one result holding the TrainResult; a
        training failure raises (a run is not a set of independent frames)."""
        from nodegraph.ml.train import train

        self._in_graph()
        result = train(self.graph, self, frames=list(frames), device=run.device, **run.options)
        yield TaskResult(self.path, None, str(result.model_path), None, result)

    def train(self, **options: Any):
        """Train this node (see :func:`nodegraph.ml.train.train` for the options)."""
        from nodegraph.ml.train import train

        self._in_graph()
        return train(self.graph, self, **options)

    def _in_graph(self) -> None:
        if self.graph is None:
            raise NodeGraphError("the node is not part of a graph", node=self.name)


__all__ = ["CopyCat"]
