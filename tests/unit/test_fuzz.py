"""Fuzzing where text from outside enters bankflow: BPMN/DMN files, expressions, the CLI.

Each target gets random bytes, random text shaped like its input (XML elements with BPMN
names, Python-like expressions, JSON) and mutations of real inputs (the files in
``processes/``). Every example must end in a well-formed result or a ``BankflowError`` (for
the CLI's parsers: a usage error; for the CLI as a whole: an exit code of 0, 1 or 2 with one
error line and never "internal error"). Any other exception is a bug, and hypothesis prints
the input that raised it.

Nothing may hang: each example runs under a generous alarm (``BUDGET_SECONDS``, a check,
not an assertion on speed), and a hang inside C code, where the alarm cannot interrupt, is
ended by ``faulthandler`` with every thread's stack. ``BANKFLOW_FUZZ_SCALE=10`` runs ten
times as many examples (the default keeps the file well under a minute on two cores).
"""

from __future__ import annotations

import contextlib
import copy
import faulthandler
import io
import json
import os
import signal
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from types import FrameType
from typing import Any, TypeVar
from xml.sax.saxutils import escape, quoteattr

import pytest
import typer
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from lxml import etree

from bankflow import Engine
from bankflow.cli import main
from bankflow.cli._common import _parse_data
from bankflow.errors import BankflowError, InvalidData
from bankflow.language import ExpressionError, compile_expression, evaluate_graph, parse_dmn
from bankflow.models import Diagnostic, ValidationReport
from bankflow.runtime._data import check_data

REPO = Path(__file__).resolve().parents[2]
PROCESSES = REPO / "processes"
BUDGET_SECONDS = 10.0
SCALE = max(1, int(os.environ.get("BANKFLOW_FUZZ_SCALE", "1")))

T = TypeVar("T")


def fuzz(examples: int) -> Callable[[T], T]:
    return settings(  # type: ignore[return-value]
        max_examples=examples * SCALE,
        deadline=None,
        database=None,  # no .hypothesis/ directory in the shared checkout
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )


class Hang(BaseException):
    """Raised by the alarm; a BaseException so no ``except Exception`` in the code under
    test can turn it into an ordinary error."""


@contextlib.contextmanager
def budget(seconds: float = BUDGET_SECONDS) -> Iterator[None]:
    def expire(_signum: int, _frame: FrameType | None) -> None:
        raise Hang(f"still running after {seconds} s")

    previous = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    faulthandler.dump_traceback_later(seconds * 3, exit=True)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
        faulthandler.cancel_dump_traceback_later()


# -- (a) BPMN and DMN files ------------------------------------------------------------------

NS = {
    "bpmn": "http://www.omg.org/spec/BPMN/20100524/MODEL",
    "camunda": "http://camunda.org/schema/1.0/bpmn",
    "xsi": "http://www.w3.org/2001/XMLSchema-instance",
    "zeebe": "http://camunda.org/schema/zeebe/1.0",
}
TAGS = [
    "process", "startEvent", "endEvent", "userTask", "serviceTask", "scriptTask", "task",
    "businessRuleTask", "callActivity", "subProcess", "sequenceFlow", "exclusiveGateway",
    "parallelGateway", "inclusiveGateway", "eventBasedGateway", "boundaryEvent",
    "intermediateCatchEvent", "intermediateThrowEvent", "timerEventDefinition",
    "messageEventDefinition", "errorEventDefinition", "signalEventDefinition",
    "conditionExpression", "timeDuration", "timeCycle", "timeDate", "script", "laneSet",
    "lane", "flowNodeRef", "message", "error", "signal", "multiInstanceLoopCharacteristics",
    "loopCardinality", "completionCondition", "extensionElements", "dataObject", "incoming",
    "outgoing", "documentation", "standardLoopCharacteristics", "dataStoreReference",
]  # fmt: skip
ATTRIBUTES = [
    "id", "name", "sourceRef", "targetRef", "isExecutable", "attachedToRef", "cancelActivity",
    "messageRef", "errorRef", "errorCode", "default", "calledElement", "scriptFormat",
    "isSequential", "processRef", "camunda:candidateGroups", "camunda:candidateUsers",
    "camunda:assignee", "camunda:topic", "camunda:type", "camunda:asyncBefore",
    "camunda:dueDate", "camunda:decisionRef", "camunda:collection",
    "camunda:elementVariable", "camunda:class", "camunda:delegateExpression",
    "camunda:formKey", "xsi:type",
]  # fmt: skip
IDS = ["start", "task", "review", "end", "gw", "f1", "f2", "f3", "p1", "msg", "err", "sub", "t1"]
INTERESTING = [
    "", " ", "true", "false", "PT1H", "PT0S", "PT-1S", "R3/PT10M", "R/PT1S", "R-1/PT1H",
    "P1000000Y", "P99999999999999999999D", "2024-01-01T00:00:00Z", "9999-12-31T23:59:59Z",
    "${x > 1}", "#{amount > 1000}", "${execution.getVariable('x')}", "amount > 1000",
    "x ** x ** x", "[1] * 10**9", "().__class__.__base__", "__import__('os')",
    "bpmn:tFormalExpression", "bpmn:tTimerEventDefinition", "1" * 200, "\u202e\u0000",
]  # fmt: skip

_values = st.one_of(
    st.sampled_from(IDS),
    st.sampled_from(INTERESTING),
    st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=40),
)
_attribute = st.tuples(st.sampled_from(ATTRIBUTES), _values)


def _element(children: list[str] | str, tag: str, attributes: list[tuple[str, str]]) -> str:
    seen: dict[str, str] = {}
    for key, value in attributes:
        seen.setdefault(key, value)
    attrs = "".join(f" {k}={quoteattr(v)}" for k, v in seen.items())
    body = children if isinstance(children, str) else "".join(children)
    return f"<bpmn:{tag}{attrs}>{body}</bpmn:{tag}>"


_leaf = st.builds(
    _element,
    _values.map(escape),
    st.sampled_from(TAGS),
    st.lists(_attribute, max_size=4),
)
_tree = st.recursive(
    _leaf,
    lambda inner: st.builds(
        _element,
        st.lists(inner, max_size=5),
        st.sampled_from(TAGS),
        st.lists(_attribute, max_size=4),
    ),
    max_leaves=25,
)


def _document(children: list[str]) -> bytes:
    namespaces = " ".join(f'xmlns:{p}="{u}"' for p, u in NS.items())
    return (
        f'<?xml version="1.0" encoding="UTF-8"?>\n<bpmn:definitions {namespaces} '
        f'id="defs" targetNamespace="http://bank.example/fuzz">'
        f'<bpmn:process id="fuzzed" isExecutable="true">{"".join(children)}</bpmn:process>'
        "</bpmn:definitions>"
    ).encode("utf-8", "surrogatepass")


REAL_FILES = [*sorted(p.name for p in PROCESSES.glob("*.bpmn")), "loan_precheck.dmn"]
ORIGINALS = {name: (PROCESSES / name).read_bytes() for name in REAL_FILES}


@pytest.fixture(scope="module")
def engine(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Engine]:
    eng = Engine(f"sqlite:///{tmp_path_factory.mktemp('fuzz') / 'fuzz.db'}")
    try:
        yield eng
    finally:
        eng.close()


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("fuzz-files")


def _beside_the_decision(workdir: Path, name: str) -> Path:
    """Where to write a damaged copy of ``name``: a directory that also holds the intact
    decision loan_approval calls, so an undamaged call gets as far as the build."""
    folder = workdir / "with-decision"
    folder.mkdir(exist_ok=True)
    if name != "loan_precheck.dmn":
        (folder / "loan_precheck.dmn").write_bytes(ORIGINALS["loan_precheck.dmn"])
    for stale in folder.iterdir():
        if stale.name not in (name, "loan_precheck.dmn"):
            stale.unlink()
    return folder / name


def validate(engine: Engine, file: Path, content: bytes) -> ValidationReport | None:
    """Validate ``content`` as ``file`` (and the other files of its directory under
    ``with-decision``): a well-formed report, or a BankflowError."""
    file.write_bytes(content)
    target = file.parent if file.parent.name == "with-decision" else file
    try:
        with budget():
            report = engine.definitions.validate(target)
    except BankflowError:
        return None
    assert isinstance(report, ValidationReport)
    assert str(file) in report.files or not report.ok
    for diagnostic in report.diagnostics:
        assert isinstance(diagnostic, Diagnostic)
        assert diagnostic.file
        assert diagnostic.message
        assert diagnostic.format()
    return report


@fuzz(100)
@given(content=st.binary(max_size=4096))
@example(content=b"")
@example(content=b"\xef\xbb\xbf<?xml version='1.0' encoding='latin-1'?><a/>")
def test_validate_random_bytes(engine: Engine, workdir: Path, content: bytes) -> None:
    validate(engine, workdir / "random.bpmn", content)


@fuzz(100)
@given(tail=st.binary(max_size=2048))
def test_validate_bytes_after_a_bpmn_prolog(engine: Engine, workdir: Path, tail: bytes) -> None:
    head = _document([])[: -len(b"</bpmn:process></bpmn:definitions>")]
    validate(engine, workdir / "prolog.bpmn", head + tail)


@fuzz(150)
@given(children=st.lists(_tree, max_size=6))
def test_validate_xml_shaped_like_bpmn(engine: Engine, workdir: Path, children: list[str]) -> None:
    validate(engine, workdir / "shaped.bpmn", _document(children))


MUTATIONS = [
    "delete", "duplicate", "move", "rename", "drop-attr", "set-attr", "text", "same-id",
    "expression", "expression",
]  # fmt: skip
EXPRESSION_TAGS = {
    "conditionExpression", "timeDuration", "timeCycle", "timeDate", "script",
    "loopCardinality", "completionCondition", "inputEntry", "outputEntry", "text",
}  # fmt: skip


def _qualified(name: str) -> str:
    prefix, _, local = name.rpartition(":")
    return f"{{{NS[prefix]}}}{local}" if prefix else local


def _mutate(root: etree._Element, data: st.DataObject) -> None:
    """One random edit: delete, duplicate, move, rename an element; drop or set an
    attribute; replace text (any, or an expression where the engine compiles one); give
    an element another element's id."""
    elements = [e for e in root.iter() if isinstance(e.tag, str)]
    carriers = [e for e in elements if etree.QName(e).localname in EXPRESSION_TAGS]
    target = data.draw(st.sampled_from(elements), label="element")
    parent = target.getparent()
    op = data.draw(st.sampled_from(MUTATIONS), label="op")
    if op == "delete" and parent is not None:
        parent.remove(target)
    elif op == "duplicate" and parent is not None:
        parent.insert(parent.index(target) + 1, copy.deepcopy(target))
    elif op == "move" and parent is not None:
        destination = data.draw(st.sampled_from(elements), label="to")
        if target not in destination.iterancestors() and destination is not target:
            destination.append(target)
    elif op == "rename":
        namespace = etree.QName(target).namespace
        local = data.draw(st.sampled_from(TAGS), label="tag")
        target.tag = f"{{{namespace}}}{local}" if namespace else local
    elif op == "drop-attr" and target.attrib:
        del target.attrib[data.draw(st.sampled_from(sorted(target.attrib)), label="attr")]
    elif op == "set-attr":
        names = sorted(target.attrib) + [_qualified(a) for a in ATTRIBUTES]
        name = data.draw(st.sampled_from(names), label="attr")
        with contextlib.suppress(ValueError):  # lxml refuses text XML cannot hold
            target.set(name, data.draw(_values, label="value"))
    elif op == "text":
        with contextlib.suppress(ValueError):
            target.text = data.draw(_values, label="text")
    elif op == "expression" and carriers:
        carrier = data.draw(st.sampled_from(carriers), label="carrier")
        text = data.draw(st.one_of(_expression, st.sampled_from(INTERESTING)), label="expression")
        with contextlib.suppress(ValueError):
            carrier.text = text
    elif op == "same-id":
        other = data.draw(st.sampled_from(elements), label="other")
        if other.get("id") is not None:
            target.set("id", other.get("id") or "")


@fuzz(200)
@given(data=st.data())
def test_validate_mutated_real_files(engine: Engine, workdir: Path, data: st.DataObject) -> None:
    name = data.draw(st.sampled_from(REAL_FILES), label="file")
    root = etree.fromstring(ORIGINALS[name])
    for _ in range(data.draw(st.integers(1, 6), label="edits")):
        _mutate(root, data)
    content = etree.tostring(root, xml_declaration=True, encoding="UTF-8")
    validate(engine, _beside_the_decision(workdir, name), content)


@fuzz(100)
@given(data=st.data())
def test_validate_byte_damaged_real_files(
    engine: Engine, workdir: Path, data: st.DataObject
) -> None:
    name = data.draw(st.sampled_from(REAL_FILES), label="file")
    content = bytearray(ORIGINALS[name])
    for _ in range(data.draw(st.integers(1, 5), label="edits")):
        at = data.draw(st.integers(0, len(content)), label="at")
        size = data.draw(st.integers(0, 64), label="size")
        op = data.draw(st.sampled_from(["flip", "delete", "insert", "repeat"]), label="op")
        if op == "flip" and at < len(content):
            content[at] ^= data.draw(st.integers(1, 255), label="bits")
        elif op == "delete":
            del content[at : at + size]
        elif op == "insert":
            content[at:at] = data.draw(st.binary(max_size=size), label="bytes")
        elif op == "repeat":
            content[at:at] = content[at : at + size] * data.draw(st.integers(1, 50), label="n")
    validate(engine, _beside_the_decision(workdir, name), bytes(content))


# -- (b) expressions -----------------------------------------------------------------------

NOW = datetime(2024, 6, 1, 12, 0, tzinfo=UTC)
DATA: dict[str, Any] = {
    "x": 3,
    "y": Decimal("2.5"),
    "s": "abc",
    "items": [1, 2, 3],
    "d": {"a": 1, "b": {"c": "z"}},
    "amount": Decimal("8000.00"),
    "flag": True,
    "none": None,
    "when": NOW,
    "big": 10**50,
}
NAMES = ["x", "y", "s", "items", "d", "amount", "flag", "none", "when", "big", "missing"]
FUNCTION_NAMES = [
    "len", "min", "max", "sum", "abs", "round", "int", "float", "str", "bool", "Decimal",
    "date", "datetime", "today", "now", "days", "hours", "minutes",
    "eval", "open", "getattr", "type", "__import__", "print", "range", "sorted",
]  # fmt: skip
BINARY = ["+", "-", "*", "/", "//", "%", "**", "==", "!=", "<", "<=", ">", ">=", "and", "or"]
BINARY += ["in", "not in", "is", "is not", "&", "|", "^", "<<", ">>", "@"]

_atom = st.one_of(
    st.sampled_from(NAMES),
    st.sampled_from(["d.a", "d.b.c", "d.b.missing", "x.real", "s.upper", "_x", "__class__"]),
    st.integers(-(10**6), 10**6).map(str),
    st.sampled_from(["10**100", "9" * 120, "1e308", "1e-320", "0.1", "-0", "0x10", "1_000"]),
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
    st.text(max_size=10).map(repr),
    st.sampled_from(["True", "False", "None", "...", "[]", "{}", "()", "''"]),
)


def _combine(inner: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    pair = st.tuples(inner, inner)
    return st.one_of(
        st.tuples(inner, st.sampled_from(BINARY), inner).map(lambda t: f"({t[0]} {t[1]} {t[2]})"),
        st.tuples(st.sampled_from(["-", "+", "not ", "~"]), inner).map("".join),
        st.tuples(inner, inner, inner).map(lambda t: f"({t[0]} if {t[1]} else {t[2]})"),
        st.tuples(st.sampled_from(FUNCTION_NAMES), st.lists(inner, max_size=3)).map(
            lambda t: f"{t[0]}({', '.join(t[1])})"
        ),
        pair.map(lambda t: f"{t[0]}[{t[1]}]"),
        st.tuples(inner, inner, inner).map(lambda t: f"{t[0]}[{t[1]}:{t[2]}]"),
        st.lists(inner, max_size=4).map(lambda items: f"[{', '.join(items)}]"),
        st.lists(inner, max_size=3).map(lambda items: f"({', '.join(items)},)"),
        pair.map(lambda t: f"{{{t[0]}: {t[1]}}}"),
        inner.map(lambda e: f"{e}.__class__"),
        inner.map(lambda e: f"[v for v in {e}]"),
        inner.map(lambda e: f"(lambda: {e})()"),
        inner.map(lambda e: f"f'{{{e}}}'"),
        inner.map(lambda e: f"(z := {e})"),
        inner.map(lambda e: f"max(*{e})"),
    )


_expression = st.recursive(_atom, _combine, max_leaves=12)
_statement = st.one_of(
    st.tuples(st.sampled_from([*NAMES, "out", "d.a", "_x"]), _expression).map(
        lambda t: f"{t[0]} = {t[1]}"
    ),
    st.tuples(st.sampled_from(["x", "out"]), st.sampled_from(["+=", "*=", "-="]), _expression).map(
        " ".join
    ),
    st.tuples(_expression, _expression).map(lambda t: f"d[{t[0]}] = {t[1]}"),
    st.tuples(_expression, _expression, _expression).map(
        lambda t: f"if {t[0]}:\n    out = {t[1]}\nelse:\n    out = {t[2]}"
    ),
    st.sampled_from(["pass", "del x", "import os", "while True:\n    pass", "raise ValueError"]),
)
_script = st.lists(_statement, min_size=1, max_size=5).map("\n".join)


def run_expression(text: str, mode: str) -> None:
    """Compile and run ``text`` on a copy of DATA: only ExpressionError (a BankflowError)
    may escape, and the caller's data is never changed."""
    data = copy.deepcopy(DATA)
    with budget():
        try:
            compiled = compile_expression(text, mode=mode)  # type: ignore[arg-type]
        except BankflowError:
            return
        try:
            if mode == "eval":
                compiled.evaluate(data, now=lambda: NOW)
            else:
                result = compiled.execute(data, now=lambda: NOW)
                assert isinstance(result, dict)
        except BankflowError:
            pass
    assert data == DATA, "running an expression changed the caller's data"


@fuzz(300)
@given(text=st.text(max_size=200), mode=st.sampled_from(["eval", "exec"]))
@example(text="(" * 10_000, mode="eval")
@example(text="x" * 20_000, mode="exec")
def test_expressions_from_random_text(text: str, mode: str) -> None:
    run_expression(text, mode)


def test_expression_with_a_lone_surrogate() -> None:
    """Found by this fuzzer: a lone surrogate reached ``ast.parse`` as a raw
    UnicodeEncodeError; it is refused like any other text the language cannot read."""
    run_expression("\ud800", "eval")
    with pytest.raises(ExpressionError, match="lone surrogate"):
        compile_expression("x = '\udfff'", mode="exec")


@fuzz(400)
@given(text=_expression)
@example(text="9 ** 9 ** 9")
@example(text="[1] * 10**9")
@example(text="str(10 ** 4300)")
@example(text="Decimal('1e999999') * Decimal('1e999999')")
def test_expressions_shaped_like_python(text: str) -> None:
    run_expression(text, "eval")


@fuzz(250)
@given(text=_script)
def test_scripts_shaped_like_python(text: str) -> None:
    run_expression(text, "exec")


# -- decision tables: random cells and random data --------------------------------------------

_storable = st.recursive(
    st.one_of(
        st.none(),
        st.booleans(),
        st.integers(-(10**100) + 1, 10**100 - 1),
        st.decimals(allow_nan=False, allow_infinity=False, places=None),
        st.text(max_size=12),
        st.dates(),
    ),
    lambda inner: st.one_of(
        st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=5), inner, max_size=3)
    ),
    max_leaves=8,
)
_unary_tests = st.one_of(
    st.sampled_from(
        [
            "-", "<= 10000", "> 250000", "]10000..250000]", "[1..5)", "not(1, 2)", '"auto"',
            "null", "10, 20", "< risk_score", "[0..1e999]", "not(-)", ">= date(2024, 1, 1)",
        ]
    ),
    _expression,
    st.text(max_size=30),
)  # fmt: skip


@fuzz(200)
@given(data=st.data())
def test_decision_tables(data: st.DataObject) -> None:
    """The real decision table, with random cells swapped in, on random storable data:
    a result or a DmnError (a BankflowError)."""
    root = etree.fromstring(ORIGINALS["loan_precheck.dmn"])
    cells = [
        e for e in root.iter() if isinstance(e.tag, str) and etree.QName(e).localname == "text"
    ]
    for _ in range(data.draw(st.integers(0, 3), label="edits")):
        cell = data.draw(st.sampled_from(cells), label="cell")
        with contextlib.suppress(ValueError):  # text XML cannot hold
            cell.text = data.draw(_unary_tests, label="cell text")
    values = data.draw(
        st.fixed_dictionaries({"amount": _storable, "risk_score": _storable}), label="data"
    )
    with budget():
        try:
            decisions = {d.id: d for d in parse_dmn(root)}
            evaluate_graph(decisions, "loan_precheck", values)
        except BankflowError:
            pass


# -- (c) the CLI: --data and whole command lines ---------------------------------------------

_json_number = st.one_of(
    st.integers().map(str),
    st.sampled_from(["1" * 101, "1" * 5000, "-" + "9" * 4400, "1e999999", "1E-999999"]),
    st.sampled_from(["0." + "1" * 150, "NaN", "Infinity", "-Infinity", "1.5", "-0.0", "2e2"]),
    st.decimals(allow_nan=False, allow_infinity=False).map(str),
)
_json_string = st.one_of(
    st.text(max_size=20).map(json.dumps),
    st.sampled_from(['"\\ud800"', '"\\udc00x"', '"\\u0000"', '"a\\nb"', '"\\ud83d\\ude00"']),
)
_json = st.recursive(
    st.one_of(_json_number, _json_string, st.sampled_from(["true", "false", "null"])),
    lambda inner: st.one_of(
        st.lists(inner, max_size=4).map(lambda items: f"[{', '.join(items)}]"),
        st.lists(st.tuples(_json_string, inner), max_size=4).map(
            lambda pairs: "{" + ", ".join(f"{k}: {v}" for k, v in pairs) + "}"
        ),
    ),
    max_leaves=15,
)


def parse_data(value: str) -> None:
    """``--data``: a dict, or a usage error; what it accepts the engine checks with only
    InvalidData."""
    with budget():
        try:
            parsed = _parse_data(value)
        except typer.BadParameter as exc:
            message = str(exc.message)
        else:
            assert isinstance(parsed, dict)
            with contextlib.suppress(InvalidData):
                check_data(parsed)
            return
    assert message.startswith("--data"), message


@fuzz(300)
@given(text=st.one_of(st.text(max_size=200), _json, _json.map(lambda j: '{"v": ' + j + "}")))
@example(text="[" * 100_000)
@example(text='{"a": ' * 5000 + "1" + "}" * 5000)
@example(text='{"a": 1e400}')
def test_cli_data_text(text: str) -> None:
    parse_data(text)


@fuzz(100)
@given(
    content=st.one_of(
        st.binary(max_size=512), _json.map(lambda j: j.encode("utf-8", "surrogatepass"))
    )
)
def test_cli_data_file(tmp_path_factory: pytest.TempPathFactory, content: bytes) -> None:
    file = tmp_path_factory.getbasetemp() / "fuzz-data.json"
    file.write_bytes(content)
    parse_data(f"@{file}")


ARGV_WORDS = [
    "tasks", "instances", "jobs", "incidents", "definitions", "show", "history", "start",
    "claim", "complete", "message", "retry", "decide", "validate", "external", "fetch",
    "extend", "fail", "db", "--limit", "--offset", "--json", "--user", "--group", "--groups",
    "--business-key", "--data", "--correlation", "--version", "--status", "--kind", "--now",
    "--seconds", "--worker-id", "--max", "--lock-seconds", "--retries", "--retry-seconds",
    "--actor", "--process", "--instance", "--all", "--help", "-q", "--",
]  # fmt: skip
ARGV_VALUES = [
    "0", "-1", "10000", "10001", "9223372036854775808", "1" * 5000, "nan", "inf", "-inf",
    "1e308", "0x10", "", " ", "{}", '{"a": 1}', '{"a": NaN}', "[1]", "@/dev/null",
    "@/nonexistent", "loan_approval", "complaint_handling", "risk", "anna", "\udcff",
    "\udced\udca0\udc80", "a\nb", "\x1b[31m", "00000000-0000-0000-0000-000000000000",
    "2024-01-01T00:00:00", "9999-12-31", "ready", "running", "timer",
    str(PROCESSES / "loan_precheck.dmn"), str(PROCESSES / "complaint_handling.bpmn"),
]  # fmt: skip


@fuzz(120)
@given(
    argv=st.lists(st.one_of(st.sampled_from(ARGV_WORDS), st.sampled_from(ARGV_VALUES)), max_size=7)
)
@example(argv=["tasks", "--limit", "9223372036854775808"])
@example(argv=["start", "\udcff"])
def test_cli_command_lines(tmp_path_factory: pytest.TempPathFactory, argv: list[str]) -> None:
    """Random command lines: exit 0, 1 or 2; a failure is one error line, never an
    internal error. (``worker`` is left out: without --once it runs until stopped.)"""
    db = f"sqlite:///{tmp_path_factory.getbasetemp() / 'fuzz-cli.db'}"
    stdout, stderr = io.StringIO(), io.StringIO()
    with budget(), contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
        code = main(["--db", db, *argv])
    errors = stderr.getvalue()
    assert code in (0, 1, 2), (code, errors)
    assert "internal error" not in errors, errors
    assert "Traceback" not in errors, errors
    if code != 0 and errors.startswith("error: "):
        assert len(errors.splitlines()) == 1, errors
