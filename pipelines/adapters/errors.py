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


# --- one mapping for every adapter ------------------------------------------------------------------
# An HTTP answer is worth retrying when the server says "not now" (408 Request Timeout, 425 Too Early,
# 429 Too Many Requests) or failed itself (any 5xx, a model server's 500 included: the same input may
# well succeed once the server has restarted or recovered). Every other 4xx means the request is
# wrong, and sending it again will not help.
TRANSIENT_STATUS = frozenset({408, 425, 429})


def status_is_transient(status: int) -> bool:
    """True when an HTTP ``status`` is worth a retry (408, 425, 429, 5xx)."""
    return status in TRANSIENT_STATUS or 500 <= status <= 599


def http_status_error(system: str, status: int, message: str) -> PipelineError:
    """The pipeline error for an HTTP failure ``status``: transient for 408/425/429/5xx, else permanent."""
    error_class = TransientPipelineError if status_is_transient(status) else PermanentPipelineError
    return error_class(message, system=system)


def connection_error(system: str, message: str) -> TransientPipelineError:
    """No answer at all (refused connection, reset, timeout): always worth a retry."""
    return TransientPipelineError(message, system=system)
