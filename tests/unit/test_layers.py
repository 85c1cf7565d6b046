"""The layering the brief asks for: the language package sits below definitions and runtime.

Read from the source with ``ast`` so a lazy import inside a function counts too.
"""

from __future__ import annotations

import ast
from pathlib import Path

import bankflow

PACKAGE = Path(bankflow.__file__).parent


def _imports(path: Path) -> set[str]:
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
    return found


def test_language_imports_nothing_above_it() -> None:
    allowed = {"bankflow.errors", "bankflow._limits"}
    for path in sorted((PACKAGE / "language").glob("*.py")):
        ours = {m for m in _imports(path) if m.startswith("bankflow")}
        above = {m for m in ours if not m.startswith("bankflow.language") and m not in allowed}
        assert not above, f"{path.name} imports {sorted(above)}"
        assert not any(m.startswith("SpiffWorkflow") for m in _imports(path)), path.name


def test_only_the_adapters_import_spiffworkflow() -> None:
    adapters = {PACKAGE / "definitions" / "_parser.py", PACKAGE / "runtime" / "_spiff.py"}
    for path in sorted(PACKAGE.rglob("*.py")):
        if path in adapters:
            continue
        spiff = sorted(m for m in _imports(path) if m.startswith("SpiffWorkflow"))
        assert not spiff, f"{path.relative_to(PACKAGE)} imports {spiff}"
