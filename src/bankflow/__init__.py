"""bankflow: a bank's standardized procedures as BPMN 2.0 processes, with state in SQL."""

from importlib.metadata import PackageNotFoundError as _PackageNotFoundError
from importlib.metadata import version as _version

from bankflow._clock import Clock, FixedClock, SystemClock
from bankflow._limits import Limits
from bankflow.engine import Engine
from bankflow.errors import (
    AccessDenied,
    BankflowError,
    BpmnError,
    ConcurrencyError,
    ConfigurationError,
    CorrelationError,
    DatabaseError,
    DefinitionError,
    DuplicateBusinessKey,
    Interrupted,
    InvalidData,
    InvalidState,
    InvalidTaskData,
    NotFound,
)
from bankflow.jobs import Worker
from bankflow.models import (
    DecisionDefinition,
    Deployment,
    Diagnostic,
    ElementInfo,
    Event,
    ExternalTask,
    FailureInfo,
    FieldError,
    FormField,
    Incident,
    Instance,
    InstanceStatus,
    Job,
    JobOutcome,
    JobRun,
    ProcessDefinition,
    Severity,
    SignalResult,
    Task,
    ValidationReport,
    Wait,
)

try:
    __version__ = _version("bankflow")  # the installed package's metadata, one source of truth
except _PackageNotFoundError:  # pragma: no cover - run from a source tree never installed
    __version__ = "0+unknown"

__all__ = [
    "AccessDenied",
    "BankflowError",
    "BpmnError",
    "Clock",
    "ConcurrencyError",
    "ConfigurationError",
    "CorrelationError",
    "DatabaseError",
    "DecisionDefinition",
    "DefinitionError",
    "Deployment",
    "Diagnostic",
    "DuplicateBusinessKey",
    "ElementInfo",
    "Engine",
    "Event",
    "ExternalTask",
    "FailureInfo",
    "FieldError",
    "FixedClock",
    "FormField",
    "Incident",
    "Instance",
    "InstanceStatus",
    "Interrupted",
    "InvalidData",
    "InvalidState",
    "InvalidTaskData",
    "Job",
    "JobOutcome",
    "JobRun",
    "Limits",
    "NotFound",
    "ProcessDefinition",
    "Severity",
    "SignalResult",
    "SystemClock",
    "Task",
    "ValidationReport",
    "Wait",
    "Worker",
]
