"""Knob values between Nuke's script text and nodegraph's knob values, both ways.

A ``.nk`` knob value is one TCL word. What it means depends on the knob it is given to, so the
conversion is driven by the nodegraph knob's annotation (and, for text knobs, by what kind of text
the knob holds: channels, a format, plain text):

- numbers and booleans: ``0.5``, ``true``/``false``/``1``/``0``;
- several components: ``{1 0.5 0.25 1}``; one value for a knob of several broadcasts;
- animation, whole knob or per component: ``{{curve x1 0 x10 1}}``, ``{1 {curve ...} 1 1}``,
  expressions ``{{frame/10}}`` or ``{{"parent.size * 2"}}``, and an expression saved with keys of
  its own ``{{"curve+1" x1 0 x10 5}}`` (its first word is the expression, the rest its keys);
- enumerations by name, case-insensitively (``Cubic`` is ``cubic``);
- channels: ``rgba``, ``rgba.alpha``, ``-rgba.alpha`` (a channel switched off), the 4-slot sets
  ``{rgba.red rgba.green rgba.blue -rgba.alpha}``, ``none``, ``all``;
- formats: ``"1920 1080 0 0 1920 1080 1 HD_1080"`` (8 fields), the same without a name (7), a
  bare name.

Written by hand because the conversion is defined by nodegraph's own knob types; the TCL words
themselves come from :mod:`nodegraph.nuke.tcl`.
"""

from __future__ import annotations

import math
import re
import typing
from typing import Any

from nodegraph import animation
from nodegraph.curve import Curve
from nodegraph.errors import NodeGraphError
from nodegraph.expression import Expression
from nodegraph.formats import FORMATS
from nodegraph.nuke.tcl import Word, quote, split_list

_NUMBER = re.compile(r"[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?|[+-]?(?:inf|nan)", re.IGNORECASE)
_BARE = re.compile(r"[\w.:/+\-=%,@!?*<>|~'^&()]+")  # an expression word needing no quotes
_ESCAPE = re.compile(r'[\\"\[\]$]')
_TRUE = {"true": True, "false": False, "1": True, "0": False, "yes": True, "no": False, "on": True,
         "off": False}


class ValueProblem(ValueError):
    """A knob value that cannot be given to the nodegraph knob (the caller names node and knob)."""


# --- reading ------------------------------------------------------------------------------------
def number(text: str, base: type = float) -> float | int | bool:
    """A TCL number word as ``base`` (float, int or bool)."""
    t = text.strip()
    if base is bool:
        if t.lower() in _TRUE:
            return _TRUE[t.lower()]
        if _NUMBER.fullmatch(t):
            return float(t) != 0.0
        raise ValueProblem(f"{text!r} is not a boolean")
    if not _NUMBER.fullmatch(t):
        raise ValueProblem(f"{text!r} is not a number")
    value = float(t)
    if base is int:
        if not math.isfinite(value):
            raise ValueProblem(f"{text!r} is not a whole number")
        return int(value)
    return value


def animated_item(text: str, base: type = float) -> Any:
    """One braced animation item: a curve, an expression, or an expression with keys of its own.

    A number in braces (``{0}``) is that number."""
    body = text.strip()
    if _NUMBER.fullmatch(body):
        return number(body, base)
    try:
        words = split_list(body)
    except NodeGraphError as err:
        raise ValueProblem(f"animation {body!r}: {err}") from None
    if not words:
        raise ValueProblem("an empty animation item")
    if words[0].kind == "bare" and words[0].text == "curve":
        try:
            return Curve.parse(body)
        except NodeGraphError as err:
            raise ValueProblem(f"curve {body!r}: {err.message}") from None
    first = words[0].text
    if len(words) > 1:  # an expression followed by its keys, else an unquoted expression with spaces
        rest = body[words[0].end:]
        try:
            keys = Curve.parse_keys(rest)
        except NodeGraphError:
            keys = None
        if keys is not None:
            return _expression(first, keys)
        return _expression(body, None)
    return _expression(first, None)


def _expression(text: str, keys: Curve | None) -> Expression:
    try:
        return Expression(text, keys=keys)
    except NodeGraphError as err:
        raise ValueProblem(f"expression {text!r}: {err.message}") from None


def numeric(word: Word, shape: animation.Shape) -> Any:
    """A numeric knob's value: a number, a tuple, a Curve/Expression or a list mixing them."""
    if word.kind != "brace":
        if word.text.startswith("[") or (word.kind == "quote" and not _NUMBER.fullmatch(word.text.strip())):
            return _expression(word.text, None)
        value = number(word.text, shape.base)
        return value if 1 in shape.counts else tuple(value for _ in range(max(shape.counts)))
    items = split_list(word.text)
    if not items:
        raise ValueProblem("an empty value")
    values = [animated_item(i.text, shape.base) if i.kind == "brace" else number(i.text, shape.base)
              for i in items]
    n = len(values)
    if n == 1:
        only = values[0]
        if 1 in shape.counts or animation.is_animated(only):
            return only
        return tuple(only for _ in range(max(shape.counts)))
    if n in shape.counts:
        return values if any(animation.is_animated(v) for v in values) else tuple(values)
    widest = max(shape.counts)
    if widest > 1 and n < widest:  # Nuke writes fewer components for some colours: repeat the last
        values += [values[-1]] * (widest - n)
        return values if any(animation.is_animated(v) for v in values) else tuple(values)
    if widest > 1 and n > widest:
        raise ValueProblem(f"{n} components for a knob of {widest}")
    raise ValueProblem(f"{n} components for a knob of one value")


def flatten_rows(word: Word) -> Word:
    """A matrix written as rows (``{{1 0 0} {0 1 0} {0 0 1}}``) as one list of its entries, row by
    row; an entry may itself be animated (``{{curve ...} 0 0}``). A flat list stays as it is."""
    rows = split_list(word.text)
    if not rows or not all(r.kind == "brace" for r in rows):
        return word
    entries: list[str] = []
    for row in rows:
        items = split_list(row.text)
        if len(items) == 1 and items[0].kind != "brace":  # '{curve ...}' or '{expr}': one animated entry
            return word
        if items and items[0].kind == "bare" and items[0].text == "curve":
            return word
        entries.extend(i.raw for i in items)
    text = " ".join(entries)
    return Word(text, "brace", word.line, word.col, "{" + text + "}")


def enum(word: Word, choices: tuple[str, ...]) -> str:
    """An enumeration knob's value by name, case-insensitively; a number is an index."""
    text = word.text.strip()
    for c in choices:
        if c == text:
            return c
    folded = {c.lower().replace("_", " "): c for c in choices}
    key = text.lower().replace("_", " ")
    if key in folded:
        return folded[key]
    if re.fullmatch(r"\d+", text) and int(text) < len(choices):
        return choices[int(text)]
    raise ValueProblem(f"{text!r} is not one of {', '.join(choices)}")


def channels(word: Word, *, single: bool = False) -> str:
    """Nuke channel text as nodegraph's: ``rgba``, ``rgba.red,rgba.green``, ``none``.

    ``-name`` is a channel switched off; a set with nothing on is ``none``. ``single``: a knob
    naming one channel (a mask channel), where ``-rgba.alpha`` means no channel."""
    if word.kind == "brace":
        items = [w.text for w in split_list(word.text)]
        if len(items) == 1 and items[0].startswith("{"):
            raise ValueProblem(f"channels {word.text!r} are an expression")
        if any(i.startswith(("{", "[")) for i in items):
            raise ValueProblem(f"channels {word.text!r} are an expression")
    else:
        if word.text.startswith("["):
            raise ValueProblem(f"channels {word.text!r} are a TCL expression")
        items = [word.text]
    on = [i for i in items if i and not i.startswith("-") and i != "none"]
    if not on:
        return "none"
    if single:
        return on[0]
    return ",".join(on)


_FORMAT_FIELDS = re.compile(r"\s*(\d+)\s+(\d+)\s+(-?\d+)\s+(-?\d+)\s+(-?\d+)\s+(-?\d+)\s+([0-9.eE+-]+)\s*(.*)$")


def format_value(word: Word) -> str:
    """A format knob's value as nodegraph's: a known name, else ``"W H aspect"``."""
    text = word.text.strip()
    if text in FORMATS:
        return text
    m = _FORMAT_FIELDS.match(text)
    if m:
        w, h, aspect, name = int(m[1]), int(m[2]), float(m[7]), m[8].strip()
        if name in FORMATS and FORMATS[name][:2] == (w, h) and abs(FORMATS[name][2] - aspect) < 1e-6:
            return name
        return f"{w} {h} {_fmt(aspect)}"
    m = re.fullmatch(r"(\d+)\s+(\d+)(?:\s+([0-9.eE+-]+))?", text)
    if m:
        return f"{m[1]} {m[2]} {_fmt(float(m[3] or 1))}"
    raise ValueProblem(f"format {text!r} is not a Nuke format")


def literal_choices(annotation: Any) -> tuple[str, ...] | None:
    """The choices of a ``Literal[...]`` annotation (None for anything else)."""
    if typing.get_origin(annotation) is typing.Literal:
        return tuple(str(a) for a in typing.get_args(annotation))
    return None


# --- writing ------------------------------------------------------------------------------------
def _fmt(value: float) -> str:
    """A number as a script writes it: whole numbers without a point, others as the shortest text
    that reads back to the same float (so a written script reads back equal)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if math.isnan(value):
        return "nan"
    if math.isinf(value):
        return "inf" if value > 0 else "-inf"
    if value == int(value) and abs(value) < 1e15:
        return str(int(value))
    return repr(float(value))


def item_text(item: Any) -> str:
    """One component (a number, a Curve, an Expression) as a TCL list element."""
    if isinstance(item, Curve):
        return item.to_nuke()
    if isinstance(item, Expression):
        text = item.text if _BARE.fullmatch(item.text) else '"' + _ESCAPE.sub(r"\\\g<0>", item.text) + '"'
        if item.keys is not None:
            return "{" + text + " " + item.keys.to_nuke()[len("{curve"):-1].strip() + "}"
        return "{" + text + "}"
    if isinstance(item, bool):
        return "true" if item else "false"
    return _fmt(float(item)) if isinstance(item, float) else _fmt(item)


def numeric_text(value: Any) -> str:
    """A numeric knob's value (number, tuple or list, animated or not) as one TCL word."""
    if isinstance(value, (list, tuple)):
        return "{" + " ".join(item_text(v) for v in value) + "}"
    if animation.is_animated(value):
        return "{" + item_text(value) + "}"
    return item_text(value)


def channels_text(value: str) -> str:
    """nodegraph channel text as Nuke's: a layer or channel bare, several in braces."""
    parts = [p.strip() for p in value.split(",") if p.strip()]
    if len(parts) == 1:
        return quote(parts[0])
    return "{" + " ".join(parts) + "}"


def format_text(value: str) -> str:
    """nodegraph's format value as Nuke's 8-field format string."""
    if value in FORMATS:
        w, h, a = FORMATS[value]
        name = value
    else:
        m = re.fullmatch(r"\s*(\d+)\s*[x ]\s*(\d+)(?:\s+([0-9.eE+-]+))?\s*", value)
        if not m:
            raise ValueProblem(f"format {value!r} cannot be written")
        w, h, a, name = int(m[1]), int(m[2]), float(m[3] or 1), ""
    return '"' + f"{w} {h} 0 0 {w} {h} {_fmt(float(a))} {name}".rstrip() + ('"' if name else ' "')


__all__ = ["ValueProblem", "animated_item", "channels", "channels_text", "enum", "flatten_rows", "format_text",
           "format_value",
           "item_text", "literal_choices", "number", "numeric", "numeric_text"]
