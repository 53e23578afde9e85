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

To unit-test one node (a studio's own included) on images built in the test, without a graph,
:func:`compute_node` calls its ``compute`` with the given images as its inputs::

    from nodegraph.testing import compute_node

    def test_my_grade_doubles_red():
        out = compute_node(MyGrade("Grade1", gain=2.0), input=img)
        assert torch.equal(out.channel("rgba.red"), 2 * img.channel("rgba.red"))
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Iterable

import torch

from .compare import CompareResult, GraphSource, ImageComparison, compare_images, compare_sequences
from .evaluator import resolve_device

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


class ImagesContext:
    """A stand-in for :class:`nodegraph.evaluator.Context` whose inputs are given images.

    It offers what nodes use of a Context: ``frame``, ``device``, ``dtype``, ``node``,
    ``connected`` (the names of the given inputs), ``has_input``, ``input``, ``input_range`` and
    ``at``. An input's image is the same at every frame (there is no upstream graph, so
    ``input_range`` is None). An input not given, or given as None, is unconnected: ``input``
    returns None, as a Context does. An image given for, or asked of, an input name the node does
    not have raises :class:`~nodegraph.errors.GraphError`. Use it directly to call the other
    hooks of a node, e.g. ``node.passthrough(ImagesContext(node, input=img))``;
    :func:`compute_node` calls ``compute``.
    """

    __slots__ = ("frame", "device", "dtype", "node", "connected", "_images")

    def __init__(self, node: "Node", /, *, frame: int = 1, device: str | torch.device = "cpu",
                 dtype: torch.dtype = torch.float32, **images: "Image | None") -> None:
        self._images = {name: img for name, img in images.items() if img is not None}
        for name in self._images:
            node.input_spec(name)  # unknown input name -> GraphError, not a silently ignored image
        self.frame = int(frame)
        self.device = device if isinstance(device, torch.device) else resolve_device(device)
        self.dtype = dtype
        self.node = node
        self.connected: dict[str, None] = dict.fromkeys(self._images)  # Context maps to upstream nodes

    def has_input(self, name: str) -> bool:
        return name in self.connected

    def input(self, name: str, frame: int | None = None) -> "Image | None":
        """The image given for input ``name`` (whatever the frame); None if none was given."""
        img = self._images.get(name)
        if img is None:
            self.node.input_spec(name)  # unknown input name -> GraphError, as in Context
        return img

    def input_range(self, name: str) -> tuple[int, int] | None:
        """None: given images have no frame range (like a generator's)."""
        return None

    def at(self, frame: int) -> "ImagesContext":
        """The same inputs at another frame (used by ``needs`` of time nodes)."""
        return ImagesContext(self.node, frame=frame, device=self.device, dtype=self.dtype, **self._images)


def compute_node(node: "Node", /, *, frame: int = 1, device: str | torch.device = "cpu",
                 dtype: torch.dtype = torch.float32, **images: "Image | None") -> "Image":
    """Run ``node.compute`` on the given images, keyed by input name; returns its image.

    ``compute_node(Merge2("Merge1", operation="plus"), A=fg, B=bg)``. An input given as None is
    left unconnected (so a wrapper can pass ``mask=None`` whether or not the node has a mask).
    ``frame``, ``device`` and ``dtype`` are what the node sees as ``ctx.frame``, ``ctx.device``
    and ``ctx.dtype``; the images are passed as they are (not moved or converted). See
    :class:`ImagesContext`.
    """
    return node.compute(ImagesContext(node, frame=frame, device=device, dtype=dtype, **images))


__all__ = ["ImagesContext", "assert_frames_match", "assert_images_match", "compare_images", "compute_node"]
