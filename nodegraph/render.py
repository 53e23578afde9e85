"""Rendering: run the ``write`` tasks (Write nodes) of a graph over a frame range.

One scheduling loop (:func:`_run_windowed`) runs the render's jobs on whatever a :class:`Runner`
offers: the calling thread, threads (the default for several workers: no start-up cost, one shared
cache; torch, OpenEXR and OpenImageIO release the GIL while they work), local processes with
``processes=True`` (each loads the graph from its JSON document and keeps its own cache; a crash in
a library takes down one worker, not the render), or the workers of a Dask cluster with
``client=`` (:mod:`nodegraph.farm`). A failed frame never stops the others, and every failure is
reported with its node, frame and message. The render drives each output through the task
interface (:mod:`nodegraph.task`): a task whose plan is not ``in_order`` becomes one job per frame
(or per chunk of frames sharing a batchable node); an ``in_order`` one (a movie) runs whole, in
order, in one process.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import time
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from itertools import islice
from typing import Any, Callable, Iterable, Iterator, Sequence

import torch

from .cache import RENDER_CACHE_BYTES
from .errors import NodeGraphError, RenderError, safe_repr, shorten_lines
from .evaluator import Evaluator, resolve_device
from .graph import Graph
from .frames import frame_problem
from .node import Node
from .task import TaskKind, TaskPlan, TaskResult, TaskRun, failed, is_task


@dataclass
class RenderResult:
    """What a render did: frames written, skipped and failed, and how long it took."""

    written: list[tuple[str, int, str]] = field(default_factory=list)  # (node, frame, path)
    skipped: list[tuple[str, int, str]] = field(default_factory=list)
    failed: dict[tuple[str, int], str] = field(default_factory=dict)
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return not self.failed

    def raise_for_failures(self) -> None:
        if self.failed:
            raise RenderError(self.failed)


#: Most frames one render covers per output node: the limit ``--frames`` has (fileseq's ten million).
MAX_RENDER_FRAMES = 10_000_000
DEVICES = "cpu, cuda, cuda:N (N a GPU index) or auto"


def parse_frames(spec: str) -> list[int]:
    """``"1001-1100"``, ``"1-10x2"``, ``"1,5,10-12"`` -> frame numbers (via fileseq), each within
    +-:data:`~nodegraph.node.MAX_FRAME` and at most :data:`MAX_RENDER_FRAMES` of them."""
    from nodegraph.io.sequence import parse_frame_range

    frames = parse_frame_range(spec)
    if frames:
        for f in (min(frames), max(frames)):
            problem = frame_problem(f)
            if problem:
                raise NodeGraphError(f"frame range {safe_repr(spec, 200)}: frame {f} is {problem}")
    return frames


def resolve_render_device(device: str | torch.device | None) -> torch.device:
    """:func:`~nodegraph.evaluator.resolve_device`, with a typed error naming the valid devices."""
    try:
        return resolve_device(device)
    except (RuntimeError, ValueError, TypeError):  # torch.device("tpu")
        raise NodeGraphError(f"unknown device {safe_repr(device, 200)}; use {DEVICES}") from None


def _select_outputs(graph: Graph, names: Iterable[str] | None) -> list[Node]:
    if names:
        nodes = [graph.node(n) for n in names]
        for n in nodes:
            if not is_task(n, TaskKind.WRITE):
                what = f"a {n.task_kind} task, run it with its own command" if is_task(n) else "a task"
                raise NodeGraphError(f"{n.type_name} is not an output node to render ({what}); outputs: "
                                     f"{', '.join(o.path for o in graph.outputs()) or 'none'}", node=n.path)
        return nodes
    outputs = graph.outputs()
    if not outputs:
        raise NodeGraphError("the graph has no Write (output) nodes to render")
    return outputs


def plan_jobs(outputs: list[Node], frames: Sequence[int] | None) -> list[TaskPlan]:
    """Each output's task plan for ``frames``, or for its own frame range as a lazy ``range`` (a
    range of a billion frames costs nothing until it is refused here)."""
    plans = []
    for node in outputs:
        plan = node.task_plan(frames)
        count = len(plan.frames)
        if frames is None and count > MAX_RENDER_FRAMES:
            raise NodeGraphError(f"frame range {plan.frames[0]}-{plan.frames[-1]} has {count:,} frames, more than "
                                 f"one render covers ({MAX_RENDER_FRAMES:,}); pick frames with --frames",
                                 node=node.path)
        plans.append(plan)
    return plans


# --- jobs: what every runner runs -----------------------------------------------------------------
@dataclass(frozen=True)
class Job:
    """One unit of a render: ``frames`` of the task ``node``. ``whole``: the frames are the task's
    whole in-order plan (a movie), run together in order; otherwise they are independent frames run
    one after the other in one process, so they share its cache (and batchable nodes upstream,
    such as Inference, compute them together)."""

    node: str
    frames: tuple[int, ...]
    whole: bool = False


class FramesFailed(Exception):
    """Raised by a job run under a retrying runner (Dask) when any of its frames failed, so the
    runner retries it; ``results`` holds every frame's result (plain tuples pickle everywhere)."""

    def __init__(self, results: list[TaskResult]) -> None:
        super().__init__([tuple(r) for r in results])

    @property
    def results(self) -> list[TaskResult]:
        return [TaskResult(*r) for r in self.args[0]]


def run_job(ev: Evaluator, job: Job, device: Any, dtype: torch.dtype) -> Iterator[TaskResult]:
    """Run one job through the task interface; every failure becomes a result naming node and frame."""
    if job.whole:
        yield from _run_frames(ev, job.node, job.frames, device, dtype)
        return
    if len(job.frames) > 1:
        batch_nodes = _batchable_upstream(ev.graph, [ev.graph.node(job.node)])
        if batch_nodes:
            _compute_ahead(ev, batch_nodes, sorted(set(job.frames)), resolve_device(device), dtype)
    for f in job.frames:
        yield from _run_frames(ev, job.node, (f,), device, dtype)


def _run_frames(ev: Evaluator, node_name: str, frames: Sequence[int], device: Any,
                dtype: torch.dtype) -> Iterator[TaskResult]:
    """The task's results for ``frames``; when it cannot go on, its remaining frames fail by name."""
    done: set[int | None] = set()
    try:
        for res in ev.graph.node(node_name).run_task(TaskRun(ev, device, dtype), frames):
            done.add(res.frame)
            yield res
    except Exception as err:  # keep going: one bad frame must not lose the rest of the render
        yield from (failed(node_name, f, err) for f in frames if f not in done)


def job_failures(job: Job, err: BaseException) -> list[TaskResult]:
    """The results of a job whose runner failed it (a retried job that still failed, a worker
    that died or was lost): each of its frames, named."""
    if isinstance(err, FramesFailed):
        return err.results
    reason = shorten_lines(f"worker failed: {type(err).__name__}: {err}")
    return [TaskResult(job.node, f, None, f"node {job.node!r}, frame {f}: {reason}") for f in job.frames]


# --- runners: what runs the jobs (threads, processes, a Dask cluster) ------------------------------
class Runner:
    """Runs jobs for :func:`render`'s one loop: ``submit(job)`` returns a ``concurrent.futures``
    Future of the job's results; ``window`` jobs are kept submitted at a time; ``whole_tasks``:
    in-order tasks (movies) run on it too, else in the driver after the frames. Used as a context
    manager around the render."""

    window: int = 1
    whole_tasks: bool = False

    def submit(self, job: Job) -> Future:
        raise NotImplementedError

    def __enter__(self) -> "Runner":
        return self

    def __exit__(self, *exc: Any) -> None:
        return None


class InlineRunner(Runner):
    """Each job runs at once in the calling thread (one worker, and always on CUDA)."""

    def __init__(self, ev: Evaluator, dev: torch.device, dtype: torch.dtype) -> None:
        self.ev, self.dev, self.dtype = ev, dev, dtype

    def submit(self, job: Job) -> Future:
        fut: Future = Future()
        fut.set_result(list(run_job(self.ev, job, self.dev, self.dtype)))
        return fut


class ThreadRunner(Runner):
    """Jobs on a thread pool sharing one evaluator (and cache); torch's threads split between them."""

    def __init__(self, ev: Evaluator, workers: int, dev: torch.device, dtype: torch.dtype) -> None:
        self.ev, self.workers, self.dev, self.dtype = ev, workers, dev, dtype
        self.window = 2 * workers

    def __enter__(self) -> "ThreadRunner":
        self._threads = torch.get_num_threads()
        torch.set_num_threads(max(1, (os.cpu_count() or 1) // self.workers))  # no oversubscription
        self.pool = ThreadPoolExecutor(max_workers=self.workers, thread_name_prefix="render")
        return self

    def submit(self, job: Job) -> Future:
        return self.pool.submit(lambda: list(run_job(self.ev, job, self.dev, self.dtype)))

    def __exit__(self, *exc: Any) -> None:
        self.pool.shutdown(wait=True, cancel_futures=True)
        torch.set_num_threads(self._threads)


class ProcessRunner(Runner):
    """Jobs on local processes, each loading the graph from its JSON document once, with its own cache."""

    def __init__(self, graph: Graph, workers: int, dev: torch.device, dtype: torch.dtype,
                 cache_bytes: int | None) -> None:
        threads = max(1, (os.cpu_count() or 1) // workers)
        self.window = 2 * workers
        self.pool = ProcessPoolExecutor(max_workers=workers, mp_context=mp.get_context("spawn"),
                                        initializer=_worker_init,
                                        initargs=(worker_document(graph), str(dev), dtype_name(dtype), threads, cache_bytes))

    def submit(self, job: Job) -> Future:
        return self.pool.submit(_process_job, job)

    def __exit__(self, *exc: Any) -> None:
        self.pool.shutdown(wait=True, cancel_futures=True)


_WORKER: dict[str, Any] = {}


def dtype_name(dtype: torch.dtype) -> str:
    return str(dtype).replace("torch.", "")


#: Metadata key carrying ``graph.path`` to worker processes (relative file paths resolve against it).
_PATH_KEY = "nodegraph_worker_graph_path"


def worker_document(graph: Graph) -> dict[str, Any]:
    """The JSON document a worker process loads the graph from, with the graph's own file path."""
    doc = graph.to_dict()
    if graph.path:
        doc["metadata"] = {**doc.get("metadata", {}), _PATH_KEY: graph.path}
    return doc


def worker_evaluator(doc: dict[str, Any], cache_bytes: int | None) -> Evaluator:
    """The evaluator a worker process renders with: the graph loaded from its JSON document."""
    graph = Graph.from_dict(doc)
    graph.path = graph.metadata.pop(_PATH_KEY, None)
    return Evaluator(graph, max_cache_bytes=cache_bytes, admit_on_reuse=True)


def _worker_init(doc: dict[str, Any], device: str, dtype: str, threads: int, cache_bytes: int | None) -> None:
    torch.set_num_threads(max(1, threads))
    _WORKER.update(evaluator=worker_evaluator(doc, cache_bytes), device=device, dtype=getattr(torch, dtype))


def _process_job(job: Job) -> list[TaskResult]:
    return list(run_job(_WORKER["evaluator"], job, _WORKER["device"], _WORKER["dtype"]))


# --- driver ---------------------------------------------------------------------------------------
def render(
    graph: Graph,
    *,
    writes: Iterable[str] | None = None,
    frames: list[int] | str | None = None,
    workers: int = 1,
    device: str | None = "cpu",
    dtype: torch.dtype = torch.float32,
    skip_existing: bool = False,
    on_progress: Callable[[str, int, str | None, str | None], None] | None = None,
    on_start: Callable[[int], None] | None = None,
    cache_bytes: int | None = None,
    processes: bool = False,
    batch_frames: int = 4,
    client: Any = None,
    retries: int = 2,
    resources: dict[str, float] | None = None,
) -> RenderResult:
    """Render output nodes over frames. Validates first; never stops at the first failed frame.

    With one worker (always on CUDA), nodes that compute frames faster together (Inference) get
    ``batch_frames`` frames at once. Each process evaluates through its own cache of ``cache_bytes`` (default
    ``NODEGRAPH_RENDER_CACHE_GB``, 0.5 GiB) that stores an image only once a second frame asks
    for it: what frames share (a still, a held frame) stays, a frame's own results never pile
    up, so memory stays flat over any range.

    ``client``: a ``dask.distributed.Client``; the frames then run on its cluster's workers
    (:mod:`nodegraph.farm`), a failed job is retried ``retries`` times, ``resources`` are what each
    job needs of a worker (default ``{"GPU": 1}`` on CUDA when the workers declare GPUs).
    """
    t0 = time.perf_counter()
    outputs = _select_outputs(graph, writes)
    graph.check(outputs)
    if client is not None:
        from .farm import check_device

        dev = check_device(device)  # resolved on each worker (the driver may have no GPU)
    else:
        dev = resolve_render_device(device)
    frame_list = parse_frames(frames) if isinstance(frames, str) else frames
    plans = plan_jobs(outputs, frame_list)
    result = RenderResult()
    tasks = {node.path: node for node in outputs}

    # jobs are generated, never listed: memory does not grow with the frame range
    skipped: set[tuple[str, int]] = set()
    if skip_existing:
        for plan in plans:
            for f in ([] if plan.in_order else plan.frames):
                path = tasks[plan.node].frame_output(f)
                if path is not None and os.path.exists(path):
                    result.skipped.append((plan.node, f, path))
                    skipped.add((plan.node, f))
    frame_count = sum(len(p.frames) for p in plans if not p.in_order) - len(skipped)
    if on_start is not None:
        on_start(frame_count + sum(len(p.frames) for p in plans if p.in_order))

    def record(results: Iterable[TaskResult]) -> None:
        for res in results:
            if res.error is None:
                result.written.append((res.node, res.frame, res.path or ""))
            else:
                result.failed[(res.node, res.frame)] = res.error
            if on_progress is not None:
                on_progress(res.node, res.frame, res.path, res.error)

    def collect(job: Job, fut: Future) -> None:
        try:
            results = fut.result()
        except Exception as err:  # retried and still failing, or its worker died: name the frames
            results = job_failures(job, err)
        record(results)  # an exception from on_progress (a caller stopping the render) propagates

    workers = max(1, int(workers))
    if dev.type == "cuda":
        workers = 1  # one process owns the GPU; frames still batch through its cache
    if cache_bytes is None:
        cache_bytes = RENDER_CACHE_BYTES
    ev = Evaluator(graph, max_cache_bytes=cache_bytes, admit_on_reuse=True)
    batchable = bool(batch_frames > 1 and _batchable_upstream(graph, outputs))
    chunk = batch_frames if batchable else 1
    runner: Runner
    if client is not None:
        from .farm import DaskRunner

        runner = DaskRunner(client, graph, device, dtype, cache_bytes, retries=retries, resources=resources)
    elif workers == 1 or frame_count <= 1:
        runner = InlineRunner(ev, dev, dtype)
    elif processes:
        runner, chunk = ProcessRunner(graph, min(workers, frame_count), dev, dtype, cache_bytes), 1
    else:
        runner, chunk = ThreadRunner(ev, min(workers, frame_count), dev, dtype), 1

    def jobs() -> Iterator[Job]:
        for plan in plans:
            if plan.in_order:
                if runner.whole_tasks:
                    yield Job(plan.node, tuple(plan.frames), whole=True)
                continue
            todo = (f for f in plan.frames if (plan.node, f) not in skipped)
            while part := tuple(islice(todo, chunk)):
                yield Job(plan.node, part)

    with runner:
        _run_windowed(runner.submit, jobs(), runner.window, collect)
    if not runner.whole_tasks:  # in-order tasks (movies) run whole here, their progress streamed
        for plan in plans:
            if plan.in_order:
                record(run_job(ev, Job(plan.node, tuple(plan.frames), whole=True), dev, dtype))
    result.seconds = time.perf_counter() - t0
    return result


def _batchable_upstream(graph: Graph, outputs: list[Node]) -> list[Node]:
    """Nodes feeding the outputs that compute several frames faster at once (Inference)."""
    seen: dict[str, Node] = {}
    for out in outputs:
        for node in out.graph.upstream(out):  # within the output's own (sub)graph
            if node.batchable:
                seen.setdefault(node.path, node)
    return list(seen.values())


def _compute_ahead(ev: Evaluator, nodes: list[Node], frames: list[int], dev: torch.device,
                   dtype: torch.dtype) -> None:
    """Compute a chunk of frames of each batchable node together, into the cache; the per-frame
    pass then finds them there. A failure here is left to the per-frame pass, which names the
    frame that failed (and has its own out-of-memory fallbacks)."""
    for node in nodes:
        try:
            ev.evaluate_batch(node, frames, device=dev, dtype=dtype)
        except (NodeGraphError, torch.cuda.OutOfMemoryError):
            continue


def _run_windowed(submit: Callable[[Job], Future], jobs: Iterator[Job], window: int,
                  collect: Callable[[Job, Future], None]) -> None:
    """The one scheduling loop: keep at most ``window`` jobs submitted at a time (never the whole
    range), collecting each as it completes; on an exception (Ctrl-C) cancel the jobs not
    started and re-raise."""
    pending: dict[Future, Job] = {}
    try:
        for job in islice(jobs, window):
            pending[submit(job)] = job
        while pending:
            done, _ = wait(pending, return_when=FIRST_COMPLETED)
            for fut in done:
                collect(pending.pop(fut), fut)
                for job in islice(jobs, 1):
                    pending[submit(job)] = job
    except BaseException:
        for fut in pending:
            fut.cancel()
        raise
