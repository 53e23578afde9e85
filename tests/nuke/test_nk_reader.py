"""nodegraph.nuke.reader: .nk scripts written here, each grammar feature alone and mixed."""

from __future__ import annotations

import re
import textwrap
import typing
from pathlib import Path

import pytest
import torch

import nodegraph as ng
from nodegraph.curve import Curve
from nodegraph.expression import Expression
from nodegraph.node import UnknownNode
from nodegraph.nuke.reader import read_nk
from nodegraph.nuke.tcl import NkSyntaxError, split_list


_ONE_LINE = re.compile(r"^(\s*)(\S+) \{ (.*) \}$")


def expand(text: str) -> str:
    """Scripts here write short bodies on one line (``Blur { size 3 name B }``); a .nk has one knob
    per line, so each such body is spread over lines (pairs of TCL words)."""
    out = []
    for line in textwrap.dedent(text).splitlines():
        m = _ONE_LINE.match(line)
        if not m:
            out.append(line)
            continue
        words = split_list(m[3])
        out.append(f"{m[1]}{m[2]} {{")
        out.extend(f"{m[1]} {a.raw} {b.raw}" for a, b in zip(words[::2], words[1::2]))
        out.append(f"{m[1]}}}")
    return "\n".join(out) + "\n"


def nk(text: str, **kw):
    return read_nk(expand(text), **kw)


def graph(text: str, **kw) -> ng.Graph:
    return nk(text, **kw).graph


def test_top_of_stack_is_input_zero_merge_b_then_a_then_mask() -> None:
    g = graph("""
        Constant { inputs 0 name Matte }
        Constant { inputs 0 name Fg }
        Constant { inputs 0 name Bg }
        Merge2 { inputs 2+1 name M }
    """)
    # the stack holds Matte, Fg, Bg (Bg on top): input 0 = B = Bg, 1 = A = Fg, the mask = Matte
    assert g.inputs_of("M") == {"B": g.node("Bg"), "A": g.node("Fg"), "mask": g.node("Matte")}


def test_push_set_and_push_zero_wire_inputs_by_name() -> None:
    g = graph("""
        Constant { inputs 0 name C1 }
        set N1 [stack 0]
        Grade { name G1 }
        push 0
        push $N1
        Copy { inputs 2 name Cp }
    """)
    assert g.inputs_of("G1") == {"input": g.node("C1")}
    assert g.inputs_of("Cp") == {"B": g.node("C1")}  # input 1 (A) was pushed empty
    assert "A" not in g.inputs_of("Cp")


def test_missing_inputs_line_means_one_input() -> None:
    g = graph("""
        Constant { inputs 0 name C }
        Blur { size 3 name B1 }
        Blur { name B2 }
    """)
    assert g.inputs_of("B1") == {"input": g.node("C")}
    assert g.inputs_of("B2") == {"input": g.node("B1")}


def test_absent_knobs_take_nukes_defaults_not_ours() -> None:
    g = graph("""
        Root { inputs 0 format "320 240 0 0 320 240 1 QVGA" }
        Constant { inputs 0 name C }
        Merge2 { inputs 2 name M }
        Reformat { name R }
        Constant { inputs 0 name C2 format "1920 1080 0 0 1920 1080 1 HD_1080" }
    """)
    assert g.node("M").knobs.operation == "over"
    assert g.node("R").knobs.black_outside is False  # Nuke's Reformat default (ours is True)
    assert g.node("C").knobs.format == "320 240 1"  # an absent format is the root format
    assert g.node("R").knobs.format == "320 240 1"
    assert g.node("C2").knobs.format == "HD_1080"  # a known format by its name and size


def test_old_and_new_knob_names_both_map() -> None:
    g = graph("""
        Constant { inputs 0 name C }
        FrameHold { first_frame 7 name New }
        push $C
        FrameHold { firstFrame 9 name Old }
        push $C
        Keyer { input rgb operation "luminance key" name K }
        push 0
        push $C
        Merge2 { inputs 2 maskChannelMask -rgba.alpha name M }
    """.replace("push $C", "push $NC").replace("name C }", "name C }\n        set NC [stack 0]"))
    assert g.node("New").knobs.firstFrame == 7 and g.node("Old").knobs.firstFrame == 9
    assert g.node("K").knobs.layer == "rgb"
    assert g.node("M").knobs.maskChannelInput == "none"


def test_animation_in_every_form_the_files_use() -> None:
    g = graph("""
        Constant { inputs 0 name C }
        Grade {
         white {{curve x1 1 x10 2}}
         gamma {1 {curve x1 1 L x5 0.5} 1 1}
         mix {{frame/10}}
         add {{"parent.x * 2" x1 0 x10 5}}
         black {0.1 {frame/100} 0.1 0.1}
         name G
        }
        Transform { translate {{curve x1 0 x11 100} 5} rotate {{"frame > 5 ? 90 : 0"}} name T }
    """)
    gr, t = g.node("G"), g.node("T")
    assert gr.value("white", 1) == 1.0 and gr.value("white", 10) == 2.0  # a whole-knob curve: one value
    assert gr.value("gamma", 3) == (1.0, 0.75, 1.0, 1.0)  # L: linear from key 1 to 5
    assert gr.value("mix", 5) == pytest.approx(0.5)
    assert gr.value("black", 50) == pytest.approx((0.1, 0.5, 0.1, 0.1))
    assert t.value("translate", 6) == pytest.approx((50.0, 5.0))
    assert t.value("rotate", 5) == 0 and t.value("rotate", 6) == 90
    add = gr.animated["add"].whole  # an expression saved with keys of its own
    assert isinstance(add, Expression) and add.text == "parent.x * 2" and isinstance(add.keys, Curve)
    assert add.keys.evaluate(10) == 5


def test_channel_forms() -> None:
    g = graph("""
        Constant { inputs 0 name C }
        Grade { channels rgba name G1 }
        Grade { channels {rgba.red rgba.green -rgba.blue -rgba.alpha} name G2 }
        Grade { channels {-rgba.red -rgba.green -rgba.blue -rgba.alpha} name G3 }
        Copy { inputs 2 from0 -rgba.alpha to0 rgba.alpha name Cp }
    """)
    assert g.node("G1").knobs.channels == "rgba"
    assert g.node("G2").knobs.channels == "rgba.red,rgba.green"
    assert g.node("G3").knobs.channels == "none"
    assert g.node("Cp").knobs.from0 == "none"


def test_format_strings_eight_seven_fields_and_names() -> None:
    g = graph("""
        Constant { inputs 0 format "2048 1556 0 0 2048 1556 1 2K_Super_35(full-ap)" name A }
        Constant { inputs 0 format "1000 500 0 0 1000 500 2" name B }
        Constant { inputs 0 format HD_720 name C }
        Constant { inputs 0 format "1920 1080 0 0 1920 1080 1 my_hd" name D }
    """)
    assert g.node("A").knobs.format == "2K_Super_35(full-ap)"
    assert g.node("B").knobs.format == "1000 500 2"
    assert g.node("C").knobs.format == "HD_720"
    assert g.node("D").knobs.format == "1920 1080 1"  # a name Nuke does not ship: by its size


def test_groups_inputs_by_number_user_knobs_and_links() -> None:
    g = graph("""
        Constant { inputs 0 name Plate }
        Constant { inputs 0 name Matte }
        Group {
         inputs 2
         name Soft
         addUserKnob {20 User}
         addUserKnob {7 size l Size R 0 100}
         size 4
         addUserKnob {6 flip_it l "Flip it" +STARTLINE}
         addUserKnob {4 mode M {soft hard}}
         mode hard
         addUserKnob {41 blur_filter l Filter T Blur1.filter}
        }
         Input { inputs 0 name mask number 1 }
         Input { inputs 0 name img }
         Blur { size {{parent.size}} name Blur1 }
         Output { name Output1 }
        end_group
    """)
    soft = g.node("Soft")
    assert isinstance(soft, ng.Group)
    # top of stack (Matte) is input 0: the Input numbered 0 ('img')
    assert g.inputs_of("Soft") == {"img": g.node("Matte"), "mask": g.node("Plate")}
    assert soft.value("size", 1) == 4 and soft.knobs.mode == "hard" and soft.knobs.flip_it is False
    assert soft.subgraph.node("Blur1").value("size", 1) == 4
    assert soft.link_knobs == {"blur_filter": "Blur1.filter"}
    soft.set(blur_filter="box")
    assert soft.subgraph.node("Blur1").knobs.filter == "box"
    assert g.validate() == []


def test_clones_share_knobs_and_keep_their_own_inputs() -> None:
    g = graph("""
        Constant { inputs 0 name C1 }
        Blur { size 5 name Blur1 }
        set C0a1 [stack 0]
        Constant { inputs 0 name C2 }
        clone $C0a1 { xpos 10 ypos 20 }
    """)
    clone = [n for n in g if n.extras.get("nuke", {}).get("clone_of") == "Blur1"]
    assert len(clone) == 1 and clone[0].knobs.size == 5
    assert g.inputs_of(clone[0]) == {"input": g.node("C2")}
    assert g.inputs_of("Blur1") == {"input": g.node("C1")}


def test_unsupported_classes_are_placeholders_listed_by_validate_failing_only_downstream() -> None:
    res = nk("""
        Constant { inputs 0 format "8 8 0 0 8 8 1" name C }
        set N1 [stack 0]
        Kronos { uv forward scale 3 name VB }
        push $N1
        Grade { white 2 name G }
        Viewer { inputs 1 name Viewer1 }
        BackdropNode { inputs 0 name Backdrop1 bdwidth 300 }
    """)
    g = res.graph
    vb = g.node("VB")
    assert isinstance(vb, UnknownNode) and vb.type_name == "Kronos"
    assert res.unsupported == {"Kronos": 1}
    issues = [i for i in g.validate() if i.kind == "unknown_type"]
    assert [i.node for i in issues] == ["VB"]  # Viewer and BackdropNode are not issues
    assert "Kronos" in issues[0].message
    assert g.evaluate("G", 1).pixels.shape[-1] == 8  # renders: the placeholder is not upstream
    with pytest.raises(ng.GraphError, match="Kronos"):
        g.evaluate("VB", 1)
    assert vb.extras["nuke"]["lines"][:2] == [["uv", "forward"], ["scale", "3"]]  # kept verbatim


def test_a_node_with_an_input_nodegraph_lacks_is_kept_as_a_placeholder() -> None:
    res = nk("""
        Constant { inputs 0 name A }
        Constant { inputs 0 name B }
        Crop { inputs 2 name M }
    """)
    node = res.graph.node("M")
    assert isinstance(node, UnknownNode) and "input 1" in node.problem()
    assert any("placeholder" in w for w in res.warnings)


def test_malformed_real_world_files_load_with_warnings() -> None:
    res = nk("""
        Constant { inputs 0 name C }
        Grade {
         inputs 1 inputs 1
         white
         name G
        }
        push $never_set
        Blur { name B }
    """)
    assert {"G", "B", "C"} <= set(res.graph.nodes)
    text = "\\n".join(res.warnings)
    assert "doubled 'inputs'" in text and "no value" in text and "never set" in text


def test_not_a_script_is_a_typed_error_with_line_and_column() -> None:
    with pytest.raises(NkSyntaxError) as info:
        read_nk('Grade {\n white "unterminated\n')
    assert info.value.line is not None and info.value.column is not None


def test_shuffle2_mappings_and_from_input_forms() -> None:
    g = graph("""
        Constant { inputs 0 name C }
        Shuffle2 {
         fromInput1 {{0} B}
         fromInput2 {{1} A}
         mappings "4 rgba.alpha 0 3 rgba.red 0 0 rgba.alpha 0 3 rgba.green 0 1 rgba.alpha 0 3 rgba.blue 0 2 white -1 -1 rgba.alpha 0 3"
         name S
        }
    """)
    s = g.node("S")
    assert s.knobs.fromInput1 == "B" and s.knobs.fromInput2 == "A"
    assert s.knobs.mappings == {"rgba.red": "rgba.alpha", "rgba.green": "rgba.alpha",  # in1 wires, bare
                                "rgba.blue": "rgba.alpha", "rgba.alpha": "white"}


def test_inference_serialised_knobs() -> None:
    res = nk("""
        Constant { inputs 0 name C }
        Inference { modelFile /models/x.cat serialiseKnob {strength:2.5;mode:fast;} name I }
        Inference { modelFile /models/y.cat serialiseKnob {s:{"parent.x"};} name J }
    """)
    assert res.graph.node("I").knobs.knobValues == {"strength": 2.5, "mode": "fast"}
    assert "knobValues" in res.graph.node("J").invalid_knobs  # an expression: kept, named by validate
    assert any(i.node == "J" and i.knob == "knobValues" for i in res.graph.validate())


def test_choice_knob_driven_by_an_expression() -> None:
    g = graph("""
        Constant { inputs 0 name C }
        Merge2 { inputs 2 operation plus name Src }
        Merge2 { inputs 2 operation {{Src.operation}} name Follow }
    """)
    assert g.node("Follow").value("operation", 1) == "plus"


def test_root_settings_and_script_metadata() -> None:
    g = graph("""
        #! /opt/Nuke14/nuke -nx
        version 14.0 v5
        Root {
         inputs 0
         first_frame 1001
         last_frame 1100
         fps 23.976
         format "2048 1152 0 0 2048 1152 1 my2k"
         colorManagement OCIO
        }
        add_layer {mylayer mylayer.a mylayer.b}
    """)
    assert (g.root["first_frame"], g.root["last_frame"], g.root["fps"]) == (1001, 1100, 23.976)
    assert g.root["format"] == "2048 1152 1"
    meta = g.metadata["nuke"]
    assert meta["version"] == "14.0 v5" and ["colorManagement", "OCIO"] in meta["root"]
    assert meta["layers"] == ["{mylayer mylayer.a mylayer.b}"]


def test_invalid_node_names_are_renamed_and_kept_for_writing() -> None:
    res = nk("""
        Constant { inputs 0 name V-Gamut_luma }
    """)
    node = res.graph.node("V_Gamut_luma")
    assert node.extras["nuke"]["name"] == "V-Gamut_luma"


def test_gizmo_classes_are_read_from_the_gizmo_path(tmp_path: Path) -> None:
    (tmp_path / "MyGain.gizmo").write_text(expand("""
        version 14.0 v5
        Gizmo {
         addUserKnob {20 User}
         addUserKnob {7 gain}
         gain 2
        }
         Input { inputs 0 name Input1 }
         Multiply { value {{parent.gain}} name Mul }
         Output { name Output1 }
        end_group
    """))
    script = tmp_path / "comp.nk"
    script.write_text(expand("""
        Constant { inputs 0 color 0.25 format "4 4 0 0 4 4 1" name C }
        MyGain { gain 3 name G1 }
        MyGain { name G2 }
    """))
    g = ng.Graph.load(script)
    g1, g2 = g.node("G1"), g.node("G2")
    assert isinstance(g1, ng.Group) and g1.value("gain", 1) == 3 and g2.value("gain", 1) == 2
    assert torch.allclose(g.evaluate("G1", 1).pixels, torch.full((4, 4, 4), 0.75))
    assert g.node("G2").extras["nuke"]["gizmo"] is True
    assert g.path == str(script.resolve())


def test_expressions_read_choice_knobs_as_their_index() -> None:
    g = graph("""
        Constant { inputs 0 name C }
        Merge2 { inputs 2 operation over name M }
        Switch { which {{M.operation == 22}} name S }
    """)
    choices = typing.get_args(type(g.node("M").knobs).model_fields["operation"].annotation)
    assert choices.index("over") == 22  # Nuke's Merge2 list is alphabetical, 'over' its 23rd
    assert g.node("S").value("which", 1) == 1


def test_hostile_nesting_and_self_containing_gizmos_are_refused_by_name(tmp_path: Path) -> None:
    def nested(depth: int) -> str:
        return ("".join(f"Group {{\n name G{i}\n}}\n" for i in range(depth)) + "Blur {\n name B\n}\n"
                + "end_group\n" * depth)

    from nodegraph.document import graph_to_dict
    from nodegraph.nuke.writer import dumps_nk

    deep = read_nk(nested(60)).graph  # deep but real: reads, writes back, validates
    assert read_nk(dumps_nk(deep)).graph.to_dict() == graph_to_dict(deep)
    assert [i.kind for i in deep.validate()].count("node_check") == 60  # groups without Output
    with pytest.raises(NkSyntaxError, match="nested more than 64 deep") as info:
        read_nk(nested(300))
    assert info.value.line is not None
    (tmp_path / "Loop.gizmo").write_text("Gizmo {\n}\n Input {\n name Input1\n}\n Loop {\n name Inner\n}\n"
                                         " Output {\n name Output1\n}\nend_group\n")
    (tmp_path / "loop.nk").write_text("Loop {\n name L1\n}\n")
    g = ng.Graph.load(tmp_path / "loop.nk")
    inner = g.node("L1").subgraph.node("Inner")
    assert isinstance(inner, UnknownNode) and "contains itself" in inner.problem()


@pytest.mark.parametrize("cls, why", [("ScanlineRender", "3D nodes"), ("DeepMerge", "deep images"),
                                      ("ParticleEmitter", "particle"),
                                      ("OFXuk.co.thefoundry.keylight.keylight_v201", "OFX"),
                                      ("SomeStudioTool", None)])
def test_placeholders_of_whole_families_say_why(cls: str, why: str | None) -> None:
    g = graph(f"""
        Constant {{ inputs 0 format "4 4 0 0 4 4 1" name C }}
        {cls} {{ name P }}
    """)
    issue = next(i for i in g.validate() if i.node == "P")
    assert cls in issue.message
    if why:
        assert why in issue.message
        with pytest.raises(ng.GraphError, match=why):
            g.evaluate("P", 1)
    else:
        assert issue.message.endswith("(kept with its knobs and inputs)")
