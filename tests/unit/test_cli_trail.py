"""``bankflow history ID`` prints the path's events in words, one line each (issue 11)."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from bankflow.cli._trail import said
from bankflow.models import Event


def event(kind: str, data: dict[str, Any] | None) -> Event:
    return Event(
        id=1,
        instance_id="i",
        process_key="loan",
        business_key=None,
        type=kind,
        element_id="e",
        task_id=None,
        actor=None,
        at=datetime(2026, 12, 1, tzinfo=UTC),
        data=data,
    )


def test_the_path_reads_as_words() -> None:
    taken = {"flows": ["split_to_a", "split_to_b"], "targets": ["a", "b"]}
    assert said(event("gateway_taken", taken)) == "split_to_a -> a, split_to_b -> b"
    changed = {"set": {"score": 800, "rate": Decimal("3.25"), "note": "ok"}, "removed": ["draft"]}
    assert said(event("data_changed", changed)) == (
        'score=800, rate=3.25, note="ok"; removed draft'
    )
    too_big = {"set": {}, "removed": [], "omitted": ["documents"]}
    assert said(event("data_changed", too_big)) == "set (too large to keep) documents"
    assert said(event("end_event_reached", None)) == ""
    assert said(event("task_completed", {"ok": True})) == '{"ok": true}'
