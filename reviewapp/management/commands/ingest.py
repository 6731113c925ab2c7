"""``manage.py ingest FILE --project SLUG``: load items from JSONL, JSON, CSV or Parquet.

Two passes over the file. The first checks every row (with the same validation as the API) and
stops with a report of every bad row if there is one, so a bad file writes nothing. The second
upserts the rows in batches; each batch commits on its own, and because items are matched on
their external id, re-running the same file (after an interruption, or on purpose) updates rows
and never duplicates them.
"""

from __future__ import annotations

import csv
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any, NamedTuple

import msgspec
from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser
from tqdm import tqdm

from reviewapp.errors import FieldError
from reviewapp.jsoninput import JsonInputError, json_decode
from reviewapp.selectors.projects import project_get_by_slug
from reviewapp.services.ingest import ItemIn, external_id_for, items_ingest, items_validate
from reviewapp.typed_input import error_from, field_error

FORMATS = {
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
    ".json": "json",
    ".csv": "csv",
    ".parquet": "parquet",
    ".pq": "parquet",
}
# How each format numbers its rows in error reports: what an editor, jq or pyarrow would show.
UNITS = {"jsonl": "line", "csv": "line", "json": "item", "parquet": "row"}
COLUMNS = frozenset(ItemIn.__struct_fields__)
JSON_COLUMNS = frozenset({"retrieved_context", "metadata"})  # always JSON in CSV; "request" only when it is an object


class Record(NamedTuple):
    position: int  # the row's number in the file, in the format's unit
    row: Any  # the decoded row (None when it could not be decoded)
    error: FieldError | None = None


def _invalid_json(position: int, field: str, exc: JsonInputError) -> Record:
    return Record(position, None, error_from(exc, field=field, index=position))


def read_jsonl(path: Path) -> Iterator[Record]:
    with path.open("rb") as f:
        for number, line in enumerate(f, start=1):
            if not line.strip():
                continue
            try:
                # NUL is reported per row by items_validate, with the row's field.
                yield Record(number, json_decode(line, reject_nul=False))
            except JsonInputError as exc:
                yield _invalid_json(number, "", exc)


def read_json(path: Path) -> Iterator[Record]:
    try:
        data = json_decode(path.read_bytes(), reject_nul=False)
    except JsonInputError as exc:
        yield _invalid_json(0, "", exc)
        return
    if isinstance(data, dict):
        data = [data]
    if not isinstance(data, list):
        yield Record(0, None, field_error("", "Expected an object or a list of objects.", 0))
        return
    for index, row in enumerate(data):
        yield Record(index, row)


def _from_cells(position: int, cells: dict[str, Any]) -> Record:
    """A CSV/Parquet row as an item: empty cells are left out, JSON columns decoded."""
    row: dict[str, Any] = {}
    for name, value in cells.items():
        if value is None or value == "":
            continue  # a table cannot omit a cell, so empty means "use the default"
        if isinstance(value, str) and (name in JSON_COLUMNS or (name == "request" and value.lstrip().startswith("{"))):
            try:
                value = json_decode(value, reject_nul=False)
            except JsonInputError as exc:
                return _invalid_json(position, name, exc)
        elif name == "priority" and isinstance(value, str):
            try:
                value = int(value)
            except ValueError:
                return Record(position, None, field_error(name, "Expected a whole number.", position))
        row[name] = value
    return Record(position, row)


def _unknown_columns(position: int, names: list[str]) -> Iterator[Record]:
    for name in names:
        if name not in COLUMNS:
            known = ", ".join(sorted(COLUMNS))
            yield Record(position, None, field_error(name, f"Unknown column; use {known}.", position))


def read_csv(path: Path) -> Iterator[Record]:
    with path.open(newline="", encoding="utf-8-sig") as f:
        reader = csv.reader(f)
        header = next(reader, None)
        if header is None:
            return
        bad = list(_unknown_columns(1, header))
        if bad:
            yield from bad
            return
        while True:
            start = reader.line_num + 1  # where the record begins; a quoted cell may span lines
            cells = next(reader, None)
            if cells is None:
                return
            if not cells:
                continue
            if len(cells) != len(header):
                message = f"Expected {len(header)} cells, found {len(cells)}."
                yield Record(start, None, field_error("", message, start))
                continue
            yield _from_cells(start, dict(zip(header, cells, strict=True)))


def read_parquet(path: Path) -> Iterator[Record]:
    import pyarrow.parquet as pq  # only this format needs pyarrow; keep other commands' start fast

    parquet = pq.ParquetFile(path)
    bad = list(_unknown_columns(0, parquet.schema_arrow.names))
    if bad:
        yield from bad
        return
    position = 0
    for batch in parquet.iter_batches(batch_size=1000):
        for cells in batch.to_pylist():
            # to_builtins turns Arrow's datetimes, decimals and bytes into JSON-ready values.
            yield _from_cells(position, msgspec.to_builtins(cells))
            position += 1


READERS = {"jsonl": read_jsonl, "json": read_json, "csv": read_csv, "parquet": read_parquet}


def _chunks(records: Iterator[Record], size: int) -> Iterator[list[Record]]:
    chunk: list[Record] = []
    for record in records:
        chunk.append(record)
        if len(chunk) >= size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


class Command(BaseCommand):
    help = (
        "Ingest items from a JSONL, JSON, CSV or Parquet file. Every row is checked first; if any is bad, "
        "each problem is reported (line for JSONL/CSV, 0-based item for JSON, 0-based row for Parquet) and "
        "nothing is written. Re-running a file updates its items instead of duplicating them."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("file", type=Path)
        parser.add_argument("--project", required=True, help="The project's slug.")
        parser.add_argument("--batch-size", type=int, default=1000, help="Items per transaction (default 1000).")
        parser.add_argument(
            "--format", choices=sorted(READERS), help="The file's format (default: from its extension)."
        )

    def handle(self, *args: Any, **options: Any) -> None:
        path: Path = options["file"]
        project = project_get_by_slug(slug=options["project"])
        if project is None:
            raise CommandError(f"No project with slug '{options['project']}'.")
        if not path.is_file():
            raise CommandError(f"No such file: {path}")
        fmt = options["format"] or FORMATS.get(path.suffix.lower())
        if fmt is None:
            raise CommandError(
                f"Cannot tell the format of '{path.name}'; pass --format ({', '.join(sorted(READERS))})."
            )
        batch_size = options["batch_size"]
        if not 1 <= batch_size <= settings.INGEST_MAX_ITEMS:
            raise CommandError(f"--batch-size must be from 1 to {settings.INGEST_MAX_ITEMS}.")
        progress_file = getattr(self.stderr, "_out", sys.stderr)  # tqdm needs the raw stream, not Django's wrapper

        total, errors = self._check(path, fmt, batch_size, progress_file)
        if errors:
            unit = UNITS[fmt]
            lines = [f"  {unit} {e['index']}: {e['field'] or '(row)'}: {e['message']}" for e in errors]
            raise CommandError(
                f"{path.name}: {len(errors)} problem(s) in {total} rows; nothing was written.\n" + "\n".join(lines)
            )
        if total == 0:
            raise CommandError(f"{path.name} has no items.")

        created = updated = 0
        with tqdm(total=total, desc="ingest", unit="item", file=progress_file) as bar:
            for chunk in _chunks(READERS[fmt](path), batch_size):
                result = items_ingest(
                    project=project,
                    rows=[r.row for r in chunk],
                    positions=[r.position for r in chunk],
                    source=f"cli:{path.name}",
                )
                created += result.created
                updated += result.updated
                bar.update(len(chunk))
        self.stdout.write(f"{project.slug}: {created} items created, {updated} updated from {path.name}.")

    def _check(self, path: Path, fmt: str, batch_size: int, progress_file: Any) -> tuple[int, list[FieldError]]:
        """Validate every row; returns how many rows there are and every problem found."""
        errors: list[FieldError] = []
        first_seen: dict[str, int] = {}
        total = 0
        with tqdm(desc="check", unit="item", file=progress_file) as bar:
            for chunk in _chunks(READERS[fmt](path), batch_size):
                total += len(chunk)
                bar.update(len(chunk))
                errors.extend(r.error for r in chunk if r.error is not None)
                good = [r for r in chunk if r.error is None]
                parsed, row_errors = items_validate([r.row for r in good], positions=[r.position for r in good])
                errors.extend(row_errors)
                # items_validate reports duplicates within one chunk; this catches them across chunks.
                bad = {e["index"] for e in row_errors}
                valid_positions = [r.position for r in good if r.position not in bad]
                for position, row in zip(valid_positions, parsed, strict=True):
                    ext_id = external_id_for(row)
                    if ext_id in first_seen:
                        message = f"Duplicate of {UNITS[fmt]} {first_seen[ext_id]} (same external_id)."
                        errors.append(field_error("external_id", message, position))
                    else:
                        first_seen[ext_id] = position
        errors.sort(key=lambda e: e["index"] or 0)
        return total, errors
