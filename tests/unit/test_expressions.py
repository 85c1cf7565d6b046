"""bankflow's expression language: every known escape refused with nothing happening, and
every construct the language offers working as documented (docs/expressions.md)."""

from __future__ import annotations

import ast
import decimal
import threading
import time
import tracemalloc
from collections import ChainMap
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from sandbox_escapes import DEFUSED, ESCAPES, SENTINEL, Escape

from bankflow.errors import BankflowError
from bankflow.language._expressions import (
    FUNCTIONS,
    MAX_ITEMS,
    ExpressionError,
    cache_clear,
    cache_info,
    compile_expression,
)

NOW = datetime(2026, 11, 2, 9, 30, tzinfo=UTC)


class Canary:
    """Task data an escape might try to use as a handle: calling it or reading a (non-dunder)
    attribute of it counts, in ``Canary.calls`` (module-wide). Dunder lookups are the host's
    own protocols (copying the data for a script) and raise AttributeError as usual."""

    calls = 0

    def __call__(self, *args: object, **kwargs: object) -> None:
        Canary.calls += 1

    def __getattr__(self, name: str) -> object:
        if name.startswith("__"):
            raise AttributeError(name)
        Canary.calls += 1
        return self


def escape_data() -> dict[str, Any]:
    return {"amount": 5, "x": [1, 2], "d": {"k": 1}, "canary": Canary()}


def ev(text: str, data: dict[str, Any] | None = None, **kwargs: Any) -> Any:
    return compile_expression(text, mode="eval").evaluate(data or {}, now=lambda: NOW, **kwargs)


def run(text: str, data: dict[str, Any] | None = None) -> dict[str, Any]:
    return compile_expression(text, mode="exec").execute(data or {}, now=lambda: NOW)


def attempt(text: str, mode: str, data: dict[str, Any], origin: str) -> Any:
    """Compile and run: a refusal may come from either step."""
    compiled = compile_expression(text, mode=mode, origin=origin)  # type: ignore[arg-type]
    return compiled.evaluate(data) if mode == "eval" else compiled.execute(data)


def refusal(text: str, mode: str = "eval", data: dict[str, Any] | None = None) -> ExpressionError:
    with pytest.raises(ExpressionError) as caught:
        attempt(text, mode, data or {}, "loan.bpmn:42 gateway_1")
    return caught.value


# -- escapes --------------------------------------------------------------------------------


def _is_expression(text: str) -> bool:
    try:
        ast.parse(text, mode="eval")
    except (SyntaxError, RecursionError, MemoryError):
        return False
    return True


def _cases() -> list[Any]:
    cases = []
    for escape in ESCAPES:
        forms = ["eval", "exec"] + (["exec: result = ..."] if _is_expression(escape.source) else [])
        cases += [pytest.param(escape, form, id=f"{escape.name}-{form[:4]}") for form in forms]
    return cases


def test_the_catalogue_is_broad() -> None:
    assert len(ESCAPES) >= 30
    categories = {e.category for e in ESCAPES}
    assert {"attribute", "builtins", "import", "frame", "format", "unicode"} <= categories
    assert {"cpu", "memory", "nesting", "decimal", "int-str", "size"} <= categories


@pytest.mark.parametrize(("escape", "form"), _cases())
def test_every_escape_is_refused_and_nothing_happens(
    escape: Escape, form: str, tmp_path: Path
) -> None:
    sentinel = tmp_path / "escaped"
    text = escape.text(str(sentinel))
    if form.startswith("exec: "):
        text = f"result = {text}"
    mode = "eval" if form == "eval" else "exec"
    calls_before = Canary.calls
    cache_clear()  # measure compiling too, not a cached refusal
    tracemalloc.start()
    started = time.perf_counter()
    try:
        with pytest.raises(ExpressionError) as caught:
            attempt(text, mode, escape_data(), "escape")
    finally:
        elapsed = time.perf_counter() - started
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    assert caught.value.origin == "escape"
    assert str(caught.value)
    assert not sentinel.exists(), "the escape ran code"
    assert Canary.calls == calls_before, "the escape reached a task-data object"
    # Under tracemalloc, which slows allocation-heavy code several times over.
    assert elapsed < 5, f"took {elapsed:.2f}s: not refused before doing the work"
    assert peak < 64 * 2**20, f"peak {peak / 2**20:.0f} MiB"


@pytest.mark.parametrize("bomb", DEFUSED, ids=[d.name for d in DEFUSED])
def test_defused_bombs_run_small_and_fast(bomb: Escape) -> None:
    tracemalloc.start()
    started = time.perf_counter()
    try:
        result = run(bomb.source)
    finally:
        elapsed = time.perf_counter() - started
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    assert elapsed < 5  # generous: an unguarded bomb runs for minutes
    assert peak < 64 * 2**20
    assert result["x1"] == [[0], [0]]  # the copy in x1 did not change with x0
    assert len(result["x0"][0]) == 999999


def test_the_sentinel_check_would_see_an_escape(tmp_path: Path) -> None:
    """Control: on plain Python the same text does create the sentinel file."""
    (escape,) = [e for e in ESCAPES if e.name == "open-write"]
    sentinel = tmp_path / "escaped"
    eval(escape.text(str(sentinel))).close()  # the control: plain Python, on purpose
    assert sentinel.exists()
    assert SENTINEL not in escape.text(str(sentinel))


def test_a_refused_escape_says_what_and_where() -> None:
    error = refusal("x = 1\ny = x.__class__", "exec")
    assert (error.origin, error.line, error.column) == ("loan.bpmn:42 gateway_1", 2, 5)
    assert error.error_type == "ExpressionError"
    assert "`x.__class__`" in str(error)
    assert str(error).startswith("loan.bpmn:42 gateway_1: line 2, column 5: ")

    error = refusal("\uff45\uff56\uff41\uff4c('1')")
    assert "reads as `eval` after Unicode normalisation" in error.message

    error = refusal("amount > 1 and getattr(amount, 'real')")
    assert (error.line, error.column) == (1, 16)
    assert "`getattr` is not a function of the language" in error.message

    error = refusal("[i for i in x]")
    assert "comprehensions are not allowed" in error.message


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("import os", "imports are not allowed"),
        ("lambda: 1", "lambda is not allowed"),
        ("while True:\n    pass", "loops"),
        ("f'{a}'", "f-strings"),
        ("(y := 1)", "walrus"),
        ("_x", "names starting with _"),
        ("max([1], key=len)", "max() takes no keyword key="),
        ("len(*x)", "star"),
        ("x['f']()", "only the language's functions can be called"),
        ("'a'.upper()", "method calls are not allowed"),
        ("1 << 2", "the operator << is not part of the language"),
        ("{1, 2}", "set literals"),
        ("'%s' % x", "%-formatting"),
        ("b'x'", "bytes literals"),
        ("len(1, 2)", "len() takes 1 arguments, not 2"),
        ("x[1:2] = y", "assigning to a slice"),
        ("del x", "del is not allowed"),
        ("a) + (b", "unmatched ')'"),
        ("amount >", "does not parse: the expression is incomplete"),
        ("", "the text is empty"),
    ],
)
def test_refusals_name_the_construct(text: str, message: str) -> None:
    mode = "exec" if text.startswith(("import", "while", "x[1:2]", "del")) else "eval"
    assert message in refusal(text, mode).message


# -- resource limits ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("9 ** 9 ** 9", "the power would have more than 4,300 digits"),
        ("'a' * 10 ** 10", "the limit is 1,000,000"),
        ("[0] * (10 ** 6 + 1)", "the limit is 1,000,000"),
        ("str(10 ** 4000 * 10 ** 400)", "the product would have more than 4,300 digits"),
        ("int('9' * 5000)", "int() of a text with more than 4,300 digits"),
        ("Decimal('1e999999')", "Overflow"),
        ("Decimal('1.' + '1' * 40)", "at most 34 significant digits"),
        ("round(Decimal(1), 10 ** 9)", "round() to more than 100 digits"),
    ],
)
def test_limits_are_refused_before_the_work(text: str, message: str) -> None:
    started = time.perf_counter()
    error = refusal(text)
    assert time.perf_counter() - started < 0.1
    assert message in error.message
    assert error.error_type in {"LimitExceeded", "Overflow", "Inexact"}


def test_values_up_to_the_limits_still_work() -> None:
    assert len(ev("'a' * 1000000")) == MAX_ITEMS
    assert ev("len(str(10 ** 4299))") == 4300
    assert ev("2 ** 14000 > 0")
    assert ev("Decimal('9.99e999') > 0")


def test_decimal_arithmetic_ignores_the_threads_context() -> None:
    with decimal.localcontext() as context:
        context.prec = 3
        assert ev("Decimal('1.23456') * 2") == Decimal("2.46912")
        assert ev("-amount", {"amount": Decimal("1.23456")}) == Decimal("-1.23456")


def test_values_put_into_containers_are_copied() -> None:
    """Copy-on-build: no two containers share a child, so sizes cannot multiply unseen."""
    result = run("a = [1]\nb = [a, a]\na[0] = 2\nc = {'k': b}\nb[0][0] = 3")
    assert result == {"a": [2], "b": [[3], [1]], "c": {"k": [[1], [1]]}}
    assert run("x = [[0]] * 2\nx[0][0] = 1")["x"] == [[1], [0]]


@pytest.mark.parametrize(
    ("setup", "line"),
    [
        ("y = [1] * 999999\n", "r = sum(y)\n"),
        ("y = [0] * 999999\n", "r = max(y)\n"),
        ("y = [0] * 999999\n", "r = -1 in y\n"),
        ("y = [0.5] * 999999\nz = [0.5] * 999999\n", "r = y == z\n"),
        ("t = (0,) * 999999\nd = {t: 1}\n", "r = d[t]\n"),
    ],
    ids=["sum", "max", "in", "compare", "tuple-key"],
)
def test_reusing_a_large_value_many_times_is_bounded(setup: str, line: str) -> None:
    """No loops, but 300 lines that each walk a million items would take seconds: the walks
    are charged to the run's budget, so the script is refused after a few of them."""
    started = time.perf_counter()
    error = refusal(setup + line * 300, "exec")
    assert time.perf_counter() - started < 1
    assert error.error_type == "LimitExceeded"
    assert "build or walk more than 4,000,000 units" in error.message
    assert error.line is not None
    assert error.line <= len(setup.splitlines()) + 10


def test_comparing_and_summing_ordinary_values_is_not_limited() -> None:
    data = {"a": [1, 2], "b": [1, 2], "c": "x" * 5000, "limits": {"k": 1}, "key": "k"}
    assert ev("a == b and a <= b and c == c and 1 in a and limits[key] == 1", data) is True
    assert ev("sum(a) + max(a) + min(a)", data) == 6


def test_results_are_bounded_too() -> None:
    error = refusal("s = 'a' * 999999\n" + "\n".join(f"v{i} = s" for i in range(20)), "exec")
    assert "results are larger" in error.message


# -- the language ---------------------------------------------------------------------------

DATA: dict[str, Any] = {
    "amount": Decimal("9500.00"),
    "risk_score": 12,
    "rate": 0.5,
    "tags": ["vip", "new"],
    "customer": {"name": "Ada", "address": {"city": "Oslo"}},
    "items": [{"price": Decimal("1.10")}, {"price": Decimal("2.20")}],
    "blocked": False,
    "note": None,
}


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        # literals
        ("42", 42),
        ("-1.5", -1.5),
        ("'text'", "text"),
        ("True", True),
        ("None", None),
        ("[1, 'a', None]", [1, "a", None]),
        ("(1, 2)", (1, 2)),
        ("{'a': [1], 'b': {'c': 2}}", {"a": [1], "b": {"c": 2}}),
        # arithmetic
        ("7 + 3 - 2 * 4", 2),
        ("7 / 2", 3.5),
        ("7 // 2", 3),
        ("7 % 3", 1),
        ("2 ** 10", 1024),
        ("-risk_score", -12),
        ("+risk_score", 12),
        ("'a' + 'b' * 2", "abb"),
        ("[1] + [2]", [1, 2]),
        ("rate * 4", 2.0),
        # comparisons and logic
        ("amount <= 10000 and risk_score < 30", True),
        ("1 < risk_score < 20 <= 20", True),
        ("risk_score != 12 or not blocked", True),
        ("'vip' in tags and 'old' not in tags", True),
        ("note is None and blocked is not None", True),
        ("'yes' if amount > 100 else 'no'", "yes"),
        # data
        ("customer['address']['city']", "Oslo"),
        ("customer.address.city", "Oslo"),
        ("tags[0]", "vip"),
        ("tags[-1:]", ["new"]),
        ("tags[::-1]", ["new", "vip"]),
        ("customer['name'][1:]", "da"),
        ("items[1]['price']", Decimal("2.20")),
        # functions
        ("len(tags)", 2),
        ("min(3, 1, 2)", 1),
        ("max([3, 1, 2])", 3),
        ("max([], default=0)", 0),
        ("sum([1, 2, 3])", 6),
        ("sum([items[0]['price'], items[1]['price']])", Decimal("3.30")),
        ("sum([[1], [2]], [])", [1, 2]),
        ("abs(-3)", 3),
        ("abs(Decimal('-1.5'))", Decimal("1.5")),
        ("round(2.675, 2)", 2.67),
        ("round(Decimal('2.675'), 2)", Decimal("2.68")),
        ("round(Decimal('2.5'))", 2),
        ("round(3.7)", 4),
        ("int('42') + int(3.9) + int(Decimal('2.5'))", 47),
        ("float('1.5')", 1.5),
        ("str(12) + str(Decimal('0.10')) + str(None)", "120.10None"),
        ("str([1, 'a'])", "[1, 'a']"),
        ("bool([]) or bool(1)", True),
        ("Decimal('0.10') * 3", Decimal("0.30")),
        ("Decimal(0.1)", Decimal("0.1")),
        ("Decimal(7) / 2", Decimal("3.5")),
        ("Decimal('10') // 3 + Decimal('10') % 3", Decimal("4")),
        ("amount - Decimal('500')", Decimal("9000.00")),
        ("Decimal(1) / 3", Decimal("0.3333333333333333333333333333333333")),
        ("date(2026, 1, 31) + days(1)", date(2026, 2, 1)),
        ("datetime(2026, 1, 1, 10, 30)", datetime(2026, 1, 1, 10, 30)),
        ("datetime(2026, 1, 1, hour=8) + hours(2) + minutes(5)", datetime(2026, 1, 1, 10, 5)),
        ("date(2026, 3, 1) - date(2026, 2, 1)", timedelta(days=28)),
        ("date(2026, 1, 1) < date(2026, 1, 2)", True),
        ("days(1.5)", timedelta(days=1, hours=12)),
        ("today()", date(2026, 11, 2)),
        ("now()", NOW),
        ("now() + hours(48) > now()", True),
        ("today() - days(1)", date(2026, 11, 1)),
    ],
)
def test_allowed_constructs(text: str, expected: object) -> None:
    result = ev(text, dict(DATA))
    assert result == expected
    assert type(result) is type(expected)


def test_money_stays_exact() -> None:
    assert ev("Decimal('0.10') * 3 == Decimal('0.30')") is True
    assert ev("fee + fee + fee", {"fee": Decimal("0.10")}) == Decimal("0.30")
    assert ev("0.1 + 0.2") != 0.3  # a float literal stays a float; Decimal is explicit
    error = refusal("Decimal('0.10') + 0.2")
    assert error.error_type == "TypeError"
    assert "Decimal and float cannot be mixed" in error.message


def test_the_clock_is_injected() -> None:
    compiled = compile_expression("now() - days(1) < due", mode="eval")
    assert compiled.evaluate({"due": NOW}, now=lambda: NOW) is True
    assert compiled.evaluate({"due": NOW}, now=lambda: NOW + timedelta(days=2)) is False
    default = compile_expression("now()", mode="eval").evaluate({})
    assert default.tzinfo is UTC
    assert abs(default - datetime.now(UTC)) < timedelta(minutes=1)


def test_the_clock_must_give_a_datetime() -> None:
    with pytest.raises(ExpressionError, match="the clock returned str"):
        compile_expression("today()").evaluate({}, now=lambda: "noon")  # type: ignore[arg-type,return-value]


def test_names_always_mean_task_data() -> None:
    """A variable named like a function reads the data; only a call reaches the function."""
    data = {"date": date(2026, 1, 1), "len": 3, "sum": "x"}
    assert ev("date", data) == date(2026, 1, 1)
    assert ev("len + len([1])", data) == 4
    error = refusal("len")
    assert error.error_type == "NameError"
    assert error.message == "NameError: unknown variable 'len': `len`"


def test_any_mapping_is_data() -> None:
    scope = ChainMap({"a": 1}, {"a": 2, "b": 3})
    assert compile_expression("a + b").evaluate(scope) == 4


# -- scripts --------------------------------------------------------------------------------


def test_scripts_assign_and_nothing_else_leaks() -> None:
    data = {"amount": 50, "limits": {"daily": 100}, "tags": ["a"]}
    script = """
        fee = amount // 10
        if fee > 10:
            band = 'high'
        elif fee > 3:
            band = 'mid'
        else:
            band = 'low'
        limits['daily'] += 5
        limits['new'] = [fee]
        tags += ['b']
        a, b = 1, 2
        total = c = a + b
        pass
    """
    compiled = compile_expression(script, mode="exec")
    result = compiled.execute(data)
    assert result == {
        "amount": 50,
        "limits": {"daily": 105, "new": [5]},
        "tags": ["a", "b"],
        "fee": 5,
        "band": "mid",
        "a": 1,
        "b": 2,
        "total": 3,
        "c": 3,
    }
    assert data == {"amount": 50, "limits": {"daily": 100}, "tags": ["a"]}  # untouched
    assert compiled.assigned == {"fee", "band", "limits", "tags", "a", "b", "total", "c"}
    assert compiled.variables >= {"amount", "fee", "a", "b", "tags"}


def test_a_failed_script_changes_nothing() -> None:
    data = {"limits": {"daily": 100}}
    with pytest.raises(ExpressionError):
        run("limits['daily'] = 1\nx = 1 / 0", data)
    assert data == {"limits": {"daily": 100}}


def test_scripts_in_bpmn_may_be_indented() -> None:
    script = "\n            x = 1\n            if x:\n                y = z\n"
    error = refusal(script, "exec")
    assert (error.line, error.column) == (4, 21)
    assert error.message == "NameError: unknown variable 'z': `z`"


def test_conditions_may_span_lines() -> None:
    assert ev("\n  amount > 1\n    and risk_score < 30\n", dict(DATA)) is True


def test_wrong_mode_is_an_error() -> None:
    with pytest.raises(ExpressionError, match="call execute"):
        compile_expression("x = 1", mode="exec").evaluate({})
    with pytest.raises(ExpressionError, match="call evaluate"):
        compile_expression("1").execute({})


# -- errors at run time ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "error_type", "message", "where"),
    [
        ("missing + 1", "NameError", "unknown variable 'missing'", (1, 1, "missing")),
        ("amount / 0", "ZeroDivisionError", "division by zero", (1, 1, "amount / 0")),
        ("1 + (tags + 1)", "TypeError", "can only concatenate list", (1, 6, "tags + 1")),
        ("customer['phone']", "KeyError", "'phone'", (1, 1, "customer['phone']")),
        ("tags[5]", "IndexError", "list index out of range", (1, 1, "tags[5]")),
        ("int('x')", "ValueError", "invalid literal", (1, 1, "int('x')")),
        ("Decimal('abc')", "InvalidOperation", "not a Decimal number", (1, 1, "Decimal('abc')")),
        ("amount / Decimal(0)", "ZeroDivisionError", "Decimal division", (1, 1, "amount / ...")),
    ],
)
def test_run_time_errors_keep_type_line_and_column(
    text: str, error_type: str, message: str, where: tuple[int, int, str]
) -> None:
    error = refusal(text, data=dict(DATA))
    assert error.error_type == error_type
    assert message in error.message
    assert error.message.startswith(f"{error_type}: ")
    line, column, snippet = where
    assert (error.line, error.column) == (line, column)
    assert error.snippet.startswith(snippet.removesuffix("..."))
    assert error.origin == "loan.bpmn:42 gateway_1"
    assert isinstance(error, BankflowError)
    assert error.__cause__ is not None


def test_run_time_error_on_a_later_line() -> None:
    error = refusal("a = 1\nb = 2\nc = b * missing", "exec")
    assert (error.line, error.column, error.snippet) == (3, 9, "missing")


# -- compile once, run many -----------------------------------------------------------------


def test_compiled_once_per_text_and_mode() -> None:
    cache_clear()
    first = compile_expression("amount > 1", mode="eval", origin="a")
    assert compile_expression("amount > 1", mode="eval", origin="a") is first
    other_origin = compile_expression("amount > 1", mode="eval", origin="b")
    assert other_origin is not first
    assert other_origin.origin == "b"
    info = cache_info()
    assert (info.misses, info.hits) == (1, 1)  # compiled once for both origins
    compile_expression("amount > 1", mode="exec")
    assert cache_info().misses == 2


def test_refusals_carry_the_callers_origin() -> None:
    for origin in ("a.bpmn gw", "b.bpmn gw"):
        with pytest.raises(ExpressionError) as caught:
            compile_expression("x.__class__", origin=origin)
        assert caught.value.origin == origin


def test_one_compiled_object_serves_many_threads() -> None:
    compiled = compile_expression("[str(n) + '!'] * 2", mode="eval")
    results: list[Any] = []

    def work(n: int) -> None:
        results.extend(compiled.evaluate({"n": n}) for _ in range(200))

    threads = [threading.Thread(target=work, args=(n,)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(results) == 800
    assert all(r == [r[0], r[0]] for r in results)


def test_the_function_list_is_the_documented_one() -> None:
    assert set(FUNCTIONS) == {
        "len", "min", "max", "sum", "abs", "round", "int", "float", "str", "bool", "Decimal",
        "date", "datetime", "today", "now", "days", "hours", "minutes",
    }  # fmt: skip
