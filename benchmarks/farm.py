"""Farm rendering on Dask: the keying tree (examples/keying_tree.py) on 1 worker vs N, on this machine.

The tree (Read plate + hint, Shuffle2, a Keyer standing in for the model, Colorspace, Premult, Merge
over an animated Constant, two EXR Writes: comp and a multi-layer passes file) is rendered over a
procedural 960x540 shot with ``render(graph, client=...)`` on a LocalCluster of worker processes
(one Dask thread each, the host's cores split between their torch threads). Each configuration is
timed from submitting the first frame to the last result (the cluster is started before and its
start time reported apart), best of ``--rounds`` after one warm-up render that loads the graph on
every worker. The peer is the same render in this process without Dask (``render(graph,
workers=1)``), so the Dask overhead shows too. Scaling efficiency = T(1 worker) / (N x T(N workers));
``efficiency_vs_in_process`` = T(in process) / (N x T(N workers)). Minor page faults per render (the
workers' summed) are recorded too: they showed why a Dask worker was slower (see
``nodegraph.farm._heap_for_images``).

    python benchmarks/farm.py [--workers 1,2] [--frames 24] [--rounds 3] [--name farm] [--note TEXT]
"""

from __future__ import annotations

import argparse
import importlib.util
import resource
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


def faults() -> int:
    """Minor page faults of the calling process so far (run on each worker with ``client.run``)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--workers", default="1,2", help="worker counts to measure, e.g. 1,4,8,16")
    ap.add_argument("--frames", type=int, default=24)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--name", default="farm", help="results file name (benchmarks/results/NAME.json)")
    ap.add_argument("--note", default="", help="a remark kept in the results (how the machine was loaded...)")
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
        f0 = faults()
        local = min(timed(workers=1) for _ in range(args.rounds))
        local_faults = (faults() - f0) // args.rounds
        runs = {}
        for n in counts:
            t0 = time.perf_counter()
            with local_cluster(n) as cluster, Client(cluster) as client:
                client.wait_for_workers(n)
                start = time.perf_counter() - t0
                timed(client=client)  # warm-up: every worker loads the graph
                f0 = sum(client.run(faults).values())
                times = [timed(client=client) for _ in range(args.rounds)]
                worker_faults = (sum(client.run(faults).values()) - f0) // args.rounds
            runs[n] = {"seconds": min(times), "all_seconds": [round(t, 3) for t in times],
                       "frames_per_s": jobs / min(times), "cluster_start_s": round(start, 2),
                       "worker_minor_faults_per_render": worker_faults}
            print(f"{n} worker(s): {min(times):.2f}s ({jobs / min(times):.2f} frames/s)", flush=True)
        base = runs[counts[0]]["seconds"] * counts[0]
        for n, run in runs.items():
            run["speedup_vs_first"] = runs[counts[0]]["seconds"] / run["seconds"]
            run["efficiency"] = base / (n * run["seconds"])
            run["efficiency_vs_in_process"] = local / (n * run["seconds"])
        write_result(args.name, {
            "what": f"keying tree, 960x540, {args.frames} frames x 2 Writes ({jobs} EXR files) on a Dask "
                    "LocalCluster of N worker processes; efficiency = T(first) x first / (N x T(N))",
            "frames": args.frames, "rounds": args.rounds,
            "peer_in_process_render_s": local, "peer_frames_per_s": jobs / local,
            "peer_minor_faults_per_render": local_faults,
            "workers": {str(n): run for n, run in runs.items()},
            **({"note": args.note} if args.note else {}),
        })
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
