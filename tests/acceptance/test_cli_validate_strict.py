"""``bankflow validate --strict`` for CI: a warning fails the run (exit 1), a clean file
passes, and without ``--strict`` warnings never change the exit status."""

from __future__ import annotations

from pathlib import Path

from test_cli import as_json, bpmn, lines, no_traceback, run, write
from test_cli import pytestmark as pytestmark  # skipped without the console script


def test_strict_fails_on_a_warning_and_passes_a_clean_file(tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path}/cli.db"
    good = write(tmp_path / "loan.bpmn", bpmn())
    text = bpmn().replace(' name="Review application"', "")
    unlabelled = write(tmp_path / "unlabelled.bpmn", text)
    assert run("validate", "--strict", good, db=db, cwd=tmp_path).returncode == 0

    relaxed = run("validate", unlabelled, db=db, cwd=tmp_path)
    assert relaxed.returncode == 0, relaxed.stderr
    assert lines(relaxed.stdout)[-1].endswith("warning(s): ok")

    strict = run("validate", "--strict", unlabelled, db=db, cwd=tmp_path)
    assert strict.returncode == 1
    assert "0 error(s)" in lines(strict.stdout)[-1]
    assert lines(strict.stdout)[-1].endswith("warning(s): failed")
    no_traceback(strict)
    report = as_json(run("validate", "--strict", "--json", unlabelled, db=db, cwd=tmp_path))
    assert report["ok"] is False
    assert report["errors"] == 0
    assert report["warnings"] >= 1
