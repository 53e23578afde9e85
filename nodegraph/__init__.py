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

import os as _os

# In a source checkout the sub-packages nodegraph.nodes and nodegraph.io live in the sibling
# folders nodes/ and io/ (pyproject maps them). When this folder is imported straight from the
# checkout (the repository root on sys.path ahead of an installed copy), let the package find them.
_root = _os.path.dirname(_os.path.dirname(_os.path.abspath(__file__)))
if _os.path.isfile(_os.path.join(_root, "nodes", "__init__.py")) and _os.path.isfile(
        _os.path.join(_root, "io", "__init__.py")) and _root not in __path__:
    __path__.append(_root)

from .cache import ImageCache  # noqa: E402
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
