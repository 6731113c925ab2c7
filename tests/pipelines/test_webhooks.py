"""Signed promotion webhooks, delivered to a local HTTP receiver that checks the signature."""

from __future__ import annotations

import hashlib
import hmac
import json

import pytest

from pipelines.adapters.errors import TransientPipelineError
from pipelines.releases.promotion import promotion_request
from pipelines.releases.webhooks import webhook_deliver
from tests.fakes.http import FakeHttpServer, Reply, Request, route
from tests.pipelines.promotion_fixtures import databricks_environment, engineers, versions

SECRET = "whsec-test"


class Receiver(FakeHttpServer):
    @route("POST", r"/hook")
    def hook(self, request: Request) -> Reply:
        ts = request.headers["x-reviewdesk-timestamp"]
        expected = "sha256=" + hmac.new(SECRET.encode(), ts.encode() + b"." + request.raw, hashlib.sha256).hexdigest()
        if not hmac.compare_digest(expected, request.headers.get("x-reviewdesk-signature", "")):
            return Reply(401, {"error": "bad signature"})
        return Reply(204)


def test_a_delivery_is_signed_and_5xx_is_retryable(settings) -> None:  # type: ignore[no-untyped-def]
    settings.PROMOTION_WEBHOOK_SECRET = SECRET
    with Receiver().running() as receiver:
        assert (
            webhook_deliver(url=f"{receiver.url}/hook", payload={"event": "promotion.approved"}, delivery_id="d1")
            == 204
        )
        sent = receiver.requests[-1]
        assert json.loads(sent.raw) == {"event": "promotion.approved"}
        assert (
            sent.headers["x-reviewdesk-delivery"] == "d1" and sent.headers["x-reviewdesk-event"] == "promotion.approved"
        )

        receiver.fail_next(1, Reply(503))
        with pytest.raises(TransientPipelineError):
            webhook_deliver(url=f"{receiver.url}/hook", payload={"event": "x"})
        settings.PROMOTION_WEBHOOK_SECRET = "wrong"
        with pytest.raises(Exception, match="401"):
            webhook_deliver(url=f"{receiver.url}/hook", payload={"event": "x"})


@pytest.mark.django_db
def test_events_are_sent_only_after_commit(project, settings, django_capture_on_commit_callbacks) -> None:  # type: ignore[no-untyped-def]
    settings.PROMOTION_WEBHOOK_URLS = ["http://127.0.0.1:9/a", "http://127.0.0.1:9/b"]
    erin, _, _ = engineers(project)
    v1, v2 = versions(project, 1, 2)
    env = databricks_environment(project, current_version=v1)
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        promotion_request(actor=erin, model_version=v2, environment=env, reason="why")
    assert len(callbacks) == 2  # one delivery task per URL, sent when the request commits
