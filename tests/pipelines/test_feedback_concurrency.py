"""Feedback sent twice at once, while its items are being ingested, on real PostgreSQL.

Each sender and the ingester is a thread with its own connection and HTTP client. Whatever the
interleaving, each client id is stored once and answered as created exactly once, and no feedback
is left waiting for an item that exists (each side looks for the other after its own commit).
"""

from __future__ import annotations

import json
import threading
from typing import Any

import pytest
from django.db import connection
from django.test import Client

from pipelines.models import Feedback
from reviewapp.services.tokens import api_token_create
from tests.factories import item_row

ROWS = 60
SENDERS = 4


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
@pytest.mark.slow
def test_concurrent_resends_store_each_client_id_once_and_every_row_joins(project, engineer) -> None:
    _, feedback_token = api_token_create(user=engineer, name="app", scopes=["feedback"])
    _, ingest_token = api_token_create(user=engineer, name="ingest", scopes=["ingest"])
    batch = [
        {"client_id": f"fb-{n}", "kind": "thumbs", "value": "down" if n % 3 else "up", "trace_id": f"tr-{n}"}
        for n in range(ROWS)
    ]
    answers: list[dict[str, Any]] = []
    problems: list[str] = []
    lock = threading.Lock()
    start = threading.Barrier(SENDERS + 1)

    def send() -> None:
        client = Client(headers={"authorization": f"Bearer {feedback_token}"})
        try:
            start.wait(timeout=30)
            for part in (batch[: ROWS // 2], batch):  # a half, then all of it again
                response = client.post(
                    "/api/v1/projects/support/feedback/", json.dumps(part), content_type="application/json"
                )
                with lock:
                    if response.status_code not in (200, 201):
                        problems.append(f"feedback {response.status_code} {response.content[:200]!r}")
                    else:
                        answers.append(response.json())
        except Exception as exc:  # a thread's failure must fail the test, not vanish
            problems.append(repr(exc))
        finally:
            connection.close()

    def ingest() -> None:
        client = Client(headers={"authorization": f"Bearer {ingest_token}"})
        try:
            start.wait(timeout=30)
            for low in range(0, ROWS, 10):  # small batches, so feedback and items interleave
                rows = [item_row(n) for n in range(low, low + 10)]
                response = client.post(
                    "/api/v1/projects/support/items/", json.dumps(rows), content_type="application/json"
                )
                if response.status_code != 201:
                    problems.append(f"ingest {response.status_code} {response.content[:200]!r}")
        except Exception as exc:
            problems.append(repr(exc))
        finally:
            connection.close()

    threads = [threading.Thread(target=send) for _ in range(SENDERS)] + [threading.Thread(target=ingest)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=300)
    assert not any(thread.is_alive() for thread in threads), "a thread hung"
    assert problems == []

    assert Feedback.objects.filter(project=project).count() == ROWS
    created = [row["client_id"] for answer in answers for row in answer["rows"] if row["status"] == "created"]
    assert sorted(created) == sorted(row["client_id"] for row in batch)  # each created exactly once
    assert sum(answer["created"] for answer in answers) == ROWS
    waiting = list(Feedback.objects.filter(item__isnull=True).values_list("client_id", flat=True))
    assert waiting == []
    assert all(f.item.trace_id == f.trace_id for f in Feedback.objects.select_related("item"))
