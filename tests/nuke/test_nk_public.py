"""Every public script in ../shared/data/nk loads, round-trips and names its unsupported classes;
those made only of supported classes render (or, being tools, say which input they wait for)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from nodegraph.document import graph_to_dict
from nodegraph.node import UnknownNode
from nodegraph.nuke.reader import read_nk, read_nk_file
from nodegraph.nuke.writer import dumps_nk

DATA = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "nk"
if not DATA.is_dir():
    DATA = Path("/work/shared/data/nk")
FILES = sorted(p for p in DATA.rglob("*") if p.suffix in (".nk", ".gizmo") and p.is_file())
sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
from nk_corpus import render_ends, walk  # noqa: E402


def test_the_public_scripts_are_there() -> None:
    assert len(FILES) >= 50, f"../shared/data/nk holds {len(FILES)} scripts"


@pytest.mark.parametrize("path", FILES, ids=[str(p.relative_to(DATA)) for p in FILES])
def test_loads_round_trips_and_lists_placeholders(path: Path) -> None:
    res = read_nk_file(path)
    g = res.graph
    placeholders = [n for n in walk(g) if isinstance(n, UnknownNode) and not n.ui_only]
    counted: dict[str, int] = {}
    for n in placeholders:
        counted[n.type_name] = counted.get(n.type_name, 0) + 1
    assert counted == res.unsupported
    listed = {i.node for i in g.validate() if i.kind == "unknown_type"}
    assert listed == {n.path for n in placeholders}
    again = read_nk(dumps_nk(g), source=str(path))
    assert graph_to_dict(again.graph) == graph_to_dict(g)
    assert again.unsupported == res.unsupported


def test_scripts_of_supported_classes_render_or_name_the_input_they_need() -> None:
    outcomes = {}
    for path in FILES:
        res = read_nk_file(path)
        if res.unsupported:
            continue
        outcome, problems = render_ends(res.graph)
        outcomes[str(path.relative_to(DATA))] = (outcome, problems)
    rendered = [f for f, (o, _) in outcomes.items() if o == "renders"]
    assert len(rendered) >= 3, outcomes
    for name in ("aws-deadline+deadline-cloud-for-nuke/job_bundle_output_tests/cwd-path/scene/cwd-path.nk",
                 "aws-deadline+deadline-cloud-for-nuke/job_bundle_output_tests/ocio/scene/ocio.nk"):
        assert outcomes[name][0] == "renders", outcomes[name]
