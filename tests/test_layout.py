"""The test tree itself: pytest imports test modules by basename (no packages under tests/),
so two modules with one basename stop collection of the whole suite."""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path


def test_test_module_basenames_are_unique() -> None:
    seen: dict[str, list[str]] = defaultdict(list)
    root = Path(__file__).resolve().parent
    for path in root.rglob("test_*.py"):
        seen[path.name].append(str(path.relative_to(root)))
    clashes = {name: paths for name, paths in seen.items() if len(paths) > 1}
    assert not clashes, f"test modules sharing a basename (rename one of each): {clashes}"
    assert len(seen) > 10  # the walk found the suite
