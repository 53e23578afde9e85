"""Rendering on a real Dask cluster (LocalCluster: 2 worker processes on the loopback): the same
pixels as a local render, each frame run once, failed frames retried then named, --skip-existing,
the CLI against a running scheduler, and a worker killed mid-render losing nothing."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import numpy as np
import OpenImageIO as oiio
import pytest
import torch
from typer.testing import CliRunner

import nodegraph as ng
from nodegraph import farm
from nodegraph.cli import app
from nodegraph.image import Format, Image
from nodegraph.io import write_image
from nodegraph.render import render

distributed = pytest.importorskip("distributed")

RETRIES = 2


@pytest.fixture(scope="module")
def client():
    """Two single-threaded worker processes (each with its own nanny, so a killed one restarts)."""
    with farm.open_client(cluster="local:2", timeout=60) as c:
        yield c


@pytest.fixture(autouse=True)
def _fresh_counts(client):
    client.run(farm.attempts, reset=True)


def attempts(client) -> dict[tuple[str, int], int]:
    """Jobs started per (node, first frame), added up over the live workers."""
    total: dict[tuple[str, int], int] = {}
    for counts in client.run(farm.attempts).values():
        for k, n in counts.items():
            total[k] = total.get(k, 0) + n
    return total


def write_sequence(folder: Path, frames, size=(24, 12)) -> str:
    w, h = size
    fmt = Format.of_size(w, h)
    gen = torch.Generator().manual_seed(3)
    for f in frames:
        pix = torch.rand(4, h, w, generator=gen) * 0.5 + f / 100.0
        write_image(folder / f"src.{f:04d}.exr", Image(pix, ("rgba.red", "rgba.green", "rgba.blue", "rgba.alpha"),
                                                       fmt.display, fmt), datatype="float")
    return str(folder / "src.####.exr")


def comp(out: Path, src: str, blur: float = 0.0) -> ng.Graph:
    g = ng.Graph()
    r = g.add("Read", file=src)
    m = g.add("Multiply", input=r, value=2.0, channels="rgb")
    if blur:
        m = g.add("Blur", input=m, size=blur)
    g.add("Write", name="Out", input=m, file=str(out / "o.####.exr"), channels="rgba", datatype="32 bit float",
          create_directories=True)
    return g


def pixels(path: Path) -> np.ndarray:
    return oiio.ImageBuf(str(path)).get_pixels(oiio.FLOAT)


def test_cluster_render_matches_local_render_and_runs_each_frame_once(tmp_path, client):
    src = write_sequence(tmp_path, range(1, 9))
    local = render(comp(tmp_path / "local", src), workers=1)
    seen = []
    result = render(comp(tmp_path / "farm", src), client=client, on_progress=lambda *a: seen.append(a))
    assert result.ok and local.ok
    assert sorted(f for _, f, _ in result.written) == list(range(1, 9))
    assert sorted(f for _, f, _, _ in seen) == list(range(1, 9))  # progress from the futures
    for f in range(1, 9):
        name = f"o.{f:04d}.exr"
        np.testing.assert_array_equal(pixels(tmp_path / "farm" / name), pixels(tmp_path / "local" / name))
    assert attempts(client) == {("Out", f): 1 for f in range(1, 9)}
    assert not [p for p in os.listdir(tmp_path / "farm") if p.startswith(".")]


def test_failed_frame_is_retried_then_reported_by_name(tmp_path, client):
    src = write_sequence(tmp_path, range(1, 6))
    (tmp_path / "src.0003.exr").write_bytes(b"not an exr")
    g = comp(tmp_path / "out", src)
    g["Read1"].set(first=1, last=5)
    result = render(g, client=client, retries=RETRIES)
    assert set(result.failed) == {("Out", 3)}
    assert "frame 3" in result.failed[("Out", 3)] and "src.0003.exr" in result.failed[("Out", 3)]
    assert sorted(f for _, f, _ in result.written) == [1, 2, 4, 5]
    counts = attempts(client)
    assert counts[("Out", 3)] == RETRIES + 1  # the first try and every retry
    assert all(counts[("Out", f)] == 1 for f in (1, 2, 4, 5))
    assert not (tmp_path / "out" / "o.0003.exr").exists()


def test_skip_existing_across_workers(tmp_path, client):
    src = write_sequence(tmp_path, range(1, 7))
    first = render(comp(tmp_path / "out", src), client=client, frames="1-4")
    assert first.ok
    os.remove(tmp_path / "out" / "o.0002.exr")
    client.run(farm.attempts, reset=True)
    again = render(comp(tmp_path / "out", src), client=client, frames="1-6", skip_existing=True)
    assert again.ok
    assert sorted(f for _, f, _ in again.skipped) == [1, 3, 4]
    assert sorted(f for _, f, _ in again.written) == [2, 5, 6]
    assert set(attempts(client)) == {("Out", 2), ("Out", 5), ("Out", 6)}


def test_cli_renders_on_a_running_scheduler(tmp_path, client):
    src = write_sequence(tmp_path, range(1, 5))
    comp(tmp_path / "out", src).save(tmp_path / "g.json")
    res = CliRunner().invoke(app, ["render", str(tmp_path / "g.json"), "--scheduler", client.scheduler.address])
    assert res.exit_code == 0, res.output
    assert "4 frame(s) written" in res.output
    assert sorted(os.listdir(tmp_path / "out")) == [f"o.{f:04d}.exr" for f in range(1, 5)]


def test_cli_cluster_spec_and_scheduler_errors(tmp_path):
    src = write_sequence(tmp_path, range(1, 2))
    comp(tmp_path / "out", src).save(tmp_path / "g.json")
    res = CliRunner().invoke(app, ["render", str(tmp_path / "g.json"), "--cluster", "kube:3"])
    assert res.exit_code == 1 and "only 'local' or 'local:N'" in res.output
    res = CliRunner().invoke(app, ["render", str(tmp_path / "g.json"), "--cluster", "local:x"])
    assert res.exit_code == 1 and "N must be a number of workers" in res.output
    with pytest.raises(farm.FarmError, match="not both"):
        with farm.open_client("tcp://127.0.0.1:1", "local"):
            pass


def test_jobs_needing_a_resource_no_worker_has_are_refused(tmp_path, client):
    src = write_sequence(tmp_path, range(1, 3))
    with pytest.raises(farm.FarmError, match="GPU=1"):
        render(comp(tmp_path / "out", src), client=client, resources={"GPU": 1})


def test_killed_worker_loses_nothing(tmp_path, client):
    """SIGKILL one worker at the first finished frame: its frames are redone by the other (or its
    restarted self), every frame is written whole, nothing partial or temporary is left."""
    frames = range(1, 17)
    src = write_sequence(tmp_path, frames, size=(192, 128))
    local = render(comp(tmp_path / "local", src, blur=40), workers=1, frames="1-2")
    assert local.ok
    pids = client.run(os.getpid)
    victim = sorted(pids.values())[0]
    killed = []

    def on_progress(node, frame, path, error):
        if not killed:
            os.kill(victim, signal.SIGKILL)
            killed.append(frame)

    result = render(comp(tmp_path / "farm", src, blur=40), client=client, on_progress=on_progress)
    assert killed
    assert result.ok, result.failed
    assert sorted(f for _, f, _ in result.written) == list(frames)
    assert sorted(os.listdir(tmp_path / "farm")) == [f"o.{f:04d}.exr" for f in frames]  # no temp files left
    for f in (1, 2):
        np.testing.assert_array_equal(pixels(tmp_path / "farm" / f"o.{f:04d}.exr"),
                                      pixels(tmp_path / "local" / f"o.{f:04d}.exr"))
    for f in frames:
        assert pixels(tmp_path / "farm" / f"o.{f:04d}.exr").shape == (128, 192, 4)
    assert victim not in client.run(os.getpid).values()
