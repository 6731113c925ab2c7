"""Unity Catalog routes of the local Databricks workspace: Files API (Volumes), SQL statements, tables.

A mixin of :class:`tests.fakes.databricks_api.FakeDatabricks`; its state lives in plain dicts
created by ``_uc_init``. Faithful to the REST API as databricks-sdk 0.162.0 sends it (checked in
``databricks/sdk/mixins/files.py``, ``service/files.py``, ``service/sql.py``, ``service/catalog.py``):

- ``PUT /api/2.0/fs/files{path}?overwrite=true|false`` with the raw bytes as
  ``application/octet-stream`` (the path URL-quoted); ``GET`` of the same path returns the bytes;
  ``GET /api/2.0/fs/directories{path}`` lists a folder. Paths must be under ``/Volumes/<c>/<s>/<v>/``.
- ``POST /api/2.0/sql/statements`` (``statement``, ``warehouse_id``, ``wait_timeout`` "0s" or
  "5s".."50s") and ``GET /api/2.0/sql/statements/{id}``. A small SQL subset really runs:
  ``CREATE TABLE IF NOT EXISTS <t> [(cols)] [COMMENT '...']``, ``COPY INTO <t> FROM '<dir>'
  FILEFORMAT = PARQUET [FILES = (...)] [COPY_OPTIONS (...)]`` (reads the Parquet files with pyarrow
  and, like the real COPY INTO, skips files it already loaded), ``MERGE [WITH SCHEMA EVOLUTION]
  INTO <t> t USING (SELECT * FROM <landing> WHERE batch_id = '<id>' ...) s ON t.row_id = s.row_id
  ...`` (an upsert keyed by row_id that only rewrites rows whose content_hash changed) and
  ``SELECT COUNT(*) FROM <t>``. Anything else FAILS with ``PARSE_SYNTAX_ERROR``.
- ``GET /api/2.0/sql/warehouses/{id}``: the warehouse (RUNNING), 404 for an unknown id.
- ``GET /api/2.1/unity-catalog/tables/{full_name}``: a TableInfo with columns and comments.

``statement_polls = n`` makes each statement report PENDING/RUNNING for its first ``n`` reads, so
clients must poll ``get_statement``. Unknown warehouse → 404, wrong token → 401, as Databricks does.
"""

from __future__ import annotations

import io
import itertools
import re
import time
import uuid
from typing import Any
from urllib.parse import unquote

from tests.fakes.http import Reply, Request, route

# ruff: noqa: S608  (the regexes below parse SQL; nothing here builds a query)

STATEMENT_KEYS = {
    "statement",
    "warehouse_id",
    "wait_timeout",
    "on_wait_timeout",
    "catalog",
    "schema",
    "parameters",
    "disposition",
    "format",
    "byte_limit",
    "row_limit",
    "query_tags",
}
WAIT_TIMEOUT = re.compile(r"0s|([5-9]|[1-4][0-9]|50)s")
VOLUME_PATH = re.compile(r"/Volumes/[^/]+/[^/]+/[^/]+/.+")
NAME = r"(?P<{0}>(?:`[^`]+`|[A-Za-z0-9_]+)(?:\.(?:`[^`]+`|[A-Za-z0-9_]+)){{2}})"
FLAGS = re.I | re.S
CREATE = re.compile(
    r"\s*CREATE TABLE IF NOT EXISTS " + NAME.format("name") + r"(?:\s*\((?P<cols>.*)\))?"
    r"(?:\s*COMMENT\s+'(?P<comment>(?:[^'\\]|\\.)*)')?\s*;?\s*",
    FLAGS,
)
COPY = re.compile(
    r"\s*COPY INTO " + NAME.format("name") + r"\s+FROM\s+'(?P<dir>[^']+)'\s+FILEFORMAT\s*=\s*PARQUET"
    r"(?:\s+FILES\s*=\s*\((?P<files>[^)]*)\))?(?:\s+COPY_OPTIONS\s*\((?P<options>[^)]*)\))?\s*;?\s*",
    FLAGS,
)
MERGE = re.compile(
    r"\s*MERGE (?P<evolve>WITH SCHEMA EVOLUTION )?INTO " + NAME.format("target") + r"\s+(?:AS\s+)?t\s+"
    r"USING\s+\(\s*SELECT \* FROM " + NAME.format("source") + r"\s+WHERE\s+batch_id\s*=\s*'(?P<batch>[^']+)'"
    r"(?P<dedup>\s+QUALIFY\s+ROW_NUMBER\(\)\s+OVER\s*\(PARTITION BY row_id ORDER BY pushed_at DESC\)\s*=\s*1)?\s*\)"
    r"\s+(?:AS\s+)?s\s+ON\s+t\.row_id\s*=\s*s\.row_id\s+"
    r"WHEN MATCHED AND t\.content_hash\s*<>\s*s\.content_hash THEN UPDATE SET \*\s+"
    r"WHEN NOT MATCHED THEN INSERT \*\s*;?\s*",
    FLAGS,
)
COUNT = re.compile(r"\s*SELECT COUNT\(\*\) FROM " + NAME.format("name") + r"\s*;?\s*", FLAGS)
SQL_TYPES = {"STRING", "BIGINT", "DOUBLE", "BOOLEAN", "TIMESTAMP", "ARRAY<STRING>", "ARRAY<BIGINT>", "INT", "DATE"}
TYPE_NAMES = {"BIGINT": "LONG", "INT": "INT", "ARRAY<STRING>": "ARRAY", "ARRAY<BIGINT>": "ARRAY"}


def error(status: int, code: str, message: str) -> Reply:
    return Reply(status, {"error_code": code, "message": message})


def _unquote_name(name: str) -> str:
    return ".".join(part.strip("`") for part in re.findall(r"`[^`]+`|[A-Za-z0-9_]+", name)).lower()


def _split_columns(text: str) -> list[str]:
    """Top-level comma split, outside quotes and <...>."""
    parts, depth, quote, current, escaped = [], 0, False, [], False
    for char in text:
        if quote:
            current.append(char)
            if escaped:
                escaped = False
            elif char == "\\":
                escaped = True
            elif char == "'":
                quote = False
            continue
        if char == "'":
            quote = True
        elif char == "<":
            depth += 1
        elif char == ">":
            depth -= 1
        elif char == "," and depth == 0:
            parts.append("".join(current).strip())
            current = []
            continue
        current.append(char)
    if "".join(current).strip():
        parts.append("".join(current).strip())
    return parts


COLUMN = re.compile(
    r"(?P<name>`[^`]+`|[A-Za-z0-9_]+)\s+(?P<type>[A-Za-z]+(?:<[A-Za-z]+>)?)(?P<notnull>\s+NOT NULL)?"
    r"(?:\s+COMMENT\s+'(?P<comment>(?:[^'\\]|\\.)*)')?",
    FLAGS,
)


def _sql_string(text: str) -> str:
    return re.sub(r"\\(.)", r"\1", text)


def _arrow_sql_type(arrow_type: Any) -> str:
    import pyarrow as pa

    if pa.types.is_list(arrow_type):
        return f"ARRAY<{_arrow_sql_type(arrow_type.value_type)}>"
    if pa.types.is_boolean(arrow_type):
        return "BOOLEAN"
    if pa.types.is_integer(arrow_type):
        return "BIGINT"
    if pa.types.is_floating(arrow_type):
        return "DOUBLE"
    if pa.types.is_timestamp(arrow_type):
        return "TIMESTAMP"
    return "STRING"


class UnityCatalogMixin:
    token: str
    workspace_id: str

    def _uc_init(self) -> None:
        self.volume_files: dict[str, bytes] = {}
        # full name (lower case, unquoted) -> {"columns": [{"name","type","comment","nullable"}], "comment",
        #   "rows": {row_id: row} (or "landing": [rows] for tables written by COPY INTO), "loaded_files": set()}
        self.tables: dict[str, dict[str, Any]] = {}
        self.warehouses: set[str] = {"wh-reviewdesk"}
        self.statements: dict[str, dict[str, Any]] = {}
        self.statement_log: list[str] = []  # every SQL text received, in order
        self.statement_polls = 0
        self._uc_ids = itertools.count(1)

    # --- helpers for tests -------------------------------------------------------------------

    def writes(self) -> list[Request]:
        """Requests that could change state: file uploads and SQL statements."""
        return [
            r  # type: ignore[attr-defined]
            for r in self.requests  # type: ignore[attr-defined]
            if (r.method == "PUT" and r.path.startswith("/api/2.0/fs/files"))
            or (r.method == "POST" and r.path == "/api/2.0/sql/statements")
        ]

    def table_rows(self, full_name: str) -> list[dict[str, Any]]:
        table = self.tables[_unquote_name(full_name)]
        return list(table["rows"].values()) if "rows" in table else list(table["landing"])

    # --- Files API -----------------------------------------------------------------------------

    @route("PUT", r"/api/2\.0/fs/files(?P<path>/.+)")
    def files_upload(self, request: Request) -> Reply:
        denied = self.check_auth(request)  # type: ignore[attr-defined]
        if denied:
            return denied
        path = unquote(request.params["path"])
        if not VOLUME_PATH.fullmatch(path):
            return error(
                400, "INVALID_PARAMETER_VALUE", f"Path must be under /Volumes/<catalog>/<schema>/<volume>/: {path}"
            )
        if request.headers.get("content-type") != "application/octet-stream":
            return error(400, "INVALID_PARAMETER_VALUE", "The body must be application/octet-stream.")
        overwrite = request.query.get("overwrite", ["false"])[0]
        if overwrite not in ("true", "false"):
            return error(400, "INVALID_PARAMETER_VALUE", f"overwrite must be true or false, not {overwrite!r}")
        if path in self.volume_files and overwrite != "true":
            return error(409, "ALREADY_EXISTS", f"The file {path} already exists.")
        self.volume_files[path] = request.raw
        return Reply(204, None)

    @route("GET", r"/api/2\.0/fs/files(?P<path>/.+)")
    def files_download(self, request: Request) -> Reply:
        denied = self.check_auth(request)  # type: ignore[attr-defined]
        if denied:
            return denied
        path = unquote(request.params["path"])
        if path not in self.volume_files:
            return error(404, "NOT_FOUND", f"The file {path} does not exist.")
        data = self.volume_files[path]
        return Reply(200, data, headers={"Content-Type": "application/octet-stream"})

    @route("GET", r"/api/2\.0/fs/directories(?P<path>/.+)")
    def directories_list(self, request: Request) -> Reply:
        denied = self.check_auth(request)  # type: ignore[attr-defined]
        if denied:
            return denied
        folder = unquote(request.params["path"]).rstrip("/") + "/"
        contents = [
            {"path": p, "name": p.rsplit("/", 1)[1], "is_directory": False, "file_size": len(b)}
            for p, b in sorted(self.volume_files.items())
            if p.startswith(folder) and "/" not in p[len(folder) :]
        ]
        if not contents:
            return error(404, "NOT_FOUND", f"The directory {folder} does not exist.")
        return Reply(200, {"contents": contents})

    # --- SQL statements ---------------------------------------------------------------------

    @route("GET", r"/api/2\.0/sql/warehouses/(?P<id>[^/]+)")
    def warehouse_get(self, request: Request) -> Reply:
        denied = self.check_auth(request)  # type: ignore[attr-defined]
        if denied:
            return denied
        if request.params["id"] not in self.warehouses:
            return error(404, "RESOURCE_DOES_NOT_EXIST", f"Warehouse {request.params['id']} does not exist.")
        return Reply(
            200,
            {
                "id": request.params["id"],
                "name": "Reviewdesk warehouse",
                "state": "RUNNING",
                "cluster_size": "2X-Small",
                "warehouse_type": "PRO",
                "enable_serverless_compute": True,
            },
        )

    @route("POST", r"/api/2\.0/sql/statements/?")
    def statement_execute(self, request: Request) -> Reply:
        denied = self.check_auth(request)  # type: ignore[attr-defined]
        if denied:
            return denied
        body = request.json
        if not isinstance(body, dict):
            return error(400, "BAD_REQUEST", "The request body is not a JSON object.")
        unknown = set(body) - STATEMENT_KEYS
        if unknown:
            return error(400, "INVALID_PARAMETER_VALUE", f"Unknown fields: {', '.join(sorted(unknown))}")
        if not isinstance(body.get("statement"), str) or not body["statement"].strip():
            return error(400, "INVALID_PARAMETER_VALUE", "statement is required.")
        if not body.get("warehouse_id"):
            return error(400, "INVALID_PARAMETER_VALUE", "warehouse_id is required.")
        if body["warehouse_id"] not in self.warehouses:
            return error(404, "RESOURCE_DOES_NOT_EXIST", f"Warehouse {body['warehouse_id']} does not exist.")
        wait = body.get("wait_timeout", "10s")
        if not isinstance(wait, str) or not WAIT_TIMEOUT.fullmatch(wait):
            return error(400, "INVALID_PARAMETER_VALUE", f"wait_timeout must be 0s or 5s to 50s, not {wait!r}")
        statement_id = f"01ef-{uuid.uuid4().hex[:12]}"
        self.statement_log.append(body["statement"])
        result = self._run_sql(body["statement"])
        result["statement_id"] = statement_id
        self.statements[statement_id] = {"response": result, "polls_left": self.statement_polls}
        return Reply(200, self._statement_view(statement_id))

    @route("GET", r"/api/2\.0/sql/statements/(?P<id>[^/]+)")
    def statement_get(self, request: Request) -> Reply:
        denied = self.check_auth(request)  # type: ignore[attr-defined]
        if denied:
            return denied
        if request.params["id"] not in self.statements:
            return error(404, "RESOURCE_DOES_NOT_EXIST", f"Statement {request.params['id']} does not exist.")
        return Reply(200, self._statement_view(request.params["id"]))

    def _statement_view(self, statement_id: str) -> dict[str, Any]:
        entry = self.statements[statement_id]
        if entry["polls_left"] > 0:
            state = "PENDING" if entry["polls_left"] > 1 else "RUNNING"
            entry["polls_left"] -= 1
            return {"statement_id": statement_id, "status": {"state": state}}
        return entry["response"]

    def _run_sql(self, sql: str) -> dict[str, Any]:
        for pattern, handler in (
            (CREATE, self._sql_create),
            (COPY, self._sql_copy),
            (MERGE, self._sql_merge),
            (COUNT, self._sql_count),
        ):
            match = pattern.fullmatch(sql)
            if match:
                try:
                    return handler(match)
                except _SqlError as exc:
                    return _failed(exc.code, exc.message)
        return _failed("PARSE_SYNTAX_ERROR", f"[PARSE_SYNTAX_ERROR] Syntax error in: {sql[:200]}")

    def _sql_create(self, match: re.Match[str]) -> dict[str, Any]:
        name = _unquote_name(match["name"])
        if name not in self.tables:
            columns = []
            for text in _split_columns(match["cols"] or ""):
                col = COLUMN.fullmatch(text)
                if col is None or col["type"].upper() not in SQL_TYPES:
                    raise _SqlError("PARSE_SYNTAX_ERROR", f"[PARSE_SYNTAX_ERROR] Bad column definition: {text}")
                columns.append(
                    {
                        "name": col["name"].strip("`"),
                        "type": col["type"].upper(),
                        "comment": _sql_string(col["comment"] or ""),
                        "nullable": not col["notnull"],
                    }
                )
            self.tables[name] = {
                "columns": columns,
                "comment": _sql_string(match["comment"] or ""),
                "created_at": int(time.time() * 1000),
                "table_id": str(uuid.uuid4()),
                "version": 0,
                **({"rows": {}} if columns else {"landing": [], "loaded_files": set()}),
            }
        return _succeeded([], [])

    def _table(self, raw: str) -> dict[str, Any]:
        name = _unquote_name(raw)
        if name not in self.tables:
            raise _SqlError("TABLE_OR_VIEW_NOT_FOUND", f"[TABLE_OR_VIEW_NOT_FOUND] The table {raw} cannot be found.")
        return self.tables[name]

    def _sql_copy(self, match: re.Match[str]) -> dict[str, Any]:
        import pyarrow.parquet as pq

        table = self._table(match["name"])
        folder = match["dir"].rstrip("/") + "/"
        if match["files"]:
            names = [f.strip().strip("'") for f in match["files"].split(",")]
            paths = [folder + n for n in names]
            missing = [p for p in paths if p not in self.volume_files]
            if missing:
                raise _SqlError("PATH_NOT_FOUND", f"[PATH_NOT_FOUND] Path does not exist: {missing[0]}")
        else:
            paths = sorted(p for p in self.volume_files if p.startswith(folder))
        evolve = "'mergeschema' = 'true'" in (match["options"] or "").lower()
        loaded = 0
        for path in paths:
            if path in table["loaded_files"]:
                continue  # COPY INTO is idempotent: files already loaded are skipped
            data = pq.read_table(io.BytesIO(self.volume_files[path]))
            known = {c["name"] for c in table["columns"]}
            new = [f for f in data.schema if f.name not in known]
            if new and not evolve and table["columns"]:
                raise _SqlError("DELTA_SCHEMA_CHANGE", f"[COPY_INTO_SCHEMA_MISMATCH] New columns: {new[0].name}")
            for field in new:
                table["columns"].append(
                    {"name": field.name, "type": _arrow_sql_type(field.type), "comment": "", "nullable": True}
                )
            rows = data.to_pylist()
            table["landing"].extend(rows)
            table["loaded_files"].add(path)
            loaded += len(rows)
        if loaded:
            table["version"] += 1
        return _succeeded(["num_affected_rows", "num_inserted_rows"], [[str(loaded), str(loaded)]])

    def _sql_merge(self, match: re.Match[str]) -> dict[str, Any]:
        target, source = self._table(match["target"]), self._table(match["source"])
        rows = [
            r for r in source.get("landing", source.get("rows", {}).values()) if r.get("batch_id") == match["batch"]
        ]
        if match["dedup"]:
            latest: dict[str, dict[str, Any]] = {}
            for row in rows:
                if row["row_id"] not in latest or str(row["pushed_at"]) >= str(latest[row["row_id"]]["pushed_at"]):
                    latest[row["row_id"]] = row
            rows = list(latest.values())
        elif len({r["row_id"] for r in rows}) != len(rows):
            raise _SqlError(
                "DELTA_MULTIPLE_SOURCE_ROW_MATCHING_TARGET_ROW_IN_MERGE",
                "[DELTA_MULTIPLE_SOURCE_ROW_MATCHING_TARGET_ROW_IN_MERGE] Several source rows matched one target row.",
            )
        known = {c["name"] for c in target["columns"]}
        source_columns = [c for c in source["columns"] if c["name"] not in known]
        if source_columns and rows:
            if not match["evolve"]:
                raise _SqlError(
                    "DELTA_SCHEMA_CHANGE", f"[UNRESOLVED_COLUMN] {source_columns[0]['name']} is not in the target"
                )
            target["columns"].extend(dict(c) for c in source_columns)
        inserted = updated = 0
        for row in rows:
            current = target["rows"].get(row["row_id"])
            if current is None:
                target["rows"][row["row_id"]] = dict(row)
                inserted += 1
            elif current.get("content_hash") != row.get("content_hash"):
                current.update(row)
                updated += 1
        if inserted or updated:
            target["version"] += 1
        affected = inserted + updated
        return _succeeded(
            ["num_affected_rows", "num_updated_rows", "num_deleted_rows", "num_inserted_rows"],
            [[str(affected), str(updated), "0", str(inserted)]],
        )

    def _sql_count(self, match: re.Match[str]) -> dict[str, Any]:
        table = self._table(match["name"])
        count = len(table["rows"]) if "rows" in table else len(table["landing"])
        return _succeeded(["count(1)"], [[str(count)]])

    # --- tables ----------------------------------------------------------------------------------

    @route("GET", r"/api/2\.1/unity-catalog/tables/(?P<name>[^/]+)")
    def table_get(self, request: Request) -> Reply:
        denied = self.check_auth(request)  # type: ignore[attr-defined]
        if denied:
            return denied
        raw = unquote(request.params["name"])
        table = self.tables.get(raw.lower())
        if table is None:
            return error(404, "TABLE_DOES_NOT_EXIST", f"Table '{raw}' does not exist.")
        catalog, schema, name = raw.split(".")
        return Reply(
            200,
            {
                "name": name,
                "catalog_name": catalog,
                "schema_name": schema,
                "full_name": raw,
                "table_type": "MANAGED",
                "data_source_format": "DELTA",
                "comment": table["comment"] or None,
                "columns": [
                    {
                        "name": c["name"],
                        "type_text": c["type"].lower(),
                        "type_name": TYPE_NAMES.get(c["type"], c["type"]),
                        "position": i,
                        "nullable": c["nullable"],
                        **({"comment": c["comment"]} if c["comment"] else {}),
                    }
                    for i, c in enumerate(table["columns"])
                ],
                "storage_location": f"s3://fake-metastore/{table['table_id']}",
                "table_id": table["table_id"],
                "owner": "reviewdesk-sp",
                "created_at": table["created_at"],
                "updated_at": int(time.time() * 1000),
                "properties": {"delta.lastCommitVersion": str(table["version"])},
            },
        )


class _SqlError(Exception):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code, self.message = code, message


def _failed(code: str, message: str) -> dict[str, Any]:
    return {"status": {"state": "FAILED", "error": {"error_code": code, "message": message}}}


def _succeeded(columns: list[str], rows: list[list[str]]) -> dict[str, Any]:
    return {
        "status": {"state": "SUCCEEDED"},
        "manifest": {
            "format": "JSON_ARRAY",
            "schema": {
                "column_count": len(columns),
                "columns": [
                    {"name": c, "type_name": "LONG", "type_text": "BIGINT", "position": i}
                    for i, c in enumerate(columns)
                ],
            },
            "total_row_count": len(rows),
            "total_chunk_count": 1 if rows else 0,
            "truncated": False,
        },
        "result": {"chunk_index": 0, "row_offset": 0, "row_count": len(rows), "data_array": rows} if rows else {},
    }
