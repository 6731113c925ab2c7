from __future__ import annotations

from typing import Any

from django.db.models import QuerySet
from rest_framework.pagination import CursorPagination
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView


class IdCursorPagination(CursorPagination):
    """Stable pages over a growing table: a row added while a client pages is never shown twice."""

    ordering = "id"
    page_size = 100
    page_size_query_param = "page_size"
    max_page_size = 1000


def paginated_response(
    *, queryset: QuerySet[Any], serializer_class: type[Any], request: Request, view: APIView, ordering: str = "id"
) -> Response:
    """One cursor page; ``ordering="-id"`` pages newest first (logs, flags)."""
    paginator = IdCursorPagination()
    paginator.ordering = ordering
    page = paginator.paginate_queryset(queryset, request, view=view)
    return paginator.get_paginated_response(serializer_class(page, many=True).data)
