"""``.nk`` statements and the stack language (nodegraph.nuke.script), on scripts written here and
on the public scripts in ../shared/data/nk."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from nodegraph.errors import NodeGraphError
from nodegraph.nuke.script import NkNode, NkScript, parse_script, read_script
from nodegraph.nuke.tcl import NkSyntaxError

DATA = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "nk"
FILES = sorted(p for p in DATA.rglob("*") if p.suffix in (".nk", ".gizmo")) if DATA.is_dir() else []


def by_name(script: NkScript) -> dict[str, NkNode]:
    return {n.name: n for n in script.walk()}


def messages(script: NkScript) -> str:
    return "\n".join(str(w) for w in script.warnings)


# -- the stack language ---------------------------------------------------------------------------

MERGE = """\
Constant {
 inputs 0
 name Bg
}
Constant {
 inputs 0
 name Fg
}
Constant {
 inputs 0
 name Matte
}
Merge2 {
 inputs 2+1
 operation plus
 name Merge1
}
"""


def test_top_of_stack_is_input_zero():
    s = parse_script(MERGE)
    n = by_name(s)
    merge = n["Merge1"]
    # Pushed Bg, Fg, Matte: the top (Matte, pushed last) is input 0 (B), then Fg (A), then Bg (mask).
    assert [i.name for i in merge.inputs] == ["Matte", "Fg", "Bg"]
    assert (merge.input_count, merge.mask_inputs) == (2, 1)
    assert s.warnings == []


def test_push_set_and_stack_depth():
    s = parse_script("""\
Constant { inputs 0
 name A }
set NA [stack 0]
Constant { inputs 0
 name B }
set NA2 [stack 1]
push $NA
push 0
Merge2 { inputs 2
 name M }
push $NA2
Blur { name Bl }
""")
    n = by_name(s)
    assert [i.name if i else None for i in n["M"].inputs] == [None, "A"]  # push 0 on top: B empty
    assert n["Bl"].inputs == [n["A"]]
    assert s.names["NA"] is n["A"] and s.names["NA2"] is n["A"]
    assert [x.name for x in s.nodes] == ["A", "B", "M", "Bl"]


def test_missing_inputs_line_means_one():
    s = parse_script("Constant {\n inputs 0\n name C\n}\nBlur {\n size 3\n name B\n}\nGrade {\n name G\n}\n")
    n = by_name(s)
    assert n["B"].input_count == 1 and not n["B"].has_inputs_line and n["B"].inputs == [n["C"]]
    assert n["G"].inputs == [n["B"]] and n["C"].inputs == [] and n["C"].has_inputs_line


def test_inputs_n_plus_m_and_zero():
    s = parse_script("Grade {\n inputs 1+1\n name G\n}\n")
    g = s.nodes[0]
    assert (g.input_count, g.mask_inputs, g.inputs) == (1, 1, [None, None])
    assert "2 input(s) but the stack holds 0" in messages(s)
    assert all(kl.name != "inputs" for kl in g.lines)


def test_stack_underflow_warns_and_leaves_inputs_unconnected():
    s = parse_script("Constant {\n inputs 0\n name C\n}\nMerge2 {\n inputs 3\n name M\n}\n")
    m = by_name(s)["M"]
    assert m.inputs == [by_name(s)["C"], None, None]
    assert "Merge2: 3 input(s) but the stack holds 1" in messages(s)
    assert (s.warnings[0].line, s.warnings[0].col) == (5, 1)


def test_push_of_a_name_never_set_warns_and_pushes_nothing():
    s = parse_script("push $Nnope\nBlur {\n name B\n}\n")
    assert s.nodes[0].inputs == [None]
    assert "'$Nnope', a name never set" in messages(s) and s.warnings[0].line == 1


def test_cut_paste_input_is_an_ordinary_name():
    s = parse_script("set cut_paste_input [stack 0]\nConstant {\n inputs 0\n name C\n}\n"
                     "set cut_paste_input [stack 0]\npush $cut_paste_input\nBlur {\n name B\n}\n")
    assert by_name(s)["B"].inputs == [by_name(s)["C"]] and s.warnings == []


# -- groups ---------------------------------------------------------------------------------------

NESTED = """\
Constant {
 inputs 0
 name Src
}
Group {
 name Outer
 addUserKnob {20 User}
 addUserKnob {7 amount}
 amount 0.5
}
 Input {
  inputs 0
  name Input1
 }
 Group {
  name Inner
 }
  Input {
   inputs 0
   name Input1
  }
  Output {
   name Output1
  }
 end_group
 Output {
  name Output1
 }
end_group
Blur {
 name After
}
"""


def test_nested_groups():
    s = parse_script(NESTED)
    outer = s.nodes[1]
    assert [x.name for x in s.nodes] == ["Src", "Outer", "After"]
    assert outer.inputs == [s.nodes[0]] and s.nodes[2].inputs == [outer]
    assert [c.name for c in outer.children] == ["Input1", "Inner", "Output1"]
    inner = outer.children[1]
    assert [c.name for c in inner.children] == ["Input1", "Output1"]
    assert inner.inputs == [outer.children[0]]  # the group's own stack: Input1 feeds Inner
    assert outer.children[2].inputs == [inner]
    assert [kl.name for kl in outer.lines] == ["name", "addUserKnob", "addUserKnob", "amount"]
    assert outer.lines[2].value.text == "7 amount" and outer.knob("amount").text == "0.5"
    assert not s.ends_open and s.warnings == []
    assert [n.name for n in s.walk()] == ["Src", "Outer", "Input1", "Inner", "Input1", "Output1", "Output1", "After"]


def test_gizmo_file_without_end_group_ends_open():
    s = parse_script("version 13.0 v1\nGizmo {\n inputs 2\n}\n Input {\n  inputs 0\n  name A\n }\n")
    assert s.ends_open and s.nodes[0].cls == "Gizmo" and [c.name for c in s.nodes[0].children] == ["A"]
    assert "end_group missing for 1 group(s)" in messages(s)


def test_stray_end_group_warns():
    s = parse_script("end_group\nBlur {\n}\n")
    assert "end_group without an open group" in messages(s) and len(s.nodes) == 1


def test_custom_group_classes():
    text = "MyGroup {\n name G\n}\n Blur {\n }\nend_group\n"
    assert parse_script(text, group_classes=frozenset({"MyGroup"})).nodes[0].children[0].cls == "Blur"


# -- clones ---------------------------------------------------------------------------------------

def test_clones():
    s = parse_script("""\
Constant {
 inputs 0
 name C
}
clone node7f6100171d00|Blur|21972 Blur {
 size 10
 name Blur1
}
set C171d00 [stack 0]
push $C171d00
clone $C171d00 {
 xpos 100
 name Blur2
}
clone $C171d00 {
 inputs 0
 name Blur3
}
""")
    n = by_name(s)
    original, twin, third = n["Blur1"], n["Blur2"], n["Blur3"]
    assert original.cls == "Blur" and original.clone_id == "7f6100171d00" and original.clone_of is None
    assert twin.cls == "Blur" and twin.clone_of is original and twin.knob("size") is None
    assert twin.inputs == [original] and original.inputs == [n["C"]]
    assert third.clone_of is original and third.inputs == []
    assert [x.name for x in s.nodes] == ["C", "Blur1", "Blur2", "Blur3"]


def test_clone_three_word_form_and_plain_original():
    s = parse_script("clone node1234|Grade|5 {\n name G1\n}\nset C1 [stack 0]\nclone $C1 {\n name G2\n}\n"
                     "Saturation {\n name S\n}\nset C2 [stack 0]\nclone $C2 {\n name S2\n}\n")
    n = by_name(s)
    assert n["G1"].cls == "Grade" and n["G1"].clone_id == "1234" and n["G2"].clone_of is n["G1"]
    assert n["S2"].clone_of is n["S"] and n["S2"].cls == "Saturation"


def test_clone_of_an_unset_name_warns_and_is_kept_verbatim():
    s = parse_script("clone $Cnope {\n xpos 1\n}\n")
    assert s.nodes == [] and s.other[0][1].text == "$Cnope" and "names no node" in messages(s)


# -- top-level commands ---------------------------------------------------------------------------

FULL = """\
#! /opt/Nuke14.0v6/libnuke-14.0.6.so -nx
#write_info Write1 file:"out.exr" format:"2048 1556 1"
version 14.0 v6
define_window_layout_xml {<?xml version="1.0" encoding="UTF-8"?>
<layout version="1.0"/>
}
Root {
 inputs 0
 name /tmp/x.nk
 format "2048 1556 0 0 2048 1556 1 2K_Super_35(full-ap)"
 proxy_format "1024 778 0 0 1024 778 1 1K_Super_35(full-ap)"
 first_frame 1001
}
add_layer {depth depth.Z}
add_layer {forward forward.u forward.v}
# a comment later on
Blur {
 inputs 0
 size {{curve x1 0 S x100 50}}
 file [file dirname [value root.name]]/x.exr
 mix {{[value parent.size]}}
 label "say \\"hi\\"\\n"
 multi {1
 2 3}
 name B
}
"""


def test_full_script_header_root_layers_layout():
    s = parse_script(FULL)
    assert s.header == ["#! /opt/Nuke14.0v6/libnuke-14.0.6.so -nx",
                        '#write_info Write1 file:"out.exr" format:"2048 1556 1"']
    assert s.version == "14.0 v6"
    assert s.layout.text.startswith('<?xml version="1.0"') and s.layout.kind == "brace"
    assert s.root.cls == "Root" and s.root not in s.nodes
    assert s.root.knob("format").text == "2048 1556 0 0 2048 1556 1 2K_Super_35(full-ap)"
    assert s.root.knob("proxy_format").kind == "quote" and s.root.name == "/tmp/x.nk"
    assert [w.text for w in s.layers] == ["depth depth.Z", "forward forward.u forward.v"]
    assert [c.text for c in s.comments] == ["# a comment later on"]
    [blur] = s.nodes
    assert blur.knob("size").raw == "{{curve x1 0 S x100 50}}" and blur.knob("size").kind == "brace"
    assert blur.knob("file").text == "[file dirname [value root.name]]/x.exr"
    assert blur.knob("mix").text == "{[value parent.size]}"
    assert blur.knob("label").text == 'say "hi"\n'
    assert blur.knob("multi").text == "1\n 2 3"
    assert (blur.line, blur.knob("name").line, blur.knob("name").col) == (17, 25, 7)
    assert s.warnings == [] and s.other == []


def test_crlf_lone_cr_and_no_final_newline_parse_alike():
    base = parse_script(FULL.rstrip("\n"))
    for variant in (FULL.replace("\n", "\r\n"), FULL.replace("\n", "\r")):
        s = parse_script(variant)
        assert [kl.value.text for kl in s.nodes[0].lines] == [kl.value.text for kl in base.nodes[0].lines]
        assert s.version == base.version and s.header == base.header


def test_node_without_body_and_on_one_line():
    s = parse_script("Dot\nBlur { size 3 ; name B }\n")
    assert s.nodes[0].cls == "Dot" and s.nodes[0].lines == [] and s.nodes[0].body is None
    assert s.nodes[1].knob("size").text == "3" and s.nodes[1].inputs == [s.nodes[0]]


def test_unknown_commands_are_kept():
    s = parse_script("knob root.first_frame 1001\nBlur {\n}\n")
    assert [w.text for w in s.other[0]] == ["knob", "root.first_frame", "1001"] and len(s.nodes) == 1


# -- malformed but real ---------------------------------------------------------------------------

def test_knob_without_value_and_extra_words():
    s = parse_script("Blur {\n selected\n size 3 4 {5}\n name B\n}\n")
    b = s.nodes[0]
    assert (b.lines[0].name, b.lines[0].value) == ("selected", None)
    assert [w.raw for w in b.lines[1].extra] == ["4", "{5}"]
    assert "knob 'selected' has no value" in messages(s) and s.warnings[0].line == 2


def test_doubled_inputs_line_last_wins():
    s = parse_script("Merge2 {\n inputs 2\n inputs 0\n}\nBlur {\n inputs 0 inputs 0\n}\n")
    assert s.nodes[0].input_count == 0 and s.nodes[1].input_count == 0
    assert messages(s).count("doubled 'inputs'") == 2


def test_quoted_knob_name():
    s = parse_script('OFXkeylight {\n "Screen Matte" 0\n}\n')
    assert s.nodes[0].lines[0].name == "Screen Matte"


# -- not scripts ----------------------------------------------------------------------------------

@pytest.mark.parametrize("text, line, col, what", [
    ('{"nodes": {}}', 1, 1, "cannot start with"),
    ("Blur {\n size 3\n", 1, 6, "unclosed brace"),
    ("Blur {\n}\n Grade \"x\"\n", 3, 8, "must be a braced word"),
    ("import os\n", 1, 8, "must be a braced word"),
    ("Blur {\n inputs two\n}\n", 2, 9, "'inputs' must be a count"),
    ("Blur {\n inputs 99999999\n}\n", 2, 9, "more than"),
    ("ok {\n}\n[x] 1\n", 3, 1, "cannot start with"),
    ("Blur {\n}\nclone node1|a b|1 {\n}\n", 3, 7, "clone statement"),
    ("version 1\nab\0cd {\n}\n", 2, 3, "binary data"),
])
def test_not_a_script_raises_with_line_and_column(text, line, col, what):
    with pytest.raises(NkSyntaxError) as info:
        parse_script(text, source="x.nk")
    err = info.value
    assert (err.line, err.column) == (line, col) and what in str(err)
    assert str(err).startswith(f"file 'x.nk': line {line}, column {col}: ")


def test_read_script_decodes_and_refuses_binary(tmp_path):
    latin = tmp_path / "old.nk"
    latin.write_bytes(b"Blur {\n label caf\xe9\n}\n")
    assert read_script(latin).nodes[0].knob("label").text == "café"
    utf = tmp_path / "new.nk"
    utf.write_bytes("\ufeffBlur {\n label café€\n}\n".encode("utf-8"))
    assert read_script(utf).nodes[0].knob("label").text == "café€"
    binary = tmp_path / "x.exr"
    binary.write_bytes(b"v/1\x01\x00\x00\x00\x02" + bytes(range(256)))
    with pytest.raises(NkSyntaxError, match="binary data") as info:
        read_script(binary)
    assert info.value.path == str(binary)
    with pytest.raises(NodeGraphError, match="cannot read the script"):
        read_script(tmp_path / "missing.nk")


# -- the public scripts ---------------------------------------------------------------------------

_NODE_LINE = re.compile(r"^ *(clone \$\S+|(?:clone \S+ )?[A-Z][\w.]*) \{ *$", re.M)


@pytest.mark.skipif(not FILES, reason="../shared/data/nk is not there")
def test_public_scripts_are_all_there():
    assert len(FILES) == 61


@pytest.mark.parametrize("path", FILES, ids=[p.name for p in FILES])
def test_public_script_parses(path):
    s = read_script(path)
    text = path.read_text(encoding="latin-1")
    lines = text.splitlines()
    nodes = list(s.walk())
    starts = {n.line for n in nodes}
    assert len(starts) == len(nodes)  # one node per statement
    # A crude independent count: every 'Class {' line alone is a node we found...
    crude = {text.count("\n", 0, m.start()) + 1 for m in _NODE_LINE.finditer(text) if m.group(1) != "Root"}
    assert crude <= starts
    # ...and every node we found starts on a line that reads 'Class {' or 'clone ...'.
    for n in nodes:
        assert re.match(rf" *(clone |{re.escape(n.cls)} \{{)", lines[n.line - 1]), (n, lines[n.line - 1])
    groups = [n for n in nodes if n.children is not None]
    assert len(groups) == len(re.findall(r"^ *end_group *$", text, re.M)) and not s.ends_open
    for n in nodes:  # inputs are nodes of the same level (or None)
        level = next((g.children for g in groups if n in g.children), s.nodes)
        assert all(i is None or i in level for i in n.inputs), n
        assert len(n.inputs) == n.input_count + n.mask_inputs
    if "\nversion " in "\n" + text:
        assert s.version and s.version[0].isdigit()
    assert s.other == []


@pytest.mark.skipif(not FILES, reason="../shared/data/nk is not there")
def test_public_scripts_details():
    s = read_script(DATA / "maxWiklund+nuke_parser" / "test_scenes" / "nested_group.nk")
    assert s.version == "14.0 v6" and s.header[0].startswith("#! ") and s.root.knob("fps").text == "25"
    clones = [n for f in FILES for n in read_script(f).walk() if n.clone_of is not None]
    assert len(clones) == 5 and all(c.cls == c.clone_of.cls for c in clones)
    odd = read_script(DATA / "colour-science+colour-nuke" / "colour_nuke" / "scripts" /
                      "tangent_space_normals_utilities.nk")
    assert "doubled 'inputs'" in messages(odd)
