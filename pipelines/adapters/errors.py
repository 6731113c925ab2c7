"""Errors from the outside world, as every adapter in ``pipelines/`` reports them.

Tasks retry ``TransientPipelineError`` (timeouts, 5xx, connection refused) with backoff and
record ``PermanentPipelineError`` (bad credentials, unknown table, invalid request) as failed.
"""

from __future__ import annotations


class PipelineError(Exception):
    """An external system refused or failed; ``message`` is fit to show an operator."""

    def __init__(self, message: str, *, system: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.system = system


class TransientPipelineError(PipelineError):
    """Worth retrying later: the system was down, slow or overloaded."""


class PermanentPipelineError(PipelineError):
    """Retrying will not help until someone changes the request or the configuration."""
