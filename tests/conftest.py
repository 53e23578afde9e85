"""Shared test configuration.

- ``@pytest.mark.gpu`` tests are skipped without a CUDA device.
- The real EXR sample images (OpenEXR project, BSD-3) are found once here and published as
  ``$NODEGRAPH_TEST_DATA`` for the test modules: an explicit ``$NODEGRAPH_TEST_DATA``, else
  ``../shared/data/openexr-images`` beside the checkout, else ``/work/shared/data/openexr-images``.
  Tests that use them fail (not skip) when they are missing: a missing data set must be noticed.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

try:
    import torch
except ModuleNotFoundError:  # pytest from outside the project's environment
    raise pytest.UsageError(
        "torch is not installed in this Python: activate the project's environment first "
        "(`. .venv/bin/activate && pytest`), or install it as the README's quick start does "
        "(`pip install torch==2.13.0 && pip install -e '.[dev]'`)") from None

_CANDIDATES = [
    os.environ.get("NODEGRAPH_TEST_DATA"),
    str(Path(__file__).resolve().parents[1].parent / "shared" / "data" / "openexr-images"),
    "/work/shared/data/openexr-images",
]
for _candidate in _CANDIDATES:
    if _candidate and (Path(_candidate) / "Beachball").is_dir():
        os.environ["NODEGRAPH_TEST_DATA"] = _candidate
        break
else:
    os.environ["NODEGRAPH_TEST_DATA"] = str(Path(__file__).resolve().parents[1].parent / "shared" / "data"
                                            / "openexr-images")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA device")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)
