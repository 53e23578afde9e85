"""The ``nodegraph`` command line: render, convert, train, validate, nodes, info, compare, demo, cat, serve."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any, Optional

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.table import Table
from rich.text import Text

from .errors import DocumentError, KnobError, NodeGraphError, ValidationError, safe_repr

app = typer.Typer(add_completion=False, no_args_is_help=True,
                  help="Headless, Nuke-style compositing with shot-specific machine learning.")
# Everything printed holds user text (paths, knob values, node types, file metadata), so neither
# console reads rich markup or emoji codes: a "[/user]" or ":cat:" prints as written. Styled words
# come only from line() and styled table cells.
console = Console(stderr=True, markup=False, emoji=False, highlight=False)
out = Console(markup=False, emoji=False, highlight=False)

def line(*parts: str | tuple[str, str]) -> Text:
    """One line of output: ``str`` parts are user text, printed exactly as written; ``(text, style)``
    pairs are this module's own styled words."""
    return Text.assemble(*parts)


def say(con: Console, *parts: str | tuple[str, str]) -> None:
    """Print :func:`line` ``(*parts)`` unwrapped (a log keeps a long path on one line)."""
    con.print(line(*parts), soft_wrap=True)


def _fail(err: BaseException, code: int = 1) -> None:
    say(console, ("error:", "bold red"), f" {err}")
    raise typer.Exit(code)


def _device_option(value: Optional[str]) -> Optional[str]:
    """Check --device up front, so a typo is a usage error listing the valid devices."""
    from .render import resolve_render_device

    if value is not None:
        try:
            resolve_render_device(value)
        except NodeGraphError as err:
            raise typer.BadParameter(str(err)) from None
    return value


def _parse_value(text: str) -> Any:
    from .document import decode_json

    try:
        return decode_json(text)
    except json.JSONDecodeError:
        return text


def apply_overrides(graph: Any, overrides: list[str]) -> None:
    """Apply ``NODE.KNOB=VALUE`` overrides; VALUE is JSON if it parses, else a string."""
    for item in overrides:
        target, eq, value = item.partition("=")
        node, dot, knob = target.partition(".")
        if not eq or not dot or not node or not knob:
            raise KnobError(f"--set {safe_repr(item, 200)}: expected NODE.KNOB=VALUE")
        try:
            parsed = _parse_value(value)
        except DocumentError as err:
            raise KnobError(f"--set value {err.message}", node=node, knob=knob) from None
        graph.node(node).set(**{knob: parsed})


#: Most load warnings (a Nuke script's placeholders, renamed nodes) printed one per line.
MAX_LOAD_WARNINGS = 20


def load_graph(path: Path) -> Any:
    """``Graph.load`` (JSON, or a Nuke script by its suffix), printing the file's warnings (a Nuke
    script's nodes kept as placeholders, renamed nodes, knobs kept as written) to stderr."""
    from .graph import Graph

    graph = Graph.load(path)
    warnings = list(getattr(graph, "warnings", None) or [])
    for text in warnings[:MAX_LOAD_WARNINGS]:
        say(console, ("warning:", "yellow"), f" {text}")
    if len(warnings) > MAX_LOAD_WARNINGS:
        say(console, ("warning:", "yellow"), f" ... and {len(warnings) - MAX_LOAD_WARNINGS} more from {path}")
    return graph


def frame_union(specs: list[str]) -> Optional[list[int]]:
    """The frames of several ranges (Nuke's repeated ``-F``, ranges after the script): their union,
    each frame once, in the order first given; None when there are none (each Write's own range)."""
    from .render import MAX_RENDER_FRAMES, parse_frames

    if not specs:
        return None
    frames: dict[int, None] = {}
    for spec in specs:
        frames.update(dict.fromkeys(parse_frames(spec)))
        if len(frames) > MAX_RENDER_FRAMES:
            raise NodeGraphError(f"the frame ranges given cover more frames than one render does "
                                 f"({MAX_RENDER_FRAMES:,})")
    return list(frames)


def _script_and_ranges(args: list[str], gpu: bool) -> tuple[Path, list[str], Optional[int]]:
    """Split ``render``'s positionals, Nuke's ``[--gpu N] SCRIPT [RANGES]...``, into the script,
    the frame ranges after it and the GPU index (a number before the script, right after --gpu)."""
    index = None
    if gpu and len(args) > 1 and args[0].isdigit():
        index = int(args[0])
        args = args[1:]
    for spec in args[1:]:
        if "," in spec:  # Nuke's older "first,last" or our list of frames: refuse to guess
            raise typer.BadParameter(f"frame range {safe_repr(spec, 200)} after the script is ambiguous; write "
                                     f"1-100 for a range, or -F 1,5,9 for single frames", param_hint="FRAMES")
    return Path(args[0]), args[1:], index


def _render_device(device: Optional[str], gpu: bool, index: Optional[int]) -> str:
    """``--device``, or Nuke's ``--gpu [N]``: the GPU (N) when there is one, else the CPU."""
    import torch

    if not gpu:
        return device or "cpu"
    if device is not None:
        raise typer.BadParameter("give either --gpu (Nuke's) or --device, not both", param_hint="--gpu")
    if not torch.cuda.is_available():
        say(console, ("note:", "yellow"), " --gpu: no CUDA device here, rendering on the CPU")
        return "cpu"
    if index is None:
        return "cuda"
    if index >= torch.cuda.device_count():
        raise typer.BadParameter(f"no GPU {index}: this host has {torch.cuda.device_count()}", param_hint="--gpu")
    return f"cuda:{index}"


class _StopRender(Exception):
    """Raised from the progress callback to stop a ``--stop-on-error`` render at its first failure."""


@app.command()
def render(
    graph_arg: str = typer.Argument(..., metavar="GRAPH", help="Graph document (.json) or Nuke script (.nk)."),
    ranges_arg: Optional[list[str]] = typer.Argument(None, metavar="FRAMES",
                                                     help="Frame ranges after the script, as Nuke takes them "
                                                          "(1-100, 1-100x2, 7); '--' before a negative one."),
    frames: list[str] = typer.Option([], "--frames", "-F",
                                     help="Frames, e.g. 1001-1100, 1-10x2, 1,5,9. Repeatable, as Nuke's -F: the "
                                          "union, in the order given."),
    write: list[str] = typer.Option([], "--write", "-w", "-X",
                                    help="Write node to render (repeatable, or comma-separated; -X as in Nuke); "
                                         "default all."),
    workers: int = typer.Option(1, "--workers", "-j", min=1, help="Frames rendered in parallel."),
    processes: bool = typer.Option(False, "--processes", help="Run workers as processes instead of threads."),
    device: Optional[str] = typer.Option(None, "--device", callback=_device_option,
                                         help="cpu (default), cuda, cuda:N or auto."),
    gpu: bool = typer.Option(False, "--gpu", help="Nuke's --gpu [N]: the GPU (GPU N) when there is one, else the "
                                                  "CPU; --gpu alone is --device auto."),
    threads: Optional[int] = typer.Option(None, "--threads", "-m", min=1,
                                          help="Nuke's -m: CPU threads computing each frame (torch's intra-op "
                                               "threads) of a one-worker render; --workers splits the cores itself."),
    stop_on_error: bool = typer.Option(False, "--stop-on-error",
                                       help="Stop at the first failed frame, as Nuke does without --cont (frames "
                                            "already running finish)."),
    cont: bool = typer.Option(False, "--cont",
                              help="Nuke's continue-on-error, accepted: it is already the default here (a failed "
                                   "frame never stops the others; the exit code is still 1)."),
    execute: bool = typer.Option(False, "-x", help="Nuke's execute flag, accepted and ignored: render executes."),
    set_: list[str] = typer.Option([], "--set", help="Override a knob: NODE.KNOB=VALUE (repeatable)."),
    skip_existing: bool = typer.Option(False, "--skip-existing", help="Skip frames whose output file exists."),
    half: bool = typer.Option(False, "--half", help="Evaluate in half precision."),
    allow_torchscript: bool = typer.Option(False, "--allow-torchscript",
                                           help="Let Inference nodes load TorchScript models (they run code)."),
    scheduler: Optional[str] = typer.Option(None, "--scheduler", metavar="ADDRESS",
                                            help="Render on a running Dask cluster, e.g. tcp://HOST:8786."),
    cluster: Optional[str] = typer.Option(None, "--cluster", metavar="local[:N]",
                                          help="Start a Dask cluster of N worker processes here for the render."),
    gpus: Optional[int] = typer.Option(None, "--gpus", min=1,
                                       help="Dask: one worker per GPU (with --cluster), jobs need GPU=1; "
                                            "implies --device cuda."),
    retries: int = typer.Option(2, "--retries", min=0, help="Dask: times a failed frame is retried."),
) -> None:
    """Render Write nodes over a frame range. Takes Nuke's render options too (nodegraph render -x -F 1-100
    -X Write1 comp.nk). Exit code 0: every frame written; 1: a frame failed or the graph could not load;
    2: the graph does not validate, or a usage error."""
    import torch

    graph_file, ranges, gpu_index = _script_and_ranges([graph_arg, *(ranges_arg or [])], gpu)
    if stop_on_error and cont:
        raise typer.BadParameter("--cont keeps going after a failed frame, --stop-on-error stops: pick one",
                                 param_hint="--stop-on-error")
    farm = bool(scheduler or cluster or gpus)
    if threads is not None and (workers > 1 or processes or farm):
        raise typer.BadParameter("-m sets the threads of a one-worker render; --workers, --processes and Dask "
                                 "split the host's cores themselves", param_hint="-m")
    device = _render_device(device, gpu, gpu_index)
    if allow_torchscript:
        from .ml.trust import allow_torchscript as _allow

        _allow()

    from .render import render as run_render

    written = 0  # tallied here: a stopped render returns no result
    failed: dict[tuple[str, int], str] = {}
    torch_threads = torch.get_num_threads()
    try:
        graph = load_graph(graph_file)
        apply_overrides(graph, set_)
        frame_list = frame_union([*frames, *ranges])
        progress = Progress(TextColumn("[bold]render"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                            TimeRemainingColumn(), TextColumn("{task.description}", markup=False), console=console,
                            transient=False)
        task = None

        def on_start(total: int) -> None:
            nonlocal task
            task = progress.add_task("", total=total)

        def on_progress(node: str, frame: int, path: str | None, error: str | None) -> None:
            nonlocal written
            if error is not None:
                say(progress.console, ("failed", "red"), f" {node} frame {frame}: {error}")
                failed[(node, frame)] = error
            else:
                written += 1
            progress.update(task, advance=1, description=f"{node} {frame}")
            if error is not None and stop_on_error:
                raise _StopRender()

        names = [n for item in write for n in item.split(",") if n]
        options = dict(writes=names or None, frames=frame_list, workers=workers, device=device,
                       dtype=torch.float16 if half else torch.float32, skip_existing=skip_existing,
                       on_progress=on_progress, on_start=on_start, processes=processes)
        if threads is not None:
            torch.set_num_threads(threads)
        if farm:
            from .farm import open_client

            if gpus and device == "cpu":
                options["device"] = "cuda"
            with open_client(scheduler, cluster if cluster or scheduler else "local", gpus=gpus) as client, progress:
                result = run_render(graph, client=client, retries=retries, **options)
        else:
            with progress:
                result = run_render(graph, **options)
    except _StopRender:
        say(console, (f"stopped at the first failed frame (--stop-on-error): {written} frame(s) written, "
                      f"{len(failed)} failed", "bold red"))
        _print_failures(failed)
        raise typer.Exit(1)
    except ValidationError as err:
        _fail(err, 2)
    except NodeGraphError as err:
        _fail(err)
    finally:
        torch.set_num_threads(torch_threads)
    summary = (f"{len(result.written)} frame(s) written, {len(result.skipped)} skipped, "
               f"{len(result.failed)} failed in {result.seconds:.1f}s")
    if result.failed:
        say(console, (summary, "bold red"))
        _print_failures(result.failed)
        raise typer.Exit(1)
    say(console, (summary, "green"))


def _print_failures(failed: dict[tuple[str, int], str]) -> None:
    for (node, frame), msg in sorted(failed.items()):
        say(console, "  ", (f"{node} frame {frame}", "red"), f": {msg}")


@app.command()
def train(
    graph_file: Path = typer.Argument(..., metavar="GRAPH", help="Graph document (.json)."),
    node: Optional[str] = typer.Option(None, "--node", "-n", help="CopyCat node to train; default: the only one."),
    epochs: Optional[float] = typer.Option(None, "--epochs", min=0.0, help="Override the node's epochs."),
    steps: Optional[int] = typer.Option(None, "--steps", min=1, help="Train exactly this many steps in total."),
    device: Optional[str] = typer.Option(None, "--device", callback=_device_option,
                                         help="cpu, cuda, cuda:N or auto; default: useGPUIfAvailable."),
    resume: bool = typer.Option(False, "--resume", help="Continue from NAME.ost in the data directory."),
    compile_: bool = typer.Option(False, "--compile", help="Compile the network with torch.compile (CUDA)."),
    log_every: int = typer.Option(10, "--log-every", min=1, help="Steps per line of the summary file."),
    set_: list[str] = typer.Option([], "--set", help="Override a knob: NODE.KNOB=VALUE (repeatable)."),
    learning_rate: Optional[float] = typer.Option(None, "--learning-rate",
                                                  help="Peak learning rate (also on --resume, e.g. lower "
                                                       "after a divergence)."),
    gpus: Optional[int] = typer.Option(None, "--gpus", min=1,
                                       help="Data-parallel on N GPUs of this host (N processes; with --device cpu, "
                                            "N CPU processes). torchrun's and Nuke's COPYCAT_* variables are read "
                                            "without it."),
) -> None:
    """Train a CopyCat node; Ctrl-C stops after a checkpoint (exit code 130), --resume continues."""
    from .graph import Graph
    from .task import TaskKind, TaskRun, is_task, run_one

    if epochs is not None and steps is not None:
        _fail(NodeGraphError("give --epochs or --steps, not both"), 2)
    try:
        graph = Graph.load(graph_file)
        apply_overrides(graph, set_)
        if node is None:
            cats = [n.path for n in graph.tasks(TaskKind.TRAIN)]
            if len(cats) != 1:
                raise NodeGraphError(f"the graph has {len(cats)} CopyCat nodes ({', '.join(cats) or 'none'}); "
                                     "name one with --node")
            node = cats[0]
        trainee = graph.node(node)
        if not is_task(trainee, TaskKind.TRAIN):
            raise NodeGraphError(f"{trainee.type_name} is not a node that trains; CopyCat nodes: "
                                 f"{', '.join(n.path for n in graph.tasks(TaskKind.TRAIN)) or 'none'}", node=node)
        from .ml.train import TrainingInterrupted
    except ValidationError as err:
        _fail(err, 2)
    except NodeGraphError as err:
        _fail(err)

    progress = Progress(TextColumn("[bold]train"), BarColumn(), MofNCompleteColumn(),
                        TextColumn("loss {task.fields[loss]}", markup=False),
                        TextColumn("{task.fields[rate]} steps/s", markup=False),
                        TimeElapsedColumn(), TextColumn("ETA"), TimeRemainingColumn(), console=console)
    task = None

    def on_event(kind: str, info: dict) -> None:
        nonlocal task
        if kind == "plan":
            say(console, (str(info["node"]), "bold"),
                f": {info['dataset_size']} frame pair(s), batch {info['batch_size']}, "
                f"crop {info['crop_size']}, {info['parameters']:,} weights on {info['device']}; "
                f"Total Steps = {info['total_steps']:,} ({info['epochs']:g} epochs)"
                + (f", resuming at step {info['start_step']:,}" if info["start_step"] else ""))
            progress.start()
            task = progress.add_task("", total=info["total_steps"], completed=info["start_step"], loss="-", rate="-")
        elif kind == "log" and task is not None:
            progress.update(task, completed=info["step"], loss=f"{info['loss']:.4g}",
                            rate=f"{info['steps_per_s']:.2f}")
        elif kind == "step" and task is not None:
            progress.update(task, completed=info["step"])
        elif kind == "warning":
            say(progress.console, ("warning:", "yellow"), f" {info['message']}")
        elif kind == "checkpoint":
            say(progress.console, f"checkpoint {info['path']}")
        elif kind == "heldout":
            iou = f", IoU {info['iou']:.3f}" if "iou" in info else ""
            say(progress.console, f"held out at step {info['step']:,}: PSNR {info['psnr']:.2f} dB{iou} (best "
                                  f"{info['best_psnr']:.2f} dB at step {info['best_step']:,})")
        elif kind == "early_stop":
            say(progress.console, (f"early stop at step {info['step']:,}", "yellow"),
                f": held-out PSNR stopped improving; the model is the best, from step {info['best_step']:,} "
                f"({info['best_psnr']:.2f} dB)")
        elif kind == "ranks":
            say(console, ", ".join(f"rank {rank}: pid {pid}" for rank, pid in info["pids"].items()))

    try:
        with progress:
            options = dict(epochs=epochs, steps=steps, resume=resume, compile=compile_, log_every=log_every,
                           on_event=on_event, learning_rate=learning_rate, gpus=gpus)
            result = run_one(trainee, TaskRun(graph.evaluator, device, options=options))[0].detail
    except TrainingInterrupted as stop:
        r = stop.result
        say(console, (f"interrupted at step {r.step:,} of {r.total_steps:,}", "yellow"),
            f"; checkpoint and {r.state_path} written; continue with --resume")
        raise typer.Exit(130)
    except ValidationError as err:
        _fail(err, 2)
    except NodeGraphError as err:
        _fail(err)
    loss = "-" if result.final_loss is None else f"{result.final_loss:.4g}"
    say(console, (f"trained {result.step:,} step(s) in {result.seconds:.1f}s, loss {loss}", "green"))
    if result.model_path is not None:  # None on the ranks > 0 of a distributed run: rank 0 writes
        say(out, str(result.model_path))


@app.command()
def validate(graph_file: Path = typer.Argument(..., metavar="GRAPH"),
             as_json: bool = typer.Option(False, "--json", help="Print issues as JSON.")) -> None:
    """Check a graph document; lists every problem; exit code 1 if any."""
    from .graph import Graph

    try:
        graph = Graph.load(graph_file, strict=False)
    except NodeGraphError as err:
        _fail(err)
    issues = graph.validate()
    if as_json:
        out.print_json(json.dumps([i.as_dict() for i in issues]))
    elif issues:
        for issue in issues:
            say(out, str(issue))
    else:
        say(out, f"{graph_file}: OK ({len(graph)} nodes)")
    if issues:
        raise typer.Exit(1)


@app.command()
def convert(
    source: Path = typer.Argument(..., metavar="A", help="Graph to read: nodegraph JSON, Nuke script (.nk) or gizmo."),
    target: Path = typer.Argument(..., metavar="B", help="File to write, by its suffix: .json or .nk."),
) -> None:
    """Convert a graph between nodegraph JSON and Nuke's .nk: read A, write B atomically (B is replaced).

    Exit code 0: written; 1: A could not be read or B written; 2: a usage error (B's suffix, B is A)."""
    if target.suffix.lower() not in (".json", ".nk"):
        raise typer.BadParameter(f"{safe_repr(str(target), 200)}: write .json (nodegraph) or .nk (Nuke)",
                                 param_hint="B")
    if os.path.abspath(source) == os.path.abspath(target) or (target.exists() and source.exists()
                                                              and os.path.samefile(source, target)):
        raise typer.BadParameter(f"{safe_repr(str(target), 200)} is the file being read; refusing to overwrite it",
                                 param_hint="B")
    try:
        graph = load_graph(source)
        graph.save(target)
    except NodeGraphError as err:
        _fail(err)
    say(out, f"{source} -> {target} ({len(graph)} nodes)")


@app.command()
def nodes(type_name: Optional[str] = typer.Argument(None, metavar="[TYPE]", help="Show one node type in full.")) -> None:
    """List node types, or one type's inputs and knobs with their docs."""
    from .node import knob_docs, registry

    if type_name is None:
        table = Table("type", "category", "description", box=None)
        for name, cls in registry.types().items():
            table.add_row(Text(name), Text(cls.category), Text(((cls.__doc__ or "").strip().splitlines() or [""])[0]))
        out.print(table)
        return
    try:
        cls = registry.get(type_name)
    except NodeGraphError as err:
        _fail(err)
    say(out, (cls.type_name, "bold"), f" ({cls.category})\n{(cls.__doc__ or '').strip()}\n")
    if cls.inputs:
        say(out, ("inputs", "bold"))
        for spec in cls.inputs:
            say(out, f"  {spec.name}{'' if spec.required else ' (optional)'}: {spec.doc}")
    table = Table("knob", "type", "default", "description", box=None)
    for k in knob_docs(cls):
        table.add_row(Text(k["name"]), Text(k["type"]), Text(json.dumps(k["default"])),
                      Text(" ".join(k["doc"].split())))
    out.print(table)


@app.command()
def info(file: Path = typer.Argument(..., metavar="FILE"),
         as_json: bool = typer.Option(False, "--json", help="Print as JSON.")) -> None:
    """Describe an image or movie file: format, windows, channels, metadata."""
    from nodegraph.io import probe

    try:
        data = probe(str(file))
    except NodeGraphError as err:
        _fail(err)
    data = _jsonable(data)
    if as_json:
        out.print_json(json.dumps(data))
        return
    for key, value in data.items():
        if isinstance(value, dict):
            say(out, (key, "bold"))
            for k, v in value.items():
                say(out, f"  {k}: {v}")
        else:
            say(out, (key, "bold"), f": {value}")


def _jsonable(value: Any) -> Any:
    from .image import Box, Format

    if isinstance(value, Format):
        return {"display_window": list(value.display), "width": value.width, "height": value.height,
                "pixel_aspect": value.pixel_aspect}
    if isinstance(value, Box):
        return list(value)
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    return str(value)


@app.command()
def demo(directory: Path = typer.Argument(Path("nodegraph-demo"), metavar="[DIR]"),
         workers: int = typer.Option(2, "--workers", "-j", min=1),
         device: str = typer.Option("cpu", "--device", callback=_device_option, help="cpu, cuda, cuda:N or auto."),
         ml: bool = typer.Option(True, "--ml/--no-ml", help="Also train a CopyCat and apply it with Inference."),
         ml_steps: int = typer.Option(150, "--ml-steps", min=1, help="CopyCat training steps."),
         allow_torchscript: bool = typer.Option(False, "--allow-torchscript",
                                                help="Let Inference nodes load TorchScript models (they run code).")
         ) -> None:
    """Build a procedural shot, comp it, render EXR and PNG; train a CopyCat on 3 frames and infer the shot."""
    from .demo import run_demo

    if allow_torchscript:
        from .ml.trust import allow_torchscript as _allow

        _allow()

    try:
        report = run_demo(directory, workers=workers, device=device, console=console, ml=ml, ml_steps=ml_steps)
    except NodeGraphError as err:
        _fail(err)
    for text in report:
        say(out, text)


@app.command()
def compare(
    a: str = typer.Argument(..., metavar="A", help="Image, sequence pattern (shot.####.exr) or GRAPH.json:NODE."),
    b: str = typer.Argument(..., metavar="B", help="Image, sequence pattern or GRAPH.json:NODE to compare with."),
    frames: Optional[str] = typer.Option(None, "--frames", "-F",
                                         help="Frames, e.g. 1001-1100; default: every frame on disk."),
    channels: Optional[str] = typer.Option(None, "--channels", "-c",
                                           help="Channels or layers (rgba, rgba.alpha,depth.Z); default: all."),
    tolerance: float = typer.Option(0.0, "--tolerance", "-t", min=0.0,
                                    help="Largest absolute difference allowed per pixel and channel."),
    diff_dir: Optional[Path] = typer.Option(None, "--diff-dir",
                                            help="Write diff.####.exr (|A - B| per channel) for failing frames."),
    as_json: bool = typer.Option(False, "--json", help="Print the result as JSON."),
) -> None:
    """Compare two frame sequences per frame and channel (max abs, RMS, PSNR against peak 1.0).

    Exit code 0 when every frame is within tolerance, 1 when any frame differs, a channel or
    frame is missing, or NaNs disagree; 2 when the comparison cannot run at all.
    """
    from .compare import compare_sequences
    from .render import parse_frames

    try:
        frame_list = parse_frames(frames) if frames is not None else None
        result = compare_sequences(a, b, frames=frame_list, channels=channels, atol=tolerance, diff_dir=diff_dir)
    except NodeGraphError as err:
        _fail(err, 2)
    if as_json:
        out.print_json(json.dumps(result.as_dict()))
    else:
        _print_compare(result)
    if not result.ok:
        raise typer.Exit(1)


def _print_compare(result: Any) -> None:
    from .compare import _psnr_text

    ok, fail = ("ok", "green"), ("FAIL", "bold red")

    def row(frame: int, channel: str, stats: tuple[str, str, str], status: tuple[str, str], note: str = "") -> None:
        table.add_row(str(frame), Text(channel), *stats, line(status, note))

    table = Table("frame", "channel", "max abs", "RMS", "PSNR", "status", box=None)
    none = ("-", "-", "-")
    for fr in result.frames:
        status = ok if fr.ok else fail
        if fr.comparison is None:
            row(fr.frame, "-", none, status, f" {fr.error}")
            continue
        for problem in fr.comparison.problems:
            row(fr.frame, "-", none, status, f" {problem}")
        for c in fr.comparison.channels:
            if c.missing:
                row(fr.frame, c.channel, none, fail, f" missing in {c.missing}")
                continue
            row(fr.frame, c.channel, (f"{c.max_abs:.6g}", f"{c.rms:.6g}", _psnr_text(c.psnr)), ok if c.ok else fail,
                f" {c.nonfinite} NaN/Inf mismatch(es)" if c.nonfinite else "")
    out.print(table)
    failed = result.failed
    summary = f"{len(result.frames) - len(failed)} of {len(result.frames)} frame(s) match (tolerance {result.atol:g})"
    if failed:
        say(console, (f"{summary}; differing: {', '.join(str(f.frame) for f in failed)}", "bold red"))
        for fr in failed:
            if fr.diff_path:
                say(console, f"  frame {fr.frame}: difference image {fr.diff_path}")
    else:
        say(console, (summary, "green"))


cat_app = typer.Typer(no_args_is_help=True, help="Model files (.cat): package TorchScript, describe, export.")
app.add_typer(cat_app, name="cat")


@cat_app.command("create")
def cat_create(
    torchscript: Path = typer.Option(..., "--torchscript", help="The TorchScript module (.pt) to package."),
    channels_in: str = typer.Option(..., "--channels-in", help="Input channels, e.g. rgba.red,rgba.green,rgba.blue,rgba.alpha."),
    channels_out: str = typer.Option(..., "--channels-out", help="Output channels, in the module's order."),
    model_id: str = typer.Option(..., "--model-id", help="The model's id."),
    output_scale: int = typer.Option(1, "--output-scale", min=1, help="Output size / input size."),
    knob: list[str] = typer.Option([], "--knob", help="Custom knob NAME[:TYPE[=DEFAULT][:EXTRA]] (repeatable), "
                                   "e.g. despill_strength:float=0:0..10, gamma_input:enum=sRGB,Linear[:Linear]."),
    output: Optional[Path] = typer.Option(None, "--output", "-o", help="The .cat to write; default: MODEL.cat."),
    description: str = typer.Option("", "--description", help="Free text stored in the file."),
    no_verify: bool = typer.Option(False, "--no-verify", help="Skip the test forward on a 64x64 CPU image."),
) -> None:
    """Package a TorchScript module as a .cat file with channels, output scale and custom knobs."""
    from .ml.torchscript import create_cat_from_torchscript

    try:
        path = create_cat_from_torchscript(torchscript, output, channels_in=channels_in, channels_out=channels_out,
                                           model_id=model_id, output_scale=output_scale, knobs=knob,
                                           verify=not no_verify, description=description)
    except NodeGraphError as err:
        _fail(err)
    say(out, str(path))


def cat_description(meta: dict[str, Any]) -> list[str]:
    """Human-readable lines describing a model file's ``model.json``."""
    from .ml.torchscript import knob_spec

    lines = [f"model id: {meta['model_id']}", f"kind: {meta['kind']}",
             f"format: {meta['format']} v{meta['format_version']}",
             f"channels in: {', '.join(meta['channels_in'])}",
             f"channels out: {', '.join(meta['channels_out'])}",
             f"output scale: {meta.get('output_scale', 1)}",
             f"transfer: {meta.get('transfer', 'none')}"]
    if "parameters" in meta:
        lines.append(f"parameters: {meta['parameters']:,}")
    knobs = meta.get("knobs", [])
    lines.append("knobs: " + ("none" if not knobs else ""))
    lines += [f"  {knob_spec(k)}" for k in knobs]
    if meta.get("network"):
        lines.append("network: " + ", ".join(f"{k}={v}" for k, v in meta["network"].items()))
    if meta.get("training"):
        lines.append("training: " + ", ".join(f"{k}={v}" for k, v in meta["training"].items()))
    for key in ("description", "source", "weights_sha256", "module_sha256", "created_by", "created"):
        if meta.get(key):
            lines.append(f"{key.replace('_', ' ')}: {meta[key]}")
    return lines


@cat_app.command("info")
def cat_info(file: Path = typer.Argument(..., metavar="FILE"),
             as_json: bool = typer.Option(False, "--json", help="Print model.json as JSON.")) -> None:
    """Describe a .cat model file (its model.json, checked; the module is not loaded)."""
    from .ml.modelfile import read_cat_info

    try:
        meta = read_cat_info(file)
    except NodeGraphError as err:
        _fail(err)
    if as_json:
        out.print_json(json.dumps(meta))
        return
    for text in cat_description(meta):
        say(out, text)


@cat_app.command("export-torchscript")
def cat_export_torchscript(
    file: Path = typer.Argument(..., metavar="MODEL.cat"),
    output: Optional[Path] = typer.Option(None, "--output", "-o", help="The .pt to write; default: MODEL.pt."),
    nk: bool = typer.Option(True, "--nk/--no-nk", help="Also write MODEL.nk holding a CatFileCreator node."),
) -> None:
    """Export a nodegraph network as TorchScript for Nuke's Inference node (plus a .nk CatFileCreator)."""
    from .ml.torchscript import export_torchscript

    try:
        pt, nk_path = export_torchscript(file, output, nk=nk)
    except NodeGraphError as err:
        _fail(err)
    say(out, str(pt))
    if nk_path is not None:
        say(out, str(nk_path))


@app.command()
def serve(
    models: list[Path] = typer.Option(..., "--models", "-m", help="Folder of .cat models to serve (repeatable)."),
    host: str = typer.Option("127.0.0.1", "--host", help="Address to listen on; 0.0.0.0 for every network."),
    port: int = typer.Option(55555, "--port", "-p", min=0, max=65535, help="TCP port (0: any free port)."),
    token: Optional[str] = typer.Option(None, "--token", envvar="NODEGRAPH_SERVE_TOKEN",
                                        help="Shared token clients must send (option 'token')."),
    device: Optional[str] = typer.Option(None, "--device", callback=_device_option,
                                         help="cpu, cuda, cuda:N or auto; default: the GPU when there is one."),
    half: bool = typer.Option(False, "--half", help="Run models in half precision on the GPU."),
    max_batch: int = typer.Option(8, "--max-batch", min=1, help="Most concurrent requests run as one batch."),
    idle_timeout: float = typer.Option(30.0, "--idle-timeout", min=0.1, help="Seconds a silent client is kept."),
    max_message_mb: int = typer.Option(1024, "--max-message-mb", min=1, help="Largest request accepted, in MiB."),
    allow_torchscript: bool = typer.Option(False, "--allow-torchscript",
                                           help="Also serve TorchScript models (they run code)."),
) -> None:
    """Serve the .cat models of folders to Nuke's MLClient and RemoteInference nodes (ML-Server protocol)."""
    from .serve import Catalog, MLServer, ServerConfig

    if allow_torchscript:
        from .ml.trust import allow_torchscript as _allow

        _allow()
    config = ServerConfig(host=host, port=port, token=token or None, half=half, max_batch=max_batch,
                          device=None if device in (None, "auto") else device, idle_timeout=idle_timeout,
                          max_message_bytes=max_message_mb << 20)
    try:
        server = MLServer(Catalog(models), config).start()
    except NodeGraphError as err:
        _fail(err)
    for path, reason in server.catalog.skipped.items():
        say(console, ("skipped ", "yellow"), f"{path}: {reason}")
    for name, model in server.catalog.models.items():
        say(out, ("model ", "green"), f"{name}: {', '.join(model.meta['channels_in'])} -> "
            f"{', '.join(model.meta['channels_out'])}")
    bound, bound_port = server.address
    say(out, ("listening on ", "green"), f"{bound}:{bound_port} ({server.device}, "
        f"{len(server.catalog.models)} model(s){', token required' if token else ''}); Ctrl-C stops")
    sys.stdout.flush()
    import signal

    signal.signal(signal.SIGTERM, lambda *_: server.shutdown())
    server.serve_forever()


def main() -> None:
    try:
        app()
    except KeyboardInterrupt:
        say(console, ("interrupted", "red"))
        sys.exit(130)


if __name__ == "__main__":  # pragma: no cover
    main()
