from __future__ import annotations

from django.conf import settings
from django.db import models

from reviewapp.models import Membership


class SsoIdentity(models.Model):
    """Which account an OpenID subject signs in to. Matched by ``(issuer, subject)`` after the first
    sign-in, so a changed email at the provider cannot move a person into someone else's account."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="sso_identities")
    issuer = models.CharField(max_length=500)
    subject = models.CharField(max_length=255)
    created_at = models.DateTimeField(auto_now_add=True)
    last_login_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["issuer", "subject"], name="sso_identity_unique")]

    def __str__(self) -> str:
        return f"{self.subject}@{self.issuer} -> {self.user}"


class SsoRoleGrant(models.Model):
    """A membership that the role map granted. Only these are changed or removed when the claim
    changes; a membership someone added by hand is never touched by SSO."""

    membership = models.OneToOneField(Membership, on_delete=models.CASCADE, related_name="sso_grant")
    role = models.CharField(max_length=20)  # the role the map granted (a later hand-made change releases it)
    claim_value = models.CharField(max_length=255)
    updated_at = models.DateTimeField(auto_now=True)

    def __str__(self) -> str:
        return f"{self.membership} (from {self.claim_value})"
