"""A leased slot: one unit of review work one reviewer may hold at a time (services/slots.py)."""

from __future__ import annotations

from django.conf import settings
from django.db import models


class LeasedSlot(models.Model):
    """The lease fields every kind of slot has (Assignment, PairwiseSlot).

    The lease lives on the slot row itself (``reviewer`` + ``expires_at``), so leasing is a row lock
    plus an UPDATE of that row: two reviewers can never hold the same slot.
    """

    reviewer = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    leased_at = models.DateTimeField(null=True, blank=True)
    expires_at = models.DateTimeField(null=True, blank=True)
    # New for every lease: a submit naming another token comes from a page of an earlier lease of this
    # slot (taken by someone else since, or leased again) and is refused. db_default: ingest creates
    # review slots with raw SQL.
    lease_token = models.CharField(max_length=32, blank=True, default="", db_default="")
    # Set once the slot is filled; a filled slot is never leased again.
    submitted_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        abstract = True
