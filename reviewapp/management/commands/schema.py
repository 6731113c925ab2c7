"""Schemas as code from a shell or CI: ``schema export|apply --project SLUG FILE``.

``export`` writes the project's label schema to FILE (``-``: standard output); ``apply`` makes the
project's questions what FILE says (``-``: standard input), through the same service as the REST
API. Applying a file equal to the schema changes nothing. A bad file writes nothing and exits 1
with every problem listed.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from reviewapp.errors import ValidationFailed
from reviewapp.jsoninput import JsonInputError, json_decode
from reviewapp.selectors.projects import project_get_by_slug
from reviewapp.services.schema import schema_apply, schema_export
from reviewapp.yamlinput import yaml_decode, yaml_encode


def _format(path: str, given: str | None) -> str:
    if given:
        return given
    return "json" if path.lower().endswith(".json") else "yaml"


class Command(BaseCommand):
    help = "Export a project's label schema to a file, or apply a file to it (JSON or YAML)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("action", choices=["export", "apply"])
        parser.add_argument("file", help="The schema file (- for standard output/input).")
        parser.add_argument("--project", required=True, help="The project's slug.")
        parser.add_argument(
            "--format", choices=["json", "yaml"], help="By default from the file's extension (.json, else YAML)."
        )

    def handle(self, *args: Any, **options: Any) -> None:
        project = project_get_by_slug(slug=options["project"])
        if project is None:
            raise CommandError(f"No project with slug '{options['project']}'.")
        path: str = options["file"]
        fmt = _format(path, options["format"])
        if options["action"] == "export":
            document = schema_export(project=project)
            if fmt == "json":
                import json

                text = json.dumps(document, indent=2, ensure_ascii=False) + "\n"
            else:
                text = yaml_encode(document)
            if path == "-":
                self.stdout.write(text, ending="")
            else:
                Path(path).write_text(text, encoding="utf-8")
                n = len(document["questions"])
                self.stdout.write(f"Wrote {n} questions (version {project.schema_version}) to {path}.")
            return
        try:
            body = sys.stdin.buffer.read() if path == "-" else Path(path).read_bytes()
        except OSError as exc:
            raise CommandError(f"Cannot read {path}: {exc.strerror}.") from None
        try:
            raw = json_decode(body) if fmt == "json" else yaml_decode(body)
        except JsonInputError as exc:
            raise CommandError(f"{path}: {exc.message}" + (f" (at {exc.path})" if exc.path else "")) from None
        try:
            result = schema_apply(project=project, raw=raw, actor=None)
        except ValidationFailed as exc:
            lines = [f"{path}: {exc.message} Nothing was changed."]
            for error in exc.errors:
                where = f"question {error['index']}" if error["index"] is not None else "document"
                lines.append(f"  {where}, {error['field'] or '(whole)'}: {error['message']}")
            raise CommandError("\n".join(lines)) from None
        if result.unchanged:
            self.stdout.write(f"{project.slug}: the schema already matches {path}; nothing changed.")
            return
        parts = [
            f"{label} {', '.join(keys)}"
            for label, keys in (("added", result.added), ("removed", result.removed), ("changed", result.changed))
            if keys
        ]
        if result.reordered:
            parts.append("reordered")
        version = (
            f"new schema version {result.version_after}"
            if result.new_version
            else f"schema version {result.version_after}"
        )
        self.stdout.write(f"{project.slug}: {'; '.join(parts)} ({version}).")
