"""``engine.incidents``: what stopped and needs a person.

An incident is a failed instance (a script, condition or service failed, or a job ran out
of retries: the failure names the step and the error) or a message job nobody caught.
``retry`` resolves either after the cause was fixed.
"""

from __future__ import annotations

import builtins
from typing import Any

from sqlalchemy.engine import RowMapping

from bankflow import _inputs
from bankflow.errors import NotFound
from bankflow.jobs._service import Jobs
from bankflow.models import Incident, InstanceStatus
from bankflow.persistence import Database
from bankflow.persistence._jobs import JobStore
from bankflow.persistence._runtime import RuntimeStore
from bankflow.runtime import Instances

__all__ = ["Incidents"]


class Incidents:
    def __init__(self, db: Database, instances: Instances, jobs: Jobs) -> None:
        self._db = db
        self._instances = instances
        self._jobs = jobs
        self._runtime = RuntimeStore()
        self._store = JobStore()

    def list(self, *, process_key: str | None = None, limit: int = 100) -> builtins.list[Incident]:
        """Oldest first; ``limit`` at most 10,000."""
        limit, _ = _inputs.page(limit)
        if process_key is not None and not _inputs.is_name(process_key):
            return []
        with self._db.connect() as conn:
            failed = self._runtime.list_instances(
                conn,
                process_key=process_key,
                status=InstanceStatus.FAILED.value,
                business_key=None,
                limit=limit,
                offset=0,
            )
            jobs = self._store.list_jobs(conn, status="incident", limit=limit)
            jobs_by_instance = {j["instance_id"]: j for j in jobs if j["instance_id"]}
        found = [_from_instance(r, jobs_by_instance.get(r["id"])) for r in failed]
        failed_ids = {r["id"] for r in failed}
        found += [
            _from_job(j)
            for j in jobs
            if j["instance_id"] not in failed_ids
            and (process_key is None or j["process_key"] == process_key)
        ]
        found.sort(key=lambda i: (i.created_at, i.id))
        return found[:limit]

    def get(self, incident_id: str) -> Incident:
        """By id: a failed instance's id, or an incident job's id."""
        _inputs.require_id(incident_id, "incident")
        with self._db.connect() as conn:
            row = self._runtime.instance_header(conn, incident_id)
            if row is not None and row["status"] == InstanceStatus.FAILED.value:
                jobs = self._store.list_jobs(conn, status="incident", instance_id=row["id"])
                return _from_instance(row, jobs[0] if jobs else None)
            job = self._store.job(conn, incident_id)
            if job is not None and job["status"] == "incident":
                return _from_job(job)
        raise NotFound(f"no open incident {incident_id}", kind="incident", key=incident_id)

    def retry(
        self, incident_id: str, *, data: dict[str, Any] | None = None, user: str | None = None
    ) -> Incident:
        """Resolve: a failed instance runs its step again (with ``data`` merged in; a job
        out of retries gets a fresh set), a stuck message or signal is sent again."""
        _inputs.require_id(incident_id, "incident")
        try:
            incident = self.get(incident_id)
        except NotFound:
            # Not failed: let the instance say why there is nothing to retry.
            self._instances.retry(incident_id, data=data, user=user)
            raise
        if incident.kind in ("message", "signal") and incident.job_id is not None:
            self._jobs.reset(incident.job_id)
        else:
            self._instances.retry(incident.instance_id or "", data=data, user=user)
        return incident


def _from_instance(row: RowMapping, job: RowMapping | None) -> Incident:
    failure = row["failure"] or {}
    return Incident(
        id=row["id"],
        kind="job" if job is not None else "step",
        instance_id=row["id"],
        process_key=row["process_key"],
        business_key=row["business_key"],
        element_id=failure.get("element_id"),
        task_id=failure.get("task_id"),
        job_id=None if job is None else job["id"],
        message=failure.get("message") or "failed",
        error_type=failure.get("error_type"),
        attempts=None if job is None else job["attempts"],
        created_at=row["updated_at"],
    )


def _from_job(job: RowMapping) -> Incident:
    return Incident(
        id=job["id"],
        kind=job["kind"],
        instance_id=job["instance_id"],
        process_key=job["process_key"],
        business_key=job["business_key"],
        element_id=job["element_id"],
        task_id=job["task_id"],
        job_id=job["id"],
        message=job["last_error"] or "failed",
        error_type=None,
        attempts=job["attempts"],
        created_at=job["created_at"],
    )
