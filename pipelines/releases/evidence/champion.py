"""The champion: the version a candidate is measured against."""

from __future__ import annotations

from pipelines.models import Environment, ModelVersion
from reviewapp.models import Project

CHAMPION_ALIAS = "champion"

# --- the champion -----------------------------------------------------------------------------


def champion_for(*, project: Project, environment: Environment | None = None) -> ModelVersion | None:
    """The version a candidate is measured against.

    With ``environment``: the version serving at 100% there, if any. Otherwise (or when that
    environment serves nothing yet): the ``current_version`` of the project's environment whose
    alias is ``champion``; failing that, the synced, not deleted version carrying the registry
    alias ``champion``. None when the project has no champion yet.
    """
    if environment is not None and environment.current_version_id:
        return ModelVersion.objects.filter(pk=environment.current_version_id).first()
    env = (
        Environment.objects.filter(project=project, alias=CHAMPION_ALIAS, current_version__isnull=False)
        .select_related("current_version")
        .order_by("id")
        .first()
    )
    if env is not None:
        return env.current_version
    # Filtered here rather than with aliases__contains: SQLite (the demo) has no JSON containment.
    versions = ModelVersion.objects.filter(project=project).exclude(status="DELETED").order_by("-id")
    if project.mlflow_registered_model:
        versions = versions.filter(registered_model=project.mlflow_registered_model)
    for version in versions.only("id", "aliases", "version", "registered_model", "project_id"):
        if CHAMPION_ALIAS in (version.aliases or []):
            return ModelVersion.objects.get(pk=version.pk)
    return None
