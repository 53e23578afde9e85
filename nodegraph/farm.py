"""Rendering on a Dask cluster: the frames of a render as Dask tasks on many processes and hosts.

``render(graph, client=client)`` (and ``nodegraph render GRAPH --scheduler tcp://HOST:8786`` or
``--cluster local[:N]``) runs :func:`nodegraph.render.render`'s one loop with a :class:`DaskRunner`:
each job (one frame, a chunk of frames sharing a batchable node such as Inference, or a whole
movie) is a Dask task. The graph travels once, as its JSON document, in a worker plugin; each
worker loads it on its first job and keeps its own evaluator and cache for the render (state keyed
by the document's hash, dropped when the render ends). Writes are atomic on the worker, so a
worker killed mid-frame leaves no partial file: the scheduler gives its jobs to other workers. A
job with a failed frame raises on the worker, so Dask retries it ``retries`` times before the
frame is reported failed by name.

GPU workers: one worker per GPU, each seeing its own (``CUDA_VISIBLE_DEVICES``) and declaring the
resource ``GPU=1``; CUDA jobs then ask for ``GPU: 1`` so no two share a GPU. :func:`open_client`
starts such workers on this host with ``gpus=N``.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import threading
from contextlib import contextmanager
from concurrent.futures import Future
from typing import Any, Iterator

import torch
from distributed import WorkerPlugin

from .errors import NodeGraphError, safe_repr
from .evaluator import Evaluator, resolve_device
from .graph import Graph
from .render import FramesFailed, Job, Runner, dtype_name, run_job, worker_document, worker_evaluator

#: Default retries of a failed job before its frames are reported failed.
RETRIES = 2


class FarmError(NodeGraphError):
    """The cluster cannot be reached or started, or a cluster setting is wrong."""


def check_device(device: Any) -> torch.device:
    """``device`` parsed (not resolved: the workers, not the driver, must have it); ``auto`` reads
    as CUDA when this machine has a GPU."""
    if device is None or device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        return torch.device(device)
    except (RuntimeError, ValueError, TypeError):
        from .render import DEVICES

        raise FarmError(f"unknown device {safe_repr(device, 200)}; use {DEVICES}") from None


# --- worker side ---------------------------------------------------------------------------------
#: Per worker process: render key -> settings (from the plugin) and, once built, the evaluator.
_RENDERS: dict[str, dict[str, Any]] = {}
_LOCK = threading.Lock()
#: Per worker process: jobs started, by (node, first frame); tests read it to see retries.
ATTEMPTS: dict[tuple[str, int], int] = {}


#: Torch threads of each worker (a local cluster sets it to its share of the cores).
THREADS_ENV = "NODEGRAPH_TORCH_THREADS"


class RenderPlugin(WorkerPlugin):
    """Worker plugin carrying one render's document and settings to every worker, including
    workers that join or restart during the render; removed (and the worker's state freed) at
    the end."""

    def __init__(self, key: str, doc: dict[str, Any], device: str, dtype: str, cache_bytes: int | None,
                 threads: int | None) -> None:
        self.key = key
        self.name = f"nodegraph-render-{key}"
        self.settings = {"doc": doc, "device": device, "dtype": dtype, "cache_bytes": cache_bytes,
                         "threads": threads}

    def setup(self, worker: Any) -> None:
        threads = self.settings["threads"] or os.environ.get(THREADS_ENV, "")
        if not str(threads).isdigit() or int(threads) < 1:
            # Dask starts workers with OMP_NUM_THREADS=1: give torch the host's cores
            threads = (os.cpu_count() or 1) // max(1, int(getattr(worker.state, "nthreads", 1)))
        with _LOCK:
            _RENDERS[self.key] = {**self.settings, "threads": max(1, int(threads))}
            _heap_for_images(True)

    def teardown(self, worker: Any) -> None:
        with _LOCK:
            _RENDERS.pop(self.key, None)
            if not _RENDERS:
                _heap_for_images(False)


#: glibc's mallopt parameters and the values its dynamic mmap threshold would reach for large images.
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3
_MMAP_THRESHOLD = 32 << 20


def _heap_for_images(rendering: bool) -> None:
    """Keep image buffers on the heap while this worker renders, then give memory back.

    A Dask nanny starts its worker with ``MALLOC_TRIM_THRESHOLD_=65536``. Setting the trim
    threshold turns off glibc's dynamic mmap threshold, so every buffer over 128 KiB (every image
    tensor) is a fresh mmap whose pages fault in and are zeroed, then unmapped when freed: a
    960x540 keying render took ~1 million page faults per 24 files and ran about twice as slow as a
    plain process. While rendering, buffers up to 32 MiB (glibc's own dynamic ceiling) come from
    the heap and the heap is trimmed past 64 MiB; when the worker's last render ends, the
    environment's trim threshold is restored and the free heap is given back. Only on glibc, and
    only where the environment set a threshold (otherwise glibc's defaults already do this)."""
    if not (os.environ.get("MALLOC_TRIM_THRESHOLD_") or os.environ.get("MALLOC_MMAP_THRESHOLD_")):
        return
    try:
        import ctypes

        libc = ctypes.CDLL(None)
        if rendering:
            libc.mallopt(_M_MMAP_THRESHOLD, _MMAP_THRESHOLD)
            libc.mallopt(_M_TRIM_THRESHOLD, 2 * _MMAP_THRESHOLD)
        else:
            trim = os.environ.get("MALLOC_TRIM_THRESHOLD_", "")
            if trim.isdigit():
                libc.mallopt(_M_TRIM_THRESHOLD, int(trim))
            libc.malloc_trim(0)
    except (OSError, AttributeError):  # not glibc (musl, macOS): nothing to tune
        pass


def _worker_state(key: str) -> dict[str, Any]:
    with _LOCK:
        state = _RENDERS.get(key)
        if state is None:
            raise NodeGraphError(f"this worker has no render {key} (its plugin was not installed)")
        if "evaluator" not in state:  # once per worker: the graph from its document
            state["evaluator"] = worker_evaluator(state["doc"], state["cache_bytes"])
        return state


def farm_job(key: str, job: Job) -> list:
    """A render job on a Dask worker: its results, or :class:`FramesFailed` (so Dask retries it)."""
    ATTEMPTS[(job.node, job.frames[0])] = ATTEMPTS.get((job.node, job.frames[0]), 0) + 1
    state = _worker_state(key)
    if torch.get_num_threads() != state["threads"]:  # per thread: set where the job runs, not in setup
        torch.set_num_threads(state["threads"])
    ev: Evaluator = state["evaluator"]
    results = list(run_job(ev, job, resolve_device(state["device"]), getattr(torch, state["dtype"])))
    if any(r.error is not None for r in results):
        raise FramesFailed(results)
    return results


def attempts(reset: bool = False) -> dict[tuple[str, int], int]:
    """This worker's job counts by (node, first frame), for ``client.run``; ``reset`` clears them."""
    counts = dict(ATTEMPTS)
    if reset:
        ATTEMPTS.clear()
    return counts


# --- driver side ---------------------------------------------------------------------------------
def document_key(doc: dict[str, Any], *settings: Any) -> str:
    """A short hash naming one render's state on the workers (document and settings)."""
    text = json.dumps([doc, [str(s) for s in settings]], sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _workers(client: Any) -> dict[str, dict[str, Any]]:
    return client.scheduler_info(n_workers=-1).get("workers", {}) if _takes_n_workers(client) else \
        client.scheduler_info().get("workers", {})


def _takes_n_workers(client: Any) -> bool:
    import inspect

    return "n_workers" in inspect.signature(client.scheduler_info).parameters


class DaskRunner(Runner):
    """Runs render jobs as Dask tasks (see the module docstring); whole in-order tasks go to the
    cluster too, as one task each."""

    whole_tasks = True

    def __init__(self, client: Any, graph: Graph, device: Any, dtype: torch.dtype, cache_bytes: int | None, *,
                 retries: int = RETRIES, resources: dict[str, float] | None = None,
                 threads: int | None = None) -> None:
        self.client = client
        workers = _workers(client)
        if not workers:
            raise FarmError(f"the Dask cluster at {client.scheduler.address} has no workers; start some with "
                            "`dask worker SCHEDULER_ADDRESS`")
        dev = check_device(device)
        if resources is None and dev.type == "cuda" and any("GPU" in (w.get("resources") or {})
                                                            for w in workers.values()):
            resources = {"GPU": 1}
        if resources and not any(all((w.get("resources") or {}).get(r, 0) >= n for r, n in resources.items())
                                 for w in workers.values()):
            raise FarmError(f"no worker of the cluster has the resources {resources} the jobs need; start "
                            "workers with e.g. `dask worker ADDRESS --resources GPU=1`")
        doc = worker_document(graph)  # with graph.path: relative files resolve as in the driver
        device_text = "auto" if device is None else str(device)
        self.key = document_key(doc, device_text, dtype, cache_bytes)
        self.plugin = RenderPlugin(self.key, doc, device_text, dtype_name(dtype), cache_bytes, threads)
        slots = sum(int(w.get("nthreads", 1)) for w in workers.values())
        self.window = max(4, 2 * slots)
        self.executor = client.get_executor(retries=max(0, int(retries)), pure=False,
                                            **({"resources": resources} if resources else {}))
        self._serial = 0

    def __enter__(self) -> "DaskRunner":
        register = getattr(self.client, "register_plugin", None) or self.client.register_worker_plugin
        register(self.plugin, name=self.plugin.name)
        return self

    def submit(self, job: Job) -> Future:
        self._serial += 1
        frames = f"{job.frames[0]}" if len(job.frames) == 1 else f"{job.frames[0]}-{job.frames[-1]}"
        return self.executor.submit(farm_job, self.key, job, key=f"render-{job.node}-{frames}-{self.key}-"
                                                                   f"{self._serial}")

    def __exit__(self, *exc: Any) -> None:
        try:
            self.client.unregister_worker_plugin(self.plugin.name)
        except Exception:  # a cluster going away at the end must not hide the render's result
            logging.getLogger(__name__).debug("could not remove the render plugin", exc_info=True)


# --- clusters ------------------------------------------------------------------------------------
def parse_cluster(spec: str) -> int | None:
    """``local`` -> None (a worker per core), ``local:N`` -> N."""
    name, _, count = spec.partition(":")
    if name != "local":
        raise FarmError(f"--cluster {safe_repr(spec, 100)}: only 'local' or 'local:N' start a cluster here; "
                        "for a running cluster give --scheduler tcp://HOST:8786")
    if not count:
        return None
    if not count.isdigit() or not 1 <= int(count) <= 1024:
        raise FarmError(f"--cluster {safe_repr(spec, 100)}: N must be a number of workers from 1 to 1024")
    return int(count)


def local_cluster(workers: int | None = None, *, gpus: int | None = None) -> Any:
    """A cluster of worker processes on this host (loopback only, no dashboard): ``workers`` CPU
    workers of one thread (torch's threads split the cores between them), or with ``gpus`` one
    worker per GPU, each seeing only its own and declaring ``GPU=1``."""
    from distributed import LocalCluster, Nanny, Scheduler, SpecCluster

    silence = logging.ERROR
    if gpus:
        specs = {f"gpu{i}": {"cls": Nanny, "options": {
            "nthreads": 1, "resources": {"GPU": 1}, "env": {"CUDA_VISIBLE_DEVICES": str(i)},
            "host": "127.0.0.1", "silence_logs": silence}} for i in range(gpus)}
        return SpecCluster(workers=specs, scheduler={"cls": Scheduler, "options": {
            "host": "127.0.0.1", "dashboard_address": None}}, silence_logs=silence)
    n = workers or os.cpu_count() or 1
    return LocalCluster(n_workers=n, threads_per_worker=1, processes=True, host="127.0.0.1",
                        dashboard_address=None, silence_logs=silence,
                        env={THREADS_ENV: str(max(1, (os.cpu_count() or 1) // n))})


@contextmanager
def open_client(scheduler: str | None = None, cluster: str | None = None, *,
                gpus: int | None = None, timeout: float = 30.0) -> Iterator[Any]:
    """A Dask client: to the scheduler at ``scheduler``, or to a :func:`local_cluster` for
    ``cluster`` (``local`` / ``local:N``) that is closed afterwards."""
    from distributed import Client

    if (scheduler is None) == (cluster is None):
        raise FarmError("give a scheduler address or a local cluster, not both" if scheduler else
                        "give a scheduler address (--scheduler) or a local cluster (--cluster local[:N])")
    if scheduler is not None:
        try:
            client = Client(scheduler, timeout=timeout)
        except (OSError, TimeoutError) as err:
            raise FarmError(f"cannot reach the Dask scheduler at {safe_repr(scheduler, 300)}: {err}; start it "
                            "with `dask scheduler` and workers with `dask worker ADDRESS`") from None
        with client:
            yield client
        return
    workers = parse_cluster(cluster)
    with local_cluster(workers, gpus=gpus) as lc, Client(lc, timeout=timeout) as client:
        client.wait_for_workers(len(lc.workers), timeout=max(timeout, 120))
        yield client


__all__ = ["DaskRunner", "FarmError", "RenderPlugin", "check_device", "document_key", "farm_job",
           "local_cluster", "open_client", "parse_cluster"]
