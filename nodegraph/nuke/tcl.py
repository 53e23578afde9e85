"""TCL words as Nuke scripts use them: commands, braced/quoted/bare words, lists, and quoting.

A ``.nk`` file is a TCL script that Nuke reads with its own TCL-like parser. This module only
*splits* it into words; it never evaluates anything. It is hand-written because no well-kept
pure-Python TCL lexer exists, and running a real Tcl interpreter (``tkinter.Tcl``) on an untrusted
file would execute the code in it (``[exec ...]`` in any knob value).

What it follows (TCL's rules, as far as Nuke's files need them):

- commands end at a newline or ``;`` outside words; ``#`` starts a comment only where a command
  starts; ``\\``-newline between words is a space;
- ``{...}`` words nest; inside them nothing is substituted, a backslash only stops the next
  character from counting as a brace, and ``Word.text`` is the content verbatim (TCL would turn
  backslash-newline into a space even there; Nuke's values are kept as written instead, so that a
  writer gives them back unchanged);
- ``"..."`` words resolve backslash escapes (``\\"``, ``\\\\``, ``\\n``, ``\\t``, ``\\xHH``, octal,
  ``\\uHHHH``, ``\\UHHHHHHHH``; an unknown escape gives the character itself); a ``[...]`` inside
  is a command substitution and is kept verbatim;
- bare words run to whitespace or ``;`` except inside ``[...]``, which nest with the braces and
  quotes inside them (``[file dirname [value root.name]]/x.exr`` is one word); their text is
  verbatim.

Line endings are normalised first (CRLF and lone CR become LF): ``Word.raw``, ``start`` and
``end`` refer to the normalised text. Scanning jumps between special characters with compiled
regular expressions and never recurses, so hostile nesting cannot exhaust the Python stack; nesting
deeper than :data:`MAX_DEPTH` is an :class:`NkSyntaxError`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Iterator

from nodegraph.errors import NodeGraphError

#: Deepest nesting of braces/brackets/quotes accepted in one word. Real scripts (roto shapes)
#: nest about ten deep; the limit keeps recursive consumers of the values safe.
MAX_DEPTH = 1000

_SPACE = " \t\f\v"


class NkSyntaxError(NodeGraphError):
    """Text that cannot be a Nuke script, with the ``line`` and ``column`` (1-based) of the problem."""

    def __init__(self, message: str, *, line: int | None = None, column: int | None = None,
                 path: str | None = None) -> None:
        self.reason = message
        self.line = line
        self.column = column
        where = f"line {line}, column {column}: " if line is not None else ""
        super().__init__(where + message, path=path)


@dataclass(slots=True)
class Word:
    """One TCL word.

    ``text``: the value (braces stripped for ``"brace"``, escapes resolved for ``"quote"``,
    verbatim for ``"bare"``; a ``"comment"`` word, only from ``iter_commands(comments=True)``,
    holds the comment line). ``raw``: the exact source slice, so a writer can give it back as
    written. ``line``/``col`` are 1-based; ``start``/``end`` are offsets of ``raw`` in the
    (line-ending normalised) text that was split.
    """

    text: str
    kind: str
    line: int
    col: int
    raw: str
    start: int = 0
    end: int = 0


class _Fail(Exception):
    """A lexing problem at an offset; turned into NkSyntaxError with line and column by the caller."""

    def __init__(self, pos: int, message: str) -> None:
        self.pos = pos
        self.message = message


def normalize_newlines(text: str) -> str:
    """``text`` with CRLF and lone CR turned into LF."""
    if "\r" in text:
        text = text.replace("\r\n", "\n").replace("\r", "\n")
    return text


# Between commands: blanks, newlines, ';' and backslash-newlines. Between words: blanks and
# backslash-newlines (TCL's rule: backslash-newline plus following blanks is one space).
_GAP = re.compile(r"(?:[ \t\f\v\n;]|\\\n)*")
_LIST_GAP = re.compile(r"(?:[ \t\f\v\n]|\\\n)*")
_BLANK = re.compile(r"(?:[ \t\f\v]|\\\n)*")
_COMMENT = re.compile(r"#[^\\\n]*(?:\\[\s\S][^\\\n]*)*")
_BRACE_TOKEN = re.compile(r"(\{)|(\})|\\[\s\S]")
_BARE_STOP = re.compile(r"[ \t\f\v\n;\[\\]")
_LIST_BARE_STOP = re.compile(r"[ \t\f\v\n\[\\]")
_QUOTE_STOP = re.compile(r'["\[\\]')
# Inside a command substitution: what matters in each context.
_IN_BRACKET = re.compile(r'[\[\]{}"\\]')
_IN_BRACE = re.compile(r"[{}\\]")
_CTX = {"[": _IN_BRACKET, "{": _IN_BRACE, '"': _QUOTE_STOP}
_CLOSER = {"[": "]", "{": "}", '"': '"'}
_NAMES = {"[": "bracket", "{": "brace", '"': "quote"}
_WORD_START = frozenset(" \t\f\v\n;[")
# The common command, matched whole with the newline before it: a name and one value (bare, or braced/quoted with nothing
# special inside) on one line. Anything else takes the general path below.
_LINE_TWO_WORDS = re.compile(
    r'\n[ \t]*([^\s;\[\\{"#][^\s;\[\\{"]*)[ \t]+(?:'
    r'([^\s;\[\\{"][^\s;\[\\]*)'  # bare
    r'|(\{[^{}\\\n]*(?:\{[^{}\\\n]*\}[^{}\\\n]*)*\})'  # braced, nesting one level, on one line
    r'|("[^"\\\[\n]*(?:\\[^\n][^"\\\[\n]*)*"))'  # quoted, no substitution, on one line
    r'[ \t]*(?=[\n;]|\Z)')


def _brace_end(text: str, p: int, end: int) -> int:
    """Offset after the brace closing the one at ``p``."""
    depth = 0
    for m in _BRACE_TOKEN.finditer(text, p, end):
        g = m.lastindex
        if g == 1:
            depth += 1
            if depth > MAX_DEPTH:
                raise _Fail(m.start(), f"braces nested deeper than {MAX_DEPTH}")
        elif g == 2:
            depth -= 1
            if depth == 0:
                return m.end()
    raise _Fail(p, "unclosed brace opened here")


def _bracket_end(text: str, p: int, end: int) -> int:
    """Offset after the ``]`` closing the command substitution that starts at ``p``."""
    stack = ["["]
    opened = [p]
    q = p + 1
    while stack:
        ctx = stack[-1]
        m = _CTX[ctx].search(text, q, end)
        if m is None:
            raise _Fail(opened[-1], f"unclosed {_NAMES[ctx]} opened here")
        q = m.start()
        c = text[q]
        if c == "\\":
            q += 2
            continue
        if c == _CLOSER[ctx]:
            stack.pop()
            opened.pop()
        elif (ctx == "[" and (c == "[" or (c in '{"' and text[q - 1] in _WORD_START))) \
                or (ctx == "{" and c == "{") or (ctx == '"' and c == "["):
            stack.append(c)
            opened.append(q)
            if len(stack) > MAX_DEPTH:
                raise _Fail(q, f"brackets nested deeper than {MAX_DEPTH}")
        q += 1
    return q


_ESCAPE = re.compile(r"\\(?:x([0-9A-Fa-f]{1,2})|u([0-9A-Fa-f]{1,4})|U([0-9A-Fa-f]{1,8})"
                     r"|([0-3][0-7]{0,2}|[4-7][0-7]?)|\n[ \t]*|([\s\S])|$)")
_SIMPLE = {"a": "\a", "b": "\b", "f": "\f", "n": "\n", "r": "\r", "t": "\t", "v": "\v"}


def _escape(m: re.Match) -> str:
    x, u, big, octal, other = m.groups()
    if other is not None:
        return _SIMPLE.get(other, other)
    if x is not None:
        return chr(int(x, 16))
    if u is not None:
        return chr(int(u, 16))
    if big is not None:  # at most U+10FFFF: take the longest prefix of the digits that fits
        for n in range(len(big), 0, -1):
            if int(big[:n], 16) <= 0x10FFFF:
                return chr(int(big[:n], 16)) + big[n:]
    if octal is not None:
        return chr(int(octal, 8))
    if m.group().startswith("\\\n"):
        return " "
    return "\\"  # a lone backslash at the very end


def unescape(text: str) -> str:
    """TCL backslash substitution, as inside a quoted word."""
    return _ESCAPE.sub(_escape, text) if "\\" in text else text


def _quote_end(text: str, p: int, end: int) -> tuple[int, str]:
    """Offset after the quote closing the one at ``p``, and the word's text."""
    q = p + 1
    escaped = False
    brackets: list[tuple[int, int]] = []
    search = _QUOTE_STOP.search
    while True:
        m = search(text, q, end)
        if m is None:
            raise _Fail(p, "unclosed quote opened here")
        q = m.start()
        c = text[q]
        if c == "\\":
            escaped = True
            q += 2
        elif c == "[":
            e = _bracket_end(text, q, end)
            brackets.append((q, e))
            q = e
        else:
            break
    if not escaped:
        return q + 1, text[p + 1:q]
    parts = []
    at = p + 1
    for a, b in brackets:  # command substitutions stay verbatim
        parts.append(unescape(text[at:a]))
        parts.append(text[a:b])
        at = b
    parts.append(unescape(text[at:q]))
    return q + 1, "".join(parts)


def _bare_end(text: str, p: int, end: int, stop: re.Pattern) -> int:
    search = stop.search
    while True:
        m = search(text, p, end)
        if m is None:
            return end
        p = m.start()
        c = text[p]
        if c == "[":
            p = _bracket_end(text, p, end)
        elif c == "\\":
            if p + 1 < end and text[p + 1] == "\n":
                return p
            p = min(p + 2, end)
        else:
            return p


_FAST_PATH = True  # tests turn it off to check that both paths split alike


def _no_match(*_args: object) -> None:
    return None


def _loc(text: str, pos: int, line: int, line_start: int) -> tuple[int, int]:
    """Line and column of ``pos``, knowing that ``line`` starts at offset ``line_start``."""
    base = max(line_start, 0)
    if pos > base:
        n = text.count("\n", base, pos)
        if n:
            return line + n, pos - text.rfind("\n", base, pos)
    return line, pos - line_start + 1


def _lines_after(text: str, a: int, b: int, line: int, line_start: int) -> tuple[int, int]:
    """``line``/``line_start`` moved past the newlines of ``text[a:b]``."""
    n = text.count("\n", a, b)
    if n:
        return line + n, text.rfind("\n", a, b) + 1
    return line, line_start


def _read_word(text: str, pos: int, end: int, line: int, line_start: int, stop: re.Pattern) -> Word:
    """The word starting at ``pos`` (not a blank), then checks that a closed word is followed by a
    separator (``stop`` is the bare-word stop set: commands' or lists')."""
    c = text[pos]
    col = pos - line_start + 1
    if c == "{":
        e = _brace_end(text, pos, end)
        raw = text[pos:e]
        word = Word(raw[1:-1], "brace", line, col, raw, pos, e)
    elif c == '"':
        e, value = _quote_end(text, pos, end)
        raw = text[pos:e]
        return _closed(text, e, end, stop, Word(value, "quote", line, col, raw, pos, e))
    else:
        e = _bare_end(text, pos, end, stop)
        raw = text[pos:e]
        return Word(raw, "bare", line, col, raw, pos, e)
    return _closed(text, e, end, stop, word)


def _closed(text: str, e: int, end: int, stop: re.Pattern, word: Word) -> Word:
    if e < end and text[e] not in " \t\f\v\n" and not text.startswith("\\\n", e) \
            and not (stop is _BARE_STOP and text[e] == ";"):
        what = "brace" if word.kind == "brace" else "quote"
        raise _Fail(e, f"extra characters after close-{what}")
    return word


def iter_commands(text: str, start: int = 0, end: int | None = None, line: int = 1, line_start: int = 0,
                  *, comments: bool = False) -> Iterator[list[Word]]:
    """The commands of ``text[start:end]`` (already newline-normalised) as word lists.

    ``line`` is the line number at ``start`` and ``line_start`` the offset where that line begins
    (it may be negative to shift the columns of the first line). ``comments=True`` also yields each
    comment as a one-word list of kind ``"comment"``. Raises :class:`NkSyntaxError`.
    """
    if end is None:
        end = len(text)
    pos = start
    gap = _GAP.match
    blank = _BLANK.match
    two = _LINE_TWO_WORDS.match if _FAST_PATH else _no_match
    try:
        while True:
            m = two(text, pos, end)
            if m is not None:  # the fast path: most lines of a node body
                line += 1
                line_start = pos + 1
                a, b = m.span(1)
                name = m.group(1)
                value = m.group(2)
                if value is not None:
                    c, e = m.span(2)
                    word = Word(value, "bare", line, c - line_start + 1, value, c, e)
                else:
                    value = m.group(3)
                    if value is not None:
                        c, e = m.span(3)
                        word = Word(value[1:-1], "brace", line, c - line_start + 1, value, c, e)
                    else:
                        value = m.group(4)
                        c, e = m.span(4)
                        word = Word(unescape(value[1:-1]), "quote", line, c - line_start + 1, value, c, e)
                yield [Word(name, "bare", line, a - line_start + 1, name, a, b), word]
                pos = m.end()
                continue
            e = gap(text, pos, end).end()
            line, line_start = _lines_after(text, pos, e, line, line_start)
            pos = e
            if pos >= end:
                return
            if text[pos] == "#":
                e = _COMMENT.match(text, pos, end).end()
                if comments:
                    raw = text[pos:e]
                    yield [Word(raw, "comment", line, pos - line_start + 1, raw, pos, e)]
                line, line_start = _lines_after(text, pos, e, line, line_start)
                pos = e
                continue
            words: list[Word] = []
            while True:
                word = _read_word(text, pos, end, line, line_start, _BARE_STOP)
                words.append(word)
                e = blank(text, word.end, end).end()
                line, line_start = _lines_after(text, pos, e, line, line_start)
                pos = e
                if pos >= end or text[pos] == "\n" or text[pos] == ";":
                    break
            yield words
    except _Fail as fail:
        at_line, at_col = _loc(text, fail.pos, line, line_start)
        raise NkSyntaxError(fail.message, line=at_line, column=at_col) from None


def split_commands(text: str, *, line: int = 1, col: int = 1) -> Iterator[list[Word]]:
    """The commands of a TCL script as lists of words (comments skipped).

    ``line``/``col`` say where ``text`` starts, for splitting a value taken from a bigger file.
    """
    text = normalize_newlines(text)
    return iter_commands(text, 0, len(text), line, 1 - col)


def list_words(text: str, start: int = 0, end: int | None = None, line: int = 1,
               line_start: int = 0) -> list[Word]:
    """The elements of the TCL list ``text[start:end]`` (already newline-normalised)."""
    if end is None:
        end = len(text)
    words: list[Word] = []
    pos = start
    gap = _LIST_GAP.match
    try:
        while True:
            e = gap(text, pos, end).end()
            line, line_start = _lines_after(text, pos, e, line, line_start)
            pos = e
            if pos >= end:
                return words
            word = _read_word(text, pos, end, line, line_start, _LIST_BARE_STOP)
            words.append(word)
            line, line_start = _lines_after(text, pos, word.end, line, line_start)
            pos = word.end
    except _Fail as fail:
        at_line, at_col = _loc(text, fail.pos, line, line_start)
        raise NkSyntaxError(fail.message, line=at_line, column=at_col) from None


def split_list(text: str, *, line: int = 1, col: int = 1) -> list[Word]:
    """The elements of a TCL list (such as a braced value's text); newlines are whitespace.

    ``line``/``col`` say where ``text`` starts: ``split_list(w.text, line=w.line, col=w.col + 1)``
    gives the elements of a brace word ``w`` their places in the file.
    """
    text = normalize_newlines(text)
    return list_words(text, 0, len(text), line, 1 - col)


_BARE_SAFE = re.compile(r"[\w.:/+\-=%,@!?*<>|~'^&()]+")
# braces too: a quoted value sits inside its node's braced block, whose end TCL finds by counting
# every unescaped brace, quotes or not (``name "V{{curve"`` would leave the block open)
_QUOTE_ESCAPES = {"\\": "\\\\", '"': '\\"', "[": "\\[", "]": "\\]", "$": "\\$", "\n": "\\n",
                  "\t": "\\t", "\r": "\\r", "{": "\\{", "}": "\\}"}
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")  # braced values keep only tab and newline
_NEEDS_ESCAPE = re.compile(r'[\\"\[\]${}\x00-\x1f\x7f]')


def _braces_balanced(text: str) -> bool:
    """Whether ``{text}`` reads back as ``text``: balanced braces, no trailing lone backslash."""
    depth = 0
    for m in _BRACE_TOKEN.finditer(text):
        g = m.lastindex
        if g == 1:
            depth += 1
            if depth > MAX_DEPTH:
                return False
        elif g == 2:
            depth -= 1
            if depth < 0:
                return False
    if depth:
        return False
    tail = len(text) - len(text.rstrip("\\"))
    return tail % 2 == 0


def _quote_char(m: re.Match) -> str:
    c = m.group()
    return _QUOTE_ESCAPES.get(c) or f"\\x{ord(c):02x}"


def quote(text: str) -> str:
    """The shortest TCL form of ``text`` that reads back equal: bare when nothing in it is
    special, else braced when its braces balance (and it does not end in a backslash, nor hold
    control characters other than tab and newline: a CR would read back as LF), else quoted with
    escapes. The empty string is ``""``, as Nuke writes it."""
    if not text:
        return '""'
    if _BARE_SAFE.fullmatch(text):
        return text
    if _braces_balanced(text) and not _CONTROL.search(text):
        return "{" + text + "}"
    return '"' + _NEEDS_ESCAPE.sub(_quote_char, text) + '"'
