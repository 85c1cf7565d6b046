"""``bankflow external``: external tasks, done by systems outside Python."""

from __future__ import annotations

import json
from typing import Annotated

import typer

from bankflow.cli._common import (
    DataOption,
    JsonOption,
    _dump,
    _engine,
    _full_id,
    _name,
    _parse_data,
    _print_instance,
    _seconds,
    _table,
    _whole,
    out,
)
from bankflow.jobs._external import MAX_RETRIES, MAX_TASKS

external_app = typer.Typer(
    help="External tasks: service steps done by systems outside Python.", no_args_is_help=True
)

WorkerIdOption = Annotated[
    str, typer.Option("--worker-id", callback=_name, help="The external worker's id.")
]


@external_app.command("fetch")
def external_fetch(
    topics: Annotated[list[str], typer.Argument(help="Topics to fetch work for.")],
    worker_id: WorkerIdOption,
    max_tasks: Annotated[
        int,
        typer.Option("--max", callback=_whole(0, MAX_TASKS), help="At most this many tasks."),
    ] = 10,
    lock_seconds: Annotated[
        float, typer.Option("--lock-seconds", callback=_seconds(allow_zero=False))
    ] = 300.0,
    as_json: JsonOption = False,
) -> None:
    """Lock due external tasks of TOPICS for --worker-id and print them with their data."""
    with _engine() as engine:
        fetched = engine.external.fetch_and_lock(
            topics, worker_id=worker_id, max_tasks=max_tasks, lock_duration=lock_seconds
        )
    if as_json:
        _dump(fetched)
        return
    if not fetched:
        out.print("nothing to do")
        return
    table = _table("task", "topic", "process", "business key", "locked until", "variables")
    for t in fetched:
        table.add_row(
            t.id,
            t.topic,
            t.process_key,
            t.business_key or "",
            t.lock_expires_at.isoformat(),
            json.dumps(t.variables, default=str, sort_keys=True),
        )
    out.print(table)


@external_app.command("complete")
def external_complete(
    task_id: str, worker_id: WorkerIdOption, data: DataOption = None, as_json: JsonOption = False
) -> None:
    """Report an external task done, with --data as its result."""
    with _engine() as engine:
        task_id = _full_id(engine, task_id, "external task")
        instance = engine.external.complete(
            task_id, worker_id=worker_id, variables=_parse_data(data)
        )
    if as_json:
        _dump(instance)
    else:
        _print_instance(instance)


@external_app.command("fail")
def external_fail(
    task_id: str,
    worker_id: WorkerIdOption,
    error: Annotated[str, typer.Option("--error", help="What went wrong.")],
    retries: Annotated[
        int,
        typer.Option(
            "--retries", callback=_whole(0, MAX_RETRIES), help="Retries left (0: incident)."
        ),
    ],
    retry_seconds: Annotated[
        float, typer.Option("--retry-seconds", callback=_seconds(allow_zero=True))
    ] = 0.0,
    as_json: JsonOption = False,
) -> None:
    """Report a failed attempt: tried again after --retry-seconds, or an incident."""
    with _engine() as engine:
        task_id = _full_id(engine, task_id, "external task")
        result = engine.external.fail(
            task_id,
            worker_id=worker_id,
            error_message=error,
            retries=retries,
            retry_timeout=retry_seconds,
        )
    if as_json:
        _dump({"task_id": task_id, "result": result})
    else:
        out.print(f"external task {task_id}: {result}")


@external_app.command("bpmn-error")
def external_bpmn_error(
    task_id: str,
    worker_id: WorkerIdOption,
    code: Annotated[str, typer.Option("--code", help="The BPMN error code.")],
    message: Annotated[str | None, typer.Option("--message")] = None,
    data: DataOption = None,
    as_json: JsonOption = False,
) -> None:
    """Report a business error, taken by the error boundary event with that code."""
    with _engine() as engine:
        task_id = _full_id(engine, task_id, "external task")
        instance = engine.external.bpmn_error(
            task_id,
            worker_id=worker_id,
            error_code=code,
            error_message=message,
            variables=_parse_data(data),
        )
    if as_json:
        _dump(instance)
    else:
        _print_instance(instance)


@external_app.command("extend")
def external_extend(
    task_id: str,
    worker_id: WorkerIdOption,
    seconds: Annotated[
        float,
        typer.Option(
            "--seconds", callback=_seconds(allow_zero=False), help="New lock duration from now."
        ),
    ],
    as_json: JsonOption = False,
) -> None:
    """Keep an external task locked for longer."""
    with _engine() as engine:
        task_id = _full_id(engine, task_id, "external task")
        until = engine.external.extend_lock(task_id, worker_id=worker_id, new_duration=seconds)
    if as_json:
        _dump({"task_id": task_id, "locked_until": until})
    else:
        out.print(f"external task {task_id} locked until {until.isoformat()}")
