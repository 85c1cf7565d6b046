"""bankflow's one expression language: a small Python subset, compiled once, run sandboxed.

Why not SpiffWorkflow's ``eval``/``exec``: a gateway condition or script task comes from a
BPMN file an analyst edited, and full Python reaches ``os`` in one line
(``().__class__.__base__.__subclasses__()``), even with RestrictedPython's ``safe_globals``.
Here nothing an analyst writes runs unless every node of it is on an allow-list, and the few
operations that can grow without bound go through guard functions that check sizes *before*
computing. docs/expressions.md is the language reference and says why this design won
(measured against RestrictedPython, asteval and simpleeval).

How it works:

1. The text is scanned (bracket nesting, size), parsed with ``ast``, and every node is checked
   against an allow-list; anything else is an ``ExpressionError`` naming what, line, column
   and the snippet. No Python attribute is ever read (a dotted ``a.b`` is only the data path
   ``a["b"]``; method calls are refused), no name starts with ``_``, and there is no loop,
   comprehension, lambda, def, class, import, try, with, f-string, walrus or star-arg.
2. The tree is rewritten: every variable ``x`` becomes ``data["x"]`` (so a name can only ever
   mean task data, never a builtin or an internal), calls go to the whitelisted helpers
   only, and ``+ - * / // % **``, unary ``-``/``+``, slicing, and comparisons between two
   non-constants become guard calls (size checks before the work, the bounded ``Decimal``
   context, copy-on-build of nested values, the run's work budget).
3. It is compiled into one plain Python function ``run(data, clock)`` whose globals hold the
   helpers and an empty ``__builtins__``. Running a condition is one function call, about as
   fast as ``eval`` of a precompiled code object (see bench/expressions.py).

Values are copied when they are put into another list/dict/tuple (copy-on-build), so no two
containers built by an expression share a child. That keeps the *logical* size of every value
equal to what it costs in memory, and that is what the run's budget (``MAX_ALLOCATED``)
counts, together with the walks that comparisons, ``in``, keys and ``min``/``max``/``sum``
make over large values: a script cannot build ``[x, x, ...]`` of a large ``x`` and then make
a comparison, a ``str()`` or the host's JSON serializer walk 10**12 elements, nor compare one
large list 400 times. With no loops, that bounds a run without a wall-clock timer.

Only the standard library is used; SpiffWorkflow is not imported here (``runtime._spiff``
wires this into its script engine).
"""

from __future__ import annotations

import ast
import copy
import decimal
import functools
import io
import itertools
import operator
import textwrap
import tokenize
import warnings
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from types import CodeType, TracebackType
from typing import Any, Final, Literal, NoReturn, cast

from bankflow.errors import BankflowError

__all__ = [
    "DECIMAL_CONTEXT",
    "FUNCTIONS",
    "MAX_ALLOCATED",
    "MAX_DEPTH",
    "MAX_INT_DIGITS",
    "MAX_ITEMS",
    "MAX_NESTING",
    "MAX_NODES",
    "MAX_NUMBER_DIGITS",
    "MAX_SOURCE_CHARS",
    "MAX_VALUE_DEPTH",
    "Compiled",
    "ExpressionError",
    "Mode",
    "cache_clear",
    "cache_info",
    "coefficient_digits",
    "compile_expression",
]

Mode = Literal["eval", "exec"]
Clock = Callable[[], datetime]

# -- limits ---------------------------------------------------------------------------------
# Together these bound what one run can cost: there are no loops, so every node runs at most
# once; a node's work is bounded by the size of its operands; sizes are bounded below.

MAX_SOURCE_CHARS: Final = 10_000
"""Longest expression or script text accepted."""
MAX_NODES: Final = 2_000
"""Most syntax nodes (names, operators, literals, statements) in one text."""
MAX_DEPTH: Final = 100
"""Deepest nesting of syntax nodes (``- - - x``, ``a + b + c ...``, ``elif`` chains)."""
MAX_NESTING: Final = 50
"""Deepest nesting of brackets ``( [ {`` in the text."""
MAX_ITEMS: Final = 1_000_000
"""Longest str, list or tuple an operation may produce (characters or items)."""
MAX_ALLOCATED: Final = 4_000_000
"""What one run may build and walk in total, in units of about 8 bytes: an item of a list,
tuple or dict is 1, a string of n characters ``1 + n // 2``, an int ``1 + bits // 64``, a
Decimal 1 plus a unit per 19 digits of its coefficient beyond the first 76.
Building a value charges its size; so do the operations whose C code walks a value
(comparisons and ``in`` between non-constants, non-constant keys, ``min``/``max``/``sum``).
The value an expression returns and the variables a script assigns are held to the same
bound, so the host's own walk over them (validation, JSON) stays bounded too."""
MAX_NUMBER_DIGITS: Final = 4_300
"""Most decimal digits of an int an operation may produce (Python's own int-to-str limit),
and of an int or Decimal an operation may take: the language's Decimal context rounds
results to 34 digits, but libmpdec multiplies the operands in full first, and a
million-digit amount from task data multiplied 300 times took 24 s."""
MAX_INT_DIGITS: Final = MAX_NUMBER_DIGITS
MAX_VALUE_DEPTH: Final = 32
"""Deepest nesting of lists/dicts a run may build (the same bound task data has)."""
_MAX_INT_BITS: Final = 14_284  # floor(4300 * log2(10)): any int this size has <= 4300 digits
_MAX_ROUND_DIGITS: Final = 100

DECIMAL_CONTEXT: Final = decimal.Context(
    prec=34,
    rounding=decimal.ROUND_HALF_EVEN,
    Emin=-999,
    Emax=999,
    capitals=1,
    clamp=0,
    flags=[],
    traps=[decimal.InvalidOperation, decimal.DivisionByZero, decimal.Overflow],
)
"""Every Decimal operation of the language runs in this context (34 significant digits,
exponents within +-999, banker's rounding), never in the thread's: the host's context cannot
change results, and ``Decimal("1e999999") ** 999999`` overflows at once instead of running.
Passed explicitly to each operation, so there is no per-run context switch."""
_DECIMAL_CREATE: Final = DECIMAL_CONTEXT.copy()
_DECIMAL_CREATE.traps[decimal.Inexact] = True  # Decimal("...") never rounds silently

FUNCTIONS: Final = frozenset(
    {
        "len", "min", "max", "sum", "abs", "round", "int", "float", "str", "bool", "Decimal",
        "date", "datetime", "today", "now", "days", "hours", "minutes",
    }
)  # fmt: skip
"""The only names that can be called."""

# name -> (fewest arguments, most arguments or None, keyword names accepted)
_SIGNATURES: Final[dict[str, tuple[int, int | None, frozenset[str]]]] = {
    "len": (1, 1, frozenset()),
    "min": (1, None, frozenset({"default"})),
    "max": (1, None, frozenset({"default"})),
    "sum": (1, 2, frozenset({"start"})),
    "abs": (1, 1, frozenset()),
    "round": (1, 2, frozenset({"ndigits"})),
    "int": (1, 1, frozenset()),
    "float": (1, 1, frozenset()),
    "str": (1, 1, frozenset()),
    "bool": (1, 1, frozenset()),
    "Decimal": (1, 1, frozenset()),
    "date": (3, 3, frozenset()),
    "datetime": (3, 7, frozenset({"hour", "minute", "second", "microsecond"})),
    "today": (0, 0, frozenset()),
    "now": (0, 0, frozenset()),
    "days": (1, 1, frozenset()),
    "hours": (1, 1, frozenset()),
    "minutes": (1, 1, frozenset()),
}
_NEEDS_BUDGET: Final = frozenset({"str", "sum", "min", "max"})
_NEEDS_CLOCK: Final = frozenset({"today", "now"})

# Internal names of the generated function. Analysts cannot write them: names starting with
# "_" are refused, and every analyst name is rewritten to a lookup in the data mapping anyway.
_DATA: Final = "__bf_data"
_CLOCK: Final = "__bf_clock"
_BUDGET: Final = "__bf_budget"
_RUN: Final = "__bf_run"
_FILENAME: Final = "<bankflow expression>"


# -- the error ------------------------------------------------------------------------------


class ExpressionError(BankflowError):
    """An expression or script was refused (at compile time) or failed (at run time).

    ``message`` says what (with the offending snippet), without the location; ``origin`` is
    the caller's label (such as ``loan.bpmn:42 gateway_1``); ``line`` and ``column`` are
    1-based and refer to the text as written (``None`` when not known); ``snippet`` is the
    offending part of the text; ``error_type`` is the kind of failure: ``ExpressionError``
    for a refusal at compile time, ``LimitExceeded`` for a size limit at run time, otherwise
    the Python exception that stopped the run (``NameError`` for an unknown variable,
    ``ZeroDivisionError``, ``KeyError``, ``TypeError``...).
    """

    def __init__(
        self,
        reason: str,
        *,
        origin: str = "",
        line: int | None = None,
        column: int | None = None,
        snippet: str = "",
        error_type: str = "ExpressionError",
    ) -> None:
        self.reason = reason
        self.origin = origin
        self.line = line
        self.column = column
        self.snippet = snippet
        self.error_type = error_type
        self.message = reason + (f": `{snippet}`" if snippet else "")
        parts = [origin] if origin else []
        if line is not None:
            parts.append(f"line {line}" + (f", column {column}" if column is not None else ""))
        parts.append(self.message)
        super().__init__(": ".join(parts))

    def with_origin(self, origin: str) -> ExpressionError:
        """The same error labelled with ``origin`` (compiled programs are shared by origins)."""
        return ExpressionError(
            self.reason,
            origin=origin,
            line=self.line,
            column=self.column,
            snippet=self.snippet,
            error_type=self.error_type,
        )


class _Limit(Exception):
    """A guard refused an operation before computing it (reported as "limit exceeded")."""


# -- guards: the operators ------------------------------------------------------------------
# Each takes the operands already evaluated and checks the cost *before* doing the work. The
# fast path (two ints, two floats) comes first: conditions are hot.

_Budget = list[int]  # one cell: the units this run may still allocate
_SEQUENCES: Final = (str, list, tuple)
_CONTAINERS: Final = (list, tuple, dict)


def _charge(budget: _Budget, units: int) -> None:
    budget[0] -= units
    if budget[0] < 0:
        raise _Limit(
            f"this run would build or walk more than {MAX_ALLOCATED:,} units of values "
            "(about 32 MB); work on smaller values"
        )


def _check_length(n: int, what: str) -> None:
    if n > MAX_ITEMS:
        raise _Limit(f"{what} would have {n:,} items or characters; the limit is {MAX_ITEMS:,}")


def _check_int(n: int) -> int:
    if n.bit_length() > _MAX_INT_BITS:
        raise _Limit(f"the integer would have more than {MAX_INT_DIGITS:,} digits")
    return n


# A Decimal's coefficient is held in 64-bit words of 19 digits, up to four of them inside
# the object; ``__sizeof__`` (O(1)) counts the words of a longer one, so a Decimal's size
# is known without reading its digits.
_DECIMAL_SIZE: Final = Decimal(0).__sizeof__()
_SIZED_DECIMALS: Final = Decimal("1" * 200).__sizeof__() > _DECIMAL_SIZE  # libmpdec
_WORD_DIGITS: Final = 19
# Up to this size a number (Decimal or int) has at most MAX_NUMBER_DIGITS digits; above it
# the digits are counted (exactly, and cheaply: only numbers near the limit get there).
_BIG_NUMBER: Final = min(
    Decimal("9" * (MAX_NUMBER_DIGITS - _WORD_DIGITS)).__sizeof__(),
    (10 ** (MAX_NUMBER_DIGITS - _WORD_DIGITS)).__sizeof__(),
)


def coefficient_digits(value: Decimal, cap: int) -> int:
    """Digits of ``value``'s coefficient, exactly when there are at most about ``cap``;
    for a far longer one, a count above ``cap`` found in O(1) (from its allocated words)
    without reading a million digits."""
    if _SIZED_DECIMALS:
        words = (value.__sizeof__() - _DECIMAL_SIZE) >> 3
        if (words - 1) * _WORD_DIGITS > 16 * cap + 100_000:
            return (words - 1) * _WORD_DIGITS
    return len(value.as_tuple().digits)


def _decimal_units(value: Any) -> int:
    """Units of a Decimal beyond its first: one per 19 digits of a coefficient longer
    than 76 digits (a shorter one lives inside the object)."""
    return (value.__sizeof__() - _DECIMAL_SIZE) >> 3 if _SIZED_DECIMALS else 0


def _check_number(value: Any) -> None:
    """Refuse an operand with more than MAX_NUMBER_DIGITS digits, before any work on it."""
    if type(value) is Decimal or isinstance(value, Decimal):
        if coefficient_digits(value, MAX_NUMBER_DIGITS) > MAX_NUMBER_DIGITS:
            raise _Limit(
                f"a Decimal with more than {MAX_NUMBER_DIGITS:,} digits cannot be computed "
                "with (the language's Decimals have 34)"
            )
    elif isinstance(value, int) and value.bit_length() > _MAX_INT_BITS:
        raise _Limit(
            f"an integer with more than {MAX_NUMBER_DIGITS:,} digits cannot be computed with"
        )


def _check_numbers(a: Any, b: Any) -> None:
    _check_number(a)
    _check_number(b)


_FLAT: Final = frozenset({float, bool, type(None), date, datetime, timedelta})
_IMMUTABLE: Final = _FLAT | {int, str, Decimal}


_FLAT_OR_DECIMAL: Final = _FLAT | {Decimal}


def _units(value: Any, cap: int) -> int:
    """Logical size of ``value`` (shared parts counted every time they occur), stopping as
    soon as it passes ``cap``: the walk never costs much more than the cap. A container is 1
    plus its items; ``[0] * 1000`` is 1001. Lists of plain values are sized at C speed."""
    total = 0
    stack = [value]
    while stack:
        v = stack.pop()
        t = type(v)
        total += 1
        if t is str:
            total += len(v) // 2
        elif t is int:
            total += v.bit_length() // 64
        elif t is Decimal:
            total += _decimal_units(v)
        elif t is list or t is tuple:
            kinds = set(map(type, v))
            if kinds <= _FLAT:
                total += len(v)
            elif kinds <= _FLAT_OR_DECIMAL:
                total += len(v) + sum(map(_decimal_units, (x for x in v if type(x) is Decimal)))
            elif kinds == {int}:
                total += len(v) + sum(map(int.bit_length, v)) // 64
            elif kinds == {str}:
                total += len(v) + sum(map(len, v)) // 2
            else:
                stack.extend(v)
        elif t is dict:
            stack.extend(v.keys())
            stack.extend(v.values())
        if total > cap:
            break
    return total


_ATOMIC: Final = _FLAT | {int, Decimal}
_SHORT: Final = 4096


def _compare(op: Callable[[Any, Any], Any]) -> Callable[[_Budget, Any, Any], Any]:
    """A comparison guard: charge both operands (``_work``) unless both are numbers, dates
    or short strings, then compare. One call instead of three keeps ``a == b`` cheap."""

    def guard(budget: _Budget, a: Any, b: Any) -> Any:
        ta, tb = type(a), type(b)
        if (ta in _ATOMIC or (ta is str and len(a) < _SHORT)) and (
            tb in _ATOMIC or (tb is str and len(b) < _SHORT)
        ):
            return op(a, b)
        _work(budget, a)
        _work(budget, b)
        return op(a, b)

    guard.__name__ = f"_compare_{op.__name__}"
    return guard


def _contains(a: Any, b: Any) -> bool:
    return a in b


def _not_contains(a: Any, b: Any) -> bool:
    return a not in b


def _work(budget: _Budget, value: Any) -> Any:
    """``value``, after charging the run for walking it: wraps the operands of comparisons,
    ``in`` and non-constant keys, whose cost in C grows with their size. Without it, a
    script could compare one large list 400 times (no loop needed) and run for seconds."""
    t = type(value)
    if t is list or t is tuple or t is dict:
        _charge(budget, _units(value, budget[0] + 1))
    elif t is str:
        _charge(budget, 1 + len(value) // 256)  # compared and hashed at memcmp speed
    return value


def _own(budget: _Budget, value: Any) -> Any:
    """``value`` as it goes into a new container: lists, tuples and dicts are copied (so no
    two containers share a child, and later changes to the original do not show through, as
    with JSON values). The size is charged first, so an oversized value is refused before
    any copying."""
    t = type(value)
    if t is list or t is tuple or t is dict:
        _charge(budget, _units(value, budget[0] + 1))
        return _copy(value, 0)
    if t is str:
        _charge(budget, 1 + len(value) // 2)
    elif t is int:
        _charge(budget, 1 + value.bit_length() // 64)
    elif t is Decimal:
        _charge(budget, 1 + _decimal_units(value))
    else:
        _charge(budget, 1)
    return value


def _copy(value: Any, depth: int) -> Any:
    t = type(value)
    if t is list or t is tuple:
        if depth >= MAX_VALUE_DEPTH:
            raise _Limit(f"values may be nested at most {MAX_VALUE_DEPTH} levels deep")
        if set(map(type, value)) <= _IMMUTABLE:
            return list(value) if t is list else value
        items = [_copy(v, depth + 1) for v in value]
        return items if t is list else tuple(items)
    if t is dict:
        if depth >= MAX_VALUE_DEPTH:
            raise _Limit(f"values may be nested at most {MAX_VALUE_DEPTH} levels deep")
        return {_copy(k, depth + 1): _copy(v, depth + 1) for k, v in value.items()}
    return value


def _is_flat(seq: list[Any] | tuple[Any, ...]) -> bool:
    return not any(isinstance(v, _CONTAINERS) for v in seq)


def _float_mix(a: Any, b: Any) -> NoReturn:
    raise TypeError(
        "Decimal and float cannot be mixed (0.1 is a binary float); "
        f'write Decimal("...") instead of {b if isinstance(a, Decimal) else a!r}'
    )


def _decimal(op: Callable[[Any, Any], Decimal], a: Any, b: Any) -> Decimal:
    if isinstance(a, float) or isinstance(b, float):
        _float_mix(a, b)
    _check_numbers(a, b)
    return op(a, b)


# Bound once: a guard's Decimal path is one call into libmpdec with the language's context.
_ADD: Final = DECIMAL_CONTEXT.add
_SUBTRACT: Final = DECIMAL_CONTEXT.subtract
_MULTIPLY: Final = DECIMAL_CONTEXT.multiply
_DIVIDE: Final = DECIMAL_CONTEXT.divide


def _add(budget: _Budget, a: Any, b: Any) -> Any:
    ta, tb = type(a), type(b)
    if (ta is int or ta is float) and (tb is int or tb is float):
        return a + b
    if ta is Decimal or tb is Decimal:
        if ta is float or tb is float:
            _float_mix(a, b)
        if a.__sizeof__() > _BIG_NUMBER or b.__sizeof__() > _BIG_NUMBER:
            _check_numbers(a, b)
        return _ADD(a, b)
    if ta is tb and (ta is str or ta is list or ta is tuple):
        n = len(a) + len(b)
        _check_length(n, f"the joined {ta.__name__}")
        if ta is str:
            _charge(budget, 1 + n // 2)
            return a + b
        return _own(budget, a + b)
    if isinstance(a, Decimal) or isinstance(b, Decimal):
        return _decimal(_ADD, a, b)
    return a + b


# The Decimal branch at the top of _add, _sub, _mul and _truediv is written out in each on
# purpose: money arithmetic is the hot path of conditions, and a shared helper cost about
# 100 ns a call (a third of "amount * 2 > limit").


def _sub(a: Any, b: Any) -> Any:
    ta, tb = type(a), type(b)
    if ta is Decimal or tb is Decimal:
        if ta is float or tb is float:
            _float_mix(a, b)
        if a.__sizeof__() > _BIG_NUMBER or b.__sizeof__() > _BIG_NUMBER:
            _check_numbers(a, b)
        return _SUBTRACT(a, b)
    if isinstance(a, Decimal) or isinstance(b, Decimal):
        return _decimal(_SUBTRACT, a, b)
    return a - b


def _mul(budget: _Budget, a: Any, b: Any) -> Any:
    ta, tb = type(a), type(b)
    if ta is Decimal or tb is Decimal:
        if ta is float or tb is float:
            _float_mix(a, b)
        if a.__sizeof__() > _BIG_NUMBER or b.__sizeof__() > _BIG_NUMBER:
            _check_numbers(a, b)
        return _MULTIPLY(a, b)
    if ta is float or tb is float:
        if isinstance(a, Decimal) or isinstance(b, Decimal):
            _float_mix(a, b)
        return a * b
    if isinstance(a, Decimal) or isinstance(b, Decimal):
        return _decimal(_MULTIPLY, a, b)
    if isinstance(a, int) and isinstance(b, int):
        if a.bit_length() + b.bit_length() > _MAX_INT_BITS + 1:
            raise _Limit(f"the product would have more than {MAX_INT_DIGITS:,} digits")
        return a * b
    if isinstance(b, _SEQUENCES) and isinstance(a, int):
        a, b = b, a
    if isinstance(a, _SEQUENCES) and isinstance(b, int):
        n = len(a) * max(b, 0)
        _check_length(n, f"{type(a).__name__} * {b:,}")
        if isinstance(a, str):
            _charge(budget, 1 + n // 2)
            return a * b
        if _is_flat(a):
            _charge(budget, 1 + max(b, 0) * (_units(a, MAX_ALLOCATED) - 1))
            return a * b
        return _own(budget, a * b)  # [[0]] * 3 makes three lists, not one shared three times
    return a * b


def _truediv(a: Any, b: Any) -> Any:
    ta, tb = type(a), type(b)
    if ta is Decimal or tb is Decimal:
        if ta is float or tb is float:
            _float_mix(a, b)
        if a.__sizeof__() > _BIG_NUMBER or b.__sizeof__() > _BIG_NUMBER:
            _check_numbers(a, b)
        return _DIVIDE(a, b)
    if isinstance(a, Decimal) or isinstance(b, Decimal):
        return _decimal(_DIVIDE, a, b)
    return a / b


def _floordiv(a: Any, b: Any) -> Any:
    if isinstance(a, Decimal) or isinstance(b, Decimal):
        return _decimal(DECIMAL_CONTEXT.divide_int, a, b)
    if isinstance(a, int) and isinstance(b, int):
        _check_numbers(a, b)  # long division is quadratic in the digits
    return a // b


def _mod(a: Any, b: Any) -> Any:
    if isinstance(a, str):
        # "%0999999999d" % 1 is a memory bomb and %-formatting is not needed: + and str().
        raise TypeError("%-formatting of text is not part of the language; use + and str()")
    if isinstance(a, Decimal) or isinstance(b, Decimal):
        return _decimal(DECIMAL_CONTEXT.remainder, a, b)
    if isinstance(a, int) and isinstance(b, int):
        _check_numbers(a, b)
    return a % b


def _pow(a: Any, b: Any) -> Any:
    if isinstance(a, Decimal) or isinstance(b, Decimal):
        return _decimal(DECIMAL_CONTEXT.power, a, b)
    if isinstance(a, int) and isinstance(b, int):
        if b > 0 and abs(a) > 1:
            if (abs(a).bit_length() - 1) * b > _MAX_INT_BITS:
                raise _Limit(f"the power would have more than {MAX_INT_DIGITS:,} digits")
            return _check_int(a**b)
        return a**b  # b <= 0 gives a float or 1; |a| <= 1 stays small
    result = a**b
    if isinstance(result, complex):
        raise ValueError("a negative number to a fractional power is not a real number")
    return result


def _neg(a: Any) -> Any:
    if isinstance(a, Decimal):
        _check_number(a)
        return DECIMAL_CONTEXT.minus(a)
    return -a


def _pos(a: Any) -> Any:
    if isinstance(a, Decimal):
        _check_number(a)
        return DECIMAL_CONTEXT.plus(a)
    return +a


def _slice(budget: _Budget, obj: Any, lower: Any, upper: Any, step: Any) -> Any:
    result = obj[lower:upper:step]
    if isinstance(result, str):
        _charge(budget, 1 + len(result) // 2)
    elif isinstance(result, list | tuple):
        result = _own(budget, result)
    return result


def _result(value: Any) -> Any:
    """The value an expression hands back to the host: bounded like everything it builds, so
    the host's own walk (validation, JSON) over it stays bounded too."""
    if _units(value, MAX_ALLOCATED) > MAX_ALLOCATED:
        raise _Limit(f"the result is larger than {MAX_ALLOCATED:,} units")
    return value


# -- the functions --------------------------------------------------------------------------


def _len(value: Any) -> int:
    return len(value)


def _sum(budget: _Budget, values: Iterable[Any], start: Any = 0) -> Any:
    items = values if isinstance(values, list | tuple) else list(values)
    _charge(budget, 1 + len(items))  # one guarded addition per item, in Python
    total = start
    for item in items:
        total = _add(budget, total, item)
    return total


def _min(budget: _Budget, *args: Any, **default: Any) -> Any:
    _charge(budget, _units(args, budget[0] + 1))
    return min(*args, **default)


def _max(budget: _Budget, *args: Any, **default: Any) -> Any:
    _charge(budget, _units(args, budget[0] + 1))
    return max(*args, **default)


def _abs(value: Any) -> Any:
    if isinstance(value, Decimal):
        _check_number(value)
        return DECIMAL_CONTEXT.abs(value)
    return abs(value)


def _round(value: Any, ndigits: Any = None) -> Any:
    if ndigits is not None:
        if not isinstance(ndigits, int):
            raise TypeError(f"round() needs a whole number of digits, not {ndigits!r}")
        if abs(ndigits) > _MAX_ROUND_DIGITS:
            # round(1, -10**9) would compute 10**(10**9) first.
            raise _Limit(f"round() to more than {_MAX_ROUND_DIGITS} digits")
    if isinstance(value, Decimal):
        _check_number(value)
        if ndigits is None:
            return _int(DECIMAL_CONTEXT.to_integral_value(value))
        exponent = Decimal((0, (1,), -ndigits))
        return value.quantize(exponent, rounding=decimal.ROUND_HALF_EVEN, context=DECIMAL_CONTEXT)
    return round(value) if ndigits is None else round(value, ndigits)


def _int(value: Any) -> int:
    if isinstance(value, str):
        if len(value.strip()) > MAX_INT_DIGITS + 1:
            raise _Limit(f"int() of a text with more than {MAX_INT_DIGITS:,} digits")
        return _check_int(int(value))
    if isinstance(value, Decimal):
        if value.is_finite() and value.adjusted() >= MAX_INT_DIGITS:
            raise _Limit(f"the integer would have more than {MAX_INT_DIGITS:,} digits")
        _check_number(value)
        return int(value)
    if isinstance(value, int | float):
        return int(value)
    raise TypeError(f"int() of {type(value).__name__} is not supported")


def _float(value: Any) -> float:
    if isinstance(value, Decimal):
        _check_number(value)
    elif not isinstance(value, str | int | float):
        raise TypeError(f"float() of {type(value).__name__} is not supported")
    result = float(value)
    if result - result != 0:  # NaN or an infinity: no database stores it
        raise ValueError(f"float({_short(repr(value), 40)}) is not a finite number")
    return result


def _str(budget: _Budget, value: Any) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, int) and not isinstance(value, bool):
        if value.bit_length() > _MAX_INT_BITS:
            raise _Limit(f"an integer with more than {MAX_INT_DIGITS:,} digits cannot be text")
    elif _text_bound(value, MAX_ITEMS) > MAX_ITEMS:
        # Sized before it is built: str() of a list of 1,000 million-digit amounts would
        # build a 1 GB text first.
        raise _Limit(f"the text would be longer than {MAX_ITEMS:,} characters")
    text = str(value)
    _check_length(len(text), "the text")
    _charge(budget, 1 + len(text) // 2)
    return text


_TEXT_KINDS: Final = (str, int, Decimal, list, tuple, dict)


def _text_bound(value: Any, cap: int) -> int:
    """At least as many characters as ``str(value)`` has (a container shows its items'
    reprs), counted from sizes without building any text and stopping once past ``cap``."""
    total = 0
    stack = [value]
    while stack and total <= cap:
        v = stack.pop()
        t = type(v)
        if t not in _TEXT_KINDS and t is not bool:
            t = next((k for k in _TEXT_KINDS if isinstance(v, k)), t)  # subclasses
        if t is str:
            if v.isprintable():  # quotes, and a backslash before a quote or backslash
                total += len(v) + 2 + v.count("\\") + v.count("'")
            else:
                total += 10 * len(v) + 2  # at worst \U0010ffff per character
        elif t is int:
            total += (v.bit_length() * 1233 >> 12) + 2
        elif t is Decimal:
            # Decimal('...'): sign, point, exponent and up to six zeros besides the digits.
            total += (_decimal_units(v) or 4) * _WORD_DIGITS + 45
        elif t is list or t is tuple:
            total += 3 + 2 * len(v)
            stack.extend(v)
        elif t is dict:
            total += 2 + 4 * len(v)
            stack.extend(v.keys())
            stack.extend(v.values())
        elif t is datetime:
            total += 80 + (len(repr(v.tzinfo)) if v.tzinfo is not None else 0)
        else:
            total += _REPR_CHARS.get(t, 80)
    return total


_REPR_CHARS: Final[dict[type, int]] = {
    float: len(repr(-2.2250738585072014e-308)),
    bool: len("False"),
    type(None): len("None"),
    date: len("datetime.date(9999, 12, 31)"),
    timedelta: len("datetime.timedelta(days=-999999999, seconds=86399, microseconds=999999)"),
}


def _new_decimal(value: Any) -> Decimal:
    """Decimal("0.10") is exact; a float goes through its shortest repr, so Decimal(0.1) is
    Decimal("0.1") (not 0.1000000000000000055...). Never rounds: more than 34 significant
    digits or an exponent beyond +-999 is an error, and so are NaN and infinities."""
    if isinstance(value, float):
        value = repr(value)
    elif isinstance(value, int | Decimal):
        _check_number(value)
    elif not isinstance(value, str):
        raise TypeError(f"Decimal() of {type(value).__name__} is not supported")
    if isinstance(value, str) and len(value) > 200:
        raise _Limit("Decimal() of a text longer than 200 characters")
    result = _DECIMAL_CREATE.create_decimal(value)
    if not result.is_finite():
        raise ValueError(f"Decimal({value!r}) is not a finite number")
    return result


def _date(year: int, month: int, day: int) -> date:
    return date(year, month, day)


def _datetime(
    year: int,
    month: int,
    day: int,
    hour: int = 0,
    minute: int = 0,
    second: int = 0,
    microsecond: int = 0,
) -> datetime:
    """Naive, as in Python and as FEEL's ``date and time("2026-01-01T10:30:00")`` (which the
    DMN translation turns into this call). ``now()`` is whatever the clock gives: the engine's
    clock is UTC-aware, so compare it with aware values from task data."""
    return datetime(year, month, day, hour, minute, second, microsecond)


def _system_now() -> datetime:
    return datetime.now(UTC)


def _now(clock: Clock | None) -> datetime:
    value = (clock or _system_now)()
    if not isinstance(value, datetime):
        raise TypeError(f"the clock returned {type(value).__name__}, not a datetime")
    return value


def _today(clock: Clock | None) -> date:
    return _now(clock).date()


def _amount(value: Any) -> float | int:
    if isinstance(value, Decimal):
        _check_number(value)
        return float(value)
    if isinstance(value, int | float):
        return value
    raise TypeError(f"a number of days/hours/minutes is needed, not {type(value).__name__}")


def _days(n: Any) -> timedelta:
    return timedelta(days=_amount(n))


def _hours(n: Any) -> timedelta:
    return timedelta(hours=_amount(n))


def _minutes(n: Any) -> timedelta:
    return timedelta(minutes=_amount(n))


_HELPERS: Final[dict[str, Callable[..., Any]]] = {
    "len": _len,
    "min": _min,
    "max": _max,
    "sum": _sum,
    "abs": _abs,
    "round": _round,
    "int": _int,
    "float": _float,
    "str": _str,
    "bool": bool,
    "Decimal": _new_decimal,
    "date": _date,
    "datetime": _datetime,
    "today": _today,
    "now": _now,
    "days": _days,
    "hours": _hours,
    "minutes": _minutes,
}
_GUARDS: Final[dict[type[ast.operator], tuple[str, Callable[..., Any], bool]]] = {
    # operator -> (global name, guard, takes the budget)
    ast.Add: ("__bf_add", _add, True),
    ast.Sub: ("__bf_sub", _sub, False),
    ast.Mult: ("__bf_mul", _mul, True),
    ast.Div: ("__bf_truediv", _truediv, False),
    ast.FloorDiv: ("__bf_floordiv", _floordiv, False),
    ast.Mod: ("__bf_mod", _mod, False),
    ast.Pow: ("__bf_pow", _pow, False),
}
_COMPARISONS: Final[dict[type[ast.cmpop], Callable[[Any, Any], Any]]] = {
    ast.Eq: operator.eq,
    ast.NotEq: operator.ne,
    ast.Lt: operator.lt,
    ast.LtE: operator.le,
    ast.Gt: operator.gt,
    ast.GtE: operator.ge,
    ast.In: _contains,
    ast.NotIn: _not_contains,
}
_COMPARE_GUARDS: Final = {op: f"__bf_compare_{op.__name__}" for op in _COMPARISONS}
_GLOBALS: Final[dict[str, Any]] = {
    "__builtins__": {},  # without it, exec would insert the real builtins module
    **{f"__bf_fn_{name}": helper for name, helper in _HELPERS.items()},
    **{name: guard for name, guard, _ in _GUARDS.values()},
    "__bf_neg": _neg,
    "__bf_pos": _pos,
    "__bf_slice": _slice,
    "__bf_own": _own,
    "__bf_work": _work,
    **{_COMPARE_GUARDS[op]: _compare(fn) for op, fn in _COMPARISONS.items()},
    "__bf_result": _result,
}
assert set(_HELPERS) == FUNCTIONS == set(_SIGNATURES)


# -- compiling ------------------------------------------------------------------------------

_REFUSED: Final[dict[type[ast.AST], str]] = {
    ast.Import: "imports are not allowed",
    ast.ImportFrom: "imports are not allowed",
    ast.Lambda: "lambda is not allowed",
    ast.FunctionDef: "defining functions is not allowed",
    ast.AsyncFunctionDef: "defining functions is not allowed",
    ast.ClassDef: "defining classes is not allowed",
    ast.For: "loops (for, while) are not allowed",
    ast.AsyncFor: "loops (for, while) are not allowed",
    ast.While: "loops (for, while) are not allowed",
    ast.ListComp: "comprehensions are not allowed",
    ast.SetComp: "comprehensions are not allowed",
    ast.DictComp: "comprehensions are not allowed",
    ast.GeneratorExp: "generator expressions are not allowed",
    ast.With: "with is not allowed",
    ast.AsyncWith: "with is not allowed",
    ast.Try: "try/except is not allowed",
    ast.TryStar: "try/except is not allowed",
    ast.Raise: "raise is not allowed",
    ast.Assert: "assert is not allowed",
    ast.Global: "global is not allowed",
    ast.Nonlocal: "nonlocal is not allowed",
    ast.Delete: "del is not allowed",
    ast.Return: "return is not allowed",
    ast.Yield: "yield is not allowed",
    ast.YieldFrom: "yield is not allowed",
    ast.Await: "await is not allowed",
    ast.NamedExpr: "the walrus operator (:=) is not allowed; assign in a script instead",
    ast.JoinedStr: "f-strings are not allowed; join text with + and str()",
    ast.FormattedValue: "f-strings are not allowed; join text with + and str()",
    ast.Starred: "star arguments and unpacking (*x) are not allowed",
    ast.Set: "set literals are not allowed; use a list or a tuple",
    ast.Match: "match is not allowed",
    ast.AnnAssign: "annotated assignments are not allowed; write `x = value`",
}
_ARITHMETIC: Final = tuple(_GUARDS)
_OPERATOR_TEXT: Final[dict[type[ast.AST], str]] = {
    ast.LShift: "<<",
    ast.RShift: ">>",
    ast.BitAnd: "&",
    ast.BitOr: "|",
    ast.BitXor: "^",
    ast.MatMult: "@",
    ast.Invert: "~",
}
_UNCOUNTED: Final = (ast.expr_context, ast.operator, ast.boolop, ast.unaryop, ast.cmpop)
_LITERALS: Final = (ast.Constant, ast.List, ast.Tuple, ast.Dict)


class _Refusal(Exception):
    """Raised while compiling; turned into an ExpressionError with the text's coordinates."""

    def __init__(self, reason: str, node: ast.AST | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.node = node


@dataclass(frozen=True, slots=True)
class _Source:
    """Maps positions in the text that was parsed back to the text the analyst wrote.

    Conditions are parsed as ``"(" + text + "\\n)"`` so that line breaks inside a condition
    (common in BPMN XML) are allowed; scripts are dedented. Both shift columns.
    """

    written: str
    parsed: str
    mode: Mode
    indent: int

    def locate(
        self, lineno: int | None, col: int | None, end_lineno: int | None, end_col: int | None
    ) -> tuple[int | None, int | None, str]:
        """(line, column, snippet) from 1-based line and 0-based UTF-8 byte columns."""
        lines = self.parsed.split("\n")
        if lineno is None or not 1 <= lineno <= len(lines):
            return None, None, ""
        raw = lines[lineno - 1].encode()
        start = col or 0
        char_col = len(raw[:start].decode(errors="replace"))
        if end_lineno == lineno and end_col is not None:
            snippet = raw[start:end_col].decode(errors="replace")
        else:
            snippet = raw[start:].decode(errors="replace").rstrip()
            if end_lineno is not None and end_lineno != lineno:
                snippet += " ..."
        return lineno, self.column(lineno, char_col + 1), _short(snippet.strip())

    def column(self, lineno: int, column: int) -> int:
        """1-based column in the written text for a 1-based column in the parsed text."""
        if self.mode == "eval":
            return max(column - 1, 1) if lineno == 1 else column
        return column + self.indent


def _short(text: str, limit: int = 80) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."


@dataclass(frozen=True, slots=True)
class _Program:
    """One compiled text, shared by every origin that uses the same (text, mode)."""

    text: str
    mode: Mode
    run: Callable[[Any, Clock | None], Any]
    code: CodeType
    source: _Source
    names: dict[tuple[int, int, int, int], str]  # position of a variable read -> its name
    variables: frozenset[str]
    assigned: frozenset[str]
    copies_data: bool  # a script that stores into x[k] runs on a deep copy of the data

    def failure(self, exc: BaseException, origin: str) -> ExpressionError:
        """The ExpressionError for an exception raised while running, located by the
        instruction that raised it (CPython 3.11 keeps a column range per instruction)."""
        position = _position(exc.__traceback__, self.code)
        kind, reason = _reason(exc, self.names.get(position) if position else None)
        if position is None:
            return ExpressionError(reason, origin=origin, error_type=kind)
        line, column, snippet = self.source.locate(
            position[0], position[1], position[2], position[3]
        )
        return ExpressionError(
            reason, origin=origin, line=line, column=column, snippet=snippet, error_type=kind
        )


def _position(tb: TracebackType | None, code: CodeType) -> tuple[int, int, int, int] | None:
    found = None
    while tb is not None:
        if tb.tb_frame.f_code is code and tb.tb_lasti >= 0:
            found = tb.tb_lasti
        tb = tb.tb_next
    if found is None:
        return None
    lineno, end_lineno, col, end_col = next(
        itertools.islice(code.co_positions(), found // 2, None), (None, None, None, None)
    )
    if lineno is None or end_lineno is None or col is None or end_col is None:
        return None
    return lineno, col, end_lineno, end_col


_DECIMAL_REASONS: Final[tuple[tuple[type[Exception], str, str], ...]] = (
    (decimal.DivisionByZero, "ZeroDivisionError", "Decimal division by zero"),
    (decimal.DivisionUndefined, "ZeroDivisionError", "Decimal division by zero"),
    (
        decimal.Overflow,
        "Overflow",
        "the Decimal is beyond 9.99E+999, the largest the language allows",
    ),
    (decimal.Underflow, "Underflow", "the Decimal is too close to zero to be exact"),
    (decimal.Inexact, "Inexact", "a Decimal has at most 34 significant digits"),
    (decimal.ConversionSyntax, "InvalidOperation", "not a Decimal number"),
    (decimal.InvalidOperation, "InvalidOperation", "the Decimal operation is undefined"),
)


def _reason(exc: BaseException, name: str | None) -> tuple[str, str]:
    """(error type, message) for an exception raised while running. The message starts with
    the type, so it reads on its own (``ZeroDivisionError: division by zero``)."""
    kind, text = type(exc).__name__, str(exc)
    if isinstance(exc, _Limit):
        kind = "LimitExceeded"
        return kind, f"{kind}: {text}"
    if isinstance(exc, KeyError) and name is not None and exc.args == (name,):
        kind, text = "NameError", f"unknown variable {name!r}"
    elif isinstance(exc, decimal.DecimalException):
        # The C implementation raises the first trapped signal's class and lists the
        # conditions (ConversionSyntax...) in args[0].
        conditions = exc.args[0] if exc.args and isinstance(exc.args[0], list) else []
        for signal, signal_kind, signal_text in _DECIMAL_REASONS:
            if isinstance(exc, signal) or signal in conditions:
                kind, text = signal_kind, signal_text
                break
    elif isinstance(exc, RecursionError):
        text = "the value is nested too deeply"
    elif isinstance(exc, MemoryError):
        text = "out of memory"
    return kind, _short(f"{kind}: {text}", 300)


def _scan(text: str) -> None:
    """Bracket nesting and emptiness, on tokens (so brackets inside strings do not count).

    Runs before the parser, whose recursion is what deep nesting would stress. Errors of the
    tokenizer are left for the parser to report in its own words."""
    openers: list[tuple[str, int, int]] = []
    significant = 0
    try:
        for token in tokenize.generate_tokens(io.StringIO(text).readline):
            if token.type == tokenize.OP and token.string in "([{":
                openers.append((token.string, *token.start))
                if len(openers) > MAX_NESTING:
                    raise _Refusal(f"brackets are nested more than {MAX_NESTING} deep")
            elif token.type == tokenize.OP and token.string in ")]}":
                if not openers:
                    raise _Refusal(f"unmatched {token.string!r}", _at(*token.start))
                openers.pop()
            if token.type not in _INSIGNIFICANT:
                significant += 1
    except (tokenize.TokenError, SyntaxError):
        pass
    if openers:
        bracket, row, col = openers[-1]
        raise _Refusal(f"{bracket!r} was never closed", _at(row, col))
    if not significant:
        raise _Refusal("the text is empty")


_INSIGNIFICANT: Final = frozenset(
    {
        tokenize.COMMENT,
        tokenize.NL,
        tokenize.NEWLINE,
        tokenize.INDENT,
        tokenize.DEDENT,
        tokenize.ENDMARKER,
    }
)


def _at(row: int, col: int) -> ast.AST:
    """A stand-in node for a position in the *written* text (row 1-based, col 0-based)."""
    node = ast.Pass()
    node.lineno, node.col_offset = row, col
    node.end_lineno, node.end_col_offset = row, col + 1
    node.written = True  # type: ignore[attr-defined]
    return node


def _measure(tree: ast.AST) -> None:
    """Node count and nesting depth, iteratively: it runs before anything recursive."""
    count = 0
    stack: list[tuple[ast.AST, int]] = [(tree, 0)]
    while stack:
        node, depth = stack.pop()
        if isinstance(node, _UNCOUNTED):
            continue
        count += 1
        if count > MAX_NODES:
            raise _Refusal(f"the text has more than {MAX_NODES:,} parts; split it up")
        if depth > MAX_DEPTH:
            raise _Refusal(f"the text is nested more than {MAX_DEPTH} levels deep", node)
        stack.extend((child, depth + 1) for child in ast.iter_child_nodes(node))


class _Checker:
    """The allow-list. A node type without a ``check_`` method here is refused."""

    def __init__(self, parsed: str, mode: Mode) -> None:
        self.parsed = parsed
        self.mode = mode
        self.variables: set[str] = set()
        self.assigned: set[str] = set()
        self.stores_into: bool = False

    def refuse(self, reason: str, node: ast.AST) -> NoReturn:
        raise _Refusal(reason, node)

    def check(self, node: ast.AST) -> None:
        method = getattr(self, "check_" + type(node).__name__, None)
        if method is None:
            message = _REFUSED.get(type(node)) or f"`{type(node).__name__}` is not allowed"
            self.refuse(message, node)
        method(node)

    def check_all(self, nodes: Iterable[ast.AST]) -> None:
        for node in nodes:
            self.check(node)

    # statements (scripts only)

    def check_Expression(self, node: ast.Expression) -> None:
        self.check(node.body)

    def check_Module(self, node: ast.Module) -> None:
        self.check_all(node.body)

    def check_Assign(self, node: ast.Assign) -> None:
        for target in node.targets:
            self.target(target, unpack=True)
        self.check(node.value)

    def check_AugAssign(self, node: ast.AugAssign) -> None:
        self.operator(node.op, node)
        self.target(node.target, unpack=False)
        if isinstance(node.target, ast.Name):
            self.variables.add(node.target.id)
        self.check(node.value)

    def check_If(self, node: ast.If) -> None:
        self.check(node.test)
        self.check_all(node.body)
        self.check_all(node.orelse)

    def check_Pass(self, node: ast.Pass) -> None:
        pass

    def check_Expr(self, node: ast.Expr) -> None:
        """Allowed (its value is dropped): nothing in the language has a side effect."""
        self.check(node.value)

    def target(self, node: ast.expr, *, unpack: bool) -> None:
        if isinstance(node, ast.Name):
            self.name(node)
            self.assigned.add(node.id)
        elif isinstance(node, ast.Subscript | ast.Attribute):
            if isinstance(node, ast.Subscript) and isinstance(node.slice, ast.Slice):
                self.refuse("assigning to a slice (x[a:b] = ...) is not allowed", node)
            self.check(node)
            self.stores_into = True
            root: ast.expr = node
            while isinstance(root, ast.Subscript | ast.Attribute):
                root = root.value
            if isinstance(root, ast.Name):
                self.assigned.add(root.id)
        elif unpack and isinstance(node, ast.Tuple | ast.List):
            for element in node.elts:
                self.target(element, unpack=True)
        elif isinstance(node, ast.Starred):
            self.check(node)
        else:
            self.refuse("only a variable or x[key] can be assigned to", node)

    # expressions

    def check_BoolOp(self, node: ast.BoolOp) -> None:
        self.check_all(node.values)

    def operator(self, op: ast.operator, node: ast.AST) -> None:
        if not isinstance(op, _ARITHMETIC):
            text = _OPERATOR_TEXT.get(type(op), type(op).__name__)
            self.refuse(f"the operator {text} is not part of the language", node)

    def check_BinOp(self, node: ast.BinOp) -> None:
        self.operator(node.op, node)
        if (
            isinstance(node.op, ast.Mod)
            and isinstance(node.left, ast.Constant)
            and isinstance(node.left.value, str)
        ):
            self.refuse("%-formatting of text is not allowed; use + and str()", node)
        self.check(node.left)
        self.check(node.right)

    def check_UnaryOp(self, node: ast.UnaryOp) -> None:
        if isinstance(node.op, ast.Invert):
            self.refuse("the operator ~ is not part of the language", node)
        self.check(node.operand)

    def check_IfExp(self, node: ast.IfExp) -> None:
        self.check_all((node.test, node.body, node.orelse))

    def check_Compare(self, node: ast.Compare) -> None:
        self.check(node.left)
        self.check_all(node.comparators)

    def check_Dict(self, node: ast.Dict) -> None:
        for key in node.keys:
            if key is None:
                self.refuse("unpacking a dict (**x) is not allowed", node)
            self.check(key)
        self.check_all(node.values)

    def check_List(self, node: ast.List) -> None:
        self.check_all(node.elts)

    def check_Tuple(self, node: ast.Tuple) -> None:
        self.check_all(node.elts)

    def check_Subscript(self, node: ast.Subscript) -> None:
        self.check(node.value)
        index = node.slice
        if isinstance(index, ast.Slice):  # only directly: x[1:2], not x[1:2, 3]
            self.check_all(part for part in (index.lower, index.upper, index.step) if part)
        else:
            self.check(index)

    def check_Attribute(self, node: ast.Attribute) -> None:
        """``customer.address.city`` is a path in task data, as FEEL and JUEL write it: it
        is compiled to ``customer["address"]["city"]``, so no Python attribute is ever read
        (``x.__class__`` would only be the key "__class__", and is refused anyway)."""
        if node.attr.startswith("_"):
            self.refuse(f"names starting with _ are not allowed (`.{node.attr}`)", node)
        self.check(node.value)

    def check_Constant(self, node: ast.Constant) -> None:
        if node.value is not None and not isinstance(node.value, bool | int | float | str):
            kind = type(node.value).__name__
            self.refuse(f"{kind} literals are not part of the language", node)

    def check_Name(self, node: ast.Name) -> None:
        self.name(node)
        self.variables.add(node.id)

    def name(self, node: ast.Name) -> None:
        if node.id.startswith("_"):
            self.refuse("names starting with _ are not allowed" + self.normalised(node), node)

    def normalised(self, node: ast.AST) -> str:
        written = ast.get_source_segment(self.parsed, node) or ""
        name = node.id if isinstance(node, ast.Name) else ""
        if written and name and not written.startswith(name):
            return f" (`{written}` reads as `{name}` after Unicode normalisation)"
        return ""

    def check_Call(self, node: ast.Call) -> None:
        func = node.func
        if not isinstance(func, ast.Name):
            if isinstance(func, ast.Attribute):
                self.refuse(
                    "method calls are not allowed; a dotted name is a path in task data, "
                    "not an object's attribute",
                    node,
                )
            self.refuse(
                "only the language's functions can be called, by name "
                f"({', '.join(sorted(FUNCTIONS))})",
                node,
            )
        if func.id not in FUNCTIONS:
            self.name(func)
            self.refuse(
                f"`{func.id}` is not a function of the language{self.normalised(func)}; "
                f"the functions are {', '.join(sorted(FUNCTIONS))}",
                node,
            )
        fewest, most, keywords = _SIGNATURES[func.id]
        for keyword in node.keywords:
            if keyword.arg is None:
                self.refuse("keyword unpacking (**x) is not allowed", node)
            if keyword.arg not in keywords:
                accepted = ", ".join(f"{k}=" for k in sorted(keywords)) or "none"
                self.refuse(
                    f"{func.id}() takes no keyword {keyword.arg}= (accepted: {accepted})", node
                )
        count = len(node.args) + len(node.keywords)
        if count < fewest or (most is not None and count > most):
            wanted = str(fewest) if most == fewest else f"{fewest} or more"
            if most is not None and most != fewest:
                wanted = f"{fewest} to {most}"
            self.refuse(f"{func.id}() takes {wanted} arguments, not {count}", node)
        self.check_all(node.args)
        self.check_all(keyword.value for keyword in node.keywords)


def _needs_result_check(node: ast.expr) -> bool:
    """Whether the value of ``node`` could be a container (so the result must be measured)."""
    if isinstance(node, ast.Compare | ast.Constant):
        return False
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.Not):
        return False
    if isinstance(node, ast.BoolOp):
        return any(_needs_result_check(v) for v in node.values)
    return True


class _Rewriter(ast.NodeTransformer):
    """Turns the checked tree into the body of ``run(data, clock)``; see the module doc."""

    def __init__(self) -> None:
        self.names: dict[tuple[int, int, int, int], str] = {}
        self.uses_budget = False

    @staticmethod
    def load(name: str) -> ast.Name:
        return ast.Name(id=name, ctx=ast.Load())

    def budget(self) -> ast.Name:
        self.uses_budget = True
        return self.load(_BUDGET)

    def call(self, name: str, args: list[ast.expr], like: ast.AST) -> ast.Call:
        return ast.copy_location(ast.Call(func=self.load(name), args=args, keywords=[]), like)

    def visit_Name(self, node: ast.Name) -> ast.AST:
        lookup = ast.Subscript(value=self.load(_DATA), slice=ast.Constant(node.id), ctx=node.ctx)
        if isinstance(node.ctx, ast.Load):
            key = (node.lineno, node.col_offset, node.end_lineno, node.end_col_offset)
            self.names[cast(tuple[int, int, int, int], key)] = node.id
        return ast.copy_location(lookup, node)

    def visit_Attribute(self, node: ast.Attribute) -> ast.AST:
        value = cast(ast.expr, self.visit(node.value))
        lookup = ast.Subscript(value=value, slice=ast.Constant(node.attr), ctx=node.ctx)
        return ast.copy_location(lookup, node)

    def visit_BinOp(self, node: ast.BinOp) -> ast.AST:
        name, _, budgeted = _GUARDS[type(node.op)]
        operands = [cast(ast.expr, self.visit(node.left)), cast(ast.expr, self.visit(node.right))]
        return self.call(name, [self.budget(), *operands] if budgeted else operands, node)

    def visit_UnaryOp(self, node: ast.UnaryOp) -> ast.AST:
        if isinstance(node.op, ast.Not):
            return self.generic_visit(node)
        operand = node.operand
        if isinstance(operand, ast.Constant) and isinstance(operand.value, int | float):
            return node  # -5 is a literal
        name = "__bf_neg" if isinstance(node.op, ast.USub) else "__bf_pos"
        return self.call(name, [cast(ast.expr, self.visit(operand))], node)

    def visit_Subscript(self, node: ast.Subscript) -> ast.AST:
        value = cast(ast.expr, self.visit(node.value))
        index = node.slice
        if isinstance(index, ast.Slice):  # assigning to a slice is refused by the checker
            none = ast.Constant(None)
            parts = [index.lower, index.upper, index.step]
            args = [cast(ast.expr, self.visit(p)) if p else none for p in parts]
            return self.call("__bf_slice", [self.budget(), value, *args], node)
        key = cast(ast.expr, self.visit(index))
        if not _cheap(index):  # hashing a tuple key costs its size
            key = self.call("__bf_work", [self.budget(), key], index)
        lookup = ast.Subscript(value=value, slice=key, ctx=node.ctx)
        return ast.copy_location(lookup, node)

    def visit_Compare(self, node: ast.Compare) -> ast.AST:
        """Operands whose comparison can cost their size are charged (see ``_work``); a
        comparison with a constant, like ``amount <= 10000``, is left alone."""
        operands = [node.left, *node.comparators]
        charged = [False] * len(operands)
        for i, op in enumerate(node.ops):
            left, right = operands[i], operands[i + 1]
            if isinstance(op, ast.Is | ast.IsNot):
                continue
            if isinstance(op, ast.In | ast.NotIn):
                if not _cheap(right):
                    charged[i] = not _cheap(left)
                    charged[i + 1] = True
            elif not _cheap(left) and not _cheap(right):
                charged[i] = charged[i + 1] = True
        if len(node.ops) == 1 and charged[1]:
            # The common case (a == b, x in items): one guard call does both the charge
            # and the comparison, with a fast path for two numbers or short strings.
            op = node.ops[0]
            guard = _COMPARE_GUARDS[type(op)]
            left, right = (cast(ast.expr, self.visit(o)) for o in operands)
            return self.call(guard, [self.budget(), left, right], node)
        visited = []
        for operand, charge in zip(operands, charged, strict=True):
            value = cast(ast.expr, self.visit(operand))
            if charge:
                value = self.call("__bf_work", [self.budget(), value], operand)
            visited.append(value)
        compare = ast.Compare(left=visited[0], ops=node.ops, comparators=visited[1:])
        return ast.copy_location(compare, node)

    def visit_Call(self, node: ast.Call) -> ast.AST:
        name = cast(ast.Name, node.func).id
        args = [cast(ast.expr, self.visit(a)) for a in node.args]
        if name in _NEEDS_BUDGET:
            args.insert(0, self.budget())
        if name in _NEEDS_CLOCK:
            args.insert(0, self.load(_CLOCK))
        keywords = [
            ast.keyword(arg=k.arg, value=cast(ast.expr, self.visit(k.value))) for k in node.keywords
        ]
        call = ast.Call(func=self.load(f"__bf_fn_{name}"), args=args, keywords=keywords)
        return ast.copy_location(call, node)

    def owned(self, node: ast.expr) -> ast.expr:
        """Elements put into a new container are copied unless they are literals."""
        if isinstance(node, _LITERALS):
            return cast(ast.expr, self.visit(node))
        return self.call("__bf_own", [self.budget(), cast(ast.expr, self.visit(node))], node)

    def visit_List(self, node: ast.List) -> ast.AST:
        if isinstance(node.ctx, ast.Store):
            return self.generic_visit(node)
        return ast.copy_location(
            ast.List(elts=[self.owned(e) for e in node.elts], ctx=node.ctx), node
        )

    def visit_Tuple(self, node: ast.Tuple) -> ast.AST:
        if isinstance(node.ctx, ast.Store):
            return self.generic_visit(node)
        elements = [self.owned(e) for e in node.elts]
        return ast.copy_location(ast.Tuple(elts=elements, ctx=node.ctx), node)

    def visit_Dict(self, node: ast.Dict) -> ast.AST:
        keys: list[ast.expr | None] = [self.owned(k) for k in node.keys if k is not None]
        values = [self.owned(v) for v in node.values]
        return ast.copy_location(ast.Dict(keys=keys, values=values), node)

    def visit_Assign(self, node: ast.Assign) -> ast.AST:
        into = any(_stores_into(t) for t in node.targets)
        value = self.owned(node.value) if into else cast(ast.expr, self.visit(node.value))
        targets = [cast(ast.expr, self.visit(t)) for t in node.targets]
        return ast.copy_location(ast.Assign(targets=targets, value=value), node)

    def visit_AugAssign(self, node: ast.AugAssign) -> ast.AST:
        # x += 1 -> x = x + 1 through the same guard (a list is rebound, not extended in place)
        load = _as_load(node.target)
        combined = ast.copy_location(ast.BinOp(left=load, op=node.op, right=node.value), node)
        assign = ast.copy_location(ast.Assign(targets=[node.target], value=combined), node)
        return self.visit_Assign(assign)


def _cheap(node: ast.expr) -> bool:
    """A constant, or a literal list/tuple of constants: comparing with it costs O(1) or
    O(its length), which the source length already bounds."""
    if isinstance(node, ast.Constant):
        return True
    if isinstance(node, ast.List | ast.Tuple):
        return all(isinstance(e, ast.Constant) for e in node.elts)
    return isinstance(node, ast.UnaryOp) and isinstance(node.operand, ast.Constant)


def _stores_into(target: ast.expr) -> bool:
    if isinstance(target, ast.Subscript | ast.Attribute):
        return True
    if isinstance(target, ast.Tuple | ast.List):
        return any(_stores_into(t) for t in target.elts)
    return False


def _as_load(node: ast.expr) -> ast.expr:
    """The target of ``x += 1`` read as a value (the checker allows only these three)."""
    copied: ast.expr
    if isinstance(node, ast.Subscript):
        copied = ast.Subscript(value=node.value, slice=node.slice, ctx=ast.Load())
    elif isinstance(node, ast.Attribute):
        copied = ast.Attribute(value=node.value, attr=node.attr, ctx=ast.Load())
    else:
        copied = ast.Name(id=cast(ast.Name, node).id, ctx=ast.Load())
    return ast.copy_location(copied, node)


def _prepare(text: str, mode: Mode) -> _Source:
    written = text.replace("\r\n", "\n").replace("\r", "\n")
    if mode == "eval":
        # Inside brackets Python ignores line breaks and indentation: conditions may span
        # lines. _scan has already checked that the brackets of the text itself balance.
        return _Source(written, "(" + written + "\n)", mode, 0)
    parsed = textwrap.dedent(written)
    indent = 0
    for before, after in zip(written.split("\n"), parsed.split("\n"), strict=True):
        if after.strip():
            indent = len(before) - len(after)
            break
    return _Source(written, parsed, mode, indent)


def _function(body: list[ast.stmt], uses_budget: bool) -> ast.Module:
    if uses_budget:
        init = ast.Assign(
            targets=[ast.Name(id=_BUDGET, ctx=ast.Store())],
            value=ast.List(elts=[ast.Constant(MAX_ALLOCATED)], ctx=ast.Load()),
        )
        body = [init, *body]
    arguments = ast.arguments(
        posonlyargs=[],
        args=[ast.arg(arg=_DATA), ast.arg(arg=_CLOCK)],
        kwonlyargs=[],
        kw_defaults=[],
        defaults=[],
    )
    fields: dict[str, Any] = {}
    if "type_params" in ast.FunctionDef._fields:  # Python 3.12+
        fields["type_params"] = []
    function = ast.FunctionDef(
        name=_RUN,
        args=arguments,
        body=body or [ast.Pass()],
        decorator_list=[],
        returns=None,
        **fields,
    )
    function.lineno, function.col_offset = 1, 0
    return ast.fix_missing_locations(ast.Module(body=[function], type_ignores=[]))


def _build(text: str, mode: Mode) -> _Program:
    if len(text) > MAX_SOURCE_CHARS:
        raise _Refusal(f"the text is {len(text):,} characters long; the limit is "
                       f"{MAX_SOURCE_CHARS:,}")  # fmt: skip
    if not text.isascii():
        try:
            text.encode()  # the parser reads UTF-8; a lone surrogate has none
        except UnicodeEncodeError as exc:
            raise _Refusal(
                f"the text holds a lone surrogate (not a Unicode character) at character "
                f"{exc.start + 1}"
            ) from None
    source = _prepare(text, mode)
    if mode == "eval" or source.written.strip():
        _scan(source.written)
    try:
        with warnings.catch_warnings():  # e.g. "'int' object is not subscriptable" for (1).x
            warnings.simplefilter("ignore")
            tree = ast.parse(source.parsed, filename=_FILENAME, mode=mode)
    except SyntaxError as exc:
        raise _syntax(exc, source) from None
    except (RecursionError, MemoryError):
        raise _Refusal(f"the text is nested more than {MAX_DEPTH} levels deep") from None
    _measure(tree)
    checker = _Checker(source.parsed, mode)
    checker.check(tree)

    rewriter = _Rewriter()
    if isinstance(tree, ast.Expression):
        value = cast(ast.expr, rewriter.visit(tree.body))
        if _needs_result_check(tree.body):
            value = rewriter.call("__bf_result", [value], tree.body)
        body: list[ast.stmt] = [ast.copy_location(ast.Return(value=value), tree.body)]
    else:
        body = [cast(ast.stmt, rewriter.visit(stmt)) for stmt in cast(ast.Module, tree).body]
    module = _function(body, rewriter.uses_budget)
    namespace = dict(_GLOBALS)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        code = compile(module, _FILENAME, "exec", dont_inherit=True)
    exec(code, namespace)  # noqa: S102 - defines run(); the checked text is its body
    run = namespace.pop(_RUN)
    return _Program(
        text=text,
        mode=mode,
        run=run,
        code=run.__code__,
        source=source,
        names=rewriter.names,
        variables=frozenset(checker.variables),
        assigned=frozenset(checker.assigned),
        copies_data=checker.stores_into,
    )


class _Syntax(_Refusal):
    def __init__(self, reason: str, line: int | None, column: int | None, snippet: str) -> None:
        super().__init__(reason)
        self.line, self.column, self.snippet = line, column, snippet


def _syntax(exc: SyntaxError, source: _Source) -> _Syntax:
    """The parser's complaint, located in the written text. A condition is parsed inside
    added brackets, so an error on the added last line means the text stopped too early."""
    written = source.written.split("\n")
    line, column, message = exc.lineno, exc.offset, exc.msg
    if line is not None and column is not None:
        column = source.column(line, column)
    if source.mode == "eval" and line is not None and line > len(written):
        line = max((n for n, text in enumerate(written, 1) if text.strip()), default=1)
        column = len(written[line - 1].rstrip()) + 1
        message = "the expression is incomplete"
    snippet = ""
    if line is not None and 1 <= line <= len(written):
        snippet = _short(written[line - 1].strip())
    return _Syntax(f"does not parse: {message}", line, column, snippet)


def _refused(exc: _Refusal, source: _Source | None) -> ExpressionError:
    if isinstance(exc, _Syntax):
        return ExpressionError(exc.reason, line=exc.line, column=exc.column, snippet=exc.snippet)
    node: Any = exc.node
    if node is None or not hasattr(node, "lineno"):
        return ExpressionError(exc.reason)
    if getattr(node, "written", False) or source is None:
        lines = (source.written if source else "").split("\n")
        text = lines[node.lineno - 1] if 1 <= node.lineno <= len(lines) else ""
        snippet = _short(text.strip())
        return ExpressionError(
            exc.reason, line=node.lineno, column=node.col_offset + 1, snippet=snippet
        )
    line, column, snippet = source.locate(
        node.lineno, node.col_offset, node.end_lineno, node.end_col_offset
    )
    return ExpressionError(exc.reason, line=line, column=column, snippet=snippet)


@functools.lru_cache(maxsize=2048)
def _program(text: str, mode: Mode) -> _Program:
    """Compile once per (text, mode): the LRU the brief asks for. Errors are not cached."""
    try:
        return _build(text, mode)
    except _Refusal as exc:
        source = None
        if not isinstance(exc, _Syntax) and len(text) <= MAX_SOURCE_CHARS:
            source = _prepare(text, mode)
        raise _refused(exc, source) from None
    except RecursionError:
        raise ExpressionError(f"the text is nested more than {MAX_DEPTH} levels deep") from None


# -- the public face ------------------------------------------------------------------------


class Compiled:
    """A checked, compiled expression or script; immutable and safe to share across threads.

    ``evaluate`` (mode ``"eval"``) returns the expression's value; ``execute`` (mode
    ``"exec"``) returns the variables after the script: a copy of ``data`` plus what the
    script assigned. Neither changes ``data``. ``now`` is the clock ``today()`` and ``now()``
    read (UTC system time when ``None``). Any failure is an ``ExpressionError``.
    """

    __slots__ = ("_program", "_run", "origin")

    def __init__(self, program: _Program, origin: str) -> None:
        self._program = program
        self._run = program.run
        self.origin = origin

    @property
    def text(self) -> str:
        return self._program.text

    @property
    def mode(self) -> Mode:
        return self._program.mode

    @property
    def variables(self) -> frozenset[str]:
        """The variables the text reads (for checks at deploy time)."""
        return self._program.variables

    @property
    def assigned(self) -> frozenset[str]:
        """The variables a script assigns or stores into (empty for an expression)."""
        return self._program.assigned

    def __repr__(self) -> str:
        return f"Compiled({self._program.text!r}, mode={self._program.mode!r})"

    def evaluate(self, data: Mapping[str, Any], *, now: Clock | None = None) -> Any:
        if self._program.mode != "eval":
            raise self._wrong_mode("evaluate", "execute")
        try:
            return self._run(data, now)
        except Exception as exc:
            raise self._program.failure(exc, self.origin) from exc

    def execute(self, data: Mapping[str, Any], *, now: Clock | None = None) -> dict[str, Any]:
        program = self._program
        if program.mode != "exec":
            raise self._wrong_mode("execute", "evaluate")
        try:
            # Only a script that stores into x[k] could change the caller's nested values.
            scope = _deep_copy(data) if program.copies_data else dict(data)
            self._run(scope, now)
            budget = [MAX_ALLOCATED]
            for name in program.assigned:
                if name in scope:
                    budget[0] -= _units(scope[name], budget[0])
                    if budget[0] < 0:
                        raise _Limit(f"the script's results are larger than {MAX_ALLOCATED:,} "
                                     "units")  # fmt: skip
        except Exception as exc:
            raise program.failure(exc, self.origin) from exc
        return scope

    def _wrong_mode(self, called: str, instead: str) -> ExpressionError:
        return ExpressionError(
            f"compiled with mode={self._program.mode!r}: call {instead}(), not {called}()",
            origin=self.origin,
        )


def _deep_copy(data: Mapping[str, Any]) -> dict[str, Any]:
    return copy.deepcopy(dict(data))


def compile_expression(text: str, *, mode: Mode = "eval", origin: str = "") -> Compiled:
    """Check and compile ``text`` once; refused text raises ``ExpressionError`` (with
    ``origin``, line, column and the offending snippet).

    ``mode="eval"``: one expression (a gateway condition, a DMN cell, a mapping).
    ``mode="exec"``: a script (assignments, ``if``/``elif``/``else``, ``pass``).
    Compiled programs are cached by (text, mode), and the returned object by (text, mode,
    origin), so calling this on every evaluation costs a dictionary lookup.
    """
    try:
        compiled = _RECENT.get((text, mode, origin))  # the hot path: a gateway's every visit
    except TypeError:  # unhashable text: reported below
        compiled = None
    if compiled is not None:
        return compiled
    if not isinstance(text, str):
        raise ExpressionError(f"an expression must be text, not {type(text).__name__}",
                              origin=str(origin))  # fmt: skip
    if mode not in ("eval", "exec"):
        raise ValueError(f"mode must be 'eval' or 'exec', not {mode!r}")
    try:
        program = _program(text, mode)
    except ExpressionError as exc:
        raise exc.with_origin(origin) from None
    if len(_RECENT) >= _RECENT_SIZE:
        _RECENT.clear()  # crude but bounded; programs stay in the (text, mode) LRU
    compiled = _RECENT[(text, mode, origin)] = Compiled(program, origin)
    return compiled


_RECENT: dict[tuple[str, str, str], Compiled] = {}
_RECENT_SIZE: Final = 4096


def cache_info() -> functools._CacheInfo:
    """Hits and misses of the (text, mode) compile cache."""
    return _program.cache_info()


def cache_clear() -> None:
    """Empty both caches (for tests: compiled programs are pure, so nothing else needs it)."""
    _RECENT.clear()
    _program.cache_clear()
