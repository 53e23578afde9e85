"""Knob values that change over time: curves and expressions on whole knobs or single components.

A numeric knob (float, int, bool, or a fixed-length tuple of them such as a colour or a
translate) holds either a plain value or an *animated* value:

- a :class:`~nodegraph.curve.Curve` or an :class:`~nodegraph.expression.Expression` for the
  whole knob (on a tuple knob it applies to every component, as in Nuke);
- a list with one entry per component, each a number, a curve or an expression
  (``[0.0, Curve(...), Expression("frame/10")]``).

JSON forms, as saved in documents: ``{"curve": ...}`` (the curve's own form), ``{"expression":
"frame / 10"}``, and lists mixing them with numbers.

:class:`Animated` resolves such a value at a frame. Expressions reference other knobs through a
``resolve`` callback given by the owner (the node), which looks them up in its graph; reference
cycles are caught with the path that forms them.
"""

from __future__ import annotations

import functools
import threading
import types
import typing
from dataclasses import dataclass
from typing import Any, Callable

from .errors import KnobError, NodeGraphError

#: Component names after a reference to a knob that declares no :class:`Components` (generic
#: vectors): colour r g b a, position x y z w, uv u v; ``h`` and ``t`` only have one reading.
COMPONENT_NAMES = {"r": 0, "g": 1, "b": 2, "a": 3, "x": 0, "y": 1, "z": 2, "w": 3, "u": 0, "v": 1,
                   "h": 1, "t": 3, "red": 0, "green": 1, "blue": 2, "alpha": 3}


@dataclass(frozen=True)
class Components:
    """The names of a tuple knob's components in expressions, given by the kind of Nuke knob it is.

    Put in the knob's annotation (``Annotated[tuple[float, float, float, float], BOX]``). The same
    letter means different components on different kinds: ``box.r`` is a box's right edge,
    ``white.r`` a colour's red, ``scale.w`` a size's width, ``vector.w`` a 4-vector's fourth value.
    A knob of a declared kind accepts its own names (and the indices 0, 1, ...) only.
    """

    kind: str
    names: tuple[str, ...]
    aliases: tuple[tuple[str, int], ...] = ()

    def index(self, name: str) -> int | None:
        if name in self.names:
            return self.names.index(name)
        return dict(self.aliases).get(name)


#: Nuke's Color_Knob / AColor_Knob: r, g, b, a (also red, green, blue, alpha).
COLOUR = Components("colour", ("r", "g", "b", "a"), (("red", 0), ("green", 1), ("blue", 2), ("alpha", 3)))
#: Nuke's XY_Knob: x, y.
XY = Components("position", ("x", "y"))
#: Nuke's XYZ_Knob: x, y, z.
XYZ = Components("3D position", ("x", "y", "z"))
#: Nuke's WH_Knob: w, h; x and y are accepted too (the same two values in the same order, so
#: reading them never picks a wrong value; a script written by Nuke uses w and h).
WH = Components("width/height", ("w", "h"), (("x", 0), ("y", 1)))
#: Nuke's BBox_Knob: x, y (left and bottom edges), r, t (right and top edges).
BOX = Components("box", ("x", "y", "r", "t"))
#: Nuke's UV_Knob: u, v.
UV = Components("uv", ("u", "v"))


def knob_components(field: Any) -> Components | None:
    """The :class:`Components` a knob declares, from its pydantic field (pydantic moves a top-level
    ``Annotated`` marker to ``field.metadata``) or from a marker inside its annotation."""
    for item in getattr(field, "metadata", ()) or ():
        if isinstance(item, Components):
            return item

    def visit(ann: Any) -> Components | None:
        origin = typing.get_origin(ann)
        if origin is typing.Annotated:
            found = next((m for m in ann.__metadata__ if isinstance(m, Components)), None)
            return found or visit(typing.get_args(ann)[0])
        if origin in (types.UnionType, typing.Union):
            return next((c for c in map(visit, typing.get_args(ann)) if c is not None), None)
        return None

    return visit(getattr(field, "annotation", field))


@functools.lru_cache(maxsize=4096)
def knob_kind(knobs_type: type, knob: str) -> Components | None:
    """The :class:`Components` of knob ``knob`` of a node's knob model class (None: no such knob
    or no declared kind); cached, as references resolve it at every evaluation."""
    field = knobs_type.model_fields.get(knob)
    return knob_components(field) if field is not None else None


def _curve_type() -> type:
    from .curve import Curve

    return Curve


def _expression_type() -> type:
    from .expression import Expression

    return Expression


def is_animated(value: Any) -> bool:
    """True for a curve, an expression, their JSON forms, or a list holding any of them."""
    if isinstance(value, (list, tuple)):
        return any(_is_animated_item(v) for v in value)
    return _is_animated_item(value)


_PLAIN = (int, float, str, bytes, bool, type(None))


def _is_animated_item(value: Any) -> bool:
    if isinstance(value, _PLAIN):  # the common case, decided without importing anything
        return False
    if isinstance(value, dict):
        return "curve" in value or set(value) in ({"expression"}, {"expression", "keys"})
    return isinstance(value, (_curve_type(), _expression_type()))


def is_own_curve(ref: Any) -> bool:
    """Whether an expression's reference is Nuke's ``curve``: the keys stored with the expression."""
    return tuple(ref.path) == () and ref.knob == "curve"


def _item_from(value: Any, where: str) -> Any:
    """One component: a number stays a number; JSON forms become Curve / Expression objects."""
    if isinstance(value, dict):
        if set(value) in ({"expression"}, {"expression", "keys"}):
            text = value["expression"]
            if not isinstance(text, str):
                raise KnobError(f"{where}: an expression must be text, got {type(text).__name__}")
            keys = value.get("keys")
            return _expression_type()(text, keys=None if keys is None else _curve_type().from_json(keys))
        if "curve" in value:
            return _curve_type().from_json(value)
        raise KnobError(f"{where}: an animated value is {{'curve': ...}} or {{'expression': '...'}}, "
                        f"got keys {sorted(value)}")
    if isinstance(value, (_curve_type(), _expression_type())):
        return value
    if isinstance(value, bool) or isinstance(value, (int, float)):
        return value
    raise KnobError(f"{where}: a component must be a number, a curve or an expression, "
                    f"got {type(value).__name__}")


def _item_json(item: Any) -> Any:
    if isinstance(item, _curve_type()):
        return item.to_json()
    if isinstance(item, _expression_type()):
        if item.keys is not None:
            return {"expression": item.text, "keys": item.keys.to_json()}
        return {"expression": item.text}
    return item


# --- what a knob's annotation allows ------------------------------------------------------------

@dataclass(frozen=True)
class Shape:
    """Numeric shape of a knob: the component counts it accepts (1 = a scalar) and the base type."""

    counts: frozenset[int]
    base: type  # float, int or bool
    #: For a choice knob (``Literal[...]``): its choices; an expression or curve on it gives the
    #: index of the choice, as in Nuke (rounded down, held to the first and last choice).
    choices: tuple[str, ...] = ()


def knob_shape(annotation: Any) -> Shape | None:
    """The numeric shape of a knob annotation, or None if the knob cannot be animated."""
    if typing.get_origin(annotation) is typing.Literal:
        choices = typing.get_args(annotation)
        if choices and all(isinstance(c, str) for c in choices):
            return Shape(frozenset({1}), int, tuple(choices))
        return None
    counts: set[int] = set()
    bases: set[type] = set()

    def visit(ann: Any) -> bool:
        origin = typing.get_origin(ann)
        if origin is typing.Annotated:
            return visit(typing.get_args(ann)[0])
        if origin in (types.UnionType, typing.Union):
            return all(visit(a) for a in typing.get_args(ann) if a is not type(None))
        if origin is tuple:
            args = typing.get_args(ann)
            if not args or Ellipsis in args:
                return False
            inner = {a for a in args}
            if not inner <= {float, int, bool}:
                return False
            counts.add(len(args))
            bases.update(inner)
            return True
        if ann in (float, int, bool):
            counts.add(1)
            bases.add(ann)
            return True
        return False

    if not visit(annotation) or not counts:
        return None
    base = float if float in bases else int if int in bases else bool
    return Shape(frozenset(counts), base)


# --- animated values ------------------------------------------------------------------------------

_local = threading.local()


def _stack() -> list[tuple[int, str]]:
    stack = getattr(_local, "stack", None)
    if stack is None:
        stack = _local.stack = []
    return stack


class Animated:
    """An animated knob value: one curve/expression for the whole knob, or one item per component.

    ``resolve(frame, lookup)`` gives the plain value at ``frame``; ``lookup(reference, frame,
    component)`` is the owner's way to read other knobs an expression refers to.
    """

    __slots__ = ("whole", "items", "shape", "owner_name", "knob")

    def __init__(self, value: Any, shape: Shape, *, owner_name: str, knob: str) -> None:
        self.shape, self.owner_name, self.knob = shape, owner_name, knob
        where = "value"
        if isinstance(value, (list, tuple)):
            if len(value) not in shape.counts:
                want = " or ".join(str(c) for c in sorted(shape.counts))
                raise KnobError(f"{len(value)} components given, the knob has {want}", node=owner_name, knob=knob)
            self.whole = None
            self.items = tuple(_item_from(v, f"{where}[{i}]") for i, v in enumerate(value))
        else:
            self.whole = _item_from(value, where)
            self.items = None

    # --- forms ----------------------------------------------------------------------------------
    def to_json(self) -> Any:
        if self.items is None:
            return _item_json(self.whole)
        return [_item_json(v) for v in self.items]

    def expressions(self) -> list[tuple[int | None, Any]]:
        """``(component index or None for the whole knob, Expression)`` pairs."""
        E = _expression_type()
        if self.items is None:
            return [(None, self.whole)] if isinstance(self.whole, E) else []
        return [(i, v) for i, v in enumerate(self.items) if isinstance(v, E)]

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Animated) and self.to_json() == other.to_json()

    def __hash__(self) -> int:  # pragma: no cover - not used as a key
        return hash(repr(self.to_json()))

    def __repr__(self) -> str:
        return f"Animated({self.to_json()!r})"

    # --- values ---------------------------------------------------------------------------------
    def _item_value(self, item: Any, frame: float, component: int | None,
                    lookup: Callable[[Any, float, int | None], Any]) -> float:
        if isinstance(item, (int, float)):
            return item
        if isinstance(item, _curve_type()):
            return item.evaluate(frame)
        keys = item.keys
        if keys is not None:  # ``curve`` in the expression reads the keys saved with it
            return item.evaluate(frame, lambda ref, f: keys.evaluate(f) if is_own_curve(ref)
                                 else lookup(ref, f, component))
        return item.evaluate(frame, lambda ref, f: lookup(ref, f, component))

    def resolve(self, frame: float, lookup: Callable[[Any, float, int | None], Any]) -> Any:
        """The plain knob value at ``frame`` (scalar or tuple, of the knob's base type)."""
        key = (id(self), f"{self.owner_name}.{self.knob}@{frame}")
        stack = _stack()
        if any(k[0] == key[0] for k in stack):
            path = [k[1].split("@")[0] for k in stack[[k[0] for k in stack].index(key[0]):]]
            raise KnobError("expression reference cycle: " + " -> ".join(path + [path[0]]),
                            node=self.owner_name, knob=self.knob)
        stack.append(key)
        try:
            if self.items is not None:
                values = tuple(self._item_value(v, frame, i, lookup) for i, v in enumerate(self.items))
            else:
                counts = sorted(self.shape.counts)
                n = 1 if 1 in self.shape.counts else counts[-1]
                if n == 1:
                    values = (self._item_value(self.whole, frame, None, lookup),)
                else:
                    values = tuple(self._item_value(self.whole, frame, i, lookup) for i in range(n))
        except NodeGraphError as err:
            raise err.with_context(node=self.owner_name, knob=self.knob, frame=_frame_int(frame))
        except (ArithmeticError, ValueError) as err:
            raise KnobError(f"cannot evaluate at frame {frame:g}: {err}", node=self.owner_name, knob=self.knob,
                            frame=_frame_int(frame)) from None
        finally:
            stack.pop()
        values = tuple(_cast(v, self.shape.base, self.owner_name, self.knob, frame) for v in values)
        if self.shape.choices:
            last = len(self.shape.choices) - 1
            return self.shape.choices[min(max(values[0], 0), last)]
        return values[0] if len(values) == 1 else values


def _frame_int(frame: float) -> int | None:
    return int(frame) if float(frame).is_integer() else None


def _cast(value: Any, base: type, node: str, knob: str, frame: float) -> Any:
    if isinstance(value, tuple):
        raise KnobError(f"at frame {frame:g} an expression gave {len(value)} values where one is needed "
                        "(name a component, e.g. .x or .r)", node=node, knob=knob, frame=_frame_int(frame))
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise KnobError(f"at frame {frame:g} the value {value!r} is not a number", node=node, knob=knob,
                        frame=_frame_int(frame)) from None
    if v != v or v in (float("inf"), float("-inf")):
        raise KnobError(f"at frame {frame:g} the value is {v} (not finite)", node=node, knob=knob,
                        frame=_frame_int(frame))
    if base is bool:
        return v != 0.0
    if base is int:
        return int(v)  # Nuke truncates towards zero when an int knob holds an expression
    return v


def component_problem(component: str | int | None, components: Components | None) -> str | None:
    """Why a knob of kind ``components`` has no component named ``component`` (None if it has)."""
    if not isinstance(component, str) or components is None or components.index(component) is not None:
        return None
    return (f"has no component {component!r}: the components of a {components.kind} knob are "
            f"{', '.join(components.names)} (or 0..{len(components.names) - 1})")


def component_of(value: Any, component: str | int | None, index_hint: int | None, where: str,
                 components: Components | None = None) -> Any:
    """Pick a component of a knob value for a reference: by name/index, else the caller's own index.

    ``components`` are the names the knob's kind gives (``box.r`` is a box's right edge); without
    them the generic :data:`COMPONENT_NAMES` apply."""
    problem = component_problem(component, components)
    if problem is not None:
        raise KnobError(f"{where} {problem}")
    if not isinstance(value, tuple):  # a scalar knob (a single-value colour): every component is it
        return value
    if component is None:
        if index_hint is not None and index_hint < len(value):
            return value[index_hint]
        return value[0]
    if isinstance(component, int):
        idx: int | None = component
    elif components is not None:
        idx = components.index(component)
    else:
        idx = COMPONENT_NAMES.get(str(component))
    if idx is None or not 0 <= idx < len(value):
        raise KnobError(f"{where} has no component {component!r} (it has {len(value)})")
    return value[idx]
