"""A project with one of each object a write endpoint takes in its path, and an all-scopes admin token."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from evaluations.models import Suite, SuiteVersion
from pipelines.datasets.export_jobs import export_job_create, export_job_run
from pipelines.datasets.versions import dataset_create, dataset_version_create
from pipelines.models import DeliveryTarget, Environment, PromotionGate
from pipelines.releases.gates.params import gate_create
from reviewapp.models import ApiToken, Item, ReviewerGroup
from reviewapp.services.tokens import api_token_create
from tests.factories import ProjectFactory, make_items, member, standard_questions


@dataclass
class Seeded:
    project: Any
    admin: Any
    token: str
    ids: dict[str, int] = field(default_factory=dict)
    environment: str = "staging"

    def fill(self, path: str) -> str:
        """``/api/v1/projects/{slug}/gates/{id}/`` with the seeded slug and the matching object's id."""

        def one(match: re.Match[str]) -> str:
            name = match.group(1)
            before = path[: match.start()].rstrip("/").rsplit("/", 1)[-1]
            if name == "slug":
                return self.project.slug
            if name == "name":
                return self.environment
            if name == "item_id":
                return str(self.ids["items"])
            if name == "number":
                return "1"
            return str(self.ids.get(before, self.ids["items"]))

        return re.sub(r"\{(\w+)\}", one, path)


def seed_project() -> Seeded:
    project = ProjectFactory(slug="support", name="Support assistant")
    standard_questions(project)
    make_items(project, 3)
    admin = member(project, "admin", username="ada")
    _, token = api_token_create(user=admin, name="all", scopes=[s.value for s in ApiToken.Scope], project=None)
    group = ReviewerGroup.objects.create(project=project, name="experts")
    Environment.objects.create(project=project, name="staging", alias="challenger")
    dataset = dataset_create(project=project, user=admin, name="core")
    target = DeliveryTarget.objects.create(project=project, kind="delta", target="var/delta/seeded")
    gate = gate_create(project=project, kind=PromotionGate.Kind.MIN_ITEMS, params={"count": 1}, actor=admin)
    version = dataset_version_create(dataset=dataset, user=admin, allow_unchanged=True)
    job = export_job_create(project=project, user=admin, fmt="jsonl", shape="mlflow", version=version)
    export_job_run(job_id=job.pk)  # a finished file, so the download is exercised too
    suite = Suite.objects.create(project=project, name="core")
    scorer = {"name": "match", "scorer": "exact_match", "threshold": 0.5, "params": {}, "human_question": ""}
    SuiteVersion.objects.create(suite=suite, number=1, scorers=[scorer])
    item = Item.objects.filter(project=project).order_by("pk").first()
    assert item is not None
    ids = {
        "items": item.pk,
        "groups": group.pk,
        "datasets": dataset.pk,
        "delivery-targets": target.pk,
        "gates": gate.pk,
        "exports": job.pk,
        "suites": suite.pk,
    }
    return Seeded(project=project, admin=admin, token=token, ids=ids)
