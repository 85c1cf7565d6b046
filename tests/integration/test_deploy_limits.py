"""Deploy is bounded and says the truth, on SQLite and PostgreSQL.

A file past ``Limits.max_file_elements`` or a deployment past ``max_deployment_elements``
is refused before lint, XSD, rewrites and SpiffWorkflow's build; a DMN decision that does
not compile is an error that stores nothing; two elements with one id are an error; long
cells are cut in messages; ``bankflow deploy`` never says "nothing changed" about a
deployment that was refused or stored nothing.
"""

from __future__ import annotations

import itertools
import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.pool import NullPool

from bankflow import DefinitionError, Engine, Limits, Severity
from bankflow._limits import DEFAULT_LIMITS
from bankflow._text import shorten
from bankflow.definitions._source import MAX_ATTRIBUTES, SourceFile, read
from bankflow.models import Diagnostic

BANKFLOW = Path(sys.executable).with_name("bankflow")
DEFINITION_TABLES = (
    "bf_deployment",
    "bf_resource",
    "bf_process_definition",
    "bf_decision_definition",
    "bf_element",
)
HEAD = """<?xml version="1.0" encoding="UTF-8"?>
<bpmn:definitions xmlns:bpmn="http://www.omg.org/spec/BPMN/20100524/MODEL"
    xmlns:bpmndi="http://www.omg.org/spec/BPMN/20100524/DI"
    xmlns:dc="http://www.omg.org/spec/DD/20100524/DC"
    xmlns:di="http://www.omg.org/spec/DD/20100524/DI"
    xmlns:camunda="http://camunda.org/schema/1.0/bpmn"
    id="defs" targetNamespace="http://bank.example/bpmn">
"""


def bpmn(process_id: str, body: str, *, executable: bool = True) -> str:
    """start -> ``body`` -> end; ``body`` must connect ``start`` to ``end``."""
    flag = "true" if executable else "false"
    return (
        f'{HEAD}  <bpmn:process id="{process_id}" name="P" isExecutable="{flag}">\n'
        f'    <bpmn:startEvent id="start" name="Start"/>\n{body}\n'
        f'    <bpmn:endEvent id="end" name="End"/>\n  </bpmn:process>\n</bpmn:definitions>\n'
    )


def tasks(count: int) -> str:
    """``count`` user tasks in sequence between ``start`` and ``end``: 2 elements each
    (the task and its incoming flow) plus the last flow."""
    nodes = ["start", *(f"t{i}" for i in range(count)), "end"]
    lines = [
        f'    <bpmn:userTask id="t{i}" name="Step {i}" camunda:candidateGroups="ops"/>'
        for i in range(count)
    ]
    lines += [
        f'    <bpmn:sequenceFlow id="f{i}" sourceRef="{a}" targetRef="{b}"/>'
        for i, (a, b) in enumerate(itertools.pairwise(nodes))
    ]
    return "\n".join(lines)


def elements(text: str) -> int:
    """XML elements in a document written without comments, CDATA or processing
    instructions other than the declaration."""
    return text.count("<") - text.count("</") - 1


def camunda_chain(count: int) -> str:
    """``count`` script tasks in sequence with their diagram, as Camunda Modeler writes
    them: incoming/outgoing in each node, a shape with bounds per node, an edge with two
    waypoints per flow."""
    nodes = ["start", *(f"Task_{i}" for i in range(count)), "end"]
    flows = [(f"Flow_{i}", a, b) for i, (a, b) in enumerate(itertools.pairwise(nodes))]
    body = ['<bpmn:startEvent id="start"><bpmn:outgoing>Flow_0</bpmn:outgoing></bpmn:startEvent>']
    body += [
        f'<bpmn:scriptTask id="Task_{i}" name="Step {i}" scriptFormat="python">'
        f"<bpmn:incoming>Flow_{i}</bpmn:incoming><bpmn:outgoing>Flow_{i + 1}</bpmn:outgoing>"
        f"<bpmn:script>n = {i}</bpmn:script></bpmn:scriptTask>"
        for i in range(count)
    ]
    body.append(
        f'<bpmn:endEvent id="end"><bpmn:incoming>Flow_{count}</bpmn:incoming></bpmn:endEvent>'
    )
    body += [f'<bpmn:sequenceFlow id="{f}" sourceRef="{a}" targetRef="{b}"/>' for f, a, b in flows]
    shapes = [
        f'<bpmndi:BPMNShape id="{n}_di" bpmnElement="{n}">'
        f'<dc:Bounds x="{160 * i}" y="80" width="100" height="80"/></bpmndi:BPMNShape>'
        for i, n in enumerate(nodes)
    ]
    shapes += [
        f'<bpmndi:BPMNEdge id="{f}_di" bpmnElement="{f}"><di:waypoint x="{160 * i + 100}" '
        f'y="120"/><di:waypoint x="{160 * i + 160}" y="120"/></bpmndi:BPMNEdge>'
        for i, (f, _, _) in enumerate(flows)
    ]
    return (
        f'{HEAD}<bpmn:process id="chain" isExecutable="true">{"".join(body)}</bpmn:process>'
        '<bpmndi:BPMNDiagram id="d"><bpmndi:BPMNPlane id="p" bpmnElement="chain">'
        f"{''.join(shapes)}</bpmndi:BPMNPlane></bpmndi:BPMNDiagram></bpmn:definitions>\n"
    )


def dmn(output_cell: str, *, input_cell: str = "&lt; 1000") -> str:
    return f"""<?xml version="1.0" encoding="UTF-8"?>
<definitions xmlns="https://www.omg.org/spec/DMN/20191111/MODEL/" id="defs" name="D"
    namespace="http://bank.example/dmn">
  <decision id="precheck" name="Pre-check">
    <decisionTable id="table">
      <input id="in1" label="Amount"><inputExpression id="e1" typeRef="number">
        <text>amount</text></inputExpression></input>
      <output id="out1" name="auto" typeRef="boolean"/>
      <rule id="r1"><inputEntry id="ie1"><text>{input_cell}</text></inputEntry>
        <outputEntry id="oe1"><text>{output_cell}</text></outputEntry></rule>
    </decisionTable>
  </decision>
</definitions>
"""


RULE_TASK = """    <bpmn:businessRuleTask id="decide" name="Decide" camunda:decisionRef="precheck"/>
    <bpmn:sequenceFlow id="f1" sourceRef="start" targetRef="decide"/>
    <bpmn:sequenceFlow id="f2" sourceRef="decide" targetRef="end"/>"""


def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


EngineFactory = Callable[..., Engine]


@pytest.fixture
def open_engine(db_url: str) -> Iterator[EngineFactory]:
    """Engines on the test's database (with the limits asked for), closed afterwards."""
    opened: list[Engine] = []

    def make(limits: Limits | None = None) -> Engine:
        engine = Engine(db_url, migrate=True, limits=limits)
        opened.append(engine)
        return engine

    yield make
    for engine in opened:
        engine.close()


def row_counts(url: str) -> dict[str, int]:
    db = sa.create_engine(url, poolclass=NullPool)
    try:
        with db.connect() as conn:
            return {
                table: conn.execute(sa.text(f"SELECT COUNT(*) FROM {table}")).scalar_one()
                for table in DEFINITION_TABLES
            }
    finally:
        db.dispose()


def refused(engine: Engine, *paths: Path) -> tuple[Diagnostic, ...]:
    """Every diagnostic of a refused deploy, after checking that nothing was stored and
    that validate finds the same errors."""
    with pytest.raises(DefinitionError) as raised:
        engine.definitions.deploy(*paths)
    assert row_counts(engine.url) == dict.fromkeys(DEFINITION_TABLES, 0)
    report = engine.definitions.validate(*paths)
    assert report.errors == tuple(
        d for d in raised.value.diagnostics if d.severity == Severity.ERROR
    )
    return raised.value.diagnostics


# -- elements per file -------------------------------------------------------------------


def test_a_file_one_element_over_the_limit_is_refused_before_any_check(
    open_engine: EngineFactory, tmp_path: Path
) -> None:
    # The unnamed task would be a label-required warning: a refused file gets no check
    # at all, only the one refusal.
    text = bpmn("loan", tasks(10)).replace(' name="Step 3"', "")
    count = elements(text)
    file = write(tmp_path / "loan.bpmn", text)
    [diagnostic] = refused(open_engine(Limits(max_file_elements=count - 1)), file)
    assert (diagnostic.file, diagnostic.rule, diagnostic.severity) == (
        str(file),
        "file-too-large",
        Severity.ERROR,
    )
    last_element = '    <bpmn:endEvent id="end" name="End"/>'
    assert diagnostic.line == text.splitlines().index(last_element) + 1
    assert f"more than {count - 1:,} XML elements" in diagnostic.message
    assert "Engine(limits=Limits(max_file_elements=...))" in diagnostic.message

    at_limit = open_engine(Limits(max_file_elements=count)).definitions.deploy(file)
    assert at_limit.created
    assert "label-required" in {d.rule for d in at_limit.diagnostics}


def test_a_15_mb_file_stops_parsing_at_the_budget(tmp_path: Path) -> None:
    """lxml builds at most budget + 1 elements of it: the rest is never parsed."""
    text = bpmn("flat", "".join(f'<bpmn:task id="t{i}"/>\n' for i in range(600_000)))
    assert len(text) > 15_000_000
    reading = read(
        SourceFile(display="flat.bpmn", name="flat.bpmn", content=text.encode()),
        budget=DEFAULT_LIMITS.max_file_elements,
    )
    assert reading.elements == DEFAULT_LIMITS.max_file_elements + 1
    assert isinstance(reading.result, Diagnostic)
    assert reading.result.rule == "file-too-large"
    assert reading.over_budget_at is not None


def test_an_element_with_too_many_attributes_is_refused(
    open_engine: EngineFactory, tmp_path: Path
) -> None:
    wide = " ".join(f'a{i}="x"' for i in range(MAX_ATTRIBUTES + 1))
    text = bpmn("loan", tasks(1)).replace(
        '<bpmn:startEvent id="start"', f'<bpmn:startEvent {wide} id="start"'
    )
    file = write(tmp_path / "wide.bpmn", text)
    [diagnostic] = refused(open_engine(), file)
    assert (diagnostic.rule, diagnostic.element_id, diagnostic.line) == (
        "file-too-large",
        "start",
        9,
    )
    assert f"more than {MAX_ATTRIBUTES:,} attributes" in diagnostic.message


def test_the_default_takes_every_corpus_file_and_a_5000_task_chain(corpus_dir: Path) -> None:
    budget = DEFAULT_LIMITS.max_file_elements
    files = [p for p in corpus_dir.rglob("*") if p.name.endswith((".bpmn", ".bpmn20.xml", ".dmn"))]
    assert len(files) > 140
    for path in files:
        source = SourceFile(display=str(path), name=path.name, content=path.read_bytes())
        assert read(source, budget=budget).over_budget_at is None, path
    chain = camunda_chain(5_000)
    assert 50_000 <= elements(chain) <= budget
    source = SourceFile(display="chain.bpmn", name="chain.bpmn", content=chain.encode())
    reading = read(source, budget=budget)
    assert (reading.over_budget_at, reading.elements) == (None, elements(chain))


# -- elements per deployment -------------------------------------------------------------


def test_a_deployment_over_its_limit_is_refused_naming_the_file_that_passes_it(
    open_engine: EngineFactory, tmp_path: Path
) -> None:
    texts = {name: bpmn(name, tasks(10)) for name in ("a_first", "b_second", "c_third")}
    files = [write(tmp_path / f"{name}.bpmn", text) for name, text in texts.items()]
    each = elements(texts["a_first"])
    engine = open_engine(Limits(max_file_elements=each, max_deployment_elements=each + 5))
    [diagnostic] = refused(engine, tmp_path)
    assert (diagnostic.file, diagnostic.rule) == (str(files[1]), "deployment-too-large")
    # The 6th element of the second file: definitions, process, start event, t0, t1, t2.
    sixth = '    <bpmn:userTask id="t2" name="Step 2" camunda:candidateGroups="ops"/>'
    assert diagnostic.line == texts["b_second"].splitlines().index(sixth) + 1
    assert f"more than {each + 5:,} XML elements" in diagnostic.message
    assert "1 file(s) after this one were not read" in diagnostic.message
    assert "Engine(limits=Limits(max_deployment_elements=...))" in diagnostic.message
    # Each file alone is within both limits.
    assert engine.definitions.deploy(files[2]).created


# -- DMN ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("cell", "reason"),
    [
        ("__import__('os').system('true')", "not allowed"),
        ("amount &gt;&gt;&gt; 3", "does not parse"),
    ],
    ids=["refused-by-the-sandbox", "unparsable"],
)
def test_a_decision_that_does_not_compile_is_an_error_and_nothing_is_stored(
    open_engine: EngineFactory, tmp_path: Path, cell: str, reason: str
) -> None:
    rules = write(tmp_path / "precheck.dmn", dmn(cell))
    process = write(tmp_path / "loan.bpmn", bpmn("loan", RULE_TASK))
    diagnostics = refused(open_engine(), process, rules)
    errors = [d for d in diagnostics if d.severity == Severity.ERROR]
    assert [(d.file, d.rule, d.element_id) for d in errors] == [(str(rules), "dmn", "r1")]
    assert reason in errors[0].message


def test_a_huge_cell_is_cut_in_the_message(open_engine: EngineFactory, tmp_path: Path) -> None:
    cell = "__import__('os')." + "x" * 1_000_000
    rules = write(tmp_path / "precheck.dmn", dmn(cell))
    [error] = [d for d in refused(open_engine(), rules) if d.severity == Severity.ERROR]
    assert error.rule == "dmn"
    assert len(error.message) <= 200
    assert "__import__('os').xxx" in error.message
    assert " ... " in error.message
    assert error.message.endswith("the limit is 10,000")  # the reason survives the cut


def test_shorten_keeps_short_text_and_cuts_long_text_in_the_middle() -> None:
    assert shorten("amount  >\n 5") == "amount > 5"
    cut = shorten("start " + "x" * 10_000 + " the reason", limit=60)
    assert len(cut) <= 60
    assert cut.startswith("start xxx")
    assert cut.endswith("x the reason")
    assert " ... " in cut


# -- duplicate ids -----------------------------------------------------------------------


def test_two_elements_with_one_id_are_an_error(open_engine: EngineFactory, tmp_path: Path) -> None:
    body = (
        '    <bpmn:userTask id="review" name="Review" camunda:candidateGroups="risk"/>\n'
        '    <bpmn:userTask id="review" name="Approve" camunda:candidateGroups="credit"/>\n'
        '    <bpmn:sequenceFlow id="f1" sourceRef="start" targetRef="review"/>\n'
        '    <bpmn:sequenceFlow id="f2" sourceRef="review" targetRef="end"/>'
    )
    text = bpmn("loan", body)
    file = write(tmp_path / "loan.bpmn", text)
    diagnostics = refused(open_engine(), file)
    [error] = [d for d in diagnostics if d.severity == Severity.ERROR]
    second = text.splitlines().index(body.splitlines()[1]) + 1
    assert (error.file, error.line, error.element_id, error.rule) == (
        str(file),
        second,
        "review",
        "duplicate-id",
    )
    assert f"line {second - 1}" in error.message
    assert not [d for d in diagnostics if d.rule == "xsd" and "xs:ID" in d.message]


def test_an_exact_copy_of_an_element_only_warns(open_engine: EngineFactory, tmp_path: Path) -> None:
    """As SpiffArena writes data objects; either copy means the same."""
    body = (
        '    <bpmn:dataObject id="approved"/>\n    <bpmn:dataObject id="approved"/>\n'
        '    <bpmn:sequenceFlow id="f1" sourceRef="start" targetRef="end"/>'
    )
    file = write(tmp_path / "loan.bpmn", bpmn("loan", body))
    deployment = open_engine().definitions.deploy(file)
    assert deployment.created
    [warning] = [d for d in deployment.diagnostics if d.rule == "duplicate-id"]
    assert (warning.severity, warning.element_id) == (Severity.WARNING, "approved")


# -- what deploy says --------------------------------------------------------------------


def bankflow(db_url: str, *args: str | Path) -> subprocess.CompletedProcess[str]:
    environment = {k: v for k, v in os.environ.items() if k != "BANKFLOW_DATABASE_URL"}
    return subprocess.run(
        [str(BANKFLOW), "--db", db_url, *map(str, args)],
        env=environment,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_deploy_never_says_nothing_changed_when_it_refused_or_stored_nothing(
    db_url: str, open_engine: EngineFactory, tmp_path: Path
) -> None:
    open_engine()  # the schema
    notes = write(tmp_path / "notes.bpmn", bpmn("notes", tasks(1), executable=False))
    stored_nothing = bankflow(db_url, "deploy", "-q", notes)
    assert stored_nothing.returncode == 0, stored_nothing.stderr
    assert stored_nothing.stdout.strip().splitlines()[-1] == (
        "nothing deployed: these files hold no executable process and no decision table"
    )

    rules = write(tmp_path / "precheck.dmn", dmn("__import__('os')." + "x" * 100_000))
    refusal = bankflow(db_url, "deploy", rules)
    assert refusal.returncode == 1
    assert "nothing changed" not in refusal.stdout + refusal.stderr
    assert f"error: deployment refused: 1 error(s) in {rules}" in refusal.stderr
    assert max(len(line) for line in refusal.stderr.splitlines()) < 400
