"""Running instances: the only place SpiffWorkflow workflows live (``_spiff``)."""

from bankflow.runtime._instances import Instances

__all__ = ["Instances"]
