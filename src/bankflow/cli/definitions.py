"""Commands on definition files and deployed definitions: validate, deploy, definitions,
decide."""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape

from bankflow.cli._common import (
    JsonOption,
    _dump,
    _engine,
    _known_process,
    _name,
    _parse_data,
    _Refused,
    _table,
    err,
    out,
)
from bankflow.errors import DefinitionError
from bankflow.models import Diagnostic, Severity


def _diagnostic_line(d: Diagnostic) -> str:
    style = "red" if d.severity == Severity.ERROR else "yellow"
    return f"[{style}]{escape(d.format())}[/{style}]"


def _print_diagnostics(diagnostics: Sequence[Diagnostic]) -> None:
    for d in diagnostics:
        err.print(_diagnostic_line(d), markup=True)


def _progress(enabled: bool) -> Callable[[str], None] | None:
    if not enabled:
        return None
    return lambda file: err.print(f"[dim]checking {escape(file)}[/dim]")


def validate(
    paths: Annotated[list[Path], typer.Argument(help="BPMN/DMN files or directories.")],
    as_json: JsonOption = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress lines.")] = False,
    strict: Annotated[
        bool, typer.Option("--strict", help="Exit 1 on warnings too (for CI).")
    ] = False,
) -> None:
    """Check files as a deploy would, store nothing; exit 1 when any error is found (with
    --strict, any warning)."""
    with _engine() as engine:
        report = engine.definitions.validate(*paths, progress=_progress(not (quiet or as_json)))
    if as_json:
        _dump(
            {
                "ok": report.clean if strict else report.ok,
                "files": report.files,
                "errors": len(report.errors),
                "warnings": len(report.warnings),
                "diagnostics": [d.model_dump(mode="json") for d in report.diagnostics],
            }
        )
    else:
        for d in report.diagnostics:
            out.print(_diagnostic_line(d), markup=True)
        passed = report.clean if strict else report.ok
        verdict = "[green]ok[/green]" if passed else "[red]failed[/red]"
        out.print(
            f"{len(report.files)} file(s): {len(report.errors)} error(s), "
            f"{len(report.warnings)} warning(s): {verdict}"
        )
    if not report.ok:
        summary = f"{len(report.errors)} error(s) in {len(report.files)} file(s)"
        raise _Refused("DefinitionError", summary, shown=True)
    if strict and report.warnings:
        raise typer.Exit(1)  # --strict: warnings fail too


def deploy(
    paths: Annotated[list[Path], typer.Argument(help="BPMN/DMN files or directories.")],
    name: Annotated[
        str | None, typer.Option(callback=_name, help="A name for the deployment.")
    ] = None,
    as_json: JsonOption = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No warnings or progress.")] = False,
) -> None:
    """Deploy files in one transaction; unchanged files keep their version."""
    with _engine() as engine:
        try:
            result = engine.definitions.deploy(
                *paths, name=name, progress=_progress(not (quiet or as_json))
            )
        except DefinitionError as exc:
            if as_json:
                _dump(
                    {
                        "ok": False,
                        "error": str(exc).splitlines()[0],
                        "diagnostics": [d.model_dump(mode="json") for d in exc.diagnostics],
                    }
                )
            else:
                _print_diagnostics(exc.diagnostics)
                err.print(f"[red]error:[/red] {escape(str(exc).splitlines()[0])}")
            raise _Refused(
                "DefinitionError",
                str(exc).splitlines()[0],
                shown=True,
                diagnostics=exc.diagnostics,
            ) from None
    if as_json:
        _dump({"ok": True, **result.model_dump(mode="json")})
        return
    if not quiet:
        _print_diagnostics([d for d in result.diagnostics if d.severity == Severity.WARNING])
    table = _table("process", "version", "name", "file")
    for p in result.processes:
        table.add_row(p.key, str(p.version), p.name or "", p.resource_name)
    for d in result.decisions:
        table.add_row(f"{d.key} (decision)", str(d.version), d.name or "", d.resource_name)
    out.print(table)
    if result.created:
        out.print(f"deployment {result.id}")
    elif result.processes or result.decisions:
        out.print(
            "nothing changed: every process and decision in these files was already "
            "deployed with identical content"
        )
    else:
        out.print("nothing deployed: these files hold no executable process and no decision table")


def definitions(
    key: Annotated[str | None, typer.Option(help="Only this process key.")] = None,
    latest: Annotated[bool, typer.Option(help="Only the latest version of each.")] = False,
    as_json: JsonOption = False,
) -> None:
    """List deployed process definitions."""
    with _engine() as engine:
        _known_process(engine, key)
        found = engine.definitions.list(key=key, latest_only=latest)
    if as_json:
        _dump([p.model_dump(mode="json") for p in found])
        return
    table = _table("process", "version", "name", "file", "deployed")
    for p in found:
        table.add_row(
            p.key, str(p.version), p.name or "", p.resource_name, p.deployed_at.isoformat()
        )
    out.print(table)


def decide(
    file: Annotated[Path, typer.Argument(help="A .dmn file.")],
    data: Annotated[str, typer.Option("--data", help="Input data as JSON, or @file.json.")],
    decision: Annotated[
        str | None, typer.Option("--decision", help="Decision id (default: the first).")
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """Evaluate a decision table against data, printing the rules that matched."""
    from bankflow.definitions._source import MAX_FILE_BYTES, SourceFile, parse
    from bankflow.language._decisions import evaluate_graph
    from bankflow.language._dmn import parse_dmn

    try:
        with file.open("rb") as handle:  # bounded: `decide /dev/zero` must not hang
            content = handle.read(MAX_FILE_BYTES + 1)
    except OSError as exc:
        raise typer.BadParameter(f"cannot read {file}: {exc.strerror or exc}") from None
    root = parse(SourceFile(display=str(file), name=file.name, content=content))
    if isinstance(root, Diagnostic):
        raise typer.BadParameter(root.format())
    decisions = {d.id: d for d in parse_dmn(root)}
    if not decisions:
        raise typer.BadParameter(f"{file} holds no decision")
    chosen = decision or next(iter(decisions))
    if chosen not in decisions:
        raise typer.BadParameter(f"no decision {chosen!r} in {file}; it has {', '.join(decisions)}")
    result = evaluate_graph(decisions, chosen, _parse_data(data) or {})
    if as_json:
        _dump(
            {
                "decision": result.decision_id,
                "matched": list(result.matched),
                "result": result.result,
                "outputs": result.outputs,
            }
        )
        return
    rules = {r.id: r for t in [decisions[chosen].table] if t is not None for r in t.rules}
    out.print(f"decision {chosen}: {len(result.matched)} rule(s) matched")
    for rule_id in result.matched:
        rule = rules.get(rule_id)
        described = f" ({rule.description})" if rule is not None and rule.description else ""
        out.print(f"  {escape(rule_id)}{escape(described)}")
    out.print("result: " + escape(json.dumps(result.result, default=str)))
