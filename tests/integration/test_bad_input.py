"""Bad input is a clear error naming the file, on SQLite and PostgreSQL; nothing is stored.

Every case goes through ``engine.definitions.deploy`` (which must raise ``DefinitionError``
with an error diagnostic naming the offending file and rule, and leave every definition
table empty) and through ``engine.definitions.validate`` (which must never raise).
"""

from __future__ import annotations

import resource
import socket
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.pool import NullPool

import bankflow.definitions._bundle as bundle_module
from bankflow import DefinitionError, Engine, Severity
from bankflow.definitions._source import SourceFile
from bankflow.models import Diagnostic

DEFINITION_TABLES = (
    "bf_deployment",
    "bf_resource",
    "bf_process_definition",
    "bf_decision_definition",
    "bf_element",
)
TASK = '<bpmn:userTask id="review" name="Review" camunda:candidateGroups="risk"/>'


def bpmn(process_id: str = "loan", task: str = TASK, *, prolog: str = "") -> str:
    """A small valid BPMN: start -> ``task`` (id ``review``) -> end; ``prolog`` goes
    between the XML declaration and the root element (a DOCTYPE)."""
    return f"""<?xml version="1.0" encoding="UTF-8"?>
{prolog}
<bpmn:definitions xmlns:bpmn="http://www.omg.org/spec/BPMN/20100524/MODEL"
    xmlns:camunda="http://camunda.org/schema/1.0/bpmn"
    id="defs_{process_id}" targetNamespace="http://bank.example/bpmn">
  <bpmn:process id="{process_id}" name="Loan" isExecutable="true">
    <bpmn:startEvent id="start" name="Received"/>
    {task}
    <bpmn:endEvent id="end" name="Done"/>
    <bpmn:sequenceFlow id="f1" sourceRef="start" targetRef="review"/>
    <bpmn:sequenceFlow id="f2" sourceRef="review" targetRef="end"/>
  </bpmn:process>
</bpmn:definitions>
"""


def with_documentation(text: str) -> str:
    return TASK.replace("/>", f"><bpmn:documentation>{text}</bpmn:documentation></bpmn:userTask>")


BILLION_LAUGHS = (
    "<!DOCTYPE lolz [\n"
    + "".join(f'  <!ENTITY lol{i} "{(f"&lol{i - 1};" if i else "lol") * 10}">\n' for i in range(10))
    + "]>"
)


def external_entity(url: str) -> str:
    return f'<!DOCTYPE x [<!ENTITY xxe SYSTEM "{url}">]>'


DMN_DOC = """<?xml version="1.0" encoding="UTF-8"?>
<definitions xmlns="https://www.omg.org/spec/DMN/20191111/MODEL/" id="d" name="D"
    namespace="http://bank.example/dmn">
  <decision id="precheck" name="Pre-check"><literalExpression><text>1</text></literalExpression>
  </decision>
</definitions>
"""
HTML_PAGE = "<!DOCTYPE html>\n<html><head><title>Sign in</title></head><body></body></html>\n"


def write(path: Path, text: str, encoding: str = "utf-8") -> Path:
    path.write_text(text, encoding=encoding)
    return path


def write_padded(path: Path, size: int) -> Path:
    """A valid small BPMN padded with an XML comment to ``size`` bytes in all."""
    head, tail = bpmn().encode() + b"<!--", b"-->\n"
    padding = size - len(head) - len(tail)
    with path.open("wb") as handle:
        handle.write(head)
        for start in range(0, padding, 1_000_000):
            handle.write(b"x" * min(1_000_000, padding - start))
        handle.write(tail)
    assert path.stat().st_size == size
    return path


@dataclass(frozen=True)
class Case:
    """``paths`` to deploy together, the file the error must name, and its rule."""

    paths: tuple[Path, ...]
    offending: Path
    rule: str


def _malformed(tmp: Path) -> Case:
    file = write(tmp / "malformed.bpmn", bpmn(task=TASK.replace("/>", ">")))
    return Case((file,), file, "xml")


def _missing(tmp: Path) -> Case:
    return Case((tmp / "nowhere" / "loan.bpmn",), tmp / "nowhere" / "loan.bpmn", "file")


def _empty_directory(tmp: Path) -> Case:
    folder = tmp / "procedures"
    folder.mkdir()
    write(folder / "README.txt", "the diagrams are elsewhere")
    write(folder / "loan.xml", bpmn())  # BPMN content, but not a definition file's name
    return Case((folder,), folder, "file")


def _too_large(tmp: Path) -> Case:
    file = write_padded(tmp / "huge.bpmn", 50_000_000)
    return Case((file,), file, "file")


def _billion_laughs(tmp: Path) -> Case:
    file = write(tmp / "lol.bpmn", bpmn(task=with_documentation("&lol9;"), prolog=BILLION_LAUGHS))
    return Case((file,), file, "xml")


def _xxe(tmp: Path) -> Case:
    text = bpmn(task=with_documentation("&xxe;"), prolog=external_entity("file:///etc/passwd"))
    file = write(tmp / "xxe.bpmn", text)
    return Case((file,), file, "xml")


def _network_entity(tmp: Path) -> Case:
    text = bpmn(task=with_documentation("&xxe;"), prolog=external_entity("http://127.0.0.1:9/x"))
    file = write(tmp / "net.bpmn", text)
    return Case((file,), file, "xml")


def _missing_decision(tmp: Path) -> Case:
    task = '<bpmn:businessRuleTask id="review" camunda:decisionRef="missing_decision"/>'
    file = write(tmp / "rules.bpmn", bpmn(task=task))
    return Case((file,), file, "decision-ref")


def _duplicate_process(tmp: Path) -> Case:
    first = write(tmp / "a_loan.bpmn", bpmn("loan"))
    second = write(tmp / "b_loan.bpmn", bpmn("loan").replace('name="Loan"', 'name="Loan B"'))
    return Case((first, second), second, "duplicate-id")


def _valid_with_broken(tmp: Path) -> Case:
    valid = write(tmp / "valid.bpmn", bpmn("loan"))
    broken = write(tmp / "broken.bpmn", bpmn("other")[:-40])  # cut off mid-document
    return Case((valid, broken), broken, "xml")


def _dmn_named_bpmn(tmp: Path) -> Case:
    file = write(tmp / "decision.bpmn", DMN_DOC)
    return Case((file,), file, "xml")


def _html_named_bpmn(tmp: Path) -> Case:
    file = write(tmp / "login.bpmn", HTML_PAGE)
    return Case((file,), file, "xml")


CASES: dict[str, Callable[[Path], Case]] = {
    "malformed-xml": _malformed,
    "missing-path": _missing,
    "directory-without-definitions": _empty_directory,
    "50-mb-file": _too_large,
    "billion-laughs": _billion_laughs,
    "xxe-file": _xxe,
    "external-network-entity": _network_entity,
    "missing-decision": _missing_decision,
    "duplicate-process-id": _duplicate_process,
    "valid-with-broken": _valid_with_broken,
    "dmn-root-in-bpmn-file": _dmn_named_bpmn,
    "html-page-in-bpmn-file": _html_named_bpmn,
}


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


def assert_nothing_stored(engine: Engine) -> None:
    assert engine.definitions.list() == []
    assert engine.definitions.decisions() == []
    assert row_counts(engine.url) == dict.fromkeys(DEFINITION_TABLES, 0)


def refused(engine: Engine, *paths: Path) -> DefinitionError:
    with pytest.raises(DefinitionError) as raised:
        engine.definitions.deploy(*paths)
    return raised.value


def errors_for(diagnostics: tuple[Diagnostic, ...], file: Path) -> list[Diagnostic]:
    return [d for d in diagnostics if d.severity == Severity.ERROR and d.file == str(file)]


@pytest.fixture
def parsed(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The display names of the files handed to the XML parser, in order."""
    seen: list[str] = []
    real = bundle_module.read

    def spy(source: SourceFile, **options: Any) -> Any:
        seen.append(source.display)
        return real(source, **options)

    monkeypatch.setattr(bundle_module, "read", spy)
    return seen


@pytest.mark.parametrize("build", CASES.values(), ids=CASES.keys())
def test_deploy_refuses_naming_the_file_and_stores_nothing(
    engine: Engine, tmp_path: Path, build: Callable[[Path], Case]
) -> None:
    case = build(tmp_path)
    error = refused(engine, *case.paths)
    rules = [d.rule for d in errors_for(error.diagnostics, case.offending)]
    assert case.rule in rules, error.diagnostics
    assert str(case.offending) in str(error).splitlines()[0]
    assert_nothing_stored(engine)


@pytest.mark.parametrize("build", CASES.values(), ids=CASES.keys())
def test_validate_reports_instead_of_raising(
    engine: Engine, tmp_path: Path, build: Callable[[Path], Case]
) -> None:
    case = build(tmp_path)
    report = engine.definitions.validate(*case.paths)
    assert report.ok is False
    assert case.rule in [d.rule for d in errors_for(report.errors, case.offending)]
    assert_nothing_stored(engine)


def test_malformed_xml_points_at_a_line(engine: Engine, tmp_path: Path) -> None:
    case = _malformed(tmp_path)
    [error] = errors_for(refused(engine, *case.paths).diagnostics, case.offending)
    text = case.offending.read_text()
    # The unclosed <bpmn:userTask> is noticed where </bpmn:process> closes its parent.
    closing_line = text[: text.index("</bpmn:process>")].count("\n") + 1
    assert (error.rule, error.line) == ("xml", closing_line)
    assert error.message.startswith("not well-formed XML: ")
    assert "userTask" in error.message


def test_missing_path_and_empty_directory_say_why(engine: Engine, tmp_path: Path) -> None:
    missing, empty = _missing(tmp_path), _empty_directory(tmp_path)
    error = refused(engine, missing.offending, empty.offending)
    [gone] = errors_for(error.diagnostics, missing.offending)
    [nothing] = errors_for(error.diagnostics, empty.offending)
    assert (gone.rule, gone.message) == ("file", "no such file or directory")
    assert nothing.rule == "file"
    assert ".bpmn" in nothing.message
    assert len(error.diagnostics) == 2  # loan.xml and README.txt are not looked at


def test_oversized_file_is_refused_before_parsing(
    engine: Engine, tmp_path: Path, parsed: list[str]
) -> None:
    case = _too_large(tmp_path)
    started = time.monotonic()
    error = refused(engine, *case.paths)
    elapsed = time.monotonic() - started
    [diagnostic] = errors_for(error.diagnostics, case.offending)
    assert diagnostic.rule == "file"
    assert "50.0 MB" in diagnostic.message
    assert parsed == []
    assert elapsed < 2.0
    report = engine.definitions.validate(*case.paths)
    assert [d.rule for d in report.errors] == ["file"]
    assert parsed == []


@pytest.mark.parametrize("encoding", ["utf-8", "utf-16"])
def test_billion_laughs_is_refused_quickly_and_in_little_memory(
    engine: Engine, tmp_path: Path, encoding: str
) -> None:
    """UTF-16 hides the DOCTYPE from a byte search: the parser's own limits must hold."""
    text = bpmn(task=with_documentation("&lol9;"), prolog=BILLION_LAUGHS)
    if encoding == "utf-16":
        text = text.replace('encoding="UTF-8"', 'encoding="UTF-16"')
    file = write(tmp_path / "lol.bpmn", text, encoding)
    peak_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
    started = time.monotonic()
    error = refused(engine, file)
    report = engine.definitions.validate(file)
    elapsed = time.monotonic() - started
    grown_mb = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - peak_before) / 1024
    assert [d.rule for d in errors_for(error.diagnostics, file)] == ["xml"]
    assert [d.rule for d in report.errors] == ["xml"]
    assert "lol" * 10 not in str(error)
    assert elapsed < 5.0
    assert grown_mb < 100  # fully expanded, &lol9; is 3 GB
    assert_nothing_stored(engine)


def _secret_file(tmp_path: Path) -> tuple[Path, str]:
    token = "TOP-SECRET-7f3c2a91"
    return write(tmp_path / "secret.txt", f"{token}\n"), token


@pytest.mark.parametrize("encoding", ["utf-8", "utf-16"])
@pytest.mark.parametrize("target", ["/etc/passwd", "secret"])
def test_xxe_is_refused_and_leaks_nothing(
    engine: Engine, tmp_path: Path, target: str, encoding: str
) -> None:
    if target == "secret":
        secret, leak = _secret_file(tmp_path)
    else:
        secret = Path(target)
        if not secret.is_file():
            pytest.skip("no /etc/passwd on this system")
        leak = next(line for line in secret.read_text().splitlines() if ":" in line)
    text = bpmn(task=with_documentation("&xxe;"), prolog=external_entity(secret.as_uri()))
    if encoding == "utf-16":
        text = text.replace('encoding="UTF-8"', 'encoding="UTF-16"')
    file = write(tmp_path / "xxe.bpmn", text, encoding)
    error = refused(engine, file)
    report = engine.definitions.validate(file)
    assert [d.rule for d in errors_for(error.diagnostics, file)] == ["xml"]
    assert [d.rule for d in report.errors] == ["xml"]
    everything = [str(error), *(d.model_dump_json() for d in error.diagnostics)]
    everything += [d.model_dump_json() for d in report.diagnostics]
    assert not [text for text in everything if leak in text]
    assert_nothing_stored(engine)


@pytest.fixture
def listener() -> Iterator[socket.socket]:
    """A TCP server on 127.0.0.1 that nothing should ever connect to."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(8)
    server.settimeout(0.2)
    yield server
    server.close()


@pytest.mark.parametrize("encoding", ["utf-8", "utf-16"])
def test_network_entity_is_refused_without_connecting(
    engine: Engine, tmp_path: Path, listener: socket.socket, encoding: str
) -> None:
    port = listener.getsockname()[1]
    prolog = external_entity(f"http://127.0.0.1:{port}/x")
    text = bpmn(task=with_documentation("&xxe;"), prolog=prolog)
    if encoding == "utf-16":
        text = text.replace('encoding="UTF-8"', 'encoding="UTF-16"')
    file = write(tmp_path / "net.bpmn", text, encoding)
    error = refused(engine, file)
    assert not engine.definitions.validate(file).ok
    assert [d.rule for d in errors_for(error.diagnostics, file)] == ["xml"]
    with pytest.raises(TimeoutError):
        listener.accept()
    assert_nothing_stored(engine)


def test_missing_decision_names_the_task(engine: Engine, tmp_path: Path) -> None:
    case = _missing_decision(tmp_path)
    [error] = errors_for(refused(engine, *case.paths).diagnostics, case.offending)
    text = case.offending.read_text()
    assert (error.rule, error.element_id) == ("decision-ref", "review")
    assert error.line == text[: text.index('id="review"')].count("\n") + 1
    assert '"missing_decision"' in error.message
    [reported] = engine.definitions.validate(*case.paths).errors
    assert reported == error


def test_duplicate_process_id_names_both_files(engine: Engine, tmp_path: Path) -> None:
    case = _duplicate_process(tmp_path)
    first, second = case.paths
    [error] = errors_for(refused(engine, *case.paths).diagnostics, second)
    assert (error.rule, error.element_id) == ("duplicate-id", "loan")
    assert str(first) in error.message
    assert errors_for(engine.definitions.validate(*case.paths).errors, first) == []


def test_deploy_is_all_or_nothing_then_the_valid_file_deploys(
    engine: Engine, tmp_path: Path
) -> None:
    case = _valid_with_broken(tmp_path)
    valid, broken = case.paths
    error = refused(engine, valid, broken)
    assert errors_for(error.diagnostics, valid) == []
    assert [d.rule for d in errors_for(error.diagnostics, broken)] == ["xml"]
    assert_nothing_stored(engine)
    deployed = engine.definitions.deploy(valid)
    assert deployed.created
    assert [(p.key, p.version, p.resource_name) for p in deployed.processes] == [
        ("loan", 1, "valid.bpmn")
    ]
    counts = row_counts(engine.url)
    assert (counts["bf_deployment"], counts["bf_resource"]) == (1, 1)
    assert counts["bf_process_definition"] == 1


@pytest.mark.parametrize(
    ("build", "expected"),
    [(_dmn_named_bpmn, "'definitions'"), (_html_named_bpmn, "DOCTYPE")],
    ids=["dmn", "html"],
)
def test_wrong_document_in_a_bpmn_file(
    engine: Engine, tmp_path: Path, build: Callable[[Path], Case], expected: str
) -> None:
    case = build(tmp_path)
    [error] = errors_for(refused(engine, *case.paths).diagnostics, case.offending)
    assert error.rule == "xml"
    assert expected in error.message
    if expected == "'definitions'":
        assert "DMN" in error.message  # the namespace found
        assert "BPMN 2.0" in error.message  # what was expected


def test_size_message_is_consistent_with_the_limit(engine: Engine, tmp_path: Path) -> None:
    file = write_padded(tmp_path / "big.bpmn", 16_900_000)  # over the 16 MiB limit
    [error] = errors_for(refused(engine, file).diagnostics, file)
    assert error.rule == "file"
    size, limit = (float(part.split()[-2]) for part in error.message.split(";"))
    assert size > limit, error.message


def test_doctype_text_inside_cdata_is_not_a_declaration(engine: Engine, tmp_path: Path) -> None:
    note = "<![CDATA[The portal page starts with <!DOCTYPE html>.]]>"
    file = write(tmp_path / "portal.bpmn", bpmn(task=with_documentation(note)))
    deployed = engine.definitions.deploy(file)
    assert [(p.key, p.version) for p in deployed.processes] == [("loan", 1)]


def test_a_path_that_cannot_even_be_looked_at_is_one_diagnostic(engine: Engine) -> None:
    """Found by the fuzzer: a file name longer than the system allows raised OSError."""
    report = engine.definitions.validate(Path("a" * 300 + ".bpmn"))
    [diagnostic] = report.diagnostics
    assert (diagnostic.rule, diagnostic.severity) == ("file", "error")
    assert "cannot be read" in diagnostic.message
    assert len(diagnostic.file) <= 200
