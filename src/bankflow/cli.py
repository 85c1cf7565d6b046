"""``bankflow``: the command line. Every listing has ``--json``; every error is one line
naming what is wrong, with a non-zero exit and no traceback."""

from __future__ import annotations

import json
import sys
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Annotated, Any

import typer
from pydantic import BaseModel
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from bankflow.engine import Engine, database_url
from bankflow.errors import BankflowError, DefinitionError
from bankflow.models import (
    Diagnostic,
    Event,
    Instance,
    InstanceStatus,
    JobOutcome,
    Severity,
    Task,
)

app = typer.Typer(
    name="bankflow",
    help="Run a bank's standardized procedures as BPMN 2.0 processes.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
db_app = typer.Typer(help="Database schema.", no_args_is_help=True)
app.add_typer(db_app, name="db")
external_app = typer.Typer(
    help="External tasks: service steps done by systems outside Python.", no_args_is_help=True
)
app.add_typer(external_app, name="external")

# Piped output is read by people in CI logs too: give tables room instead of 80 columns.
_WIDTH = None if sys.stdout.isatty() else 160
out = Console(highlight=False, soft_wrap=True, width=_WIDTH)
err = Console(stderr=True, highlight=False, soft_wrap=True, width=_WIDTH)


class _State:
    db_url: str | None = None


_state = _State()

JsonOption = Annotated[bool, typer.Option("--json", help="Machine-readable output.")]


@app.callback()
def _main(
    db: Annotated[
        str | None,
        typer.Option(
            "--db",
            help="Database URL (default: $BANKFLOW_DATABASE_URL or sqlite:///bankflow.db).",
        ),
    ] = None,
) -> None:
    _state.db_url = db


@contextmanager
def _engine(*, migrate: bool | None = None) -> Iterator[Engine]:
    engine = Engine(_state.db_url, migrate=migrate)
    try:
        yield engine
    finally:
        engine.close()


def _dump(data: Any) -> None:
    def default(value: Any) -> Any:
        if isinstance(value, BaseModel):
            return value.model_dump(mode="json")
        return str(value)

    sys.stdout.write(json.dumps(data, default=default, indent=2) + "\n")


def _diagnostic_line(d: Diagnostic) -> str:
    style = "red" if d.severity == Severity.ERROR else "yellow"
    return f"[{style}]{escape(d.format())}[/{style}]"


def _print_diagnostics(diagnostics: Sequence[Diagnostic]) -> None:
    for d in diagnostics:
        err.print(_diagnostic_line(d), markup=True)


def _table(*columns: str) -> Table:
    table = Table()
    for column in columns:
        table.add_column(column, overflow="fold")
    return table


def _progress(enabled: bool) -> Callable[[str], None] | None:
    if not enabled:
        return None
    return lambda file: err.print(f"[dim]checking {escape(file)}[/dim]")


@app.command()
def validate(
    paths: Annotated[list[Path], typer.Argument(help="BPMN/DMN files or directories.")],
    as_json: JsonOption = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress lines.")] = False,
) -> None:
    """Check files as a deploy would, store nothing; exit 1 when any error is found."""
    with _engine() as engine:
        report = engine.definitions.validate(*paths, progress=_progress(not (quiet or as_json)))
    if as_json:
        _dump(
            {
                "ok": report.ok,
                "files": report.files,
                "errors": len(report.errors),
                "warnings": len(report.warnings),
                "diagnostics": [d.model_dump(mode="json") for d in report.diagnostics],
            }
        )
    else:
        for d in report.diagnostics:
            out.print(_diagnostic_line(d), markup=True)
        verdict = "[green]ok[/green]" if report.ok else "[red]failed[/red]"
        out.print(
            f"{len(report.files)} file(s): {len(report.errors)} error(s), "
            f"{len(report.warnings)} warning(s): {verdict}"
        )
    if not report.ok:
        raise typer.Exit(1)


@app.command()
def deploy(
    paths: Annotated[list[Path], typer.Argument(help="BPMN/DMN files or directories.")],
    name: Annotated[str | None, typer.Option(help="A name for the deployment.")] = None,
    as_json: JsonOption = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No warnings or progress.")] = False,
) -> None:
    """Deploy files in one transaction; unchanged files keep their version."""
    with _engine() as engine:
        try:
            result = engine.definitions.deploy(
                *paths, name=name, progress=_progress(not (quiet or as_json))
            )
        except DefinitionError as exc:
            if as_json:
                _dump(
                    {
                        "ok": False,
                        "error": str(exc).splitlines()[0],
                        "diagnostics": [d.model_dump(mode="json") for d in exc.diagnostics],
                    }
                )
            else:
                _print_diagnostics(exc.diagnostics)
                err.print(f"[red]error:[/red] {escape(str(exc).splitlines()[0])}")
            raise typer.Exit(1) from None
    if as_json:
        _dump({"ok": True, **result.model_dump(mode="json")})
        return
    if not quiet:
        _print_diagnostics([d for d in result.diagnostics if d.severity == Severity.WARNING])
    table = _table("process", "version", "name", "file")
    for p in result.processes:
        table.add_row(p.key, str(p.version), p.name or "", p.resource_name)
    for d in result.decisions:
        table.add_row(f"{d.key} (decision)", str(d.version), d.name or "", d.resource_name)
    out.print(table)
    if result.created:
        out.print(f"deployment {result.id}")
    else:
        out.print("nothing changed: every file was already deployed with identical content")


@app.command()
def definitions(
    key: Annotated[str | None, typer.Option(help="Only this process key.")] = None,
    latest: Annotated[bool, typer.Option(help="Only the latest version of each.")] = False,
    as_json: JsonOption = False,
) -> None:
    """List deployed process definitions."""
    with _engine() as engine:
        found = engine.definitions.list(key=key, latest_only=latest)
    if as_json:
        _dump([p.model_dump(mode="json") for p in found])
        return
    table = _table("process", "version", "name", "file", "deployed")
    for p in found:
        table.add_row(
            p.key, str(p.version), p.name or "", p.resource_name, p.deployed_at.isoformat()
        )
    out.print(table)


def _parse_data(value: str | None) -> dict[str, Any] | None:
    """``--data`` as JSON text or ``@file``; decimals stay exact (money)."""
    if value is None:
        return None
    text = value
    if value.startswith("@"):
        try:
            text = Path(value[1:]).read_text(encoding="utf-8")
        except OSError as exc:
            raise typer.BadParameter(f"cannot read {value[1:]}: {exc.strerror}") from None
    try:
        data = json.loads(text, parse_float=Decimal)
    except json.JSONDecodeError as exc:
        raise typer.BadParameter(f"--data is not valid JSON: {exc}") from None
    if not isinstance(data, dict):
        raise typer.BadParameter("--data must be a JSON object")
    return data


def _groups(value: str | None) -> list[str]:
    return [g.strip() for g in (value or "").split(",") if g.strip()]


DataOption = Annotated[str | None, typer.Option("--data", help="Task data as JSON, or @file.json.")]
UserOption = Annotated[str, typer.Option("--user", help="The acting user's id.")]
GroupsOption = Annotated[
    str | None, typer.Option("--groups", help="The acting user's groups, comma-separated.")
]


def _task_table(tasks: Sequence[Task]) -> Table:
    table = _table("task", "step", "department", "candidates", "assignee", "due", "business key")
    for t in tasks:
        table.add_row(
            t.id,
            t.name or t.element_id,
            t.lane or "",
            ", ".join(t.candidate_groups + t.candidate_users),
            t.assignee or "",
            t.due_at.isoformat() if t.due_at else "",
            t.business_key or "",
        )
    return table


def _print_instance(instance: Instance) -> None:
    out.print(
        f"instance {instance.id} ({instance.process_key}"
        + (f", business key {instance.business_key}" if instance.business_key else "")
        + f"): [bold]{instance.status.value}[/bold]"
    )
    if instance.failure is not None:
        f = instance.failure
        out.print(
            f"[red]failed at {escape(f.element_id or '?')}: {escape(f.error_type)}: "
            f"{escape(f.message)}[/red]"
        )
    if instance.tasks:
        out.print(_task_table(instance.tasks))


@app.command()
def start(
    process_key: Annotated[str, typer.Argument(help="The process id (definition key).")],
    business_key: Annotated[str | None, typer.Option("--business-key")] = None,
    data: DataOption = None,
    version: Annotated[int | None, typer.Option(help="A specific version.")] = None,
    user: Annotated[str | None, typer.Option("--user", help="Who starts it.")] = None,
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


@app.command()
def tasks(
    group: Annotated[list[str] | None, typer.Option("--group", help="Candidate group.")] = None,
    user: Annotated[str | None, typer.Option("--user", help="Candidate user.")] = None,
    assignee: Annotated[str | None, typer.Option("--assignee")] = None,
    unassigned: Annotated[bool, typer.Option("--unassigned")] = False,
    process: Annotated[str | None, typer.Option("--process")] = None,
    business_key: Annotated[str | None, typer.Option("--business-key")] = None,
    instance: Annotated[str | None, typer.Option("--instance")] = None,
    limit: Annotated[int, typer.Option("--limit")] = 50,
    offset: Annotated[int, typer.Option("--offset")] = 0,
    as_json: JsonOption = False,
) -> None:
    """Waiting human tasks, oldest first."""
    with _engine() as engine:
        found = engine.tasks.query(
            groups=group or (),
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


@app.command()
def claim(
    task_id: str, user: UserOption, groups: GroupsOption = None, as_json: JsonOption = False
) -> None:
    """Take a task: it becomes yours until you complete or unclaim it."""
    with _engine() as engine:
        task = engine.tasks.claim(task_id, user=user, groups=_groups(groups))
    _report_task(task, as_json, f"{task.id} claimed by {task.assignee}")


@app.command()
def unclaim(
    task_id: str, user: UserOption, groups: GroupsOption = None, as_json: JsonOption = False
) -> None:
    """Give a claimed task back to its candidates."""
    with _engine() as engine:
        task = engine.tasks.unclaim(task_id, user=user, groups=_groups(groups))
    _report_task(task, as_json, f"{task.id} is unassigned")


@app.command()
def delegate(
    task_id: str,
    user: UserOption,
    to: Annotated[str, typer.Option("--to", help="The user who takes over.")],
    groups: GroupsOption = None,
    as_json: JsonOption = False,
) -> None:
    """Hand a task to another user."""
    with _engine() as engine:
        task = engine.tasks.delegate(task_id, user=user, to_user=to, groups=_groups(groups))
    _report_task(task, as_json, f"{task.id} delegated to {task.assignee}")


@app.command()
def complete(
    task_id: str,
    user: UserOption,
    groups: GroupsOption = None,
    data: DataOption = None,
    as_json: JsonOption = False,
) -> None:
    """Complete a task with data; prints where the instance waits next."""
    with _engine() as engine:
        instance = engine.tasks.complete(
            task_id, user=user, groups=_groups(groups), data=_parse_data(data)
        )
    if as_json:
        _dump(instance)
    else:
        _print_instance(instance)


@app.command()
def show(instance_id: str, as_json: JsonOption = False) -> None:
    """An instance: status, waiting tasks, data and history."""
    with _engine() as engine:
        instance = engine.instances.get(instance_id)
        events = engine.history.for_instance(instance_id)
    if as_json:
        _dump({"instance": instance, "history": events})
        return
    _print_instance(instance)
    out.print("data: " + escape(json.dumps(instance.data, default=str, sort_keys=True)))
    out.print(_history_table(events))


def _history_table(events: Sequence[Event]) -> Table:
    table = _table("at", "event", "element", "actor", "data")
    for e in events:
        table.add_row(
            e.at.isoformat(timespec="seconds"),
            e.type,
            e.element_id or "",
            e.actor or "",
            "" if e.data is None else json.dumps(e.data, default=str, sort_keys=True),
        )
    return table


@app.command()
def instances(
    process: Annotated[str | None, typer.Option("--process")] = None,
    status: Annotated[InstanceStatus | None, typer.Option("--status")] = None,
    business_key: Annotated[str | None, typer.Option("--business-key")] = None,
    limit: Annotated[int, typer.Option("--limit")] = 50,
    offset: Annotated[int, typer.Option("--offset")] = 0,
    as_json: JsonOption = False,
) -> None:
    """Instances, newest first."""
    with _engine() as engine:
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


@app.command()
def history(
    instance_id: Annotated[str | None, typer.Argument()] = None,
    actor: Annotated[str | None, typer.Option("--actor", help="Everything one user did.")] = None,
    as_json: JsonOption = False,
) -> None:
    """The audit trail of an instance, or of one actor."""
    if (instance_id is None) == (actor is None):
        raise typer.BadParameter("give an INSTANCE_ID or --actor")
    with _engine() as engine:
        events = (
            engine.history.for_instance(instance_id)
            if instance_id is not None
            else engine.history.for_actor(actor or "")
        )
    if as_json:
        _dump(events)
    else:
        out.print(_history_table(events))


@app.command()
def cancel(
    instance_id: str,
    user: Annotated[str | None, typer.Option("--user")] = None,
    reason: Annotated[str | None, typer.Option("--reason")] = None,
) -> None:
    """Cancel a running or failed instance."""
    with _engine() as engine:
        instance = engine.instances.cancel(instance_id, user=user, reason=reason)
    _print_instance(instance)


@app.command()
def retry(
    incident_id: Annotated[str, typer.Argument(help="A failed instance's id or an incident id.")],
    data: DataOption = None,
    user: Annotated[str | None, typer.Option("--user")] = None,
) -> None:
    """Resolve an incident: run a failed instance's step again (with --data merged in as
    the fix; a job out of retries gets a fresh set), or send a stuck message again."""
    with _engine() as engine:
        incident = engine.incidents.retry(incident_id, data=_parse_data(data), user=user)
        if incident.instance_id is not None and incident.kind != "message":
            _print_instance(engine.instances.get(incident.instance_id))
        else:
            out.print(f"message job {incident.job_id} will be sent again")


def _when(value: str | None) -> datetime | None:
    if value is None:
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise typer.BadParameter(f"--now is not an ISO 8601 date-time: {value!r}") from None
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed


def _outcome_line(o: JobOutcome) -> str:
    what = {
        "timer": f"timer {o.element_id}",
        "service": f"service {o.topic!r} at {o.element_id}",
        "external": f"external task {o.topic!r} at {o.element_id}",
        "message": f"message {o.topic!r}",
        "start_timer": f"timer start {o.element_id}",
    }.get(o.kind, o.kind)
    where = f" of {o.process_key}" + (f" instance {o.instance_id}" if o.instance_id else "")
    note = f": {o.message}" if o.message else ""
    return f"{o.result:<10} {what}{where}{note}"


@app.command()
def worker(
    once: Annotated[
        bool, typer.Option("--once", help="Run everything due now, then exit.")
    ] = False,
    now: Annotated[
        str | None,
        typer.Option("--now", help="Act as if it were this ISO 8601 time (tests, catch-up)."),
    ] = None,
    handlers: Annotated[
        list[str] | None,
        typer.Option(
            "--handlers",
            help="Module whose register(services) adds service handlers (repeatable).",
        ),
    ] = None,
    worker_id: Annotated[str | None, typer.Option("--id", help="Worker id (lock owner).")] = None,
    lock_seconds: Annotated[
        float, typer.Option("--lock-seconds", help="How long a claimed job stays locked.")
    ] = 300.0,
    poll: Annotated[float, typer.Option("--poll", help="Seconds between polls when idle.")] = 1.0,
    batch: Annotated[int, typer.Option("--batch", help="Jobs claimed at a time.")] = 20,
    as_json: JsonOption = False,
) -> None:
    """Fire due timers, call services, deliver messages; one line per job. Stops cleanly
    on SIGTERM or Ctrl-C after the job in hand."""
    import importlib
    import signal

    from bankflow._clock import FixedClock

    at = _when(now)
    engine = Engine(_state.db_url, clock=FixedClock(at) if at is not None else None)
    try:
        for name in handlers or ():
            try:
                module = importlib.import_module(name)
            except Exception as exc:  # ImportError, or the module itself raising
                raise typer.BadParameter(
                    f"cannot import handlers module {name!r}: {type(exc).__name__}: {exc}"
                ) from None
            register = getattr(module, "register", None)
            if not callable(register):
                raise typer.BadParameter(f"module {name!r} has no register(services) function")
            try:
                register(engine.services)
            except Exception as exc:
                raise typer.BadParameter(
                    f"{name}.register(services) failed: {type(exc).__name__}: {exc}"
                ) from None

        def report(outcome: JobOutcome) -> None:
            if as_json:
                sys.stdout.write(json.dumps(outcome.model_dump(mode="json")) + "\n")
                sys.stdout.flush()
            else:
                out.print(escape(_outcome_line(outcome)))

        running = engine.worker(
            worker_id=worker_id,
            lock_duration=timedelta(seconds=lock_seconds),
            poll_interval=poll,
            batch=batch,
            on_outcome=report,
            on_error=lambda message: err.print(escape(message)),
        )
        previous = {
            sig: signal.signal(sig, lambda *_: running.stop())
            for sig in (signal.SIGTERM, signal.SIGINT)
        }
        try:
            if not as_json:
                err.print(
                    f"worker {running.id} on {escape(engine.url.split('@')[-1])}"
                    + (" (once)" if once else "; SIGTERM or Ctrl-C stops it")
                )
            result = running.run(once=once, now=at)
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)
        if not as_json:
            counts = Counter(o.result for o in result.outcomes)
            summary = ", ".join(f"{n} {r}" for r, n in sorted(counts.items())) or "nothing due"
            err.print(f"worker {running.id} stopped: {summary}")
    finally:
        engine.close()


@app.command()
def jobs(
    kind: Annotated[
        str | None, typer.Option("--kind", help="timer, service, external, message, start_timer.")
    ] = None,
    status: Annotated[str | None, typer.Option("--status", help="ready, held or incident.")] = None,
    instance: Annotated[str | None, typer.Option("--instance")] = None,
    limit: Annotated[int, typer.Option("--limit")] = 50,
    as_json: JsonOption = False,
) -> None:
    """Jobs by due time: timers, service calls, messages, timer starts."""
    with _engine() as engine:
        found = engine.jobs.list(kind=kind, status=status, instance_id=instance, limit=limit)
    if as_json:
        _dump(found)
        return
    table = _table(
        "job", "kind", "status", "due", "process", "element", "topic", "attempts", "locked by"
    )
    for j in found:
        table.add_row(
            j.id,
            j.kind,
            j.status,
            j.due_at.isoformat(),
            j.process_key,
            j.element_id or "",
            j.topic or "",
            str(j.attempts),
            j.lock_owner or "",
        )
    out.print(table)


@app.command()
def incidents(
    process: Annotated[str | None, typer.Option("--process")] = None,
    limit: Annotated[int, typer.Option("--limit")] = 100,
    as_json: JsonOption = False,
) -> None:
    """What stopped and needs a person; `bankflow retry ID` resolves one after the fix."""
    with _engine() as engine:
        found = engine.incidents.list(process_key=process, limit=limit)
    if as_json:
        _dump(found)
        return
    if not found:
        out.print("no incidents")
        return
    table = _table("incident", "kind", "process", "business key", "element", "attempts", "error")
    for i in found:
        table.add_row(
            i.id,
            i.kind,
            i.process_key,
            i.business_key or "",
            i.element_id or "",
            "" if i.attempts is None else str(i.attempts),
            i.message,
        )
    out.print(table)


@app.command()
def message(
    name: Annotated[str, typer.Argument(help="The message name.")],
    business_key: Annotated[str | None, typer.Option("--business-key")] = None,
    correlation: Annotated[
        str | None,
        typer.Option("--correlation", help="JSON object of variables the instance must hold."),
    ] = None,
    data: DataOption = None,
    broadcast: Annotated[
        bool, typer.Option("--all", help="Deliver to every waiting instance that matches.")
    ] = False,
    user: Annotated[str | None, typer.Option("--user")] = None,
    as_json: JsonOption = False,
) -> None:
    """Deliver a message to the instance waiting for it (or start one)."""
    try:
        matching = _parse_data(correlation)
    except typer.BadParameter as exc:
        raise typer.BadParameter(str(exc).replace("--data", "--correlation")) from None
    with _engine() as engine:
        delivered = engine.messages.correlate(
            name,
            business_key=business_key,
            correlation=matching,
            data=_parse_data(data),
            all=broadcast,
            user=user,
        )
    if as_json:
        _dump(delivered)
        return
    for instance in delivered:
        _print_instance(instance)


@app.command()
def decide(
    file: Annotated[Path, typer.Argument(help="A .dmn file.")],
    data: Annotated[str, typer.Option("--data", help="Input data as JSON, or @file.json.")],
    decision: Annotated[
        str | None, typer.Option("--decision", help="Decision id (default: the first).")
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """Evaluate a decision table against data, printing the rules that matched."""
    from bankflow.definitions._source import SourceFile, parse
    from bankflow.language._decisions import evaluate_graph
    from bankflow.language._dmn import parse_dmn

    try:
        content = file.read_bytes()
    except OSError as exc:
        raise typer.BadParameter(f"cannot read {file}: {exc.strerror}") from None
    root = parse(SourceFile(display=str(file), name=file.name, content=content))
    if isinstance(root, Diagnostic):
        raise typer.BadParameter(root.format())
    decisions = {d.id: d for d in parse_dmn(root)}
    if not decisions:
        raise typer.BadParameter(f"{file} holds no decision")
    chosen = decision or next(iter(decisions))
    if chosen not in decisions:
        raise typer.BadParameter(f"no decision {chosen!r} in {file}; it has {', '.join(decisions)}")
    result = evaluate_graph(decisions, chosen, _parse_data(data) or {})
    if as_json:
        _dump(
            {
                "decision": result.decision_id,
                "matched": list(result.matched),
                "result": result.result,
                "outputs": result.outputs,
            }
        )
        return
    rules = {r.id: r for t in [decisions[chosen].table] if t is not None for r in t.rules}
    out.print(f"decision {chosen}: {len(result.matched)} rule(s) matched")
    for rule_id in result.matched:
        rule = rules.get(rule_id)
        described = f" ({rule.description})" if rule is not None and rule.description else ""
        out.print(f"  {escape(rule_id)}{escape(described)}")
    out.print("result: " + escape(json.dumps(result.result, default=str)))


WorkerIdOption = Annotated[str, typer.Option("--worker-id", help="The external worker's id.")]


@external_app.command("fetch")
def external_fetch(
    topics: Annotated[list[str], typer.Argument(help="Topics to fetch work for.")],
    worker_id: WorkerIdOption,
    max_tasks: Annotated[int, typer.Option("--max", help="At most this many tasks.")] = 10,
    lock_seconds: Annotated[float, typer.Option("--lock-seconds")] = 300.0,
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
def external_complete(task_id: str, worker_id: WorkerIdOption, data: DataOption = None) -> None:
    """Report an external task done, with --data as its result."""
    with _engine() as engine:
        instance = engine.external.complete(
            task_id, worker_id=worker_id, variables=_parse_data(data)
        )
    _print_instance(instance)


@external_app.command("fail")
def external_fail(
    task_id: str,
    worker_id: WorkerIdOption,
    error: Annotated[str, typer.Option("--error", help="What went wrong.")],
    retries: Annotated[int, typer.Option("--retries", help="Retries left (0: incident).")],
    retry_seconds: Annotated[float, typer.Option("--retry-seconds")] = 0.0,
) -> None:
    """Report a failed attempt: tried again after --retry-seconds, or an incident."""
    with _engine() as engine:
        result = engine.external.fail(
            task_id,
            worker_id=worker_id,
            error_message=error,
            retries=retries,
            retry_timeout=retry_seconds,
        )
    out.print(f"external task {task_id}: {result}")


@external_app.command("bpmn-error")
def external_bpmn_error(
    task_id: str,
    worker_id: WorkerIdOption,
    code: Annotated[str, typer.Option("--code", help="The BPMN error code.")],
    message: Annotated[str | None, typer.Option("--message")] = None,
    data: DataOption = None,
) -> None:
    """Report a business error, taken by the error boundary event with that code."""
    with _engine() as engine:
        instance = engine.external.bpmn_error(
            task_id,
            worker_id=worker_id,
            error_code=code,
            error_message=message,
            variables=_parse_data(data),
        )
    _print_instance(instance)


@external_app.command("extend")
def external_extend(
    task_id: str,
    worker_id: WorkerIdOption,
    seconds: Annotated[float, typer.Option("--seconds", help="New lock duration from now.")],
) -> None:
    """Keep an external task locked for longer."""
    with _engine() as engine:
        until = engine.external.extend_lock(task_id, worker_id=worker_id, new_duration=seconds)
    out.print(f"external task {task_id} locked until {until.isoformat()}")


@db_app.command("upgrade")
def db_upgrade() -> None:
    """Apply pending schema migrations (safe to run from several processes)."""
    with _engine(migrate=True) as engine:
        out.print(f"database {engine.url.split('@')[-1]} is at the latest schema")


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI and return its exit code, turning every bankflow error into one line."""
    try:
        app(args=list(argv) if argv is not None else None, prog_name="bankflow")
    except SystemExit as exc:
        return exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    except BankflowError as exc:
        err.print(f"[red]error:[/red] {escape(str(exc))}", markup=True)
        return 1
    except KeyboardInterrupt:
        err.print("aborted")
        return 130
    return 0


def _entry() -> None:  # pragma: no cover - console script
    raise SystemExit(main())


__all__ = ["app", "database_url", "main"]
