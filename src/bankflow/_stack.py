"""Run a recursive library call on a stack deep enough for a large diagram.

SpiffWorkflow's parser follows sequence flows recursively, a couple of Python frames per
element, so a chain of about 480 elements hit Python's default recursion limit of 1,000.
Rewriting its parser is not ours to do; instead the build runs in a thread with a large
stack and a recursion limit to match. The limit is process-wide in CPython, so it is
raised only while such a thread runs, one at a time, and restored after; the number of
elements a file may have (``Limits.max_file_elements``) bounds how deep the parser can go.
"""

from __future__ import annotations

import sys
import threading
from collections.abc import Callable
from typing import Any, TypeVar

__all__ = ["deep_call"]

T = TypeVar("T")

_STACK_BYTES = 512 * 1024 * 1024  # reserved address space; only touched pages are used
_RECURSION_LIMIT = 250_000
_LOCK = threading.Lock()


def deep_call(function: Callable[..., T], /, *args: Any, **kwargs: Any) -> T:
    """``function(*args, **kwargs)`` in a thread with a deep stack; its exception, if
    any, is raised here."""
    outcome: dict[str, Any] = {}

    def target() -> None:
        try:
            outcome["value"] = function(*args, **kwargs)
        except BaseException as exc:  # handed to the caller's thread as it is
            outcome["error"] = exc

    with _LOCK:
        previous_stack = threading.stack_size(_STACK_BYTES)
        previous_limit = sys.getrecursionlimit()
        sys.setrecursionlimit(max(previous_limit, _RECURSION_LIMIT))
        try:
            thread = threading.Thread(target=target, name="bankflow-deep-call")
            thread.start()
        finally:
            threading.stack_size(previous_stack)
        try:
            thread.join()
        finally:
            sys.setrecursionlimit(previous_limit)
    if "error" in outcome:
        raise outcome["error"]
    value: T = outcome["value"]
    return value
