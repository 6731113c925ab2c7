"""The audit page renders every kind of event the code writes, whatever keys its data holds."""

from __future__ import annotations

import re
from pathlib import Path

from django.conf import settings
from django.test import Client
from django.urls import reverse

from reviewapp.models import AuditEvent
from reviewapp.selectors.items import ItemQuery
from reviewapp.services.assignments import assignments_bulk_assign
from tests.factories import make_items

# Keys that are also methods or attributes of a dict: the template language tried them first.
COLLIDING = {"items": 66, "keys": ["a", "b"], "values": {"nested": [1, 2]}, "get": None, "update": True, "pop": "x"}


def written_actions() -> set[str]:
    """Every literal ``action="..."`` passed to audit_record in the code base."""
    found: set[str] = set()
    for app in ("reviewapp", "evaluations", "pipelines"):
        for path in (Path(settings.BASE_DIR) / app).rglob("*.py"):
            text = path.read_text()
            for call in re.finditer(r"audit_record\((.{0,400}?)\)", text, flags=re.S):
                found.update(re.findall(r'action="([a-z_.]+)"', call.group(1)))
    return found


def curator_client(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def test_the_audit_page_shows_a_bulk_assignment(project, curator, reviewer):
    make_items(project, 4)
    assignments_bulk_assign(project=project, query=ItemQuery(), actor=curator, reviewers=[reviewer])
    event = AuditEvent.objects.get(project=project, action="assignments.assign")

    response = curator_client(curator).get(reverse("audit-page", args=[project.slug]))

    assert response.status_code == 200
    html = response.content.decode()
    assert "assignments.assign" in html
    for key in event.data:
        assert f'<span class="muted">{key}</span>' in html


def test_the_audit_page_renders_every_kind_of_event_with_colliding_keys(project, curator):
    actions = written_actions()
    assert len(actions) >= 40  # the scan finds the code's events (57 call sites when written)
    for action in sorted(actions):
        AuditEvent.objects.create(
            project=project, actor=curator, action=action, target_type="item", target_id="1", data=COLLIDING
        )

    client = curator_client(curator)
    url = reverse("audit-page", args=[project.slug])
    pages = 1 + len(actions) // 50
    html = ""
    for number in range(1, pages + 1):
        response = client.get(url, {"page": number})
        assert response.status_code == 200
        html += response.content.decode()
    for action in actions:
        assert f"<code>{action}</code>" in html
    assert '<span class="muted">items</span> 66' in html
    assert '<span class="muted">values</span> {&quot;nested&quot;: [1, 2]}' in html


def test_the_action_filter_lists_each_action_once(project, curator):
    for _ in range(3):
        AuditEvent.objects.create(project=project, actor=curator, action="item.flag", target_type="item", target_id="1")
    html = curator_client(curator).get(reverse("audit-page", args=[project.slug])).content.decode()
    assert html.count('<option value="item.flag"') == 1
