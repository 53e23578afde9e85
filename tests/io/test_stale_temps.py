"""Temp files of killed writers: the next write of the same output removes them, never one that a
live writer owns. Covers every image writer (EXR, OIIO stills, movies) and a real kill -9."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

import nodegraph as ng
from nodegraph import channels as chans
from nodegraph.atomic import is_stale_temp, temp_path_for
from nodegraph.image import Box, Format, Image
from nodegraph.io import MovieWriter, write_image


def small() -> Image:
    return Image(torch.rand((3, 32, 48)), chans.RGB, Box(0, 0, 48, 32), Format.of_size(48, 32))


def _dead_pid() -> int:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def _temp_of(target: Path, pid: int) -> Path:
    """A temp file named as the writer with ``pid`` on this host would name it."""
    mine = temp_path_for(target)
    return mine.with_name(mine.name.replace(f"-{os.getpid()}-", f"-{pid}-"))


@pytest.fixture()
def live_pid():
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
    yield child.pid
    child.kill()
    child.wait()


def _write(path: Path) -> None:
    if path.suffix in (".mov", ".mp4"):
        with MovieWriter(path, 24) as w:
            w.write(small())
    else:
        write_image(path, small())


@pytest.mark.parametrize("ext", ["exr", "png", "jpg", "tif", "dpx", "mov", "mp4"])
def test_write_removes_dead_writers_temps_and_keeps_live_ones(tmp_path, live_pid, ext):
    target = tmp_path / f"out.0001.{ext}"
    dead = _temp_of(target, _dead_pid())
    live = _temp_of(target, live_pid)
    other = _temp_of(tmp_path / f"other.0001.{ext}", _dead_pid())  # another output's: not ours to judge
    for p in (dead, live, other):
        p.write_bytes(b"partial")
    assert is_stale_temp(dead) and not is_stale_temp(live)
    _write(target)
    assert target.exists() and not dead.exists()
    assert live.read_bytes() == b"partial" and other.exists()


_KILLED_WRITER = textwrap.dedent("""
    import sys, time, torch
    from nodegraph import channels as chans
    from nodegraph.image import Box, Format, Image
    from nodegraph.io import MovieWriter
    img = Image(torch.rand((3, 64, 64)), chans.RGB, Box(0, 0, 64, 64), Format.of_size(64, 64))
    w = MovieWriter(sys.argv[1], 24)
    for _ in range(30):
        w.write(img)
    print("writing", flush=True)
    time.sleep(120)  # killed here, mid-movie
""")


def test_kill_9_mid_movie_then_next_render_cleans_up(tmp_path):
    target = tmp_path / "shot.mov"
    proc = subprocess.Popen([sys.executable, "-c", _KILLED_WRITER, str(target)], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "writing"
        temps = [p for p in tmp_path.iterdir() if p.name.startswith(".shot.mov.tmp-")]
        assert len(temps) == 1 and temps[0].stat().st_size > 0
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    assert temps[0].exists()  # kill -9 left it behind
    g = ng.Graph()
    g.add("Write", input=g.add("Constant", color=[0.1, 0.2, 0.3, 1.0]), file=str(target), name="W")
    from nodegraph.render import render

    result = render(g, frames=[1, 2])
    assert not result.failed
    assert sorted(p.name for p in tmp_path.iterdir()) == ["shot.mov"]


def test_cli_render_removes_a_killed_renders_frame_temp(tmp_path):
    """A frame's temp left by a killed render (its pid gone) goes away when a later CLI render
    writes that frame; the half-written bytes are never published."""
    graph = tmp_path / "g.json"
    g = ng.Graph()
    g.add("Write", input=g.add("Constant", color=[0.1, 0.2, 0.3, 1.0]), file=str(tmp_path / "o.####.exr"), name="W")
    g.save(graph)
    # a temp a killed render left (its pid is gone), as atomic_output names it
    stale = _temp_of(tmp_path / "o.0002.exr", _dead_pid())
    stale.write_bytes(b"\x76\x2f\x31\x01half a frame")
    proc = subprocess.run([sys.executable, "-m", "nodegraph.cli", "render", str(graph), "--frames", "1-3"],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["g.json", "o.0001.exr", "o.0002.exr", "o.0003.exr"]
