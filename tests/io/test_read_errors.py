"""Read errors say what is true, naming the file: permission denied, symbolic link loop, dangling
link, not a regular file; for every reader (EXR, stills, movies), ``probe`` and sequences."""

from __future__ import annotations

import errno
import json
import os
import subprocess
import sys
import tempfile
import textwrap
import types
from pathlib import Path

import pytest
import torch

import nodegraph as ng
from nodegraph import channels as chans
from nodegraph.errors import ImageIOError, MissingFrameError
from nodegraph.image import Box, Format, Image
from nodegraph.io import MovieWriter, guard, movie, probe, read_image, sequence, write_image

EXTS = ["exr", "png", "jpg", "tif", "dpx", "mov", "mp4"]


@pytest.fixture(autouse=True)
def _close_movies():
    yield
    movie.close_all()


def make(path: Path) -> Path:
    img = Image(torch.rand((3, 8, 8)), chans.RGB, Box(0, 0, 8, 8), Format.of_size(8, 8))
    if path.suffix in (".mov", ".mp4"):
        with MovieWriter(path, 24) as w:
            w.write(img)
    else:
        write_image(path, img)
    return path


def _message(fn, path) -> ImageIOError:
    with pytest.raises(ImageIOError) as err:
        fn(path)
    assert str(path) in str(err.value)
    return err.value


@pytest.mark.parametrize("ext", EXTS)
@pytest.mark.parametrize("fn", [read_image, probe], ids=["read", "probe"])
def test_symlink_loop(tmp_path, ext, fn):
    a, b = tmp_path / f"a.{ext}", tmp_path / f"b.{ext}"
    a.symlink_to(b)
    b.symlink_to(a)
    err = _message(fn, a)
    assert "symbolic link loop" in str(err) and "does not exist" not in str(err)
    assert not isinstance(err, MissingFrameError)


@pytest.mark.parametrize("ext", EXTS)
def test_dangling_symlink_names_its_target(tmp_path, ext):
    link = tmp_path / f"link.{ext}"
    link.symlink_to(tmp_path / f"gone.{ext}")
    err = _message(read_image, link)
    assert isinstance(err, MissingFrameError) and f"symbolic link to '{tmp_path / f'gone.{ext}'}'" in str(err)


@pytest.mark.parametrize("ext", EXTS)
def test_fifo_is_not_an_image(tmp_path, ext):
    fifo = tmp_path / f"pipe.{ext}"
    os.mkfifo(fifo)
    assert "not a regular file" in str(_message(read_image, fifo))  # and no blocking open


@pytest.mark.parametrize("ext", EXTS)
@pytest.mark.parametrize("fn", [read_image, probe], ids=["read", "probe"])
def test_permission_denied_reported_as_such(tmp_path, monkeypatch, ext, fn):
    """Whatever the user (root reads anything), an EACCES from open is 'permission denied',
    never 'bad magic number' or 'corrupt'."""
    path = make(tmp_path / f"x.{ext}")
    real_open = os.open

    def denied(p, flags, *a):
        if str(p) == str(path):
            raise PermissionError(errno.EACCES, "Permission denied", str(p))
        return real_open(p, flags, *a)

    monkeypatch.setattr(guard, "os", types.SimpleNamespace(**{**vars(os), "open": denied}))
    err = _message(fn, path)
    assert str(err).endswith("permission denied"), str(err)


_AS_OTHER_USER = textwrap.dedent("""
    import json, os, sys
    import av  # imported before dropping privileges: the interpreter may live in root's home
    from nodegraph.errors import ImageIOError
    from nodegraph.io import probe, read_image
    if sys.argv[1] == "drop":
        os.setgroups([])
        os.setgid(65534)
        os.setuid(65534)
    out = {}
    for p in sys.argv[2:]:
        for name, fn in (("read", read_image), ("probe", probe)):
            try:
                fn(p)
                out[p + ":" + name] = "read"
            except ImageIOError as err:
                out[p + ":" + name] = str(err)
    print(json.dumps(out))
""")


def test_unreadable_files_for_real(tmp_path):
    """Files with mode 000, read by a user who is not their owner (as root: the child drops to
    'nobody'), through the real system calls of every reader."""
    folder = Path(tempfile.mkdtemp(prefix="ng-perm-", dir="/tmp" if os.path.isdir("/tmp") else None))
    try:
        os.chmod(folder, 0o755)
        paths = [make(folder / f"x.{ext}") for ext in EXTS]
        for p in paths:
            os.chmod(p, 0)
        root = os.geteuid() == 0
        if not root and os.access(paths[0], os.R_OK):
            pytest.skip("this user can read files with mode 000")
        proc = subprocess.run([sys.executable, "-c", _AS_OTHER_USER, "drop" if root else "stay", *map(str, paths)],
                              capture_output=True, text=True, timeout=120)
        if proc.returncode and "PermissionError" in proc.stderr and "setuid" in proc.stderr:
            pytest.skip("cannot drop to another user here")
        assert proc.returncode == 0, proc.stderr[-2000:]
        out = json.loads(proc.stdout.strip().splitlines()[-1])
        for p in paths:
            for name in ("read", "probe"):
                assert out[f"{p}:{name}"] == f"file {str(p)!r}: permission denied", out[f"{p}:{name}"]
    finally:
        for p in folder.iterdir():
            p.unlink()
        folder.rmdir()


def test_unlistable_sequence_folder_says_so(tmp_path, monkeypatch):
    pattern = str(tmp_path / "shot" / "plate.####.exr")

    def denied(folder):
        raise PermissionError(errno.EACCES, "Permission denied", folder)

    monkeypatch.setattr(sequence, "os", types.SimpleNamespace(**{**vars(os), "listdir": denied}))
    with pytest.raises(ImageIOError) as err:
        sequence.nearest_frame(pattern, 3)
    assert f"cannot list the sequence's folder '{tmp_path / 'shot'}': permission denied" in str(err.value)
    assert not isinstance(err.value, MissingFrameError)


def test_read_node_reports_the_loop(tmp_path):
    """Through the Read node the message keeps node, frame and the true reason."""
    a, b = tmp_path / "a.exr", tmp_path / "b.exr"
    a.symlink_to(b)
    b.symlink_to(a)
    g = ng.Graph()
    r = g.add("Read", file=str(a), name="Plate")
    with pytest.raises(ImageIOError) as err:
        g.evaluate(r, 1)
    assert "Plate" in str(err.value) and "symbolic link loop" in str(err.value) and str(a) in str(err.value)
