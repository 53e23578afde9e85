"""Atomic file output for the image writers: the engine's one implementation (``nodegraph.atomic``)."""

from nodegraph.atomic import atomic_output, remove_stale_temps, temp_path_for

__all__ = ["atomic_output", "remove_stale_temps", "temp_path_for"]
