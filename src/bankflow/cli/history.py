"""The audit trail: history."""

from __future__ import annotations

from typing import Annotated

import typer

from bankflow.cli._common import JsonOption, _dump, _engine, _history_table, _known_instance, out


def history(
    instance_id: Annotated[str | None, typer.Argument()] = None,
    actor: Annotated[str | None, typer.Option("--actor", help="Everything one user did.")] = None,
    as_json: JsonOption = False,
) -> None:
    """The audit trail of an instance, or of one actor."""
    if (instance_id is None) == (actor is None):
        raise typer.BadParameter("give an INSTANCE_ID or --actor")
    with _engine() as engine:
        instance_id = _known_instance(engine, instance_id)  # unknown: refused, not empty
        events = (
            engine.history.for_instance(instance_id)
            if instance_id is not None
            else engine.history.for_actor(actor or "")
        )
    if as_json:
        _dump(events)
    elif instance_id is not None:
        from bankflow.cli._trail import trail  # the path's events read as words

        out.print(trail(events))
    else:
        out.print(_history_table(events))
