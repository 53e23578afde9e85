"""Tracker4: the transform of synthetic tracks against a Transform given the known values, the
modes against each other, the saved Transform-tab knobs, animation, half, empty windows, a script."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
import torch
from hypothesis import example, given, settings
from hypothesis import strategies as st

import nodegraph as ng
from nodegraph.errors import NodeGraphError
from nodegraph.nodes.tracker import parse_tracks, solve_similarity

COLUMNS = [("5 1 20", "enable", "e"), ("3 1 75", "name", "name"), ("2 1 58", "track_x", "track_x"),
           ("2 1 58", "track_y", "track_y"), ("2 1 63", "offset_x", "offset_x"), ("2 1 63", "offset_y", "offset_y"),
           ("4 1 27", "T", "T"), ("4 1 27", "R", "R"), ("4 1 27", "S", "S"), ("2 0 45", "error", "error")] + [
    ("1 1 0", n, n) for n in ("error_min", "error_max", "pattern_x", "pattern_y", "pattern_r", "pattern_t",
                              "search_x", "search_y", "search_r", "search_t")] + [
    ("2 1 0", n, n) for n in ("key_track", "key_search_x", "key_search_y", "key_search_r", "key_search_t",
                              "key_track_x", "key_track_y", "key_track_r", "key_track_t", "key_centre_offset_x",
                              "key_centre_offset_y")]


def curve(first: int, values: list[float]) -> str:
    return "{curve x%d %s}" % (first, " ".join(f"{v:.10g}" for v in values))


def table(tracks: list[dict]) -> str:
    """A tracks table in Nuke's saved form: header, 31 column definitions, one row per track."""
    cols = "\n".join("{ %s %s %s 1 }" % (a, n, lab) for a, n, lab in COLUMNS)
    rows = []
    for i, t in enumerate(tracks):
        cells = [t.get("enable", "{curve K x1 1}"), f'"track {i + 1}"', t["x"], t["y"], t.get("ox", "{curve K x1 0}"),
                 t.get("oy", "{curve K x1 0}"), t.get("T", "1"), t.get("R", "1"), t.get("S", "1"), "{curve x1 0}",
                 "0", "0.001", "-32", "-32", "32", "32", "-22", "-22", "22", "22", "{curve}"] + ["{curve x1 0}"] * 10
        rows.append(" { " + " ".join(cells) + " } ")
    return "{ { 1 31 %d } \n{ %s \n} \n{ \n%s\n} \n}" % (len(tracks), cols, "\n".join(rows))


def similarity_tracks(points, frames, tx, ty, angle, scale) -> tuple[str, tuple[float, float]]:
    """Tracks of ``points`` (at frame 1) moved by the similarity about their centroid, reaching the
    given values at the last frame (linearly from the identity at frame 1)."""
    p = np.array(points, float)
    c = p.mean(axis=0)
    tracks = []
    for x0, y0 in p:
        xs, ys = [], []
        for i in range(frames):
            u = i / (frames - 1)
            a, s = math.radians(angle) * u, 1 + (scale - 1) * u
            dx, dy = x0 - c[0], y0 - c[1]
            xs.append(c[0] + tx * u + s * (math.cos(a) * dx - math.sin(a) * dy))
            ys.append(c[1] + ty * u + s * (math.sin(a) * dx + math.cos(a) * dy))
        tracks.append({"x": curve(1, xs), "y": curve(1, ys)})
    return table(tracks), (float(c[0]), float(c[1]))


def board(g: ng.Graph) -> ng.Node:
    return g.add("CheckerBoard2", format="64x48", boxsize=8, color1=(0.9, 0.4, 0.2, 0.5))


@settings(max_examples=6, deadline=None)
@given(tx=st.floats(-10, 10), ty=st.floats(-10, 10), angle=st.floats(-40, 40), scale=st.floats(0.6, 1.6))
@example(tx=0.0, ty=-5.0, angle=0.0, scale=0.6)  # a box edge on a whole pixel
def test_tracks_give_the_transform_of_their_motion(tx, ty, angle, scale) -> None:
    text, centre = similarity_tracks([(10, 10), (50, 12), (30, 40)], 3, tx, ty, angle, scale)
    g = ng.Graph()
    src = board(g)
    tr = g.add("Tracker4", input=src, tracks=text, transform="match-move", reference_frame=1)
    ref = g.add("Transform", input=src, translate=(tx, ty), rotate=angle, scale=scale, center=centre)
    got, want = g.evaluate(tr, 3), g.evaluate(ref, 3)
    # the tracks hold 10 significant digits, so the solved transform is exact to ~1e-10: a box edge
    # landing on a whole pixel may round to the next one (a column the filter's tail reaches, which
    # the other box cuts); inside both boxes the pixels agree
    assert all(abs(a - b) <= 1 for a, b in zip(got.bbox, want.bbox)), (got.bbox, want.bbox)
    inner = got.bbox.intersect(want.bbox)
    assert inner.width >= want.bbox.width - 2 and inner.height >= want.bbox.height - 2
    torch.testing.assert_close(got.crop_to(inner).pixels, want.crop_to(inner).pixels, atol=2e-4, rtol=0)
    assert torch.equal(g.evaluate(tr, 1).pixels, g.evaluate(src, 1).pixels)  # the reference frame


def test_least_squares_against_the_closed_form() -> None:
    rng = np.random.default_rng(3)
    p = rng.uniform(0, 100, (6, 2))
    a, s, t = math.radians(25), 1.3, np.array([4.0, -7.0])
    c = p.mean(axis=0)
    rot = np.array([[math.cos(a), -math.sin(a)], [math.sin(a), math.cos(a)]])
    q = c + t + s * (p - c) @ rot.T + rng.normal(0, 1e-9, p.shape)
    on = np.ones(6, bool)
    tx, ty, deg, scale, cx, cy = solve_similarity(p, q, on, on, on)
    assert np.allclose([tx, ty, deg, scale, cx, cy], [4, -7, 25, 1.3, c[0], c[1]], atol=1e-6)
    # one track: a translation only; R/S off: no rotation or scale
    one = solve_similarity(p[:1], q[:1], on[:1], on[:1], on[:1])
    assert one[2:4] == (0.0, 1.0) and np.allclose(one[:2], (q[0] - p[0]))
    off = ~on
    assert solve_similarity(p, q, on, off, off)[2:4] == (0.0, 1.0)


def test_stabilize_after_match_move_is_the_identity_away_from_edges() -> None:
    text, _ = similarity_tracks([(10, 10), (50, 12), (30, 40)], 4, 6.0, -3.0, 15.0, 1.2)
    g = ng.Graph()
    ramp = g.add("Ramp", format="64x48", p0=(0, 0), p1=(64, 48), color=(1.0, 0.5, 0.25, 1.0))
    move = g.add("Tracker4", input=ramp, tracks=text, transform="match-move", filter="keys")
    back = g.add("Tracker4", input=move, tracks=text, transform="stabilize", filter="keys")
    for frame in (2, 4):
        assert np.allclose(back.matrix(frame) @ move.matrix(frame), np.eye(3), atol=1e-12)
        out = g.evaluate(back, frame).crop_to(ng.Box(16, 12, 48, 36)).pixels
        src = g.evaluate(ramp, frame).crop_to(ng.Box(16, 12, 48, 36)).pixels
        torch.testing.assert_close(out, src, atol=5e-4, rtol=0)  # keys reproduces linear ramps


def test_jitter_modes_undo_each_other_and_keep_the_slow_motion() -> None:
    xs = [10 + 2 * i + (1.5 if i % 2 else -1.5) for i in range(21)]  # a drift plus a +-1.5 jitter
    text = table([{"x": curve(1, xs), "y": curve(1, [20.0] * 21), "R": "0", "S": "0"}])
    g = ng.Graph()
    src = board(g)
    remove = g.add("Tracker4", input=src, tracks=text, transform="remove jitter", jitter_period=3)
    add = g.add("Tracker4", input=src, tracks=text, transform="add jitter", jitter_period=3)
    m = remove.matrix(10)
    # at frame 10 the image moves from the track's position to the mean of frames 9..11
    assert np.isclose(m[0, 2], np.mean(xs[8:11]) - xs[9]) and np.allclose(m[:2, :2], np.eye(2))
    assert np.allclose(remove.matrix(10) @ add.matrix(10), np.eye(3))


def test_saved_transform_knobs_win_and_animate() -> None:
    g = ng.Graph()
    src = board(g)
    tr = g.add("Tracker4", input=src, transform="stabilize", center=(32, 24),
               translate=[ng.Curve.parse("curve x1 0 x11 10"), 0.0], rotate=ng.Curve.parse("curve x1 0 x11 20"))
    ref = g.add("Transform", input=src, center=(32, 24), translate=(5.0, 0.0), rotate=10, invert_matrix=True)
    torch.testing.assert_close(g.evaluate(tr, 6).pixels, g.evaluate(ref, 6).pixels)
    assert g.evaluate(tr, 1).bbox == g.evaluate(src, 1).bbox


def test_no_keys_is_the_identity_with_a_warning() -> None:
    g = ng.Graph()
    src = board(g)
    tr = g.add("Tracker4", "Trk", input=src, transform="match-move",
               tracks=table([{"x": "{curve}", "y": "{curve}"}]))
    with pytest.warns(UserWarning, match="Trk"):
        out = g.evaluate(tr, 5)
    assert torch.equal(out.pixels, g.evaluate(src, 5).pixels)


def test_disabled_tracks_and_offsets() -> None:
    moving = {"x": curve(1, [10, 14]), "y": curve(1, [10, 10]), "R": "0", "S": "0"}
    still_off = {"x": curve(1, [40, 40]), "y": curve(1, [30, 30]), "enable": "{curve K x1 0}"}
    offset = {"x": curve(1, [20, 20]), "y": curve(1, [20, 20]), "oy": curve(1, [0, 6]), "R": "0", "S": "0"}
    g = ng.Graph()
    tr = g.add("Tracker4", input=board(g), transform="match-move", tracks=table([moving, still_off, offset]))
    m = tr.matrix(2)
    assert np.allclose(m[:2, 2], [2.0, 3.0]) and np.allclose(m[:2, :2], np.eye(2))  # mean of (4, 0), (0, 6)


def test_half_empty_and_motion_blur() -> None:
    text, _ = similarity_tracks([(10, 10), (50, 12)], 3, 8.0, 0.0, 0.0, 1.0)
    g = ng.Graph()
    src = board(g)
    tr = g.add("Tracker4", input=src, tracks=text, transform="match-move")
    full = g.evaluate(tr, 3)
    half = g.evaluate(tr, 3, dtype=torch.float16)
    assert half.dtype == torch.float16
    torch.testing.assert_close(half.pixels.float(), full.pixels, atol=2e-3, rtol=0)
    empty = g.add("Crop", input=src, box=(10, 10, 10, 20))
    out = g.evaluate(g.add("Tracker4", input=empty, tracks=text, transform="match-move"), 3)
    assert out.pixels.numel() == 0 or float(out.pixels.abs().max()) == 0.0
    blur = g.add("Tracker4", input=src, tracks=text, transform="match-move", motionblur=1, shutter=1)
    blurred = g.evaluate(blur, 3).pixels
    assert blurred.shape[-1] > full.pixels.shape[-1]  # the window covers the whole shutter
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert len(blur._shutter_frames(3)) == 8


def test_bad_table_names_node_and_knob() -> None:
    g = ng.Graph()
    tr = g.add("Tracker4", "Trk", input=board(g), transform="match-move", tracks="{ {1 31 1} {{1 1 1 a a 1}} {} }")
    assert any("tracks" in p.message for p in g.validate())
    with pytest.raises(NodeGraphError, match="tracks"):
        g.evaluate(tr, 1)
    assert parse_tracks("") == ()


@pytest.mark.gpu
def test_gpu_matches_cpu() -> None:
    text, _ = similarity_tracks([(10, 10), (50, 12), (30, 40)], 3, 5.0, 2.0, 12.0, 1.1)
    g = ng.Graph()
    tr = g.add("Tracker4", input=board(g), tracks=text, transform="stabilize")
    cpu, gpu = g.evaluate(tr, 3, device="cpu"), g.evaluate(tr, 3, device="cuda")
    torch.testing.assert_close(gpu.pixels.cpu(), cpu.pixels, atol=1e-4, rtol=1e-4)
