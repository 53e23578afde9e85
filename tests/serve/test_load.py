"""A real ``nodegraph serve`` process on loopback under load: 32 concurrent clients sending 20
requests each all get the right answer, none is lost, and the server's memory stays flat."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import torch

from servekit import IO_TIMEOUT, info, local, run

CLIENTS, REQUESTS = 32, 20
#: Growth of the server's resident memory allowed between the warm-up and the end of the load.
#: A leak of each request's input alone (128x96 RGB float32, 147 KiB) would be 92 MiB here.
RSS_GROWTH_LIMIT = 32 << 20
#: The whole load must be over within this (loopback, tiny model, 2 CPU cores: seconds normally).
DEADLINE = 240.0


def rss_bytes(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS")


@pytest.fixture
def server_process(model_dir):
    """``nodegraph serve`` in its own process on a free loopback port; killed after the test."""
    cmd = [sys.executable, "-c", "from nodegraph.cli import main; main()", "serve", "--models", str(model_dir),
           "--port", "0", "--device", "cpu", "--idle-timeout", "20"]
    env = {**os.environ, "COLUMNS": "200", "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        address = None
        lines = []
        deadline = time.monotonic() + 120
        while address is None and time.monotonic() < deadline:
            line = proc.stdout.readline()
            if not line:
                break
            lines.append(line)
            if line.startswith("listening on "):
                host, _, port = line.split()[2].rpartition(":")
                address = (host, int(port))
        assert address is not None, "".join(lines) + proc.stderr.read() if proc.poll() is not None else lines
        yield proc, address, lines
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=30)


def test_cli_server_lists_models_and_stops_on_sigterm(server_process):
    proc, address, lines = server_process
    text = "".join(lines)
    assert address[0] == "127.0.0.1"  # loopback unless told otherwise
    assert "model Denoise: rgba.red, rgba.green, rgba.blue -> rgba.red, rgba.green, rgba.blue" in text
    assert {m.name for m in info(address).r1.models} == {"Denoise", "Matte"}
    proc.terminate()
    assert proc.wait(timeout=30) == 0


def test_load_every_answer_right_none_lost_memory_flat(server_process, model_dir):
    proc, address, _ = server_process
    torch.manual_seed(0)
    inputs = [torch.rand(3, 96, 128) * 2 for _ in range(6)]
    models = ["Denoise", "Matte"]
    expected = {(m, k): local(model_dir / f"{m}.cat", x) for m in models for k, x in enumerate(inputs)}
    results: dict[tuple[int, int], str] = {}
    lock = threading.Lock()

    def client(c: int, requests: int, record: bool) -> None:
        for r in range(requests):
            key = (models[(c + r) % 2], (c * 7 + r) % len(inputs))
            try:
                y = run(address, key[0], inputs[key[1]])
                ok = y.shape == expected[key].shape and torch.allclose(y, expected[key], atol=1e-4, rtol=1e-4)
                outcome = "ok" if ok else f"wrong answer for {key}"
            except Exception as exc:  # noqa: BLE001 - every failure is reported below
                outcome = f"{type(exc).__name__}: {exc}"
            if record:
                with lock:
                    results[(c, r)] = outcome

    def round_of(requests: int, record: bool) -> None:
        threads = [threading.Thread(target=client, args=(c, requests, record), daemon=True) for c in range(CLIENTS)]
        for t in threads:
            t.start()
        end = time.monotonic() + DEADLINE
        for t in threads:
            t.join(max(0.1, end - time.monotonic()))
        assert not any(t.is_alive() for t in threads), "clients still waiting at the deadline"

    round_of(3, record=False)  # warm-up: threads, allocator arenas, the models loaded
    before = rss_bytes(proc.pid)
    round_of(REQUESTS, record=True)
    after = rss_bytes(proc.pid)

    failures = [f"client {c} request {r}: {o}" for (c, r), o in sorted(results.items()) if o != "ok"]
    assert len(results) == CLIENTS * REQUESTS  # none lost
    assert not failures, "\n".join(failures[:10])
    assert after - before < RSS_GROWTH_LIMIT, f"server RSS grew {(after - before) / 2**20:.1f} MiB under load"
    assert proc.poll() is None  # still up
    assert info(address).r1.num_models == 2
