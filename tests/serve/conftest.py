"""Fixtures of the ML-server tests: fresh model cache, a model folder, servers on loopback.

Every server a test starts listens on 127.0.0.1 with a free port and is stopped after the test.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from nodegraph.ml import infer
from nodegraph.serve import Catalog, MLServer, ServerConfig

from servekit import KNOBS, tiny_cat


@pytest.fixture(autouse=True)
def _fresh_model_cache():
    infer.model_cache.clear()
    yield
    infer.model_cache.clear()


@pytest.fixture
def model_dir(tmp_path) -> Path:
    folder = tmp_path / "models"
    folder.mkdir()
    tiny_cat(folder / "Denoise.cat", knobs=KNOBS)
    tiny_cat(folder / "Matte.cat", cin=3, cout=1, seed=3)
    return folder


@pytest.fixture
def start_server():
    """``start_server(folder, **config)`` -> a started MLServer on 127.0.0.1, stopped after the test."""
    servers: list[MLServer] = []

    def start(folder: Path, **config) -> MLServer:
        config = {"host": "127.0.0.1", "port": 0, "device": "cpu", **config}
        server = MLServer(Catalog([folder]), ServerConfig(**config)).start()
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.stop()


@pytest.fixture
def server(model_dir, start_server) -> MLServer:
    return start_server(model_dir)
