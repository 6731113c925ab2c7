"""Errors raised by services; faces (views, API, commands) turn them into messages or status codes."""

from __future__ import annotations

from typing import TypedDict

from django.core.exceptions import PermissionDenied


class FieldError(TypedDict):
    index: int | None
    field: str
    message: str


class ServiceError(Exception):
    """A request the service refuses, with a message fit to show the user."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class ValidationFailed(ServiceError):
    """Input does not fit; ``errors`` says what is wrong and where. Nothing was written."""

    def __init__(self, errors: list[FieldError], message: str = "The input is not valid.") -> None:
        super().__init__(message)
        self.errors = errors


class NotAllowed(ServiceError):
    """The user may not do this to this object, though their role may do it elsewhere (HTTP 403)."""


class Conflict(ServiceError):
    """The request clashes with the current state (HTTP 409)."""

    code = "conflict"


class LeaseLost(Conflict):
    code = "lease_lost"


class StaleLease(LeaseLost):
    """The page was rendered for an earlier lease of this slot (its lease token is not the current one)."""


class AlreadySubmitted(Conflict):
    code = "already_submitted"


class ItemRemoved(Conflict):
    code = "item_removed"


class ReviewReturned(Conflict):
    """A curator sent the review back for re-review; it is kept as history and no longer editable."""

    code = "review_returned"


class AlreadyDecided(Conflict):
    """A curator decided the item after the deciding page was loaded."""

    code = "already_decided"


class ReviewsChanged(Conflict):
    """The reviews behind an adjudication changed after the deciding page was loaded."""

    code = "reviews_changed"


class ProjectArchived(PermissionDenied):
    """The project is archived: read-only until an admin restores it (HTTP 403, with this reason).

    A PermissionDenied, so the HTML faces show the 403 page with the reason and the API answers 403
    without each face handling it."""

    def __init__(self, project_name: str) -> None:
        self.message = f"{project_name} is archived: it is read-only until an admin restores it."
        super().__init__(self.message)
