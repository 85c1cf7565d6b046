"""``bankflow`` takes any unique prefix of an id, as git does; an ambiguous one is refused
naming the candidates (the acceptance test covers the unique case on both databases)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest

from bankflow.cli._common import _full_id, _Refused

A = "abcd0000-0000-4000-8000-000000000001"
B = "abcd0000-0000-4000-8000-000000000002"


class _Connection:
    def __init__(self, ids: list[str]) -> None:
        self.ids = ids

    def execute(self, _statement: Any, params: dict[str, str]) -> list[tuple[str]]:
        prefix = params["prefix"].rstrip("%")
        return [(i,) for i in self.ids if i.startswith(prefix)]


class _Database:
    def __init__(self, ids: list[str]) -> None:
        self.ids = ids

    @contextmanager
    def connect(self) -> Iterator[_Connection]:
        yield _Connection(self.ids)


class _Engine:
    def __init__(self, ids: list[str]) -> None:
        self._db = _Database(ids)


def resolve(value: str, ids: list[str]) -> str:
    return _full_id(_Engine(ids), value, "instance")  # type: ignore[arg-type]


def test_a_unique_prefix_is_the_whole_id() -> None:
    assert resolve("abcd0000-0000-4000-8000-00000000000", [A]) == A
    assert resolve("abcd", [A]) == A


def test_an_ambiguous_prefix_names_the_candidates() -> None:
    with pytest.raises(_Refused) as refused:
        resolve("abcd", [A, B])
    assert refused.value.type == "NotFound"
    assert refused.value.extra["candidates"] == [A, B]
    assert A in str(refused.value)
    assert B in str(refused.value)
    assert resolve("abcd0000-0000-4000-8000-000000000002", [A, B]) == B


def test_whole_ids_short_prefixes_and_other_text_are_left_to_the_engine() -> None:
    assert resolve(A, [B]) == A  # no query: the engine says whether it exists
    assert resolve("abc", [A]) == "abc"  # under 4 characters
    assert resolve("ABCD", [A]) == "ABCD"  # ids are lower case
    assert resolve("abcd%", [A]) == "abcd%"  # never a LIKE pattern
    assert resolve("ffff", [A]) == "ffff"  # a prefix of nothing
