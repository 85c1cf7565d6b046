"""Commands on human tasks: tasks, claim, unclaim, delegate, complete, task show."""

from __future__ import annotations

import json
from typing import Annotated

import typer
from rich.markup import escape

from bankflow.cli._common import (
    DataOption,
    GroupOption,
    JsonOption,
    LimitOption,
    OffsetOption,
    _dump,
    _engine,
    _full_id,
    _groups,
    _known_instance,
    _known_process,
    _name,
    _parse_data,
    _print_instance,
    _table,
    _task_table,
    out,
)
from bankflow.models import Task

UserOption = Annotated[str, typer.Option("--user", callback=_name, help="The acting user's id.")]


def tasks(
    group: GroupOption = None,
    user: Annotated[str | None, typer.Option("--user", help="Candidate user.")] = None,
    assignee: Annotated[str | None, typer.Option("--assignee")] = None,
    unassigned: Annotated[bool, typer.Option("--unassigned")] = False,
    process: Annotated[str | None, typer.Option("--process")] = None,
    business_key: Annotated[str | None, typer.Option("--business-key")] = None,
    instance: Annotated[str | None, typer.Option("--instance")] = None,
    limit: LimitOption = 50,
    offset: OffsetOption = 0,
    as_json: JsonOption = False,
) -> None:
    """Waiting human tasks, oldest first."""
    with _engine() as engine:
        _known_process(engine, process)
        instance = _known_instance(engine, instance)
        found = engine.tasks.query(
            groups=_groups(group),
            candidate_user=user,
            assignee=assignee,
            unassigned=unassigned,
            process_key=process,
            business_key=business_key,
            instance_id=instance,
            limit=limit,
            offset=offset,
        )
    if as_json:
        _dump(found)
    else:
        out.print(_task_table(found))


def _report_task(task: Task, as_json: bool, message: str) -> None:
    if as_json:
        _dump(task)
    else:
        out.print(message)


def claim(
    task_id: str, user: UserOption, groups: GroupOption = None, as_json: JsonOption = False
) -> None:
    """Take a task: it becomes yours until you complete or unclaim it."""
    with _engine() as engine:
        task_id = _full_id(engine, task_id, "task")
        task = engine.tasks.claim(task_id, user=user, groups=_groups(groups))
    _report_task(task, as_json, f"{task.id} claimed by {task.assignee}")


def unclaim(
    task_id: str, user: UserOption, groups: GroupOption = None, as_json: JsonOption = False
) -> None:
    """Give a claimed task back to its candidates."""
    with _engine() as engine:
        task_id = _full_id(engine, task_id, "task")
        task = engine.tasks.unclaim(task_id, user=user, groups=_groups(groups))
    _report_task(task, as_json, f"{task.id} is unassigned")


def delegate(
    task_id: str,
    user: UserOption,
    to: Annotated[str, typer.Option("--to", callback=_name, help="The user who takes over.")],
    groups: GroupOption = None,
    as_json: JsonOption = False,
) -> None:
    """Hand a task to another user."""
    with _engine() as engine:
        task_id = _full_id(engine, task_id, "task")
        task = engine.tasks.delegate(task_id, user=user, to_user=to, groups=_groups(groups))
    _report_task(task, as_json, f"{task.id} delegated to {task.assignee}")


def complete(
    task_id: str,
    user: UserOption,
    groups: GroupOption = None,
    data: DataOption = None,
    as_json: JsonOption = False,
) -> None:
    """Complete a task with data; prints where the instance waits next."""
    with _engine() as engine:
        task_id = _full_id(engine, task_id, "task")
        instance = engine.tasks.complete(
            task_id, user=user, groups=_groups(groups), data=_parse_data(data)
        )
    if as_json:
        _dump(instance)
    else:
        _print_instance(instance)


task_app = typer.Typer(
    help="One human task: everything a person needs before acting on it.",
    no_args_is_help=True,
)


@task_app.command("show")
def task_show(task_id: str, as_json: JsonOption = False) -> None:
    """A task: step, instance, candidates, assignee, due date, form fields and data.

    The listing (``tasks``) shows one line per task; before claiming, a person also needs
    the form they will fill in and the data the previous steps produced."""
    with _engine() as engine:
        task_id = _full_id(engine, task_id, "task")
        task = engine.tasks.get(task_id)
        form = engine.tasks.form(task_id)
        data = engine.tasks.data(task_id)
    if as_json:
        _dump({"task": task, "form": form, "data": data})
        return
    rows = (
        ("task", task.id),
        ("step", f"{task.name} ({task.element_id})" if task.name else task.element_id),
        ("instance", task.instance_id),
        ("process", task.process_key),
        ("business key", task.business_key or ""),
        ("department", task.lane or ""),
        ("candidate groups", ", ".join(task.candidate_groups)),
        ("candidate users", ", ".join(task.candidate_users)),
        ("assignee", task.assignee or ""),
        ("due", task.due_at.isoformat() if task.due_at else ""),
        ("priority", str(task.priority)),
        ("form key", task.form_key or ""),
    )
    for label, value in rows:
        out.print(f"{label}: {escape(value)}")
    if form:
        table = _table("field", "label", "type", "required", "default")
        for f in form:
            table.add_row(
                f.id,
                f.label or "",
                f.type or "",
                "yes" if f.required else "",
                f.default_value or "",
            )
        out.print(table)
    out.print("data: " + escape(json.dumps(data, default=str, sort_keys=True)))
