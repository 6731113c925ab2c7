"""What both serving backends share: a traffic split of model versions, served entity names, EndpointNotReady."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

from pipelines.adapters.errors import PermanentPipelineError
from pipelines.models import ModelVersion

SYSTEM = "serving"
Heartbeat = Callable[[], None]


class EndpointNotReady(PermanentPipelineError):
    """The endpoint did not become ready before the environment's deadline."""


@dataclass(frozen=True)
class Split:
    model_version: ModelVersion
    percent: int


def entity_name(model_version: ModelVersion) -> str:
    """The served entity's name: the model's last name part and the version (``support_assistant-2``)."""
    short = re.sub(r"[^A-Za-z0-9_]", "_", model_version.registered_model.rsplit(".", 1)[-1])
    return f"{short}-{model_version.version}"
