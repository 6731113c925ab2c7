"""Who may do what: capabilities per project role, and token scopes.

A user acts on a project only as a member; the role decides the capabilities. An API token
narrows that further: it needs the matching scope and, when pinned, the right project.
"""

from __future__ import annotations

from enum import StrEnum

from reviewapp.models import Role


class Capability(StrEnum):
    VIEW = "view"  # see the project, its items and its progress
    REVIEW = "review"  # take items from the queue and submit reviews
    INGEST = "ingest"  # add or update items
    EXPORT = "export"  # read every review of the project
    CURATE = "curate"  # adjudicate, manage gold items and datasets
    EVALUATE = "evaluate"  # run evaluation suites
    PROMOTE = "promote"  # request and approve model promotions
    FEEDBACK = "feedback"  # send end users' feedback on answers (thumbs, ratings, comments)
    MANAGE = "manage"  # change the project, its questions and its members


ROLE_CAPABILITIES: dict[str, frozenset[Capability]] = {
    Role.REVIEWER: frozenset({Capability.VIEW, Capability.REVIEW}),
    Role.CURATOR: frozenset(
        {
            Capability.VIEW,
            Capability.REVIEW,
            Capability.CURATE,
            Capability.EXPORT,
            Capability.INGEST,
            Capability.FEEDBACK,
        }
    ),
    Role.ENGINEER: frozenset(
        {
            Capability.VIEW,
            Capability.REVIEW,
            Capability.INGEST,
            Capability.EXPORT,
            Capability.EVALUATE,
            Capability.PROMOTE,
            Capability.FEEDBACK,
        }
    ),
    Role.ADMIN: frozenset(Capability),
}

# Which token scope a capability needs when the caller is an API token.
SCOPE_FOR_CAPABILITY: dict[Capability, str] = {
    Capability.VIEW: "",  # any scope may read the project itself
    Capability.REVIEW: "review",
    Capability.INGEST: "ingest",
    Capability.EXPORT: "export",
    Capability.CURATE: "curate",
    Capability.EVALUATE: "evaluate",
    Capability.PROMOTE: "promote",
    Capability.FEEDBACK: "feedback",
}

# Scopes that grant writing one thing and reading nothing: a token carrying only these (a feedback
# token lives inside the end users' app, where it is easy to lift) cannot even read the project.
WRITE_ONLY_SCOPES = frozenset({"feedback"})


def token_may_read(scopes: list[str]) -> bool:
    """Whether a token with ``scopes`` may read the project itself (the ``view`` capability)."""
    return bool(set(scopes) - WRITE_ONLY_SCOPES)


def role_allows(role: str | None, capability: Capability) -> bool:
    return role is not None and capability in ROLE_CAPABILITIES.get(role, frozenset())
