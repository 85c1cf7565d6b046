"""Commands on jobs and what stops them: worker, jobs, incidents, retry."""

from __future__ import annotations

import sys
from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import Annotated

import typer
from rich.markup import escape

from bankflow.cli._common import (
    ActorOption,
    DataOption,
    JsonOption,
    LimitOption,
    _dump,
    _engine,
    _full_id,
    _json_text,
    _known_instance,
    _known_process,
    _name,
    _one_of,
    _parse_data,
    _print_instance,
    _Refused,
    _seconds,
    _table,
    _whole,
    err,
    out,
)
from bankflow.jobs._worker import DEFAULT_GRACE
from bankflow.models import InstanceStatus, JobOutcome

MAX_BATCH = 1_000
MAX_POLL_SECONDS = 3_600.0
JOB_KINDS = ("timer", "service", "external", "message", "signal", "start_timer")
JOB_STATUSES = ("ready", "held", "incident")


def retry(
    incident_id: Annotated[str, typer.Argument(help="A failed instance's id or an incident id.")],
    data: DataOption = None,
    user: ActorOption = None,
    as_json: JsonOption = False,
) -> None:
    """Resolve an incident: run a failed instance's step again (with --data merged in as
    the fix; a job out of retries gets a fresh set), or send a stuck message again.
    Exit 1 when the instance failed again."""
    with _engine() as engine:
        incident_id = _full_id(engine, incident_id, "incident")
        incident = engine.incidents.retry(incident_id, data=_parse_data(data), user=user)
        if incident.instance_id is None or incident.kind == "message":
            if as_json:
                _dump({"incident": incident, "instance": None})
            else:
                out.print(f"message job {incident.job_id} will be sent again")
            return
        instance = engine.instances.get(incident.instance_id)
    if as_json:
        _dump({"incident": incident, "instance": instance})
    else:
        _print_instance(instance)
    if instance.status == InstanceStatus.FAILED:
        failure = instance.failure
        where = "" if failure is None else f" at {failure.element_id}: {failure.message.strip()}"
        raise _Refused(
            "InvalidState",
            f"instance {instance.id} failed again{where}",
            instance_id=instance.id,
            failure=failure,
        )


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
        "signal": f"signal {o.topic!r}",
        "start_timer": f"timer start {o.element_id}",
    }.get(o.kind, o.kind)
    where = f" of {o.process_key}" + (f" instance {o.instance_id}" if o.instance_id else "")
    note = f": {o.message}" if o.message else ""
    return f"{o.result:<10} {what}{where}{note}"


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
    with _engine(clock=FixedClock(at) if at is not None else None) as engine:
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
                sys.stdout.write(_json_text(outcome, indent=None) + "\n")
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
        instance = _known_instance(engine, instance)
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


def incidents(
    process: Annotated[str | None, typer.Option("--process")] = None,
    limit: LimitOption = 100,
    as_json: JsonOption = False,
) -> None:
    """What stopped and needs a person; `bankflow retry ID` resolves one after the fix."""
    with _engine() as engine:
        _known_process(engine, process)
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
