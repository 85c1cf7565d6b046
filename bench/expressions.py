"""The expression sandbox measured: cost per gateway condition against plain ``eval``, and
which known escapes each candidate lets through.

    .venv/bin/python bench/expressions.py [--quick] [--no-escapes]

Candidates: bankflow's own (AST allow-list compiled to a function, ``language/_expressions``)
and, when importable, RestrictedPython, asteval and simpleeval. They are not dependencies of
bankflow; to compare, install them outside the project's venv and put them on the path::

    .venv/bin/pip install --target /tmp/bf-alt RestrictedPython asteval simpleeval
    PYTHONPATH=/tmp/bf-alt .venv/bin/python bench/expressions.py

1. Cost: each candidate evaluates the same conditions on the same task data in this
   process, interleaved with plain ``eval`` of a code object compiled once; the ratio is the
   median over rounds (target for bankflow: within 3x of plain eval).
2. Escapes: every entry of ``tests/unit/sandbox_escapes.py`` runs in a forked child with a
   1 GiB address-space limit and a 0.5 s deadline. "blocked" means the candidate refused it
   with an exception and nothing happened; anything else (it returned a value, it ran into
   the deadline or the memory limit, the sentinel file appeared) counts as through.
   ``canary`` in the data creates the sentinel when called or when an attribute is read.

Finishes in well under 30 s (about 15 s with all candidates installed).
"""

from __future__ import annotations

import argparse
import ast
import os
import resource
import select
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "unit"))

from sandbox_escapes import ESCAPES, Escape

from bankflow.language._expressions import compile_expression

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
FUNCTIONS: dict[str, Any] = {
    "len": len,
    "min": min,
    "max": max,
    "sum": sum,
    "abs": abs,
    "round": round,
    "int": int,
    "float": float,
    "str": str,
    "bool": bool,
    "Decimal": Decimal,
}
Run = Callable[[str, str, dict[str, Any]], Any]  # (text, mode, data) -> result


@dataclass
class Candidate:
    name: str
    condition: Callable[[str], Callable[[dict[str, Any]], Any]]  # compile once -> evaluate
    run: Run  # compile and run one text (for the escapes)
    note: str = ""


# -- candidates ---------------------------------------------------------------------------


def bankflow() -> Candidate:
    def condition(text: str) -> Callable[[dict[str, Any]], Any]:
        return compile_expression(text, mode="eval").evaluate

    def run(text: str, mode: str, data: dict[str, Any]) -> Any:
        compiled = compile_expression(text, mode="eval" if mode == "eval" else "exec")
        return compiled.evaluate(data) if mode == "eval" else compiled.execute(data)

    return Candidate("bankflow (allow-list, compiled)", condition, run)


def restricted_python() -> Candidate | None:
    try:
        from RestrictedPython import compile_restricted, safe_globals
        from RestrictedPython.Eval import default_guarded_getitem, default_guarded_getiter
        from RestrictedPython.Guards import (
            full_write_guard,
            guarded_iter_unpack_sequence,
            safer_getattr,
        )
    except ImportError:
        return None
    # The setup its documentation recommends: safe_globals, the safer getattr and the
    # default guards. Without these it is less safe, not more.
    glb = {
        **safe_globals,
        "_getattr_": safer_getattr,
        "_getitem_": default_guarded_getitem,
        "_getiter_": default_guarded_getiter,
        "_iter_unpack_sequence_": guarded_iter_unpack_sequence,
        "_write_": full_write_guard,
        **FUNCTIONS,
    }

    def condition(text: str) -> Callable[[dict[str, Any]], Any]:
        code = compile_restricted(text, "<condition>", "eval")
        return lambda data: eval(code, glb, data)

    def run(text: str, mode: str, data: dict[str, Any]) -> Any:
        code = compile_restricted(text, "<escape>", mode)
        return eval(code, dict(glb), data) if mode == "eval" else exec(code, dict(glb), data)

    return Candidate("RestrictedPython (compile_restricted)", condition, run)


def asteval_() -> Candidate | None:
    try:
        import asteval
    except ImportError:
        return None

    def condition(text: str) -> Callable[[dict[str, Any]], Any]:
        interpreter = asteval.Interpreter(use_numpy=False)
        node = interpreter.parse(text)
        symbols = interpreter.symtable

        def evaluate(data: dict[str, Any]) -> Any:
            symbols.update(data)
            return interpreter.run(node)

        return evaluate

    def run(text: str, mode: str, data: dict[str, Any]) -> Any:
        interpreter = asteval.Interpreter(use_numpy=False, user_symbols=dict(data))
        return interpreter.eval(text, show_errors=False, raise_errors=True)

    return Candidate("asteval (Interpreter)", condition, run)


def simpleeval_() -> Candidate | None:
    try:
        import simpleeval
    except ImportError:
        return None

    def condition(text: str) -> Callable[[dict[str, Any]], Any]:
        evaluator = simpleeval.EvalWithCompoundTypes(functions=FUNCTIONS)
        parsed = evaluator.parse(text)

        def evaluate(data: dict[str, Any]) -> Any:
            evaluator.names = data
            return evaluator.eval(text, previously_parsed=parsed)

        return evaluate

    def run(text: str, mode: str, data: dict[str, Any]) -> Any:
        return simpleeval.EvalWithCompoundTypes(functions=FUNCTIONS, names=dict(data)).eval(text)

    return Candidate("simpleeval (EvalWithCompoundTypes)", condition, run, "expressions only")


# -- 1. cost per condition ------------------------------------------------------------------


def per_call(fn: Callable[[], Any], calls: int) -> float:
    started = time.perf_counter()
    for _ in range(calls):
        fn()
    return (time.perf_counter() - started) / calls


def calls_for(fn: Callable[[], Any], budget: float) -> int:
    """Enough calls for one timed batch to last about ``budget`` seconds."""
    calls, elapsed = 1, 0.0
    while elapsed < budget / 10:
        calls *= 10
        elapsed = per_call(fn, calls) * calls
    return max(1, int(calls * budget / max(elapsed, 1e-9)))


def measure_cost(candidates: list[Candidate], rounds: int, budget: float) -> None:
    print(f"1. cost per condition ({rounds} interleaved rounds, median; ratio = / plain eval)")
    header = f"{'candidate':40} " + " ".join(f"{'c' + str(i + 1):>16}" for i in range(4))
    print(header)
    print(f"{'':40} " + " ".join(f"{'time':>8}{'ratio':>8}" for _ in CONDITIONS))
    results: dict[str, list[str]] = {c.name: [] for c in candidates}
    plain_row: list[str] = []
    for text in CONDITIONS:
        code = compile(text, "<condition>", "eval")
        plain_globals: dict[str, Any] = {}

        def plain(code: Any = code, g: dict[str, Any] = plain_globals) -> Any:
            return eval(code, g, DATA)

        expected = plain()
        runners: list[tuple[str, Callable[[], Any]]] = [("plain eval", plain)]
        for candidate in candidates:
            evaluate = candidate.condition(text)

            def runner(evaluate: Callable[[dict[str, Any]], Any] = evaluate) -> Any:
                return evaluate(DATA)

            assert runner() == expected, (candidate.name, text)
            runners.append((candidate.name, runner))
        sizes = {name: calls_for(fn, budget) for name, fn in runners}
        times: dict[str, list[float]] = {name: [] for name, _ in runners}
        for _ in range(rounds):
            for name, fn in runners:
                times[name].append(per_call(fn, sizes[name]))
        base = statistics.median(times["plain eval"])
        plain_row.append(f"{base * 1e6:6.2f}us{'1.0x':>8}")
        for candidate in candidates:
            t = statistics.median(times[candidate.name])
            results[candidate.name].append(f"{t * 1e6:6.2f}us{t / base:7.1f}x")
    print(f"{'plain eval (precompiled code)':40} " + " ".join(plain_row))
    for candidate in candidates:
        print(f"{candidate.name:40} " + " ".join(results[candidate.name]))
    for i, text in enumerate(CONDITIONS, 1):
        print(f"  c{i}: {text}")


# -- 2. escapes -----------------------------------------------------------------------------


class Canary:
    """Creates the sentinel when a candidate lets the text call it or read its attributes."""

    def __init__(self, sentinel: str) -> None:
        self._sentinel = sentinel

    def __call__(self, *args: object) -> None:
        Path(self._sentinel).touch()

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):  # protocols and guards (copy, RestrictedPython's writes)
            raise AttributeError(name)
        Path(self._sentinel).touch()
        return self


def _mode(escape: Escape) -> str:
    try:
        ast.parse(escape.source, mode="eval")
    except (SyntaxError, RecursionError, MemoryError, ValueError):
        return "exec"
    return "eval"


def _child(candidate: Candidate, escape: Escape, sentinel: str, write: int) -> None:
    quiet = os.open(os.devnull, os.O_WRONLY)  # escapes print; some libraries warn
    os.dup2(quiet, 1)
    os.dup2(quiet, 2)
    resource.setrlimit(resource.RLIMIT_AS, (2**30, 2**30))
    sys.setrecursionlimit(10_000)
    data = {"amount": 5, "x": [1, 2], "d": {"k": 1}, "canary": Canary(sentinel)}
    try:
        candidate.run(escape.text(sentinel), _mode(escape), data)
        verdict = b"ran"
    except (MemoryError, RecursionError):
        verdict = b"limit"  # it started the work; the OS or the interpreter stopped it
    except BaseException:
        verdict = b"refused"
    os.write(write, verdict)


def verdict(candidate: Candidate, escape: Escape, folder: str, deadline: float) -> str:
    sentinel = os.path.join(folder, f"{escape.name}.escaped")
    if os.path.exists(sentinel):
        os.unlink(sentinel)
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        os.close(read)
        try:
            _child(candidate, escape, sentinel, write)
        finally:
            os._exit(0)
    os.close(write)
    ready, _, _ = select.select([read], [], [], deadline)
    answer = os.read(read, 16).decode() if ready else "timeout"
    os.close(read)
    if not ready:
        os.kill(pid, 9)
    os.waitpid(pid, 0)
    if os.path.exists(sentinel):
        return "escaped"
    return answer or "crashed"


_KINDS = {
    "escaped": "side effect",  # the sentinel appeared: code ran or a host object was reached
    "timeout": "DoS",
    "limit": "DoS",
    "crashed": "DoS",
    "ran": "ran",  # a construct the language must refuse was accepted and completed
}


def measure_escapes(candidates: list[Candidate], deadline: float) -> None:
    print(f"\n2. escapes: {len(ESCAPES)} from tests/unit/sandbox_escapes.py, one forked child "
          f"each (1 GiB, {deadline:.1f} s)")  # fmt: skip
    print(f"{'candidate':40} {'blocked':>9} {'bombs':>7} {'side effect':>12} {'DoS':>5} {'ran':>5}")
    through: dict[str, list[str]] = {}
    bombs = [e for e in ESCAPES if e.bomb]
    with tempfile.TemporaryDirectory() as folder:
        for candidate in candidates:
            outcomes = {e.name: verdict(candidate, e, folder, deadline) for e in ESCAPES}
            failed = {name: o for name, o in outcomes.items() if o != "refused"}
            through[candidate.name] = [f"{name} ({o})" for name, o in failed.items()]
            kinds = [_KINDS.get(o, "ran") for o in failed.values()]
            bombs_blocked = sum(outcomes[e.name] == "refused" for e in bombs)
            note = f"  [{candidate.note}]" if candidate.note else ""
            print(
                f"{candidate.name:40} {len(ESCAPES) - len(failed):4}/{len(ESCAPES):<4}"
                f" {bombs_blocked:3}/{len(bombs):<3} {kinds.count('side effect'):12}"
                f" {kinds.count('DoS'):5} {kinds.count('ran'):5}{note}"
            )
    for name, items in through.items():
        if items:
            print(f"  through {name}: " + ", ".join(items))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer, shorter rounds")
    parser.add_argument("--no-escapes", action="store_true", help="only the cost table")
    args = parser.parse_args()
    candidates = [bankflow()]
    missing = []
    for make, label in (
        (restricted_python, "RestrictedPython"),
        (asteval_, "asteval"),
        (simpleeval_, "simpleeval"),
    ):
        found = make()
        if found is None:
            missing.append(label)
        else:
            candidates.append(found)
    print(f"python {sys.version.split()[0]}; bankflow sandbox vs plain eval")
    if missing:
        print(f"not importable (see the module doc): {', '.join(missing)}")
    started = time.perf_counter()
    measure_cost(candidates, rounds=3 if args.quick else 7, budget=0.01 if args.quick else 0.03)
    if not args.no_escapes:
        measure_escapes(candidates, deadline=0.5)
    ratios = _bankflow_ratios()
    kept, visit = max(ratios[0::2]), max(ratios[1::2])
    verdict = "ok" if max(kept, visit) <= 3 else "MISSED"
    print(
        f"\nbankflow worst ratio to plain eval (target <= 3x): {kept:.2f}x with a kept Compiled, "
        f"{visit:.2f}x calling compile_expression on every visit (cached): {verdict}"
    )
    print(f"total {time.perf_counter() - started:.1f} s")


def _bankflow_ratios() -> list[float]:
    """bankflow against plain eval once more, both as ``_spiff`` calls it (compile_expression
    on every visit, served from the cache) and with a kept Compiled object."""
    ratios = []
    for text in CONDITIONS:
        code = compile(text, "<condition>", "eval")
        compiled = compile_expression(text, mode="eval")

        def plain(code: Any = code, glb: dict[str, Any] = {}) -> Any:  # noqa: B006
            return eval(code, glb, DATA)

        def kept(compiled: Any = compiled) -> Any:
            return compiled.evaluate(DATA)

        def visit(text: str = text) -> Any:
            return compile_expression(text, mode="eval").evaluate(DATA)

        base = min(per_call(plain, 20_000) for _ in range(5))
        ratios += [min(per_call(f, 20_000) for _ in range(5)) / base for f in (kept, visit)]
    return ratios


if __name__ == "__main__":
    main()
