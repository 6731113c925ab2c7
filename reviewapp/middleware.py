"""Refuse NUL characters in query strings and form posts before any view sees them.

PostgreSQL cannot store or even compare text holding NUL (U+0000), so a NUL reaching a query is a
500. Django's form fields refuse it, but views that read ``request.GET``/``request.POST`` directly
(filters, answer forms) do not; checking once here covers every page and API endpoint. JSON bodies
are checked by the API's parser (reviewapp.api.parsers), which names the JSON path.
"""

from __future__ import annotations

from collections.abc import Callable

from django.http import HttpRequest, HttpResponse, HttpResponseBadRequest, JsonResponse

from reviewapp.jsoninput import nul_field
from reviewapp.typed_input import field_error

FORM_TYPES = ("application/x-www-form-urlencoded", "multipart/form-data")


class RejectNulMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        api = request.path.startswith("/api/")
        field = nul_field(request.GET)
        # API bodies are JSON only; reading POST there would consume a body the parser must refuse.
        if field is None and not api and request.method == "POST" and request.content_type in FORM_TYPES:
            field = nul_field(request.POST)
        if field is None:
            return self.get_response(request)
        message = "NUL characters (\\u0000) are not allowed."
        if api:
            errors = [field_error(field, message)]
            return JsonResponse({"detail": f"{field}: {message}", "errors": errors}, status=400)
        return HttpResponseBadRequest(f"{field}: {message}", content_type="text/plain; charset=utf-8")
