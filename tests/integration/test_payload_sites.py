"""A payload at every place a BPMN file can hold an expression, on both databases.

Each site is refused at validate and deploy (error, file, line, element id), and a
definition stored before those checks existed (its stored source rewritten behind
bankflow's back) cannot run the payload either: the script engine's environment is the
sandbox, so the step fails with the refusal recorded and the sentinel file never appears.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest
import sqlalchemy as sa

from bankflow import DefinitionError, Engine, InstanceStatus, Severity
from sites import SITES, Site

SENTINEL = Path(f"/tmp/bankflow-site-escaped-{os.getpid()}")
PAYLOAD = f"__import__('os').system('touch {SENTINEL}')"


@pytest.fixture(autouse=True)
def _no_sentinel() -> None:
    SENTINEL.unlink(missing_ok=True)
    yield
    assert not SENTINEL.exists(), "a payload ran on the engine host"


def _write(folder: Path, site: Site, expression: str, label: str) -> Path:
    path = folder / f"{site.key}-{label}.bpmn"
    path.write_text(site.bpmn(expression), encoding="utf-8")
    return path


@pytest.mark.parametrize("site", SITES, ids=[s.name for s in SITES])
def test_validate_and_deploy_refuse_a_payload_at_every_site(
    engine: Engine, tmp_path: Path, site: Site
) -> None:
    harmless = engine.definitions.validate(_write(tmp_path, site, site.harmless, "ok"))
    refusals = [
        (d.rule, d.element_id) for d in harmless.diagnostics if d.severity == Severity.ERROR
    ]
    assert refusals == ([(site.refused, "site")] if site.refused else [])

    path = _write(tmp_path, site, PAYLOAD, "payload")
    report = engine.definitions.validate(path)
    errors = [d for d in report.diagnostics if d.severity == Severity.ERROR]
    others = [d for d in errors if d.rule != site.refused]
    if site.refused and not others:
        # The element itself is refused by name before its expression is looked at.
        assert [(d.rule, d.element_id) for d in errors] == [(site.refused, "site")]
        others = errors
    [error] = others
    assert error.rule in ("expression-parse", site.refused)
    assert error.element_id in ("site", "f_cond")
    assert error.file.endswith(path.name)
    assert error.line is not None
    with pytest.raises(DefinitionError):
        engine.definitions.deploy(path)
    assert engine.definitions.list() == []


@pytest.mark.parametrize("site", SITES, ids=[s.name for s in SITES])
def test_a_payload_stored_before_the_checks_never_runs(
    db_url: str, tmp_path: Path, site: Site
) -> None:
    # An element bankflow now refuses was stored under an older bankflow: stand-in here,
    # a process of the same key that deploys, its source replaced below.
    stored = SITES[0] if site.refused else site
    with Engine(db_url, migrate=True) as engine:
        path = tmp_path / f"{site.key}-ok.bpmn"
        path.write_text(stored.bpmn(stored.harmless, key=site.key), encoding="utf-8")
        engine.definitions.deploy(path)
    # An older bankflow (or a hand) put the payload into the stored source.
    with sa.create_engine(db_url).begin() as conn:
        changed = conn.execute(
            sa.text("UPDATE bf_resource SET content = :c"), {"c": site.bpmn(PAYLOAD).encode()}
        )
        assert changed.rowcount == 1
    with Engine(db_url) as engine:
        instance = engine.instances.start(site.key, business_key="B-1", data={"amount": 5})
        if site.reached_by == "task":
            [task] = instance.tasks
            instance = engine.tasks.complete(task.id, user="anna", groups=["clerks"], data={})
        elif site.reached_by == "message":
            assert instance.status == InstanceStatus.RUNNING
            [instance] = engine.messages.correlate("docs", business_key="B-1", data={})
        if site.reached_by == "never":
            assert instance.status == InstanceStatus.RUNNING
            return
        assert instance.status == InstanceStatus.FAILED, instance
        assert instance.failure is not None
        assert "not allowed" in instance.failure.message or "refused" in instance.failure.message


_AUDITING: list[tuple[str, str]] | None = None


def _audit(event: str, args: tuple[object, ...]) -> None:
    if _AUDITING is None or event not in ("compile", "exec"):
        return
    caller = sys._getframe(1).f_code.co_filename
    if f"{os.sep}SpiffWorkflow{os.sep}" in caller:
        _AUDITING.append((event, caller))


sys.addaudithook(_audit)


def test_spiffworkflow_compiles_and_runs_no_text_of_its_own(
    sqlite_url: str, tmp_path: Path
) -> None:
    """Every site's harmless process, run end to end under an audit hook: any ``compile``
    or ``exec`` made from SpiffWorkflow's own code (its ``eval``/``exec``) is recorded."""
    global _AUDITING
    with Engine(sqlite_url, migrate=True) as engine:
        runnable = [site for site in SITES if not site.refused]
        for site in runnable:
            engine.definitions.deploy(_write(tmp_path, site, site.harmless, "ok"))
        _AUDITING = []
        try:
            for site in runnable:
                instance = engine.instances.start(site.key, business_key="B", data={"amount": 5})
                if site.reached_by == "task":
                    [task] = instance.tasks
                    engine.tasks.complete(task.id, user="anna", groups=["clerks"], data={})
                elif site.reached_by == "message":
                    engine.messages.correlate("docs", business_key="B", data={"customer_id": 7})
                engine.jobs.run_due()
            seen, _AUDITING = _AUDITING, None
        finally:
            _AUDITING = None
    assert seen == []


def test_a_cron_timer_cycle_warns_that_it_never_fires(engine: Engine, tmp_path: Path) -> None:
    [timer] = [s for s in SITES if s.name == "timer"]
    path = tmp_path / "cron.bpmn"
    path.write_text(timer.bpmn("0 0/5 * * * ?").replace("timeDuration", "timeCycle"))
    report = engine.definitions.validate(path)
    assert [(d.rule, d.severity) for d in report.diagnostics if d.element_id == "site"] == [
        ("timer-definition", Severity.WARNING)
    ]
