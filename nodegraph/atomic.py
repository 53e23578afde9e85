"""The one way nodegraph writes a file: temp file in the target folder, fsync, rename, fsync folder.

A render killed half-way, a full disk, or a writer that raises must never leave a partial file
where a later render (``--skip-existing``, the farm's frame checker, ``--resume``) would take it
for a finished one. Every output of nodegraph (frames, movies, graph documents, model files,
resume files, reports) goes through this module.

Temp files are named ``.<name>.tmp-<host>-<pid>-<random><suffix>`` next to the target: hidden,
keeping the extension (some writers pick the format from it), and saying who wrote them, so
``remove_stale_temps`` can later delete those left by a killed process while never touching one
that a live process (on this host, or recently on another host sharing the folder) is writing.

Files are created by the writer (or here with mode ``0o666``), so the process umask applies, as
for any other output: a model trained by one farm user stays readable by the render user.
"""

from __future__ import annotations

import contextlib
import errno
import os
import re
import secrets
import socket
import time
from collections.abc import Iterator
from pathlib import Path

from .errors import ImageIOError, NodeGraphError

#: A temp file whose writer is on another host is stale once unmodified for this long (seconds).
FOREIGN_STALE_AGE = 6 * 3600.0

_HOST = re.sub(r"[^A-Za-z0-9_]", "_", socket.gethostname() or "host")[:32]
_TEMP_RE = re.compile(r"^\.(?P<name>.+)\.tmp-(?P<host>[A-Za-z0-9_]+)-(?P<pid>\d+)-[0-9a-f]{8}(?P<suffix>\.[^.]*)?$")


def os_message(err: OSError) -> str:
    if err.errno in (errno.ENOSPC, errno.EDQUOT):
        return "disk full (no space left on the device or quota exceeded)"
    if err.errno == errno.EFBIG:
        return "file too large for the file system or the process's file-size limit"
    return err.strerror or str(err)


def temp_path_for(path: str | os.PathLike[str]) -> Path:
    """``dir/name.exr`` -> ``dir/.name.exr.tmp-<host>-<pid>-<rand>.exr`` (keeps the extension)."""
    p = Path(path)
    return p.with_name(f".{p.name}.tmp-{_HOST}-{os.getpid()}-{secrets.token_hex(4)}{p.suffix}")


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    except OSError:
        return True
    return True


def is_stale_temp(temp: str | os.PathLike[str], *, now: float | None = None) -> bool:
    """True for a temp file of ours whose writer is gone.

    On this host: its process no longer exists. From another host (a shared folder): it has not
    been modified for ``FOREIGN_STALE_AGE`` seconds. A live writer's file is never stale.
    """
    p = Path(temp)
    m = _TEMP_RE.match(p.name)
    if m is None:
        return False
    if m["host"] == _HOST:
        pid = int(m["pid"])
        return pid != os.getpid() and not _pid_alive(pid)
    try:
        age = (time.time() if now is None else now) - p.stat().st_mtime
    except OSError:
        return False
    return age > FOREIGN_STALE_AGE


def remove_stale_temps(path: str | os.PathLike[str]) -> list[Path]:
    """Delete stale temp files left next to ``path`` by killed writers of ``path``; return them."""
    final = Path(path)
    removed: list[Path] = []
    prefix = f".{final.name}.tmp-"
    try:
        entries = list(os.scandir(final.parent if str(final.parent) else "."))
    except OSError:
        return removed
    for entry in entries:
        if not entry.name.startswith(prefix):
            continue
        m = _TEMP_RE.match(entry.name)
        if m is None or m["name"] != final.name:
            continue
        cand = final.parent / entry.name
        if is_stale_temp(cand):
            with contextlib.suppress(OSError):
                cand.unlink()
                removed.append(cand)
    return removed


def fsync_path(path: str | os.PathLike[str]) -> None:
    """Flush a finished file's data to the device (errors such as a deferred ENOSPC surface here)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def fsync_dir(folder: str | os.PathLike[str]) -> None:
    """Make a rename in ``folder`` durable, where the platform allows opening a folder."""
    try:
        fd = os.open(folder, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass  # some file systems (and Windows) cannot fsync a directory
    finally:
        os.close(fd)


@contextlib.contextmanager
def atomic_output(path: str | os.PathLike[str], *, create_directories: bool = False,
                  error: type[NodeGraphError] | None = None) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; publish it at ``path`` only if the block succeeds.

    The block writes the temp file (any writer, by path). Then it is fsynced, renamed over
    ``path`` and the folder fsynced. On any exception (KeyboardInterrupt included) the temp
    file is removed, an existing file at ``path`` is left untouched, and ``OSError`` becomes
    ``error`` (default ``ImageIOError``) naming the file. Stale temps of killed writers of the
    same ``path`` are removed first.
    """
    error = error or ImageIOError
    final = Path(path)
    try:
        if create_directories:
            final.parent.mkdir(parents=True, exist_ok=True)
        is_dir = final.parent.is_dir()
    except OSError as err:  # a name too long, a loop of links...
        raise error(f"cannot use output directory {str(final.parent)!r}: {os_message(err)}",
                    path=str(final)) from None
    if not is_dir:
        raise error(f"output directory {str(final.parent)!r} does not exist", path=str(final))
    remove_stale_temps(final)
    tmp = temp_path_for(final)
    try:
        yield tmp
        if not tmp.exists():
            raise error("the writer produced no file", path=str(final))
        fsync_path(tmp)
        os.replace(tmp, final)
    except BaseException as exc:
        with contextlib.suppress(OSError):
            tmp.unlink()
        if isinstance(exc, OSError):
            raise error(f"cannot write file: {os_message(exc)}", path=str(final)) from exc
        raise
    fsync_dir(final.parent)


def write_bytes_to(fd: int, data: bytes | bytearray | memoryview) -> None:
    """``write`` all of ``data`` to ``fd``, checking every call (short writes retried)."""
    view = memoryview(data)
    while view:
        n = os.write(fd, view)
        if n <= 0:
            raise OSError(errno.EIO, "write returned 0 bytes")
        view = view[n:]


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes | bytearray | memoryview, *,
                       create_directories: bool = False,
                       error: type[NodeGraphError] | None = None) -> Path:
    """Write ``data`` to ``path`` atomically and durably; return ``path``."""
    with atomic_output(path, create_directories=create_directories, error=error) as tmp:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), 0o666)
        try:
            write_bytes_to(fd, data)
        finally:
            os.close(fd)
    return Path(path)


def atomic_copy(src: str | os.PathLike[str], dst: str | os.PathLike[str], *,
                error: type[NodeGraphError] | None = None) -> Path:
    """Copy the file ``src`` to ``dst`` atomically and durably (``dst`` is whole or untouched)."""
    import shutil

    with atomic_output(dst, error=error) as tmp:
        shutil.copyfile(src, tmp)
    return Path(dst)


def atomic_write_text(path: str | os.PathLike[str], text: str, *, encoding: str = "utf-8",
                      create_directories: bool = False, error: type[NodeGraphError] | None = None) -> Path:
    """Write ``text`` to ``path`` atomically and durably; return ``path``."""
    return atomic_write_bytes(path, text.encode(encoding), create_directories=create_directories, error=error)
