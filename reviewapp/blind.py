"""Blind review: what a reviewer may not see of an item, and which items answer the same request.

Reviewers judge an answer, not its author: unless the project turns ``show_model_to_reviewers`` on,
a reviewer-role member never sees an item's model name, model version, trace id, source, external
id (clients often build it from the version or the trace id, and ingest falls back to the trace id)
or the metadata keys that name a version (``metadata_key_identifies_version``). Curators, engineers
and admins always see them: they may read every review anyway (the EXPORT capability).

Siblings are items of one project whose requests are the same after normalisation
(``request_key``: whitespace collapsed; a chat compared turn by turn), typically the answers of two
model versions to one question. Ingest stores ``request_hash`` on each item so the queue can keep
one reviewer's siblings apart (services/queue.py).

Pure functions only: no database access, so pages and APIs blind items without extra queries.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping
from typing import Any

from reviewapp.models import Project, Role
from reviewapp.permissions import Capability, role_allows

# The item fields a blind reviewer never sees (external_id too: shown as the item's number instead).
IDENTITY_FIELDS: tuple[str, ...] = ("model_name", "model_version", "trace_id", "source", "external_id")

# A metadata key names a version when one of its words is one of these (or its plural). Words are
# split at non-letters and at camelCase humps, so "modelVersion", "mlflow.traceRequestId",
# "deployment_name" and "RUN-ID" all match, while "runtime", "channel" and "tone" do not.
VERSION_KEY_WORDS: frozenset[str] = frozenset(
    {
        "model",
        "version",
        "ver",
        "endpoint",
        "deployment",
        "deploy",
        "trace",
        "span",
        "run",
        "experiment",
        "checkpoint",
        "variant",
        "revision",
        "release",
        "commit",
        "alias",
        "champion",
        "candidate",
        "serving",
        "served",
        "llm",
        "engine",
        "source",
    }
)
_WORD = re.compile(r"[A-Z]+(?![a-z])|[A-Z]?[a-z]+|[0-9]+")


def metadata_key_identifies_version(key: str) -> bool:
    """True when the metadata key may name the model, version, deployment, trace or run behind an answer."""
    for word in _WORD.findall(str(key)):
        word = word.lower()
        if word in VERSION_KEY_WORDS or (word.endswith("s") and word[:-1] in VERSION_KEY_WORDS):
            return True
    return False


def metadata_for_reviewer(metadata: Any) -> Any:
    """The metadata without version-identifying keys, at any depth (a nested ``{"info": {"model": ...}}`` too)."""
    if isinstance(metadata, Mapping):
        return {
            key: metadata_for_reviewer(value)
            for key, value in metadata.items()
            if not metadata_key_identifies_version(key)
        }
    if isinstance(metadata, list):
        return [metadata_for_reviewer(value) for value in metadata]
    return metadata


def model_identity_visible(*, project: Project, role: str | None) -> bool:
    """Whether a member with ``role`` sees which model, version and trace produced an item.

    Roles that may read every review (EXPORT: curators, engineers, admins) always do; reviewers
    only when the project turns ``show_model_to_reviewers`` on.
    """
    if role_allows(role, Capability.EXPORT):
        return True
    return bool(project.show_model_to_reviewers)


def project_model_identity_visible(project: Project) -> bool:
    """``model_identity_visible`` for the caller of ``selectors.project_get_for_user`` (its ``user_role``)."""
    return model_identity_visible(project=project, role=getattr(project, "user_role", Role.REVIEWER))


# --- siblings ------------------------------------------------------------------------------------


def _squash(text: Any) -> str:
    return " ".join(str(text).split())


def request_key(request: Any) -> str:
    """A digest under which two requests are equal when they ask the same thing.

    Text is compared with its whitespace normalised (runs collapsed, ends trimmed). A chat request
    compares its whole message list, role by role, each content normalised the same way; a chat
    that is one user turn equals that text asked on its own.
    """
    if isinstance(request, dict):
        messages = [m for m in request.get("messages") or [] if isinstance(m, dict)]
        turns = [[str(m.get("role", "")), _squash(m.get("content", ""))] for m in messages]
        canonical: list[Any] = ["text", turns[0][1]] if len(turns) == 1 and turns[0][0] == "user" else ["chat", turns]
    else:
        canonical = ["text", _squash(request)]
    return hashlib.sha256(json.dumps(canonical, ensure_ascii=False, separators=(",", ":")).encode()).hexdigest()


def request_hash(request: Any) -> str:
    """``Item.request_hash``: the first 128 bits of ``request_key`` (pairwise pairs on the same key)."""
    return request_key(request)[:32]


def item_data_for_reviewer(data: dict[str, Any]) -> dict[str, Any]:
    """A serialised item without its identity fields and with its metadata filtered (a new dict)."""
    blinded = {key: value for key, value in data.items() if key not in IDENTITY_FIELDS}
    if "metadata" in blinded:
        blinded["metadata"] = metadata_for_reviewer(blinded["metadata"])
    return blinded
