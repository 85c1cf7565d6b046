"""What a timer value must look like to fire: ISO 8601 as SpiffWorkflow reads it.

``timeDuration`` is a duration (``PT48H``, ``P14D``), ``timeDate`` a date-time
(``2026-12-01T09:00:00Z``, or an ISO week date) and ``timeCycle`` a repeating interval
(``R3/PT1H``, ``R/2026-12-01T09:00:00Z/P1D``). The checks accept what
``SpiffWorkflow.bpmn.specs.event_definitions.timer`` parses and nothing it would refuse
when the timer is armed (``tests/unit/test_validation_checks.py`` compares the two).
"""

from __future__ import annotations

import re
from datetime import datetime

__all__ = ["looks_like_iso", "timer_problem"]

_NUMBER = r"\d+(?:[.,]\d+)?"
_DURATION = re.compile(
    rf"^P(?:(?P<Y>{_NUMBER})Y)?(?:(?P<M>{_NUMBER})M)?(?:(?P<W>{_NUMBER})W)?(?:(?P<D>{_NUMBER})D)?"
    rf"(?P<T>T(?:(?P<h>{_NUMBER})H)?(?:(?P<m>{_NUMBER})M)?(?:(?P<s>{_NUMBER})S)?)?$"
)
_WEEK_DATE = re.compile(r"^\d{4}-?W\d{2}-?\d(T.+)?$")
# Text made only of what an ISO 8601 value is written with, starting as one does: an
# attempt at one, never a variable name an analyst meant.
_ISO_ALPHABET = re.compile(r"^(?:R\d*/|-?P|\d{4}-)[\dPTYMWDHSRZ:.,/+-]*$", re.IGNORECASE)


def looks_like_iso(text: str) -> bool:
    return bool(_ISO_ALPHABET.match(text.strip()))


def _duration_problem(text: str) -> str | None:
    match = _DURATION.match(text)
    if match is None or text in ("P", "PT"):
        return "not an ISO 8601 duration"
    parts = {k: v for k, v in match.groupdict().items() if v is not None and k != "T"}
    if not parts:
        return "an ISO 8601 duration needs at least one number (PT24H, P2D)"
    if match.group("T") is not None and not any(k in parts for k in "hms"):
        return "a T must be followed by hours, minutes or seconds (PT24H)"
    if "W" in parts and any(k in parts for k in "YMD"):
        return "weeks cannot be combined with years, months or days"
    fractions = [k for k, v in parts.items() if not v.isdigit()]
    last = list(parts)[-1]
    if fractions and fractions != [last]:
        return "only the last number of a duration may have a fraction"
    return None


def _date_problem(text: str) -> str | None:
    if _WEEK_DATE.match(text.upper()):
        try:
            year, week, day = re.match(  # type: ignore[union-attr]
                r"(\d{4})W(\d{2})(\d)", text.upper().replace("-", "")
            ).groups()
            datetime.fromisocalendar(int(year), int(week), int(day))
        except ValueError:
            return "not a valid ISO 8601 week date"
        return None
    if text[:1].upper() == "P":
        return "a duration where a date-time is expected"
    try:
        datetime.fromisoformat(text)
    except ValueError:
        return "not an ISO 8601 date-time"
    return None


def _time_or_duration_problem(text: str) -> str | None:
    return _duration_problem(text) if text[:1].upper() == "P" else _date_problem(text)


def _cycle_problem(text: str) -> str | None:
    upper = text.upper().replace("--", "/")
    if not upper.startswith("R"):
        return "a repeating interval starts with R (R3/PT1H, R/PT24H)"
    parts = upper[1:].split("/")
    if parts[0] and not parts[0].isdigit():
        return "the number of repetitions after R must be a whole number"
    if len(parts) not in (2, 3):
        return "a repeating interval is R[n]/duration, R[n]/start/duration or R[n]/duration/end"
    problems = [p for part in parts[1:] if (p := _time_or_duration_problem(part)) is not None]
    if problems:
        return problems[0]
    durations = [part.startswith("P") for part in parts[1:]]
    if durations == [True, True] or durations == [False, False] or durations == [False]:
        return "a repeating interval needs exactly one duration"
    return None


def timer_problem(kind: str, value: str) -> str | None:
    """Why ``value`` cannot be the value of a timer's ``kind`` (``timeDuration``,
    ``timeDate`` or ``timeCycle``), or None when SpiffWorkflow reads it."""
    text = value.strip()
    if kind == "timeDuration":
        if text[:1].upper() != "P":
            return "not an ISO 8601 duration (a duration starts with P: PT24H, P2D)"
        return _duration_problem(text.upper())
    if kind == "timeDate":
        return _date_problem(text)
    return _cycle_problem(text)
