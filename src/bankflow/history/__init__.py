"""The audit trail."""

from bankflow.history._service import History

__all__ = ["History"]
