"""Sign-in throttling: failed logins slow down, then lock, per username and per client IP.

The rule (numbers from settings.LOGIN_THROTTLE_*), counted separately for the username tried and
for the client address, in the shared cache (a folder on the demo, Redis in production):

- from the DELAY_AFTER-th failure on, the next attempt must wait 2, 4, 8 … seconds after the last
  failure (at most 60 s, and never longer than a lock);
- at USER_LOCK_AFTER failures of a username (IP_LOCK_AFTER of an address, higher because many people
  may share one), that key is locked for LOCK_SECONDS;
- a refused attempt does not check the password, so it tells nothing and adds nothing;
- a successful sign-in clears its username's count (not its address's);
- failures are forgotten WINDOW_SECONDS after the last one.

Only the login forms (the app's and the admin's) use this; API tokens are checked elsewhere and are
not affected. Counts are read-modify-write without a lock, so parallel guesses may be counted a
few short: a limit on speed, not an exact ledger.
"""

from __future__ import annotations

import hashlib
import math
import time
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.core.cache import cache

MAX_DELAY_SECONDS = 60


@dataclass(frozen=True)
class LoginRefusal:
    wait_seconds: int
    locked: bool

    @property
    def message(self) -> str:
        wait = _plain_duration(self.wait_seconds)
        if self.locked:
            return (
                "Too many failed sign-ins for this account or from this address, so sign-in is locked "
                f"for now. Try again in {wait}, or ask an administrator to reset your password."
            )
        return f"Several sign-ins failed. Wait {wait} before trying again."


def _plain_duration(seconds: int) -> str:
    if seconds < 60:
        return f"{seconds} second{'s' if seconds != 1 else ''}"
    minutes = math.ceil(seconds / 60)
    return f"{minutes} minute{'s' if minutes != 1 else ''}"


def _keys(*, username: str, ip: str | None) -> list[tuple[str, int]]:
    """Cache keys with their lock thresholds; hashed, so odd usernames make valid keys."""
    keys = []
    name = (username or "").strip().lower()
    if name:
        digest = hashlib.sha256(name.encode()).hexdigest()[:32]
        keys.append((f"login-throttle:user:{digest}", settings.LOGIN_THROTTLE_USER_LOCK_AFTER))
    if ip:
        keys.append((f"login-throttle:ip:{ip}", settings.LOGIN_THROTTLE_IP_LOCK_AFTER))
    return keys


def _state(key: str) -> dict[str, Any]:
    value = cache.get(key)
    return value if isinstance(value, dict) else {"failures": 0, "last": 0.0, "locked_until": 0.0}


def login_throttle_check(*, username: str, ip: str | None) -> LoginRefusal | None:
    """Why this attempt must not be tried now, or None when it may go ahead."""
    now = time.time()
    refusal: LoginRefusal | None = None
    for key, _ in _keys(username=username, ip=ip):
        state = _state(key)
        if state["locked_until"] > now:
            wait = math.ceil(state["locked_until"] - now)
            return LoginRefusal(wait_seconds=wait, locked=True)
        if state["locked_until"]:
            continue  # the lock was served: this key starts afresh
        over = state["failures"] - settings.LOGIN_THROTTLE_DELAY_AFTER
        if over >= 0:
            delay = min(2 ** (over + 1), MAX_DELAY_SECONDS, settings.LOGIN_THROTTLE_LOCK_SECONDS)
            ready_at = state["last"] + delay
            if ready_at > now:
                wait = math.ceil(ready_at - now)
                if refusal is None or wait > refusal.wait_seconds:
                    refusal = LoginRefusal(wait_seconds=wait, locked=False)
    return refusal


def login_throttle_failed(*, username: str, ip: str | None) -> None:
    """Count a failed sign-in against the username and the address; lock a key at its limit."""
    now = time.time()
    for key, lock_after in _keys(username=username, ip=ip):
        state = _state(key)
        if state["locked_until"] and state["locked_until"] <= now:
            state = {"failures": 0, "last": 0.0, "locked_until": 0.0}  # a served lock starts afresh
        state["failures"] += 1
        state["last"] = now
        if state["failures"] >= lock_after:
            state["locked_until"] = now + settings.LOGIN_THROTTLE_LOCK_SECONDS
        timeout = max(settings.LOGIN_THROTTLE_WINDOW_SECONDS, settings.LOGIN_THROTTLE_LOCK_SECONDS)
        cache.set(key, state, timeout=timeout)


def login_throttle_succeeded(*, username: str) -> None:
    for key, _ in _keys(username=username, ip=None):
        cache.delete(key)
