"""CopyCat quality over training wall time on real shots, against the plain SRN recipe in the same run.

What is measured (issue 13): for each shot, held-out display PSNR (and IoU for mattes) at wall-time
marks (15/30/60/120 s by default) of

- **CopyCat** run as a user runs it: the graph (Read nodes -> CopyCat, default medium network,
  cropSize 256 or the frame's short side if smaller, batch ``auto`` unless ``--batch``,
  checkpointInterval 50 (``--checkpoint-interval``), imageInterval 0) saved as JSON, then ``nodegraph train GRAPH --node
  CopyCat1 --steps 1000000 --device DEV [--compile]`` in a subprocess, stopped with SIGINT once its
  summary shows the last mark + ``--margin`` s (CopyCat writes a checkpoint on Ctrl-C: exit 130).
  Each checkpoint ``CopyCat1.<step>.cat`` gets its wall time from the ``.summary`` row of its step
  (``elapsed_s``: seconds since the training loop started, compilation included; the data pull
  and network build before it are not counted) or, without a row, from the ``elapsed_s`` stored in
  the model file. At a mark the newest checkpoint at or before it is used (none yet: null), so the
  checkpoint grid is CopyCat's sampling error (the plain recipe saves exactly at the marks): 50
  steps are about 3 s on an H200, and checkpoints are written in the background (they cost 12% of
  the wall time at 100 when they were written in line; ``checkpoint_overhead_s`` says what they
  cost now).
- **the plain recipe** (``plain_srn.py``: textbook SRN, Adam 1e-4, batch 16, uniform 256 crops,
  multi-scale L1 on linear values, bf16, channels_last) in its own subprocess after CopyCat's
  (never sharing the GPU), on the same pairs pulled through the same nodes; it saves its weights
  at exactly the marks (its clock starts before its data pull).

Both are scored afterwards, in a third subprocess (in this process on the CPU), on held-out frames (every frame not trained
on, at most ``--max-heldout`` of them evenly spread): display PSNR (``nodegraph.ml.heldout``:
sRGB-encoded colour clipped to 0..1, mattes clipped to 0..1; mean over frames) and, for mattes,
IoU of ``> 0.5`` pooled over the frames. CopyCat checkpoints run through
``load_cat`` + ``transfer.encode``/``decode`` (bf16 autocast on CUDA), the plain network on linear
values. Also reported: the CopyCat held-out curve over every checkpoint and its step-to-step
spread (std of the PSNR change between consecutive checkpoints in the second half, as
``heldout.Monitor.spread``); baselines on the held-out frames: for mattes, holding the nearest
training frame's mask (IoU, PSNR); for colour shots, the identity (input as output) and a global
3x3 + offset colour matrix fitted by least squares on the training pairs' linear pixels (those in
0..1, where any); an
estimate of the wall time CopyCat spent writing checkpoints (the excess of the summary windows
that hold a checkpoint write over the median window).

Shots (``--shots``, comma separated, or ``all``):

- ``chair_roto`` (default): ``pairs/chair_roto``, 60 frames (0-59) 720x480, JPEG plate -> 8-bit
  grey PNG mask of a reflection. Read converts 8-bit files from sRGB to linear (0 and 1 stay 0
  and 1); a grey PNG reads as rgb, so a Shuffle (out alpha, red) copies red to alpha and CopyCat learns
  ``channelsIn rgb -> channelsOut alpha`` (a matte: IoU and PSNR on the alpha).
- ``tabletennis_denoise`` (default): ``pairs/tabletennis_denoise``, 30 frames (1-30) 352x240 PNG,
  noisy -> clean (rgb -> rgb); crops are 240 (the frame's height).
- ``colourise``: a 512x512 window panning over 30 frames across ``openexr-images/ScanLines/
  Desk.exr`` (``--still``; a real HDR photograph, median linear value 0.135, a lamp up to ~100;
  StillLife.exr, the earlier default, has a median of 0.001: a near-black plate), written as half
  EXR; input = its Rec 709 luminance (Saturation 0, three grey channels), ground truth = the colour
  plate (rgb -> rgb, linear HDR).
- Effects built with nodegraph's nodes on that real plate, ground truth = the plate, to cover the
  task families the issue names: ``whitebalance`` (input = a colour cast: Grade multiply 0.65, 1.0,
  1.5 and gamma 1.1, 1.0, 0.9), ``dehaze`` (input = the plate seen through haze: an Expression
  mixing each channel with a haze level 0.55 by a transmission rising from 0.35 at the top to
  0.95 at the bottom: ``v t + 0.55 (1 - t)``), ``enhance`` (input = a soft, flat plate: Blur 3 then
  Grade whitepoint 1.4, lift 0.02, gamma 1.15). Not run by default (``--shots ...`` or ``all``).

Training frames: 6 at the centres of 6 equal parts of the shot (chair_roto 5,15,25,35,45,55;
30-frame shots 3,8,13,18,23,28), so every held-out frame is at most 5 frames from a training one;
held-out: the rest, 24 at most (chair_roto: 24 of 54; the others all 24).

Results: ``benchmarks/results/copycat_quality.json`` (``--name``): per shot the settings, the
frames, the baselines, per method per mark the scores (with the checkpoint step and its wall
time), the differences CopyCat - plain per mark, the CopyCat curve and spread, run logs' tails;
the GPU name and torch version. ``--merge`` keeps the shots of an earlier result file that this
run does not measure (run the shots one at a time under a per-command time limit). A table is
printed to stderr.

    # GPU, full run (the data folder holds pairs/ and openexr-images/); about 5 min per shot
    python benchmarks/copycat_quality.py --data shared/data --device cuda
    python benchmarks/copycat_quality.py --data shared/data --shots colourise --merge   # add a shot
    python benchmarks/copycat_quality.py --data shared/data --shots colourise --knob learningRate=3e-4 \
        --name copycat_quality_lr3e-4   # an experiment: CopyCat knobs changed, its own result file
    # CPU smoke test (tiny marks, crops, networks and frame counts; under ~2 min)
    python benchmarks/copycat_quality.py --device cpu --quick
"""

from __future__ import annotations

import argparse
import json
import math
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from _util import RESULTS, write_result  # noqa: E402

SHOTS = ("chair_roto", "tabletennis_denoise", "colourise", "whitebalance", "dehaze", "enhance")
DEFAULT_SHOTS = "chair_roto,tabletennis_denoise"
NODE = "CopyCat1"


def default_data() -> Path:
    """The shared data folder holding ``pairs/``: ``shared/data`` in the checkout, else beside it."""
    for cand in (HERE.parent / "shared" / "data", HERE.parent.parent / "shared" / "data"):
        if (cand / "pairs").is_dir():
            return cand
    return HERE.parent.parent / "shared" / "data"


def spread_frames(first: int, last: int, k: int) -> list[int]:
    """``k`` frames at the centres of ``k`` equal parts of first..last."""
    n = last - first + 1
    return sorted({first + min(n - 1, int((i + 0.5) * n / k)) for i in range(k)})


def subsample(frames: list[int], k: int) -> list[int]:
    """At most ``k`` of ``frames``, evenly spread (ends included)."""
    if k <= 0 or len(frames) <= k:
        return list(frames)
    if k == 1:
        return [frames[len(frames) // 2]]
    return [frames[round(i * (len(frames) - 1) / (k - 1))] for i in range(k)]


# ------------------------------------------------------------------------------------------------
# Shots: the graph a user would build, saved as JSON.
def make_plate(still: Path, folder: Path, frames: int, size: int) -> str:
    """A ``size`` square window panning across a still over ``frames`` frames, as half EXRs."""
    import nodegraph as ng
    from nodegraph.image import Format, Image
    from nodegraph.io import read_image, write_image

    img = read_image(still).select(ng.channels.RGB)
    h, w = img.bbox.height, img.bbox.width
    fmt = Format.of_size(size, size)
    for f in range(1, frames + 1):
        t = (f - 1) / max(1, frames - 1)
        x0, y0 = int(t * (w - size)), int((0.2 + 0.6 * t) * (h - size))
        crop = img.pixels[:, y0:y0 + size, x0:x0 + size].contiguous()
        write_image(folder / f"plate.{f:04d}.exr", Image(crop, ng.channels.RGB, fmt.display, fmt), datatype="half",
                    create_directories=True)
    return str(folder / "plate.####.exr")


def build_shot(name: str, root: Path, args: argparse.Namespace) -> dict:
    """Build and save the shot's graph; returns its description (graph path, frames, crop...)."""
    import nodegraph as ng

    g = ng.Graph()
    pairs = args.data / "pairs"
    channels_out = "rgb"
    if name == "chair_roto":
        src = g.add("Read", name="Input", file=str(pairs / name / "input" / "frame_######.jpg"))
        mask = g.add("Read", name="Mask", file=str(pairs / name / "target" / "frame_######.png"))
        truth = g.add("Shuffle", name="Truth", input=mask, out="alpha", red="red")  # grey PNG reads as rgb
        channels_out = "alpha"
    elif name == "tabletennis_denoise":
        src = g.add("Read", name="Input", file=str(pairs / name / "input" / "####.png"))
        truth = g.add("Read", name="Truth", file=str(pairs / name / "target" / "####.png"))
    elif name in ("colourise", "whitebalance", "dehaze", "enhance"):
        plate = make_plate(args.data / "openexr-images" / "ScanLines" / args.still, root / "plate",
                           args.plate_frames, args.plate_size)
        truth = g.add("Read", name="Truth", file=plate)
        if name == "colourise":
            src = g.add("Saturation", name="Input", input=truth, saturation=0.0)
        elif name == "whitebalance":
            src = g.add("Grade", name="Input", input=truth, multiply=(0.65, 1.0, 1.5, 1.0), gamma=(1.1, 1.0, 0.9, 1.0))
        elif name == "dehaze":  # y is up: the transmission t falls towards the top of the frame
            src = g.add("Expression", name="Input", input=truth, temp_name0="t", temp_expr0="0.95 - 0.6 * y / height",
                        **{f"expr{i}": f"{c} * t + 0.55 * (1 - t)" for i, c in enumerate("rgb")})
        else:
            soft = g.add("Blur", name="Soft", input=truth, size=3.0, channels="rgb")
            src = g.add("Grade", name="Input", input=soft, whitepoint=1.4, black=0.02, gamma=1.15, channels="rgb")
    else:
        raise SystemExit(f"unknown shot {name!r}; known: {', '.join(SHOTS)}")
    if g.frame_range(truth) is None:
        raise SystemExit(f"{name}: no frames found under {args.data} (give --data the folder holding "
                         "pairs/ and openexr-images/)")
    first, last = g.frame_range(truth)
    every = list(range(first, last + 1))
    train = spread_frames(first, last, args.train_frames)
    held = subsample([f for f in every if f not in train], args.max_heldout)
    probe = g.evaluate(truth, first)
    crop = min(args.crop, probe.format.display.width, probe.format.display.height)
    g.add("CopyCat", NODE, input=src, groundTruth=truth, dataDirectory=str(root / "copycat"),
          frames=",".join(map(str, train)), modelSize=args.model,
          batchSizeType="manual" if args.batch else "auto", batchSize=args.batch or 4, cropSize=crop,
          checkpointInterval=args.checkpoint_interval, imageInterval=0, channelsIn="rgb", channelsOut=channels_out,
          **args.knobs)
    path = root / f"{name}.json"
    g.save(path)
    return {"shot": name, "graph": str(path), "frames": [first, last], "train_frames": train,
            "heldout_frames": held, "crop": crop, "channels_in": "rgb", "channels_out": channels_out,
            "size": [probe.format.display.width, probe.format.display.height],
            "copycat_dir": str(root / "copycat"), "plain_dir": str(root / "plain")}


# ------------------------------------------------------------------------------------------------
# The two training runs, each in its own process.
def _tail(path: Path, n: int = 1500) -> str:
    try:
        return path.read_text(errors="replace")[-n:]
    except OSError:
        return ""


def run_copycat(shot: dict, marks: list[float], args: argparse.Namespace) -> dict:
    """``nodegraph train`` in a subprocess, interrupted (SIGINT) once its summary passes the last mark."""
    from nodegraph.ml.modelfile import read_cat_info
    from nodegraph.ml.report import read_summary

    folder = Path(shot["copycat_dir"])
    folder.mkdir(parents=True, exist_ok=True)
    summary = folder / f"{NODE}.summary"
    log = folder / "train.log"
    cmd = [sys.executable, "-c", "import sys; from nodegraph.cli import main; sys.argv[0] = 'nodegraph'; main()",
           "train", shot["graph"], "--node", NODE, "--steps", str(args.copycat_steps), "--device", args.device,
           "--log-every", str(math.gcd(10, args.checkpoint_interval))]
    if args.compile:
        cmd.append("--compile")
    stop_at = marks[-1] + args.margin
    t_start = time.perf_counter()
    interrupted_at = None
    with open(log, "w") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env=dict(os.environ, PYTHONUNBUFFERED="1"))
        try:
            while proc.poll() is None:
                time.sleep(0.5)
                rows = read_summary(summary) if summary.is_file() else []
                late = time.perf_counter() - t_start > stop_at + args.startup_limit
                if interrupted_at is None and ((rows and rows[-1][3] >= stop_at) or late):
                    proc.send_signal(signal.SIGINT)
                    interrupted_at = time.perf_counter() - t_start
                elif interrupted_at is not None and time.perf_counter() - t_start > interrupted_at + 180:
                    proc.kill()
            proc.wait()
        except BaseException:
            proc.kill()
            raise
    wall = time.perf_counter() - t_start
    rows = read_summary(summary) if summary.is_file() else []
    elapsed_of = {r[0]: r[3] for r in rows}
    checkpoints, batch = [], None
    for p in folder.glob(f"{NODE}.*.cat"):
        step = p.name.split(".")[-2]
        if not step.isdigit():
            continue  # CopyCat1.best.cat
        info = read_cat_info(p).get("training", {})
        batch = info.get("batch_size", batch)
        elapsed = elapsed_of.get(int(step), info.get("elapsed_s"))
        checkpoints.append({"step": int(step), "elapsed_s": elapsed, "path": str(p)})
    checkpoints.sort(key=lambda c: c["step"])
    return {"returncode": proc.returncode, "wall_s": wall, "sigint_at_s": interrupted_at, "batch": batch,
            "steps": rows[-1][0] if rows else None, "last_elapsed_s": rows[-1][3] if rows else None,
            "checkpoints": checkpoints, "checkpoint_overhead_s": checkpoint_overhead(rows, args.checkpoint_interval),
            "command": " ".join(cmd[:1] + ["-m", "nodegraph"] + cmd[3:]), "log_tail": _tail(log)}


def checkpoint_overhead(rows: list, interval: int) -> float | None:
    """Wall time spent writing checkpoints, estimated from the summary: a checkpoint is written
    just after the row of its step, so the window up to the next row holds the write; its excess
    over the median time per step of the other windows, summed."""
    windows = [(a[0], b[0], b[3] - a[3]) for a, b in zip(rows, rows[1:]) if b[0] > a[0]]
    writes = [(s0, s1, t) for s0, s1, t in windows if s0 > 0 and s0 % interval == 0]
    others = sorted(t / (s1 - s0) for s0, s1, t in windows if not (s0 > 0 and s0 % interval == 0))
    if not writes or len(others) < 2:
        return None
    per_step = others[len(others) // 2]
    return round(sum(max(0.0, t - per_step * (s1 - s0)) for s0, s1, t in writes), 3)


def run_plain(shot: dict, marks: list[float], args: argparse.Namespace) -> dict:
    folder = Path(shot["plain_dir"])
    folder.mkdir(parents=True, exist_ok=True)
    log = folder / "train.log"
    cmd = [sys.executable, str(HERE / "plain_srn.py"), "--graph", shot["graph"], "--node", NODE,
           "--frames", ",".join(map(str, shot["train_frames"])), "--out", str(folder),
           "--marks", ",".join(f"{m:g}" for m in marks), "--device", args.device,
           "--batch", str(args.plain_batch), "--crop", str(shot["crop"])]
    if args.compile:
        cmd.append("--compile")
    t0 = time.perf_counter()
    with open(log, "w") as out:
        try:
            code = subprocess.run(cmd, stdout=out, stderr=subprocess.STDOUT, env=dict(os.environ, PYTHONUNBUFFERED="1"),
                                  timeout=marks[-1] + args.startup_limit + 300).returncode
        except subprocess.TimeoutExpired:
            code = "timeout"
    info = json.loads((folder / "plain.json").read_text()) if (folder / "plain.json").is_file() else {}
    return {"returncode": code, "wall_s": time.perf_counter() - t0, **info,
            "command": " ".join(cmd), "log_tail": _tail(log)}


# ------------------------------------------------------------------------------------------------
# Scoring, in its own process once both runs are over.
def eval_worker(spec: dict) -> dict:
    import nodegraph.nodes  # noqa: F401  (registers the node types)
    from nodegraph.graph import Graph
    from nodegraph.ml.dataset import pull_pair
    from nodegraph.ml.heldout import Monitor, display, iou, is_matte, psnr
    from nodegraph.ml.modelfile import load_cat
    from nodegraph.ml.transfer import decode, encode
    from plain_srn import RefSRN, predict

    dev = torch.device(spec["device"])
    cuda = dev.type == "cuda"
    graph = Graph.load(spec["graph"])
    cc = graph.node(NODE)
    k = cc.knobs
    crop = spec.get("eval_crop") or 0

    def pair(f: int) -> tuple[torch.Tensor, torch.Tensor, tuple[str, ...]]:
        a, b = pull_pair(graph, cc, f, channels_in=k.channelsIn, channels_out=k.channelsOut, device=dev)
        x, y = a.pixels.float(), b.pixels.float()
        if crop:
            h, w = x.shape[-2:]
            c = min(crop, h, w)
            y0, x0 = (h - c) // 2, (w - c) // 2
            x, y = x[:, y0:y0 + c, x0:x0 + c], y[:, y0:y0 + c, x0:x0 + c]
        return x, y, b.channels

    held, train = spec["heldout_frames"], spec["train_frames"]
    hx, hy = [], []
    for f in held:
        x, y, channels = pair(f)
        hx.append(x)
        hy.append(y)
    matte = is_matte(channels)
    tx, ty = zip(*[pair(f)[:2] for f in train])

    def scores(preds: list[torch.Tensor]) -> dict:
        out = {"psnr": sum(psnr(display(p, matte), display(t, matte)) for p, t in zip(preds, hy)) / len(hy)}
        if matte:
            out["iou"] = iou(torch.cat([p.flatten() for p in preds]), torch.cat([t.flatten() for t in hy]))
        return out

    result: dict = {"matte": matte, "gpu": torch.cuda.get_device_name(dev) if cuda else None,
                    "torch": torch.__version__, "baselines": {}}
    t0 = time.perf_counter()
    with torch.inference_mode():
        if matte:  # hold the nearest training frame's mask (the earlier one on a tie)
            nearest = [min(range(len(train)), key=lambda i: (abs(train[i] - f), train[i])) for f in held]
            result["baselines"]["nearest_training_mask"] = scores([ty[i] for i in nearest])
        else:
            if tx[0].shape[0] == ty[0].shape[0]:
                result["baselines"]["identity"] = scores(hx)
            # a global 3x3 (Cin x Cout) + offset colour matrix, least squares on the training pairs
            xs = torch.cat([t.flatten(1) for t in tx], 1).T.double().cpu()
            ys = torch.cat([t.flatten(1) for t in ty], 1).T.double().cpu()
            # pixels within the displayable range only: HDR highlights would dominate the squares
            inside = (xs.amax(1) <= 1) & (ys.amax(1) <= 1) & (xs.amin(1) >= 0) & (ys.amin(1) >= 0)
            if int(inside.sum()) >= 1000:
                xs, ys = xs[inside], ys[inside]
            step = max(1, xs.shape[0] // 2_000_000)
            xs, ys = xs[::step], ys[::step]
            a = torch.cat([xs, torch.ones(len(xs), 1, dtype=xs.dtype)], 1)
            m = torch.linalg.lstsq(a, ys, driver="gelsd").solution.to(dev, torch.float32)
            result["baselines"]["colour_matrix"] = {
                **scores([(torch.cat([x.flatten(1), torch.ones(1, x[0].numel(), device=dev)]).T @ m).T
                          .reshape(-1, *x.shape[-2:]) for x in hx]),
                "matrix": m.T.cpu().tolist()}

        curve = []
        for c in spec["checkpoints"]:
            model = load_cat(c["path"], device=dev).module.eval()
            preds = []
            for x in hx:
                with torch.autocast(dev.type, dtype=torch.bfloat16, enabled=cuda):
                    y = model(encode(x)[None])
                preds.append(decode(y.float())[0])
            curve.append({"step": c["step"], "elapsed_s": c["elapsed_s"], **scores(preds)})
            del model
        result["copycat_curve"] = curve
        plain = []
        for s in spec["plain_snapshots"]:
            saved = torch.load(s["path"], map_location="cpu")
            model = RefSRN(saved["cin"], saved["cout"]).to(dev).to(memory_format=torch.channels_last).eval()
            model.load_state_dict(saved["model"])
            preds = [predict(model, x[None], cuda)[0] for x in hx]
            plain.append({"mark_s": s["mark_s"], "step": s["step"], "elapsed_s": s["elapsed_s"], **scores(preds)})
        result["plain"] = plain
    result["copycat_spread_db"] = Monitor(None, 0, history=[{"psnr": c["psnr"]} for c in curve]).spread()
    result["eval_s"] = time.perf_counter() - t0
    return result


def run_eval(shot: dict, copycat: dict, plain: dict, args: argparse.Namespace) -> dict:
    folder = Path(shot["copycat_dir"]).parent
    spec = {**{k: shot[k] for k in ("graph", "train_frames", "heldout_frames")}, "device": args.device,
            "eval_crop": args.eval_crop, "checkpoints": copycat["checkpoints"],
            "plain_snapshots": plain.get("snapshots", [])}
    (folder / "eval_spec.json").write_text(json.dumps(spec))
    if torch.device(args.device).type == "cpu":  # no GPU to keep free: score in this process
        return eval_worker(spec)
    out = folder / "eval.json"
    log = folder / "eval.log"
    with open(log, "w") as fh:
        proc = subprocess.run([sys.executable, __file__, "--eval-worker", str(folder / "eval_spec.json"),
                               "--eval-out", str(out)], stdout=fh, stderr=subprocess.STDOUT)
    if proc.returncode != 0 or not out.is_file():
        return {"failed": proc.returncode, "log_tail": _tail(log, 4000)}
    return json.loads(out.read_text())


# ------------------------------------------------------------------------------------------------
def per_mark(marks: list[float], ev: dict) -> dict:
    """CopyCat (newest checkpoint at or before each mark) and plain (snapshot at the mark), and the differences."""
    rows = {}
    plain_at = {p["mark_s"]: p for p in ev.get("plain", [])}
    for m in marks:
        before = [c for c in ev.get("copycat_curve", []) if c["elapsed_s"] is not None and c["elapsed_s"] <= m]
        cc = max(before, key=lambda c: c["step"]) if before else None
        pl = plain_at.get(m)
        diff = {}
        for key in ("psnr", "iou"):
            if cc is not None and pl is not None and key in cc and key in pl:
                diff[key] = cc[key] - pl[key]
        rows[f"{m:g}"] = {"copycat": cc, "plain": pl, "copycat_minus_plain": diff}
    return rows


def fmt(entry: dict | None, matte: bool) -> str:
    if not entry:
        return f"{'-':>22}"
    text = f"{entry['psnr']:6.2f}" + (f" IoU {entry['iou']:.3f}" if matte else "")
    return f"{text} @{entry['step']:>6}"


def print_table(name: str, res: dict) -> None:
    ev = res.get("eval", {})
    matte = ev.get("matte", False)
    p = lambda *a: print(*a, file=sys.stderr)  # noqa: E731
    p(f"\n== {name}: train {res['shot']['train_frames']}, {len(res['shot']['heldout_frames'])} held out, "
      f"CopyCat batch {res['copycat'].get('batch')}, crop {res['shot']['crop']}")
    if "failed" in ev:
        p(f"   evaluation failed (exit {ev['failed']}):\n{ev.get('log_tail', '')}")
        return
    p(f"   {'mark s':>6}  {'CopyCat PSNR dB (step)':>28}  {'plain PSNR dB (step)':>28}  {'diff dB':>8}"
      + ("  diff IoU" if matte else ""))
    for m, row in res["marks"].items():
        d = row["copycat_minus_plain"]
        p(f"   {m:>6}  {fmt(row['copycat'], matte):>28}  {fmt(row['plain'], matte):>28}  "
          f"{d['psnr'] if 'psnr' in d else float('nan'):8.2f}" + (f"  {d.get('iou', float('nan')):8.3f}" if matte else ""))
    for b, s in ev.get("baselines", {}).items():
        p(f"   baseline {b}: PSNR {s['psnr']:.2f} dB" + (f", IoU {s['iou']:.3f}" if "iou" in s else ""))
    spread = ev.get("copycat_spread_db")
    p(f"   CopyCat: {len(ev.get('copycat_curve', []))} checkpoints, step-to-step spread (2nd half) "
      f"{'-' if spread is None else f'{spread:.3f} dB'}, checkpoint writes ~{res['copycat'].get('checkpoint_overhead_s')} s; "
      f"plain: {res['plain'].get('steps')} steps, {res['plain'].get('crops_per_s', float('nan')):.1f} crops/s")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", type=Path, default=None, help="folder holding pairs/ and openexr-images/")
    ap.add_argument("--shots", default=DEFAULT_SHOTS, help=f"comma separated, of {', '.join(SHOTS)}; or all")
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--marks", default="15,30,60,120", help="wall-time marks in seconds")
    ap.add_argument("--margin", type=float, default=5.0, help="seconds CopyCat trains past the last mark")
    ap.add_argument("--model", default="medium", help="CopyCat modelSize")
    ap.add_argument("--batch", type=int, default=0, help="CopyCat manual batch size (<= the 6 frames); 0: auto")
    ap.add_argument("--plain-batch", type=int, default=16)
    ap.add_argument("--crop", type=int, default=256, help="crop size of both (at most the frame's short side)")
    ap.add_argument("--checkpoint-interval", type=int, default=50)
    ap.add_argument("--copycat-steps", type=int, default=1_000_000, help="--steps given to nodegraph train")
    ap.add_argument("--compile", action="store_true", help="torch.compile in both runs")
    ap.add_argument("--knob", action="append", default=[], metavar="NAME=VALUE",
                    help="a CopyCat knob for an experiment (a JSON value, else a string), repeatable: "
                         "learningRate=3e-4, lrSchedule=constant")
    ap.add_argument("--train-frames", type=int, default=6)
    ap.add_argument("--max-heldout", type=int, default=24)
    ap.add_argument("--eval-crop", type=int, default=0, help="score a centre square of this size; 0: whole frames")
    ap.add_argument("--still", default="Desk.exr", help="the EXR in openexr-images/ScanLines that the plate shots pan across")
    ap.add_argument("--plate-frames", type=int, default=30)
    ap.add_argument("--plate-size", type=int, default=512)
    ap.add_argument("--startup-limit", type=float, default=300.0,
                    help="seconds allowed for start-up before a run is stopped regardless of its summary")
    ap.add_argument("--keep", type=Path, default=None, help="keep graphs, checkpoints and logs in this folder")
    ap.add_argument("--name", default="copycat_quality")
    ap.add_argument("--merge", action="store_true", help="keep other shots of an existing result file")
    ap.add_argument("--quick", action="store_true",
                    help="smoke test: marks 3,6 s, crop 32, small network, batch 1, 2 training and 2 held-out "
                         "frames, centre 64 squares scored, checkpoints every 2 steps")
    ap.add_argument("--eval-worker", help=argparse.SUPPRESS)
    ap.add_argument("--eval-out", help=argparse.SUPPRESS)
    args = ap.parse_args()
    args.knobs = {}
    for item in args.knob:
        name, sep, text = item.partition("=")
        if not sep or not name:
            raise SystemExit(f"--knob {item!r}: give NAME=VALUE")
        try:
            args.knobs[name] = json.loads(text)
        except ValueError:
            args.knobs[name] = text  # a bare word: a string value (lrSchedule=constant)
    if args.eval_worker:
        result = eval_worker(json.loads(Path(args.eval_worker).read_text()))
        Path(args.eval_out).write_text(json.dumps(result))
        return
    if args.quick:
        args.marks, args.margin, args.crop, args.model, args.batch = "3,6", 2.0, 32, "small", 1
        args.train_frames, args.max_heldout, args.eval_crop, args.plain_batch = 2, 2, 64, 1
        args.checkpoint_interval, args.plate_size, args.plate_frames = 2, 128, 8
        args.startup_limit = min(args.startup_limit, 60.0)
        if args.name == "copycat_quality":
            args.name += "_quick"
    args.data = (args.data or default_data()).resolve()
    shots = list(SHOTS) if args.shots == "all" else [s.strip() for s in args.shots.split(",") if s.strip()]
    marks = sorted(float(m) for m in args.marks.split(","))

    results: dict = {}
    if args.merge and (RESULTS / f"{args.name}.json").is_file():
        results = json.loads((RESULTS / f"{args.name}.json").read_text()).get("shots", {})
    keep = args.keep
    with tempfile.TemporaryDirectory(prefix="copycat_quality_") as tmp:
        base = keep.resolve() if keep else Path(tmp)
        for name in shots:
            root = base / name
            root.mkdir(parents=True, exist_ok=True)
            shot = build_shot(name, root, args)
            print(f"{name}: training CopyCat ({shot['train_frames']})", file=sys.stderr, flush=True)
            copycat = run_copycat(shot, marks, args)
            if copycat["returncode"] not in (0, 130):
                print(f"{name}: nodegraph train failed:\n{copycat['log_tail']}", file=sys.stderr, flush=True)
            print(f"{name}: CopyCat exit {copycat['returncode']}, {copycat['steps']} steps, "
                  f"{len(copycat['checkpoints'])} checkpoints; training the plain recipe", file=sys.stderr, flush=True)
            plain = run_plain(shot, marks, args)
            if plain["returncode"] != 0:
                print(f"{name}: plain_srn.py failed:\n{plain['log_tail']}", file=sys.stderr, flush=True)
            print(f"{name}: plain exit {plain['returncode']}, {plain.get('steps')} steps; scoring", file=sys.stderr,
                  flush=True)
            ev = run_eval(shot, copycat, plain, args)
            res = {"shot": {k: v for k, v in shot.items() if not k.endswith("_dir")},
                   "copycat": {k: v for k, v in copycat.items() if k != "checkpoints"},
                   "plain": plain, "eval": ev, "marks": per_mark(marks, ev)}
            results[name] = res
            print_table(name, res)
            RESULTS.mkdir(parents=True, exist_ok=True)  # partial results survive a later failure
            (RESULTS / f"{args.name}.partial.json").write_text(json.dumps({"shots": results}, indent=1))
    summary = {name: {m: {f"{k}_{key}": (row[k] or {}).get(key) if k != "copycat_minus_plain" else row[k].get(key)
                          for k in ("copycat", "plain", "copycat_minus_plain") for key in ("psnr", "iou")
                          if key == "psnr" or r.get("eval", {}).get("matte")}
                      for m, row in r.get("marks", {}).items()}
               for name, r in results.items()}
    gpu = next((r["eval"].get("gpu") for r in results.values() if r.get("eval", {}).get("gpu")), None)
    env = next((r["eval"].get("torch") for r in results.values() if r.get("eval", {}).get("torch")), None)
    write_result(args.name, {
        "settings": {"device": args.device, "marks_s": marks, "margin_s": args.margin, "model": args.model,
                     "copycat_batch": args.batch or "auto", "plain_batch": args.plain_batch, "crop": args.crop,
                     "checkpoint_interval": args.checkpoint_interval, "copycat_steps": args.copycat_steps,
                     "compile": args.compile, "train_frames": args.train_frames, "max_heldout": args.max_heldout,
                     "eval_crop": args.eval_crop, "quick": args.quick, "data": str(args.data),
                     "copycat_knobs": args.knobs},
        "environment": {"gpu": gpu, "torch": env},
        "metric": "display PSNR (sRGB colour / clipped matte, 0..1), mean over held-out frames; IoU of > 0.5 "
                  "pooled over held-out frames (mattes)",
        "target": "CopyCat >= plain at every mark, >= +1.5 dB mean at 60 s; roto: above holding the nearest "
                  "training mask by 15 s, IoU 0.95 by 30 s",
        "summary": summary,
        "shots": results,
    })
    partial = RESULTS / f"{args.name}.partial.json"
    if partial.is_file():
        partial.unlink()


if __name__ == "__main__":
    main()
