"""``bankflow``: the command line. Every listing has ``--json``; every error is one line
on stderr naming what is wrong, with no traceback: exit 2 for a usage error (an unknown
option, a value out of range, data that is not a JSON object), exit 1 for what the engine
refused, and exit 1 with "internal error" for a bug (``BANKFLOW_DEBUG=1`` shows it)."""

from __future__ import annotations

import json
import math
import os
import sys
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Annotated, Any, NoReturn

import typer
from pydantic import BaseModel
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from bankflow._inputs import MAX_NAME_CHARS, MAX_OFFSET
from bankflow._inputs import MAX_PAGE_SIZE as MAX_LIMIT
from bankflow._limits import limits_from_env
from bankflow.engine import Engine, database_url
from bankflow.errors import BankflowError, DefinitionError
from bankflow.jobs._external import MAX_DURATION, MAX_RETRIES, MAX_TASKS
from bankflow.jobs._worker import DEFAULT_GRACE
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


# -- checking what the shell gives -----------------------------------------------------
# Every value is checked before an engine is opened, so a bad one is one line and exit 2
# on every database: SQLite takes a negative LIMIT as "no limit" where PostgreSQL refuses
# it, and a 20-digit number overflows a column on one and not the other.

MAX_VERSION = 2_147_483_647  # a 32-bit integer column on PostgreSQL
MAX_BATCH = 1_000
MAX_SECONDS = MAX_DURATION.total_seconds()
MAX_POLL_SECONDS = 3_600.0
JOB_KINDS = ("timer", "service", "external", "message", "start_timer")
JOB_STATUSES = ("ready", "held", "incident")
DEBUG_ENV = "BANKFLOW_DEBUG"


def _is_text(value: str) -> bool:
    """False for a lone surrogate: what Python makes of argv bytes that are not UTF-8
    (``surrogateescape``), or a JSON ``\\ud800`` escape."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _shown(value: int | float) -> str:
    if isinstance(value, int) and not -(10**30) < value < 10**30:
        return "a number of more than 30 digits"  # str() of 4,300+ digits would raise
    return repr(value)


def _whole(low: int, high: int) -> Callable[[int | None], int | None]:
    """A typer callback: an int option from ``low`` to ``high``."""

    def check(value: int | None) -> int | None:
        if value is not None and not low <= value <= high:
            raise typer.BadParameter(
                f"must be a whole number from {low:,} to {high:,}, not {_shown(value)}"
            )
        return value

    return check


def _seconds(*, allow_zero: bool, high: float = MAX_SECONDS) -> Callable[[float], float]:
    """A typer callback: seconds that are finite, not negative (nor zero unless allowed)
    and at most ``high``."""

    def check(value: float) -> float:
        low_ok = value >= 0 if allow_zero else value > 0
        if not (math.isfinite(value) and low_ok and value <= high):
            lowest = "0" if allow_zero else "more than 0"
            raise typer.BadParameter(
                f"must be a number of seconds, {lowest} and at most {high:,.0f}, not {value!r}"
            )
        return value

    return check


def _name(value: str | None) -> str | None:
    """A typer callback for an id that is stored (a user, a worker, a deployment name):
    PostgreSQL refuses more than the column's 255 characters, SQLite would keep them."""
    if value is not None and len(value) > MAX_NAME_CHARS:
        raise typer.BadParameter(f"must be at most {MAX_NAME_CHARS} characters, not {len(value):,}")
    return value


def _one_of(choices: Sequence[str]) -> Callable[[str | None], str | None]:
    def check(value: str | None) -> str | None:
        if value is not None and value not in choices:
            raise typer.BadParameter(f"must be one of {', '.join(choices)}, not {value!r}")
        return value

    return check


LimitOption = Annotated[
    int,
    typer.Option(
        "--limit", callback=_whole(0, MAX_LIMIT), help=f"At most this many (0-{MAX_LIMIT:,})."
    ),
]
OffsetOption = Annotated[
    int,
    typer.Option(
        "--offset", callback=_whole(0, MAX_OFFSET), help=f"Skip this many (0-{MAX_OFFSET:,})."
    ),
]
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
    if db is not None and not db.strip():  # not silently the default file
        raise typer.BadParameter("must not be empty", param_hint="--db")
    _state.db_url = db


def _db_url() -> str | None:
    """``--db``, else ``$BANKFLOW_DATABASE_URL`` (checked here: it bypasses the options)."""
    from_env = os.environ.get("BANKFLOW_DATABASE_URL")
    if _state.db_url is None and from_env and not _is_text(from_env):
        raise typer.BadParameter("BANKFLOW_DATABASE_URL holds text that is not valid UTF-8")
    return _state.db_url


@contextmanager
def _engine(*, migrate: bool | None = None) -> Iterator[Engine]:
    engine = Engine(_db_url(), migrate=migrate)
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
    name: Annotated[
        str | None, typer.Option(callback=_name, help="A name for the deployment.")
    ] = None,
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
    elif result.processes or result.decisions:
        out.print(
            "nothing changed: every process and decision in these files was already "
            "deployed with identical content"
        )
    else:
        out.print("nothing deployed: these files hold no executable process and no decision table")


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


class _RefusedNumber(ValueError):
    """Raised from inside ``json.loads`` for a number bankflow will not take."""


def _json_int(literal: str, limit: int) -> int:
    digits = len(literal) - literal.startswith("-")
    if digits > limit:  # checked before int(): 4,301+ digits raise, and cost time
        raise _RefusedNumber(f"an integer of {digits:,} digits; at most {limit} are allowed")
    return int(literal)


def _json_decimal(literal: str, limit: int) -> Decimal:
    """A JSON fraction as an exact Decimal (money), its digits before and after the point
    within the engine's limit (``1e999999`` has a million)."""
    mantissa = literal.lower().partition("e")[0]
    written = sum(c.isdigit() for c in mantissa)  # at most one more than written out ("0.5")
    if written > limit + 1:  # before Decimal() reads them all
        raise _RefusedNumber(f"a number of {written:,} digits; at most {limit} are allowed")
    number = Decimal(literal)
    _sign, digits, exponent = number.as_tuple()
    assert isinstance(exponent, int)  # a JSON literal is always finite
    written = len(digits) + exponent if exponent >= 0 else max(len(digits), -exponent)
    if written > limit:
        raise _RefusedNumber(
            f"{literal}, a number of {written:,} digits written out; at most {limit} are allowed"
        )
    return number


def _json_constant(name: str) -> NoReturn:
    raise _RefusedNumber(f"{name}; only finite numbers can be stored")


def _no_lone_surrogates(value: Any, option: str) -> None:
    """JSON can spell a lone surrogate (``"\\ud800"``); no database can store one."""
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            texts = [item]
        elif isinstance(item, dict):
            texts = list(item)
            stack.extend(item.values())
        elif isinstance(item, list):
            texts = []
            stack.extend(item)
        else:
            continue
        if not all(_is_text(t) for t in texts):
            raise typer.BadParameter(
                f"{option} holds text that is not valid UTF-8 (a \\u escape of a lone surrogate)"
            )


def _read_argument_file(path: str, option: str, cap: int) -> str:
    """``@file`` of ``--data`` and the like: UTF-8 text of at most ``cap`` bytes."""
    try:
        with open(path, "rb") as file:  # a bounded read: @/dev/zero must not hang
            content = file.read(cap + 1)
    except OSError as exc:
        raise typer.BadParameter(f"{option}: cannot read {path}: {exc.strerror or exc}") from None
    if len(content) > cap:
        raise typer.BadParameter(f"{option}: {path} is larger than {cap:,} bytes")
    try:
        return content.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise typer.BadParameter(
            f"{option}: {path} is not UTF-8 text (byte {exc.start:,} is not valid)"
        ) from None


def _parse_data(value: str | None, option: str = "--data") -> dict[str, Any] | None:
    """``--data`` as JSON text or ``@file``: a JSON object whose fractions become exact
    Decimals (money); anything else is ``typer.BadParameter`` naming ``option``."""
    if value is None:
        return None
    limits = limits_from_env()  # the engine's limits, so both refuse the same numbers
    if value.startswith("@"):
        # The limit is on compact JSON; a file may be indented.
        text = _read_argument_file(value[1:], option, 4 * limits.max_data_bytes)
    else:
        text = value
    digits = limits.max_number_digits
    try:
        data = json.loads(
            text,
            parse_int=lambda literal: _json_int(literal, digits),
            parse_float=lambda literal: _json_decimal(literal, digits),
            parse_constant=_json_constant,
        )
    except json.JSONDecodeError as exc:
        raise typer.BadParameter(f"{option} is not valid JSON: {exc}") from None
    except _RefusedNumber as exc:
        raise typer.BadParameter(f"{option} holds {exc}") from None
    except RecursionError:
        raise typer.BadParameter(f"{option} nests lists or objects too deeply") from None
    if not isinstance(data, dict):
        raise typer.BadParameter(f"{option} must be a JSON object")
    _no_lone_surrogates(data, option)
    return data


def _groups(value: str | None) -> list[str]:
    return [g.strip() for g in (value or "").split(",") if g.strip()]


DataOption = Annotated[str | None, typer.Option("--data", help="Task data as JSON, or @file.json.")]
UserOption = Annotated[str, typer.Option("--user", callback=_name, help="The acting user's id.")]
ActorOption = Annotated[str | None, typer.Option("--user", callback=_name, help="Who acts.")]
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


@app.command()
def tasks(
    group: Annotated[list[str] | None, typer.Option("--group", help="Candidate group.")] = None,
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
    to: Annotated[str, typer.Option("--to", callback=_name, help="The user who takes over.")],
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
    limit: LimitOption = 50,
    offset: OffsetOption = 0,
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
    user: ActorOption = None,
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
    user: ActorOption = None,
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
    if not 1970 <= parsed.year <= 9000:  # due times computed from it must stay in range
        raise typer.BadParameter(f"--now must be between the years 1970 and 9000: {value!r}")
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
    worker_id: Annotated[
        str | None, typer.Option("--id", callback=_name, help="Worker id (lock owner).")
    ] = None,
    lock_seconds: Annotated[
        float,
        typer.Option(
            "--lock-seconds",
            callback=_seconds(allow_zero=False),
            help="How long a claimed job stays locked.",
        ),
    ] = 300.0,
    poll: Annotated[
        float,
        typer.Option(
            "--poll",
            callback=_seconds(allow_zero=False, high=MAX_POLL_SECONDS),
            help="Seconds between polls when idle.",
        ),
    ] = 1.0,
    batch: Annotated[
        int,
        typer.Option("--batch", callback=_whole(1, MAX_BATCH), help="Jobs claimed at a time."),
    ] = 20,
    grace: Annotated[
        float,
        typer.Option(
            "--grace",
            callback=_seconds(allow_zero=True, high=MAX_POLL_SECONDS),
            help="Seconds a step may run on after SIGTERM before it is interrupted "
            "(nothing of it written, its job given back).",
        ),
    ] = DEFAULT_GRACE,
    as_json: JsonOption = False,
) -> None:
    """Fire due timers, call services, deliver messages; one line per job. Stops cleanly
    on SIGTERM or Ctrl-C after the job in hand, interrupting a step still running after
    --grace seconds."""
    import importlib
    import signal

    from bankflow._clock import FixedClock

    at = _when(now)
    engine = Engine(_db_url(), clock=FixedClock(at) if at is not None else None)
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
            grace=grace,
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
        str | None,
        typer.Option("--kind", callback=_one_of(JOB_KINDS), help=", ".join(JOB_KINDS) + "."),
    ] = None,
    status: Annotated[
        str | None,
        typer.Option("--status", callback=_one_of(JOB_STATUSES), help="ready, held or incident."),
    ] = None,
    instance: Annotated[str | None, typer.Option("--instance")] = None,
    limit: LimitOption = 50,
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
    limit: LimitOption = 100,
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
    user: ActorOption = None,
    as_json: JsonOption = False,
) -> None:
    """Deliver a message to the instance waiting for it (or start one)."""
    matching = _parse_data(correlation, "--correlation")
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
    from bankflow.definitions._source import MAX_FILE_BYTES, SourceFile, parse
    from bankflow.language._decisions import evaluate_graph
    from bankflow.language._dmn import parse_dmn

    try:
        with file.open("rb") as handle:  # bounded: `decide /dev/zero` must not hang
            content = handle.read(MAX_FILE_BYTES + 1)
    except OSError as exc:
        raise typer.BadParameter(f"cannot read {file}: {exc.strerror or exc}") from None
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
    retries: Annotated[
        int,
        typer.Option(
            "--retries", callback=_whole(0, MAX_RETRIES), help="Retries left (0: incident)."
        ),
    ],
    retry_seconds: Annotated[
        float, typer.Option("--retry-seconds", callback=_seconds(allow_zero=True))
    ] = 0.0,
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
    seconds: Annotated[
        float,
        typer.Option(
            "--seconds", callback=_seconds(allow_zero=False), help="New lock duration from now."
        ),
    ],
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


# typer re-exports click's BadParameter; its base is the UsageError every usage mistake
# raises (click vendored inside typer, or the click package in older typer releases).
_UsageError: type[Exception] = next(
    c for c in typer.BadParameter.__mro__ if c.__name__ == "UsageError"
)


def _one_line(text: str) -> str:
    """``text`` as one printable line: lines joined, control characters and lone
    surrogates escaped (an id from the shell may hold a newline or a terminal escape)."""
    flat = " ".join(part.strip() for part in text.splitlines() if part.strip())
    flat = flat.encode("utf-8", "backslashreplace").decode("utf-8")
    return "".join(
        c if c.isprintable() else c.encode("unicode_escape").decode("ascii") for c in flat
    )


def _error(message: str) -> None:
    err.print(f"[red]error:[/red] {escape(_one_line(message))}", markup=True, emoji=False)


def _usage_message(exc: Exception) -> str:
    """click's message for a usage error, naming the option without click's quotes."""
    param = getattr(exc, "param", None)
    message = getattr(exc, "message", "")
    if param is None and message and isinstance(exc, typer.BadParameter):
        hint = getattr(exc, "param_hint", None)  # else the message names the option itself
        return f"{hint}: {message}" if isinstance(hint, str) else str(message)
    if param is None or not message:
        format_message: Callable[[], str] = getattr(exc, "format_message", lambda: str(exc))
        return format_message()
    if getattr(param, "param_type_name", "") == "argument":
        hint = f"argument {str(param.name).upper()}"
    else:
        hint = " / ".join(getattr(param, "opts", ())) or str(param.name)
    return f"{hint}: {message}"


def _refuse_bad_text(command: Any) -> None:
    """Make every parameter of ``command`` and its subcommands refuse text that is not
    valid UTF-8 before converting it: argv bytes that are not UTF-8 reach Python as lone
    surrogates, which SQLite and PostgreSQL drivers fail on in different ways."""
    for param in getattr(command, "params", ()):
        process = param.process_value

        def checked(ctx: Any, value: Any, _process: Any = process, _param: Any = param) -> Any:
            values = value if isinstance(value, list | tuple) else [value]
            if not all(_is_text(v) for v in values if isinstance(v, str)):
                raise typer.BadParameter(
                    "holds text that is not valid UTF-8", ctx=ctx, param=_param
                )
            return _process(ctx, value)

        param.process_value = checked
    for subcommand in getattr(command, "commands", {}).values():
        _refuse_bad_text(subcommand)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI and return its exit code; whatever goes wrong is one line on stderr:
    2 for a usage error, 1 for a ``BankflowError``, 1 and "internal error" for anything
    else (a bug: ``BANKFLOW_DEBUG=1`` lets its traceback through)."""
    args = list(sys.argv[1:] if argv is None else argv)
    try:
        command = typer.main.get_command(app)
        _refuse_bad_text(command)
        result = command.main(args=args, prog_name="bankflow", standalone_mode=False)
    except SystemExit as exc:
        return exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    except _UsageError as exc:
        if type(exc).__name__ != "NoArgsIsHelpError":  # the help text is already out
            _error(_usage_message(exc))
        return int(getattr(exc, "exit_code", 2))
    except DefinitionError as exc:  # the first line, then one line per diagnostic
        err.print(f"[red]error:[/red] {escape(str(exc))}", markup=True, emoji=False)
        return 1
    except BankflowError as exc:
        _error(str(exc))
        return 1
    except KeyboardInterrupt:
        err.print("aborted")
        return 130
    except typer.Abort:
        err.print("aborted")
        return 1
    except Exception as exc:
        if os.environ.get(DEBUG_ENV, "").strip() not in ("", "0"):
            raise
        _error(
            f"internal error: {type(exc).__name__}: {exc} — please report this "
            f"({DEBUG_ENV}=1 shows the traceback)"
        )
        return 1
    return result if isinstance(result, int) else 0


def _entry() -> None:  # pragma: no cover - console script
    raise SystemExit(main())


__all__ = ["app", "database_url", "main"]
