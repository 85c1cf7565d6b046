"""The small checks every service makes on what a caller passes, before any query.

Why here and not left to the database: SQLite stores what PostgreSQL refuses (a NUL
character, a 10,000-character key, ``LIMIT -1`` meaning "no limit") and neither driver
accepts a lone surrogate (a raw ``UnicodeEncodeError``). Checked once, in Python, the same
value behaves the same on both databases and the caller gets a ``BankflowError``:

- an id (instance, task, job, external task, incident) is a UUID in its canonical text
  form; anything else cannot exist, so it is ``NotFound`` without asking the database;
- a business key, user or message name is printable text (no control characters, no lone
  surrogates), not blank and at most ``MAX_NAME_CHARS`` characters (the column width):
  ``InvalidData`` naming the field when it is given to act on, no match when it is only a
  filter of a query;
- ``limit``/``offset`` of a listing are whole numbers from 0 (``limit`` at most
  ``MAX_PAGE_SIZE``), else ``InvalidData``.
"""

from __future__ import annotations

import re
from typing import Final

from bankflow._limits import Limits
from bankflow.errors import InvalidData, NotFound
from bankflow.models import FieldError

__all__ = [
    "MAX_NAME_CHARS",
    "MAX_OFFSET",
    "MAX_PAGE_SIZE",
    "business_key",
    "is_id",
    "is_name",
    "key_matches_nothing",
    "name",
    "page",
    "refused",
    "require_id",
    "shown",
    "storable_text",
    "whole",
]

MAX_NAME_CHARS: Final = 255
"""Width of the key and name columns (business key, user, message name, process key)."""
MAX_PAGE_SIZE: Final = 10_000
"""The largest ``limit`` of one page of a listing."""
MAX_OFFSET: Final = 2**31 - 1
"""The largest ``offset``: beyond it SQLite's driver overflows and nothing can be there."""

_ID: Final = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


def refused(field: str, message: str, what: str | None = None) -> InvalidData:
    return InvalidData(
        f"invalid {what or field}", errors=(FieldError(field=field, message=message),)
    )


def shown(value: object, limit: int = 60) -> str:
    """``value`` for a message: a short, printable, ASCII-safe repr."""
    if isinstance(value, str) and len(value) > limit:
        value = value[:limit]  # never render a 10 MB argument to cut it down
    text = ascii(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


# -- ids ------------------------------------------------------------------------------------


def is_id(value: object) -> bool:
    """Whether ``value`` is an id bankflow could have made (``str(uuid.uuid4())``)."""
    return type(value) is str and len(value) == 36 and _ID.fullmatch(value) is not None


def require_id(value: object, kind: str) -> str:
    """``value`` if it is a well-formed id, else ``NotFound`` (no query is made)."""
    if is_id(value):
        return value  # type: ignore[return-value]
    text = shown(value)
    raise NotFound(f"no {kind} {text} (not a well-formed id)", kind=kind, key=text)


# -- names and keys -------------------------------------------------------------------------


def _name_problem(value: object, max_chars: int) -> str | None:
    if not isinstance(value, str):
        return f"must be text, not {type(value).__name__}"
    if len(value) > max_chars:
        return f"is {len(value):,} characters long; the limit is {max_chars:,}"
    if not value.strip():
        return "must not be empty or blank"
    if not value.isprintable():
        return (
            "must be printable text (no control characters such as NUL or line breaks, "
            "no lone surrogates)"
        )
    return None


def is_name(value: object, max_chars: int = MAX_NAME_CHARS) -> bool:
    """Whether ``value`` could be a stored business key, user or name (for filters: an
    invalid one matches nothing)."""
    return _name_problem(value, max_chars) is None


def name(value: str, field: str, max_chars: int = MAX_NAME_CHARS) -> str:
    """``value`` (a user, message name...) or ``InvalidData`` naming ``field``."""
    problem = _name_problem(value, max_chars)
    if problem is not None:
        raise refused(field, problem)
    return value


def business_key(value: str | None, limits: Limits) -> str | None:
    """A business key given to act on: ``None``, or printable text of at most
    ``limits.max_business_key_chars`` characters (and the column's width)."""
    if value is None:
        return None
    return name(value, "business_key", min(limits.max_business_key_chars, MAX_NAME_CHARS))


def key_matches_nothing(value: str | None, limits: Limits) -> bool:
    """A business key given as a filter that no instance can have."""
    return value is not None and not is_name(
        value, min(limits.max_business_key_chars, MAX_NAME_CHARS)
    )


# -- paging ---------------------------------------------------------------------------------


def whole(value: object, field: str, maximum: int, *, lowest: int = 0) -> int:
    """``value`` if it is a whole number from ``lowest`` to ``maximum``, else
    ``InvalidData`` naming ``field``."""
    if isinstance(value, bool) or not isinstance(value, int) or not lowest <= value <= maximum:
        raise refused(
            field, f"must be a whole number from {lowest} to {maximum:,}, not {shown(value)}"
        )
    return value


def page(limit: int, offset: int = 0) -> tuple[int, int]:
    """``(limit, offset)`` of a listing, or ``InvalidData`` naming the bad one."""
    return whole(limit, "limit", MAX_PAGE_SIZE), whole(offset, "offset", MAX_OFFSET)


# -- text the engine writes itself -----------------------------------------------------------


def storable_text(text: str, max_chars: int = 10_000) -> str:
    """``text`` (an error message from a handler or a remote worker) made storable on every
    database: NUL and lone surrogates replaced, cut at ``max_chars`` characters."""
    if len(text) > max_chars:
        text = text[: max_chars - 3] + "..."
    if "\x00" in text:
        text = text.replace("\x00", "\N{REPLACEMENT CHARACTER}")
    if not text.isascii():
        text = text.encode("utf-8", "replace").decode("utf-8")
    return text
