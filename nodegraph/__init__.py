"""nodegraph: headless, Nuke-style compositing with shot-specific machine learning.

Build a graph, evaluate a frame, render its Write nodes, save it as JSON (``nodegraph render
comp.json`` renders it again). Inputs are named as in Nuke: Merge2 puts ``A`` over ``B``::

    >>> import nodegraph as ng
    >>> from nodegraph.render import render
    >>> g = ng.Graph()
    >>> bg = g.add("CheckerBoard2", format="64x32")
    >>> fg = g.add("Constant", color=(0.5, 0.25, 0.0, 0.5), format="64x32")
    >>> over = g.add("Merge2", A=fg, B=bg, operation="over")
    >>> image = g.evaluate(over, 1)
    >>> image.channels
    ('rgba.red', 'rgba.green', 'rgba.blue', 'rgba.alpha')
    >>> tuple(image.pixels.shape)  # [channels, height, width]
    (4, 32, 64)
    >>> write = g.add("Write", input=over, file="comp.####.exr", channels="rgba")
    >>> result = render(g, frames="1-3")
    >>> [path for _, _, path in result.written]
    ['comp.0001.exr', 'comp.0002.exr', 'comp.0003.exr']
    >>> plate = g.add("Read", file="comp.####.exr")
    >>> g.frame_range(plate)
    (1, 3)
    >>> g.save("comp.json")
    >>> sorted(ng.Graph.load("comp.json").nodes)
    ['CheckerBoard1', 'Constant1', 'Merge1', 'Read1', 'Write1']

Errors are one family, :class:`NodeGraphError`, naming the node, knob, frame or file::

    >>> g.add("Read", file="plate.####.exr", first=1001, last=1e18)
    Traceback (most recent call last):
    nodegraph.errors.KnobError: node 'Read2' knob 'last': out of range: frame numbers lie within +-1,000,000,000 (got 1e+18)
"""

from .cache import ImageCache
from .errors import (ChannelError, DocumentError, EvaluationError, GraphError, ImageIOError, KnobError,
                     MissingFrameError, NodeGraphError, RenderError, ValidationError)
from .evaluator import Context, Evaluator
from .curve import Curve, Key
from .expression import Expression
from .graph import Graph, Issue
from .group import Group
from .image import Box, Format, Image
from .node import Input, Knobs, Node, registry

__all__ = [
    "Box", "ChannelError", "Context", "Curve", "DocumentError", "EvaluationError", "Evaluator", "Expression",
    "Format", "Graph", "GraphError", "Group", "Image", "ImageCache", "ImageIOError", "Input", "Issue", "Key",
    "KnobError", "Knobs",
    "MissingFrameError", "Node", "NodeGraphError", "RenderError", "ValidationError", "registry",
]
__version__ = "0.1.0"
