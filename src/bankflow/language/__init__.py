"""bankflow's expression language, JUEL translation and DMN decision tables.

Pure: no database, no SpiffWorkflow. Definitions use it to check every expression at
validate and deploy, the runtime to evaluate them, so it sits below both and imports
neither (``tests/unit/test_layers.py`` holds that line).
"""

from bankflow.language._decisions import DecisionResult, check, evaluate, evaluate_graph
from bankflow.language._dmn import Decision, DmnError, parse_dmn
from bankflow.language._expressions import Compiled, ExpressionError, compile_expression
from bankflow.language._juel import juel_to_python

__all__ = [
    "Compiled",
    "Decision",
    "DecisionResult",
    "DmnError",
    "ExpressionError",
    "check",
    "compile_expression",
    "evaluate",
    "evaluate_graph",
    "juel_to_python",
    "parse_dmn",
]
