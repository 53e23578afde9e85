"""Pull-based, per-frame evaluation with Merkle hashing and an LRU image cache.

To evaluate ``(node, frame)`` the evaluator first walks what each node *declares* it needs
(``Node.needs``: input name and frame) and hashes bottom-up: a node's hash is its type and knob
digest, any per-frame extra (file size and mtime for readers) and its needs' hashes. Then it
computes only what is not cached, bottom-up, without recursion (deep chains are fine).

A node may only pull what it declared: an input pulled at a frame ``needs`` did not name would
not be in the hash, so after an upstream change the cache would serve a stale image. Such a pull
raises ``EvaluationError`` naming the node, input and frame, instead of being served silently.
"""

from __future__ import annotations

import hashlib
import threading
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import torch

from .cache import DEFAULT_CACHE_BYTES, ImageCache
from .errors import EvaluationError, GraphError, NodeGraphError
from .image import Image

if TYPE_CHECKING:  # pragma: no cover
    from .graph import Graph
    from .node import Node

Key = tuple[str, int]


def resolve_device(device: str | torch.device | None) -> torch.device:
    if device is None or device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dev = torch.device(device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise NodeGraphError("device 'cuda' was asked for but no CUDA device is available")
    return dev


class Context:
    """What a node sees while computing one frame: frame, device, precision and its inputs."""

    __slots__ = ("frame", "device", "dtype", "node", "connected", "_evaluator", "_results", "_needs", "_sealed")

    def __init__(self, evaluator: "Evaluator", node: "Node", frame: int, device: torch.device,
                 dtype: torch.dtype, connected: dict[str, "Node"]) -> None:
        self.frame = frame
        self.device = device
        self.dtype = dtype
        self.node = node
        self.connected = connected
        self._evaluator = evaluator
        self._results: dict[tuple[str, int], Image] = {}
        self._needs: list[tuple[str, int]] = []
        #: Set while the evaluator computes the node: only declared needs may be pulled then.
        self._sealed = False

    def has_input(self, name: str) -> bool:
        return name in self.connected

    def input(self, name: str, frame: int | None = None) -> Image | None:
        """The image of input ``name`` at ``frame`` (default: this frame); None if unconnected."""
        frame = self.frame if frame is None else frame
        img = self._results.get((name, frame))
        if img is not None:
            return img
        src = self.connected.get(name)
        if src is None:
            self.node.input_spec(name)  # unknown input name -> GraphError
            return None
        if self._sealed:
            raise EvaluationError(
                f"pulled input {name!r} at frame {frame}, which needs() did not declare (declared: "
                f"{', '.join(f'{n}@{f}' for n, f in self._needs) or 'nothing'}); an undeclared pull is "
                "not in the hash, so the cache could serve a stale image: declare it in needs()",
                node=self.node.path, frame=self.frame)
        img = self._evaluator.evaluate(src, frame, device=self.device, dtype=self.dtype)
        self._results[(name, frame)] = img
        return img

    def input_range(self, name: str) -> tuple[int, int] | None:
        """The frame range of input ``name`` (None if unconnected or it has none, e.g. a generator)."""
        src = self.connected.get(name)
        return None if src is None else self._evaluator.frame_range(src)

    def at(self, frame: int) -> "Context":
        """A context for another frame of the same node (used by ``needs`` of time nodes)."""
        return Context(self._evaluator, self.node, frame, self.device, self.dtype, self.connected)


@dataclass
class Stats:
    """Compute counters per node name: ``ran`` (computed) and ``cached`` (served from cache)."""

    ran: Counter = field(default_factory=Counter)
    cached: Counter = field(default_factory=Counter)

    def reset(self) -> None:
        self.ran.clear()
        self.cached.clear()


class Evaluator:
    """Evaluates frames of a graph, caching images by hash."""

    def __init__(self, graph: "Graph", cache: ImageCache | None = None, *, max_cache_bytes: int | None = None,
                 admit_on_reuse: bool = False) -> None:
        self.graph = graph
        self.cache = cache if cache is not None else ImageCache(
            DEFAULT_CACHE_BYTES if max_cache_bytes is None else max_cache_bytes, admit_on_reuse=admit_on_reuse)
        self.stats = Stats()
        self.stats_lock = threading.Lock()  # renders evaluate frames on several threads

    # --- public -----------------------------------------------------------------------------
    def evaluate(self, ref: "Node | str", frame: int = 1, *, device: str | torch.device | None = None,
                 dtype: torch.dtype | None = None) -> Image:
        node = self.graph.node(ref)
        dev = device if isinstance(device, torch.device) else resolve_device(device if device is not None else "cpu")
        dt = dtype or torch.float32
        plan = _Plan(self, dev, dt)
        root = plan.walk(node, int(frame))
        return plan.run(root)

    def evaluate_batch(self, ref: "Node | str", frames: list[int], *, device: str | torch.device | None = None,
                       dtype: torch.dtype | None = None) -> list[Image]:
        """Frames of one node, the uncached ones computed together through ``Node.compute_batch``.

        Inputs are pulled frame by frame as usual; the results are stored in the cache even when
        it admits on reuse, since they were computed ahead to be pulled right after (a render
        batching Inference frames)."""
        node = self.graph.node(ref)
        dev = device if isinstance(device, torch.device) else resolve_device(device if device is not None else "cpu")
        dt = dtype or torch.float32
        out: list[Image | None] = [None] * len(frames)
        todo: list[tuple[int, _Plan, Key]] = []
        for i, f in enumerate(frames):
            plan = _Plan(self, dev, dt)
            key = plan.walk(node, int(f))
            if key[0] != node.path or node.animated:  # a pass-through, or knobs that differ per frame
                out[i] = plan.run(key)
                continue
            img = self.cache.get((plan.hashes[key], plan.suffix))
            if img is not None:
                with self.stats_lock:
                    self.stats.cached[node.path] += 1
                out[i] = img
            else:
                todo.append((i, plan, key))
        if todo:
            ctxs = []
            for _, plan, key in todo:
                ctx = plan.contexts[key]
                for inp, dkey in plan.deps[key]:
                    src = ctx.connected[inp]
                    ctx._results[(inp, dkey[1])] = self.evaluate(src, dkey[1], device=dev, dtype=dt)
                ctx._sealed = True
                ctxs.append(ctx)
            try:
                images = node.compute_batch(ctxs)
            except NodeGraphError as err:
                raise err.with_context(node=node.path, frame=ctxs[0].frame)
            except torch.cuda.OutOfMemoryError:
                raise
            except Exception as err:
                raise EvaluationError(f"{type(err).__name__}: {err}", node=node.path, frame=ctxs[0].frame) from err
            for (i, plan, key), ctx, img in zip(todo, ctxs, images):
                if img.device != dev or (img.dtype != dt and img.dtype.is_floating_point):
                    img = img.to(dev, dt)
                self.cache.put((plan.hashes[key], plan.suffix), img, force=True)
                with self.stats_lock:
                    self.stats.ran[node.path] += 1
                ctx._results.clear()
                out[i] = img
        return out  # type: ignore[return-value]

    def hash(self, ref: "Node | str", frame: int = 1) -> str:
        """The Merkle hash of a node at a frame, as hex."""
        node = self.graph.node(ref)
        plan = _Plan(self, torch.device("cpu"), torch.float32)
        return plan.hashes[plan.walk(node, int(frame))].hex()

    def frame_range(self, ref: "Node | str") -> tuple[int, int] | None:
        node = self.graph.node(ref)
        memo: dict[str, tuple[int, int] | None] = {}
        order = self._upstream_order(node)
        for n in order:
            ranges = {inp: memo[src.path] for inp, src in n.graph.sources_of(n).items()}
            memo[n.path] = n.frame_range(ranges)
        return memo[node.path]

    def _upstream_order(self, node: "Node") -> list["Node"]:
        order: list[Node] = []
        state: dict[str, int] = {}
        stack: list[tuple[Node, bool]] = [(node, False)]
        while stack:
            n, done = stack.pop()
            p = n.path
            if done:
                state[p] = 2
                order.append(n)
                continue
            if state.get(p) == 2:
                continue
            if state.get(p) == 1:
                raise GraphError("graph has a cycle through this node", node=p)
            state[p] = 1
            stack.append((n, True))
            for src in n.graph.sources_of(n).values():
                if state.get(src.path) != 2:
                    stack.append((src, False))
        return order


class _Plan:
    """One evaluation: the needs DAG with hashes, then bottom-up computation."""

    def __init__(self, ev: Evaluator, device: torch.device, dtype: torch.dtype) -> None:
        self.ev = ev
        self.graph = ev.graph
        self.device = device
        self.dtype = dtype
        self.hashes: dict[Key, bytes] = {}
        self.deps: dict[Key, list[tuple[str, Key]]] = {}
        self.alias: dict[Key, Key] = {}  # pass-through nodes resolve to their input's key
        self._by_hash: dict[tuple[str, bytes], Key] = {}
        self.contexts: dict[Key, Context] = {}
        self.suffix = f"{device}|{dtype}".encode()

    def _context(self, node: "Node", frame: int) -> Context:
        return Context(self.ev, node, frame, self.device, self.dtype, node.graph.sources_of(node))

    def walk(self, node: "Node", frame: int) -> Key:
        """Hash every (node, frame) reachable through declared needs; returns the resolved root key."""
        root: Key = (node.path, frame)
        visiting: set[Key] = set()
        stack: list[tuple[Node, int, bool]] = [(node, frame, False)]
        while stack:
            n, f, expanded = stack.pop()
            p = n.path
            key = (p, f)
            if key in self.hashes or key in self.alias:
                continue
            if not expanded:
                if key in visiting:
                    raise GraphError("graph has a cycle through this node", node=p, frame=f)
                visiting.add(key)
                if n.animated:  # compute and hash the node with its knobs resolved at this frame
                    try:
                        n = n.at_frame(f)
                    except NodeGraphError as err:
                        raise err.with_context(node=p, frame=f)
                ctx = self._context(n, f)
                self.contexts[key] = ctx
                for spec in n.inputs:
                    if spec.required and spec.name not in ctx.connected:
                        raise GraphError(f"required input {spec.name!r} is not connected", node=p, frame=f)
                try:
                    through = n.through(ctx)
                    needs = [(through, f)] if through is not None else list(n.needs(ctx))
                except NodeGraphError as err:
                    raise err.with_context(node=p, frame=f)
                deps = []
                sources = []
                for inp, nf in needs:
                    src = ctx.connected.get(inp)
                    if src is None:
                        continue
                    deps.append((inp, (src.path, int(nf))))
                    sources.append(src)
                ctx._needs = [(inp, dkey[1]) for inp, dkey in deps]
                if through is not None and not deps:
                    raise GraphError(f"input {through!r} to pass through is not connected", node=p, frame=f)
                self.deps[key] = deps
                stack.append((n, f, True))
                for src, (_, skey) in zip(sources, deps):
                    if skey not in self.hashes and skey not in self.alias:
                        stack.append((src, skey[1], False))
                continue
            visiting.discard(key)
            deps = self.deps[key]
            ctx = self.contexts[key]
            n = ctx.node
            if n.through(ctx) is not None:
                target = self._resolve(deps[0][1])
                self.alias[key] = target
                continue
            h = hashlib.blake2b(n.static_digest(), digest_size=16)
            try:
                h.update(n.hash_extra(ctx))
            except NodeGraphError as err:
                raise err.with_context(node=p, frame=f)
            for inp, dkey in deps:
                h.update(inp.encode())
                h.update(self.hashes[self._resolve(dkey)])
            digest = h.digest()
            twin = self._by_hash.get((p, digest))
            if twin is not None:  # the same node at another frame with the same hash (a still
                self.alias[key] = twin  # input read at several frames): computed once
                continue
            self._by_hash[(p, digest)] = key
            self.hashes[key] = digest
        return self._resolve(root)

    def _resolve(self, key: Key) -> Key:
        while key in self.alias:
            key = self.alias[key]
        return key

    def run(self, root: Key) -> Image:
        ev = self.ev
        cache = ev.cache
        results: dict[Key, Image] = {}
        # First find what must be computed (what is not cached), dependencies first, and how many
        # consumers each image has; only then compute. Counting consumers up front keeps a shared
        # input in hand until its last consumer ran, so it is never computed twice in one
        # evaluation, even when the cache is too small to hold it (a diamond chain with the
        # cache off would otherwise recompute exponentially often).
        order: list[Key] = []
        pending: dict[Key, int] = defaultdict(int)
        seen: set[Key] = set()
        stack: list[tuple[Key, bool]] = [(root, False)]
        while stack:
            key, expanded = stack.pop()
            if expanded:
                order.append(key)
                continue
            if key in seen:
                continue
            seen.add(key)
            img = cache.get((self.hashes[key], self.suffix))
            if img is not None:
                with ev.stats_lock:
                    ev.stats.cached[key[0]] += 1
                results[key] = img
                continue
            stack.append((key, True))
            for _, dkey in self.deps[key]:
                rkey = self._resolve(dkey)
                pending[rkey] += 1
                if rkey not in seen:
                    stack.append((rkey, False))
        for key in order:
            ctx = self.contexts[key]
            node = ctx.node
            for inp, dkey in self.deps[key]:
                ctx._results[(inp, dkey[1])] = results[self._resolve(dkey)]
            img = self._compute(node, ctx)
            with ev.stats_lock:
                ev.stats.ran[key[0]] += 1
            cache.put((self.hashes[key], self.suffix), img)
            results[key] = img
            ctx._results.clear()
            for _, dkey in self.deps[key]:  # drop intermediate images once their last consumer ran
                rkey = self._resolve(dkey)
                pending[rkey] -= 1
                if pending[rkey] <= 0 and rkey != root:
                    results.pop(rkey, None)
        return results[root]

    def _compute(self, node: "Node", ctx: Context) -> Image:
        ctx._sealed = True
        try:
            img = node.compute(ctx)
        except NodeGraphError as err:
            raise err.with_context(node=node.path, frame=ctx.frame)
        except torch.cuda.OutOfMemoryError:
            raise
        except Exception as err:  # a node bug or a library failure: keep the cause, name the place
            raise EvaluationError(f"{type(err).__name__}: {err}", node=node.path, frame=ctx.frame) from err
        if not isinstance(img, Image):
            raise EvaluationError(f"compute returned {type(img).__name__}, not an Image", node=node.path,
                                  frame=ctx.frame)
        if img.device != ctx.device or (img.dtype != ctx.dtype and img.dtype.is_floating_point):
            img = img.to(ctx.device, ctx.dtype)
        return img


__all__ = ["Context", "Evaluator", "Stats", "resolve_device"]
