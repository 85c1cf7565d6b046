"""Service-task handlers registered by the host."""

from bankflow.services._registry import Handler, ServiceRegistry

__all__ = ["Handler", "ServiceRegistry"]
