"""Atomic file output: write to a temporary sibling, rename over the target only on success.

A render killed half-way, or a writer that raises, must never leave a partial frame where a
later render (or the farm's frame checker) would take it for a finished one.
"""

from __future__ import annotations

import contextlib
import os
import secrets
from collections.abc import Iterator
from pathlib import Path

from nodegraph.errors import ImageIOError


def temp_path_for(path: str | os.PathLike[str]) -> Path:
    """``dir/name.exr`` -> ``dir/.name.exr.tmp-<pid>-<rand>.exr`` (keeps the extension)."""
    p = Path(path)
    return p.with_name(f".{p.name}.tmp-{os.getpid()}-{secrets.token_hex(4)}{p.suffix}")


@contextlib.contextmanager
def atomic_output(path: str | os.PathLike[str], *, create_directories: bool = False) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; ``os.replace`` it onto ``path`` if the block succeeds.

    On any exception (including KeyboardInterrupt) the temporary file is removed and the
    exception propagates; an existing file at ``path`` is left untouched.
    """
    final = Path(path)
    if create_directories:
        final.parent.mkdir(parents=True, exist_ok=True)
    elif not final.parent.is_dir():
        raise ImageIOError(f"output directory {str(final.parent)!r} does not exist", path=str(final))
    tmp = temp_path_for(final)
    try:
        yield tmp
        if not tmp.exists():
            raise ImageIOError("the writer produced no file", path=str(final))
        os.replace(tmp, final)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise
