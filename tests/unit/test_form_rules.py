"""Parsing ``camunda:validation`` constraints (``definitions/_form_rules.py``): what parses
becomes a limit, what does not (or cannot apply to the field's type) becomes a located
diagnostic for ``validate``."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

import pytest
from lxml import etree

from bankflow.definitions._form_rules import FieldRules, field_rules, form_rule_problems
from bankflow.models import FormField, Severity


def _field(kind: str | None, **constraints: str | None) -> FormField:
    return FormField(id="f", type=kind, constraints=constraints)


@pytest.mark.parametrize(
    ("kind", "constraints", "rules"),
    [
        ("long", {"min": "18", "max": "99"}, FieldRules(minimum=Decimal(18), maximum=Decimal(99))),
        ("double", {"min": "-0.5", "max": "1e3"}, FieldRules(Decimal("-0.5"), Decimal("1e3"))),
        (
            "date",
            {"min": "2026-01-01", "max": "2026-12-31"},
            FieldRules(minimum=date(2026, 1, 1), maximum=date(2026, 12, 31)),
        ),
        (
            "string",
            {"minlength": "0", "maxlength": " 40 "},
            FieldRules(min_length=0, max_length=40),
        ),
        (None, {"maxlength": "3"}, FieldRules(max_length=3)),
        ("customType", {"min": "2026-01-01"}, FieldRules(minimum=date(2026, 1, 1))),
        ("long", {"required": None, "readonly": "false"}, FieldRules()),
    ],
)
def test_constraints_that_parse(
    kind: str | None, constraints: dict[str, str], rules: FieldRules
) -> None:
    assert field_rules(_field(kind, **constraints)) == (rules, ())


@pytest.mark.parametrize(
    ("kind", "constraints", "message"),
    [
        ("long", {"min": "abc"}, "min='abc' is not a number"),
        ("long", {"max": None}, "max=(nothing) is not a number"),
        ("double", {"min": "NaN"}, "min='NaN' is not a number"),
        ("date", {"max": "31/12/2026"}, "max='31/12/2026' is not a date (YYYY-MM-DD)"),
        ("customType", {"min": "soon"}, "min='soon' is not a number or a date (YYYY-MM-DD)"),
        ("string", {"minlength": "-1"}, "minlength='-1' is not a whole number of characters"),
        ("string", {"maxlength": "2.5"}, "maxlength='2.5' is not a whole number of characters"),
        (
            "string",
            {"min": "3"},
            "min applies to numbers and dates, not a string field (use minlength/maxlength)",
        ),
        ("boolean", {"max": "1"}, "max applies to numbers and dates, not a boolean field"),
        ("long", {"maxlength": "3"}, "maxlength applies to text, not a long field (use min/max)"),
        ("long", {"min": "10", "max": "5"}, "min 10 is above max 5: no value can pass"),
        (
            "customType",
            {"min": "5", "max": "2026-01-01"},
            "min 5 and max 2026-01-01 are not of one kind",
        ),
        (
            "string",
            {"minlength": "9", "maxlength": "5"},
            "minlength 9 is above maxlength 5: no text can pass",
        ),
    ],
)
def test_constraints_that_do_not_parse(
    kind: str, constraints: dict[str, str], message: str
) -> None:
    _, problems = field_rules(_field(kind, **constraints))
    assert [(p.message, p.severity) for p in problems] == [(message, Severity.ERROR)]


def test_a_constraint_bankflow_does_not_know_only_warns() -> None:
    _, [problem] = field_rules(_field("string", validator="${checker}"))
    assert problem.severity == Severity.WARNING
    assert "'validator' is not enforced" in problem.message


def test_a_problem_is_located_on_its_constraint_and_the_element_holding_the_form() -> None:
    xml = b"""<bpmn:definitions xmlns:bpmn="http://www.omg.org/spec/BPMN/20100524/MODEL"
    xmlns:camunda="http://camunda.org/schema/1.0/bpmn">
  <bpmn:process id="p">
    <bpmn:userTask id="review">
      <bpmn:extensionElements><camunda:formData>
        <camunda:formField id="age" type="long">
          <camunda:validation>
            <camunda:constraint name="required"/>
            <camunda:constraint name="min" config="abc"/>
          </camunda:validation>
        </camunda:formField>
        <camunda:formField id="ok" type="long">
          <camunda:validation><camunda:constraint name="min" config="1"/></camunda:validation>
        </camunda:formField>
      </camunda:formData></bpmn:extensionElements>
    </bpmn:userTask>
  </bpmn:process>
</bpmn:definitions>"""
    [diagnostic] = form_rule_problems(etree.fromstring(xml), file="loan.bpmn")
    assert diagnostic.format() == (
        "loan.bpmn:9: review: form-constraint: form field 'age': min='abc' is not a number (error)"
    )
