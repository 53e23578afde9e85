"""Node base class, knob models, inputs and the type registry.

A node type is a subclass of :class:`Node` with a pydantic ``Knobs`` model, a tuple of named
``inputs`` and a pure ``compute(ctx)``. Subclasses register themselves under ``type_name``.
The engine never imports a concrete node: the registry loads ``nodegraph.nodes`` (and any
``nodegraph.nodes`` entry points of plug-in packages) on first lookup.
"""

from __future__ import annotations

import copy
import functools
import hashlib
import importlib
import json
import re
import threading
import types
import typing
from dataclasses import dataclass
from importlib import metadata as importlib_metadata
from typing import TYPE_CHECKING, Any, ClassVar, Iterable

import pydantic
from pydantic import BaseModel, ConfigDict

from . import animation
from .errors import GraphError, KnobError, NodeGraphError, safe_repr
from .expr_parse import FORMAT_SIZES

if TYPE_CHECKING:  # pragma: no cover
    from .evaluator import Context
    from .graph import Graph
    from .image import Image
    from .userknob import UserKnob


#: Resolved animated knob values kept per graph (until any change to the graph) before starting over.
_VALUE_MEMO_LIMIT = 200_000
#: The root format when a graph names none (Nuke's default, as the script reader assumes).
ROOT_FORMAT = "HD_1080"
#: ``input``, ``input0``, ``input1``...: Nuke's names for what feeds a node's inputs.
_INPUT_WORD = re.compile(r"input\d*")
#: Size queries under way on this thread, to name a node whose image needs its own size.
_SIZE_QUERIES = threading.local()


class Knobs(BaseModel):
    """Base of every node's knob model: unknown knobs are rejected, assignment is validated."""

    # allow_inf_nan=False: every knob value must be writable to a JSON document
    model_config = ConfigDict(extra="forbid", validate_assignment=True, use_attribute_docstrings=True,
                              allow_inf_nan=False,
                              protected_namespaces=())

    def __setattr__(self, name: str, value: Any) -> None:
        super().__setattr__(name, value)
        owner = (self.__pydantic_private__ or {}).get("_owner")
        if owner is not None and not name.startswith("_"):
            owner._knobs_changed()

    _owner: Any = pydantic.PrivateAttr(default=None)

    disable: bool = False
    """Pass the first input through unchanged (Nuke's ``disable``, on every node; may be animated)."""


@dataclass(frozen=True)
class Input:
    """A named input of a node type."""

    name: str
    required: bool = True
    doc: str = ""


def _knob_error(node_name: str, err: pydantic.ValidationError, knob: str | None = None) -> KnobError:
    first = err.errors()[0]
    loc = ".".join(str(p) for p in first.get("loc", ())) or knob
    msg = first.get("msg", str(err)).removeprefix("Value error, ")
    if first.get("type") == "extra_forbidden":
        msg = "no such knob"
    return KnobError(f"{msg} (got {safe_repr(first.get('input'))})", node=node_name, knob=loc or knob)


class Node:
    """Base class of every node type.

    Class attributes a subclass sets: ``type_name`` (stable, saved in documents), ``Knobs``,
    ``inputs``, ``category`` and a docstring. Instance state: ``name``, ``knobs`` and the graph
    it belongs to; connections live in the graph.
    """

    type_name: ClassVar[str] = ""
    category: ClassVar[str] = "Other"
    Knobs: ClassVar[type[Knobs]] = Knobs
    inputs: ClassVar[tuple[Input, ...]] = ()

    def __init_subclass__(cls, *, abstract: bool = False, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if not abstract:
            if not cls.type_name:
                cls.type_name = cls.__name__
            _REGISTRY.register(cls)

    def __init__(self, name: str, **knobs: Any) -> None:
        self.name = name
        self.graph: Graph | None = None
        self.invalid_knobs: dict[str, tuple[Any, str]] = {}
        #: Knobs added to this node alone (:meth:`add_knob`), by name, in order.
        self.user_knobs: dict[str, "UserKnob"] = getattr(self, "user_knobs", {})
        #: Data other tools keep with the node, JSON only (``extras["nuke"]``: what a .nk script said
        #: beyond the knobs nodegraph maps, so that writing it back loses nothing).
        self.extras: dict[str, Any] = {}
        #: Knobs holding a curve or an expression (whole or per component), by knob name.
        self.animated: dict[str, animation.Animated] = {}
        self._static_digest: bytes | None = None
        moving = {k: knobs.pop(k) for k in list(knobs) if animation.is_animated(knobs[k])}
        try:
            self.knobs = self.Knobs(**knobs)
        except pydantic.ValidationError as err:
            raise _knob_error(name, err) from None
        except NodeGraphError as err:  # raised by a knob validator: still name the node
            raise err.with_context(node=name)
        self.knobs._owner = self
        if moving:
            self.set(**moving)

    # --- knobs ----------------------------------------------------------------------------
    def add_knob(self, name: str, type: str = "float", default: Any = None, *, label: str = "",
                 tooltip: str = "", values: tuple[str, ...] | list[str] = (), minimum: float | None = None,
                 maximum: float | None = None) -> "Node":
        """Add a user knob to this node alone (Nuke's ``addUserKnob``): ``float``, ``int``, ``bool``,
        ``string``, ``xy``, ``xyz``, ``rgb``, ``color`` or ``enum`` (with ``values``)."""
        return self.add_knobs([dict(name=name, type=type, default=default, label=label, tooltip=tooltip,
                                    values=tuple(values), minimum=minimum, maximum=maximum)])

    def add_knobs(self, specs: "Iterable[dict[str, Any]]") -> "Node":
        """Add several user knobs at once (each a dict of :meth:`add_knob`'s arguments): one knob
        model is built for all of them (a script's group may declare dozens)."""
        from .userknob import UserKnob

        made: list[UserKnob] = []
        for raw in specs:
            spec = dict(raw)
            name = spec.get("name")
            if not isinstance(name, str) or self.has_knob(name) or any(m.name == name for m in made):
                raise KnobError("a knob with this name already exists", node=self.path, knob=str(name))
            if "values" in spec:
                spec["values"] = tuple(spec["values"])
            try:
                made.append(UserKnob(**spec))
            except pydantic.ValidationError as err:
                raise KnobError(err.errors()[0]["msg"].removeprefix("Value error, "), node=self.path,
                                knob=name) from None
        if not made:
            return self
        self._own_class()
        for spec in made:
            self.user_knobs[spec.name] = spec
        cls = self.__class__  # ``type`` is a knob argument name above
        model = _user_model(cls._base_knobs, f"{cls.__name__}Knobs", tuple(self.user_knobs.values()))
        values_now = self.knobs.model_dump()
        try:
            knobs = model(**{k: v for k, v in values_now.items() if k in model.model_fields})
        except pydantic.ValidationError as err:  # a default outside its own range
            for spec in made:
                del self.user_knobs[spec.name]
            raise _knob_error(self.path, err, made[-1].name if len(made) == 1 else None) from None
        cls.Knobs = model
        self.knobs = knobs
        self.knobs._owner = self
        self._knobs_changed()
        return self

    def _own_class(self) -> None:
        """Give this node a class of its own (once), so knobs and inputs can change per instance."""
        cls = type(self)
        if cls.__dict__.get("_own_instance_class", False):
            return
        own = types.new_class(cls.__name__, (cls,), {"abstract": True})
        own.__doc__, own.__module__ = cls.__doc__, cls.__module__
        own.Knobs, own.inputs = cls.Knobs, cls.inputs
        own._base_knobs = cls.Knobs
        own._own_instance_class = True
        self.__class__ = own

    def _knobs_changed(self) -> None:
        self._static_digest = None
        if self.graph is not None:
            self.graph._touched(self)

    def set(self, **values: Any) -> "Node":
        """Set several knobs, validating each; returns the node for chaining."""
        for key, value in values.items():
            if key not in type(self.knobs).model_fields:
                raise KnobError(f"no such knob; {self.type_name} has: {', '.join(self.knob_names())}",
                                node=self.name, knob=key)
            if animation.is_animated(value):
                self._set_animated(key, value)
                continue
            try:
                setattr(self.knobs, key, value)
                if self.animated.pop(key, None) is not None:
                    self._knobs_changed()
            except pydantic.ValidationError as err:
                raise _knob_error(self.name, err, key) from None
            except NodeGraphError as err:  # raised by a knob validator: still name node and knob
                raise err.with_context(node=self.name, knob=key)
            self.invalid_knobs.pop(key, None)
        return self

    def _set_animated(self, key: str, value: Any) -> None:
        shape = animation.knob_shape(type(self.knobs).model_fields[key].annotation)
        if shape is None:
            raise KnobError("this knob cannot hold a curve or an expression (it is not numeric)",
                            node=self.name, knob=key)
        try:
            self.animated[key] = animation.Animated(value, shape, owner_name=self.name, knob=key)
        except NodeGraphError as err:
            raise err.with_context(node=self.name, knob=key)
        self.invalid_knobs.pop(key, None)
        self._knobs_changed()

    def value(self, knob: str, frame: float = 1) -> Any:
        """The knob's value at ``frame``: its curve or expression resolved, or its plain value."""
        if knob not in type(self.knobs).model_fields:
            raise KnobError("no such knob", node=self.name, knob=knob)
        anim = self.animated.get(knob)
        if anim is None:
            return getattr(self.knobs, knob)
        memo = self.graph.top._values if self.graph is not None else None
        key = (self.path, knob, frame)
        if memo is not None:
            hit = memo.get(key, memo)
            if hit is not memo:
                return hit
        try:
            value = anim.resolve(frame, self._lookup)
        except RecursionError:
            raise KnobError("expression references are nested too deeply (a chain of hundreds of knobs "
                            "reading each other)", node=self.name, knob=knob) from None
        if memo is not None:
            if len(memo) >= _VALUE_MEMO_LIMIT:  # a long render of many animated knobs: start over
                memo.clear()
            memo[key] = value
        return value

    def at_frame(self, frame: float) -> "Node":
        """This node with every animated knob resolved at ``frame`` (itself when nothing animates).

        The evaluator computes (and hashes) this view, so a frame's hash holds the values in
        effect at that frame: still knobs share one cache entry across frames, and an animated
        knob changes only the frames whose values differ."""
        if not self.animated:
            return self
        knobs = self.knobs.model_copy()
        knobs._owner = None
        for key in self.animated:
            value = self.value(key, frame)
            try:
                setattr(knobs, key, value)
            except pydantic.ValidationError as err:
                raise _knob_error(self.name, err, key).with_context(frame=int(frame)) from None
            except NodeGraphError as err:
                raise err.with_context(node=self.name, knob=key, frame=int(frame))
        view = copy.copy(self)
        view.knobs = knobs
        view.animated = {}
        view._static_digest = None
        return view

    def _lookup(self, ref: Any, frame: float, index_hint: int | None) -> Any:
        """The value an expression's reference names (``Grade1.white.r``, ``root.fps``) at ``frame``.

        A text with two readings (``Ctrl.x``: this node's knob ``Ctrl`` component ``x``, or node
        ``Ctrl`` knob ``x``) takes the first that names a knob, as Nuke does."""
        alternative = getattr(ref, "alternative", None)
        if alternative is not None and self._reference_target(ref) is None:
            ref = alternative
        if animation.is_own_curve(ref):
            return 0.0  # an expression without keys of its own reads ``curve`` as 0, as in Nuke
        return self._lookup_one(ref, frame, index_hint)

    def reference_node(self, path: tuple[str, ...]) -> "Node | None":
        """The node an expression's path names, seen from this node (not ``root``): ``()`` or
        ``this`` is itself, ``parent`` (``parent.parent``...) the enclosing group(s), other names
        are looked up in its own (sub)graph first, then outwards. None if there is none."""
        if path in ((), ("this",)):
            return self
        if path[0] == "parent":
            target = self.graph.owner if self.graph is not None else None
            i = 1
            while i < len(path) and path[i] == "parent" and target is not None:
                target = target.graph.owner if target.graph is not None else None
                i += 1
            rest = path[i:]
            if not rest:
                return target
            if "parent" in rest:
                return None
            # parent.NODE: a node inside the group (at the top, Nuke's parent is the root)
            inside = getattr(target, "subgraph", None) if target is not None else (
                self.graph.top if self.graph is not None and i == 1 else None)
            if inside is None:
                return None
            try:
                return inside.node(".".join(rest))
            except GraphError:
                return None
        return self._find_node(".".join(path))

    def knob_owner(self, knob: str) -> "Node":
        """Whose knob a bare name in this node's expressions reads: its own, else the nearest
        enclosing group's that has it (as in Nuke, where nodes in a group read its knobs by name);
        this node when none has it (the reference is then reported as missing)."""
        if self.has_knob(knob):
            return self
        owner = self.graph.owner if self.graph is not None else None
        while owner is not None:
            if owner.has_knob(knob):
                return owner
            owner = owner.graph.owner if owner.graph is not None else None
        return self

    def _reference_target(self, ref: Any) -> "Node | None":
        """The node a reference names if it has the knob, else None (root references: self)."""
        if tuple(ref.path) == ("root",):
            return self
        if tuple(ref.path) == ():
            target = self.knob_owner(ref.knob)
            return target if target.has_knob(ref.knob) else None
        target = self.reference_node(tuple(ref.path))
        return target if target is not None and target.has_knob(ref.knob) else None

    def _lookup_one(self, ref: Any, frame: float, index_hint: int | None) -> Any:
        path = tuple(ref.path)
        where = ".".join(path + (ref.knob,))
        components = None
        if path == ("root",):
            root = self.graph.top.root if self.graph is not None else {}
            if ref.knob in FORMAT_SIZES and ref.knob not in root:
                return self._root_size(ref.knob)
            if ref.knob not in root:
                raise KnobError(f"reference {where!r}: the root has no knob {ref.knob!r} "
                                f"(it has {', '.join(sorted(root)) or 'none'})")
            value = root[ref.knob]
        else:
            target = self.knob_owner(ref.knob) if path == () else self.reference_node(path)
            if target is None and ref.knob in FORMAT_SIZES and len(path) == 1 and _INPUT_WORD.fullmatch(path[0]):
                return self._input_size(ref.knob, frame, int(path[0][5:] or 0))
            if target is None:
                raise KnobError(f"reference {where!r}: " + ("'parent' is only defined inside a group"
                                                            if path[0] == "parent" else
                                                            f"no node named {'.'.join(path)!r}"))
            if ref.knob in FORMAT_SIZES and not target.has_knob(ref.knob):
                return (self._input_size(ref.knob, frame) if path in ((), ("this",))
                        else target._output_size(ref.knob, frame))
            if not target.has_knob(ref.knob):
                raise KnobError(f"reference {where!r}: {target.type_name} {target.name!r} has no knob {ref.knob!r}")
            value = target.value(ref.knob, frame)
            components = animation.knob_kind(type(target.knobs), ref.knob)
            if isinstance(value, str):  # a choice knob reads as the index of its choice, as in Nuke
                field = type(target.knobs).model_fields.get(ref.knob)
                choices = typing.get_args(field.annotation) if field is not None and \
                    typing.get_origin(field.annotation) is typing.Literal else ()
                if value in choices:
                    value = choices.index(value)
        return animation.component_of(value, ref.component, index_hint, where, components)

    # --- width and height in expressions ---------------------------------------------------
    def _input_size(self, which: str, frame: float, index: int = 0) -> float:
        """Nuke's bare ``width`` / ``height`` (and ``input.width``, ``input1.height``): the size of
        the format arriving at the node's input ``index`` (Nuke's numbering; 0 for the bare
        names), or of the root format when nothing is connected there."""
        src = None
        if self.graph is not None and index < len(self.inputs):
            src = self.graph.sources_of(self).get(self.inputs[index].name)
        return self._root_size(which) if src is None else src._output_size(which, frame)

    def _output_size(self, which: str, frame: float) -> float:
        """``NODE.width`` / ``NODE.height``: the size of the format of the image the node puts out
        at ``frame``, found by evaluating it (on the CPU; the image is then in the cache)."""
        if self.graph is None:
            raise KnobError(f"{which} of {self.name!r}: the node is not in a graph", node=self.name)
        key = (id(self.graph.top), self.path, int(frame))
        busy = _SIZE_QUERIES.__dict__.setdefault("busy", set())
        if key in busy:
            raise KnobError(f"{which} of {self.path!r} at frame {int(frame)} depends on itself: the node's "
                            "image needs the very knob that reads its size")
        busy.add(key)
        try:
            img = self.graph.top.evaluator.evaluate(self, int(frame))
        finally:
            busy.discard(key)
        box = img.format.display
        return float(box.width if which == "width" else box.height)

    def _root_size(self, which: str) -> float:
        from .formats import parse_format

        root = self.graph.top.root if self.graph is not None else {}
        fmt = parse_format(str(root.get("format", ROOT_FORMAT)), knob="root.format").display
        return float(fmt.width if which == "width" else fmt.height)

    def has_knob(self, knob: str) -> bool:
        return knob in type(self.knobs).model_fields

    @property
    def path(self) -> str:
        """The node's name, prefixed by the groups it is inside (``Group1.Blur2``)."""
        owner = self.graph.owner if self.graph is not None else None
        return self.name if owner is None else f"{owner.path}.{self.name}"

    def _find_node(self, path: str) -> "Node | None":
        """A node named in an expression: in this node's own (sub)graph first, then from the top."""
        g = self.graph
        while g is not None:
            try:
                return g.node(path)
            except GraphError:
                g = g.owner.graph if g.owner is not None else None
        return None

    def __getitem__(self, knob: str) -> Any:
        if knob not in type(self.knobs).model_fields:
            raise KnobError("no such knob", node=self.name, knob=knob)
        return getattr(self.knobs, knob)

    def __setitem__(self, knob: str, value: Any) -> None:
        self.set(**{knob: value})

    @classmethod
    def knob_names(cls) -> list[str]:
        return list(cls.Knobs.model_fields)

    def knob_values(self, *, only_changed: bool = False) -> dict[str, Any]:
        """Knob values as JSON data; ``only_changed`` drops values equal to the default."""
        data = self.knobs.model_dump(mode="json", exclude_defaults=only_changed)
        for key, anim in self.animated.items():
            data[key] = anim.to_json()
        for key, (raw, _msg) in self.invalid_knobs.items():
            data[key] = raw
        return data

    # --- inputs ---------------------------------------------------------------------------
    @classmethod
    def input_names(cls) -> list[str]:
        return [i.name for i in cls.inputs]

    @classmethod
    def input_spec(cls, name: str) -> Input:
        for i in cls.inputs:
            if i.name == name:
                return i
        raise GraphError(f"{cls.type_name} has no input {name!r}; inputs: {', '.join(cls.input_names()) or 'none'}")

    # --- evaluation hooks -------------------------------------------------------------------
    def needs(self, ctx: "Context") -> Iterable[tuple[str, int]]:
        """(input name, frame) pairs ``compute`` will pull at ``ctx.frame``.

        Declared up front so that hashing and evaluation agree, and so that only what is needed
        is pulled. Default: every connected input at the same frame.
        """
        return [(name, ctx.frame) for name in ctx.connected]

    def passthrough(self, ctx: "Context") -> str | None:
        """Name of an input this node returns unchanged at ``ctx.frame`` (then it shares its hash)."""
        return None

    def through(self, ctx: "Context") -> str | None:
        """:meth:`passthrough`, or the first input when the node is disabled (what the evaluator asks)."""
        if self.knobs.disable:
            first = self.inputs[0].name if self.inputs else None
            if first is None or first not in ctx.connected:
                raise GraphError("the node is disabled and has no first input to pass through", node=self.path)
            return first
        return self.passthrough(ctx)

    def hash_extra(self, ctx: "Context") -> bytes:
        """Extra bytes for the hash at this frame: file readers add path, size and mtime."""
        return b""

    def compute(self, ctx: "Context") -> "Image":
        raise NotImplementedError(f"{self.type_name} does not compute images")

    #: Nodes that compute several frames faster together (Inference) set this and override
    #: :meth:`compute_batch`; renders then hand them a chunk of frames at once.
    batchable: ClassVar[bool] = False

    def compute_batch(self, ctxs: list["Context"]) -> list["Image"]:
        """Compute several frames at once (same node, one context per frame); default: one by one."""
        return [self.compute(ctx) for ctx in ctxs]

    def frame_range(self, ranges: dict[str, tuple[int, int] | None]) -> tuple[int, int] | None:
        """This node's frame range given its inputs' ranges; default: the first connected input's."""
        for spec in self.inputs:
            if ranges.get(spec.name) is not None:
                return ranges[spec.name]
        return None

    def check(self) -> list[str]:
        """Problems specific to this node's knob values (beyond type validation); messages only."""
        return []

    # --- hashing ---------------------------------------------------------------------------
    def static_digest(self) -> bytes:
        """Digest of type and knob values, cached until a knob changes."""
        if self._static_digest is None:
            payload = json.dumps([self.type_name, self.knob_values()], sort_keys=True, default=str)
            self._static_digest = hashlib.blake2b(payload.encode(), digest_size=16).digest()
        return self._static_digest

    def __repr__(self) -> str:
        changed = self.knob_values(only_changed=True)
        knobs = ", ".join(f"{k}={v!r}" for k, v in changed.items())
        return f"<{self.type_name} {self.name}{' ' + knobs if knobs else ''}>"


_USER_MODELS: dict[tuple[Any, ...], type] = {}


def _user_model(base: type, name: str, specs: tuple["UserKnob", ...]) -> type:
    """The knob model of ``base`` plus user knobs ``specs``, shared by every node declaring the same
    knobs (the copies of one group in a script): building a pydantic model costs milliseconds."""
    key = (base, name, json.dumps([k.as_json() for k in specs], sort_keys=True, default=repr))
    model = _USER_MODELS.get(key)
    if model is None:
        fields = {k.name: k.field() for k in specs}
        model = pydantic.create_model(name, __base__=_quiet_base(base), **fields)
        if len(_USER_MODELS) >= 4096:
            _USER_MODELS.clear()
        _USER_MODELS[key] = model
    return model


@functools.lru_cache(maxsize=None)
def _quiet_base(base: type) -> type:
    """``base`` without reading attribute docstrings from source: user-knob models are built at run
    time (a script's groups build hundreds), where pydantic's source lookup costs milliseconds each."""
    return type(base.__name__, (base,), {"model_config": ConfigDict(use_attribute_docstrings=False),
                                         "__module__": base.__module__, "__doc__": base.__doc__})


class UnknownNode(Node, abstract=True):
    """Placeholder for a node whose type is not registered, kept so that nothing is lost on save."""

    def __init__(self, name: str, type_name: str, knobs: dict[str, Any], inputs: Iterable[str] = ()) -> None:
        self.type_name = type_name  # instance attribute shadows the class one
        self.raw_knobs = dict(knobs)
        self.inputs = tuple(Input(n, required=False) for n in inputs)
        super().__init__(name)

    def knob_values(self, *, only_changed: bool = False) -> dict[str, Any]:
        return dict(self.raw_knobs)

    def input_spec(self, name: str) -> Input:  # type: ignore[override]
        for i in self.inputs:
            if i.name == name:
                return i
        spec = Input(name, required=False)
        self.inputs = self.inputs + (spec,)
        return spec

    @property
    def nuke(self) -> dict[str, Any]:
        """What a Nuke script said about this node (``extras["nuke"]``), if it came from one."""
        data = self.extras.get("nuke")
        return data if isinstance(data, dict) else {}

    @property
    def ui_only(self) -> bool:
        """A node only Nuke's interface uses (Viewer, BackdropNode, StickyNote): kept, never an issue."""
        return bool(self.nuke.get("ui_only"))

    def problem(self) -> str:
        """Why this node cannot be rendered."""
        reason = self.nuke.get("placeholder")
        if reason:
            return f"Nuke node {self.type_name} kept as a placeholder: {reason}"
        if self.nuke:
            why = self.nuke.get("reason")
            return (f"Nuke class {self.type_name!r} is not supported by nodegraph (kept with its knobs and inputs)"
                    + (f": {why}" if why else ""))
        return f"unknown node type {self.type_name!r}"

    def compute(self, ctx: "Context") -> "Image":
        raise GraphError(self.problem(), node=self.path)


class Registry:
    """Node types by stable type name."""

    def __init__(self) -> None:
        self._types: dict[str, type[Node]] = {}
        self._loaded = False

    def register(self, cls: type[Node]) -> None:
        existing = self._types.get(cls.type_name)
        if existing is not None and existing.__qualname__ != cls.__qualname__:
            raise GraphError(f"node type {cls.type_name!r} registered twice ({existing!r}, {cls!r})")
        self._types[cls.type_name] = cls

    def _load(self) -> None:
        if self._loaded:
            return
        self._loaded = True
        importlib.import_module("nodegraph.group")  # Group, Input, Output: engine node types
        importlib.import_module("nodegraph.nodes")
        for ep in importlib_metadata.entry_points(group="nodegraph.nodes"):
            ep.load()

    def get(self, type_name: str) -> type[Node]:
        self._load()
        try:
            return self._types[type_name]
        except KeyError:
            raise GraphError(f"unknown node type {type_name!r}") from None

    def __contains__(self, type_name: str) -> bool:
        self._load()
        return type_name in self._types

    def types(self) -> dict[str, type[Node]]:
        self._load()
        return dict(sorted(self._types.items()))


_REGISTRY = Registry()
registry = _REGISTRY


def default_node_name(type_name: str) -> str:
    """Nuke's naming: ``Merge2`` nodes are called ``Merge1``, ``Merge2``...; the prefix drops digits."""
    return re.sub(r"\d+$", "", type_name) or "Node"


def _type_label(ann: Any) -> str:
    origin = typing.get_origin(ann)
    if origin is typing.Literal:
        return " | ".join(repr(a) if a == "" else str(a) for a in typing.get_args(ann))
    if origin is typing.Annotated:
        return _type_label(typing.get_args(ann)[0])
    if origin in (types.UnionType, typing.Union):
        return " | ".join(_type_label(a) for a in typing.get_args(ann))
    if origin is tuple:
        return "(" + ", ".join(_type_label(a) for a in typing.get_args(ann)) + ")"
    if ann is type(None):
        return "empty"
    return getattr(ann, "__name__", None) or str(ann).replace("typing.", "")


def knob_docs(cls: type[Node]) -> list[dict[str, Any]]:
    """Knob name, type, default and docstring of a node type (for ``nodegraph nodes``)."""
    out = []
    for name, field in cls.Knobs.model_fields.items():
        tname = _type_label(field.annotation)
        default = field.get_default(call_default_factory=True)
        try:
            default = json.loads(json.dumps(default, default=str))
        except (TypeError, ValueError):  # pragma: no cover - defensive
            default = str(default)
        out.append({"name": name, "type": tname, "default": default, "doc": field.description or ""})
    return out


__all__ = ["Input", "Knobs", "Node", "NodeGraphError", "Registry", "UnknownNode", "registry", "knob_docs",
           "default_node_name"]
