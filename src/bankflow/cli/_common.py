"""What every command shares: the consoles, the checks on what the shell gives, the
options used by several commands, ``--data`` parsing, opening the engine and printing
instances, tasks and history."""

from __future__ import annotations

import json
import math
import os
import re
import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from decimal import Decimal
from typing import TYPE_CHECKING, Annotated, Any, NoReturn

import typer
from pydantic import BaseModel
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from bankflow._inputs import MAX_NAME_CHARS, MAX_OFFSET
from bankflow._inputs import MAX_PAGE_SIZE as MAX_LIMIT
from bankflow._limits import limits_from_env
from bankflow.engine import Engine
from bankflow.jobs._external import MAX_DURATION
from bankflow.models import Event, Instance, Task

if TYPE_CHECKING:
    from bankflow._clock import Clock

# Piped output is read by people in CI logs too: give tables room instead of 80 columns.
_WIDTH = None if sys.stdout.isatty() else 160
out = Console(highlight=False, soft_wrap=True, width=_WIDTH)
err = Console(stderr=True, highlight=False, soft_wrap=True, width=_WIDTH)


class _State:
    db_url: str | None = None
    json: bool = False  # --json given: errors are one JSON object on stderr


_state = _State()


# -- checking what the shell gives -----------------------------------------------------
# Every value is checked before an engine is opened, so a bad one is one line and exit 2
# on every database: SQLite takes a negative LIMIT as "no limit" where PostgreSQL refuses
# it, and a 20-digit number overflows a column on one and not the other.

MAX_SECONDS = MAX_DURATION.total_seconds()


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


def _db_url() -> str | None:
    """``--db``, else ``$BANKFLOW_DATABASE_URL`` (checked here: it bypasses the options)."""
    from_env = os.environ.get("BANKFLOW_DATABASE_URL")
    if _state.db_url is None and from_env and not _is_text(from_env):
        raise typer.BadParameter("BANKFLOW_DATABASE_URL holds text that is not valid UTF-8")
    return _state.db_url


@contextmanager
def _engine(*, migrate: bool | None = None, clock: Clock | None = None) -> Iterator[Engine]:
    engine = Engine(_db_url(), clock=clock, migrate=migrate)
    try:
        yield engine
    finally:
        engine.close()


class _Refused(Exception):
    """A refusal the CLI itself makes (``retry`` leaving its instance failed, ``validate``
    finding errors): exit 1, and under ``--json`` one error object of ``type`` with
    ``extra`` on stderr. ``shown`` is False where the text output already said it."""

    def __init__(self, type_: str, message: str, *, shown: bool = False, **extra: Any) -> None:
        super().__init__(message)
        self.type = type_
        self.extra = extra
        self.shown = shown


# -- JSON output -------------------------------------------------------------------------
# Money is Decimal: it is written as a JSON number with exactly its digits (8000.10 stays
# 8000.10), never a string ("8000.10") nor a float (8000.1). Everything else is written
# as pydantic writes it in JSON mode (datetimes as ISO 8601 with "Z", enums as values).


def _plain(value: Any) -> Any:
    """``value`` as dicts, lists, str, int, float, bool, None and Decimal."""
    if isinstance(value, BaseModel):
        return _plain(value.model_dump(mode="python"))
    if isinstance(value, dict):
        return {str(_plain(k)): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [_plain(v) for v in value]
    if value is None or isinstance(value, str | bool | int | float | Decimal):
        return value
    from pydantic_core import to_jsonable_python

    try:
        return to_jsonable_python(value)
    except Exception:  # no JSON form pydantic knows of
        return str(value)


def _number(value: Decimal) -> str:
    if value.is_finite():
        return str(value)  # "8000.10", "1E+2", "-0": all JSON numbers
    return json.dumps(str(value))  # NaN and infinities have no JSON number: a string


def _json_text(data: Any, *, indent: int | None = 2) -> str:
    """``data`` as JSON text, Decimals as numbers with their exact digits."""

    def write(value: Any, depth: int) -> str:
        if isinstance(value, Decimal):
            return _number(value)
        if isinstance(value, dict) and value:
            items = [f"{json.dumps(k)}: {write(v, depth + 1)}" for k, v in value.items()]
        elif isinstance(value, list) and value:
            items = [write(v, depth + 1) for v in value]
        else:
            return json.dumps(value)
        opening, closing = ("{", "}") if isinstance(value, dict) else ("[", "]")
        if indent is None:
            return opening + ", ".join(items) + closing
        inner = "\n" + " " * (indent * (depth + 1))
        return opening + inner + ("," + inner).join(items) + "\n" + " " * indent * depth + closing

    return write(_plain(data), 0)


# -- ids: any unique prefix of one, as git takes a commit's -----------------------------

MIN_PREFIX = 4  # as git: shorter is too easily a typo that still matches something
_PREFIX = re.compile(rf"[0-9a-f][0-9a-f-]{{{MIN_PREFIX - 1},34}}")


def _full_id(engine: Engine, value: str, kind: str) -> str:
    """``value`` when it is a whole id; else the one ``kind`` id it is a prefix of (4 to 35
    characters); an ambiguous prefix is refused (exit 1) naming the candidates. A value
    that is no prefix of any id is returned as it is, for the engine to report."""
    from bankflow import _inputs

    if _inputs.is_id(value) or _PREFIX.fullmatch(value) is None:
        return value
    found = engine.ids_starting_with(kind, value)
    if len(found) == 1:
        return found[0]
    if not found:
        return value
    shown = ", ".join(found[:10]) + (", ..." if len(found) > 10 else "")
    raise _Refused(
        "NotFound",
        f"{kind} id prefix {value!r} is ambiguous: it starts {shown}",
        kind=kind,
        key=value,
        candidates=found[:10],
    )


def _known_instance(engine: Engine, instance_id: str | None) -> str | None:
    """The whole id of the instance a filter or argument names (a unique prefix of it will
    do); one that does not exist is refused (exit 1), not answered with an empty list: it
    is most likely a typo."""
    if instance_id is None:
        return None
    return engine.instances.get(_full_id(engine, instance_id, "instance")).id  # or NotFound


def _known_process(engine: Engine, process_key: str | None) -> None:
    """A ``--process`` filter naming no deployed process is refused, as an unknown id is."""
    if process_key is not None:
        engine.definitions.get(process_key)  # NotFound


def _dump(data: Any) -> None:
    sys.stdout.write(_json_text(data) + "\n")


# Ids are copied from a table into the next command: a column of them never wraps.
_ID_COLUMNS = frozenset({"task", "instance", "job", "incident"})


def _table(*columns: str) -> Table:
    table = Table()
    for column in columns:
        if column in _ID_COLUMNS:
            table.add_column(column, no_wrap=True, overflow="ignore")
        else:
            table.add_column(column, overflow="fold")
    return table


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


DataOption = Annotated[str | None, typer.Option("--data", help="Task data as JSON, or @file.json.")]
GroupOption = Annotated[
    list[str] | None,
    typer.Option(
        "--group",
        "--groups",
        help="A group of the acting user: repeatable and comma-separated "
        "(--group a,b is --group a --group b).",
    ),
]


def _groups(values: Sequence[str] | None) -> list[str]:
    """``--group a,b --group c`` as ``["a", "b", "c"]``, without blanks or repeats."""
    found: list[str] = []
    for value in values or ():
        for group in value.split(","):
            if group.strip() and group.strip() not in found:
                found.append(group.strip())
    return found


ActorOption = Annotated[str | None, typer.Option("--user", callback=_name, help="Who acts.")]


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


def _sorted(data: dict[str, Any]) -> dict[str, Any]:
    return dict(sorted(data.items()))


def _history_table(events: Sequence[Event]) -> Table:
    table = _table("at", "event", "element", "actor", "data")
    for e in events:
        table.add_row(
            e.at.isoformat(timespec="seconds"),
            e.type,
            e.element_id or "",
            e.actor or "",
            "" if e.data is None else _json_text(_sorted(e.data), indent=None),
        )
    return table
