"""Every place in the installed SpiffWorkflow that evaluates text, and how bankflow covers it.

The scan reads SpiffWorkflow's source for calls of ``eval``, ``exec``, ``compile``,
``__import__`` and of ``evaluate``/``execute``/``call_service`` methods. Each call found must
be listed in ``COVERED`` with the reason no diagram can reach ``eval`` through it; a call that
appears after an upgrade (or disappears) fails the test, so an upgrade cannot silently reopen
the hole. ``tests/integration/test_payload_sites.py`` puts a payload at each site on both
databases.
"""

from __future__ import annotations

import ast
import inspect
from pathlib import Path

import SpiffWorkflow

import bankflow
from bankflow.definitions import _parser
from bankflow.runtime import _spiff

SPIFF = Path(SpiffWorkflow.__file__).parent
BANKFLOW = Path(bankflow.__file__).parent

SCRIPT_ENGINE = "goes to bankflow's ScriptEngine.evaluate/execute: the sandbox"
ENVIRONMENT = "goes to script_engine.environment, which is bankflow's SandboxEnvironment"
BASE_ENGINE = "PythonScriptEngine's own method: overridden by bankflow's ScriptEngine"
DEFAULT_ENVIRONMENT = "TaskDataEnvironment: never built, the engine's environment is ours"
MIGRATION = "serializer migration: bankflow reads only the state format it wrote"
UNUSED = "not reachable: bankflow never builds these classes (see the import test)"

# (file, function, call) -> (reason, the ExpressionSite/tests.sites name that checks it at
# deploy, or "" when no diagram text reaches it)
COVERED: dict[tuple[str, str, str], tuple[str, str]] = {
    ("bpmn/script_engine/python_engine.py", "PythonScriptEngine.evaluate",
     "self.environment.evaluate"): (BASE_ENGINE, ""),
    ("bpmn/script_engine/python_engine.py", "PythonScriptEngine.execute",
     "self.environment.execute"): (BASE_ENGINE, ""),
    ("bpmn/script_engine/python_engine.py", "PythonScriptEngine.call_service",
     "self.environment.call_service"): (BASE_ENGINE, ""),
    ("bpmn/script_engine/python_environment.py", "TaskDataEnvironment.evaluate",
     "eval"): (DEFAULT_ENVIRONMENT, ""),
    ("bpmn/script_engine/python_environment.py", "TaskDataEnvironment.execute",
     "exec"): (DEFAULT_ENVIRONMENT, ""),
    ("bpmn/serializer/migration/version_1_2.py",
     "convert_timer_expressions.convert_timedate", "eval"): (MIGRATION, ""),
    ("bpmn/serializer/migration/version_1_2.py",
     "convert_timer_expressions.convert_cycle", "eval"): (MIGRATION, ""),
    ("bpmn/specs/bpmn_process_spec.py", "AdHocSubprocessSpec.path_complete",
     "workflow.script_engine.environment.evaluate"): (ENVIRONMENT, "ad-hoc-completion"),
    ("bpmn/specs/bpmn_process_spec.py", "AdHocSubprocessSpec.check_condition",
     "workflow.script_engine.environment.evaluate"): (ENVIRONMENT, "gateway-condition"),
    ("bpmn/specs/bpmn_task_spec.py", "_BpmnCondition._matches",
     "task.workflow.script_engine.evaluate"): (SCRIPT_ENGINE, "gateway-condition"),
    ("bpmn/specs/event_definitions/conditional.py", "ConditionalEventDefinition.has_fired",
     "my_task.workflow.script_engine.evaluate"): (SCRIPT_ENGINE, "conditional-event"),
    ("bpmn/specs/event_definitions/message.py", "MessageEventDefinition.calculate_correlations",
     "script_engine.environment.evaluate"): (ENVIRONMENT, "correlation-message-path"),
    ("bpmn/specs/event_definitions/timer.py", "TimeDateEventDefinition.has_fired",
     "my_task.workflow.script_engine.evaluate"): (SCRIPT_ENGINE, "timer"),
    ("bpmn/specs/event_definitions/timer.py", "DurationTimerEventDefinition.has_fired",
     "my_task.workflow.script_engine.evaluate"): (SCRIPT_ENGINE, "timer"),
    ("bpmn/specs/event_definitions/timer.py", "CycleTimerEventDefinition.cycle_complete",
     "my_task.workflow.script_engine.evaluate"): (SCRIPT_ENGINE, "timer"),
    ("bpmn/specs/mixins/multiinstance_task.py", "StandardLoopTask.loop_complete",
     "my_task.workflow.script_engine.evaluate"): (SCRIPT_ENGINE, "loop-condition"),
    ("bpmn/specs/mixins/multiinstance_task.py", "MultiInstanceTask.check_completion_condition",
     "my_task.workflow.script_engine.evaluate"): (SCRIPT_ENGINE, "multi-instance-completion"),
    ("bpmn/specs/mixins/multiinstance_task.py", "SequentialMultiInstanceTask._update_hook",
     "my_task.workflow.script_engine.evaluate"): (SCRIPT_ENGINE, "multi-instance-cardinality"),
    ("bpmn/specs/mixins/multiinstance_task.py", "ParallelMultiInstanceTask.create_children",
     "my_task.workflow.script_engine.evaluate"): (SCRIPT_ENGINE, "multi-instance-cardinality"),
    ("bpmn/specs/mixins/script_task.py", "ScriptTask._execute",
     "task.workflow.script_engine.execute"): (SCRIPT_ENGINE, "script"),
    ("camunda/specs/event_definitions.py", "MessageEventDefinition.throw",
     "my_task.workflow.script_engine.evaluate"): (UNUSED, ""),
    ("camunda/specs/multiinstance_task.py", "update_task_spec",
     "my_task.workflow.script_engine.evaluate"): (UNUSED, ""),
    ("dmn/engine/DMNEngine.py", "DMNEngine.__check_rule", "self.evaluate"): (UNUSED, ""),
    ("dmn/engine/DMNEngine.py", "DMNEngine.evaluate", "script_engine.evaluate"): (UNUSED, ""),
    ("dmn/specs/model.py", "Rule.output_as_dict", "script_engine.evaluate"): (UNUSED, ""),
    ("serializer/dict.py", "get_class", "__import__"): (UNUSED, ""),
    ("specs/Transform.py", "Transform._update_hook", "exec"): (UNUSED, ""),
    ("spiff/specs/event_definitions.py", "MessageEventDefinition.throw",
     "my_task.workflow.script_engine.evaluate"): (SCRIPT_ENGINE, "message-payload"),
    ("spiff/specs/event_definitions.py", "SpiffItemAwareEventDefinition.throw",
     "my_task.workflow.script_engine.evaluate"): (SCRIPT_ENGINE, "message-payload"),
    ("spiff/specs/mixins/service_task.py", "ServiceTask.evaluate_params",
     "task.workflow.script_engine.evaluate"): (SCRIPT_ENGINE, "service-parameter"),
    ("spiff/specs/mixins/service_task.py", "ServiceTask._execute",
     "task.workflow.script_engine.call_service"): (
        "bankflow's service task runs the host's handler; ScriptEngine.call_service refuses",
        "",
    ),
    ("spiff/specs/spiff_task.py", "SpiffBpmnTask.execute_script",
     "my_task.workflow.script_engine.execute"): (SCRIPT_ENGINE, "pre-script"),
}  # fmt: skip

_CALLS = frozenset({"eval", "exec", "compile", "__import__"})
_METHODS = frozenset({"evaluate", "execute", "_evaluate", "call_service"})


class _Finder(ast.NodeVisitor):
    def __init__(self, file: str) -> None:
        self.file = file
        self.scope: list[str] = []
        self.found: set[tuple[str, str, str]] = set()

    def _scoped(self, node: ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef) -> None:
        self.scope.append(node.name)
        self.generic_visit(node)
        self.scope.pop()

    visit_FunctionDef = visit_AsyncFunctionDef = visit_ClassDef = _scoped

    def visit_Call(self, node: ast.Call) -> None:
        func = node.func
        if (isinstance(func, ast.Name) and func.id in _CALLS) or (
            isinstance(func, ast.Attribute) and func.attr in _METHODS
        ):
            self.found.add((self.file, ".".join(self.scope), ast.unparse(func)))
        self.generic_visit(node)


def _spiff_calls() -> set[tuple[str, str, str]]:
    found: set[tuple[str, str, str]] = set()
    for path in sorted(SPIFF.rglob("*.py")):
        finder = _Finder(path.relative_to(SPIFF).as_posix())
        finder.visit(ast.parse(path.read_text(encoding="utf-8")))
        found |= finder.found
    return found


def test_every_evaluation_site_in_spiffworkflow_is_covered() -> None:
    found = _spiff_calls()
    new = sorted(found - COVERED.keys())
    gone = sorted(COVERED.keys() - found)
    assert not new, f"SpiffWorkflow evaluates text at sites bankflow has not covered: {new}"
    assert not gone, f"listed sites no longer in SpiffWorkflow (update COVERED): {gone}"


def test_each_reachable_site_has_a_payload_test() -> None:
    from sites import SITES

    names = {site.name for site in SITES}
    for key, (_reason, site) in COVERED.items():
        assert not site or site in names, (key, site)


def test_the_script_engine_environment_is_the_sandbox() -> None:
    engine = _spiff.ScriptEngine()
    assert type(engine.environment) is _spiff.SandboxEnvironment
    for method in ("evaluate", "execute", "call_service"):
        assert getattr(type(engine), method) is not getattr(_spiff.PythonScriptEngine, method), (
            method
        )


def test_bankflow_never_uses_the_unreachable_parts() -> None:
    """What ``UNUSED`` and ``MIGRATION`` rely on, read from bankflow's own source."""
    banned = (
        "SpiffWorkflow.camunda",
        "SpiffWorkflow.dmn",
        "SpiffWorkflow.serializer",
        "SpiffWorkflow.specs.Transform",
        "SpiffWorkflow.specs.Execute",
        "python_environment.TaskDataEnvironment",
    )
    for path in sorted(BANKFLOW.rglob("*.py")):
        text = path.read_text(encoding="utf-8")
        for name in banned:
            assert name not in text, f"{path.relative_to(BANKFLOW)} uses {name}"
    spiff_source = inspect.getsource(_spiff)
    assert "deserialize_json" not in spiff_source
    assert ".migrate(" not in spiff_source


def test_the_parser_builds_no_unreachable_spec_class() -> None:
    from SpiffWorkflow.specs.Execute import Execute
    from SpiffWorkflow.specs.Transform import Transform

    parser = _parser.BankflowBpmnParser()
    classes = [spec for _, spec in parser.PARSER_CLASSES.values()]
    classes += [spec for _, spec in parser.OVERRIDE_PARSER_CLASSES.values()]
    assert not [c for c in classes if issubclass(c, Transform | Execute)]
