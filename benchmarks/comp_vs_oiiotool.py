"""The keying tree without the model step, nodegraph against oiiotool, in the same run.

Tree (Nuke's keying documentation, model step left out):
    Read plate + Read alpha hint -> Shuffle2 (hint into rgba.alpha) -> Colorspace sRGB->linear
    -> Premult -> Merge2 over a constant background -> Write EXR (ZIP, half)
on a generated 2K (2048x1556) half-float EXR sequence. The peer is one `oiiotool` process doing
the same operations frame by frame over the sequence (`--frames`, with OIIO's own threads):

    oiiotool plate.#.exr hint.#.exr --ch R --chnames A --chappend
             --colorconvert "sRGB Encoded Rec.709 (sRGB)" "Linear Rec.709 (sRGB)" --premult
             --pattern constant:color=BG 2048x1556 4 --over -d half --compression zip -o out.#.exr

nodegraph runs as the user would: `nodegraph render comp.json --workers 2` in a subprocess. Both are
timed as whole processes (start-up included) and their peak RSS taken from the kernel (largest
process of the tree). Peak memory is measured at two sequence lengths to show it is flat in the
number of frames. Outputs are compared pixel by pixel.

    python benchmarks/comp_vs_oiiotool.py [--frames 24] [--rounds 3] [--workers 2]
Target: nodegraph wall time <= 0.8x oiiotool's on 2 cores.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import OpenEXR

sys.path.insert(0, str(Path(__file__).parent))
from _util import write_result  # noqa: E402

import nodegraph as ng  # noqa: E402

FIRST = 1001
BG = (0.18, 0.2, 0.22, 1.0)
SRGB, LINEAR = "sRGB Encoded Rec.709 (sRGB)", "Linear Rec.709 (sRGB)"
TARGET = 0.8


def make_sequence(folder: Path, frames: int, width: int, height: int) -> None:
    """A moving soft-edged subject on a green plate (sRGB-encoded values) and a rough alpha hint."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(7)
    y = np.linspace(0, 1, height, dtype=np.float32)[:, None]
    x = np.linspace(0, 1, width, dtype=np.float32)[None, :]
    for i in range(frames):
        cx, cy = 0.3 + 0.4 * i / max(1, frames - 1), 0.5
        d = np.sqrt((x - cx) ** 2 + ((y - cy) * height / width) ** 2)
        matte = np.clip((0.18 - d) * 40, 0, 1).astype(np.float32)
        grain = rng.standard_normal((height, width), dtype=np.float32) * 0.01
        plate = {
            "R": (0.1 + 0.7 * matte * (0.6 + 0.4 * y) + grain).astype(np.float16),
            "G": (0.6 * (1 - matte) + 0.5 * matte * x + grain).astype(np.float16),
            "B": (0.15 + 0.3 * matte + grain).astype(np.float16),
        }
        hint = {"R": np.clip(matte + 0.05 * grain, 0, 1).astype(np.float16)}
        header = {"compression": OpenEXR.ZIP_COMPRESSION, "type": OpenEXR.scanlineimage}
        OpenEXR.File(header, plate).write(str(folder / f"plate.{FIRST + i:04d}.exr"))
        OpenEXR.File(dict(header), hint).write(str(folder / f"hint.{FIRST + i:04d}.exr"))


def build_graph(src: Path, out: Path, width: int, height: int) -> ng.Graph:
    g = ng.Graph()
    plate = g.add("Read", name="Plate", file=str(src / "plate.####.exr"), raw=True)
    hint = g.add("Read", name="Hint", file=str(src / "hint.####.exr"), raw=True)
    shuffle = g.add("Shuffle2", B=plate, A=hint, mappings={
        "rgba.red": "B:rgba.red", "rgba.green": "B:rgba.green", "rgba.blue": "B:rgba.blue",
        "rgba.alpha": "A:rgba.red"})
    linear = g.add("Colorspace", input=shuffle, colorspace_in="sRGB", colorspace_out="linear")
    premult = g.add("Premult", input=linear)
    bg = g.add("Constant", name="Background", color=BG, format=f"{width}x{height}")
    over = g.add("Merge2", A=premult, B=bg, operation="over")
    g.add("Write", input=over, file=str(out / "comp.####.exr"), channels="rgba", datatype="16 bit half",
          compression="zip", raw=True, create_directories=True)
    return g


def run_measured(cmd: list[str]) -> tuple[float, float]:
    """Wall seconds and peak RSS (MiB, largest process of the tree) of a command."""
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - t0
    err = proc.stderr.read().decode(errors="replace") if proc.stderr else ""
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"{cmd[0]} failed: {err[-2000:]}")
    return wall, usage.ru_maxrss / 1024


def oiiotool_cmd(src: Path, out: Path, frames: int, width: int, height: int) -> list[str]:
    oiiotool = shutil.which("oiiotool") or str(Path(sys.executable).parent / "oiiotool")
    color = ",".join(str(c) for c in BG)
    return [oiiotool, "--frames", f"{FIRST}-{FIRST + frames - 1}", str(src / "plate.#.exr"), str(src / "hint.#.exr"),
            "--ch", "R", "--chnames", "A", "--chappend", "--colorconvert", SRGB, LINEAR, "--premult",
            "--pattern", f"constant:color={color}", f"{width}x{height}", "4", "--over",
            "-d", "half", "--compression", "zip", "-o", str(out / "comp.#.exr")]


def nodegraph_cmd(graph: Path, frames: int, workers: int) -> list[str]:
    return [sys.executable, "-m", "nodegraph.cli", "render", str(graph), "--frames",
            f"{FIRST}-{FIRST + frames - 1}", "--workers", str(workers)]


def read_rgba(path: Path) -> np.ndarray:
    f = OpenEXR.File(str(path), separate_channels=True)
    ch = f.channels()
    return np.stack([np.asarray(ch[c].pixels, dtype=np.float32) for c in "RGBA"])


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--frames", type=int, default=24)
    ap.add_argument("--short", type=int, default=8, help="shorter sequence for the memory-flatness check")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--width", type=int, default=2048)
    ap.add_argument("--height", type=int, default=1556)
    args = ap.parse_args()
    n, w, h = args.frames, args.width, args.height
    with tempfile.TemporaryDirectory(prefix="comp_vs_oiiotool_") as tmp:
        root = Path(tmp)
        src = root / "src"
        make_sequence(src, n, w, h)
        graph_path = root / "comp.json"
        build_graph(src, root / "nodegraph", w, h).save(graph_path)
        times: dict[str, list[float]] = {"oiiotool": [], "nodegraph": []}
        rss: dict[str, list[float]] = {"oiiotool": [], "nodegraph": []}
        for r in range(args.rounds):
            order = ("oiiotool", "nodegraph") if r % 2 == 0 else ("nodegraph", "oiiotool")
            for name in order:
                out = root / name
                shutil.rmtree(out, ignore_errors=True)
                out.mkdir()
                cmd = oiiotool_cmd(src, out, n, w, h) if name == "oiiotool" else nodegraph_cmd(graph_path, n, args.workers)
                wall, peak = run_measured(cmd)
                times[name].append(wall)
                rss[name].append(peak)
                print(f"round {r + 1} {name:9s} {wall:7.2f}s  peak RSS {peak:7.1f} MiB", file=sys.stderr)
        # memory flatness: the same render over a shorter range
        short_rss = {}
        for name in ("oiiotool", "nodegraph"):
            out = root / name
            shutil.rmtree(out, ignore_errors=True)
            out.mkdir()
            cmd = oiiotool_cmd(src, out, args.short, w, h) if name == "oiiotool" else nodegraph_cmd(
                graph_path, args.short, args.workers)
            short_rss[name] = run_measured(cmd)[1]
        diffs = []  # the short runs rewrote their frames identically; compare them
        for i in range(args.short):
            a = read_rgba(root / "nodegraph" / f"comp.{FIRST + i:04d}.exr")
            b = read_rgba(root / "oiiotool" / f"comp.{FIRST + i:04d}.exr")
            diffs.append(float(np.abs(a - b).max()))

    med = {k: statistics.median(v) for k, v in times.items()}
    ratio = med["nodegraph"] / med["oiiotool"]
    write_result("comp_vs_oiiotool", {
        "frames": n, "image": f"{w}x{h} half EXR, plate RGB + hint, output RGBA half ZIP",
        "workers": args.workers, "rounds": args.rounds,
        "wall_s": times, "wall_median_s": med, "wall_min_s": {k: min(v) for k, v in times.items()},
        "ratio_median": ratio, "ratio_min": min(times["nodegraph"]) / min(times["oiiotool"]),
        "peak_rss_mib": {k: max(v) for k, v in rss.items()},
        "peak_rss_mib_short": short_rss, "short_frames": args.short,
        "max_abs_diff_vs_oiiotool": max(diffs),
        "target_ratio": TARGET, "meets_target": ratio <= TARGET,
    })


if __name__ == "__main__":
    main()
