"""Running instances: the only place SpiffWorkflow workflows live (``_spiff``)."""

from bankflow.runtime._instances import Instances
from bankflow.runtime._messages import Messages
from bankflow.runtime._signals import Signals

__all__ = ["Instances", "Messages", "Signals"]
