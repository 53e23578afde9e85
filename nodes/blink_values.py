"""Blink values as torch tensors, and Blink's built-in functions over them.

A value is a :class:`Val`: Blink type (``float``/``int``/``bool`` and a component count) and a
tensor ``[n, *grid]`` whose grid dimensions are either the output's pixels or 1 (the same for
every pixel: params, constants, what ``init()`` computed). Arithmetic follows C: int division
truncates toward zero, ``%`` keeps the dividend's sign, a float assigned to an int truncates.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import torch

INT = torch.int64


@dataclass
class Val:
    t: torch.Tensor  # [n, *grid] (grid dims may be 1)
    base: str  # 'float', 'int', 'bool'
    n: int

    @property
    def uniform(self) -> bool:
        return self.t.numel() == self.n

    def item(self, i: int = 0) -> float | int | bool:
        return self.t.reshape(self.n, -1)[i, 0].item()


@dataclass
class Arr:
    """A local array (or a function's array parameter, which refers to the caller's array)."""

    items: list[Val]
    base: str
    n: int


class TypeProblem(Exception):
    """A value of the wrong kind for an operation (reported by the evaluator with the position)."""


def dtype_of(base: str, fdt: torch.dtype) -> torch.dtype:
    return fdt if base == "float" else INT if base == "int" else torch.bool


def const(values, base: str, ndim: int, fdt: torch.dtype, device) -> Val:
    """A uniform value: ``values`` (a number or a list of components)."""
    vals = list(values) if isinstance(values, (list, tuple)) else [values]
    t = torch.tensor(vals, dtype=dtype_of(base, fdt), device=device).view(len(vals), *([1] * ndim))
    return Val(t, base, len(vals))


def convert(v: Val, base: str, n: int, fdt: torch.dtype) -> Val:
    """``v`` as type (base, n), the way C converts on assignment and Blink broadcasts a scalar."""
    t = v.t
    if v.base != base:
        if base == "bool":
            t = t != 0
        elif base == "int":
            t = torch.trunc(t).to(INT) if v.base == "float" else t.to(INT)
        else:
            t = t.to(fdt)
    if v.n != n:
        if v.n == 1:
            t = t.expand(n, *t.shape[1:])
        elif v.n > n:
            t = t[:n]
        else:
            raise TypeProblem(f"a {type_name(v.base, v.n)} cannot be used as a {type_name(base, n)}")
    return Val(t, base, n)


def type_name(base: str, n: int) -> str:
    return base if n == 1 else f"{base}{n}"


def promote(a: Val, b: Val, fdt: torch.dtype, *, keep_bool: bool = False) -> tuple[Val, Val]:
    """Both operands in their common type (C's usual arithmetic conversions, scalars broadcast)."""
    if a.base == b.base and (keep_bool or a.base != "bool"):
        base = a.base
    else:
        base = "float" if "float" in (a.base, b.base) else "int"
    if a.n != b.n and 1 not in (a.n, b.n):
        raise TypeProblem(f"a {type_name(a.base, a.n)} and a {type_name(b.base, b.n)} do not combine")
    n = max(a.n, b.n)
    return convert(a, base, n, fdt), convert(b, base, n, fdt)


def truth(v: Val) -> torch.Tensor:
    """A condition: ``[*grid]`` bool (a vector is true where any component is)."""
    t = v.t != 0 if v.base != "bool" else v.t
    return t.any(0) if v.n > 1 else t[0]


def _safe_int_den(b: torch.Tensor) -> torch.Tensor:
    return torch.where(b == 0, torch.ones_like(b), b)


def arith(op: str, a: Val, b: Val, fdt: torch.dtype) -> Val:
    if op in ("&&", "||"):
        ta, tb = truth(a), truth(b)
        return Val((ta & tb if op == "&&" else ta | tb)[None], "bool", 1)
    if op in ("==", "!=", "<", ">", "<=", ">="):
        a, b = promote(a, b, fdt, keep_bool=True)
        fn = {"==": torch.eq, "!=": torch.ne, "<": torch.lt, ">": torch.gt, "<=": torch.le, ">=": torch.ge}[op]
        return Val(fn(a.t, b.t), "bool", a.n)
    if op in ("&", "|", "^", "<<", ">>"):
        if "float" in (a.base, b.base):
            raise TypeProblem(f"'{op}' on a float")
        if a.base == b.base == "bool" and op in ("&", "|", "^"):
            fn = {"&": torch.logical_and, "|": torch.logical_or, "^": torch.logical_xor}[op]
            return Val(fn(a.t, b.t), "bool", max(a.n, b.n))
        a, b = promote(a, b, fdt)
        fn = {"&": torch.bitwise_and, "|": torch.bitwise_or, "^": torch.bitwise_xor,
              "<<": torch.bitwise_left_shift, ">>": torch.bitwise_right_shift}[op]
        return Val(fn(a.t, b.t), a.base, a.n)
    a, b = promote(a, b, fdt)
    if op == "+":
        t = a.t + b.t
    elif op == "-":
        t = a.t - b.t
    elif op == "*":
        t = a.t * b.t
    elif op == "/":
        if a.base == "int":  # C: truncate toward zero; x / 0 (undefined in C) gives 0 here
            den = _safe_int_den(b.t)
            t = torch.where(b.t == 0, torch.zeros_like(a.t), torch.div(a.t, den, rounding_mode="trunc"))
        else:
            t = a.t / b.t
    elif op == "%":
        if a.base == "int":
            t = torch.where(b.t == 0, torch.zeros_like(a.t), torch.fmod(a.t, _safe_int_den(b.t)))
        else:
            t = torch.fmod(a.t, b.t)
    else:  # pragma: no cover - the parser only makes the operators above
        raise TypeProblem(f"operator '{op}'")
    return Val(t, a.base, a.n)


# --- built-in functions ----------------------------------------------------------------------------

def _f(v: Val, fdt: torch.dtype) -> Val:
    return convert(v, "float", v.n, fdt) if v.base != "float" else v


def _same(args: list[Val], fdt: torch.dtype, *, floats: bool = False) -> list[Val]:
    base = "float" if floats or any(a.base == "float" for a in args) else "int"
    n = max(a.n for a in args)
    return [convert(a, base, n, fdt) for a in args]


def _unary(fn: Callable[[torch.Tensor], torch.Tensor]) -> Callable:
    def call(args: list[Val], fdt: torch.dtype) -> Val:
        (a,) = _same(args, fdt, floats=True)
        return Val(fn(a.t), "float", a.n)
    return call


def _keep(fn: Callable[..., torch.Tensor]) -> Callable:
    """A function keeping int arguments int (min, max, clamp, abs)."""
    def call(args: list[Val], fdt: torch.dtype) -> Val:
        vals = _same(args, fdt)
        return Val(fn(*[v.t for v in vals]), vals[0].base, vals[0].n)
    return call


def _floats(fn: Callable[..., torch.Tensor]) -> Callable:
    def call(args: list[Val], fdt: torch.dtype) -> Val:
        vals = _same(args, fdt, floats=True)
        return Val(fn(*[v.t for v in vals]), "float", vals[0].n)
    return call


def _round(t: torch.Tensor) -> torch.Tensor:  # C's round: halves away from zero (torch rounds to even)
    return torch.sign(t) * torch.floor(t.abs() + 0.5)


def _dot(args: list[Val], fdt: torch.dtype) -> Val:
    a, b = _same(args, fdt, floats=True)
    return Val((a.t * b.t).sum(0, keepdim=True), "float", 1)


def _length(args: list[Val], fdt: torch.dtype) -> Val:
    (a,) = _same(args, fdt, floats=True)
    return Val(torch.sqrt((a.t * a.t).sum(0, keepdim=True)), "float", 1)


def _distance(args: list[Val], fdt: torch.dtype) -> Val:
    a, b = _same(args, fdt, floats=True)
    d = a.t - b.t
    return Val(torch.sqrt((d * d).sum(0, keepdim=True)), "float", 1)


def _normalize(args: list[Val], fdt: torch.dtype) -> Val:
    (a,) = _same(args, fdt, floats=True)
    return Val(a.t / torch.sqrt((a.t * a.t).sum(0, keepdim=True)), "float", a.n)


def _cross(args: list[Val], fdt: torch.dtype) -> Val:
    a, b = _same(args, fdt, floats=True)
    if a.n != 3:
        raise TypeProblem("cross() takes two float3")
    return Val(torch.cross(a.t.expand(3, *torch.broadcast_shapes(a.t.shape, b.t.shape)[1:]),
                           b.t.expand(3, *torch.broadcast_shapes(a.t.shape, b.t.shape)[1:]), dim=0), "float", 3)


def _smoothstep(e0: torch.Tensor, e1: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    t = ((x - e0) / (e1 - e0)).clamp(0.0, 1.0)
    return t * t * (3.0 - 2.0 * t)


def _isx(fn: Callable[[torch.Tensor], torch.Tensor]) -> Callable:
    def call(args: list[Val], fdt: torch.dtype) -> Val:
        (a,) = _same(args, fdt, floats=True)
        return Val(fn(a.t), "bool", a.n)
    return call


#: name -> (arity or (min, max), implementation(args, float dtype) -> Val)
BUILTINS: dict[str, tuple[tuple[int, int], Callable[[list[Val], torch.dtype], Val]]] = {
    **{name: ((1, 1), _unary(fn)) for name, fn in {
        "sqrt": torch.sqrt, "rsqrt": torch.rsqrt, "exp": torch.exp, "exp2": torch.exp2, "log": torch.log,
        "log2": torch.log2, "log10": torch.log10, "sin": torch.sin, "cos": torch.cos, "tan": torch.tan,
        "asin": torch.asin, "acos": torch.acos, "atan": torch.atan, "sinh": torch.sinh, "cosh": torch.cosh,
        "tanh": torch.tanh, "floor": torch.floor, "ceil": torch.ceil, "trunc": torch.trunc, "round": _round,
        "fract": lambda t: t - torch.floor(t), "sign": torch.sign, "fabs": torch.abs,
        "radians": lambda t: t * (math.pi / 180.0), "degrees": lambda t: t * (180.0 / math.pi),
        "rcp": torch.reciprocal, "expm1": torch.expm1, "log1p": torch.log1p, "cbrt": lambda t: torch.sign(t) *
        t.abs() ** (1.0 / 3.0)}.items()},
    "abs": ((1, 1), _keep(torch.abs)),
    "min": ((2, 2), _keep(torch.minimum)),
    "max": ((2, 2), _keep(torch.maximum)),
    "fmin": ((2, 2), _floats(torch.fmin)),
    "fmax": ((2, 2), _floats(torch.fmax)),
    "clamp": ((3, 3), _keep(lambda x, lo, hi: torch.minimum(torch.maximum(x, lo), hi))),
    "pow": ((2, 2), _floats(torch.pow)),
    "powr": ((2, 2), _floats(torch.pow)),
    "atan2": ((2, 2), _floats(torch.atan2)),
    "fmod": ((2, 2), _floats(torch.fmod)),
    "hypot": ((2, 2), _floats(torch.hypot)),
    "step": ((2, 2), _floats(lambda edge, x: (x >= edge).to(x.dtype))),
    "smoothstep": ((3, 3), _floats(_smoothstep)),
    "lerp": ((3, 3), _floats(lambda a, b, t: a + (b - a) * t)),
    "mix": ((3, 3), _floats(lambda a, b, t: a + (b - a) * t)),
    "dot": ((2, 2), _dot),
    "length": ((1, 1), _length),
    "distance": ((2, 2), _distance),
    "normalize": ((1, 1), _normalize),
    "cross": ((2, 2), _cross),
    "isnan": ((1, 1), _isx(torch.isnan)),
    "isinf": ((1, 1), _isx(torch.isinf)),
    "isfinite": ((1, 1), _isx(torch.isfinite)),
}

#: Named constants kernels use.
CONSTANTS: dict[str, float] = {"M_PI": math.pi, "PI": math.pi, "M_PI_2": math.pi / 2, "M_E": math.e,
                               "M_SQRT2": math.sqrt(2.0), "FLT_MAX": 3.4028234663852886e38,
                               "FLT_MIN": 1.1754943508222875e-38, "FLT_EPSILON": 1.1920928955078125e-07,
                               "INFINITY": math.inf}


__all__ = ["Arr", "BUILTINS", "CONSTANTS", "INT", "TypeProblem", "Val", "arith", "const", "convert", "dtype_of",
           "promote", "truth", "type_name"]
