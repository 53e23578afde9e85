"""The functions of Nuke's expression language, once for Python floats and once for torch tensors.

The list follows Foundry's table of expression functions ("Adding Mathematical Functions to
Expressions"). Argument orders are Nuke's: ``atan2(y, x)`` as C's, ``lerp(a, b, x)`` and
``mix(a, b, x)`` = ``a + (b - a) * x``, ``smoothstep(a, b, x)``, ``step(a, x)``, ``clamp(x)``
to 0..1 or ``clamp(x, min, max)``. ``int`` and ``trunc`` round toward zero, ``rint`` to the
nearest integer with halves to even (C's ``rint`` in the default rounding mode). ``isnan`` and
``isinf`` (1 or 0) are not in that table but appear in shipped gizmos' per-pixel expressions.

Scalar functions raise ``ValueError``, ``ZeroDivisionError`` or ``OverflowError`` on a domain
error (``log(-1)``, ``sqrt(-1)``, ``acos(2)``, ``pow(-2, 0.5)``, ``fmod(x, 0)``, ``exp(1000)``);
the evaluator turns them into an ExpressionError naming the call. Nuke (C's libm) returns nan or
inf there; a knob holding nan silently poisons every pixel downstream, so a render stops with a
message instead. The tensor versions follow IEEE (nan, inf) per pixel, as Nuke's Expression node
does: one bad pixel must not fail a frame.
"""

from __future__ import annotations

import math

import torch

from nodegraph import expr_noise


def _need(ok: bool, why: str) -> None:
    if not ok:
        raise ValueError(why)


def _finite_int(fn):
    def wrapped(x: float) -> float:
        return float(fn(x)) if math.isfinite(x) else x
    return wrapped


def _log(x: float) -> float:
    _need(x > 0, f"log needs a positive argument, got {x!r}")
    return math.log(x)


def _log10(x: float) -> float:
    _need(x > 0, f"log10 needs a positive argument, got {x!r}")
    return math.log10(x)


def _logb(x: float) -> float:
    _need(x != 0, "logb of 0")
    return float(math.frexp(x)[1] - 1) if math.isfinite(x) else abs(x)


def _sqrt(x: float) -> float:
    _need(x >= 0, f"sqrt of a negative number, {x!r}")
    return math.sqrt(x)


def _acos(x: float) -> float:
    _need(-1 <= x <= 1, f"acos needs -1..1, got {x!r}")
    return math.acos(x)


def _asin(x: float) -> float:
    _need(-1 <= x <= 1, f"asin needs -1..1, got {x!r}")
    return math.asin(x)


def pow_(x: float, y: float) -> float:
    if x == 0 and y < 0:
        raise ZeroDivisionError(f"0 to the negative power {y!r}")
    _need(x >= 0 or y == int(y) or not math.isfinite(y),
          f"negative base {x!r} to the non-integer power {y!r}")
    try:
        return math.pow(x, y)
    except OverflowError:
        raise OverflowError(f"{x!r} to the power {y!r} overflows") from None


def fmod(x: float, y: float) -> float:
    if y == 0:
        raise ZeroDivisionError(f"fmod({x!r}, 0): modulo by zero")
    return math.fmod(x, y)


def _exp(x: float) -> float:
    try:
        return math.exp(x)
    except OverflowError:
        raise OverflowError(f"exp({x!r}) overflows") from None


def _hyperbolic(fn, name):
    def wrapped(x: float) -> float:
        try:
            return fn(x)
        except OverflowError:
            raise OverflowError(f"{name}({x!r}) overflows") from None
    return wrapped


def _max(*xs: float) -> float:
    m = xs[0]
    for v in xs[1:]:
        if v > m:
            m = v
    return m


def _min(*xs: float) -> float:
    m = xs[0]
    for v in xs[1:]:
        if v < m:
            m = v
    return m


def _clamp(x: float, lo: float = 0.0, hi: float = 1.0) -> float:
    return lo if x < lo else hi if x > hi else x


def _lerp(a: float, b: float, x: float) -> float:
    return a + (b - a) * x


def _smoothstep(a: float, b: float, x: float) -> float:
    if x < a:
        return 0.0
    if x >= b:
        return 1.0
    t = (x - a) / (b - a)
    return t * t * (3.0 - 2.0 * t)


def _step(a: float, x: float) -> float:
    return 0.0 if x < a else 1.0


def _ldexp(x: float, e: float) -> float:
    try:
        return math.ldexp(x, int(e))
    except OverflowError:
        raise OverflowError(f"ldexp({x!r}, {e!r}) overflows") from None


def _to_srgb(x: float) -> float:
    return 12.92 * x if x <= 0.0031308 else 1.055 * x ** (1 / 2.4) - 0.055


def _from_srgb(x: float) -> float:
    return x / 12.92 if x <= 0.04045 else ((x + 0.055) / 1.055) ** 2.4


def _to_rec709(x: float) -> float:
    return 4.5 * x if x < 0.018 else 1.099 * x ** 0.45 - 0.099


def _from_rec709(x: float) -> float:
    return x / 4.5 if x < 0.081 else ((x + 0.099) / 1.099) ** (1 / 0.45)


#: name -> (least, most arguments (-1: any), scalar implementation)
SCALAR = {
    "abs": (1, 1, abs), "fabs": (1, 1, abs),
    "acos": (1, 1, _acos), "asin": (1, 1, _asin), "atan": (1, 1, math.atan), "atan2": (2, 2, math.atan2),
    "sin": (1, 1, math.sin), "cos": (1, 1, math.cos), "tan": (1, 1, math.tan),
    "sinh": (1, 1, _hyperbolic(math.sinh, "sinh")), "cosh": (1, 1, _hyperbolic(math.cosh, "cosh")),
    "tanh": (1, 1, math.tanh),
    "ceil": (1, 1, _finite_int(math.ceil)), "floor": (1, 1, _finite_int(math.floor)),
    "int": (1, 1, _finite_int(math.trunc)), "trunc": (1, 1, _finite_int(math.trunc)),
    "rint": (1, 1, _finite_int(round)),
    "clamp": (1, 3, _clamp), "min": (1, -1, _min), "max": (1, -1, _max),
    "lerp": (3, 3, _lerp), "mix": (3, 3, _lerp), "smoothstep": (3, 3, _smoothstep), "step": (2, 2, _step),
    "degrees": (1, 1, math.degrees), "radians": (1, 1, math.radians),
    "exp": (1, 1, _exp), "log": (1, 1, _log), "log10": (1, 1, _log10), "logb": (1, 1, _logb),
    "pow": (2, 2, pow_), "sqrt": (1, 1, _sqrt), "hypot": (2, 2, math.hypot), "fmod": (2, 2, fmod),
    "exponent": (1, 1, lambda x: float(math.frexp(x)[1])), "mantissa": (1, 1, lambda x: math.frexp(x)[0]),
    "ldexp": (2, 2, _ldexp),
    "to_sRGB": (1, 1, _to_srgb), "from_sRGB": (1, 1, _from_srgb),
    "to_rec709f": (1, 1, _to_rec709), "from_rec709f": (1, 1, _from_rec709),
    "random": (1, 3, expr_noise.random), "noise": (1, 3, expr_noise.noise),
    "fBm": (6, 6, expr_noise.fbm), "turbulence": (6, 6, expr_noise.turbulence),
    "isnan": (1, 1, lambda x: 1.0 if x != x else 0.0),
    "isinf": (1, 1, lambda x: 1.0 if x in (math.inf, -math.inf) else 0.0),
    "pi": (0, 0, lambda: math.pi),
}
#: name -> (least, most) arguments, for the parser.
ARITY = {name: (least, most) for name, (least, most, _) in SCALAR.items()}
ARITY["clamp"] = (1, 3)


def _w(cond, a, b):
    return torch.where(cond, a, b)


def _t_max(*xs):
    m = xs[0]
    for v in xs[1:]:
        m = torch.where(v > m, v, m)
    return m


def _t_min(*xs):
    m = xs[0]
    for v in xs[1:]:
        m = torch.where(v < m, v, m)
    return m


def _t_clamp(x, lo=None, hi=None):
    if lo is None:
        lo, hi = torch.zeros_like(x), torch.ones_like(x)
    return _w(x < lo, lo, _w(x > hi, hi, x))


def _t_smoothstep(a, b, x):
    t = (x - a) / (b - a)
    one = torch.ones_like(t)
    return _w(x < a, torch.zeros_like(t), _w(x >= b, one, t * t * (3.0 - 2.0 * t)))


def _t_step(a, x):
    return (x >= a).to(x.dtype if x.is_floating_point() else torch.float32)


def _t_int(x):
    return torch.trunc(x)


TENSOR = {
    "abs": torch.abs, "fabs": torch.abs,
    "acos": torch.acos, "asin": torch.asin, "atan": torch.atan, "atan2": torch.atan2,
    "sin": torch.sin, "cos": torch.cos, "tan": torch.tan, "sinh": torch.sinh, "cosh": torch.cosh,
    "tanh": torch.tanh, "ceil": torch.ceil, "floor": torch.floor, "int": _t_int, "trunc": _t_int,
    "rint": torch.round, "clamp": _t_clamp, "min": _t_min, "max": _t_max,
    "lerp": lambda a, b, x: a + (b - a) * x, "mix": lambda a, b, x: a + (b - a) * x,
    "smoothstep": _t_smoothstep, "step": _t_step, "degrees": torch.rad2deg, "radians": torch.deg2rad,
    "exp": torch.exp, "log": torch.log, "log10": torch.log10,
    "logb": lambda x: torch.floor(torch.log2(torch.abs(x))),
    "pow": torch.pow, "sqrt": torch.sqrt, "hypot": torch.hypot, "fmod": torch.fmod,
    "exponent": lambda x: torch.frexp(x).exponent.to(x.dtype),
    "mantissa": lambda x: torch.frexp(x).mantissa,
    "ldexp": lambda x, e: x * torch.pow(2.0, torch.trunc(e)),
    "to_sRGB": lambda x: _w(x <= 0.0031308, 12.92 * x, 1.055 * x.clamp(min=0) ** (1 / 2.4) - 0.055),
    "from_sRGB": lambda x: _w(x <= 0.04045, x / 12.92, ((x + 0.055) / 1.055).clamp(min=0) ** 2.4),
    "to_rec709f": lambda x: _w(x < 0.018, 4.5 * x, 1.099 * x.clamp(min=0) ** 0.45 - 0.099),
    "from_rec709f": lambda x: _w(x < 0.081, x / 4.5, ((x + 0.099) / 1.099).clamp(min=0) ** (1 / 0.45)),
    "random": expr_noise.random, "noise": expr_noise.noise,
    "fBm": expr_noise.fbm, "turbulence": expr_noise.turbulence,
    "isnan": lambda x: torch.isnan(x).to(x.dtype), "isinf": lambda x: torch.isinf(x).to(x.dtype),
}
assert set(TENSOR) == set(SCALAR) - {"pi"}
