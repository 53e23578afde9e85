"""ModifyMetaData: edits an image's metadata, as Nuke's node of that name.

Nuke writes the edits as a TCL list of commands, ``metadata {{set key value} {remove key}}``; the
``metadata`` knob holds that list's text as the script gives it, so a script read and written back
keeps it verbatim. ``parse_edits`` reads it (a small TCL list reader: braces, quotes, backslashes).
"""

from __future__ import annotations

from typing import Annotated

from pydantic import AfterValidator

from nodegraph.evaluator import Context
from nodegraph.image import Image
from nodegraph.node import Input, Knobs, Node

_ESCAPES = {"n": "\n", "t": "\t", "r": "\r"}


def tcl_words(text: str) -> list[str]:
    """The elements of a TCL list: ``{...}`` kept literally (one level of braces removed),
    ``"..."`` and bare words with backslash escapes resolved. Raises ValueError if unbalanced."""
    words: list[str] = []
    i, n = 0, len(text)
    while i < n:
        while i < n and text[i].isspace():
            i += 1
        if i >= n:
            break
        if text[i] == "{":
            depth, j = 1, i + 1
            while j < n and depth:
                if text[j] == "\\":
                    j += 2
                    continue
                depth += {"{": 1, "}": -1}.get(text[j], 0)
                j += 1
            if depth:
                raise ValueError("unbalanced braces")
            words.append(text[i + 1:j - 1])
            i = j
            continue
        quoted = text[i] == '"'
        j = i + 1 if quoted else i
        out = []
        while j < n and (text[j] != '"' if quoted else not text[j].isspace()):
            if text[j] == "\\" and j + 1 < n:
                out.append(_ESCAPES.get(text[j + 1], text[j + 1]))
                j += 2
                continue
            out.append(text[j])
            j += 1
        if quoted:
            if j >= n:
                raise ValueError("unterminated quote")
            j += 1
        words.append("".join(out))
        i = j
    return words


def parse_edits(text: str) -> list[tuple[str, ...]]:
    """The commands of a ``metadata`` knob: ("set", key, value), ("remove", key), and ("unknown",
    text) for anything else."""
    edits: list[tuple[str, ...]] = []
    for item in tcl_words(text):
        words = tcl_words(item)
        if not words:
            continue
        op = words[0]
        if op == "set" and len(words) in (2, 3):
            edits.append(("set", words[1], words[2] if len(words) == 3 else ""))
        elif op == "remove" and len(words) == 2:
            edits.append(("remove", words[1]))
        else:
            edits.append(("unknown", item.strip()))
    return edits


def _valid(text: str) -> str:
    parse_edits(text)  # a ValueError becomes the knob's validation error
    return text


class ModifyMetaData(Node):
    """Nuke's ModifyMetaData: sets and removes metadata keys, in the order listed in ``metadata``
    (Nuke's text: ``{set key value}`` and ``{remove key}``, one per line); pixels pass unchanged
    (the tensor is shared).

    nodegraph's choices where the docs are silent: values are kept as the text written (Nuke would
    evaluate TCL in them, such as ``[value parent.x]``; nodegraph does not run TCL, so such a value
    is stored as written); keys are used exactly as written (``exr/owner`` and ``owner`` are
    different keys); removing an absent key does nothing; other commands are not applied and
    ``check()`` (so ``validate()``) reports them.
    """

    category = "MetaData"
    inputs = (Input("input", doc="Image whose metadata is edited."),)

    class Knobs(Knobs):
        metadata: Annotated[str, AfterValidator(_valid)] = ""
        """The edits as Nuke writes them: {set KEY VALUE} and {remove KEY} items."""

    def check(self) -> list[str]:
        return [f"knob 'metadata': {e[1]!r} is not a command nodegraph applies ({{set KEY VALUE}} or "
                "{remove KEY}); it is ignored" for e in parse_edits(self.knobs.metadata) if e[0] == "unknown"]

    def compute(self, ctx: Context) -> Image:
        img = ctx.input("input")
        meta = dict(img.metadata)
        for edit in parse_edits(self.knobs.metadata):
            if edit[0] == "set":
                meta[edit[1]] = edit[2]
            elif edit[0] == "remove":
                meta.pop(edit[1], None)
        return img.replace(metadata=meta)


__all__ = ["ModifyMetaData", "parse_edits", "tcl_words"]
