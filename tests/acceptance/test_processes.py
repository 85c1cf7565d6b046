"""The bank's own procedures in processes/ validate with no errors and no warnings: they
are the example every analyst copies."""

from __future__ import annotations

from pathlib import Path

from bankflow import Engine

ROOT = Path(__file__).resolve().parents[2]


def test_reference_procedures_are_clean(sqlite_url: str) -> None:
    with Engine(sqlite_url) as engine:
        report = engine.definitions.validate(ROOT / "processes")
        assert report.ok
        assert [d.format() for d in report.diagnostics] == []
        deployed = engine.definitions.deploy(ROOT / "processes")
    assert sorted(p.key for p in deployed.processes) == [
        "account_opening",
        "aml_alert_review",
        "complaint_handling",
        "loan_approval",
        "new_product_review",
    ]
