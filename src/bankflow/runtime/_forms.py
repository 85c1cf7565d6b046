"""Validating the data a person submits for a task, before anything changes.

Two sources, in order: a pydantic model the host registered for (process, element), or the
``camunda:formField`` list the modeller drew. Either way every bad field is reported at
once.
"""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from typing import Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StrictBool,
    StrictInt,
    ValidationError,
    create_model,
)

from bankflow.errors import InvalidTaskData
from bankflow.models import FieldError, FormField

__all__ = ["FormRegistry"]


class _Open(BaseModel):
    model_config = ConfigDict(extra="allow")


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


def _model_for(fields: tuple[FormField, ...]) -> type[BaseModel]:
    definitions: dict[str, Any] = {}
    for field in fields:
        kind = _field_type(field)
        if field.required:
            definitions[field.id] = (kind, Field(...))
        else:
            definitions[field.id] = (kind | None, Field(None))
    return create_model("FormData", __base__=_Open, **definitions)


class FormRegistry:
    """Host-registered models plus models derived (once) from form fields."""

    def __init__(self) -> None:
        self._registered: dict[tuple[str, str], type[BaseModel]] = {}
        self._derived: dict[str, type[BaseModel]] = {}

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
    ) -> dict[str, Any]:
        model = self._registered.get((process_key, element_id))
        if model is None:
            if not form_fields:
                return data
            key = "\n".join(f.model_dump_json() for f in form_fields)
            model = self._derived.get(key)
            if model is None:
                model = self._derived.setdefault(key, _model_for(form_fields))
        try:
            validated = model.model_validate(data)
        except ValidationError as exc:
            errors = tuple(
                FieldError(field=".".join(str(p) for p in e["loc"]) or "(data)", message=e["msg"])
                for e in exc.errors()
            )
            raise InvalidTaskData(
                f"task {task_id} ({element_id}) refused the data",
                task_id=task_id,
                errors=errors,
            ) from None
        result = validated.model_dump(exclude_unset=True)
        extra = validated.model_extra or {}
        return {**data, **result, **extra}
