"""Expression evaluation speed: scalar knob expressions and per-pixel tensor expressions.

Scalar (one knob value at one frame), evaluations per second of:
- ours: ``Expression.evaluate`` (closures compiled once per text);
- peer "tree walk": an interpreter written here that walks the same syntax tree on every call
  (what compiling to closures avoids);
- peer "python": the same formula hand-written as a Python function (the floor for pure Python).
Also the cost of a first parse (cache cleared).

Per pixel (1920x1080 float32 on the CPU): ``Expression.evaluate`` with tensor variables against
the same formula written directly in torch.

    python benchmarks/expression_eval.py [--repeats 5]
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))
from _util import best_of, write_result  # noqa: E402

from nodegraph import expr_noise  # noqa: E402
from nodegraph import expression as E  # noqa: E402
from nodegraph.expr_functions import SCALAR  # noqa: E402
from nodegraph.expr_parse import Binary, Call, Frame, Name, Num, Ref, Ternary, Unary, Var  # noqa: E402

KNOBS = {"translate": 3.0, "size": 10.0, "glowPreset": 2.0, "glowIntensity": 0.7, "mix09": 0.3}


def resolve(ref, frame):
    return KNOBS[ref.knob] + 0.0 * frame


SCALAR_CASES = {
    "frame*2+1": lambda f: f * 2 + 1,
    "sin(frame*0.1)*2+clamp(frame/100)": lambda f: math.sin(f * 0.1) * 2 + min(max(f / 100, 0.0), 1.0),
    "Transform1.translate.x(frame-1) + parent.size * 0.5":
        lambda f: resolve(E.Reference(("Transform1",), "translate", "x", True), f - 1)
        + resolve(E.Reference(("parent",), "size"), f) * 0.5,
    "GLOW.glowPreset==0?0:GLOW.glowPreset==1?0:GLOW.glowPreset==2?(GLOW.glowIntensity*.1):parent.mix09":
        lambda f: 0 if KNOBS["glowPreset"] == 0 else 0 if KNOBS["glowPreset"] == 1 else (
            KNOBS["glowIntensity"] * .1 if KNOBS["glowPreset"] == 2 else KNOBS["mix09"]),
    "noise(frame/10)*5": lambda f: expr_noise.noise(f / 10) * 5,
    "fBm(frame*0.1, 0.5, 0, 4, 2, 0.5)": lambda f: expr_noise.fbm(f * 0.1, 0.5, 0, 4, 2, 0.5),
}


def tree_walk(node, frame, variables):
    """The peer: an interpreter that dispatches on node types on every evaluation."""
    if isinstance(node, Num):
        return node.value
    if isinstance(node, Frame):
        return frame
    if isinstance(node, Var):
        return variables[node.name]
    if isinstance(node, (Name, Ref)):
        at = frame if getattr(node, "at", None) is None else tree_walk(node.at, frame, variables)
        return float(resolve(node.ref, at))
    if isinstance(node, Unary):
        v = tree_walk(node.operand, frame, variables)
        return -v if node.op == "-" else float(not v)
    if isinstance(node, Ternary):
        branch = node.then if tree_walk(node.cond, frame, variables) else node.other
        return tree_walk(branch, frame, variables)
    if isinstance(node, Call):
        return SCALAR[node.name][2](*(tree_walk(a, frame, variables) for a in node.args))
    assert isinstance(node, Binary)
    a = tree_walk(node.left, frame, variables)
    if node.op == "&&":
        return float(bool(a and tree_walk(node.right, frame, variables)))
    if node.op == "||":
        return float(bool(a or tree_walk(node.right, frame, variables)))
    b = tree_walk(node.right, frame, variables)
    return {"+": a + b, "-": a - b, "*": a * b, "/": a / b if b else math.inf, "==": float(a == b),
            "!=": float(a != b), "<": float(a < b), ">": float(a > b), "<=": float(a <= b),
            ">=": float(a >= b)}[node.op]


def per_second(fn, n: int, repeats: int) -> float:
    best, _ = best_of(lambda: [fn(float(i)) for i in range(n)], repeats)
    return n / best


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--calls", type=int, default=20000)
    args = ap.parse_args()
    torch.set_num_threads(1)

    scalar = {}
    for text, python in SCALAR_CASES.items():
        expr = E.Expression(text)
        tree = expr._program.tree
        ours = per_second(lambda f: expr.evaluate(f, resolve), args.calls, args.repeats)
        walk = per_second(lambda f: tree_walk(tree, f, {}), args.calls, args.repeats)
        native = per_second(python, args.calls, args.repeats)
        for f in (1.0, 17.0):
            assert abs(expr.evaluate(f, resolve) - python(f)) < 1e-9 and abs(tree_walk(tree, f, {}) - python(f)) < 1e-9
        E._program.cache_clear()
        t0 = time.perf_counter()
        E.Expression(text)
        parse_us = (time.perf_counter() - t0) * 1e6
        scalar[text] = {"ours_per_s": round(ours), "tree_walk_per_s": round(walk), "python_per_s": round(native),
                        "ours_us": round(1e6 / ours, 2), "speedup_vs_tree_walk": round(ours / walk, 2),
                        "first_parse_us": round(parse_us, 1)}

    h, w = 1080, 1920
    g = torch.Generator().manual_seed(0)
    r, gg, b = (torch.rand(h, w, generator=g) for _ in range(3))
    y, x = torch.meshgrid(torch.arange(h, dtype=torch.float32), torch.arange(w, dtype=torch.float32),
                          indexing="ij")
    pixels = {
        "r*0.2126 + g*0.7152 + b*0.0722": lambda: r * 0.2126 + gg * 0.7152 + b * 0.0722,
        "x > 960 ? r : 1 - r": lambda: torch.where(x > 960, r, 1 - r),
        "noise(x/50, y/50, frame/10)": lambda: expr_noise.noise(x / 50, y / 50, torch.tensor(0.1)),
    }
    per_pixel = {}
    for text, direct in pixels.items():
        expr = E.Expression(text, variables=("r", "g", "b", "x", "y"))
        variables = {"r": r, "g": gg, "b": b, "x": x, "y": y}
        ours, _ = best_of(lambda: expr.evaluate(1, None, **variables), args.repeats)
        peer, _ = best_of(direct, args.repeats)
        assert torch.allclose(expr.evaluate(1, None, **variables), direct(), atol=1e-5)
        per_pixel[text] = {"ours_ms": round(ours * 1e3, 2), "torch_direct_ms": round(peer * 1e3, 2),
                           "ratio": round(ours / peer, 2)}

    write_result("expression_eval", {"scalar": scalar, "per_pixel_1920x1080_float32": per_pixel,
                                     "calls": args.calls, "repeats": args.repeats})


if __name__ == "__main__":
    main()
