"""The ``camunda:validation`` constraints of a form field, parsed once for both sides.

``validate`` reports a constraint whose value does not parse, or that cannot apply to the
field's type, as a located error, so an analyst learns at deploy time that ``min="abc"``
would check nothing. The runtime (``runtime/_forms.py``) parses the same text the same way
and enforces what parsed; a definition deployed before this check existed simply drops a
constraint that does not parse rather than refusing every submission of its task.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date
from decimal import Decimal, InvalidOperation

from lxml import etree

from bankflow.definitions._bpmn import BPMN, CAMUNDA, q
from bankflow.definitions._metadata import form_field
from bankflow.models import Diagnostic, FormField, Severity

__all__ = ["FieldRules", "field_rules", "form_rule_problems"]

_NUMBER_TYPES = frozenset({"long", "integer", "double", "decimal"})
_TEXT_TYPES = frozenset({"string"})
_FLAGS = frozenset({"required", "readonly"})
_BOUNDS = ("min", "max")
_LENGTHS = ("minlength", "maxlength")

Bound = Decimal | date


@dataclass(frozen=True)
class FieldRules:
    """What one field's constraints demand beyond its type (``None``: no such limit)."""

    minimum: Bound | None = None
    maximum: Bound | None = None
    min_length: int | None = None
    max_length: int | None = None


@dataclass(frozen=True)
class RuleProblem:
    constraint: str
    message: str
    severity: Severity = Severity.ERROR


def field_rules(field: FormField) -> tuple[FieldRules, tuple[RuleProblem, ...]]:
    """The limits that parsed and, separately, every constraint that did not (or that
    cannot apply to the field's type). ``min``/``max`` hold for numbers (compared as
    decimals) and dates (ISO ``YYYY-MM-DD``), ``minlength``/``maxlength`` for text (a field
    without a type is text, as the runtime reads it); a custom type takes either."""
    kind = (field.type or "string").lower()
    problems: list[RuleProblem] = []
    bounds: dict[str, Bound] = {}
    lengths: dict[str, int] = {}
    for name, config in field.constraints.items():
        if name in _FLAGS:
            continue
        if name in _BOUNDS:
            if kind in _TEXT_TYPES | {"boolean", "enum"}:
                hint = " (use minlength/maxlength)" if kind in _TEXT_TYPES else ""
                problems.append(
                    RuleProblem(
                        name, f"{name} applies to numbers and dates, not a {kind} field{hint}"
                    )
                )
                continue
            parsed = _bound(config, kind)
            if parsed is None:
                wanted = "a date (YYYY-MM-DD)" if kind == "date" else "a number"
                if kind not in _NUMBER_TYPES | {"date"}:
                    wanted = "a number or a date (YYYY-MM-DD)"
                problems.append(RuleProblem(name, f"{name}={_shown(config)} is not {wanted}"))
                continue
            bounds[name] = parsed
        elif name in _LENGTHS:
            if kind in _NUMBER_TYPES | {"date", "boolean", "enum"}:
                problems.append(
                    RuleProblem(name, f"{name} applies to text, not a {kind} field (use min/max)")
                )
                continue
            count = _length(config)
            if count is None:
                problems.append(
                    RuleProblem(
                        name, f"{name}={_shown(config)} is not a whole number of characters"
                    )
                )
                continue
            lengths[name] = count
        else:
            problems.append(
                RuleProblem(
                    name,
                    f"constraint {name!r} is not enforced by bankflow (it knows required, "
                    "readonly, min, max, minlength, maxlength)",
                    Severity.WARNING,
                )
            )
    low, high = bounds.get("min"), bounds.get("max")
    if _above(low, high):
        problems.append(RuleProblem("max", f"min {low} is above max {high}: no value can pass"))
    elif (
        low is not None
        and high is not None
        and isinstance(low, Decimal) != isinstance(high, Decimal)
    ):
        problems.append(RuleProblem("max", f"min {low} and max {high} are not of one kind"))
    short, long_ = lengths.get("minlength"), lengths.get("maxlength")
    if short is not None and long_ is not None and short > long_:
        problems.append(
            RuleProblem(
                "maxlength", f"minlength {short} is above maxlength {long_}: no text can pass"
            )
        )
    rules = FieldRules(minimum=low, maximum=high, min_length=short, max_length=long_)
    return rules, tuple(problems)


def form_rule_problems(root: etree._Element, *, file: str) -> Iterator[Diagnostic]:
    """One diagnostic per constraint of a form field that bankflow cannot enforce, on the
    constraint's own line and the id of the task or event whose form it is."""
    for element in root.iter(q("formField", CAMUNDA)):
        field = form_field(element)
        if field is None:
            continue
        _, problems = field_rules(field)
        owner = _owner(element)
        for problem in problems:
            yield Diagnostic(
                file=file,
                line=_constraint_line(element, problem.constraint),
                element_id=owner,
                rule="form-constraint",
                message=f"form field {field.id!r}: {problem.message}",
                severity=problem.severity,
            )


def _above(low: Bound | None, high: Bound | None) -> bool:
    if isinstance(low, Decimal) and isinstance(high, Decimal):
        return low > high
    if isinstance(low, date) and isinstance(high, date):
        return low > high
    return False


def _bound(config: str | None, kind: str) -> Bound | None:
    if config is None:
        return None
    if kind != "date":
        try:
            number = Decimal(config)
        except InvalidOperation:
            number = None
        if number is not None and number.is_finite():
            return number
        if kind in _NUMBER_TYPES:
            return None
    try:
        return date.fromisoformat(config)
    except ValueError:
        return None


def _length(config: str | None) -> int | None:
    text = (config or "").strip()
    return int(text) if text.isascii() and text.isdigit() else None


def _shown(config: str | None) -> str:
    return "(nothing)" if config is None else repr(config)


def _owner(element: etree._Element) -> str | None:
    """The id of the BPMN element that holds this form field (a user task, a start
    event), past ``formData`` and ``extensionElements``."""
    parent = element.getparent()
    while parent is not None:
        if etree.QName(parent).namespace == BPMN and etree.QName(parent).localname != (
            "extensionElements"
        ):
            return parent.get("id")
        parent = parent.getparent()
    return None


def _constraint_line(element: etree._Element, name: str) -> int | None:
    for constraint in element.iter(q("constraint", CAMUNDA)):
        if (constraint.get("name") or "").strip() == name:
            return constraint.sourceline
    return element.sourceline
