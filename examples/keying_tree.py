"""The compositing tree of Nuke's keying documentation, runnable.

    Read plate ─┐
                Shuffle2 (hint -> rgba.alpha) ─ [model step] ─ Colorspace sRGB->linear ─ Premult ─┐
    Read hint ──┘                                                                               Merge over ─ Write comp
                                                                   Constant background ─────────┘
    and pass extraction: Copy (rgba.alpha -> matte.alpha, rgb -> FG.*) into one multi-layer EXR.

The model step is a matting network taking plate + hint and giving straight sRGB foreground and a
linear alpha, run by the Inference node: pass ``--model`` a .cat packaged from a TorchScript export
such as CorridorKey (``nodegraph cat create --torchscript CorridorKey.pt --channels-in
rgba.red,rgba.green,rgba.blue,rgba.alpha --channels-out rgba --model-id CorridorKey --knob
despill_strength:float=0:0..10 --knob gamma_input:enum=sRGB,Linear --knob
refiner_strength:float=1:0..1``) and its knobs with ``--knob despill_strength=2``. Without a
model a ``Keyer`` (greenscreen key, intersected with the hint) stands in for it.

    python examples/keying_tree.py OUT_DIR                  # procedural green-screen shot, frames 1-8
    python examples/keying_tree.py OUT_DIR --plate shot/plate.####.exr --hint shot/hint.####.exr
    python examples/keying_tree.py OUT_DIR --model CorridorKey.cat --knob despill_strength=2
    nodegraph render OUT_DIR/keying_tree.json --workers 2 --allow-torchscript  # re-render the saved graph

``examples/keying_tree.json`` is this graph saved with the relative paths shot/plate.####.exr,
shot/hint.####.exr and render/...: relative paths resolve against the graph file's folder (as a
Nuke script's do), so put it beside a ``shot`` directory to render it.
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

import torch

import nodegraph as ng
from nodegraph.curve import Curve, Key
from nodegraph.image import Format, Image
from nodegraph.io import write_image
from nodegraph.render import render

FIRST, LAST = 1, 8
#: The background brightens through the shot: the Constant's colour is keyed (linear) at the first
#: and last frame, so every frame renders its own value.
BACKGROUND = (0.05, 0.08, 0.12, 1.0)
BACKGROUND_END = (0.09, 0.12, 0.20, 1.0)


def background(frame: float) -> tuple[float, ...]:
    """The background colour at ``frame`` (what the animated Constant gives)."""
    t = (frame - FIRST) / (LAST - FIRST)
    return tuple(a + (b - a) * t for a, b in zip(BACKGROUND, BACKGROUND_END))


def build(plate: str, hint: str, out_dir: str, model: str | None = None,
          knob_values: dict | None = None) -> ng.Graph:
    """The tree; ``model`` (a .cat, e.g. a packaged CorridorKey export) fills the model step with an
    Inference node, otherwise a Keyer stands in for it."""
    g = ng.Graph()
    # raw: the matting model takes the plate as its sRGB-encoded values (CorridorKey's gamma_input
    # sRGB) and gives sRGB colour back, which the Colorspace below linearises
    plate_read = g.add("Read", name="Plate", file=plate, raw=True)
    hint_read = g.add("Read", name="Hint", file=hint, raw=True)
    with_hint = g.add("Shuffle2", name="HintIntoAlpha", B=plate_read, A=hint_read, mappings={
        "rgba.red": "B:rgba.red", "rgba.green": "B:rgba.green", "rgba.blue": "B:rgba.blue",
        "rgba.alpha": "A:rgba.red"})
    # Stand-in for the model step: a greenscreen key, inverted to a foreground matte and
    # intersected with the hint. Its output, like the model's, is straight sRGB colour + alpha.
    if model:
        # the matting model: plate + hint in, straight sRGB foreground + linear alpha out
        key = g.add("Inference", name="Model", input=with_hint, modelFile=model, knobValues=knob_values or {})
    else:
        key = g.add("Keyer", name="ModelStandIn", input=with_hint, operation="greenscreen keyer",
                    range=(0.0, 0.05, 1.0, 1.0), invert=True, combine="intersect")
    linear = g.add("Colorspace", name="ToLinear", input=key, colorspace_in="sRGB", colorspace_out="linear")
    premult = g.add("Premult", input=linear)
    bg = g.add("Constant", name="Background", format="960x540", color=[
        Curve([Key(FIRST, a, "linear"), Key(LAST, b, "linear")]) if a != b else a
        for a, b in zip(BACKGROUND, BACKGROUND_END)])
    comp = g.add("Merge2", name="Over", A=premult, B=bg, operation="over")
    g.add("Write", name="WriteComp", input=comp, file=f"{out_dir}/comp.####.exr", channels="rgba",
          compression="zip", create_directories=True)
    passes = g.add("Copy", name="Passes", B=comp, A=premult,
                   from0="rgba.alpha", to0="matte.alpha", from1="rgba.red", to1="FG.red",
                   from2="rgba.green", to2="FG.green", from3="rgba.blue", to3="FG.blue")
    g.add("Write", name="WritePasses", input=passes, file=f"{out_dir}/passes.####.exr", channels="all",
          compression="zip", create_directories=True)
    return g


def make_shot(folder: Path, width: int = 960, height: int = 540) -> tuple[str, str]:
    """A green-screen plate (sRGB-encoded, 16-bit PNG like a camera export) and a rough alpha hint."""
    fmt = Format.of_size(width, height)
    y = torch.linspace(0, 1, height)[:, None].expand(height, width)
    x = torch.linspace(0, 1, width)[None, :].expand(height, width)
    for frame in range(FIRST, LAST + 1):
        t = (frame - FIRST) / (LAST - FIRST)
        cx, cy, r = 0.3 + 0.4 * t, 0.55 - 0.1 * math.sin(math.pi * t), 0.22
        d = torch.sqrt((x - cx) ** 2 + ((y - cy) * height / width) ** 2)
        matte = ((r - d) * 60).clamp(0, 1)
        screen = torch.stack([0.1 + 0.05 * y, 0.65 + 0.1 * x, 0.15 + 0 * x])
        subject = torch.stack([0.75 - 0.3 * y, 0.45 + 0 * x, 0.3 + 0.2 * x])
        rgb = screen * (1 - matte) + subject * matte
        write_image(folder / f"plate.{frame:04d}.png", Image(rgb.contiguous(), ng.channels.RGB, fmt.display, fmt),
                    datatype="16", create_directories=True)
        hint = ((r + 0.04 - d) * 12).clamp(0, 1)  # a blurry, too-large garbage matte
        write_image(folder / f"hint.{frame:04d}.exr", Image(hint[None].contiguous(), ("rgba.red",), fmt.display, fmt),
                    datatype="half", create_directories=True)
    return str(folder / "plate.####.png"), str(folder / "hint.####.exr")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("out", type=Path)
    ap.add_argument("--plate", help="plate sequence (default: a procedural green-screen shot)")
    ap.add_argument("--hint", help="alpha hint sequence (first channel is used)")
    ap.add_argument("--model", help="a .cat for the model step (e.g. `nodegraph cat create` of a CorridorKey "
                                    "TorchScript export); default: a Keyer stands in")
    ap.add_argument("--knob", action="append", default=[], metavar="NAME=VALUE",
                    help="a custom knob of the model, e.g. despill_strength=2 (repeatable)")
    args = ap.parse_args()
    if args.model:  # you named the model yourself: opt in to running its TorchScript (nodegraph.ml.trust)
        from nodegraph.ml.trust import allow_torchscript

        allow_torchscript()
    out = args.out.resolve()
    out.mkdir(parents=True, exist_ok=True)
    plate, hint = (args.plate, args.hint) if args.plate and args.hint else make_shot(out / "shot")
    # the graph is saved in OUT_DIR, against which relative paths resolve: keep the plates' own places
    plate, hint = (str(Path(p).absolute()) for p in (plate, hint))
    knobs = {}
    for item in args.knob:
        name, _, value = item.partition("=")
        try:
            knobs[name] = json.loads(value)
        except json.JSONDecodeError:
            knobs[name] = value
    graph = build(plate, hint, str(out / "render"), model=args.model, knob_values=knobs)
    graph.save(out / "keying_tree.json")
    result = render(graph, workers=2)
    result.raise_for_failures()
    print(f"{len(result.written)} frames written under {out / 'render'}; graph: {out / 'keying_tree.json'}")


if __name__ == "__main__":
    main()
