"""Writers on a full disk (or any failed write): a typed ImageIOError naming the file, no final
file, no temp file, the process alive, later frames still tried, nothing `--skip-existing` could
mistake for a finished frame.

Three ways to make writes fail: a real small tmpfs (mounted in a private mount namespace;
skipped where that is not permitted), the kernel's file-size limit (``RLIMIT_FSIZE`` with
SIGXFSZ ignored: real EFBIG inside the C libraries, no privileges needed), and monkeypatched
failures of the copy and fsync steps.
"""

from __future__ import annotations

import errno
import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import OpenImageIO as oiio
import pytest
import torch

import nodegraph as ng
from nodegraph import atomic as engine_atomic
from nodegraph import channels as chans
from nodegraph.errors import ImageIOError
from nodegraph.image import Box, Format, Image
from nodegraph.io import MovieWriter, atomic as io_atomic, read_image, write_image
from nodegraph.io.exr import write_exr
from nodegraph.io.stills import MEMORY_FORMATS, write_still

STILLS = ["dpx", "jpg", "png", "tif", "exr"]


def noise(w: int = 256, h: int = 256, seed: int = 3) -> Image:
    """Incompressible pixels, so every format's file is about as large as its raw samples."""
    g = torch.Generator().manual_seed(seed)
    return Image(torch.rand((3, h, w), generator=g), chans.RGB, Box(0, 0, w, h), Format.of_size(w, h))


def listing(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


# --- memory files: the encoders write exactly what they write to disk ---------------------------
_EXT_OF = {"png": "png", "jpeg": "jpg", "tiff": "tif", "dpx": "dpx", "bmp": "bmp", "targa": "tga",
           "openexr": "exr", "sgi": "sgi", "hdr": "hdr", "pnm": "ppm", "webp": "webp", "jpegxl": "jxl",
           "gif": "gif", "fits": "fits", "iff": "iff", "rla": "rla"}


@pytest.mark.skipif(not io_atomic.memory_files_available(), reason="no memory files (memfd) on this platform")
@pytest.mark.parametrize("fmt", sorted(MEMORY_FORMATS))
def test_memory_encoding_is_byte_identical_to_disk_encoding(tmp_path, monkeypatch, fmt):
    ext = _EXT_OF[fmt]
    image = noise(40, 24)
    if fmt in {"hdr", "jpeg", "pnm", "gif"}:
        image = image.select(chans.RGB)
    meta = {"DateTime": "2026:01:01 00:00:00"}  # DPX stamps the time of writing otherwise
    (tmp_path / "mem").mkdir()
    (tmp_path / "disk").mkdir()
    write_still(tmp_path / "mem" / f"x.{ext}", image, metadata=meta)
    monkeypatch.setattr(io_atomic, "memory_files_available", lambda: False)
    write_still(tmp_path / "disk" / f"x.{ext}", image, metadata=meta)
    mem, disk = (tmp_path / "mem" / f"x.{ext}").read_bytes(), (tmp_path / "disk" / f"x.{ext}").read_bytes()
    assert len(mem) > 0 and mem == disk
    assert listing(tmp_path / "mem") == listing(tmp_path / "disk") == [f"x.{ext}"]
    if fmt == "dpx":  # the header names the file itself, not the temp or memory file it was encoded in
        assert mem[36:136].rstrip(b"\0") == b"x.dpx"


def test_exr_memory_encoding_is_byte_identical(tmp_path, monkeypatch):
    write_exr(tmp_path / "mem.exr", noise(40, 24))
    monkeypatch.setattr(io_atomic, "memory_files_available", lambda: False)
    write_exr(tmp_path / "disk.exr", noise(40, 24))
    assert (tmp_path / "mem.exr").read_bytes() == (tmp_path / "disk.exr").read_bytes()


@pytest.mark.parametrize("ext", STILLS)
def test_writes_fall_back_when_memory_files_are_refused(tmp_path, monkeypatch, ext):
    """A sandbox that forbids memfd_create (seccomp) still writes, straight to the temp file."""
    def refused(*a, **k):
        raise PermissionError(errno.EPERM, "Operation not permitted")

    monkeypatch.setattr(os, "memfd_create", refused, raising=False)
    write_image(tmp_path / f"x.{ext}", noise(32, 16))
    assert read_image(tmp_path / f"x.{ext}").pixels.shape == (3, 16, 32)
    assert listing(tmp_path) == [f"x.{ext}"]


# --- monkeypatched failures of the steps Python performs ---------------------------------------
def _write(path: Path, image: Image) -> None:
    if path.suffix == ".mov":
        with MovieWriter(path, 24) as w:
            w.write(image)
            w.write(image)
    else:
        write_image(path, image)


@pytest.mark.skipif(not io_atomic.memory_files_available(), reason="no memory files (memfd) on this platform")
@pytest.mark.parametrize("ext", STILLS)
def test_copy_to_disk_fails_half_way(tmp_path, monkeypatch, ext):
    """The disk fills while the encoded bytes are copied: nothing is published, no temp is left."""
    def half_then_full(fd, data):
        os.write(fd, bytes(memoryview(data)[: len(data) // 2]))
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(io_atomic, "write_bytes_to", half_then_full)
    path = tmp_path / f"out.{ext}"
    with pytest.raises(ImageIOError, match="disk full") as err:
        write_image(path, noise())
    assert str(path) in str(err.value)
    assert listing(tmp_path) == []


@pytest.mark.parametrize("ext", STILLS + ["mov"])
def test_deferred_error_at_fsync(tmp_path, monkeypatch, ext):
    """Network file systems may report a full disk only at fsync: still an error, nothing published."""
    def fail(path):
        raise OSError(errno.EDQUOT, "Disk quota exceeded")

    monkeypatch.setattr(engine_atomic, "fsync_path", fail)
    path = tmp_path / f"out.{ext}"
    with pytest.raises(ImageIOError, match="disk full") as err:
        _write(path, noise(64, 64))
    assert str(path) in str(err.value)
    assert listing(tmp_path) == []


def test_movie_mux_failure_removes_temp_at_once(tmp_path, monkeypatch):
    """A failed frame aborts the movie: the temp file goes away without waiting for close()."""
    w = MovieWriter(tmp_path / "m.mov", 24)
    w.write(noise(64, 64))
    assert len(listing(tmp_path)) == 1  # the temp file

    class FullDisk:  # PyAV's container is an extension type: wrap it to fail its writes
        def __init__(self, container):
            self.container = container

        def mux(self, packet):
            raise OSError(errno.ENOSPC, "No space left on device")

        def __getattr__(self, name):
            return getattr(self.container, name)

    w.container = FullDisk(w.container)
    with pytest.raises(ImageIOError, match="disk full"):
        for _ in range(30):  # the encoder buffers a few frames before the first packet
            w.write(noise(64, 64))
    assert listing(tmp_path) == []
    w.close()  # a no-op after the abort
    assert listing(tmp_path) == []


# --- the kernel's file-size limit: real EFBIG inside the C libraries ---------------------------
_FSIZE_SCRIPT = textwrap.dedent("""
    import json, os, resource, signal, sys
    import torch
    from nodegraph import channels as chans
    from nodegraph.errors import ImageIOError
    from nodegraph.image import Box, Format, Image
    from nodegraph.io import MovieWriter, write_image
    from nodegraph.io import atomic as io_atomic
    folder, memory = sys.argv[1], sys.argv[2] == "1"
    if not memory:
        io_atomic.memory_files_available = lambda: False
    g = torch.Generator().manual_seed(1)
    img = Image(torch.rand((3, 256, 256), generator=g), chans.RGB, Box(0, 0, 256, 256), Format.of_size(256, 256))
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (32 * 1024, resource.getrlimit(resource.RLIMIT_FSIZE)[1]))
    results = {}
    for ext in ["dpx", "jpg", "png", "tif", "exr", "mov", "mp4"]:
        path = os.path.join(folder, "out." + ext)
        try:
            if ext in ("mov", "mp4"):
                with MovieWriter(path, 24) as w:
                    for i in range(3):
                        w.write(img)
            else:
                write_image(path, img)
            results[ext] = "written"
        except ImageIOError as err:
            results[ext] = "ImageIOError: " + str(err)
        results[ext + ":left"] = sorted(os.listdir(folder))
    print(json.dumps(results))
""")


@pytest.mark.skipif(sys.platform == "win32", reason="RLIMIT_FSIZE is POSIX")
@pytest.mark.parametrize("memory", [True, False], ids=["memory-files", "direct-to-disk"])
def test_file_size_limit_inside_the_libraries(tmp_path, memory):
    if memory and not io_atomic.memory_files_available():
        pytest.skip("no memory files (memfd) on this platform")
    out = tmp_path / "out"
    out.mkdir()
    proc = subprocess.run([sys.executable, "-c", _FSIZE_SCRIPT, str(out), "1" if memory else "0"],
                          capture_output=True, text=True, timeout=240)
    assert proc.returncode == 0, proc.stderr[-3000:]  # libjpeg did not end the process
    results = json.loads(proc.stdout.strip().splitlines()[-1])
    for ext in ["dpx", "jpg", "png", "tif", "exr", "mov", "mp4"]:
        assert results[ext].startswith("ImageIOError: "), (ext, results[ext])
        assert str(out / f"out.{ext}") in results[ext]
        assert results[f"{ext}:left"] == [], (ext, results[f"{ext}:left"])
    assert "file-size limit" in results["jpg"]  # refused before libjpeg could end the process


_CUT_SCRIPT = textwrap.dedent("""
    import json, os, resource, signal, sys
    import torch
    from nodegraph import channels as chans
    from nodegraph.errors import ImageIOError
    from nodegraph.image import Box, Format, Image
    from nodegraph.io import write_image
    ref, out = sys.argv[1], sys.argv[2]
    g = torch.Generator().manual_seed(1)
    img = Image(torch.rand((3, 128, 128), generator=g), chans.RGB, Box(0, 0, 128, 128), Format.of_size(128, 128))
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    hard = resource.getrlimit(resource.RLIMIT_FSIZE)[1]
    results = {}
    for ext in ["png", "tif", "dpx", "exr"]:
        write_image(os.path.join(ref, "ref." + ext), img)
        size = os.path.getsize(os.path.join(ref, "ref." + ext))
        resource.setrlimit(resource.RLIMIT_FSIZE, (size - 100, hard))  # only the last bytes fail
        try:
            write_image(os.path.join(out, "out." + ext), img)
            results[ext] = "written"
        except ImageIOError as err:
            results[ext] = "ImageIOError: " + str(err)
        resource.setrlimit(resource.RLIMIT_FSIZE, (hard, hard))
    results["left"] = sorted(os.listdir(out))
    print(json.dumps(results))
""")


@pytest.mark.skipif(sys.platform == "win32", reason="RLIMIT_FSIZE is POSIX")
def test_file_size_limit_cutting_only_the_last_bytes(tmp_path):
    """libpng drops the error of its last flush (close() reports success): a file that reached
    the limit is refused, never published short."""
    (tmp_path / "ref").mkdir()
    (tmp_path / "out").mkdir()
    proc = subprocess.run([sys.executable, "-c", _CUT_SCRIPT, str(tmp_path / "ref"), str(tmp_path / "out")],
                          capture_output=True, text=True, timeout=240)
    assert proc.returncode == 0, proc.stderr[-3000:]
    results = json.loads(proc.stdout.strip().splitlines()[-1])
    for ext in ["png", "tif", "dpx", "exr"]:
        assert results[ext].startswith("ImageIOError: "), (ext, results[ext])
    assert results["left"] == []


# --- a real full file system -------------------------------------------------------------------
_TMPFS_SCRIPT = textwrap.dedent("""
    import json, os, subprocess, sys
    mnt, graph = sys.argv[1], sys.argv[2]
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", mnt], capture_output=True, text=True)
    if r.returncode:
        print(json.dumps({"skip": "cannot mount a tmpfs: " + (r.stderr.strip() or "mount failed")}))
        sys.exit(0)
    cli = [sys.executable, "-m", "nodegraph.cli", "render", graph, "--frames", "1-3"]
    out = {}
    r1 = subprocess.run(cli, capture_output=True, text=True, timeout=300)
    out["first"] = {"rc": r1.returncode, "text": r1.stdout + r1.stderr, "files": sorted(os.listdir(mnt))}
    subprocess.run(["mount", "-o", "remount,size=32m", mnt], check=True)
    r2 = subprocess.run(cli + ["--skip-existing"], capture_output=True, text=True, timeout=300)
    from nodegraph.io import read_image
    sizes = {}
    for name in sorted(os.listdir(mnt)):
        img = read_image(os.path.join(mnt, name))
        sizes[name] = list(img.pixels.shape)
    out["second"] = {"rc": r2.returncode, "text": r2.stdout + r2.stderr, "shapes": sizes}
    print(json.dumps(out))
""")


def _namespace_command() -> list[str] | None:
    if sys.platform != "linux" or shutil.which("unshare") is None:
        return None
    if os.geteuid() == 0:
        return ["unshare", "--mount", "--propagation", "private"]
    return ["unshare", "--user", "--map-root-user", "--mount"]


def test_render_onto_a_full_tmpfs(tmp_path):
    """DPX, JPEG, PNG, TIFF, EXR and a movie rendered onto a 64 KiB tmpfs, three frames each."""
    cmd = _namespace_command()
    if cmd is None:
        pytest.skip("needs Linux and unshare(1) to mount a private tmpfs")
    check = subprocess.run(cmd + ["true"], capture_output=True, text=True)
    if check.returncode:
        pytest.skip(f"cannot create a mount namespace here: {check.stderr.strip()[:200]}")
    write_image(tmp_path / "noise.exr", noise(), datatype="float")
    mnt = tmp_path / "full"
    mnt.mkdir()
    g = ng.Graph()
    r = g.add("Read", file=str(tmp_path / "noise.exr"), first=1, last=3)
    names = {ext: f"W_{ext}" for ext in STILLS + ["mov"]}
    for ext, name in names.items():
        pattern = "m.mov" if ext == "mov" else f"f.####.{ext}"
        g.add("Write", input=r, file=str(mnt / pattern), name=name, raw=True)
    g.save(tmp_path / "graph.json")
    proc = subprocess.run(cmd + [sys.executable, "-c", _TMPFS_SCRIPT, str(mnt), str(tmp_path / "graph.json")],
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    if "skip" in result:
        pytest.skip(result["skip"])
    first = result["first"]
    assert first["rc"] == 1, first["text"][-3000:]  # a normal failed render: summary, no crash
    assert "0 frame(s) written" in first["text"] and "18 failed" in first["text"], first["text"][-3000:]
    for ext, name in names.items():
        for f in (1, 2, 3):  # every frame of every Write was tried and named
            assert f"{name} frame {f}:" in first["text"], (name, f)
    assert first["text"].count("disk full") >= 16, first["text"][-3000:]
    assert first["files"] == []  # no final file, no temp file
    second = result["second"]  # room again: --skip-existing skips nothing, renders every frame
    assert second["rc"] == 0, second["text"][-3000:]
    assert "18 frame(s) written, 0 skipped" in second["text"], second["text"][-3000:]
    expected = {f"f.{f:04d}.{ext}" for ext in STILLS for f in (1, 2, 3)} | {"m.mov"}
    assert set(second["shapes"]) == expected
    assert all(shape[1:] == [256, 256] for shape in second["shapes"].values())


def test_skip_existing_never_sees_a_failed_frame(tmp_path, monkeypatch):
    """After a failed write nothing exists at the frame's path, so a resumed render redoes it."""
    from nodegraph.render import render

    g = ng.Graph()
    src = g.add("Constant", color=[0.2, 0.3, 0.4, 1.0])
    g.add("Write", input=src, file=str(tmp_path / "o.####.dpx"), name="W")
    real = io_atomic.write_bytes_to
    calls = {"n": 0}

    def flaky(fd, data):
        calls["n"] += 1
        if calls["n"] == 2:  # frame 2 hits a full disk half way through the copy
            os.write(fd, bytes(memoryview(data)[:100]))
            raise OSError(errno.ENOSPC, "No space left on device")
        real(fd, data)

    monkeypatch.setattr(io_atomic, "write_bytes_to", flaky)
    if not io_atomic.memory_files_available():
        pytest.skip("no memory files (memfd) on this platform")
    first = render(g, frames=[1, 2, 3])
    assert sorted(first.failed) == [("W", 2)] and "disk full" in first.failed[("W", 2)]
    assert listing(tmp_path) == ["o.0001.dpx", "o.0003.dpx"]
    again = render(g, frames=[1, 2, 3], skip_existing=True)
    assert sorted(f for _, f, _ in again.skipped) == [1, 3] and [f for _, f, _ in again.written] == [2]
    assert read_image(tmp_path / "o.0002.dpx").pixels.shape[0] == 3


def test_oiio_errors_reported_with_success_are_failures(tmp_path, monkeypatch):
    """libpng reports short writes only as error text while write_image returns True."""
    class FakeOutput:
        def __init__(self, real):
            self.real, self.pending = real, ""

        def open(self, *a):
            return self.real.open(*a)

        def write_image(self, arr):
            self.real.write_image(arr)
            self.pending = "Write error at position 100, could only write 3/8192 bytes"
            return True

        def geterror(self):
            text, self.pending = self.pending, ""
            return text

        def close(self):
            return self.real.close()

        def __getattr__(self, name):
            return getattr(self.real, name)

    real_create = oiio.ImageOutput.create
    monkeypatch.setattr(oiio.ImageOutput, "create", staticmethod(lambda *a: FakeOutput(real_create(*a))))
    with pytest.raises(ImageIOError, match="could only write"):
        write_still(tmp_path / "x.png", noise(16, 16))
    assert listing(tmp_path) == []
