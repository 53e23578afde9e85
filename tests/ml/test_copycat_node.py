"""The CopyCat node: a pass-through when pulled; bad settings give clear errors before training."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

import nodegraph as ng
from nodegraph import channels as chans
from nodegraph.errors import KnobError, NodeGraphError
from nodegraph.image import Box, Format, Image
from nodegraph.io import write_image
from nodegraph.ml.train import train

SIZE = 32


def make_seq(root: Path, name: str, frames, channels=chans.RGB, size: int = SIZE) -> str:
    (root / name).mkdir(parents=True, exist_ok=True)
    for f in frames:
        px = torch.rand(len(channels), size, size)
        write_image(root / name / f"{name}.{f:04d}.exr", Image(px, channels, Box(0, 0, size, size),
                                                               Format.of_size(size, size)), datatype="float")
    return str(root / name / f"{name}.####.exr")


def graph(root: Path, *, gt_frames=range(1, 5), gt_channels=chans.RGB, gt_size=SIZE, **knobs) -> ng.Graph:
    g = ng.Graph()
    a = g.add("Read", "Plate", file=make_seq(root, "plate", range(1, 5)))
    b = g.add("Read", "Truth", file=make_seq(root, "truth", gt_frames, gt_channels, gt_size))
    settings = dict(dataDirectory=str(root / "train"), modelSize="small", cropSize=16, batchSizeType="manual",
                    batchSize=2)
    settings.update(knobs)
    g.add("CopyCat", "CopyCat1", input=a, groundTruth=b, **settings)
    return g


def _run(g: ng.Graph) -> None:
    train(g, "CopyCat1", steps=2, device="cpu")


def test_passes_input_through(tmp_path):
    g = graph(tmp_path)
    img = g.evaluate("CopyCat1", 2)
    assert torch.equal(img.pixels, g.evaluate("Plate", 2).pixels)
    assert g.evaluator.hash("CopyCat1", 2) == g.evaluator.hash("Plate", 2)
    assert not (tmp_path / "train").exists()  # pulling never trains
    assert g.frame_range("CopyCat1") == (1, 4)


def test_empty_data_directory(tmp_path):
    g = graph(tmp_path, dataDirectory="")
    with pytest.raises(KnobError, match="dataDirectory is empty") as exc:
        _run(g)
    assert exc.value.node == "CopyCat1" and exc.value.knob == "dataDirectory"


def test_missing_input(tmp_path):
    g = graph(tmp_path)
    g.disconnect("CopyCat1", "groundTruth")
    with pytest.raises(NodeGraphError, match="'groundTruth' not connected") as exc:
        _run(g)
    assert exc.value.node == "CopyCat1"


def test_batch_larger_than_data_set(tmp_path):
    g = graph(tmp_path, batchSize=5)
    with pytest.raises(KnobError, match=r"batchSize 5 is larger than the data set \(4 frame") as exc:
        _run(g)
    assert exc.value.knob == "batchSize"


def test_mismatched_channel_counts(tmp_path):
    g = graph(tmp_path, channelsIn="rgba")
    with pytest.raises(KnobError, match="does not carry rgba.alpha") as exc:
        _run(g)
    assert exc.value.knob == "channelsIn" and exc.value.frame == 1
    g = graph(tmp_path / "b", channelsOut="alpha")
    with pytest.raises(KnobError, match="'groundTruth' does not carry rgba.alpha") as exc:
        _run(g)
    assert exc.value.knob == "channelsOut"


def test_frames_where_an_input_is_missing_are_listed(tmp_path):
    g = graph(tmp_path, gt_frames=[1, 2, 4])  # a hole at 3 inside the range on disk
    with pytest.raises(NodeGraphError, match=r"input 'groundTruth' has no frame\(s\) 3") as exc:
        _run(g)
    assert exc.value.node == "CopyCat1"
    g = graph(tmp_path / "b", frames="1-6")  # beyond both inputs' ranges
    with pytest.raises(NodeGraphError, match=r"'input' has no frame\(s\) 5, 6; input 'groundTruth' has no frame\(s\) 5, 6"):
        _run(g)


def test_crop_larger_than_images(tmp_path):
    g = graph(tmp_path, cropSize=64)
    with pytest.raises(KnobError, match="cropSize 64 is larger than the images \\(32x32\\)") as exc:
        _run(g)
    assert exc.value.knob == "cropSize"


def test_mismatched_sizes(tmp_path):
    g = graph(tmp_path, gt_size=16, cropSize=8)
    with pytest.raises(NodeGraphError, match="input is 32x32 but groundTruth is 16x16") as exc:
        _run(g)
    assert exc.value.frame == 1


def test_resume_without_state_and_bad_checkpoint(tmp_path):
    g = graph(tmp_path)
    with pytest.raises(NodeGraphError, match="nothing to resume"):
        train(g, "CopyCat1", steps=2, device="cpu", resume=True)
    g["CopyCat1"].set(initialWeights="checkpoint")
    with pytest.raises(KnobError, match="checkpointFile is empty"):
        _run(g)
    bad = tmp_path / "bad.cat"
    bad.write_bytes(b"not a model")
    g["CopyCat1"].set(checkpointFile=str(bad))
    with pytest.raises(KnobError) as exc:
        _run(g)
    assert exc.value.knob == "checkpointFile"


def test_errors_leave_no_files(tmp_path):
    for knobs in ({"batchSize": 9}, {"cropSize": 64}, {"channelsIn": "rgba"}):
        with pytest.raises(NodeGraphError):
            _run(graph(tmp_path, **knobs))
        assert not (tmp_path / "train").exists()


def test_initial_weights_from_checkpoint(tmp_path):
    g = graph(tmp_path)
    first = train(g, "CopyCat1", steps=2, device="cpu")
    g["CopyCat1"].set(initialWeights="checkpoint", checkpointFile=str(first.model_path),
                      dataDirectory=str(tmp_path / "second"))
    second = train(g, "CopyCat1", steps=1, device="cpu")
    assert second.model_path.is_file()


def test_cli_errors(tmp_path):
    from nodegraph.cli import app

    g = graph(tmp_path, batchSize=7)
    doc = tmp_path / "g.json"
    g.save(doc)
    runner = CliRunner()
    res = runner.invoke(app, ["train", str(doc), "--device", "cpu"])
    assert res.exit_code == 1 and "batchSize" in res.output and "CopyCat1" in res.output
    res = runner.invoke(app, ["train", str(doc), "--node", "Plate"])
    assert res.exit_code == 1 and "Read is not a node that trains; CopyCat nodes: CopyCat1" in res.output
    res = runner.invoke(app, ["train", str(doc), "--epochs", "1", "--steps", "2"])
    assert res.exit_code == 2
