"""CopyCat training throughput: crops/s of the real training loop (``train()``), and of a bare
training step for the small/medium/large networks, against a plain PyTorch SRN reference measured
in the same run.

The real loop (``--loop``): ``Trainer(...).run()`` exactly as ``nodegraph train`` runs it (crop
sampling and augmentation, learning-rate schedule, gradient clipping, divergence flag, summary
lines every 10 steps, TensorBoard), on a synthetic 16-frame 512x512 shot (smooth HDR-ish noise;
ground truth = Grade + Blur of it), medium network, batch 16, crop 256, compiled. Each loop
variant runs in its own process with its own inductor/Triton cache folder: the first process to
use a folder pays the cold compile, a later one with the same folder (``train_warm``) shows the
time to the first step on a second run of the same shape. crops/s is timed between two device
syncs after the warm-up steps (``--loop-warmup``, ``--loop-steps``). ``before`` runs the same
loop on another copy of the package (``--before-pythonpath``: the code before a change), so a
before/after comparison comes from one run on one machine.

One training step = forward over all scales + multi-scale L1 loss in the encoded domain +
backward + fused AdamW step, at crop 256, batch 16, bf16 autocast, channels_last, and
``torch.compile`` of the loss function (forward + loss; AOTAutograd compiles the backward).
Every model runs the identical step code; warm-up steps (which include compilation) are not
timed; timed steps are bracketed by device synchronisation.

Achieved TFLOP/s = 3 x forward FLOPs (forward + backward) x crops/s, forward FLOPs counted by
PyTorch's ``FlopCounterMode`` (convolutions only, 2 x multiply-adds). The GPU's dense bf16
matrix rate is measured in the same run (an 8192^3 bf16 matmul, timed) for comparison.

Peer: ``reference`` is ``RefSRN`` of ``plain_srn.py`` (the plain recipe's network, also the peer of
``copycat_quality.py``), the textbook scale-recurrent network (Tao et al. 2018) written plainly:
per scale, bilinear-resized input + upsampled previous prediction, 5x5 conv to 32, 3 ResBlocks
per level at 32/64/128 in the encoder and again in the decoder, 5x5 stride-2 convs down, 4x4
transposed convs up, additive skips, a 3x3 ConvLSTM at the bottleneck (its state concatenated
with zeros at the first scale, hidden state resized between scales), plain ``nn.Conv2d``.
``reference_nolstm`` is the same without the ConvLSTM (6.88M weights, the lightest SRN). The
headline ratio is medium vs ``reference`` (target >= 1.2x); the ratio vs ``reference_nolstm`` is
reported too.

    python benchmarks/copycat_throughput.py                      # GPU, full run
    python benchmarks/copycat_throughput.py --models reference --before-pythonpath /tmp/old
    python benchmarks/copycat_throughput.py --device cpu --quick # smoke test
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn

sys.path.insert(0, str(Path(__file__).parent))
from _util import write_result  # noqa: E402
from plain_srn import RefSRN  # noqa: E402

from nodegraph.ml import transfer  # noqa: E402
from nodegraph.ml.network import (NetworkConfig, build_network, count_parameters,  # noqa: E402
                                  flops_per_pixel, multiscale_l1)


# ------------------------------------------------------------------------------------------------
def forward_flops(make: Callable[[], nn.Module], crop: int) -> int:
    """Forward FLOPs of one crop, counted on the meta device."""
    from torch.utils.flop_counter import FlopCounterMode

    model = make().to("meta")
    x = torch.zeros(1, 3, crop, crop, device="meta")
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        model.forward_scales(x)
    return int(counter.get_total_flops())


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def matmul_rate(device: torch.device, n: int, repeats: int) -> float:
    """Dense bf16 matrix rate in TFLOP/s: an n^3 matmul, best of ``repeats`` timed batches."""
    a = torch.randn(n, n, device=device, dtype=torch.bfloat16)
    b = torch.randn(n, n, device=device, dtype=torch.bfloat16)
    for _ in range(3):
        a @ b
    sync(device)
    best = float("inf")
    inner = 10 if device.type == "cuda" else 1
    for _ in range(repeats):
        t0 = time.perf_counter()
        for _ in range(inner):
            a @ b
        sync(device)
        best = min(best, (time.perf_counter() - t0) / inner)
    return 2 * n ** 3 / best / 1e12


def measure(name: str, make: Callable[[], nn.Module], args, device: torch.device) -> dict:
    torch.manual_seed(0)
    model = make().to(device).to(memory_format=torch.channels_last)
    model.train()
    fused = device.type == "cuda" or args.fused_cpu
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4, fused=fused)

    def loss_fn(x, y):
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=args.bf16):
            preds = model.forward_scales(x)
        return multiscale_l1(preds, model.pyramid(y))

    step_loss = torch.compile(loss_fn, mode=args.compile_mode) if args.compile else loss_fn

    g = torch.Generator(device="cpu").manual_seed(1)
    lin = torch.rand(args.batch, 3, args.crop, args.crop, generator=g) * 4 - 0.5  # HDR-ish, negatives
    target = F.avg_pool2d(lin, 3, stride=1, padding=1) * 1.1  # a blur and a grade
    x = transfer.encode(lin).to(device).contiguous(memory_format=torch.channels_last)
    y = transfer.encode(target).to(device).contiguous(memory_format=torch.channels_last)

    def step():
        loss = step_loss(x, y)
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        return loss

    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    t0 = time.perf_counter()
    for _ in range(args.warmup):
        loss = step()
    sync(device)
    warmup_s = time.perf_counter() - t0
    first_loss = float(loss.detach())
    t0 = time.perf_counter()
    for _ in range(args.steps):
        loss = step()
    sync(device)
    elapsed = time.perf_counter() - t0
    crops_per_s = args.batch * args.steps / elapsed
    fwd = forward_flops(make, args.crop)
    result = {
        "parameters": count_parameters(model),
        "forward_gflop_per_crop": fwd / 1e9,
        "crops_per_s": crops_per_s,
        "step_ms": 1000 * elapsed / args.steps,
        "achieved_tflops": 3 * fwd * crops_per_s / 1e12,
        "warmup_s_incl_compile": warmup_s,
        "loss_after_warmup": first_loss,
        "loss_final": float(loss.detach()),
    }
    if device.type == "cuda":
        result["peak_memory_gib"] = torch.cuda.max_memory_allocated(device) / 2 ** 30
    print(f"{name:>18}: {result['parameters'] / 1e6:6.2f}M weights  {crops_per_s:8.1f} crops/s  "
          f"{result['achieved_tflops']:7.1f} TFLOP/s  (warm-up {warmup_s:.0f} s)", flush=True)
    return result


# ------------------------------------------------------------------------------------------------
# The real training loop, one process per variant.
def make_shot(root: Path, frames: int, size: int):
    """A synthetic shot: smooth random HDR-ish RGB frames (EXR) and a Grade + Blur of them."""
    import nodegraph as ng
    from nodegraph import channels as chans
    from nodegraph.image import Box, Format, Image
    from nodegraph.io import write_image

    gen = torch.Generator().manual_seed(3)
    (root / "plate").mkdir(parents=True, exist_ok=True)
    for f in range(1, frames + 1):
        noise = torch.rand(3, size // 16, size // 16, generator=gen)
        img = F.interpolate(noise[None], size=(size, size), mode="bicubic")[0].clamp(0, None) * 2.0
        write_image(root / "plate" / f"plate.{f:04d}.exr",
                    Image(img, chans.RGB, Box(0, 0, size, size), Format.of_size(size, size)), datatype="half")
    g = ng.Graph()
    read = g.add("Read", file=str(root / "plate" / "plate.####.exr"))
    grade = g.add("Grade", input=read, white=1.4, gamma=0.8, channels="rgb")
    effect = g.add("Blur", input=grade, size=8, channels="rgb")
    return g, read, effect


def loop_worker(spec: dict, out: Path) -> None:
    """Measure one variant of the real loop in this process; the result goes to ``out`` as JSON."""
    from nodegraph.ml.train import Trainer

    dev = torch.device(spec["device"])
    warm, timed = spec["warmup"], spec["steps"]
    total = warm + timed

    def sync() -> None:
        if dev.type == "cuda":
            torch.cuda.synchronize(dev)

    marks: dict[str, float] = {}
    # "profile": N profiles N steps after the timed ones (kernel time against wall time: is the
    # loop bound by the GPU or by the host launching work?)
    n_prof = int(spec.get("profile", 0))
    prof = None

    def on_event(kind: str, info: dict) -> None:
        nonlocal prof
        if kind == "plan":
            marks["plan"] = time.perf_counter()
        elif kind == "step" and info["step"] in (1, warm, total - n_prof):
            sync()
            marks[f"step{info['step']}"] = time.perf_counter()
        elif kind == "log":
            marks["loss"] = info["loss"]
        if n_prof and kind == "step" and info["step"] == total - n_prof:
            prof = torch.profiler.profile()
            prof.start()
            marks["prof_start"] = time.perf_counter()
        elif prof is not None and kind == "step" and info["step"] == total:
            sync()
            marks["prof_wall"] = time.perf_counter() - marks["prof_start"]
            prof.stop()

    with tempfile.TemporaryDirectory(prefix="copycat_loop_") as tmp:
        root = Path(tmp)
        g, read, effect = make_shot(root, spec["frames"], spec["size"])
        g.add("CopyCat", "CopyCat1", input=read, groundTruth=effect, dataDirectory=str(root / "train"),
              modelSize=spec["model"], batchSizeType="manual", batchSize=spec["batch"], cropSize=spec["crop"],
              checkpointInterval=10 * total, imageInterval=0, channelsIn="rgb", channelsOut="rgb")
        options = {"steps": total, "device": dev, "compile": spec["compile"], "on_event": on_event}
        if "space_to_depth" in spec:
            options["space_to_depth"] = spec["space_to_depth"]
        t0 = time.perf_counter()
        trainer = Trainer(g, "CopyCat1", **options)
        trainer.prepare()
        t_prepared = time.perf_counter()
        trainer.run()
    timed -= n_prof
    elapsed = marks[f"step{total - n_prof}"] - marks[f"step{warm}"]
    result = {
        "crops_per_s": spec["batch"] * timed / elapsed,
        "step_ms": 1000 * elapsed / timed,
        "time_to_first_step_s": marks["step1"] - t0,
        "first_step_s_incl_compile": marks["step1"] - marks["plan"],
        "prepare_s": t_prepared - t0,
        "loss_final": marks.get("loss"),
        "settings": spec,
    }
    if dev.type == "cuda":
        result["peak_memory_gib"] = torch.cuda.max_memory_allocated(dev) / 2 ** 30
    if prof is not None:
        events = prof.key_averages()
        attr = "self_device_time_total" if dev.type == "cuda" else "self_cpu_time_total"
        busy_us = sum(getattr(e, attr) for e in events)
        result["profile"] = {"steps": n_prof, "wall_ms_per_step": 1000 * marks["prof_wall"] / n_prof,
                             "device_busy_ms_per_step": busy_us / 1000 / n_prof if dev.type == "cuda" else None,
                             "top": [{"name": e.key[:120], "ms_per_step": getattr(e, attr) / 1000 / n_prof,
                                      "calls_per_step": e.count / n_prof}
                                     for e in sorted(events, key=lambda e: -getattr(e, attr))[:25]]}
        print(prof.key_averages().table(sort_by=attr, row_limit=25), flush=True)
    out.write_text(json.dumps(result))


def run_loops(args, device: torch.device) -> dict[str, dict]:
    """Each loop variant in its own process; variants naming the same cache share its folder."""
    variants: dict[str, dict] = {}
    for name in filter(None, args.loop.split(",")):
        if name == "before":
            if not args.before_pythonpath:
                continue
            variants[name] = {"compile": True, "cache": "before", "pythonpath": args.before_pythonpath}
        elif name in ("train", "train_warm"):
            variants[name] = {"compile": True, "cache": "train"}
        elif name in args.loop_specs:
            variants[name] = args.loop_specs[name]
        else:
            raise SystemExit(f"unknown loop variant {name!r}")
    results: dict[str, dict] = {}
    with tempfile.TemporaryDirectory(prefix="copycat_caches_") as caches:
        for name, v in variants.items():
            spec = {"device": str(device), "model": args.loop_model, "batch": args.batch, "crop": args.crop,
                    "frames": args.loop_frames, "size": args.loop_size, "warmup": args.loop_warmup,
                    "steps": args.loop_steps, "compile": v.get("compile", True) if args.compile else False}
            spec.update({k: v[k] for k in ("space_to_depth", "profile") if k in v})
            cache = Path(caches) / v.get("cache", name)
            cold = not cache.exists()
            cache.mkdir(exist_ok=True)
            env = dict(os.environ, TORCHINDUCTOR_CACHE_DIR=str(cache), TRITON_CACHE_DIR=str(cache / "triton"),
                       PYTHONUNBUFFERED="1")
            if v.get("pythonpath"):
                env["PYTHONPATH"] = os.pathsep.join(filter(None, [v["pythonpath"], env.get("PYTHONPATH")]))
            out = Path(caches) / f"{name}.json"
            proc = subprocess.run([sys.executable, __file__, "--loop-worker", json.dumps(spec), "--loop-out", str(out)],
                                  env=env)
            if proc.returncode != 0 or not out.exists():
                print(f"{name:>18}: failed (exit {proc.returncode})", flush=True)
                results[name] = {"failed": proc.returncode}
                continue
            r = json.loads(out.read_text())
            r["compile_cache"] = "cold" if cold else "warm"
            if v.get("pythonpath"):
                r["code"] = "before (--before-pythonpath)"
            results[name] = r
            print(f"{name:>18}: {r['crops_per_s']:8.1f} crops/s  step {r['step_ms']:.1f} ms  first step "
                  f"{r['first_step_s_incl_compile']:.1f} s ({r['compile_cache']} cache), "
                  f"{r['time_to_first_step_s']:.1f} s from the call", flush=True)
    return results


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--quick", action="store_true", help="tiny smoke-test settings (crop 64, batch 2, no compile)")
    ap.add_argument("--crop", type=int, default=256)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--warmup", type=int, default=15)
    ap.add_argument("--steps", type=int, default=50)
    ap.add_argument("--models", default="small,medium,large,reference,reference_nolstm")
    ap.add_argument("--no-compile", dest="compile", action="store_false")
    ap.add_argument("--compile-mode", default=None, help="torch.compile mode (default: PyTorch's default)")
    ap.add_argument("--no-bf16", dest="bf16", action="store_false")
    ap.add_argument("--fused-cpu", action="store_true", help="fused AdamW on CPU too")
    ap.add_argument("--matmul-n", type=int, default=8192)
    ap.add_argument("--name", default="copycat_throughput")
    ap.add_argument("--variant", action="append", default=[], metavar="NAME=JSON",
                    help="an extra network: NetworkConfig overrides as JSON, e.g. "
                         "'wide={\"size\": \"small\", \"widths\": [32, 64, 64]}'; add NAME to --models")
    ap.add_argument("--loop", default="before,train,train_warm",
                    help="real train() loop variants: before (needs --before-pythonpath), train (cold "
                         "compile cache), train_warm (second run, same cache), or names from --loop-variant")
    ap.add_argument("--loop-variant", action="append", default=[], metavar="NAME=JSON",
                    help='a loop variant: {"compile": true|false|mode, "space_to_depth": bool, "cache": NAME, '
                         '"profile": STEPS}')
    ap.add_argument("--before-pythonpath", default="", help="PYTHONPATH holding the code before a change")
    ap.add_argument("--loop-model", default="medium")
    ap.add_argument("--loop-frames", type=int, default=16)
    ap.add_argument("--loop-size", type=int, default=512)
    ap.add_argument("--loop-warmup", type=int, default=30)
    ap.add_argument("--loop-steps", type=int, default=150, help="timed steps (and profiled steps after them)")
    ap.add_argument("--loop-worker", help=argparse.SUPPRESS)
    ap.add_argument("--loop-out", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.loop_worker:
        loop_worker(json.loads(args.loop_worker), Path(args.loop_out))
        return
    args.loop_specs = {}
    for spec in args.loop_variant:
        vname, _, js = spec.partition("=")
        args.loop_specs[vname] = json.loads(js)
    if args.quick:
        args.crop, args.batch, args.warmup, args.steps = 64, 2, 1, 2
        args.loop_frames, args.loop_size, args.loop_warmup, args.loop_steps = 2, 128, 2, 3
        args.compile = False
        args.matmul_n = min(args.matmul_n, 1024)
        args.name += "_quick"
    device = torch.device(args.device)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True

    makers: dict[str, Callable[[], nn.Module]] = {
        "reference": lambda: RefSRN(3, 3, lstm=True),
        "reference_nolstm": lambda: RefSRN(3, 3, lstm=False),
    }
    for size in ("small", "medium", "large"):
        makers[size] = (lambda size=size: build_network(NetworkConfig(3, 3, size=size)))

    variants = {}
    for spec in args.variant:
        vname, _, js = spec.partition("=")
        variants[vname] = json.loads(js)
        makers[vname] = (lambda o=variants[vname]: build_network(NetworkConfig(3, 3, **o)))

    matmul = matmul_rate(device, args.matmul_n, 5 if args.quick else 20)
    print(f"dense bf16 matmul {args.matmul_n}^3: {matmul:.1f} TFLOP/s", flush=True)
    results = {}
    for name in args.models.split(","):
        results[name] = measure(name, makers[name], args, device)
        if device.type == "cuda":
            torch.cuda.empty_cache()  # the model and optimizer state of measure() are gone
        results[name]["fraction_of_matmul_rate"] = results[name]["achieved_tflops"] / matmul
        if name in ("small", "medium", "large") or name in variants:
            cfg = NetworkConfig(3, 3, **variants.get(name, {"size": name}))
            results[name]["flops_per_pixel_analytic"] = flops_per_pixel(cfg)
            results[name]["config"] = cfg.to_dict()
    loops = run_loops(args, device)
    ratios = {}
    for ref in ("reference", "reference_nolstm"):
        if ref not in results:
            continue
        if "medium" in results:
            ratios[f"medium_step_vs_{ref}"] = results["medium"]["crops_per_s"] / results[ref]["crops_per_s"]
        for name, r in loops.items():
            if "crops_per_s" in r:
                ratios[f"loop_{name}_vs_{ref}"] = r["crops_per_s"] / results[ref]["crops_per_s"]
    for k, v in ratios.items():
        print(f"{k}: {v:.2f}x")
    write_result(args.name, {
        "settings": {"device": str(device), "crop": args.crop, "batch": args.batch, "bf16_autocast": args.bf16,
                     "channels_last": True, "compile": args.compile, "compile_mode": args.compile_mode,
                     "fused_adamw": device.type == "cuda" or args.fused_cpu, "warmup_steps": args.warmup,
                     "timed_steps": args.steps, "loss": "multi-scale L1, slog1p-encoded"},
        "matmul_bf16_tflops": matmul,
        "models": results,
        "train_loop": loops,
        "ratios": ratios,
        "target": "real train() loop (medium) >= 2x the reference's crops/s; first step <= 10 s on a warm cache",
    })


if __name__ == "__main__":
    main()
