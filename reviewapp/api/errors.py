from __future__ import annotations

from typing import Any

from rest_framework import status
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler

from reviewapp.errors import Conflict, ServiceError, ValidationFailed


def exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    """Service errors become JSON: 400 with field errors, 409 for conflicts."""
    if isinstance(exc, ValidationFailed):
        return Response({"detail": exc.message, "errors": exc.errors}, status=status.HTTP_400_BAD_REQUEST)
    if isinstance(exc, Conflict):
        return Response({"detail": exc.message, "code": exc.code}, status=status.HTTP_409_CONFLICT)
    if isinstance(exc, ServiceError):
        return Response({"detail": exc.message}, status=status.HTTP_400_BAD_REQUEST)
    return drf_exception_handler(exc, context)
