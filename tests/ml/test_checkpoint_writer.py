"""Checkpoints written in the background: training goes on, the files hold the checkpoint's moment,
errors reach the caller, Ctrl-C waits for the write in flight."""

from __future__ import annotations

import threading
import time

import pytest
import torch

import nodegraph.ml.train as train_module
from nodegraph.ml.modelfile import load_cat
from nodegraph.ml.state import StateFileError, load_state
from nodegraph.ml.train import Trainer, TrainingInterrupted, train

from test_train import TINY, interrupt_at, shot_graph  # the tiny network and synthetic shot of the training tests


def _slow_state_writes(monkeypatch, hold):
    """Make ``save_state`` call ``hold(step)`` before writing; returns the steps written, in order."""
    real = train_module.save_state
    written = []

    def save_state(path, state):
        hold(state["step"])
        real(path, state)
        written.append(state["step"])

    monkeypatch.setattr(train_module, "save_state", save_state)
    return written


def test_training_goes_on_while_a_checkpoint_is_written_and_the_file_holds_its_moment(tmp_path, monkeypatch):
    reached = threading.Event()
    waited = {}

    def hold(step):
        if step == 5:  # the write of the step-5 checkpoint lasts until training has reached step 8
            waited[step] = reached.wait(timeout=30)

    written = _slow_state_writes(monkeypatch, hold)
    g = shot_graph(tmp_path, checkpointInterval=5, imageInterval=0)
    seen = {}
    trainer = None

    def on_event(kind, info):
        if kind == "step" and info["step"] == 5:  # the snapshot was taken just before this event
            seen["weights"] = {k: v.detach().clone() for k, v in trainer._served().state_dict().items()}
        if kind == "step" and info["step"] == 8:
            reached.set()
        if kind == "checkpoint":
            seen.setdefault("events", []).append(info["step"])

    trainer = Trainer(g, "CopyCat1", steps=12, device="cpu", log_every=1, network=TINY, on_event=on_event)
    result = trainer.run()
    assert waited == {5: True}, "training did not go on while the checkpoint was written"
    assert written == [5, 10, 12] and seen["events"] == [5, 10]
    assert [p.name for p in result.checkpoints] == ["CopyCat1.5.cat", "CopyCat1.10.cat"]
    cat = load_cat(result.checkpoints[0]).module.state_dict()
    for name, value in seen["weights"].items():
        assert torch.equal(cat[name].float(), value.float()), name
    assert load_state(result.state_path)["step"] == 12


def test_a_failed_checkpoint_write_stops_training_with_its_error_and_keeps_the_last_good_files(
        tmp_path, monkeypatch):
    def hold(step):
        if step == 10:
            raise StateFileError("No space left on device", path=str(tmp_path / "train" / "CopyCat1.ost"))

    _slow_state_writes(monkeypatch, hold)
    g = shot_graph(tmp_path, checkpointInterval=5, imageInterval=0)
    with pytest.raises(StateFileError, match="No space left") as err:
        train(g, "CopyCat1", steps=30, device="cpu", log_every=1, network=TINY)
    assert "CopyCat1.ost" in str(err.value)
    data = tmp_path / "train"
    assert load_state(data / "CopyCat1.ost")["step"] == 5  # the last good resume file, whole
    load_cat(data / "CopyCat1.5.cat")
    assert not (data / "CopyCat1.cat").exists()
    assert not [p for p in data.iterdir() if p.name.startswith(".")]  # no temporary files left


def test_ctrl_c_waits_for_the_write_in_flight_then_writes_its_own_checkpoint(tmp_path, monkeypatch):
    def hold(step):
        if step == 5:
            time.sleep(0.5)  # still writing when Ctrl-C comes at step 6

    written = _slow_state_writes(monkeypatch, hold)
    g = shot_graph(tmp_path, checkpointInterval=5, imageInterval=0)
    with pytest.raises(TrainingInterrupted) as info:
        train(g, "CopyCat1", steps=20, device="cpu", log_every=1, network=TINY, on_event=interrupt_at(6))
    result = info.value.result
    assert written == [5, 6]
    assert [p.name for p in result.checkpoints] == ["CopyCat1.5.cat", "CopyCat1.6.cat"]
    assert load_state(result.state_path)["step"] == 6
    resumed = train(g, "CopyCat1", resume=True, device="cpu", log_every=1)
    assert resumed.resumed_from == 6 and resumed.step == 20
