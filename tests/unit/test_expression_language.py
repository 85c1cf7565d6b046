"""What the sandboxed expression language allows, and how it reports what it refuses."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import pytest

from bankflow.language._expressions import ExpressionError, compile_expression

NOW = datetime(2026, 11, 2, 9, 30, tzinfo=UTC)


def ev(text: str, **data: object) -> object:
    return compile_expression(text, mode="eval").evaluate(data, now=lambda: NOW)


def run(text: str, **data: object) -> dict[str, object]:
    return compile_expression(text, mode="exec").execute(data, now=lambda: NOW)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("amount <= 10000 and risk_score < 30", True),
        ("1 < amount < 10", False),
        ("'vip' in tags", True),
        ("customer['address']['city']", "Oslo"),
        ("customer.address.city", "Oslo"),
        ("tags[0]", "vip"),
        ("tags[-1:]", ["new"]),
        ("len(tags) + max(1, 2) - min([3, 4]) + sum([1, 1]) + abs(-1)", 4),
        ("round(Decimal('2.675'), 2)", Decimal("2.68")),
        ("'yes' if amount > 100 else 'no'", "yes"),
        ("not blocked", True),
        ("{'a': 1}['a'] + (1, 2)[1]", 3),
        ("str(amount) + '!'", "9500.00!"),
        ("int('7') * float('0.5')", 3.5),
    ],
)
def test_allowed_expressions(text: str, expected: object) -> None:
    data = {
        "amount": Decimal("9500.00"),
        "risk_score": 12,
        "tags": ["vip", "new"],
        "customer": {"address": {"city": "Oslo"}},
        "blocked": False,
    }
    assert ev(text, **data) == expected


def test_money_stays_exact() -> None:
    assert ev("Decimal('0.10') * 3") == Decimal("0.30")
    assert ev("fee + fee + fee", fee=Decimal("0.10")) == Decimal("0.30")


def test_time_comes_from_the_injected_clock() -> None:
    assert ev("today()") == date(2026, 11, 2)
    assert ev("now() + hours(48)") == NOW + timedelta(hours=48)
    assert ev("due < now()", due=NOW - days_(1)) is True
    assert ev("date(2026, 1, 31) + days(1)") == date(2026, 2, 1)


def days_(n: int) -> timedelta:
    return timedelta(days=n)


def test_scripts_assign_variables_and_nothing_else_leaks() -> None:
    data = {"amount": 50, "limits": {"daily": 100}}
    result = run(
        "fee = amount // 10\nif fee > 3:\n    band = 'high'\nelse:\n    band = 'low'\n"
        "limits['daily'] += 5",
        **data,
    )
    assert result["fee"] == 5
    assert result["band"] == "high"
    assert result["limits"] == {"daily": 105}
    assert set(result) == {"amount", "limits", "fee", "band"}
    assert data == {"amount": 50, "limits": {"daily": 100}}


def test_errors_name_origin_line_and_column() -> None:
    with pytest.raises(ExpressionError) as refused:
        compile_expression("x = 1\ny = x.__class__", mode="exec", origin="loan.bpmn gw_1")
    assert refused.value.origin == "loan.bpmn gw_1"
    assert refused.value.line == 2
    assert "__class__" in str(refused.value)
    with pytest.raises(ExpressionError) as syntax:
        compile_expression("amount >", mode="eval")
    assert "does not parse" in str(syntax.value)
    with pytest.raises(ExpressionError) as missing:
        ev("missing + 1")
    assert missing.value.error_type == "NameError"
    with pytest.raises(ExpressionError) as zero:
        ev("1 / 0")
    assert zero.value.error_type == "ZeroDivisionError"


def test_compiled_once_and_cached() -> None:
    assert compile_expression("a + 1") is compile_expression("a + 1")
    assert compile_expression("a + 1", mode="exec") is not compile_expression("a + 1")
