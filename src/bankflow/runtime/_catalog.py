"""Runnable definitions, built once per process and kept in memory.

Instances store no spec; whoever loads one gets the spec from here, keyed by definition
id. Decisions and called processes resolve to their latest deployed versions when the
definition is first loaded in this process, as Camunda's default ("latest") binding does.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from datetime import datetime, timedelta

import isodate
from lxml import etree

from bankflow.definitions._references import called_processes, decision_refs
from bankflow.definitions._source import SourceFile, parse
from bankflow.errors import DefinitionError, NotFound
from bankflow.models import ElementInfo
from bankflow.persistence import Database, DefinitionStore
from bankflow.persistence._definitions import definition_source, latest_process_source
from bankflow.runtime._spiff import Runnable, build_runnable

__all__ = ["Catalog", "LoadedDefinition", "resolve"]

DEFAULT_PRIORITY = 50


@dataclass(frozen=True)
class LoadedDefinition:
    id: str
    key: str
    version: int
    runnable: Runnable
    elements: dict[str, ElementInfo]


class Catalog:
    def __init__(self, db: Database) -> None:
        self._db = db
        self._store = DefinitionStore()
        self._loaded: dict[str, LoadedDefinition] = {}
        self._lock = threading.Lock()

    def get(self, definition_id: str) -> LoadedDefinition:
        found = self._loaded.get(definition_id)
        if found is None:
            with self._lock:
                found = self._loaded.get(definition_id)
                if found is None:
                    found = self._load(definition_id)
                    self._loaded[definition_id] = found
        return found

    def _load(self, definition_id: str) -> LoadedDefinition:
        with self._db.transaction() as session:
            own = definition_source(session, definition_id)
            if own is None:
                raise NotFound(
                    f"no process definition {definition_id}", kind="definition", key=definition_id
                )
            key, name, content = own
            definition = self._store.get_process_by_id(session, definition_id)
            assert definition is not None
            sources: list[tuple[str, bytes, str]] = [(name, content, "bpmn")]
            seen_processes: set[str] = {key}
            seen_decisions: set[str] = set()
            called_definitions: list[str] = []
            pending = [content]
            while pending:
                root = _root(pending.pop())
                for decision in sorted(decision_refs(root) - seen_decisions):
                    seen_decisions.add(decision)
                    found = self._store.decision_source(session, decision)
                    if found is not None:
                        sources.append((found[0], found[1], "dmn"))
                for called in sorted(called_processes(root) - seen_processes):
                    seen_processes.add(called)
                    latest = latest_process_source(session, called)
                    if latest is not None:
                        sources.append((latest[1], latest[2], "bpmn"))
                        pending.append(latest[2])
                        called_definitions.append(latest[0])
            # A user task of a called process runs in this instance: its lane, candidates
            # and form come from the called process's elements (the process's own win).
            elements = {
                e.element_id: e
                for called_id in reversed(called_definitions)
                for e in self._store.elements(session, called_id)
            }
            elements.update({e.element_id: e for e in self._store.elements(session, definition_id)})
        try:
            runnable = build_runnable(key, _unique(sources))
        except Exception as exc:
            raise DefinitionError(
                f"process {key!r} version {definition.version} can no longer be built from "
                f"its stored source: {type(exc).__name__}: {exc}"
            ) from exc
        return LoadedDefinition(
            id=definition_id,
            key=key,
            version=definition.version,
            runnable=runnable,
            elements=elements,
        )


def _unique(sources: list[tuple[str, bytes, str]]) -> list[tuple[str, bytes, str]]:
    seen: set[bytes] = set()
    result = []
    for source in sources:
        if source[1] not in seen:
            seen.add(source[1])
            result.append(source)
    return result


def _root(content: bytes) -> etree._Element:
    root = parse(SourceFile(display="(stored)", name="stored.bpmn", content=content))
    if not isinstance(root, etree._Element):
        raise DefinitionError(f"a stored definition no longer parses: {root.message}")
    return root


# -- task attributes --------------------------------------------------------------------


def resolve(expression: str | None, data: dict[str, object]) -> object:
    """``${name}`` takes the value of ``name`` from task data; anything else is literal.
    (Full expressions arrive with the sandboxed expression language.)"""
    if expression is None:
        return None
    text = expression.strip()
    if text[:2] in ("${", "#{") and text.endswith("}"):
        return data.get(text[2:-1].strip())
    return text


def names(expression: str | None, data: dict[str, object]) -> list[str]:
    value = resolve(expression, data)
    if value is None:
        return []
    if isinstance(value, str):
        return [v.strip() for v in value.split(",") if v.strip()]
    if isinstance(value, list | tuple):
        return [str(v) for v in value]
    return [str(value)]


def due_at(expression: str | None, data: dict[str, object], now: datetime) -> datetime | None:
    """``camunda:dueDate``: an ISO-8601 duration from now, or a date-time."""
    value = resolve(expression, data)
    if value is None or value == "":
        return None
    if isinstance(value, datetime):
        return value
    text = str(value)
    try:
        if text.startswith("P"):
            duration = isodate.parse_duration(text)
            if isinstance(duration, timedelta):
                return now + duration
            return (now + duration).astimezone(now.tzinfo)  # type: ignore[no-any-return]
        parsed = isodate.parse_datetime(text)
    except (isodate.ISO8601Error, ValueError):
        return None
    result: datetime = parsed if parsed.tzinfo else parsed.replace(tzinfo=now.tzinfo)
    return result


def priority(expression: str | None, data: dict[str, object]) -> int:
    value = resolve(expression, data)
    try:
        return int(str(value)) if value is not None else DEFAULT_PRIORITY
    except ValueError:
        return DEFAULT_PRIORITY
