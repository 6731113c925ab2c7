"""Load the demo through the services, creating only what is missing.

Running it again changes nothing: an existing project, question, user, membership or item is left
as it is (so reviews made in the demo survive a reload), and a service is called only for what is
missing, so no second audit event is written either.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from django.contrib.auth import get_user_model
from django.db import transaction

from reviewapp.demo.items import items_build
from reviewapp.demo.project import (
    DEMO_USERS,
    GUIDELINES,
    PROJECT_DESCRIPTION,
    PROJECT_NAME,
    PROJECT_SLUG,
    QUESTIONS,
    REVIEWS_PER_ITEM,
)
from reviewapp.demo.reviews import demo_reviews_seed
from reviewapp.models import Item, Membership, Project
from reviewapp.services.ingest import items_ingest
from reviewapp.services.projects import membership_set, project_create, question_create


@dataclass
class DemoLoadResult:
    project: Project
    project_created: bool = False
    questions_created: list[str] = field(default_factory=list)
    users_created: list[str] = field(default_factory=list)
    memberships_set: list[str] = field(default_factory=list)
    items_created: int = 0
    reviews_created: int = 0
    # Users that existed before with another password: the printed login will not work for them.
    password_mismatch: list[str] = field(default_factory=list)

    @property
    def changed(self) -> bool:
        return bool(
            self.project_created
            or self.questions_created
            or self.reviews_created
            or self.users_created
            or self.memberships_set
            or self.items_created
        )


def _user_get_or_create(*, username: str, password: str, email: str, superuser: bool) -> tuple[Any, bool]:
    user_model = get_user_model()
    user = user_model.objects.filter(username=username).first()
    if user is not None:
        return user, False
    if superuser:
        return user_model.objects.create_superuser(username=username, email=email, password=password), True
    return user_model.objects.create_user(username=username, email=email, password=password), True


def demo_load() -> DemoLoadResult:
    """Create the demo project, its questions, users, memberships and items; all or nothing."""
    with transaction.atomic():
        project = Project.objects.filter(slug=PROJECT_SLUG).first()
        project_created = project is None
        if project is None:
            project = project_create(
                name=PROJECT_NAME,
                slug=PROJECT_SLUG,
                description=PROJECT_DESCRIPTION,
                guidelines=GUIDELINES,
                reviews_per_item=REVIEWS_PER_ITEM,
            )
        result = DemoLoadResult(project=project, project_created=project_created)

        existing_keys = set(project.questions.values_list("key", flat=True))
        for spec in QUESTIONS:
            if spec["key"] not in existing_keys:
                question_create(project=project, **spec)
                result.questions_created.append(spec["key"])

        for demo_user in DEMO_USERS:
            user, created = _user_get_or_create(
                username=demo_user.username,
                password=demo_user.password,
                email=demo_user.email,
                superuser=demo_user.superuser,
            )
            if created:
                result.users_created.append(user.username)
            elif not user.check_password(demo_user.password):
                result.password_mismatch.append(user.username)
            role = Membership.objects.filter(project=project, user=user).values_list("role", flat=True).first()
            if role != demo_user.role:
                membership_set(project=project, user=user, role=demo_user.role)
                result.memberships_set.append(f"{user.username}={demo_user.role}")

        rows = items_build()
        present = set(
            Item.objects.filter(project=project, external_id__in=[row["external_id"] for row in rows]).values_list(
                "external_id", flat=True
            )
        )
        missing = [row for row in rows if row["external_id"] not in present]
        if missing:
            result.items_created = items_ingest(project=project, rows=missing, source="demo").created
        result.reviews_created = demo_reviews_seed(project=project)
    return result
