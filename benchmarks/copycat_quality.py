"""CopyCat time to quality: PSNR on held-out frames over wall-clock training time, vs identity.

The shot is made from a real HDR still (OpenEXR sample images): a 512x512 window pans across it
over 30 frames (the plate); the effect to learn is a nodegraph comp of it, Grade (gain, gamma)
followed by a Blur (size 8). CopyCat trains on 6 frames (1, 6, 11, 16, 21, 26) and every
checkpoint is scored on the 24 other frames: PSNR of the network's output against the comp, and
of the untouched plate against the comp (the identity baseline). PSNR is taken on display values
(sRGB-encoded, clipped to 0..1), as an artist judges the result; the linear-light PSNR (peak =
the ground truth's 99.9th percentile) is reported too. Wall time per checkpoint comes from the
training summary (data set pull and compile included from the start of the run).

    python benchmarks/copycat_quality.py --images ../shared/data/openexr-images/ScanLines [--device cuda]
Target: >= 8 dB above identity on the held-out frames within 3 minutes of training on one GPU.
"""

from __future__ import annotations

import argparse
import csv
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))
from _util import write_result  # noqa: E402

import nodegraph as ng  # noqa: E402
from nodegraph.image import Format, Image  # noqa: E402
from nodegraph.io import read_image, write_image  # noqa: E402
from nodegraph.ml.modelfile import load_cat  # noqa: E402
from nodegraph.ml.train import train  # noqa: E402
from nodegraph.ml.transfer import decode, encode  # noqa: E402

FRAMES = 30
TRAIN = [1, 6, 11, 16, 21, 26]
SIZE = 512


def make_plate(still: Path, folder: Path) -> str:
    img = read_image(still).select(ng.channels.RGB)
    h, w = img.bbox.height, img.bbox.width
    fmt = Format.of_size(SIZE, SIZE)
    for f in range(1, FRAMES + 1):
        t = (f - 1) / (FRAMES - 1)
        x0, y0 = int(t * (w - SIZE)), int((0.2 + 0.6 * t) * (h - SIZE))
        crop = img.pixels[:, y0:y0 + SIZE, x0:x0 + SIZE].contiguous()
        write_image(folder / f"plate.{f:04d}.exr", Image(crop, ng.channels.RGB, fmt.display, fmt), datatype="half",
                    create_directories=True)
    return str(folder / "plate.####.exr")


def srgb(x: torch.Tensor) -> torch.Tensor:
    x = x.clamp(0, 1)
    return torch.where(x <= 0.0031308, 12.92 * x, 1.055 * x.clamp(min=0.0031308) ** (1 / 2.4) - 0.055)


def psnr(a: torch.Tensor, b: torch.Tensor, peak: float = 1.0) -> float:
    mse = float(((a - b) ** 2).mean())
    return float("inf") if mse == 0 else 10 * torch.log10(torch.tensor(peak * peak / mse)).item()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--images", type=Path, required=True, help="folder holding StillLife.exr (or --still)")
    ap.add_argument("--still", default="StillLife.exr")
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--steps", type=int, default=6000)
    ap.add_argument("--checkpoints", type=int, default=12)
    ap.add_argument("--size", default="medium")
    ap.add_argument("--batch", type=int, default=0, help="manual batch size (<= 6, the data set); 0: auto")
    ap.add_argument("--crop", type=int, default=256)
    ap.add_argument("--budget-s", type=float, default=180.0)
    ap.add_argument("--compile", action="store_true")
    args = ap.parse_args()
    dev = torch.device(args.device)
    with tempfile.TemporaryDirectory(prefix="copycat_quality_") as tmp:
        root = Path(tmp)
        plate = make_plate(args.images / args.still, root / "shot")
        g = ng.Graph()
        read = g.add("Read", name="Plate", file=plate)
        grade = g.add("Grade", input=read, white=1.4, gamma=0.8, channels="rgb")
        effect = g.add("Blur", name="Effect", input=grade, size=8, channels="rgb")
        cc = g.add("CopyCat", input=read, groundTruth=effect, dataDirectory=str(root / "train"),
                   frames=",".join(map(str, TRAIN)), modelSize=args.size,
                   batchSizeType="manual" if args.batch else "auto", batchSize=args.batch or 4, cropSize=args.crop,
                   checkpointInterval=max(1, args.steps // args.checkpoints), imageInterval=0,
                   channelsIn="rgb", channelsOut="rgb")
        # ground truth and plate of the held-out frames, computed once through the comp
        held = [f for f in range(1, FRAMES + 1) if f not in TRAIN]
        gts = {f: g.evaluate(effect, f).select(ng.channels.RGB).pixels for f in held}
        plates = {f: g.evaluate(read, f).select(ng.channels.RGB).pixels for f in held}
        peak = float(torch.quantile(torch.stack(list(gts.values())).flatten()[::97], 0.999))
        identity = sum(psnr(srgb(plates[f]), srgb(gts[f])) for f in held) / len(held)
        identity_lin = sum(psnr(plates[f], gts[f], peak) for f in held) / len(held)

        t0 = time.perf_counter()
        result = train(g, cc, steps=args.steps, device=dev, compile=args.compile)
        train_wall = time.perf_counter() - t0

        # wall time of each logged step, from the summary (step, loss, learning_rate, elapsed_s, ...)
        with open(result.summary_path) as fh:
            rows = [r for r in csv.DictReader((line for line in fh if not line.startswith("#")), delimiter="\t")]
        wall_of = {int(r["step"]): float(r["elapsed_s"]) for r in rows}

        curve = []
        models = {int(p.name.split(".")[-2]): p for p in result.checkpoints}
        if result.model_path is not None:
            models[result.step] = result.model_path
        for step, ckpt in sorted(models.items()):
            model = load_cat(ckpt, device=dev)
            scores, scores_lin = [], []
            with torch.no_grad():
                for f in held:
                    x = encode(plates[f]).to(dev)[None]
                    with torch.autocast(dev.type, dtype=torch.bfloat16, enabled=dev.type == "cuda"):
                        y = model.module(x)
                    out = decode(y.float())[0].cpu()
                    scores.append(psnr(srgb(out), srgb(gts[f])))
                    scores_lin.append(psnr(out, gts[f], peak))
            wall = min((w for s, w in wall_of.items() if s >= step), default=train_wall)
            curve.append({"step": step, "wall_s": wall, "psnr_db": sum(scores) / len(scores),
                          "psnr_linear_db": sum(scores_lin) / len(scores_lin)})
            print(f"step {step:6d}  {wall:7.1f}s  PSNR {curve[-1]['psnr_db']:.2f} dB "
                  f"(identity {identity:.2f})", file=sys.stderr)

    within = [c for c in curve if c["wall_s"] <= args.budget_s]
    best = max(within, key=lambda c: c["psnr_db"]) if within else None
    gain = (best["psnr_db"] - identity) if best else None
    write_result("copycat_quality", {
        "device": str(dev), "gpu": torch.cuda.get_device_name(0) if dev.type == "cuda" else None,
        "still": args.still, "frames": FRAMES, "train_frames": TRAIN, "held_out_frames": len(held),
        "effect": "Grade(white=1.4, gamma=0.8) then Blur(size=8)", "model_size": args.size,
        "batch": result.batch_size, "crop": args.crop, "steps": result.step, "compile": args.compile,
        "train_wall_s": train_wall, "identity_psnr_db": identity, "identity_psnr_linear_db": identity_lin,
        "curve": curve, "budget_s": args.budget_s,
        "best_within_budget": best, "gain_over_identity_db": gain,
        "target_gain_db": 8.0, "meets_target": gain is not None and gain >= 8.0,
    })


if __name__ == "__main__":
    main()
