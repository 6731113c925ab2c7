"""The review domain: projects, their label schema, items, leases, reviews, tokens, audit."""

from __future__ import annotations

from reviewapp.models.audit import AuditEvent
from reviewapp.models.curation import Adjudication, CuratedLabel, CuratedLabelRevision, SchemaVersion
from reviewapp.models.flags import Flag
from reviewapp.models.gold import GoldAnswer
from reviewapp.models.groups import ReviewerGroup
from reviewapp.models.invitations import Invitation
from reviewapp.models.items import Item
from reviewapp.models.pairwise import PairwiseSkip, PairwiseSlot, PairwiseTask, Preference
from reviewapp.models.projects import Membership, Project, ProjectSync, Question, Role
from reviewapp.models.reviews import Assignment, Review, ReviewRevision, Skip
from reviewapp.models.tokens import ApiToken

__all__ = [
    "Adjudication",
    "ApiToken",
    "Assignment",
    "AuditEvent",
    "CuratedLabel",
    "CuratedLabelRevision",
    "Flag",
    "GoldAnswer",
    "Invitation",
    "Item",
    "Membership",
    "PairwiseSkip",
    "PairwiseSlot",
    "PairwiseTask",
    "Preference",
    "Project",
    "ProjectSync",
    "Question",
    "Review",
    "ReviewRevision",
    "ReviewerGroup",
    "Role",
    "SchemaVersion",
    "Skip",
]
