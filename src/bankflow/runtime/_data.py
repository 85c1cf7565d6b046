"""Task data is JSON plus the few types a bank needs exactly: Decimal (money), date,
datetime and UUID. Anything else, and anything beyond the engine's ``Limits``, is refused
at the call, naming the path, instead of failing later when the state is saved (or being
saved on SQLite and refused by PostgreSQL).

One walk, iterative (no ``RecursionError`` whatever the nesting), that copies while it
checks and counts as it goes:

- the size of the data's JSON form (strings in UTF-8 bytes, numbers by their digits,
  Decimal/date/datetime/UUID as the text they are stored as; escapes are not counted)
  against ``max_data_bytes``, stopping as soon as it is passed: a 100 MB string is
  refused by its length, never encoded or serialised;
- characters of each string and key (``max_string_chars``), entries of each object or
  list (``max_items``), nesting (``max_depth``: a top-level value is level 1), digits of
  each number (``max_number_digits``, before and after the point, as written out:
  ``1E+999999`` has a million);
- NaN and infinities, non-text keys, NUL and lone surrogates in keys and strings (which
  PostgreSQL refuses) are refused on every database.

A value that occurs several times (``[x, x]``) is counted, and copied, each time, as its
JSON would contain it; a cycle ends at ``max_depth`` (or earlier at ``max_data_bytes``).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from datetime import date, datetime
from decimal import Decimal
from functools import lru_cache
from typing import Any, Final
from uuid import UUID

from bankflow._limits import DEFAULT_LIMITS, Limits
from bankflow.errors import InvalidData
from bankflow.language._expressions import coefficient_digits
from bankflow.models import FieldError

__all__ = ["MAX_DEPTH", "check_data"]

MAX_DEPTH: Final = DEFAULT_LIMITS.max_depth
_MAX_ERRORS: Final = 20  # a list of 10,000 bad values is reported by its first few
_MAX_LABEL: Final = 40  # longest key shown as is in a path

# Stored text sizes (JSON string with quotes) of the fixed-size types.
_DATE_BYTES: Final = len('"2026-01-01"')
_DATETIME_BYTES: Final = len('"2026-01-01T00:00:00.000000+00:00"')
_UUID_BYTES: Final = len('"00000000-0000-0000-0000-000000000000"')
_FIXED_BYTES: Final[dict[type, int]] = {
    bool: 5,
    type(None): 4,
    date: _DATE_BYTES,
    datetime: _DATETIME_BYTES,
    UUID: _UUID_BYTES,
}

# A Decimal's coefficient is held in 64-bit words of 19 digits; up to four words (76
# digits) live in the object itself, so ``__sizeof__`` (O(1)) tells a short one.
_DECIMAL_SIZE: Final = Decimal(0).__sizeof__()
_SIZED_DECIMALS: Final = Decimal("1" * 200).__sizeof__() > _DECIMAL_SIZE  # C implementation
_STATIC_DIGITS: Final = 76
_DECIMAL_BYTES: Final = len('{"typename":"Decimal","value":""}')  # besides its digits


@lru_cache(maxsize=16)
def _number_bounds(max_digits: int) -> tuple[int, int]:
    """(10**max_digits, bits any int below it fits in)."""
    power = 10**max_digits
    return power, power.bit_length() - 1


def check_data(
    data: Mapping[str, Any] | None, *, what: str = "data", limits: Limits = DEFAULT_LIMITS
) -> dict[str, Any]:
    """A plain-dict copy of ``data`` (tuples become lists), or ``InvalidData`` whose
    ``errors`` name each refused field (``a.b[2].c``; ``""`` is the data itself)."""
    if data is None:
        return {}
    if not isinstance(data, Mapping):
        raise InvalidData(
            f"{what} must be an object of named values",
            errors=(FieldError(field="", message=f"got {type(data).__name__}"),),
        )
    result: dict[str, Any] = {}
    errors = _walk(data, result, limits)
    if errors:
        raise InvalidData(f"{what} cannot be stored", errors=tuple(errors))
    return result


def _walk(data: Mapping[str, Any], result: dict[str, Any], limits: Limits) -> list[FieldError]:
    """Check ``data`` and copy it into ``result``; returns the errors (the walk stops at
    the first that makes the rest moot: too large, or _MAX_ERRORS of them).

    One loop with the common cases inline (it runs on every call): an ASCII string, an
    int, a Decimal of up to 76 digits, a bool or None cost a few operations each."""
    max_bytes = limits.max_data_bytes
    max_chars = limits.max_string_chars
    max_items = limits.max_items
    max_depth = limits.max_depth
    max_digits = limits.max_number_digits
    power, safe_bits = _number_bounds(max_digits)
    static_zeros = max_digits - _STATIC_DIGITS  # a short Decimal needs no digit count
    errors: list[FieldError] = []
    size = 0
    # (source, copy, level of its items, path of the source): containers still to fill.
    # A path is a linked pair (parent path, key or index), spelled out only on error.
    stack: list[tuple[Any, Any, int, Any]] = [(data, result, 1, None)]
    while stack:
        source, target, level, path = stack.pop()
        count = len(source)
        if count > max_items:
            errors.append(_error(path, None, f"has {count:,} entries; the limit is {max_items:,}"))
            if len(errors) >= _MAX_ERRORS:
                break
            continue
        is_object = type(target) is dict
        # Brackets, commas and colons, as compact JSON has them: {"a":1,"b":2} has 5.
        size += (2 * count if is_object else count) + (1 if count else 2)
        for key, value in source.items() if is_object else enumerate(source):
            problem: str | None = None
            if is_object:
                if type(key) is str and key.isascii() and len(key) <= max_chars:
                    if "\x00" in key:
                        problem = "the key contains a NUL character"
                    size += len(key) + 2
                elif isinstance(key, str):
                    problem, nbytes = _text(key, max_chars)
                    if problem is not None:
                        problem = f"the key {problem}"
                    size += nbytes
                else:
                    problem = "keys must be text"
                    key = f"<{type(key).__name__} key>"
                if problem is not None:
                    errors.append(_error(path, key, problem))
                    if len(errors) >= _MAX_ERRORS:
                        return errors
                    continue
            t = type(value)
            if t is str:
                if value.isascii() and len(value) <= max_chars:
                    if "\x00" in value:
                        problem = "contains a NUL character"
                    size += len(value) + 2
                else:
                    problem, nbytes = _text(value, max_chars)
                    size += nbytes
            elif t is int:
                bits = value.bit_length()
                if bits > safe_bits and abs(value) >= power:
                    problem = f"an integer with more than {max_digits:,} digits"
                size += (bits * 1233 >> 12) + 2  # about its digits and a sign
            elif t is Decimal:
                adjusted = value.adjusted() if value.is_finite() else None
                zeros = 0 if adjusted is None or adjusted >= -1 else -1 - adjusted
                if (
                    adjusted is not None
                    and adjusted < max_digits
                    and value.__sizeof__() == _DECIMAL_SIZE
                    and zeros <= static_zeros
                    and _SIZED_DECIMALS
                ):
                    size += _DECIMAL_BYTES + zeros
                else:
                    problem, nbytes = _decimal(value, max_digits)
                    size += nbytes
            elif t in _FIXED_BYTES:  # bool, None, date, datetime, UUID
                size += _FIXED_BYTES[t]
            elif t is float:
                if value - value != 0:
                    problem = "not a finite number"
                elif value and not (1e-6 <= abs(value) < 1e15 and max_digits >= 23):
                    problem = _float_digits(value, max_digits)  # else at most 23 digits
                size += 24
            elif t is dict or t is list or t is tuple or isinstance(value, Mapping | list | tuple):
                if level > max_depth:
                    problem = f"is nested deeper than {max_depth} levels"
                else:
                    copied: Any = {} if isinstance(value, Mapping) else []
                    stack.append((value, copied, level + 1, (path, key)))
                    value = copied
            else:
                problem, nbytes = _other(value, max_chars, max_digits, power, safe_bits)
                size += nbytes
            if problem is not None:
                errors.append(_error(path, key, problem))
                if len(errors) >= _MAX_ERRORS:
                    return errors
            elif is_object:
                target[key] = value
            else:
                target.append(value)
            if size > max_bytes:
                message = (
                    f"the data is larger than {max_bytes:,} bytes as JSON (counted up to here)"
                )
                errors.append(_error(path, key, message))
                return errors
    return errors


def _error(path: Any, key: Any, message: str) -> FieldError:
    return FieldError(field=_spell(path, key), message=message)


def _text(value: str, max_chars: int) -> tuple[str | None, int]:
    """(why a string or key cannot be stored or None, its size as JSON)."""
    n = len(value)
    if n > max_chars:
        return f"is {n:,} characters long; the limit is {max_chars:,}", 0
    if value.isascii():
        nbytes = n
    else:
        try:
            nbytes = len(value.encode())
        except UnicodeEncodeError:
            return "contains a lone surrogate (not a Unicode character)", n
    if "\x00" in value:
        return "contains a NUL character", nbytes
    return None, nbytes + 2


def _decimal(value: Decimal, max_digits: int) -> tuple[str | None, int]:
    if not value.is_finite():
        return "not a finite number", 0
    if value.adjusted() >= max_digits:  # O(1): 1E+999999 is refused without a look
        return f"a number with more than {max_digits:,} digits", 0
    digits = _written_digits(value, max_digits)
    if digits > max_digits:
        return f"a number with more than {max_digits:,} digits", 0
    return None, digits + _DECIMAL_BYTES


def _other(
    value: Any, max_chars: int, max_digits: int, power: int, safe_bits: int
) -> tuple[str | None, int]:
    """Floats, the other storable types, and subclasses of the common ones."""
    if isinstance(value, float):
        if not math.isfinite(value):
            return "not a finite number", 0
        return _float_digits(value, max_digits), 24
    if isinstance(value, bool):
        return None, 5
    if isinstance(value, int):
        if value.bit_length() > safe_bits and abs(value) >= power:
            return f"an integer with more than {max_digits:,} digits", 0
        return None, (value.bit_length() * 1233 >> 12) + 2
    if isinstance(value, str):
        return _text(value, max_chars)
    if isinstance(value, Decimal):
        return _decimal(value, max_digits)
    if isinstance(value, datetime):
        return None, _DATETIME_BYTES
    if isinstance(value, date):
        return None, _DATE_BYTES
    if isinstance(value, UUID):
        return None, _UUID_BYTES
    return (
        f"{type(value).__name__} is not storable (use JSON values, Decimal, date, datetime "
        "or UUID)",
        0,
    )


def _float_digits(value: float, max_digits: int) -> str | None:
    if _written_digits(Decimal(repr(value)), max_digits) > max_digits:
        return f"a number with more than {max_digits:,} digits"
    return None


def _written_digits(value: Decimal, cap: int) -> int:
    """Digits of ``value`` written out without an exponent (1E+3 has 4, 0.001 has 3);
    a count above ``cap`` for a coefficient far longer (see ``coefficient_digits``)."""
    n = coefficient_digits(value, cap)
    exponent = value.adjusted() - n + 1
    return n + exponent if exponent >= 0 else max(n, -exponent)


def _label(key: Any) -> str:
    """A key as a path shows it: as is when short and printable, else escaped and cut."""
    if type(key) is str and len(key) <= _MAX_LABEL and key.isprintable() and key:
        return key
    if not isinstance(key, str):
        return f"<{type(key).__name__}>"
    text = ascii(key[: _MAX_LABEL + 1])
    return text if len(text) <= _MAX_LABEL + 2 else text[:_MAX_LABEL] + "..."


def _spell(path: Any, key: Any) -> str:
    parts: list[str] = []
    node = (path, key)
    while node is not None:
        node, part = node
        if part is None:
            continue
        parts.append(f"[{part}]" if type(part) is int else _label(part))
    parts.reverse()
    spelled = ""
    for part in parts:
        spelled += part if part.startswith("[") or not spelled else f".{part}"
    return spelled
