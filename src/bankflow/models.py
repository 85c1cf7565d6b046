"""Frozen pydantic models: the only shapes bankflow hands to callers.

Callers never see ORM rows or SpiffWorkflow objects, so storage and the BPMN library can
change underneath without breaking anyone.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict

__all__ = [
    "DecisionDefinition",
    "Deployment",
    "Diagnostic",
    "ElementInfo",
    "Event",
    "ExternalTask",
    "FailureInfo",
    "FieldError",
    "FormField",
    "Incident",
    "Instance",
    "InstanceStatus",
    "Job",
    "JobOutcome",
    "JobRun",
    "ProcessDefinition",
    "Severity",
    "SignalResult",
    "Task",
    "ValidationReport",
    "Wait",
]


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class Severity(StrEnum):
    ERROR = "error"
    WARNING = "warning"


class Diagnostic(_Frozen):
    """One problem found in a BPMN/DMN file, pointing at the line an analyst must fix."""

    file: str
    line: int | None = None
    element_id: str | None = None
    rule: str
    message: str
    severity: Severity = Severity.ERROR

    def format(self) -> str:
        """``file:line: element-id: rule: message`` — the shape editors and CI logs link."""
        where = self.file if self.line is None else f"{self.file}:{self.line}"
        element = self.element_id or "-"
        return f"{where}: {element}: {self.rule}: {self.message} ({self.severity})"


class ValidationReport(_Frozen):
    """Every diagnostic for the files checked; ``ok`` when none is an error."""

    files: tuple[str, ...]
    diagnostics: tuple[Diagnostic, ...]

    @property
    def ok(self) -> bool:
        return not any(d.severity == Severity.ERROR for d in self.diagnostics)

    @property
    def errors(self) -> tuple[Diagnostic, ...]:
        return tuple(d for d in self.diagnostics if d.severity == Severity.ERROR)

    @property
    def warnings(self) -> tuple[Diagnostic, ...]:
        return tuple(d for d in self.diagnostics if d.severity == Severity.WARNING)

    @property
    def clean(self) -> bool:
        """No error and no warning: what ``bankflow validate --strict`` (CI) asks for."""
        return not self.diagnostics


class FormField(_Frozen):
    """A ``camunda:formField``: what a human task asks for, used to validate task data."""

    id: str
    label: str | None = None
    type: str | None = None
    default_value: str | None = None
    required: bool = False
    readonly: bool = False
    constraints: dict[str, str | None] = {}
    enum_values: dict[str, str | None] = {}


class ElementInfo(_Frozen):
    """What the modeller said about one flow element, including the extension attributes
    SpiffWorkflow drops (candidate groups, due dates, forms)."""

    element_id: str
    element_type: str
    name: str | None = None
    process_id: str | None = None
    lane: str | None = None
    documentation: str | None = None
    candidate_groups: tuple[str, ...] = ()
    candidate_users: tuple[str, ...] = ()
    assignee: str | None = None
    due_date: str | None = None
    priority: str | None = None
    form_key: str | None = None
    form_fields: tuple[FormField, ...] = ()
    line: int | None = None
    trigger: dict[str, str] | None = None
    """Start events only: ``{"kind": "message", "name": ...}`` or ``{"kind": "timer",
    "type": "timeCycle", "value": "R3/PT1H"}``."""


class ProcessDefinition(_Frozen):
    """One deployed version of an executable process; instances pin the version they
    started on."""

    id: str
    key: str
    version: int
    name: str | None
    resource_name: str
    content_hash: str
    deployment_id: str
    deployed_at: datetime


class DecisionDefinition(_Frozen):
    """One deployed version of a DMN decision."""

    id: str
    key: str
    version: int
    name: str | None
    resource_name: str
    content_hash: str
    deployment_id: str
    deployed_at: datetime


class Deployment(_Frozen):
    """The outcome of one ``deploy`` call.

    ``created`` is false when every file was already deployed with identical content: the
    call changed nothing and returns the versions already stored.
    """

    id: str | None
    created: bool
    deployed_at: datetime
    resources: tuple[str, ...]
    processes: tuple[ProcessDefinition, ...]
    decisions: tuple[DecisionDefinition, ...]
    diagnostics: tuple[Diagnostic, ...] = ()


class FieldError(_Frozen):
    """One refused field: a dotted path into the data and why."""

    field: str
    message: str


class InstanceStatus(StrEnum):
    RUNNING = "running"
    COMPLETED = "completed"
    CANCELLED = "cancelled"
    FAILED = "failed"


class FailureInfo(_Frozen):
    """Why an instance stopped: the step that raised and its error."""

    message: str
    element_id: str | None
    task_id: str | None
    error_type: str
    line: int | None = None
    at: datetime


class Task(_Frozen):
    """A human step waiting for someone in a department (lane)."""

    id: str
    instance_id: str
    process_key: str
    business_key: str | None
    element_id: str
    name: str | None
    lane: str | None
    candidate_groups: tuple[str, ...]
    candidate_users: tuple[str, ...]
    assignee: str | None
    priority: int
    due_at: datetime | None
    form_key: str | None
    created_at: datetime


class Instance(_Frozen):
    """A running or finished procedure; ``tasks`` are the human steps it waits for."""

    id: str
    process_key: str
    definition_id: str
    business_key: str | None
    status: InstanceStatus
    revision: int
    data: dict[str, Any]
    failure: FailureInfo | None
    started_by: str | None
    started_at: datetime
    updated_at: datetime
    ended_at: datetime | None
    tasks: tuple[Task, ...] = ()


class Event(_Frozen):
    """One line of the audit trail."""

    id: int
    instance_id: str
    process_key: str
    business_key: str | None
    type: str
    element_id: str | None
    task_id: str | None
    actor: str | None
    at: datetime
    data: dict[str, Any] | None


class Job(_Frozen):
    """Work due at a time: a timer, a service call, an external task, a message to carry
    to another instance, or a timer start of a process."""

    id: str
    kind: str
    status: str
    instance_id: str | None
    process_key: str
    business_key: str | None
    element_id: str | None
    task_id: str | None
    topic: str | None
    due_at: datetime
    lock_owner: str | None
    lock_expires_at: datetime | None
    attempts: int
    retries: int
    last_error: str | None
    created_at: datetime


class Wait(_Frozen):
    """One point where a running instance waits, whatever it waits for: a person
    (``user_task``), a time (``timer``), a system (``external``, ``service``), a message
    or signal from outside (``message``, ``signal``), or an outgoing message or signal
    still to be carried (``send_message``, ``send_signal``). A user sees every reason an
    instance is not moving in one list, not only its human tasks."""

    kind: str
    element_id: str | None
    task_id: str | None
    name: str | None = None  # the task's name, or the message's or signal's name
    due_at: datetime | None = None
    topic: str | None = None
    lock_owner: str | None = None
    lock_expires_at: datetime | None = None
    job_id: str | None = None
    status: str | None = None  # a job's: ready, held (the instance failed) or incident


class JobOutcome(_Frozen):
    """What running one job did: ``fired`` (timer), ``completed`` (service), ``started``
    (timer, message or signal start), ``delivered`` (message, or a signal to one
    instance), ``broadcast`` (a thrown signal split into one job per instance and start),
    ``skipped`` (the instance no longer waits for the signal), ``retry``, ``incident``,
    or ``conflict`` (someone else changed the instance first; it runs again)."""

    job_id: str
    kind: str
    result: str
    instance_id: str | None
    process_key: str
    element_id: str | None
    topic: str | None
    message: str | None = None


class SignalResult(_Frozen):
    """What one signal did: the waiting instances that caught it (``reached``, in the
    order they were reached) and the instances its signal start events began
    (``started``). Both empty: nobody waited, and a signal nobody waits for is lost."""

    name: str
    reached: tuple[Instance, ...] = ()
    started: tuple[Instance, ...] = ()


class JobRun(_Frozen):
    """One ``run_due`` pass."""

    outcomes: tuple[JobOutcome, ...] = ()

    def count(self, result: str) -> int:
        return sum(1 for o in self.outcomes if o.result == result)


class ExternalTask(_Frozen):
    """A service task locked for a system outside Python (Camunda's external task)."""

    id: str
    topic: str
    worker_id: str
    instance_id: str
    process_key: str
    business_key: str | None
    element_id: str
    variables: dict[str, Any]
    lock_expires_at: datetime
    retries: int
    attempts: int
    error_message: str | None


class Incident(_Frozen):
    """Something that stopped and needs a person: a failed step, a job out of retries, a
    message that reached nobody. ``bankflow retry ID`` resolves it after the fix."""

    id: str
    kind: str
    instance_id: str | None
    process_key: str
    business_key: str | None
    element_id: str | None
    task_id: str | None
    job_id: str | None
    message: str
    error_type: str | None
    attempts: int | None
    created_at: datetime
