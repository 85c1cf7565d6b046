"""DMN decision tables read straight from the analyst's lxml tree.

SpiffWorkflow's own DMN parser keeps only what its ``eval``-based engine needs (first-match
and collect, Python cells), so bankflow reads the decision tables itself: every hit
policy, the output value lists PRIORITY needs, the required-decision graph, and the line of
every rule so a bad cell can be reported where the analyst has to fix it.

This module only reads structure; it never evaluates a cell (``bankflow.language._decisions``
does, through the expression sandbox). Elements are matched by namespace URI, never by the
prefix a modeler chose.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any

from lxml import etree

from bankflow.errors import BankflowError

__all__ = [
    "AGGREGATIONS",
    "CAMUNDA_DMN",
    "DMN_NAMESPACES",
    "HIT_POLICIES",
    "Decision",
    "DecisionTable",
    "DmnError",
    "Input",
    "Output",
    "Rule",
    "parse_dmn",
]

DMN11 = "http://www.omg.org/spec/DMN/20151101/dmn.xsd"
DMN12 = "http://www.omg.org/spec/DMN/20180521/MODEL/"
DMN13 = "https://www.omg.org/spec/DMN/20191111/MODEL/"
# Same decision-table structure, written by current Kogito/Trisotech (1.4, 1.5) and by
# Flowable (which drops the ``/dmn.xsd`` of 1.1); refusing them would gain nothing.
DMN14 = "https://www.omg.org/spec/DMN/20211108/MODEL/"
DMN15 = "https://www.omg.org/spec/DMN/20230324/MODEL/"
DMN11_FLOWABLE = "http://www.omg.org/spec/DMN/20151101"
DMN_NAMESPACES = frozenset({DMN11, DMN12, DMN13, DMN14, DMN15, DMN11_FLOWABLE})
CAMUNDA_DMN = "http://camunda.org/schema/1.0/dmn"

HIT_POLICIES = frozenset(
    {"UNIQUE", "FIRST", "PRIORITY", "ANY", "RULE ORDER", "OUTPUT ORDER", "COLLECT"}
)
AGGREGATIONS = frozenset({"SUM", "MIN", "MAX", "COUNT"})
# PRIORITY and OUTPUT ORDER rank outputs by their position in ``outputValues``.
_RANKED_POLICIES = frozenset({"PRIORITY", "OUTPUT ORDER"})
DEFAULT_INPUT_VARIABLE = "cellInput"
_IDENTIFIER = re.compile(r"[A-Za-z_]\w*", re.ASCII)
_NUMBER = re.compile(r"-?(\d+(\.\d*)?|\.\d+)")


class DmnError(BankflowError):
    """A decision that cannot be read or evaluated: ``element_id`` and ``line`` point at the
    rule, cell or decision the analyst has to fix (either may be unknown)."""

    def __init__(
        self, message: str, element_id: str | None = None, line: int | None = None
    ) -> None:
        super().__init__(message)
        self.message = message
        self.element_id = element_id
        self.line = line


@dataclass(frozen=True)
class Input:
    """One input column. ``input_variable`` is the name the column's value has inside its
    cells (``camunda:inputVariable``; ``cellInput`` when the attribute is absent or empty)."""

    id: str
    label: str
    expression: str
    type_ref: str | None
    input_variable: str = DEFAULT_INPUT_VARIABLE


@dataclass(frozen=True)
class Output:
    """One output column. ``allowed_values`` is the parsed ``outputValues`` list, highest
    priority first; PRIORITY and OUTPUT ORDER rank results by it."""

    id: str
    label: str
    name: str
    type_ref: str | None
    allowed_values: tuple[Any, ...] = ()


@dataclass(frozen=True)
class Rule:
    """One row: an input entry per input column, an output entry per output column, as the
    raw cell texts (translated and checked by the runtime, not here)."""

    id: str
    line: int | None
    description: str
    input_entries: tuple[str, ...]
    output_entries: tuple[str, ...]


@dataclass(frozen=True)
class DecisionTable:
    id: str
    hit_policy: str
    aggregation: str | None
    inputs: tuple[Input, ...]
    outputs: tuple[Output, ...]
    rules: tuple[Rule, ...]


@dataclass(frozen=True)
class Decision:
    """A decision of the DRG. ``table`` is None for decisions bankflow cannot evaluate
    (literal expressions, invocations, contexts); ``requires`` are the ids of the decisions
    whose results this one reads."""

    id: str
    name: str
    table: DecisionTable | None
    line: int | None
    requires: tuple[str, ...] = ()


def parse_dmn(root: etree._Element | etree._ElementTree) -> list[Decision]:
    """Every decision of a DMN ``definitions`` document, in document order.

    Structural problems (unknown namespace or hit policy, a rule with the wrong number of
    entries, an aggregation a table cannot have...) raise ``DmnError`` at the element, so
    ``bankflow validate`` can point at the line. Cells are not looked at here.
    """
    if isinstance(root, etree._ElementTree):
        root = root.getroot()
    ns = _namespace(root)
    if ns not in DMN_NAMESPACES or _local(root) != "definitions":
        raise DmnError(
            f"not a DMN 1.1-1.5 definitions document (root {root.tag!r})",
            root.get("id"),
            root.sourceline,
        )
    decisions: list[Decision] = []
    seen: set[str] = set()
    for el in root.iterchildren(f"{{{ns}}}decision"):
        decision = _decision(el, ns)
        if decision.id in seen:
            raise DmnError(f"duplicate decision id {decision.id!r}", decision.id, decision.line)
        seen.add(decision.id)
        decisions.append(decision)
    return decisions


def _decision(el: etree._Element, ns: str) -> Decision:
    decision_id = (el.get("id") or "").strip()
    if not decision_id:
        raise DmnError("decision without an id", None, el.sourceline)
    requires: list[str] = []
    for requirement in el.iterchildren(f"{{{ns}}}informationRequirement"):
        for required in requirement.iterchildren(f"{{{ns}}}requiredDecision"):
            href = (required.get("href") or "").strip()
            target = href.rpartition("#")[2].strip()
            if not target:
                raise DmnError(
                    f"decision {decision_id!r}: requiredDecision without an href",
                    requirement.get("id") or decision_id,
                    required.sourceline,
                )
            if target not in requires:
                requires.append(target)
    table_el = el.find(f"{{{ns}}}decisionTable")
    return Decision(
        id=decision_id,
        name=el.get("name") or decision_id,
        table=_table(table_el, ns, decision_id) if table_el is not None else None,
        line=el.sourceline,
        requires=tuple(requires),
    )


def _table(el: etree._Element, ns: str, decision_id: str) -> DecisionTable:
    table_id = el.get("id") or decision_id
    where = f"decision {decision_id!r}"
    raw_policy = el.get("hitPolicy") or "UNIQUE"
    hit_policy = " ".join(raw_policy.replace("_", " ").upper().split())
    if hit_policy not in HIT_POLICIES:
        raise DmnError(
            f"{where}: unknown hit policy {raw_policy!r} "
            f"(expected one of {', '.join(sorted(HIT_POLICIES))})",
            table_id,
            el.sourceline,
        )
    raw_aggregation = el.get("aggregation")
    aggregation = raw_aggregation.strip().upper() if raw_aggregation else None
    if aggregation is not None and aggregation not in AGGREGATIONS:
        raise DmnError(
            f"{where}: unknown aggregation {raw_aggregation!r} (expected SUM, MIN, MAX or COUNT)",
            table_id,
            el.sourceline,
        )
    if aggregation is not None and hit_policy != "COLLECT":
        raise DmnError(
            f"{where}: aggregation {aggregation} is only allowed with hit policy COLLECT",
            table_id,
            el.sourceline,
        )

    inputs = tuple(_input(i, ns, where) for i in el.iterchildren(f"{{{ns}}}input"))
    outputs = tuple(_output(o, ns) for o in el.iterchildren(f"{{{ns}}}output"))
    if not outputs:
        raise DmnError(f"{where}: decision table without an output", table_id, el.sourceline)
    if len(outputs) > 1:
        names = [o.name for o in outputs]
        if not all(names) or len(set(names)) != len(names):
            raise DmnError(
                f"{where}: a table with several outputs needs a distinct name on each",
                table_id,
                el.sourceline,
            )
        if aggregation is not None:
            raise DmnError(
                f"{where}: aggregation {aggregation} needs a single output column",
                table_id,
                el.sourceline,
            )
    if hit_policy in _RANKED_POLICIES and not any(o.allowed_values for o in outputs):
        raise DmnError(
            f"{where}: hit policy {hit_policy} ranks results by an output's output values "
            'list (e.g. "approved","declined"); no output has one',
            table_id,
            el.sourceline,
        )

    rules = tuple(
        _rule(r, ns, where, len(inputs), len(outputs), n)
        for n, r in enumerate(el.iterchildren(f"{{{ns}}}rule"), start=1)
    )
    ids = [r.id for r in rules]
    for rule in rules:
        if ids.count(rule.id) > 1:
            raise DmnError(f"{where}: duplicate rule id {rule.id!r}", rule.id, rule.line)
    return DecisionTable(
        id=table_id,
        hit_policy=hit_policy,
        aggregation=aggregation,
        inputs=inputs,
        outputs=outputs,
        rules=rules,
    )


def _input(el: etree._Element, ns: str, where: str) -> Input:
    input_id = el.get("id") or ""
    label = el.get("label") or ""
    expression_el = el.find(f"{{{ns}}}inputExpression")
    if expression_el is None:
        raise DmnError(
            f"{where}: input {label or input_id!r} has no inputExpression",
            input_id or None,
            el.sourceline,
        )
    variable = (el.get(f"{{{CAMUNDA_DMN}}}inputVariable") or "").strip()
    variable = variable or DEFAULT_INPUT_VARIABLE
    if not _IDENTIFIER.fullmatch(variable):
        raise DmnError(
            f"{where}: input {label or input_id!r}: camunda:inputVariable {variable!r} "
            "is not a plain name",
            input_id or None,
            el.sourceline,
        )
    return Input(
        id=input_id,
        label=label,
        expression=_text(expression_el, ns),
        type_ref=expression_el.get("typeRef"),
        input_variable=variable,
    )


def _output(el: etree._Element, ns: str) -> Output:
    values_el = el.find(f"{{{ns}}}outputValues")
    return Output(
        id=el.get("id") or "",
        label=el.get("label") or "",
        name=(el.get("name") or "").strip(),
        type_ref=el.get("typeRef"),
        allowed_values=_literal_list(_text(values_el, ns)) if values_el is not None else (),
    )


def _rule(
    el: etree._Element, ns: str, where: str, n_inputs: int, n_outputs: int, position: int
) -> Rule:
    rule_id = el.get("id") or f"rule {position}"
    inputs = tuple(_text(e, ns) for e in el.iterchildren(f"{{{ns}}}inputEntry"))
    outputs = tuple(_text(e, ns) for e in el.iterchildren(f"{{{ns}}}outputEntry"))
    if len(inputs) != n_inputs or len(outputs) != n_outputs:
        raise DmnError(
            f"{where}: rule {rule_id!r} has {len(inputs)} input and {len(outputs)} output "
            f"entries; the table has {n_inputs} inputs and {n_outputs} outputs",
            rule_id,
            el.sourceline,
        )
    description_el = el.find(f"{{{ns}}}description")
    description = (description_el.text or "").strip() if description_el is not None else ""
    return Rule(
        id=rule_id,
        line=el.sourceline,
        description=description,
        input_entries=inputs,
        output_entries=outputs,
    )


def _text(el: etree._Element, ns: str) -> str:
    text_el = el.find(f"{{{ns}}}text")
    return (text_el.text or "").strip() if text_el is not None else ""


def _literal_list(text: str) -> tuple[Any, ...]:
    """``"a","b",3`` as Python values. Anything that is not a plain list of literals (a
    range, an expression) gives ``()``: such a list cannot rank outputs anyway."""
    values: list[Any] = []
    pos, end = 0, len(text)
    while pos < end:
        while pos < end and text[pos].isspace():
            pos += 1
        if pos >= end:
            break
        if text[pos] == '"':
            close = pos + 1
            chars: list[str] = []
            while close < end and text[close] != '"':
                if text[close] == "\\" and close + 1 < end:
                    close += 1
                chars.append(text[close])
                close += 1
            if close >= end:
                return ()
            values.append("".join(chars))
            pos = close + 1
        else:
            comma = text.find(",", pos)
            token = text[pos : end if comma < 0 else comma].strip()
            value = _scalar(token)
            if value is None:
                return ()
            values.append(value)
            pos = end if comma < 0 else comma
        while pos < end and text[pos].isspace():
            pos += 1
        if pos < end:
            if text[pos] != ",":
                return ()
            pos += 1
    return tuple(values)


def _scalar(word: str) -> Any:
    if word in ("true", "false"):
        return word == "true"
    if _NUMBER.fullmatch(word):
        try:
            number = Decimal(word)
        except InvalidOperation:  # pragma: no cover - the regex admits only numbers
            return None
        return int(number) if number == number.to_integral_value() else number
    return None


def _namespace(el: etree._Element) -> str:
    tag = el.tag
    return etree.QName(tag).namespace or "" if isinstance(tag, str) else ""


def _local(el: etree._Element) -> str:
    tag = el.tag
    return etree.QName(tag).localname if isinstance(tag, str) else ""
