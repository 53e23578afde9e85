"""Atomic file output for the image writers: the engine's one implementation (``nodegraph.atomic``),
plus :func:`memory_output` for encoders written in C that cannot be trusted with a full disk.

Why a memory sink: on a full disk libjpeg ends the whole process (its ``error_exit``), libpng and
OIIO's DPX writer report success for truncated files, libwebp loops. An encoder that writes into
an anonymous in-memory file (Linux ``memfd``, opened by the library as ``/proc/self/fd/N``)
cannot hit ENOSPC or a quota; the bytes are then copied into the target's temp file by Python,
checking every ``write`` and the final ``close``/``fsync``, and published by ``atomic_output``.
"""

from __future__ import annotations

import contextlib
import errno
import functools
import os
from collections.abc import Iterator
from pathlib import Path

from nodegraph.atomic import atomic_output, fsync_dir, fsync_path, remove_stale_temps, temp_path_for, write_bytes_to
from nodegraph.atomic import os_message  # one wording of OS errors everywhere
from nodegraph.errors import ImageIOError

__all__ = ["atomic_output", "remove_stale_temps", "temp_path_for", "fsync_path", "fsync_dir", "memory_output",
           "memory_files_available", "os_message", "copy_fd_to", "file_size_limit"]

_COPY_CHUNK = 8 << 20


@functools.lru_cache(maxsize=1)
def memory_files_available() -> bool:
    """Whether encoders can write into memory files: Linux ``memfd``, reopened by name through
    ``/proc/self/fd`` (tried once per process; sandboxes may forbid either)."""
    fd = _memory_file("probe")
    if fd is None:
        return False
    try:
        with open(f"/proc/self/fd/{fd}", "wb") as f:
            f.write(b"ok")
        return os.pread(fd, 2, 0) == b"ok"
    except OSError:
        return False
    finally:
        os.close(fd)


def _memory_file(name: str) -> int | None:
    if not hasattr(os, "memfd_create") or not os.path.isdir("/proc/self/fd"):
        return None
    try:
        return os.memfd_create(f"nodegraph-{name}"[:200], getattr(os, "MFD_CLOEXEC", 1))
    except OSError:  # ENOSYS, EPERM under seccomp, EMFILE
        return None


def file_size_limit() -> int | None:
    """The process's ``RLIMIT_FSIZE`` (``ulimit -f``) in bytes, or None when unlimited or unknown."""
    try:
        import resource
        limit = resource.getrlimit(resource.RLIMIT_FSIZE)[0]
    except (ImportError, OSError, ValueError):
        return None
    return None if limit == resource.RLIM_INFINITY else int(limit)


def _check_not_cut(path: str | os.PathLike[str], size: int) -> None:
    """A write that crosses ``RLIMIT_FSIZE`` is cut at exactly the limit, and some libraries drop
    that error (a C++ stream's last flush): a file that reached the limit may be incomplete."""
    limit = file_size_limit()
    if limit is not None and size >= limit:
        raise ImageIOError(f"cannot write file: it reached the process's file-size limit (ulimit -f) of {limit} "
                           "bytes", path=str(path))


def copy_fd_to(src: int, size: int, dst: int) -> None:
    """Copy ``size`` bytes of ``src`` (from offset 0) to ``dst``, every read and write checked."""
    offset = 0
    while offset < size:
        chunk = os.pread(src, min(_COPY_CHUNK, size - offset), offset)
        if not chunk:
            raise OSError(errno.EIO, "the encoded data ended early")
        write_bytes_to(dst, chunk)
        offset += len(chunk)


@contextlib.contextmanager
def memory_output(path: str | os.PathLike[str], *, create_directories: bool = False,
                  in_memory: bool = True) -> Iterator[str]:
    """Yield a file name for an encoder to write the whole file to; publish it at ``path`` atomically.

    With ``in_memory`` (and where memory files exist) the name is a memory file's, and the bytes
    reach disk only through checked writes; otherwise it is ``atomic_output``'s temp file. Either
    way an exception leaves nothing at ``path`` (nor a temp file) and ``OSError`` becomes an
    :class:`ImageIOError` naming ``path``; an encoder that produced no bytes is an error too.
    """
    fd = _memory_file(Path(path).name) if in_memory and memory_files_available() else None
    if fd is None:
        with atomic_output(path, create_directories=create_directories) as tmp:
            yield str(tmp)
            size = tmp.stat().st_size if tmp.exists() else -1
            if size == 0:
                raise ImageIOError("the encoder produced an empty file", path=str(path))
            _check_not_cut(path, size)
        return
    try:
        yield f"/proc/self/fd/{fd}"
        size = os.fstat(fd).st_size
        if size == 0:
            raise ImageIOError("the encoder produced no data", path=str(path))
        _check_not_cut(path, size)
        with atomic_output(path, create_directories=create_directories) as tmp:
            out = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), 0o666)
            try:
                copy_fd_to(fd, size, out)
            finally:
                os.close(out)
    finally:
        os.close(fd)
