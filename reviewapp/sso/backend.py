"""Authentication backends: mozilla-django-oidc's, with Reviewdesk's checks; and passwords that can be
switched off."""

from __future__ import annotations

import logging
from typing import Any

import jwt
from django.conf import settings
from django.contrib.auth.backends import ModelBackend
from django.core.exceptions import SuspiciousOperation
from mozilla_django_oidc.auth import OIDCAuthenticationBackend

from reviewapp.sso import config
from reviewapp.sso.discovery import endpoints
from reviewapp.sso.services import SsoRefused, sso_account_resolve, sso_roles_apply

log = logging.getLogger(__name__)

# Clock skew allowed between the provider and us when checking exp/iat.
LEEWAY_SECONDS = 60


class SsoBackend(OIDCAuthenticationBackend):
    """Sign in with the provider's authorization code (state, nonce and PKCE checked by the library).

    Django builds a backend for every sign-in attempt and every session lookup, so nothing here
    touches the network until a real callback arrives."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        # Not the library's __init__: it reads the endpoints from settings, which come from discovery.
        from django.contrib.auth import get_user_model

        self.UserModel = get_user_model()

    def authenticate(self, request: Any, **kwargs: Any) -> Any:
        if request is None or not config.sso_enabled() or "code" not in request.GET or "state" not in request.GET:
            return None
        found = endpoints()
        self.OIDC_OP_TOKEN_ENDPOINT = found["OIDC_OP_TOKEN_ENDPOINT"]
        self.OIDC_OP_USER_ENDPOINT = found["OIDC_OP_USER_ENDPOINT"]
        self.OIDC_OP_JWKS_ENDPOINT = found["OIDC_OP_JWKS_ENDPOINT"]
        self.OIDC_RP_CLIENT_ID = settings.OIDC_RP_CLIENT_ID
        self.OIDC_RP_CLIENT_SECRET = settings.OIDC_RP_CLIENT_SECRET
        self.OIDC_RP_SIGN_ALGO = getattr(settings, "OIDC_RP_SIGN_ALGO", "RS256")
        self.OIDC_RP_IDP_SIGN_KEY = None  # always the provider's JWKS
        return super().authenticate(request, **kwargs)

    def _verify_jws(self, payload: Any, key: Any) -> dict[str, Any]:
        """The library checks the signature and the algorithm; an ID token must also be for us
        (audience), from our provider (issuer), and current (OpenID Connect Core §3.1.3.7)."""
        header = jwt.get_unverified_header(payload)
        if header.get("alg") != self.OIDC_RP_SIGN_ALGO:
            raise SuspiciousOperation(f"ID token signed with {header.get('alg')!r}, expected {self.OIDC_RP_SIGN_ALGO}")
        try:
            claims: dict[str, Any] = jwt.decode(
                payload,
                key,
                algorithms=[self.OIDC_RP_SIGN_ALGO],
                audience=self.OIDC_RP_CLIENT_ID,
                issuer=settings.OIDC_ISSUER,
                leeway=LEEWAY_SECONDS,
                options={"require": ["exp", "iat", "iss", "aud", "sub"]},
            )
        except jwt.PyJWTError as exc:
            raise SuspiciousOperation(f"ID token refused: {exc}") from exc
        aud = claims.get("aud")
        if isinstance(aud, list) and len(aud) > 1 and claims.get("azp") != self.OIDC_RP_CLIENT_ID:
            raise SuspiciousOperation("ID token refused: several audiences and we are not its authorized party")
        return claims

    def verify_token(self, token: str, **kwargs: Any) -> dict[str, Any]:
        payload: dict[str, Any] = super().verify_token(token, **kwargs)
        self.id_token_claims = payload
        return payload

    def get_userinfo(self, access_token: str, id_token: str, payload: dict[str, Any]) -> dict[str, Any]:
        userinfo: dict[str, Any] = {}
        if self.OIDC_OP_USER_ENDPOINT:
            userinfo = super().get_userinfo(access_token, id_token, payload)
            # Userinfo about someone else must not be merged into this person (Core §5.3.2).
            if str(userinfo.get("sub")) != str(payload.get("sub")):
                raise SuspiciousOperation("userinfo is about another subject than the ID token")
        # The ID token's claims win: it is signed, userinfo only fills in what it lacks.
        return {**userinfo, **payload}

    def get_or_create_user(self, access_token: str, id_token: str, payload: dict[str, Any]) -> Any:
        claims = self.get_userinfo(access_token, id_token, payload)
        try:
            user = sso_account_resolve(
                issuer=settings.OIDC_ISSUER,
                claims=claims,
                create_users=bool(getattr(settings, "OIDC_CREATE_USER", False)),
            )
        except SsoRefused as exc:
            self.request.sso_refusal = str(exc)
            return None
        sso_roles_apply(user=user, claims=claims, claim=config.role_claim(), role_map=config.role_map())
        return user

    def user_can_authenticate(self, user: Any) -> bool:
        return bool(getattr(user, "is_active", False))

    def get_user(self, user_id: Any) -> Any:
        # A deactivated account loses its SSO session at once, as with passwords.
        return ModelBackend.get_user(self, user_id)


class LocalPasswordBackend(ModelBackend):
    """Django's username and password, unless ``LOCAL_PASSWORDS=false``; then only superusers, and only
    with ``LOCAL_PASSWORDS_BREAK_GLASS=true`` (the way back in when the provider is down)."""

    def authenticate(
        self, request: Any, username: str | None = None, password: str | None = None, **kwargs: Any
    ) -> Any:
        if password is None:
            return None
        user = super().authenticate(request, username=username, password=password, **kwargs)
        if user is None or config.local_passwords():
            return user
        if config.break_glass() and user.is_superuser:
            log.warning("break-glass password sign-in by superuser %s", user.username)
            return user
        return None

    def get_user(self, user_id: Any) -> Any:
        # Switching passwords off also ends the sessions that a password opened.
        user = super().get_user(user_id)
        if user is None or config.local_passwords() or (config.break_glass() and user.is_superuser):
            return user
        return None
