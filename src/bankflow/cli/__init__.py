"""``bankflow``: the command line. Every command has ``--json``; every error is one line
on stderr naming what is wrong, with no traceback (under ``--json``, one JSON object
``{"error": {"type", "message", ...}}``): exit 2 for a usage error (an unknown option, a
value out of range, data that is not a JSON object), exit 1 for what the engine refused,
and exit 1 with "internal error" for a bug (``BANKFLOW_DEBUG=1`` shows it). docs/cli.md
holds the table scripts rely on.

One module per noun (``definitions``, ``instances``, ``tasks``, ``history``, ``jobs``,
``messages``, ``external``, ``db``) holds its commands; ``_common`` what they share;
``_app`` the root command, the order ``--help`` lists commands in, and ``main``. A new
command is a function in its noun's module and a line in ``_app``."""

from bankflow.cli._app import _entry as _entry  # the console script (pyproject.toml)
from bankflow.cli._app import app, main
from bankflow.engine import database_url

__all__ = ["app", "database_url", "main"]
