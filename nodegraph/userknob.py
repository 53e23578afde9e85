"""User knobs: knobs added to one node instance (Nuke's ``addUserKnob``), on any node.

A user knob has a name, a type (``float``, ``int``, ``bool``, ``string``, ``xy``, ``xyz``, ``wh``,
``box``, ``rgb``, ``color``, ``enum``), a default, a label and a tooltip; the node's knob model is rebuilt with it
(:meth:`nodegraph.node.Node.add_knob`), so it validates, animates, hashes and saves like any
other knob, and expressions read it (``NoOp1.gain``, ``parent.size`` inside a group) with the
component names of its kind (``pos.x``, ``size.w``, ``area.r``, ``tint.g``).
"""

from __future__ import annotations

import typing
from typing import Annotated, Any, Literal

import pydantic

from .animation import BOX, COLOUR, WH, XY, XYZ

#: User knob types: name -> (annotation, default).
USER_KNOB_TYPES: dict[str, tuple[Any, Any]] = {
    "float": (float, 0.0),
    "int": (int, 0),
    "bool": (bool, False),
    "string": (str, ""),
    "xy": (Annotated[tuple[float, float], XY], (0.0, 0.0)),
    "xyz": (Annotated[tuple[float, float, float], XYZ], (0.0, 0.0, 0.0)),
    "wh": (Annotated[tuple[float, float], WH], (0.0, 0.0)),
    "box": (Annotated[tuple[float, float, float, float], BOX], (0.0, 0.0, 0.0, 0.0)),
    "rgb": (Annotated[tuple[float, float, float], COLOUR], (1.0, 1.0, 1.0)),
    "color": (Annotated[tuple[float, float, float, float], COLOUR], (1.0, 1.0, 1.0, 1.0)),
    "enum": (str, None),
}


class UserKnob(pydantic.BaseModel):
    """A user knob (Nuke's ``addUserKnob``) of any node: name, type, default, label, tooltip."""

    model_config = pydantic.ConfigDict(extra="forbid", frozen=True)

    name: str
    type: Literal["float", "int", "bool", "string", "xy", "xyz", "wh", "box", "rgb", "color", "enum"] = "float"
    default: Any = None
    label: str = ""
    tooltip: str = ""
    values: tuple[str, ...] = ()
    minimum: float | None = None
    maximum: float | None = None

    @pydantic.model_validator(mode="after")
    def _check(self) -> "UserKnob":
        if not self.name.isidentifier():
            raise ValueError(f"user knob name {self.name!r} is not an identifier")
        if self.type == "enum" and not self.values:
            raise ValueError(f"enum knob {self.name!r} needs its values")
        return self

    def field(self) -> tuple[Any, Any]:
        annotation, default = USER_KNOB_TYPES[self.type]
        if self.type == "enum":
            annotation = Literal[tuple(self.values)]  # type: ignore[valid-type]
            default = self.values[0]
        if self.type in ("float", "int") and (self.minimum is not None or self.maximum is not None):
            annotation = typing.Annotated[annotation, pydantic.Field(ge=self.minimum, le=self.maximum)]
        if self.default is not None:
            default = tuple(self.default) if isinstance(self.default, list) else self.default
        doc = self.tooltip or self.label or f"user knob {self.name}"
        return annotation, pydantic.Field(default=default, description=doc)

    def as_json(self) -> dict[str, Any]:
        return self.model_dump(mode="json", exclude_defaults=True) | {"name": self.name}


__all__ = ["USER_KNOB_TYPES", "UserKnob"]
