"""The sandbox sizes numbers by their digits, not as one value each.

Found in review: a Decimal counted as one unit of the run's budget whatever its digits. A
300-line script of ``r = amount * amount`` with a million-digit amount from task data ran
for 13-24 s (libmpdec multiplies the operands in full before rounding to 34 digits), and
``str()`` of a list of such amounts built a gigabyte of text before its length was checked.
Each case is now an ``ExpressionError`` before the work; the times (before/after) are in the
report of the change, measured with /tmp scripts, and deliberately not asserted here.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest

from bankflow.language._expressions import (
    MAX_NUMBER_DIGITS,
    ExpressionError,
    coefficient_digits,
    compile_expression,
)

MILLION = Decimal("0." + "7" * 1_000_000)  # a "1 MB number": in range, a million digits
JUST_UNDER = Decimal("0." + "7" * MAX_NUMBER_DIGITS)
JUST_OVER = Decimal("0." + "7" * (MAX_NUMBER_DIGITS + 1))


def refused(text: str, data: dict[str, Any], mode: str = "exec") -> ExpressionError:
    compiled = compile_expression(text, mode="exec" if mode == "exec" else "eval")
    run = compiled.execute if mode == "exec" else compiled.evaluate
    with pytest.raises(ExpressionError) as caught:
        run(data)
    return caught.value


def test_300_multiplications_of_a_million_digit_amount_stop_at_the_first() -> None:
    error = refused("\n".join(["r = amount * amount"] * 300), {"amount": MILLION})
    assert error.error_type == "LimitExceeded"
    assert error.line == 1
    assert "more than 4,300 digits" in error.message


def test_str_of_a_list_of_huge_amounts_is_sized_before_it_is_built() -> None:
    error = refused("y = str(amounts)", {"amounts": [MILLION] * 1_000})
    assert error.error_type == "LimitExceeded"
    assert "longer than 1,000,000 characters" in error.message


def test_a_list_of_huge_amounts_built_in_the_script_is_charged_by_digits() -> None:
    error = refused("x = [amount] * 1000\ny = str(x)", {"amount": MILLION})
    assert error.error_type == "LimitExceeded"
    assert error.line == 1  # building the list, before str() is reached
    # 4,000 digits are 211 units each: 20,000 copies pass the run's 4,000,000.
    error = refused("x = [amount] * 20000", {"amount": Decimal("9" * 4_000)})
    assert "more than 4,000,000 units" in error.message


@pytest.mark.parametrize(
    "text",
    [
        "a * b",
        "a + b",
        "a - b",
        "a / b",
        "a // b",
        "a % b",
        "a ** 2",
        "-a",
        "+a",
        "abs(a)",
        "round(a, 2)",
        "round(a)",
        "int(a)",
        "float(a)",
        "Decimal(a)",
        "days(a)",
        "sum([a, b])",
    ],
)
def test_every_operation_refuses_an_operand_of_more_than_4300_digits(text: str) -> None:
    data = {"a": Decimal("0." + "3" * 50_000), "b": Decimal("0." + "1" * 50_000)}
    error = refused(text, data, mode="eval")
    assert error.error_type == "LimitExceeded", error


@pytest.mark.parametrize("text", ["a // b", "a % b"])  # a * b was refused already
def test_integers_of_50000_digits_are_refused_before_the_work(text: str) -> None:
    error = refused(text, {"a": 10**50_000 - 1, "b": 10**49_000 + 7}, mode="eval")
    assert error.error_type == "LimitExceeded"


def test_operands_up_to_4300_digits_still_work() -> None:
    product = compile_expression("a * b").evaluate({"a": JUST_UNDER, "b": Decimal(2)})
    assert product == Decimal("1.555555555555555555555555555555556")  # 34 digits
    assert refused("a * 2", {"a": JUST_OVER}, mode="eval").error_type == "LimitExceeded"
    assert compile_expression("len(str(a))").evaluate({"a": JUST_UNDER}) == MAX_NUMBER_DIGITS + 2
    assert compile_expression("(10 ** 4299) // 7 > 0").evaluate({})


def test_exponents_beyond_the_context_stop_at_once() -> None:
    """``Decimal('1e999999') * 2``: the language's context (exponents within +-999, Overflow
    trapped) already stopped every operation at once (checked for the review: also //, %,
    **, round, int); ``float()`` of it was an infinity and is now refused."""
    data = {"big": Decimal("1e999999")}
    assert refused("big * 2", data, mode="eval").error_type == "Overflow"
    assert refused("float(big)", data, mode="eval").error_type == "ValueError"


@pytest.mark.parametrize("text", ["float('nan')", "float('-inf')", "float('1e999')"])
def test_float_never_makes_a_value_no_database_stores(text: str) -> None:
    assert refused(text, {}, mode="eval").error_type == "ValueError"


def test_coefficient_digits_reads_no_digits_of_a_huge_number() -> None:
    assert coefficient_digits(Decimal("123.45"), 100) == 5
    assert coefficient_digits(JUST_OVER, MAX_NUMBER_DIGITS) == MAX_NUMBER_DIGITS + 1
    assert coefficient_digits(MILLION, 100) > 100
