"""OpenAPI helpers: readable component names, msgspec-derived schemas, paginated envelopes."""

from __future__ import annotations

from typing import Any

import msgspec
from drf_spectacular import openapi
from drf_spectacular.utils import inline_serializer
from rest_framework import serializers


class AutoSchema(openapi.AutoSchema):
    """Names nested serializers after their API: ``ItemListApi.OutputSerializer`` → ``ItemListOutput``.

    Every API class nests its own ``InputSerializer``/``OutputSerializer``; without this they would
    all be one component called ``Output`` and the schema would be wrong.
    """

    def get_serializer_name(self, serializer: Any, direction: str) -> str:
        qualname = type(serializer).__qualname__
        return "".join(part.removesuffix("Serializer").removesuffix("Api") for part in qualname.split("."))


def json_schema(type_: Any) -> dict[str, Any]:
    """The OpenAPI 3.0 schema of a msgspec type, inlined (no ``$defs``), so it matches what we validate."""
    root = msgspec.json.schema(type_)
    defs = root.pop("$defs", {})

    def resolve(node: Any) -> Any:
        if isinstance(node, list):
            return [resolve(n) for n in node]
        if not isinstance(node, dict):
            return node
        if "$ref" in node:
            return resolve(defs[node["$ref"].rsplit("/", 1)[1]])
        node = {k: resolve(v) for k, v in node.items() if k != "title"}
        options = node.get("anyOf")
        if options and {"type": "null"} in options:
            # JSON Schema's null type is OpenAPI 3.0's ``nullable``.
            rest = [o for o in options if o != {"type": "null"}]
            node.pop("anyOf")
            node.update(rest[0] if len(rest) == 1 else {"anyOf": rest})
            node["nullable"] = True
        if "enum" in node and "type" not in node:
            node["type"] = "string"
        return node

    return resolve(root)


def paginated(name: str, child: serializers.Serializer) -> serializers.Serializer:
    """The envelope of a cursor-paginated list of ``child`` (see api.pagination)."""
    return inline_serializer(
        name=name,
        fields={
            "next": serializers.URLField(allow_null=True, help_text="The next page, or null on the last one."),
            "previous": serializers.URLField(allow_null=True, help_text="The previous page, or null on the first."),
            "results": child,
        },
    )


_DETAIL = {"type": "object", "properties": {"detail": {"type": "string"}}, "required": ["detail"]}
_STANDARD_ERRORS = {
    "400": ("The input is not valid (also: a body that is not JSON, not UTF-8, nested too deep, or with NUL).", True),
    "401": ("No valid credentials.", False),
    "403": ("Your role or token scope does not allow this.", False),
    "404": ("Not found, or not visible to you.", False),
}


def add_error_responses(result: dict[str, Any], generator: Any, request: Any, public: bool) -> dict[str, Any]:
    """Document the errors every operation can answer, so the schema tells the truth (checked by schemathesis).

    A drf-spectacular postprocessing hook: 400 with ``errors`` (see api.errors), 401/403/404 with
    ``detail``, and 415 where the operation takes a body (JSON only). Operation-specific entries win.
    """
    schemas = result.setdefault("components", {}).setdefault("schemas", {})
    schemas.setdefault("ErrorDetail", _DETAIL)
    detail_ref = {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorDetail"}}}
    invalid_ref = {"application/json": {"schema": {"$ref": "#/components/schemas/ValidationError"}}}
    for methods in result.get("paths", {}).values():
        for method, operation in methods.items():
            if method not in ("get", "post", "put", "patch", "delete"):
                continue
            responses = operation.setdefault("responses", {})
            for code, (description, invalid) in _STANDARD_ERRORS.items():
                responses.setdefault(
                    code, {"description": description, "content": invalid_ref if invalid else detail_ref}
                )
            if "requestBody" in operation:
                responses.setdefault("415", {"description": "Send application/json.", "content": detail_ref})
    return result
