"""``check_data``: task data within the engine's limits, refused naming the path otherwise.

The integration tests (tests/integration/test_limits.py) run these values through every
entry point on both databases; here is the walk itself: what is counted and how, what
each refusal names, and that no input makes it recurse, hang or serialise.
"""

from __future__ import annotations

import json
from collections import OrderedDict
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any
from uuid import UUID

import pytest

from bankflow import InvalidData, Limits
from bankflow.runtime._data import check_data

TIGHT = Limits(max_data_bytes=1_000)


def errors(data: Any, limits: Limits | None = None) -> dict[str, str]:
    with pytest.raises(InvalidData) as caught:
        check_data(data, limits=limits or Limits())
    return {e.field: e.message for e in caught.value.errors}


def compact(data: Any) -> int:
    return len(json.dumps(data, separators=(",", ":"), ensure_ascii=False).encode())


@pytest.mark.parametrize(
    "data",
    [
        {"s": "x" * 992},
        {"a": ["x" * 100, "y" * 100, None], "b": {"c": "é" * 300, "d": []}, "e": {}},
        {"list": [None] * 100, "text": "\u4e2d" * 100},
    ],
)
def test_the_size_is_that_of_compact_json_in_utf8(data: dict[str, Any]) -> None:
    """Strings, lists, objects and null count exactly; one byte over is refused."""
    size = compact(data)
    assert size <= 1_000
    assert check_data(data, limits=Limits(max_data_bytes=size)) == data
    assert "larger than" in "".join(errors(data, Limits(max_data_bytes=size - 1)).values())


def test_every_refusal_names_its_path() -> None:
    data = {
        "ok": 1,
        "a": [{"b": ["fine", "x\x00"]}],
        "c": {"d": {"e": float("nan")}},
        "f": (1, (2, Decimal("1" * 101))),
        "g\x00": 1,
        7: "seven",
        "h": {"i": object()},
        "j": "\udc00",
        "k" * 50: 10**100,
    }
    assert errors(data) == {
        "a[0].b[1]": "contains a NUL character",
        "c.d.e": "not a finite number",
        "f[1][1]": "a number with more than 100 digits",
        "'g\\x00'": "the key contains a NUL character",
        "<int key>": "keys must be text",
        "h.i": "object is not storable (use JSON values, Decimal, date, datetime or UUID)",
        "j": "contains a lone surrogate (not a Unicode character)",
        "'" + "k" * 39 + "...": "an integer with more than 100 digits",
    }


@pytest.mark.parametrize(
    ("under", "over"),
    [
        (10**100 - 1, 10**100),
        (-(10**100) + 1, -(10**100)),
        (Decimal("1E+99"), Decimal("1E+100")),  # 100 and 101 digits written out
        (Decimal("1E-100"), Decimal("1E-101")),  # digits after the point count
        (Decimal("9" * 60 + "." + "9" * 40), Decimal("9" * 60 + "." + "9" * 41)),
        (Decimal(1), Decimal("0." + "7" * 10_000_000)),  # counted without reading them
        (1e99, 1e100),
        (1e-100, 1e-101),
        (0.1, 5e-324),
    ],
)
def test_numbers_have_at_most_100_digits_written_out(under: Any, over: Any) -> None:
    assert check_data({"n": under}) == {"n": under}
    [(field, message)] = errors({"n": over}).items()
    assert field == "n"
    assert message.endswith(" with more than 100 digits")


def test_nesting_is_walked_without_recursion() -> None:
    deep: Any = 1
    for _ in range(200_000):
        deep = [deep]
    assert list(errors({"deep": deep}).values()) == ["is nested deeper than 32 levels"]
    cycle: dict[str, Any] = {}
    cycle["self"] = cycle
    assert list(errors(cycle).values()) == ["is nested deeper than 32 levels"]
    fan: list[Any] = []
    fan += [fan, fan]  # 2**32 paths: stopped by the size (and error count), not walked
    assert errors({"fan": fan})


def test_a_value_shared_many_times_counts_each_time() -> None:
    block = ["y" * 1_000] * 100  # about 100 KB, held once
    assert check_data({"b": [block] * 10})  # about 1,000,000 bytes as JSON
    assert "larger than 1,048,576 bytes" in "".join(errors({"b": [block] * 11}).values())
    copied = check_data({"b": [block, block]})
    assert copied["b"][0] is not copied["b"][1]  # stored as JSON would have it


def test_a_100_mb_string_is_refused_by_its_length() -> None:
    class Watched(str):
        def encode(self, *args: Any, **kwargs: Any) -> bytes:
            raise AssertionError("encoded")

    assert errors({"doc": Watched("é" * 10_000_000)}) == {
        "doc": "is 10,000,000 characters long; the limit is 100,000"
    }
    assert errors({"doc": "x" * 100_000_000}) == {
        "doc": "is 100,000,000 characters long; the limit is 100,000"
    }
    assert errors({"k" * 100_001: 1})  # keys too


def test_objects_and_lists_of_more_than_10000_entries() -> None:
    assert check_data({"l": [0] * 10_000, "o": {str(i): 0 for i in range(10_000)}})
    assert errors({"l": [0] * 10_001}) == {"l": "has 10,001 entries; the limit is 10,000"}
    assert errors({str(i): 0 for i in range(10_001)}) == {
        "": "has 10,001 entries; the limit is 10,000"
    }


def test_at_most_20_errors_are_reported() -> None:
    assert len(errors({"l": [float("nan")] * 1_000})) == 20


def test_a_copy_of_plain_values_comes_back() -> None:
    moment = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)
    data = OrderedDict(
        t=(1, [2, (3,)]),
        d=date(2026, 1, 1),
        m=moment,
        u=UUID(int=7),
        x=Decimal("8000.00"),
        b=False,
        f=0.5,
    )
    result = check_data(data)
    assert result == {
        "t": [1, [2, [3]]],
        "d": date(2026, 1, 1),
        "m": moment,
        "u": UUID(int=7),
        "x": Decimal("8000.00"),
        "b": False,
        "f": 0.5,
    }
    assert type(result) is dict
    assert check_data(None, limits=TIGHT) == {}


def test_the_limits_given_are_the_ones_checked() -> None:
    tight = Limits(max_string_chars=3, max_items=2, max_depth=1, max_number_digits=2)
    assert check_data({"a": "abc", "b": [99, None]}, limits=tight) == {"a": "abc", "b": [99, None]}
    assert errors({"a": "abcd"}, tight) == {"a": "is 4 characters long; the limit is 3"}
    assert errors({"b": [[1]]}, tight) == {"b[0]": "is nested deeper than 1 levels"}
    assert errors({"n": 100}, tight) == {"n": "an integer with more than 2 digits"}
    assert errors({"n": Decimal("0.001")}, tight) == {"n": "a number with more than 2 digits"}
    assert errors({"a": 1, "b": 2, "c": 3}, tight) == {"": "has 3 entries; the limit is 2"}
