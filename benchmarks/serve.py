"""ML server: requests/s and latency percentiles for an HD frame through the medium network,
served (``nodegraph serve`` on loopback, RemoteInference nodes as clients) vs the local Inference
node, in the same run on the same GPU.

- ``local``: the Inference node computing a frame whose pixels are in host memory (as a render
  on a GPU machine reads them from disk): upload, network, download; one frame after another.
- ``served``: RemoteInference nodes sending the same frame to an in-process server over
  127.0.0.1 (float32 planar over TCP, the protobuf messages, the server's queue and batching),
  with 1, then several concurrent clients (each a thread, one request at a time).
Latencies are per frame (client side); requests/s counts completed frames over the wall time.
The served/local ratio at one client is the price of the protocol; with several clients the
server batches requests of the same shape into one forward.

    python benchmarks/serve.py [--frames 30] [--clients 1,4,8] [--precisions float32,half]
                               [--width 1920 --height 1080] [--size medium] [--device cuda]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))
from _util import peak_rss_mib, write_result  # noqa: E402

import nodegraph as ng  # noqa: E402
from nodegraph.image import Format, Image  # noqa: E402
from nodegraph.ml.modelfile import save_cat  # noqa: E402
from nodegraph.ml.network import NetworkConfig, build_network  # noqa: E402
from nodegraph.serve import Catalog, MLServer, ServerConfig  # noqa: E402
from nodegraph.testing import compute_node  # noqa: E402


def percentiles(latencies: list[float]) -> dict[str, float]:
    ms = sorted(t * 1000 for t in latencies)
    q = statistics.quantiles(ms, n=100, method="inclusive") if len(ms) > 1 else ms * 99
    return {"p50_ms": q[49], "p90_ms": q[89], "p99_ms": q[98], "min_ms": ms[0], "max_ms": ms[-1]}


def measure(fn, clients: int, frames: int, device: str) -> dict[str, float]:
    """``clients`` threads each calling ``fn`` ``frames`` times after one warm-up call each."""
    latencies: list[float] = []
    lock = threading.Lock()
    start = threading.Barrier(clients + 1)

    def worker() -> None:
        fn()
        start.wait()
        for _ in range(frames):
            t0 = time.perf_counter()
            fn()
            with lock:
                latencies.append(time.perf_counter() - t0)

    threads = [threading.Thread(target=worker) for _ in range(clients)]
    for t in threads:
        t.start()
    start.wait()
    t0 = time.perf_counter()
    for t in threads:
        t.join()
    wall = time.perf_counter() - t0
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    return {"clients": clients, "frames": len(latencies), "requests_per_s": len(latencies) / wall,
            **percentiles(latencies)}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--frames", type=int, default=30, help="frames per client")
    ap.add_argument("--clients", default="1,4,8")
    ap.add_argument("--precisions", default="float32,half")
    ap.add_argument("--width", type=int, default=1920)
    ap.add_argument("--height", type=int, default=1080)
    ap.add_argument("--size", default="medium")
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--name", default="serve")
    args = ap.parse_args()
    w, h = args.width, args.height
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        config = NetworkConfig(3, 3, size=args.size)
        save_cat(folder / "bench.cat", build_network(config), config=config, channels_in=list(ng.channels.RGB),
                 channels_out=list(ng.channels.RGB), model_id=f"bench-{args.size}")
        fmt = Format.of_size(w, h)
        torch.manual_seed(0)
        img = Image(torch.rand(3, h, w) * 2, ng.channels.RGB, fmt.display, fmt)  # host memory, as read
        for half in [p == "half" for p in args.precisions.split(",")]:
            precision = "half" if half else "float32"
            local = ng.registry.get("Inference")("Local", modelFile=str(folder / "bench.cat"), halfPrecision=half)
            row = {"precision": precision,
                   "local": measure(lambda: compute_node(local, input=img, device=args.device), 1, args.frames,
                                    args.device)}
            print(precision, "local", row["local"], file=sys.stderr, flush=True)
            server = MLServer(Catalog([folder]), ServerConfig(port=0, device=args.device, half=half)).start()
            try:
                host, port = server.address
                served = []
                for clients in [int(c) for c in args.clients.split(",")]:
                    nodes = threading.local()

                    def call() -> Image:
                        node = getattr(nodes, "node", None)
                        if node is None:
                            node = nodes.node = ng.registry.get("RemoteInference")(
                                "Remote", host=host, port=port, model="bench", maxMessageBytes=1 << 30)
                        return compute_node(node, input=img)

                    result = measure(call, clients, args.frames, args.device)
                    served.append(result)
                    print(precision, "served", result, file=sys.stderr, flush=True)
                remote = compute_node(ng.registry.get("RemoteInference")(
                    "Remote", host=host, port=port, model="bench", maxMessageBytes=1 << 30), input=img)
                here = compute_node(local, input=img, device=args.device)
                row["max_abs_difference_served_vs_local"] = float((remote.pixels - here.pixels).abs().max())
                row["batch_sizes_run"] = {str(k): v for k, v in sorted(server.batcher.batches.items())}
            finally:
                server.stop()
            row["served"] = served
            one = next((s for s in served if s["clients"] == 1), None)
            if one:
                row["served_over_local_latency_p50_at_1_client"] = one["p50_ms"] / row["local"]["p50_ms"]
            best = max(served, key=lambda s: s["requests_per_s"])
            row["best_served_requests_per_s"] = best["requests_per_s"]
            row["best_served_clients"] = best["clients"]
            rows.append(row)
    write_result(args.name, {"network": args.size, "resolution": [w, h], "device": args.device,
                             "frames_per_client": args.frames, "rows": rows, "peak_rss_mib": peak_rss_mib()})


if __name__ == "__main__":
    main()
