"""Run a parsed Blink kernel (:mod:`nodegraph.nodes.blink_parse`) over every pixel at once with torch.

The kernel's ``process()`` is walked once, each value holding all pixels (SIMT style): an
``if`` whose condition differs between pixels runs both branches under complementary masks and
every assignment is masked (``torch.where``); loops run one iteration of tensor operations at a
time while any pixel still loops (at most :data:`MAX_ITERATIONS`); ``return``, ``break`` and
``continue`` switch pixels off until the function, loop or iteration ends. Helper functions
are inlined at each call. Image reads gather from the input's pixels with the image's edge
mode. Coordinates are Nuke's: x to the right, y up from the bottom of each image's format.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch

from .blink_parse import TYPES, Ast, BlinkUnsupported, Function, ImageDecl, Kernel, TypeRef, unsupported
from .blink_values import (BUILTINS, CONSTANTS, INT, Arr, TypeProblem, Val, arith, const, convert, promote, truth,
                           type_name)

#: Most iterations one loop may run (per call), and deepest nesting of helper-function calls.
MAX_ITERATIONS = 65536
MAX_CALL_DEPTH = 32
_SWIZZLE = {"x": 0, "y": 1, "z": 2, "w": 3, "r": 0, "g": 1, "b": 2, "a": 3}


@dataclass
class Plane:
    """An image as a kernel sees it: pixels ``[C, h, w]`` (row 0 at the top) and Nuke bounds (y up)."""

    decl: ImageDecl
    pixels: torch.Tensor
    x1: int
    y1: int
    x2: int
    y2: int
    range: tuple[int, int, int, int] | None = None
    axis: str = "eX"
    aligned: Any = None

    @property
    def width(self) -> int:
        return self.x2 - self.x1

    @property
    def height(self) -> int:
        return self.y2 - self.y1


@dataclass
class Bounds:
    plane: Plane


@dataclass
class Method:
    owner: Any
    name: str


@dataclass
class Scope:
    vars: dict[str, Any] = field(default_factory=dict)


class Runner:
    """One run of a kernel over a grid of pixels (or none: ``define()`` and uniform evaluation)."""

    def __init__(self, kernel: Kernel, *, grid: tuple[int, ...], device: torch.device, fdt: torch.dtype,
                 params: dict[str, Val] | None = None, planes: dict[str, Plane] | None = None,
                 out: Plane | None = None, pos: tuple[torch.Tensor, torch.Tensor] | None = None) -> None:
        self.k = kernel
        self.grid = grid
        self.ndim = len(grid)
        self.device = device
        self.fdt = fdt
        self.params = params or {}
        self.planes = planes or {}
        self.out = out
        self.pos = pos  # Nuke x [*grid], y [*grid] (int)
        self.component = kernel.granularity == "component"
        self.scopes: list[Scope] = [Scope()]
        self.globals: dict[str, Any] = {}
        self.false = torch.zeros((1,) * self.ndim, dtype=torch.bool, device=device)
        self.true = ~self.false
        self.ret = self.brk = self.cont = self.false
        self.retval: Val | None = None
        self.depth = 0
        self.defined: dict[str, tuple[str, Val | None]] = {}
        self.result: torch.Tensor | None = None

    # --- errors and small helpers ----------------------------------------------------------------
    def err(self, node: Ast | None, what: str) -> BlinkUnsupported:
        line, col = (node.line, node.col) if node is not None else (0, 0)
        return unsupported(self.k.name, line, col, what)

    def const(self, values, base: str) -> Val:
        return const(values, base, self.ndim, self.fdt, self.device)

    def conv(self, v: Val, base: str, n: int, node: Ast) -> Val:
        try:
            return convert(v, base, n, self.fdt)
        except TypeProblem as why:
            raise self.err(node, str(why)) from None

    def live(self, mask: torch.Tensor) -> torch.Tensor:
        return mask & ~(self.ret | self.brk | self.cont)

    def zero(self, typ: TypeRef, node: Ast) -> Val | Arr:
        base, n = self.resolve_type(typ, node)
        if typ.array is not None:
            if typ.array == 0:
                raise self.err(node, "an array without a length needs an initialiser")
            return Arr([self.const([0] * n, base) for _ in range(typ.array)], base, n)
        return self.const([0] * n, base)

    def resolve_type(self, typ: TypeRef, node: Ast) -> tuple[str, int]:
        if typ.base.startswith(("sample:", "value:")):
            kind, img = typ.base.split(":", 1)
            if img not in self.image_decls():
                raise self.err(node, f"'{img}' is not an image of the kernel")
            n = 1 if kind == "value" or self.component else 4
            return "float", n
        if typ.base == "void":
            raise self.err(node, "a void variable")
        return typ.base, typ.n

    def image_decls(self) -> dict[str, ImageDecl]:
        return {d.name: d for d in self.k.images}

    # --- variables -----------------------------------------------------------------------------------
    def lookup(self, name: str) -> Any:
        for scope in reversed(self.scopes):
            if name in scope.vars:
                return scope.vars[name]
        if name in self.globals:
            return self.globals[name]
        if name in self.params:
            return self.params[name]
        return _MISSING

    def store(self, name: str, value: Any, node: Ast) -> None:
        for scope in reversed(self.scopes):
            if name in scope.vars:
                scope.vars[name] = value
                return
        if name in self.globals:
            self.globals[name] = value
            return
        if name in self.params:
            raise self.err(node, f"param '{name}' is read-only")
        raise self.err(node, f"'{name}' is not declared")

    def masked(self, old: Val, new: Val, mask: torch.Tensor) -> Val:
        if mask is self.true:
            return Val(new.t, old.base, old.n)
        return Val(torch.where(mask[None], new.t, old.t), old.base, old.n)

    # --- statements ------------------------------------------------------------------------------------
    def run_function(self, fn: Function, args: list[Any], mask: torch.Tensor, node: Ast) -> Val | None:
        if len(args) != len(fn.params):
            raise self.err(node, f"{fn.name}() takes {len(fn.params)} argument(s), {len(args)} given")
        if self.depth >= MAX_CALL_DEPTH:
            raise self.err(node, f"calls nested more than {MAX_CALL_DEPTH} deep (recursion) are not supported")
        scope = Scope()
        for (ptype, pname), arg in zip(fn.params, args):
            if ptype.array is not None:
                if not isinstance(arg, Arr):
                    raise self.err(node, f"argument '{pname}' of {fn.name}() must be an array")
                scope.vars[pname] = arg
            else:
                if not isinstance(arg, Val):
                    raise self.err(node, f"argument '{pname}' of {fn.name}() must be a value")
                base, n = self.resolve_type(ptype, node)
                scope.vars[pname] = self.conv(arg, base, n, node)
        saved = (self.scopes, self.ret, self.brk, self.cont, self.retval)
        self.scopes = [scope]
        self.ret = self.brk = self.cont = self.false
        self.retval = None if fn.ret.base == "void" else self.zero(fn.ret, node)
        self.depth += 1
        try:
            self.block(fn.body.a, mask)
            return self.retval
        finally:
            self.depth -= 1
            self.scopes, self.ret, self.brk, self.cont, self.retval = saved

    def block(self, stmts: list[Ast], mask: torch.Tensor) -> None:
        self.scopes.append(Scope())
        try:
            for s in stmts:
                m = self.live(mask)
                if m is not self.true and not bool(m.any()):
                    return
                self.stmt(s, m)
        finally:
            self.scopes.pop()

    def stmt(self, s: Ast, m: torch.Tensor) -> None:
        kind = s.kind
        if kind == "block":
            self.block(s.a, m)
        elif kind == "expr":
            self.expr(s.a, m)
        elif kind == "decl":
            self.declare(s, m)
        elif kind == "if":
            c = truth(self.expr(s.a, m))
            if c.numel() == 1:
                branch = s.b if bool(c.reshape(-1)[0]) else s.c
                if branch is not None:
                    self.block([branch], m)
                return
            self.block([s.b], m & c)
            if s.c is not None:
                self.block([s.c], m & ~c)
        elif kind in ("for", "do"):
            self.loop(s, m)
        elif kind == "break":
            self.brk = self.brk | m
        elif kind == "continue":
            self.cont = self.cont | m
        elif kind == "return":
            if s.a is not None:
                if self.retval is None:
                    raise self.err(s, "a void function returns a value")
                v = self.conv(self.expr(s.a, m), self.retval.base, self.retval.n, s)
                self.retval = self.masked(self.retval, v, m)
            self.ret = self.ret | m
        else:  # pragma: no cover - the parser makes only the statements above
            raise self.err(s, f"statement '{kind}'")

    def declare(self, s: Ast, m: torch.Tensor) -> None:
        scope = self.scopes[-1]
        for typ, name, init in s.a:
            if init is None:
                scope.vars[name] = self.zero(typ, s)
            elif typ.array is not None:
                if init.kind != "init_list":
                    raise self.err(init, "an array initialised from something other than '{...}'")
                base, n = self.resolve_type(typ, s)
                items = [self.element(item, base, n, m) for item in init.a]
                length = typ.array or len(items)
                if len(items) > length:
                    raise self.err(init, f"{len(items)} initialisers for an array of {length}")
                items += [self.const([0] * n, base) for _ in range(length - len(items))]
                scope.vars[name] = Arr(items, base, n)
            else:
                base, n = self.resolve_type(typ, s)
                scope.vars[name] = self.element(init, base, n, m)

    def element(self, init: Ast, base: str, n: int, m: torch.Tensor) -> Val:
        if init.kind == "init_list":  # {a, b, c} for a vector
            parts = [self.expr(e, m) for e in init.a]
            return self.conv(self.components(parts, init), base, n, init)
        if init.kind == "construct":
            return self.construct(base, n, [self.expr(e, m) for e in init.b], init)
        return self.conv(self.value(self.expr(init, m), init), base, n, init)

    def loop(self, s: Ast, m: torch.Tensor) -> None:
        self.scopes.append(Scope())
        saved = (self.brk, self.cont)
        self.brk = self.cont = self.false
        try:
            if s.kind == "for" and s.a is not None:
                self.stmt(s.a, m)
            looping = m
            first = True
            for _ in range(MAX_ITERATIONS + 1):
                if not (s.kind == "do" and first) and s.b is not None:
                    c = truth(self.expr(s.b, looping))
                    looping = looping & c
                first = False
                looping = looping & ~self.brk & ~self.ret
                if not bool(looping.any()):
                    return
                self.cont = self.false
                self.block([s.d if s.kind == "for" else s.a], looping)
                self.cont = self.false
                looping = looping & ~self.brk & ~self.ret
                if s.kind == "for" and s.c is not None:
                    self.expr(s.c, looping)
            raise self.err(s, f"a loop running more than {MAX_ITERATIONS} iterations is not supported")
        finally:
            self.brk, self.cont = saved
            self.scopes.pop()

    # --- expressions ----------------------------------------------------------------------------------
    def value(self, v: Any, node: Ast) -> Val:
        if not isinstance(v, Val):
            what = "an array" if isinstance(v, Arr) else "an image" if isinstance(v, Plane) else "this"
            raise self.err(node, f"{what} cannot be used as a value here")
        return v

    def expr(self, e: Ast, m: torch.Tensor) -> Any:
        kind = e.kind
        if kind == "num":
            return self.const(e.a, "float" if isinstance(e.a, float) else "int")
        if kind == "bool":
            return self.const(e.a, "bool")
        if kind == "name":
            v = self.lookup(e.a)
            if v is not _MISSING:
                return v
            if e.a in self.planes or (self.out is not None and e.a == self.out.decl.name):
                return self.planes.get(e.a) or self.out
            if e.a in CONSTANTS:
                return self.const(CONSTANTS[e.a], "float")
            if e.a in ("eX", "eY"):
                return e.a
            raise self.err(e, f"'{e.a}' is not declared")
        if kind == "binary":
            a = self.value(self.expr(e.b, m), e.b)
            b = self.value(self.expr(e.c, m), e.c)
            try:
                return arith(e.a, a, b, self.fdt)
            except TypeProblem as why:
                raise self.err(e, str(why)) from None
        if kind == "unary":
            a = self.value(self.expr(e.b, m), e.b)
            if e.a == "-":
                if a.base == "bool":
                    a = self.conv(a, "int", a.n, e)
                return Val(-a.t, a.base, a.n)
            if e.a == "+":
                return a
            if e.a == "!":
                return Val(~truth(a)[None], "bool", 1)
            if a.base == "float":
                raise self.err(e, "'~' on a float")
            return Val(torch.bitwise_not(a.t), a.base, a.n)
        if kind == "ternary":
            c = truth(self.value(self.expr(e.a, m), e.a))
            if c.numel() == 1:
                return self.expr(e.b if bool(c.reshape(-1)[0]) else e.c, m)
            a = self.value(self.expr(e.b, m & c), e.b)
            b = self.value(self.expr(e.c, m & ~c), e.c)
            try:
                a, b = promote(a, b, self.fdt, keep_bool=True)
            except TypeProblem as why:
                raise self.err(e, str(why)) from None
            return Val(torch.where(c[None], a.t, b.t), a.base, a.n)
        if kind == "cast":
            base, n = self.resolve_type(e.a, e)
            return self.conv(self.value(self.expr(e.b, m), e.b), base, n, e)
        if kind == "assign":
            return self.assign(e, m)
        if kind == "incdec":
            old = self.value(self.expr(e.b, m), e.b)
            one = self.const(1, old.base if old.base != "bool" else "int")
            new = self.conv(arith("+" if e.a == "++" else "-", old, one, self.fdt), old.base, old.n, e)
            self.write(e.b, new, m)
            return new if e.c == "pre" else old
        if kind == "comma":
            out = None
            for item in e.a:
                out = self.expr(item, m)
            return out
        if kind == "member":
            return self.member(e, m)
        if kind == "index":
            return self.index(e, m)
        if kind == "call":
            return self.call(e, m)
        if kind == "construct":
            return self.construct(e.a.base, e.a.n, [self.expr(x, m) for x in e.b], e)
        if kind == "str":
            return e.a
        raise self.err(e, f"'{kind}' is not supported here")

    def components(self, parts: list[Any], node: Ast) -> Val:
        vals = [self.value(p, node) for p in parts]
        base = "float" if any(v.base == "float" for v in vals) else "int" if any(v.base == "int" for v in vals) \
            else "bool"
        vals = [self.conv(v, base, v.n, node) for v in vals]
        shape = torch.broadcast_shapes(*[v.t.shape[1:] for v in vals])
        t = torch.cat([v.t.expand(v.n, *shape) for v in vals])
        return Val(t, base, t.shape[0])

    def construct(self, base: str, n: int, args: list[Any], node: Ast) -> Val:
        if not args:
            return self.const([0] * n, base)
        v = self.components(args, node)
        if v.n not in (1, n):
            raise self.err(node, f"{type_name(base, n)}() made of {v.n} components")
        return self.conv(v, base, n, node)

    def member(self, e: Ast, m: torch.Tensor) -> Any:
        obj = self.expr(e.a, m)
        name = e.b
        if isinstance(obj, Plane):
            if name == "bounds":
                return Bounds(obj)
            if name in ("setRange", "setAxis"):
                return Method(obj, name)
            raise self.err(e, f"image member '{name}' is not supported")
        if isinstance(obj, Bounds):
            p = obj.plane
            if name in ("x1", "y1", "x2", "y2"):
                return self.const(getattr(p, name), "int")
            if name in ("width", "height"):
                return Method(obj, name)
            raise self.err(e, f"bounds member '{name}' is not supported")
        v = self.value(obj, e.a)
        idx = [_SWIZZLE.get(ch) for ch in name]
        if None in idx or any(i >= v.n for i in idx) or len(idx) > 4:
            raise self.err(e, f"swizzle '.{name}' of a {type_name(v.base, v.n)}")
        return Val(v.t[idx], v.base, len(idx))

    def index(self, e: Ast, m: torch.Tensor) -> Val:
        obj = self.expr(e.a, m)
        i = self.value(self.expr(e.b, m), e.b)
        if i.base == "float":
            raise self.err(e.b, "an array index must be an int")
        if isinstance(obj, Arr):
            if i.uniform:
                return obj.items[self.checked(i.item(), len(obj.items), e)]
            idx = i.t[0].clamp(0, len(obj.items) - 1)  # out of range (undefined in C): clamped here
            shape = torch.broadcast_shapes(idx.shape, *[it.t.shape[1:] for it in obj.items])
            stack = torch.stack([it.t.expand(obj.n, *shape) for it in obj.items])
            pick = idx.expand(shape)[None, None].expand(1, obj.n, *shape)
            return Val(stack.gather(0, pick)[0], obj.base, obj.n)
        v = self.value(obj, e.a)
        if not i.uniform:
            raise self.err(e, "a vector indexed by a per-pixel value is not supported")
        k = self.checked(i.item(), v.n, e)
        return Val(v.t[k:k + 1], v.base, 1)

    def checked(self, i: int, size: int, node: Ast) -> int:
        if not 0 <= i < size:
            raise self.err(node, f"index {i} is outside 0..{size - 1}")
        return i

    # --- assignment ---------------------------------------------------------------------------------------
    def assign(self, e: Ast, m: torch.Tensor) -> Val:
        op, target = e.a, e.b
        right = self.value(self.expr(e.c, m), e.c)
        if op != "=":
            old = self.value(self.expr(target, m), target)
            try:
                right = arith(op[:-1], old, right, self.fdt)
            except TypeProblem as why:
                raise self.err(e, str(why)) from None
        return self.write(target, right, m)

    def write(self, target: Ast, value: Val, m: torch.Tensor) -> Val:
        kind = target.kind
        if kind == "name":
            old = self.lookup(target.a)
            if old is _MISSING:
                raise self.err(target, f"'{target.a}' is not declared")
            if not isinstance(old, Val):
                raise self.err(target, f"'{target.a}' cannot be assigned to")
            new = self.masked(old, self.conv(value, old.base, old.n, target), m)
            self.store(target.a, new, target)
            return new
        if kind == "member":
            base = self.value(self.expr(target.a, m), target.a)
            idx = [_SWIZZLE.get(ch) for ch in target.b]
            if None in idx or any(i >= base.n for i in idx) or len(set(idx)) != len(idx):
                raise self.err(target, f"swizzle '.{target.b}' of a {type_name(base.base, base.n)}")
            v = self.conv(value, base.base, len(idx), target)
            shape = torch.broadcast_shapes(base.t.shape[1:], v.t.shape[1:])
            t = base.t.expand(base.n, *shape).clone()
            t[idx] = v.t.expand(len(idx), *shape)
            self.write(target.a, Val(t, base.base, base.n), m)
            return v
        if kind == "index":
            obj = self.expr(target.a, m)
            i = self.value(self.expr(target.b, m), target.b)
            if isinstance(obj, Arr):
                v = self.conv(value, obj.base, obj.n, target)
                if i.uniform:
                    k = self.checked(i.item(), len(obj.items), target)
                    obj.items[k] = self.masked(obj.items[k], v, m)
                else:
                    for k, item in enumerate(obj.items):
                        obj.items[k] = self.masked(item, v, m & (i.t[0] == k))
                return v
            base = self.value(obj, target.a)
            if not i.uniform:
                raise self.err(target, "a vector indexed by a per-pixel value is not supported")
            k = self.checked(i.item(), base.n, target)
            v = self.conv(value, base.base, 1, target)
            shape = torch.broadcast_shapes(base.t.shape[1:], v.t.shape[1:])
            t = base.t.expand(base.n, *shape).clone()
            t[k] = v.t[0].expand(shape)
            self.write(target.a, Val(t, base.base, base.n), m)
            return v
        if kind == "call" and target.a.kind == "name" and self.out is not None and target.a.a == self.out.decl.name:
            return self.write_dst(target, value, m)
        raise self.err(target, "this cannot be assigned to")

    # --- images ---------------------------------------------------------------------------------------------
    def write_dst(self, target: Ast, value: Val, m: torch.Tensor) -> Val:
        if self.result is None:
            raise self.err(target, "the output image is written outside process()")
        args = [self.value(self.expr(a, m), a) for a in target.b]
        value = self.conv(value, "float", value.n, target)
        comps = self.result.shape[0]
        if len(args) in (0, 1):
            if len(args) == 1 and not self.component:
                c = self.uniform_int(args[0], target)
                if not 0 <= c < comps:
                    raise self.err(target, f"component {c} of the output (it has {comps})")
                sel = [c]
                v = self.conv(value, "float", 1, target)
            else:
                if self.component:
                    v = self.conv(value, "float", 1, target)
                    sel = [0]
                else:
                    count = min(value.n, comps) if value.n > 1 else comps
                    v = self.conv(value, "float", value.n, target) if value.n > 1 else \
                        self.conv(value, "float", comps, target)
                    sel = list(range(count))
                    v = Val(v.t[:count], "float", count)
            t = v.t.expand(len(sel), *self.result.shape[1:])
            self.result[sel] = torch.where(m[None], t, self.result[sel])
            return value
        if len(args) not in (2, 3):
            raise self.err(target, f"the output image written with {len(args)} coordinates")
        x, y = (self.conv(a, "int", 1, target).t[0] for a in args[:2])
        p = self.out
        col = x - p.x1
        row = (p.y2 - 1) - y
        ok = m & (col >= 0) & (col < p.width) & (row >= 0) & (row < p.height)
        shape = torch.broadcast_shapes(ok.shape, col.shape, row.shape, self.grid)
        ok, col, row = ok.expand(shape), col.expand(shape), row.expand(shape)
        flat = self.result.reshape(self.result.shape[0], -1)
        if self.component:
            v = self.conv(value, "float", 1, target).t.expand(1, *shape)
            comp = self.pos_comp().expand(shape)
            pix = (comp * p.height + row) * p.width + col
            flat.view(-1)[pix[ok]] = v[0][ok]
        else:
            if len(args) == 3:
                c = self.uniform_int(args[2], target)
                v = self.conv(value, "float", 1, target).t.expand(1, *shape)
                flat[c, (row * p.width + col)[ok]] = v[0][ok]
            else:
                v = self.conv(value, "float", value.n if value.n > 1 else 4, target)
                count = min(v.n, flat.shape[0])
                vt = v.t[:count].expand(count, *shape)
                flat[:count, (row * p.width + col)[ok]] = vt[:, ok]
        return value

    def uniform_int(self, v: Val, node: Ast) -> int:
        if not v.uniform:
            raise self.err(node, "a component chosen per pixel is not supported")
        return int(v.item())

    def pos_comp(self) -> torch.Tensor:
        return torch.arange(4, device=self.device).view(4, 1, 1)

    def read(self, p: Plane, args: list[Val], node: Ast) -> Val:
        """``img()``, ``img(c)``, ``img(dx, dy)``/``img(d)`` (ranged), ``img(x, y[, c])`` (random)."""
        access = p.decl.access
        if p.decl.mode == "eWrite":
            if not args and self.result is not None:
                return Val(self.result.clone(), "float", self.result.shape[0])
            raise self.err(node, f"reading the output image '{p.decl.name}' this way is not supported")
        if self.pos is None:
            raise self.err(node, f"image '{p.decl.name}' read outside process()")
        comp: Val | None = None
        if not args or (access == "eAccessPoint" and len(args) == 1):
            if p.aligned is None:
                p.aligned = self.gather(p, self.pos[0], self.pos[1], None)
            base = p.aligned
            if args:
                comp = args[0]
                return self.pick(base, comp, node)
            return base
        if access == "eAccessPoint":
            raise self.err(node, f"image '{p.decl.name}' (eAccessPoint) read at a position: declare it "
                                 "eAccessRanged or eAccessRandom")
        ints = [self.conv(a, "int", 1, node).t[0] for a in args]
        if access == "eAccessRanged1D":
            if len(args) != 1:
                raise self.err(node, f"ranged-1D image '{p.decl.name}' read with {len(args)} offsets")
            x, y = (self.pos[0] + ints[0], self.pos[1]) if p.axis == "eX" else (self.pos[0], self.pos[1] + ints[0])
        elif access == "eAccessRanged2D":
            if len(args) not in (2, 3):
                raise self.err(node, f"ranged-2D image '{p.decl.name}' read with {len(args)} offsets")
            x, y = self.pos[0] + ints[0], self.pos[1] + ints[1]
        else:
            if len(args) not in (2, 3):
                raise self.err(node, f"random-access image '{p.decl.name}' read with {len(args)} coordinates")
            x, y = ints[0], ints[1]
        if len(args) == 3:
            return self.gather(p, x, y, ints[2])
        return self.gather(p, x, y, None)

    def pick(self, v: Val, comp: Val, node: Ast) -> Val:
        c = self.uniform_int(self.conv(comp, "int", 1, node), node)
        if self.component or not 0 <= c < v.n:
            raise self.err(node, f"component {c} of a {type_name(v.base, v.n)}")
        return Val(v.t[c:c + 1], v.base, 1)

    def gather(self, p: Plane, x: torch.Tensor, y: torch.Tensor, comp: torch.Tensor | None) -> Val:
        """Pixels of ``p`` at Nuke positions ``x``, ``y`` (int, broadcast to the grid) with its edge mode."""
        shape = torch.broadcast_shapes(x.shape, y.shape, self.grid if comp is None else comp.shape, self.grid)
        nc, h, w = p.pixels.shape
        want = 1 if (self.component or comp is not None) else nc
        if h == 0 or w == 0 or nc == 0:
            return Val(torch.zeros((want, *shape), dtype=self.fdt, device=self.device), "float", want)
        col = (x - p.x1).expand(shape)
        row = ((p.y2 - 1) - y).expand(shape)
        inside = None
        if p.decl.edge == "eEdgeConstant":
            inside = (col >= 0) & (col < w) & (row >= 0) & (row < h)
        pix = row.clamp(0, h - 1) * w + col.clamp(0, w - 1)
        pixels = p.pixels.to(self.fdt)
        if self.component or comp is not None:
            c = self.pos_comp() if comp is None else comp
            c = c.expand(shape).clamp(0, nc - 1)
            vals = pixels.reshape(-1)[(c * (h * w) + pix).reshape(-1)].reshape(1, *shape)
        else:
            vals = pixels.reshape(nc, -1)[:, pix.reshape(-1)].reshape(nc, *shape)
        if inside is not None:
            vals = torch.where(inside[None], vals, torch.zeros((), dtype=vals.dtype, device=vals.device))
        return Val(vals, "float", vals.shape[0])

    def bilinear(self, p: Plane, x: Val, y: Val, node: Ast) -> Val:
        """``bilinear(img, x, y)``: pixel (i, j) at position (i, j), linear between (Blink's convention)."""
        xf = self.conv(x, "float", 1, node).t[0]
        yf = self.conv(y, "float", 1, node).t[0]
        x0, y0 = torch.floor(xf), torch.floor(yf)
        fx, fy = (xf - x0)[None], (yf - y0)[None]
        xi, yi = x0.to(INT), y0.to(INT)
        a = self.gather(p, xi, yi, None).t
        b = self.gather(p, xi + 1, yi, None).t
        c = self.gather(p, xi, yi + 1, None).t
        d = self.gather(p, xi + 1, yi + 1, None).t
        t = (a * (1 - fx) + b * fx) * (1 - fy) + (c * (1 - fx) + d * fx) * fy
        return Val(t, "float", t.shape[0])

    # --- calls ----------------------------------------------------------------------------------------------
    def call(self, e: Ast, m: torch.Tensor) -> Any:
        callee = e.a
        if callee.kind == "name":
            name = callee.a
            fn = self.k.functions.get(name)
            if fn is not None and name not in ("define", "init", "process"):
                args = [self.expr(a, m) for a in e.b]
                return self.run_function(fn, args, m, e)
            if name == "defineParam":
                return self.define_param(e, m)
            if name == "bilinear":
                if len(e.b) != 3:
                    raise self.err(e, "bilinear() takes an image and x, y")
                img = self.expr(e.b[0], m)
                if not isinstance(img, Plane) or img.decl.mode == "eWrite":
                    raise self.err(e, "bilinear()'s first argument must be an input image")
                return self.bilinear(img, self.value(self.expr(e.b[1], m), e.b[1]),
                                     self.value(self.expr(e.b[2], m), e.b[2]), e)
            if name in self.planes or (self.out is not None and name == self.out.decl.name):
                p = self.planes.get(name) or self.out
                return self.read(p, [self.value(self.expr(a, m), a) for a in e.b], e)
            if name in TYPES and TYPES[name][0] != "void":
                base, n = TYPES[name]
                return self.construct(base, n, [self.expr(a, m) for a in e.b], e)
            if name in BUILTINS:
                (lo, hi), impl = BUILTINS[name]
                args = [self.value(self.expr(a, m), a) for a in e.b]
                if not lo <= len(args) <= hi:
                    raise self.err(e, f"{name}() takes {lo} argument(s), {len(args)} given")
                try:
                    return impl(args, self.fdt)
                except TypeProblem as why:
                    raise self.err(e, f"{name}(): {why}") from None
            raise self.err(callee, f"'{name}' is not supported")
        if callee.kind == "typename":
            base, n = self.resolve_type(callee.a, e)
            return self.construct(base, n, [self.expr(a, m) for a in e.b], e)
        target = self.expr(callee, m)
        if isinstance(target, Method):
            args = [self.expr(a, m) for a in e.b]
            if target.name in ("width", "height"):
                p = target.owner.plane
                return self.const(p.width if target.name == "width" else p.height, "int")
            p = target.owner
            if target.name == "setAxis":
                if len(args) != 1 or args[0] not in ("eX", "eY"):
                    raise self.err(e, "setAxis() takes eX or eY")
                p.axis = args[0]
                return None
            ints = [self.uniform_int(self.conv(self.value(a, e), "int", 1, e), e) for a in args]
            if len(ints) not in (1, 2, 4):
                raise self.err(e, "setRange() takes 1, 2 or 4 numbers")
            p.range = tuple(ints * 4)[:4] if len(ints) == 1 else tuple(ints * 2) if len(ints) == 2 else tuple(ints)
            return None
        raise self.err(e, "this call is not supported")

    def define_param(self, e: Ast, m: torch.Tensor) -> None:
        if len(e.b) < 2 or e.b[0].kind != "name" or e.b[1].kind != "str":
            raise self.err(e, "defineParam(param, \"label\", default) is the form supported")
        name = e.b[0].a
        decl = next((t for t, n, _ in self.k.params if n == name), None)
        if decl is None:
            raise self.err(e, f"defineParam() of '{name}', which is not a param")
        default = None
        if len(e.b) >= 3:
            base, n = self.resolve_type(decl, e)
            default = self.conv(self.value(self.expr(e.b[2], m), e.b[2]), base, n, e)
        self.defined[name] = (e.b[1].a, default)
        return None

    # --- the kernel's entry points ------------------------------------------------------------------------
    def set_globals(self) -> None:
        for decl in self.k.globals:
            self.declare(decl, self.true)
        self.globals = self.scopes[-1].vars
        self.scopes = [Scope()]

    def run_entry(self, name: str, args: list[Any]) -> None:
        fn = self.k.functions.get(name)
        if fn is None:
            return
        if fn.ret.base != "void":
            raise self.err(fn.body, f"{name}() must return void")
        self.run_function(fn, args, self.true, fn.body)


_MISSING = object()


__all__ = ["Bounds", "MAX_ITERATIONS", "Plane", "Runner"]


# --- kernel-level entry points --------------------------------------------------------------------------

@dataclass
class ParamSpec:
    """A kernel param as a knob: the param's name, its knob label, type and default."""

    name: str
    label: str
    base: str
    n: int
    default: Any  # a number, bool or tuple


def _walk(node: Any):
    if isinstance(node, Ast):
        yield node
        for part in (node.a, node.b, node.c, node.d):
            yield from _walk(part)
    elif isinstance(node, (list, tuple)):
        for item in node:
            yield from _walk(item)


_KNOWN_CALLS = frozenset({"defineParam", "bilinear"})
_METHODS = frozenset({"setRange", "setAxis", "width", "height"})


def check_kernel(kernel: Kernel) -> None:
    """Name the first call of something the translator lacks (before any pixel is computed)."""
    images = {d.name for d in kernel.images}
    known = set(kernel.functions) | set(BUILTINS) | set(TYPES) | images | _KNOWN_CALLS
    bodies = [fn.body for fn in kernel.functions.values()] + list(kernel.globals)
    for body in bodies:
        for node in _walk(body):
            if node.kind != "call":
                continue
            callee = node.a
            if callee.kind == "name" and callee.a not in known:
                raise unsupported(kernel.name, callee.line, callee.col, f"'{callee.a}' is not supported")
            if callee.kind == "member" and callee.b not in _METHODS:
                raise unsupported(kernel.name, callee.line, callee.col, f"'{callee.b}()' is not supported")
    writes = [d for d in kernel.images if d.mode != "eRead"]
    if len(writes) != 1:
        raise BlinkUnsupported(f"kernel {kernel.name}: {len(writes)} output images (one Image<eWrite> is "
                               "supported)")
    if "process" not in kernel.functions:
        raise BlinkUnsupported(f"kernel {kernel.name}: no process() function")


def _python(v: Val) -> Any:
    items = [bool(x) if v.base == "bool" else int(x) if v.base == "int" else float(x)
             for x in v.t.reshape(v.n, -1)[:, 0].tolist()]
    return items[0] if v.n == 1 else tuple(items)


def param_specs(kernel: Kernel) -> list[ParamSpec]:
    """The kernel's params with the labels and defaults ``define()`` gives them (0 where none)."""
    check_kernel(kernel)
    runner = Runner(kernel, grid=(1, 1), device=torch.device("cpu"), fdt=torch.float64)
    runner.set_globals()
    specs = []
    for typ, name, line in kernel.params:
        if typ.array is not None:
            raise unsupported(kernel.name, line, 1, f"array param '{name}' is not supported")
        runner.resolve_type(typ, Ast("param", line, 1))
    runner.run_entry("define", [])
    for typ, name, _line in kernel.params:
        base, n = runner.resolve_type(typ, Ast("param", _line, 1))
        label, default = runner.defined.get(name, (name, None))
        value = _python(default) if default is not None else _python(runner.const([0] * n, base))
        specs.append(ParamSpec(name, label, base, n, value))
    return specs


def run_kernel(kernel: Kernel, *, params: dict[str, Any], inputs: list[Plane | None], out: Plane,
               device: torch.device, fdt: torch.dtype) -> torch.Tensor:
    """The output pixels ``[4, h, w]`` of ``kernel`` over ``out``'s bounds.

    ``inputs`` are the kernel's ``eRead`` images in declaration order (None: not connected, read as
    an empty image); ``params`` the param values by param name."""
    check_kernel(kernel)
    h, w = out.height, out.width
    component = kernel.granularity == "component"
    grid = (4, h, w) if component else (h, w)
    ndim = len(grid)
    xs = torch.arange(out.x1, out.x2, device=device, dtype=INT)
    ys = torch.arange(out.y2 - 1, out.y1 - 1, -1, device=device, dtype=INT)  # row 0 is the top
    shape_x = (1,) * (ndim - 1) + (w,)
    shape_y = (1,) * (ndim - 2) + (h, 1)
    pos = (xs.view(shape_x), ys.view(shape_y))
    reads = [d for d in kernel.images if d.mode == "eRead"]
    planes: dict[str, Plane] = {}
    for decl, plane in zip(reads, inputs + [None] * (len(reads) - len(inputs))):
        if plane is None:
            plane = Plane(decl, torch.zeros((4, 0, 0), device=device), 0, 0, 0, 0)
        plane.decl = decl
        planes[decl.name] = plane
    out.decl = next(d for d in kernel.images if d.mode != "eRead")
    runner = Runner(kernel, grid=grid, device=device, fdt=fdt, planes=planes, out=out, pos=pos)
    values = {}
    for spec in param_specs(kernel):
        raw = params.get(spec.name, spec.default)
        values[spec.name] = runner.const(list(raw) if isinstance(raw, (tuple, list)) else raw, spec.base)
    runner.params = values
    runner.set_globals()
    for typ, name, _line in kernel.locals:
        runner.globals[name] = runner.zero(typ, Ast("local", _line, 1))
    runner.run_entry("init", [])
    runner.result = torch.zeros((1 if component else 4, *grid), dtype=fdt, device=device)
    process = kernel.functions["process"]
    args: list[Any] = []
    if process.params:
        (ptype, _pname), *rest = process.params
        if rest or ptype.base != "int" or ptype.n not in (2, 3):
            raise unsupported(kernel.name, process.line, 1, "process() takes nothing or 'int2 pos' (int3 for "
                                                            "component-wise kernels)")
        parts = [pos[0].expand(grid), pos[1].expand(grid)]
        if ptype.n == 3:
            parts.append(runner.pos_comp().expand(grid) if component else torch.zeros(grid, dtype=INT,
                                                                                        device=device))
        args = [Val(torch.stack(parts), "int", ptype.n)]
    runner.run_entry("process", args)
    result = runner.result
    return result[0] if component else result
