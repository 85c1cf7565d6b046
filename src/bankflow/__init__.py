"""bankflow: a bank's standardized procedures as BPMN 2.0 processes, with state in SQL."""

from bankflow._clock import Clock, FixedClock, SystemClock
from bankflow.engine import Engine
from bankflow.errors import (
    BankflowError,
    ConfigurationError,
    DatabaseError,
    DefinitionError,
    NotFound,
)
from bankflow.models import (
    DecisionDefinition,
    Deployment,
    Diagnostic,
    ElementInfo,
    FormField,
    ProcessDefinition,
    Severity,
    ValidationReport,
)

__all__ = [
    "BankflowError",
    "Clock",
    "ConfigurationError",
    "DatabaseError",
    "DecisionDefinition",
    "DefinitionError",
    "Deployment",
    "Diagnostic",
    "ElementInfo",
    "Engine",
    "FixedClock",
    "FormField",
    "NotFound",
    "ProcessDefinition",
    "Severity",
    "SystemClock",
    "ValidationReport",
]
