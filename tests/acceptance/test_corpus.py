"""Every real BPMN/DMN file of ../shared/bpmn-corpus either deploys or yields diagnostics
that point at a file, a line and an element; and at least FLOOR of the files with an
executable process deploy. Prints the table by source."""

from __future__ import annotations

import csv
from collections import Counter, defaultdict
from pathlib import Path

import pytest

from bankflow import DefinitionError, Engine, Severity

FLOOR = 83


def _bpmn_files(corpus: Path) -> list[Path]:
    return sorted(
        p for p in corpus.rglob("*") if p.name.endswith((".bpmn", ".bpmn20.xml")) and p.is_file()
    )


def _baseline(corpus: Path) -> dict[str, tuple[bool, bool]]:
    """Per source/file: (has an executable process, raw SpiffWorkflow 3.2.0 built it), as
    measured by the corpus's own baseline run."""
    with (corpus / "baseline-spiffworkflow-3.2.0.tsv").open() as handle:
        rows = list(csv.DictReader(handle, delimiter="\t"))
    return {
        f"{r['source']}/{r['file']}": (
            int(r["n_exec"] or 0) > 0,
            "ok" in (r["bpmn"], r["camunda"]),
        )
        for r in rows
        if r["file"].endswith((".bpmn", ".xml"))
    }


def test_corpus_deploys(
    corpus_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    files = _bpmn_files(corpus_dir)
    assert len(files) == 141
    baseline = _baseline(corpus_dir)
    table: dict[str, Counter[str]] = defaultdict(Counter)
    failures: list[str] = []
    with Engine(f"sqlite:///{tmp_path}/corpus.db") as engine:
        for path in files:
            source = path.parent.name
            key = f"{source}/{path.name}"
            executable, spiff_built = baseline[key]
            row = table[source]
            row["files"] += 1
            row["executable"] += executable
            row["spiff"] += executable and spiff_built
            # A DMN file that does not compile refuses every deployment it is part of, so
            # each .bpmn goes with the DMN files of its folder that deploy on their own.
            folder_dmn = sorted(path.parent.glob("*.dmn"))
            dmn = [p for p in folder_dmn if engine.definitions.validate(p).ok]
            try:
                engine.definitions.deploy(path, *dmn)
            except DefinitionError as exc:
                errors = [d for d in exc.diagnostics if d.severity == Severity.ERROR]
                assert errors, f"{key}: refused without an error diagnostic"
                for d in errors:
                    assert Path(d.file).name in {path.name, *(p.name for p in dmn)}, d
                    assert d.line, d
                    assert d.element_id, d
                if executable:
                    failures.append(f"{key}: {errors[0].format()}")
                continue
            row["deployed"] += executable
    totals: Counter[str] = Counter()
    for row in table.values():
        totals.update(row)
    with capsys.disabled():
        print(f"\n{'source':42} {'files':>5} {'exec':>5} {'spiff':>5} {'bankflow':>8}")
        for source in sorted(table):
            r = table[source]
            print(
                f"{source:42} {r['files']:5} {r['executable']:5} {r['spiff']:5} {r['deployed']:8}"
            )
        print(
            f"{'total':42} {totals['files']:5} {totals['executable']:5} {totals['spiff']:5} "
            f"{totals['deployed']:8}"
        )
        for failure in failures:
            print("  not deployed:", failure)
    assert totals["executable"] == 89
    assert totals["deployed"] >= FLOOR, failures
