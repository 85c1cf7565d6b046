"""Commands that broadcast to every waiting instance: signal."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.markup import escape

from bankflow.cli._common import (
    ActorOption,
    DataOption,
    JsonOption,
    _dump,
    _engine,
    _parse_data,
    _print_instance,
    out,
)


def signal(
    name: Annotated[str, typer.Argument(help="The signal name.")],
    data: DataOption = None,
    user: ActorOption = None,
    as_json: JsonOption = False,
) -> None:
    """Broadcast a signal: every instance waiting for it catches it, and every process
    whose start event catches it starts (nobody waiting is no error)."""
    with _engine() as engine:
        result = engine.signals.broadcast(name, data=_parse_data(data), user=user)
    if as_json:
        _dump(result)
        return
    if not result.reached and not result.started:
        out.print(f"signal {escape(repr(name))}: nobody waits for it and no process starts with it")
    for instance in result.reached:
        out.print("reached: ", end="")
        _print_instance(instance)
    for instance in result.started:
        out.print("started: ", end="")
        _print_instance(instance)
