"""One error shape for the whole API.

- 400: ``{"detail": "...", "errors": [{"index", "field", "message"}, ...]}``, from a service's
  ValidationFailed, from an input serializer, or from a body that could not be parsed (bad JSON,
  not UTF-8, nested too deep, NUL characters), so clients handle one format.
- 409: ``{"detail": "...", "code": "lease_lost" | "already_submitted" | "item_removed" | "conflict"}``.
- 403: ``{"detail": "..."}`` for a service's NotAllowed (e.g. a curator deciding an item they reviewed).
- Everything else keeps DRF's ``{"detail": "..."}``.
"""

from __future__ import annotations

from typing import Any

from rest_framework import exceptions, status
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler

from reviewapp.errors import Conflict, FieldError, NotAllowed, ServiceError, ValidationFailed
from reviewapp.typed_input import field_error


def flatten_errors(detail: Any, field: str = "") -> list[FieldError]:
    """DRF's nested ``{"field": ["message"]}`` as a flat list of field errors with dotted paths."""
    if isinstance(detail, dict):
        errors: list[FieldError] = []
        for key, value in detail.items():
            name = "" if key == "non_field_errors" else str(key)
            path = f"{field}[{name}]" if name.isdigit() else ".".join(p for p in (field, name) if p)
            errors.extend(flatten_errors(value, path))
        return errors
    if isinstance(detail, list):
        if all(not isinstance(d, dict | list) for d in detail):
            return [field_error(field, str(d)) for d in detail]
        return [e for i, d in enumerate(detail) for e in flatten_errors(d, f"{field}[{i}]")]
    return [field_error(field, str(detail))]


def exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    """Service errors become JSON: 400 with field errors, 409 for conflicts."""
    if isinstance(exc, ValidationFailed):
        return Response({"detail": exc.message, "errors": exc.errors}, status=status.HTTP_400_BAD_REQUEST)
    if isinstance(exc, Conflict):
        return Response({"detail": exc.message, "code": exc.code}, status=status.HTTP_409_CONFLICT)
    if isinstance(exc, NotAllowed):
        return Response({"detail": exc.message}, status=status.HTTP_403_FORBIDDEN)
    if isinstance(exc, ServiceError):
        # Not about one field, but still the documented 400 shape (clients read ``errors``).
        general: list[FieldError] = [field_error("", exc.message)]
        return Response({"detail": exc.message, "errors": general}, status=status.HTTP_400_BAD_REQUEST)
    if isinstance(exc, exceptions.ParseError):
        # A body we could not read (not JSON, not UTF-8, too deep, NUL): the same shape as any 400.
        field = getattr(exc, "path", "")
        unread: list[FieldError] = [field_error(field, str(exc.detail))]
        return Response({"detail": str(exc.detail), "errors": unread}, status=status.HTTP_400_BAD_REQUEST)
    if isinstance(exc, exceptions.ValidationError):
        return Response(
            {"detail": "The input is not valid.", "errors": flatten_errors(exc.detail)},
            status=status.HTTP_400_BAD_REQUEST,
        )
    return drf_exception_handler(exc, context)
