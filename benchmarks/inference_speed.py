"""Inference speed: frames/s and peak GPU memory through the Inference node vs a plain eager forward.

For small/medium/large nodegraph networks (3 -> 3 channels, untrained weights: speed does not
depend on their values), at 1920x1080 and 3840x2160, float32 and half:
- ``node``: the Inference node's compute on an image already on the GPU (tiling, knob setup,
  precision handling and model cache included), called as a render calls it;
- ``eager``: the same weights, ``decode(module(encode(x)))`` in plain eager PyTorch (float32, or
  ``.half()`` weights and input for half), no tiling;
- UHD also with the node's tiling forced small enough to keep within 4 GiB.
FLOPs per frame are counted analytically (``nodegraph.ml.network.count_flops``); achieved TFLOP/s
is compared with the GPU's dense bf16 matmul rate measured in the same run. These are the model's
FLOPs: on CUDA the node runs the network in its space-to-depth form, which multiplies some exact
zeros too (medium at HD: 4385 GFLOP executed for 4033 GFLOP of model, 1.087x); only the model's
count is credited.

    python benchmarks/inference_speed.py [--sizes small,medium,large] [--frames 20]
Targets (H100): medium in half >= 40% of the matmul rate (about 50-60 fps at HD), >= 1.5x the
eager forward, and UHD within 4 GiB of GPU memory when tiled.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))
from _util import write_result  # noqa: E402

import nodegraph as ng  # noqa: E402
from nodegraph.image import Format, Image  # noqa: E402
from nodegraph.ml.modelfile import save_cat  # noqa: E402
from nodegraph.ml.network import NetworkConfig, build_network, count_flops  # noqa: E402
from nodegraph.ml.transfer import decode, encode  # noqa: E402
from nodegraph.testing import compute_node  # noqa: E402

RES = {"HD": (1920, 1080), "UHD": (3840, 2160)}


def matmul_tflops(n: int = 8192) -> float:
    a = torch.randn(n, n, device="cuda", dtype=torch.bfloat16)
    b = torch.randn(n, n, device="cuda", dtype=torch.bfloat16)
    for _ in range(3):
        a @ b
    torch.cuda.synchronize()
    t0 = time.perf_counter()
    for _ in range(20):
        a @ b
    torch.cuda.synchronize()
    return 2 * n ** 3 * 20 / (time.perf_counter() - t0) / 1e12


def timed(fn, frames: int) -> tuple[float, float]:
    """(frames per second, peak GiB) after two warm-up calls."""
    fn()
    fn()
    torch.cuda.synchronize()
    torch.cuda.reset_peak_memory_stats()
    t0 = time.perf_counter()
    for _ in range(frames):
        fn()
    torch.cuda.synchronize()
    return frames / (time.perf_counter() - t0), torch.cuda.max_memory_allocated() / 2**30


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", default="small,medium,large")
    ap.add_argument("--frames", type=int, default=20)
    ap.add_argument("--uhd-tile", type=int, default=1024, help="tile size for the 4 GiB UHD run")
    ap.add_argument("--compile", action="store_true", help="also time the node with compile=True (HD)")
    ap.add_argument("--resolutions", default="HD,UHD")
    ap.add_argument("--precisions", default="float32,half")
    ap.add_argument("--name", default="inference_speed")
    args = ap.parse_args()
    peak = matmul_tflops()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for size in args.sizes.split(","):
            config = NetworkConfig(3, 3, size=size)
            module = build_network(config)
            path = Path(tmp) / f"{size}.cat"
            save_cat(path, module, config=config, channels_in=list(ng.channels.RGB),
                     channels_out=list(ng.channels.RGB), model_id=f"bench-{size}")
            for res, (w, h) in [(r, RES[r]) for r in args.resolutions.split(",")]:
                flops = count_flops(module, h, w)
                fmt = Format.of_size(w, h)
                img = Image(torch.rand(3, h, w, device="cuda") * 2, ng.channels.RGB, fmt.display, fmt)
                for half in [p == "half" for p in args.precisions.split(",")]:
                    g = ng.Graph()
                    node = g.add("Inference", modelFile=str(path), halfPrecision=half)
                    dtype = torch.float16 if half else torch.float32
                    fps, mem = timed(lambda: compute_node(node, input=img, device="cuda", dtype=torch.float32),
                                     args.frames)
                    eager = build_network(config).cuda().eval()
                    eager.load_state_dict(module.state_dict())
                    if half:
                        eager = eager.half()
                    x = img.pixels[None].to(dtype)
                    torch.cuda.empty_cache()

                    def plain() -> torch.Tensor:
                        with torch.no_grad():
                            return decode(eager(encode(x)).float())

                    try:
                        efps, emem = timed(plain, args.frames)
                    except torch.cuda.OutOfMemoryError:
                        efps, emem = None, None
                    eager = None  # free the copy before the next configuration
                    torch.cuda.empty_cache()
                    cfps = cmem = None
                    if args.compile and res == "HD":
                        cnode = g.add("Inference", modelFile=str(path), halfPrecision=half, compile=True)
                        cfps, cmem = timed(lambda: compute_node(cnode, input=img, device="cuda"), args.frames)
                    row = {"size": size, "resolution": res, "precision": "half" if half else "float32",
                           "node_compiled_fps": cfps, "node_compiled_peak_gib": cmem,
                           "compiled_speedup_vs_eager": cfps / efps if cfps and efps else None,
                           "compiled_fraction_of_matmul_rate": flops * cfps / 1e12 / peak if cfps else None,
                           "node_fps": fps, "node_peak_gib": mem, "eager_fps": efps, "eager_peak_gib": emem,
                           "speedup_vs_eager": fps / efps if efps else None,
                           "gflop_per_frame": flops / 1e9, "node_tflops": flops * fps / 1e12,
                           "fraction_of_matmul_rate": flops * fps / 1e12 / peak}
                    rows.append(row)
                    print(row, file=sys.stderr)
            if "UHD" not in args.resolutions:
                continue
            # UHD tiled within a memory budget
            w, h = RES["UHD"]
            fmt = Format.of_size(w, h)
            img = Image(torch.rand(3, h, w, device="cuda"), ng.channels.RGB, fmt.display, fmt)
            g = ng.Graph()
            node = g.add("Inference", modelFile=str(path), halfPrecision=True, tileSize=args.uhd_tile)
            torch.cuda.empty_cache()
            fps, mem = timed(lambda: compute_node(node, input=img, device="cuda"), max(3, args.frames // 4))
            rows.append({"size": size, "resolution": "UHD", "precision": "half", "tiled": args.uhd_tile,
                         "node_fps": fps, "node_peak_gib": mem, "within_4gib": mem <= 4.0})
            print(rows[-1], file=sys.stderr)
    medium_hd_half = next((r for r in rows if r["size"] == "medium" and r["resolution"] == "HD"
                           and r["precision"] == "half" and "tiled" not in r), None)
    write_result(args.name, {
        "gpu": torch.cuda.get_device_name(0), "matmul_bf16_tflops": peak, "rows": rows,
        "compile_mode": os.environ.get("NODEGRAPH_COMPILE_MODE") or "default",
        "medium_hd_half": medium_hd_half,
        "targets": {"fraction_of_matmul_rate": 0.40, "speedup_vs_eager": 1.5, "uhd_tiled_gib": 4.0},
    })


if __name__ == "__main__":
    main()
