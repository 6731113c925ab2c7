"""Webhooks' HTTP: the one POST of a signed promotion event to a receiver the operator configured.

The payload and its signature are made by ``pipelines.releases.webhooks``; this adapter checks the URL
against the outbound rules, sends the request with short timeouts and no redirects, and maps the
answer by the one rule of ``errors.http_status_error`` (408/425/429/5xx and no answer: transient;
other 4xx, and a redirect, which is never followed: permanent). Messages name the receiver by ``what``
(its position), never by its URL: the receiver may be an internal address.
"""

from __future__ import annotations

from pipelines.adapters import outbound
from pipelines.adapters.errors import PermanentPipelineError, connection_error, http_status_error

SYSTEM = "webhook"
CONNECT_TIMEOUT = 3.0
READ_TIMEOUT = 10.0


def webhook_post(*, url: str, body: bytes, headers: dict[str, str], rules: outbound.OutboundRules, what: str) -> int:
    """POST ``body`` to ``url``; the HTTP status of a 2xx answer, else a pipeline error."""
    import requests

    outbound.url_guard(url, rules=rules, what=what, system=SYSTEM)
    try:
        response = requests.post(
            url, data=body, headers=headers, timeout=(CONNECT_TIMEOUT, READ_TIMEOUT), allow_redirects=False
        )
    except requests.RequestException as exc:
        raise connection_error(SYSTEM, f"{what}: {type(exc).__name__}") from None
    if response.status_code >= 400:
        raise http_status_error(SYSTEM, response.status_code, f"{what}: HTTP {response.status_code}")
    if response.status_code >= 300:
        raise PermanentPipelineError(f"{what}: HTTP {response.status_code}", system=SYSTEM)
    return response.status_code
