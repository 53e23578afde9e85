"""Frame sequence patterns and frame ranges, with Nuke's padding rules, through fileseq.

Padding follows Nuke: each ``#`` is one digit (``####`` = 4, ``#`` = unpadded), ``%04d`` is
printf style, and ``@`` (one digit each) and Houdini's ``$F4`` are accepted too. fileseq's
default style counts ``#`` as four digits, so padding is sized with ``PAD_STYLE_HASH1``. The
last token in the file name is the frame (tokens in directory names are not expanded).
A frame wider than the padding is written in full (``####`` with 12345 -> ``12345``), and
negative frames pad after the sign (``-005``), like printf.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable

import fileseq

from nodegraph.errors import ImageIOError, MissingFrameError, NodeGraphError

from .guard import os_reason

_PAD_STYLE = fileseq.PAD_STYLE_HASH1
# fileseq's parser wants the token right before the extension; Nuke allows it anywhere in the
# file name ("shot_####_v2.exr"), so the token is found here and fileseq sizes its padding.
_TOKEN = re.compile(r"#+|@+|%0?\d*d|\$F\d*")


def _parse(pattern: str) -> tuple[str, int, str] | None:
    """``(text before the frame, padding, text after)`` of the last token in the file name."""
    folder, name = os.path.split(str(pattern))
    matches = list(_TOKEN.finditer(name))
    if not matches:
        return None
    m = matches[-1]
    pad = int(fileseq.getPaddingNum(m.group(0), pad_style=_PAD_STYLE))
    return os.path.join(folder, name[: m.start()]), pad, name[m.end():]


def is_sequence(pattern: str | os.PathLike[str]) -> bool:
    """True when the file name holds a frame token (``####``, ``%04d``, ``@@``, ``$F4``)."""
    return _parse(str(pattern)) is not None


def padding(pattern: str | os.PathLike[str]) -> int:
    """Digits of padding of the frame token (``#`` -> 1, ``%04d`` -> 4); 0 for a single file."""
    parsed = _parse(str(pattern))
    return 0 if parsed is None else parsed[1]


def frame_path(pattern: str | os.PathLike[str], frame: int) -> str:
    """The file name of ``frame``; a pattern without a frame token is returned unchanged."""
    pattern = str(pattern)
    parsed = _parse(pattern)
    if parsed is None:
        return pattern
    head, pad, tail = parsed
    return f"{head}{int(frame):0{pad}d}{tail}"


def frames_on_disk(pattern: str | os.PathLike[str]) -> list[int]:
    """Sorted frames of ``pattern`` that exist, matching its padding exactly as Nuke would."""
    pattern = str(pattern)
    parsed = _parse(pattern)
    if parsed is None:
        return []
    head, _, tail = parsed
    folder, prefix = os.path.split(head)
    try:
        names = os.listdir(folder or ".")
    except OSError:
        return []
    rx = re.compile(re.escape(prefix) + r"(-?\d+)" + re.escape(tail) + r"\Z")
    frames = set()
    for name in names:
        m = rx.match(name)
        if m and os.path.basename(frame_path(pattern, int(m.group(1)))) == name:
            frames.add(int(m.group(1)))
    return sorted(frames)


def parse_frame_range(text: str | int | Iterable[int]) -> list[int]:
    """``"1001-1100x2,1200"`` -> frames in order, duplicates dropped.

    Accepts ``a``, ``a-b``, ``a-bxN`` (every Nth), ``a-byN`` (all but every Nth), ``a-b:N``,
    separated by commas or spaces; an int or a list of ints passes through.
    """
    if isinstance(text, int):
        return [text]
    if not isinstance(text, str):
        return list(dict.fromkeys(int(f) for f in text))
    spec = ",".join(part for part in re.split(r"[\s,]+", text.strip()) if part)
    if not spec:
        raise NodeGraphError(f"empty frame range {text!r}")
    try:
        frames = fileseq.FrameSet(spec)
        if frames.hasSubFrames():
            raise NodeGraphError(f"frame range {text!r} has sub-frames; frames are whole numbers")
        return [int(f) for f in frames]
    except NodeGraphError:
        raise
    except (fileseq.FileSeqException, ValueError, TypeError) as exc:
        reason = str(exc).splitlines()[0].strip()
        raise NodeGraphError(f"bad frame range {text!r}: {reason}; expected e.g. '1001-1100', "
                             "'1-10x2' or '1,5,10-20'") from None


def format_frame_range(frames: Iterable[int]) -> str:
    """Compact text for a list of frames: ``[1, 3, 5, 10]`` -> ``"1-5x2,10"``."""
    frames = sorted(set(int(f) for f in frames))
    return fileseq.framesToFrameRange(frames, sort=False) if frames else ""


def nearest_frame(pattern: str | os.PathLike[str], frame: int) -> int:
    """The frame on disk closest to ``frame`` (the earlier one on a tie), like Read's 'nearest frame'."""
    frames = frames_on_disk(pattern)
    if not frames:
        folder = os.path.dirname(str(pattern)) or "."
        try:
            os.listdir(folder)
        except OSError as err:
            raise ImageIOError(f"cannot list the sequence's folder {folder[:200]!r}: {os_reason(folder, err)}",
                               path=str(pattern), frame=int(frame)) from None
        raise MissingFrameError("no frames of the sequence exist on disk", path=str(pattern), frame=int(frame))
    return min(frames, key=lambda f: (abs(f - frame), f))
