"""The plain recipe: the textbook scale-recurrent network (SRN, Tao et al. 2018) trained the plain way.

``RefSRN`` is the peer network of ``copycat_throughput.py`` (speed) and ``copycat_quality.py``
(quality). The recipe, written plainly on purpose (what someone would write from the paper):
Adam at 1e-4 (constant), batch 16, crops of 256 at uniform random positions in uniformly drawn
training frames, no augmentation, loss = mean over the scales of the L1 difference to the
bilinearly downscaled ground truth, on linear pixel values (no transfer curve), bf16 autocast and
channels_last on CUDA, no gradient clipping, no learning-rate schedule.

Run as its own process (``copycat_quality.py`` starts it): it pulls the training pairs through the
graph's CopyCat node (the same Read/Shuffle nodes, channels and frames CopyCat trains on), trains
for the last of ``--marks`` seconds and saves the weights at each mark as ``plain.<mark>.pt``
(state dict, step, elapsed seconds) in ``--out``, plus ``plain.json`` (steps, crops/s, data pull
time). The clock starts before the data pull (graph loaded and CUDA initialised first), so every
mark includes the pull (CopyCat's clock starts after its pull: see ``copycat_quality.py``);
compilation (``--compile``) happens in the first step, inside the clock.

    python benchmarks/plain_srn.py --graph G.json --node CopyCat1 --frames 5,15,25 --out DIR \\
        [--marks 15,30,60,120] [--device cuda] [--compile]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn


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
# The plain training loop.
def multiscale_l1(preds: list[torch.Tensor], targets: list[torch.Tensor]) -> torch.Tensor:
    """Mean over the scales of the L1 difference, in float32."""
    return sum(F.l1_loss(p.float(), t.float()) for p, t in zip(preds, targets)) / len(preds)


def random_crops(x: torch.Tensor, y: torch.Tensor, batch: int, crop: int, gen: torch.Generator
                 ) -> tuple[torch.Tensor, torch.Tensor]:
    """``batch`` crops at uniform random positions of uniformly drawn frames of ``x``/``y`` ``[N, C, H, W]``."""
    n, _, h, w = x.shape
    f = torch.randint(0, n, (batch,), generator=gen).tolist()
    y0 = torch.randint(0, h - crop + 1, (batch,), generator=gen).tolist()
    x0 = torch.randint(0, w - crop + 1, (batch,), generator=gen).tolist()
    xs = torch.stack([x[i, :, a:a + crop, b:b + crop] for i, a, b in zip(f, y0, x0)])
    ys = torch.stack([y[i, :, a:a + crop, b:b + crop] for i, a, b in zip(f, y0, x0)])
    return xs, ys


def predict(model: RefSRN, x: torch.Tensor, bf16: bool) -> torch.Tensor:
    """Full-resolution prediction of ``x`` ``[N, C, H, W]`` (linear), padded to a multiple of 16."""
    h, w = x.shape[-2:]
    ph, pw = (-h) % 16, (-w) % 16
    xp = F.pad(x, (0, pw, 0, ph), mode="replicate") if ph or pw else x
    with torch.autocast(x.device.type, dtype=torch.bfloat16, enabled=bf16):
        out = model.forward_scales(xp.contiguous(memory_format=torch.channels_last))[-1]
    return out.float()[..., :h, :w]


def pull_pairs(graph, node: str, frames: list[int], device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """Input and ground truth of ``frames`` as CopyCat pulls them (its channels), linear, stacked."""
    from nodegraph.ml.dataset import pull_pair

    cc = graph.node(node)
    pairs = [pull_pair(graph, cc, f, channels_in=cc.knobs.channelsIn, channels_out=cc.knobs.channelsOut,
                       device=device) for f in frames]
    return (torch.stack([a.pixels.float() for a, _ in pairs]).to(device),
            torch.stack([b.pixels.float() for _, b in pairs]).to(device))


def train_plain(args: argparse.Namespace) -> dict:
    dev = torch.device(args.device)
    marks = sorted(float(m) for m in args.marks.split(","))
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(args.seed)
    if dev.type == "cuda":
        torch.zeros(1, device=dev)  # CUDA initialised before the clock, as CopyCat's is
        torch.backends.cudnn.benchmark = True
    bf16 = dev.type == "cuda"
    from nodegraph.graph import Graph

    graph = Graph.load(args.graph)  # as the CLI loads it before CopyCat's clock

    t0 = time.perf_counter()
    x, y = pull_pairs(graph, args.node, [int(f) for f in args.frames.split(",")], dev)
    model = RefSRN(x.shape[1], y.shape[1]).to(dev).to(memory_format=torch.channels_last)
    opt = torch.optim.Adam(model.parameters(), lr=args.lr, **({"fused": True} if dev.type == "cuda" else {}))
    data_s = time.perf_counter() - t0

    def loss_fn(xb: torch.Tensor, yb: torch.Tensor) -> torch.Tensor:
        with torch.autocast(dev.type, dtype=torch.bfloat16, enabled=bf16):
            preds = model.forward_scales(xb)
        return multiscale_l1(preds, model.pyramid(yb))

    step_loss = torch.compile(loss_fn) if args.compile else loss_fn
    gen = torch.Generator().manual_seed(args.seed)
    crop = min(args.crop, x.shape[-2], x.shape[-1])
    step, snapshots, losses = 0, [], []
    model.train()
    while marks:
        xb, yb = random_crops(x, y, args.batch, crop, gen)
        loss = step_loss(xb.contiguous(memory_format=torch.channels_last), yb)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        step += 1
        if step % 50 == 0:
            losses.append((step, float(loss)))
        if time.perf_counter() - t0 >= marks[0]:
            if dev.type == "cuda":
                torch.cuda.synchronize(dev)
            elapsed = time.perf_counter() - t0
            while marks and elapsed >= marks[0]:
                mark = marks.pop(0)
                path = out / f"plain.{mark:g}.pt"
                torch.save({"model": {k: v.detach().cpu() for k, v in model.state_dict().items()},
                            "cin": x.shape[1], "cout": y.shape[1], "step": step, "elapsed_s": elapsed,
                            "mark_s": mark}, path)
                snapshots.append({"mark_s": mark, "step": step, "elapsed_s": elapsed, "path": str(path)})
    total = time.perf_counter() - t0
    info = {"steps": step, "seconds": total, "data_s": data_s, "batch": args.batch, "crop": crop,
            "crops_per_s": args.batch * step / max(1e-9, total - data_s), "learning_rate": args.lr,
            "compile": args.compile, "snapshots": snapshots, "losses": losses, "device": str(dev),
            "parameters": sum(p.numel() for p in model.parameters())}
    (out / "plain.json").write_text(json.dumps(info, indent=1))
    return info


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--graph", required=True, help="graph document holding the CopyCat node")
    ap.add_argument("--node", default="CopyCat1", help="CopyCat node whose inputs and channels are used")
    ap.add_argument("--frames", required=True, help="training frames, comma separated")
    ap.add_argument("--out", required=True, help="folder for plain.<mark>.pt and plain.json")
    ap.add_argument("--marks", default="15,30,60,120", help="seconds at which to save the weights")
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--crop", type=int, default=256)
    ap.add_argument("--lr", type=float, default=1e-4)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--compile", action="store_true", help="torch.compile forward + loss")
    args = ap.parse_args()
    info = train_plain(args)
    print(f"plain SRN: {info['steps']} steps in {info['seconds']:.1f} s ({info['crops_per_s']:.1f} crops/s, "
          f"data {info['data_s']:.2f} s)", flush=True)


if __name__ == "__main__":
    main()
