"""Farm rendering on Dask: the keying tree (examples/keying_tree.py) on 1 worker vs N, on this machine.

The tree (Read plate + hint, Shuffle2, a Keyer standing in for the model, Colorspace, Premult, Merge
over an animated Constant, two EXR Writes: comp and a multi-layer passes file) is rendered over a
procedural 960x540 shot with ``render(graph, client=...)`` on a LocalCluster of worker processes
(one Dask thread each, the host's cores split between their torch threads). Each configuration is
timed from submitting the first frame to the last result (the cluster is started before and its
start time reported apart), best of ``--rounds`` after one warm-up render that loads the graph on
every worker. The peer is the same render in this process without Dask (``render(graph,
workers=1)``), so the Dask overhead shows too. Scaling efficiency = T(1 worker) / (N x T(N workers)).

    python benchmarks/farm.py [--workers 1,2] [--frames 24] [--rounds 3] [--name farm]
"""

from __future__ import annotations

import argparse
import importlib.util
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from _util import write_result  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


def keying_tree(frames: int):
    """The example's module with its shot lengthened to ``frames`` frames."""
    spec = importlib.util.spec_from_file_location("keying_tree", ROOT / "examples" / "keying_tree.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    module.LAST = module.FIRST + frames - 1
    return module


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--workers", default="1,2", help="worker counts to measure, e.g. 1,4,8,16")
    ap.add_argument("--frames", type=int, default=24)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--name", default="farm", help="results file name (benchmarks/results/NAME.json)")
    args = ap.parse_args()
    counts = [int(n) for n in args.workers.split(",")]

    from nodegraph.farm import local_cluster
    from nodegraph.render import render
    from distributed import Client

    kt = keying_tree(args.frames)
    work = Path(tempfile.mkdtemp(prefix="farm-bench-"))
    try:
        plate, hint = kt.make_shot(work / "shot")
        graph = kt.build(plate, hint, str(work / "render"))
        jobs = 2 * args.frames

        def timed(**kw) -> float:
            t0 = time.perf_counter()
            result = render(graph, **kw)
            seconds = time.perf_counter() - t0
            result.raise_for_failures()
            assert len(result.written) == jobs
            return seconds

        timed(workers=1)  # warm-up: imports, OCIO processors
        local = min(timed(workers=1) for _ in range(args.rounds))
        runs = {}
        for n in counts:
            t0 = time.perf_counter()
            with local_cluster(n) as cluster, Client(cluster) as client:
                client.wait_for_workers(n)
                start = time.perf_counter() - t0
                timed(client=client)  # warm-up: every worker loads the graph
                times = [timed(client=client) for _ in range(args.rounds)]
            runs[n] = {"seconds": min(times), "all_seconds": [round(t, 3) for t in times],
                       "frames_per_s": jobs / min(times), "cluster_start_s": round(start, 2)}
            print(f"{n} worker(s): {min(times):.2f}s ({jobs / min(times):.2f} frames/s)", flush=True)
        base = runs[counts[0]]["seconds"] * counts[0]
        for n, run in runs.items():
            run["speedup_vs_first"] = runs[counts[0]]["seconds"] / run["seconds"]
            run["efficiency"] = base / (n * run["seconds"])
        write_result(args.name, {
            "what": f"keying tree, 960x540, {args.frames} frames x 2 Writes ({jobs} EXR files) on a Dask "
                    "LocalCluster of N worker processes; efficiency = T(first) x first / (N x T(N))",
            "frames": args.frames, "rounds": args.rounds,
            "peer_in_process_render_s": local, "peer_frames_per_s": jobs / local,
            "workers": {str(n): run for n, run in runs.items()},
        })
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
