"""``engine.services``: the host's handlers for service tasks, by name.

The name comes from the diagram (``camunda:topic``, the last segment of ``camunda:class``
or ``camunda:delegateExpression``, ``zeebe:taskDefinition``, or SpiffWorkflow's operator),
so analysts and developers agree on a string, not on Java classes.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from typing import Any, TypeVar, overload

__all__ = ["Handler", "ServiceRegistry"]

Handler = Callable[[dict[str, Any]], Mapping[str, Any] | None]
H = TypeVar("H", bound=Handler)


class ServiceRegistry:
    """A handler receives a copy of the task's data and returns a dict merged into it.

    Raising ``bankflow.BpmnError(code)`` is caught by a matching error boundary event; any
    other exception fails the instance with the error recorded. A service task whose name
    has no handler waits for an external worker.
    """

    def __init__(self) -> None:
        self._handlers: dict[str, Handler] = {}
        self._lock = threading.Lock()

    @overload
    def register(self, name: str) -> Callable[[H], H]: ...

    @overload
    def register(self, name: str, handler: H) -> H: ...

    def register(self, name: str, handler: H | None = None) -> H | Callable[[H], H]:
        """``register("kyc.screen", fn)`` or ``@engine.services.register("kyc.screen")``."""
        if not name or not name.strip():
            raise ValueError("a service name must not be empty")

        def add(fn: H) -> H:
            if not callable(fn):
                raise TypeError(f"handler for {name!r} is not callable")
            with self._lock:
                self._handlers[name] = fn
            return fn

        return add if handler is None else add(handler)

    def unregister(self, name: str) -> None:
        with self._lock:
            self._handlers.pop(name, None)

    def get(self, name: str) -> Handler | None:
        return self._handlers.get(name)

    def names(self) -> frozenset[str]:
        return frozenset(self._handlers)
