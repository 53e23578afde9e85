"""Checks made before a file is decoded: that it can be opened (with the true reason when it
cannot), and that the memory its header declares fits the image size limit.

The limit stops decompression bombs (a 3.5 MB PNG that declares 30000x30000 pixels) before a
decoder allocates anything. It is, in order of precedence: :func:`set_max_image_bytes`, the
environment variable ``NODEGRAPH_MAX_IMAGE_BYTES`` (bytes, or with a K/M/G/T suffix), or half the
memory available when the file is opened (``MemAvailable``, and the cgroup's limit where lower).
"""

from __future__ import annotations

import errno
import os
import re
import stat

from nodegraph.errors import ImageIOError, MissingFrameError

from .atomic import os_message

ENV_MAX_IMAGE_BYTES = "NODEGRAPH_MAX_IMAGE_BYTES"
_MIN_DEFAULT = 256 << 20
_override: int | None = None
_UNITS = {"": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}


def set_max_image_bytes(limit: int | None) -> None:
    """Set the largest decode (bytes) any reader may attempt; ``None`` restores the default."""
    global _override
    if limit is not None and (isinstance(limit, bool) or int(limit) <= 0):
        raise ValueError(f"max image bytes must be a positive integer, not {limit!r}")
    _override = None if limit is None else int(limit)


def parse_size(text: str) -> int:
    """``"2000000"``, ``"8G"``, ``"512MiB"`` -> bytes."""
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([KMGT]?)(?:I?B)?\s*", str(text), re.IGNORECASE)
    if m is None or float(m[1]) <= 0:
        raise ValueError(f"not a size in bytes: {str(text)[:40]!r} (examples: 8000000000, 8G, 512M)")
    return int(float(m[1]) * _UNITS[m[2].upper()])


def _read_int(path: str) -> int | None:
    try:
        with open(path) as f:
            text = f.read().split()[0]
    except (OSError, IndexError):
        return None
    return int(text) if text.isdigit() else None


def available_memory() -> int:
    """Bytes of memory this process could still get (best effort, at least 1 GiB when unknown)."""
    avail = None
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    avail = int(line.split()[1]) * 1024
                    break
    except (OSError, ValueError, IndexError):
        pass
    if avail is None:
        try:
            avail = os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
        except (ValueError, OSError, AttributeError):
            avail = 1 << 30
    cg_max, cg_now = _read_int("/sys/fs/cgroup/memory.max"), _read_int("/sys/fs/cgroup/memory.current")
    if cg_max is not None and cg_now is not None:
        avail = min(avail, max(0, cg_max - cg_now))
    return avail


def max_image_bytes() -> tuple[int, str]:
    """The current limit and where it comes from (for messages)."""
    if _override is not None:
        return _override, "set by nodegraph.io.set_max_image_bytes()"
    env = os.environ.get(ENV_MAX_IMAGE_BYTES)
    if env:
        try:
            return parse_size(env), f"set by {ENV_MAX_IMAGE_BYTES}"
        except ValueError as err:
            raise ImageIOError(f"{ENV_MAX_IMAGE_BYTES}: {err}") from None
    return max(_MIN_DEFAULT, available_memory() // 2), "half the available memory"


def human(n: int) -> str:
    for unit, size in (("TiB", 1 << 40), ("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if n >= size:
            return f"{n / size:.1f} {unit}"
    return f"{n} bytes"


def check_decode_size(path: str, needed: int, declared: str) -> None:
    """Raise before decoding when ``needed`` bytes exceed the limit; ``declared`` says what the
    header claims (``"30000x30000 pixels, 3 channels"``)."""
    limit, source = max_image_bytes()
    if needed > limit:
        raise ImageIOError(
            f"image too large to decode: the file declares {declared}, which needs {human(needed)} of memory; "
            f"the limit is {human(limit)} ({source}). If the file is trusted, raise the limit with "
            f"{ENV_MAX_IMAGE_BYTES}=<bytes> (e.g. 64G) or nodegraph.io.set_max_image_bytes()", path=path)


def os_reason(path: str, err: OSError) -> str:
    """What is true about ``path`` that ``err`` (from opening or listing it) means, in words."""
    if err.errno == errno.ENOENT and os.path.islink(path):
        try:
            target = os.readlink(path)
        except OSError:
            target = "?"
        return f"symbolic link to {target[:200]!r}, which does not exist"
    return {errno.ENOENT: "does not exist", errno.ELOOP: "symbolic link loop (too many levels of symbolic links)",
            errno.EACCES: "permission denied", errno.EPERM: "permission denied",
            errno.ENOTDIR: "a folder in the path is a file", errno.EISDIR: "is a directory",
            errno.ENAMETOOLONG: "file name too long"}.get(err.errno) or f"cannot open: {os_message(err)}"


def open_error(path: str, err: OSError) -> ImageIOError:
    """The error for a file that cannot be opened: ``MissingFrameError`` when absent."""
    reason = os_reason(path, err)
    if err.errno == errno.ENOENT:
        return MissingFrameError("file does not exist" if reason == "does not exist" else reason, path=path)
    return ImageIOError(reason, path=path)


def check_readable(path: str, kind: str = "image") -> None:
    """Raise the true reason a file cannot be read: missing, symlink loop, permission, folder, empty."""
    try:
        st = os.stat(path)
        if stat.S_ISDIR(st.st_mode):
            raise ImageIOError(f"is a directory, not {'a movie' if kind == 'movie' else 'an image'} file", path=path)
        if not stat.S_ISREG(st.st_mode):
            raise ImageIOError("not a regular file (a pipe, socket or device)", path=path)
        os.close(os.open(path, os.O_RDONLY | getattr(os, "O_BINARY", 0) | getattr(os, "O_NONBLOCK", 0)))
    except OSError as err:
        raise open_error(path, err) from None
    if st.st_size == 0:
        raise ImageIOError("file is empty", path=path)
