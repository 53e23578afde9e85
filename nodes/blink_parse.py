"""Blink (Nuke's BlinkScript kernel language) as an abstract syntax tree: lexer and parser.

The subset read is the one Foundry's BlinkScript examples and public kernels use: one
``kernel Name : ImageComputationKernel<ePixelWise|eComponentWise>`` with ``Image<...>``
declarations, ``param:`` and ``local:`` sections, ``define()``, ``init()`` and ``process()``,
helper functions before or inside the kernel, C expressions and statements (if/else, for,
while, do, break, continue, return), local arrays, object-like ``#define`` macros. Anything
else raises :class:`BlinkUnsupported` naming the kernel, the construct, line and column. The
tree is only ever walked (by :mod:`nodegraph.nodes.blink_eval`): nothing is ``eval``-ed.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from functools import lru_cache

from nodegraph.errors import KnobError

#: Scalar and vector types: name -> (base, components).
TYPES: dict[str, tuple[str, int]] = {"float": ("float", 1), "int": ("int", 1), "bool": ("bool", 1),
                                     "uint": ("int", 1), "unsigned": ("int", 1), "void": ("void", 0)}
for _n in (2, 3, 4):
    TYPES[f"float{_n}"] = ("float", _n)
    TYPES[f"int{_n}"] = ("int", _n)
    TYPES[f"bool{_n}"] = ("bool", _n)
#: Types Blink has and this translator does not (matrices): named in the error.
UNSUPPORTED_TYPES = frozenset({"float3x3", "float4x4", "float2x2", "double", "half", "char", "short", "long"})
QUALIFIERS = frozenset({"const", "inline", "static"})
IMAGE_WORDS = frozenset({"eRead", "eWrite", "eReadWrite", "eAccessPoint", "eAccessRanged1D", "eAccessRanged2D",
                         "eAccessRandom", "eEdgeClamped", "eEdgeConstant", "eEdgeNone"})
GRANULARITIES = {"ePixelWise": "pixel", "eComponentWise": "component"}
#: Longest kernel source parsed, and the deepest nesting of expressions and blocks.
MAX_SOURCE = 1_000_000
MAX_DEPTH = 200


class BlinkUnsupported(KnobError):
    """A kernel uses something the translator does not handle (or is not valid Blink): a bad value
    of the node's ``kernelSource``."""


@dataclass
class Tok:
    kind: str  # 'id', 'num', 'str', 'op', 'eof'
    text: str
    line: int
    col: int


@dataclass
class Ast:
    """One node of the tree: ``kind`` names it, ``a``..``d`` hold its parts, line/col where it starts."""

    kind: str
    line: int
    col: int
    a: object = None
    b: object = None
    c: object = None
    d: object = None


@dataclass
class TypeRef:
    base: str  # 'float', 'int', 'bool', 'void', or 'sample:IMG' / 'value:IMG'
    n: int
    array: int | None = None  # declared array length (None: not an array; 0: unsized / pointer)


@dataclass
class ImageDecl:
    name: str
    mode: str  # 'eRead', 'eWrite', 'eReadWrite'
    access: str
    edge: str
    line: int


@dataclass
class Function:
    name: str
    ret: TypeRef
    params: list[tuple[TypeRef, str]]
    body: Ast
    line: int


@dataclass
class Kernel:
    """A parsed kernel: its images, params, locals, functions (its own and the file's)."""

    name: str
    granularity: str  # 'pixel' or 'component'
    images: list[ImageDecl] = field(default_factory=list)
    params: list[tuple[TypeRef, str, int]] = field(default_factory=list)  # type, name, line
    locals: list[tuple[TypeRef, str, int]] = field(default_factory=list)
    functions: dict[str, Function] = field(default_factory=dict)
    globals: list[Ast] = field(default_factory=list)  # file-level declarations (``const float K = 2;``)

    def unsupported(self, line: int, col: int, what: str) -> BlinkUnsupported:
        return unsupported(self.name, line, col, what)


def unsupported(kernel: str, line: int, col: int, what: str) -> BlinkUnsupported:
    return BlinkUnsupported(f"kernel {kernel} line {line} col {col}: {what}")


# --- lexer ---------------------------------------------------------------------------------------

_TOKEN = re.compile(r"""
    (?P<ws>[ \t\r\f\v]+|\\\n)
  | (?P<nl>\n)
  | (?P<lc>//[^\n]*)
  | (?P<bc>/\*.*?\*/)
  | (?P<num>(?:0[xX][0-9a-fA-F]+|(?:\d+\.\d*|\.\d+|\d+)(?:[eE][+-]?\d+)?)[fFuUlL]*)
  | (?P<id>[A-Za-z_]\w*)
  | (?P<str>"(?:[^"\\\n]|\\.)*")
  | (?P<op><<=|>>=|\+\+|--|&&|\|\||==|!=|<=|>=|\+=|-=|\*=|/=|%=|&=|\|=|\^=|<<|>>|->|::|[-+*/%<>=!~&|^?:;,.(){}\[\]#])
""", re.VERBOSE | re.DOTALL)


def lex(source: str, kernel: str) -> list[Tok]:
    """Tokens of ``source`` with object-like ``#define`` macros expanded."""
    if len(source) > MAX_SOURCE:
        raise BlinkUnsupported(f"kernel {kernel}: the source has {len(source):,} characters "
                               f"(at most {MAX_SOURCE:,} are read)")
    raw: list[Tok] = []
    line, start, pos = 1, 0, 0
    while pos < len(source):
        m = _TOKEN.match(source, pos)
        col = pos - start + 1
        if m is None:
            raise unsupported(kernel, line, col, f"character {source[pos]!r} is not supported")
        kind, text = m.lastgroup, m.group()
        if kind in ("num", "id", "str", "op"):
            raw.append(Tok(kind, text, line, col))
        newlines = text.count("\n")
        if newlines:
            line += newlines
            start = m.start() + text.rindex("\n") + 1
            raw.append(Tok("nl", "", line, 0))
        pos = m.end()
    return _preprocess(raw, kernel)


def _preprocess(raw: list[Tok], kernel: str) -> list[Tok]:
    macros: dict[str, list[Tok]] = {}
    out: list[Tok] = []
    i, at_line_start = 0, True
    while i < len(raw):
        tok = raw[i]
        if tok.kind == "nl":
            at_line_start = True
            i += 1
            continue
        if at_line_start and tok.text == "#":
            j = i + 1
            words = []
            while j < len(raw) and raw[j].kind != "nl":
                words.append(raw[j])
                j += 1
            directive = words[0].text if words else ""
            if directive == "define" and len(words) >= 2 and words[1].kind == "id":
                name = words[1]
                if len(words) > 2 and words[2].text == "(" and words[2].col == name.col + len(name.text):
                    raise unsupported(kernel, tok.line, tok.col, f"function-like macro '#define {name.text}(...)' "
                                                                 "is not supported")
                macros[name.text] = words[2:]
            elif directive == "undef" and len(words) >= 2:
                macros.pop(words[1].text, None)
            elif directive != "pragma":
                raise unsupported(kernel, tok.line, tok.col, f"preprocessor directive '#{directive}' is not supported")
            i = j
            continue
        at_line_start = False
        out.extend(_expand(tok, macros, kernel, ()))
        i += 1
    out.append(Tok("eof", "", raw[-1].line if raw else 1, 0))
    return out


def _expand(tok: Tok, macros: dict[str, list[Tok]], kernel: str, active: tuple[str, ...]) -> list[Tok]:
    if tok.kind != "id" or tok.text not in macros or tok.text in active:
        return [tok]
    if len(active) > 32:
        raise unsupported(kernel, tok.line, tok.col, "macros nested more than 32 deep are not supported")
    out: list[Tok] = []
    for t in macros[tok.text]:
        out.extend(_expand(Tok(t.kind, t.text, tok.line, tok.col), macros, kernel, active + (tok.text,)))
    return out


# --- parser --------------------------------------------------------------------------------------

_BINARY = [("||", "or"), ("&&", "and"), ("|",), ("^",), ("&",), ("==", "!="), ("<", ">", "<=", ">="),
           ("<<", ">>"), ("+", "-"), ("*", "/", "%")]
_ASSIGN = frozenset({"=", "+=", "-=", "*=", "/=", "%=", "&=", "|=", "^=", "<<=", ">>="})
_WORD_OPS = {"and": "&&", "or": "||", "not": "!"}


class Parser:
    def __init__(self, tokens: list[Tok], kernel: str) -> None:
        self.toks = tokens
        self.i = 0
        self.kernel_name = kernel
        self.depth = 0

    # helpers
    @property
    def tok(self) -> Tok:
        return self.toks[self.i]

    def peek(self, k: int = 1) -> Tok:
        return self.toks[min(self.i + k, len(self.toks) - 1)]

    def error(self, what: str, tok: Tok | None = None) -> BlinkUnsupported:
        tok = tok or self.tok
        return unsupported(self.kernel_name, tok.line, tok.col, what)

    def unexpected(self) -> BlinkUnsupported:
        t = self.tok
        return self.error("unexpected end of the source" if t.kind == "eof" else f"'{t.text}' is not supported here")

    def at(self, *texts: str) -> bool:
        return self.tok.kind in ("op", "id") and self.tok.text in texts

    def take(self, *texts: str) -> Tok | None:
        if self.at(*texts):
            t = self.tok
            self.i += 1
            return t
        return None

    def expect(self, text: str) -> Tok:
        t = self.take(text)
        if t is None:
            raise self.error(f"expected '{text}'" + (f", found '{self.tok.text}'" if self.tok.kind != "eof" else
                                                     " before the end of the source"))
        return t

    def ident(self) -> Tok:
        if self.tok.kind != "id":
            raise self.unexpected()
        t = self.tok
        self.i += 1
        return t

    def deeper(self) -> None:
        self.depth += 1
        if self.depth > MAX_DEPTH:
            raise self.error(f"nesting deeper than {MAX_DEPTH} levels is not supported")

    # types
    def is_type_start(self, k: int = 0) -> bool:
        t = self.peek(k) if k else self.tok
        return t.kind == "id" and (t.text in TYPES or t.text in QUALIFIERS or t.text in UNSUPPORTED_TYPES
                                   or t.text in ("SampleType", "ValueType"))

    def type_ref(self) -> TypeRef:
        while self.take(*QUALIFIERS):
            pass
        t = self.ident()
        if t.text in UNSUPPORTED_TYPES:
            raise self.error(f"type '{t.text}' is not supported", t)
        if t.text in ("SampleType", "ValueType"):
            self.expect("(")
            img = self.ident().text
            self.expect(")")
            return TypeRef(("sample:" if t.text == "SampleType" else "value:") + img, 0)
        if t.text == "unsigned" and self.at("int"):
            self.i += 1
        if t.text not in TYPES:
            raise self.error(f"type '{t.text}' is not supported", t)
        base, n = TYPES[t.text]
        return TypeRef(base, n)

    # file and kernel
    def file(self) -> Kernel:
        functions: dict[str, Function] = {}
        globals_: list[Ast] = []
        kernel: Kernel | None = None
        while self.tok.kind != "eof":
            if self.take(";"):
                continue
            if self.at("kernel"):
                if kernel is not None:
                    raise self.error("a second kernel in one source is not supported")
                kernel = self.kernel()
                continue
            if self.at("struct", "class", "template", "typedef", "namespace", "using", "union", "enum"):
                raise self.error(f"'{self.tok.text}' is not supported")
            if not self.is_type_start():
                raise self.unexpected()
            if self._is_function():
                fn = self.function()
                functions[fn.name] = fn
            else:
                globals_.append(self.declaration())
        if kernel is None:
            raise BlinkUnsupported(f"kernel {self.kernel_name}: no 'kernel Name : ImageComputationKernel<...>' "
                                   "found in the source")
        kernel.functions = {**functions, **kernel.functions}
        kernel.globals = globals_
        return kernel

    def _is_function(self) -> bool:
        k = 0
        while self.peek(k).text in QUALIFIERS:
            k += 1
        k += 1  # the type
        if self.peek(k - 1).text in ("SampleType", "ValueType"):
            k += 3
        while self.peek(k).text in ("&", "*"):
            k += 1
        return self.peek(k).kind == "id" and self.peek(k + 1).text == "("

    def kernel(self) -> Kernel:
        self.expect("kernel")
        name = self.ident()
        self.kernel_name = name.text
        self.expect(":")
        self.take("public")
        base = self.ident()
        if base.text != "ImageComputationKernel":
            raise self.error(f"'{base.text}' kernels are not supported (only ImageComputationKernel)", base)
        self.expect("<")
        gran = self.ident()
        if gran.text not in GRANULARITIES:
            raise self.error(f"granularity '{gran.text}' is not supported", gran)
        self.expect(">")
        kernel = Kernel(name.text, GRANULARITIES[gran.text])
        self.expect("{")
        section = "public"
        while not self.take("}"):
            if self.tok.kind == "eof":
                raise self.unexpected()
            if self.at("param", "local", "public", "private", "protected") and self.peek().text == ":":
                section = self.tok.text
                self.i += 2
                continue
            if self.take(";"):
                continue
            if self.at("Image"):
                kernel.images.append(self.image_decl())
                continue
            if not self.is_type_start():
                raise self.unexpected()
            if self._is_function():
                fn = self.function()
                kernel.functions[fn.name] = fn
                continue
            decl = self.declaration()
            target = kernel.params if section == "param" else kernel.locals
            for typ, var, _init in decl.a:
                target.append((typ, var, decl.line))
        self.take(";")
        return kernel

    def image_decl(self) -> ImageDecl:
        t = self.expect("Image")
        self.expect("<")
        words = [self.ident()]
        while self.take(","):
            words.append(self.ident())
        self.expect(">")
        name = self.ident().text
        self.expect(";")
        for w in words:
            if w.text not in IMAGE_WORDS:
                raise self.error(f"image specifier '{w.text}' is not supported", w)
        texts = [w.text for w in words]
        mode = texts[0]
        access = next((w for w in texts if w.startswith("eAccess")), "eAccessPoint")
        edge = next((w for w in texts if w.startswith("eEdge")), "eEdgeNone")
        return ImageDecl(name, mode, access, edge, t.line)

    def function(self) -> Function:
        start = self.tok
        ret = self.type_ref()
        while self.take("&", "*"):
            pass
        name = self.ident().text
        self.expect("(")
        params: list[tuple[TypeRef, str]] = []
        if not self.take(")"):
            if self.at("void") and self.peek().text == ")":
                self.i += 2
            else:
                while True:
                    ptype = self.type_ref()
                    if self.take("&"):
                        raise self.error("reference parameters ('&') are not supported")
                    if self.take("*"):
                        ptype.array = 0
                    pname = self.ident().text
                    if self.take("["):
                        if not self.at("]"):
                            self.expression()
                        self.expect("]")
                        ptype.array = 0
                    params.append((ptype, pname))
                    if self.take(")"):
                        break
                    self.expect(",")
        self.take("const")
        body = self.block()
        return Function(name, ret, params, body, start.line)

    # statements
    def block(self) -> Ast:
        t = self.expect("{")
        self.deeper()
        stmts = []
        while not self.take("}"):
            if self.tok.kind == "eof":
                raise self.unexpected()
            stmts.append(self.statement())
        self.depth -= 1
        return Ast("block", t.line, t.col, stmts)

    def statement(self) -> Ast:
        t = self.tok
        if self.at("{"):
            return self.block()
        if self.take(";"):
            return Ast("block", t.line, t.col, [])
        if self.take("if"):
            self.expect("(")
            cond = self.expression()
            self.expect(")")
            then = self.substatement()
            other = self.substatement() if self.take("else") else None
            return Ast("if", t.line, t.col, cond, then, other)
        if self.take("for"):
            self.expect("(")
            init = None if self.at(";") else (self.declaration(semicolon=False) if self.is_type_start()
                                              else self.expr_stmt(semicolon=False))
            self.expect(";")
            cond = None if self.at(";") else self.expression()
            self.expect(";")
            step = None if self.at(")") else self.expr_list()
            self.expect(")")
            return Ast("for", t.line, t.col, init, cond, step, self.substatement())
        if self.take("while"):
            self.expect("(")
            cond = self.expression()
            self.expect(")")
            return Ast("for", t.line, t.col, None, cond, None, self.substatement())
        if self.take("do"):
            body = self.substatement()
            self.expect("while")
            self.expect("(")
            cond = self.expression()
            self.expect(")")
            self.expect(";")
            return Ast("do", t.line, t.col, body, cond)
        if self.take("break"):
            self.expect(";")
            return Ast("break", t.line, t.col)
        if self.take("continue"):
            self.expect(";")
            return Ast("continue", t.line, t.col)
        if self.take("return"):
            value = None if self.at(";") else self.expression()
            self.expect(";")
            return Ast("return", t.line, t.col, value)
        if self.at("switch", "goto", "case", "default", "try", "throw", "new", "delete", "asm"):
            raise self.error(f"'{t.text}' is not supported")
        if self.is_type_start() and not (self.peek().text == "(" and self.tok.text in TYPES):
            return self.declaration()
        return self.expr_stmt()

    def substatement(self) -> Ast:
        self.deeper()
        s = self.statement()
        self.depth -= 1
        return s

    def expr_stmt(self, semicolon: bool = True) -> Ast:
        t = self.tok
        e = self.expr_list()
        if semicolon:
            self.expect(";")
        return Ast("expr", t.line, t.col, e)

    def expr_list(self) -> Ast:
        t = self.tok
        items = [self.expression()]
        while self.take(","):
            items.append(self.expression())
        return items[0] if len(items) == 1 else Ast("comma", t.line, t.col, items)

    def declaration(self, semicolon: bool = True) -> Ast:
        """``[const] TYPE a [= e], b[N] [= {...}], c(args);``: Ast('decl', a=[(type, name, init)])."""
        t = self.tok
        base = self.type_ref()
        items = []
        while True:
            typ = TypeRef(base.base, base.n)
            name = self.ident()
            if name.text in TYPES or name.text in ("kernel", "Image"):
                raise self.error(f"'{name.text}' is not a variable name", name)
            init = None
            if self.take("["):
                typ.array = self._array_length()
                self.expect("]")
                if self.at("["):
                    raise self.error("arrays of more than one dimension are not supported")
            if self.take("="):
                init = self.initializer()
            elif self.at("(") and typ.array is None:
                p = self.expect("(")
                args = []
                while not self.take(")"):
                    if args:
                        self.expect(",")
                    args.append(self.assignment())
                init = Ast("construct", p.line, p.col, typ, args)
            items.append((typ, name.text, init))
            if not self.take(","):
                break
        if semicolon:
            self.expect(";")
        return Ast("decl", t.line, t.col, items)

    def _array_length(self) -> int:
        if self.at("]"):
            return 0
        t = self.tok
        e = self.expression()
        if e.kind != "num" or not isinstance(e.a, int) or not 0 < e.a <= 65536:
            raise self.error("array lengths other than a whole-number constant (1 to 65536) are not supported", t)
        return e.a

    def initializer(self) -> Ast:
        t = self.tok
        if self.take("{"):
            self.deeper()
            items = []
            while not self.take("}"):
                items.append(self.initializer())
                if not self.take(","):
                    self.expect("}")
                    break
            self.depth -= 1
            return Ast("init_list", t.line, t.col, items)
        return self.assignment()

    # expressions
    def expression(self) -> Ast:
        self.deeper()
        e = self.assignment()
        self.depth -= 1
        return e

    def assignment(self) -> Ast:
        left = self.ternary()
        if self.tok.kind == "op" and self.tok.text in _ASSIGN:
            t = self.tok
            self.i += 1
            self.deeper()
            right = self.assignment()
            self.depth -= 1
            return Ast("assign", t.line, t.col, t.text, left, right)
        return left

    def ternary(self) -> Ast:
        cond = self.binary(0)
        if self.at("?"):
            t = self.tok
            self.i += 1
            self.deeper()
            a = self.assignment()
            self.expect(":")
            b = self.assignment()
            self.depth -= 1
            return Ast("ternary", t.line, t.col, cond, a, b)
        return cond

    def binary(self, level: int) -> Ast:
        if level == len(_BINARY):
            return self.unary()
        left = self.binary(level + 1)
        while self.tok.kind in ("op", "id") and self.tok.text in _BINARY[level]:
            t = self.tok
            self.i += 1
            right = self.binary(level + 1)
            left = Ast("binary", t.line, t.col, _WORD_OPS.get(t.text, t.text), left, right)
        return left

    def unary(self) -> Ast:
        t = self.tok
        if t.kind in ("op", "id") and t.text in ("-", "+", "!", "~", "not"):
            self.i += 1
            self.deeper()
            operand = self.unary()
            self.depth -= 1
            return Ast("unary", t.line, t.col, _WORD_OPS.get(t.text, t.text), operand)
        if t.text in ("++", "--") and t.kind == "op":
            self.i += 1
            return Ast("incdec", t.line, t.col, t.text, self.unary(), "pre")
        if t.text == "(" and self.is_type_start(1):
            k = 1
            while self.peek(k).text in QUALIFIERS:
                k += 1
            if self.peek(k + 1).text == ")" and self.peek(k).text not in ("SampleType", "ValueType"):
                self.i += 1
                typ = self.type_ref()
                self.expect(")")
                self.deeper()
                operand = self.unary()
                self.depth -= 1
                return Ast("cast", t.line, t.col, typ, operand)
        if t.text in ("sizeof", "new", "delete", "&", "*") and t.kind in ("op", "id"):
            raise self.error(f"'{t.text}' is not supported")
        return self.postfix()

    def postfix(self) -> Ast:
        e = self.primary()
        while True:
            t = self.tok
            if self.take("("):
                args = []
                if not self.take(")"):
                    while True:
                        self.deeper()
                        args.append(self.assignment())
                        self.depth -= 1
                        if self.take(")"):
                            break
                        self.expect(",")
                e = Ast("call", t.line, t.col, e, args)
            elif self.take("."):
                e = Ast("member", t.line, t.col, e, self.ident().text)
            elif self.take("["):
                index = self.expression()
                self.expect("]")
                e = Ast("index", t.line, t.col, e, index)
            elif t.kind == "op" and t.text in ("++", "--"):
                self.i += 1
                e = Ast("incdec", t.line, t.col, t.text, e, "post")
            elif t.text in ("->", "::"):
                raise self.error(f"'{t.text}' is not supported")
            else:
                return e

    def primary(self) -> Ast:
        t = self.tok
        if t.kind == "num":
            self.i += 1
            return Ast("num", t.line, t.col, _number(t.text))
        if t.kind == "id":
            self.i += 1
            if t.text in ("true", "false"):
                return Ast("bool", t.line, t.col, t.text == "true")
            if t.text in UNSUPPORTED_TYPES:
                raise self.error(f"type '{t.text}' is not supported", t)
            if t.text in ("SampleType", "ValueType"):
                self.i -= 1
                typ = self.type_ref()
                return Ast("typename", t.line, t.col, typ)
            return Ast("name", t.line, t.col, t.text)
        if self.take("("):
            e = self.expr_list()
            self.expect(")")
            return e
        if t.kind == "str":
            return self._string()
        raise self.unexpected()

    def _string(self) -> Ast:
        t = self.tok
        self.i += 1
        text = t.text[1:-1].encode().decode("unicode_escape")
        return Ast("str", t.line, t.col, text)


def _number(text: str) -> int | float:
    body = text.rstrip("fFuUlL") if not text.lower().startswith("0x") else text.rstrip("uUlL")
    if body.lower().startswith("0x"):
        return int(body, 16)
    if any(c in body for c in ".eE") or text[-1:] in "fF":
        return float(body)
    return int(body)


def kernel_name_hint(source: str) -> str:
    """The kernel's name as written (for messages about sources that do not parse)."""
    m = re.search(r"\bkernel\s+([A-Za-z_]\w*)", source)
    return m.group(1) if m else "?"


@lru_cache(maxsize=64)
def parse_kernel(source: str) -> Kernel:
    """The kernel of a BlinkScript source; :class:`BlinkUnsupported` names what is not read."""
    name = kernel_name_hint(source)
    return Parser(lex(source, name), name).file()


__all__ = ["Ast", "BlinkUnsupported", "Function", "ImageDecl", "Kernel", "TypeRef", "TYPES", "kernel_name_hint",
           "parse_kernel", "unsupported"]
