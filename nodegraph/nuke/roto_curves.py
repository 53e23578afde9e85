"""Nuke's serialised Roto/RotoPaint ``curves`` knob, both ways: text to a
:class:`nodegraph.nodes.roto_model.Layer` scene and back.

Why hand-written: the format is Foundry's own and undocumented; no library (Python, OpenImageIO,
OpenColorIO, Natron's importers) reads it. What is understood here was worked out from the public
scripts in ``../shared/data/nk`` (one Roto, five RotoPaint) and other public ``.nk`` text, and
from the names of Nuke's Python ``curvelib`` API (``AnimCTransform``: pivot, translate, rotate,
scale, skew; ``AnimAttributes``); nothing was copied.

The text (what the knob holds inside its outer braces) is nested braces of words::

    {{v x3f99999a} {f 0} {n {layer Root {f F} {t CX CY} {a K V ...} ITEM ...}}}

- Numbers are decimal (``0``, ``1``) or IEEE-754 single precision as ``x`` and 8 hex digits
  (``x44800000`` = 1024.0, ``xc0000000`` = -2.0).
- ``{v ...}`` is the format version (1.2 seen), ``{f ...}`` flags (ignored).
- ``{layer NAME {f} {t ...} {a ...} ITEM...}``: a layer (the root is ``Root``) holding items.
- ``{curvegroup NAME FLAGS bezier {CURVES} {t|tx ...} {a ...}}``: a shape; Ellipse and Rectangle
  tools save beziers too. ``CURVES`` is ``{cc ...} idem`` (no separate feather curve) or
  ``{cc ...} {cc ...}`` (the outline, then the feather curve). Types other than ``bezier``
  (B-splines, open splines) are refused with an error naming the shape.
- ``{cc {f F} {px KEYS ENTRY...}}``: a curve. ``KEYS`` is one frame or ``{frame ...}``: the frames
  the points are keyed at. Each point is three entries, left tangent, centre, right tangent, the
  tangents relative to the centre. An entry is ``{X Y}``; each of X and Y is a number (the same at
  every key) or ``{value ...}`` with one value per key. In the feather curve the centre entry is the
  feather point's offset from the outline's point and the tangents are the feather's own.
- Transforms: ``{t CX CY}`` (a pivot only), ``{tx KEYS CX CY}`` (an animated pivot), or 13 entries
  ``{t PX PY PZ TX TY TZ RX RY RZ SX SY SZ SKEW}``: pivot, translate, rotate (degrees), scale and
  skew, as curvelib's transform (3D parts, unused in 2D, are read and ignored). An entry there
  is a number or ``{{frame value ...}}``, key pairs.
- ``{a NAME VALUE ...}``: attributes. Used: ``r g b a`` colour, ``opc`` opacity, ``inv`` invert,
  ``vis`` visible, ``fx fy`` feather distance, ``ff`` feather falloff exponent, ``ft`` feather
  falloff type (0 smooth, the default; 1 linear, 2 smooth0, 3 smooth1 is nodegraph's guess, no
  public script has another value), ``ltt ltn ltm`` lifetime type (0 all frames, 1 start to frame,
  2 single frame, 3 frame to end, 4 frame range), start and end, ``tt`` the tool that made the
  item (17 brush, 19 clone). Every other attribute (``osw``, ``str``, ``spx``, ``sb``, planar
  tracking ``pt*``...) is kept as written in ``attributes``.
- ``{cubiccurve NAME FLAGS TYPE {cc {f F} {px KEYS {X Y PRESSURE}...}} {tx ...} {a ...}}``: a paint
  stroke (brush, eraser, clone...), read into a :class:`Stroke`.

Per-key values become a :class:`~nodegraph.curve.Curve` of ``smooth`` keys (Nuke's default key
type; the file keeps no slopes). Writing (:func:`dump`) resamples every animated value of a
shape at the union of its keys (Nuke keeps one key list per curve); interpolation types other than
smooth are therefore not kept. The old Nuke 6 form (``AnimTree:``) is refused with a clear error.
Untrusted text: nesting is bounded, nothing is evaluated.
"""

from __future__ import annotations

import math
import struct
from typing import Any, Union

from nodegraph.curve import Curve, Key
from nodegraph.errors import KnobError
from nodegraph.nodes.roto_model import Layer, Point, Shape, Stroke, Transform, keys_of

Tree = list[Union[str, "Tree"]]

MAX_DEPTH = 64
LIFETIMES = ("all frames", "start to frame", "single frame", "frame to end", "frame range")
FALLOFFS = ("smooth", "linear", "smooth0", "smooth1")
TOOLS = {17: "brush", 19: "clone"}


class RotoCurvesError(KnobError):
    """The ``curves`` text cannot be read (the node adds its name)."""

    def __init__(self, message: str) -> None:
        super().__init__(message, knob="curves")


# --- reading -------------------------------------------------------------------------------------
def tree(text: str) -> Tree:
    """The text's words and ``{...}`` groups as nested lists (no TCL substitution)."""
    stack: list[Tree] = [[]]
    i, n = 0, len(text)
    while i < n:
        c = text[i]
        if c.isspace():
            i += 1
        elif c == "{":
            if len(stack) > MAX_DEPTH:
                raise RotoCurvesError(f"braces nested more than {MAX_DEPTH} deep")
            stack.append([])
            i += 1
        elif c == "}":
            if len(stack) == 1:
                raise RotoCurvesError(f"unbalanced '}}' at character {i}")
            done = stack.pop()
            stack[-1].append(done)
            i += 1
        elif c == '"':
            j = text.find('"', i + 1)
            if j < 0:
                raise RotoCurvesError(f"unterminated quote at character {i}")
            stack[-1].append(text[i + 1:j])
            i = j + 1
        else:
            j = i
            while j < n and not text[j].isspace() and text[j] not in '{}"':
                j += 1
            stack[-1].append(text[i:j])
            i = j
    if len(stack) != 1:
        raise RotoCurvesError("unbalanced '{': the text ends inside a group")
    return stack[0]


def number(word: Any) -> float:
    """``x44800000`` (float32 bits) or a decimal number."""
    if not isinstance(word, str):
        raise RotoCurvesError(f"expected a number, found a group {_short(word)}")
    try:
        if word[:1] in "xX" and len(word) == 9:
            value = struct.unpack(">f", bytes.fromhex(word[1:]))[0]
        else:
            value = float(word)
    except ValueError:
        raise RotoCurvesError(f"{word!r} is not a number") from None
    if not math.isfinite(value):
        raise RotoCurvesError(f"{word!r} is not a finite number")
    return value


def _short(item: Any) -> str:
    text = repr(item)
    return text if len(text) <= 60 else text[:57] + "..."


def _numbers(item: Any) -> list[float]:
    if isinstance(item, str):
        return [number(item)]
    return [v for sub in item for v in _numbers(sub)]


def _keyed(keys: list[float], entry: Any, what: str) -> float | Curve:
    """A value given once or per key."""
    values = _numbers(entry)
    if len(values) == 1:
        return values[0]
    if len(values) != len(keys):
        raise RotoCurvesError(f"{what}: {len(values)} values for {len(keys)} keys")
    if len(set(values)) == 1:
        return values[0]
    return Curve([Key(k, v) for k, v in zip(keys, values)])


def _pairs(entry: Any, what: str) -> float | Curve:
    """``number`` or ``{{frame value ...}}``."""
    if isinstance(entry, str):
        return number(entry)
    values = _numbers(entry)
    if len(values) % 2:
        raise RotoCurvesError(f"{what}: an odd count of numbers in key pairs {_short(entry)}")
    pairs = list(zip(values[::2], values[1::2]))
    if not pairs:
        raise RotoCurvesError(f"{what}: an empty value")
    if len(pairs) == 1 or len({v for _, v in pairs}) == 1:
        return pairs[0][1]
    try:
        return Curve([Key(t, v) for t, v in pairs])
    except KnobError as err:
        raise RotoCurvesError(f"{what}: {err.message}") from None


def _key_list(item: Any, what: str) -> list[float]:
    keys = _numbers(item)
    if not keys or len(set(keys)) != len(keys):
        raise RotoCurvesError(f"{what}: key frames {_short(item)} are empty or repeat")
    return keys


def _parts(node: Tree) -> dict[str, Tree]:
    return {p[0]: p for p in node if isinstance(p, list) and p and isinstance(p[0], str)}


def _transform(parts: dict[str, Tree], what: str) -> Transform:
    if "tx" in parts:
        t = parts["tx"]
        if len(t) != 4:
            raise RotoCurvesError(f"{what}: a transform 'tx' has keys and two values, found {_short(t)}")
        keys = _key_list(t[1], what)
        return Transform(center=(_keyed(keys, t[2], what), _keyed(keys, t[3], what)))
    if "t" not in parts:
        return Transform()
    e = parts["t"][1:]
    if len(e) == 2:
        return Transform(center=(_pairs(e[0], what), _pairs(e[1], what)))
    if len(e) != 13:
        raise RotoCurvesError(f"{what}: a transform has 2 or 13 entries, found {len(e)}")
    v = [_pairs(x, f"{what} transform") for x in e]
    return Transform(center=(v[0], v[1]), translate=(v[3], v[4]), rotate=v[8], scale=(v[9], v[10]),
                     skew=v[12])


def _attributes(parts: dict[str, Tree], what: str) -> dict[str, Any]:
    words = parts.get("a", ["a"])[1:]
    if len(words) % 2:
        raise RotoCurvesError(f"{what}: attributes are name/value pairs, found {len(words)} words")
    out: dict[str, Any] = {}
    for name, value in zip(words[::2], words[1::2]):
        if not isinstance(name, str):
            raise RotoCurvesError(f"{what}: an attribute name is a word, found {_short(name)}")
        out[name] = value
    return out


def _common(name: str, attrs: dict[str, Any], what: str, used: set[str]) -> dict[str, Any]:
    """Item fields from the attributes every item has (visibility, lifetime); kept the rest."""
    def num(key: str, default: float) -> float:
        if key not in attrs:
            return default
        value = _pairs(attrs[key], f"{what} attribute {key}")
        if not isinstance(value, float):
            raise RotoCurvesError(f"{what}: animated attribute {key!r} is not supported")
        return value

    ltt = int(num("ltt", 0))
    if not 0 <= ltt < len(LIFETIMES):
        raise RotoCurvesError(f"{what}: unknown lifetime type {ltt} (attribute ltt)")
    fields = {"name": name, "visible": num("vis", 1) != 0, "lifetime_type": LIFETIMES[ltt],
              "lifetime_start": num("ltn", 0), "lifetime_end": num("ltm", 0)}
    used |= {"vis", "ltt", "ltn", "ltm"}
    fields["attributes"] = {k: _text(v) for k, v in attrs.items() if k not in used}
    return fields


def _text(item: Any) -> str:
    if isinstance(item, str):
        return item
    return "{" + " ".join(_text(i) for i in item) + "}"


def _curve_points(cc: Tree, what: str, size: int) -> tuple[list[float], list[list[tuple]]]:
    """``{cc {f F} {px KEYS ENTRY...}}``: the keys and the entries as tuples of values."""
    px = _parts(cc[1:]).get("px")
    if px is None or len(px) < 2:
        raise RotoCurvesError(f"{what}: a curve without points ('px')")
    keys = _key_list(px[1], what)
    entries = []
    for entry in px[2:]:
        if isinstance(entry, str) or len(entry) not in (2, 3):
            raise RotoCurvesError(f"{what}: a point entry is {{x y}}, found {_short(entry)}")
        entries.append(tuple(_keyed(keys, c, what) for c in entry[:size]))
    return keys, entries


def _shape(node: Tree, what: str) -> Shape:
    if len(node) < 4 or not isinstance(node[1], str):
        raise RotoCurvesError(f"{what}: a curvegroup is 'curvegroup NAME FLAGS TYPE ...'")
    name, kind = node[1], node[3]
    what = f"shape {name!r}"
    if kind != "bezier":
        raise RotoCurvesError(f"{what}: {kind!r} shapes are not supported (only bezier, which the Bezier, "
                              "Ellipse and Rectangle tools make)")
    curves = next((p for p in node[4:] if isinstance(p, list) and p and isinstance(p[0], list)
                   and p[0][:1] == ["cc"]), None)
    if curves is None:
        raise RotoCurvesError(f"{what}: no curve ('cc')")
    _, main = _curve_points(curves[0], what, 2)
    if len(main) % 3:
        raise RotoCurvesError(f"{what}: {len(main)} entries are not whole points (3 entries each)")
    feather = None
    if len(curves) > 1 and curves[1] != "idem":
        if not isinstance(curves[1], list) or curves[1][:1] != ["cc"]:
            raise RotoCurvesError(f"{what}: the feather curve is 'idem' or a 'cc', found {_short(curves[1])}")
        _, feather = _curve_points(curves[1], what, 2)
        if len(feather) != len(main):
            raise RotoCurvesError(f"{what}: the feather curve has {len(feather) // 3} points, the shape "
                                  f"{len(main) // 3}")
    points = []
    for i in range(0, len(main), 3):
        p = {"left": main[i], "center": main[i + 1], "right": main[i + 2]}
        if feather is not None:
            p.update(feather=feather[i + 1],
                     feather_left=None if feather[i] == main[i] else feather[i],
                     feather_right=None if feather[i + 2] == main[i + 2] else feather[i + 2])
        points.append(Point(**p))
    parts = _parts(node[4:])
    attrs = _attributes(parts, what)
    used = {"r", "g", "b", "a", "opc", "inv", "fx", "fy", "ff", "ft"}
    if "tt" in attrs and _pairs(attrs["tt"], what) == 4:  # the Bezier tool: what dump writes by default
        used.add("tt")
    fields = _common(name, attrs, what, used)

    def val(key: str, default: float) -> Any:
        return _pairs(attrs[key], f"{what} attribute {key}") if key in attrs else default

    ft = int(_pairs(attrs["ft"], what)) if "ft" in attrs else 0
    if not 0 <= ft < len(FALLOFFS):
        raise RotoCurvesError(f"{what}: unknown feather falloff type {ft} (attribute ft)")
    return Shape(points=points, transform=_transform(parts, what),
                 color=(val("r", 1), val("g", 1), val("b", 1), val("a", 1)), opacity=val("opc", 1),
                 invert=val("inv", 0) != 0, feather=(val("fx", 0), val("fy", 0)),
                 feather_falloff=val("ff", 1), falloff_type=FALLOFFS[ft], **fields)


def _stroke(node: Tree, what: str) -> Stroke:
    if len(node) < 4 or not isinstance(node[1], str):
        raise RotoCurvesError(f"{what}: a cubiccurve is 'cubiccurve NAME FLAGS TYPE ...'")
    name = node[1]
    what = f"stroke {name!r}"
    parts = _parts(node[4:])
    if "cc" not in parts:
        raise RotoCurvesError(f"{what}: no curve ('cc')")
    _, entries = _curve_points(parts["cc"], what, 3)
    attrs = _attributes(parts, what)
    tt = int(_pairs(attrs["tt"], what)) if "tt" in attrs else 17
    fields = _common(name, attrs, what, set())
    points = [tuple(e) + (1.0,) * (3 - len(e)) for e in entries]
    return Stroke(tool=TOOLS.get(tt, f"tool {tt}"), points=points, transform=_transform(parts, what), **fields)


def _layer(node: Tree, what: str) -> Layer:
    if len(node) < 2 or not isinstance(node[1], str):
        raise RotoCurvesError(f"{what}: a layer is 'layer NAME ...'")
    name = node[1]
    children: list[Any] = []
    for item in node[2:]:
        if not isinstance(item, list) or not item or item[0] in ("f", "t", "tx", "a"):
            continue
        head = item[0]
        if head == "layer":
            children.append(_layer(item, f"layer {item[1]!r}" if len(item) > 1 else what))
        elif head == "curvegroup":
            children.append(_shape(item, what))
        elif head == "cubiccurve":
            children.append(_stroke(item, what))
        else:
            raise RotoCurvesError(f"layer {name!r}: unknown item {_short(head)}")
    parts = _parts(node[2:])
    fields = _common(name, _attributes(parts, f"layer {name!r}"), f"layer {name!r}", set())
    return Layer(children=children, transform=_transform(parts, f"layer {name!r}"), **fields)


def parse(text: str) -> Layer:
    """The scene of a ``curves`` knob's text (an empty text: an empty root layer)."""
    if "AnimTree:" in text:
        raise RotoCurvesError("the Nuke 6 roto format (AnimTree:) is not supported; re-save the script "
                              "in Nuke 7 or later")
    top = tree(text)
    while top and not any(isinstance(p, list) and p[:1] == ["n"] for p in top):
        lists = [p for p in top if isinstance(p, list)]
        if len(lists) != 1:
            if not top:
                break
            raise RotoCurvesError("expected {{v VERSION} {f FLAGS} {n {layer Root ...}}}")
        top = lists[0]
    if not top:
        return Layer(name="Root")
    n = next(p for p in top if isinstance(p, list) and p[:1] == ["n"])
    roots = [p for p in n[1:] if isinstance(p, list) and p[:1] == ["layer"]]
    if len(roots) != 1:
        raise RotoCurvesError(f"expected one root layer in {{n ...}}, found {len(roots)}")
    return _layer(roots[0], "layer Root")


# --- writing -------------------------------------------------------------------------------------
def hexfloat(value: float) -> str:
    """Nuke's float form: ``0`` or ``x`` and the float32 bits."""
    if value == 0:
        return "0"
    try:
        bits = struct.unpack(">I", struct.pack(">f", value))[0]
    except OverflowError:
        raise RotoCurvesError(f"{value!r} does not fit a 32-bit float") from None
    return f"x{bits:08x}"


def _value(v: Any, keys: list[float]) -> str:
    if isinstance(v, Curve):
        return "{" + " ".join(hexfloat(v(k)) for k in keys) + "}"
    return hexfloat(v)


def _entry(xy: tuple, keys: list[float]) -> str:
    return "{" + " ".join(_value(c, keys) for c in xy) + "}"


def _pair_value(v: Any) -> str:
    if isinstance(v, Curve):
        return "{{" + " ".join(f"{hexfloat(k.x)} {hexfloat(k.y)}" for k in v.keys) + "}}"
    return hexfloat(v)


def _keys_text(keys: list[float]) -> str:
    return hexfloat(keys[0]) if len(keys) == 1 else "{" + " ".join(hexfloat(x) for x in keys) + "}"


def _dump_transform(t: Transform) -> str:
    e = [t.center[0], t.center[1], 0.0, t.translate[0], t.translate[1], 0.0, 0.0, 0.0, t.rotate,
         t.scale[0], t.scale[1], 1.0, t.skew]
    return "{t " + " ".join(_pair_value(v) for v in e) + "}"


def _dump_attrs(item: Any, extra: dict[str, Any]) -> str:
    out = dict(extra)
    if not item.visible:
        out["vis"] = 0.0
    if item.lifetime_type != "all frames":
        out["ltt"] = float(LIFETIMES.index(item.lifetime_type))
    if item.lifetime_type != "all frames" or item.lifetime_start or item.lifetime_end:
        out.update(ltn=item.lifetime_start, ltm=item.lifetime_end)
    words = [f"{k} {_pair_value(v)}" for k, v in out.items()]
    words += [f"{k} {v}" for k, v in item.attributes.items() if k not in out]
    return "{a" + "".join(" " + w for w in words) + "}"


def _dump_shape(s: Shape) -> str:
    keys = sorted(keys_of(s.points)) or [1.0]
    main, feather = [], []
    for p in s.points:
        main += [_entry(p.left, keys), _entry(p.center, keys), _entry(p.right, keys)]
        feather += [_entry(p.feather_left or p.left, keys), _entry(p.feather, keys),
                    _entry(p.feather_right or p.right, keys)]
    k = _keys_text(keys)
    plain = all(p.feather_left is None and p.feather_right is None and p.feather == (0.0, 0.0) for p in s.points)
    second = "idem" if plain else f"{{cc {{f 8192}} {{px {k} {' '.join(feather)}}}}}"
    curves = f"{{{{cc {{f 8192}} {{px {k} {' '.join(main)}}}}} {second}}}"
    extra: dict[str, Any] = {}
    for key, value, default in (("r", s.color[0], 1.0), ("g", s.color[1], 1.0), ("b", s.color[2], 1.0),
                                ("a", s.color[3], 1.0), ("opc", s.opacity, 1.0), ("fx", s.feather[0], 0.0),
                                ("fy", s.feather[1], 0.0), ("ff", s.feather_falloff, 1.0)):
        if value != default:
            extra[key] = value
    if s.invert:
        extra["inv"] = 1.0
    if s.falloff_type != "smooth":
        extra["ft"] = float(FALLOFFS.index(s.falloff_type))
    if "tt" not in s.attributes:
        extra["tt"] = 4.0
    return f"{{curvegroup {s.name} 512 bezier {curves} {_dump_transform(s.transform)} {_dump_attrs(s, extra)}}}"


def _dump_stroke(s: Stroke) -> str:
    keys = sorted(keys_of(s.points)) or [1.0]
    k = _keys_text(keys)
    pts = " ".join(_entry(p, keys) for p in s.points)
    tools = {v: k for k, v in TOOLS.items()}
    tt = tools.get(s.tool) or (int(s.tool.split()[-1]) if s.tool.startswith("tool ") else 17)
    extra = {} if "tt" in s.attributes else {"tt": float(tt)}
    return (f"{{cubiccurve {s.name} 512 catmullrom {{cc {{f 2080}} {{px {k} {pts}}}}} "
            f"{_dump_transform(s.transform)} {_dump_attrs(s, extra)}}}")


def _dump_layer(layer: Layer, root: bool = False) -> str:
    parts = [f"{{layer {layer.name}", "{f 2097152}" if root else "{f 0}", _dump_transform(layer.transform),
             _dump_attrs(layer, {})]
    for child in layer.children:
        if isinstance(child, Layer):
            parts.append(_dump_layer(child))
        elif isinstance(child, Shape):
            parts.append(_dump_shape(child))
        else:
            parts.append(_dump_stroke(child))
    return "\n ".join(parts) + "}"


def dump(scene: Layer | list) -> str:
    """Nuke's ``curves`` text for a scene (a root layer, or a list of items put in one)."""
    if not isinstance(scene, Layer):
        scene = Layer(name="Root", children=list(scene))
    for name in _names(scene):
        if not name or any(c.isspace() or c in '{}"' for c in name):
            raise RotoCurvesError(f"item name {name!r} must be one word without braces or quotes")
    return "{{v x3f99999a}\n {f 0}\n {n\n " + _dump_layer(scene, root=True) + "}}"


def _names(layer: Layer) -> list[str]:
    out = [layer.name]
    for child in layer.children:
        out += _names(child) if isinstance(child, Layer) else [child.name]
    return out


__all__ = ["RotoCurvesError", "dump", "hexfloat", "number", "parse", "tree"]
