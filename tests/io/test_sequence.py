"""Sequence patterns with Nuke padding rules, frames on disk, frame ranges."""

from __future__ import annotations

import pytest

from nodegraph.errors import MissingFrameError, NodeGraphError
from nodegraph.io.sequence import (format_frame_range, frame_path, frames_on_disk, is_sequence, nearest_frame,
                                   padding, parse_frame_range)


@pytest.mark.parametrize("pattern, pad, expected", [
    ("/s/shot.####.exr", 4, "/s/shot.0007.exr"),   # Nuke: one digit per hash
    ("/s/shot.#.exr", 1, "/s/shot.7.exr"),
    ("/s/shot.##.exr", 2, "/s/shot.07.exr"),
    ("/s/shot.%04d.exr", 4, "/s/shot.0007.exr"),
    ("/s/shot.%d.exr", 1, "/s/shot.7.exr"),
    ("/s/shot.@@@@.exr", 4, "/s/shot.0007.exr"),
    ("/s/shot.@.exr", 1, "/s/shot.7.exr"),
    ("/s/shot.$F4.exr", 4, "/s/shot.0007.exr"),
    ("/s/shot_####_v2.png", 4, "/s/shot_0007_v2.png"),
    ("rel/shot.%06d.dpx", 6, "rel/shot.000007.dpx"),
    ("shot.%04d_v2.exr", 4, "shot.0007_v2.exr"),
    ("/s/v1/####", 4, "/s/v1/0007"),
])
def test_padding_styles(pattern, pad, expected):
    assert is_sequence(pattern)
    assert padding(pattern) == pad
    assert frame_path(pattern, 7) == expected


def test_wide_and_negative_frames():
    assert frame_path("/s/a.####.exr", 12345) == "/s/a.12345.exr"
    assert frame_path("/s/a.####.exr", -5) == "/s/a.-005.exr"  # printf semantics
    assert frame_path("/s/a.%04d.exr", -5) == "/s/a.-005.exr"


@pytest.mark.parametrize("path", ["/s/a.exr", "/s/a.0001.exr", "/s/plate_v002.mov"])
def test_single_files_are_not_sequences(path):
    assert not is_sequence(path)
    assert frame_path(path, 12) == path
    assert padding(path) == 0


def test_frames_on_disk_respects_padding(tmp_path):
    for name in ["a.0001.exr", "a.0003.exr", "a.12345.exr", "a.01.exr", "a.5.exr", "a.0002.png", "b.0004.exr"]:
        (tmp_path / name).touch()
    assert frames_on_disk(tmp_path / "a.####.exr") == [1, 3, 12345]
    assert frames_on_disk(str(tmp_path / "a.%04d.exr")) == [1, 3, 12345]
    assert frames_on_disk(tmp_path / "a.#.exr") == [5, 12345]
    assert frames_on_disk(tmp_path / "a.##.exr") == [1, 12345]  # "01", and wider frames
    assert frames_on_disk(tmp_path / "missing.####.exr") == []
    assert frames_on_disk(tmp_path / "nodir" / "a.####.exr") == []


def test_nearest_frame(tmp_path):
    for f in (10, 20, 40):
        (tmp_path / f"n.{f:04d}.exr").touch()
    pattern = str(tmp_path / "n.####.exr")
    assert nearest_frame(pattern, 20) == 20
    assert nearest_frame(pattern, 1) == 10
    assert nearest_frame(pattern, 15) == 10  # tie: earlier frame
    assert nearest_frame(pattern, 31) == 40
    with pytest.raises(MissingFrameError):
        nearest_frame(str(tmp_path / "none.####.exr"), 1)


@pytest.mark.parametrize("text, expected", [
    ("1001-1010x2,1200", [1001, 1003, 1005, 1007, 1009, 1200]),
    ("1-5", [1, 2, 3, 4, 5]),
    ("7", [7]),
    ("1 3 5-6", [1, 3, 5, 6]),
    ("5-1", [5, 4, 3, 2, 1]),
    ("-3--1", [-3, -2, -1]),
    ("1-3,2-4", [1, 2, 3, 4]),
    (12, [12]),
    ([3, 1, 3], [3, 1]),
])
def test_parse_frame_range(text, expected):
    assert parse_frame_range(text) == expected


@pytest.mark.parametrize("text", ["", "  ", "1-", "abc", "1-10x0", "1.5-3", "1-10z2", "1-999999999"])
def test_bad_frame_ranges(text):
    with pytest.raises(NodeGraphError, match="frame range"):
        parse_frame_range(text)


def test_format_frame_range():
    assert format_frame_range([1, 3, 5, 10]) == "1-5x2,10"
    assert parse_frame_range(format_frame_range([1, 2, 3, 9, 11])) == [1, 2, 3, 9, 11]
    assert format_frame_range([]) == ""
