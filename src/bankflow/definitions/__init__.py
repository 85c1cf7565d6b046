"""Process definitions: validating and deploying BPMN/DMN files, versioned by content."""

from bankflow.definitions._service import Definitions

__all__ = ["Definitions"]
