"""Data-parallel CopyCat training with ``torch.distributed`` (DistributedDataParallel).

One process per GPU (a *rank*), on one host or many. Started three ways:

- ``train(..., gpus=N)`` / ``nodegraph train GRAPH --gpus N``: :func:`launch` spawns N processes on
  this host (``--device cpu``: N CPU processes with the gloo backend, which is what the tests use);
- ``torchrun``: its ``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``, ``MASTER_ADDR``, ``MASTER_PORT``;
- Nuke's variables, so farm scripts written for Nuke's distributed CopyCat work unchanged:
  ``COPYCAT_MAIN_ADDR``, ``COPYCAT_MAIN_PORT``, ``COPYCAT_RANK``, ``COPYCAT_WORLD_SIZE``, optional
  ``COPYCAT_SYNC_INTERVAL`` (gradients exchanged every N steps) and ``COPYCAT_LOCAL_ADDR`` (this
  machine's address: picks the network interface the ranks talk over).

What stays as on one GPU: the plan (batch size, total steps) is rank 0's; every rank draws the
whole batch of crops with the shared, seeded generator and trains on its own slice (``batch //
world`` crops, so the batch must be at least the number of ranks), and the losses are weighted so
the exchanged gradient is the whole batch's: the same seeds give the same weights as one process.
Rank 0 alone writes checkpoints, contact sheets, previews, the summary and the ``.ost``; the data
directory must be one every rank can read (for ``--resume``, every rank reads the ``.ost``).

Sharing GPUs: with ``NODEGRAPH_SHARE_GPUS=1`` a host may run more ranks than it has GPUs; local
rank ``r`` then uses ``cuda:(r % GPUs)`` and the process group uses gloo, since NCCL refuses two
ranks on one GPU. It is slower than one process (the ranks take turns on the GPU and exchange
gradients through the host) and exists to check a multi-process CUDA run on a one-GPU machine.

No hang: every collective has a timeout (``NODEGRAPH_DIST_TIMEOUT`` seconds, default 300), and each
rank beats a heartbeat into the rendezvous store; when a collective fails, the heartbeats show
which rank stopped, and the others stop with a :class:`RankFailed` naming it (then ``--resume``
continues from the last checkpoint, with any number of ranks).
"""

from __future__ import annotations

import math
import multiprocessing as mp
import os
import queue as queue_mod
import socket
import threading
import time
from contextlib import nullcontext
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, Mapping

import torch

from nodegraph.errors import NodeGraphError

from .train import GRAD_CLIP, Plan, TrainingError, TrainingInterrupted, Trainer, TrainResult

#: Seconds every collective (and the rendezvous) may wait before failing.
TIMEOUT_ENV = "NODEGRAPH_DIST_TIMEOUT"
DEFAULT_TIMEOUT = 300.0
#: Set to 1 to let ranks share GPUs (more ranks than GPUs on a host; gloo backend).
SHARE_ENV = "NODEGRAPH_SHARE_GPUS"
#: Seconds between heartbeats; a rank whose heartbeat stands still for three is taken as stopped.
HEARTBEAT = 1.0
COPYCAT_VARS = ("COPYCAT_MAIN_ADDR", "COPYCAT_MAIN_PORT", "COPYCAT_RANK", "COPYCAT_WORLD_SIZE")


class DistributedError(TrainingError):
    """Distributed training cannot start or go on (bad variables, a rank that cannot join)."""


class RankFailed(DistributedError):
    """Another rank stopped (killed, crashed or unreachable); ``rank`` names it."""

    def __init__(self, message: str, *, node: str | None, rank: int | None) -> None:
        super().__init__(message, node=node)
        self.rank = rank


@dataclass(frozen=True)
class DistConfig:
    """Where this process stands in a distributed run."""

    rank: int
    world_size: int
    main_addr: str
    main_port: int
    local_rank: int = 0
    sync_interval: int = 1
    local_addr: str | None = None
    timeout: float = DEFAULT_TIMEOUT
    agent_store: bool = False  # torchrun's agent already serves the rendezvous store
    share_gpus: bool = False  # more ranks than GPUs on a host: ranks share them (gloo backend)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> "DistConfig | None":
        """The run described by Nuke's ``COPYCAT_*`` or torchrun's variables; None when neither is
        set or the world is one process."""
        env = os.environ if env is None else env

        def number(name: str, low: int, high: int | None = None, default: str | None = None) -> int:
            text = env.get(name, default)
            if text is None or not text.strip().isdigit() or int(text) < low or (high is not None and int(text) > high):
                bound = f"from {low} to {high}" if high is not None else f"of at least {low}"
                raise DistributedError(f"environment variable {name}={text!r} must be a whole number {bound}")
            return int(text)

        if any(name in env for name in COPYCAT_VARS):
            missing = [name for name in COPYCAT_VARS if not env.get(name)]
            if missing:
                raise DistributedError(f"Nuke's distributed training needs {', '.join(COPYCAT_VARS)}; "
                                       f"{', '.join(missing)} not set")
            addr, port_name, rank_name, world_name, agent = env["COPYCAT_MAIN_ADDR"], *COPYCAT_VARS[1:], False
            local_rank = number("LOCAL_RANK", 0, default="0")
        elif "WORLD_SIZE" in env and "RANK" in env:
            if not env.get("MASTER_ADDR") or not env.get("MASTER_PORT"):
                raise DistributedError("RANK and WORLD_SIZE are set but MASTER_ADDR or MASTER_PORT is not "
                                       "(start the ranks with torchrun, or set all four)")
            addr, port_name, rank_name, world_name = env["MASTER_ADDR"], "MASTER_PORT", "RANK", "WORLD_SIZE"
            agent = env.get("TORCHELASTIC_USE_AGENT_STORE") == "True"
            local_rank = number("LOCAL_RANK", 0, default="0")
        else:
            return None
        world = number(world_name, 1)
        if world == 1:
            return None
        timeout = env.get(TIMEOUT_ENV, str(DEFAULT_TIMEOUT))
        try:
            seconds = float(timeout)
        except ValueError:
            seconds = -1.0
        if not math.isfinite(seconds) or seconds <= 0:
            raise DistributedError(f"environment variable {TIMEOUT_ENV}={timeout!r} must be a number of seconds > 0")
        return cls(rank=number(rank_name, 0, world - 1), world_size=world, main_addr=addr,
                   main_port=number(port_name, 1, 65535), local_rank=local_rank,
                   sync_interval=number("COPYCAT_SYNC_INTERVAL", 1, default="1"),
                   local_addr=env.get("COPYCAT_LOCAL_ADDR") or None, timeout=seconds, agent_store=agent,
                   share_gpus=sharing(env))


def sharing(env: Mapping[str, str] | None = None) -> bool:
    """Whether ranks may share GPUs (:data:`SHARE_ENV` set to 1, true or yes)."""
    env = os.environ if env is None else env
    return env.get(SHARE_ENV, "").strip().lower() in ("1", "true", "yes")


def _use_interface(address: str | None) -> None:
    """Make gloo and NCCL talk over the interface holding ``address`` (COPYCAT_LOCAL_ADDR)."""
    if not address:
        return
    import psutil

    for name, addrs in psutil.net_if_addrs().items():
        if any(a.address == address for a in addrs):
            os.environ.setdefault("GLOO_SOCKET_IFNAME", name)
            os.environ.setdefault("NCCL_SOCKET_IFNAME", name)
            return
    raise DistributedError(f"COPYCAT_LOCAL_ADDR {address!r} is not an address of this machine")


def no_buffer_sync() -> dict[str, bool]:
    """DDP's option not to broadcast buffers at every forward (newer PyTorch names it
    ``forward_sync_buffers``, older ``broadcast_buffers``): the network has no buffers of its own
    (no batch norm), and the tied space-to-depth form's index buffers are the same on every rank."""
    import inspect

    from torch.nn.parallel import DistributedDataParallel

    params = inspect.signature(DistributedDataParallel.__init__).parameters
    return {"forward_sync_buffers": False} if "forward_sync_buffers" in params else {"broadcast_buffers": False}


class _Scales(torch.nn.Module):
    """The network's multi-scale forward as ``forward`` (DDP hooks the wrapped module's forward)."""

    def __init__(self, net: torch.nn.Module) -> None:
        super().__init__()
        self.net = net

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        return self.net.forward_scales(x)


class _Quiet:
    """Summary and TensorBoard stand-in of the ranks that write nothing."""

    rows: list = []

    def __getattr__(self, name: str) -> Any:
        return lambda *args, **kwargs: None


class Group:
    """This rank's membership of the run: the process group, the heartbeat, and the hooks the
    :class:`~nodegraph.ml.train.Trainer` calls (share of the batch, DDP wrap, synchronised steps)."""

    def __init__(self, cfg: DistConfig, device: torch.device, node: str | None = None) -> None:
        import torch.distributed as dist

        self.cfg, self.rank, self.world, self.device, self.node = cfg, cfg.rank, cfg.world_size, device, node
        self.is_main = cfg.rank == 0
        self.ddp: Any = None
        self.step = 0
        _use_interface(cfg.local_addr)
        timeout = timedelta(seconds=cfg.timeout)
        where = f"{cfg.main_addr}:{cfg.main_port}"
        try:
            self.store = dist.TCPStore(cfg.main_addr, cfg.main_port, cfg.world_size,
                                       self.is_main and not cfg.agent_store, timeout=timeout, wait_for_workers=False)
        except (RuntimeError, OSError) as err:
            raise DistributedError(f"rank {self.rank}: cannot {'listen on' if self.is_main else 'reach'} the main "
                                   f"process at {where}: {str(err).splitlines()[0][:300]}", node=node) from None
        if device.type == "cuda":
            torch.cuda.set_device(device)
        try:
            backend = "nccl" if device.type == "cuda" and not cfg.share_gpus else "gloo"
            dist.init_process_group(backend, rank=self.rank,
                                    world_size=self.world, store=dist.PrefixStore("nodegraph-pg", self.store),
                                    timeout=timeout)
        except (RuntimeError, OSError) as err:
            raise DistributedError(f"rank {self.rank}: not every one of the {self.world} ranks joined at {where} "
                                   f"within {cfg.timeout:g}s: {str(err).splitlines()[0][:300]}", node=node) from None
        self._stop = threading.Event()
        self._beats = threading.Thread(target=self._beat, name="nodegraph-heartbeat", daemon=True)
        self._beats.start()

    # --- heartbeat and failures ----------------------------------------------------------------
    def _client(self) -> Any:
        import torch.distributed as dist

        return dist.TCPStore(self.cfg.main_addr, self.cfg.main_port, self.world, False,
                             timeout=timedelta(seconds=max(2 * HEARTBEAT, 5)))

    def _beat(self) -> None:
        try:
            store = self._client()
            while not self._stop.is_set():
                store.add(f"nodegraph/alive/{self.rank}", 1)
                self._stop.wait(HEARTBEAT)
        except Exception:  # the store (rank 0) is gone: the training loop's next collective says so
            return

    def stopped_ranks(self) -> list[int]:
        """Ranks whose heartbeat stood still for three beats (rank 0 when the store is gone)."""
        try:
            store = self._client()
            keys = {r: f"nodegraph/alive/{r}" for r in range(self.world) if r != self.rank}
            before = {r: store.add(k, 0) for r, k in keys.items()}
            time.sleep(3 * HEARTBEAT)
            return [r for r, k in keys.items() if store.add(k, 0) == before[r]]
        except Exception:  # the rendezvous store lives in rank 0
            return [0] if self.rank != 0 else []

    def failure(self, err: BaseException, trainer: Trainer | None) -> BaseException:
        """The error to raise for a failed collective: :class:`RankFailed` naming the rank that
        stopped, or ``err`` itself when every rank is alive."""
        stopped = self.stopped_ranks()
        if not stopped:
            return err
        which = ", ".join(map(str, stopped))
        plan = getattr(trainer, "plan", None)
        at = f" at step {self.step} of {plan.total_steps}" if plan is not None else ""
        ost = trainer.path(".ost") if trainer is not None and hasattr(trainer, "dir") else None
        resume = (f"; the last checkpoint and resume file {str(ost)!r} are kept: run the same command with "
                  "--resume to continue" if ost is not None else "")
        return RankFailed(f"rank {which} of {self.world} stopped (killed, crashed or unreachable){at}; rank "
                          f"{self.rank} stopped too{resume}", node=self.node, rank=stopped[0])

    # --- agreement before the first step ---------------------------------------------------------
    def agree_ready(self, error: BaseException | None) -> None:
        """Every rank learns whether every other one prepared; a failure anywhere stops all."""
        import torch.distributed as dist

        statuses: list[Any] = [None] * self.world
        dist.all_gather_object(statuses, None if error is None else str(error))
        if error is not None:
            raise error
        for rank, message in enumerate(statuses):
            if message is not None:
                raise DistributedError(f"rank {rank} could not start: {message}", node=self.node)

    def agree_plan(self, plan: Plan) -> None:
        """Rank 0's plan (batch, steps) for every rank; the batch must give each rank a crop."""
        import torch.distributed as dist

        fields = [(plan.batch_size, plan.total_steps, plan.start_step, plan.epochs)]
        dist.broadcast_object_list(fields, src=0)
        plan.batch_size, plan.total_steps, plan.start_step, plan.epochs = fields[0]
        check_batch(plan.batch_size, self.world, self.node)

    # --- the training step ---------------------------------------------------------------------
    def bounds(self, batch: int) -> tuple[int, int]:
        return self.rank * batch // self.world, (self.rank + 1) * batch // self.world

    def share(self, t: torch.Tensor) -> torch.Tensor:
        """This rank's slice of a batch every rank drew whole."""
        self._batch = t.shape[0]
        lo, hi = self.bounds(self._batch)
        return t[lo:hi]

    @property
    def weight(self) -> float:
        """This rank's share of the batch: its loss counts that much of the batch's."""
        lo, hi = self.bounds(self._batch)
        return (hi - lo) / self._batch

    def wrap(self, model: torch.nn.Module) -> Any:
        """The network's multi-scale forward under DDP (broadcasts rank 0's weights to all)."""
        from torch.nn.parallel import DistributedDataParallel

        ids = [self.device.index] if self.device.type == "cuda" else None
        self.ddp = DistributedDataParallel(_Scales(model), device_ids=ids, **no_buffer_sync())
        return self.ddp

    def backward_step(self, loss: torch.Tensor, opt: torch.optim.Optimizer, step: int, total: int,
                      checkpoint: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Backward of this rank's share; gradients are exchanged, clipped and applied only at sync
        points (every ``sync_interval`` steps, checkpoints and the end), accumulated between them
        (``no_sync``), so the weights stay the same on every rank. Returns (loss, gradient norm)."""
        count = step + 1
        self.step = count
        prev, end = sync_window(count, total, self.cfg.sync_interval, checkpoint)
        sync = end == count
        scaled = loss * (self.weight * self.world / (end - prev))  # DDP averages over the ranks
        with nullcontext() if sync else self.ddp.no_sync():
            scaled.backward()
        if not sync:
            return loss.detach(), torch.zeros((), device=loss.device)
        norm = torch.nn.utils.clip_grad_norm_(self.ddp.parameters(), GRAD_CLIP)
        opt.step()
        opt.zero_grad(set_to_none=True)
        return loss.detach(), norm

    def batch_mean(self, local_mean: torch.Tensor) -> torch.Tensor:
        """The whole batch's mean loss from each rank's mean over its share."""
        import torch.distributed as dist

        total = (local_mean * self.weight).to(self.device)
        dist.all_reduce(total)
        return total

    def agree_flag(self, flag: bool) -> bool:
        """The main rank's ``flag`` on every rank (e.g. its early-stop decision)."""
        import torch.distributed as dist

        t = torch.tensor([1 if flag else 0], dtype=torch.int32, device=self.device)
        dist.broadcast(t, src=0)
        return bool(t.item())

    def quiet_reports(self) -> tuple[Any, Any]:
        return _Quiet(), _Quiet()

    def close(self) -> None:
        import torch.distributed as dist

        self._stop.set()
        if dist.is_initialized():
            dist.destroy_process_group()


def sync_window(count: int, total: int, interval: int, checkpoint: int) -> tuple[int, int]:
    """The steps ``(prev, end]`` whose gradients are exchanged together with step ``count``
    (1-based): sync points are every ``interval`` steps, every checkpoint and the last step, so a
    checkpoint never holds gradients not yet applied."""
    def sync_point(c: int) -> bool:
        return c % interval == 0 or c >= total or c % checkpoint == 0

    prev = next((c for c in range(count - 1, 0, -1) if sync_point(c)), 0)
    return prev, next(c for c in range(count, total + 1) if sync_point(c))


def check_batch(batch: int, world: int, node: str | None) -> None:
    if batch < world:
        raise DistributedError(f"batch size {batch} is smaller than the {world} ranks (GPUs): each rank trains on "
                               f"batch / ranks crops, so the batch must be at least {world} (set batchSizeType "
                               f"manual and batchSize >= {world}, or use fewer GPUs)", node=node)


def rank_device(cfg: DistConfig, device: Any, node: Any) -> torch.device:
    """This rank's device: ``cuda:LOCAL_RANK`` for a CUDA run, else the CPU."""
    if device is None or str(device) == "auto":
        cuda = torch.cuda.is_available() and (device is not None or node.knobs.useGPUIfAvailable)
        dev = torch.device("cuda" if cuda else "cpu")
    else:
        dev = torch.device(device)
    if dev.type != "cuda":
        return dev
    count = torch.cuda.device_count()
    if cfg.local_rank >= count and not (cfg.share_gpus and count):
        raise DistributedError(f"rank {cfg.rank} is local rank {cfg.local_rank} but this host has {count} GPU(s) "
                               f"(set {SHARE_ENV}=1 to let ranks share them)", node=node.name)
    return torch.device("cuda", cfg.local_rank % count)


def run_rank(cfg: DistConfig, graph: Any, node: Any, *, device: Any = None, on_event: Any = None,
             **options: Any) -> TrainResult:
    """Train as rank ``cfg.rank`` of a data-parallel run; rank 0 writes the files and returns the
    full result (other ranks return theirs, without files)."""
    node = graph.node(node)
    group = Group(cfg, rank_device(cfg, device, node), node.path)
    trainer: Trainer | None = None
    try:
        trainer = Trainer(graph, node, device=group.device, dist=group,
                          on_event=on_event if group.is_main else None, **options)
        error = None
        try:
            trainer.prepare()
        except NodeGraphError as err:
            error = err
        group.agree_ready(error)
        group.agree_plan(trainer.plan)
        result = trainer.run()
        import torch.distributed as dist

        dist.barrier()  # the others finish once rank 0 has written the model
        return result
    except RuntimeError as err:  # a collective failed: name the rank that stopped
        raise group.failure(err, trainer) from None
    finally:
        group.close()


# --- one host: spawned ranks -----------------------------------------------------------------------
def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _spawned(rank: int, world: int, port: int, doc: dict, node: str, device: Any, options: dict,
             out: Any, forward: bool) -> None:
    """A spawned rank: load the graph, train, report to the launcher through ``out``."""
    from nodegraph.graph import Graph

    if device is not None and torch.device(device).type == "cpu":
        torch.set_num_threads(max(1, (os.cpu_count() or 1) // world))
    cfg = DistConfig(rank, world, "127.0.0.1", port, local_rank=rank, local_addr="127.0.0.1",
                     sync_interval=int(os.environ.get("COPYCAT_SYNC_INTERVAL", "1") or 1),
                     timeout=float(os.environ.get(TIMEOUT_ENV, DEFAULT_TIMEOUT)), share_gpus=sharing())
    on_event = (lambda kind, info: out.put(("event", kind, info))) if forward and rank == 0 else None
    try:
        result = run_rank(cfg, Graph.from_dict(doc), node, device=device, on_event=on_event, **options)
        out.put(("result", rank, result if rank == 0 else None))
    except TrainingInterrupted as stop:
        out.put(("interrupted", rank, stop.result))
    except KeyboardInterrupt:
        out.put(("interrupted", rank, None))
    except NodeGraphError as err:
        out.put(("error", rank, str(err)))
    except BaseException as err:  # anything else still reaches the user, named by rank
        out.put(("error", rank, f"{type(err).__name__}: {err}"))


def launch(graph: Any, node: Any, gpus: int, *, device: Any = None, on_event: Any = None,
           **options: Any) -> TrainResult:
    """Train on ``gpus`` spawned processes of this host (one per GPU; CPU processes on
    ``device="cpu"``); returns rank 0's result. A rank that dies stops the others (they name it)."""
    node = graph.node(node)
    cpu = device is not None and torch.device(device).type == "cpu"
    if not cpu and torch.cuda.device_count() < gpus and not (sharing() and torch.cuda.device_count()):
        raise DistributedError(f"{gpus} GPUs asked for but this host has {torch.cuda.device_count()}; "
                               f"use --device cpu for CPU processes (or {SHARE_ENV}=1 to let ranks share "
                               "GPUs, for checks)", node=node.path)
    if node.knobs.batchSizeType == "manual":
        check_batch(int(node.knobs.batchSize), gpus, node.path)
    ctx = mp.get_context("spawn")
    out = ctx.Queue()
    port = _free_port()
    args = (gpus, port, graph.to_dict(), node.path, None if device is None else str(device), options, out,
            on_event is not None)
    procs = [ctx.Process(target=_spawned, args=(rank, *args), name=f"nodegraph-rank{rank}") for rank in range(gpus)]
    for p in procs:
        p.start()
    if on_event is not None:
        on_event("ranks", {"pids": {rank: p.pid for rank, p in enumerate(procs)}})
    reports: dict[int, tuple] = {}
    interrupted = False
    deadline = None
    while True:
        try:
            msg = out.get(timeout=0.2)
        except queue_mod.Empty:
            if all(p.exitcode is not None for p in procs):
                break
            dead = [p for p in procs if p.exitcode not in (None, 0)]
            if dead and deadline is None:  # the others stop by themselves; never wait past their timeout
                deadline = time.monotonic() + float(os.environ.get(TIMEOUT_ENV, DEFAULT_TIMEOUT)) + 30
            if deadline is not None and time.monotonic() > deadline:
                for p in procs:
                    if p.exitcode is None:
                        p.kill()
            continue
        except KeyboardInterrupt:  # the ranks got Ctrl-C too: rank 0 saves, then all stop
            interrupted = True
            continue
        if msg[0] == "event":
            if on_event is not None:
                on_event(msg[1], msg[2])
        else:
            reports[msg[1]] = msg
    for p in procs:
        p.join()
    first = reports.get(0)
    if first is not None and first[0] == "result":
        return first[2]
    if first is not None and first[0] == "interrupted" and first[2] is not None:
        raise TrainingInterrupted(first[2])
    if interrupted and not any(r[0] == "error" for r in reports.values()):
        raise KeyboardInterrupt
    problems = []
    for rank, p in enumerate(procs):
        if rank not in reports:
            how = f"was killed by signal {-p.exitcode}" if p.exitcode < 0 else f"exited with code {p.exitcode}"
            problems.append(f"rank {rank} {how}")
    problems += [f"rank {rank}: {msg[2]}" for rank, msg in sorted(reports.items()) if msg[0] == "error"]
    raise DistributedError("distributed training failed: " + "; ".join(problems), node=node.path)


__all__ = ["DistConfig", "DistributedError", "Group", "RankFailed", "check_batch", "launch", "rank_device",
           "run_rank", "sync_window"]
