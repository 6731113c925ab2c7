"""A team sets a project up without the Django admin: create and change it (services, REST, pages),
a change of reviews per item synced in the background on the jobs kernel, archive and restore, and
pages that say why (403 with the reason, 404, navigation by role)."""

from __future__ import annotations

from typing import Any

import pytest
from django.contrib.auth.models import Permission
from django.test import Client, override_settings

from reviewapp.errors import ProjectArchived
from reviewapp.jobs import job_claim
from reviewapp.models import (
    Adjudication,
    Assignment,
    AuditEvent,
    CuratedLabel,
    Item,
    Membership,
    Project,
    ProjectSync,
    Question,
    Review,
)
from reviewapp.selectors.projects import project_list_for_user
from reviewapp.services.curation import adjudication_decide
from reviewapp.services.ingest import items_ingest
from reviewapp.services.pairwise import pairwise_tasks_create
from reviewapp.services.project_sync import project_sync_run, project_sync_start
from reviewapp.services.projects import (
    project_archive,
    project_restore,
    project_set_reviews_per_item,
    project_setup,
    project_update,
    question_create,
    question_update,
)
from reviewapp.services.queue import queue_next
from reviewapp.services.reviews import review_edit, review_submit
from tests.factories import UserFactory, item_row, make_items, member

GOOD = {"correct": True, "helpfulness": 4}
SETUP = {
    "name": "Billing bot",
    "slug": "billing",
    "description": "Answers about invoices.",
    "guidelines": "Check **amounts** first.",
    "reviews_per_item": 2,
    "queue_mode": "assigned",
    "lease_seconds": 900,
    "gold_rate": 0.1,
    "show_model_to_reviewers": True,
    "self_adjudication": True,
}


def session(user: Any) -> Client:
    client = Client()
    client.force_login(user)
    return client


def review_all(project: Project, *users: Any) -> None:
    """Each user reviews every item they can get."""
    for user in users:
        while (lease := queue_next(project=project, user=user)) is not None:
            review_submit(assignment_id=lease.pk, user=user, answers=GOOD)


def slots_per_item(project: Project) -> set[int]:
    return {Assignment.objects.filter(item=item).count() for item in Item.objects.filter(project=project)}


# --- services: setting up ---------------------------------------------------------------------------


@pytest.mark.django_db
def test_a_project_is_set_up_with_every_setting_and_its_creator_is_admin() -> None:
    creator = UserFactory(username="founder")
    project = project_setup(data=SETUP, actor=creator)
    for name, value in SETUP.items():
        assert getattr(project, name) == value, name
    assert Membership.objects.get(project=project, user=creator).role == "admin"
    assert AuditEvent.objects.filter(action="project.create", project=project, actor=creator).count() == 1


@pytest.mark.django_db
def test_every_bad_field_of_a_new_project_is_reported_at_once(project: Project) -> None:
    bad = {**SETUP, "slug": "support", "name": "", "reviews_per_item": 0, "gold_rate": 2, "queue_mode": "x"}
    with pytest.raises(Exception) as caught:
        project_setup(data=bad, actor=UserFactory())
    fields = {e["field"]: e["message"] for e in caught.value.errors}  # type: ignore[attr-defined]
    assert set(fields) == {"name", "reviews_per_item", "gold_rate", "queue_mode"}
    assert fields["reviews_per_item"] == "Use 1 to 20."
    taken = {**SETUP, "slug": "support"}
    with pytest.raises(Exception) as caught:
        project_setup(data=taken, actor=UserFactory())
    assert caught.value.errors == [  # type: ignore[attr-defined]
        {"index": None, "field": "slug", "message": "A project with this slug exists; choose another."}
    ]
    assert not Project.objects.filter(slug="billing").exists()


@pytest.mark.django_db
def test_a_settings_change_is_audited_with_what_changed_and_the_slug_stays(project: Project) -> None:
    admin = member(project, "admin", username="ada")
    project_update(project=project, data={"name": "Support bot", "gold_rate": 0.2}, actor=admin)
    project.refresh_from_db()
    assert (project.name, project.gold_rate) == ("Support bot", 0.2)
    event = AuditEvent.objects.get(action="project.update", project=project)
    assert event.data["changed"] == {"name": {"from": "Support assistant", "to": "Support bot"}}
    # Queue settings go through the queue-settings service, audited as such.
    queue = AuditEvent.objects.get(action="project.queue_settings", project=project)
    assert (queue.data["from"], queue.data["to"], queue.actor) == ({"gold_rate": 0.0}, {"gold_rate": 0.2}, admin)
    with pytest.raises(Exception) as caught:
        project_update(project=project, data={"slug": "other"}, actor=admin)
    assert caught.value.errors[0]["field"] == "slug"  # type: ignore[attr-defined]


# --- services: reviews per item, in the background ----------------------------------------------------


@pytest.mark.django_db
def test_changing_reviews_per_item_queues_a_sync_that_brings_slots_and_labels_in_line(
    project: Project, reviewer: Any, reviewer2: Any, django_capture_on_commit_callbacks: Any
) -> None:
    project = project_set_reviews_per_item(project=project, reviews_per_item=2, wait=True)
    make_items(project, 3)
    review_all(project, reviewer, reviewer2)
    assert CuratedLabel.objects.filter(item__project=project).count() == 3  # two agreeing reviews each

    with django_capture_on_commit_callbacks(execute=False) as sent:
        project = project_set_reviews_per_item(project=project, reviews_per_item=3)
    sync = project.sync  # type: ignore[attr-defined]
    assert sync.status == ProjectSync.Status.QUEUED and sync.items_total == 3 and len(sent) == 1
    # Nothing synced inside the request: the request only changed the setting.
    assert slots_per_item(project) == {2}
    assert CuratedLabel.objects.filter(item__project=project).count() == 3

    assert project_sync_run(sync.pk) == "done"
    sync.refresh_from_db()
    assert (sync.status, sync.items_done, sync.cursor) == ("done", 3, Item.objects.order_by("-pk")[0].pk)
    assert slots_per_item(project) == {3}
    # Two reviews no longer make a label: withdrawn until a third review comes.
    assert CuratedLabel.objects.filter(item__project=project).count() == 0

    project = project_set_reviews_per_item(project=project, reviews_per_item=2, wait=True)
    assert slots_per_item(project) == {2}
    assert CuratedLabel.objects.filter(item__project=project).count() == 3
    assert [e.data for e in AuditEvent.objects.filter(action="project.reviews_per_item").order_by("pk")] == [
        {"from": 1, "to": 2},
        {"from": 2, "to": 3},
        {"from": 3, "to": 2},
    ]


@pytest.mark.django_db
@override_settings(PROJECT_SYNC_BATCH=2)
def test_a_sync_resumes_at_its_committed_cursor_and_running_it_again_changes_nothing(project: Project) -> None:
    make_items(project, 5)
    items = list(Item.objects.filter(project=project).order_by("pk"))
    project = project_set_reviews_per_item(project=project, reviews_per_item=2)
    sync = project.sync  # type: ignore[attr-defined]
    # A worker claimed it, committed its first batch (items 1-2), and died.
    assert job_claim(ProjectSync, sync.pk) is not None
    Assignment.objects.bulk_create(
        [Assignment(project=project, item=item, slot=1) for item in items[:2]],
    )
    ProjectSync.objects.filter(pk=sync.pk).update(cursor=items[1].pk, items_done=2)
    assert project_sync_run(sync.pk) == "not claimable"  # its lease has not expired: nobody else takes it
    ProjectSync.objects.filter(pk=sync.pk).update(lease_expires_at="2000-01-01T00:00:00Z")

    # An item before the cursor that someone changed meanwhile is not visited again by this sync.
    Assignment.objects.filter(item=items[0], slot=1).delete()
    assert project_sync_run(sync.pk) == "done"
    sync.refresh_from_db()
    assert (sync.status, sync.attempts, sync.items_done, sync.items_total) == ("done", 2, 5, 5)
    assert [Assignment.objects.filter(item=item).count() for item in items] == [1, 2, 2, 2, 2]

    # A new sync goes over everything; a second run of it (a redelivered message) is refused, and a
    # third full sync finds nothing to change.
    again = project_sync_start(project=project, reason=ProjectSync.Reason.REVIEWS_PER_ITEM)
    assert project_sync_run(again.pk) == "done" and project_sync_run(again.pk) == "not claimable"
    before = sorted(Assignment.objects.filter(project=project).values_list("item_id", "slot"))
    assert len(before) == 10
    third = project_sync_start(project=project, reason=ProjectSync.Reason.REVIEWS_PER_ITEM)
    project_sync_run(third.pk)
    assert sorted(Assignment.objects.filter(project=project).values_list("item_id", "slot")) == before


@pytest.mark.django_db
def test_a_later_change_supersedes_an_unfinished_sync(project: Project) -> None:
    make_items(project, 2)
    first = project_set_reviews_per_item(project=project, reviews_per_item=3).sync  # type: ignore[attr-defined]
    second = project_set_reviews_per_item(project=project, reviews_per_item=2).sync  # type: ignore[attr-defined]
    first.refresh_from_db()
    assert first.status == ProjectSync.Status.SUPERSEDED and project_sync_run(first.pk) == "not claimable"
    assert project_sync_run(second.pk) == "done" and slots_per_item(project) == {2}


@pytest.mark.django_db
def test_a_consensus_rule_change_re_curates_in_the_background(project: Project, reviewer: Any, reviewer2: Any) -> None:
    project = project_set_reviews_per_item(project=project, reviews_per_item=2, wait=True)
    make_items(project, 1)
    (lease_a,) = [queue_next(project=project, user=reviewer)]
    review_submit(assignment_id=lease_a.pk, user=reviewer, answers={"correct": True, "helpfulness": 4})
    lease_b = queue_next(project=project, user=reviewer2)
    review_submit(assignment_id=lease_b.pk, user=reviewer2, answers={"correct": True, "helpfulness": 5})
    assert CuratedLabel.objects.filter().count() == 1  # median of 4 and 5
    question_update(question=Question.objects.get(project=project, key="helpfulness"), consensus_rule="unanimous")
    sync = ProjectSync.objects.get(project=project, reason=ProjectSync.Reason.CONSENSUS)
    project_sync_run(sync.pk)
    assert CuratedLabel.objects.filter().count() == 0
    assert Adjudication.objects.filter(item__project=project).count() == 1


# --- services: archive ------------------------------------------------------------------------------


@pytest.mark.django_db
def test_an_archived_project_is_read_only_in_every_service_until_restored(
    project: Project, reviewer: Any, curator: Any
) -> None:
    make_items(project, 2)
    make_items(project, 1, start=10, model_version="2")
    lease = queue_next(project=project, user=reviewer)
    review = review_submit(assignment_id=lease.pk, user=reviewer, answers=GOOD)
    held = queue_next(project=project, user=reviewer)
    admin = member(project, "admin", username="ada")
    project = project_archive(project=project, actor=admin)
    assert project.is_archived and project_archive(project=project, actor=admin).archived_at == project.archived_at

    refused = {
        "ingest": lambda: items_ingest(project=project, rows=[item_row(99)]),
        "queue": lambda: queue_next(project=project, user=reviewer),
        "submit": lambda: review_submit(assignment_id=held.pk, user=reviewer, answers=GOOD),
        "edit": lambda: review_edit(review=review, user=reviewer, answers={"correct": False, "helpfulness": 1}),
        "decide": lambda: adjudication_decide(item=lease.item, user=curator, expected_version=1, answers=GOOD),
        "question": lambda: question_create(project=project, key="tone", title="Tone", kind="pass_fail"),
        "settings": lambda: project_update(project=project, data={"name": "x"}, actor=admin),
        "reviews_per_item": lambda: project_set_reviews_per_item(project=project, reviews_per_item=3),
        "pairwise": lambda: pairwise_tasks_create(project=project, version_a="1", version_b="2"),
    }
    for what, call in refused.items():
        with pytest.raises(ProjectArchived, match="Support assistant is archived"):
            call()
        assert what  # every one refused
    assert Item.objects.filter(project=project).count() == 3 and Review.objects.count() == 1
    assert project_list_for_user(user=reviewer) == []
    assert [row.project for row in project_list_for_user(user=reviewer, include_archived=True)] == [project]

    project = project_restore(project=project, actor=admin)
    assert not project.is_archived
    assert queue_next(project=project, user=reviewer) is not None
    assert list(
        AuditEvent.objects.filter(project=project, action__in=["project.archive", "project.restore"])
        .values_list("action", flat=True)
        .order_by("pk")
    ) == ["project.archive", "project.restore"]


# --- REST ---------------------------------------------------------------------------------------------


@pytest.mark.django_db
def test_post_projects_for_instance_admins_and_users_allowed_to_add_projects(outsider: Any) -> None:
    refused = session(outsider).post("/api/v1/projects/", SETUP, content_type="application/json")
    assert refused.status_code == 403 and "instance admin" in refused.json()["detail"]
    outsider.user_permissions.add(Permission.objects.get(codename="add_project", content_type__app_label="reviewapp"))
    created = session(outsider).post("/api/v1/projects/", SETUP, content_type="application/json")
    assert created.status_code == 201, created.json()
    body = created.json()
    assert body["slug"] == "billing" and body["role"] == "admin" and body["reviews_per_item"] == 2
    assert Membership.objects.get(project__slug="billing", user=outsider).role == "admin"

    root = UserFactory(username="root", is_superuser=True, is_staff=True)
    other = session(root).post("/api/v1/projects/", {"name": "Other", "slug": "other"}, content_type="application/json")
    assert other.status_code == 201 and other.json()["queue_mode"] == "shared"


@pytest.mark.django_db
def test_post_projects_answers_400_with_each_bad_field(outsider: Any) -> None:
    outsider.is_superuser = True
    outsider.save()
    bad = {"name": "X", "slug": "Not A Slug", "reviews_per_item": "two", "lease_seconds": 5, "colour": "red"}
    answer = session(outsider).post("/api/v1/projects/", bad, content_type="application/json")
    assert answer.status_code == 400
    errors = {e["field"]: e for e in answer.json()["errors"]}
    assert set(errors) == {"slug", "reviews_per_item", "lease_seconds", "colour"}
    assert errors["lease_seconds"] == {
        "index": None,
        "field": "lease_seconds",
        "message": "Give 30 seconds to 24 hours.",
    }


@pytest.mark.django_db
def test_patch_needs_the_admin_role_and_answers_with_the_sync(project: Project, curator: Any) -> None:
    make_items(project, 2)
    refused = session(curator).patch(
        "/api/v1/projects/support/", {"reviews_per_item": 2}, content_type="application/json"
    )
    assert refused.status_code == 403
    assert refused.json()["detail"] == (
        "Your role on Support assistant is curator; changing the project's settings needs admin."
    )
    admin = member(project, "admin", username="ada")
    changed = session(admin).patch(
        "/api/v1/projects/support/", {"reviews_per_item": 2, "description": "New"}, content_type="application/json"
    )
    assert changed.status_code == 200, changed.json()
    sync = changed.json()["sync"]
    assert sync["status"] == "queued" and sync["items_total"] == 2 and changed.json()["description"] == "New"
    progress = session(admin).get(f"/api/v1/projects/support/syncs/{sync['id']}/")
    assert progress.status_code == 200 and progress.json()["items_done"] == 0
    bad = session(admin).patch("/api/v1/projects/support/", {"reviews_per_item": 99}, content_type="application/json")
    assert bad.status_code == 400 and bad.json()["errors"] == [
        {"index": None, "field": "reviews_per_item", "message": "Use 1 to 20."}
    ]


@pytest.mark.django_db
def test_archive_and_restore_over_rest(project: Project, reviewer: Any) -> None:
    admin = member(project, "admin", username="ada")
    assert session(reviewer).post("/api/v1/projects/support/archive/").status_code == 403
    archived = session(admin).post("/api/v1/projects/support/archive/")
    assert archived.status_code == 200 and archived.json()["archived_at"]
    assert session(admin).get("/api/v1/projects/").json() == []
    assert [p["slug"] for p in session(admin).get("/api/v1/projects/?archived=1").json()] == ["support"]
    refused = session(admin).post("/api/v1/projects/support/items/", [item_row(1)], content_type="application/json")
    assert refused.status_code == 403 and "archived" in refused.json()["detail"]
    assert session(admin).post("/api/v1/projects/support/restore/").json()["archived_at"] is None


# --- pages ----------------------------------------------------------------------------------------------


@pytest.mark.django_db
def test_a_403_page_says_why_in_the_sites_layout(project: Project, reviewer: Any) -> None:
    page = session(reviewer).get("/projects/support/adjudicate/")
    assert page.status_code == 403
    html = page.content.decode()
    assert "Your role on Support assistant is reviewer; curating needs curator or admin." in html
    assert 'aria-label="Main"' in html and "My projects" in html
    assert "data-nav-evaluations" not in html  # a reviewer cannot open evaluations


@pytest.mark.django_db
def test_a_404_page_in_the_layout_and_navigation_by_role(project: Project, engineer: Any, outsider: Any) -> None:
    page = session(outsider).get("/projects/support/review/")
    assert page.status_code == 404 and 'data-error-page="404"' in page.content.decode()
    assert "data-nav-evaluations" in session(engineer).get("/").content.decode()
    assert "data-nav-new-project" not in session(engineer).get("/").content.decode()


@pytest.mark.django_db
def test_the_settings_page_saves_and_shows_the_sync(project: Project) -> None:
    make_items(project, 2)
    admin = member(project, "admin", username="ada")
    client = session(admin)
    form = {
        "name": "Support",
        "reviews_per_item": "3",
        "queue_mode": "shared",
        "lease_seconds": "600",
        "gold_rate": "0",
        "description": "",
        "guidelines": "x",
    }
    answer = client.post("/projects/support/settings/", form)
    assert answer.status_code == 302
    page = client.get("/projects/support/settings/").content.decode()
    assert 'data-sync-status="queued"' in page and 'hx-trigger="every 1s"' in page
    bad = client.post("/projects/support/settings/", {**form, "reviews_per_item": "lots"})
    assert bad.status_code == 422 and "Use 1 to 20." in bad.content.decode()
    preview = client.post("/projects/guidelines-preview/", {"guidelines": "**bold** <script>x()</script>"})
    assert "<strong>bold</strong>" in preview.content.decode() and "<script>" not in preview.content.decode()


@pytest.mark.django_db
def test_an_operator_allows_a_user_to_create_projects_and_takes_it_back(outsider: Any) -> None:
    from django.core.management import call_command

    from reviewapp.permissions import may_create_projects

    assert not may_create_projects(outsider)
    call_command("allow_project_creation", "--user", outsider.username)
    assert may_create_projects(type(outsider).objects.get(pk=outsider.pk))
    assert "data-nav-new-project" in session(outsider).get("/").content.decode()
    call_command("allow_project_creation", "--user", outsider.username, "--revoke")
    assert not may_create_projects(type(outsider).objects.get(pk=outsider.pk))
    assert session(outsider).get("/projects/new/").status_code == 403
    assert AuditEvent.objects.filter(action="user.project_creation").count() == 2


@pytest.mark.django_db
def test_an_archived_projects_review_page_says_it_is_archived(project: Project, reviewer: Any) -> None:
    make_items(project, 1)
    project_archive(project=project, actor=None)
    page = session(reviewer).get("/projects/support/review/")
    assert page.status_code == 403
    assert "Support assistant is archived: it is read-only until an admin restores it." in page.content.decode()
