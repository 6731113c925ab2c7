"""Signed outgoing webhooks on promotion events (requested, approved, rejected, rollout_succeeded,
rollout_failed, rollback_requested, rolled_back). A rollback's written reason is in ``rollout.reason``.

Each event is sent, after the transaction that caused it commits, by one Celery task per URL in
``settings.PROMOTION_WEBHOOK_URLS``, retried with backoff on connection errors and non-2xx answers;
a slow or dead receiver never blocks the request that caused the event.

Verifying a delivery (receiver side)::

    expected = hmac.new(secret, f"{X-Reviewdesk-Timestamp}.".encode() + raw_body, sha256).hexdigest()
    hmac.compare_digest(f"sha256={expected}", X-Reviewdesk-Signature)   # and reject old timestamps

``X-Reviewdesk-Delivery`` is stable across retries of one delivery, so receivers can drop repeats.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
import uuid
from typing import Any

from django.conf import settings

from pipelines.adapters.webhooks_http import webhook_post
from pipelines.models import PromotionRequest, Rollout
from pipelines.wiring import outbound_rules
from reviewapp.jobs import task_send_on_commit

EVENTS = (
    "requested",
    "approved",
    "rejected",
    "rollout_succeeded",
    "rollout_failed",
    "rollback_requested",
    "rolled_back",
)
SIGNATURE_HEADER = "X-Reviewdesk-Signature"
TIMESTAMP_HEADER = "X-Reviewdesk-Timestamp"


def webhook_sign(*, secret: str, timestamp: str, body: bytes) -> str:
    digest = hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256).hexdigest()
    return f"sha256={digest}"


def webhook_payload(
    *, event: str, request: PromotionRequest, rollout: Rollout | None = None, **extra: Any
) -> dict[str, Any]:
    mv = request.model_version
    payload: dict[str, Any] = {
        "event": f"promotion.{event}",
        "sent_at": int(time.time()),
        "project": request.project.slug,
        "promotion": {
            "id": request.pk,
            "status": request.status,
            "model": mv.registered_model,
            "version": mv.version,
            "environment": request.environment.name,
            "requested_by": request.requested_by.username,
            "reason": request.reason,
        },
    }
    if rollout is not None:
        payload["rollout"] = {"id": rollout.pk, "kind": rollout.kind, "status": rollout.status}
        if rollout.kind == Rollout.Kind.ROLLBACK:
            payload["rollout"]["reason"] = rollout.reason
    payload.update(extra)
    return payload


def webhook_emit(*, event: str, request: PromotionRequest, rollout: Rollout | None = None, **extra: Any) -> None:
    """Send ``event`` to every configured URL once the current transaction commits (no-op without URLs)."""
    if event not in EVENTS:
        raise ValueError(f"unknown webhook event {event!r}")
    if not settings.PROMOTION_WEBHOOK_URLS:
        return
    payload = webhook_payload(event=event, request=request, rollout=rollout, **extra)
    for url in settings.PROMOTION_WEBHOOK_URLS:
        task_send_on_commit("pipelines.webhook_deliver", url, payload, uuid.uuid4().hex)  # by name: no face imported


def webhook_deliver(*, url: str, payload: dict[str, Any], delivery_id: str = "") -> int:
    """POST the signed payload; TransientPipelineError on errors worth retrying. Returns the HTTP status."""
    body = json.dumps(payload, sort_keys=True, separators=(",", ":")).encode()
    timestamp = str(int(time.time()))
    headers = {
        "Content-Type": "application/json",
        "User-Agent": "Reviewdesk-Webhook/1",
        "X-Reviewdesk-Event": str(payload.get("event", "")),
        "X-Reviewdesk-Delivery": delivery_id or uuid.uuid4().hex,
        TIMESTAMP_HEADER: timestamp,
    }
    if settings.PROMOTION_WEBHOOK_SECRET:
        headers[SIGNATURE_HEADER] = webhook_sign(
            secret=settings.PROMOTION_WEBHOOK_SECRET, timestamp=timestamp, body=body
        )
    # Named by its position, never by its URL: the receiver may be an internal address.
    what = f"webhook #{_position(url)}"
    return webhook_post(url=url, body=body, headers=headers, rules=outbound_rules(), what=what)


def _position(url: str) -> int:
    urls = list(settings.PROMOTION_WEBHOOK_URLS)
    return urls.index(url) + 1 if url in urls else 0


ALERT_EVENTS = ("fired", "resolved")


def alert_webhook_emit(*, event: str, payload: dict[str, Any]) -> None:
    """Send an alert rule's ``alert.fired`` or ``alert.resolved`` to every configured URL once the
    current transaction commits; signed and delivered as the promotion events are."""
    if event not in ALERT_EVENTS:
        raise ValueError(f"unknown alert event {event!r}")
    if not settings.PROMOTION_WEBHOOK_URLS:
        return
    body = {"event": f"alert.{event}", "sent_at": int(time.time()), **payload}
    for url in settings.PROMOTION_WEBHOOK_URLS:
        task_send_on_commit("pipelines.webhook_deliver", url, body, uuid.uuid4().hex)
