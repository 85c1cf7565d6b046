"""The public surface is pinned: removing or renaming a name is a conscious act."""

import bankflow

EXPECTED = [
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


def test_exports() -> None:
    assert sorted(bankflow.__all__) == EXPECTED
    for name in EXPECTED:
        assert getattr(bankflow, name) is not None


def test_errors_form_one_tree() -> None:
    errors = [
        "AccessDenied",
        "BpmnError",
        "ConcurrencyError",
        "ConfigurationError",
        "DatabaseError",
        "DefinitionError",
        "DuplicateBusinessKey",
        "InvalidData",
        "InvalidState",
        "InvalidTaskData",
        "NotFound",
    ]
    for name in errors:
        assert issubclass(getattr(bankflow, name), bankflow.BankflowError)
    assert issubclass(bankflow.InvalidTaskData, bankflow.InvalidData)
