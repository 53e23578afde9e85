"""Nuke's expression language: grammar, functions, references, errors, both backends, noise.

Oracles are independent of the code under test: hand-computed values, Python's ``math``, and a
tiny recursive evaluator over trees that hypothesis generates and this file prints to text.
"""

from __future__ import annotations

import math
import pickle
import re
from pathlib import Path

import pytest
import torch
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from nodegraph.errors import KnobError
from nodegraph.expression import FUNCTIONS, Expression, ExpressionError, Reference


def ev(text: str, frame: float = 1.0, resolve=None, **variables):
    return Expression(text).evaluate(frame, resolve, **variables)


# --- precedence and associativity ---------------------------------------------------------------

PRECEDENCE = [
    ("1+2*3", 7), ("(1+2)*3", 9), ("10-4-3", 3), ("100/10/5", 2), ("8/2*4", 16), ("1 - 2 + 3", 2),
    ("2**3**2", 512), ("-2**2", -4), ("(-2)**2", 4), ("2**-1", 0.5), ("2*-3**2", -18), ("-3*-2", 6),
    ("- -3", 3), ("+3", 3), ("1+-2", -1), ("7%3", 1), ("-7%3", -1), ("7%-3", 1), ("2*3%4", 2),
    ("1+2<4", 1), ("1<2==1", 1), ("2==2==1", 1), ("3>2>1", 0), ("1<=1", 1), ("2>=3", 0), ("1!=1", 0),
    ("1||0&&0", 1), ("0&&1||1", 1), ("0||0", 0), ("!0+1", 2), ("!!5", 1), ("!(1-1)", 1),
    ("1?2:3?4:5", 2), ("0?2:0?4:5", 5), ("0?2:1?4:5", 4), ("0?1:2+3", 5), ("0||1?7:8", 7),
    ("1?0?5:6:7", 6), ("1|2==2", 1), ("4&5", 4), ("6|1", 7), ("1|2&0", 1), ("5|2", 7), ("6&3", 2),
    ("1.9|0", 1), ("-1.5|0", -1), ("1.5e1+.5", 15.5), ("2.*3", 6), ("1e-2", 0.01), ("1E+2", 100),
    ("frame*2+t", 3 * 4), ("pi", math.pi), ("pi()", math.pi), ("[frame]*2", 8),
]


@pytest.mark.parametrize("text, expected", PRECEDENCE)
def test_precedence_and_associativity(text, expected):
    assert ev(text, frame=4) == pytest.approx(expected, rel=1e-15, abs=0)


# --- every function against Python's math --------------------------------------------------------

FUNCTION_VALUES = [
    ("abs(-2.5)", 2.5), ("fabs(-3)", 3), ("acos(0.3)", math.acos(0.3)), ("asin(-0.4)", math.asin(-0.4)),
    ("atan(2)", math.atan(2)), ("atan2(1, -2)", math.atan2(1, -2)), ("sin(1.2)", math.sin(1.2)),
    ("cos(1.2)", math.cos(1.2)), ("tan(0.7)", math.tan(0.7)), ("sinh(1.5)", math.sinh(1.5)),
    ("cosh(1.5)", math.cosh(1.5)), ("tanh(0.5)", math.tanh(0.5)), ("ceil(-2.5)", -2), ("floor(-2.5)", -3),
    ("int(-2.7)", -2), ("int(2.7)", 2), ("trunc(-2.7)", -2), ("rint(2.5)", 2), ("rint(3.5)", 4),
    ("rint(-2.5)", -2), ("rint(2.6)", 3), ("clamp(1.5)", 1), ("clamp(-0.5)", 0), ("clamp(0.25)", 0.25),
    ("clamp(5, 1, 3)", 3), ("clamp(0, 1, 3)", 1), ("clamp(2, 1, 3)", 2), ("min(3, 1, 2)", 1),
    ("max(3, 1, 2)", 3), ("min(4)", 4), ("max(-1, -5)", -1), ("lerp(2, 4, 0.25)", 2.5),
    ("mix(2, 4, 0.75)", 3.5), ("smoothstep(0, 4, 1)", 0.15625), ("smoothstep(0, 4, -1)", 0),
    ("smoothstep(0, 4, 4)", 1), ("smoothstep(0, 4, 2)", 0.5), ("step(1, 0.5)", 0), ("step(1, 1)", 1),
    ("degrees(pi)", 180), ("radians(180)", math.pi), ("exp(1.5)", math.exp(1.5)),
    ("log(2.5)", math.log(2.5)), ("log10(1000)", 3), ("pow(2, 10)", 1024), ("pow(-2, 3)", -8),
    ("sqrt(2)", math.sqrt(2)), ("hypot(3, 4)", 5), ("fmod(-7, 3)", math.fmod(-7, 3)), ("fmod(7.5, 2)", 1.5),
    ("exponent(8)", 4), ("mantissa(8)", 0.5), ("ldexp(0.75, 3)", 6), ("logb(8)", 3), ("logb(0.3)", -2),
    ("to_sRGB(0.18)", 1.055 * 0.18 ** (1 / 2.4) - 0.055), ("to_sRGB(0.001)", 0.01292),
    ("from_sRGB(0.5)", ((0.5 + 0.055) / 1.055) ** 2.4), ("from_sRGB(0.02)", 0.02 / 12.92),
    ("to_rec709f(0.5)", 1.099 * 0.5 ** 0.45 - 0.099), ("to_rec709f(0.01)", 0.045),
    ("from_rec709f(0.5)", ((0.5 + 0.099) / 1.099) ** (1 / 0.45)), ("from_rec709f(0.045)", 0.01),
    ("isnan(1)", 0), ("isinf(1)", 0),
]


@pytest.mark.parametrize("text, expected", FUNCTION_VALUES)
def test_function_values(text, expected):
    assert ev(text) == pytest.approx(expected, rel=1e-12, abs=1e-15)


def test_every_documented_function_exists():
    documented = {"sin", "cos", "tan", "asin", "acos", "atan", "atan2", "sinh", "cosh", "tanh", "pow", "exp",
                  "log", "log10", "sqrt", "abs", "fabs", "floor", "ceil", "int", "rint", "trunc", "min", "max",
                  "clamp", "lerp", "mix", "smoothstep", "step", "radians", "degrees", "hypot", "fmod", "pi",
                  "random", "noise", "fBm", "turbulence", "exponent", "mantissa", "ldexp", "logb"}
    assert documented <= set(FUNCTIONS)
    tested = {name for text, _ in FUNCTION_VALUES + PRECEDENCE for name in re.findall(r"[A-Za-z_]\w*", text)}
    tested |= {"random", "noise", "fBm", "turbulence"}  # tested below
    assert set(FUNCTIONS) <= tested, "every function needs a value test"


finite = st.floats(-1e6, 1e6, allow_nan=False)
unit = st.floats(-1, 1, allow_nan=False)
positive = st.floats(1e-300, 1e300, allow_nan=False)
ONE_ARG = {
    "sin": (math.sin, finite), "cos": (math.cos, finite), "tan": (math.tan, finite), "atan": (math.atan, finite),
    "asin": (math.asin, unit), "acos": (math.acos, unit), "tanh": (math.tanh, finite),
    "sinh": (math.sinh, st.floats(-700, 700)), "cosh": (math.cosh, st.floats(-700, 700)),
    "exp": (math.exp, st.floats(-700, 700)), "log": (math.log, positive), "log10": (math.log10, positive),
    "sqrt": (math.sqrt, st.floats(0, 1e300)), "abs": (abs, finite), "fabs": (math.fabs, finite),
    "floor": (math.floor, finite), "ceil": (math.ceil, finite), "int": (math.trunc, finite),
    "trunc": (math.trunc, finite), "rint": (round, finite), "degrees": (math.degrees, finite),
    "radians": (math.radians, finite),
}


@pytest.mark.parametrize("name", sorted(ONE_ARG))
def test_one_argument_functions_match_math(name):
    oracle, values = ONE_ARG[name]
    expr = Expression(f"{name}(v)", variables=("v",))

    @settings(max_examples=60, deadline=None)
    @given(values)
    def check(v):
        assert expr.evaluate(0, v=v) == pytest.approx(float(oracle(v)), rel=1e-14, abs=1e-300)
    check()


@settings(max_examples=100, deadline=None)
@given(finite, finite)
def test_two_argument_functions_match_math(a, b):
    def run(text):
        return Expression(text, variables=("a", "b")).evaluate(0, a=a, b=b)
    assert run("atan2(a, b)") == math.atan2(a, b)
    assert run("hypot(a, b)") == math.hypot(a, b)
    assert run("min(a, b)") == min(a, b) and run("max(a, b)") == max(a, b)
    if b != 0:
        assert run("fmod(a, b)") == math.fmod(a, b) == run("a % b")
    if a > 0 and abs(b) < 50:
        try:
            want = math.pow(a, b)
        except OverflowError:  # a subnormal base to a negative power: the expression says so
            for text in ("pow(a, b)", "a ** b"):
                with pytest.raises(ExpressionError, match="overflows"):
                    run(text)
        else:
            assert run("pow(a, b)") == pytest.approx(want, rel=1e-14) == run("a ** b")


# --- logic and short-circuits --------------------------------------------------------------------

class Recorder:
    """A resolver that gives ``value`` for every knob and records what it was asked."""

    def __init__(self, value=2.0):
        self.value = value
        self.calls: list[tuple[Reference, float]] = []

    def __call__(self, ref, frame):
        self.calls.append((ref, frame))
        return self.value(ref, frame) if callable(self.value) else self.value

    @property
    def knobs(self):
        return [str(ref) for ref, _ in self.calls]


@pytest.mark.parametrize("text, expected, read", [
    ("0 && A.k", 0, []), ("1 && A.k", 1, ["A.k"]), ("1 || A.k", 1, []), ("0 || A.k", 1, ["A.k"]),
    ("1 ? A.k : B.k", 2, ["A.k"]), ("0 ? A.k : B.k", 2, ["B.k"]), ("A.k > 1 ? 5 : B.k", 5, ["A.k"]),
])
def test_logic_short_circuits(text, expected, read):
    resolve = Recorder()
    assert ev(text, 1, resolve) == expected
    assert resolve.knobs == read


@pytest.mark.parametrize("text, expected", [("0 && 1/0", 0), ("1 || log(-1)", 1), ("1 ? 2 : sqrt(-1)", 2),
                                            ("0 ? acos(5) : 3", 3), ("frame > 1 ? 1/(frame-1) : 0", 0)])
def test_untaken_branches_raise_nothing(text, expected):
    assert ev(text, frame=1) == expected


def test_logic_results_are_zero_or_one():
    assert ev("5 && 3") == 1 and ev("0 || -2") == 1 and ev("!3") == 0 and ev("2 < 3") == 1


# --- references ----------------------------------------------------------------------------------

R = Reference
REFERENCES = [
    ("Grade1.white", (R(("Grade1",), "white"),)),
    ("Grade1.white.r", (R(("Grade1",), "white", "r", False, R(("Grade1", "white"), "r")),)),
    ("Grade1.white.0", (R(("Grade1",), "white", 0),)),
    ("_CTRL_.world_matrix.11", (R(("_CTRL_",), "world_matrix", 11),)),
    ("parent.size", (R(("parent",), "size"),)),
    ("parent.x", (R(("parent",), "x"),)),
    ("this.size", (R(("this",), "size"),)),
    ("size", (R((), "size"),)),
    ("white.g", (R((), "white", "g", False, R(("white",), "g")),)),
    ("root.first_frame + root.last_frame + root.fps",
     (R(("root",), "first_frame"), R(("root",), "last_frame"), R(("root",), "fps"))),
    ("Group1.Blur2.size", (R(("Group1", "Blur2"), "size"),)),
    ("root.Group1.Blur1.size.w",
     (R(("root", "Group1", "Blur1"), "size", "w", False, R(("root", "Group1", "Blur1", "size"), "w")),)),
    ("parent.Transform1.rotate", (R(("parent", "Transform1"), "rotate"),)),
    ("parent.CurveTool.intensitydata.r",
     (R(("parent", "CurveTool"), "intensitydata", "r", False, R(("parent", "CurveTool", "intensitydata"), "r")),)),
    ("Transform1.translate.x(frame-1)",
     (R(("Transform1",), "translate", "x", True, R(("Transform1", "translate"), "x", None, True)),)),
    ("Group1.Blur2.size(3)", (R(("Group1", "Blur2"), "size", None, True),)),
    ("inp1(frame-1)", (R((), "inp1", None, True),)),
    ("[value Grade1.white]", (R(("Grade1",), "white"),)),
    ("[value size] + [frame]", (R((), "size"),)),
    ("curve", (R((), "curve"),)),
    ("curve(frame - 2)", (R((), "curve", None, True),)),
    ("b + a * b", (R((), "b"), R((), "a"))),
    ("frame + t + pi + sin(1)", ()),
]


@pytest.mark.parametrize("text, refs", REFERENCES)
def test_references(text, refs):
    assert Expression(text).references() == refs


def test_declared_variables_are_not_references():
    expr = Expression("r * x + rgba.red + Grade1.mix", variables=("r", "x", "rgba.red"))
    assert expr.references() == (R(("Grade1",), "mix"),)
    assert expr.evaluate(0, lambda ref, f: 10.0, r=2.0, x=3.0, **{"rgba.red": 1.0}) == 17


def test_a_variable_given_at_evaluation_shadows_a_bare_knob():
    resolve = Recorder(5.0)
    assert ev("gain * 2", 1, resolve, gain=3.0) == 6 and resolve.calls == []
    assert ev("gain * 2", 1, resolve) == 10 and resolve.calls == [(R((), "gain"), 1.0)]


def test_x_is_the_frame_and_y_the_curve_unless_given():
    # Foundry (nuke.expression): frame, t and x are the frame; y is the value of the keys
    resolve = Recorder(lambda ref, frame: frame + 0.5)
    assert Expression("x").references() == () and Expression("x").uses_time()
    assert Expression("y * 2").references() == (R((), "curve"),)
    assert ev("x + y", 7, resolve) == 7 + 7.5 and resolve.knobs == ["curve"]
    assert ev("y(3)", 7, resolve) == 3.5
    assert ev("x + y", 7, resolve, x=1.0, y=2.0) == 3
    pixels = Expression("x * 2", variables=("x",)).evaluate(7, x=torch.tensor([1.0, 2.0]))
    assert pixels.tolist() == [2.0, 4.0]
    assert Expression("x * 2").evaluate(7, v=torch.tensor([1.0])).item() == 14


def test_timed_references_call_resolve_at_the_shifted_frame():
    resolve = Recorder(lambda ref, frame: frame * 10)
    expr = Expression("Transform1.translate.x(frame-1) + Transform1.translate.x + size(t*2) + X.y(3)")
    assert expr.evaluate(10, resolve) == 90 + 100 + 200 + 30
    assert [f for _, f in resolve.calls] == [9.0, 10.0, 20.0, 3.0]
    assert [r.timed for r, _ in resolve.calls] == [True, False, True, True]


@pytest.mark.parametrize("text, uses", [("frame", True), ("t", True), ("[frame]", True), ("X.y(frame-1)", True),
                                        ("X.y(3)", False), ("X.y", False), ("1+2", False), ("random(frame)", True),
                                        ("curve", False), ("Grade1.white * 2", False)])
def test_uses_time(text, uses):
    assert Expression(text).uses_time() is uses


def test_resolve_may_return_tuples():
    values = (0.1, 0.2, 0.3, 0.4)
    assert ev("Grade1.white.g", 1, lambda r, f: values) == 0.2
    assert ev("M.matrix.3", 1, lambda r, f: values) == 0.4
    assert ev("Grade1.mix", 1, lambda r, f: (0.7,)) == 0.7
    with pytest.raises(ExpressionError, match="has 4 values; name a component"):
        ev("Grade1.white", 1, lambda r, f: values)
    with pytest.raises(ExpressionError, match="beyond"):
        ev("M.matrix.7", 1, lambda r, f: values)
    with pytest.raises(ExpressionError, match="is not a number"):
        ev("M.label", 1, lambda r, f: "text")


def test_reference_without_resolver_is_an_error():
    with pytest.raises(ExpressionError, match="reads knob 'Grade1.white' but no resolver"):
        ev("Grade1.white + 1")


def test_pixel_samples():
    expr = Expression("isnan(r) ? r(x + 1, y) : r", variables=("r", "x", "y"))
    assert expr.samples() == ("r",) and expr.references() == ()
    sample = lambda name, x, y: x * 10 + y  # noqa: E731
    assert expr.evaluate_pixels(1, None, {"r": math.nan, "x": 1.0, "y": 2.0}, sample) == 22
    out = expr.evaluate_pixels(1, None, {"r": torch.tensor([math.nan, 3.0]), "x": torch.tensor([1.0, 2.0]),
                                         "y": torch.tensor([0.0, 0.0])}, sample)
    assert out.tolist() == [20.0, 3.0]
    with pytest.raises(ExpressionError, match="needs an image"):
        expr.evaluate(1, r=math.nan, x=0.0, y=0.0)
    with pytest.raises(ExpressionError, match=r"r\(x, y\)"):
        Expression("r(1)", variables=("r",))


# --- errors --------------------------------------------------------------------------------------

SYNTAX_ERRORS = [
    ("1 +", 4, "expected a value, found the end"), ("1 + * 2", 5, "expected a value, found '*'"),
    ("(1 + 2", 7, "expected ')'"), ("1 2", 3, "unexpected '2' after a complete expression"),
    ("sin(1", 6, "expected ')'"), ("a = 1", 3, "did you mean '=='"), ("2 ^ 3", 3, "'^' is not an operator"),
    ("1 ? 2", 6, "expected ':'"), ("Grade1.", 8, "after '.'"), ("1.2.3", 4, "unexpected '.3'"),
    ("3x", 1, "malformed number"), ("1 # 2", 3, "unexpected character '#'"), ("", 1, "empty expression"),
    ("[knob Grade1.white]", 1, "unsupported TCL command 'knob'"),
    ("1 + [python nuke.thisNode()]", 5, "unsupported TCL command 'python'"),
    ("$nuke_versions > 13", 1, "TCL variables are not supported ($nuke_versions"),
    ("[value Grade1.white", 1, "unclosed '['"), ("Grade1.white.r(1, 2)", 15, "takes one argument, the frame"),
    ("foo(1, 2)", 1, "unknown function 'foo'"), ("sine(1)", 1, "did you mean sin?"),
    ("sin(1, 2)", 1, "sin() takes 1 argument(s), got 2"), ("clamp()", 1, "clamp() takes 1 to 3 argument(s)"),
    ("random()", 1, "random() takes 1 to 3"), ("fBm(1, 2)", 1, "fBm() takes 6 argument(s)"),
    ("frame(1)", 1, "'frame' is not a function"), ("[value]", 1, "unsupported form of TCL command 'value'"),
]


@pytest.mark.parametrize("text, column, message", SYNTAX_ERRORS)
def test_syntax_errors_name_the_column(text, column, message):
    with pytest.raises(ExpressionError) as info:
        Expression(text)
    err = info.value
    assert err.column == column and err.text == text
    assert message in str(err)
    assert isinstance(err, KnobError)
    if "\n" not in text and text:
        assert f"\n  {text}\n  {' ' * (column - 1)}^" in str(err)


def test_unknown_function_lists_the_valid_ones():
    with pytest.raises(ExpressionError) as info:
        Expression("foo(1, 2)")
    for name in ("sin", "fBm", "turbulence", "smoothstep"):
        assert name in str(info.value)


def test_runaway_nesting_is_an_error_not_a_crash():
    with pytest.raises(ExpressionError, match="levels deep"):
        Expression("(" * 500 + "1" + ")" * 500)
    with pytest.raises(ExpressionError, match="levels deep"):
        Expression("+".join(["1"] * 600))
    assert Expression("+".join(["1"] * 150)).evaluate(0) == 150


RUNTIME_ERRORS = [
    ("1/(frame-1)", 2, "division by zero"), ("log(frame-1)", 1, "log"), ("sqrt(-frame)", 1, "sqrt"),
    ("acos(frame+1)", 1, "acos"), ("asin(-2)", 1, "asin"), ("pow(-2, 0.5)", 1, "pow"),
    ("(-2)**0.5", 5, "power"), ("fmod(1, frame-1)", 1, "fmod"), ("frame % 0", 7, "modulo"),
    ("exp(1000*frame)", 1, "exp"), ("log10(0)", 1, "log10"), ("pow(0, -1)", 1, "pow"),
    ("cosh(1e4)", 1, "cosh"), ("logb(0)", 1, "logb"), ("(1/0) * 0", 3, "division by zero"),
]


@pytest.mark.parametrize("text, column, message", RUNTIME_ERRORS)
def test_domain_errors_raise_at_evaluation_with_text_and_column(text, column, message):
    expr = Expression(text)  # parses: the error is the value's, not the syntax's
    with pytest.raises(ExpressionError) as info:
        expr.evaluate(1)
    assert message in str(info.value) and text in str(info.value) and info.value.column == column
    err = info.value.with_context(node="Grade1", knob="white", frame=1)
    assert str(err).startswith("node 'Grade1' knob 'white', frame 1: ")


def test_tensors_follow_ieee_instead_of_raising():
    out = Expression("log(v)", variables=("v",)).evaluate(1, v=torch.tensor([-1.0, 0.0, 1.0]))
    assert math.isnan(out[0]) and out[1] == -math.inf and out[2] == 0
    assert Expression("1 / v").evaluate(1, v=torch.tensor([0.0])).item() == math.inf


def test_missing_declared_variable():
    with pytest.raises(ExpressionError, match="variable 'r' was not given"):
        Expression("r * 2", variables=("r",)).evaluate(1)


def test_not_text():
    with pytest.raises(ExpressionError, match="is text"):
        Expression(3)  # type: ignore[arg-type]


EXPRESSION_ALPHABET = "0123456789.eE+-*/%<>=!&|?:(),[]$ _xtframeGd1.whitesinrandomvalue\t²é"


@settings(max_examples=400, deadline=None)
@given(st.one_of(st.text(max_size=40), st.text(EXPRESSION_ALPHABET, max_size=40)))
def test_any_text_parses_or_raises_expression_error(text):
    """Fed arbitrary text, the parser and the evaluator fail only with ExpressionError."""
    try:
        expr = Expression(text)
    except ExpressionError as err:
        assert err.column is None or 1 <= err.column <= len(text) + 1
        return
    try:
        value = expr.evaluate(3, lambda ref, frame: 1.0)
    except ExpressionError:
        return
    assert isinstance(value, float)


# --- the object ----------------------------------------------------------------------------------

def test_identical_texts_share_one_parse_and_objects_are_values():
    a, b = Expression("Grade1.white * 2"), Expression("Grade1.white * 2")
    assert a._program is b._program
    assert a == b and hash(a) == hash(b) and a != Expression("Grade1.white * 3")
    assert Expression("x", variables=("x",)) != Expression("x")
    assert a.text == "Grade1.white * 2" and "Grade1.white * 2" in repr(a)
    c = pickle.loads(pickle.dumps(Expression("r + 1", variables=("r",))))
    assert c == Expression("r + 1", variables=("r",)) and c.evaluate(0, r=1.0) == 2


def test_constant_subtrees_still_raise_at_evaluation():
    expr = Expression("frame > 5 ? 1/0 : 2")
    assert expr.evaluate(1) == 2
    with pytest.raises(ExpressionError, match="division by zero"):
        expr.evaluate(6)


# --- hypothesis: printed trees parse back to the same value -----------------------------------------

BINARY = {"||": 1, "&&": 2, "==": 5, "!=": 5, "<": 6, "<=": 6, ">": 6, ">=": 6, "+": 7, "-": 7, "*": 8,
          "/": 8, "%": 8, "**": 10}
leaves = st.one_of(st.integers(0, 20).map(lambda i: ("num", float(i))),
                   st.floats(0, 1e6, allow_nan=False).map(lambda f: ("num", f)),
                   st.just(("frame",)))


def _extend(children):
    return st.one_of(
        st.tuples(st.just("un"), st.sampled_from(["-", "!"]), children),
        st.tuples(st.just("bin"), st.sampled_from(sorted(BINARY)), children, children),
        st.tuples(st.just("tern"), children, children, children))


trees = st.recursive(leaves, _extend, max_leaves=12)


def to_text(node) -> tuple[str, int]:
    """Print with the fewest parentheses the test's own precedence table allows."""
    kind = node[0]
    if kind == "num":
        value = node[1]
        return (str(int(value)) if value.is_integer() and abs(value) < 1e15 else repr(value)), 11
    if kind == "frame":
        return "frame", 11

    def wrap(child, least):
        text, level = to_text(child)
        return text if level >= least else f"({text})"
    if kind == "un":
        return f"{node[1]} {wrap(node[2], 9)}", 9
    if kind == "tern":
        return f"{wrap(node[1], 1)} ? {wrap(node[2], 0)} : {wrap(node[3], 0)}", 0
    op, level = node[1], BINARY[node[1]]
    if op == "**":
        return f"{wrap(node[2], 11)} ** {wrap(node[3], 9)}", 10
    return f"{wrap(node[2], level)} {op} {wrap(node[3], level + 1)}", level


def reference(node, frame):
    """The test's own evaluator: Python floats, C semantics for % and **, errors as exceptions."""
    kind = node[0]
    if kind == "num":
        return node[1]
    if kind == "frame":
        return frame
    if kind == "un":
        v = reference(node[2], frame)
        return -v if node[1] == "-" else (1.0 if v == 0 else 0.0)
    if kind == "tern":
        return reference(node[2], frame) if reference(node[1], frame) else reference(node[3], frame)
    op = node[1]
    a = reference(node[2], frame)
    if op == "&&":
        return 1.0 if a and reference(node[3], frame) else 0.0
    if op == "||":
        return 1.0 if a or reference(node[3], frame) else 0.0
    b = reference(node[3], frame)
    if op in ("/", "%") and b == 0:
        raise ZeroDivisionError
    if op == "**":
        if a == 0 and b < 0:
            raise ZeroDivisionError
        return math.pow(a, b)  # ValueError / OverflowError where C would give nan / inf
    return {"+": lambda: a + b, "-": lambda: a - b, "*": lambda: a * b, "/": lambda: a / b,
            "%": lambda: math.fmod(a, b), "<": lambda: float(a < b), "<=": lambda: float(a <= b),
            ">": lambda: float(a > b), ">=": lambda: float(a >= b), "==": lambda: float(a == b),
            "!=": lambda: float(a != b)}[op]()


def same(a: float, b: float) -> bool:
    return a == b or (math.isnan(a) and math.isnan(b))


@settings(max_examples=300, deadline=None)
@given(trees, st.integers(-5, 100))
def test_printed_trees_evaluate_like_the_reference_evaluator(tree, frame):
    text = to_text(tree)[0]
    try:
        expected = reference(tree, float(frame))
    except (ZeroDivisionError, ValueError, OverflowError):
        with pytest.raises(ExpressionError):
            Expression(text).evaluate(frame)
        return
    assert same(Expression(text).evaluate(frame), expected), text


# --- hypothesis: the scalar and torch backends agree ---------------------------------------------

SAFE_CALLS = {"sin": 1, "cos": 1, "tan": 1, "atan": 1, "tanh": 1, "exp": 1, "log": 1, "sqrt": 1, "abs": 1,
              "floor": 1, "ceil": 1, "int": 1, "rint": 1, "degrees": 1, "radians": 1, "asin": 1, "acos": 1,
              "log10": 1, "noise": 3, "random": 3, "atan2": 2, "hypot": 2, "fmod": 2, "pow": 2, "min": 3,
              "max": 2, "clamp": 3, "lerp": 3, "smoothstep": 3, "step": 2, "to_sRGB": 1, "from_sRGB": 1,
              "isnan": 1}
x_leaves = st.one_of(st.floats(-4, 4, allow_nan=False).map(lambda f: ("num", round(f, 3))), st.just(("var",)),
                     st.just(("frame",)))


def _extend_calls(children):
    call = st.sampled_from(sorted(SAFE_CALLS)).flatmap(
        lambda name: st.tuples(st.just("call"), st.just(name), *[children] * SAFE_CALLS[name]))
    return st.one_of(_extend(children), call)


call_trees = st.recursive(x_leaves, _extend_calls, max_leaves=10)


def call_text(node) -> str:
    kind = node[0]
    if kind == "num":
        return f"({node[1]!r})"
    if kind == "var":
        return "x"
    if kind == "frame":
        return "frame"
    if kind == "call":
        return f"{node[1]}({', '.join(call_text(a) for a in node[2:])})"
    if kind == "un":
        return f"({node[1]}{call_text(node[2])})"
    if kind == "tern":
        return f"({call_text(node[1])} ? {call_text(node[2])} : {call_text(node[3])})"
    return f"({call_text(node[2])} {node[1]} {call_text(node[3])})"


XS = [-3.7, -1.0, -0.25, 0.0, 0.5, 1.0, 2.2, 7.9, 100.3]


@settings(max_examples=200, deadline=None, derandomize=True)
@given(call_trees)
def test_scalar_and_tensor_backends_agree(tree):
    expr = Expression(call_text(tree), variables=("x",))
    tensor = expr.evaluate(3, x=torch.tensor(XS, dtype=torch.float64))
    assert tensor.dtype == torch.float64
    tensor = tensor.expand(len(XS))
    for i, x in enumerate(XS):
        try:
            scalar = expr.evaluate(3, x=x)
        except ExpressionError:
            continue  # a domain error: the tensor holds nan or inf there
        got = float(tensor[i])
        assert same(got, scalar) or got == pytest.approx(scalar, rel=1e-9, abs=1e-12), (expr.text, x)


def test_tensor_backend_types_and_shapes():
    x = torch.linspace(0, 1, 12).reshape(3, 4)
    out = Expression("x > 0.5 ? noise(x * 4, frame) : random(x * 9) + Grade1.mix", variables=("x",)).evaluate(
        2, lambda r, f: 0.5, x=x)
    assert out.shape == (3, 4) and out.dtype == torch.float32
    half = Expression("x * 2", variables=("x",)).evaluate(1, x=torch.ones(2, dtype=torch.float16))
    assert half.dtype == torch.float32 and half.tolist() == [2.0, 2.0]
    assert Expression("2 * 3").evaluate(1, x=torch.ones(2)).item() == 6
    bits = Expression("(x | 2) + (x & 6)", variables=("x",)).evaluate(1, x=torch.tensor([5.0, 1.9, -1.5]))
    assert bits.tolist() == [ev("5|2") + ev("5&6"), ev("1.9|2") + ev("1.9&6"), ev("-1.5|2") + ev("-1.5&6")]


# --- noise and random ----------------------------------------------------------------------------

coords = st.floats(-1e4, 1e4, allow_nan=False)


@settings(max_examples=200, deadline=None)
@given(coords, coords, coords)
def test_noise_and_random_ranges_and_determinism(x, y, z):
    for args in ((x,), (x, y), (x, y, z)):
        text = ", ".join(repr(a) for a in args)
        n, r = ev(f"noise({text})"), ev(f"random({text})")
        assert -1 <= n <= 1 and 0 <= r <= 1
        assert ev(f"noise({text})") == n and ev(f"random({text})") == r


def test_noise_is_zero_on_the_integer_lattice_and_varies_between():
    assert ev("noise(3)") == 0 and ev("noise(2, -5)") == 0 and ev("noise(1, 2, 3)") == 0
    for k in range(200):  # 1-D noise never flat over a whole unit
        assert abs(ev(f"noise({k} + 0.3)")) > 1e-9 or abs(ev(f"noise({k} + 0.7)")) > 1e-9
    samples = torch.tensor([ev(f"noise({i * 0.37}, {i * 0.11}, {i * 0.05})") for i in range(2000)])
    assert samples.std() > 0.1 and samples.min() < -0.4 and samples.max() > 0.4


def test_random_is_uniform_at_integers_and_smooth_between():
    values = [ev("random(frame)", frame=f) for f in range(2000)]
    assert len(set(values)) > 1990
    assert 0.45 < sum(values) / len(values) < 0.55
    assert min(values) < 0.01 and max(values) > 0.99
    for x in (0.1, 3.3, -7.61, 1234.5):
        assert abs(ev(f"random({x} + 1e-7)") - ev(f"random({x})")) < 1e-5
        assert abs(ev(f"noise({x} + 1e-7, 0.5)") - ev(f"noise({x}, 0.5)")) < 1e-5


def test_noise_values_are_pinned():
    # renders must not change silently between versions: any change here is a deliberate break
    assert ev("noise(0.5)") == pytest.approx(0.29842069123369186, abs=1e-12)
    assert ev("noise(0.3, 0.7)") == pytest.approx(-0.33793501728, abs=1e-10)
    assert ev("noise(1.25, 2.5, 3.75)") == pytest.approx(0.6652364730834961, abs=1e-12)
    assert ev("random(0)") == pytest.approx(0.7107895133085549, abs=1e-12)
    assert ev("random(1, 2, 3)") == pytest.approx(0.49325386341661215, abs=1e-12)


@settings(max_examples=100, deadline=None)
@given(st.floats(-100, 100), st.floats(-100, 100), st.floats(-100, 100), st.floats(1.5, 3), st.floats(0.2, 0.8))
def test_fbm_and_turbulence_follow_foundrys_definition(x, y, z, lacunarity, gain):
    names = dict(a=x, b=y, c=z, L=lacunarity, G=gain)

    def run(text):
        return Expression(text, variables=tuple(names)).evaluate(0, **names)
    assert run("fBm(a, b, c, 1, L, G)") == run("noise(a, b, c)")
    assert run("fBm(a, b, c, 2, L, G)") == pytest.approx(run("noise(a, b, c) + G * noise(a*L, b*L, c*L)"), abs=1e-12)
    assert run("turbulence(a, b, c, 2, L, G)") == pytest.approx(
        run("abs(noise(a, b, c)) + G * abs(noise(a*L, b*L, c*L))"), abs=1e-12)
    assert run("fBm(a, b, c, 0, L, G)") == 0
    bound = sum(gain ** i for i in range(5))
    assert abs(run("fBm(a, b, c, 5, L, G)")) <= bound and 0 <= run("turbulence(a, b, c, 5, L, G)") <= bound


def test_noise_per_pixel_matches_scalar():
    x = torch.linspace(-3, 3, 13, dtype=torch.float64)
    octaves = torch.tensor([0, 1, 2, 3] * 3 + [4], dtype=torch.float64)
    expr = Expression("fBm(x, x * 0.5, 1.5, o, 2, 0.5) + random(x * 3, 2) + turbulence(x, 0, 0, 3, 2, 0.5)",
                      variables=("x", "o"))
    out = expr.evaluate(1, x=x, o=octaves)
    for i in range(13):
        assert out[i].item() == pytest.approx(expr.evaluate(1, x=float(x[i]), o=float(octaves[i])), abs=1e-12)


# --- real scripts ------------------------------------------------------------------------------------

NK_DIR = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "nk"


def tcl_words(text: str) -> list[str]:
    """A TCL-ish split into words: braced (nested), quoted and bare, escapes kept."""
    out, i, n = [], 0, len(text)
    while i < n:
        if text[i].isspace() or text[i] == ";":
            i += 1
            continue
        start = i
        if text[i] == "{":
            depth = 0
            while i < n:
                if text[i] == "\\":
                    i += 2
                    continue
                depth += {"{": 1, "}": -1}.get(text[i], 0)
                if depth == 0:
                    break
                i += 1
            i += 1
        elif text[i] == '"':
            i += 1
            while i < n and text[i] != '"':
                i += 2 if text[i] == "\\" else 1
            i += 1
        else:
            while i < n and not text[i].isspace():
                i += 2 if text[i] == "\\" else 1
        out.append(text[start:i])
    return out


def tcl_unquote(word: str) -> str:
    if word.startswith('"') and word.endswith('"') and len(word) >= 2:
        return re.sub(r"\\(.)", lambda m: {"n": "\n", "t": "\t"}.get(m.group(1), m.group(1)), word[1:-1])
    if word.startswith("{") and word.endswith("}"):
        return word[1:-1]
    return word


def is_number(word: str) -> bool:
    try:
        float(word)
    except ValueError:
        return False
    return True


def script_expressions(text: str):
    """(class, knob, expression) for every animated knob value ``{{expr keys...}}`` (also one
    component of a list ``{{a} 0 {b}}``) and every Expression/MergeExpression ``expr`` knob."""
    top = tcl_words(text)
    for k in range(1, len(top)):
        body, cls = top[k], top[k - 1]
        if not (body.startswith("{") and cls[:1].isalpha()):
            continue
        items = tcl_words(body[1:-1])
        for knob, value in zip(items[::2], items[1::2]):
            if cls in ("Expression", "MergeExpression") and re.fullmatch(r"(temp_)?expr\d?", knob):
                yield cls, knob, tcl_unquote(value), True
            if knob in ("addUserKnob", "curves", "serialiseKnob") or not value.startswith("{"):
                continue
            for anim in tcl_words(value[1:-1]):
                words = tcl_words(anim[1:-1]) if anim.startswith("{") else []
                if not words or words[0].startswith("{") or is_number(words[0]):
                    continue  # not an animation, or a constant
                if words[0] == "curve" and len(words) > 1:
                    continue  # keys only: a curve, not an expression
                yield cls, knob, tcl_unquote(words[0]), False


PIXEL_VARIABLES = ("r", "g", "b", "a", "x", "y", "z", "u", "v", "Ar", "Ag", "Ab", "Aa", "Br", "Bg", "Bb", "Ba")


def test_real_script_expressions_parse():
    if not NK_DIR.is_dir():
        pytest.skip(f"{NK_DIR} is absent")
    total, failures = 0, []
    pixel_total, pixel_failures = 0, []
    for path in sorted([*NK_DIR.rglob("*.nk"), *NK_DIR.rglob("*.gizmo")]):
        for cls, knob, text, per_pixel in script_expressions(path.read_text(errors="replace")):
            try:
                Expression(text, variables=PIXEL_VARIABLES if per_pixel else ())
            except ExpressionError as err:
                (pixel_failures if per_pixel else failures).append((path.name, cls, knob, text, err.reason))
            if per_pixel:
                pixel_total += 1
            else:
                total += 1
    print(f"\nknob expressions: {total - len(failures)}/{total} parse; "
          f"per-pixel expressions: {pixel_total - len(pixel_failures)}/{pixel_total}")
    for failure in failures + pixel_failures:
        print("  does not parse:", failure[:3], repr(failure[3][:80]), "-", failure[4][:70])
    assert total > 1000 and pixel_total > 1000
    # everything in the documented language parses; what does not is TCL beyond [value]/[frame]
    # (exists, python, if, $variables, string concatenation) or '^^', which Nuke does not document
    for *_, text, reason in failures + pixel_failures:
        assert "[" in text or "$" in text or "^^" in text, (text, reason)
    assert len(failures) / total < 0.03 and len(pixel_failures) / pixel_total < 0.01
