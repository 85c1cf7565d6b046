"""bankflow's sandboxed expression language: a small Python subset, checked by an AST
allow-list, with size-guarded operators, compiled once and run with no builtins.

Why not ``eval`` on full Python: a BPMN file is written by an analyst, and on full Python
``().__class__.__base__.__subclasses__()`` reaches ``os``. Here attribute access, names
starting with ``_``, imports, loops, comprehensions, lambdas and calls to anything but a
few pure functions are refused before anything runs, and the operators that can build huge
values (``**``, ``*``, ``<<``, ``+``) check their operands first.
"""

from __future__ import annotations

import ast
import copy
import datetime as _dt
import decimal
import functools
import unicodedata
from collections.abc import Callable, Mapping
from typing import Any, Literal

from bankflow.errors import BankflowError

__all__ = ["Compiled", "ExpressionError", "compile_expression"]

MAX_SOURCE = 10_000
MAX_NODES = 2_000
MAX_DEPTH = 50
MAX_ITEMS = 1_000_000
MAX_EXPONENT_DIGITS = 10_000
_DECIMAL = decimal.Context(
    prec=34,
    Emax=999_999,
    Emin=-999_999,
    traps=[decimal.Overflow, decimal.InvalidOperation, decimal.DivisionByZero],
)


class ExpressionError(BankflowError):
    """An expression or script refused or failed; ``origin`` says which element."""

    def __init__(
        self,
        message: str,
        *,
        origin: str = "",
        line: int | None = None,
        column: int | None = None,
        error_type: str | None = None,
    ) -> None:
        where = origin
        if line is not None:
            where = f"{origin} line {line}" if origin else f"line {line}"
            if column is not None:
                where += f" column {column}"
        super().__init__(f"{where}: {message}" if where else message)
        self.message = message
        self.origin = origin
        self.line = line
        self.column = column
        self.error_type = error_type or "ExpressionError"


# -- guarded operators ------------------------------------------------------------------


def _size(value: Any) -> int:
    return len(value) if isinstance(value, str | bytes | list | tuple) else 0


def _digits(value: Any) -> int:
    if isinstance(value, bool):
        return 1
    if isinstance(value, int):
        return max(1, value.bit_length() * 30103 // 100000 + 1)
    return 1


def _check_items(count: int) -> None:
    if count > MAX_ITEMS:
        raise ValueError(f"the result would have {count:,} items (limit {MAX_ITEMS:,})")


def _mul(a: Any, b: Any) -> Any:
    if isinstance(a, int) and _size(b):
        _check_items(a * _size(b))
    elif isinstance(b, int) and _size(a):
        _check_items(b * _size(a))
    elif (
        isinstance(a, int) and isinstance(b, int) and _digits(a) + _digits(b) > MAX_EXPONENT_DIGITS
    ):
        raise ValueError("the product would be too large")
    return a * b


def _pow(a: Any, b: Any) -> Any:
    if (
        isinstance(a, int)
        and isinstance(b, int)
        and abs(a) > 1
        and b * _digits(a) > MAX_EXPONENT_DIGITS
    ):
        raise ValueError("the power would be too large")
    if isinstance(a, decimal.Decimal) or isinstance(b, decimal.Decimal):
        with decimal.localcontext(_DECIMAL):
            return a**b
    if isinstance(a, float) or isinstance(b, float):
        return float(a) ** float(b)
    return a**b


def _lshift(a: Any, b: Any) -> Any:
    if isinstance(b, int) and b > MAX_EXPONENT_DIGITS * 3:
        raise ValueError("the shift would be too large")
    return a << b


def _add(a: Any, b: Any) -> Any:
    if _size(a) and _size(b):
        _check_items(_size(a) + _size(b))
    return a + b


_GUARDS: dict[type[ast.operator], str] = {
    ast.Mult: "_bf_mul",
    ast.Pow: "_bf_pow",
    ast.LShift: "_bf_lshift",
    ast.Add: "_bf_add",
}


# -- helpers analysts may call ------------------------------------------------------------


def _round(value: Any, digits: int = 0) -> Any:
    return round(value, digits)


def _safe_str(value: Any) -> str:
    if isinstance(value, int) and _digits(value) > 4000:
        raise ValueError("the number has too many digits to print")
    return str(value)


def _functions(now: Callable[[], _dt.datetime]) -> dict[str, Any]:
    return {
        "len": len,
        "min": min,
        "max": max,
        "sum": sum,
        "abs": abs,
        "round": _round,
        "int": int,
        "float": float,
        "str": _safe_str,
        "bool": bool,
        "Decimal": decimal.Decimal,
        "date": _dt.date,
        "datetime": _dt.datetime,
        "today": lambda: now().date(),
        "now": now,
        "days": lambda n: _dt.timedelta(days=n),
        "hours": lambda n: _dt.timedelta(hours=n),
        "minutes": lambda n: _dt.timedelta(minutes=n),
    }


FUNCTIONS = frozenset(_functions(lambda: _dt.datetime.now(_dt.UTC)))

# -- the allow-list -------------------------------------------------------------------------

_ALLOWED: tuple[type[ast.AST], ...] = (
    ast.Expression,
    ast.Module,
    ast.Expr,
    ast.Assign,
    ast.AugAssign,
    ast.If,
    ast.Pass,
    ast.BoolOp,
    ast.And,
    ast.Or,
    ast.UnaryOp,
    ast.Not,
    ast.USub,
    ast.UAdd,
    ast.BinOp,
    ast.Add,
    ast.Sub,
    ast.Mult,
    ast.Div,
    ast.FloorDiv,
    ast.Mod,
    ast.Pow,
    ast.LShift,
    ast.RShift,
    ast.BitAnd,
    ast.BitOr,
    ast.BitXor,
    ast.Compare,
    ast.Eq,
    ast.NotEq,
    ast.Lt,
    ast.LtE,
    ast.Gt,
    ast.GtE,
    ast.In,
    ast.NotIn,
    ast.Is,
    ast.IsNot,
    ast.IfExp,
    ast.Constant,
    ast.Name,
    ast.Load,
    ast.Store,
    ast.List,
    ast.Tuple,
    ast.Dict,
    ast.Set,
    ast.Subscript,
    ast.Slice,
    ast.Call,
)


class _Checker(ast.NodeVisitor):
    def __init__(self, origin: str) -> None:
        self.origin = origin
        self.nodes = 0

    def refuse(self, node: ast.AST, what: str) -> None:
        raise ExpressionError(
            f"{what} is not allowed",
            origin=self.origin,
            line=getattr(node, "lineno", None),
            column=getattr(node, "col_offset", None),
        )

    def generic_visit(self, node: ast.AST) -> None:
        self.nodes += 1
        if self.nodes > MAX_NODES:
            self.refuse(node, f"an expression longer than {MAX_NODES} parts")
        if not isinstance(node, _ALLOWED):
            self.refuse(node, _describe(node))
        super().generic_visit(node)

    def visit_Name(self, node: ast.Name) -> None:
        name = unicodedata.normalize("NFKC", node.id)
        if name.startswith("_"):
            self.refuse(node, f"the name {node.id!r} (names starting with _)")
        self.generic_visit(node)

    def visit_Attribute(self, node: ast.Attribute) -> None:
        # ``customer.address.city`` reads a path in task data (FEEL and JUEL write it so);
        # it becomes ``customer["address"]["city"]``. Underscore names stay unreachable.
        if unicodedata.normalize("NFKC", node.attr).startswith("_"):
            self.refuse(node, f"the attribute {node.attr!r}")
        self.nodes += 1
        self.visit(node.value)

    def visit_Call(self, node: ast.Call) -> None:
        if not isinstance(node.func, ast.Name) or node.func.id not in FUNCTIONS:
            target = node.func.id if isinstance(node.func, ast.Name) else "this"
            self.refuse(node, f"calling {target!r} (only {', '.join(sorted(FUNCTIONS))})")
        if node.keywords:
            self.refuse(node, "keyword arguments")
        self.generic_visit(node)

    def visit_Constant(self, node: ast.Constant) -> None:
        if isinstance(node.value, str | bytes) and len(node.value) > MAX_SOURCE:
            self.refuse(node, "a literal this long")
        self.generic_visit(node)


def _describe(node: ast.AST) -> str:
    names = {
        ast.Import: "import",
        ast.ImportFrom: "import",
        ast.Lambda: "lambda",
        ast.FunctionDef: "def",
        ast.AsyncFunctionDef: "def",
        ast.ClassDef: "class",
        ast.For: "a for loop",
        ast.While: "a while loop",
        ast.ListComp: "a comprehension",
        ast.SetComp: "a comprehension",
        ast.DictComp: "a comprehension",
        ast.GeneratorExp: "a generator expression",
        ast.JoinedStr: "an f-string",
        ast.NamedExpr: "the walrus operator",
        ast.Starred: "unpacking with *",
    }
    return names.get(type(node), f"{type(node).__name__}")


class _Guard(ast.NodeTransformer):
    """``a ** b`` becomes ``_bf_pow(a, b)``: sizes are checked before the work is done; a
    dotted path ``a.b`` becomes ``a["b"]``, so no real attribute is ever looked up."""

    def visit_Attribute(self, node: ast.Attribute) -> ast.AST:
        self.generic_visit(node)
        index = ast.Subscript(value=node.value, slice=ast.Constant(node.attr), ctx=node.ctx)
        return ast.copy_location(index, node)

    def visit_BinOp(self, node: ast.BinOp) -> ast.AST:
        self.generic_visit(node)
        guard = _GUARDS.get(type(node.op))
        if guard is None:
            return node
        call = ast.Call(
            func=ast.Name(id=guard, ctx=ast.Load()), args=[node.left, node.right], keywords=[]
        )
        return ast.copy_location(call, node)

    def visit_AugAssign(self, node: ast.AugAssign) -> ast.AST:
        self.generic_visit(node)
        guard = _GUARDS.get(type(node.op))
        if guard is None:
            return node
        load = ast.copy_location(_as_load(node.target), node)
        call = ast.Call(
            func=ast.Name(id=guard, ctx=ast.Load()), args=[load, node.value], keywords=[]
        )
        assign = ast.Assign(targets=[node.target], value=call)
        return ast.copy_location(assign, node)


def _as_load(target: ast.expr) -> ast.expr:
    copy = ast.parse(ast.unparse(target), mode="eval").body
    return copy


def _depth(node: ast.AST, level: int = 0) -> int:
    if level > MAX_DEPTH:
        return level
    return max([level, *(_depth(child, level + 1) for child in ast.iter_child_nodes(node))])


def _utcnow() -> _dt.datetime:
    return _dt.datetime.now(_dt.UTC)


@functools.lru_cache(maxsize=64)
def _globals_for(now: Callable[[], _dt.datetime]) -> dict[str, Any]:
    """The only names a compiled expression can reach: no builtins at all, the guards and
    the whitelisted functions (built once per clock)."""
    return {
        "__builtins__": {},
        "_bf_mul": _mul,
        "_bf_pow": _pow,
        "_bf_lshift": _lshift,
        "_bf_add": _add,
        **_functions(now),
    }


class Compiled:
    """A checked, compiled expression or script; safe to run many times."""

    def __init__(self, code: Any, mode: str, origin: str) -> None:
        self._code = code
        self.mode = mode
        self.origin = origin

    def _globals(self, now: Callable[[], _dt.datetime] | None) -> dict[str, Any]:
        return _globals_for(now or _utcnow)

    def evaluate(
        self, data: Mapping[str, Any], *, now: Callable[[], _dt.datetime] | None = None
    ) -> Any:
        return self._run(dict(data), now)

    def execute(
        self, data: Mapping[str, Any], *, now: Callable[[], _dt.datetime] | None = None
    ) -> dict[str, Any]:
        scope = copy.deepcopy(dict(data))  # a script changes its own copy, never the caller's
        self._run(scope, now)
        return scope

    def _run(self, scope: dict[str, Any], now: Callable[[], _dt.datetime] | None) -> Any:
        try:
            return eval(self._code, self._globals(now), scope)  # noqa: S307 - checked AST
        except NameError as exc:
            raise ExpressionError(
                f"unknown variable: {exc}", origin=self.origin, error_type="NameError"
            ) from None
        except (
            ArithmeticError,
            TypeError,
            ValueError,
            KeyError,
            IndexError,
            RecursionError,
            MemoryError,
            decimal.DecimalException,
        ) as exc:
            raise ExpressionError(
                f"{type(exc).__name__}: {exc}", origin=self.origin, error_type=type(exc).__name__
            ) from None


@functools.lru_cache(maxsize=4096)
def _compile(text: str, mode: str, origin: str) -> Compiled:
    if len(text) > MAX_SOURCE:
        raise ExpressionError(f"longer than {MAX_SOURCE} characters", origin=origin)
    try:
        tree = ast.parse(text.strip() if mode == "eval" else text, mode=mode)
    except SyntaxError as exc:
        raise ExpressionError(
            f"does not parse: {exc.msg}", origin=origin, line=exc.lineno, column=exc.offset
        ) from None
    except (ValueError, MemoryError, RecursionError) as exc:
        raise ExpressionError(f"does not parse: {exc}", origin=origin) from None
    if _depth(tree) > MAX_DEPTH:
        raise ExpressionError(f"nested deeper than {MAX_DEPTH} levels", origin=origin)
    _Checker(origin).visit(tree)
    guarded = ast.fix_missing_locations(_Guard().visit(tree))
    code = compile(guarded, f"<{origin or 'expression'}>", mode)
    return Compiled(code, mode, origin)


def compile_expression(
    text: str, *, mode: Literal["eval", "exec"] = "eval", origin: str = ""
) -> Compiled:
    """Check and compile ``text`` (``eval``: one expression; ``exec``: a script of
    assignments and ifs), or raise ``ExpressionError`` saying what is not allowed and where."""
    return _compile(text, mode, origin)
