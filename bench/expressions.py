"""The sandbox's cost per gateway condition against plain ``eval`` of precompiled code.

Target: within 3x. Both sides evaluate the same condition on the same task data in the
same process, interleaved; the ratio is the median over rounds.
Run: ``.venv/bin/python bench/expressions.py``.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from decimal import Decimal
from typing import Any

from bankflow.runtime._expressions import compile_expression

CONDITIONS = [
    "amount <= 10000 and risk_score < 30",
    'route == "auto"',
    "customer['segment'] in ('retail', 'sme') and not blocked",
    "amount * 2 > limit",
]
DATA: dict[str, Any] = {
    "amount": Decimal("9500.00"),
    "risk_score": 12,
    "route": "auto",
    "customer": {"segment": "retail"},
    "blocked": False,
    "limit": Decimal("15000"),
}
CALLS = 20_000
ROUNDS = 7


def per_call(fn: Callable[[], Any]) -> float:
    started = time.perf_counter()
    for _ in range(CALLS):
        fn()
    return (time.perf_counter() - started) / CALLS


def main() -> None:
    print(f"sandbox vs plain eval: {CALLS} calls x {ROUNDS} rounds per condition")
    print(f"{'condition':60} {'eval':>9} {'sandbox':>9} {'ratio':>6}")
    ratios = []
    for text in CONDITIONS:
        code = compile(text, "<condition>", "eval")
        sandboxed = compile_expression(text, mode="eval")

        def plain(code: Any = code) -> Any:
            return eval(code, {}, dict(DATA))

        def safe(sandboxed: Any = sandboxed) -> Any:
            return sandboxed.evaluate(DATA)

        assert plain() == safe()
        rounds = [(per_call(plain), per_call(safe)) for _ in range(ROUNDS)]
        ratio = statistics.median(s / p for p, s in rounds)
        ratios.append(ratio)
        p50 = statistics.median(p for p, _ in rounds) * 1e6
        s50 = statistics.median(s for _, s in rounds) * 1e6
        print(f"{text:60} {p50:7.2f}us {s50:7.2f}us {ratio:5.2f}x")
    worst = max(ratios)
    verdict = "ok" if worst <= 3 else "MISSED"
    print(f"worst ratio {worst:.2f}x (target <= 3x): {verdict}")


if __name__ == "__main__":
    main()
