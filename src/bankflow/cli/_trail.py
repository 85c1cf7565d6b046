"""An instance's history as ``bankflow history ID`` prints it: one line per event, the
path's events (which way a gateway went, what a task wrote, which end event was reached)
in words rather than JSON, so an analyst reads the path without decoding it."""

from __future__ import annotations

import json
from collections.abc import Sequence
from decimal import Decimal
from typing import Any

from rich.table import Table

from bankflow.cli._common import _table
from bankflow.models import Event


def trail(events: Sequence[Event]) -> Table:
    table = _table("at", "event", "element", "actor", "data")
    for e in events:
        at = e.at.isoformat(timespec="seconds")
        table.add_row(at, e.type, e.element_id or "", e.actor or "", said(e))
    return table


def said(event: Event) -> str:
    """The data column of one event: ``decide_to_review -> review`` for a gateway,
    ``score=800, note="scored"; removed draft`` for a change set, JSON otherwise."""
    data: dict[str, Any] = event.data or {}
    if event.type == "gateway_taken":
        pairs = zip(data.get("flows", []), data.get("targets", []), strict=False)
        return ", ".join(f"{flow or '?'} -> {target}" for flow, target in pairs)
    if event.type == "data_changed":
        parts = [", ".join(f"{k}={_value(v)}" for k, v in data.get("set", {}).items())]
        if data.get("removed"):
            parts.append("removed " + ", ".join(data["removed"]))
        if data.get("omitted"):
            parts.append("set (too large to keep) " + ", ".join(data["omitted"]))
        return "; ".join(p for p in parts if p)
    return "" if event.data is None else json.dumps(event.data, default=str, sort_keys=True)


def _value(value: Any) -> str:
    """A value as JSON would write it, a Decimal with its exact digits."""
    if isinstance(value, Decimal):
        return str(value)
    return json.dumps(value, default=str, ensure_ascii=False, sort_keys=True)
