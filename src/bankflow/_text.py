"""Cutting what a file or a caller wrote down to a size a message can quote.

A diagnostic or an error message quotes the cell, condition or script it is about, and
those come from outside: a DMN cell may hold a megabyte. Every message that quotes one goes
through ``shorten`` so a message stays one readable line whatever the input held.
"""

from __future__ import annotations

__all__ = ["MESSAGE_CHARS", "shorten"]

MESSAGE_CHARS = 200
"""The longest message (or quoted part of one) after ``shorten``."""

_ELLIPSIS = " ... "


def shorten(text: str, limit: int = MESSAGE_CHARS) -> str:
    """``text`` on one line (runs of whitespace become one space) and at most ``limit``
    characters: a longer text keeps its first two thirds and its end, with `` ... `` in
    between, so the reason at the end of a message survives a long quote in its middle.

    >>> shorten("x = 1\\n  y = 2")
    'x = 1 y = 2'
    >>> shorten("a" * 50 + "b" * 50, limit=20)
    'aaaaaaaaaa ... bbbbb'
    """
    flat = " ".join(text.split()) if len(text) <= 4 * limit else _flat_ends(text, limit)
    if len(flat) <= limit:
        return flat
    if limit <= len(_ELLIPSIS) + 2:
        return flat[:limit]
    room = limit - len(_ELLIPSIS)
    head = room * 2 // 3
    return flat[:head].rstrip() + _ELLIPSIS + flat[len(flat) - (room - head) :].lstrip()


def _flat_ends(text: str, limit: int) -> str:
    """The start and end of a very long text on one line, without joining the whole of it
    (a megabyte of text is split and joined only near its ends)."""
    window = 4 * limit
    head = " ".join(text[:window].split())
    tail = " ".join(text[-window:].split())
    return f"{head}{_ELLIPSIS}{tail}"
