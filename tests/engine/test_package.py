"""The package itself: its docstring example runs, and it imports as installed (no path hacks)."""

from __future__ import annotations

import doctest
import os
import subprocess
import sys
from pathlib import Path

import nodegraph

ROOT = Path(__file__).resolve().parents[2]


def test_package_docstring_example_runs(tmp_path, monkeypatch):
    """The example renders and saves into the working directory: run it in a temporary one."""
    monkeypatch.chdir(tmp_path)
    result = doctest.testmod(nodegraph, verbose=False, report=True)
    assert result.attempted >= 10
    assert result.failed == 0
    assert sorted(os.listdir(tmp_path)) == ["comp.0001.exr", "comp.0002.exr", "comp.0003.exr", "comp.json"]


def test_one_package_path_and_one_errors_module():
    """nodegraph.nodes and nodegraph.io come from the install's mapping, not from a second entry on
    nodegraph.__path__ (which made the repository root importable as part of the package)."""
    assert len(nodegraph.__path__) == 1
    code = ("import nodegraph.nodes, nodegraph.io, nodegraph.errors, nodegraph.nodes.read as r, sys; "
            "assert r.KnobError is nodegraph.errors.KnobError; "
            "assert len(nodegraph.__path__) == 1; "
            "print(sorted(m for m in sys.modules if m.endswith('.errors') and m.startswith('nodegraph')))")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "['nodegraph.errors']"
