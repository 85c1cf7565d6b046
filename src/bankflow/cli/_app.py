"""The ``bankflow`` command: the root app with its ``--db`` option, every command in
the order ``--help`` lists them, and ``main``, where whatever goes wrong becomes one line
on stderr and an exit code."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Sequence
from typing import Annotated, Any

import typer
from rich.markup import escape

from bankflow.cli import definitions, history, instances, jobs, messages, signals, tasks
from bankflow.cli._common import _is_text, _json_text, _Refused, _state, err
from bankflow.cli.db import db_app
from bankflow.cli.external import external_app
from bankflow.errors import BankflowError, DefinitionError

app = typer.Typer(
    name="bankflow",
    help="Run a bank's standardized procedures as BPMN 2.0 processes.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)

DEBUG_ENV = "BANKFLOW_DEBUG"


def _version(value: bool) -> None:
    if value:
        from bankflow import __version__

        sys.stdout.write(f"bankflow {__version__}\n")
        raise typer.Exit(0)


@app.callback()
def _main(
    db: Annotated[
        str | None,
        typer.Option(
            "--db",
            help="Database URL (default: $BANKFLOW_DATABASE_URL or sqlite:///bankflow.db).",
        ),
    ] = None,
    version: Annotated[
        bool,
        typer.Option(
            "--version", callback=_version, is_eager=True, help="Print the version and exit."
        ),
    ] = False,
) -> None:
    if db is not None and not db.strip():  # not silently the default file
        raise typer.BadParameter("must not be empty", param_hint="--db")
    _state.db_url = db


# ``--help`` lists commands in the order they are added: the order of a day's work, not
# of the modules that hold them. A new command is a function in its noun's module and a
# line here.
for _command in (
    definitions.validate,
    definitions.deploy,
    definitions.definitions,
    instances.start,
    tasks.tasks,
    tasks.claim,
    tasks.unclaim,
    tasks.delegate,
    tasks.complete,
    instances.show,
    instances.instances,
    history.history,
    instances.cancel,
    jobs.retry,
    jobs.worker,
    jobs.jobs,
    jobs.incidents,
    messages.message,
    signals.signal,
    definitions.decide,
):
    app.command()(_command)
app.add_typer(db_app, name="db")
app.add_typer(external_app, name="external")
app.add_typer(tasks.task_app, name="task")


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


def _json_error(type_: str, message: str, **extra: Any) -> None:
    """Under ``--json``: the error as one JSON object on one line of stderr."""
    body = {"type": type_, "message": message, **extra}
    sys.stderr.write(_json_text({"error": body}, indent=None) + "\n")
    sys.stderr.flush()


def _details(exc: BaseException) -> dict[str, Any]:
    """The public attributes an exception carries (``NotFound``'s ``kind`` and ``key``,
    ``InvalidData``'s ``errors``...), for the JSON error object."""
    return {k: v for k, v in vars(exc).items() if not k.startswith("_") and k != "args"}


def _wants_json(args: Sequence[str]) -> bool:
    """``--json`` among the options (before a ``--``): known before click parses anything,
    so even an unknown option or a missing argument is reported as JSON."""
    options = args[: args.index("--")] if "--" in args else args
    return "--json" in options


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
    _state.json = as_json = _wants_json(args)
    try:
        command = typer.main.get_command(app)
        _refuse_bad_text(command)
        result = command.main(args=args, prog_name="bankflow", standalone_mode=False)
    except SystemExit as exc:
        return exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    except _UsageError as exc:
        if type(exc).__name__ == "NoArgsIsHelpError":  # the help text is already out
            pass
        elif as_json:
            param = getattr(exc, "param", None)
            option = getattr(exc, "option_name", None) or getattr(exc, "param_hint", None)
            if param is not None:
                option = (getattr(param, "opts", None) or [param.name])[0]
            option = option if isinstance(option, str) else None
            _json_error("usage", _one_line(_usage_message(exc)), option=option)
        else:
            _error(_usage_message(exc))
        return int(getattr(exc, "exit_code", 2))
    except _Refused as exc:
        if as_json:
            _json_error(exc.type, str(exc), **exc.extra)
        elif not exc.shown:
            _error(str(exc))
        return 1
    except DefinitionError as exc:  # the first line, then one line per diagnostic
        if as_json:
            _json_error(type(exc).__name__, str(exc).splitlines()[0], **_details(exc))
        else:
            err.print(f"[red]error:[/red] {escape(str(exc))}", markup=True, emoji=False)
        return 1
    except BankflowError as exc:
        if as_json:
            _json_error(type(exc).__name__, str(exc), **_details(exc))
        else:
            _error(str(exc))
        return 1
    except KeyboardInterrupt:
        if as_json:
            _json_error("aborted", "aborted")
        else:
            err.print("aborted")
        return 130
    except typer.Abort:
        if as_json:
            _json_error("aborted", "aborted")
        else:
            err.print("aborted")
        return 1
    except Exception as exc:
        if os.environ.get(DEBUG_ENV, "").strip() not in ("", "0"):
            raise
        if as_json:
            _json_error(
                "internal",
                f"internal error: {type(exc).__name__}: {exc} — please report this "
                f"({DEBUG_ENV}=1 shows the traceback)",
                exception=type(exc).__name__,
            )
            return 1
        _error(
            f"internal error: {type(exc).__name__}: {exc} — please report this "
            f"({DEBUG_ENV}=1 shows the traceback)"
        )
        return 1
    return result if isinstance(result, int) else 0


def _entry() -> None:  # pragma: no cover - console script
    raise SystemExit(main())
