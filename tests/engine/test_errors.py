"""NodeGraphError renders over-long values shortened (the attributes keep them whole)."""

from __future__ import annotations

from nodegraph.errors import (DocumentError, NodeGraphError, RenderError, ValidationError, safe_repr, shorten,
                              shorten_lines)


def test_ten_million_character_values_give_a_bounded_message() -> None:
    path = "/shots/" + "p" * 10_000_000 + "/comp.####.exr"
    node = "N" * 1_000_000
    err = NodeGraphError("cannot write " + path, node=node, knob="file", frame=1001, path=path)
    text = str(err)
    assert len(text) < 20_000
    assert text.startswith(f"node 'NNN")
    assert "knob 'file', frame 1001, file '/shots/ppp" in text
    assert f"({len(path):,} characters)" in text and f"({len(node):,} characters)" in text
    assert text.endswith("p/comp.####.exr")  # the tail survives: the file name is visible
    assert err.path == path and err.node == node and err.message == "cannot write " + path
    later = NodeGraphError("x").with_context(path=path)
    assert len(str(later)) < 20_000 and later.path == path


def test_normal_values_are_untouched() -> None:
    err = NodeGraphError("bad value", node="Read1", knob="file", frame=3, path="/a/b.exr")
    assert str(err) == "node 'Read1' knob 'file', frame 3, file '/a/b.exr': bad value"
    assert str(NodeGraphError("m", knob="")) == "knob '': m"
    path = "/p" * 2000  # a long but real path (4000 characters) is shown whole
    assert path in str(NodeGraphError("m", path=path))


def test_shorten_keeps_head_tail_and_length() -> None:
    text = "a" * 600 + "b" * 600
    short = shorten(text, 300)
    assert len(short) <= 300
    assert short.startswith("aaa") and short.endswith("bbb") and "(1,200 characters)" in short
    assert shorten("abc", 300) == "abc"


def test_many_lines_are_bounded() -> None:
    failures = {("Write1", f): "x" * 20_000 for f in range(5_000)}
    err = RenderError(failures)
    assert err.failures == failures
    text = str(err)
    assert len(text) < 5_000_000 and "more line(s)" in text
    assert shorten_lines("a\nb") == "a\nb"


def test_validation_and_document_errors_are_bounded() -> None:
    err = ValidationError(["x" * 1_000_000])
    assert len(str(err)) < 20_000 and len(err.issues[0]) == 1_000_000
    doc = DocumentError("bad " + "y" * 1_000_000, json_path="$.nodes." + "N" * 1_000_000)
    assert len(str(doc)) < 20_000


def test_safe_repr_never_raises() -> None:
    assert safe_repr(10 ** 5000) == "<an integer of about 5,000 digits>"
    assert safe_repr(12) == "12"
    assert len(safe_repr("z" * 100_000, 100)) < 110

    class Bad:
        def __repr__(self) -> str:
            raise RuntimeError("no")

    assert safe_repr(Bad()) == "<Bad>"
