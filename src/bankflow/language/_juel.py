"""Camunda Modeler writes conditions as JUEL (``${amount > 10000 && !approved}``); bankflow
translates the subset modellers actually use into its Python-subset language at deploy, so
such diagrams run unchanged."""

from __future__ import annotations

import re

__all__ = ["juel_to_python"]

_JUEL_TOKEN = re.compile(
    r"""\s+|'(?:\\.|[^'\\])*'|"(?:\\.|[^"\\])*"|\d+(?:\.\d+)?(?:[eE][+-]?\d+)?"""
    r"""|[A-Za-z_]\w*|&&|\|\||!=|.""",
    re.DOTALL,
)
_JUEL_WORDS = {
    "eq": "==",
    "ne": "!=",
    "lt": "<",
    "gt": ">",
    "le": "<=",
    "ge": ">=",
    "empty": "not",
    "null": "None",
    "true": "True",
    "false": "False",
    "div": "/",
    "mod": "%",
}
_JUEL_SYMBOLS = {"&&": "and", "||": "or", "!": "not"}
_JUEL_EXPRESSION = re.compile(r"[$#]\{(?P<body>[^{}]*)\}", re.DOTALL)


def juel_to_python(text: str) -> str | None:
    """Translate a Camunda-style JUEL condition such as ``${amount > 1000 && !approved}`` to
    the Python expression bankflow evaluates (``amount > 1000 and not approved``).

    Covers the operators and literals conditions drawn in modelers actually use; anything
    beyond (ternaries, method calls on Java objects...) comes back as text that may not
    parse, which the caller reports. ``None`` when ``text`` is not one ``${...}`` or
    ``#{...}`` expression.
    """
    match = _JUEL_EXPRESSION.fullmatch(text.strip())
    if match is None:
        return None
    out: list[str] = []
    previous = ""
    for token in _JUEL_TOKEN.findall(match["body"]):
        if token.isspace():
            if out and not out[-1].endswith(" "):
                out.append(" ")
            continue
        if token in _JUEL_SYMBOLS:
            if out and not out[-1].endswith((" ", "(")):
                out.append(" ")
            out.append(f"{_JUEL_SYMBOLS[token]} ")
        elif token in _JUEL_WORDS and previous != ".":
            out.append(_JUEL_WORDS[token])
        else:
            out.append(token)
        previous = token
    return "".join(out).strip()
