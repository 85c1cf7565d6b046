"""Known Python sandbox escapes and resource bombs, as data.

Used by ``test_expressions.py`` (each must be refused by bankflow's expression language, in
both modes, with nothing happening) and by ``bench/expressions.py`` (which of them the
alternatives we compared let through). ``SENTINEL`` in a source stands for a file path the
caller substitutes; an escape that worked would create that file. ``canary`` is a task-data
value whose ``__call__``/``__getattr__`` count their calls: reaching it counts too.

Categories: attribute (reaching an object's internals), builtins (calling what the language
does not offer), import, frame (walking interpreter frames), format (attribute access hidden
in format strings), definition (lambda/def/class/decorators), loop, comprehension, name
(underscore and internal names), unicode (confusables that normalise to forbidden names),
smuggling (keywords, star-args, calling values), statement (try/with/global/...), and the
resource bombs: cpu, memory, nesting, decimal, int-str, size.
"""

from __future__ import annotations

from dataclasses import dataclass

SENTINEL = "SENTINEL"
TOUCH = "__import__('os').system('touch SENTINEL')"
SUBCLASSES = "().__class__.__base__.__subclasses__()"


@dataclass(frozen=True)
class Escape:
    name: str
    category: str
    source: str
    bomb: bool = False  # a resource bomb: it must be refused quickly, with bounded memory

    def text(self, sentinel: str) -> str:
        return self.source.replace(SENTINEL, sentinel)


def _e(name: str, category: str, source: str) -> Escape:
    return Escape(name, category, source)


def _bomb(name: str, category: str, source: str) -> Escape:
    return Escape(name, category, source, bomb=True)


ESCAPES: tuple[Escape, ...] = (
    # -- attribute: the object graph behind any value -----------------------------------------
    _e("subclasses", "attribute", SUBCLASSES),
    _e(
        "catch-warnings",
        "attribute",
        f"[c for c in {SUBCLASSES} if c.__name__ == 'catch_warnings'][0]()"
        "._module.__builtins__['__import__']('os').system('touch SENTINEL')",
    ),
    _e(
        "fileio-subclass",
        "attribute",
        f"[c for c in {SUBCLASSES} if c.__name__ == 'FileIO'][0]('SENTINEL', 'w')",
    ),
    _e("mro", "attribute", "amount.__class__.__mro__[-1].__subclasses__()"),
    _e("dict", "attribute", "canary.__dict__"),
    _e("class-of-data", "attribute", "amount.__class__"),
    _e("globals-of-function", "attribute", "len.__self__.open('SENTINEL', 'w')"),
    _e("init-globals", "attribute", "canary.__init__.__globals__['os']"),
    _e("method-call", "attribute", "'abc'.upper()"),
    _e("real-attribute", "attribute", "(1).real"),
    _e("canary-attribute-call", "attribute", "canary.system('touch SENTINEL')"),
    _e("reduce", "attribute", "canary.__reduce_ex__(2)"),
    # -- builtins: functions the language does not offer --------------------------------------
    _e("import-call", "builtins", TOUCH),
    _e("getattr", "builtins", "getattr(amount, '__class__')"),
    _e("setattr", "builtins", "setattr(canary, 'x', 1)"),
    _e("type", "builtins", "type(1)"),
    _e("type-create", "builtins", "type('X', (), {})"),
    _e("eval", "builtins", f'eval("{TOUCH}")'),
    _e("exec", "builtins", f'exec("{TOUCH}")'),
    _e("compile", "builtins", "compile('1', 'x', 'eval')"),
    _e("open-read", "builtins", "open('/etc/passwd').read()"),
    _e("open-write", "builtins", "open('SENTINEL', 'w')"),
    _e("globals", "builtins", "globals()"),
    _e("locals", "builtins", "locals()"),
    _e("vars", "builtins", "vars()"),
    _e("dir", "builtins", "dir()"),
    _e("breakpoint", "builtins", "breakpoint()"),
    _e("help", "builtins", "help()"),
    _e("input", "builtins", "input()"),
    _e("print", "builtins", "print(amount)"),
    _e("builtins-name", "builtins", "__builtins__"),
    _e("builtins-subscript", "builtins", "__builtins__['open']('SENTINEL', 'w')"),
    _e("object", "builtins", "object.__subclasses__()"),
    _e("super", "builtins", "super()"),
    _e("memoryview", "builtins", "memoryview(b'x')"),
    _e("range-loop", "builtins", "sum(range(10**12))"),
    # -- import -------------------------------------------------------------------------------
    _e("import", "import", "import os\nos.system('touch SENTINEL')"),
    _e("from-import", "import", "from os import system\nsystem('touch SENTINEL')"),
    _e("importlib", "import", "__import__('importlib').import_module('os')"),
    # -- frame walking --------------------------------------------------------------------------
    _e("generator-frame", "frame", "(x for x in ()).gi_frame.f_back.f_globals"),
    _e("generator-frame-name", "frame", "x.gi_frame"),
    _e(
        "traceback-frame", "frame", "try:\n    1/0\nexcept Exception as e:\n    f = e.__traceback__"
    ),
    # -- format strings -----------------------------------------------------------------------
    _e("format-attribute", "format", "'{0.__class__}'.format(1)"),
    _e("format-map", "format", "'{0.__init__.__globals__}'.format_map(canary)"),
    _e("percent-format", "format", "'%(a)s' % canary"),
    _e("percent-width", "format", "'%0999999999d' % 1"),
    _e("fstring", "format", "f'{amount.__class__}'"),
    _e("fstring-width", "format", "f'{amount:>999999999}'"),
    # -- definitions ----------------------------------------------------------------------------
    _e("lambda", "definition", "(lambda: 1)()"),
    _e("lambda-defaults", "definition", "(lambda g=globals: g())()"),
    _e("def", "definition", "def f():\n    return 1\nx = f()"),
    _e("class", "definition", "class X:\n    pass"),
    _e(
        "class-del",
        "definition",
        "class X:\n    def __del__(self):\n        open('SENTINEL', 'w')\nx = X()",
    ),
    _e("decorator", "definition", "@print\ndef f():\n    pass"),
    _e("async-def", "definition", "async def f():\n    await x"),
    # -- loops and comprehensions -----------------------------------------------------------------
    _e("while-true", "loop", "while True:\n    pass"),
    _e("for-range", "loop", "for i in x:\n    y = i"),
    _e("list-comprehension", "comprehension", "[i for i in x]"),
    _e("nested-comprehension", "comprehension", "[[i for i in x] for j in x]"),
    _e("dict-comprehension", "comprehension", "{i: i for i in x}"),
    _e("set-comprehension", "comprehension", "{i for i in x}"),
    _e("generator", "comprehension", "sum(i for i in x)"),
    # -- names --------------------------------------------------------------------------------
    _e("private-name", "name", "_secret"),
    _e("dunder-name", "name", "__name__"),
    _e("internal-data", "name", "__bf_data"),
    _e("internal-guard", "name", "__bf_fn_len.__globals__"),
    _e("function-as-value", "name", "f = len\ny = f"),
    # -- unicode confusables (NFKC-normalised before the checks) ----------------------------------
    _e("fullwidth-eval", "unicode", "\uff45\uff56\uff41\uff4c('1')"),
    _e("fullwidth-open", "unicode", "\uff4f\uff50\uff45\uff4e('SENTINEL', 'w')"),
    _e("fullwidth-dunder-attribute", "unicode", "().__\uff43\uff4c\uff41\uff53\uff53__"),
    _e("fullwidth-underscore", "unicode", "\uff3f\uff3fimport\uff3f\uff3f('os')"),
    _e("math-italic-exec", "unicode", "\U0001d452\U0001d465\U0001d452\U0001d450('1')"),
    # -- smuggling: keywords, star-args, calling values ------------------------------------------
    _e("keyword-key", "smuggling", "max([1, 2], key=print)"),
    _e("keyword-unpack", "smuggling", "max([1], **{'key': print})"),
    _e("star-args", "smuggling", "max(*x)"),
    _e("star-unpack", "smuggling", "[*x]"),
    _e("dict-unpack", "smuggling", "{**d}"),
    _e("call-subscript", "smuggling", "d['k']()"),
    _e("call-result", "smuggling", "len(x)(1)"),
    _e("call-data", "smuggling", "canary()"),
    _e("int-base", "smuggling", "int('z', base=36)"),
    _e("walrus", "smuggling", "(y := 1)"),
    # -- statements ---------------------------------------------------------------------------
    _e("try", "statement", "try:\n    pass\nexcept Exception:\n    pass"),
    _e("raise", "statement", "raise SystemExit"),
    _e("with-open", "statement", "with open('SENTINEL', 'w') as f:\n    pass"),
    _e("global", "statement", "global x\nx = 1"),
    _e("nonlocal", "statement", "nonlocal x"),
    _e("del", "statement", "del x"),
    _e("yield", "statement", "yield 1"),
    _e("return", "statement", "return 1"),
    _e("assert", "statement", "assert False"),
    _e("match", "statement", "match x:\n    case _:\n        pass"),
    _e("slice-assign-growth", "statement", "y = [0]\ny[0:0] = y"),
    # -- resource bombs -------------------------------------------------------------------------
    _bomb("power-tower", "cpu", "9 ** 9 ** 9"),
    _bomb("big-power", "cpu", "10 ** 10 ** 10"),
    _bomb("shift", "cpu", "1 << 10 ** 9"),
    _bomb("round-digits", "cpu", "round(1, -10 ** 9)"),
    _bomb("product-chain", "cpu", "x = 10 ** 4000\ny = x * x * x * x * x"),
    _bomb("string-repeat", "memory", "'a' * 10 ** 10"),
    _bomb("list-repeat", "memory", "[0] * 10 ** 9"),
    _bomb("string-doubling", "memory", "s = 'a' * 999999\ns = s + s"),
    _bomb("list-doubling", "memory", "y = [0] * 999999\ny = y + y"),
    _bomb("shared-list-compare", "memory", "[[0] * 999999] * 999999 == [[0] * 999999] * 999999"),
    _bomb(
        "many-allowed-lists",
        "memory",
        "a = [0] * 999999\nb = [0] * 999999\nc = [0] * 999999\nd = [0] * 999999\ne = [0] * 999999",
    ),
    _bomb("shared-strings", "memory", "s = 'a' * 999999\nl = [s, s, s, s, s, s, s, s, s, s]"),
    _bomb("repr-bomb", "memory", "str([[0] * 999999] * 999999)"),
    _bomb("sum-bomb", "memory", "sum([[0] * 999999] * 999999, [])"),
    _bomb("bytearray", "memory", "bytearray(10 ** 10)"),
    _bomb("deep-brackets", "nesting", "(" * 200 + "1" + ")" * 200),
    _bomb("deep-lists", "nesting", "[" * 100 + "]" * 100),
    _bomb("deep-negation", "nesting", "-" * 500 + "1"),
    _bomb("deep-not", "nesting", "not " * 3000 + "x"),
    _bomb("deep-values", "nesting", "y = []\n" + "y = [y]\n" * 40),
    _bomb("decimal-power", "decimal", "Decimal('1e999999') ** 999999"),
    _bomb("decimal-huge", "decimal", "Decimal('1e999999999')"),
    _bomb("decimal-to-int", "decimal", "int(Decimal('1e999999'))"),
    _bomb("decimal-precision", "decimal", "Decimal('1.' + '1' * 5000)"),
    _bomb("int-to-str", "int-str", "str(10 ** 100000)"),
    _bomb("str-to-int", "int-str", "int('9' * 100000)"),
    _bomb("long-source", "size", "1 + " * 3000 + "1"),
    _bomb("many-nodes", "size", "[" + "1," * 4000 + "1]"),
)

# Bombs on plain Python that bankflow's semantics defuse instead of refusing: they run, fast
# and small. Putting a value into a list copies it, so mutating the original afterwards cannot
# grow (here 2**4 * 10**6 elements for one comparison) every container that holds it.
DEFUSED: tuple[Escape, ...] = (
    _bomb(
        "aliased-mutation",
        "memory",
        "x0 = [0]\nx1 = [x0, x0]\nx2 = [x1, x1]\nx3 = [x2, x2]\nx4 = [x3, x3]\n"
        "x0[0] = [0] * 999999\nr = x4 == [x3, x3]",
    ),
)

assert len({e.name for e in ESCAPES + DEFUSED}) == len(ESCAPES + DEFUSED), "names are unique"
