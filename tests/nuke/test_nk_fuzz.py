"""Fuzzing the .nk parser: arbitrary bytes, mutated public scripts and hostile shapes give a tree or
an NkSyntaxError, never another exception, and never hang (each parse is timed against a generous
bound that only a runaway loop would pass)."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from nodegraph.nuke.script import NkScript, parse_script, read_script
from nodegraph.nuke.tcl import NkSyntaxError, split_list

DATA = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "nk"
FILES = sorted(p for p in DATA.rglob("*") if p.suffix in (".nk", ".gizmo")) if DATA.is_dir() else []
TEXTS = [p.read_text(encoding="latin-1") for p in FILES]
BOUND_S = 10.0  # a 200 KB script parses in a few tens of milliseconds; only a hang gets near this

SETTINGS = settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def parse_or_syntax_error(text: str) -> NkScript | None:
    start = time.perf_counter()
    try:
        script = parse_script(text, source="fuzz.nk")
    except NkSyntaxError as err:
        assert err.line is not None and err.line >= 1 and err.column is not None
        assert "fuzz.nk" in str(err)
        script = None
    else:
        nodes = list(script.walk())  # the tree is walkable and finite
        # a node statement needs a line of its own (CR, LF or CRLF ends one) or a braced body
        assert len(nodes) <= text.count("{") + text.count("\n") + text.count("\r") + 1
        for node in nodes:
            repr(node)
            assert len(node.inputs) == node.input_count + node.mask_inputs
        for warning in script.warnings:
            str(warning)
    assert time.perf_counter() - start < BOUND_S
    return script


@SETTINGS
@given(st.binary(max_size=4000))
def test_random_bytes(data):
    for encoding in ("latin-1", "utf-8"):
        parse_or_syntax_error(data.decode(encoding, errors="replace"))


_SPECIAL = st.sampled_from(["{", "}", "[", "]", '"', "\\", "\n", "\r", ";", "$", "#", " ", "\\\n",
                            "push $N1\n", "set N1 [stack 0]\n", "end_group\n", "Group {\n}\n",
                            "clone $C1 {\n}\n", " inputs 2+1\n", "\x00", "{{curve x1 0}}"])


@st.composite
def mutated(draw):
    text = draw(st.sampled_from(TEXTS))
    for _ in range(draw(st.integers(1, 6))):
        n = len(text)
        a = draw(st.integers(0, n))
        b = draw(st.integers(a, min(n, a + 400)))
        op = draw(st.sampled_from(["delete", "insert", "duplicate", "inject"]))
        if op == "delete":
            text = text[:a] + text[b:]
        elif op == "duplicate":
            text = text[:b] + text[a:b] + text[b:]
        elif op == "insert":
            text = text[:a] + draw(st.text(max_size=20)) + text[a:]
        else:
            text = text[:a] + draw(_SPECIAL) + text[a:]
    return text


@pytest.mark.skipif(not FILES, reason="../shared/data/nk is not there")
@SETTINGS
@given(mutated())
def test_mutated_public_scripts(text):
    parse_or_syntax_error(text)


@SETTINGS
@given(st.lists(st.sampled_from(list('{}[]"\\ \n;$#abN01+') + ["push ", "set ", "inputs ", "[stack 0]",
                                                                 "end_group", "clone "]),
               max_size=200).map("".join))
def test_grammar_soup(text):
    parse_or_syntax_error(text)
    try:
        split_list(text)
    except NkSyntaxError:
        pass


@pytest.mark.parametrize("text", [
    "k " + "{" * 100_000 + "}" * 100_000,
    "k " + "[" * 100_000 + "]" * 100_000,
    "k [" + "{" * 100_000,
    'k "' + "[" * 50_000,
    "Group {\n}\n" * 20_000,  # 20,000 nested groups, never closed
    "Blur {\n}\n" * 50_000,
    "push 0\n" * 100_000 + "Merge2 {\n inputs 100000\n}\n",
    "Blur {\n inputs 65536+0\n}\n",
    "k " + "\\" * 100_001,
    "a " * 200_000,
    "x" * 1_000_000,
])
def test_hostile_shapes(text):
    script = parse_or_syntax_error(text)
    if text.startswith("Group"):
        assert script.ends_open and len(list(script.walk())) == 20_000


@pytest.mark.skipif(not FILES, reason="../shared/data/nk is not there")
def test_truncated_public_scripts(tmp_path):
    """Every public script cut at many points: a tree (often with warnings) or a typed error."""
    for text in TEXTS:
        for cut in range(0, len(text), max(1, len(text) // 25)):
            parse_or_syntax_error(text[:cut])
    path = tmp_path / "cut.nk"
    path.write_bytes(TEXTS[0][: len(TEXTS[0]) // 2].encode("latin-1"))
    try:
        read_script(path)
    except NkSyntaxError as err:
        assert err.path == str(path)
