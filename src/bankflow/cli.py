"""``bankflow``: the command line. Every listing has ``--json``; every error is one line
naming what is wrong, with a non-zero exit and no traceback."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any

import typer
from pydantic import BaseModel
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from bankflow.engine import Engine, database_url
from bankflow.errors import BankflowError, DefinitionError
from bankflow.models import Diagnostic, Severity

app = typer.Typer(
    name="bankflow",
    help="Run a bank's standardized procedures as BPMN 2.0 processes.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
db_app = typer.Typer(help="Database schema.", no_args_is_help=True)
app.add_typer(db_app, name="db")

out = Console(highlight=False, soft_wrap=True)
err = Console(stderr=True, highlight=False, soft_wrap=True)


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
