"""Job time arithmetic: attempts and backoff of failing jobs, the schedule of timer starts."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from bankflow._timing import DEFAULT_RETRIES, backoff, next_start, retries, start_timer

NOW = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)
HOUR = timedelta(hours=1)


# -- retries and backoff --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("cycle", "expected"),
    [
        ("R5/PT5M", 5),
        ("R1/PT10S", 1),
        (" R12/PT1H ", 12),
        ("PT1M,PT5M,PT10M", 3),
        ("PT30S", 1),
        (None, DEFAULT_RETRIES),
        ("", DEFAULT_RETRIES),
        ("R/PT5M", DEFAULT_RETRIES),  # no count: the default
        ("R0/PT5M", DEFAULT_RETRIES),
        ("R5/soon", DEFAULT_RETRIES),
        ("every five minutes", DEFAULT_RETRIES),
        ("PT1M,PT0S", DEFAULT_RETRIES),  # a zero wait is not a backoff
    ],
)
def test_retries(cycle: str | None, expected: int) -> None:
    assert retries(cycle) == expected


def test_default_is_three_attempts() -> None:
    assert DEFAULT_RETRIES == 3


def test_default_backoff_grows_fourfold_up_to_an_hour() -> None:
    waits = [backoff(None, attempt) for attempt in range(1, 8)]
    assert waits == [
        timedelta(seconds=10),
        timedelta(seconds=40),
        timedelta(seconds=160),
        timedelta(seconds=640),
        timedelta(seconds=2560),
        timedelta(hours=1),
        timedelta(hours=1),
    ]
    assert backoff(None, 0) == timedelta(seconds=10)
    assert backoff("not a cycle", 2) == timedelta(seconds=40)


def test_repeating_cycle_waits_the_same_each_time() -> None:
    assert [backoff("R5/PT5M", n) for n in range(1, 6)] == [timedelta(minutes=5)] * 5


def test_list_of_waits_is_followed_then_its_last_repeats() -> None:
    cycle = "PT1M,PT5M,PT10M"
    assert [backoff(cycle, n) for n in range(1, 6)] == [
        timedelta(minutes=1),
        timedelta(minutes=5),
        timedelta(minutes=10),
        timedelta(minutes=10),
        timedelta(minutes=10),
    ]


def test_calendar_durations_are_whole_days() -> None:
    assert backoff("R2/P1D", 1) == timedelta(days=1)
    assert backoff("R2/P1W", 1) == timedelta(weeks=1)


# -- timer start events -----------------------------------------------------------------------


def trigger(kind: str, value: str) -> dict[str, Any]:
    return {"kind": "timer", "type": kind, "value": value}


def test_time_date_in_the_future_fires_once() -> None:
    when = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)
    assert start_timer(trigger("timeDate", "2026-12-01T09:00:00Z"), NOW) == (when, {"cycles": 0})
    assert next_start(when, {"cycles": 0}) is None


def test_time_date_offsets_and_naive_dates() -> None:
    # An offset is converted to UTC; a date without one is read as UTC.
    assert start_timer(trigger("timeDate", "2026-12-01T10:00:00+01:00"), NOW) == (
        datetime(2026, 12, 1, 9, 0, tzinfo=UTC),
        {"cycles": 0},
    )
    assert start_timer(trigger("timeDate", "2026-12-01T09:00:00"), NOW) == (
        datetime(2026, 12, 1, 9, 0, tzinfo=UTC),
        {"cycles": 0},
    )


def test_time_date_in_the_past_never_fires() -> None:
    assert start_timer(trigger("timeDate", "2026-11-01T09:00:00Z"), NOW) is None
    # Exactly now still fires.
    assert start_timer(trigger("timeDate", "2026-11-02T09:00:00Z"), NOW) == (NOW, {"cycles": 0})


def test_time_duration_fires_once_after_deploy() -> None:
    assert start_timer(trigger("timeDuration", "PT1H"), NOW) == (NOW + HOUR, {"cycles": 0})
    assert start_timer(trigger("timeDuration", "P2D"), NOW) == (
        NOW + timedelta(days=2),
        {"cycles": 0},
    )


def test_bounded_cycle_fires_exactly_n_times() -> None:
    first = start_timer(trigger("timeCycle", "R3/PT1H"), NOW)
    assert first == (NOW + HOUR, {"cycles": 2, "step": 3600.0})
    fired = []
    state: tuple[datetime, dict[str, Any]] | None = first
    while state is not None:
        due, payload = state
        fired.append(due)
        state = next_start(due, payload)
    assert fired == [NOW + HOUR, NOW + 2 * HOUR, NOW + 3 * HOUR]


def test_single_cycle_fires_once() -> None:
    first = start_timer(trigger("timeCycle", "R1/PT1H"), NOW)
    assert first == (NOW + HOUR, {"cycles": 0, "step": 3600.0})
    assert next_start(*first) is None


def test_unbounded_cycle_goes_on() -> None:
    first = start_timer(trigger("timeCycle", "R/PT24H"), NOW)
    assert first == (NOW + 24 * HOUR, {"cycles": -1, "step": 86400.0})
    due, payload = first
    for day in range(2, 50):
        following = next_start(due, payload)
        assert following is not None
        due, payload = following
        assert (due, payload["cycles"]) == (NOW + day * 24 * HOUR, -1)


def test_cycle_with_a_start_date_in_the_future() -> None:
    start = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)
    assert start_timer(trigger("timeCycle", "R3/2026-12-01T09:00:00Z/P1D"), NOW) == (
        start,
        {"cycles": 2, "step": 86400.0},
    )


def test_cycle_with_a_start_date_in_the_past_skips_what_is_over() -> None:
    value = "R3/2026-11-01T00:00:00Z/P1D"
    # Nov 1 and 2 (00:00) are over at 09:00 on Nov 2: one repetition is left, on Nov 3.
    assert start_timer(trigger("timeCycle", value), NOW) == (
        datetime(2026, 11, 3, 0, 0, tzinfo=UTC),
        {"cycles": 0, "step": 86400.0},
    )
    # All three over.
    assert start_timer(trigger("timeCycle", value), datetime(2026, 11, 4, 1, tzinfo=UTC)) is None
    # A repetition due exactly now is not over.
    assert start_timer(trigger("timeCycle", value), datetime(2026, 11, 2, tzinfo=UTC)) == (
        datetime(2026, 11, 2, tzinfo=UTC),
        {"cycles": 1, "step": 86400.0},
    )


def test_unbounded_cycle_from_long_ago_is_computed_not_counted() -> None:
    """An old start with a short step must not take a step at a time (a deploy would hang)."""
    began = time.perf_counter()
    found = start_timer(trigger("timeCycle", "R/2000-01-01T00:00:00Z/PT1S"), NOW)
    assert time.perf_counter() - began < 1.0
    assert found == (NOW, {"cycles": -1, "step": 1.0})
    found = start_timer(trigger("timeCycle", "R/2000-01-01T00:00:00Z/PT7S"), NOW)
    assert found is not None
    due, _ = found
    assert NOW <= due < NOW + timedelta(seconds=7)
    assert (due - datetime(2000, 1, 1, tzinfo=UTC)) % timedelta(seconds=7) == timedelta(0)
    bounded = start_timer(trigger("timeCycle", "R900000000/2000-01-01T00:00:00Z/PT1S"), NOW)
    assert bounded is not None
    assert bounded[0] == NOW
    elapsed = int((NOW - datetime(2000, 1, 1, tzinfo=UTC)).total_seconds())
    assert bounded[1] == {"cycles": 900_000_000 - elapsed - 1, "step": 1.0}


@pytest.mark.parametrize(
    ("kind", "value"),
    [
        ("timeCycle", "R0/PT1H"),  # zero repetitions
        ("timeCycle", "0 0 9 * * ?"),  # cron is not read
        ("timeCycle", "R3/soon"),
        ("timeDuration", "an hour"),
        ("timeDuration", "PT0S"),
        ("timeDuration", "-PT1H"),
        ("timeDate", "tomorrow"),
        ("timeDate", ""),
        ("somethingElse", "PT1H"),
    ],
)
def test_unreadable_or_empty_schedules_never_fire(kind: str, value: str) -> None:
    assert start_timer(trigger(kind, value), NOW) is None


def test_next_start_without_a_step_is_over() -> None:
    assert next_start(NOW, {}) is None
    assert next_start(NOW, {"cycles": 5}) is None
    assert next_start(NOW, {"cycles": 0, "step": 60.0}) is None
    assert next_start(NOW, {"cycles": 2, "step": 60.0}) == (
        NOW + timedelta(minutes=1),
        {"cycles": 1, "step": 60.0},
    )


def test_a_month_is_counted_on_the_calendar() -> None:
    february = datetime(2026, 2, 1, tzinfo=UTC)
    assert start_timer({"type": "timeDuration", "value": "P1M"}, february) == (
        datetime(2026, 3, 1, tzinfo=UTC),
        {"cycles": 0},
    )
    january = datetime(2026, 1, 1, tzinfo=UTC)
    assert start_timer({"type": "timeDuration", "value": "P1M"}, january)[0] == datetime(  # type: ignore[index]
        2026, 2, 1, tzinfo=UTC
    )
