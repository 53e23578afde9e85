"""Rendering: run the ``write`` tasks (Write nodes) of a graph over a frame range.

Frames run in parallel on local workers: threads by default (no start-up cost, one shared cache;
torch, OpenEXR and OpenImageIO release the GIL while they work), or processes with
``processes=True`` (each loads the graph from its JSON document and keeps its own cache; a crash
in a library takes down one worker, not the render). A failed frame never stops the others, and
every failure is reported with its node, frame and message. The render drives each output through
the task interface (:mod:`nodegraph.task`): a task whose plan is not ``in_order`` becomes one job
per frame; an ``in_order`` one (a movie) runs whole, in order, in this process.
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


# --- worker side --------------------------------------------------------------------------------
_WORKER: dict[str, Any] = {}


def _worker_init(doc: dict[str, Any], device: str, dtype: str, threads: int, cache_bytes: int | None) -> None:
    torch.set_num_threads(max(1, threads))
    graph = Graph.from_dict(doc)
    _WORKER["evaluator"] = Evaluator(graph, max_cache_bytes=cache_bytes, admit_on_reuse=True)
    _WORKER["device"] = device
    _WORKER["dtype"] = getattr(torch, dtype)


def _run_job(node_name: str, frame: int) -> list[TaskResult]:
    ev: Evaluator = _WORKER["evaluator"]
    return _execute(ev, node_name, frame, _WORKER["device"], _WORKER["dtype"])


def _execute(ev: Evaluator, node_name: str, frame: int, device: Any, dtype: torch.dtype) -> list[TaskResult]:
    """One frame of one task, as a job: every failure becomes a result naming node and frame."""
    try:
        return list(ev.graph.node(node_name).run_task(TaskRun(ev, device, dtype), [frame]))
    except Exception as err:  # keep going: one bad frame must not lose the rest of the render
        return [failed(node_name, frame, err)]


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
) -> RenderResult:
    """Render output nodes over frames. Validates first; never stops at the first failed frame.

    With one worker (always on CUDA), nodes that compute frames faster together (Inference) get
    ``batch_frames`` frames at once. Each process evaluates through its own cache of ``cache_bytes`` (default
    ``NODEGRAPH_RENDER_CACHE_GB``, 0.5 GiB) that stores an image only once a second frame asks
    for it: what frames share (a still, a held frame) stays, a frame's own results never pile
    up, so memory stays flat over any range.
    """
    t0 = time.perf_counter()
    outputs = _select_outputs(graph, writes)
    graph.check(outputs)
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

    def frame_jobs() -> Iterator[tuple[str, int]]:
        for plan in plans:
            if not plan.in_order:
                yield from ((plan.node, f) for f in plan.frames if (plan.node, f) not in skipped)

    def record(results: Iterable[TaskResult]) -> None:
        for res in results:
            if res.error is None:
                result.written.append((res.node, res.frame, res.path or ""))
            else:
                result.failed[(res.node, res.frame)] = res.error
            if on_progress is not None:
                on_progress(res.node, res.frame, res.path, res.error)

    workers = max(1, int(workers))
    if dev.type == "cuda":
        workers = 1  # one process owns the GPU; frames still batch through its cache
    if cache_bytes is None:
        cache_bytes = RENDER_CACHE_BYTES
    ev = Evaluator(graph, max_cache_bytes=cache_bytes, admit_on_reuse=True)
    if workers == 1 or frame_count <= 1:
        batch_nodes = _batchable_upstream(graph, outputs) if batch_frames > 1 else []
        jobs = frame_jobs()
        while chunk := list(islice(jobs, batch_frames if batch_nodes else 1)):
            if len(chunk) > 1:
                _compute_ahead(ev, batch_nodes, sorted({f for _, f in chunk}), dev, dtype)
            for name, f in chunk:
                record(_execute(ev, name, f, dev, dtype))
    elif processes:
        _render_parallel(graph, frame_jobs(), min(workers, frame_count), dev, dtype, cache_bytes, record)
    else:
        _render_threads(ev, frame_jobs(), min(workers, frame_count), dev, dtype, record)
    for plan in plans:
        if plan.in_order:
            done: set[int | None] = set()
            try:
                for res in tasks[plan.node].run_task(TaskRun(ev, dev, dtype), plan.frames):
                    record([res])
                    done.add(res.frame)
            except Exception as err:  # a task that could not go on: its other frames fail, the render goes on
                record(failed(plan.node, f, err) for f in plan.frames if f not in done)
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


def _run_windowed(submit: Callable[[str, int], Future], jobs: Iterator[tuple[str, int]], window: int,
                  collect: Callable[[tuple[str, int], Future], None]) -> None:
    """Keep at most ``window`` jobs submitted at a time (never the whole range), collecting each
    as it completes; on an exception (Ctrl-C) drop the jobs not started and re-raise."""
    pending: dict[Future, tuple[str, int]] = {}
    try:
        for job in islice(jobs, window):
            pending[submit(*job)] = job
        while pending:
            done, _ = wait(pending, return_when=FIRST_COMPLETED)
            for fut in done:
                collect(pending.pop(fut), fut)
                for job in islice(jobs, 1):
                    pending[submit(*job)] = job
    except BaseException:
        for fut in pending:
            fut.cancel()
        raise


def _render_threads(ev: Evaluator, jobs: Iterator[tuple[str, int]], workers: int, dev: torch.device,
                    dtype: torch.dtype, record: Callable[..., None]) -> None:
    """Frames on a thread pool sharing one evaluator; results are recorded on this thread."""
    threads = torch.get_num_threads()
    torch.set_num_threads(max(1, (os.cpu_count() or 1) // workers))  # no oversubscription
    try:
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="render") as pool:
            _run_windowed(lambda name, f: pool.submit(_execute, ev, name, f, dev, dtype), jobs, 2 * workers,
                          lambda job, fut: record(fut.result()))
    finally:
        torch.set_num_threads(threads)


def _render_parallel(graph: Graph, jobs: Iterator[tuple[str, int]], workers: int, dev: torch.device,
                     dtype: torch.dtype, cache_bytes: int | None, record: Callable[..., None]) -> None:
    doc = graph.to_dict()
    threads = max(1, (os.cpu_count() or 1) // workers)
    ctx = mp.get_context("spawn")
    dtype_name = str(dtype).replace("torch.", "")

    def collect(job: tuple[str, int], fut: Future) -> None:
        name, f = job
        try:
            record(fut.result())
        except Exception as err:  # a worker died (killed, out of memory): name the frame
            record([TaskResult(name, f, None, shorten_lines(
                f"node {name!r}, frame {f}: worker failed: {type(err).__name__}: {err}"))])

    with ProcessPoolExecutor(max_workers=workers, mp_context=ctx, initializer=_worker_init,
                             initargs=(doc, str(dev), dtype_name, threads, cache_bytes)) as pool:
        _run_windowed(lambda name, f: pool.submit(_run_job, name, f), jobs, 2 * workers, collect)
