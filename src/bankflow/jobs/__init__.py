"""Timers, service-task jobs, retries, incidents, external tasks and the worker loop."""

from bankflow.jobs._external import ExternalTasks
from bankflow.jobs._incidents import Incidents
from bankflow.jobs._service import Jobs
from bankflow.jobs._worker import Worker

__all__ = ["ExternalTasks", "Incidents", "Jobs", "Worker"]
