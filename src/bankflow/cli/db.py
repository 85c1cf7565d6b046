"""``bankflow db``: the database schema."""

from __future__ import annotations

import typer

from bankflow.cli._common import _engine, out

db_app = typer.Typer(help="Database schema.", no_args_is_help=True)


@db_app.command("upgrade")
def db_upgrade() -> None:
    """Apply pending schema migrations (safe to run from several processes)."""
    with _engine(migrate=True) as engine:
        out.print(f"database {engine.url.split('@')[-1]} is at the latest schema")
