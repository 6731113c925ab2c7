"""The 403, 404 and 500 pages, in the site's layout with its navigation; a 403 says why."""

from __future__ import annotations

from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse, HttpResponseServerError
from django.template import loader

DEFAULT_REASON = "You do not have permission to open this page."


def forbidden(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
    # Our PermissionDenied messages are written for people (permissions.refusal_reason, ProjectArchived);
    # a bare one says the default.
    reason = str(exception) if isinstance(exception, PermissionDenied) and str(exception) else DEFAULT_REASON
    return HttpResponse(loader.render_to_string("403.html", {"reason": reason}, request), status=403)


def not_found(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
    # The exception's text is not shown: it may name what the visitor must not learn exists.
    return HttpResponse(loader.render_to_string("404.html", {}, request), status=404)


def server_error(request: HttpRequest) -> HttpResponse:
    try:
        return HttpResponseServerError(loader.render_to_string("500.html", {}, request))
    except Exception:
        # The layout itself failed (the database is down, say): a page without it.
        return HttpResponseServerError(
            "<!doctype html><title>Server error</title><h1>Something went wrong on our side</h1>"
            "<p>The error was logged. Try again in a moment.</p>",
        )
