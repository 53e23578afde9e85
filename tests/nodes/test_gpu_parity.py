"""Every compositing node gives the same pixels on the GPU as on the CPU (images stay on device)."""

from __future__ import annotations

import pytest
import torch

import nodegraph as ng

SKIP = {"Read", "Write", "CopyCat", "CatFileCreator", "Inference",  # file and model nodes: own tests
        "RemoteInference"}  # needs a running server: tests/serve
# the node library's own types (test modules register helper types of their own)
TYPES = sorted(t for t, cls in ng.registry.types().items()
               if cls.__module__.startswith("nodegraph.nodes.") and t not in SKIP)


def _graph(type_name: str) -> tuple[ng.Graph, ng.Node]:
    g = ng.Graph()
    board = g.add("CheckerBoard2", format="64x48", boxsize=8, color1=(0.9, 0.4, 0.2, 0.5))
    ramp = g.add("Ramp", format="64x48", p0=(0, 0), p1=(64, 48), color=(2.0, 0.5, -0.25, 1.0))
    cls = ng.registry.get(type_name)
    links = {}
    for i, spec in enumerate(cls.inputs):
        if spec.name == "mask" or (not spec.required and spec.name not in ("A", "0")):
            continue
        links[spec.name] = board if i % 2 == 0 else ramp
    node = g.add(type_name, **links)
    return g, node


@pytest.mark.gpu
@pytest.mark.parametrize("type_name", TYPES)
def test_node_matches_cpu_on_cuda(type_name: str) -> None:
    g, node = _graph(type_name)
    cpu = g.evaluate(node, 1, device="cpu")
    gpu = g.evaluate(node, 1, device="cuda")
    assert gpu.device.type == "cuda"
    assert gpu.channels == cpu.channels and gpu.bbox == cpu.bbox
    torch.testing.assert_close(gpu.pixels.cpu(), cpu.pixels, rtol=1e-4, atol=1e-4)
