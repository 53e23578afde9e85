"""CopyCat training on the CPU: a tiny network learns a known grade on a small synthetic shot, every
output file appears with the right content, Ctrl-C / SIGTERM save a checkpoint, and a run killed
with SIGKILL resumes to the same final step with a continuous loss curve."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import OpenImageIO as oiio
import pytest
import torch
from typer.testing import CliRunner

import nodegraph as ng
from nodegraph import channels as chans
from nodegraph.image import Box, Format, Image
from nodegraph.io import write_image
from nodegraph.ml.report import SHEET_GAP, SUMMARY_HEADER, read_summary
from nodegraph.ml.state import load_state
from nodegraph.ml.train import TrainingInterrupted, lr_at, total_steps_for, train

#: A network far smaller than modelSize "small", so CI trains hundreds of steps in seconds.
TINY = {"widths": (8, 16, 16), "enc_blocks": (1, 1, 1), "dec_blocks": (1, 1, 1), "scales": 2, "lstm": False}
SIZE = 64
CROP = 32


def make_shot(root: Path, frames=range(1, 5), name: str = "plate", seed: int = 1) -> str:
    """Smooth random HDR-ish colour frames (values up to ~1.5) as float EXRs; returns the pattern."""
    (root / name).mkdir(parents=True, exist_ok=True)
    gen = torch.Generator().manual_seed(seed)
    for f in frames:
        noise = torch.rand(3, 16, 16, generator=gen)
        img = torch.nn.functional.interpolate(noise[None], size=(SIZE, SIZE), mode="bicubic")[0].clamp(0, None) * 1.5
        write_image(root / name / f"{name}.{f:04d}.exr", Image(img, chans.RGB, Box(0, 0, SIZE, SIZE),
                                                               Format.of_size(SIZE, SIZE)), datatype="float")
    return str(root / name / f"{name}.####.exr")


def shot_graph(root: Path, **knobs) -> ng.Graph:
    """input = plate, ground truth = the plate through a known Grade; preview = another frame."""
    g = ng.Graph()
    plate = g.add("Read", file=make_shot(root))
    grade = g.add("Grade", input=plate, multiply=0.5, gamma=0.8)
    settings = dict(dataDirectory=str(root / "train"), modelSize="small", cropSize=CROP, checkpointInterval=100,
                    imageInterval=100, learningRate=2e-3, batchSizeType="manual", batchSize=4)
    settings.update(knobs)
    g.add("CopyCat", "CopyCat1", input=plate, groundTruth=grade, **settings)
    return g


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    root = tmp_path_factory.mktemp("shot")
    g = shot_graph(root)
    preview = g.add("Read", file=make_shot(root, frames=[5], name="other", seed=7))
    g.connect(preview, "CopyCat1", "preview")
    events = []
    result = train(g, "CopyCat1", steps=200, device="cpu", log_every=1, network=TINY,
                   on_event=lambda kind, info: events.append((kind, info)))
    return root, g, result, events


def test_loss_falls(trained):
    _, _, result, _ = trained
    rows = read_summary(result.summary_path)
    losses = [r[1] for r in rows]
    first, last = sum(losses[:10]) / 10, sum(losses[-10:]) / 10
    assert last < first / 4, (first, last)
    assert result.final_loss == pytest.approx(losses[-1])
    assert result.step == result.total_steps == 200 and not result.interrupted


def test_plan_shown_before_training(trained):
    _, _, result, events = trained
    kinds = [k for k, _ in events]
    assert kinds.index("plan") < kinds.index("log")
    plan = dict(events)["plan"]
    assert plan["total_steps"] == 200 and plan["batch_size"] == 4 and plan["dataset_size"] == 4
    assert plan["frames"] == [1, 2, 3, 4]
    assert kinds[-1] == "done"


def test_summary_file(trained):
    _, _, result, _ = trained
    lines = result.summary_path.read_text().splitlines()
    assert lines[0].split("\t") == list(SUMMARY_HEADER)
    rows = read_summary(result.summary_path)
    assert [r[0] for r in rows] == list(range(1, 201))
    assert all(r[2] > 0 for r in rows)  # learning rate
    elapsed = [r[3] for r in rows]
    assert elapsed == sorted(elapsed) and all(r[4] >= 0 for r in rows)


def test_model_files_load_and_run(trained):
    from nodegraph.ml.modelfile import load_cat
    from nodegraph.ml.transfer import decode, encode

    root, g, result, _ = trained
    data = root / "train"
    assert result.model_path == data / "CopyCat1.cat"
    assert result.checkpoints == [data / "CopyCat1.100.cat"]  # the end writes CopyCat1.cat instead
    assert all(p.is_file() for p in result.checkpoints)
    loaded = load_cat(result.model_path, device="cpu")
    assert loaded.channels_in == list(chans.RGB) and loaded.channels_out == list(chans.RGB)
    assert loaded.meta["training"]["step"] == 200
    x = g.evaluate("Read1", 2).pixels
    y = g.evaluate("Grade1", 2).pixels
    with torch.no_grad():
        out = decode(loaded.module(encode(x)[None]))[0]
    assert out.shape == x.shape
    assert (out - y).abs().mean() < 0.4 * (x - y).abs().mean()  # far closer than the identity
    # temp files never left behind
    assert not [p for p in data.iterdir() if p.name.startswith(".")]


def test_resume_state_file(trained):
    _, _, result, _ = trained
    state = load_state(result.state_path)
    assert state["step"] == 200 and state["total_steps"] == 200
    assert state["dataset"]["frames"] == [1, 2, 3, 4]
    assert set(state["rng"]) >= {"torch", "sampler"}
    assert isinstance(state["model"], dict) and state["optimizer"]["state"]
    raw = result.state_path.read_bytes()  # a safetensors file (8-byte header length, JSON), not a pickle
    n = int.from_bytes(raw[:8], "little")
    assert n < len(raw) and raw[8:9] == b"{" and "nodegraph.ost" in json.loads(raw[8:8 + n])["__metadata__"]


def _png_size(path: Path) -> tuple[int, int, int]:
    spec = oiio.ImageInput.open(str(path)).spec()
    return spec.width, spec.height, spec.nchannels


def test_contact_sheets_and_previews(trained):
    root, _, result, _ = trained
    data = root / "train"
    assert result.contact_sheets == [data / "contactsheet.100.png", data / "contactsheet.200.png"]
    side = SHEET_GAP + 3 * (CROP + SHEET_GAP)  # three rows, three columns (input, ground truth, output)
    for p in result.contact_sheets:
        assert _png_size(p) == (side, side, 3)
    px = oiio.ImageBuf(str(result.contact_sheets[-1])).get_pixels(oiio.FLOAT)
    cell = lambda r, c: px[SHEET_GAP + r * (CROP + SHEET_GAP):][:CROP, SHEET_GAP + c * (CROP + SHEET_GAP):][:, :CROP]
    for r in range(3):  # the output column looks like the ground truth, not like the input
        assert abs(cell(r, 2) - cell(r, 1)).mean() < abs(cell(r, 0) - cell(r, 1)).mean()
    assert result.previews == [data / "preview.100.png", data / "preview.200.png"]
    assert all(_png_size(p) == (SIZE, SIZE, 3) for p in result.previews)
    assert _png_size(result.loss_graph_path)[:2] == (800, 450)


def test_tensorboard_scalars(trained):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    _, _, result, _ = trained
    assert list(result.tensorboard_dir.glob("events.out.tfevents.*"))
    acc = EventAccumulator(str(result.tensorboard_dir))
    acc.Reload()
    assert {"loss", "learning_rate"} <= set(acc.Tags()["scalars"])
    loss = acc.Scalars("loss")
    assert [e.step for e in loss] == list(range(1, 201))
    assert loss[-1].value == pytest.approx(result.final_loss, rel=1e-5)


def interrupt_at(step: int):
    """An event handler that presses Ctrl-C once training has done ``step`` steps."""
    def on_event(kind, info):
        if kind == "step" and info["step"] == step:
            raise KeyboardInterrupt
    return on_event


def test_ctrl_c_writes_checkpoint(tmp_path):
    g = shot_graph(tmp_path, checkpointInterval=1000, imageInterval=0)
    with pytest.raises(TrainingInterrupted) as exc:
        train(g, "CopyCat1", steps=50, device="cpu", log_every=5, network=TINY, on_event=interrupt_at(7))
    result = exc.value.result
    assert result.interrupted and result.step == 7 and result.model_path is None
    assert result.checkpoints == [tmp_path / "train" / "CopyCat1.7.cat"] and result.checkpoints[0].is_file()
    assert load_state(result.state_path)["step"] == 7
    assert [r[0] for r in read_summary(result.summary_path)] == [5, 7]  # the partial window is kept
    assert not (tmp_path / "train" / "CopyCat1.cat").exists()


def test_sigterm_stops_like_ctrl_c(tmp_path):
    g = shot_graph(tmp_path, checkpointInterval=1000, imageInterval=0)

    def on_event(kind, info):
        if kind == "step" and info["step"] == 3:
            os.kill(os.getpid(), signal.SIGTERM)

    with pytest.raises(TrainingInterrupted) as exc:
        train(g, "CopyCat1", steps=50, device="cpu", network=TINY, on_event=on_event)
    assert exc.value.result.step == 3 and (tmp_path / "train" / "CopyCat1.3.cat").is_file()
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL or callable(signal.getsignal(signal.SIGTERM))


_CHILD = """
import sys, time
import nodegraph as ng
from nodegraph.ml.train import train
g = ng.Graph.load(sys.argv[1])
net = {net}
def on_event(kind, info):
    if kind == "step":
        time.sleep(0.05)  # slow enough to be killed mid-run
train(g, "CopyCat1", steps=60, device="cpu", log_every=1, network=net, on_event=on_event)
"""


def test_resume_after_kill_9(tmp_path):
    g = shot_graph(tmp_path, checkpointInterval=10, imageInterval=0)
    doc = tmp_path / "graph.json"
    g.save(doc)
    script = tmp_path / "child.py"
    script.write_text(textwrap.dedent(_CHILD.format(net=repr(TINY))))
    ost = tmp_path / "train" / "CopyCat1.ost"
    proc = subprocess.Popen([sys.executable, str(script), str(doc)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 60
        while not ost.exists():
            assert proc.poll() is None, proc.stdout.read().decode()
            assert time.monotonic() < deadline, "no checkpoint within 60 s"
            time.sleep(0.05)
        time.sleep(0.3)  # a few steps past the checkpoint
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    saved = load_state(ost)["step"]
    assert 10 <= saved < 60 and saved % 10 == 0
    assert not (tmp_path / "train" / "CopyCat1.cat").exists()

    result = train(ng.Graph.load(doc), "CopyCat1", resume=True, device="cpu", log_every=1)
    assert result.resumed_from == saved and result.step == result.total_steps == 60
    rows = read_summary(result.summary_path)
    assert [r[0] for r in rows] == list(range(1, 61))  # lines after the saved step were dropped, none lost
    elapsed = [r[3] for r in rows]
    assert elapsed == sorted(elapsed)
    assert load_state(ost)["step"] == 60 and (tmp_path / "train" / "CopyCat1.cat").is_file()

    # resuming a finished run has nothing left to do
    again = train(ng.Graph.load(doc), "CopyCat1", resume=True, device="cpu", log_every=1)
    assert again.step == 60 and len(read_summary(result.summary_path)) == 60


def test_cli_train_and_resume(tmp_path):
    from nodegraph.cli import app

    g = shot_graph(tmp_path, checkpointInterval=5, imageInterval=0, modelSize="small", cropSize=16,
                   batchSize=1)
    doc = tmp_path / "graph.json"
    g.save(doc)
    runner = CliRunner()
    res = runner.invoke(app, ["train", str(doc), "--node", "CopyCat1", "--steps", "6", "--device", "cpu"])
    assert res.exit_code == 0, res.output
    assert "Total Steps = 6" in " ".join(res.output.split())
    assert (tmp_path / "train" / "CopyCat1.cat").is_file() and (tmp_path / "train" / "CopyCat1.5.cat").is_file()
    res = runner.invoke(app, ["train", str(doc), "--steps", "8", "--resume", "--learning-rate", "5e-4"])
    assert res.exit_code == 0, res.output
    assert "resuming at step 6" in " ".join(res.output.split())
    state = load_state(tmp_path / "train" / "CopyCat1.ost")
    assert state["step"] == 8 and state["learning_rate"] == 5e-4


def test_schedule_and_total_steps():
    assert total_steps_for(10000, 6, 4) == 15000  # Nuke's Total Steps = Epochs x data set / batch
    assert total_steps_for(1, 1, 4) == 1
    lrs = [lr_at(s, 1000, 1e-3, "cosine") for s in range(1000)]
    assert max(lrs) == pytest.approx(1e-3, rel=1e-3) and lrs[0] < lrs[19] and lrs[-1] < 0.05e-3
    assert lr_at(999, 1000, 1e-3, "step") == pytest.approx(1e-3 / 8)
    assert lr_at(500, 1000, 1e-3, "constant") == 1e-3
