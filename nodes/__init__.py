"""The node library, one module per family; importing it registers every node type."""

from . import generate, math, merge, premult, read, utility, write  # noqa: F401
