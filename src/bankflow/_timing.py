"""Time arithmetic for jobs: when a timer start event next fires, how long a failed job
waits before its next attempt. Pure functions; ISO 8601 parsing is isodate's."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import isodate

__all__ = ["DEFAULT_RETRIES", "backoff", "next_start", "retries", "start_timer"]

DEFAULT_RETRIES = 3
# Without ``camunda:failedJobRetryTimeCycle``: 10 s, 40 s, 160 s ... capped at an hour.
_FIRST_BACKOFF = timedelta(seconds=10)
_MAX_BACKOFF = timedelta(hours=1)


def _duration(text: str, start: datetime | None = None) -> timedelta:
    """``text`` as a timedelta; months and years counted on the calendar from ``start``
    (P1M from 31 January is 28 or 29 days)."""
    value = isodate.parse_duration(text.strip())
    if isinstance(value, isodate.Duration):
        value = value.totimedelta(start=start or datetime(2000, 1, 1, tzinfo=UTC))
    if not isinstance(value, timedelta) or value <= timedelta(0):
        raise ValueError(f"not a positive duration: {text!r}")
    return value


def _intervals(cycle: str | None) -> tuple[int | None, list[timedelta]]:
    """``R5/PT5M`` -> (5, [5 min]); ``PT1M,PT5M,PT10M`` -> (3, [...]); else (None, [])."""
    if not cycle:
        return None, []
    text = cycle.strip()
    try:
        if text.upper().startswith("R"):
            head, _, tail = text[1:].partition("/")
            return (int(head) if head.isdigit() else None), [_duration(tail)]
        parts = [_duration(p) for p in text.split(",") if p.strip()]
        return len(parts), parts
    except (ValueError, isodate.ISO8601Error):
        return None, []


def retries(cycle: str | None) -> int:
    """How many attempts a service job gets in all."""
    count, _ = _intervals(cycle)
    return count if count and count > 0 else DEFAULT_RETRIES


def backoff(cycle: str | None, attempt: int) -> timedelta:
    """The wait after failed attempt number ``attempt`` (1-based)."""
    _, intervals = _intervals(cycle)
    if intervals:
        chosen: timedelta = intervals[min(attempt, len(intervals)) - 1]
        return chosen
    factor: int = 4 ** max(attempt - 1, 0)
    return min(_FIRST_BACKOFF * factor, _MAX_BACKOFF)


def start_timer(trigger: dict[str, Any], now: datetime) -> tuple[datetime, dict[str, Any]] | None:
    """First due time of a timer start event, and what to remember for the next cycles;
    None when the timer never fires (a date in the past, an expression we cannot read)."""
    kind, value = trigger.get("type"), str(trigger.get("value") or "")
    try:
        if kind == "timeDate":
            when = isodate.parse_datetime(value)
            when = when.replace(tzinfo=UTC) if when.tzinfo is None else when.astimezone(UTC)
            return (when, {"cycles": 0}) if when >= now else None
        if kind == "timeDuration":
            return now + _duration(value, now), {"cycles": 0}
        if kind == "timeCycle":
            return _cycle(value, now)
    except (ValueError, isodate.ISO8601Error):
        return None
    return None


def _cycle(value: str, now: datetime) -> tuple[datetime, dict[str, Any]] | None:
    if not value.upper().startswith("R"):
        return None
    head, _, rest = value[1:].partition("/")
    cycles = int(head) if head.isdigit() else -1
    if cycles == 0:
        return None
    parts = rest.split("/")
    if len(parts) == 2:  # R3/2026-12-01T09:00:00Z/P1D
        start = isodate.parse_datetime(parts[0])
        start = start.replace(tzinfo=UTC) if start.tzinfo is None else start.astimezone(UTC)
        step = _duration(parts[1])
        if start < now:  # skip the repetitions that are over, computed (not one by one)
            over = -((start - now) // step)
            if cycles > 0:
                over = min(over, cycles)
                cycles -= over
            start += step * over
        if cycles == 0:
            return None
        return start, {"cycles": cycles - 1 if cycles > 0 else -1, "step": step.total_seconds()}
    step = _duration(parts[0], now)
    return now + step, {"cycles": cycles - 1 if cycles > 0 else -1, "step": step.total_seconds()}


def next_start(due: datetime, payload: dict[str, Any]) -> tuple[datetime, dict[str, Any]] | None:
    """After a timer start fired at ``due``: the next time, or None when cycles ran out."""
    cycles = int(payload.get("cycles", 0))
    if cycles == 0 or not payload.get("step"):
        return None
    left = cycles - 1 if cycles > 0 else -1
    return due + timedelta(seconds=float(payload["step"])), {**payload, "cycles": left}
