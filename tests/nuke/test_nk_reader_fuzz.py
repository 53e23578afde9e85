"""Fuzzing the .nk reader (parse + import + write back): mutated public scripts give a graph (which
validates, writes back as a script and renders nothing unexpected) or a NodeGraphError, never another
exception."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings

from nodegraph.errors import NodeGraphError
from nodegraph.nuke.reader import read_nk
from nodegraph.nuke.writer import dumps_nk

from test_nk_fuzz import TEXTS, mutated


@pytest.mark.skipif(not TEXTS, reason="../shared/data/nk is not there")
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(mutated())
def test_mutated_public_scripts_import_or_fail_typed(text: str) -> None:
    try:
        res = read_nk(text, source="fuzz.nk")
    except NodeGraphError:
        return
    g = res.graph
    for issue in g.validate():
        str(issue)
    written = dumps_nk(g)
    again = read_nk(written, source="again.nk")  # what we write, we read
    assert set(again.graph.nodes) == set(g.nodes)
