"""The one atomic-write helper: publish on success only, umask honoured, stale temps of dead writers removed."""

from __future__ import annotations

import errno
import os
import stat
import subprocess
import sys
import time

import pytest

from nodegraph import ImageIOError, atomic
from nodegraph.errors import DocumentError


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_write_bytes_publishes_and_leaves_no_temp(tmp_path):
    target = tmp_path / "out.bin"
    atomic.atomic_write_bytes(target, b"abc" * 1000)
    assert target.read_bytes() == b"abc" * 1000
    assert sorted(os.listdir(tmp_path)) == ["out.bin"]


def test_files_honour_umask(tmp_path):
    old = os.umask(0o022)
    try:
        atomic.atomic_write_text(tmp_path / "a.json", "{}")
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "a.json").stat().st_mode) == 0o644


def test_os_error_becomes_typed_error_and_keeps_old_file(tmp_path, monkeypatch):
    target = tmp_path / "graph.json"
    target.write_text("old")

    def full(fd, data):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(atomic.os, "write", full)
    with pytest.raises(DocumentError) as info:
        atomic.atomic_write_text(target, "new", error=DocumentError)
    assert "disk full" in str(info.value) and "graph.json" in str(info.value)
    assert target.read_text() == "old"
    assert sorted(os.listdir(tmp_path)) == ["graph.json"]


def test_default_error_is_image_io_error(tmp_path):
    with pytest.raises(ImageIOError, match="does not exist"):
        atomic.atomic_write_bytes(tmp_path / "missing" / "x.exr", b"")


def test_stale_temp_of_dead_local_writer_is_removed(tmp_path):
    target = tmp_path / "frame.0001.exr"
    dead = tmp_path / f".frame.0001.exr.tmp-{atomic._HOST}-{_dead_pid()}-0123abcd.exr"
    live = tmp_path / f".frame.0001.exr.tmp-{atomic._HOST}-{os.getpid()}-89abcdef.exr"
    other = tmp_path / f".frame.0002.exr.tmp-{atomic._HOST}-{_dead_pid()}-0123abcd.exr"
    for p in (dead, live, other):
        p.write_bytes(b"partial")
    atomic.atomic_write_bytes(target, b"done")
    assert not dead.exists()
    assert live.exists(), "a live writer's temp must never be removed"
    assert other.exists(), "only temps of the same output are touched"


def test_foreign_host_temp_removed_only_when_old(tmp_path):
    target = tmp_path / "model.cat"
    fresh = tmp_path / ".model.cat.tmp-otherhost-1234-0123abcd.cat"
    old = tmp_path / ".model.cat.tmp-otherhost-1235-0123abcd.cat"
    for p in (fresh, old):
        p.write_bytes(b"partial")
    past = time.time() - atomic.FOREIGN_STALE_AGE - 60
    os.utime(old, (past, past))
    assert atomic.remove_stale_temps(target) == [old]
    assert fresh.exists() and not old.exists()


def test_temp_name_is_recognised():
    tmp = atomic.temp_path_for("/x/y/comp.0001.dpx")
    assert tmp.name.startswith(".comp.0001.dpx.tmp-") and tmp.suffix == ".dpx"
    assert atomic._TEMP_RE.match(tmp.name)["name"] == "comp.0001.dpx"
