"""Where the Inference node's time goes: per-variant frames/s and a GPU kernel breakdown.

A diagnostic companion to ``inference_speed.py`` (same model, same FLOP count, same matmul
ceiling measured in the same run). For one network size at one resolution in half precision it
times the Inference node

- eager, with the network as saved and in its space-to-depth form (``--eager off,on``;
  ``nodegraph.ml.network.space_to_depth``, what the node uses on CUDA);
- compiled in each mode named by ``--modes`` (``default``, ``max-autotune-no-cudagraphs``,
  ``max-autotune``, ...) for each number of frames per call in ``--batches`` (a render hands the
  node several frames at once), with and/or without the space-to-depth form (``--compiled``);

and, for the modes in ``--profile``, records a few frames with ``torch.profiler`` and reports the
GPU time per frame by kernel (top entries), the summed kernel time against the wall time per
frame (the difference is GPU idle time: launch gaps, host work), and the achieved rate.

    python benchmarks/inference_profile.py --size medium --resolution HD \
        --modes max-autotune-no-cudagraphs --batches 1,4 --profile max-autotune-no-cudagraphs
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))
from _util import write_result  # noqa: E402
from inference_speed import RES, matmul_tflops, timed  # noqa: E402

import nodegraph as ng  # noqa: E402
from nodegraph.image import Format, Image  # noqa: E402
from nodegraph.ml import infer  # noqa: E402
from nodegraph.ml.modelfile import save_cat  # noqa: E402
from nodegraph.ml.network import NetworkConfig, build_network, count_flops  # noqa: E402
from nodegraph.testing import compute_node  # noqa: E402


def kernel_breakdown(fn, frames: int, top: int) -> dict:
    """GPU kernel time per frame by kernel name, over ``frames`` calls of ``fn``."""
    from torch.profiler import ProfilerActivity, profile

    fn()
    torch.cuda.synchronize()
    with profile(activities=[ProfilerActivity.CUDA, ProfilerActivity.CPU]) as prof:
        t0 = time.perf_counter()
        for _ in range(frames):
            fn()
        torch.cuda.synchronize()
        wall = (time.perf_counter() - t0) / frames
    per_kernel: dict[str, list[float]] = defaultdict(lambda: [0.0, 0])
    for evt in prof.events():
        if evt.device_type == torch.autograd.DeviceType.CUDA:
            entry = per_kernel[evt.name]
            entry[0] += evt.device_time / 1e3 / frames  # ms per frame
            entry[1] += 1 / frames
    total = sum(v[0] for v in per_kernel.values())
    rows = sorted(({"kernel": k[:120], "ms_per_frame": v[0], "calls_per_frame": v[1]}
                   for k, v in per_kernel.items()), key=lambda r: -r["ms_per_frame"])
    return {"wall_ms_per_frame_profiled": wall * 1e3, "kernel_ms_per_frame": total,
            "kernels_per_frame": sum(v[1] for v in per_kernel.values()), "top": rows[:top]}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--size", default="medium")
    ap.add_argument("--resolution", default="HD", choices=sorted(RES))
    ap.add_argument("--modes", default="default,max-autotune-no-cudagraphs,max-autotune")
    ap.add_argument("--profile", default="default,max-autotune-no-cudagraphs")
    ap.add_argument("--frames", type=int, default=30)
    ap.add_argument("--batches", default="1", help="frames per node call (render batching), e.g. 1,4")
    ap.add_argument("--eager", default="off,on", help="eager runs without/with the space-to-depth form")
    ap.add_argument("--compiled", default="on", help="compiled runs without/with the space-to-depth form")
    ap.add_argument("--top", type=int, default=25)
    ap.add_argument("--name", default="inference_profile")
    args = ap.parse_args()
    peak = matmul_tflops()
    w, h = RES[args.resolution]
    config = NetworkConfig(3, 3, size=args.size)
    module = build_network(config)
    flops = count_flops(module, h, w)
    fmt = Format.of_size(w, h)
    imgs = [Image(torch.rand(3, h, w, device="cuda") * 2, ng.channels.RGB, fmt.display, fmt)
            for _ in range(max(int(b) for b in args.batches.split(",")))]
    result: dict = {"gpu": torch.cuda.get_device_name(0), "matmul_bf16_tflops": peak, "size": args.size,
                    "resolution": args.resolution, "gflop_per_frame": flops / 1e9,
                    "variants": []}

    def add(name: str, fps: float, mem: float, extra: dict | None = None) -> None:
        row = {"variant": name, "fps": fps, "peak_gib": mem, "tflops": flops * fps / 1e12,
               "fraction_of_matmul_rate": flops * fps / 1e12 / peak, **(extra or {})}
        result["variants"].append(row)
        print("ROW", {k: v for k, v in row.items() if k != "profile"}, file=sys.stderr, flush=True)
        write_result(args.name, result)  # after every variant: a run cut short keeps what it measured

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / f"{args.size}.cat"
        save_cat(path, module, config=config, channels_in=list(ng.channels.RGB),
                 channels_out=list(ng.channels.RGB), model_id=f"profile-{args.size}")
        g = ng.Graph()

        def runner(node, batch: int):
            if batch == 1:
                return lambda: compute_node(node, input=imgs[0], device="cuda")
            from nodegraph.testing import ImagesContext

            ctxs = [ImagesContext(node, frame=i + 1, device="cuda", input=img) for i, img in enumerate(imgs[:batch])]
            return lambda: node.compute_batch(ctxs)

        def use_s2d(on: bool) -> None:
            infer.SPACE_TO_DEPTH = on
            infer.model_cache.clear()
            infer._COMPILED.clear()
            torch._dynamo.reset()
            torch.cuda.empty_cache()

        for s2d in args.eager.split(","):
            use_s2d(s2d == "on")
            node = g.add("Inference", modelFile=str(path), halfPrecision=True)
            fps, mem = timed(runner(node, 1), args.frames)
            add(f"eager s2d={s2d}", fps, mem)
        for s2d in args.compiled.split(","):
            for mode in args.modes.split(","):
                for batch in (int(b) for b in args.batches.split(",")):
                    use_s2d(s2d == "on")
                    os.environ["NODEGRAPH_COMPILE_MODE"] = "" if mode == "default" else mode
                    node = g.add("Inference", modelFile=str(path), halfPrecision=True, compile=True)
                    fn = runner(node, batch)
                    t0 = time.perf_counter()
                    fn()
                    torch.cuda.synchronize()
                    compile_s = time.perf_counter() - t0
                    fps, mem = timed(fn, max(2, args.frames // batch))
                    extra = {"compile_s": compile_s, "batch": batch}
                    if mode in args.profile.split(","):
                        extra["profile"] = kernel_breakdown(fn, max(1, 5 // batch), args.top)
                    add(f"compiled s2d={s2d} {mode} batch {batch}", fps * batch, mem, extra)
    for row in result["variants"]:
        prof = row.get("profile")
        if not prof:
            continue
        print(f"\n== {row['variant']}: wall {prof['wall_ms_per_frame_profiled']:.2f} ms/frame, kernels "
              f"{prof['kernel_ms_per_frame']:.2f} ms/frame in {prof['kernels_per_frame']:.0f} launches")
        for k in prof["top"]:
            print(f"{k['ms_per_frame']:7.3f} ms  x{k['calls_per_frame']:4.1f}  {k['kernel']}")
    print("\nvariant                                   fps    TFLOP/s  of-matmul  peak GiB")
    for row in result["variants"]:
        print(f"{row['variant']:40s} {row['fps']:6.1f} {row['tflops']:8.1f} {row['fraction_of_matmul_rate']:9.3f}"
              f" {row['peak_gib']:8.2f}")
    write_result(args.name, result)


if __name__ == "__main__":
    main()
