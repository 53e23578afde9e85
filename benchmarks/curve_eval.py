"""Animation curve evaluation speed: scalar ``curve(frame)`` calls per second, by curve shape.

Curves: two smooth keys (the common fade), 10 keys of mixed types, 100 and 10,000 smooth keys
(baked tracking data), 100 keys with weighted tangents (the Bezier path that solves x(s) = t).
Frames are random floats within the keys' range, so the binary search and the segment maths run.

Peer, measured in the same run: ``numpy.interp`` called once per frame on the same keys (a C
piecewise-linear interpolator; the per-call cost a scalar curve look-up cannot beat in Python), and
the cost of a bare Python call (``float(frame)``) as the floor. Also: parsing and building a curve.

    python benchmarks/curve_eval.py [--calls 200000] [--repeats 5] [--out PATH]
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from _util import best_of, write_result  # noqa: E402

from nodegraph.curve import INTERPOLATIONS, Curve, Key  # noqa: E402


def shapes(rng: random.Random) -> dict[str, Curve]:
    mixed = []
    for i, kind in enumerate(INTERPOLATIONS + ("smooth", "linear")):
        slopes = {"user": (1.5, None), "break": (2.0, -1.0)}.get(kind, (None, None))
        mixed.append(Key(i * 10.0, rng.uniform(-5, 5), kind, *slopes))
    return {
        "2_smooth": Curve([Key(1, 0), Key(100, 1)]),
        "10_mixed": Curve(mixed, "linear"),
        "100_smooth": Curve([Key(i, rng.uniform(0, 10)) for i in range(100)]),
        "10000_smooth": Curve([Key(i, rng.uniform(0, 10)) for i in range(10_000)]),
        "100_weighted": Curve([Key(i * 4, rng.uniform(0, 10), "user", rng.uniform(-2, 2), None,
                                   rng.uniform(0.3, 2.5), rng.uniform(0.3, 2.5)) for i in range(100)]),
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--calls", type=int, default=200_000)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--out", type=Path, default=None, help="write the JSON here instead of benchmarks/results/")
    args = ap.parse_args()
    rng = random.Random(1)
    results: dict[str, dict[str, float]] = {}
    for name, curve in shapes(rng).items():
        lo, hi = curve.keys[0].x, curve.keys[-1].x
        frames = [rng.uniform(lo, hi) for _ in range(args.calls)]
        xs = np.array([k.x for k in curve.keys])
        ys = np.array([k.y for k in curve.keys])

        def ours() -> None:
            for f in frames:
                curve(f)

        def peer_interp() -> None:
            interp = np.interp
            for f in frames:
                interp(f, xs, ys)

        def floor() -> None:
            for f in frames:
                float(f)

        t_ours, _ = best_of(ours, args.repeats)
        t_peer, _ = best_of(peer_interp, args.repeats)
        t_floor, _ = best_of(floor, args.repeats)
        text = curve.to_nuke()
        t_parse, _ = best_of(lambda: Curve.parse(text), args.repeats)
        t_build, _ = best_of(lambda: Curve(curve.keys, curve.extrapolation), args.repeats)
        results[name] = {
            "keys": len(curve.keys),
            "evals_per_s": args.calls / t_ours,
            "us_per_eval": t_ours / args.calls * 1e6,
            "peer_numpy_interp_evals_per_s": args.calls / t_peer,
            "floor_python_call_evals_per_s": args.calls / t_floor,
            "parse_ms": t_parse * 1e3,
            "build_ms": t_build * 1e3,
        }
    data = {"calls": args.calls, "repeats": args.repeats, "curves": results}
    if args.out:
        args.out.write_text(json.dumps(data, indent=2) + "\n")
        print(json.dumps(data, indent=2))
    else:
        write_result("curve_eval", data)


if __name__ == "__main__":
    t0 = time.perf_counter()
    main()
    print(f"# {time.perf_counter() - t0:.1f} s", file=sys.stderr)
