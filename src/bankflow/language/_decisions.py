"""Evaluating DMN decision tables with bankflow's expression sandbox.

SpiffWorkflow's DMN engine knows only first-match and collect and runs every cell through
Python ``eval``; a bank's decision tables use all seven hit policies and come from analysts,
so their cells must never reach ``eval``. Here every cell is translated once from its FEEL
unary-test form into the Python subset of ``bankflow.language._expressions`` and compiled by
that sandbox; the hit policy is applied in plain Python afterwards.

Translation of an input entry (``v`` is the input value, named by ``camunda:inputVariable``,
``cellInput`` by default)::

    -  or empty            any value
    < e   <= e   > e  >= e  v is not None and v < (e)      (null never compares)
    = e   == e   != e      v == (e)   v != (e)
    [a..b]  (a..b)  ]a..b[  [a..b)  ...     interval, each end inclusive or exclusive
    "A", 5, true, null     v == "A" ...  (FEEL true/false/null become True/False/None)
    t1, t2, ...            any of the tests
    not(t1, t2, ...)       none of the tests
    anything else          a boolean expression (a comparison, ``and``/``or``/``not``, or
                           one that mentions the input value, ``?`` included) is the test
                           itself; any other expression is compared with the input value

Inside every cell and input expression, ``a.b.c`` reads nested data (``a["b"]["c"]``: the
sandbox allows no attribute access), ``0.36`` is ``Decimal("0.36")`` and floats in the data
become Decimals, so numbers compare exactly as in FEEL, and ``date("2026-01-01")`` is the
sandbox's ``date(2026, 1, 1)``.

Only ``check`` and ``evaluate`` compile; the compiled plan of a decision is cached, so a
table is translated once per process, not once per evaluation.
"""

from __future__ import annotations

import ast
import functools
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from bankflow.language._dmn import Decision, DecisionTable, DmnError, Input, Rule
from bankflow.language._expressions import Compiled, ExpressionError, compile_expression

__all__ = [
    "DecisionResult",
    "check",
    "evaluate",
    "evaluate_graph",
    "translate_expression",
    "translate_unary_tests",
]

_LIST_POLICIES = frozenset({"RULE ORDER", "OUTPUT ORDER", "COLLECT"})
_COMPARISON = re.compile(r"(<=|>=|!=|==|<|>|=)(?![=<>])\s*(.*)", re.DOTALL)
_JUEL = re.compile(r"[$#]\{(.*)\}", re.DOTALL)
_FEEL_CONSTANTS = {"true": "True", "false": "False", "null": "None"}
_FEEL_WORD = re.compile(r"(?<![\w.])(true|false|null)(?!\w)")
_LONE_EQUALS = re.compile(r"(?<![=<>!])=(?!=)")
_NOT = re.compile(r"not\s*\(", re.DOTALL)
_DECIMAL_LITERAL = re.compile(r"(?<![\w.])(?:\d+\.\d+|\.\d+|\d+(?=[eE]))(?:[eE][+-]?\d+)?(?![\w.])")
_DOTTED = re.compile(r"(?<![\w.])[^\W\d]\w*(?:\.[^\W\d]\w*)+")
_TEMPORAL = re.compile(r'\b(date and time|date)\s*\(\s*"([^"\\]*)"\s*\)')
_MAX_GRAPH_DEPTH = 64


@dataclass(frozen=True)
class DecisionResult:
    """What a decision gave and why.

    ``result`` has the hit policy's shape: one output column gives its value, several give
    a dict name -> value; RULE ORDER, OUTPUT ORDER and COLLECT give a list of those (empty
    when nothing matched), an aggregation gives a number; a single-hit table that matched
    nothing gives None. ``matched`` are the ids of the rules the result was taken from, in
    the result's order, and ``outputs`` their output values (one dict per rule, keyed by
    output name; the decision id for an unnamed single output) for the audit trail.
    """

    decision_id: str
    matched: tuple[str, ...]
    result: Any
    outputs: list[dict[str, Any]] = field(default_factory=list)


# --------------------------------------------------------------------------- translation


def translate_expression(text: str, *, variable: str | None = None) -> str:
    """A FEEL/JUEL-flavoured expression as Python-subset text the sandbox accepts.

    ``${x}`` is unwrapped; FEEL ``true``/``false``/``null`` and ``=`` become Python; ``?``
    (the input value in FEEL) becomes ``variable``; ``a.b.c`` becomes ``a["b"]["c"]``
    because the sandbox refuses attribute access and process data are dicts; a number with
    a fraction becomes ``Decimal("0.36")`` so money compares and adds exactly (FEEL numbers
    are decimals); ``date("2026-01-01")`` and ``date and time("...")`` become the sandbox's
    ``date(2026, 1, 1)`` and ``datetime(...)``. String literals are left as written.
    ``ValueError`` for a temporal literal that is not a valid ISO date.
    """
    text = text.strip()
    juel = _JUEL.fullmatch(text)
    if juel:
        text = juel.group(1).strip()
    text = _temporal_literals(text)
    out: list[str] = []
    for is_string, chunk in _segments(text):
        if is_string:
            out.append(chunk)
            continue
        chunk = _FEEL_WORD.sub(lambda m: _FEEL_CONSTANTS[m.group(1)], chunk)
        chunk = _LONE_EQUALS.sub("==", chunk)
        chunk = _DECIMAL_LITERAL.sub(lambda m: f'Decimal("{m.group(0)}")', chunk)
        chunk = _DOTTED.sub(_subscripts, chunk)
        if variable is not None:
            chunk = chunk.replace("?", f" {variable} ")
        out.append(chunk)
    return "".join(out).strip()


def _subscripts(match: re.Match[str]) -> str:
    """``a.b.c`` as ``a["b"]["c"]``. A part starting with ``_`` stays an attribute, so the
    sandbox refuses it instead of it quietly becoming a dict lookup."""
    head, *rest = match.group(0).split(".")
    parts = [head]
    for n, part in enumerate(rest):
        if part.startswith("_"):
            parts.append("." + ".".join(rest[n:]))
            break
        parts.append(f'["{part}"]')
    return "".join(parts)


def _temporal_literals(text: str) -> str:
    outside = {i for i, _ in _outside_strings(text)}
    for match in reversed(list(_TEMPORAL.finditer(text))):
        if match.start() not in outside:
            continue
        kind, value = match.group(1), match.group(2)
        try:
            if kind == "date":
                day = date.fromisoformat(value)
                literal = f"date({day.year}, {day.month}, {day.day})"
            else:
                moment = datetime.fromisoformat(value)
                if moment.tzinfo is not None:
                    raise ValueError("time zones are not supported")
                fields = [moment.year, moment.month, moment.day, moment.hour, moment.minute]
                fields += [moment.second, moment.microsecond]
                literal = f"datetime({', '.join(map(str, fields))})"
        except ValueError as exc:
            raise ValueError(f"{match.group(0)} is not a valid {kind}: {exc}") from None
        text = text[: match.start()] + literal + text[match.end() :]
    return text


def translate_unary_tests(text: str, variable: str) -> str | None:
    """An input entry as a Python-subset boolean expression on ``variable``; None when the
    entry matches anything (``-`` or empty). ``ValueError`` says why a cell cannot be
    translated."""
    text = text.strip()
    if text in ("", "-"):
        return None
    negated = _negated_body(text)
    body = text if negated is None else negated
    parts = _split_top_level(body)
    if any(not p.strip() for p in parts):
        raise ValueError("empty test in a list (stray comma?)")
    tests = [_positive_test(p.strip(), variable) for p in parts]
    joined = tests[0] if len(tests) == 1 else " or ".join(f"({t})" for t in tests)
    return joined if negated is None else f"not ({joined})"


def _positive_test(part: str, v: str) -> str:
    interval = _interval(part)
    if interval is not None:
        low_bracket, low, high, high_bracket = interval
        low_op = "<=" if low_bracket == "[" else "<"
        high_op = "<=" if high_bracket == "]" else "<"
        a = _endpoint(low, v)
        b = _endpoint(high, v)
        return f"{v} is not None and ({a}) {low_op} {v} and {v} {high_op} ({b})"
    comparison = _COMPARISON.fullmatch(part)
    if comparison:
        op, operand = comparison.groups()
        e = _endpoint(operand, v)
        if op in ("=", "=="):
            return f"{v} == ({e})"
        if op == "!=":
            return f"{v} != ({e})"
        return f"{v} is not None and {v} {op} ({e})"
    expression = translate_expression(part, variable=v)
    tree = _parse(expression)
    if _is_boolean_test(tree, v):
        return expression
    return f"{v} == ({expression})"


def _endpoint(text: str, v: str) -> str:
    if not text.strip():
        raise ValueError("a comparison or interval without a value")
    expression = translate_expression(text, variable=v)
    _parse(expression)
    return expression


def _parse(expression: str) -> ast.expr:
    """Syntax check only, to classify and to report a bad cell in FEEL terms; the sandbox
    compiles (and polices) the text itself."""
    try:
        return ast.parse(expression, mode="eval").body
    except SyntaxError as exc:
        raise ValueError(f"does not parse ({exc.msg})") from None


def _is_boolean_test(node: ast.expr, v: str) -> bool:
    """A comparison or logical expression is a test on its own (Camunda evaluates
    ``amount > 1000`` as the cell's verdict); so is anything naming the input value."""
    if isinstance(node, ast.Compare | ast.BoolOp):
        return True
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.Not):
        return True
    return any(isinstance(n, ast.Name) and n.id == v for n in ast.walk(node))


def _negated_body(text: str) -> str | None:
    """The inside of ``not( ... )`` when the whole cell is one negation."""
    match = _NOT.match(text)
    if not match:
        return None
    open_at = match.end() - 1
    close_at = _matching_paren(text, open_at)
    if close_at != len(text) - 1:
        return None
    body = text[open_at + 1 : close_at].strip()
    if not body:
        raise ValueError("not() without a test")
    return body


def _matching_paren(text: str, open_at: int) -> int:
    depth = 0
    for i, ch in _outside_strings(text):
        if i < open_at:
            continue
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
            if depth == 0:
                return i
    return -1


def _split_top_level(text: str) -> list[str]:
    """Split at commas outside strings, brackets and intervals. An interval may open with
    ``]`` and close with ``[`` (``]1..10[``), so a bracket's role depends on where it is."""
    parts: list[str] = []
    depth = 0
    start = 0
    at_part_start = True
    in_interval = False
    seen_range = False
    previous = -2
    for i, ch in _outside_strings(text):
        if ch.isspace():
            continue
        if depth == 0 and at_part_start and ch in "[(]":
            depth, in_interval, seen_range = 1, True, False
        elif depth == 1 and in_interval and ch == "." and previous == i - 1 and text[i - 1] == ".":
            seen_range = True
        elif depth == 1 and in_interval and seen_range and ch in ")][":
            depth, in_interval = 0, False
        elif ch in "([{":
            depth += 1
        elif ch in ")]}":
            depth -= 1
            if depth == 0:
                in_interval = False
        elif ch == "," and depth == 0:
            parts.append(text[start:i])
            start = i + 1
            at_part_start = True
            previous = i
            continue
        at_part_start = False
        previous = i
    parts.append(text[start:])
    return parts


def _interval(part: str) -> tuple[str, str, str, str] | None:
    """``[a..b)`` as (``[``, ``a``, ``b``, ``)``), or None when ``part`` is no interval."""
    if len(part) < 4 or part[0] not in "[(]" or part[-1] not in "])[":
        return None
    inner = part[1:-1]
    depth = 0
    for i, ch in _outside_strings(inner):
        if ch in "([{":
            depth += 1
        elif ch in ")]}":
            depth -= 1
        elif ch == "." and depth == 0 and inner.startswith("..", i):
            return part[0], inner[:i].strip(), inner[i + 2 :].strip(), part[-1]
    return None


def _outside_strings(text: str) -> list[tuple[int, str]]:
    """(index, char) of every character not inside a string literal."""
    found: list[tuple[int, str]] = []
    quote: str | None = None
    escaped = False
    for i, ch in enumerate(text):
        if quote is not None:
            if escaped:
                escaped = False
            elif ch == "\\":
                escaped = True
            elif ch == quote:
                quote = None
        elif ch in "\"'":
            quote = ch
        else:
            found.append((i, ch))
    return found


def _segments(text: str) -> list[tuple[bool, str]]:
    """``text`` cut into (is_string_literal, chunk) pieces, in order."""
    outside = {i for i, _ in _outside_strings(text)}
    pieces: list[tuple[bool, str]] = []
    current: list[str] = []
    current_is_string = False
    for i, ch in enumerate(text):
        is_string = i not in outside
        if is_string != current_is_string and current:
            pieces.append((current_is_string, "".join(current)))
            current = []
        current_is_string = is_string
        current.append(ch)
    if current:
        pieces.append((current_is_string, "".join(current)))
    return pieces


# --------------------------------------------------------------------------- compiling


@dataclass(frozen=True)
class _Cell:
    """A compiled cell, with what is needed to report it (the rule and the analyst's text)
    and the variables it reads, so each evaluation copies only those into its scope."""

    compiled: Compiled
    text: str
    rule: Rule | None
    column: str
    names: tuple[str, ...]


@dataclass(frozen=True)
class _CompiledRule:
    rule: Rule
    tests: tuple[_Cell | None, ...]
    outputs: tuple[_Cell | None, ...]


@dataclass(frozen=True)
class _Plan:
    table: DecisionTable
    inputs: tuple[_Cell, ...]
    rules: tuple[_CompiledRule, ...]


def check(decision: Decision) -> list[DmnError]:
    """Every problem ``evaluate`` would refuse before looking at data: each input
    expression, input entry and output entry compiled by the sandbox, nothing evaluated.
    ``bankflow validate`` reports these at deploy time."""
    errors: list[DmnError] = []
    _compile(decision, errors)
    return errors


@functools.lru_cache(maxsize=512)
def _plan(decision: Decision) -> _Plan:
    return _compile(decision, None)


def _compile(decision: Decision, errors: list[DmnError] | None) -> _Plan:
    """Compile the whole table. With ``errors`` every problem is appended and compiling goes
    on; without, the first problem is raised."""

    def report(error: DmnError) -> None:
        if errors is None:
            raise error
        errors.append(error)

    table = decision.table
    if table is None:
        report(
            DmnError(
                f"decision {decision.id!r} has no decision table; bankflow evaluates decision "
                "tables only (not literal expressions, contexts or invocations)",
                decision.id,
                decision.line,
            )
        )
        empty = DecisionTable(decision.id, "UNIQUE", None, (), (), ())
        return _Plan(empty, (), ())

    inputs: list[_Cell] = []
    for n, column in enumerate(table.inputs, start=1):
        name = _column_name(column, n)
        try:
            if not column.expression.strip():
                raise ValueError("the input expression is empty")
            text = translate_expression(column.expression)
            _parse(text)
            inputs.append(_cell(text, decision, None, name, column.expression))
        except (ValueError, ExpressionError) as exc:
            report(
                DmnError(
                    f"decision {decision.id!r}, {name}: expression {column.expression!r}: "
                    f"{_reason(exc)}",
                    column.id or decision.id,
                    decision.line,
                )
            )

    rules: list[_CompiledRule] = []
    for rule in table.rules:
        tests: list[_Cell | None] = []
        for n, (column, entry) in enumerate(zip(table.inputs, rule.input_entries, strict=True)):
            name = _column_name(column, n + 1)
            try:
                test = translate_unary_tests(entry, column.input_variable)
                tests.append(None if test is None else _cell(test, decision, rule, name, entry))
            except (ValueError, ExpressionError) as exc:
                tests.append(None)
                report(_cell_error(decision, rule, f"input entry for {name}", entry, exc))
        outputs: list[_Cell | None] = []
        for n, (out, entry) in enumerate(zip(table.outputs, rule.output_entries, strict=True)):
            name = f"output {out.name or out.label or n + 1!s}"
            try:
                if not entry.strip():
                    outputs.append(None)
                    continue
                text = translate_expression(entry)
                _parse(text)
                outputs.append(_cell(text, decision, rule, name, entry))
            except (ValueError, ExpressionError) as exc:
                outputs.append(None)
                report(_cell_error(decision, rule, f"output entry for {name}", entry, exc))
        rules.append(_CompiledRule(rule, tuple(tests), tuple(outputs)))
    return _Plan(table, tuple(inputs), tuple(rules))


def _cell(text: str, decision: Decision, rule: Rule | None, column: str, source: str) -> _Cell:
    where = f"decision {decision.id}" + (f" rule {rule.id}" if rule else "") + f" {column}"
    compiled = compile_expression(text, mode="eval", origin=where)
    return _Cell(compiled=compiled, text=source, rule=rule, column=column, names=_names(text))


def _names(text: str) -> tuple[str, ...]:
    """Variables an expression reads; names only ever called (``date``, ``Decimal``) are the
    sandbox's functions, not data."""
    tree = ast.parse(text, mode="eval")
    called = {id(n.func) for n in ast.walk(tree) if isinstance(n, ast.Call)}
    found = {n.id for n in ast.walk(tree) if isinstance(n, ast.Name) and id(n) not in called}
    return tuple(sorted(found))


def _cell_error(decision: Decision, rule: Rule, what: str, text: str, exc: Exception) -> DmnError:
    return DmnError(
        f"decision {decision.id!r}, rule {rule.id!r}: {what} {text!r}: {_reason(exc)}",
        rule.id,
        rule.line,
    )


def _column_name(column: Input, n: int) -> str:
    return f"input {column.label or column.id or n!s}"


def _reason(exc: Exception) -> str:
    if isinstance(exc, ExpressionError):
        return exc.message
    return str(exc) or type(exc).__name__


# --------------------------------------------------------------------------- evaluating


def evaluate(decision: Decision, data: Mapping[str, Any], *, origin: str = "") -> DecisionResult:
    """Evaluate one decision table against ``data`` (DMN 1.3 hit policy semantics).

    Raises ``DmnError`` for a cell that cannot be compiled, an expression that fails on this
    data, a UNIQUE table with several matches, an ANY table whose matches disagree, and a
    PRIORITY/OUTPUT ORDER output value missing from the output's list. ``origin`` (e.g. the
    process and task) prefixes every message.
    """
    prefix = f"{origin}: " if origin else ""
    try:
        plan = _plan(decision)
    except DmnError as exc:
        raise DmnError(prefix + exc.message, exc.element_id, exc.line) from None
    table = plan.table
    policy = table.hit_policy

    variables = _Variables(data)
    values = [
        (column.input_variable, _run(cell, variables, decision, prefix))
        for column, cell in zip(table.inputs, plan.inputs, strict=True)
    ]

    matches: list[_CompiledRule] = []
    for compiled_rule in plan.rules:
        if _matches(compiled_rule, values, variables, decision, prefix):
            matches.append(compiled_rule)
            if policy == "FIRST":
                break

    if policy == "UNIQUE" and len(matches) > 1:
        ids = ", ".join(repr(m.rule.id) for m in matches)
        raise DmnError(
            f"{prefix}decision {decision.id!r} has hit policy UNIQUE but rules {ids} all "
            "match; make the rules exclusive or choose another hit policy",
            matches[0].rule.id,
            matches[1].rule.line,
        )

    outputs = [_outputs(m, decision, variables, prefix) for m in matches]
    chosen = list(zip(matches, outputs, strict=True))

    if policy == "ANY" and len(chosen) > 1:
        first = chosen[0][1]
        differing = [m.rule.id for m, o in chosen[1:] if o != first]
        if differing:
            ids = ", ".join(repr(m.rule.id) for m, _ in chosen)
            raise DmnError(
                f"{prefix}decision {decision.id!r} has hit policy ANY but the matching rules "
                f"{ids} give different outputs",
                differing[0],
                None,
            )
        chosen = chosen[:1]
    elif policy == "PRIORITY" and chosen:
        ranks = [_rank(table, m, o, decision, prefix) for m, o in chosen]
        best = min(range(len(chosen)), key=lambda i: ranks[i])
        chosen = [chosen[best]]
    elif policy == "OUTPUT ORDER":
        ranks = [_rank(table, m, o, decision, prefix) for m, o in chosen]
        order = sorted(range(len(chosen)), key=lambda i: ranks[i])
        chosen = [chosen[i] for i in order]

    matched = tuple(m.rule.id for m, _ in chosen)
    rows = [o for _, o in chosen]
    shaped = [_shape(table, row) for row in rows]
    if table.aggregation is not None:
        result = _aggregate(table.aggregation, shaped, decision, prefix)
    elif policy in _LIST_POLICIES:
        result = shaped
    else:
        result = shaped[0] if shaped else None
    return DecisionResult(decision_id=decision.id, matched=matched, result=result, outputs=rows)


def evaluate_graph(
    decisions: Mapping[str, Decision],
    decision_id: str,
    data: Mapping[str, Any],
    *,
    origin: str = "",
) -> DecisionResult:
    """Evaluate ``decision_id`` after the decisions it requires (each once).

    A required decision's result is visible to the decision requiring it under the required
    decision's id (Camunda), its name when that is a plain name (DMN), and its output names
    (how Camunda's examples read them: ``desiredDish``); these shadow ``data``. Only direct
    requirements are visible, as in DMN. A cycle or an unknown decision is a ``DmnError``.
    """
    prefix = f"{origin}: " if origin else ""
    done: dict[str, DecisionResult] = {}

    def visit(current: str, path: tuple[str, ...]) -> DecisionResult:
        if current in done:
            return done[current]
        if current in path:
            cycle = " -> ".join([*path[path.index(current) :], current])
            raise DmnError(f"{prefix}decisions require each other in a cycle: {cycle}", current)
        if len(path) >= _MAX_GRAPH_DEPTH:
            raise DmnError(
                f"{prefix}decision {current!r} is more than {_MAX_GRAPH_DEPTH} requirements deep",
                current,
            )
        decision = decisions.get(current)
        if decision is None:
            needed_by = f" (required by {path[-1]!r})" if path else ""
            raise DmnError(f"{prefix}no decision {current!r}{needed_by}", current)
        scope: dict[str, Any] = {}
        for required in decision.requires:
            result = visit(required, (*path, current))
            scope.update(_bindings(decisions[required], result))
        result = evaluate(decision, {**data, **scope} if scope else data, origin=origin)
        done[current] = result
        return result

    return visit(decision_id, ())


def _bindings(decision: Decision, result: DecisionResult) -> dict[str, Any]:
    bound: dict[str, Any] = {}
    table = decision.table
    if table is not None:
        names = [o.name for o in table.outputs if o.name]
        if table.aggregation is not None or table.hit_policy not in _LIST_POLICIES:
            if len(table.outputs) == 1 and names:
                bound[names[0]] = result.result
            elif isinstance(result.result, dict):
                bound.update({n: result.result.get(n) for n in names})
            elif result.result is None:
                bound.update(dict.fromkeys(names))
        else:
            for n in names:
                bound[n] = [row.get(n) for row in result.outputs]
    if decision.name.isidentifier():
        bound[decision.name] = result.result
    bound[decision.id] = result.result
    return bound


class _Variables:
    """The data one evaluation reads, handed to each cell as a small dict of just the names
    it uses. Floats become ``Decimal`` on the way in (FEEL numbers are decimals), so that
    ``0.45`` in a cell and ``0.45`` in the data are the same number; each value is converted
    once per evaluation."""

    def __init__(self, data: Mapping[str, Any]) -> None:
        self._data = data
        self._exact: dict[str, Any] = {}

    def scope(self, cell: _Cell, extra: tuple[str, Any] | None = None) -> dict[str, Any]:
        scope: dict[str, Any] = {}
        for name in cell.names:
            if extra is not None and name == extra[0]:
                continue
            if name not in self._exact:
                if name not in self._data:
                    continue  # the sandbox reports the unknown variable
                self._exact[name] = _exact(self._data[name])
            scope[name] = self._exact[name]
        if extra is not None:
            scope[extra[0]] = extra[1]
        return scope


def _exact(value: Any) -> Any:
    if isinstance(value, float):
        return Decimal(repr(value)) if math.isfinite(value) else value
    if isinstance(value, Mapping):
        return {k: _exact(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_exact(v) for v in value]
    return value


def _run(
    cell: _Cell,
    variables: _Variables,
    decision: Decision,
    prefix: str,
    extra: tuple[str, Any] | None = None,
) -> Any:
    try:
        return cell.compiled.evaluate(variables.scope(cell, extra))
    except ExpressionError as exc:
        rule = cell.rule
        where = f", rule {rule.id!r}" if rule else ""
        raise DmnError(
            f"{prefix}decision {decision.id!r}{where}: {cell.column} {cell.text!r} failed: "
            f"{exc.message}",
            rule.id if rule else decision.id,
            rule.line if rule else decision.line,
        ) from exc


def _matches(
    compiled_rule: _CompiledRule,
    values: Sequence[tuple[str, Any]],
    variables: _Variables,
    decision: Decision,
    prefix: str,
) -> bool:
    for cell, value in zip(compiled_rule.tests, values, strict=True):
        if cell is None:
            continue
        verdict = _run(cell, variables, decision, prefix, value)
        if not isinstance(verdict, bool):
            raise DmnError(
                f"{prefix}decision {decision.id!r}, rule {compiled_rule.rule.id!r}: "
                f"{cell.column} {cell.text!r} gave {verdict!r}, not true or false",
                compiled_rule.rule.id,
                compiled_rule.rule.line,
            )
        if not verdict:
            return False
    return True


def _outputs(
    compiled_rule: _CompiledRule, decision: Decision, variables: _Variables, prefix: str
) -> dict[str, Any]:
    table = decision.table
    assert table is not None
    row: dict[str, Any] = {}
    for out, cell in zip(table.outputs, compiled_rule.outputs, strict=True):
        key = out.name or decision.id
        row[key] = None if cell is None else _run(cell, variables, decision, prefix)
    return row


def _shape(table: DecisionTable, row: dict[str, Any]) -> Any:
    if len(table.outputs) == 1:
        return next(iter(row.values()))
    return dict(row)


def _rank(
    table: DecisionTable,
    compiled_rule: _CompiledRule,
    row: dict[str, Any],
    decision: Decision,
    prefix: str,
) -> tuple[int, ...]:
    """Position of each ranked output's value in its ``outputValues`` (0 = highest)."""
    ranks: list[int] = []
    for out, value in zip(table.outputs, row.values(), strict=True):
        if not out.allowed_values:
            continue
        for position, allowed in enumerate(out.allowed_values):
            if _same(value, allowed):
                ranks.append(position)
                break
        else:
            raise DmnError(
                f"{prefix}decision {decision.id!r}, rule {compiled_rule.rule.id!r}: output "
                f"{out.name or out.label or out.id!r} gave {value!r}, which is not in its "
                f"output values {list(out.allowed_values)!r} that hit policy "
                f"{table.hit_policy} ranks by",
                compiled_rule.rule.id,
                compiled_rule.rule.line,
            )
    return tuple(ranks)


def _same(value: Any, allowed: Any) -> bool:
    if isinstance(value, bool) or isinstance(allowed, bool):
        return value is allowed
    if isinstance(value, float) and isinstance(allowed, int | Decimal):
        return Decimal(repr(value)) == allowed
    return bool(value == allowed)


def _aggregate(aggregation: str, values: list[Any], decision: Decision, prefix: str) -> Any:
    """COLLECT with an aggregation. COUNT counts the matching rules; SUM, MIN and MAX skip
    empty (None) outputs, as Camunda does, and give None when nothing is left."""
    if aggregation == "COUNT":
        return len(values)
    present = [v for v in values if v is not None]
    if not present:
        return None
    try:
        if aggregation == "SUM":
            if any(
                isinstance(v, bool) or not isinstance(v, int | float | Decimal) for v in present
            ):
                raise TypeError("SUM needs numbers")
            return sum(present[1:], start=present[0])
        return min(present) if aggregation == "MIN" else max(present)
    except TypeError as exc:
        raise DmnError(
            f"{prefix}decision {decision.id!r}: cannot aggregate {aggregation} over "
            f"{present!r}: {exc}",
            decision.id,
            decision.line,
        ) from None
