"""Who may do what: capabilities per project role, and token scopes.

A user acts on a project only as a member; the role decides the capabilities. An API token
narrows that further: it needs the matching scope and, when pinned, the right project.
"""

from __future__ import annotations

from enum import StrEnum
from typing import TYPE_CHECKING

from reviewapp.models import Role

if TYPE_CHECKING:
    from reviewapp.usertypes import AnyUser


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


# What a capability lets a person do, in words for a 403 page ("curating needs curator or admin").
CAPABILITY_WORDS: dict[Capability, str] = {
    Capability.VIEW: "seeing the project",
    Capability.REVIEW: "reviewing",
    Capability.INGEST: "adding items",
    Capability.EXPORT: "exporting reviews",
    Capability.CURATE: "curating",
    Capability.EVALUATE: "running evaluations",
    Capability.PROMOTE: "promoting models",
    Capability.FEEDBACK: "sending feedback",
    Capability.MANAGE: "changing the project's settings",
}


def roles_with(capability: Capability) -> list[str]:
    """The roles that carry ``capability``, in the order of ``Role``."""
    return [role for role in Role.values if capability in ROLE_CAPABILITIES.get(role, frozenset())]


def refusal_reason(*, role: str, project_name: str, capability: Capability) -> str:
    """Why a member may not do something, in plain words for the 403 page and the API's ``detail``."""
    roles = roles_with(capability)
    needed = " or ".join([", ".join(roles[:-1]), roles[-1]] if len(roles) > 2 else roles)
    return f"Your role on {project_name} is {role}; {CAPABILITY_WORDS[capability]} needs {needed}."


# Creating projects: instance admins (superusers), and users an instance admin allowed by granting
# the Project model's own "reviewapp.add_project" permission (to the user or one of their groups).
CREATE_PROJECT_PERMISSION = "reviewapp.add_project"


def may_create_projects(user: AnyUser) -> bool:
    """One query (none for instance admins): the navigation asks on every page."""
    if not getattr(user, "is_authenticated", False) or not getattr(user, "is_active", False):
        return False
    if getattr(user, "is_superuser", False):
        return True
    from django.contrib.auth.models import Permission
    from django.db.models import Q

    app_label, codename = CREATE_PROJECT_PERMISSION.split(".")
    return Permission.objects.filter(
        Q(user=user) | Q(group__user=user), content_type__app_label=app_label, codename=codename
    ).exists()
