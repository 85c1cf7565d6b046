"""``bankflow db``: the database schema."""

from __future__ import annotations

import typer

from bankflow.cli._common import JsonOption, _dump, _engine, out

db_app = typer.Typer(help="Database schema.", no_args_is_help=True)


@db_app.command("upgrade")
def db_upgrade(as_json: JsonOption = False) -> None:
    """Apply pending schema migrations (safe to run from several processes)."""
    with _engine(migrate=True) as engine:
        where = engine.url.split("@")[-1]
    if as_json:
        _dump({"ok": True, "database": where})
    else:
        out.print(f"database {where} is at the latest schema")
