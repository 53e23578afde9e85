"""EXR round trip: read a 2K RGBA half sequence and write it back with ZIP compression.

Peer: the ``OpenEXR`` bindings called directly, per frame: ``OpenEXR.File(path,
separate_channels=True)``, then the same half channels written with ZIP_COMPRESSION to a temporary
name and ``os.replace``-d into place (nodegraph's Write is atomic the same way, so both pay the
rename). nodegraph: ``Read(raw=True) -> Write(channels=rgba, zip, 16 bit half, raw=True)`` rendered
in-process by ``nodegraph.render.render(graph, workers=1)``; also the colour-managed variant
(``raw=False``: the default linear -> linear for float EXR is a no-op and should cost the same).

Passes alternate peer / nodegraph / nodegraph colour for ``--rounds`` rounds, each nodegraph pass
on a fresh graph (so nothing comes from its cache), after a short warm-up of each. Wall and
process CPU time are recorded (CPU time is less disturbed by other load on the machine). Peak RSS
per pass is the kernel's high-water mark, reset before each pass (``/proc/self/clear_refs``).
Outputs are read back and compared bit for bit (as uint16) with each other and with the input.
Target: nodegraph (raw) <= 1.15x the peer's wall time (min and median).

    python benchmarks/exr_roundtrip.py [--frames 24] [--width 2048] [--height 1556] [--rounds 3]
"""

from __future__ import annotations

import argparse
import gc
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import OpenEXR
import torch

sys.path.insert(0, str(Path(__file__).parent))
from _util import write_result  # noqa: E402

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
        grain = rng.standard_normal((height, width), dtype=np.float32) * 0.02
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


def nodegraph_pass(src_dir: Path, out_dir: Path, *, raw: bool, frames: int,
                   dtype: torch.dtype = torch.float32) -> None:
    """Render every frame of the sequence (or only the first ``frames`` of it)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    g = ng.Graph()  # fresh graph and evaluator: no frame comes from a previous pass's cache
    read = g.add("Read", file=str(src_dir / "plate.####.exr"), raw=raw)
    g.add("Write", input=read, file=str(out_dir / "plate.####.exr"), channels="rgba", compression="zip",
          datatype="16 bit half", raw=raw)
    result = render(g, workers=1, frames=list(range(FIRST, FIRST + frames)), dtype=dtype)
    if not result.ok or len(result.written) != frames:
        raise SystemExit(f"nodegraph render failed: {result.failed or result.written}")


#: nodegraph: float32 working precision (the default); nodegraph_half: half kept end to end
#: (``render --half``, what a half-float EXR round trip asks for); nodegraph_colour: colour managed.
VARIANTS = ("peer", "nodegraph", "nodegraph_half", "nodegraph_colour")


def run_variant(name: str, src_dir: Path, out_root: Path, frames: int
                ) -> tuple[float, float, float | None, float | None]:
    """One pass over the first ``frames`` frames: (wall s, process CPU s, peak RSS MiB, RSS at start MiB)."""
    src = sorted(src_dir.glob("plate.*.exr"))[:frames]
    gc.collect()
    reset = reset_peak_rss()
    start = rss_mib()
    t0, c0 = time.perf_counter(), time.process_time()
    if name == "peer":
        peer_pass(src, out_root / name)
    else:
        nodegraph_pass(src_dir, out_root / name, raw=name != "nodegraph_colour", frames=frames,
                       dtype=torch.float16 if name == "nodegraph_half" else torch.float32)
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    return wall, cpu, (rss_mib("VmHWM") if reset else None), start


def reset_peak_rss() -> bool:
    try:
        with open("/proc/self/clear_refs", "w") as f:  # "5": reset the peak RSS (Linux >= 4.0)
            f.write("5")
        return True
    except OSError:
        return False


def rss_mib(field: str = "VmRSS") -> float | None:
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return None


# --- checks ---------------------------------------------------------------------------------------
def bits(path: Path) -> tuple[dict[str, np.ndarray], str]:
    f = OpenEXR.File(str(path), separate_channels=True)
    chans = {n: np.asarray(c.pixels) for n, c in f.channels().items()}
    return {n: a.view(np.uint16) if a.dtype == np.float16 else a for n, a in chans.items()}, \
        str(f.header()["compression"]).rsplit(".", 1)[-1]


def compare(src_dir: Path, out_root: Path, variants: tuple[str, ...]) -> dict[str, bool]:
    """Bit-exact comparison of every output frame of every variant with the peer's and the input."""
    ours = [v for v in variants if v != "peer"]
    same_as_peer = dict.fromkeys(ours, True)
    same_as_input = dict.fromkeys(ours, True)
    for path in sorted(src_dir.glob("plate.*.exr")):
        inp, _ = bits(path)
        peer, peer_comp = bits(out_root / "peer" / path.name)
        assert peer_comp == "ZIP_COMPRESSION" and peer.keys() == inp.keys()
        for v in ours:
            mine, comp = bits(out_root / v / path.name)
            same = comp == "ZIP_COMPRESSION" and all(a.dtype == np.uint16 for a in mine.values())
            same_as_peer[v] &= same and mine.keys() == peer.keys() and all(np.array_equal(mine[k], peer[k]) for k in peer)
            same_as_input[v] &= mine.keys() == inp.keys() and all(np.array_equal(mine[k], inp[k]) for k in inp)
    return {**{f"{v}_identical_to_peer": bool(same_as_peer[v]) for v in ours},
            **{f"{v}_identical_to_input": bool(same_as_input[v]) for v in ours}}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--frames", type=int, default=24)
    ap.add_argument("--width", type=int, default=2048)
    ap.add_argument("--height", type=int, default=1556)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--no-colour", action="store_true", help="skip the raw=False nodegraph variant")
    ap.add_argument("--tmpdir", help="where to put the frames (default: the system temp folder)")
    args = ap.parse_args()
    torch.set_num_threads(1)  # one thread like the peer (OpenEXR's own thread pool is the same for both)

    variants = VARIANTS[:3] if args.no_colour else VARIANTS
    n = args.frames
    with tempfile.TemporaryDirectory(prefix="exr_roundtrip_", dir=args.tmpdir) as tmp:
        root = Path(tmp)
        src_dir, out_root = root / "in", root / "out"
        t0 = time.perf_counter()
        make_sequence(src_dir, n, args.width, args.height)
        gen_s = time.perf_counter() - t0
        in_bytes = sum(p.stat().st_size for p in src_dir.glob("*.exr"))

        for v in variants:  # warm-up: first-call costs, allocator, page cache
            run_variant(v, src_dir, out_root, min(2, n))
        runs: dict[str, list[tuple[float, float, float | None, float | None]]] = {v: [] for v in variants}
        for r in range(args.rounds):
            for v in (variants if r % 2 == 0 else variants[::-1]):
                runs[v].append(run_variant(v, src_dir, out_root, n))
                wall, cpu, peak, start = runs[v][-1]
                print(f"round {r + 1} {v:17s} wall {wall:7.3f}s  cpu {cpu:7.3f}s  rss {start} -> peak {peak} MiB",
                      file=sys.stderr)

        checks = compare(src_dir, out_root, variants)
        out_bytes = sum(p.stat().st_size for p in (out_root / "peer").glob("*.exr"))

    stats = {}
    for v, rs in runs.items():
        walls, cpus = [r[0] for r in rs], [r[1] for r in rs]
        peaks = [r[2] for r in rs if r[2] is not None]
        growth = [r[2] - r[3] for r in rs if r[2] is not None and r[3] is not None]
        stats[v] = {"wall_min_s": min(walls), "wall_median_s": statistics.median(walls), "wall_s": walls,
                    "cpu_min_s": min(cpus), "cpu_median_s": statistics.median(cpus),
                    "per_frame_ms_min": min(walls) / n * 1e3, "per_frame_ms_median": statistics.median(walls) / n * 1e3,
                    "peak_rss_mib": max(peaks) if peaks else None,
                    "peak_rss_growth_mib": max(growth) if growth else None}  # peak minus RSS at the pass's start
    peer = stats["peer"]

    def ratios(v: str) -> dict[str, float]:
        return {"min": stats[v]["wall_min_s"] / peer["wall_min_s"],
                "median": stats[v]["wall_median_s"] / peer["wall_median_s"],
                "cpu_median": stats[v]["cpu_median_s"] / peer["cpu_median_s"]}

    ratio = ratios("nodegraph")
    write_result("exr_roundtrip", {
        "frames": n, "image": f"{args.width}x{args.height} RGBA half, ZIP", "rounds": args.rounds,
        "openexr": OpenEXR.__version__, "openexr_threads": OpenEXR.global_thread_count(),
        "input_mib": in_bytes / 2**20, "output_mib": out_bytes / 2**20, "generate_s": gen_s,
        "variants": stats,
        "ratio": ratio,
        "ratio_half": ratios("nodegraph_half"),
        **({"ratio_colour": ratios("nodegraph_colour")} if "nodegraph_colour" in stats else {}),
        **checks,
        "target_ratio": TARGET, "meets_target": ratio["min"] <= TARGET and ratio["median"] <= TARGET,
        "meets_target_half": ratios("nodegraph_half")["min"] <= TARGET and ratios("nodegraph_half")["median"] <= TARGET,
    })


if __name__ == "__main__":
    main()
