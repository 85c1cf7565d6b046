"""Everything ``validate`` and ``deploy`` learn about a set of files, before storage.

Building a bundle touches no database: what it needs from earlier deployments (decisions
that business rule tasks call, processes that call activities name) comes through a
``Deployed`` lookup, so the same code serves ``validate`` and ``deploy``.

Files are read first, each within ``Limits.max_file_elements`` and all of them within
``Limits.max_deployment_elements``: every later pass (lint, XSD, rewrites, SpiffWorkflow's
build) costs per element, so a file or a deployment past its limit is refused before any
of them runs.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from lxml import etree

from bankflow._limits import DEFAULT_LIMITS, Limits
from bankflow._text import shorten
from bankflow.definitions._bpmn import BPMN, CAMUNDA, q
from bankflow.definitions._compat import rewrite
from bankflow.definitions._form_rules import form_rule_problems
from bankflow.definitions._lint import lint_bpmn
from bankflow.definitions._metadata import extract_elements
from bankflow.definitions._parser import SourceDoc, build, check_schema, service_name
from bankflow.definitions._references import decision_refs
from bankflow.definitions._source import SourceFile, collect, parse, read
from bankflow.models import Diagnostic, ElementInfo, Severity

__all__ = ["Bundle", "Deployed", "prepare"]


class Deployed(Protocol):
    """What a bundle may ask about definitions already in the database."""

    def decision_source(self, key: str) -> tuple[str, bytes] | None: ...

    def process_keys(self, keys: Sequence[str]) -> set[str]: ...


class NothingDeployed:
    def decision_source(self, key: str) -> tuple[str, bytes] | None:
        return None

    def process_keys(self, keys: Sequence[str]) -> set[str]:
        return set()


@dataclass(frozen=True)
class ProcessEntry:
    key: str
    name: str | None
    file: SourceFile
    elements: tuple[ElementInfo, ...]


@dataclass(frozen=True)
class DecisionEntry:
    key: str
    name: str | None
    file: SourceFile


@dataclass
class Bundle:
    files: list[SourceFile] = field(default_factory=list)
    processes: dict[str, ProcessEntry] = field(default_factory=dict)
    decisions: dict[str, DecisionEntry] = field(default_factory=dict)
    diagnostics: list[Diagnostic] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not any(d.severity == Severity.ERROR for d in self.diagnostics)

    def sorted_diagnostics(self) -> tuple[Diagnostic, ...]:
        severity_rank = {Severity.ERROR: 0, Severity.WARNING: 1}
        return tuple(
            sorted(
                self.diagnostics,
                key=lambda d: (d.file, severity_rank[d.severity], d.line or 0, d.rule),
            )
        )


def prepare(
    paths: Sequence[Path],
    *,
    deployed: Deployed | None = None,
    progress: Callable[[str], None] | None = None,
    services: frozenset[str] | None = None,
    limits: Limits = DEFAULT_LIMITS,
) -> Bundle:
    """Read, check and build every file; collect every problem instead of stopping at the
    first, so an analyst fixes a file in one round (past the deployment's element limit
    the files are not checked further: that is the one problem reported)."""
    lookup = deployed or NothingDeployed()
    bundle = Bundle()
    files, problems = collect(list(paths))
    bundle.files = files
    bundle.diagnostics += problems
    if any(d.rule == "deployment-too-large" for d in problems):
        return bundle
    roots = _read_within_limits(files, limits, bundle, progress)
    if roots is None:
        return bundle
    bpmn_docs: list[tuple[SourceFile, SourceDoc]] = []
    dmn_docs: list[tuple[SourceFile, SourceDoc]] = []
    process_elements: dict[str, tuple[ElementInfo, ...]] = {}
    for source, root in roots:
        duplicates = _duplicate_element_ids(root, source.display)
        bundle.diagnostics += duplicates
        doc = SourceDoc(name=source.display, root=root)
        if source.kind == "dmn":
            dmn_docs.append((source, doc))
            continue
        bundle.diagnostics += lint_bpmn(root, file=source.display)
        bundle.diagnostics += form_rule_problems(root, file=source.display)
        if services is not None:
            bundle.diagnostics += _unhandled_services(root, source.display, services)
        for process in root.iter(q("process")):
            pid = process.get("id")
            if pid and process.get("isExecutable", "true").strip() == "true":
                process_elements[pid] = tuple(extract_elements(root, process_id=pid))
        bundle.diagnostics += _without_reported_ids(
            check_schema(root, file=source.display), duplicates
        )
        bundle.diagnostics += rewrite(root, file=source.display)
        bpmn_docs.append((source, doc))
    _check_duplicate_ids(bpmn_docs, dmn_docs, bundle)
    if not bundle.ok:
        return bundle
    extra = _deployed_decisions(bpmn_docs, dmn_docs, lookup, bundle)
    outcome = build([d for _, d in bpmn_docs], [d for _, d in dmn_docs], extra_dmn=extra)
    bundle.diagnostics += outcome.diagnostics
    by_display = {s.display: s for s, _ in [*bpmn_docs, *dmn_docs]}
    for key, display in outcome.processes.items():
        bundle.processes[key] = ProcessEntry(
            key=key,
            name=outcome.process_names.get(key),
            file=by_display[display],
            elements=process_elements.get(key, ()),
        )
    for key, display in outcome.decisions.items():
        bundle.decisions[key] = DecisionEntry(
            key=key, name=outcome.decision_names.get(key), file=by_display[display]
        )
    _check_calls(outcome.calls, bpmn_docs, bundle, lookup)
    for source, doc in bpmn_docs:
        executable = [p for p in bundle.processes.values() if p.file is source]
        if not executable and not any(
            d.file == source.display and d.severity == Severity.ERROR for d in bundle.diagnostics
        ):
            bundle.diagnostics.append(
                Diagnostic(
                    file=source.display,
                    line=doc.root.sourceline,
                    rule="no-executable-process",
                    message="no process is marked isExecutable: nothing in this file is "
                    "deployed or can be started",
                    severity=Severity.WARNING,
                )
            )
    return bundle


def _read_within_limits(
    files: list[SourceFile],
    limits: Limits,
    bundle: Bundle,
    progress: Callable[[str], None] | None,
) -> list[tuple[SourceFile, etree._Element]] | None:
    """Parse each file, building at most ``max_file_elements`` elements of it and at most
    ``max_deployment_elements`` in all; ``None`` when the deployment is past its limit
    (then nothing else is worth checking)."""
    roots: list[tuple[SourceFile, etree._Element]] = []
    total = 0
    for number, source in enumerate(files):
        if progress is not None:
            progress(source.display)
        left = limits.max_deployment_elements - total
        reading = read(source, budget=min(limits.max_file_elements, left))
        total += reading.elements
        if reading.over_budget_at is None:
            if isinstance(reading.result, Diagnostic):
                bundle.diagnostics.append(reading.result)
            else:
                roots.append((source, reading.result))
            continue
        if left >= limits.max_file_elements:
            bundle.diagnostics.append(
                _too_large(
                    source,
                    reading.over_budget_at,
                    f"the file has more than {limits.max_file_elements:,} XML elements "
                    "(diagram shapes and edges included)",
                    "split it into several files (a call activity runs another process), "
                    "or raise the limit: Engine(limits=Limits(max_file_elements=...))",
                )
            )
            continue
        unread = len(files) - number - 1
        bundle.diagnostics.append(
            _too_large(
                source,
                reading.over_budget_at,
                f"the files of this deployment hold more than "
                f"{limits.max_deployment_elements:,} XML elements in all"
                + (f" ({unread} file(s) after this one were not read)" if unread else ""),
                "deploy them in several deployments, or raise the limit: "
                "Engine(limits=Limits(max_deployment_elements=...))",
                rule="deployment-too-large",
            )
        )
        return None
    return roots


def _too_large(
    source: SourceFile, line: int, what: str, remedy: str, *, rule: str = "file-too-large"
) -> Diagnostic:
    return Diagnostic(
        file=source.display,
        line=line,
        rule=rule,
        message=f"{what}; the limit is reached at this line and nothing more is checked: {remedy}",
    )


def _duplicate_element_ids(root: etree._Element, file: str) -> list[Diagnostic]:
    """Two elements of the BPMN (or DMN) model with one id: SpiffWorkflow indexes elements
    by id, so it would use one of them wherever the other is meant. Exact copies (the same
    element written twice, as some modellers do with data objects) can be mixed up
    harmlessly and only warn. Diagram (DI) and vendor elements are not looked at."""
    model = etree.QName(root).namespace or BPMN
    first: dict[str, etree._Element] = {}
    found: list[Diagnostic] = []
    for element in root.iter(f"{{{model}}}*"):
        element_id = element.get("id")
        if not element_id:
            continue
        earlier = first.setdefault(element_id, element)
        if earlier is element:
            continue
        kind = etree.QName(element).localname
        quoted = shorten(element_id, 100)
        if _same_element(earlier, element):
            severity = Severity.WARNING
            message = (
                f"this {kind} is an exact copy of the one at line {earlier.sourceline} "
                f'(id "{quoted}"); bankflow uses one of them: delete the copy'
            )
        else:
            severity = Severity.ERROR
            message = (
                f'the id "{quoted}" is already used by the {etree.QName(earlier).localname} '
                f"at line {earlier.sourceline}; SpiffWorkflow would use one element where "
                "the other is meant: give each element an id of its own"
            )
        found.append(
            Diagnostic(
                file=file,
                line=element.sourceline,
                element_id=element_id,
                rule="duplicate-id",
                message=message,
                severity=severity,
            )
        )
    return found


def _same_element(first: etree._Element, second: etree._Element) -> bool:
    return bool(etree.tostring(first, with_tail=False) == etree.tostring(second, with_tail=False))


def _without_reported_ids(
    schema: list[Diagnostic], duplicates: list[Diagnostic]
) -> list[Diagnostic]:
    """The XSD reports a repeated id as an invalid ``xs:ID`` at the repeat's line;
    ``duplicate-id`` already said so in words."""
    reported: dict[int | None, list[str]] = {}
    for d in duplicates:
        reported.setdefault(d.line, []).append(
            f"'{d.element_id}' is not a valid value of the atomic type 'xs:ID'"
        )
    return [
        d
        for d in schema
        if not (d.rule == "xsd" and any(m in d.message for m in reported.get(d.line, ())))
    ]


def _check_duplicate_ids(
    bpmn_docs: list[tuple[SourceFile, SourceDoc]],
    dmn_docs: list[tuple[SourceFile, SourceDoc]],
    bundle: Bundle,
) -> None:
    """Two processes (or decisions) with one id would silently replace each other."""
    for docs, tag in ((bpmn_docs, q("process")), (dmn_docs, None)):
        seen: dict[str, str] = {}
        for source, doc in docs:
            elements = (
                doc.root.iter(tag)
                if tag is not None
                else (e for e in doc.root.iter() if etree.QName(e).localname == "decision")
            )
            for element in elements:
                element_id = element.get("id")
                if not element_id:
                    continue
                if element_id in seen and seen[element_id] != source.display:
                    bundle.diagnostics.append(
                        Diagnostic(
                            file=source.display,
                            line=element.sourceline,
                            element_id=element_id,
                            rule="duplicate-id",
                            message=f'"{element_id}" is also defined in {seen[element_id]}; '
                            "one deployment cannot hold two definitions with one id",
                        )
                    )
                seen.setdefault(element_id, source.display)


def _deployed_decisions(
    bpmn_docs: list[tuple[SourceFile, SourceDoc]],
    dmn_docs: list[tuple[SourceFile, SourceDoc]],
    lookup: Deployed,
    bundle: Bundle,
) -> list[SourceDoc]:
    """DMN files deployed earlier that this bundle's business rule tasks call."""
    local = {
        e.get("id")
        for _, doc in dmn_docs
        for e in doc.root.iter()
        if isinstance(e.tag, str) and etree.QName(e).localname == "decision"
    }
    wanted = {ref for _, doc in bpmn_docs for ref in decision_refs(doc.root)} - local
    extra = []
    for key in sorted(wanted):
        found = lookup.decision_source(key)
        if found is None:
            continue
        name, content = found
        root = parse(SourceFile(display=f"(deployed) {name}", name=name, content=content))
        if isinstance(root, Diagnostic):
            bundle.diagnostics.append(root)
            continue
        extra.append(SourceDoc(name=f"(deployed) {name}", root=root))
    return extra


def _check_calls(
    calls: list[tuple[str, str, str]],
    bpmn_docs: list[tuple[SourceFile, SourceDoc]],
    bundle: Bundle,
    lookup: Deployed,
) -> None:
    """A called process may be deployed later, as in Camunda: warn, resolve at run time."""
    missing = [c for c in calls if c[2] not in bundle.processes]
    known = lookup.process_keys([c[2] for c in missing])
    lines = {doc.name: doc.lines for _, doc in bpmn_docs}
    for file, element_id, called in missing:
        if called in known:
            continue
        close = difflib.get_close_matches(called, sorted(bundle.processes), n=1, cutoff=0.6)
        hint = f'; did you mean "{close[0]}" (in this deployment)?' if close else ""
        bundle.diagnostics.append(
            Diagnostic(
                file=file,
                line=lines.get(file, {}).get(element_id),
                element_id=element_id,
                rule="call-activity-target",
                message=f'calls process "{called}", which is not deployed yet; it is looked '
                f"up when an instance reaches this step{hint}",
                severity=Severity.WARNING,
            )
        )


def _unhandled_services(root: etree._Element, file: str, known: frozenset[str]) -> list[Diagnostic]:
    """A service task with no handler in this engine waits for an external worker; one
    drawn as an external task (``camunda:type="external"`` with a topic) is meant to."""
    found = []
    for task in [*root.iter(q("serviceTask")), *root.iter(q("businessRuleTask"))]:
        if task.tag == q("businessRuleTask") and decision_refs(task):
            continue
        if task.get(q("type", CAMUNDA)) == "external" and task.get(q("topic", CAMUNDA)):
            continue
        name = service_name(task) or task.get("id", "")
        if name not in known:
            found.append(
                Diagnostic(
                    file=file,
                    line=task.sourceline,
                    element_id=task.get("id"),
                    rule="service-handler",
                    message=f'no handler is registered for service "{name}": the task waits '
                    "for an external worker",
                    severity=Severity.WARNING,
                )
            )
    return found
