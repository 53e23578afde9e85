"""A memory-bounded LRU cache of images keyed by Merkle hash (plus device and dtype)."""

from __future__ import annotations

import os
import threading
from collections import OrderedDict
from typing import Hashable

from .image import Image

DEFAULT_CACHE_BYTES = int(float(os.environ.get("NODEGRAPH_CACHE_GB", "4")) * (1 << 30))
#: Renders stream frames through once, so their cache only needs to hold what is reused across
#: frames (a still background, a held frame); kept small so memory stays flat over long ranges.
RENDER_CACHE_BYTES = int(float(os.environ.get("NODEGRAPH_RENDER_CACHE_GB", "0.5")) * (1 << 30))


class ImageCache:
    """Least-recently-used images up to ``max_bytes`` in total (0 disables caching).

    An image larger than the whole budget is not stored. Thread safe.
    """

    def __init__(self, max_bytes: int = DEFAULT_CACHE_BYTES, *, admit_on_reuse: bool = False) -> None:
        self.max_bytes = int(max_bytes)
        #: Store an image only the second time its key is offered (renders: a frame's own results
        #: are offered once and never stored; what frames share, a still or a held frame, is).
        self.admit_on_reuse = admit_on_reuse
        self._offered: OrderedDict[Hashable, None] = OrderedDict()
        self._items: OrderedDict[Hashable, Image] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0

    def get(self, key: Hashable) -> Image | None:
        with self._lock:
            img = self._items.get(key)
            if img is None:
                self.misses += 1
                return None
            self._items.move_to_end(key)
            self.hits += 1
            return img

    def put(self, key: Hashable, image: Image, *, force: bool = False) -> None:
        """Store ``image``; ``force`` skips admit-on-reuse (for results computed ahead on purpose)."""
        size = image.nbytes
        if size > self.max_bytes:
            return
        with self._lock:
            if self.admit_on_reuse and not force and key not in self._offered:
                self._offered[key] = None
                if len(self._offered) > 65536:
                    self._offered.popitem(last=False)
                return
            old = self._items.pop(key, None)
            if old is not None:
                self._bytes -= old.nbytes
            self._items[key] = image
            self._bytes += size
            while self._bytes > self.max_bytes and self._items:
                _, evicted = self._items.popitem(last=False)
                self._bytes -= evicted.nbytes

    def clear(self) -> None:
        with self._lock:
            self._items.clear()
            self._offered.clear()
            self._bytes = 0

    @property
    def nbytes(self) -> int:
        return self._bytes

    def __len__(self) -> int:
        return len(self._items)

    def __contains__(self, key: Hashable) -> bool:
        return key in self._items
