"""A small OpenID Connect provider for tests, faithful to the parts Reviewdesk uses.

OpenID Connect Core 1.0 (authorization code flow), Discovery 1.0 and RFC 7636 (PKCE, S256):

- ``GET /.well-known/openid-configuration``: the discovery document, ``issuer`` = this server's URL;
- ``GET /jwks``: the public half of an RSA key generated at start (``kid`` set), as a JWK Set;
- ``GET /authorize``: checks ``client_id``, ``redirect_uri``, ``response_type=code``, ``openid`` in
  ``scope`` and an S256 ``code_challenge``, then shows a small sign-in form;
- ``POST /authorize``: the form: right password -> 302 to ``redirect_uri?code=…&state=…``; a
  wrong one shows the form again; "Cancel" -> ``error=access_denied``;
- ``POST /token``: ``grant_type=authorization_code``, client authentication by ``client_secret_post``
  or ``client_secret_basic``, one-time codes bound to ``redirect_uri``, and the PKCE verifier checked;
  answers an RS256 ID token (iss, sub, aud, exp, iat, auth_time, nonce, email, groups, …) and an
  access token;
- ``GET /userinfo``: the claims for a Bearer access token.

Tests change ``users`` (and a user's ``groups``) between sign-ins, and set ``tamper`` to one of
``signature`` (signed by another key with the same kid), ``audience``, ``nonce``, ``issuer`` or
``expired`` to hand out a bad ID token.
"""

from __future__ import annotations

import base64
import hashlib
import html
import secrets
import threading
import time
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, urlencode

import jwt
from cryptography.hazmat.primitives.asymmetric import rsa

from tests.fakes.http import FakeHttpServer, Reply, Request, route


@dataclass
class OidcUser:
    username: str
    password: str
    email: str
    name: str = ""
    groups: list[str] = field(default_factory=list)
    email_verified: bool = True
    sub: str = field(default_factory=lambda: secrets.token_hex(8))


PROVIDER_PASSWORD = "provider-pw"
CLIENT_SECRET = "s3cret-for-tests"


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _int_b64url(value: int) -> str:
    return _b64url(value.to_bytes((value.bit_length() + 7) // 8, "big"))


class FakeOidcProvider(FakeHttpServer):
    def __init__(self, *, client_id: str = "reviewdesk", client_secret: str = CLIENT_SECRET) -> None:
        super().__init__()
        self.client_id = client_id
        self.client_secret = client_secret
        self.users: dict[str, OidcUser] = {}
        self.tamper: str | None = None
        # Registered redirect URIs, by prefix: the live server, and Django's test client.
        self.redirect_prefixes: tuple[str, ...] = ("http://127.0.0.1:", "http://localhost:", "http://testserver/")
        self.kid = secrets.token_hex(4)
        self.key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self._codes: dict[str, dict[str, Any]] = {}
        self._access_tokens: dict[str, str] = {}  # token -> username
        self._mutex = threading.Lock()

    def add_user(self, username: str, *, password: str = PROVIDER_PASSWORD, **kwargs: Any) -> OidcUser:
        user = OidcUser(username=username, password=password, **kwargs)
        self.users[username] = user
        return user

    # --- discovery and keys ----------------------------------------------------------------

    @route("GET", r"/\.well-known/openid-configuration")
    def discovery(self, request: Request) -> Reply:
        return Reply(
            200,
            {
                "issuer": self.url,
                "authorization_endpoint": f"{self.url}/authorize",
                "token_endpoint": f"{self.url}/token",
                "userinfo_endpoint": f"{self.url}/userinfo",
                "jwks_uri": f"{self.url}/jwks",
                "response_types_supported": ["code"],
                "subject_types_supported": ["public"],
                "id_token_signing_alg_values_supported": ["RS256"],
                "scopes_supported": ["openid", "email", "profile", "groups"],
                "token_endpoint_auth_methods_supported": ["client_secret_post", "client_secret_basic"],
                "code_challenge_methods_supported": ["S256"],
                "claims_supported": ["sub", "iss", "aud", "exp", "iat", "nonce", "email", "name", "groups"],
            },
        )

    @route("GET", r"/jwks")
    def jwks(self, request: Request) -> Reply:
        numbers = self.key.public_key().public_numbers()
        jwk = {"kty": "RSA", "use": "sig", "alg": "RS256", "kid": self.kid}
        jwk.update(n=_int_b64url(numbers.n), e=_int_b64url(numbers.e))
        return Reply(200, {"keys": [jwk]})

    # --- authorization endpoint ------------------------------------------------------------

    def _error(self, status: int, error: str, description: str) -> Reply:
        return Reply(status, {"error": error, "error_description": description})

    def _check_authorize(self, params: dict[str, str]) -> Reply | None:
        if params.get("client_id") != self.client_id:
            return self._error(400, "unauthorized_client", "unknown client_id")
        if not params.get("redirect_uri", "").startswith(self.redirect_prefixes):
            return self._error(400, "invalid_request", "redirect_uri not registered")
        if params.get("response_type") != "code":
            return self._error(400, "unsupported_response_type", "only code")
        if "openid" not in params.get("scope", "").split():
            return self._error(400, "invalid_scope", "openid scope required")
        if params.get("code_challenge_method") != "S256" or not params.get("code_challenge"):
            return self._error(400, "invalid_request", "PKCE with S256 is required")
        return None

    def _form(self, params: dict[str, str], *, message: str = "") -> Reply:
        hidden = "".join(
            f'<input type="hidden" name="{html.escape(k)}" value="{html.escape(v)}">' for k, v in params.items()
        )
        note = f'<p role="alert">{html.escape(message)}</p>' if message else ""
        page = (
            "<!doctype html><html><head><title>Fake provider sign-in</title></head><body>"
            f"<h1>Fake provider</h1>{note}<form method='post' action='/authorize'>{hidden}"
            "<label>Provider username <input name='username' autocomplete='username'></label>"
            "<label>Provider password <input name='password' type='password'></label>"
            "<button type='submit' name='action' value='login'>Continue</button>"
            "<button type='submit' name='action' value='cancel'>Cancel</button></form></body></html>"
        )
        return Reply(200, page, headers={"Content-Type": "text/html; charset=utf-8"})

    @route("GET", r"/authorize")
    def authorize(self, request: Request) -> Reply:
        params = {k: v[0] for k, v in request.query.items()}
        return self._check_authorize(params) or self._form(params)

    @route("POST", r"/authorize")
    def authorize_submit(self, request: Request) -> Reply:
        form = {k: v[0] for k, v in parse_qs(request.raw.decode()).items()}
        username, password, action = form.pop("username", ""), form.pop("password", ""), form.pop("action", "")
        refused = self._check_authorize(form)
        if refused is not None:
            return refused
        back = form["redirect_uri"]
        state = {"state": form["state"]} if "state" in form else {}
        if action == "cancel":
            return Reply(302, "", headers={"Location": f"{back}?{urlencode({'error': 'access_denied', **state})}"})
        user = self.users.get(username)
        if user is None or not secrets.compare_digest(user.password, password):
            return self._form(form, message="Wrong username or password.")
        code = secrets.token_urlsafe(24)
        with self._mutex:
            self._codes[code] = {
                "username": username,
                "redirect_uri": back,
                "nonce": form.get("nonce"),
                "challenge": form["code_challenge"],
                "expires": time.time() + 60,
            }
        return Reply(302, "", headers={"Location": f"{back}?{urlencode({'code': code, **state})}"})

    # --- token and userinfo ----------------------------------------------------------------

    def _client_ok(self, request: Request, form: dict[str, str]) -> bool:
        auth = request.headers.get("authorization", "")
        if auth.lower().startswith("basic "):
            client_id, _, secret = base64.b64decode(auth[6:]).decode().partition(":")
        else:
            client_id, secret = form.get("client_id", ""), form.get("client_secret", "")
        return client_id == self.client_id and secrets.compare_digest(secret, self.client_secret)

    def id_token(self, user: OidcUser, *, nonce: str | None) -> str:
        now = int(time.time())
        claims: dict[str, Any] = {
            "iss": self.url,
            "sub": user.sub,
            "aud": self.client_id,
            "exp": now + 300,
            "iat": now,
            "auth_time": now,
            "email": user.email,
            "email_verified": user.email_verified,
            "name": user.name or user.username,
            "preferred_username": user.username,
            "groups": list(user.groups),
        }
        if nonce is not None:
            claims["nonce"] = nonce
        key = self.key
        if self.tamper == "signature":
            key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        elif self.tamper == "audience":
            claims["aud"] = "someone-else"
        elif self.tamper == "nonce":
            claims["nonce"] = "not-the-nonce-you-sent"
        elif self.tamper == "issuer":
            claims["iss"] = "https://evil.example"
        elif self.tamper == "expired":
            claims["exp"], claims["iat"] = now - 3600, now - 7200
        return jwt.encode(claims, key, algorithm="RS256", headers={"kid": self.kid})

    @route("POST", r"/token")
    def token(self, request: Request) -> Reply:
        form = {k: v[0] for k, v in parse_qs(request.raw.decode()).items()}
        if not self._client_ok(request, form):
            return self._error(401, "invalid_client", "client authentication failed")
        if form.get("grant_type") != "authorization_code":
            return self._error(400, "unsupported_grant_type", "only authorization_code")
        with self._mutex:
            grant = self._codes.pop(form.get("code", ""), None)  # one use only
        if grant is None or grant["expires"] < time.time():
            return self._error(400, "invalid_grant", "unknown, used or expired code")
        if form.get("redirect_uri") != grant["redirect_uri"]:
            return self._error(400, "invalid_grant", "redirect_uri differs from the authorization request")
        verifier = form.get("code_verifier", "")
        if _b64url(hashlib.sha256(verifier.encode("ascii")).digest()) != grant["challenge"]:
            return self._error(400, "invalid_grant", "PKCE verification failed")
        user = self.users[grant["username"]]
        access = secrets.token_urlsafe(24)
        with self._mutex:
            self._access_tokens[access] = user.username
        return Reply(
            200,
            {
                "access_token": access,
                "token_type": "Bearer",
                "expires_in": 300,
                "id_token": self.id_token(user, nonce=grant["nonce"]),
            },
            headers={"Cache-Control": "no-store"},
        )

    @route("GET", r"/userinfo")
    def userinfo(self, request: Request) -> Reply:
        username = self._access_tokens.get(request.bearer or "")
        if username is None:
            return Reply(401, {"error": "invalid_token"}, headers={"WWW-Authenticate": 'Bearer error="invalid_token"'})
        user = self.users[username]
        return Reply(
            200,
            {
                "sub": user.sub,
                "email": user.email,
                "email_verified": user.email_verified,
                "name": user.name or user.username,
                "preferred_username": user.username,
                "groups": list(user.groups),
            },
        )
