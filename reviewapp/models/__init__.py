"""The review domain: projects, their label schema, items, leases, reviews, tokens, audit."""

from __future__ import annotations

from reviewapp.models.audit import AuditEvent
from reviewapp.models.items import Item
from reviewapp.models.projects import Membership, Project, Question, Role
from reviewapp.models.reviews import Assignment, Review, ReviewRevision, Skip
from reviewapp.models.tokens import ApiToken

__all__ = [
    "ApiToken",
    "Assignment",
    "AuditEvent",
    "Item",
    "Membership",
    "Project",
    "Question",
    "Review",
    "ReviewRevision",
    "Role",
    "Skip",
]
