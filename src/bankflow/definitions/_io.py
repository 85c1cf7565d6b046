"""``camunda:inputOutput``: an activity's input and output parameters, as expressions.

Camunda Modeler writes a parameter as text (a literal, one ``${...}`` expression, or text
with expressions in it), as ``camunda:list`` or ``camunda:map`` of such values, or as a
``camunda:script``. Each parameter becomes one expression in bankflow's language, so
deploy checks it like any other expression and the runtime evaluates it in the
activity's view of the process variables (``runtime/_variables``). A script parameter
is not run: the activity runs without it, with a warning (Camunda's connectors, such as
the mail connector's ``mailBody``, are where such scripts live); anything else bankflow
cannot read refuses the file (rule ``unsupported``).
"""

from __future__ import annotations

from dataclasses import dataclass

from lxml import etree

from bankflow.definitions._bpmn import CAMUNDA, q
from bankflow.language._juel import juel_to_python

_EXPRESSION_START = ("${", "#{")


@dataclass(frozen=True)
class Parameter:
    name: str
    expression: str  # bankflow's expression language
    line: int | None


@dataclass(frozen=True)
class Mapping:
    inputs: tuple[Parameter, ...]
    outputs: tuple[Parameter, ...]


class Unsupported(ValueError):
    """A parameter bankflow cannot evaluate; the message says which and why."""

    def __init__(self, message: str, *, skipped: bool = False) -> None:
        super().__init__(message)
        # A parameter left out while the activity still runs as drawn (a script, which
        # Camunda connectors such as the mail connector use): a warning, not an error.
        self.skipped = skipped


def mappings(root: etree._Element) -> dict[str, Mapping]:
    """Every element of the file with input or output parameters, by id. Parameters
    bankflow cannot read are left out here: ``problems`` names them."""
    found: dict[str, Mapping] = {}
    for io in root.iter(q("inputOutput", CAMUNDA)):
        element = _owner(io)
        if element is None or not element.get("id"):
            continue
        inputs, outputs = [], []
        for parameter in io:
            if not isinstance(parameter.tag, str):
                continue
            try:
                read = _parameter(parameter)
            except Unsupported:
                continue
            if parameter.tag == q("inputParameter", CAMUNDA):
                inputs.append(read)
            elif parameter.tag == q("outputParameter", CAMUNDA):
                outputs.append(read)
        if inputs or outputs:
            found[element.get("id", "")] = Mapping(tuple(inputs), tuple(outputs))
    return found


def problems(element: etree._Element) -> list[tuple[str, bool]]:
    """Why each parameter of ``element`` that bankflow cannot evaluate is left out, and
    whether that is only a warning (the activity runs without it)."""
    found: list[tuple[str, bool]] = []
    extension = element.find(q("extensionElements"))
    if extension is None:
        return found
    for io in extension.iterchildren(q("inputOutput", CAMUNDA)):
        for parameter in io:
            if not isinstance(parameter.tag, str):
                continue
            try:
                _parameter(parameter)
            except Unsupported as exc:
                found.append((str(exc), exc.skipped))
    return found


def _owner(io: etree._Element) -> etree._Element | None:
    extension = io.getparent()
    if extension is None or extension.tag != q("extensionElements"):
        return None  # a connector's own mapping: not the activity's
    return extension.getparent()


def _parameter(parameter: etree._Element) -> Parameter:
    name = (parameter.get("name") or "").strip()
    kind = "input" if parameter.tag == q("inputParameter", CAMUNDA) else "output"
    if not name.isidentifier():
        raise Unsupported(f"the {kind} parameter {name!r} is not a variable name")
    return Parameter(
        name, _value(parameter, f"the {kind} parameter {name!r}"), parameter.sourceline
    )


def _value(el: etree._Element, what: str) -> str:
    children = [c for c in el if isinstance(c.tag, str)]
    if not children:
        return _text(el.text or "", what)
    if len(children) > 1:
        raise Unsupported(f"{what} holds more than one value")
    child = children[0]
    if child.tag == q("list", CAMUNDA):
        items = [_value(v, what) for v in child if isinstance(v.tag, str)]
        return "[" + ", ".join(items) + "]"
    if child.tag == q("map", CAMUNDA):
        entries = []
        for entry in child:
            if not isinstance(entry.tag, str):
                continue
            key = entry.get("key")
            if key is None:
                raise Unsupported(f"{what} has a map entry without a key")
            entries.append(f"{key!r}: {_value(entry, what)}")
        return "{" + ", ".join(entries) + "}"
    if child.tag == q("script", CAMUNDA):
        raise Unsupported(
            f"{what} is a script, which bankflow does not run: the activity runs "
            "without it (write an expression such as ${amount * 2} if the process needs "
            "the value)",
            skipped=True,
        )
    raise Unsupported(
        f"{what} holds a <{etree.QName(child).localname}>, which bankflow cannot read"
    )


def _text(text: str, what: str) -> str:
    """A parameter's text as one expression: a literal, an expression, or text with
    expressions in it (joined as text, as Camunda does)."""
    stripped = text.strip()
    if not stripped:
        return "None"
    whole = juel_to_python(stripped)
    if whole is not None:
        return whole
    if not any(start in text for start in _EXPRESSION_START):
        return repr(text)
    parts: list[str] = []
    rest = text
    while rest:
        starts = [i for i in (rest.find("${"), rest.find("#{")) if i >= 0]
        if not starts:
            parts.append(repr(rest))
            break
        begin = min(starts)
        end = rest.find("}", begin)
        if end < 0:
            raise Unsupported(f"{what} has an expression with no closing brace")
        if begin:
            parts.append(repr(rest[:begin]))
        inner = juel_to_python(rest[begin : end + 1])
        if inner is None:
            raise Unsupported(f"{what} has an expression bankflow cannot read")
        parts.append(f"str({inner})")
        rest = rest[end + 1 :]
    return " + ".join(parts)
