"""``nodegraph demo``: a procedural shot, a comp of it, rendered to EXR and PNG; then a CopyCat
trained on three frames of a hand-made look, applied to the whole shot with Inference.

No downloads and no input files: the shot (a background plate and a moving, premultiplied
foreground element with a tight data window) is synthesised and written as EXR sequences, then a
comp graph reads them back, merges, grades and writes EXR and PNG frames through the normal render
path. The saved graph can be re-rendered with ``nodegraph render DIR/comp.json``.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import torch

from .graph import Graph
from .image import Box, Format, Image
from .render import render

FIRST, LAST = 1001, 1012
WIDTH, HEIGHT = 640, 360


def _plate(frame: int, fmt: Format) -> Image:
    """Sky-to-ground gradient with a slow drift and per-frame grain (linear, HDR sun spot)."""
    g = torch.Generator().manual_seed(frame)
    h, w = fmt.height, fmt.width
    y = torch.linspace(0, 1, h)[:, None].expand(h, w)
    x = torch.linspace(0, 1, w)[None, :].expand(h, w)
    t = (frame - FIRST) / (LAST - FIRST)
    sky = torch.stack([0.25 + 0.2 * y, 0.35 + 0.25 * y, 0.7 - 0.3 * y])
    ground = torch.stack([0.18 + 0.05 * x, 0.14 + 0.04 * x, 0.08 + 0.02 * x])
    horizon = (y > 0.62 + 0.03 * torch.sin(6 * x + t)).float()
    rgb = sky * (1 - horizon) + ground * horizon
    sun = 4.0 * torch.exp(-(((x - 0.8 + 0.1 * t) * 16) ** 2 + ((y - 0.2) * 16 * h / w * (w / h)) ** 2))
    rgb = rgb + sun[None] * torch.tensor([1.0, 0.9, 0.7])[:, None, None]
    rgb = rgb + 0.01 * torch.randn((3, h, w), generator=g)
    return Image(rgb.float(), ("rgba.red", "rgba.green", "rgba.blue"), fmt.display, fmt,
                 {"nodegraph/demo": "plate"})


def _element(frame: int, fmt: Format) -> Image:
    """A soft-edged orange ball moving on an arc; premultiplied RGBA over a tight data window."""
    t = (frame - FIRST) / (LAST - FIRST)
    cx = fmt.width * (0.15 + 0.7 * t)
    cy = fmt.height * (0.65 - 0.35 * math.sin(math.pi * t))
    r = fmt.height * 0.12
    box = Box(int(cx - r - 2), int(cy - r - 2), int(cx + r + 3), int(cy + r + 3))
    ys = torch.arange(box.y0, box.y1, dtype=torch.float32)[:, None] + 0.5
    xs = torch.arange(box.x0, box.x1, dtype=torch.float32)[None, :] + 0.5
    d = torch.sqrt((xs - cx) ** 2 + (ys - cy) ** 2)
    alpha = (r - d).clamp(0, 1.5) / 1.5
    shade = (1.2 - 0.6 * ((xs - cx + 0.4 * r) ** 2 + (ys - cy + 0.4 * r) ** 2).sqrt() / r).clamp(0.2, 1.2)
    rgb = torch.stack([0.9 * shade, 0.45 * shade, 0.1 * shade]) * alpha
    return Image(torch.cat([rgb, alpha[None]]), ("rgba.red", "rgba.green", "rgba.blue", "rgba.alpha"), box, fmt,
                 {"nodegraph/demo": "element"})


def build_shot(directory: Path) -> tuple[str, str]:
    """Write the procedural plate and element sequences; returns their patterns."""
    from nodegraph.io import write_image

    fmt = Format.of_size(WIDTH, HEIGHT)
    shot = directory / "shot"
    plate = str(shot / "plate.####.exr")
    element = str(shot / "element.####.exr")
    for frame in range(FIRST, LAST + 1):
        write_image(plate.replace("####", f"{frame:04d}"), _plate(frame, fmt), datatype="half", compression="zip",
                    create_directories=True)
        write_image(element.replace("####", f"{frame:04d}"), _element(frame, fmt), datatype="half",
                    compression="zip", create_directories=True)
    return plate, element


def build_comp(plate: str, element: str, out_dir: Path) -> Graph:
    """Read plate and element, merge the element over the plate, darken slightly, write EXR and PNG."""
    g = Graph()
    bg = g.add("Read", name="Plate", file=plate)
    fg = g.add("Read", name="Element", file=element)
    comp = g.add("Merge2", name="Over", A=fg, B=bg, operation="over")
    graded = g.add("Multiply", name="Exposure", input=comp, channels="rgb", value=0.9)
    g.add("Write", name="WriteEXR", input=graded, file=str(out_dir / "comp.####.exr"), channels="rgba",
          compression="zip", create_directories=True)
    g.add("Write", name="WritePNG", input=graded, file=str(out_dir / "comp_srgb.####.png"), channels="rgb",
          create_directories=True)
    return g


def _printer(console: Any) -> Any:
    """``say(text)`` on a rich console, printing ``text`` literally (paths may hold ``[/x]``)."""
    if console is None:
        return lambda text: None
    from rich.text import Text

    return lambda text: console.print(Text(text), soft_wrap=True)


def run_demo(directory: Path | str, *, workers: int = 2, device: str = "cpu", console: Any = None,
             ml: bool = True, ml_steps: int = 150) -> list[str]:
    directory = Path(directory).resolve()
    directory.mkdir(parents=True, exist_ok=True)
    say = _printer(console)
    say(f"building a procedural shot ({WIDTH}x{HEIGHT}, frames {FIRST}-{LAST}) in {directory / 'shot'}")
    plate, element = build_shot(directory)
    graph = build_comp(plate, element, directory / "render")
    graph_path = directory / "comp.json"
    graph.save(graph_path)
    say(f"rendering {graph_path} with {workers} worker(s) on {device}")
    result = render(graph, workers=workers, device=device)
    result.raise_for_failures()
    exrs = sorted(p for _, _, p in result.written if p.endswith(".exr"))
    pngs = sorted(p for _, _, p in result.written if p.endswith(".png"))
    report = [
        f"graph:  {graph_path}",
        f"EXR:    {exrs[0]} .. {Path(exrs[-1]).name} ({len(exrs)} frames)",
        f"PNG:    {pngs[0]} .. {Path(pngs[-1]).name} ({len(pngs)} frames)",
        f"rendered in {result.seconds:.1f}s; re-render with: nodegraph render {graph_path}",
    ]
    if ml:
        report += run_ml_demo(graph, directory, device=device, steps=ml_steps, say=say)
    return report


ML_FRAMES = (FIRST, FIRST + 5, LAST)


def build_ml(graph: Graph, directory: Path) -> None:
    """Add a hand-made look (a grade and a soft blur) and a CopyCat that learns it from 3 frames,
    then an Inference node that applies the trained model to every frame, and its Write."""
    # the ML part works at half resolution so that the demo trains and infers in seconds on a CPU
    comp = graph.add("Reformat", name="HalfRes", input=graph["Exposure"], type="scale", scale=0.5)
    look = graph.add("Grade", name="Look", input=comp, white=(1.25, 1.1, 0.9, 1.0), gamma=0.85, channels="rgb")
    look = graph.add("Blur", name="Soften", input=look, size=3, channels="rgb")
    graph.add("CopyCat", name="LearnLook", input=comp, groundTruth=look, dataDirectory=str(directory / "copycat"),
              frames=",".join(map(str, ML_FRAMES)), modelSize="small", cropSize=48, batchSizeType="manual",
              batchSize=3, checkpointInterval=100000, imageInterval=0, channelsIn="rgb", channelsOut="rgb",
              learningRate=2e-3, useGPUIfAvailable=False)
    applied = graph.add("Inference", name="ApplyLook", input=comp,
                        modelFile=str(directory / "copycat" / "LearnLook.cat"))
    graph.add("Write", name="WriteML", input=applied, file=str(directory / "render" / "ml_look.####.exr"),
              channels="rgba", compression="zip", create_directories=True)


def run_ml_demo(graph: Graph, directory: Path, *, device: str, steps: int, say: Any) -> list[str]:
    """Train the CopyCat of :func:`build_ml` on frames 1001, 1006, 1012 and infer the whole shot."""
    from .ml.train import train

    build_ml(graph, directory)
    graph_path = directory / "comp.json"
    graph.save(graph_path)
    say(f"training CopyCat 'LearnLook' ({steps} steps, small network) on frames {list(ML_FRAMES)}")
    trained = train(graph, "LearnLook", steps=steps, device=device, log_every=25)
    say(f"applying {trained.model_path} to frames {FIRST}-{LAST} with the Inference node")
    result = render(graph, writes=["WriteML"], workers=1, device=device)
    result.raise_for_failures()
    return [
        f"CopyCat: {trained.model_path} (loss {trained.first_loss:.4f} -> {trained.final_loss:.4f} "
        f"in {trained.step} steps)",
        f"ML:     {directory / 'render' / 'ml_look.####.exr'} ({len(result.written)} frames, the learned look "
        f"applied to every frame; train more with: nodegraph train {graph_path} --node LearnLook --resume "
        f"--steps 5000)",
    ]
