"""CopyCat training throughput: crops/s and achieved TFLOP/s for the small/medium/large networks,
against a plain PyTorch SRN reference measured in the same run.

One training step = forward over all scales + multi-scale L1 loss in the encoded domain +
backward + fused AdamW step, at crop 256, batch 16, bf16 autocast, channels_last, and
``torch.compile`` of the loss function (forward + loss; AOTAutograd compiles the backward).
Every model runs the identical step code; warm-up steps (which include compilation) are not
timed; timed steps are bracketed by device synchronisation.

Achieved TFLOP/s = 3 x forward FLOPs (forward + backward) x crops/s, forward FLOPs counted by
PyTorch's ``FlopCounterMode`` (convolutions only, 2 x multiply-adds). The GPU's dense bf16
matrix rate is measured in the same run (an 8192^3 bf16 matmul, timed) for comparison.

Peer: ``reference`` is the textbook scale-recurrent network (Tao et al. 2018) written plainly:
per scale, bilinear-resized input + upsampled previous prediction, 5x5 conv to 32, 3 ResBlocks
per level at 32/64/128 in the encoder and again in the decoder, 5x5 stride-2 convs down, 4x4
transposed convs up, additive skips, a 3x3 ConvLSTM at the bottleneck (its state concatenated
with zeros at the first scale, hidden state resized between scales), plain ``nn.Conv2d``.
``reference_nolstm`` is the same without the ConvLSTM (6.88M weights, the lightest SRN). The
headline ratio is medium vs ``reference`` (target >= 1.2x); the ratio vs ``reference_nolstm`` is
reported too.

    python benchmarks/copycat_throughput.py                      # GPU, full run
    python benchmarks/copycat_throughput.py --device cpu --quick # smoke test
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn

sys.path.insert(0, str(Path(__file__).parent))
from _util import write_result  # noqa: E402

from nodegraph.ml import transfer  # noqa: E402
from nodegraph.ml.network import (NetworkConfig, build_network, count_parameters,  # noqa: E402
                                  flops_per_pixel, multiscale_l1)


# ------------------------------------------------------------------------------------------------
# The plain reference: textbook SRN, written straightforwardly.
class RefResBlock(nn.Module):
    def __init__(self, c: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(c, c, 5, padding=2)
        self.conv2 = nn.Conv2d(c, c, 5, padding=2)

    def forward(self, x):
        return x + self.conv2(F.relu(self.conv1(x)))


class RefConvLSTM(nn.Module):
    def __init__(self, c: int, k: int = 3) -> None:
        super().__init__()
        self.c = c
        self.conv = nn.Conv2d(2 * c, 4 * c, k, padding=k // 2)

    def forward(self, x, state):
        if state is None:
            state = (torch.zeros_like(x), torch.zeros_like(x))
        h, c = state
        i, f, g, o = torch.split(self.conv(torch.cat([x, h], 1)), self.c, 1)
        c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
        h = torch.sigmoid(o) * torch.tanh(c)
        return h, (h, c)


class RefSRN(nn.Module):
    def __init__(self, cin: int = 3, cout: int = 3, scales: int = 3, lstm: bool = True) -> None:
        super().__init__()
        self.scales, self.cout = scales, cout

        def blocks(c):
            return nn.Sequential(RefResBlock(c), RefResBlock(c), RefResBlock(c))

        self.in_conv = nn.Conv2d(cin + cout, 32, 5, padding=2)
        self.enc1 = blocks(32)
        self.down2 = nn.Conv2d(32, 64, 5, stride=2, padding=2)
        self.enc2 = blocks(64)
        self.down3 = nn.Conv2d(64, 128, 5, stride=2, padding=2)
        self.enc3 = blocks(128)
        self.lstm = RefConvLSTM(128) if lstm else None
        self.dec3 = blocks(128)
        self.up2 = nn.ConvTranspose2d(128, 64, 4, stride=2, padding=1)
        self.dec2 = blocks(64)
        self.up1 = nn.ConvTranspose2d(64, 32, 4, stride=2, padding=1)
        self.dec1 = blocks(32)
        self.out_conv = nn.Conv2d(32, cout, 5, padding=2)

    def forward_scales(self, x):
        h, w = x.shape[-2:]
        preds, pred, state = [], None, None
        for s in range(self.scales - 1, -1, -1):
            f = 2 ** s
            xs = x if f == 1 else F.interpolate(x, size=(h // f, w // f), mode="bilinear", align_corners=False)
            if pred is None:
                prev = xs[:, :self.cout]
            else:
                prev = F.interpolate(pred, size=xs.shape[-2:], mode="bilinear", align_corners=False)
                if state is not None:
                    size = (xs.shape[-2] // 4, xs.shape[-1] // 4)
                    state = tuple(F.interpolate(t, size=size, mode="bilinear", align_corners=False)
                                  for t in state)
            e1 = self.enc1(F.relu(self.in_conv(torch.cat([xs, prev], 1))))
            e2 = self.enc2(F.relu(self.down2(e1)))
            e3 = self.enc3(F.relu(self.down3(e2)))
            if self.lstm is not None:
                e3, state = self.lstm(e3, state)
            d3 = self.dec3(e3)
            d2 = self.dec2(F.relu(self.up2(d3)) + e2)
            d1 = self.dec1(F.relu(self.up1(d2)) + e1)
            pred = self.out_conv(d1)
            preds.append(pred)
        return preds

    def pyramid(self, y):
        h, w = y.shape[-2:]
        return [y if s == 0 else F.interpolate(y, size=(h // 2 ** s, w // 2 ** s), mode="bilinear",
                                               align_corners=False)
                for s in range(self.scales - 1, -1, -1)]


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
    args = ap.parse_args()
    if args.quick:
        args.crop, args.batch, args.warmup, args.steps = 64, 2, 1, 2
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
    ratios = {}
    if "medium" in results:
        for ref in ("reference", "reference_nolstm"):
            if ref in results:
                ratios[f"medium_vs_{ref}"] = results["medium"]["crops_per_s"] / results[ref]["crops_per_s"]
    for k, v in ratios.items():
        print(f"{k}: {v:.2f}x (target >= 1.2x vs reference)")
    write_result(args.name, {
        "settings": {"device": str(device), "crop": args.crop, "batch": args.batch, "bf16_autocast": args.bf16,
                     "channels_last": True, "compile": args.compile, "compile_mode": args.compile_mode,
                     "fused_adamw": device.type == "cuda" or args.fused_cpu, "warmup_steps": args.warmup,
                     "timed_steps": args.steps, "loss": "multi-scale L1, slog1p-encoded"},
        "matmul_bf16_tflops": matmul,
        "models": results,
        "ratios": ratios,
        "target": "medium >= 1.2x reference crops/s",
    })


if __name__ == "__main__":
    main()
