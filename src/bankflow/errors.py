"""The one exception tree bankflow raises.

Catch ``BankflowError`` to handle anything bankflow reports on purpose; anything else
escaping the library is a bug.

::

    BankflowError
    ├── ConfigurationError      bad settings or database URL
    ├── DatabaseError           the database refused or the schema is out of date
    ├── NotFound                no definition / instance / task with that id or key
    ├── DefinitionError         a BPMN/DMN file cannot be deployed (carries diagnostics)
    ├── ConcurrencyError        someone else changed the instance or task first; retry
    ├── AccessDenied            the user is not a candidate (or assignee) of the task
    ├── DuplicateBusinessKey    a running or finished instance already has that key
    ├── InvalidState            the instance or task is not in a state for that action
    ├── Interrupted             a step stopped from outside (a worker shutting down) before
    │                           it finished; nothing of it was written
    ├── InvalidData             data that is not JSON-like, or fails validation
    │   └── InvalidTaskData     task data refused by the task's form or model
    └── BpmnError               raised by a service handler: a business error the diagram
                                catches with an error boundary event (matched by code)
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from bankflow.models import Diagnostic, FieldError

__all__ = [
    "AccessDenied",
    "BankflowError",
    "BpmnError",
    "ConcurrencyError",
    "ConfigurationError",
    "CorrelationError",
    "DatabaseError",
    "DefinitionError",
    "DuplicateBusinessKey",
    "Interrupted",
    "InvalidData",
    "InvalidState",
    "InvalidTaskData",
    "NotFound",
]


class BankflowError(Exception):
    """Something bankflow refused or could not do; the message says what and where."""


class ConfigurationError(BankflowError):
    """The engine was given settings it cannot use."""


class DatabaseError(BankflowError):
    """The database refused the operation or its schema does not match this version."""


class NotFound(BankflowError):
    """Nothing exists with the id or key asked for."""

    def __init__(self, message: str, *, kind: str, key: str) -> None:
        super().__init__(message)
        self.kind = kind
        self.key = key


class DefinitionError(BankflowError):
    """A deployment was refused; ``diagnostics`` lists every problem, errors first.

    Nothing was stored: a deployment is all or nothing.
    """

    def __init__(self, message: str, *, diagnostics: tuple[Diagnostic, ...] = ()) -> None:
        super().__init__(message)
        self.diagnostics = diagnostics

    def __str__(self) -> str:
        lines = [super().__str__()]
        lines += [d.format() for d in self.diagnostics if d.severity == "error"]
        return "\n".join(lines)


class ConcurrencyError(BankflowError):
    """Another caller changed the instance (or claimed the task) first; nothing was changed
    by this call. Reload and try again if the action still makes sense."""

    def __init__(self, message: str, *, instance_id: str, task_id: str | None = None) -> None:
        super().__init__(message)
        self.instance_id = instance_id
        self.task_id = task_id


class AccessDenied(BankflowError):
    """The acting user may not act on this task."""

    def __init__(self, message: str, *, task_id: str, user: str) -> None:
        super().__init__(message)
        self.task_id = task_id
        self.user = user


class DuplicateBusinessKey(BankflowError):
    """Business keys are unique per process key."""

    def __init__(self, message: str, *, process_key: str, business_key: str) -> None:
        super().__init__(message)
        self.process_key = process_key
        self.business_key = business_key


class InvalidState(BankflowError):
    """The instance or task is not in a state that allows the action."""

    def __init__(self, message: str, *, instance_id: str) -> None:
        super().__init__(message)
        self.instance_id = instance_id


class Interrupted(BankflowError):
    """A step was stopped from outside (a worker told to stop, past its grace period)
    before it finished; nothing of it was written and its job was given back."""


class InvalidData(BankflowError):
    """Data refused before anything changed; ``errors`` names every bad field."""

    def __init__(self, message: str, *, errors: tuple[FieldError, ...]) -> None:
        super().__init__(message)
        self.errors = errors

    def __str__(self) -> str:
        details = "; ".join(f"{e.field}: {e.message}" for e in self.errors)
        return f"{super().__str__()}: {details}" if details else super().__str__()


class InvalidTaskData(InvalidData):
    """The data submitted for a task does not match its form or registered model."""

    def __init__(self, message: str, *, task_id: str, errors: tuple[FieldError, ...]) -> None:
        super().__init__(message, errors=errors)
        self.task_id = task_id


class BpmnError(BankflowError):
    """A business error a service handler raises on purpose ("customer on sanctions list").

    An error boundary event with the same ``errorCode`` on the service task catches it and
    the process takes that path; uncaught, it fails the instance like any other error.
    """

    def __init__(self, code: str, message: str | None = None) -> None:
        super().__init__(message or f"BPMN error {code}")
        self.code = code


class CorrelationError(BankflowError):
    """A message matched no waiting instance or start event, or several instances when
    one was expected; ``instance_ids`` lists what matched."""

    def __init__(
        self, message: str, *, message_name: str, instance_ids: tuple[str, ...] = ()
    ) -> None:
        super().__init__(message)
        self.message_name = message_name
        self.instance_ids = instance_ids
