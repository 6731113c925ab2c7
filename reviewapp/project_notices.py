"""Notices other apps show on the project list (e.g. monitoring alerts firing), without reviewapp
importing them: an app registers a provider in its ``AppConfig.ready``.

A provider gets the user and the rows' projects with the user's role, and returns, per project id,
short plain-text notices (escaped when rendered) with a link.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from reviewapp.models import Project


@dataclass(frozen=True)
class Notice:
    text: str
    url: str
    level: str = "warning"


Provider = Callable[[Any, list[tuple[Project, str]]], dict[int, list[Notice]]]
_PROVIDERS: dict[str, Provider] = {}


def project_notice_provider_register(name: str, provider: Provider) -> None:
    _PROVIDERS[name] = provider


def project_notices(*, user: Any, projects: list[tuple[Project, str]]) -> dict[int, list[Notice]]:
    """Every registered provider's notices, per project id."""
    out: dict[int, list[Notice]] = {}
    for provider in _PROVIDERS.values():
        for project_id, notices in provider(user, projects).items():
            out.setdefault(project_id, []).extend(notices)
    return out
