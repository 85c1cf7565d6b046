"""Human tasks: the inbox query and claim/unclaim/delegate/complete."""

from bankflow.tasks._service import Tasks

__all__ = ["Tasks"]
