"""Ids that start with a given prefix, for callers that let people type a short id (the CLI
accepts any unique prefix, as git does)."""

from __future__ import annotations

from sqlalchemy import Connection, select

from bankflow.persistence._schema import InstanceRow, JobRow, TaskRow

__all__ = ["ID_KINDS", "ids_with_prefix"]

# Where each kind of id lives: an incident is a failed instance's id or an incident job's.
ID_KINDS = {
    "instance": (InstanceRow,),
    "task": (TaskRow,),
    "external task": (JobRow,),
    "incident": (InstanceRow, JobRow),
    "job": (JobRow,),
}


def ids_with_prefix(conn: Connection, kind: str, prefix: str, *, limit: int) -> list[str]:
    """Up to ``limit`` ids of ``kind`` starting with ``prefix``, in id order. The prefix
    holds hex digits and dashes only (the caller checks), so no LIKE wildcard."""
    found: list[str] = []
    for table in ID_KINDS[kind]:
        column = table.__table__.c.id
        rows = conn.execute(
            select(column).where(column.like(prefix + "%")).order_by(column).limit(limit)
        )
        found += [row[0] for row in rows if row[0] not in found]
    return found
