"""The TCL of Nuke file knobs (nodegraph.filepath): supported forms, clear errors, never running code."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from nodegraph.errors import KnobError
from nodegraph.filepath import MAX_DEPTH, expand_file_knob, parse_file_knob, resolve_relative, tcl_string
from nodegraph.nuke.script import read_script

SCRIPT = "/shots/sh010/comp/sh010_comp_v003.nk"
ENV = {"SHOW_ROOT": "/mnt/show", "SHOT": "sh010"}
VALUES = {"root.first_frame": 1001, "root.fps": 24.0, "Read1.file": "/plates/a.####.exr", "first": 1001.0,
          "this.label": "hero", "parent.pad": 4, "Grade1.white": [1.0, 0.5, 0.25, 1.0]}

NK_DATA = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "nk"
if not NK_DATA.is_dir():
    NK_DATA = Path("/work/shared/data/nk")


def _lookup(ref: str):
    if ref not in VALUES:
        raise KnobError(f"no knob {ref!r} here")
    return VALUES[ref]


def expand(text: str, **kw) -> str:
    args = dict(node="Read1", frame=1012, script_path=SCRIPT, lookup=_lookup, environ=ENV)
    args.update(kw)
    return expand_file_knob(text, **args)


@pytest.mark.parametrize("text,expected", [
    # the script's folder and name
    ("[file dirname [value root.name]]/plates/x.%04d.exr", "/shots/sh010/comp/plates/x.%04d.exr"),
    ("[value root.name]", SCRIPT),
    ("[file tail [value root.name]]", "sh010_comp_v003.nk"),
    ("[file rootname [file tail [value root.name]]].####.exr", "sh010_comp_v003.####.exr"),
    ("[file extension [value root.name]]", ".nk"),
    ("[file join [file dirname [value root.name]] .. renders x.exr]", "/shots/sh010/comp/../renders/x.exr"),
    ("[file join a /abs b]", "/abs/b"),
    # the frame
    ("render.[frame].exr", "render.1012.exr"),
    ("render.[format %04d [frame]].exr", "render.1012.exr"),
    ("render.[format %06d [frame]].exr", "render.001012.exr"),
    ("[format %s_%03d sh [value parent.pad]]", "sh_004"),
    ("[format %.2f [value root.fps]]", "24.00"),
    ("[format 100%%]", "100%"),
    # knobs of this node, another node and the root
    ("[value root.first_frame]", "1001"),
    ("[value first]", "1001"),
    ("[value this.label].exr", "hero.exr"),
    ("[value Read1.file]", "/plates/a.####.exr"),
    ("[value Grade1.white]", "1 0.5 0.25 1"),
    ("[value {root.name}]", SCRIPT),
    ('[value "root.name"]', SCRIPT),
    # the python forms real scripts use, matched as text
    ("[python nuke.script_directory()]/vitmatte_small.pt", "/shots/sh010/comp/vitmatte_small.pt"),
    ("[python {nuke.script_directory()}]/Cattery/x.cat", "/shots/sh010/comp/Cattery/x.cat"),
    ("[python { nuke.script_directory() }]/x", "/shots/sh010/comp/x"),
    ("[python os.path.dirname(nuke.root().name())]/x.exr", "/shots/sh010/comp/x.exr"),
    ("[python os.path.dirname( nuke.root().name() )]/x.exr", "/shots/sh010/comp/x.exr"),
    ("[python {nuke.root().name()}]", SCRIPT),
    ("[python nuke.root()['name'].value()]", SCRIPT),
    ("[python {nuke.root().knob('name').value()}]", SCRIPT),
    ("[python os.path.basename(nuke.root().name())]", "sh010_comp_v003.nk"),
    ("f.[python nuke.frame()].exr", "f.1012.exr"),
    ("[python os.environ['SHOW_ROOT']]/x", "/mnt/show/x"),
    ("[python {os.getenv(\"SHOT\")}]/x", "sh010/x"),
    ("[python os.environ.get('SHOT')]", "sh010"),
    # environment variables
    ("$env(SHOW_ROOT)/$env(SHOT)/plates/p.####.exr", "/mnt/show/sh010/plates/p.####.exr"),
    ("[getenv SHOW_ROOT]/x.exr", "/mnt/show/x.exr"),
    # left alone: padding tokens, Windows separators, escaped brackets, a lone $
    ("/plates/a.####.exr", "/plates/a.####.exr"),
    ("/plates/a.%04d.exr", "/plates/a.%04d.exr"),
    ("/plates/a.$F4.exr", "/plates/a.$F4.exr"),
    (r"C:\shots\sh010\a.exr", r"C:\shots\sh010\a.exr"),
    (r"/a/\[v2\].exr", "/a/[v2].exr"),
    ("/a/b$.exr", "/a/b$.exr"),
    ("/a/{b}.exr", "/a/{b}.exr"),
    ("", ""),
])
def test_supported_forms(text: str, expected: str) -> None:
    assert expand(text) == expected


@pytest.mark.parametrize("path,expected", [
    ("/a/b/c.exr", "/a/b"), ("/a/b/", "/a"), ("c.exr", "."), ("/c.exr", "/"), ("/", "/"), ("a//b", "a"),
])
def test_file_dirname_follows_tcl(path: str, expected: str) -> None:
    assert expand(f"[file dirname {path}]") == expected


@pytest.mark.parametrize("path,tail,root,ext", [
    ("/a.b/c", "c", "/a.b/c", ""), ("/a/c.tar.gz", "c.tar.gz", "/a/c.tar", ".gz"), ("/a/b/", "b", "/a/b/", ""),
])
def test_file_tail_rootname_extension_follow_tcl(path: str, tail: str, root: str, ext: str) -> None:
    assert expand(f"[file tail {path}]") == tail
    assert expand(f"[file rootname {path}]") == root
    assert expand(f"[file extension {path}]") == ext


@pytest.mark.parametrize("text,says", [
    ("[lindex {a b} 0]/x.exr", "the TCL command 'lindex' is not supported"),
    ("[if {1} {return a}]/x.exr", "the TCL command 'if' is not supported"),
    ("[file split /a/b]", "'file split' is not supported"),
    ("[python nuke.thisNode().name()]", "the python expression 'nuke.thisNode().name()' is not supported"),
    ("[python -exec {import os}]", "never runs Python"),
    ("[value Nope.file]", "[value Nope.file]: no knob 'Nope.file' here"),
    ("[getenv NOT_SET_ANYWHERE]/x", "the environment variable 'NOT_SET_ANYWHERE' is not set"),
    ("$env(NOT_SET_ANYWHERE)/x", "the environment variable 'NOT_SET_ANYWHERE' is not set"),
    ("[format %04d abc]", "is not a number"),
    ("[format %04d]", "more fields than arguments"),
    ("[format %0999999d 1]", "wider than"),
    ("[frame 3]", "takes no arguments"),
    ("[value]", "takes one argument"),
    ("[file dirname]", "takes 1 path argument"),
    ("a[frame", "never closed"),
    ("[frame]; [frame]", ""),  # fine: ';' outside brackets is text
    ("[frame; frame]", "several commands"),
    ("[]", "empty command"),
    ("[[frame]]", "a command name made by substitution is not supported"),
    ("[value {a}b]", "extra characters after a closing brace"),
])
def test_unsupported_forms_name_node_knob_and_text(text: str, says: str) -> None:
    if not says:
        assert expand(text) == "1012; 1012"
        return
    with pytest.raises(KnobError) as info:
        expand(text)
    err = info.value
    assert err.node == "Read1" and err.knob == "file"
    assert repr(text) in err.message and says in err.message
    assert "Read1" in str(err) and "file" in str(err)


def test_script_path_and_frame_are_needed_when_used() -> None:
    with pytest.raises(KnobError, match="not loaded from or saved to a file") as info:
        expand("[file dirname [value root.name]]/x.exr", script_path=None)
    assert info.value.knob == "file"
    with pytest.raises(KnobError, match="not loaded from or saved"):
        expand("[python {nuke.script_directory()}]/x.exr", script_path=None)
    with pytest.raises(KnobError, match=r"\[frame\] needs a frame"):
        expand("r.[frame].exr", frame=None)
    with pytest.raises(KnobError, match="needs a node"):
        expand("[value first]", lookup=None)
    # not used: not needed
    assert expand("/a/b.exr", script_path=None, frame=None, lookup=None) == "/a/b.exr"


def test_unsupported_forms_are_found_without_evaluating() -> None:
    """parse_file_knob checks every command up front (what validate() relies on), even in branches
    that would only fail later, and without any script path, frame or environment."""
    with pytest.raises(KnobError, match="'string'"):
        parse_file_knob("[frame]/[string tolower A]", node="W", knob="file")
    parse_file_knob("[value root.name]/[getenv UNSET_VARIABLE]/[frame]")


def test_python_is_never_run(tmp_path: Path) -> None:
    marker = tmp_path / "ran"
    for text in (f"[python open({str(marker)!r}, 'w')]", f"[python {{__import__('os').mkdir({str(marker)!r})}}]",
                 f"[python -exec {{open({str(marker)!r}, 'w')}}]"):
        with pytest.raises(KnobError, match="never runs Python"):
            expand(text)
    assert not marker.exists()


def test_exec_and_other_tcl_are_not_run(tmp_path: Path) -> None:
    marker = tmp_path / "ran"
    with pytest.raises(KnobError, match="'exec' is not supported"):
        expand(f"[exec touch {marker}]")
    assert not marker.exists()


def test_default_environment_is_os_environ(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NODEGRAPH_TEST_PLATES", "/env/plates")
    assert expand_file_knob("$env(NODEGRAPH_TEST_PLATES)/[getenv NODEGRAPH_TEST_PLATES]") == "/env/plates//env/plates"


def test_nesting_is_bounded() -> None:
    deep = "[file tail " * (MAX_DEPTH + 5) + "x" + "]" * (MAX_DEPTH + 5)
    with pytest.raises(KnobError, match="nested deeper"):
        expand(deep)
    ok = "[file tail " * (MAX_DEPTH - 1) + "/a/x" + "]" * (MAX_DEPTH - 1)
    assert expand(ok) == "x"
    with pytest.raises(KnobError):
        expand("[" * 100_000)


def test_resolve_relative() -> None:
    assert resolve_relative("plates/x.exr", SCRIPT) == "/shots/sh010/comp/plates/x.exr"
    assert resolve_relative("../plates/x.exr", SCRIPT) == "/shots/sh010/comp/../plates/x.exr"
    assert resolve_relative("/abs/x.exr", SCRIPT) == "/abs/x.exr"
    assert resolve_relative("plates/x.exr", None) == "plates/x.exr"
    assert resolve_relative("", SCRIPT) == ""


def test_tcl_string() -> None:
    assert [tcl_string(v) for v in (1.0, 1.5, 7, True, None, "a b", (1.0, 2))] == ["1", "1.5", "7", "true", "", "a b",
                                                                                  "1 2"]


_ALPHABET = st.sampled_from(list("[]{}\"\\$ ;\n%#/.ab") + ["[frame]", "[file ", "dirname ", "[value ", "root.name",
                                                           "$env(", "SHOT)", "[python ", "nuke.script_directory()",
                                                           "[format ", "%04d ", "[getenv ", "join "])


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.one_of(st.text(max_size=80), st.lists(_ALPHABET, max_size=30).map("".join)))
def test_arbitrary_text_gives_a_string_or_a_knob_error(text: str) -> None:
    try:
        out = expand(text)
    except KnobError as err:
        assert err.node == "Read1" and err.knob == "file"
        return
    assert isinstance(out, str)


_FILE_KNOBS = ("file", "proxy", "catFile", "torchScriptFile", "modelFile", "project_directory")


def _tcl_file_knobs() -> list[tuple[str, str, str]]:
    """(script, knob, text) of every file-like knob holding TCL in the public scripts."""
    found = []
    for path in sorted(NK_DATA.rglob("*.nk")):
        raw = path.read_bytes()
        if b"\\[" not in raw:
            continue
        script = read_script(path)
        for node in [*([script.root] if script.root is not None else []), *script.walk()]:
            for line in node.lines:
                if line.name in _FILE_KNOBS and line.value is not None and "[" in line.value.text:
                    found.append((str(path.relative_to(NK_DATA)), line.name, line.value.text))
    return found


def test_file_knobs_of_public_scripts() -> None:
    """Every file-like knob with TCL in ../shared/data/nk: the script_directory() forms expand to the
    script's folder; the rest (a Write preset built with [if]) is a clear error, never a crash."""
    found = _tcl_file_knobs()
    assert len(found) >= 15 and any(knob == "project_directory" for _, knob, _ in found)
    expanded = 0
    for script, knob, text in found:
        script_path = os.path.join("/projects", script)
        try:
            out = expand_file_knob(text, node="N", knob=knob, frame=1, script_path=script_path, lookup=_lookup,
                                   environ={})
        except KnobError as err:
            assert err.knob == knob and repr(text)[:40] in err.message
            assert "is not supported" in err.message or "no knob" in err.message
            continue
        assert "[" not in out and out.startswith(os.path.dirname(script_path))
        expanded += 1
    assert expanded >= 14
