"""Validating the data a person submits for a task, before anything changes.

Two sources, in order: a pydantic model the host registered for (process, element), or the
``camunda:formField`` list the modeller drew. Either way every bad field is reported at
once, so a person fixes a form in one round.

A drawn form is enforced field by field: the field's type, then its ``camunda:validation``
constraints (``required``, ``readonly``, ``min``/``max`` for numbers and dates,
``minlength``/``maxlength`` for text, the enum's values). A field the form does not declare
is refused unless the engine allows undeclared fields: a form is the contract between the
analyst and the process, and a stray key would otherwise become a process variable nobody
asked for (or overwrite one a later gateway reads).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from typing import Any, Literal

from pydantic import (
    BaseModel,
    StrictBool,
    StrictInt,
    TypeAdapter,
    ValidationError,
)

from bankflow.definitions._form_rules import FieldRules, field_rules
from bankflow.errors import InvalidTaskData
from bankflow.models import FieldError, FormField

__all__ = ["FormRegistry"]

_MISSING = object()


def _field_type(field: FormField) -> Any:
    kind = (field.type or "string").lower()
    if kind == "enum" and field.enum_values:
        return Literal[tuple(field.enum_values)]
    return {
        "string": str,
        "long": StrictInt,
        "integer": StrictInt,
        "boolean": StrictBool,
        "date": date,
        "double": Decimal | float,
        "decimal": Decimal,
    }.get(kind, Any)


@dataclass(frozen=True)
class _Field:
    """One drawn field, ready to check: its type adapter and parsed limits."""

    spec: FormField
    adapter: TypeAdapter[Any]
    rules: FieldRules

    def check(self, value: Any) -> tuple[Any, str | None]:
        """The value as the process will hold it, or why it is refused."""
        if value is None:
            return None, "is required and may not be empty" if self.spec.required else None
        try:
            value = self.adapter.validate_python(value)
        except ValidationError as exc:
            return value, "; ".join(e["msg"] for e in exc.errors())
        if self.spec.required and value == "":
            return value, "is required and may not be empty"
        return value, _limits(self.rules, value)

    def default(self) -> Any:
        """The field's ``defaultValue`` as its type reads it (what a form shows when the
        process has no value yet), or ``_MISSING``."""
        if self.spec.default_value is None:
            return _MISSING
        try:
            return self.adapter.validate_python(self.spec.default_value)
        except ValidationError:
            return self.spec.default_value


def _limits(rules: FieldRules, value: Any) -> str | None:
    for bound, below in ((rules.minimum, True), (rules.maximum, False)):
        if bound is None:
            continue
        comparable = _comparable(value, bound)
        if comparable is None:
            return "must be a number or a date to compare with its min/max"
        if below and comparable < bound:
            return f"must be at least {bound}"
        if not below and comparable > bound:
            return f"must be at most {bound}"
    if rules.min_length is not None or rules.max_length is not None:
        if not isinstance(value, str):
            return "must be text to have a minlength/maxlength"
        if rules.min_length is not None and len(value) < rules.min_length:
            return f"must have at least {rules.min_length} characters"
        if rules.max_length is not None and len(value) > rules.max_length:
            return f"must have at most {rules.max_length} characters"
    return None


def _comparable(value: Any, bound: Any) -> Any:
    """``value`` in the bound's kind (a number as a Decimal, a date as a date), or None."""
    if isinstance(bound, Decimal):
        if isinstance(value, bool) or not isinstance(value, int | float | Decimal):
            return None
        return Decimal(str(value)) if isinstance(value, float) else Decimal(value)
    if isinstance(value, date) and not isinstance(value, datetime):
        return value
    return None


def _compile(fields: tuple[FormField, ...]) -> tuple[_Field, ...]:
    return tuple(
        _Field(spec=f, adapter=TypeAdapter(_field_type(f)), rules=field_rules(f)[0]) for f in fields
    )


class FormRegistry:
    """Host-registered models plus forms compiled (once) from their form fields."""

    def __init__(self, *, allow_undeclared_fields: bool = False) -> None:
        self._registered: dict[tuple[str, str], type[BaseModel]] = {}
        self._compiled: dict[str, tuple[_Field, ...]] = {}
        self._allow_undeclared = allow_undeclared_fields

    def register(self, process_key: str, element_id: str, model: type[BaseModel]) -> None:
        self._registered[(process_key, element_id)] = model

    def validate(
        self,
        *,
        task_id: str,
        process_key: str,
        element_id: str,
        form_fields: tuple[FormField, ...],
        data: dict[str, Any],
        current: Callable[[], Mapping[str, Any]] | None = None,
    ) -> dict[str, Any]:
        """``data`` as the task will hand it on, or ``InvalidTaskData`` naming every bad
        field. ``current`` gives the task's data as it is now; it is called only when a
        read-only field is submitted (it loads the instance's state)."""
        model = self._registered.get((process_key, element_id))
        if model is not None:
            return _by_model(model, task_id, element_id, data)
        if not form_fields:
            return data
        key = "\n".join(f.model_dump_json() for f in form_fields)
        fields = self._compiled.get(key)
        if fields is None:
            fields = self._compiled.setdefault(key, _compile(form_fields))
        errors: list[FieldError] = []
        validated: dict[str, Any] = {}
        now: Mapping[str, Any] | None = None
        for field in fields:
            name = field.spec.id
            value = data.get(name, _MISSING)
            if field.spec.readonly and value is not _MISSING:
                if now is None:
                    now = current() if current is not None else {}
                was = now.get(name, _MISSING)
                if was is _MISSING:
                    was = field.default()
                checked, _ = field.check(value)
                if was is _MISSING or checked != was:
                    errors.append(
                        FieldError(
                            field=name,
                            message="is read-only: it may only be sent with its current value",
                        )
                    )
                else:
                    validated[name] = checked  # unchanged: its other constraints are moot
                continue
            if value is _MISSING:
                if field.spec.required and not field.spec.readonly:
                    errors.append(FieldError(field=name, message="is required"))
                continue
            checked, problem = field.check(value)
            if problem is not None:
                errors.append(FieldError(field=name, message=problem))
            else:
                validated[name] = checked
        if not self._allow_undeclared:
            declared = [f.spec.id for f in fields]
            known = set(declared)
            errors += [
                FieldError(
                    field=name,
                    message="is not a field of this task's form (it declares "
                    f"{', '.join(declared)}); Engine(allow_undeclared_fields=True) accepts "
                    "such fields",
                )
                for name in data
                if name not in known
            ]
        if errors:
            raise _refused(task_id, element_id, errors)
        return {**data, **validated}


def _by_model(
    model: type[BaseModel], task_id: str, element_id: str, data: dict[str, Any]
) -> dict[str, Any]:
    """A registered model decides alone (its own ``extra`` setting says whether it takes
    fields it does not declare)."""
    try:
        validated = model.model_validate(data)
    except ValidationError as exc:
        raise _refused(
            task_id,
            element_id,
            [
                FieldError(field=".".join(str(p) for p in e["loc"]) or "(data)", message=e["msg"])
                for e in exc.errors()
            ],
        ) from None
    result = validated.model_dump(exclude_unset=True)
    extra = validated.model_extra or {}
    return {**data, **result, **extra}


def _refused(task_id: str, element_id: str, errors: list[FieldError]) -> InvalidTaskData:
    return InvalidTaskData(
        f"task {task_id} ({element_id}) refused the data", task_id=task_id, errors=tuple(errors)
    )
