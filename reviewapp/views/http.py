"""Request types and small helpers shared by the HTML views."""

from __future__ import annotations

from dataclasses import dataclass

from django.contrib.auth.models import User
from django.http import HttpRequest
from django_htmx.middleware import HtmxDetails


class AuthedHtmxRequest(HttpRequest):
    """What ``@login_required`` views receive: a logged-in user, and htmx details from the middleware."""

    htmx: HtmxDetails
    user: User


@dataclass(frozen=True)
class Notice:
    """A one-off message shown at the top of a swapped panel (messages need a full page load)."""

    level: str  # success | info | warning | error
    text: str
    link_url: str = ""
    link_text: str = ""


def partial(template: str, request: HttpRequest, name: str) -> str:
    """The named fragment for htmx requests, the whole page otherwise."""
    return f"{template}#{name}" if getattr(request, "htmx", False) else template
