"""The public surface is pinned: removing or renaming a name is a conscious act."""

import bankflow

EXPECTED = [
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


def test_exports() -> None:
    assert sorted(bankflow.__all__) == EXPECTED
    for name in EXPECTED:
        assert getattr(bankflow, name) is not None


def test_errors_form_one_tree() -> None:
    for name in ("ConfigurationError", "DatabaseError", "DefinitionError", "NotFound"):
        assert issubclass(getattr(bankflow, name), bankflow.BankflowError)
