"""Commands on process instances: start, show, instances, cancel."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import TYPE_CHECKING, Annotated

import typer
from rich.markup import escape

from bankflow.cli._common import (
    ActorOption,
    DataOption,
    JsonOption,
    LimitOption,
    OffsetOption,
    _dump,
    _engine,
    _full_id,
    _history_table,
    _known_process,
    _name,
    _parse_data,
    _print_instance,
    _table,
    _whole,
    out,
)
from bankflow.models import InstanceStatus

if TYPE_CHECKING:
    from rich.table import Table

    from bankflow.models import Wait

MAX_VERSION = 2_147_483_647  # a 32-bit integer column on PostgreSQL


def start(
    process_key: Annotated[str, typer.Argument(help="The process id (definition key).")],
    business_key: Annotated[str | None, typer.Option("--business-key")] = None,
    data: DataOption = None,
    version: Annotated[
        int | None, typer.Option(callback=_whole(1, MAX_VERSION), help="A specific version.")
    ] = None,
    user: Annotated[
        str | None, typer.Option("--user", callback=_name, help="Who starts it.")
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """Start an instance; prints its id."""
    with _engine() as engine:
        instance = engine.instances.start(
            process_key,
            business_key=business_key,
            data=_parse_data(data),
            version=version,
            user=user,
        )
    if as_json:
        _dump(instance)
    else:
        out.print(instance.id)
        if instance.status != InstanceStatus.RUNNING or instance.tasks:
            _print_instance(instance)


def show(instance_id: str, as_json: JsonOption = False) -> None:
    """An instance: status, every point it waits at, data and history."""
    with _engine() as engine:
        instance_id = _full_id(engine, instance_id, "instance")
        instance = engine.instances.get(instance_id)
        waits = engine.instances.waits(instance_id)
        events = engine.history.for_instance(instance_id)
    if as_json:
        _dump({"instance": instance, "waits": waits, "history": events})
        return
    _print_instance(instance)  # its human tasks, with candidates and assignee
    others = [w for w in waits if w.kind != "user_task"]
    if others:
        out.print(_waits_table(others))
    out.print("data: " + escape(json.dumps(instance.data, default=str, sort_keys=True)))
    out.print(_history_table(events))


def _waits_table(waits: Sequence[Wait]) -> Table:
    """One row per waiting point that is not a human task (those are in the task table):
    a time, a system, a message or a signal; "detail" names the message or signal, the
    topic and the lock."""
    table = _table("also waits for", "element", "task", "due", "detail")
    for w in waits:
        detail = [w.name or ""]
        if w.topic:
            detail = [f"topic {w.topic}"]
        if w.lock_owner:
            until = w.lock_expires_at.isoformat() if w.lock_expires_at else "?"
            detail.append(f"locked by {w.lock_owner} until {until}")
        if w.status and w.status != "ready":
            detail.append(w.status)
        table.add_row(
            w.kind,
            w.element_id or "",
            w.task_id or "",
            w.due_at.isoformat() if w.due_at else "",
            ", ".join(d for d in detail if d),
        )
    return table


def instances(
    process: Annotated[str | None, typer.Option("--process")] = None,
    status: Annotated[InstanceStatus | None, typer.Option("--status")] = None,
    business_key: Annotated[str | None, typer.Option("--business-key")] = None,
    limit: LimitOption = 50,
    offset: OffsetOption = 0,
    as_json: JsonOption = False,
) -> None:
    """Instances, newest first."""
    with _engine() as engine:
        _known_process(engine, process)
        found = engine.instances.list(
            process_key=process,
            status=status,
            business_key=business_key,
            limit=limit,
            offset=offset,
        )
    if as_json:
        _dump(found)
        return
    table = _table("instance", "process", "business key", "status", "started", "updated")
    for i in found:
        table.add_row(
            i.id,
            i.process_key,
            i.business_key or "",
            i.status.value,
            i.started_at.isoformat(timespec="seconds"),
            i.updated_at.isoformat(timespec="seconds"),
        )
    out.print(table)


def cancel(
    instance_id: str,
    user: ActorOption = None,
    reason: Annotated[str | None, typer.Option("--reason")] = None,
    as_json: JsonOption = False,
) -> None:
    """Cancel a running or failed instance."""
    with _engine() as engine:
        instance_id = _full_id(engine, instance_id, "instance")
        instance = engine.instances.cancel(instance_id, user=user, reason=reason)
    if as_json:
        _dump(instance)
    else:
        _print_instance(instance)
