from __future__ import annotations

from django.conf import settings
from django.db import models
from django.utils import timezone

from reviewapp.models.projects import Project, Role


class InvitationStatus(models.TextChoices):
    PENDING = "pending", "Pending"
    ACCEPTED = "accepted", "Accepted"
    REVOKED = "revoked", "Revoked"
    EXPIRED = "expired", "Expired"


class Invitation(models.Model):
    """A one-time link that makes whoever opens it a member of ``project`` with ``role``.

    Only a SHA-256 of the secret is stored (like API tokens): the link is shown once, to the inviter.
    """

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="invitations")
    role = models.CharField(max_length=20, choices=Role.choices, default=Role.REVIEWER)
    # Who it was meant for (optional; the link is mailed there when EMAIL_URL is set). Anyone holding
    # the link may accept it, as with any invitation link.
    email = models.EmailField(blank=True)
    # The public part of the link, used to find the row without scanning hashes.
    prefix = models.CharField(max_length=16, unique=True)
    secret_hash = models.CharField(max_length=64)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)
    expires_at = models.DateTimeField()
    accepted_at = models.DateTimeField(null=True, blank=True)
    accepted_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    revoked_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"{self.project_id}:{self.role} ({self.prefix}…)"

    @property
    def status(self) -> str:
        if self.accepted_at is not None:
            return InvitationStatus.ACCEPTED.value
        if self.revoked_at is not None:
            return InvitationStatus.REVOKED.value
        if self.expires_at <= timezone.now():
            return InvitationStatus.EXPIRED.value
        return InvitationStatus.PENDING.value
