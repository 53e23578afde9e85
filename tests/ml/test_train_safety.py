"""Training loses nothing: a diverging run (NaN/inf loss) stops with TrainingDiverged before any
checkpoint holds the divergence and resumes at a lower learning rate; damaged or edited resume
files and an unusable dataDirectory are typed errors naming the file and the key; every output is
written with the process umask (0644 under umask 022)."""

from __future__ import annotations

import math
import os
import stat
from pathlib import Path

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_train import TINY, shot_graph  # the tiny network and synthetic shot of the training tests

from nodegraph.errors import KnobError
from nodegraph.ml import network
from nodegraph.ml.modelfile import load_cat
from nodegraph.ml.state import StateFileError, check_training_state, load_state, save_state
from nodegraph.ml.train import TrainingDiverged, TrainingError, train


def _nan_from_call(monkeypatch, first_bad: int) -> list[int]:
    """Make the training loss NaN from its ``first_bad``-th computation on (1-based)."""
    calls = [0]
    real = network.multiscale_l1

    def poisoned(*args, **kwargs):
        calls[0] += 1
        loss = real(*args, **kwargs)
        return loss * float("nan") if calls[0] >= first_bad else loss
    monkeypatch.setattr(network, "multiscale_l1", poisoned)
    return calls


def _all_finite(tensors) -> bool:
    return all(torch.isfinite(t).all() for t in tensors if t.is_floating_point())


@pytest.mark.parametrize("device", ["cpu", pytest.param("cuda", marks=pytest.mark.gpu)])
def test_divergence_stops_before_a_checkpoint_and_resumes_at_a_lower_rate(tmp_path, monkeypatch, device):
    g = shot_graph(tmp_path, checkpointInterval=5, imageInterval=0)
    data = tmp_path / "train"
    _nan_from_call(monkeypatch, 8)  # steps 8.. diverge; no summary line before step 20 (log_every 100)
    with pytest.raises(TrainingDiverged) as exc:
        train(g, "CopyCat1", steps=20, device=device, log_every=100, network=TINY)
    err = exc.value
    assert err.step == 10 and err.node == "CopyCat1"  # found at the step-10 checkpoint, before writing it
    assert err.checkpoint == data / "CopyCat1.5.cat" and err.state_path == data / "CopyCat1.ost"
    msg = str(err)
    for text in ("NaN", "step 10", "CopyCat1.5.cat", "CopyCat1.ost", "--resume", "--learning-rate 0.0002",
                 "learning_rate=0.0002"):
        assert text in msg, text
    assert not (data / "CopyCat1.10.cat").exists() and not (data / "CopyCat1.cat").exists()
    assert _all_finite(load_cat(err.checkpoint).module.state_dict().values())
    state = load_state(err.state_path)
    assert state["step"] == 5 and _all_finite(state["model"].values())

    monkeypatch.undo()
    result = train(g, "CopyCat1", resume=True, device=device, log_every=5, learning_rate=5e-4)
    assert result.resumed_from == 5 and result.step == 20 and math.isfinite(result.final_loss)
    assert load_state(data / "CopyCat1.ost")["learning_rate"] == 5e-4
    assert _all_finite(load_cat(data / "CopyCat1.cat").module.state_dict().values())


def test_divergence_noticed_at_a_summary_line(tmp_path, monkeypatch):
    g = shot_graph(tmp_path, checkpointInterval=100, imageInterval=0)
    _nan_from_call(monkeypatch, 3)
    with pytest.raises(TrainingDiverged, match="no checkpoint was written") as exc:
        train(g, "CopyCat1", steps=20, device="cpu", log_every=4, network=TINY)
    assert exc.value.step == 4 and exc.value.checkpoint is None and exc.value.state_path is None
    assert not list((tmp_path / "train").glob("*.cat")) and not (tmp_path / "train" / "CopyCat1.ost").exists()


def test_a_huge_learning_rate_diverges_cleanly(tmp_path):
    g = shot_graph(tmp_path, checkpointInterval=6, imageInterval=0)
    with pytest.raises(TrainingDiverged):
        train(g, "CopyCat1", steps=12, device="cpu", log_every=3, network=TINY, learning_rate=1e30)
    for cat in (tmp_path / "train").glob("*.cat"):  # whatever was written is finite and loads
        assert _all_finite(load_cat(cat).module.state_dict().values())


def test_learning_rate_must_be_positive(tmp_path):
    g = shot_graph(tmp_path)
    for bad in (0.0, -1e-3, float("nan")):
        with pytest.raises(TrainingError, match="learning rate"):
            train(g, "CopyCat1", steps=2, device="cpu", network=TINY, learning_rate=bad)


def test_data_directory_that_is_a_file(tmp_path):
    target = tmp_path / "notadir"
    target.write_text("x")
    g = shot_graph(tmp_path, dataDirectory=str(target))
    with pytest.raises(KnobError) as exc:
        train(g, "CopyCat1", steps=2, device="cpu", network=TINY)
    assert exc.value.knob == "dataDirectory" and "not a folder" in str(exc.value) and str(target) in str(exc.value)


# --- damaged and edited resume files -----------------------------------------------------------------

@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """A finished 4-step run whose .ost the tests edit (each on a copy of the graph's folder)."""
    root = tmp_path_factory.mktemp("run")
    g = shot_graph(root, checkpointInterval=2, imageInterval=0)
    train(g, "CopyCat1", steps=4, device="cpu", log_every=1, network=TINY)
    return root, g, (root / "train" / "CopyCat1.ost").read_bytes()


def _edit(state: dict, what: str) -> None:
    weight = next(k for k, v in state["model"].items() if v.dim() == 4)
    first_param = next(iter(state["optimizer"]["state"].values()))
    edits = {
        "missing optimizer": lambda: state.pop("optimizer"),
        "missing model_id": lambda: state.pop("model_id"),
        "step as text": lambda: state.update(step="3"),
        "negative step": lambda: state.update(step=-5),
        "learning rate inf": lambda: state.update(learning_rate=float("inf")),
        "schedule unknown": lambda: state.update(schedule="zigzag"),
        "config not a network": lambda: state.update(config={"in_channels": 3, "out_channels": 3, "scales": 10 ** 6}),
        "config unknown key": lambda: state["config"].update(colour="red"),
        "model wrong shape": lambda: state["model"].update({weight: torch.zeros(1, 1, 1, 1)}),
        "model missing tensor": lambda: state["model"].pop(weight),
        "optimizer moment wrong shape": lambda: first_param.update(exp_avg=torch.zeros(2)),
        "optimizer groups wrong": lambda: state["optimizer"]["param_groups"].append(
            dict(state["optimizer"]["param_groups"][0], params=[999])),
        "optimizer without state": lambda: state["optimizer"].pop("state"),
        "rng wrong size": lambda: state["rng"].update(sampler=torch.zeros(3, dtype=torch.uint8)),
        "rng not a tensor": lambda: state["rng"].update(torch="abc"),
        "dataset frames text": lambda: state["dataset"].update(frames="1-4"),
    }
    edits[what]()


KEYS = {"missing optimizer": "optimizer", "missing model_id": "model_id", "step as text": "step",
        "negative step": "step", "learning rate inf": "learning_rate", "schedule unknown": "schedule",
        "config not a network": "config", "config unknown key": "config", "model wrong shape": "model",
        "model missing tensor": "model", "optimizer moment wrong shape": "optimizer",
        "optimizer groups wrong": "optimizer", "optimizer without state": "optimizer", "rng wrong size": "rng",
        "rng not a tensor": "rng.torch", "dataset frames text": "dataset.frames"}


@pytest.mark.parametrize("what", sorted(KEYS))
def test_edited_resume_file_is_a_typed_error_naming_file_and_key(run, what):
    root, g, original = run
    ost = root / "train" / "CopyCat1.ost"
    ost.write_bytes(original)
    state = load_state(ost)
    _edit(state, what)
    save_state(ost, state)  # a consistent checksum: an edit, not damage
    try:
        with pytest.raises(StateFileError) as exc:
            train(g, "CopyCat1", steps=6, resume=True, device="cpu")
    finally:
        ost.write_bytes(original)
    assert exc.value.path == str(ost) and f"'{KEYS[what]}'" in str(exc.value)


@pytest.mark.parametrize("damage", ["flip a weight bit", "truncate", "old version"])
def test_damaged_resume_file(run, damage):
    root, g, original = run
    ost = root / "train" / "CopyCat1.ost"
    data = bytearray(original)
    if damage == "flip a weight bit":
        data[-7] ^= 0x40  # tensor data sits after the header
    elif damage == "truncate":
        data = data[:len(data) // 2]
    else:
        n = int.from_bytes(data[:8], "little")
        header = bytes(data[8:8 + n]).replace(b'\\"version\\": 2', b'\\"version\\": 1')
        assert len(header) == n
        data[8:8 + n] = header
    ost.write_bytes(bytes(data))
    try:
        with pytest.raises(StateFileError, match="checksum|not a readable|version 1") as exc:
            train(g, "CopyCat1", steps=6, resume=True, device="cpu")
    finally:
        ost.write_bytes(original)
    assert exc.value.path == str(ost)


@settings(max_examples=int(os.environ.get("NODEGRAPH_FUZZ_EXAMPLES", "60")), deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.tuples(st.floats(0, 1, exclude_max=True), st.integers(1, 255)), min_size=1, max_size=4))
def test_mutated_resume_bytes_only_give_state_file_errors(tmp_path_factory, run, flips):
    _, _, original = run
    data = bytearray(original)
    for where, xor in flips:
        data[int(where * len(data))] ^= xor
    path = tmp_path_factory.mktemp("fuzz") / "x.ost"
    path.write_bytes(bytes(data))
    try:
        check_training_state(load_state(path), path)
    except StateFileError as err:
        assert err.path == str(path)


# --- file modes ---------------------------------------------------------------------------------------

def test_outputs_honour_the_umask(tmp_path):
    old = os.umask(0o022)
    try:
        g = shot_graph(tmp_path, checkpointInterval=2, imageInterval=2)
        result = train(g, "CopyCat1", steps=3, device="cpu", log_every=1, network=TINY)
    finally:
        os.umask(old)
    data = tmp_path / "train"
    files = [data / "CopyCat1.cat", data / "CopyCat1.2.cat", data / "CopyCat1.ost", data / "CopyCat1.summary",
             data / "CopyCat1.loss.png", data / "contactsheet.2.png"]
    assert result.model_path == files[0]
    modes = {p.name: oct(stat.S_IMODE(p.stat().st_mode)) for p in files}
    assert set(modes.values()) == {"0o644"}, modes
    assert not [p for p in Path(data).iterdir() if p.name.startswith(".")]  # no temp files left
