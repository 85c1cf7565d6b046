"""``engine.history``: the append-only audit trail, per instance and per actor."""

from __future__ import annotations

from sqlalchemy.engine import RowMapping

from bankflow import _inputs
from bankflow.models import Event
from bankflow.persistence import Database
from bankflow.persistence._runtime import RuntimeStore
from bankflow.runtime import _spiff

__all__ = ["History"]


class History:
    def __init__(self, db: Database) -> None:
        self._db = db
        self._store = RuntimeStore()

    def for_instance(self, instance_id: str, *, limit: int = 1000, offset: int = 0) -> list[Event]:
        """Oldest first; ``limit`` at most 10,000. An id that is not one is ``NotFound``."""
        _inputs.require_id(instance_id, "instance")
        limit, offset = _inputs.page(limit, offset)
        with self._db.connect() as session:
            rows = self._store.events(session, instance_id=instance_id, limit=limit, offset=offset)
        return [_model(r) for r in rows]

    def for_actor(self, actor: str, *, limit: int = 1000, offset: int = 0) -> list[Event]:
        """Oldest first; ``limit`` at most 10,000. A name no actor can have matches nothing."""
        limit, offset = _inputs.page(limit, offset)
        if not _inputs.is_name(actor):
            return []
        with self._db.connect() as session:
            rows = self._store.events(session, actor=actor, limit=limit, offset=offset)
        return [_model(r) for r in rows]


def _model(row: RowMapping) -> Event:
    data = row["data"]
    return Event(
        id=row["id"],
        instance_id=row["instance_id"],
        process_key=row["process_key"],
        business_key=row["business_key"],
        type=row["type"],
        element_id=row["element_id"],
        task_id=row["task_id"],
        actor=row["actor"],
        at=row["at"],
        data=None if data is None else _spiff.restore_data(data),
    )
