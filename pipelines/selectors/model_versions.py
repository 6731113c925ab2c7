"""Reads of model versions and promotion gates, through permission-checked getters.

Who may see them: engineers and admins (``Capability.PROMOTE``; token scope ``promote``).
Reviewers and curators get 403, non-members 404 (``reviewapp.selectors.project_get_for_user``).
Editing gates needs ``Capability.MANAGE`` (admins) on top; a token then still needs ``promote``.
"""

# ruff: noqa: RUF001 - text for people: en dashes and minus signs are intended

from __future__ import annotations

import difflib
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from django.core.exceptions import PermissionDenied
from django.db.models import QuerySet
from django.http import Http404

from pipelines.models import Environment, ModelVersion, PromotionGate
from reviewapp.models import ApiToken, Project
from reviewapp.permissions import Capability, role_allows
from reviewapp.selectors.projects import project_get_for_user

if TYPE_CHECKING:
    from reviewapp.selectors.projects import AnyUser


def project_for_models(*, user: AnyUser, slug: str, token: ApiToken | None = None, manage: bool = False) -> Project:
    """The project, if the user may see its model versions (and, with ``manage``, edit its gates)."""
    project = project_get_for_user(user=user, slug=slug, capability=Capability.PROMOTE, token=token)
    if manage and not role_allows(getattr(project, "user_role", None), Capability.MANAGE):
        raise PermissionDenied("Only project admins may change promotion gates.")
    return project


def model_version_list(*, project: Project) -> QuerySet[ModelVersion]:
    """The versions of the project's registered model (all models it ever named when it names none)."""
    versions = ModelVersion.objects.filter(project=project)
    if project.mlflow_registered_model:
        versions = versions.filter(registered_model=project.mlflow_registered_model)
    return versions


def model_version_get(*, project: Project, version: str) -> ModelVersion:
    found = model_version_list(project=project).filter(version=version).order_by("-id").first()
    if found is None:
        raise Http404(f"No version {version} of this project's model has been synced.")
    found.project = project
    return found


def model_version_get_for_user(
    *, user: AnyUser, slug: str, version: str, token: ApiToken | None = None
) -> ModelVersion:
    project = project_for_models(user=user, slug=slug, token=token)
    return model_version_get(project=project, version=version)


def environments_serving(*, project: Project) -> dict[int, list[str]]:
    """ModelVersion id -> the names of the environments serving it at 100%."""
    out: dict[int, list[str]] = {}
    rows = Environment.objects.filter(project=project, current_version__isnull=False).order_by("name")
    for name, version_id in rows.values_list("name", "current_version_id"):
        out.setdefault(version_id, []).append(name)
    return out


def environment_list(*, project: Project) -> QuerySet[Environment]:
    return Environment.objects.filter(project=project).select_related("current_version").order_by("name")


def gate_list(*, project: Project) -> QuerySet[PromotionGate]:
    return PromotionGate.objects.filter(project=project).select_related("environment").order_by("id")


def gate_get_for_user(
    *, user: AnyUser, slug: str, pk: int, token: ApiToken | None = None, manage: bool = False
) -> PromotionGate:
    project = project_for_models(user=user, slug=slug, token=token, manage=manage)
    gate = gate_list(project=project).filter(pk=pk).first()
    if gate is None:
        raise Http404("No such gate in this project.")
    gate.project = project
    return gate


# --- the pipeline behind a version, against the champion's -------------------------------------


@dataclass(frozen=True)
class DiffLine:
    kind: str  # "same" | "add" | "del"
    text: str
    old_no: int | None
    new_no: int | None

    @property
    def sign(self) -> str:
        return {"add": "+", "del": "−"}.get(self.kind, " ")


@dataclass(frozen=True)
class ParamRow:
    key: str
    value: str | None  # None: not set on this version
    champion_value: str | None
    changed: bool


def template_diff(*, old: str, new: str) -> list[DiffLine]:
    """A line diff (difflib) of the champion's prompt template (old) against this version's (new)."""
    a, b = (old or "").splitlines(), (new or "").splitlines()
    out: list[DiffLine] = []
    for tag, i1, i2, j1, j2 in difflib.SequenceMatcher(a=a, b=b, autojunk=False).get_opcodes():
        if tag == "equal":
            out += [DiffLine("same", a[i], i + 1, j1 + (i - i1) + 1) for i in range(i1, i2)]
            continue
        if tag in ("replace", "delete"):
            out += [DiffLine("del", a[i], i + 1, None) for i in range(i1, i2)]
        if tag in ("replace", "insert"):
            out += [DiffLine("add", b[j], None, j + 1) for j in range(j1, j2)]
    return out


def params_compare(*, params: dict[str, Any], champion_params: dict[str, Any] | None) -> list[ParamRow]:
    """Every param of either version, sorted; ``changed`` when the champion's value differs."""
    theirs = champion_params or {}
    keys = sorted(set(params) | set(theirs))
    return [
        ParamRow(
            key=key,
            value=None if key not in params else str(params[key]),
            champion_value=None if key not in theirs else str(theirs[key]),
            changed=champion_params is not None and params.get(key) != theirs.get(key),
        )
        for key in keys
    ]
