"""The limits an engine holds every input and every step to.

Why one model: a BPMN file, a caller's data and a script's results all come from outside
the engine's control, and a bank's engine must stay up whatever they hold. Each limit is
checked where the thing enters (deploy, an API or CLI call, a message, an external task's
result, a handler's result, what a script produced) before anything is stored, and the
same on SQLite and PostgreSQL, so a value one database would take and the other refuse
never gets that far. The defaults are far above what a bank's procedures need and far
below what hurts the host; change them with ``Engine(limits=Limits(...))`` or, for the
CLI and workers, ``BANKFLOW_LIMITS='{"max_steps": 50000}'``.
"""

from __future__ import annotations

import os

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from bankflow.errors import ConfigurationError

__all__ = ["DEFAULT_LIMITS", "LIMITS_ENV", "Limits", "limits_from_env"]


class Limits(BaseModel):
    """Configurable limits; every field has a safe default."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    # -- running -----------------------------------------------------------------------
    max_steps: int = Field(
        10_000,
        ge=1,
        description="Elements one engine call may run without reaching a wait state "
        "(a user task, timer, message, external or asynchronous service); past it the "
        "instance fails naming the element where it looped.",
    )
    # -- data --------------------------------------------------------------------------
    max_data_bytes: int = Field(
        1_048_576,
        ge=1,
        description="Bytes of the JSON form of the data given in one call (task "
        "completion, start, message, external result, handler result, script result).",
    )
    max_string_chars: int = Field(
        100_000, ge=1, description="Characters of one string value in task data."
    )
    max_items: int = Field(
        10_000, ge=1, description="Keys of one object or items of one list in task data."
    )
    max_depth: int = Field(32, ge=1, description="Nesting of objects and lists in task data.")
    max_number_digits: int = Field(
        100,
        ge=1,
        description="Digits of one number (integer or Decimal, before and after the point).",
    )
    max_business_key_chars: int = Field(
        255, ge=1, description="Characters of a business key (printable, no control characters)."
    )
    # -- definitions -------------------------------------------------------------------
    max_file_elements: int = Field(
        100_000,
        ge=1,
        description="XML elements in one BPMN or DMN file (diagram shapes included), "
        "counted while the file is parsed, before any expensive pass, so a hostile file "
        "is refused in seconds. A chain of 5,000 script tasks drawn in Camunda Modeler "
        "holds about 50,000; the largest file of the corpus about 2,600.",
    )
    max_deployment_elements: int = Field(
        200_000, ge=1, description="XML elements in all the files of one deployment."
    )


DEFAULT_LIMITS = Limits()

LIMITS_ENV = "BANKFLOW_LIMITS"


def limits_from_env() -> Limits:
    """``BANKFLOW_LIMITS`` (a JSON object of fields, e.g. ``{"max_steps": 50000}``) over
    the defaults: how the CLI and a worker get the same limits as the service."""
    text = os.environ.get(LIMITS_ENV, "").strip()
    if not text:
        return DEFAULT_LIMITS
    try:
        return Limits.model_validate_json(text)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or 'value'}: {e['msg']}" for e in exc.errors()
        )
        raise ConfigurationError(f"{LIMITS_ENV} is not valid: {problems}") from None
