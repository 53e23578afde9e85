"""Held-out quality during CopyCat training (issue 13, goal 3): scores of frames never trained on in
the summary, the loss graph, TensorBoard and the result; the best model kept; early stopping; errors
that name the knob; resume keeps the held-out record. Metrics checked against numpy formulas."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import nodegraph as ng
from nodegraph.errors import NodeGraphError
from nodegraph.ml.heldout import Monitor, HeldOut, display, iou, is_matte, psnr, srgb
from nodegraph.ml.modelfile import load_cat
from nodegraph.ml.report import SUMMARY_HEADER, Summary, plot_loss, read_summary
from nodegraph.ml.train import TrainingInterrupted, train

from test_train import CROP, TINY, make_shot  # the same tiny network and synthetic shot

FRAMES = range(1, 8)


def graph(root, **knobs) -> ng.Graph:
    """Frames 1-7 of a plate and a known grade of it; training on 1-4 unless told."""
    g = ng.Graph()
    plate = g.add("Read", "Plate", file=make_shot(root, frames=FRAMES))
    grade = g.add("Grade", "Truth", input=plate, multiply=0.5, gamma=0.8)
    settings_ = dict(dataDirectory=str(root / "train"), modelSize="small", cropSize=CROP, checkpointInterval=1000,
                     imageInterval=0, learningRate=2e-3, batchSizeType="manual", batchSize=4, frames="1-4")
    settings_.update(knobs)
    g.add("CopyCat", "CopyCat1", input=plate, groundTruth=grade, **settings_)
    return g


# --- metrics against hand-written numpy formulas ----------------------------------------------------
def np_srgb(x):
    x = np.clip(x, 0, 1)
    return np.where(x <= 0.0031308, 12.92 * x, 1.055 * np.power(np.maximum(x, 0.0031308), 1 / 2.4) - 0.055)


@settings(max_examples=40, deadline=None)
@given(st.lists(st.floats(-1, 4, allow_nan=False, width=32), min_size=8, max_size=8),
       st.lists(st.floats(-1, 4, allow_nan=False, width=32), min_size=8, max_size=8))
def test_display_psnr_matches_numpy(a, b):
    ta, tb = torch.tensor(a).reshape(2, 2, 2), torch.tensor(b).reshape(2, 2, 2)
    assert np.allclose(srgb(ta).numpy(), np_srgb(np.array(a, dtype=np.float32)).reshape(2, 2, 2), atol=1e-6)
    da, db = np_srgb(np.array(a, dtype=np.float64)), np_srgb(np.array(b, dtype=np.float64))
    mse = float(np.mean((da - db) ** 2))
    expected = 100.0 if mse == 0 else min(100.0, 10 * math.log10(1 / mse))
    assert psnr(display(ta, False), display(tb, False)) == pytest.approx(expected, abs=1e-3)
    # mattes are compared as they are, clipped
    mm = float(np.mean((np.clip(a, 0, 1) - np.clip(b, 0, 1)) ** 2))
    assert psnr(display(ta, True), display(tb, True)) == pytest.approx(
        100.0 if mm == 0 else min(100.0, 10 * math.log10(1 / mm)), abs=1e-3)


@settings(max_examples=40, deadline=None)
@given(st.lists(st.booleans(), min_size=12, max_size=12), st.lists(st.booleans(), min_size=12, max_size=12))
def test_iou_matches_sets(p, t):
    pred = torch.tensor([0.9 if v else 0.1 for v in p])
    truth = torch.tensor([1.0 if v else 0.0 for v in t])
    inter = sum(a and b for a, b in zip(p, t))
    union = sum(a or b for a, b in zip(p, t))
    assert iou(pred, truth) == (1.0 if union == 0 else inter / union)


def test_matte_channels():
    assert is_matte(("rgba.alpha",)) and is_matte(("mask.a",)) and is_matte(("depth.Z",))
    assert not is_matte(("rgba.red", "rgba.green", "rgba.blue"))
    assert is_matte(("rgba.alpha", "matte.alpha"))


def test_monitor_best_patience_and_spread():
    held = HeldOut([9], [], [], False, "validationFrames")
    m = Monitor(held, 10, early_stop=True, patience=2, min_delta=0.5)
    assert [m.due(s) for s in (5, 10, 20)] == [False, True, True]
    assert m.record(10, 1.0, {"psnr": 20.0, "l1": 0.1})
    assert m.record(20, 2.0, {"psnr": 21.0, "l1": 0.1})
    assert not m.record(30, 3.0, {"psnr": 21.3, "l1": 0.1})  # within min_delta: not a new best
    assert not m.should_stop
    assert not m.record(40, 4.0, {"psnr": 20.5, "l1": 0.1})
    assert m.should_stop and m.best == 21.0 and m.best_step == 20
    for s, v in ((50, 21.0), (60, 21.2), (70, 20.9), (80, 21.3)):
        m.record(s, 5.0, {"psnr": v, "l1": 0.1})
    diffs = np.diff([h["psnr"] for h in m.history[len(m.history) // 2:]])
    assert m.spread() == pytest.approx(float(np.std(diffs, ddof=1)))
    # a resumed run keeps scores up to its saved step, and counts patience again
    again = Monitor(held, 10, early_stop=True, patience=2)
    again.restore(m.state(), up_to_step=30)
    assert [h["step"] for h in again.history] == [10, 20, 30] and again.best_step == 20 and again.stale == 0


def test_old_summary_files_still_read(tmp_path):
    path = tmp_path / "old.summary"
    path.write_text("step\tloss\tlearning_rate\telapsed_s\tseconds_per_step\n1\t0.5\t0.001\t1.0\t0.1\n2\t0.4\t")
    rows = read_summary(path)
    assert len(rows) == 1 and rows[0][:5] == (1, 0.5, 0.001, 1.0, 0.1) and math.isnan(rows[0][5])
    s = Summary(tmp_path / "new.summary")
    s.add(1, 0.5, 1e-3, 1.0, 0.1)
    s.add(2, 0.4, 1e-3, 2.0, 0.1, {"psnr": 31.5, "l1": 0.01, "iou": 0.9})
    s.flush()
    lines = (tmp_path / "new.summary").read_text().splitlines()
    assert lines[0].split("\t") == list(SUMMARY_HEADER)
    assert lines[1].split("\t")[5:] == ["", ""] and lines[2].split("\t")[5:] == ["31.5", "0.9"]


# --- training with held-out frames ------------------------------------------------------------------
@pytest.fixture(scope="module")
def run(tmp_path_factory):
    root = tmp_path_factory.mktemp("heldout")
    g = graph(root, validationFrames="5-7", validationInterval=40)
    events = []
    result = train(g, "CopyCat1", steps=200, device="cpu", log_every=25, network=TINY,
                   on_event=lambda kind, info: events.append((kind, info)))
    return root, g, result, events


def test_scores_in_result_summary_and_events(run):
    root, g, result, events = run
    assert [h["step"] for h in result.heldout] == [40, 80, 120, 160, 200]
    assert all(set(h) == {"step", "elapsed_s", "psnr", "l1"} for h in result.heldout)  # colour: no IoU
    first, last = result.heldout[0]["psnr"], result.heldout[-1]["psnr"]
    assert last > first + 1.0, result.heldout  # the network learns the grade on frames it never saw
    rows = {r[0]: r for r in read_summary(result.summary_path)}
    assert set(rows) == {25, 40, 50, 75, 80, 100, 120, 125, 150, 160, 175, 200}  # log lines + scores
    for h in result.heldout:
        assert rows[h["step"]][5] == pytest.approx(h["psnr"], rel=1e-5) and math.isnan(rows[h["step"]][6])
    assert all(math.isnan(rows[s][5]) for s in (25, 50, 75))
    scored = [info for kind, info in events if kind == "heldout"]
    assert [i["step"] for i in scored] == [40, 80, 120, 160, 200]


def test_scores_are_the_models_own(run):
    """The recorded PSNR is what the best model file gives on the held-out frames."""
    root, g, result, _ = run
    best = max(result.heldout, key=lambda h: h["psnr"])
    assert result.best_step == best["step"] and result.best_path == root / "train" / "CopyCat1.best.cat"
    model = load_cat(result.best_path)
    assert model.meta["training"]["step"] == best["step"]
    from nodegraph.ml.transfer import decode, encode

    scores = []
    for f in (5, 6, 7):
        x = g.evaluate("Plate", f).select(ng.channels.RGB).pixels
        y = g.evaluate("Truth", f).select(ng.channels.RGB).pixels
        with torch.no_grad():
            out = decode(model.module(encode(x)[None]))[0]
        scores.append(psnr(srgb(out), srgb(y)))
    assert sum(scores) / 3 == pytest.approx(best["psnr"], abs=1e-3)


def test_tensorboard_and_loss_graph(run):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    import OpenImageIO as oiio

    _, _, result, _ = run
    acc = EventAccumulator(str(result.tensorboard_dir))
    acc.Reload()
    assert {"heldout/psnr", "heldout/l1"} <= set(acc.Tags()["scalars"])
    assert [e.step for e in acc.Scalars("heldout/psnr")] == [40, 80, 120, 160, 200]
    spec = oiio.ImageInput.open(str(result.loss_graph_path)).spec()
    assert (spec.width, spec.height) == (800, 750)  # two panels: loss, held-out PSNR


def test_matte_scores_iou(tmp_path):
    g = ng.Graph()
    plate = g.add("Read", "Plate", file=make_shot(tmp_path, frames=range(1, 7)))
    key = g.add("Expression", "Key", input=plate, expr3="r > 0.6 ? 1 : 0", channel3="alpha")
    g.add("CopyCat", "CopyCat1", input=plate, groundTruth=key, dataDirectory=str(tmp_path / "train"),
          modelSize="small", cropSize=CROP, imageInterval=0, batchSizeType="manual", batchSize=4,
          frames="1-4", validationFrames="5,6", validationInterval=30, channelsOut="alpha", learningRate=2e-3)
    result = train(g, "CopyCat1", steps=90, device="cpu", log_every=30, network=TINY)
    assert all(0.0 <= h["iou"] <= 1.0 for h in result.heldout) and len(result.heldout) == 3
    rows = read_summary(result.summary_path)
    assert [r[6] for r in rows] == pytest.approx([h["iou"] for h in result.heldout], rel=1e-5)


def test_early_stop_keeps_the_best(tmp_path):
    # an improvement of 1000 dB is never reached: the run stops after the first score plus patience
    g = graph(tmp_path, validationFrames="5", validationInterval=20, earlyStop=True, earlyStopPatience=2,
              earlyStopMinDelta=1000.0)
    events = []
    result = train(g, "CopyCat1", steps=500, device="cpu", log_every=10, network=TINY,
                   on_event=lambda kind, info: events.append((kind, info)))
    assert result.stopped_early and result.step == 60 and result.best_step == 20
    assert [h["step"] for h in result.heldout] == [20, 40, 60]
    assert result.model_path.read_bytes() == result.best_path.read_bytes()
    assert load_cat(result.model_path).meta["training"]["step"] == 20
    stop = [info for kind, info in events if kind == "early_stop"]
    assert stop and stop[0]["best_step"] == 20 and stop[0]["step"] == 60


def test_resume_continues_the_record(tmp_path):
    g = graph(tmp_path, validationFrames="6", validationInterval=20, checkpointInterval=40)

    def stop_at_70(kind, info):
        if kind == "step" and info["step"] == 70:
            raise KeyboardInterrupt

    with pytest.raises(TrainingInterrupted):
        train(g, "CopyCat1", steps=120, device="cpu", log_every=10, network=TINY, on_event=stop_at_70)
    result = train(g, "CopyCat1", resume=True, device="cpu", log_every=10, network=TINY)
    assert [h["step"] for h in result.heldout] == [20, 40, 60, 80, 100, 120]
    held = [r[0] for r in read_summary(result.summary_path) if not math.isnan(r[5])]
    assert held == [20, 40, 60, 80, 100, 120]


def test_preview_with_ground_truth_is_scored(tmp_path):
    g = graph(tmp_path, previewFrame=6)
    g.connect("Plate", "CopyCat1", "preview")
    result = train(g, "CopyCat1", steps=40, device="cpu", log_every=20, network=TINY,
                   on_event=lambda kind, info: None)
    # no validationFrames: the preview frame (not trained on, ground truth there) is scored at checkpoints
    # (none in 40 steps) and at the end
    assert [h["step"] for h in result.heldout] == [40]
    assert result.previews


@pytest.mark.parametrize("knobs, knob, words", [
    (dict(validationFrames="3-5"), "validationFrames", "3, 4 are training frames"),
    (dict(validationFrames="5-9"), "validationFrames", "no frame(s) 8, 9"),
    (dict(earlyStop=True), "earlyStop", "needs held-out frames"),
])
def test_bad_settings_name_the_knob(tmp_path, knobs, knob, words):
    g = graph(tmp_path, **knobs)
    with pytest.raises(NodeGraphError) as err:
        train(g, "CopyCat1", steps=10, device="cpu", network=TINY)
    assert err.value.knob == knob and words in str(err.value)
    assert not (tmp_path / "train").exists()  # nothing written before the checks pass


def test_bad_frame_list_is_refused_on_the_knob(tmp_path):
    with pytest.raises(NodeGraphError) as err:
        graph(tmp_path, validationFrames="5-x")
    assert "validationFrames" in str(err.value)


def test_loss_graph_without_heldout_is_one_panel(tmp_path):
    import OpenImageIO as oiio

    s = Summary(tmp_path / "a.summary")
    for i in range(1, 20):
        s.add(i, 1.0 / i, 1e-3, i * 0.1, 0.1)
    s.flush()
    plot_loss(tmp_path / "a.summary", tmp_path / "a.png")
    spec = oiio.ImageInput.open(str(tmp_path / "a.png")).spec()
    assert (spec.width, spec.height) == (800, 450)
