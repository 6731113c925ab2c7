"""factory_boy factories and small builders for tests."""

from __future__ import annotations

from typing import Any

import factory
from django.contrib.auth import get_user_model

from reviewapp.models import Membership, Project, Question
from reviewapp.services.ingest import items_ingest
from reviewapp.services.projects import question_create

PASSWORD = "pw-for-tests-1"


class UserFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = get_user_model()
        django_get_or_create = ("username",)
        skip_postgeneration_save = True

    username = factory.Sequence(lambda n: f"user{n}")
    password = factory.django.Password(PASSWORD)


class ProjectFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Project
        django_get_or_create = ("slug",)

    name = factory.Sequence(lambda n: f"Project {n}")
    slug = factory.Sequence(lambda n: f"project-{n}")
    guidelines = "Rate **correctness** first."


def member(project: Project, role: str, **user_fields: Any) -> Any:
    user = UserFactory(**user_fields)
    Membership.objects.update_or_create(project=project, user=user, defaults={"role": role})
    return user


def standard_questions(project: Project) -> list[Question]:
    """A schema with a required pass/fail and rating, and optional others."""
    return [
        question_create(project=project, key="correct", title="Is the answer correct?", kind="pass_fail"),
        question_create(
            project=project,
            key="helpfulness",
            title="How helpful?",
            kind="rating",
            options={"min": 1, "max": 5, "min_label": "useless", "max_label": "perfect"},
        ),
        question_create(
            project=project,
            key="issue",
            title="Main problem",
            kind="choice",
            required=False,
            options={"choices": ["none", "wrong", "ungrounded", "incomplete"]},
        ),
    ]


def item_row(n: int, **overrides: Any) -> dict[str, Any]:
    row = {
        "external_id": f"ext-{n}",
        "request": f"How do I reset my password? ({n})",
        "response": f"Open **Settings** and choose *Reset password*. ({n})",
        "retrieved_context": [
            {"doc_uri": "docs/account.md", "content": "Passwords are reset from Settings."},
            {"doc_uri": "docs/billing.md", "content": "Invoices are sent monthly."},
        ],
        "model_name": "support-bot",
        "model_version": "1",
        "trace_id": f"tr-{n}",
        "source": "test",
        "metadata": {"n": n},
    }
    row.update(overrides)
    return row


def make_items(project: Project, count: int, start: int = 0, **overrides: Any) -> None:
    items_ingest(project=project, rows=[item_row(start + i, **overrides) for i in range(count)])
