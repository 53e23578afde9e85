"""Evaluator overhead per node: a 200-node chain of cheap nodes on a 64x64 RGBA image.

Peer: the same 200 torch operations called directly in a Python loop (what the nodes compute).
The difference divided by the chain length is what the graph machinery costs per node: hashing
(Merkle, with knob digests cached), planning, cache look-ups and stores, contexts.
Target: <= 30 us per node.

Animated knobs: the same chain with every node's ``value`` knob holding a two-key linear curve,
then an expression reading the frame (``1.001 + 0 * frame``), then an expression reading the
knob of one controller node (``Ctl.rotate``, as many nodes of a comp read one control); the extra time per node over the still chain is the cost of
one animated knob (resolving it at the frame, validating the value, and the per-frame node view).

    python benchmarks/evaluator_overhead.py [--nodes 200] [--repeats 30]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))
from _util import best_of, write_result  # noqa: E402

import nodegraph as ng  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--nodes", type=int, default=200)
    ap.add_argument("--repeats", type=int, default=30)
    args = ap.parse_args()
    torch.set_num_threads(1)

    from nodegraph.curve import Curve, Key
    from nodegraph.expression import Expression

    def chain(kind: str) -> tuple[ng.Graph, ng.Node]:
        g = ng.Graph()
        node = g.add("Constant", color=(0.5, 0.25, 0.125, 1.0), format="64x64")
        if kind == "reference":
            g.add("Transform", "Ctl", rotate=1.001)
        for i in range(args.nodes):
            node = g.add("Add" if i % 2 else "Multiply", input=node, value=1.001)
            if kind == "curve":
                node.set(value=Curve([Key(1, 1.0, "linear"), Key(100000, 1.002, "linear")]))
            elif kind == "expression":
                node.set(value=Expression("1.001 + 0 * frame"))
            elif kind == "reference":
                node.set(value=Expression("Ctl.rotate"))
        return g, node

    def animated_cost(kind: str) -> dict:
        ga, lasta = chain(kind)
        eva = ga.evaluator
        fr = [1]

        def unc() -> None:
            eva.cache.clear()
            fr[0] += 1
            ga.evaluate(lasta, fr[0])

        def hwalk() -> None:
            fr[0] += 1
            eva.hash(lasta, fr[0])

        unc()
        tu, _ = best_of(unc, args.repeats)
        th, _ = best_of(hwalk, args.repeats)
        return {"uncached_s": tu, "hash_walk_s": th}

    g, last = chain("still")
    ev = g.evaluator

    def uncached() -> None:
        ev.cache.clear()
        g.evaluate(last, 1)

    frame = [1]

    def cached() -> None:  # everything cached: only hashing and one look-up
        g.evaluate(last, 1)

    def new_frame_hash() -> None:  # hashing a new frame: the full Merkle walk, no compute
        frame[0] += 1
        ev.hash(last, frame[0])

    base = g.evaluate(g["Constant1"], 1).pixels

    def plain() -> None:
        x = base
        for i in range(args.nodes):
            x = (x + 1.001) if i % 2 else (x * 1.001)

    for fn in (uncached, cached, plain):
        fn()
    t_graph, _ = best_of(uncached, args.repeats)
    t_cached, _ = best_of(cached, args.repeats)
    t_hash, _ = best_of(new_frame_hash, args.repeats)
    t_plain, _ = best_of(plain, args.repeats)
    n = args.nodes
    per_node_us = (t_graph - t_plain) / n * 1e6
    animated = {kind: animated_cost(kind) for kind in ("curve", "expression", "reference")}
    for kind, r in animated.items():
        r["extra_per_animated_knob_us"] = (r["uncached_s"] - t_graph) / n * 1e6
        r["extra_hash_walk_per_animated_knob_us"] = (r["hash_walk_s"] - t_hash) / n * 1e6
    write_result("evaluator_overhead", {
        "nodes": n, "image": "64x64 RGBA float32", "repeats": args.repeats,
        "graph_uncached_s": t_graph, "graph_cached_s": t_cached, "hash_walk_s": t_hash,
        "plain_torch_s": t_plain,
        "overhead_per_node_us": per_node_us,
        "total_per_node_us": t_graph / n * 1e6,
        "cached_per_node_us": t_cached / n * 1e6,
        "target_us": 30.0, "meets_target": per_node_us <= 30.0,
        "animated_value_knob": animated,
    })


if __name__ == "__main__":
    main()
