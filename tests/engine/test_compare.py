"""``nodegraph compare`` and nodegraph.compare: exit codes, statistics against numpy, difference
images only for failing frames, JSON, NaN rules, data-window union and the GRAPH.json:NODE form."""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

import nodegraph as ng
from nodegraph.cli import app
from nodegraph.compare import compare_images, compare_sequences
from nodegraph.io import read_image, write_image

runner = CliRunner()
DATA = Path(os.environ["NODEGRAPH_TEST_DATA"])  # found by tests/conftest.py
RGBA = ("rgba.red", "rgba.green", "rgba.blue", "rgba.alpha")
FMT = ng.Format.of_size(6, 4)


def make(pixels, channels=RGBA, bbox=None, fmt=FMT) -> ng.Image:
    t = torch.as_tensor(np.asarray(pixels, dtype=np.float32))
    box = bbox or ng.Box(0, 0, t.shape[2], t.shape[1])
    return ng.Image(t, tuple(channels), box, fmt)


def write_seq(folder: Path, frames: dict[int, ng.Image], name: str = "img") -> str:
    folder.mkdir(parents=True, exist_ok=True)
    for f, img in frames.items():
        write_image(folder / f"{name}.{f:04d}.exr", img, datatype="float")
    return str(folder / f"{name}.####.exr")


def plate(seed: int) -> np.ndarray:
    return np.random.default_rng(seed).random((4, 4, 6), dtype=np.float32)


def test_identical_sequences_exit_0_and_write_no_diffs(tmp_path):
    a = write_seq(tmp_path / "a", {f: make(plate(f)) for f in (1, 2, 3)})
    b = write_seq(tmp_path / "b", {f: make(plate(f)) for f in (1, 2, 3)})
    res = runner.invoke(app, ["compare", a, b, "--diff-dir", str(tmp_path / "diff")])
    assert res.exit_code == 0, res.output
    assert "3 of 3 frame(s) match" in res.output
    assert not (tmp_path / "diff").exists()


def test_stats_match_numpy_and_diff_written_only_for_failing_frame(tmp_path):
    base = {f: plate(f) for f in (1, 2, 3)}
    changed = dict(base)
    changed[2] = base[2].copy()
    changed[2][1] += np.linspace(0, 0.3, 24, dtype=np.float32).reshape(4, 6)  # green only
    a = write_seq(tmp_path / "a", {f: make(p) for f, p in base.items()})
    b = write_seq(tmp_path / "b", {f: make(p) for f, p in changed.items()})
    res = runner.invoke(app, ["compare", a, b, "--json", "--diff-dir", str(tmp_path / "diff"),
                              "--tolerance", "0.01"])
    assert res.exit_code == 1, res.output
    data = json.loads(res.stdout)
    assert data["frames_failed"] == [2] and data["psnr_peak"] == 1.0
    frame2 = next(f for f in data["frames"] if f["frame"] == 2)
    green = next(c for c in frame2["channels"] if c["channel"] == "rgba.green")
    d = np.abs(base[2][1].astype(np.float64) - changed[2][1].astype(np.float64))
    mse = float(np.mean(d ** 2))
    assert green["max_abs"] == pytest.approx(d.max(), rel=1e-6)
    assert green["rms"] == pytest.approx(math.sqrt(mse), rel=1e-6)
    assert green["psnr"] == pytest.approx(10 * math.log10(1.0 / mse), rel=1e-6)
    assert not green["ok"]
    red = next(c for c in frame2["channels"] if c["channel"] == "rgba.red")
    assert red == {"channel": "rgba.red", "max_abs": 0.0, "rms": 0.0, "psnr": None, "nonfinite": 0,
                   "missing": None, "ok": True}
    assert sorted(p.name for p in (tmp_path / "diff").iterdir()) == ["diff.0002.exr"]
    diff = read_image(tmp_path / "diff" / "diff.0002.exr")
    assert diff.channels == RGBA
    np.testing.assert_allclose(diff.channel("rgba.green").numpy(), d, atol=1e-6)
    assert float(diff.channel("rgba.red").abs().max()) == 0.0

    # within a looser tolerance everything passes; the table names the frames otherwise
    assert runner.invoke(app, ["compare", a, b, "--tolerance", "0.31"]).exit_code == 0
    res = runner.invoke(app, ["compare", a, b, "--frames", "2-3"])
    assert res.exit_code == 1 and "differing: 2" in res.output


def test_channels_by_name_and_missing_channel_fails(tmp_path):
    rgb = make(plate(1)[:3], RGBA[:3])
    rgba = make(plate(1))
    a = write_seq(tmp_path / "a", {1: rgba})
    b = write_seq(tmp_path / "b", {1: rgb})
    res = runner.invoke(app, ["compare", a, b])
    assert res.exit_code == 1 and "missing in B" in res.output
    assert runner.invoke(app, ["compare", a, b, "--channels", "rgb"]).exit_code == 0
    res = runner.invoke(app, ["compare", a, b, "--channels", "rgba.alpha", "--json"])
    assert json.loads(res.stdout)["frames"][0]["channels"][0]["missing"] == "B"
    # the same channels in another order still match by name
    swapped = make(plate(1)[[3, 2, 1, 0]], RGBA[::-1])
    assert compare_images(rgba, swapped).ok


def test_nan_rules():
    nan = float("nan")
    a = make([[[nan, 1.0, 2.0]]], ("rgba.red",), fmt=ng.Format.of_size(3, 1))
    assert compare_images(a, make([[[nan, 1.0, 2.0]]], ("rgba.red",), fmt=a.format)).ok
    cmp = compare_images(a, make([[[0.5, 1.0, 2.5]]], ("rgba.red",), fmt=a.format), atol=1.0)
    stats = cmp["rgba.red"]
    assert not cmp.ok and stats.nonfinite == 1 and stats.max_abs == pytest.approx(0.5)
    assert "NaN/Inf mismatch" in cmp.failures()[0]
    inf = make([[[math.inf, 1.0, 2.0]]], ("rgba.red",), fmt=a.format)
    assert compare_images(inf, inf).ok


def test_data_windows_compared_over_their_union():
    fmt = ng.Format.of_size(8, 8)
    small = make(np.full((1, 2, 2), 0.5), ("rgba.red",), ng.Box(2, 2, 4, 4), fmt)
    big = make(np.full((1, 4, 4), 0.5), ("rgba.red",), ng.Box(1, 1, 5, 5), fmt)
    stats = compare_images(small, big)["rgba.red"]
    # 12 of the 16 union pixels are 0 in the small image and 0.5 in the big one
    assert stats.max_abs == pytest.approx(0.5)
    assert stats.rms == pytest.approx(math.sqrt(12 * 0.25 / 16))
    zero_outside = make(np.pad(np.full((1, 2, 2), 0.5), ((0, 0), (1, 1), (1, 1))), ("rgba.red",),
                        ng.Box(1, 1, 5, 5), fmt)
    assert compare_images(small, zero_outside).ok


def test_display_window_mismatch_fails():
    a = make(plate(1))
    b = make(plate(1), fmt=ng.Format.of_size(7, 4))
    cmp = compare_images(a, b)
    assert not cmp.ok and "display windows differ" in cmp.failures()[0]


def test_missing_frame_fails_that_frame_and_unreadable_source_exits_2(tmp_path):
    a = write_seq(tmp_path / "a", {1: make(plate(1)), 2: make(plate(2))})
    b = write_seq(tmp_path / "b", {1: make(plate(1))})
    res = runner.invoke(app, ["compare", a, b, "--json"])
    assert res.exit_code == 1
    data = json.loads(res.stdout)
    assert data["frames_failed"] == [2]
    assert data["frames"][1]["error"].startswith("B:") and "img.0002.exr" in data["frames"][1]["error"]
    res = runner.invoke(app, ["compare", str(tmp_path / "none.####.exr"), b])
    assert res.exit_code == 1  # frames of B exist; A is missing at frame 1
    res = runner.invoke(app, ["compare", str(tmp_path / "none.####.exr"), str(tmp_path / "nada.####.exr")])
    assert res.exit_code == 2 and "no frames" in res.output
    assert runner.invoke(app, ["compare", a, b, "--frames", "x-y"]).exit_code == 2


def test_graph_node_against_reference_and_single_files(tmp_path):
    g = ng.Graph()
    bars = g.add("ColorBars", format="32x16")
    g.add("Multiply", input=bars, value=0.5, channels="rgb")
    doc = tmp_path / "comp.json"
    g.save(doc)
    ref = {f: g.evaluate("Multiply1", f) for f in (1, 2)}
    pattern = write_seq(tmp_path / "ref", ref, "comp")
    res = runner.invoke(app, ["compare", f"{doc}:Multiply1", pattern, "--json"])
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout)["frames_compared"] == 2
    res = runner.invoke(app, ["compare", f"{doc}:ColorBars1", pattern, "--channels", "rgb"])
    assert res.exit_code == 1 and "FAIL" in res.output
    assert runner.invoke(app, ["compare", f"{doc}:Nope", pattern]).exit_code == 2

    # two single files compare as one frame; a real sample against itself
    sample = str(DATA / "Beachball" / "singlepart.0001.exr")
    result = compare_sequences(sample, sample)
    assert result.ok and [f.frame for f in result.frames] == [1]
