"""Process variables: one set of variables per process instance, as in Camunda.

SpiffWorkflow gives every task its own copy of the data and merges copies where parallel
branches join, so two branches appending to one list kept only one branch's items, and
what an event sub-process or a transaction wrote was lost. bankflow's analysts draw for
Camunda, where a variable belongs to the process instance and every branch sees and
changes the same one. Here each task's ``data`` is a *view*: the process's variables, with
the local variables of the scopes the task sits in laid over them, taken afresh whenever
the task is about to run (and whenever SpiffWorkflow would have copied its parent's data).
What the task changed in its view since (a script, a form, a service's result, a
message's payload) is written back when it next syncs, usually when it completes: to the
innermost scope that holds the variable, else to the process.

Scopes:

- the process: the data of the top workflow, or of a called process's workflow (a call
  activity passes data in and out, it does not share);
- an embedded sub-process, event sub-process or transaction shares its process's
  variables;
- local scopes: each instance of a multi-instance activity holds its element variable and
  ``loopCounter``; an activity with ``camunda:inputOutput`` holds its input parameters.
  A local scope covers the activity and, for a sub-process, everything inside it.
  Output parameters are evaluated when the activity completes and written outside it.

This module works on SpiffWorkflow's objects by duck typing (``task.data``,
``task.internal_data``, ``workflow.data``...); ``_spiff`` wires it in.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime, time
from decimal import Decimal
from typing import Any
from uuid import UUID

from bankflow.definitions._parser import LOCALS

MARK = "bankflow_variables"  # on a scope's root task: its workflow.data holds the variables
INPUTS_DONE = "bankflow_inputs"  # in a task's internal data: its input parameters are set
_BASE = "_bankflow_base"  # on the task object: the view it was last given
# SpiffWorkflow keeps a process's data objects in its workflow data under this key and
# copies them in and out of tasks through their data associations: not a variable.
_OWN = frozenset({"data_objects"})


def is_own_scope(workflow: Any) -> bool:
    """A top workflow, or the workflow of a called process."""
    parent_id = getattr(workflow, "parent_task_id", None)
    if parent_id is None:
        return True
    parent = workflow.top_workflow.get_task_from_id(parent_id)
    return parent is None or bool(getattr(parent.task_spec, "bankflow_own_scope", False))


def parent_task(workflow: Any) -> Any:
    parent_id = getattr(workflow, "parent_task_id", None)
    if parent_id is None:
        return None
    return workflow.top_workflow.get_task_from_id(parent_id)


def scope(workflow: Any) -> Any:
    """The workflow whose ``data`` holds the process variables ``workflow``'s tasks see."""
    while not is_own_scope(workflow):
        workflow = parent_task(workflow).workflow
    return workflow


def store(workflow: Any) -> dict[str, Any]:
    """The variables of ``workflow``'s process scope. A workflow saved before bankflow kept
    process variables carries them in its most recent task: they are taken from there."""
    owner = scope(workflow)
    root = owner.task_tree
    if not root.internal_data.get(MARK):
        last = owner.last_task
        seed = last.data if last is not None else root.data
        owner.data = {**_copy(seed), **owner.data}
        root.internal_data[MARK] = True
    data: dict[str, Any] = owner.data
    return data


def seed(workflow: Any, data: dict[str, Any]) -> None:
    """A new process scope (an instance, a called process) starts with ``data``."""
    workflow.data.update(_copy({k: v for k, v in data.items() if k not in _OWN}))
    workflow.task_tree.internal_data[MARK] = True


def chain(task: Any) -> list[dict[str, Any]]:
    """The local scopes ``task`` sees, innermost first (up to its process scope)."""
    found = []
    current = task
    while current is not None:
        own = current.internal_data.get(LOCALS)
        if own is not None:
            found.append(own)
        workflow = current.workflow
        if is_own_scope(workflow):
            break
        current = parent_task(workflow)
    return found


def declare_locals(task: Any, values: dict[str, Any]) -> None:
    """``values`` become local variables of ``task`` (and of what runs inside it)."""
    own = task.internal_data.setdefault(LOCALS, {})
    own.update(_copy(values))


def flush(task: Any) -> Written | None:
    """Write what ``task`` changed in its view since it was given it; what reached the
    process's variables is returned (None when nothing did), so history can say what a
    task wrote without comparing the variables again."""
    base = task.__dict__.get(_BASE)
    if base is None or not getattr(task.task_spec, "bankflow_writes", True):
        return None
    data = task.data
    skip = _OWN | _associated(task.task_spec)
    changed = {
        k: v for k, v in data.items() if k not in skip and (k not in base or not _same(base[k], v))
    }
    deleted = [k for k in base if k not in data and k not in skip]
    if not changed and not deleted:
        return None
    scopes = chain(task)
    variables = store(task.workflow)
    written = Written()
    for key, value in changed.items():
        target = next((s for s in scopes if key in s), variables)
        target[key] = _copy(value)
        if target is variables:
            written.set[key] = target[key]  # the stored copy: nothing copies it again
    for key in deleted:
        target = next((s for s in scopes if key in s), variables)
        if target.pop(key, _MISSING) is not _MISSING and target is variables:
            written.removed.append(key)
    # Written: the task writes nothing more until it is given a view again (``refresh``).
    task.__dict__.pop(_BASE, None)
    return written if written.set or written.removed else None


def refresh(task: Any, evaluate: Callable[[Any, str], Any] | None = None) -> None:
    """Give ``task`` the current view. The first time, an activity with input parameters
    gets them (``evaluate`` runs an expression in the task's view)."""
    inputs = getattr(task.task_spec, "bankflow_inputs", None)
    if inputs and evaluate is not None and not task.internal_data.get(INPUTS_DONE):
        task.internal_data[INPUTS_DONE] = True
        task.data = _copy(_view(task))
        own = task.internal_data.setdefault(LOCALS, {})
        for name, expression in inputs:
            value = evaluate(task, expression)
            task.data[name] = value
            own[name] = _copy(value)
    view = _view(task)
    # Data objects SpiffWorkflow copied in (or a script set, to be copied out) stay.
    kept = {k: task.data[k] for k in _associated(task.task_spec) if k in task.data}
    task.data = _copy(view)
    task.data.update(kept)
    task.__dict__[_BASE] = view


def sync(task: Any, evaluate: Callable[[Any, str], Any] | None = None) -> None:
    flush(task)
    refresh(task, evaluate)


def write_outputs(
    task: Any, evaluate: Callable[[Any, str], Any], written: Written | None = None
) -> Written | None:
    """Evaluate ``task``'s output parameters in its view and write them outside it; what
    reached the process's variables is added to ``written`` (returned, or a new one)."""
    outputs = getattr(task.task_spec, "bankflow_outputs", None)
    if not outputs:
        return written
    values = [(name, evaluate(task, expression)) for name, expression in outputs]
    own = task.internal_data.get(LOCALS)
    scopes = [s for s in chain(task) if s is not own]
    variables = store(task.workflow)
    for name, value in values:
        target = next((s for s in scopes if name in s), variables)
        target[name] = _copy(value)
        if target is variables:
            if written is None:
                written = Written()
            written.set[name] = target[name]
            if name in written.removed:
                written.removed.remove(name)
    return written


@dataclass
class Written:
    """What one task changed in its process's variables: values set (the stored objects
    themselves, never copied again) and names removed. Local variables are not in it:
    they end with their activity."""

    set: dict[str, Any] = field(default_factory=dict)
    removed: list[str] = field(default_factory=list)


_MISSING = object()


def remember(task: Any) -> None:
    """``task`` was given its current data as its view (a task restored from storage)."""
    task.__dict__[_BASE] = _copy(task.data)


def view_of(task: Any) -> dict[str, Any]:
    return _view(task)


def _associated(spec: Any) -> frozenset[str]:
    """The data objects a task reads or writes through associations: SpiffWorkflow moves
    them between the task and the process's data objects itself."""
    found = [
        obj.bpmn_id
        for attribute in ("data_input_associations", "data_output_associations")
        for obj in getattr(spec, attribute, None) or ()
    ]
    return frozenset(found)


def _view(task: Any) -> dict[str, Any]:
    view = {k: v for k, v in store(task.workflow).items() if k not in _OWN}
    for own in reversed(chain(task)):
        view.update(own)
    return view


# Values a process variable holds that never change in place: shared, not copied.
_IMMUTABLE = frozenset({str, int, float, bool, type(None), Decimal, date, datetime, time, UUID})


def _copy(value: Any) -> Any:
    """A deep copy of task data, several times faster than ``copy.deepcopy`` for the
    JSON-like values it holds (which the copy made on every step shows)."""
    kind = type(value)
    if kind in _IMMUTABLE:
        return value
    if kind is dict:
        return {k: _copy(v) for k, v in value.items()}
    if kind is list:
        return [_copy(v) for v in value]
    return copy.deepcopy(value)


def _same(a: Any, b: Any) -> bool:
    if a is b:
        return True
    if type(a) is not type(b):
        return False
    try:
        return bool(a == b)
    except Exception:  # an exotic value that cannot compare: count it as changed
        return False
