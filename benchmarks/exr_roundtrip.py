"""EXR round trip: read a 2K RGBA half sequence and write it back with ZIP compression.

Peer: the ``OpenEXR`` bindings called directly, per frame: ``OpenEXR.File(path,
separate_channels=True)``, then the same half channels written with ZIP_COMPRESSION to a temporary
name and ``os.replace``-d into place (nodegraph's Write is atomic the same way, so both pay the
rename). nodegraph: ``Read(raw=True) -> Write(channels=rgba, zip, 16 bit half, raw=True)`` rendered
in-process by ``nodegraph.render.render(graph, workers=1)``; also the colour-managed variant
(``raw=False``: the default linear -> linear for float EXR is a no-op and should cost the same).

Passes alternate peer / nodegraph / nodegraph colour for ``--rounds`` rounds, each nodegraph pass
on a fresh graph (so nothing comes from its cache). Peak RSS is measured per variant in a fresh
child process running one pass. Outputs are read back and compared bit for bit (as uint16) with
each other and with the input. Target: nodegraph (raw) <= 1.15x the peer's wall time.

    python benchmarks/exr_roundtrip.py [--frames 24] [--width 2048] [--height 1556] [--rounds 3]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import OpenEXR
import torch

sys.path.insert(0, str(Path(__file__).parent))
from _util import peak_rss_mib, write_result  # noqa: E402

import nodegraph as ng  # noqa: E402
from nodegraph.render import render  # noqa: E402

FIRST = 1001
TARGET = 1.15
CHANNELS = ("R", "G", "B", "A")


# --- input --------------------------------------------------------------------------------------
def make_frame(width: int, height: int, frame: int) -> dict[str, np.ndarray]:
    """Gradients, moving rings, a soft matte and grain: structure ZIP can use, noise it cannot."""
    rng = np.random.default_rng(frame)
    y = np.linspace(0.0, 1.0, height, dtype=np.float32)[:, None]
    x = np.linspace(0.0, 1.0, width, dtype=np.float32)[None, :]
    t = (frame - FIRST) * 0.05
    r2 = (x - 0.5 - 0.1 * np.sin(t)) ** 2 * (width / height) ** 2 + (y - 0.5) ** 2
    rings = 0.5 + 0.5 * np.sin(40.0 * np.sqrt(r2) - 4.0 * t)
    alpha = np.clip((0.35 - np.sqrt(r2)) * 20.0, 0.0, 1.0)
    out = {}
    for i, (c, base) in enumerate(zip(("R", "G", "B"), (x, y, (x + y) * 0.5))):
        grain = rng.normal(0.0, 0.02, (height, width)).astype(np.float32)
        plane = (base * 0.8 + rings * (0.2 + 0.1 * i)) * (0.25 + alpha) + grain
        out[c] = np.ascontiguousarray(plane.astype(np.float16))
    out["A"] = np.ascontiguousarray(alpha.astype(np.float16))
    return out


def make_sequence(folder: Path, frames: int, width: int, height: int) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for f in range(FIRST, FIRST + frames):
        header = {"compression": OpenEXR.ZIP_COMPRESSION, "type": OpenEXR.scanlineimage}
        path = folder / f"plate.{f:04d}.exr"
        OpenEXR.File(header, make_frame(width, height, f)).write(str(path))
        paths.append(path)
    return paths


# --- the two contenders ---------------------------------------------------------------------------
def peer_pass(src: list[Path], out_dir: Path) -> None:
    out_dir.mkdir(parents=True, exist_ok=True)
    for path in src:
        f = OpenEXR.File(str(path), separate_channels=True)
        header = {k: v for k, v in f.header().items() if k != "channels"}
        header["compression"] = OpenEXR.ZIP_COMPRESSION
        channels = {name: np.ascontiguousarray(ch.pixels.astype(np.float16, copy=False))
                    for name, ch in f.channels().items()}
        final = out_dir / path.name
        tmp = out_dir / f".{path.name}.tmp{path.suffix}"
        OpenEXR.File(header, channels).write(str(tmp))
        os.replace(tmp, final)


def nodegraph_pass(src_dir: Path, out_dir: Path, *, raw: bool, frames: int) -> None:
    out_dir.mkdir(parents=True, exist_ok=True)
    g = ng.Graph()  # fresh graph and evaluator: no frame comes from a previous pass's cache
    read = g.add("Read", file=str(src_dir / "plate.####.exr"), raw=raw)
    g.add("Write", input=read, file=str(out_dir / "plate.####.exr"), channels="rgba", compression="zip",
          datatype="16 bit half", raw=raw)
    result = render(g, workers=1)
    if not result.ok or len(result.written) != frames:
        raise SystemExit(f"nodegraph render failed: {result.failed or result.written}")


VARIANTS = ("peer", "nodegraph", "nodegraph_colour")


def run_variant(name: str, src_dir: Path, out_root: Path, frames: int) -> float:
    src = sorted(src_dir.glob("plate.*.exr"))
    t0 = time.perf_counter()
    if name == "peer":
        peer_pass(src, out_root / name)
    else:
        nodegraph_pass(src_dir, out_root / name, raw=name == "nodegraph", frames=frames)
    return time.perf_counter() - t0


# --- checks ---------------------------------------------------------------------------------------
def bits(path: Path) -> tuple[dict[str, np.ndarray], str]:
    f = OpenEXR.File(str(path), separate_channels=True)
    chans = {n: np.asarray(c.pixels) for n, c in f.channels().items()}
    return {n: a.view(np.uint16) if a.dtype == np.float16 else a for n, a in chans.items()}, \
        str(f.header()["compression"]).rsplit(".", 1)[-1]


def compare(src_dir: Path, out_root: Path, variants: tuple[str, ...]) -> dict[str, object]:
    """Bit-exact comparison of every output frame of every variant with the peer's and the input."""
    report: dict[str, object] = {}
    for variant in variants:
        if variant == "peer":
            continue
        same_as_peer = same_as_input = True
        for path in sorted(src_dir.glob("plate.*.exr")):
            inp, _ = bits(path)
            peer, _ = bits(out_root / "peer" / path.name)
            mine, comp = bits(out_root / variant / path.name)
            ok_dtype = all(a.dtype == np.uint16 for a in mine.values())
            same_as_peer &= ok_dtype and comp == "ZIP_COMPRESSION" and mine.keys() == peer.keys() and all(
                np.array_equal(mine[k], peer[k]) for k in peer)
            same_as_input &= mine.keys() == inp.keys() and all(np.array_equal(mine[k], inp[k]) for k in inp)
        report[f"{variant}_identical_to_peer"] = bool(same_as_peer)
        report[f"{variant}_identical_to_input"] = bool(same_as_input)
    return report


# --- peak memory, one pass per fresh process ------------------------------------------------------
def child(variant: str, src_dir: Path, out_root: Path, frames: int) -> None:
    torch.set_num_threads(1)
    base = peak_rss_mib()
    seconds = run_variant(variant, src_dir, out_root, frames)
    print(json.dumps({"baseline_rss_mib": base, "peak_rss_mib": peak_rss_mib(), "seconds": seconds}))


def measure_rss(variant: str, src_dir: Path, out_root: Path, frames: int) -> dict[str, float]:
    cmd = [sys.executable, __file__, "--child", variant, "--src", str(src_dir), "--out", str(out_root),
           "--frames", str(frames)]
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--frames", type=int, default=24)
    ap.add_argument("--width", type=int, default=2048)
    ap.add_argument("--height", type=int, default=1556)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--no-colour", action="store_true", help="skip the raw=False nodegraph variant")
    ap.add_argument("--child", choices=VARIANTS, help=argparse.SUPPRESS)
    ap.add_argument("--src", type=Path, help=argparse.SUPPRESS)
    ap.add_argument("--out", type=Path, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        child(args.child, args.src, args.out, args.frames)
        return
    torch.set_num_threads(1)  # the peer's numpy work is single threaded; OpenEXR's threads are shared

    variants = VARIANTS[:2] if args.no_colour else VARIANTS
    with tempfile.TemporaryDirectory(prefix="exr_roundtrip_") as tmp:
        root = Path(tmp)
        src_dir, out_root = root / "in", root / "out"
        t0 = time.perf_counter()
        make_sequence(src_dir, args.frames, args.width, args.height)
        gen_s = time.perf_counter() - t0
        in_bytes = sum(p.stat().st_size for p in src_dir.glob("*.exr"))

        for v in variants:  # warm-up: imports, page cache, first-call costs
            run_variant(v, src_dir, out_root, args.frames)
        times: dict[str, list[float]] = {v: [] for v in variants}
        for r in range(args.rounds):
            order = variants if r % 2 == 0 else variants[::-1]
            for v in order:
                times[v].append(run_variant(v, src_dir, out_root, args.frames))
                print(f"round {r + 1} {v:17s} {times[v][-1]:.3f}s", file=sys.stderr)

        checks = compare(src_dir, out_root, variants)
        rss = {v: measure_rss(v, src_dir, out_root, args.frames) for v in variants}
        out_bytes = sum(p.stat().st_size for p in (out_root / "peer").glob("*.exr"))

    n = args.frames
    stats = {v: {"min_s": min(ts), "median_s": statistics.median(ts), "all_s": ts,
                 "per_frame_ms_min": min(ts) / n * 1e3, "per_frame_ms_median": statistics.median(ts) / n * 1e3,
                 "peak_rss_mib": rss[v]["peak_rss_mib"], "baseline_rss_mib": rss[v]["baseline_rss_mib"]}
             for v, ts in times.items()}
    peer = stats["peer"]
    ratio_min = stats["nodegraph"]["min_s"] / peer["min_s"]
    ratio_med = stats["nodegraph"]["median_s"] / peer["median_s"]
    data = {
        "frames": n, "image": f"{args.width}x{args.height} RGBA half, ZIP", "rounds": args.rounds,
        "openexr": OpenEXR.__version__, "openexr_threads": OpenEXR.global_thread_count(),
        "input_mib": in_bytes / 2**20, "output_mib": out_bytes / 2**20, "generate_s": gen_s,
        "variants": stats,
        "ratio_min": ratio_min, "ratio_median": ratio_med,
        **({"ratio_colour_min": stats["nodegraph_colour"]["min_s"] / peer["min_s"],
            "ratio_colour_median": stats["nodegraph_colour"]["median_s"] / peer["median_s"]}
           if "nodegraph_colour" in stats else {}),
        **checks,
        "target_ratio": TARGET, "meets_target": ratio_min <= TARGET and ratio_med <= TARGET,
    }
    write_result("exr_roundtrip", data)


if __name__ == "__main__":
    main()
