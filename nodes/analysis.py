"""Nodes whose image is their input's: CurveTool (its analysis results are knobs other nodes read)
and PostageStamp (a thumbnail in Nuke's node graph)."""

from __future__ import annotations

from typing import Annotated, Literal

from nodegraph.animation import BOX, COLOUR, XY
from nodegraph.node import Knobs

from .utility import _PassThrough

_Four = Annotated[tuple[float, float, float, float], COLOUR]
_Box = Annotated[tuple[float, float, float, float], BOX]
_Three = Annotated[tuple[float, float, float], COLOUR]
_Two = Annotated[tuple[float, float], XY]


class CurveTool(_PassThrough):
    """Nuke's CurveTool: analyses its input over a frame range and stores the results in knobs
    (``intensitydata``, ``autocropdata``, ``maxlumapixdata``...), usually as curves, which other
    nodes read through expressions (``CurveTool1.intensitydata.r``). Its image is its input.

    nodegraph does not run the analysis (Nuke runs it on demand, from the node's panel, and saves
    the results in the script): the results a script holds are used as they are, which is what a
    render in Nuke uses too. ``ROI`` is kept as written (scripts give it as expressions of the
    input's size)."""

    category = "Other"

    class Knobs(Knobs):
        operation: Literal["Auto Crop", "Avg Intensities", "Exposure Difference", "Max Luma Pixel"] = \
            "Avg Intensities"
        """The analysis the results below came from (not run here)."""
        ROI: str = ""
        """Region of interest of the analysis, as the script wrote it (not used: no analysis runs)."""
        avgframes: float = 2.0
        """Frames averaged by the analysis (not used)."""
        intensitydata: _Four = (0.0, 0.0, 0.0, 0.0)
        """Average intensity per channel (Avg Intensities), usually a curve per channel."""
        autocropdata: _Box = (0.0, 0.0, 0.0, 0.0)
        """Box of the non-black pixels (Auto Crop): x, y, r, t."""
        maxlumapixdata: _Two = (0.0, 0.0)
        """Position of the brightest pixel (Max Luma Pixel)."""
        maxlumapixvalue: _Three = (0.0, 0.0, 0.0)
        """Colour of the brightest pixel."""
        minlumapixdata: _Two = (0.0, 0.0)
        """Position of the darkest pixel."""
        minlumapixvalue: _Three = (0.0, 0.0, 0.0)
        """Colour of the darkest pixel."""


class PostageStamp(_PassThrough):
    """Nuke's PostageStamp: shows a thumbnail of its input in the node graph; its image is its input."""

    category = "Other"
