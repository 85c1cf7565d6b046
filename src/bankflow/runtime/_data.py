"""Task data is JSON plus the few types a bank needs exactly: Decimal (money), date,
datetime and UUID. Anything else is refused at the call, naming the path, instead of
failing later when the state is saved."""

from __future__ import annotations

import math
from collections.abc import Mapping
from datetime import date, datetime
from decimal import Decimal
from typing import Any
from uuid import UUID

from bankflow.errors import InvalidData
from bankflow.models import FieldError

__all__ = ["MAX_DEPTH", "check_data"]

MAX_DEPTH = 32
_SCALARS = (str, bool, int, Decimal, date, datetime, UUID, type(None))


def check_data(data: Mapping[str, Any] | None, *, what: str = "data") -> dict[str, Any]:
    """A plain-dict copy of ``data`` (tuples become lists), or ``InvalidData``."""
    if data is None:
        return {}
    if not isinstance(data, Mapping):
        raise InvalidData(
            f"{what} must be an object of named values",
            errors=(FieldError(field="", message=f"got {type(data).__name__}"),),
        )
    errors: list[FieldError] = []
    result = _clean(data, "", 0, errors)
    if errors:
        raise InvalidData(f"{what} cannot be stored", errors=tuple(errors))
    return result  # type: ignore[no-any-return]


def _clean(value: Any, path: str, depth: int, errors: list[FieldError]) -> Any:
    if depth > MAX_DEPTH:
        errors.append(FieldError(field=path, message=f"nested deeper than {MAX_DEPTH} levels"))
        return None
    if isinstance(value, float):
        if not math.isfinite(value):
            errors.append(FieldError(field=path, message="not a finite number"))
        return value
    if isinstance(value, _SCALARS):
        if isinstance(value, Decimal) and not value.is_finite():
            errors.append(FieldError(field=path, message="not a finite number"))
        return value
    if isinstance(value, Mapping):
        cleaned = {}
        for key, item in value.items():
            if not isinstance(key, str):
                errors.append(FieldError(field=path, message=f"key {key!r} is not a string"))
                continue
            cleaned[key] = _clean(item, f"{path}.{key}" if path else key, depth + 1, errors)
        return cleaned
    if isinstance(value, list | tuple):
        return [_clean(item, f"{path}[{i}]", depth + 1, errors) for i, item in enumerate(value)]
    errors.append(
        FieldError(
            field=path,
            message=f"{type(value).__name__} is not storable (use JSON values, Decimal, "
            "date, datetime or UUID)",
        )
    )
    return None
