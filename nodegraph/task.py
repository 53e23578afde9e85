"""Side effects as one declared interface: the nodes that write files (Write), train a network
(CopyCat) or package a model (CatFileCreator) are *tasks*.

Pulling a frame through a graph never has a side effect; a task runs only when a driver asks for
it: :func:`nodegraph.render.render` runs the ``write`` tasks, :func:`nodegraph.ml.train.train`
and ``nodegraph train`` the ``train`` tasks, ``CatFileCreator.create()`` the ``create`` task. A
driver does not probe attributes of particular node classes; it asks each task for a
:class:`TaskPlan` (which frames it works on, whether they must run in order in one process, which
files it makes) and runs it through :meth:`Task.run_task`, receiving one :class:`TaskResult` per
frame (or one for a frame-independent task). A distributed driver (Dask) splits a task's frames
into independent jobs exactly when the plan says ``in_order`` is false.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum
from typing import TYPE_CHECKING, Any, Callable, ClassVar, Iterator, NamedTuple, Sequence

from .errors import NodeGraphError, shorten_lines

if TYPE_CHECKING:
    import torch

    from .evaluator import Evaluator


class TaskKind(str, Enum):
    """What a task does; each driver runs one kind and refuses the others."""

    WRITE = "write"    #: writes image or movie files for frames (render)
    TRAIN = "train"    #: trains a model from frames of its inputs (train)
    CREATE = "create"  #: makes a file that depends on no frame (e.g. packages a model)

    def __str__(self) -> str:
        return self.value


@dataclass(frozen=True)
class TaskPlan:
    """What a task will do for the frames asked of it, declared before it runs.

    ``frames``: the frames it works on (a lazy ``range`` for long ranges; empty for a
    frame-independent task). ``in_order``: the frames must run in this order in one process (a
    movie is encoded frame after frame, training steps follow each other); otherwise each frame is
    an independent job any worker may run. ``outputs``: the files the whole task makes when they do
    not depend on the frame (a movie, a model); per-frame files come from :meth:`Task.frame_output`.
    """

    node: str
    kind: TaskKind
    frames: Sequence[int]
    in_order: bool
    outputs: tuple[str, ...] = ()


class TaskResult(NamedTuple):
    """The outcome of a task for one frame (``frame`` is None for a frame-independent task):
    the file written, or the error that stopped it; ``detail`` carries a richer result when the
    task has one (the :class:`~nodegraph.ml.train.TrainResult` of a training run)."""

    node: str
    frame: int | None
    path: str | None
    error: str | None
    detail: Any = None


@dataclass
class TaskRun:
    """How a driver runs a task: the evaluator that pulls its frames, the device and precision of
    the pull, and the options of the task's kind (training: ``epochs``, ``steps``, ``resume``,
    ``compile``, ``on_event``, ...)."""

    evaluator: "Evaluator"
    device: "torch.device | str | None" = None
    dtype: "torch.dtype | None" = None
    options: dict[str, Any] = field(default_factory=dict)


class Task:
    """Mixin for nodes with a side effect; subclasses set :attr:`task_kind` and implement
    :meth:`task_plan` and :meth:`run_task`."""

    task_kind: ClassVar[TaskKind]

    def task_plan(self, frames: Sequence[int] | None = None) -> TaskPlan:
        """The plan for ``frames`` (None: the task's own frames, e.g. its input's range)."""
        raise NotImplementedError

    def frame_output(self, frame: int) -> str | None:
        """The file this task makes for ``frame`` on its own (``--skip-existing`` looks for it);
        None when the task's files do not map to single frames."""
        return None

    def run_task(self, run: TaskRun, frames: Sequence[int]) -> Iterator[TaskResult]:
        """Do the side effect for ``frames`` (a subset of the plan's frames when it is not
        ``in_order``); yields one result per frame, or one for a frame-independent task. A
        failure of one frame is a result with an error, not an exception, unless the whole task
        cannot go on."""
        raise NotImplementedError


def is_task(node: Any, kind: TaskKind | str | None = None) -> bool:
    """Whether ``node`` is a task (of ``kind``, when given)."""
    if not isinstance(node, Task):
        return False
    return kind is None or node.task_kind == TaskKind(kind)


def attempt(node: str, frame: int | None, work: Callable[[], str | None]) -> TaskResult:
    """Run one unit of a task (``work`` returns the path it wrote), turning a failure into a result
    that names node and frame: one bad frame must not lose the rest of a render."""
    try:
        return TaskResult(node, frame, work(), None)
    except Exception as err:  # a library failing on one frame (decoder, codec) must not stop the others
        return failed(node, frame, err)


def failed(node: str, frame: int | None, err: Exception) -> TaskResult:
    """The result of a unit of work that raised ``err``, its message naming node and frame."""
    if isinstance(err, NodeGraphError):
        return TaskResult(node, frame, None, str(err.with_context(node=node, frame=frame)))
    where = f"node {node!r}" + ("" if frame is None else f", frame {frame}")
    return TaskResult(node, frame, None, shorten_lines(f"{where}: {type(err).__name__}: {err}"))


def run_one(node: Task, run: TaskRun, frames: Sequence[int] | None = None) -> list[TaskResult]:
    """Plan and run one task over ``frames`` (None: its own), in order, in this process."""
    plan = node.task_plan(frames)
    return list(node.run_task(run, plan.frames))


__all__ = ["Task", "attempt", "failed", "TaskKind", "TaskPlan", "TaskResult", "TaskRun", "is_task", "run_one"]
