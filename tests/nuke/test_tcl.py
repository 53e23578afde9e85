"""The TCL lexer of nodegraph.nuke: word kinds, escapes, nesting, positions, errors and quote()."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from nodegraph.errors import NodeGraphError
from nodegraph.nuke.tcl import (MAX_DEPTH, NkSyntaxError, Word, quote, split_commands, split_list,
                                unescape)


def cmds(text: str) -> list[list[str]]:
    return [[w.text for w in c] for c in split_commands(text)]


def kinds(text: str) -> list[list[str]]:
    return [[w.kind for w in c] for c in split_commands(text)]


def one_word(text: str) -> Word:
    [[word]] = list(split_commands(text))
    return word


# -- braced words ---------------------------------------------------------------------------------

def test_brace_word_strips_outer_braces_and_keeps_inner_verbatim():
    w = one_word("{a {b {c}} d}")
    assert (w.text, w.kind, w.raw) == ("a {b {c}} d", "brace", "{a {b {c}} d}")


def test_brace_word_keeps_backslash_brace_and_backslash_newline_verbatim():
    w = one_word("{a \\} b \\{ c\\\nd}")
    assert w.text == "a \\} b \\{ c\\\nd"


def test_brace_word_ignores_brackets_and_quotes():
    assert cmds('k {"a [b}') == [["k", '"a [b']]


def test_curve_value_kept_as_a_brace_word_verbatim():
    assert cmds("size {{curve x1 0 S x100 50}}") == [["size", "{curve x1 0 S x100 50}"]]
    assert kinds("size {{curve x1 0 S x100 50}}") == [["bare", "brace"]]


def test_brace_word_over_several_lines():
    [[k, v], [n, m]] = list(split_commands("k {1\n 2\n3}\nnext 1"))
    assert v.text == "1\n 2\n3" and (n.line, n.col) == (4, 1)


def test_deep_braces_do_not_recurse_and_too_deep_is_typed():
    ok = "{" * MAX_DEPTH + "}" * MAX_DEPTH
    assert one_word(ok).text == ok[1:-1]
    hostile = "k " + "{" * 100_000 + "}" * 100_000
    with pytest.raises(NkSyntaxError, match="nested deeper"):
        list(split_commands(hostile))


# -- quoted words ---------------------------------------------------------------------------------

@pytest.mark.parametrize("raw, text", [
    (r'"a \"b\" c"', 'a "b" c'),
    (r'"back\\slash"', "back\\slash"),
    (r'"x\ny\tz"', "x\ny\tz"),
    (r'"\x41\x4a"', "AJ"),
    (r'"\x414"', "A4"),  # at most two hex digits (Tcl 8.6)
    (r'"\101\60\0"', "A0\0"),
    (r'"\477"', "'7"),  # octal stops before the value passes 0377
    (r'"\u00e9\u20AC"', "é€"),
    (r'"\U0001F600"', "\U0001F600"),
    (r'"\q\{\}\$"', "q{}$"),  # unknown escapes give the character
    (r'"\[value x]"', "[value x]"),
    ('"two\nlines"', "two\nlines"),
    ('"cont\\\n   inued"', "cont inued"),
    ('""', ""),
])
def test_quoted_word_escapes(raw, text):
    w = one_word(raw)
    assert (w.text, w.kind, w.raw) == (text, "quote", raw)


def test_quoted_word_keeps_command_substitution_verbatim_with_inner_quotes():
    w = one_word(r'"a\t[value "x y"] \[b]"')
    assert w.text == 'a\t[value "x y"] [b]'


def test_unescape_alone():
    assert unescape(r"a\nb\\c") == "a\nb\\c" and unescape("plain") == "plain"


# -- bare words -----------------------------------------------------------------------------------

def test_bare_word_with_nested_command_substitution():
    line = "file [file dirname [value root.name]]/x.exr"
    assert cmds(line) == [["file", "[file dirname [value root.name]]/x.exr"]]
    assert kinds(line) == [["bare", "bare"]]


def test_bare_word_substitution_holding_braces_quotes_and_brackets():
    text = 'k [python {nuke.thisNode()["a]"]}]x [if {$a == "]"} {return [b]}]'
    assert cmds(text) == [["k", '[python {nuke.thisNode()["a]"]}]x', '[if {$a == "]"} {return [b]}]']]


def test_mid_word_quote_in_substitution_is_literal():
    assert cmds('k [python nuke.toNode("R1")]') == [["k", '[python nuke.toNode("R1")]']]


def test_bare_word_is_verbatim_and_braces_inside_are_literal():
    assert cmds(r"a\ b c{d}e 0x6493e9ff") == [[r"a\ b", "c{d}e", "0x6493e9ff"]]


def test_substitution_over_several_lines():
    [[a, b], [c]] = list(split_commands("k [a\nb]\nnext"))
    assert b.text == "[a\nb]" and (c.line, c.col) == (3, 1)


# -- commands -------------------------------------------------------------------------------------

def test_comments_only_at_command_start():
    assert cmds("# c1\nset a #b\n  # c2 \\\n still comment\nx ; # c3\ny") == [
        ["set", "a", "#b"], ["x"], ["y"]]


def test_semicolons_separate_commands_outside_words():
    assert cmds('a 1; b {2;3} "4;5" [c;d];e') == [["a", "1"], ["b", "2;3", "4;5", "[c;d]"], ["e"]]


def test_backslash_newline_between_words_is_a_space():
    [[a, b, c]] = list(split_commands("a \\\n   b\\\nc"))
    assert (a.text, b.text, c.text) == ("a", "b", "c") and (c.line, c.col) == (3, 1)


@pytest.mark.parametrize("eol", ["\n", "\r\n", "\r"])
def test_line_endings_and_positions(eol):
    text = eol.join(["Blur {", " size 3", " label {a", "b}", "}", "push 0"])
    [[blur, body], [push, zero]] = list(split_commands(text))
    assert body.text == "\n size 3\n label {a\nb}\n"
    assert (push.line, push.col, zero.col) == (6, 1, 6)


def test_no_final_newline_and_empty_input():
    assert cmds("a b") == [["a", "b"]] and cmds("") == [] and cmds(" \n ;\n") == []


def test_positions_and_raw_slices():
    text = 'Blur {\n size 3\n}\nset N1 [stack 0]\n label "x"'
    words = [w for c in split_commands(text) for w in c]
    assert [(w.line, w.col) for w in words] == [(1, 1), (1, 6), (4, 1), (4, 5), (4, 8), (5, 2), (5, 8)]
    assert all(text[w.start:w.end] == w.raw for w in words)


def test_split_commands_with_a_start_position():
    [[k, v]] = list(split_commands("k v", line=10, col=7))
    assert (k.line, k.col, v.col) == (10, 7, 9)


_MIXED = """Blur {
 inputs 2
 size 3
 label "a \\"b\\" \\[x]"
 k {{parent.size} 1}
 n {a {b {c}}}
\t tab\t{x}\f
 x 1; y "2"
 j \\
  1
 u "\\n\\t"  \v
 e {}
 w \xa0x
 z [value y]
}
"""


def _split_all(text: str) -> list[list[tuple]]:
    out = []
    for cmd in split_commands(text):
        out.append([(w.text, w.kind, w.line, w.col, w.raw, w.start, w.end) for w in cmd])
        if cmd[-1].kind == "brace":
            out.extend([(w.text, w.kind, w.line, w.col, w.raw) for w in c]
                       for c in split_commands(cmd[-1].text, line=cmd[-1].line, col=cmd[-1].col + 1))
    return out


def test_fast_path_splits_like_the_general_path(monkeypatch):
    from nodegraph.nuke import tcl
    fast = _split_all(_MIXED)
    assert fast[1] == [("inputs", "bare", 2, 2, "inputs"), ("2", "bare", 2, 9, "2")]
    monkeypatch.setattr(tcl, "_FAST_PATH", False)
    assert _split_all(_MIXED) == fast


# -- lists ----------------------------------------------------------------------------------------

def test_split_list_treats_newlines_and_semicolons_as_list_syntax():
    assert [w.text for w in split_list("a {b c}\n\"d e\" f;g [h i]\n\n")] == ["a", "b c", "d e", "f;g", "[h i]"]
    assert [w.text for w in split_list("# not a comment")] == ["#", "not", "a", "comment"]
    assert split_list("   ") == []


def test_split_list_of_a_nested_value_with_positions():
    [cmd] = list(split_commands("format {{1 2}\n {3 4}}"))
    v = cmd[1]
    a, b = split_list(v.text, line=v.line, col=v.col + 1)
    assert (a.text, a.line, a.col) == ("1 2", 1, 9)
    assert (b.text, b.line, b.col) == ("3 4", 2, 2)


def test_list_element_followed_by_junk_is_an_error():
    with pytest.raises(NkSyntaxError, match="extra characters after close-brace"):
        split_list("{a}b")


# -- errors ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("text, line, col, what", [
    ("Blur {\n size 3\n", 1, 6, "unclosed brace opened here"),
    ('a\n k "abc\n', 2, 4, "unclosed quote"),
    ("a\n  b [value x\n", 2, 5, "unclosed bracket"),
    ("a\n  b [value {x\n]\n", 2, 12, "unclosed brace"),
    ("k {a}b", 1, 6, "extra characters after close-brace"),
    ('k "a"b', 1, 6, "extra characters after close-quote"),
])
def test_errors_name_line_and_column(text, line, col, what):
    with pytest.raises(NkSyntaxError) as info:
        list(split_commands(text))
    err = info.value
    assert (err.line, err.column) == (line, col)
    assert what in str(err) and f"line {line}, column {col}: " in str(err)
    assert isinstance(err, NodeGraphError)


def test_error_carries_a_path():
    err = NkSyntaxError("bad", line=3, column=4, path="/x/a.nk")
    assert str(err) == "file '/x/a.nk': line 3, column 4: bad" and err.path == "/x/a.nk"


# -- quote ----------------------------------------------------------------------------------------

@pytest.mark.parametrize("text, quoted", [
    ("Merge1", "Merge1"),
    ("rgba.red", "rgba.red"),
    ("-0.5e+3", "-0.5e+3"),
    ("", '""'),
    ("a b", "{a b}"),
    ("{x}", "{{x}}"),
    ("[value x]", "{[value x]}"),
    ("$x", "{$x}"),
    ("a}", r'"a\}"'),
    ("a\\", '"a\\\\"'),
    ('say "hi"\n', '{say "hi"\n}'),
    ("a}[b]$c\"\\", r'"a\}\[b\]\$c\"\\"'),
    ("\r", r'"\r"'),
    ("x\x00", r'"x\x00"'),
])
def test_quote_forms(text, quoted):
    assert quote(text) == quoted
    assert split_list(quoted)[0].text == text


_TRICKY = st.text(alphabet=st.sampled_from(list('ab {}[]"\\$;#\n\t\r\x00 é€xu0') + ["\U0001F600"]))


@settings(max_examples=400, deadline=None)
@given(st.one_of(st.text(), _TRICKY))
def test_quote_round_trips(text):
    words = split_list(quote(text))
    assert len(words) == 1 and words[0].text == text
    [[word]] = list(split_commands(quote(text)))  # also as a word of a command
    assert word.text == text


@settings(max_examples=400, deadline=None)
@given(st.one_of(st.text(), _TRICKY))
def test_quoted_value_reads_back_inside_a_node_block(text):
    """A node's knobs sit in a braced block whose end is found by counting braces, quotes or not:
    a value with unbalanced braces must escape them (a fuzzed node name ``V{{curve`` was written
    unescaped and the script no longer read)."""
    [[_, body]] = list(split_commands("NoOp {\n k " + quote(text) + "\n}\n"))
    [[_, value]] = list(split_commands(body.text))
    assert value.text == text
