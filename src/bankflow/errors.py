"""The one exception tree bankflow raises.

Catch ``BankflowError`` to handle anything bankflow reports on purpose; anything else
escaping the library is a bug.

::

    BankflowError
    ├── ConfigurationError      bad settings or database URL
    ├── DatabaseError           the database refused or the schema is out of date
    ├── NotFound                no definition / instance / task with that id or key
    └── DefinitionError         a BPMN/DMN file cannot be deployed (carries diagnostics)
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from bankflow.models import Diagnostic

__all__ = [
    "BankflowError",
    "ConfigurationError",
    "DatabaseError",
    "DefinitionError",
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
