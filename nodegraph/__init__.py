"""nodegraph: headless, Nuke-style compositing with shot-specific machine learning.

Build a graph, evaluate frames, render Write nodes::

    import nodegraph as ng
    g = ng.Graph()
    bg = g.add("Checkerboard", format="HD_1080")
    fg = g.add("Read", file="plate.####.exr", first=1001, last=1100)
    out = g.add("Merge2", A=fg, B=bg, operation="over")
    g.add("Write", out, file="comp.####.exr")
    image = g.evaluate(out, 1001)
"""

from .cache import ImageCache
from .errors import (ChannelError, DocumentError, EvaluationError, GraphError, ImageIOError, KnobError,
                     MissingFrameError, NodeGraphError, RenderError, ValidationError)
from .evaluator import Context, Evaluator
from .graph import Graph, Issue
from .image import Box, Format, Image
from .node import Input, Knobs, Node, registry

__all__ = [
    "Box", "ChannelError", "Context", "DocumentError", "EvaluationError", "Evaluator", "Format", "Graph",
    "GraphError", "Image", "ImageCache", "ImageIOError", "Input", "Issue", "KnobError", "Knobs",
    "MissingFrameError", "Node", "NodeGraphError", "RenderError", "ValidationError", "registry",
]
__version__ = "0.1.0"
