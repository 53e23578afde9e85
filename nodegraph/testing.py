"""pytest helpers to put shots under regression tests.

::

    from nodegraph.testing import assert_frames_match

    def test_shot_010():
        assert_frames_match("shots/sh010/comp.json", "Comp", "shots/sh010/ref/comp.####.exr",
                            frames="1001-1010", atol=1e-3, channels="rgba")

A mismatch raises ``AssertionError`` listing every failing frame and channel (max abs, RMS,
PSNR, missing channels, NaN disagreements); ``diff_dir`` also writes ``diff.####.exr`` images of
``|graph - reference|`` for the failing frames. The comparison rules are those of
:mod:`nodegraph.compare` (and of ``nodegraph compare``).
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Iterable

from .compare import CompareResult, GraphSource, ImageComparison, compare_images, compare_sequences

if TYPE_CHECKING:  # pragma: no cover
    from .graph import Graph
    from .image import Image
    from .node import Node


def assert_frames_match(graph: "Graph | str | os.PathLike[str]", node: "Node | str",
                        reference: str | os.PathLike[str], *, frames: "str | Iterable[int] | None" = None,
                        atol: float = 0.0, channels: str | Iterable[str] | None = None,
                        diff_dir: str | os.PathLike[str] | None = None, device: str = "cpu") -> CompareResult:
    """Assert that ``node`` of ``graph`` (a Graph or a document path) matches ``reference``.

    ``reference`` is an image or a sequence pattern (``ref/comp.####.exr``); ``frames`` defaults
    to every reference frame on disk. Returns the :class:`~nodegraph.compare.CompareResult` when
    everything matches.
    """
    __tracebackhide__ = True
    result = compare_sequences(GraphSource(graph, node, device=device), reference, frames=frames,
                               channels=channels, atol=atol, diff_dir=diff_dir)
    if not result.frames:
        raise AssertionError(f"no frames to compare against {reference}")
    if not result.ok:
        raise AssertionError(result.report())
    return result


def assert_images_match(a: "Image", b: "Image", *, atol: float = 0.0,
                        channels: str | Iterable[str] | None = None) -> ImageComparison:
    """Assert that two images match within ``atol`` per channel; returns the statistics."""
    __tracebackhide__ = True
    cmp = compare_images(a, b, channels=channels, atol=atol)
    if not cmp.ok:
        raise AssertionError(f"images differ (tolerance {atol:g}):\n" + "\n".join(f"  {line}" for line in cmp.failures()))
    return cmp


__all__ = ["assert_frames_match", "assert_images_match", "compare_images"]
