"""Views and deep parts of EXR files: which parts and channels make up one view.

Two layouts carry several views (OpenEXR's "Storing Multi-View Images" conventions):

- single part: a ``multiView`` header attribute lists the views, the first being the default
  view. A channel's view is the penultimate component of its name (``right.R``,
  ``lighting.right.R``); names without a period belong to the default view; other names
  (``lighting.R``) belong to no view and are shared by every view. As a lenience for
  ``view.layer.channel`` names, a first component naming a view also counts.
- multi-part: each part may name its ``view``; parts without one are shared by every view.
  The default view is the first of a ``multiView`` attribute if a header has one, else the
  view of the first part that names one.

Deep parts (``deepscanline``/``deeptile``) are not read; flat parts of the same file are.
"""

from __future__ import annotations

from typing import Any

import OpenEXR

from nodegraph.errors import ImageIOError

DEEP_TYPES = (OpenEXR.deepscanline, OpenEXR.deeptile)


def is_deep(header: Any) -> bool:
    return header.get("type") in DEEP_TYPES


def file_views(headers: list[Any]) -> list[str]:
    """Views of a file, default first; empty for a file without views."""
    views: list[str] = []
    for h in headers:
        listed = h.get("multiView")
        if listed:
            views = [str(v) for v in listed]
            break
    for h in headers:
        v = h.get("view")
        if isinstance(v, str) and v and v not in views:
            views.append(v)
    return views


def channel_view(name: str, views: list[str]) -> tuple[str | None, str]:
    """(view, name without the view component) of a channel of a single-part multi-view file;
    view None: the channel belongs to no view (shared)."""
    parts = name.split(".")
    if len(parts) == 1:
        return views[0], name
    if parts[-2] in views:
        return parts[-2], ".".join(parts[:-2] + parts[-1:])
    if parts[0] in views:
        return parts[0], ".".join(parts[1:])
    return None, name


def view_channels(header: Any, names: list[str], view: str | None) -> dict[str, str]:
    """File channel name -> its name within ``view`` (view component removed), for the channels
    of one part that ``view`` sees; every channel when the part has no ``multiView``."""
    listed = [str(v) for v in (header.get("multiView") or [])]
    if not listed or view is None:
        return {n: n for n in names}
    out = {}
    for n in names:
        owner, short = channel_view(n, listed)
        if owner is None or owner == view:
            out[n] = short
    return out


def resolve_view(views: list[str], view: str | None, path: str) -> str | None:
    """The view to read: ``view`` checked against the file's, or the default; None for a file
    without views (a single-view file serves every view, as in Nuke)."""
    if not views:
        return None
    if not view:
        return views[0]
    if view not in views:
        raise ImageIOError(f"no view {view!r} in this file; views: {', '.join(views)}", path=path)
    return view


def choose_parts(headers: list[Any], names: list[str], part: str | int | None, view: str | None,
                 explicit_view: bool, path: str) -> tuple[list[int], list[str]]:
    """Indices of the parts to read and the names of deep parts skipped (for ``part='*'``).

    ``part``: None (the first flat part of the view), ``"*"`` (every flat part of the view), a
    part name or index. Deep parts are refused naming the part and listing the flat ones.
    """
    flat = [i for i, h in enumerate(headers) if not is_deep(h)]

    def in_view(i: int) -> bool:
        v = headers[i].get("view")
        return view is None or not v or v == view

    def deep_error(i: int) -> ImageIOError:
        others = ", ".join(names[j] for j in flat) or "none"
        return ImageIOError(f"part {names[i]!r} holds deep data; deep data is not supported "
                            f"(flat parts: {others})", path=path)

    if part is None or part == "*":
        chosen = [i for i in range(len(headers)) if in_view(i)]
        readable = [i for i in chosen if i in flat]
        if not readable:
            if chosen:
                raise deep_error(chosen[0])
            raise ImageIOError(f"no part belongs to view {view!r}", path=path)
        if part is None:
            return readable[:1], []
        return readable, [names[i] for i in chosen if i not in flat]
    if isinstance(part, int) or (isinstance(part, str) and part not in names and part.isdigit()):
        index = int(part)
        if not 0 <= index < len(names):
            raise ImageIOError(f"part index {index} out of range; file has {len(names)} part(s): "
                               f"{', '.join(names)}", path=path)
    elif part not in names:
        raise ImageIOError(f"no part named {part!r}; parts: {', '.join(names)}", path=path)
    else:
        index = names.index(part)
    if is_deep(headers[index]):
        raise deep_error(index)
    own = headers[index].get("view")
    if explicit_view and own and own != view:
        raise ImageIOError(f"part {names[index]!r} belongs to view {own!r}, not {view!r}", path=path)
    return [index], []
