"""Nuke's expression language: parsed once by a real grammar, compiled to closures, never ``eval``.

``Expression("Transform1.translate.x(frame - 1) * 2")`` parses the text (parses of identical text
are shared), lists the knobs it names (:meth:`Expression.references`) and evaluates it at a
frame with a resolver callback the engine supplies::

    expr.evaluate(frame, resolve, **variables)   # resolve(ref: Reference, frame) -> float | tuple

Variables are extra names (per-pixel r, g, x, y...). When any of them is a torch tensor the same
tree runs as tensor operations (``?:`` as ``torch.where``, ``&&`` element-wise, noise per pixel)
and the result is a tensor (float32, or float64 when a variable is float64); otherwise it runs
as Python floats through closures built once per text, with domain errors raised as
:class:`ExpressionError`.

The language (grammar and precedence in :mod:`nodegraph.expr_parse`, functions in
:mod:`nodegraph.expr_functions`, noise in :mod:`nodegraph.expr_noise`):

- numbers ``1``, ``.5``, ``2.``, ``1e-8``; ``frame``, ``t`` and ``x`` (the frame being
  evaluated); ``y`` (the knob's own keys, as ``curve``); ``pi`` and ``pi()``; variables given to
  ``evaluate`` (a variable ``x`` or ``y`` takes the place of Nuke's meaning: pixel coordinates);
- ``+ - * / % **``, unary ``- + !``, ``< <= > >= == !=``, ``&& || ! | &``, ``?:``, parentheses;
  comparisons and logic give 1 or 0; ``&&``, ``||`` and ``?:`` evaluate only what they need;
  ``%`` is C's ``fmod`` (the sign of the dividend);
- knob references: ``size`` (this node), ``this.size``, ``Grade1.white``, ``Grade1.white.r``,
  ``Node.matrix.3``, ``parent.size``, ``root.first_frame``, ``Group1.Blur2.size``,
  ``parent.Transform1.rotate``; at another frame ``Transform1.translate.x(frame - 1)`` or
  ``knob(frame - 1)``; ``curve`` / ``curve(f)``: the expression's own animation keys;
- ``width`` and ``height``: the size of the format arriving at the node's first input (the root
  format when nothing is connected); ``Node.width``: of the image ``Node`` puts out;
  ``root.width``: of the root format; a knob of that name, where one answers, comes first;
- TCL brackets ``[value Grade1.white]`` and ``[frame]``; any other TCL command is an error that
  names it; the TCL variable ``$nuke_version`` (:data:`~nodegraph.expr_parse.NUKE_VERSION`), any
  other ``$variable`` is an error.

Errors are :class:`ExpressionError` (a ``KnobError``) naming the text and column.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any, Callable, Iterable

import torch

from nodegraph.animation import COMPONENT_NAMES
from nodegraph.expr_functions import ARITY, SCALAR, TENSOR, fmod, pow_
from nodegraph.expr_parse import (FORMAT_SIZES, MAX_DEPTH, Binary, Call, ExpressionError, Frame, Name, Num, Parser, Ref,
                                  Reference, Sample, Ternary, Unary, Var, children, walk)

__all__ = ["Expression", "ExpressionError", "Reference", "FUNCTIONS", "COMPONENT_INDEX"]

#: Every function name the language knows, sorted.
FUNCTIONS = tuple(sorted(ARITY, key=str.lower))
#: Index of a named component when ``resolve`` returns a whole tuple for a component reference
#: (a node's resolver picks the component itself, by the knob's kind: ``box.r``, ``white.r``).
COMPONENT_INDEX = COMPONENT_NAMES

Resolver = Callable[[Reference, float], Any]
_MISSING = object()
_MATH_ERRORS = (ValueError, ZeroDivisionError, OverflowError)


Sampler = Callable[[str, Any, Any], Any]


class _Env:
    __slots__ = ("frame", "resolve", "vars", "sample", "dtype", "device")

    def __init__(self, frame, resolve, variables, sample=None, dtype=None, device=None):
        self.frame = frame
        self.resolve = resolve
        self.vars = variables
        self.sample = sample
        self.dtype = dtype
        self.device = device


class _Program:
    """One parsed text: the tree, its references, and its compiled closures."""

    def __init__(self, text: str, variables: frozenset[str]) -> None:
        self.text = text
        self.tree = Parser(text, ARITY, variables).parse()
        refs: list[Reference] = []
        samples: list[str] = []
        self.uses_time = False
        for node in walk(self.tree):
            if isinstance(node, (Ref, Name)):
                if node.ref.knob in FORMAT_SIZES:
                    continue  # a format's size where no knob answers: not a knob to check
                if node.ref not in refs:
                    refs.append(node.ref)
            elif isinstance(node, Sample):
                if node.name not in samples:
                    samples.append(node.name)
            elif isinstance(node, Frame):
                self.uses_time = True
        self.references = tuple(refs)
        self.samples = tuple(samples)
        dynamic = _dynamic_nodes(self.tree, text)
        self.scalar = _ScalarCompiler(text, dynamic).compile(self.tree)
        self._tensor: Callable[[_Env], Any] | None = None

    @property
    def tensor(self) -> Callable[[_Env], Any]:
        if self._tensor is None:
            self._tensor = _TensorCompiler(self.text).compile(self.tree)
        return self._tensor


def _dynamic_nodes(tree, text: str) -> set[int]:
    """ids of the nodes whose value depends on the frame, a variable or a knob; checks depth."""
    dynamic: set[int] = set()
    stack = [(tree, 1, False)]
    while stack:
        node, depth, done = stack.pop()
        if depth > MAX_DEPTH:
            raise ExpressionError(f"expression is more than {MAX_DEPTH} levels deep (operations inside "
                                  f"operations); split it across knobs", text, node.pos + 1)
        kids = children(node)
        if not done:
            stack.append((node, depth, True))
            stack.extend((kid, depth + 1, False) for kid in kids)
        elif isinstance(node, (Frame, Var, Sample, Name, Ref)) or any(id(kid) in dynamic for kid in kids):
            dynamic.add(id(node))
    return dynamic


@lru_cache(maxsize=4096)
def _program(text: str, variables: frozenset[str]) -> _Program:
    return _Program(text, variables)


class Expression:
    """A parsed Nuke expression. Immutable, hashable, picklable; equal texts share one parse.

    ``variables`` names what :meth:`evaluate` will be given (per-pixel ``r``, ``x``,
    ``rgba.red``...), so that those names are not knob references. A bare name that is not
    declared is a knob of the same node, unless a variable of that name is given to ``evaluate``.
    """

    __slots__ = ("text", "variables", "keys", "_program")

    def __init__(self, text: str, variables: Iterable[str] = (), keys: Any = None) -> None:
        if not isinstance(text, str):
            raise ExpressionError(f"an expression is text, got {type(text).__name__}")
        from nodegraph.curve import Curve

        if keys is not None and not isinstance(keys, Curve):
            raise ExpressionError(f"an expression's keys are a Curve, got {type(keys).__name__}")
        self.text = text
        self.variables = frozenset(variables)
        #: Animation keys saved with the expression (Nuke's ``{"curve+1" x1 0 x10 5}``): what
        #: ``curve`` / ``y`` read in it; None when it has none (``curve`` is then 0).
        self.keys = keys
        self._program = _program(text, self.variables)

    def __repr__(self) -> str:
        extra = f", variables={sorted(self.variables)!r}" if self.variables else ""
        extra += f", keys={self.keys!r}" if self.keys is not None else ""
        return f"Expression({self.text!r}{extra})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Expression) and ((self.text, self.variables, self.keys)
                                                  == (other.text, other.variables, other.keys))

    def __hash__(self) -> int:
        return hash((Expression, self.text, self.variables, self.keys))

    def __reduce__(self):
        return (Expression, (self.text, tuple(sorted(self.variables)), self.keys))

    def references(self) -> tuple[Reference, ...]:
        """The knobs this expression reads, in order of first appearance, without repeats.

        ``width`` and ``height`` (bare, ``Node.width``, ``root.height``) are left out: where no
        knob of that name answers they are a format's size, which the engine resolves by looking
        at the image (so a graph check never reports them as missing knobs)."""
        return self._program.references

    def samples(self) -> tuple[str, ...]:
        """The variables read at other pixels (``r(x + 1, y)``): a per-pixel node must supply
        ``sample`` to :meth:`evaluate_pixels` for them."""
        return self._program.samples

    def uses_time(self) -> bool:
        """True when the value depends on the frame directly (``frame``, ``t``, ``[frame]``,
        including inside a timed reference such as ``X.y(frame - 1)``). A referenced knob may be
        animated itself; the engine accounts for that."""
        return self._program.uses_time

    def evaluate(self, frame: float, resolve: Resolver | None = None, **variables: Any) -> Any:
        """The value at ``frame``: a float, or a tensor when a variable is a tensor.

        ``resolve(ref, frame)`` gives a referenced knob's value at a frame: a number, or a tuple
        (a component reference then takes its component; a whole multi-component value cannot
        be used as a number). Raises :class:`ExpressionError` on a domain error, a division by
        zero, a missing variable or a reference without a resolver.
        """
        return self.evaluate_pixels(frame, resolve, variables)

    def evaluate_pixels(self, frame: float, resolve: Resolver | None, variables: dict[str, Any],
                        sample: Sampler | None = None) -> Any:
        """:meth:`evaluate` with the variables as a mapping, and ``sample(name, x, y)`` giving
        variable ``name`` at pixel coordinates ``x``, ``y`` (tensors in a per-pixel run) for
        the ``r(x, y)`` form."""
        for value in variables.values():
            if isinstance(value, torch.Tensor):
                tensors = [v for v in variables.values() if isinstance(v, torch.Tensor)]
                dtype = torch.float64 if any(v.dtype == torch.float64 for v in tensors) else torch.float32
                env = _Env(frame, resolve, variables, sample, dtype, tensors[0].device)
                return self._program.tensor(env)
        return self._program.scalar(_Env(float(frame), resolve, variables, sample))


# --- shared runtime helpers -------------------------------------------------------------------------

def _runtime(text: str, pos: int, message: str) -> ExpressionError:
    return ExpressionError(message, text, pos + 1)


def _lookup(env: _Env, ref: Reference, frame: Any, text: str, pos: int) -> Any:
    if env.resolve is None:
        raise _runtime(text, pos, f"the expression reads knob {str(ref)!r} but no resolver was given")
    value = env.resolve(ref, frame)
    if isinstance(value, (tuple, list)):
        if ref.component is not None:
            index = ref.component if isinstance(ref.component, int) else COMPONENT_INDEX[ref.component]
            if index >= len(value):
                raise _runtime(text, pos, f"{str(ref)!r}: component {ref.component!r} is beyond the knob's "
                                          f"{len(value)} value(s)")
            value = value[index]
        elif len(value) == 1:
            value = value[0]
        else:
            raise _runtime(text, pos, f"{str(ref)!r} has {len(value)} values; name a component "
                                      f"(such as {str(ref)}.r or {str(ref)}.0)")
    return value


def _frame_of(value: Any, text: str, pos: int) -> float:
    if isinstance(value, torch.Tensor):
        if value.numel() != 1:
            raise _runtime(text, pos, "a knob is read at one frame, not a different frame per pixel")
        return float(value)
    return float(value)


def _fmt(args: tuple) -> str:
    return ", ".join(repr(a) for a in args)


# --- scalar backend -------------------------------------------------------------------------------

class _ScalarCompiler:
    """Builds nested closures over Python floats; constant subtrees are folded when they evaluate
    without error (an error stays for evaluation time, where it belongs)."""

    def __init__(self, text: str, dynamic: set[int]) -> None:
        self.text = text
        self.dynamic = dynamic

    def compile(self, node) -> Callable[[_Env], float]:
        fn = getattr(self, "c_" + type(node).__name__)(node)
        if id(node) in self.dynamic or isinstance(node, Num):
            return fn
        try:
            value = fn(_Env(0.0, None, {}))
        except ExpressionError:
            return fn
        return lambda env: value

    def c_Num(self, node: Num):
        value = node.value
        return lambda env: value

    def c_Frame(self, node: Frame):
        if node.name == "x":
            return lambda env: env.vars.get("x", env.frame)
        return lambda env: env.frame

    def c_Var(self, node: Var):
        name, text, pos = node.name, self.text, node.pos

        def var(env):
            try:
                return env.vars[name]
            except KeyError:
                raise _runtime(text, pos, f"variable {name!r} was not given") from None
        return var

    def c_Sample(self, node: Sample):
        name, text, pos = node.name, self.text, node.pos
        fx, fy = self.compile(node.x), self.compile(node.y)

        def sample(env):
            if env.sample is None:
                raise _runtime(text, pos, f"{name}(x, y) reads another pixel, which needs an image (no sampler given)")
            return float(env.sample(name, fx(env), fy(env)))
        return sample

    def c_Name(self, node: Name):
        name, ref, text, pos = node.name, node.ref, self.text, node.pos

        def bare(env):
            value = env.vars.get(name, _MISSING)
            if value is _MISSING:
                return _number(_lookup(env, ref, env.frame, text, pos), ref, text, pos)
            return value
        return bare

    def c_Ref(self, node: Ref):
        ref, text, pos = node.ref, self.text, node.pos
        if node.at is None:
            return lambda env: _number(_lookup(env, ref, env.frame, text, pos), ref, text, pos)
        at = self.compile(node.at)
        return lambda env: _number(_lookup(env, ref, _frame_of(at(env), text, pos), text, pos), ref, text, pos)

    def c_Unary(self, node: Unary):
        a = self.compile(node.operand)
        if node.op == "-":
            return lambda env: -a(env)
        return lambda env: 0.0 if a(env) else 1.0

    def c_Ternary(self, node: Ternary):
        c, a, b = (self.compile(n) for n in (node.cond, node.then, node.other))
        return lambda env: a(env) if c(env) else b(env)

    def c_Binary(self, node: Binary):
        a = self.compile(node.left)
        b = self.compile(node.right)
        op, text, pos = node.op, self.text, node.pos
        if op == "+":
            return lambda env: a(env) + b(env)
        if op == "-":
            return lambda env: a(env) - b(env)
        if op == "*":
            return lambda env: a(env) * b(env)
        if op == "/":
            def div(env):
                n, d = a(env), b(env)
                if d == 0:
                    raise _runtime(text, pos, f"division by zero ({n!r} / 0)")
                return n / d
            return div
        if op in ("%", "**"):
            fn, name = (fmod, "modulo") if op == "%" else (pow_, "power")

            def math_op(env):
                x, y = a(env), b(env)
                try:
                    return fn(x, y)
                except _MATH_ERRORS as err:
                    raise _runtime(text, pos, f"{name} {x!r} {op} {y!r}: {err}") from None
            return math_op
        if op == "<":
            return lambda env: 1.0 if a(env) < b(env) else 0.0
        if op == "<=":
            return lambda env: 1.0 if a(env) <= b(env) else 0.0
        if op == ">":
            return lambda env: 1.0 if a(env) > b(env) else 0.0
        if op == ">=":
            return lambda env: 1.0 if a(env) >= b(env) else 0.0
        if op == "==":
            return lambda env: 1.0 if a(env) == b(env) else 0.0
        if op == "!=":
            return lambda env: 1.0 if a(env) != b(env) else 0.0
        if op == "&&":
            return lambda env: 1.0 if a(env) and b(env) else 0.0
        if op == "||":
            return lambda env: 1.0 if a(env) or b(env) else 0.0

        def bitwise(env):
            x, y = a(env), b(env)
            try:
                i, j = int(x), int(y)
            except _MATH_ERRORS:
                raise _runtime(text, pos, f"{op!r} needs finite numbers, got {x!r} and {y!r}") from None
            return float(i | j if op == "|" else i & j)
        return bitwise

    def c_Call(self, node: Call):
        fn = SCALAR[node.name][2]
        args = [self.compile(a) for a in node.args]
        name, text, pos = node.name, self.text, node.pos

        def fail(values, err):
            return _runtime(text, pos, f"{name}({_fmt(values)}): {err}")
        if len(args) == 1:
            (a,) = args

            def call1(env):
                x = a(env)
                try:
                    return fn(x)
                except _MATH_ERRORS as err:
                    raise fail((x,), err) from None
            return call1
        if len(args) == 2:
            a, b = args

            def call2(env):
                x, y = a(env), b(env)
                try:
                    return fn(x, y)
                except _MATH_ERRORS as err:
                    raise fail((x, y), err) from None
            return call2

        def calln(env):
            values = tuple(f(env) for f in args)
            try:
                return fn(*values)
            except _MATH_ERRORS as err:
                raise fail(values, err) from None
        return calln


def _number(value: Any, ref: Reference, text: str, pos: int) -> float:
    if type(value) is float:
        return value
    if isinstance(value, torch.Tensor):
        if value.numel() != 1:
            raise _runtime(text, pos, f"knob {str(ref)!r} gave {value.numel()} values where one number is needed")
        return float(value)
    try:
        return float(value)
    except (TypeError, ValueError):
        raise _runtime(text, pos, f"knob {str(ref)!r} is not a number ({type(value).__name__} {value!r})") from None


# --- tensor backend -------------------------------------------------------------------------------

class _TensorCompiler:
    """The same tree as tensor operations: every value is a tensor of the environment's dtype and
    device, broadcast as the operations go; IEEE semantics (nan, inf) instead of errors."""

    def __init__(self, text: str) -> None:
        self.text = text

    def compile(self, node) -> Callable[[_Env], torch.Tensor]:
        return getattr(self, "t_" + type(node).__name__)(node)

    @staticmethod
    def _t(env: _Env, value: Any) -> torch.Tensor:
        return torch.as_tensor(value, dtype=env.dtype, device=env.device)

    def t_Num(self, node: Num):
        value = node.value
        return lambda env: torch.tensor(value, dtype=env.dtype, device=env.device)

    def t_Frame(self, node: Frame):
        if node.name == "x":
            return lambda env: self._t(env, env.vars["x"] if "x" in env.vars else float(env.frame))
        return lambda env: torch.tensor(float(env.frame), dtype=env.dtype, device=env.device)

    def t_Var(self, node: Var):
        name, text, pos, t = node.name, self.text, node.pos, self._t

        def var(env):
            if name not in env.vars:
                raise _runtime(text, pos, f"variable {name!r} was not given")
            return t(env, env.vars[name])
        return var

    def t_Sample(self, node: Sample):
        name, text, pos, t = node.name, self.text, node.pos, self._t
        fx, fy = self.compile(node.x), self.compile(node.y)

        def sample(env):
            if env.sample is None:
                raise _runtime(text, pos, f"{name}(x, y) reads another pixel, which needs an image (no sampler given)")
            return t(env, env.sample(name, fx(env), fy(env)))
        return sample

    def t_Name(self, node: Name):
        name, ref, text, pos, t = node.name, node.ref, self.text, node.pos, self._t

        def bare(env):
            if name in env.vars:
                return t(env, env.vars[name])
            return t(env, _lookup(env, ref, env.frame, text, pos))
        return bare

    def t_Ref(self, node: Ref):
        ref, text, pos, t = node.ref, self.text, node.pos, self._t
        if node.at is None:
            return lambda env: t(env, _lookup(env, ref, env.frame, text, pos))
        at = self.compile(node.at)
        return lambda env: t(env, _lookup(env, ref, _frame_of(at(env), text, pos), text, pos))

    _COMPARE = {"<": torch.lt, "<=": torch.le, ">": torch.gt, ">=": torch.ge, "==": torch.eq, "!=": torch.ne}
    _ARITH = {"+": torch.add, "-": torch.sub, "*": torch.mul, "/": torch.div, "%": torch.fmod, "**": torch.pow}

    def truth(self, node) -> Callable[[_Env], torch.Tensor]:
        """A closure giving a bool tensor: comparisons and logic stay bool until a number is needed."""
        if isinstance(node, Binary) and node.op in self._COMPARE:
            cmp, a, b = self._COMPARE[node.op], self.compile(node.left), self.compile(node.right)
            return lambda env: cmp(a(env), b(env))
        if isinstance(node, Binary) and node.op in ("&&", "||"):
            a, b = self.truth(node.left), self.truth(node.right)
            if node.op == "&&":
                return lambda env: a(env) & b(env)
            return lambda env: a(env) | b(env)
        if isinstance(node, Unary) and node.op == "!":
            a = self.truth(node.operand)
            return lambda env: ~a(env)
        value = self.compile(node)
        return lambda env: value(env) != 0

    def t_Unary(self, node: Unary):
        if node.op == "-":
            a = self.compile(node.operand)
            return lambda env: -a(env)
        return self._number(node)

    def _number(self, node):
        truth = self.truth(node)
        return lambda env: truth(env).to(env.dtype)

    def t_Ternary(self, node: Ternary):
        c = self.truth(node.cond)
        a, b = self.compile(node.then), self.compile(node.other)
        return lambda env: torch.where(c(env), a(env), b(env))

    def t_Binary(self, node: Binary):
        op = node.op
        if op in self._COMPARE or op in ("&&", "||"):
            return self._number(node)
        a = self.compile(node.left)
        b = self.compile(node.right)
        if op in self._ARITH:
            fn = self._ARITH[op]
            return lambda env: fn(a(env), b(env))
        bit = torch.bitwise_or if op == "|" else torch.bitwise_and
        return lambda env: bit(torch.trunc(a(env)).to(torch.int64), torch.trunc(b(env)).to(torch.int64)).to(env.dtype)

    def t_Call(self, node: Call):
        fn = TENSOR[node.name]
        args = [self.compile(a) for a in node.args]
        return lambda env: fn(*torch.broadcast_tensors(*(f(env) for f in args)))

