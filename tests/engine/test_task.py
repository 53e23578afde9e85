"""The task interface: Write, CopyCat and CatFileCreator declare what they do for a frame range,
and render / train drive them through it (render never trains, train never writes frames)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

import nodegraph as ng
from nodegraph.cli import app
from nodegraph.render import render
from nodegraph.task import Task, TaskKind, TaskResult, TaskRun, is_task, run_one

from nodegraph import channels as chans
from nodegraph.image import Box, Format, Image
from nodegraph.io import write_image

#: A network far smaller than modelSize "small": a few steps train in a blink on the CPU.
TINY = {"widths": (8, 8, 8), "enc_blocks": (1, 1, 1), "dec_blocks": (1, 1, 1), "scales": 2, "lstm": False}
CROP = 16


def make_shot(root: Path) -> str:
    """Frames 1-4 of 32x32 diagonal gradients, brighter each frame, as float EXRs."""
    (root / "plate").mkdir(parents=True, exist_ok=True)
    ys, xs = torch.meshgrid(torch.linspace(0, 1, 32), torch.linspace(0, 1, 32), indexing="ij")
    for f in range(1, 5):
        rgb = torch.stack([xs, ys, (xs + ys) / 2]) * (0.5 + f / 4)
        write_image(root / "plate" / f"plate.{f:04d}.exr",
                    Image(rgb, chans.RGB, Box(0, 0, 32, 32), Format.of_size(32, 32)), datatype="float")
    return str(root / "plate" / "plate.####.exr")

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")


def comp(root: Path) -> ng.Graph:
    """A plate, a grade, a CopyCat learning the grade, a CatFileCreator and two Writes (one in a group)."""
    g = ng.Graph()
    plate = g.add("Read", "Plate", file=make_shot(root))
    grade = g.add("Grade", "Look", input=plate, multiply=0.5)
    g.add("CopyCat", "Learn", input=plate, groundTruth=grade, dataDirectory=str(root / "train"), cropSize=CROP,
          batchSizeType="manual", batchSize=2, checkpointInterval=50, imageInterval=0)
    g.add("CatFileCreator", "Package", torchScriptFile=str(root / "model.pt"))
    g.add("Write", "Frames", input=grade, file=str(root / "out" / "look.####.exr"), create_directories=True)
    group = g.add("Group", "Outputs")
    inner_in = group.subgraph.add("Input", "Input1")
    group.subgraph.add("Write", "Movie", input=inner_in, file=str(root / "out" / "look.mov"), create_directories=True)
    group.subgraph.add("Output", "Output1", input=inner_in)
    g.connect(grade, group, "Input1")
    return g


def test_every_side_effect_is_a_declared_task_of_one_kind(tmp_path: Path) -> None:
    g = comp(tmp_path)
    kinds = {n.path: n.task_kind for n in g.tasks()}
    assert kinds == {"Learn": TaskKind.TRAIN, "Package": TaskKind.CREATE, "Frames": TaskKind.WRITE,
                     "Outputs.Movie": TaskKind.WRITE}
    assert [n.path for n in g.outputs()] == ["Frames", "Outputs.Movie"]
    assert [n.path for n in g.tasks("train")] == ["Learn"]
    assert not is_task(g["Look"]) and not is_task(g["Plate"], "write")
    assert not any(isinstance(n, Task) for n in g if n.type_name in ("Read", "Grade", "Group"))


def test_plans_say_frames_order_and_files(tmp_path: Path) -> None:
    g = comp(tmp_path)
    frames = g["Frames"].task_plan()
    assert (list(frames.frames), frames.in_order, frames.outputs) == ([1, 2, 3, 4], False, ())
    assert g["Frames"].frame_output(3) == str(tmp_path / "out" / "look.0003.exr")
    movie = g.node("Outputs.Movie").task_plan([2, 3])
    assert (list(movie.frames), movie.in_order, movie.outputs) == ([2, 3], True, (str(tmp_path / "out" / "look.mov"),))
    assert g.node("Outputs.Movie").frame_output(2) is None  # a movie's file is not one frame's
    learn = g["Learn"].task_plan()
    assert (learn.frames, learn.in_order, learn.outputs) == ([1, 2, 3, 4], True, (str(tmp_path / "train" / "Learn.cat"),))
    g["Learn"].set(frames="2-3")
    assert g["Learn"].task_plan().frames == [2, 3]
    package = g["Package"].task_plan([1, 2])
    assert (package.frames, package.in_order, package.outputs) == ((), True, (str(tmp_path / "model.cat"),))


def test_render_runs_each_write_through_its_plan_and_never_trains(tmp_path: Path, monkeypatch) -> None:
    g = comp(tmp_path)
    calls: list[tuple[str, list[int]]] = []
    original = type(g["Frames"]).run_task

    def spy(self, run, frames):
        calls.append((self.path, list(frames)))
        return original(self, run, frames)

    monkeypatch.setattr(type(g["Frames"]), "run_task", spy)
    monkeypatch.setattr(type(g.node("Outputs.Movie")), "run_task", spy)
    result = render(g, frames=[1, 2, 3], workers=2)
    assert result.ok, result.failed
    # image files: one job per frame (any worker, any order); the movie: once, whole, in order
    assert sorted(c for c in calls if c[0] == "Frames") == [("Frames", [1]), ("Frames", [2]), ("Frames", [3])]
    assert [c for c in calls if c[0] == "Outputs.Movie"] == [("Outputs.Movie", [1, 2, 3])]
    assert (tmp_path / "out" / "look.mov").is_file() and (tmp_path / "out" / "look.0002.exr").is_file()
    assert not (tmp_path / "train").exists() and not (tmp_path / "model.cat").exists()
    for name in ("Learn", "Package"):
        with pytest.raises(ng.NodeGraphError, match=f"not an output node to render .a {g[name].task_kind} task"):
            render(g, writes=[name], frames=[1])


def test_an_ordered_task_that_stops_fails_its_remaining_frames_and_the_render_goes_on(tmp_path: Path,
                                                                                     monkeypatch) -> None:
    g = comp(tmp_path)
    movie_cls = type(g.node("Outputs.Movie"))

    def breaks_after_one(self, run, frames):
        if self.path != "Outputs.Movie":
            yield from Task_run(self, run, frames)
            return
        yield TaskResult(self.path, frames[0], "x", None)
        raise OSError("encoder vanished")

    Task_run = movie_cls.run_task
    monkeypatch.setattr(movie_cls, "run_task", breaks_after_one)
    result = render(g, frames=[1, 2, 3])
    assert sorted(f for n, f, _ in result.written if n == "Frames") == [1, 2, 3]
    assert ("Outputs.Movie", 1, "x") in result.written
    assert set(result.failed) == {("Outputs.Movie", 2), ("Outputs.Movie", 3)}
    assert all("Outputs.Movie" in m and "OSError: encoder vanished" in m for m in result.failed.values())


def test_train_drives_copycat_through_the_task_on_the_planned_frames(tmp_path: Path) -> None:
    g = comp(tmp_path)
    plans = []
    options = {"steps": 3, "network": TINY, "on_event": lambda kind, info: kind == "plan" and plans.append(info)}
    [res] = run_one(g["Learn"], TaskRun(g.evaluator, "cpu", options=options), frames=[2, 4])
    assert res.node == "Learn" and res.frame is None and res.error is None
    assert res.path == str(tmp_path / "train" / "Learn.cat") and Path(res.path).is_file()
    assert res.detail.step == 3
    assert [p["frames"] for p in plans] == [[2, 4]]
    assert not (tmp_path / "out").exists()  # training wrote no frames of the Writes


def test_create_task_writes_the_model_file(tmp_path: Path) -> None:
    class Double(torch.nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return x * 2

    torch.jit.script(Double()).save(str(tmp_path / "model.pt"))
    g = comp(tmp_path)
    [res] = run_one(g["Package"], TaskRun(g.evaluator))
    assert res == TaskResult("Package", None, str(tmp_path / "model.cat"), None)
    assert (tmp_path / "model.cat").is_file()
    g["Package"].set(torchScriptFile="")
    with pytest.raises(ng.NodeGraphError, match="Package.*torchScriptFile is empty"):
        run_one(g["Package"], TaskRun(g.evaluator))


def test_cli_train_finds_copycat_inside_groups_through_the_task_list(tmp_path: Path) -> None:
    g = ng.Graph()
    group = g.add("Group", "Shot")
    sub = group.subgraph
    plate = sub.add("Read", "Plate", file=make_shot(tmp_path))
    sub.add("CopyCat", "Learn", input=plate, groundTruth=sub.add("Grade", input=plate, multiply=0.5),
            dataDirectory=str(tmp_path / "train"), cropSize=CROP, batchSizeType="manual", batchSize=2,
            modelSize="small", checkpointInterval=50, imageInterval=0)
    sub.add("Output", "Output1", input=plate)
    doc = tmp_path / "shot.json"
    g.save(doc)
    res = CliRunner().invoke(app, ["train", str(doc), "--steps", "2", "--device", "cpu"])
    assert res.exit_code == 0, res.output
    assert (tmp_path / "train" / "Learn.cat").is_file()
