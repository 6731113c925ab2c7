"""The schema editor page without a browser: permissions, the draft round trip, save, versions and diff."""

from __future__ import annotations

from typing import Any

import pytest
from django.test import Client

from reviewapp.models import AuditEvent, Question
from reviewapp.services.queue import queue_next
from reviewapp.services.reviews import review_submit
from tests.factories import make_items

pytestmark = pytest.mark.django_db
URL = "/projects/support/schema/"


def signed_in(user: Any) -> Client:
    client = Client()
    client.force_login(user)
    return client


def draft_post(client: Client, **extra: str) -> dict[str, str]:
    """The page's form as the browser would post it (fields from the rendered draft)."""
    page = client.get(URL).content.decode()
    assert 'name="count" value="3"' in page
    data = {"count": "3"}
    for i, q in enumerate(Question.objects.filter(project__slug="support").order_by("order")):
        opts = q.options or {}
        data.update(
            {
                f"q-{i}-key": q.key,
                f"q-{i}-saved": "1",
                f"q-{i}-title": q.title,
                f"q-{i}-kind": q.kind,
                f"q-{i}-assessment_type": q.assessment_type,
                f"q-{i}-consensus_rule": q.consensus_rule,
                f"q-{i}-instructions": q.instructions,
                f"q-{i}-max_spread": str(q.max_spread),
                f"q-{i}-min": str(opts.get("min", "")),
                f"q-{i}-max": str(opts.get("max", "")),
                f"q-{i}-min_label": str(opts.get("min_label", "")),
                f"q-{i}-max_label": str(opts.get("max_label", "")),
                f"q-{i}-choices": "\n".join(opts.get("choices", [])),
            }
        )
        if q.required:
            data[f"q-{i}-required"] = "on"
    data.update(extra)
    return data


def test_only_curators_and_admins_open_the_editor(project, reviewer, curator, outsider):
    assert signed_in(curator).get(URL).status_code == 200
    assert signed_in(reviewer).get(URL).status_code == 403
    assert signed_in(outsider).get(URL).status_code == 404
    assert signed_in(reviewer).post(URL, {"count": "0", "op": "save"}).status_code == 403
    assert Question.objects.filter(project=project).count() == 3


def test_the_page_shows_the_draft_and_the_review_forms_preview(project, curator):
    page = signed_in(curator).get(URL).content.decode()
    assert 'name="q-1-title" value="How helpful?"' in page
    assert "data-review-form data-preview" in page
    assert 'name="answers.helpfulness"' in page  # the review form's own question partial
    assert "<kbd>y</kbd> <kbd>n</kbd> pass/fail" in page  # the review page's key legend
    assert "Keyboard shortcuts" in page


def test_add_move_and_remove_change_the_draft_only(project, curator):
    client = signed_in(curator)
    added = client.post(URL, draft_post(client, op="add", add_kind="multi_choice"), headers={"HX-Request": "true"})
    html = added.content.decode()
    assert added.status_code == 200 and html.strip().startswith('<div id="schema-page"')
    assert 'name="q-3-kind"' in html and 'value="multi_choice" selected' in html
    assert 'name="q-3-title" value="Which problems does it have?" maxlength="200" required data-title autofocus' in html
    moved = client.post(URL, draft_post(client, op="up:2"), headers={"HX-Request": "true"}).content.decode()
    assert moved.index('value="Main problem"') < moved.index('value="How helpful?"')
    removed = client.post(URL, draft_post(client, op="remove:0")).content.decode()
    assert 'value="Is the answer correct?"' not in removed
    preview = client.post(URL, draft_post(client, **{"q-0-title": "Correct?"}), headers={"HX-Request": "true"})
    assert preview.content.decode().strip().startswith('<section id="schema-preview"')
    assert "Correct?" in preview.content.decode()
    assert list(Question.objects.filter(project=project).values_list("key", flat=True)) == [
        "correct",
        "helpfulness",
        "issue",
    ]


def test_save_after_reviews_starts_a_new_version_and_the_diff_shows_it(project, curator, reviewer):
    make_items(project, 1)
    lease = queue_next(project=project, user=reviewer)
    assert lease is not None
    review_submit(assignment_id=lease.pk, user=reviewer, answers={"correct": True, "helpfulness": 4})
    client = signed_in(curator)
    assert "has reviews: saving a change" in client.get(URL).content.decode()
    data = draft_post(client, op="save", count="4")
    data.update({"q-3-key": "notes", "q-3-title": "Notes", "q-3-kind": "text", "q-3-assessment_type": "feedback"})
    data["q-1-title"] = "How helpful is it?"
    saved = client.post(URL, data, headers={"HX-Request": "true"})
    html = saved.content.decode()
    assert "Saved as schema version 2" in html
    project.refresh_from_db()
    assert project.schema_version == 2
    assert AuditEvent.objects.filter(action="schema.apply", actor=curator).exists()
    assert 'data-version="2"' in html and 'data-version="1"' in html
    diff = client.get("/projects/support/schema/diff/?from=1&to=2", headers={"HX-Request": "true"}).content.decode()
    assert diff.strip().startswith('<div id="schema-diff"')
    assert "<code>notes</code>" in diff and 'data-field="title"' in diff


def test_a_bad_draft_is_refused_in_place_and_nothing_is_saved(project, curator):
    client = signed_in(curator)
    data = draft_post(client, op="save")
    data["q-2-choices"] = "only one"
    data["q-1-min"] = "x"
    refused = client.post(URL, data, headers={"HX-Request": "true"})
    assert refused.status_code == 422
    html = refused.content.decode()
    assert "Give at least two distinct choices." in html and "Nothing was saved" in html
    assert Question.objects.get(project=project, key="issue").options["choices"][0] == "none"


def test_a_change_of_kind_refits_the_question(project, curator):
    client = signed_in(curator)
    data = draft_post(client, op="refresh:2", **{"q-2-kind": "rating", "q-2-consensus_rule": "majority"})
    html = client.post(URL, data, headers={"HX-Request": "true"}).content.decode()
    start = html.index('name="q-2-kind"')
    block = html[start : html.index("</li>", start)]
    assert '<option value="median">' in block and '"majority"' not in block  # only the rules that fit
    assert 'name="q-2-min" value="1"' in block and 'name="q-2-max" value="5"' in block
    assert "autofocus data-kind-select" in block
