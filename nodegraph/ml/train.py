"""CopyCat training: pull the data set, train the network on random crops, write everything to disk.

``train(graph, "CopyCat1", steps=..., device=...)`` checks every setting before the first step
(errors name node, knob and frames), shows the plan (data set size, batch size, Total Steps =
Epochs x data set size / batch size), then trains. In the node's ``dataDirectory`` it writes, all
atomically: ``<name>.<step>.cat`` every ``checkpointInterval`` steps and ``<name>.cat`` at the
end (:mod:`nodegraph.ml.modelfile`), ``<name>.ost`` (resume state, :mod:`nodegraph.ml.state`),
``<name>.summary``, ``<name>.loss.png``, ``tensorboard/``, ``contactsheet.<step>.png`` every
``imageInterval`` steps and ``preview.<step>.png`` at checkpoints when ``preview`` is connected
(:mod:`nodegraph.ml.report`). A checkpoint's model file, resume file and loss graph are written
on a background thread from a snapshot of that step (:class:`CheckpointWriter`) while training goes
on; the end, Ctrl-C and a divergence wait for it. With held-out frames (``validationFrames``, or a preview frame that
has ground truth) it scores them every ``validationInterval`` steps (held-out PSNR, and IoU for
mattes, in the summary, the loss graph and TensorBoard), writes ``<name>.best.cat`` at each new best
and, with ``earlyStop``, stops when they stop improving, ``<name>.cat`` then holding the best
weights (:mod:`nodegraph.ml.heldout`).

Ctrl-C (KeyboardInterrupt) or SIGTERM stops after writing a checkpoint and the resume file, then
raises :class:`TrainingInterrupted` carrying the result. ``resume=True`` continues from
``<name>.ost`` to the same total step count; the summary keeps its lines up to the saved step;
``learning_rate`` replaces the run's peak learning rate (on a resume too).

A loss or gradient norm that stops being finite (a diverging run) stops training with
:class:`TrainingDiverged`, naming the step, the last good checkpoint and how to resume at a lower
learning rate; nothing is written after the divergence, so the last checkpoint and ``<name>.ost``
stay the good ones. The check costs no extra host sync on the GPU: a device-side flag gathers
every step's state and is read where the loop syncs anyway (summary lines, checkpoints, the end).

On CUDA: bf16 autocast, channels_last, fused AdamW, cuDNN autotuning (every step has the same
shapes), the network's level 0 in space-to-depth form with weights tied to the saved network
(:func:`nodegraph.ml.network.space_to_depth`; same function, wide convs), crops sampled and
augmented on the GPU (:meth:`DataSet.sample`), and no host sync inside a step (the loss is summed
on the device and read at summary lines). ``compile=True`` compiles forward and loss as one graph
(``torch.compile``, mode :data:`COMPILE_MODE`; inductor's caches make a second run of the same
shape start quickly), a string picks another mode. The learning rate follows a short linear
warm-up, then the node's ``lrSchedule`` (cosine by default).
"""

from __future__ import annotations

import math
import signal
import threading
import time
import uuid
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterator

import torch

from nodegraph.atomic import atomic_copy
from nodegraph.errors import KnobError, NodeGraphError
from nodegraph.task import TaskKind, is_task

from .dataset import DataSet, build_dataset, default_frames
from .state import StateFileError, check_training_state, load_state, save_state

if TYPE_CHECKING:  # pragma: no cover
    from nodegraph.graph import Graph
    from nodegraph.node import Node

EventHandler = Callable[[str, dict], None]

#: Batch size of automatic batching on the CPU (the GPU measures what fits).
CPU_AUTO_BATCH = 4
#: Largest automatic batch on the GPU; beyond it throughput barely grows.
GPU_MAX_AUTO_BATCH = 32
#: Share of free GPU memory automatic batching may plan to use.
GPU_MEMORY_SHARE = 0.5
#: torch.compile mode of ``compile=True`` (None: PyTorch's default).
COMPILE_MODE: str | None = None
#: Gradient norm clip (stabilises the first steps of residual networks at high learning rates).
GRAD_CLIP = 1.0
#: Largest decay of the weights' moving average (see :class:`WeightAverage`); 0 saves the raw weights.
EMA_DECAY = 0.999


class TrainingError(NodeGraphError):
    """Training cannot start or continue (bad settings, unusable resume file)."""


class TrainingDiverged(TrainingError):
    """The loss (or the gradient norm) became NaN or infinite; ``step`` is where it was noticed,
    ``checkpoint`` the last good ``.cat`` (None if none was written), ``state_path`` the ``.ost``
    to resume from (None if none was written)."""

    def __init__(self, message: str, *, node: str, step: int, checkpoint: Path | None,
                 state_path: Path | None) -> None:
        super().__init__(message, node=node)
        self.step = step
        self.checkpoint = checkpoint
        self.state_path = state_path


class TrainingInterrupted(KeyboardInterrupt):
    """Ctrl-C or SIGTERM stopped training after a checkpoint and the resume file were written."""

    def __init__(self, result: "TrainResult") -> None:
        super().__init__(f"training stopped at step {result.step} of {result.total_steps}; "
                         f"resume with --resume")
        self.result = result


@dataclass
class TrainResult:
    """What a training run did and where its files are."""

    node: str
    step: int
    total_steps: int
    final_loss: float | None
    first_loss: float | None
    data_directory: Path
    model_path: Path | None  # <name>.cat, None when interrupted
    state_path: Path
    summary_path: Path
    loss_graph_path: Path
    tensorboard_dir: Path
    checkpoints: list[Path] = field(default_factory=list)
    contact_sheets: list[Path] = field(default_factory=list)
    previews: list[Path] = field(default_factory=list)
    interrupted: bool = False
    #: held-out scores over the run (step, elapsed_s, psnr, l1, iou for mattes); empty without held-out frames
    heldout: list[dict[str, float]] = field(default_factory=list)
    best_step: int | None = None  # step of the best held-out PSNR
    best_path: Path | None = None  # <name>.best.cat
    stopped_early: bool = False
    resumed_from: int | None = None
    seconds: float = 0.0
    batch_size: int = 0
    dataset_size: int = 0
    device: str = "cpu"


@dataclass
class Plan:
    """The resolved settings of a run (shown before training starts)."""

    node: str
    device: torch.device
    frames: list[int]
    batch_size: int
    crop_size: int
    total_steps: int
    start_step: int
    epochs: float
    learning_rate: float
    schedule: str
    parameters: int = 0
    dataset_on: str = "cpu"

    def as_dict(self) -> dict[str, Any]:
        return {"node": self.node, "device": str(self.device), "frames": list(self.frames),
                "dataset_size": len(self.frames), "batch_size": self.batch_size, "crop_size": self.crop_size,
                "total_steps": self.total_steps, "start_step": self.start_step, "epochs": self.epochs,
                "learning_rate": self.learning_rate, "schedule": self.schedule, "parameters": self.parameters,
                "dataset_on": self.dataset_on}


def lr_at(step: int, total: int, base: float, schedule: str) -> float:
    """Learning rate for (0-based) ``step``: linear warm-up over 5% of the run (at least 20 steps,
    at most 200, at most half the run), then cosine to 2% of ``base``, halving every quarter
    (``step``), or constant."""
    warm = max(1, min(200, max(20, total // 20), total // 2))
    if step < warm:
        return base * (step + 1) / warm
    t = min(1.0, (step - warm) / max(1, total - warm))
    if schedule == "cosine":
        return base * (0.02 + 0.98 * 0.5 * (1 + math.cos(math.pi * t)))
    if schedule == "step":
        return base * 0.5 ** min(3, int(4 * t))
    return base


def total_steps_for(epochs: float, dataset_size: int, batch: int) -> int:
    """Nuke's rule: Total Steps = Epochs x (data set size) / (batch size), at least 1."""
    return max(1, int(math.ceil(epochs * dataset_size / batch)))


# --- helpers -------------------------------------------------------------------------------------
class CheckpointWriter:
    """Writes checkpoints on one background thread while training goes on.

    The training thread takes a snapshot (host copies of every tensor: the moment of the checkpoint
    is exact) and hands the writing (model file, resume file, loss graph; each atomic as before) to
    the thread. At most one write is in flight: the next checkpoint first waits for it, which bounds
    the host memory to one snapshot. What follows a finished write (the ``checkpoint`` event, the
    path in the result, the last good checkpoint of a divergence message) happens on the training
    thread, at the first step after it (:meth:`poll`), or at :meth:`wait`; a write's error (a full
    disk) is raised there, on the training thread. Measured on an H200 with checkpoints every 100
    steps, writing in line cost 12% of the training wall time (``checkpoint_overhead_s`` of
    ``benchmarks/copycat_quality.py``)."""

    def __init__(self) -> None:
        from concurrent.futures import ThreadPoolExecutor

        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="copycat-checkpoint")
        self._pending: tuple[Any, Callable[[], None]] | None = None

    def submit(self, job: Callable[[], None], on_done: Callable[[], None]) -> None:
        self.wait()
        self._pending = (self._pool.submit(job), on_done)

    def poll(self) -> None:
        """Finish a write that is done (cheap when none is)."""
        if self._pending is not None and self._pending[0].done():
            self.wait()

    def wait(self) -> None:
        """Block until the write in flight is on disk; raise its error."""
        if self._pending is None:
            return
        future, on_done = self._pending
        try:
            future.result()
        finally:
            if future.done():  # not when Ctrl-C interrupted the wait: it is still pending
                self._pending = None
        on_done()

    def close(self, *, raise_errors: bool = True) -> None:
        """Wait for the write in flight (its error raised only with ``raise_errors``) and stop the thread."""
        try:
            self.wait()
        except Exception:
            if raise_errors:
                raise
        finally:
            self._pool.shutdown(wait=True)


def _host_copy(value: Any) -> Any:
    """``value`` with every tensor copied to host memory (a copy even of host tensors, which
    training goes on changing in place)."""
    if isinstance(value, torch.Tensor):
        return value.detach().to("cpu", copy=True)
    if isinstance(value, dict):
        return {k: _host_copy(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(_host_copy(v) for v in value)
    return value


class WeightAverage:
    """An exponential moving average of the network's weights, updated after every step with decay
    ``min(EMA_DECAY, (1 + step) / (10 + step))``: early on it averages about the last ninth of the run
    (so it does not lag behind a network that is still learning fast), later the last ~1/(1 - decay)
    steps. Model files, previews, contact sheets and held-out scores use the average: at a fixed
    learning rate the raw weights jitter around a minimum from step to step (on the real roto shot
    the held-out PSNR of consecutive checkpoints 100 steps apart differed by up to 4.8 dB), and the
    average of the recent weights sits nearer its centre (Polyak averaging). One fused multi-tensor
    lerp per step; no host sync."""

    def __init__(self, model: torch.nn.Module, decay: float = EMA_DECAY) -> None:
        import copy

        self.decay = float(decay)
        self.module = copy.deepcopy(model).requires_grad_(False)
        self._mine = list(self.module.parameters())
        self._source = list(model.parameters())

    def weight(self, step: int) -> float:
        """The share of the current weights taken after ``step`` steps (1: a copy)."""
        return 1.0 - min(self.decay, (1 + step) / (10 + step))

    @torch.no_grad()
    def update(self, step: int) -> None:
        torch._foreach_lerp_(self._mine, self._source, self.weight(step))

    def state_dict(self) -> dict[str, torch.Tensor]:
        return dict(self.module.state_dict())

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        self.module.load_state_dict(state)


@contextmanager
def _sigterm_as_interrupt() -> Iterator[None]:
    """SIGTERM (a farm killing the job politely) raises KeyboardInterrupt, like Ctrl-C."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt

    old = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, old)


def _resolve_device(node: "Node", device: str | torch.device | None) -> torch.device:
    from nodegraph.evaluator import resolve_device

    if device is None:
        return torch.device("cuda" if node.knobs.useGPUIfAvailable and torch.cuda.is_available() else "cpu")
    return resolve_device(device)


def _auto_batch(model: torch.nn.Module, cin: int, crop: int, dev: torch.device, dataset_size: int) -> int:
    """Automatic batch size: a small fixed value on the CPU; on the GPU, measured from one
    forward/backward of two crops and a conservative share of free memory."""
    if dev.type != "cuda":
        return max(1, min(CPU_AUTO_BATCH, dataset_size))
    torch.cuda.synchronize(dev)
    torch.cuda.empty_cache()
    free, _ = torch.cuda.mem_get_info(dev)
    base = torch.cuda.memory_allocated(dev)
    torch.cuda.reset_peak_memory_stats(dev)
    x = torch.zeros(2, cin, crop, crop, device=dev).contiguous(memory_format=torch.channels_last)
    with torch.autocast("cuda", dtype=torch.bfloat16):
        out = model.forward_scales(x)
    sum(o.float().mean() for o in out).backward()
    model.zero_grad(set_to_none=True)
    per_crop = max(1, (torch.cuda.max_memory_allocated(dev) - base) / 2)
    del x, out
    torch.cuda.empty_cache()
    return int(max(1, min(GPU_MAX_AUTO_BATCH, GPU_MEMORY_SHARE * free // per_crop)))


def _rng_state(gen: torch.Generator, dev: torch.device) -> dict[str, Any]:
    state = {"torch": torch.get_rng_state(), "sampler": gen.get_state()}
    if dev.type == "cuda":
        state["cuda"] = torch.cuda.get_rng_state(dev)
    return state


def _set_rng_state(state: dict[str, Any], gen: torch.Generator, dev: torch.device) -> None:
    torch.set_rng_state(state["torch"].to("cpu", torch.uint8))
    _set_sampler_state(gen, state["sampler"].to("cpu", torch.uint8))
    if dev.type == "cuda" and "cuda" in state:
        torch.cuda.set_rng_state(state["cuda"].to("cpu", torch.uint8), dev)


#: Size of a CUDA (Philox) generator's state: seed and offset.
_PHILOX_STATE_BYTES = 16


def _set_sampler_state(gen: torch.Generator, saved: torch.Tensor) -> None:
    """Restore the crop sampler's generator. The sampler draws on the data set's device, so a run
    resumed where the data set sits on another kind of device (a CPU run resumed on the GPU, a
    resume file from before sampling moved to the GPU) gets a state of the other kind: the
    generator is then seeded from it, deterministically (the same resume file, the same crops)."""
    cpu_bytes = torch.Generator().get_state().numel()
    if gen.device.type != "cpu" and saved.numel() == cpu_bytes:
        source = torch.Generator()
        source.set_state(saved)
        gen.manual_seed(int(torch.randint(0, 2 ** 62, (1,), generator=source)))
    elif gen.device.type == "cpu" and saved.numel() == _PHILOX_STATE_BYTES:
        gen.manual_seed(int.from_bytes(bytes(saved.tolist()), "little") % 2 ** 62)
    else:
        gen.set_state(saved)


def training_frames(graph: "Graph", node: "Node") -> list[int]:
    """The data set's frames: the node's ``frames`` knob, or every frame where both inputs exist."""
    from nodegraph.io.sequence import parse_frame_range

    spec = node.knobs.frames.strip()
    if not spec:
        return default_frames(graph, node)
    try:
        return parse_frame_range(spec)
    except NodeGraphError as err:
        raise KnobError(err.message, node=node.name, knob="frames") from None


# --- the trainer ---------------------------------------------------------------------------------
class Trainer:
    """One training run of a CopyCat node; :meth:`prepare` checks and plans, :meth:`run` trains."""

    def __init__(self, graph: "Graph", node: "Node | str", *, epochs: float | None = None,
                 steps: int | None = None, device: str | torch.device | None = None, resume: bool = False,
                 compile: bool | str = False, log_every: int = 10, on_event: EventHandler | None = None,
                 network: dict[str, Any] | None = None, learning_rate: float | None = None,
                 frames: list[int] | None = None, dist: Any = None, space_to_depth: bool | None = None) -> None:
        if epochs is not None and steps is not None:
            raise TrainingError("give epochs or steps, not both")
        if learning_rate is not None and not (isinstance(learning_rate, (int, float))
                                              and math.isfinite(learning_rate) and learning_rate > 0):
            raise TrainingError(f"learning rate must be a finite number > 0, not {learning_rate!r}")
        self.learning_rate = None if learning_rate is None else float(learning_rate)
        self.graph = graph
        self.node = graph.node(node)
        if not is_task(self.node, TaskKind.TRAIN):
            raise TrainingError(f"{self.node.type_name} is not a node that trains (CopyCat)", node=self.node.name)
        if frames is not None and not frames:
            raise TrainingError("no frames to train on", node=self.node.name)
        self.frames = frames
        self.epochs = epochs
        self.steps = steps
        self.device_arg = device
        self.resume = resume
        #: False, True (PyTorch's default mode, see :data:`COMPILE_MODE`) or a torch.compile mode
        self.compile = compile
        #: train level 0 in space-to-depth form (:func:`nodegraph.ml.network.space_to_depth`, tied
        #: weights): None = on CUDA
        self.space_to_depth = space_to_depth
        self.log_every = max(1, int(log_every))
        self.on_event = on_event or (lambda kind, info: None)
        self.name = self.node.name
        self.plan: Plan | None = None
        self.network_options = dict(network or {})
        #: one rank of a data-parallel run (:class:`nodegraph.ml.distributed.Group`), or None;
        #: only the main rank writes files
        self.dist = dist
        self.writes = dist is None or dist.is_main
        self.ema: WeightAverage | None = None

    def emit(self, kind: str, **info: Any) -> None:
        self.on_event(kind, info)

    # --- paths -------------------------------------------------------------------------------
    def path(self, suffix: str) -> Path:
        return self.dir / f"{self.name}{suffix}"

    # --- checks and plan -----------------------------------------------------------------------
    def prepare(self) -> Plan:
        """Check every setting and pull the data set; raises before any file is written."""
        from .network import NetworkConfig, build_network, count_parameters

        node, k, graph = self.node, self.node.knobs, self.graph
        if not k.dataDirectory.strip():
            raise KnobError("dataDirectory is empty: set the folder for checkpoints, the model and graphs",
                            node=self.name, knob="dataDirectory")
        self.dir = Path(k.dataDirectory).expanduser()
        if self.dir.exists() and not self.dir.is_dir():
            raise KnobError(f"dataDirectory {str(self.dir)!r} exists and is not a folder", node=self.name,
                            knob="dataDirectory", path=str(self.dir))
        connected = graph.inputs_of(node)
        missing = [n for n in ("input", "groundTruth") if n not in connected]
        if missing:
            raise TrainingError(f"input(s) {', '.join(repr(m) for m in missing)} not connected; CopyCat needs "
                                "'input' and 'groundTruth'", node=self.name)
        graph.check([node])
        dev = _resolve_device(node, self.device_arg)
        self.dev = dev

        state = None
        if self.resume:
            ost = self.path(".ost")
            if not ost.is_file():
                raise TrainingError(f"nothing to resume: {str(ost)!r} does not exist (train without --resume "
                                    "to start)", node=self.name)
            state = check_training_state(load_state(ost, device="cpu"), ost)
        self.state = state

        frames = list(self.frames) if self.frames is not None else training_frames(graph, node)
        ds = build_dataset(graph, node, frames, channels_in=k.channelsIn, channels_out=k.channelsOut,
                           device=dev, keep_on=torch.device("cpu"))
        if state is not None:
            self._check_same_dataset(ds, state["dataset"])
        crop = int(k.cropSize)
        if crop > min(ds.width, ds.height):
            raise KnobError(f"cropSize {crop} is larger than the images ({ds.width}x{ds.height}); use at most "
                            f"{min(ds.width, ds.height)}", node=self.name, knob="cropSize")
        if k.batchSizeType == "manual" and k.batchSize > ds.size:
            raise KnobError(f"batchSize {k.batchSize} is larger than the data set ({ds.size} frame(s): "
                            f"{', '.join(map(str, ds.frames))}); use at most {ds.size} or batchSizeType auto",
                            node=self.name, knob="batchSize")
        self.preview = self._pull_preview(ds)
        self.monitor = self._make_monitor(ds)

        # the network: fresh, from initial weights, or from the resume file
        if state is not None:
            try:
                config = NetworkConfig.from_dict(state["config"])
            except (TypeError, ValueError) as err:
                raise StateFileError(f"key 'config' is not a valid network: {err}", path=str(self.path(".ost"))) \
                    from None
        else:
            try:
                config = NetworkConfig(len(ds.channels_in), len(ds.channels_out),
                                       **{"size": k.modelSize, **self.network_options})
            except (TypeError, ValueError) as err:
                raise TrainingError(f"bad network options {self.network_options}: {err}", node=self.name) from None
        torch.manual_seed(int(k.seed))
        model = build_network(config)
        if state is None and k.initialWeights == "checkpoint":
            model, config = self._initial_weights(config)
        if state is not None:
            try:
                model.load_state_dict(state["model"])
            except (RuntimeError, TypeError) as err:
                raise StateFileError(f"key 'model' does not fit the network: {str(err)[:300]}",
                                     path=str(self.path(".ost"))) from None
        self.config = config
        self.model = model.to(dev)
        if dev.type == "cuda":
            self.model = self.model.to(memory_format=torch.channels_last)

        # keep the data set on the GPU when it takes a small share of free memory
        keep_on = torch.device("cpu")
        if dev.type == "cuda":
            free, _ = torch.cuda.mem_get_info(dev)
            if ds.nbytes < 0.25 * free:
                keep_on = dev
        self.ds = ds.to(keep_on)
        self.ds.build_importance(crop)

        if state is not None:
            batch = int(state["batch_size"])
        elif k.batchSizeType == "manual":
            batch = int(k.batchSize)
        else:
            batch = _auto_batch(self.model, len(ds.channels_in), crop, dev, ds.size)
        start = int(state["step"]) if state is not None else 0
        if self.steps is not None:
            total = int(self.steps)
            epochs = total * batch / ds.size
        elif self.epochs is not None:
            epochs = float(self.epochs)
            total = total_steps_for(epochs, ds.size, batch)
        elif state is not None:
            total = int(state["total_steps"])
            epochs = total * batch / ds.size
        else:
            epochs = float(k.epochs)
            total = total_steps_for(epochs, ds.size, batch)
        if total < 1:
            raise TrainingError("the run needs at least one step", node=self.name)
        if self.learning_rate is not None:
            lr = self.learning_rate
        else:
            lr = float(state["learning_rate"]) if state is not None else float(k.learningRate)
        self.plan = Plan(self.name, dev, list(ds.frames), batch, crop, total, start, epochs, lr,
                         state["schedule"] if state is not None else k.lrSchedule,
                         count_parameters(self.model), str(keep_on))
        self._make_optimizer(state)
        self.ema = None
        if self.writes and EMA_DECAY > 0:  # only the rank that writes files keeps the average
            self.ema = WeightAverage(self.model)
            if state is not None and state.get("ema") is not None:  # older resume files have none
                try:
                    self.ema.load_state_dict(state["ema"])
                except (RuntimeError, TypeError, AttributeError) as err:
                    raise StateFileError(f"key 'ema' does not fit the network: {str(err)[:300]}",
                                         path=str(self.path(".ost"))) from None
        return self.plan

    def _make_optimizer(self, state: dict[str, Any] | None) -> None:
        """The optimizer and the crop sampler, restored from the resume state (checked: a resume
        file whose optimizer or random state does not fit is a :class:`StateFileError`)."""
        k, dev, model = self.node.knobs, self.dev, self.model
        self.opt = torch.optim.AdamW(model.parameters(), lr=self.plan.learning_rate, betas=(0.9, 0.99),
                                     weight_decay=1e-4, **({"fused": True} if dev.type == "cuda" else {}))
        # crops are drawn where the data set is (on the GPU: no host round trip per step)
        self.gen = torch.Generator(device=self.ds.x.device).manual_seed(int(k.seed))
        if state is None:
            return
        ost = str(self.path(".ost"))
        try:
            self.opt.load_state_dict(state["optimizer"])
            for group in self.opt.param_groups:
                for p in group["params"]:
                    saved = self.opt.state.get(p, {})
                    for name, value in list(saved.items()):
                        if isinstance(value, torch.Tensor) and value.dim() and value.shape != p.shape:
                            raise ValueError(f"{name} has shape {tuple(value.shape)}, the weight {tuple(p.shape)}")
                        if isinstance(value, torch.Tensor) and value.dim() and value.stride() != p.stride():
                            # the file holds contiguous tensors; fused AdamW wants the weights' layout
                            # (channels_last on CUDA)
                            saved[name] = torch.empty_like(p, dtype=value.dtype).copy_(value)
        except (KeyError, ValueError, TypeError, RuntimeError, IndexError) as err:
            raise StateFileError(f"key 'optimizer' does not fit the network: {str(err)[:300]}", path=ost) from None
        try:
            _set_rng_state(state["rng"], self.gen, dev)
        except (KeyError, ValueError, TypeError, RuntimeError) as err:
            raise StateFileError(f"key 'rng' is not a valid random state: {str(err)[:300]}", path=ost) from None

    def _check_same_dataset(self, ds: DataSet, saved: dict[str, Any]) -> None:
        now = ds.describe()
        for key in ("frames", "channels_in", "channels_out", "width", "height"):
            if now[key] != saved.get(key):
                raise TrainingError(f"the data set changed since the run started ({key}: was {saved.get(key)}, "
                                    f"now {now[key]}); train without --resume to start again", node=self.name)
        changed = [f for f, a, b in zip(now["frames"], now["hashes"], saved.get("hashes", [])) if a != b]
        if changed:
            self.emit("warning", message=f"the images of frame(s) {', '.join(map(str, changed))} changed since "
                                         "the run started; continuing on the new images")

    def _initial_weights(self, config: Any) -> tuple[torch.nn.Module, Any]:
        from .modelfile import KIND, ModelFileError, load_cat

        k = self.node.knobs
        path = k.checkpointFile.strip()
        if not path:
            raise KnobError("initialWeights is 'checkpoint' but checkpointFile is empty", node=self.name,
                            knob="checkpointFile")
        try:
            loaded = load_cat(path, device="cpu", kinds=(KIND,))  # never runs a TorchScript module
        except ModelFileError as err:
            raise KnobError(err.message, node=self.name, knob="checkpointFile", path=path) from None
        lc = loaded.config
        if (lc.in_channels, lc.out_channels) != (config.in_channels, config.out_channels):
            raise KnobError(f"checkpoint maps {lc.in_channels} -> {lc.out_channels} channels but the data set "
                            f"maps {config.in_channels} -> {config.out_channels}", node=self.name,
                            knob="checkpointFile", path=path)
        if lc.size != config.size:
            self.emit("warning", message=f"checkpoint is a {lc.size!r} network; modelSize {config.size!r} is "
                                         "ignored when starting from it")
        return loaded.module, lc

    def _make_monitor(self, ds: DataSet) -> Any:
        """The held-out frames' :class:`~nodegraph.ml.heldout.Monitor`, or None without any."""
        from .heldout import Monitor, build_heldout

        k = self.node.knobs
        held = build_heldout(self.graph, self.node, list(ds.frames), channels_in=k.channelsIn,
                             channels_out=k.channelsOut, device=self.dev, preview=self.preview,
                             preview_frame=self.preview_frame, warn=lambda m: self.emit("warning", message=m))
        if held is None:
            if k.earlyStop:
                raise KnobError("earlyStop needs held-out frames: set validationFrames (frames of input and "
                                "groundTruth not trained on) or connect a preview whose frame has ground truth",
                                node=self.name, knob="earlyStop")
            return None
        interval = int(k.validationInterval) or int(k.checkpointInterval)
        if self.dist is not None and interval != int(k.checkpointInterval):
            # the ranks' weights agree at checkpoints (sync points); score there only
            self.emit("warning", message=f"a data-parallel run scores held-out frames at checkpoints only (every "
                                         f"{k.checkpointInterval} steps), not every {interval}")
            interval = int(k.checkpointInterval)
        return Monitor(held, interval, bool(k.earlyStop), int(k.earlyStopPatience), float(k.earlyStopMinDelta))

    def _pull_preview(self, ds: DataSet) -> torch.Tensor | None:
        from .transfer import encode

        self.preview_frame = None
        src = self.graph.inputs_of(self.node).get("preview")
        if src is None:
            return None
        k = self.node.knobs
        frame = k.previewFrame
        if frame is None:
            rng = self.graph.frame_range(src)
            frame = rng[0] if rng is not None else ds.frames[0]
        img = self.graph.evaluate(src, frame, device=self.dev)
        missing = [c for c in ds.channels_in if c not in img.channels]
        if missing:
            raise KnobError(f"the preview input does not carry {', '.join(missing)} (channelsIn); it has "
                            f"{', '.join(img.channels)}", node=self.name, knob="channelsIn", frame=frame)
        img = img.select(ds.channels_in).crop_to(img.format.display)
        self.preview_frame = frame
        return encode(img.pixels.float()).to("cpu")

    # --- training ------------------------------------------------------------------------------
    def run(self) -> TrainResult:
        """Train to the planned step (preparing first if :meth:`prepare` was not called); see the
        module docstring."""
        if self.plan is None:
            self.prepare()
        cudnn = torch.backends.cudnn.benchmark
        if self.dev.type == "cuda":  # fixed shapes every step: let cuDNN time its algorithms once
            torch.backends.cudnn.benchmark = True
        try:
            return self._run()
        finally:
            torch.backends.cudnn.benchmark = cudnn

    def _loss_function(self, model: torch.nn.Module) -> tuple[Callable[..., torch.Tensor], bool]:
        """``loss(xb, yb)``: forward (bf16 autocast on CUDA) and the multi-scale L1 loss, compiled as
        one graph when asked; and whether it runs as CUDA graphs (then each step must be marked).
        On CUDA the forward runs in space-to-depth form with weights tied to ``model`` (data-parallel
        runs too: DDP then wraps the tied form)."""
        from .network import multiscale_l1, space_to_depth

        cuda = self.dev.type == "cuda"
        s2d = cuda if self.space_to_depth is None else bool(self.space_to_depth)
        net = space_to_depth(model, tied=True) if s2d else model
        if self.dist is not None:
            fwd = self.dist.wrap(net)  # the tied form's parameters are the network's own
        else:
            fwd = net.forward_scales
        pyramid = net.pyramid

        def loss(xb: torch.Tensor, yb: torch.Tensor) -> torch.Tensor:
            with torch.autocast("cuda", dtype=torch.bfloat16) if cuda else nullcontext():
                preds = fwd(xb)
            return multiscale_l1(preds, pyramid(yb))

        if not self.compile:
            return loss, False
        mode = COMPILE_MODE if self.compile is True else str(self.compile)
        graphs = cuda and mode in ("reduce-overhead", "max-autotune")
        return torch.compile(loss, mode=mode), graphs

    def _run(self) -> TrainResult:
        from .report import Board, Summary

        plan = self.plan  # run() prepared it
        dev, model = self.dev, self.model
        try:
            if self.writes:
                self.dir.mkdir(parents=True, exist_ok=True)
        except OSError as err:
            raise KnobError(f"cannot create dataDirectory: {err.strerror or err}", node=self.name,
                            knob="dataDirectory", path=str(self.dir)) from None
        state = self.state
        if state is not None:
            self.model_id = state["model_id"]
            elapsed0 = float(state["elapsed_s"])
        else:
            self.model_id = uuid.uuid4().hex
            elapsed0 = 0.0
        if not self.writes:
            summary, board = self.dist.quiet_reports()
        elif state is not None:
            summary = Summary.resume(self.path(".summary"), plan.start_step)
        else:
            summary = Summary(self.path(".summary"))
        if self.writes:
            board = Board(self.dir / "tensorboard", plan.start_step + 1)
        step_loss, graphs = self._loss_function(model)
        result = TrainResult(self.name, plan.start_step, plan.total_steps, None, None, self.dir, None,
                             self.path(".ost"), self.path(".summary"), self.path(".loss.png"),
                             self.dir / "tensorboard", resumed_from=plan.start_step if state else None,
                             batch_size=plan.batch_size, dataset_size=len(plan.frames), device=str(dev))
        self.emit("plan", **plan.as_dict())
        resumed_cat = self.path(f".{plan.start_step}.cat")
        last_good: list[Path | None] = [resumed_cat if state is not None and resumed_cat.is_file() else None]
        self._losses: list[float] = [r[1] for r in summary.rows]
        monitor = self.monitor
        if monitor is not None and state is not None:
            monitor.restore(state.get("heldout"), plan.start_step)
        writer = CheckpointWriter()
        try:
            return self._loop(plan, state, result, summary, board, step_loss, graphs, writer, monitor,
                              elapsed0, last_good)
        finally:
            writer.close(raise_errors=False)  # after an error: the write in flight still completes

    def _loop(self, plan: Plan, state: dict[str, Any] | None, result: TrainResult, summary: Any, board: Any,
              step_loss: Callable[..., torch.Tensor], graphs: bool, writer: CheckpointWriter, monitor: Any,
              elapsed0: float, last_good: list[Path | None]) -> TrainResult:
        k, dev, ds, model = self.node.knobs, self.dev, self.ds, self.model
        cuda = dev.type == "cuda"
        opt, gen = self.opt, self.gen
        t0 = time.perf_counter()
        step = plan.start_step
        # the loss summed on the device over the steps since the last summary line (read there)
        window = torch.zeros((), dtype=torch.float32, device=dev)
        window_n = 0
        # set on the device when a step's loss or gradient norm is not finite; read at sync points
        nonfinite = torch.zeros((), dtype=torch.bool, device=dev)
        t_last, step_last = t0, step

        def elapsed() -> float:
            return elapsed0 + time.perf_counter() - t0

        def check_finite() -> None:
            """Raise TrainingDiverged if any step since the start was not finite (one host sync)."""
            if not bool(nonfinite):
                return
            writer.wait()  # a checkpoint being written is a good one: name it
            summary.flush()
            board.close()
            raise self._diverged(step, last_good[0], plan, resumable=state is not None or bool(result.checkpoints))

        def save(*, background: bool = False) -> None:
            """A checkpoint: ``<name>.<step>.cat``, the resume file, the loss graph (and a preview);
            ``background``: written by ``writer`` while training goes on (from a snapshot taken now)."""
            check_finite()
            summary.flush()
            if not self.writes:
                return
            writer.wait()  # files are written in step order
            p = self.path(f".{step}.cat")
            if self.preview is not None:
                result.previews.append(self._write_preview(step, board))
            now = elapsed()
            cat = self._cat_snapshot(step, plan, now)
            snapshot = self._state_snapshot(opt, gen, plan, step, now)

            def write() -> None:
                self._write_cat(p, *cat)
                save_state(self.path(".ost"), snapshot)
                self._plot(summary)

            def done(at: int = step) -> None:
                result.checkpoints.append(p)
                last_good[0] = p
                self.emit("checkpoint", step=at, path=str(p))

            writer.submit(write, done)
            if not background:
                writer.wait()

        try:
            with _sigterm_as_interrupt():
                model.train()
                while step < plan.total_steps:
                    lr = lr_at(step, plan.total_steps, plan.learning_rate, plan.schedule)
                    for group in opt.param_groups:
                        group["lr"] = lr
                    xb, yb = ds.sample(plan.batch_size, plan.crop_size, gen)
                    if self.dist is not None:  # every rank draws the whole batch and keeps its share
                        xb, yb = self.dist.share(xb), self.dist.share(yb)
                    xb = xb.to(dev, non_blocking=True)
                    yb = yb.to(dev, non_blocking=True)
                    if cuda:
                        xb = xb.contiguous(memory_format=torch.channels_last)
                    if graphs:
                        torch.compiler.cudagraph_mark_step_begin()
                    loss = step_loss(xb, yb)
                    if self.dist is None:
                        opt.zero_grad(set_to_none=True)
                        loss.backward()
                        norm = torch.nn.utils.clip_grad_norm_(model.parameters(), GRAD_CLIP)
                        opt.step()
                    else:  # gradients exchanged (and the weights updated) at sync steps only
                        loss, norm = self.dist.backward_step(loss, opt, step, plan.total_steps,
                                                             int(k.checkpointInterval))
                    nonfinite.logical_or_(~torch.isfinite(loss.detach()) | ~torch.isfinite(norm))
                    step += 1
                    if self.ema is not None:
                        self.ema.update(step)
                    result.step = step
                    window += loss.detach()
                    window_n += 1
                    scored = monitor is not None and (monitor.due(step) or step == plan.total_steps)
                    if step % self.log_every == 0 or step == plan.total_steps or scored:
                        mean = window / window_n
                        mean = float(mean if self.dist is None else self.dist.batch_mean(mean))
                        window.zero_()
                        window_n = 0
                        check_finite()  # the stream is synced by the read above: the flag costs a copy
                        now = time.perf_counter()
                        per_step = (now - t_last) / max(1, step - step_last)
                        t_last, step_last = now, step
                        scores = self._score_heldout(step, plan, elapsed(), board) if scored else None
                        summary.add(step, mean, lr, elapsed(), per_step, scores)
                        board.scalars(step, mean, lr)
                        self._losses.append(mean)
                        rate = (step - plan.start_step) / max(1e-9, now - t0)
                        self.emit("log", step=step, total=plan.total_steps, loss=mean, lr=lr, steps_per_s=rate,
                                  eta_s=(plan.total_steps - step) / rate if rate > 0 else None)
                    if k.imageInterval and step % k.imageInterval == 0 and self.writes:
                        result.contact_sheets.append(self._contact_sheet(step, board))
                        summary.flush()
                        model.train()
                    if step % k.checkpointInterval == 0 and step < plan.total_steps:
                        save(background=True)
                        model.train()
                    else:
                        writer.poll()
                    self.emit("step", step=step, total=plan.total_steps)
                    if scored and self._stop_early(monitor):
                        result.stopped_early = True
                        break
        except KeyboardInterrupt:
            if bool(nonfinite):  # never save a diverged state, even when interrupted
                check_finite()
            if window_n:  # keep the partial window's loss in the curve
                mean = float(window / window_n)
                summary.add(step, mean, lr, elapsed(), (time.perf_counter() - t_last) / max(1, step - step_last))
                board.scalars(step, mean, lr)
                self._losses.append(mean)
            if step > plan.start_step:
                save()
            else:
                writer.wait()
            board.close()
            result.interrupted = True
            self._finish(result, t0)
            self.emit("interrupted", step=step, total=plan.total_steps)
            raise TrainingInterrupted(result) from None
        # the end: the model file, the resume file (a resume then has nothing left to do), graphs
        check_finite()
        writer.wait()
        summary.flush()
        if self.writes:
            if result.stopped_early and self.path(".best.cat").is_file():
                atomic_copy(self.path(".best.cat"), self.path(".cat"))  # the best weights, atomically
                self.emit("early_stop", step=step, best_step=monitor.best_step, best_psnr=monitor.best)
            else:
                self._save_cat(self.path(".cat"), step, plan, elapsed())
            result.model_path = self.path(".cat")
            if self.preview is not None and (not result.previews
                                             or result.previews[-1].name != f"preview.{step}.png"):
                result.previews.append(self._write_preview(step, board))
            self._save_state(opt, gen, plan, step, elapsed())
            self._plot(summary)
        board.close()
        self._finish(result, t0)
        self.emit("done", step=step, total=plan.total_steps, loss=result.final_loss, path=str(result.model_path))
        return result

    def _diverged(self, step: int, checkpoint: Path | None, plan: Plan, *, resumable: bool) -> TrainingDiverged:
        lower = f"{plan.learning_rate / 10:.3g}"
        ost = self.path(".ost")
        if resumable and ost.is_file():
            good = f"the last good checkpoint is {str(checkpoint)!r} with" if checkpoint else "the last good state is"
            how = (f"{good} the resume file {str(ost)!r}; continue "
                   f"from it at a lower learning rate with `nodegraph train GRAPH --node {self.name} --resume "
                   f"--learning-rate {lower}` (Python: train(..., resume=True, learning_rate={lower}))")
            state_path = ost
        else:
            how = (f"no checkpoint was written before it; train again with a lower learningRate "
                   f"(e.g. --learning-rate {lower}) or a smaller checkpointInterval")
            checkpoint = state_path = None
        return TrainingDiverged(f"training diverged: the loss became NaN or infinite by step {step} (learning "
                                f"rate {plan.learning_rate:g}); nothing was written after the divergence; {how}",
                                node=self.name, step=step, checkpoint=checkpoint, state_path=state_path)

    def _finish(self, result: TrainResult, t0: float) -> None:
        result.seconds = time.perf_counter() - t0
        if self.monitor is not None:
            result.heldout = list(self.monitor.history)
            result.best_step = self.monitor.best_step
            best = self.path(".best.cat")
            result.best_path = best if self.writes and best.is_file() else None
        if self._losses:
            result.first_loss = self._losses[0]
            result.final_loss = self._losses[-1]

    # --- outputs -------------------------------------------------------------------------------
    def _training_info(self, step: int, plan: Plan, elapsed: float) -> dict[str, Any]:
        return {"node": self.name, "step": step, "total_steps": plan.total_steps,
                "loss": self._losses[-1] if self._losses else None, "frames": list(plan.frames),
                "batch_size": plan.batch_size, "crop_size": plan.crop_size, "learning_rate": plan.learning_rate,
                "schedule": plan.schedule, "epochs": plan.epochs, "elapsed_s": round(elapsed, 3),
                "device": str(plan.device)}

    def _save_cat(self, path: Path, step: int, plan: Plan, elapsed: float) -> None:
        self._write_cat(path, *self._cat_snapshot(step, plan, elapsed))

    def _cat_snapshot(self, step: int, plan: Plan, elapsed: float) -> tuple[torch.nn.Module, dict[str, Any]]:
        """The served network as a host copy (built on the meta device, then given copies of the
        weights: no initialisation is paid for) and the model file's training record."""
        from .network import build_network

        with torch.device("meta"):
            copy = build_network(self.config)
        served = getattr(self._served(), "_orig_mod", self._served())
        copy.load_state_dict(_host_copy(dict(served.state_dict())), assign=True)
        return copy, self._training_info(step, plan, elapsed)

    def _write_cat(self, path: Path, module: torch.nn.Module, training: dict[str, Any]) -> None:
        from .modelfile import save_cat

        save_cat(path, module, config=self.config, channels_in=tuple(self.ds.channels_in),
                 channels_out=tuple(self.ds.channels_out), model_id=self.model_id, training=training)

    def _save_state(self, opt: torch.optim.Optimizer, gen: torch.Generator, plan: Plan, step: int,
                    elapsed: float) -> None:
        save_state(self.path(".ost"), self._state_snapshot(opt, gen, plan, step, elapsed))

    def _state_snapshot(self, opt: torch.optim.Optimizer, gen: torch.Generator, plan: Plan, step: int,
                        elapsed: float) -> dict[str, Any]:
        """Everything a resume needs, every tensor copied to host memory."""
        model = getattr(self.model, "_orig_mod", self.model)
        return _host_copy({
            "node": self.name, "model_id": self.model_id, "step": step, "total_steps": plan.total_steps,
            "batch_size": plan.batch_size, "crop_size": plan.crop_size, "learning_rate": plan.learning_rate,
            "schedule": plan.schedule, "elapsed_s": elapsed, "config": self.config.to_dict(),
            "dataset": self.ds.describe(), "model": dict(model.state_dict()), "optimizer": opt.state_dict(),
            "rng": _rng_state(gen, self.dev),
            "heldout": self.monitor.state() if self.monitor is not None else None,
            "ema": self.ema.state_dict() if self.ema is not None else None,
        })

    def _served(self) -> torch.nn.Module:
        """The weights that model files, previews and held-out scores use: the moving average."""
        return self.ema.module if self.ema is not None else self.model

    def _plot(self, summary: Any) -> None:
        from .report import plot_loss

        plot_loss(summary.path, self.path(".loss.png"), title=f"{self.name} loss")

    def _score_heldout(self, step: int, plan: Plan, elapsed: float, board: Any) -> dict[str, float] | None:
        """Score the held-out frames (main rank only), record them, keep a new best as ``.best.cat``."""
        if not self.writes:
            return None
        monitor = self.monitor
        scores = monitor.heldout.score(self._predict)
        self.model.train()
        if monitor.record(step, elapsed, scores):
            self._save_cat(self.path(".best.cat"), step, plan, elapsed)
        board.heldout(step, scores)
        self.emit("heldout", step=step, best_step=monitor.best_step, best_psnr=monitor.best, **scores)
        return scores

    def _stop_early(self, monitor: Any) -> bool:
        """Whether to stop now; every rank of a data-parallel run takes the main rank's decision."""
        stop = monitor.should_stop
        return stop if self.dist is None else self.dist.agree_flag(stop)

    @torch.no_grad()
    def _predict(self, x: torch.Tensor) -> torch.Tensor:
        model = self._served()
        model.eval()
        x = x.to(self.dev)
        if self.dev.type == "cuda":
            x = x.contiguous(memory_format=torch.channels_last)
            with torch.autocast("cuda", dtype=torch.bfloat16):
                return model(x).float()
        return model(x).float()

    def _contact_sheet(self, step: int, board: Any) -> Path:
        """Three random crops (their own generator, so the training stream is untouched)."""
        from .report import contact_sheet, to_display, write_png
        from .transfer import decode

        gen = torch.Generator().manual_seed(int(self.node.knobs.seed) * 1_000_003 + step)
        xb, yb = self.ds.sample(3, self.plan.crop_size, gen, augment=False)
        out = self._predict(xb)
        rows = [[to_display(decode(xb[i].float())), to_display(decode(yb[i].float())),
                 to_display(decode(out[i]))] for i in range(xb.shape[0])]
        sheet = contact_sheet(rows)
        path = self.dir / f"contactsheet.{step}.png"
        write_png(path, sheet)
        board.image("contactsheet", sheet, step)
        self.emit("image", step=step, path=str(path))
        return path

    def _write_preview(self, step: int, board: Any) -> Path:
        from .report import to_display, write_png
        from .transfer import decode

        out = self._predict(self.preview[None])[0]
        rgb = to_display(decode(out))
        path = self.dir / f"preview.{step}.png"
        write_png(path, rgb)
        board.image("preview", rgb, step)
        return path


def train(graph: "Graph", node: "Node | str", *, epochs: float | None = None, steps: int | None = None,
          device: str | torch.device | None = None, resume: bool = False, compile: bool | str = False,
          log_every: int = 10, on_event: EventHandler | None = None,
          network: dict[str, Any] | None = None, learning_rate: float | None = None,
          frames: list[int] | None = None, gpus: int | None = None, distributed: Any = None) -> TrainResult:
    """Train a CopyCat node; returns a :class:`TrainResult` (final loss, file paths).

    ``epochs`` or ``steps`` override the node's ``epochs``; ``device`` overrides
    ``useGPUIfAvailable``; ``resume`` continues from ``<name>.ost``; ``compile`` uses
    ``torch.compile`` (True, or a mode such as ``"reduce-overhead"``); ``log_every`` steps per summary line; ``on_event(kind, info)`` receives
    ``plan``, ``log``, ``image``, ``checkpoint``, ``warning``, ``step``, ``interrupted`` and ``done``;
    ``network`` overrides :class:`~nodegraph.ml.network.NetworkConfig` fields of a fresh run
    (``{"widths": (8, 16, 16), "lstm": False}``; tests use it for tiny networks);
    ``learning_rate`` replaces the node's ``learningRate`` (and, on a resume, the saved one: resume a
    diverged run with a lower rate); ``frames`` replaces the node's data set frames.
    Ctrl-C or SIGTERM raises :class:`TrainingInterrupted` (a KeyboardInterrupt) after saving; a loss
    that becomes NaN or infinite raises :class:`TrainingDiverged` keeping the last good checkpoint.

    Data-parallel (:mod:`nodegraph.ml.distributed`): ``gpus=N`` spawns N processes on this host
    (one per GPU; on ``device="cpu"`` N CPU processes); ``distributed`` is this process's
    :class:`~nodegraph.ml.distributed.DistConfig`, read by default from torchrun's or Nuke's
    ``COPYCAT_*`` environment variables (``False``: never).
    """
    options = dict(epochs=epochs, steps=steps, resume=resume, compile=compile, log_every=log_every,
                   on_event=on_event, network=network, learning_rate=learning_rate, frames=frames)
    if gpus is not None and gpus > 1:
        from .distributed import launch

        return launch(graph, node, gpus, device=device, **options)
    if distributed is None:
        from .distributed import DistConfig

        distributed = DistConfig.from_env()
    if distributed:
        from .distributed import run_rank

        return run_rank(distributed, graph, node, device=device, **options)
    trainer = Trainer(graph, node, device=device, **options)
    trainer.prepare()
    return trainer.run()


__all__ = ["Plan", "TrainResult", "Trainer", "TrainingDiverged", "TrainingError", "TrainingInterrupted", "lr_at",
           "total_steps_for", "train", "training_frames"]
