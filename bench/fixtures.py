"""Bench data: a project with a simple schema, members and tokens (runs inside Django)."""

from __future__ import annotations

from typing import Any


def bench_project(slug: str, *, reviews_per_item: int = 1, reset: bool = False) -> Any:
    from reviewapp.models import Project, Question
    from reviewapp.services.projects import project_set_reviews_per_item, question_create

    project = Project.objects.filter(slug=slug).first()
    if project is not None and reset:
        project.delete()
        project = None
    if project is None:
        project = Project.objects.create(name=f"Bench {slug}", slug=slug)
        question_create(project=project, key="correct", title="Correct?", kind="pass_fail")
        question_create(
            project=project, key="helpfulness", title="Helpful?", kind="rating", options={"min": 1, "max": 5}
        )
    if project.reviews_per_item != reviews_per_item:
        project_set_reviews_per_item(project=project, reviews_per_item=reviews_per_item, wait=True)
    assert Question.objects.filter(project=project).count() == 2
    return project


def bench_user(project: Any, username: str, role: str) -> Any:
    from django.contrib.auth import get_user_model

    from reviewapp.models import Membership

    user, created = get_user_model().objects.get_or_create(username=username)
    if created:
        user.set_password(username)
        user.save()
    Membership.objects.update_or_create(project=project, user=user, defaults={"role": role})
    return user


def bench_token(user: Any, scopes: list[str]) -> str:
    from reviewapp.services.tokens import api_token_create

    _, token = api_token_create(user=user, name="bench", scopes=scopes)
    return token
