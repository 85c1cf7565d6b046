"""Commands that deliver to waiting instances: message."""

from __future__ import annotations

from typing import Annotated

import typer

from bankflow.cli._common import (
    ActorOption,
    DataOption,
    JsonOption,
    _dump,
    _engine,
    _parse_data,
    _print_instance,
)


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
