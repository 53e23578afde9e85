"""Per-class mapping between Nuke's nodes and nodegraph's: knob names, Nuke's defaults, inputs.

nodegraph names its node types and knobs as Nuke does, so most of the mapping is the identity.
This module holds the exceptions:

- knob names Nuke has used over the years for the same knob (``FrameHold`` ``first_frame`` and
  ``firstFrame``; ``Merge2`` ``maskChannelMask``; ``Keyer`` ``input``);
- Nuke's defaults where nodegraph's differ: a knob absent from a script has Nuke's default
  (Nuke writes only knobs that differ from it). A ``format`` knob absent from a generator or a
  Reformat is the script's root format, as in Nuke;
- which text knobs hold channels (``rgba``, ``-rgba.alpha``, 4-slot sets) or formats;
- knobs only Nuke's user interface reads (position, colour, font), kept verbatim for writing.

Input order: a node's nodegraph inputs are listed in Nuke's input order (Merge2: B, A; Copy: B, A),
the mask last; in a script the mask input comes after the ``N`` main inputs of ``inputs N+M``.
"""

from __future__ import annotations

from typing import Any

#: Knob names read from scripts, per Nuke class: Nuke's name -> nodegraph's.
RENAMED: dict[str, dict[str, str]] = {
    "*": {"maskChannelMask": "maskChannelInput"},
    "FrameHold": {"first_frame": "firstFrame"},
    "Keyer": {"input": "layer"},
    "Inference": {"serialiseKnob": "knobValues"},
    "ColorCorrect": {f"{r}.{k}": f"{r}_{k}" for r in ("shadows", "midtones", "highlights")
                     for k in ("saturation", "contrast", "gamma", "gain", "offset")},
}
#: nodegraph knob -> the name written to scripts, where it is not the knob's own name.
WRITTEN: dict[str, dict[str, str]] = {
    "FrameHold": {"firstFrame": "first_frame"},
    "Keyer": {"layer": "input"},
    "Inference": {"knobValues": "serialiseKnob"},
    "ColorCorrect": {ours: theirs for theirs, ours in RENAMED["ColorCorrect"].items()},
}
#: Knobs holding a set of named curves (``lut {master {curve ...} red {}}``), written as such.
CURVE_SET_KNOBS = frozenset({("ColorCorrect", "lookup"), ("HueCorrect", "hue"), ("ColorLookup", "lut")})

#: Nuke's defaults where nodegraph's differ (the value a knob absent from a script has).
NUKE_DEFAULTS: dict[str, dict[str, Any]] = {
    "Reformat": {"black_outside": False},
}

#: Classes whose mask is one of the main inputs (``inputs 3`` for Keymix's B, A, mask), not a ``+M`` one.
MASK_IS_MAIN = frozenset({"Keymix"})
#: Knobs written as rows of numbers (``matrix {{1 0 0} {0 1 0} {0 0 1}}``), per class: the row length
#: (a number, or the knob giving it).
MATRIX_KNOBS: dict[tuple[str, str], int | str] = {("ColorMatrix", "matrix"): 3, ("Matrix", "matrix"): "width"}

#: Text knobs holding a set of channels (``rgba``, ``{rgba.red -rgba.alpha}``).
CHANNEL_SET_KNOBS = frozenset({"channel0", "channel1", "channel2", "channel3",
                               "channels", "channels2", "channels3", "channels4", "Achannels", "Bchannels",
                               "output", "also_merge", "in", "in2", "out", "out2", "in1", "out1", "layer",
                               "channelsIn", "channelsOut"})
#: Text knobs naming one channel (``-rgba.alpha`` there means none).
CHANNEL_KNOBS = frozenset({"maskChannelInput", "maskChannel", "from0", "from1", "from2", "from3", "to0", "to1",
                           "to2", "to3", "unpremult", "alpha"})
#: Classes whose ``alpha`` knob is not a channel (Shuffle's is a source selector).
NOT_CHANNEL: dict[str, frozenset[str]] = {
    "Shuffle": frozenset({"red", "green", "blue", "alpha", "in", "out", "in2", "out2"}),
    "ShuffleCopy": frozenset({"red", "green", "blue", "alpha", "black", "white", "red2", "green2"}),
}

#: Knobs only Nuke's interface reads: kept verbatim, never mapped.
UI_KNOBS = frozenset({
    "xpos", "ypos", "selected", "label", "note_font", "note_font_size", "note_font_color", "tile_color",
    "gl_color", "hide_input", "postage_stamp", "postage_stamp_frame", "help", "onCreate", "onDestroy",
    "knobChanged", "updateUI", "autolabel", "icon", "bookmark", "indicators", "dope_sheet", "cached",
    "lock_connections", "z_order", "bdwidth", "bdheight", "appearance", "border_width", "shape",
    "tab_index", "onScriptLoad", "onScriptSave", "onScriptClose", "panel", "frame_range_lock",
})

#: Classes that are only Nuke's interface: kept for writing, never rendered, never an issue.
UI_CLASSES = frozenset({"Viewer", "BackdropNode", "StickyNote"})

#: Classes whose absent ``format`` is the root format.
ROOT_FORMAT_CLASSES = frozenset({"Constant", "ColorBars", "CheckerBoard2", "Ramp", "Reformat", "ColorWheel",
                                 "Noise", "Radial", "Rectangle", "Text", "Text2", "Roto", "RotoPaint",
                                 "BlinkScript"})


#: Why whole families of Nuke classes stay placeholders (said by validate() and by a render).
_FAMILIES: tuple[tuple[tuple[str, ...], frozenset[str], str], ...] = (
    (("Deep",), frozenset(), "deep images are not supported (nodegraph renders flat images)"),
    (("Particle",), frozenset(), "particle systems are not implemented"),
    (("OFX",), frozenset(), "OFX plug-ins (Keylight and others) exist only inside Nuke"),
    ((), frozenset({"Axis", "Axis2", "Axis3", "Camera", "Camera2", "Camera3", "Card", "Card2", "Card3D", "Cube",
                    "Cylinder", "Sphere", "Scene", "ScanlineRender", "RayRender", "TransformGeo", "ApplyMaterial",
                    "ReadGeo", "ReadGeo2", "WriteGeo", "Light", "Light2", "Light3", "DirectLight", "Spotlight",
                    "Environment", "Project3D", "Project3D2", "MergeGeo", "MergeMat", "ModelBuilder",
                    "PointCloudGenerator", "DisplaceGeo", "EditGeo", "Phong", "BasicMaterial", "Constant3D",
                    "CameraTracker", "GeoSelect", "SphericalTransform", "Reconcile3D", "PositionToPoints",
                    "PositionToPoints2", "DepthToPoints", "UVProject", "Wireframe", "FillMat"}),
     "3D nodes (geometry, cameras, lights, renderers) are not implemented: nodegraph renders 2D images"),
)


def unsupported_reason(nuke_class: str) -> str | None:
    """Why a class nodegraph lacks is not rendered, for the families it does not aim to cover."""
    for prefixes, names, reason in _FAMILIES:
        if nuke_class in names or (prefixes and nuke_class.startswith(prefixes)):
            return reason
    return None


def knob_name(nuke_class: str, name: str) -> str:
    """The nodegraph knob a script's knob ``name`` of ``nuke_class`` sets."""
    return RENAMED.get(nuke_class, {}).get(name) or RENAMED["*"].get(name, name)


def nuke_name(nuke_class: str, knob: str) -> str:
    """The name a nodegraph knob is written under in a script of ``nuke_class``."""
    return WRITTEN.get(nuke_class, {}).get(knob, knob)


def nuke_default(nuke_class: str, knob: str, ours: Any) -> Any:
    """The value a knob absent from a script has in Nuke (``ours`` where they agree)."""
    return NUKE_DEFAULTS.get(nuke_class, {}).get(knob, ours)


def is_channel_set(nuke_class: str, knob: str) -> bool:
    return knob in CHANNEL_SET_KNOBS and knob not in NOT_CHANNEL.get(nuke_class, ())


def is_channel(nuke_class: str, knob: str) -> bool:
    return knob in CHANNEL_KNOBS and knob not in NOT_CHANNEL.get(nuke_class, ())


def input_names(input_specs: tuple[str, ...], main: int, masks: int, nuke_class: str = "") -> list[str | None]:
    """nodegraph input names by Nuke input index for a node written with ``inputs main+masks``:
    the main inputs in order, then the mask; None where nodegraph has no such input."""
    if nuke_class in MASK_IS_MAIN:
        return [input_specs[i] if i < len(input_specs) else None for i in range(main + masks)]
    names = [n for n in input_specs if n != "mask"]
    out: list[str | None] = [names[i] if i < len(names) else None for i in range(main)]
    for j in range(masks):
        out.append("mask" if j == 0 and "mask" in input_specs else None)
    return out


def nuke_inputs(input_specs: tuple[str, ...], connected: set[str], nuke_class: str = "",
                saved_main: int = 0) -> tuple[list[str | None], int, int]:
    """The inverse of :func:`input_names` for writing: Nuke's input slots (our input name or None
    for an empty slot), and N and M of ``inputs N+M``. The main slots run to the last connected one,
    at least to ``saved_main`` (the count the script had) and, before a connected mask, to one."""
    if nuke_class in MASK_IS_MAIN:
        last = max((i for i, n in enumerate(input_specs) if n in connected), default=-1)
        main = min(len(input_specs), max(last + 1, saved_main))
        return [n if n in connected else None for n in input_specs[:main]], main, 0
    names = [n for n in input_specs if n != "mask"]
    masks = 1 if "mask" in input_specs and "mask" in connected else 0
    last = max((i for i, n in enumerate(names) if n in connected), default=-1)
    main = min(len(names), max(last + 1, saved_main, masks))
    return [n if n in connected else None for n in names[:main]] + ["mask"] * masks, main, masks


__all__ = ["CHANNEL_KNOBS", "CHANNEL_SET_KNOBS", "MASK_IS_MAIN", "MATRIX_KNOBS", "NUKE_DEFAULTS", "RENAMED", "ROOT_FORMAT_CLASSES", "UI_CLASSES",
           "UI_KNOBS", "WRITTEN", "input_names", "is_channel", "is_channel_set", "knob_name", "nuke_default", "nuke_name", "unsupported_reason", "nuke_inputs"]
